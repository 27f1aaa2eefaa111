"""CSVAE (tinyvae/csvae.py): every term's gradient against finite differences, on both backends, and the
separation of the two optimizers' gradients."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyvae import CSVAE, build_vae, mlp_csvae
from tinyvae.checkpoint import load_checkpoint, load_run, save_checkpoint
from tinyvae.csvae import class_separation, kl_diagonal_gaussians, negative_entropy, symmetrized_kl
from tinyvae.distributions import kl_normal_standard
from tinyvae.gradcheck import numerical_gradient, relative_error
from tinyvae.optim import Adam

TOL = 1e-6
ONE_TERM = {"reconstruction": (1, 0, 0, 0, 0), "kl_w": (0, 1, 0, 0, 0), "kl_z": (0, 0, 1, 0, 0),
            "negative_entropy": (0, 0, 0, 1, 0)}  # fmt: skip


def tiny_csvae(rng, betas, likelihood="gaussian", m=2, adversary_input="sample"):
    model = mlp_csvae(input_dim=3, z_dim=2, w_dim=2, num_attributes=m, hidden=4, adversary_hidden=3, rng=rng,
                      dtype=np.float64, likelihood=likelihood, sigma=0.7, betas=betas, w_on_mean=1.5, w_on_std=0.8,
                      w_off_std=0.5, adversary_input=adversary_input)  # fmt: skip
    for p in model.params.values():
        p[...] = rng.standard_normal(p.shape) * 0.7
    return model


def batch(rng, n, m=2, likelihood="gaussian"):
    x = rng.standard_normal((n, 3)) if likelihood == "gaussian" else (rng.random((n, 3)) < 0.5).astype(np.float64)
    return x, rng.integers(0, 2, (n, m)), rng.standard_normal((n, 2)), rng.standard_normal((n, 2 * m))


def check_against_numeric(analytic, params, loss):
    names = list(params)
    numeric = {name: numerical_gradient(loss, params[name]) for name in names}
    flat = [np.concatenate([d[name].ravel() for name in names]) for d in (analytic, numeric)]
    assert relative_error(*flat) < TOL


@pytest.mark.parametrize("term", [*ONE_TERM, "all"])
@settings(max_examples=8)
@given(n=st.integers(1, 4), seed=st.integers(0, 2**16), likelihood=st.sampled_from(["gaussian", "bernoulli"]),
       adversary_input=st.sampled_from(["sample", "mean"]))  # fmt: skip
def test_encoder_decoder_gradients(backend, term, n, seed, likelihood, adversary_input):
    rng = np.random.default_rng(seed)
    betas = ONE_TERM.get(term) or tuple(rng.uniform(0.2, 2.0, 5))
    model = tiny_csvae(rng, betas, likelihood, adversary_input=adversary_input)
    x, y, eps_z, eps_w = batch(rng, n, likelihood=likelihood)

    def loss():
        return model.loss_and_grads(x, y, eps_z=eps_z, eps_w=eps_w)["loss"]

    terms = model.loss_and_grads(x, y, eps_z=eps_z, eps_w=eps_w)
    if term != "all":
        assert terms["loss"] == pytest.approx(terms[term])
    check_against_numeric(model.vae_grads(), model.vae_params(), loss)


@settings(max_examples=8)
@given(n=st.integers(1, 4), m=st.integers(1, 3), seed=st.integers(0, 2**16),
       adversary_input=st.sampled_from(["sample", "mean"]))  # fmt: skip
def test_adversary_gradients(backend, n, m, seed, adversary_input):
    rng = np.random.default_rng(seed)
    model = tiny_csvae(rng, tuple(rng.uniform(0.2, 2.0, 5)), m=m, adversary_input=adversary_input)
    x, y, eps_z, _ = batch(rng, n, m)

    def loss():
        return model.adversary_loss_and_grads(x, y, eps_z=eps_z)["loss"]

    loss()
    check_against_numeric(model.adversary_grads(), model.adversary_params(), loss)


@pytest.mark.parametrize("adversary_input", ["sample", "mean"])
def test_each_step_fills_only_its_own_grads(adversary_input):
    rng = np.random.default_rng(0)
    model = tiny_csvae(rng, (1.0, 1.0, 1.0, 5.0, 1.0), adversary_input=adversary_input)
    x, y, eps_z, eps_w = batch(rng, 4)
    model.adversary_loss_and_grads(x, y, eps_z=eps_z)
    adversary = {k: v.copy() for k, v in model.adversary_grads().items()}
    model.loss_and_grads(x, y, eps_z=eps_z, eps_w=eps_w)  # backpropagates through the adversary into z
    vae = {k: v.copy() for k, v in model.vae_grads().items()}
    for k, v in model.adversary_grads().items():
        np.testing.assert_array_equal(v, adversary[k], err_msg=f"the encoder step changed {k}")
    model.adversary_loss_and_grads(x[:2], y[:2], eps_z=eps_z[:2])
    for k, v in model.vae_grads().items():
        np.testing.assert_array_equal(v, vae[k], err_msg=f"the adversary step changed {k}")
    # the entropy term does reach the encoder of z: it is not lost on the way
    entropy_only = tiny_csvae(np.random.default_rng(0), ONE_TERM["negative_entropy"], adversary_input=adversary_input)
    entropy_only.loss_and_grads(x, y, eps_z=eps_z, eps_w=eps_w)
    assert any(np.abs(g).max() > 0 for k, g in entropy_only.vae_grads().items() if k.startswith("encoder_z."))
    assert all(np.abs(g).max() == 0 for k, g in entropy_only.vae_grads().items() if not k.startswith("encoder_z."))


@given(seed=st.integers(0, 2**16), scale=st.floats(0.1, 30.0))
def test_negative_entropy_value_and_gradient(seed, scale):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((3, 2)) * scale
    neg_h, dlogits = negative_entropy(logits)
    p = 1.0 / (1.0 + np.exp(-logits))
    with np.errstate(divide="ignore", invalid="ignore"):
        direct = np.nan_to_num(p * np.log(p)) + np.nan_to_num((1 - p) * np.log1p(-p))
    np.testing.assert_allclose(neg_h, direct.sum(axis=1), atol=1e-9)
    numeric = numerical_gradient(lambda: float(negative_entropy(logits)[0].mean()), logits)
    np.testing.assert_allclose(dlogits, numeric, atol=1e-8)
    assert np.all(neg_h >= -2 * np.log(2) - 1e-12) and np.all(neg_h <= 0)  # -H of two Bernoullis: [-2 log 2, 0]


@given(seed=st.integers(0, 2**16))
def test_kl_diagonal_gaussians(seed):
    rng = np.random.default_rng(seed)
    mu, logvar = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    prior_mean, prior_logvar = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    kl, dmu, dlogvar = kl_diagonal_gaussians(mu, logvar, prior_mean, prior_logvar)
    for grad, wrt in ((dmu, mu), (dlogvar, logvar)):
        numeric = numerical_gradient(lambda: float(kl_diagonal_gaussians(mu, logvar, prior_mean, prior_logvar)[0]
                                                   .mean()), wrt)  # fmt: skip
        assert relative_error(grad, numeric) < TOL
    zeros = np.zeros_like(mu)
    standard = kl_diagonal_gaussians(mu, logvar, zeros, zeros)
    for ours, reference in zip(standard, kl_normal_standard(mu, logvar)):
        np.testing.assert_allclose(ours, reference, rtol=1e-12, atol=1e-12)
    assert np.all(kl >= 0)


def test_symmetrized_kl_of_known_fits():
    codes = np.array([[-1.0], [1.0]])  # mean 0, variance 2 (unbiased)
    for d in (0.0, 1.0, 4.0):  # equal variances s^2: the symmetrized KL is d^2 / (2 s^2) = d^2 / 4
        assert symmetrized_kl(codes, codes + d) == pytest.approx(d * d / 4, abs=1e-5)
    rng = np.random.default_rng(0)
    far = np.concatenate([rng.standard_normal((500, 2)), rng.standard_normal((500, 2)) + 5])
    labels = np.repeat([0, 1], 500)
    assert class_separation(far, labels) > 10 * class_separation(far, rng.permutation(labels))
    with pytest.raises(ValueError, match=r"symmetrized_kl: expected codes \(N >= 2, k\)"):
        symmetrized_kl(codes[:1], codes)


def test_bad_attributes_are_refused_with_their_shape():
    model = mlp_csvae(rng=np.random.default_rng(0), num_attributes=2)
    x = np.zeros((3, 3), np.float32)
    with pytest.raises(ValueError, match=r"CSVAE: expected attributes y as an integer array of shape \(3, 2\)"):
        model.loss_and_grads(x, np.zeros((3,), np.int64), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"CSVAE: attributes y must be 0 or 1, got values in \[0, 2\]"):
        model.adversary_loss_and_grads(x, np.array([[0, 1], [2, 0], [1, 1]]), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"CSVAE: betas must be five finite numbers >= 0"):
        mlp_csvae(rng=np.random.default_rng(0), betas=(1, 2, 3))
    with pytest.raises(ValueError, match=r"CSVAE: adversary_input must be one of \('sample', 'mean'\), got 'z'"):
        mlp_csvae(rng=np.random.default_rng(0), adversary_input="z")


def test_checkpoint_rebuilds_the_model_and_both_optimizers(tmp_path):
    rng = np.random.default_rng(0)
    model = build_vae("csvae", rng=rng, hidden=8, betas=(5, 1, 0.5, 2, 1), w_on_mean=2.0, adversary_input="mean")
    assert isinstance(model, CSVAE)
    optimizers = {"vae": Adam(model.vae_params(), lr=1e-3), "adversary": Adam(model.adversary_params(), lr=2e-3)}
    x, y = rng.standard_normal((6, 3)).astype(np.float32), rng.integers(0, 2, (6, 1))
    model.adversary_loss_and_grads(x, y, rng=rng)
    optimizers["adversary"].step(model.adversary_grads())
    model.loss_and_grads(x, y, rng=rng)
    optimizers["vae"].step(model.vae_grads())
    save_checkpoint(tmp_path, model, optimizers, epoch=1, rng=rng, config={})
    loaded = load_run(tmp_path)
    assert loaded.betas == (5, 1, 0.5, 2, 1) and loaded.w_on_mean == 2.0 and loaded.adversary_input == "mean"
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[k], v)
    fresh = {"vae": Adam(loaded.vae_params(), lr=1e-3), "adversary": Adam(loaded.adversary_params(), lr=2e-3)}
    load_checkpoint(tmp_path).restore(loaded, fresh)
    assert fresh["vae"].step_count == 1 and fresh["adversary"].step_count == 1

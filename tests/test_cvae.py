"""The conditional VAE: one-hot labels into the encoder and the decoder (tinyvae.layers.Condition)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyvae import Adam, conv_vae, mlp_vae
from tinyvae.checkpoint import load_checkpoint, load_run, save_checkpoint
from tinyvae.gradcheck import numerical_gradient, relative_error
from tinyvae.layers import Condition
from tinyvae.objectives import elbo, iwae_bound

TOL = 1e-6


@given(n=st.integers(1, 3), d=st.integers(1, 4), k=st.integers(2, 4), repeats=st.integers(1, 3),
       seed=st.integers(0, 2**16))  # fmt: skip
def test_condition_joins_the_one_hot_and_passes_back_only_dx(n, d, k, repeats, seed):
    rng = np.random.default_rng(seed)
    layer = Condition(k)
    labels = rng.integers(0, k, n)
    layer.set_labels(np.eye(k)[labels])
    x = rng.standard_normal((repeats * n, d))  # row i * n + m belongs to example m
    out = layer.forward(x)
    np.testing.assert_array_equal(out[:, :d], x)
    np.testing.assert_array_equal(out[:, d:], np.eye(k)[np.tile(labels, repeats)])
    G = rng.standard_normal(out.shape)
    dx = layer.backward(G)
    assert relative_error(dx, numerical_gradient(lambda: float(np.sum(layer.forward(x) * G)), x)) < TOL


def test_condition_refuses_missing_or_mismatched_labels():
    layer = Condition(3)
    with pytest.raises(RuntimeError, match=r"Condition\(num_classes=3\): no labels"):
        layer.forward(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"expected one-hot labels \(N, 3\), got \(2, 4\)"):
        layer.set_labels(np.zeros((2, 4)))
    layer.set_labels(np.eye(3)[[0, 1]])
    with pytest.raises(ValueError, match=r"3 rows for 2 labels; expected a multiple"):
        layer.forward(np.zeros((3, 4)))


def tiny_cvae(rng, likelihood="bernoulli"):
    model = mlp_vae(2, hidden=3, input_shape=(1, 2, 3), rng=rng, dtype=np.float64, likelihood=likelihood,
                    num_classes=3)  # fmt: skip
    for p in model.params.values():
        p[...] = rng.standard_normal(p.shape) * 0.7
    return model


def check_all(model, loss):
    analytic = {k: v.copy() for k, v in model.grads.items()}
    names = list(model.params)
    numeric = {name: numerical_gradient(loss, model.params[name]) for name in names}
    flat = [np.concatenate([d[name].ravel() for name in names]) for d in (analytic, numeric)]
    assert relative_error(*flat) < TOL


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@settings(max_examples=8)
@given(n=st.integers(1, 3), k=st.integers(1, 4), objective=st.sampled_from(["elbo", "iwae"]),
       seed=st.integers(0, 2**16))  # fmt: skip
def test_conditional_vae_gradients(backend, likelihood, n, k, objective, seed):
    rng = np.random.default_rng(seed)
    model = tiny_cvae(rng, likelihood)
    x = rng.random((n, 1, 2, 3))
    if likelihood == "bernoulli":
        x = (x < 0.5).astype(np.float64)
    y = rng.integers(0, 3, n)
    eps = rng.standard_normal((n, 2) if objective == "elbo" else (k, n, 2))

    def loss():
        return model.loss_and_grads(x, eps=eps, objective=objective, y=y)["loss"]

    loss()
    check_all(model, loss)


def test_the_label_changes_what_the_model_computes():
    rng = np.random.default_rng(0)
    model = tiny_cvae(rng)
    x = (rng.random((4, 1, 2, 3)) < 0.5).astype(np.float64)
    eps = rng.standard_normal((4, 2))
    losses = [model.loss_and_grads(x, eps=eps, y=np.full(4, c))["loss"] for c in range(3)]
    assert len(set(losses)) == 3
    same = [model.loss_and_grads(x, eps=eps, y=np.full(4, 1))["loss"] for _ in range(2)]
    assert same[0] == same[1] == losses[1]


def test_conv_cvae_samples_and_reconstructs_per_class(backend):
    rng = np.random.default_rng(0)
    model = conv_vae(2, rng=rng, num_classes=10)
    plain = conv_vae(2, rng=np.random.default_rng(0))
    extra = sum(p.size for p in model.params.values()) - sum(p.size for p in plain.params.values())
    assert extra == 10 * 2 * 2 + 10 * 32 * 7 * 7  # the one-hot's rows in the encoder's and the decoder's Dense
    y = np.arange(10)
    samples = model.sample(10, np.random.default_rng(1), y=y)
    assert samples.shape == (10, 1, 28, 28) and np.all((samples >= 0) & (samples <= 1))
    same_z = model.sample(10, np.random.default_rng(1), y=(y + 1) % 10)
    assert not np.allclose(samples, same_z)  # same z, other classes
    x = (rng.random((10, 1, 28, 28)) < 0.3).astype(np.float32)
    assert model.reconstruct(x, y=y).shape == x.shape
    terms = model.loss_and_grads(x, rng=rng, y=y, objective="iwae", k=3)
    assert np.isfinite(terms["loss"]) and all(np.isfinite(g).all() for g in model.grads.values())
    assert elbo(model, x, rng, y=y).shape == (10,) and iwae_bound(model, x, 4, rng, y=y).shape == (10,)


def test_labels_are_required_exactly_when_the_model_is_conditional():
    rng = np.random.default_rng(0)
    model, plain = tiny_cvae(rng), mlp_vae(2, hidden=3, input_shape=(1, 2, 3), rng=rng, dtype=np.float64)
    x = np.zeros((2, 1, 2, 3))
    with pytest.raises(ValueError, match=r"conditional model \(num_classes=3\) needs labels y, shape \(2,\)"):
        model.loss_and_grads(x, rng=rng)
    with pytest.raises(ValueError, match=r"VAE: labels must lie in \[0, 3\), got values in \[0, 3\]"):
        model.reconstruct(x, y=np.array([0, 3]))
    with pytest.raises(ValueError, match=r"VAE: expected labels as an integer array of shape \(2,\)"):
        model.sample(2, rng, y=np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"not conditional \(num_classes=None\)"):
        plain.loss_and_grads(x, rng=rng, y=np.array([0, 1]))
    with pytest.raises(ValueError, match=r"mlp_vae: num_classes must be an int >= 2, got 1"):
        mlp_vae(2, rng=rng, num_classes=1)


def test_a_conditional_checkpoint_records_num_classes_and_loads_back(tmp_path):
    rng = np.random.default_rng(0)
    model = conv_vae(3, rng=rng, num_classes=10)
    x, y = (rng.random((8, 1, 28, 28)) < 0.3).astype(np.float32), rng.integers(0, 10, 8)
    optimizer = Adam(model.params)
    model.loss_and_grads(x, rng=rng, y=y)
    optimizer.step(model.grads)
    save_checkpoint(tmp_path, model, optimizer, epoch=1, rng=rng)
    meta = load_checkpoint(tmp_path).meta
    assert meta["model"]["num_classes"] == 10 and meta["architecture"]["num_classes"] == 10
    loaded = load_run(tmp_path)
    assert loaded.num_classes == 10
    np.testing.assert_array_equal(loaded.reconstruct(x, y=y), model.reconstruct(x, y=y))
    with pytest.raises(ValueError, match="architecture differs"):
        load_checkpoint(tmp_path).restore(conv_vae(3, rng=rng))


def test_the_evaluation_functions_take_the_labels_batch_by_batch():
    from tinyvae.evaluate import latent_means, latent_statistics, mean_elbo, mean_iwae_bound

    rng = np.random.default_rng(0)
    model = tiny_cvae(rng)
    x, y = (rng.random((7, 1, 2, 3)) < 0.5).astype(np.float64), rng.integers(0, 3, 7)
    whole = float(elbo(model, x, np.random.default_rng(1), y=y).mean())
    assert mean_elbo(model, x, np.random.default_rng(1), batch_size=3, y=y) == pytest.approx(whole, rel=1e-12)
    bound = float(iwae_bound(model, x, 4, np.random.default_rng(1), y=y).mean())
    assert mean_iwae_bound(model, x, 4, np.random.default_rng(1), batch_size=7, y=y) == pytest.approx(bound)
    np.testing.assert_allclose(latent_means(model, x, batch_size=2, y=y), model.encode(x, y)[0], rtol=1e-12)
    assert latent_statistics(model, x, batch_size=2, y=y)["mu_variance"] == pytest.approx(
        model.encode(x, y)[0].var(axis=0).tolist(), rel=1e-12)  # fmt: skip
    with pytest.raises(ValueError, match="needs labels y"):
        mean_elbo(model, x, rng)

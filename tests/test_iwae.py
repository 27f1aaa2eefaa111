"""The importance-weighted objective: its value, its hand-written gradient, and the k = 1 case."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyvae import mlp_vae
from tinyvae.distributions import log_normal
from tinyvae.gradcheck import numerical_gradient, relative_error
from tinyvae.objectives import iwae_bound

TOL = 1e-6


def check_all(analytic, model, loss):
    """Every parameter's gradient against central differences, as one vector: relative to the largest
    entry of the whole gradient, so that a parameter with tiny gradients does not compare rounding noise."""
    names = list(model.params)
    numeric = {name: numerical_gradient(loss, model.params[name]) for name in names}
    flat = [np.concatenate([d[name].ravel() for name in names]) for d in (analytic, numeric)]
    assert relative_error(*flat) < TOL, max(names, key=lambda n: np.abs(analytic[n] - numeric[n]).max())


def tiny_model(rng, likelihood="bernoulli"):
    """An MLP VAE on 1x2x3 'images', latent 2, float64, with weights large enough to matter."""
    model = mlp_vae(2, hidden=3, input_shape=(1, 2, 3), rng=rng, dtype=np.float64, likelihood=likelihood)
    for p in model.params.values():
        p[...] = rng.standard_normal(p.shape) * 0.7
    return model


def data(rng, n, likelihood):
    x = rng.random((n, 1, 2, 3))
    return (x < 0.5).astype(np.float64) if likelihood == "bernoulli" else x


def mc_elbo_loss(model, x, eps):
    """-(log p(x | z) + log p(z) - log q(z | x)) for one sample per example, batch mean: forward only."""
    mu, logvar = model.encode(x)
    z = mu + np.exp(0.5 * logvar) * eps
    rec, _ = model.likelihood.nll(model.decode(z), x)
    return float(np.mean(rec + log_normal(z, mu, logvar) - log_normal(z, 0.0, 0.0)))


def naive_iwae_loss(model, x, eps, beta=1.0):
    """-log (1/k) sum_i w_i written directly (no shift, one decoder pass per sample): small log w only."""
    mu, logvar = model.encode(x)
    w = []
    for e in eps:
        z = mu + np.exp(0.5 * logvar) * e
        rec, _ = model.likelihood.nll(model.decode(z), x)
        w.append(np.exp(-rec + beta * (log_normal(z, 0.0, 0.0) - log_normal(z, mu, logvar))))
    return float(np.mean(-np.log(np.mean(w, axis=0))))


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@settings(max_examples=8)
@given(k=st.integers(1, 8), n=st.integers(1, 3), beta=st.sampled_from([1.0, 0.3]), seed=st.integers(0, 2**16))
def test_iwae_gradients_match_finite_differences(backend, likelihood, k, n, beta, seed):
    rng = np.random.default_rng(seed)
    model = tiny_model(rng, likelihood)
    x = data(rng, n, likelihood)
    eps = rng.standard_normal((k, n, 2))
    terms = model.loss_and_grads(x, eps=eps, beta=beta, objective="iwae")
    analytic = {name: g.copy() for name, g in model.grads.items()}
    assert terms["loss"] == pytest.approx(naive_iwae_loss(model, x, eps, beta), rel=1e-10)

    def loss():
        return model.loss_and_grads(x, eps=eps, beta=beta, objective="iwae")["loss"]

    check_all(analytic, model, loss)


@given(n=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_one_sample_iwae_is_the_elbo_with_a_monte_carlo_kl(backend, n, seed):
    rng = np.random.default_rng(seed)
    model = tiny_model(rng)
    x = data(rng, n, "bernoulli")
    eps = rng.standard_normal((1, n, 2))
    terms = model.loss_and_grads(x, eps=eps, objective="iwae")
    analytic = {name: g.copy() for name, g in model.grads.items()}
    assert terms["loss"] == pytest.approx(mc_elbo_loss(model, x, eps[0]), rel=1e-12)
    assert terms["loss"] == pytest.approx(terms["reconstruction"] + terms["kl"], rel=1e-12)
    assert terms["iwae_bound"] == pytest.approx(-terms["loss"], rel=1e-12)
    elbo_terms = model.loss_and_grads(x, eps=eps[0])  # the same reconstruction; the KL there is analytic
    assert terms["reconstruction"] == pytest.approx(elbo_terms["reconstruction"], rel=1e-12)
    check_all(analytic, model, lambda: mc_elbo_loss(model, x, eps[0]))


def test_k_copies_of_one_sample_give_the_one_sample_loss_even_where_exp_underflows(backend):
    """Equal weights: -log (1/k) sum w = -log w. With log w ~ -1e4, an unshifted exp would give log(0)."""
    rng = np.random.default_rng(0)
    model = tiny_model(rng)
    model.params["decoder.2.bias"][...] = 3000.0  # logits of +3000 on pixels that are mostly 0: nll ~ 1e4
    x = data(rng, 3, "bernoulli")
    eps = rng.standard_normal((1, 3, 2))
    one = model.loss_and_grads(x, eps=eps, objective="iwae")
    grads_one = {name: g.copy() for name, g in model.grads.items()}
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # no log(0), no inf - inf
        many = model.loss_and_grads(x, eps=np.repeat(eps, 6, axis=0), objective="iwae")
    assert one["loss"] > 1e3 and np.isfinite(many["loss"])
    assert many["loss"] == pytest.approx(one["loss"], rel=1e-12)
    for name, g in model.grads.items():
        np.testing.assert_allclose(g, grads_one[name], rtol=1e-9, atol=1e-12, err_msg=name)


def test_iwae_training_loss_is_the_evaluation_bound_on_the_same_draws():
    rng = np.random.default_rng(3)
    model = tiny_model(rng)
    x = data(rng, 4, "bernoulli")
    terms = model.loss_and_grads(x, rng=np.random.default_rng(7), objective="iwae", k=5)
    bound = iwae_bound(model, x, 5, np.random.default_rng(7))
    assert terms["iwae_bound"] == pytest.approx(float(bound.mean()), rel=1e-12)
    assert terms["loss"] == pytest.approx(-terms["iwae_bound"], rel=1e-12)


def test_more_samples_tighten_the_bound_on_average():
    rng = np.random.default_rng(1)
    model = tiny_model(rng)
    x = data(rng, 50, "bernoulli")
    bounds = {k: np.mean([model.loss_and_grads(x, rng=rng, objective="iwae", k=k)["iwae_bound"] for _ in range(20)])
              for k in (1, 10)}  # fmt: skip
    assert bounds[10] > bounds[1]


def test_float32_iwae_keeps_the_dtype_of_the_gradients():
    rng = np.random.default_rng(0)
    model = mlp_vae(2, hidden=4, input_shape=(1, 2, 3), rng=rng)
    x = data(rng, 3, "bernoulli").astype(np.float32)
    terms = model.loss_and_grads(x, rng=rng, objective="iwae", k=4)
    assert np.isfinite(terms["loss"]) and all(g.dtype == np.float32 for g in model.grads.values())


def test_bad_objective_k_and_eps_are_clear_errors():
    rng = np.random.default_rng(0)
    model = tiny_model(rng)
    x = data(rng, 2, "bernoulli")
    with pytest.raises(ValueError, match=r"objective must be one of \('elbo', 'iwae'\), got 'vimco'"):
        model.loss_and_grads(x, rng=rng, objective="vimco")
    with pytest.raises(ValueError, match=r"objective 'elbo' takes one sample per example; k=5"):
        model.loss_and_grads(x, rng=rng, k=5)
    with pytest.raises(ValueError, match=r"objective 'iwae' needs k"):
        model.loss_and_grads(x, rng=rng, objective="iwae")
    with pytest.raises(ValueError, match=r"negative_iwae: k must be an int >= 1, got 0"):
        model.loss_and_grads(x, rng=rng, objective="iwae", k=0)
    with pytest.raises(ValueError, match=r"expected eps of shape \(k=3, N, latent_dim\), got \(2, 2, 2\)"):
        model.loss_and_grads(x, eps=np.zeros((2, 2, 2)), objective="iwae", k=3)

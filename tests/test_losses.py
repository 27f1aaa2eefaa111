"""Values and invariants of the loss terms (their gradients are in test_gradients.py)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tinyvae import bernoulli_nll, gaussian_nll, kl_normal_standard

finite = st.floats(-5, 5, allow_nan=False)


@given(mu=arrays(np.float64, (3, 4), elements=finite), logvar=arrays(np.float64, (3, 4), elements=finite))
def test_kl_is_non_negative(backend, mu, logvar):
    kl, _, _ = kl_normal_standard(mu, logvar)
    assert kl.shape == (3,)
    assert np.all(kl >= -1e-12)


@given(mu=arrays(np.float64, (2, 3), elements=finite), logvar=arrays(np.float64, (2, 3), elements=finite))
def test_kl_is_zero_only_at_the_prior(backend, mu, logvar):
    kl, _, _ = kl_normal_standard(mu, logvar)
    at_prior = np.all((mu == 0) & (logvar == 0), axis=1)
    assert np.all(kl[at_prior] == 0)
    away = np.sum(mu**2 + logvar**2, axis=1) > 1e-6
    assert np.all(kl[away] > 0)


def test_kl_matches_the_closed_form_for_one_dimension(backend):
    mu, var = 0.5, 2.0
    kl, _, _ = kl_normal_standard(np.array([[mu]]), np.log(np.array([[var]])))
    np.testing.assert_allclose(kl, [0.5 * (var + mu**2 - 1 - np.log(var))])


def test_bernoulli_nll_matches_the_naive_formula_where_that_is_safe(backend):
    rng = np.random.default_rng(0)
    logits, x = rng.standard_normal((4, 1, 5)), (rng.random((4, 1, 5)) < 0.5).astype(np.float64)
    p = 1 / (1 + np.exp(-logits))
    naive = -np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=(1, 2))
    nll, dlogits = bernoulli_nll(logits, x)
    np.testing.assert_allclose(nll, naive, rtol=1e-12)
    np.testing.assert_allclose(dlogits, (p - x) / 4, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bernoulli_nll_is_stable_for_huge_logits(backend, dtype):
    logits = np.array([[-1000.0, -150.0, 150.0, 1000.0]], dtype)
    x = np.array([[0.0, 1.0, 0.0, 1.0]], dtype)
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # no overflow, no log(0), no NaN
        nll, dlogits = bernoulli_nll(logits, x)
    np.testing.assert_allclose(nll, [150.0 + 150.0], rtol=1e-6)
    np.testing.assert_allclose(dlogits, [[0.0, -1.0, 1.0, 0.0]], atol=1e-30)
    assert nll.dtype == dtype and dlogits.dtype == dtype


def test_gaussian_nll_matches_the_density():
    mean, x, sigma = np.array([[0.0, 1.0]]), np.array([[0.5, -1.0]]), 0.5
    nll, _ = gaussian_nll(mean, x, sigma)
    log_density = -0.5 * ((x - mean) / sigma) ** 2 - np.log(sigma * np.sqrt(2 * np.pi))
    np.testing.assert_allclose(nll, [-log_density.sum()])


def test_losses_refuse_mismatched_inputs():
    a = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"bernoulli_nll: logits has shape \(2, 3\) but x has shape \(2, 4\)"):
        bernoulli_nll(a, np.zeros((2, 4)))
    with pytest.raises(ValueError, match="bernoulli_nll: expected logits and x of one floating dtype"):
        bernoulli_nll(a, a.astype(np.float32))
    with pytest.raises(ValueError, match="kl_normal_standard"):
        kl_normal_standard(a, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="sigma must be > 0"):
        gaussian_nll(a, a, sigma=0.0)


@pytest.mark.parametrize("low, high", [(0.0, 255.0), (-0.5, 1.0)])
def test_bernoulli_nll_refuses_targets_outside_0_1(backend, low, high):
    x = np.array([[low, high]], np.float32)
    with pytest.raises(ValueError, match=r"bernoulli_nll: targets x must lie in \[0, 1\].*255.*Gaussian"):
        bernoulli_nll(np.zeros_like(x), x)


@pytest.mark.parametrize("latent, finite", [(2, True), (5, False)])
@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_kl_overflows_at_the_same_place_on_every_backend(backend, latent, finite):
    """mu = 0, logvar = 88 (float32): each exp(88) = 1.7e38 fits, their sum over 2 latents fits, over 5 not."""
    mu, logvar = np.zeros((3, latent), np.float32), np.full((3, latent), 88.0, np.float32)
    kl, _, _ = kl_normal_standard(mu, logvar)
    assert kl.dtype == np.float32 and bool(np.all(np.isfinite(kl))) is finite


def test_losses_refuse_an_empty_batch(backend):
    empty = np.zeros((0, 3))
    for loss in (bernoulli_nll, gaussian_nll, kl_normal_standard):
        with pytest.raises(ValueError, match=rf"{loss.__name__}: expected a batch of at least one example"):
            loss(empty, empty)

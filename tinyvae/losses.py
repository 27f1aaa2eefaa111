"""The terms of the negative ELBO, each with its analytic gradient.

Every function returns ``(per_example, grads...)``: the loss of each example summed over its
features (nats per image), shape (N,), and the gradient of the *batch mean* of that loss.
"""

import numpy as np

from .backend import kernels

LOG_2PI = float(np.log(2.0 * np.pi))


def _check_pair(name, a, b, a_name, b_name):
    if a.shape != b.shape:
        raise ValueError(f"{name}: {a_name} has shape {a.shape} but {b_name} has shape {b.shape}; they must match")
    if a.dtype != b.dtype or not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"{name}: expected {a_name} and {b_name} of one floating dtype, got {a.dtype} and {b.dtype}")


def kl_normal_standard(mu, logvar):
    """KL(N(mu, exp(logvar)) || N(0, I)) = -0.5 * sum(1 + logvar - mu^2 - exp(logvar)).

    Returns (kl (N,), dmu, dlogvar) with dmu = mu / N and dlogvar = 0.5 (exp(logvar) - 1) / N.
    """
    _check_pair("kl_normal_standard", mu, logvar, "mu", "logvar")
    if mu.ndim != 2:
        raise ValueError(f"kl_normal_standard: expected mu of shape (N, latent_dim), got {mu.shape}")
    return kernels().kl_divergence(mu, logvar)


def bernoulli_nll(logits, x):
    """-log Bernoulli(x | sigmoid(l)) = softplus(l) - x l, from logits, stable for any |l|.

    logits, x: (N, ...). Returns (nll (N,), dlogits like logits), dlogits = (sigmoid(l) - x) / N.
    """
    _check_pair("bernoulli_nll", logits, x, "logits", "x")
    return kernels().bernoulli_nll(logits, x)


def gaussian_nll(mean, x, sigma=1.0):
    """-log N(x | mean, sigma^2 I) with a fixed, configurable sigma.

    nll = sum((x - mean)^2) / (2 sigma^2) + D/2 log(2 pi sigma^2);
    returns (nll (N,), dmean) with dmean = (mean - x) / (sigma^2 N).
    """
    _check_pair("gaussian_nll", mean, x, "mean", "x")
    if not sigma > 0:
        raise ValueError(f"gaussian_nll: sigma must be > 0, got {sigma}")
    N = mean.shape[0]
    diff = (mean - x).reshape(N, -1)  # (N, D)
    D = diff.shape[1]
    nll = 0.5 * np.sum(diff * diff, axis=1) / sigma**2 + 0.5 * D * (LOG_2PI + 2.0 * np.log(sigma))
    dmean = diff.reshape(mean.shape) * (1.0 / (sigma**2 * N))
    return nll.astype(mean.dtype), dmean.astype(mean.dtype)


def log_normal(z, mu, logvar):
    """log N(z | mu, exp(logvar)) summed over the last axis: (..., L) -> (...) (the IWAE bound)."""
    return -0.5 * np.sum(LOG_2PI + logvar + (z - mu) ** 2 * np.exp(-logvar), axis=-1)

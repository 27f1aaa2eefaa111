"""Evaluate a trained VAE on a whole data set, in batches: ELBO, IWAE bound, latent codes, PCA.

    rng = np.random.default_rng(0)
    mean_elbo(model, test_x, rng)             # nats per image (higher is better)
    mean_iwae_bound(model, test_x, 100, rng)  # a tighter lower bound on log p(x)
"""

import numpy as np

from .module import check_int
from .objectives import elbo, iwae_bound


def _batches(x, batch_size):
    batch_size = check_int(batch_size, "batch_size", "evaluate", 1)
    for start in range(0, x.shape[0], batch_size):
        yield x[start : start + batch_size]


def mean_elbo(model, x, rng, batch_size=500):
    """Mean over x (N, ...) of the one-sample ELBO per example (objectives.elbo), in nats."""
    return float(np.concatenate([elbo(model, b, rng) for b in _batches(x, batch_size)]).mean())


def mean_iwae_bound(model, x, k, rng, batch_size=250):
    """Mean over x (N, ...) of the k-sample importance-weighted bound on log p(x), in nats."""
    return float(np.concatenate([iwae_bound(model, b, k, rng) for b in _batches(x, batch_size)]).mean())


def latent_means(model, x, batch_size=500):
    """The posterior means mu(x), (N, latent_dim)."""
    return np.concatenate([model.encode(b)[0] for b in _batches(x, batch_size)])


def pca(z, n_components=2):
    """Project z (N, D) on its first principal components via SVD.

    Returns (projection (N, n_components), explained-variance ratio (n_components,)).
    The sign of each component is fixed so that its largest loading is positive.
    """
    centered = z - z.mean(axis=0)  # (N, D)
    _, s, vt = np.linalg.svd(centered, full_matrices=False)  # vt (min(N, D), D)
    components = vt[:n_components]  # (n_components, D)
    signs = np.sign(components[np.arange(len(components)), np.abs(components).argmax(axis=1)])
    components = components * signs[:, None]
    variance = s**2
    return centered @ components.T, variance[:n_components] / variance.sum()

"""The probability in a VAE: the posterior q(z | x), the reparameterization, the likelihoods p(x | z).

* :class:`Reparameterize`: z = mu + exp(logvar / 2) * eps, eps ~ N(0, I) drawn outside the graph.
* :class:`DiagonalGaussian`: q(z | x) = N(mu, diag exp(logvar)) read from the encoder's
  output h = [mu | logvar]: split, sample (with any leading sample axes), KL to N(0, I), log q.
* :class:`Bernoulli`, :class:`Gaussian`: the likelihoods, ``nll(params, x)`` and ``mean(params)``.
* The functions underneath: :func:`kl_normal_standard`, :func:`bernoulli_nll`,
  :func:`gaussian_nll`, :func:`log_normal`.
* :func:`softmax_cross_entropy`: -log Categorical(y | softmax(logits)), a classifier's loss.
  (An attribute classifier's loss, one Bernoulli per attribute, is :func:`bernoulli_nll` of its logits.)

Every loss returns ``(per_example, grads...)``: the loss of each example summed over its
features (nats per image), shape (N,), and the gradient of the *batch mean* of that loss.
The formulas (and their gradients) are in the docstrings of :mod:`tinyvae.kernels_numpy`.
"""

import numpy as np

from .backend import kernels
from .layers import Split
from .module import check_batch

LOG_2PI = float(np.log(2.0 * np.pi))


def _check_matching(name, a, b, a_name, b_name):
    if a.shape != b.shape:
        raise ValueError(f"{name}: {a_name} has shape {a.shape} but {b_name} has shape {b.shape}; they must match")
    if a.dtype != b.dtype or not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"{name}: expected {a_name} and {b_name} of one floating dtype, got {a.dtype} and {b.dtype}")
    check_batch(a, name)


# --------------------------------------------------------------------------------------
# The reparameterization trick
# --------------------------------------------------------------------------------------


class Reparameterize:
    """z = mu + exp(0.5 * logvar) * eps, eps ~ N(0, I) drawn once per forward and cached.

    Sampling z ~ N(mu, sigma^2) directly gives no derivative with respect to mu or sigma.
    Writing the same sample as z = mu + sigma * eps with eps drawn *outside* the graph makes
    z a plain differentiable function of (mu, logvar), with eps a constant.

    mu, logvar: (N, L). eps and z: (N, L), or (S..., N, L) for several samples per example
    (e.g. (k, N, L) for an importance-weighted bound); the backward then sums over S...
    """

    def __repr__(self):
        return "Reparameterize()"

    def forward(self, mu, logvar, rng=None, eps=None, sample_shape=()):
        """Draw eps (``sample_shape + mu.shape``) from ``rng``, or use the given ``eps``; return z."""
        if mu.shape != logvar.shape or mu.ndim != 2:
            raise ValueError(
                f"Reparameterize: expected mu and logvar of one shape (N, latent_dim), got {mu.shape} and {logvar.shape}"
            )
        if mu.dtype != logvar.dtype:
            raise ValueError(f"Reparameterize: mu is {mu.dtype} but logvar is {logvar.dtype}")
        check_batch(mu, "Reparameterize")
        if eps is None:
            if rng is None:
                raise ValueError("Reparameterize: pass an explicit numpy.random.Generator (rng=) or a fixed eps=")
            eps = rng.standard_normal(tuple(sample_shape) + mu.shape, dtype=mu.dtype)
        elif eps.shape[eps.ndim - 2 :] != mu.shape or eps.dtype != mu.dtype:
            raise ValueError(
                f"Reparameterize: expected eps of shape (..., {mu.shape[0]}, {mu.shape[1]}) and dtype {mu.dtype}, "
                f"got {eps.shape} {eps.dtype}"
            )
        self.logvar, self.eps = logvar, eps  # cached for backward
        L = mu.shape[1]
        # the kernels take (rows, L): one row per (sample, example), mu and logvar repeated per sample
        mu_rows, logvar_rows = (np.broadcast_to(a, eps.shape).reshape(-1, L) for a in (mu, logvar))
        return kernels().reparameterize(mu_rows, logvar_rows, eps.reshape(-1, L)).reshape(eps.shape)

    def backward(self, dz):
        """dz (S..., N, L) -> (dmu, dlogvar), each (N, L), summed over the sample axes S...

        The formulas: :func:`tinyvae.kernels_numpy.reparameterize_backward`. This is only the
        path through z: the KL adds its own gradient (:func:`tinyvae.objectives.negative_elbo`).
        """
        if not hasattr(self, "eps"):
            raise RuntimeError("Reparameterize: backward called before forward")
        if dz.shape != self.eps.shape:
            raise ValueError(f"Reparameterize: expected dz of shape {self.eps.shape}, got {dz.shape}")
        L = dz.shape[-1]
        logvar_rows = np.broadcast_to(self.logvar, dz.shape).reshape(-1, L)
        dmu, dlogvar = kernels().reparameterize_backward(dz.reshape(-1, L), logvar_rows, self.eps.reshape(-1, L))
        if dz.ndim == 2:
            return dmu, dlogvar
        return tuple(d.reshape(dz.shape).sum(axis=tuple(range(dz.ndim - 2))) for d in (dmu, dlogvar))


# --------------------------------------------------------------------------------------
# The posterior q(z | x) = N(mu, diag exp(logvar))
# --------------------------------------------------------------------------------------


def kl_normal_standard(mu, logvar):
    """KL(N(mu, exp(logvar)) || N(0, I)) per example, (N,), and its gradients (dmu, dlogvar).

    The formula: :func:`tinyvae.kernels_numpy.kl_divergence`.
    """
    _check_matching("kl_normal_standard", mu, logvar, "mu", "logvar")
    if mu.ndim != 2:
        raise ValueError(f"kl_normal_standard: expected mu of shape (N, latent_dim), got {mu.shape}")
    return kernels().kl_divergence(mu, logvar)


def log_normal(z, mu, logvar):
    """log N(z | mu, exp(logvar)) summed over the last axis: (..., L) -> (...) (the IWAE bound)."""
    return -0.5 * np.sum(LOG_2PI + logvar + (z - mu) ** 2 * np.exp(-logvar), axis=-1)


class DiagonalGaussian:
    """q(z | x) = N(mu, diag exp(logvar)), read from an encoder output h = [mu | logvar], (N, 2L)."""

    def __init__(self, latent_dim):
        self.latent_dim = int(latent_dim)
        self.splitter = Split(self.latent_dim, self.latent_dim)
        self.sampler = Reparameterize()

    def __repr__(self):
        return f"DiagonalGaussian(latent_dim={self.latent_dim})"

    def split(self, h):
        """h (N, 2L) -> (mu, logvar), each (N, L), views into h."""
        mu, logvar = self.splitter.forward(h)
        return mu, logvar

    def join(self, dmu, dlogvar):
        """The backward of :meth:`split`: (dmu, dlogvar) -> dh = [dmu | dlogvar], (N, 2L)."""
        return self.splitter.backward([dmu, dlogvar])

    def rsample(self, mu, logvar, rng=None, eps=None, sample_shape=()):
        """z = mu + exp(logvar / 2) eps: (N, L), or (*sample_shape, N, L). See :class:`Reparameterize`."""
        return self.sampler.forward(mu, logvar, rng=rng, eps=eps, sample_shape=sample_shape)

    def rsample_backward(self, dz):
        """dz like z -> (dmu, dlogvar), each (N, L): the path through the last :meth:`rsample`."""
        return self.sampler.backward(dz)

    def kl(self, mu, logvar):
        """KL(q || N(0, I)) per example, (N,), with the gradients of its batch mean (dmu, dlogvar)."""
        return kl_normal_standard(mu, logvar)

    def log_prob(self, z, mu, logvar):
        """log q(z | x) in float64, summed over the latent axis: z (..., N, L) -> (..., N)."""
        return log_normal(z.astype(np.float64), mu.astype(np.float64), logvar.astype(np.float64))


# --------------------------------------------------------------------------------------
# The likelihoods p(x | z), from the decoder's output
# --------------------------------------------------------------------------------------


def bernoulli_nll(logits, x):
    """-log Bernoulli(x | sigmoid(l)) per example, (N,), and dlogits (like logits), stable for any |l|.

    x must lie in [0, 1] (binary pixels, or gray levels read as probabilities). The formula:
    :func:`tinyvae.kernels_numpy.bernoulli_nll`.
    """
    _check_matching("bernoulli_nll", logits, x, "logits", "x")
    low, high = float(x.min()), float(x.max())
    if low < 0.0 or high > 1.0:  # NaN passes: it reaches the loss, where training stops on it
        raise ValueError(
            f"bernoulli_nll: targets x must lie in [0, 1], got values in [{low}, {high}]; divide 8-bit pixels by 255, "
            "or use the Gaussian likelihood (likelihood='gaussian') for unbounded data"
        )
    return kernels().bernoulli_nll(logits, x)


def gaussian_nll(mean, x, sigma=1.0):
    """-log N(x | mean, sigma^2 I) with a fixed, configurable sigma.

    nll = sum((x - mean)^2) / (2 sigma^2) + D/2 log(2 pi sigma^2);
    returns (nll (N,), dmean) with dmean = (mean - x) / (sigma^2 N).
    """
    _check_matching("gaussian_nll", mean, x, "mean", "x")
    if not sigma > 0:
        raise ValueError(f"gaussian_nll: sigma must be > 0, got {sigma}")
    N = mean.shape[0]
    diff = (mean - x).reshape(N, -1)  # (N, D)
    D = diff.shape[1]
    nll = 0.5 * np.sum(diff * diff, axis=1) / sigma**2 + 0.5 * D * (LOG_2PI + 2.0 * np.log(sigma))
    dmean = diff.reshape(mean.shape) * (1.0 / (sigma**2 * N))
    return nll.astype(mean.dtype), dmean.astype(mean.dtype)


class Bernoulli:
    """p(x | z) = Bernoulli(sigmoid(logits)) per pixel; the decoder outputs logits."""

    name = "bernoulli"

    def __repr__(self):
        return "Bernoulli()"

    def config(self):
        return {"likelihood": self.name}

    def nll(self, logits, x):
        """-log p(x | z) per example, (N,), and the gradient of its batch mean w.r.t. the logits."""
        return bernoulli_nll(logits, x)

    def mean(self, logits):
        """E[x | z] = sigmoid(logits), computed without overflow."""
        return 0.5 * (1.0 + np.tanh(0.5 * logits))


class Gaussian:
    """p(x | z) = N(mean, sigma^2 I) with a fixed sigma; the decoder outputs the mean."""

    name = "gaussian"

    def __init__(self, sigma=1.0):
        if not sigma > 0:
            raise ValueError(f"Gaussian: sigma must be > 0, got {sigma!r}")
        self.sigma = float(sigma)

    def __repr__(self):
        return f"Gaussian(sigma={self.sigma})"

    def config(self):
        return {"likelihood": self.name, "sigma": self.sigma}

    def nll(self, mean, x):
        """-log p(x | z) per example, (N,), and the gradient of its batch mean w.r.t. the mean."""
        return gaussian_nll(mean, x, self.sigma)

    def mean(self, mean):
        """E[x | z]: the decoder's output itself."""
        return mean


LIKELIHOODS = {"bernoulli": Bernoulli, "gaussian": Gaussian}


# --------------------------------------------------------------------------------------
# The categorical likelihood p(y | x) = softmax(logits)_y: a classifier's loss
# --------------------------------------------------------------------------------------


def check_labels(labels, n, num_classes, where):
    """``labels`` as an (n,) int64 array of classes in [0, num_classes); a clear error otherwise."""
    if not isinstance(labels, np.ndarray) or labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"{where}: expected labels as an integer array of shape ({n},), got "
            f"{getattr(labels, 'dtype', type(labels).__name__)} {getattr(labels, 'shape', '')}"
        )
    if n and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"{where}: labels must lie in [0, {num_classes}), got values in [{labels.min()}, {labels.max()}]"
        )
    return labels.astype(np.int64)


def check_attributes(attributes, n, num_attributes, where):
    """``attributes`` (n, num_attributes) of 0/1 (integers, booleans or floats) as uint8; a clear error otherwise."""
    shape = getattr(attributes, "shape", None)
    if not isinstance(attributes, np.ndarray) or shape != (n, num_attributes):
        raise ValueError(f"{where}: expected attributes as an array of shape ({n}, {num_attributes}) (one 0/1 column "
                         f"per attribute), got {getattr(attributes, 'dtype', type(attributes).__name__)} "
                         f"{shape if shape is not None else ''}")  # fmt: skip
    numeric = np.issubdtype(attributes.dtype, np.number) or attributes.dtype == bool
    if not numeric or not np.isin(attributes, (0, 1)).all():
        raise ValueError(f"{where}: attributes must be 0 or 1, got values {np.unique(attributes)[:5].tolist()}")
    return attributes.astype(np.uint8)


def softmax_cross_entropy(logits, labels):
    """-log softmax(logits)_y per example, (N,), and the gradient of its batch mean, like logits.

    logits (N, C) of one floating dtype; labels (N,) integers in [0, C). With p = softmax(l),
    p_c = exp(l_c) / sum_j exp(l_j):

        loss_n = -log p_{y_n} = logsumexp(l_n) - l_{n, y_n},
        d loss_n / d l_{n,c} = p_{n,c} - [c = y_n]   (softmax - onehot), divided by N for the mean.

    Computed stably: logsumexp(l) = m + log sum_j exp(l_j - m) with m = max_j l_j, so no exp
    overflows and the largest term is exp(0) = 1 (no log(0)); p = exp(l - logsumexp(l)).
    """
    if not isinstance(logits, np.ndarray) or logits.ndim != 2 or not np.issubdtype(logits.dtype, np.floating):
        raise ValueError(
            f"softmax_cross_entropy: expected floating logits of shape (N, num_classes), got "
            f"{getattr(logits, 'dtype', type(logits).__name__)} {getattr(logits, 'shape', '')}"
        )
    check_batch(logits, "softmax_cross_entropy")
    N, C = logits.shape
    labels = check_labels(labels, N, C, "softmax_cross_entropy")
    shifted = logits - logits.max(axis=1, keepdims=True)  # (N, C), each row's largest entry is 0
    log_sum = np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))  # (N, 1), in [0, log C]
    log_p = shifted - log_sum  # (N, C): log softmax
    rows = np.arange(N)
    loss = -log_p[rows, labels]  # (N,)
    dlogits = np.exp(log_p)  # (N, C): softmax
    dlogits[rows, labels] -= 1.0
    return loss, dlogits * (1.0 / N)

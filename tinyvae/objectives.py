"""What a VAE is trained and evaluated on: the ELBO and the importance-weighted bound.

    loss = E_q[-log p(x | z)] + beta * KL(q(z | x) || N(0, I)),   z = mu + sigma * eps
    log p(x) >= log (1/k) sum_i p(x | z_i) p(z_i) / q(z_i | x),   z_i ~ q(z | x)   (IWAE)

Training minimizes one of OBJECTIVES: :func:`negative_elbo` ("elbo") or :func:`negative_iwae`
("iwae", k samples per example); :func:`elbo` and :func:`iwae_bound` only evaluate.

``model`` is any object with ``encoder`` and ``decoder`` (modules with forward/backward),
``posterior`` (:class:`tinyvae.distributions.DiagonalGaussian`) and ``likelihood``
(:class:`tinyvae.distributions.Bernoulli` or ``Gaussian``): :class:`tinyvae.model.VAE`.
"""

import numpy as np

from .distributions import log_normal
from .module import check_int


def negative_elbo(model, x, rng=None, eps=None, beta=1.0):
    """Forward and backward pass of the negative ELBO for one batch; fills the modules' grads.

    Returns the batch means of the terms, in nats per example: {"loss": the minimized
    reconstruction + beta * kl, "reconstruction": ..., "kl": ...}.
    Give ``rng`` to draw eps ~ N(0, I), or a fixed ``eps`` (N, latent_dim).
    """
    # Forward: x -> h -> (mu, logvar) -> z -> decoded, then the two loss terms.
    h = model.encoder.forward(x)  # (N, 2L)
    mu, logvar = model.posterior.split(h)  # (N, L) each: h = [mu | logvar]
    z = model.posterior.rsample(mu, logvar, rng=rng, eps=eps)  # (N, L)
    decoded = model.decoder.forward(z)  # (N, *input_shape)
    rec, ddecoded = model.likelihood.nll(decoded, x)  # (N,), like decoded: e.g. (sigmoid(l) - x) / N
    kl, dmu_kl, dlogvar_kl = model.posterior.kl(mu, logvar)  # (N,), and the KL path into mu, logvar

    # Backward: the same path in reverse. The KL adds a second path into mu and logvar.
    dz = model.decoder.backward(ddecoded)  # (N, L)
    dmu, dlogvar = model.posterior.rsample_backward(dz)  # the path through z = mu + exp(logvar / 2) eps
    dh = model.posterior.join(dmu + beta * dmu_kl, dlogvar + beta * dlogvar_kl)  # (N, 2L): z path + beta * KL path
    model.encoder.backward(dh, input_grad=False)  # fills the encoder's grads; dx (of the data) is not computed

    # batch means in float64, so that every backend overflows (or not) at the same place
    rec_mean, kl_mean = float(np.mean(rec, dtype=np.float64)), float(np.mean(kl, dtype=np.float64))
    return {"loss": rec_mean + beta * kl_mean, "reconstruction": rec_mean, "kl": kl_mean}


def elbo(model, x, rng, y=None):
    """One-sample ELBO per example, log p(x) >= E_q[log p(x | z)] - KL, shape (N,), float64 (y: a conditional
    model's labels, (N,))."""
    mu, logvar = model.encode(x, y)
    z = model.posterior.rsample(mu, logvar, rng=rng)  # (N, L)
    rec, _ = model.likelihood.nll(model.decode(z, y), x)
    kl, _, _ = model.posterior.kl(mu, logvar)
    return -(rec.astype(np.float64) + kl)


def iwae_bound(model, x, k, rng, y=None):
    """Importance-weighted bound on log p(x) with k samples per example, shape (N,), float64.

    log w_i = log p(x | z_i) + log p(z_i) - log q(z_i | x); the bound is log mean_i w_i,
    computed with a max-shifted log-sum-exp. It tightens towards log p(x) as k grows.
    y: a conditional model's labels (N,): the bound is then on log p(x | y).
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"iwae_bound: k must be an int >= 1, got {k!r}")
    mu, logvar = model.encode(x, y)  # (N, L) each
    z = model.posterior.rsample(mu, logvar, rng=rng, sample_shape=(int(k),))  # (k, N, L)
    log_w = np.empty((int(k), x.shape[0]))  # (k, N)
    for i in range(int(k)):  # one decoder pass per sample keeps memory at one batch
        rec, _ = model.likelihood.nll(model.decode(z[i], y), x)
        log_w[i] = -rec
    zeros = np.zeros_like(mu)
    log_w += model.posterior.log_prob(z, zeros, zeros) - model.posterior.log_prob(z, mu, logvar)  # log p(z) - log q(z)
    return _log_mean_exp(log_w)


def negative_iwae(model, x, k, rng=None, eps=None, beta=1.0):
    """Forward and backward pass of the negative k-sample importance-weighted bound; fills the grads.

    With z_i = mu + sigma * eps_i (i = 1..k, per example) and

        log w_i = log p(x | z_i) + beta * (log p(z_i) - log q(z_i | x)),
        loss    = -log (1/k) sum_i w_i = -(logsumexp_i log w_i - log k)     (mean over the batch)

    (beta = 1: the IWAE bound of Burda et al.; k = 1: the ELBO with a Monte-Carlo KL). The
    gradient of a log-sum-exp is a softmax, so with the normalized weights

        w~_i = w_i / sum_j w_j = softmax_i(log w),     d loss / d log w_i = -w~_i     (/ N for the mean)

    and every parameter theta gets d loss / d theta = -sum_i w~_i * d log w_i / d theta: each
    sample's gradient, weighted by how much that sample explains x. Through the three terms:

    * log p(x | z_i) = -nll(decoded_i, x): the likelihood's gradient of row i, times w~_i
      (the decoder runs once on all k * N rows; its parameters sum the rows' gradients).
    * log p(z_i) = -1/2 sum(log 2 pi + z_i^2): d/dz_i = -z_i, then into mu and logvar through
      z_i = mu + exp(logvar / 2) eps_i (the reparameterization's backward, summed over i).
    * log q(z_i | x) = -1/2 sum(log 2 pi + logvar + (z_i - mu)^2 / sigma^2). It depends on mu
      and logvar directly *and* through z_i; with eps_i fixed, (z_i - mu) / sigma = eps_i, so
      log q(z_i | x) = -1/2 sum(log 2 pi + logvar + eps_i^2): the two paths into mu cancel,
      d log q / d mu = 0, and only d log q / d logvar = -1/2 (per dimension) is left. Summed
      over i with the weights (sum_i w~_i = 1): d loss / d logvar gets -beta / 2 (/ N).

    The weights are computed stably: log w is shifted by its maximum over i before exp, in
    float64. Returns the batch means, in nats per example: {"loss", "iwae_bound" (log (1/k)
    sum_i w_i at beta = 1, a lower bound on log p(x)), "reconstruction" (the mean over the
    k samples of -log p(x | z_i)), "kl" (the Monte-Carlo KL, mean over i of log q - log p(z))}.
    Give ``rng`` to draw eps (k, N, L) ~ N(0, I), or a fixed ``eps`` of that shape.
    """
    k = check_int(k, "k", "negative_iwae", 1)
    if eps is not None and (eps.ndim != 3 or eps.shape[0] != k):
        raise ValueError(f"negative_iwae: expected eps of shape (k={k}, N, latent_dim), got {eps.shape}")
    N = x.shape[0]
    # Forward: x -> h -> (mu, logvar) -> k samples z_i -> one decoder pass over all k * N rows.
    h = model.encoder.forward(x)  # (N, 2L)
    mu, logvar = model.posterior.split(h)  # (N, L) each
    z = model.posterior.rsample(mu, logvar, rng=rng, eps=eps, sample_shape=(k,))  # (k, N, L)
    L = z.shape[-1]
    decoded = model.decoder.forward(z.reshape(k * N, L))  # (k * N, *input_shape): row i * N + n is z_i of x_n
    x_rows = np.broadcast_to(x, (k, *x.shape)).reshape(k * N, *x.shape[1:])  # x repeated once per sample
    rec, ddecoded = model.likelihood.nll(decoded, x_rows)  # (k * N,), the gradient of mean(rec) over k * N rows
    log_px_z = -rec.astype(np.float64).reshape(k, N)  # (k, N)
    z64 = z.astype(np.float64)
    log_pz = log_normal(z64, 0.0, 0.0)  # (k, N): log N(z_i | 0, I)
    log_qz = log_normal(z64, mu.astype(np.float64), logvar.astype(np.float64))  # (k, N)
    log_w = log_px_z + beta * (log_pz - log_qz)  # (k, N)
    top = log_w.max(axis=0)  # (N,): the shift that keeps exp from overflowing
    unnormalized = np.exp(log_w - top)  # (k, N), the largest is 1
    weights = unnormalized / unnormalized.sum(axis=0)  # (k, N): softmax over the k samples
    loss = -(top + np.log(unnormalized.mean(axis=0)))  # (N,)

    # Backward: d loss_mean / d log w_i = -w~_i / N.
    g = -weights / N  # (k, N)
    row_scale = (-g * (k * N)).reshape(k * N, *[1] * (decoded.ndim - 1))  # undo nll's 1/(kN) mean: w~_i / N per row
    dz = model.decoder.backward(ddecoded * row_scale.astype(ddecoded.dtype)).reshape(k, N, L)  # log p(x | z_i) path
    dz += (beta * g[..., None] * -z64).astype(dz.dtype)  # log p(z_i) path: d/dz_i = -z_i
    dmu, dlogvar = model.posterior.rsample_backward(dz)  # (N, L) each, summed over the k samples
    dlogvar += (beta * 0.5 * g.sum(axis=0))[:, None].astype(dlogvar.dtype)  # -log q: +1/2 per dim, times sum_i g_i
    model.encoder.backward(model.posterior.join(dmu, dlogvar), input_grad=False)

    bound = -loss if beta == 1.0 else _log_mean_exp(log_px_z + log_pz - log_qz)  # (N,)
    return {
        "loss": float(loss.mean()),
        "iwae_bound": float(bound.mean()),
        "reconstruction": float(-log_px_z.mean()),
        "kl": float((log_qz - log_pz).mean()),
    }


def _log_mean_exp(log_w):
    """log (1/k) sum_i exp(log_w_i) over axis 0, max-shifted: (k, N) -> (N,)."""
    top = log_w.max(axis=0)
    return top + np.log(np.mean(np.exp(log_w - top), axis=0))


OBJECTIVES = {"elbo": negative_elbo, "iwae": negative_iwae}

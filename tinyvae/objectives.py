"""What a VAE is trained and evaluated on: the ELBO and the importance-weighted bound.

    loss = E_q[-log p(x | z)] + beta * KL(q(z | x) || N(0, I)),   z = mu + sigma * eps
    log p(x) >= log (1/k) sum_i p(x | z_i) p(z_i) / q(z_i | x),   z_i ~ q(z | x)   (IWAE)

``model`` is any object with ``encoder`` and ``decoder`` (modules with forward/backward),
``posterior`` (:class:`tinyvae.distributions.DiagonalGaussian`) and ``likelihood``
(:class:`tinyvae.distributions.Bernoulli` or ``Gaussian``): :class:`tinyvae.model.VAE`.
"""

import numpy as np


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
    model.encoder.backward(dh)  # fills the encoder's grads (dx is not needed)

    # batch means in float64, so that every backend overflows (or not) at the same place
    rec_mean, kl_mean = float(np.mean(rec, dtype=np.float64)), float(np.mean(kl, dtype=np.float64))
    return {"loss": rec_mean + beta * kl_mean, "reconstruction": rec_mean, "kl": kl_mean}


def elbo(model, x, rng):
    """One-sample ELBO per example, log p(x) >= E_q[log p(x | z)] - KL, shape (N,), float64."""
    mu, logvar = model.encode(x)
    z = model.posterior.rsample(mu, logvar, rng=rng)  # (N, L)
    rec, _ = model.likelihood.nll(model.decode(z), x)
    kl, _, _ = model.posterior.kl(mu, logvar)
    return -(rec.astype(np.float64) + kl)


def iwae_bound(model, x, k, rng):
    """Importance-weighted bound on log p(x) with k samples per example, shape (N,), float64.

    log w_i = log p(x | z_i) + log p(z_i) - log q(z_i | x); the bound is log mean_i w_i,
    computed with a max-shifted log-sum-exp. It tightens towards log p(x) as k grows.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"iwae_bound: k must be an int >= 1, got {k!r}")
    mu, logvar = model.encode(x)  # (N, L) each
    z = model.posterior.rsample(mu, logvar, rng=rng, sample_shape=(int(k),))  # (k, N, L)
    log_w = np.empty((int(k), x.shape[0]))  # (k, N)
    for i in range(int(k)):  # one decoder pass per sample keeps memory at one batch
        rec, _ = model.likelihood.nll(model.decode(z[i]), x)
        log_w[i] = -rec
    zeros = np.zeros_like(mu)
    log_w += model.posterior.log_prob(z, zeros, zeros) - model.posterior.log_prob(z, mu, logvar)  # log p(z) - log q(z)
    top = log_w.max(axis=0)
    return top + np.log(np.mean(np.exp(log_w - top), axis=0))

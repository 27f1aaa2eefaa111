"""The reparameterization trick: a random sample that gradients can flow through.

Sampling z ~ N(mu, sigma^2) directly gives no derivative with respect to mu or sigma.
Writing the same sample as z = mu + sigma * eps with eps ~ N(0, I) drawn *outside* the
graph makes z a plain differentiable function of (mu, logvar), with eps a constant.
"""

import numpy as np

from .backend import kernels


class Reparameterize:
    """z = mu + exp(0.5 * logvar) * eps, eps ~ N(0, I) drawn once per forward and cached."""

    def __repr__(self):
        return "Reparameterize()"

    def forward(self, mu, logvar, rng=None, eps=None):
        """Draw eps from ``rng`` (or use the given ``eps``, for tests and teaching); return z.

        mu, logvar, eps and z are all (N, latent_dim).
        """
        if mu.shape != logvar.shape or mu.ndim != 2:
            raise ValueError(f"Reparameterize: expected mu and logvar of one shape (N, latent_dim), got {mu.shape} and {logvar.shape}")
        if mu.dtype != logvar.dtype:
            raise ValueError(f"Reparameterize: mu is {mu.dtype} but logvar is {logvar.dtype}")
        if eps is None:
            if rng is None:
                raise ValueError("Reparameterize: pass an explicit numpy.random.Generator (rng=) or a fixed eps=")
            eps = rng.standard_normal(mu.shape, dtype=mu.dtype)
        elif eps.shape != mu.shape or eps.dtype != mu.dtype:
            raise ValueError(f"Reparameterize: expected eps of shape {mu.shape} and dtype {mu.dtype}, got {eps.shape} {eps.dtype}")
        self.logvar, self.eps = logvar, eps  # cached for backward
        return kernels().reparameterize(mu, logvar, eps)  # (N, latent_dim)

    def backward(self, dz):
        """dz (N, L) -> (dmu, dlogvar): dmu = dz;  dlogvar = dz * 0.5 * exp(0.5 * logvar) * eps.

        Both follow from z = mu + sigma eps, sigma = exp(logvar / 2), with eps held fixed.
        This is only the path through z: the KL adds its own gradient (VAE.loss_and_grads).
        """
        if not hasattr(self, "eps"):
            raise RuntimeError("Reparameterize: backward called before forward")
        if dz.shape != self.eps.shape:
            raise ValueError(f"Reparameterize: expected dz of shape {self.eps.shape}, got {dz.shape}")
        return kernels().reparameterize_backward(dz, self.logvar, self.eps)

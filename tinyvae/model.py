"""The VAE: encoder -> (mu, logvar) -> reparameterize -> decoder, with a hand-written backward.

The loss is the negative ELBO per image, averaged over the batch:

    loss = E_q[-log p(x | z)] + beta * KL(q(z | x) || N(0, I)),   z = mu + sigma * eps.

``loss_and_grads`` runs the forward pass and then walks the same path in reverse, so
every gradient below is the chain rule written out, with no autograd anywhere.
"""

import numpy as np

from .layers import Conv2D, ConvTranspose2D, Dense, Flatten, ReLU, Reshape, Sequential, Tanh
from .losses import bernoulli_nll, gaussian_nll, kl_normal_standard, log_normal
from .sampling import Reparameterize

LIKELIHOODS = ("bernoulli", "gaussian")


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class VAE:
    """A variational autoencoder from an encoder and a decoder ``Sequential``.

    The encoder maps x (N, *input_shape) to (N, 2 * latent_dim): the first half is mu, the
    second logvar. The decoder maps z (N, latent_dim) to (N, *input_shape): Bernoulli
    logits, or Gaussian means for ``likelihood="gaussian"`` (fixed ``sigma``).
    """

    def __init__(self, encoder, decoder, latent_dim, input_shape, likelihood="bernoulli", sigma=1.0, config=None):
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"VAE: likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
        self.encoder, self.decoder = encoder, decoder
        self.latent_dim = int(latent_dim)
        self.input_shape = tuple(int(s) for s in input_shape)
        self.likelihood, self.sigma = likelihood, float(sigma)
        self.sampler = Reparameterize()
        self._config = dict(config or {})
        self.params = {
            **{f"encoder.{k}": v for k, v in encoder.params.items()},
            **{f"decoder.{k}": v for k, v in decoder.params.items()},
        }
        self.grads = {}

    def config(self):
        """The preset and its arguments: ``build_vae(**model.config(), rng=rng)`` rebuilds the architecture."""
        return dict(self._config)

    @property
    def dtype(self):
        return next(iter(self.params.values())).dtype

    def __repr__(self):
        return f"VAE(latent_dim={self.latent_dim}, likelihood={self.likelihood!r},\n encoder={self.encoder!r},\n decoder={self.decoder!r})"

    def architecture(self):
        """A JSON-able description of the model, compared when a checkpoint is loaded."""
        return {
            "latent_dim": self.latent_dim,
            "input_shape": list(self.input_shape),
            "likelihood": self.likelihood,
            "sigma": self.sigma,
            "encoder": self.encoder.architecture(),
            "decoder": self.decoder.architecture(),
        }

    def _check_x(self, x):
        expected = f"(N, {', '.join(map(str, self.input_shape))}) {self.dtype}"
        if not isinstance(x, np.ndarray) or x.shape[1:] != self.input_shape or x.ndim != len(self.input_shape) + 1:
            raise ValueError(f"VAE: expected x of shape {expected}, got shape {getattr(x, 'shape', type(x))}")
        if x.dtype != self.dtype:
            raise ValueError(f"VAE: expected x of dtype {self.dtype} {expected}, got {x.dtype}")

    # -- pieces -----------------------------------------------------------------------------
    def encode(self, x):
        """q(z | x): returns (mu, logvar), each (N, latent_dim)."""
        self._check_x(x)
        h = self.encoder.forward(x)  # (N, 2 * latent_dim)
        if h.shape[1:] != (2 * self.latent_dim,):
            raise ValueError(f"VAE: the encoder must output (N, {2 * self.latent_dim}), got {h.shape}")
        return h[:, : self.latent_dim], h[:, self.latent_dim :]  # views into h: [mu | logvar]

    def decode(self, z):
        """p(x | z)'s parameters: logits (Bernoulli) or means (Gaussian), (N, *input_shape)."""
        return self.decoder.forward(z)

    def mean(self, decoded):
        """E[x | z] from the decoder's output: sigmoid(logits) or the Gaussian mean itself."""
        return _sigmoid(decoded) if self.likelihood == "bernoulli" else decoded

    def reconstruction_nll(self, decoded, x):
        """-log p(x | z) per example and its gradient w.r.t. the decoder's output (batch mean)."""
        if self.likelihood == "bernoulli":
            return bernoulli_nll(decoded, x)
        return gaussian_nll(decoded, x, self.sigma)

    def reconstruct(self, x):
        """Decode the posterior mean: E[x | z = mu(x)], (N, *input_shape)."""
        mu, _ = self.encode(x)
        return self.mean(self.decode(mu))

    def sample(self, n, rng):
        """Draw z ~ N(0, I) from ``rng`` and return E[x | z], (n, *input_shape)."""
        z = rng.standard_normal((n, self.latent_dim), dtype=self.dtype)
        return self.mean(self.decode(z))

    # -- training ---------------------------------------------------------------------------
    def loss_and_grads(self, x, rng=None, eps=None, beta=1.0):
        """Forward and backward pass for one batch; fills ``self.grads``.

        Returns the batch means of the terms, in nats per example: {"loss": the minimized
        reconstruction + beta * kl, "reconstruction": ..., "kl": ...}.

        Give ``rng`` to draw eps ~ N(0, I), or a fixed ``eps`` (N, latent_dim).
        """
        # Forward: x -> (mu, logvar) -> z -> decoded, then the two loss terms.
        mu, logvar = self.encode(x)  # (N, L) each
        z = self.sampler.forward(mu, logvar, rng=rng, eps=eps)  # (N, L)
        decoded = self.decode(z)  # (N, *input_shape)
        rec, ddecoded = self.reconstruction_nll(decoded, x)  # (N,), like decoded: e.g. (sigmoid(l) - x) / N
        kl, dmu_kl, dlogvar_kl = kl_normal_standard(mu, logvar)  # (N,), and the KL path into mu, logvar

        # Backward: the same path in reverse. The KL adds a second path into mu and logvar.
        dz = self.decoder.backward(ddecoded)  # undoes decode: (N, L)
        dmu, dlogvar = self.sampler.backward(dz)  # the path through z = mu + exp(logvar / 2) eps
        # z path + beta * KL path; concatenating undoes encode's split of h into [mu | logvar]
        dh = np.concatenate([dmu + beta * dmu_kl, dlogvar + beta * dlogvar_kl], axis=1)  # (N, 2L)
        self.encoder.backward(dh)  # undoes encode; fills encoder.grads (dx is not needed)

        self.grads = {
            **{f"encoder.{k}": v for k, v in self.encoder.grads.items()},
            **{f"decoder.{k}": v for k, v in self.decoder.grads.items()},
        }
        rec_mean, kl_mean = float(np.mean(rec)), float(np.mean(kl))
        return {"loss": rec_mean + beta * kl_mean, "reconstruction": rec_mean, "kl": kl_mean}

    # -- evaluation -------------------------------------------------------------------------
    def elbo(self, x, rng):
        """One-sample ELBO per example, log p(x) >= E_q[log p(x|z)] - KL, shape (N,)."""
        mu, logvar = self.encode(x)
        z = self.sampler.forward(mu, logvar, rng=rng)
        rec, _ = self.reconstruction_nll(self.decode(z), x)
        kl, _, _ = kl_normal_standard(mu, logvar)
        return -(rec.astype(np.float64) + kl)

    def iwae_bound(self, x, k, rng):
        """Importance-weighted bound on log p(x) with k samples per example, shape (N,).

        log p(x) >= log (1/k) sum_i p(x | z_i) p(z_i) / q(z_i | x),  z_i ~ q(z | x),
        computed with a max-shifted log-sum-exp; it tightens towards log p(x) as k grows.
        """
        if int(k) < 1:
            raise ValueError(f"VAE.iwae_bound: k must be >= 1, got {k}")
        mu, logvar = self.encode(x)
        mu64, logvar64 = mu.astype(np.float64), logvar.astype(np.float64)
        log_w = np.empty((int(k), x.shape[0]))  # (k, N)
        for i in range(int(k)):
            eps = rng.standard_normal(mu.shape, dtype=mu.dtype)
            z = self.sampler.forward(mu, logvar, eps=eps)  # (N, L)
            rec, _ = self.reconstruction_nll(self.decode(z), x)
            z64 = z.astype(np.float64)
            log_pz = log_normal(z64, 0.0, 0.0)
            log_qz = log_normal(z64, mu64, logvar64)
            log_w[i] = -rec + log_pz - log_qz
        top = log_w.max(axis=0)
        return top + np.log(np.mean(np.exp(log_w - top), axis=0))

    # -- parameters -------------------------------------------------------------------------
    def state_dict(self):
        """Copies of all parameters, keyed like ``params``."""
        return {k: v.copy() for k, v in self.params.items()}

    def load_state_dict(self, state):
        """Copy parameters in place; every key, shape and dtype must match."""
        missing, extra = set(self.params) - set(state), set(state) - set(self.params)
        if missing or extra:
            raise ValueError(f"VAE.load_state_dict: missing keys {sorted(missing)}, unexpected keys {sorted(extra)}")
        for k, v in state.items():
            if v.shape != self.params[k].shape or v.dtype != self.params[k].dtype:
                raise ValueError(
                    f"VAE.load_state_dict: {k} expected {self.params[k].shape} {self.params[k].dtype}, got {v.shape} {v.dtype}"
                )
        for k, v in state.items():
            self.params[k][...] = v


# --------------------------------------------------------------------------------------
# Presets
# --------------------------------------------------------------------------------------


def conv_vae(latent_dim=2, *, rng, dtype=np.float32, likelihood="bernoulli"):
    """The TensorFlow CVAE tutorial's architecture for 28x28 images (PyTorch-style padding).

    encoder: Conv 1->32 (3x3, s2) ReLU, Conv 32->64 (3x3, s2) ReLU, Flatten, Dense 2304 -> 2L
    decoder: Dense L -> 7*7*32 ReLU, Reshape, ConvT 32->64 (s2) ReLU, ConvT 64->32 (s2) ReLU, ConvT 32->1 (s1)
    """
    kw = dict(rng=rng, dtype=dtype)
    encoder = Sequential(
        Conv2D(1, 32, 3, stride=2, **kw), ReLU(),  # (N, 32, 13, 13)
        Conv2D(32, 64, 3, stride=2, **kw), ReLU(),  # (N, 64, 6, 6)
        Flatten(),  # (N, 2304)
        Dense(64 * 6 * 6, 2 * latent_dim, **kw),  # (N, 2L)
    )  # fmt: skip
    decoder = Sequential(
        Dense(latent_dim, 7 * 7 * 32, **kw), ReLU(),  # (N, 1568)
        Reshape(32, 7, 7),  # (N, 32, 7, 7)
        ConvTranspose2D(32, 64, 3, stride=2, padding=1, output_padding=1, **kw), ReLU(),  # (N, 64, 14, 14)
        ConvTranspose2D(64, 32, 3, stride=2, padding=1, output_padding=1, **kw), ReLU(),  # (N, 32, 28, 28)
        ConvTranspose2D(32, 1, 3, stride=1, padding=1, **kw),  # (N, 1, 28, 28) logits
    )  # fmt: skip
    config = {"preset": "conv", "latent_dim": latent_dim, "likelihood": likelihood, "dtype": np.dtype(dtype).name}
    return VAE(encoder, decoder, latent_dim, (1, 28, 28), likelihood=likelihood, config=config)


def mlp_vae(latent_dim=20, hidden=500, *, rng, dtype=np.float32, likelihood="bernoulli"):
    """Kingma & Welling's MLP VAE for 28x28 images: 784 - hidden - latent, tanh hidden units.

    encoder: Flatten, Dense 784 -> H, Tanh, Dense H -> 2L
    decoder: Dense L -> H, Tanh, Dense H -> 784, Reshape to (1, 28, 28)
    """
    kw = dict(rng=rng, dtype=dtype)
    encoder = Sequential(Flatten(), Dense(784, hidden, **kw), Tanh(), Dense(hidden, 2 * latent_dim, **kw))
    decoder = Sequential(Dense(latent_dim, hidden, **kw), Tanh(), Dense(hidden, 784, **kw), Reshape(1, 28, 28))
    config = {"preset": "mlp", "latent_dim": latent_dim, "hidden": hidden, "likelihood": likelihood,
              "dtype": np.dtype(dtype).name}
    return VAE(encoder, decoder, latent_dim, (1, 28, 28), likelihood=likelihood, config=config)


PRESETS = {"conv": conv_vae, "mlp": mlp_vae}


def build_vae(preset, *, rng, **kwargs):
    """Build a named preset (``"conv"`` or ``"mlp"``); keyword arguments go to its builder."""
    if preset not in PRESETS:
        raise ValueError(f"build_vae: unknown preset {preset!r}; expected one of {sorted(PRESETS)}")
    return PRESETS[preset](rng=rng, **kwargs)

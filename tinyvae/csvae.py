"""CSVAE: the Conditional Subspace VAE of Klys, Snell & Zemel, "Learning Latent Subspaces in Variational
Autoencoders" (NeurIPS 2018), every gradient by hand.

The latent space is split in two: H = Z x W_1 x ... x W_m. For each binary attribute y_i, the small
subspace W_i (w_dim dimensions, 2 in the paper) holds the attribute and its *styles*; Z holds
everything else and is trained, against an adversary, to hold no information about y.

    q(z | x)       = N(mu_z, diag exp(logvar_z))        encoder_z:  x -> [mu_z | logvar_z]
    q(w | x, y)    = N(mu_w, diag exp(logvar_w))        encoder_w:  [x | y] -> [mu_w | logvar_w]
    p(x | w, z)    the likelihood (Gaussian, fixed sigma, or Bernoulli)   decoder:  [z | w] -> x
    p(z)           = N(0, I)
    p(w_i | y_i=1) = N(w_on_mean * 1, w_on_std^2 I)    attribute on: away from the origin
    p(w_i | y_i=0) = N(0, w_off_std^2 I)               attribute off: a tight Gaussian at the origin
    q_delta(y | z) = sigmoid(adversary(z))              an MLP, one logit per attribute

The attributes y (N, m) in {0, 1} enter the encoder_w through :class:`tinyvae.layers.Condition`, as the
one-hot of each attribute side by side: (N, 2m) = [1 - y_1, y_1, ..., 1 - y_m, y_m].

Two objectives, two optimizers (the paper's M1 + M2 and N):

    encoder/decoder:  beta1 * E_q[-log p(x | w, z)] + beta2 * KL(q(w | x, y) || p(w | y))
                      + beta3 * KL(q(z | x) || p(z)) + beta4 * E_q[-H(q_delta(y | z))]
    adversary:        beta5 * E_q[BCE(y, q_delta(y | z))]

Minimizing the negative entropy of the adversary's prediction pushes q_delta(y | z) towards 1/2:
z is shaped so that the adversary cannot tell y from it. The adversary, trained on its own loss,
keeps looking. :meth:`CSVAE.loss_and_grads` fills the encoders' and decoder's grads only,
:meth:`CSVAE.adversary_loss_and_grads` the adversary's only; alternate them, one Adam each
(examples/csvae.py: one encoder/decoder step, then one adversary step, on every batch).

The entropy term's gradient. With one attribute's logit a and p = sigmoid(a):

    -H(p)         = p log p + (1 - p) log(1 - p)
    d(-H) / dp    = log p + 1 - log(1 - p) - 1 = log(p / (1 - p)) = a      (the logit is log-odds)
    dp / da       = p (1 - p)
    d(-H) / da    = a p (1 - p)

It is 0 at a = 0 (p = 1/2, the entropy's maximum) and flows back through the adversary's layers into
z, then through z = mu_z + exp(logvar_z / 2) eps into encoder_z. The adversary's parameters are *not*
changed by it: its layers' grads are saved before that backward pass and put back after it
(:func:`backward_keeping_grads`), so the encoder/decoder step leaves the adversary's grads exactly as
the last adversary step left them (tests/test_csvae.py checks this). -H is computed stably with
softplus: log p = -softplus(-a), log(1 - p) = -softplus(a).

What the adversary reads (``adversary_input``): "sample", z ~ q(z | x), as in the paper; or "mean", mu_z,
where the entropy's gradient enters mu_z directly (no path through eps). With samples, y can hide in mu_z
at a scale below the posterior's noise: on one swiss-roll seed of three the adversary, reading noisy
samples, reached 64% while a fresh classifier on mu_z found y 94% of the time; reading mu_z kept all three
seeds at chance (README, section CSVAE).

The adversary's loss, per attribute, is BCE = softplus(a) - y a = -log Bernoulli(y | sigmoid(a)), with
dBCE/da = p - y: :func:`tinyvae.distributions.bernoulli_nll`, reused.

The KL to the prior of w, for q = N(mu, diag s_q^2) and p = N(m, s^2 I), per dimension:

    KL = 1/2 (log s^2 - logvar + (exp(logvar) + (mu - m)^2) / s^2 - 1)
    dKL/dmu = (mu - m) / s^2,    dKL/dlogvar = 1/2 (exp(logvar) / s^2 - 1)

Every returned term is a batch mean in nats per example.

Builders: :func:`mlp_csvae` (vectors, the swiss roll; preset "csvae"), :func:`conv_csvae` (images in [0, 1], the
faces; preset "conv_csvae", cut from the faces preset's networks) and, for comparison, :func:`faces_cvae`, a
conditional faces VAE whose label is the attributes' joint class (preset "faces_cvae"). Attribute transfer:
:func:`transfer_w` puts another w into one attribute's subspace; :func:`judged_transfer` says how an attribute
classifier sees the result (examples/csvae.py --data faces, examples/csvae_table.py).
"""

import numpy as np

from .distributions import LIKELIHOODS, DiagonalGaussian, Gaussian, bernoulli_nll
from .evaluate import judged_edits
from .layers import Condition, Dense, Flatten, ReLU, Sequential, Tanh
from .model import VAE, Classifier, _modules
from .module import Module, check_dtype, check_input, check_int
from .optim import Adam

ADVERSARY_INPUTS = ("sample", "mean")  # what the adversary reads: z ~ q(z | x) (the paper), or its mean mu_z
BETAS = (20.0, 1.0, 0.2, 10.0, 1.0)  # (reconstruction, KL w, KL z, -entropy of q_delta(y | z), adversary's BCE)


def _softplus(a):
    """log(1 + exp(a)), without overflow."""
    return np.logaddexp(0.0, a)


def negative_entropy(logits):
    """-H(Bernoulli(sigmoid(a))) summed over the attributes, per example (N,), and the gradient of its batch
    mean with respect to the logits: a p (1 - p) / N (the derivation: the module's docstring)."""
    p = 0.5 * (1.0 + np.tanh(0.5 * logits))  # sigmoid, without overflow
    neg_h = -p * _softplus(-logits) - (1.0 - p) * _softplus(logits)  # p log p + (1 - p) log(1 - p)
    return neg_h.sum(axis=1), (logits * p * (1.0 - p) / logits.shape[0]).astype(logits.dtype)


def kl_diagonal_gaussians(mu, logvar, prior_mean, prior_logvar):
    """KL(N(mu, exp(logvar)) || N(prior_mean, exp(prior_logvar))) per example, (N,), and the gradients of its
    batch mean (dmu, dlogvar). The prior's mean and log-variance broadcast against mu (N, L)."""
    prior_var = np.exp(prior_logvar)
    diff = mu - prior_mean
    kl = 0.5 * (prior_logvar - logvar + (np.exp(logvar) + diff * diff) / prior_var - 1.0)
    N = mu.shape[0]
    dmu = diff / prior_var / N
    dlogvar = 0.5 * (np.exp(logvar) / prior_var - 1.0) / N
    return kl.sum(axis=1), dmu.astype(mu.dtype), dlogvar.astype(mu.dtype)


def backward_keeping_grads(module, dout):
    """``module.backward(dout)`` -> dx, with every grad of ``module`` (and below) left as it was before.

    For a gradient that must pass *through* a module without training it: the CSVAE's entropy term
    reaches the encoder through the adversary, whose own optimizer must not see it.
    """
    saved = [(m, {k: v.copy() for k, v in m._grads.items()}) for m in _modules(module)]
    dx = module.backward(dout)
    for m, grads in saved:
        m._grads = grads
    return dx


def check_attributes(y, n, m, where):
    """y as an (n, m) int64 array of 0 / 1; a clear error otherwise."""
    if not isinstance(y, np.ndarray) or y.shape != (n, m) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{where}: expected attributes y as an integer array of shape ({n}, {m}) with values 0 or 1, "
                         f"got {getattr(y, 'dtype', type(y).__name__)} {getattr(y, 'shape', '')}")  # fmt: skip
    if y.size and not np.all((y == 0) | (y == 1)):
        raise ValueError(f"{where}: attributes y must be 0 or 1, got values in [{y.min()}, {y.max()}]")
    return y.astype(np.int64)


class CSVAE(Module):
    """A CSVAE from its four networks (children ``encoder_z``, ``encoder_w``, ``decoder``, ``adversary``).

    encoder_z: x (N, *input_shape) -> (N, 2 z_dim) = [mu_z | logvar_z]
    encoder_w: x, with a Condition(2 m) layer joining the attributes -> (N, 2 m w_dim) = [mu_w | logvar_w]
    decoder:   [z | w] (N, z_dim + m w_dim) -> (N, *input_shape): Gaussian means or Bernoulli logits
    adversary: z (N, z_dim) -> (N, m) logits of q_delta(y_i = 1 | z)

    w is laid out attribute by attribute: w[:, i * w_dim : (i + 1) * w_dim] is W_i. ``betas`` are
    (beta1, ..., beta5) of the objectives (the module docstring); the priors of w are set by
    ``w_on_mean``, ``w_on_std`` (y_i = 1) and ``w_off_std`` (y_i = 0).
    """

    def __init__(self, encoder_z, encoder_w, decoder, adversary, *, z_dim, w_dim, num_attributes, input_shape,
                 likelihood="gaussian", sigma=1.0, betas=BETAS, w_on_mean=3.0, w_on_std=1.0, w_off_std=0.1,
                 adversary_input="sample", config=None):  # fmt: skip
        super().__init__()
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"CSVAE: likelihood must be one of {tuple(LIKELIHOODS)}, got {likelihood!r}")
        self.encoder_z, self.encoder_w, self.decoder, self.adversary = encoder_z, encoder_w, decoder, adversary
        self._children = {"encoder_z": encoder_z, "encoder_w": encoder_w, "decoder": decoder, "adversary": adversary}
        self.z_dim = check_int(z_dim, "z_dim", "CSVAE", 1)
        self.w_dim = check_int(w_dim, "w_dim", "CSVAE", 1)
        self.num_attributes = check_int(num_attributes, "num_attributes", "CSVAE", 1)
        self.input_shape = tuple(check_int(s, "input_shape", "CSVAE", 1) for s in input_shape)
        if len(betas) != 5 or not all(np.isfinite(b) and b >= 0 for b in betas):
            raise ValueError(f"CSVAE: betas must be five finite numbers >= 0 (beta1..beta5), got {betas!r}")
        self.betas = tuple(float(b) for b in betas)
        for name, value in (("w_on_std", w_on_std), ("w_off_std", w_off_std)):
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"CSVAE: {name} must be a finite number > 0, got {value!r}")
        self.w_on_mean, self.w_on_std, self.w_off_std = float(w_on_mean), float(w_on_std), float(w_off_std)
        if adversary_input not in ADVERSARY_INPUTS:
            raise ValueError(f"CSVAE: adversary_input must be one of {ADVERSARY_INPUTS}, got {adversary_input!r}")
        self.adversary_input = adversary_input
        self.posterior_z = DiagonalGaussian(self.z_dim)
        self.posterior_w = DiagonalGaussian(self.num_attributes * self.w_dim)
        self.likelihood = Gaussian(sigma) if likelihood == "gaussian" else LIKELIHOODS[likelihood]()
        self.sigma = float(sigma)
        self._config = dict(config or {})
        self._conditions = [m for m in _modules(encoder_w) if isinstance(m, Condition)]
        if [m.num_classes for m in self._conditions] != [2 * self.num_attributes]:
            raise ValueError(f"CSVAE: encoder_w must hold one Condition({2 * self.num_attributes}) layer (the one-hot "
                             f"of each of the {self.num_attributes} attributes), got "
                             f"{[m.num_classes for m in self._conditions]}")  # fmt: skip

    @property
    def latent_dim(self):
        """The size of the whole latent space H = Z x W_1 x ... x W_m."""
        return self.z_dim + self.num_attributes * self.w_dim

    def config(self):
        """The preset and its arguments: ``build_vae(**model.config(), rng=rng)`` rebuilds the model."""
        return dict(self._config)

    def architecture(self):
        """A JSON-able description of the model, compared when a checkpoint is loaded."""
        return {"z_dim": self.z_dim, "w_dim": self.w_dim, "num_attributes": self.num_attributes,
                "input_shape": list(self.input_shape), "likelihood": self.likelihood.name, "sigma": self.sigma,
                **{name: child.architecture() for name, child in self._children.items()}}  # fmt: skip

    def __repr__(self):
        return (f"CSVAE(z_dim={self.z_dim}, w_dim={self.w_dim}, num_attributes={self.num_attributes}, "
                f"betas={self.betas})")  # fmt: skip

    # -- the parameters of each optimizer ----------------------------------------------------------
    def vae_params(self):
        """The encoders' and the decoder's parameters: what the first optimizer updates."""
        return {k: v for k, v in self.params.items() if not k.startswith("adversary.")}

    def vae_grads(self):
        return {k: v for k, v in self.grads.items() if not k.startswith("adversary.")}

    def adversary_params(self):
        """The adversary's parameters: what the second optimizer updates."""
        return {k: v for k, v in self.params.items() if k.startswith("adversary.")}

    def adversary_grads(self):
        return {k: v for k, v in self.grads.items() if k.startswith("adversary.")}

    # -- the pieces ------------------------------------------------------------------------------
    def w_prior(self, y):
        """p(w | y): (mean, logvar), each (N, m w_dim), from the attributes y (N, m)."""
        on = np.repeat(y, self.w_dim, axis=1).astype(self.dtype)  # (N, m w_dim): y_i for each dimension of W_i
        mean = on * self.w_on_mean
        logvar = on * 2.0 * np.log(self.w_on_std) + (1.0 - on) * 2.0 * np.log(self.w_off_std)
        return mean, logvar.astype(self.dtype)

    def _condition(self, y, n):
        y = check_attributes(y, n, self.num_attributes, "CSVAE")
        onehot = np.stack([1 - y, y], axis=2).reshape(n, 2 * self.num_attributes).astype(self.dtype)  # (N, 2m)
        for layer in self._conditions:
            layer.set_labels(onehot)
        return y

    def encode_z(self, x):
        """q(z | x): (mu_z, logvar_z), each (N, z_dim)."""
        check_input(x, self.input_shape, self.dtype, "CSVAE")
        return self.posterior_z.split(self.encoder_z.forward(x))

    def encode_w(self, x, y):
        """q(w | x, y): (mu_w, logvar_w), each (N, m w_dim); y (N, m) in {0, 1}."""
        check_input(x, self.input_shape, self.dtype, "CSVAE")
        self._condition(y, x.shape[0])
        return self.posterior_w.split(self.encoder_w.forward(x))

    def decode(self, z, w):
        """p(x | w, z)'s parameters, (N, *input_shape), from z (N, z_dim) and w (N, m w_dim)."""
        return self.decoder.forward(np.concatenate([z, w], axis=1))

    def mean(self, decoded):
        """E[x | w, z] from the decoder's output."""
        return self.likelihood.mean(decoded)

    def reconstruct(self, x, y):
        """E[x | z = mu_z(x), w = mu_w(x, y)], (N, *input_shape)."""
        return self.mean(self.decode(self.encode_z(x)[0], self.encode_w(x, y)[0]))

    def adversary_probabilities(self, z):
        """q_delta(y_i = 1 | z), (N, m)."""
        return 0.5 * (1.0 + np.tanh(0.5 * self.adversary.forward(z)))

    # -- the objectives ----------------------------------------------------------------------------
    def loss_and_grads(self, x, y, rng=None, eps_z=None, eps_w=None):
        """Forward and backward pass of the encoder/decoder objective; fills their grads, not the adversary's.

        Returns {"loss", "reconstruction", "kl_w", "kl_z", "negative_entropy"}: the minimized weighted sum
        and each term (batch means). Give ``rng`` to draw eps, or fixed eps_z (N, z_dim), eps_w (N, m w_dim).
        """
        b1, b2, b3, b4, _ = self.betas
        # Forward: two posteriors, their samples, the decoder, the adversary on the same z (or on mu_z).
        mu_z, logvar_z = self.encode_z(x)  # (N, Z) each
        mu_w, logvar_w = self.encode_w(x, y)  # (N, mW) each
        z = self.posterior_z.rsample(mu_z, logvar_z, rng=rng, eps=eps_z)  # (N, Z)
        w = self.posterior_w.rsample(mu_w, logvar_w, rng=rng, eps=eps_w)  # (N, mW)
        decoded = self.decode(z, w)  # (N, *input_shape)
        rec, ddecoded = self.likelihood.nll(decoded, x)  # (N,), like decoded
        kl_z, dmu_z_kl, dlogvar_z_kl = self.posterior_z.kl(mu_z, logvar_z)  # to N(0, I)
        kl_w, dmu_w_kl, dlogvar_w_kl = kl_diagonal_gaussians(mu_w, logvar_w, *self.w_prior(y))  # to p(w | y)
        logits = self.adversary.forward(z if self.adversary_input == "sample" else mu_z)  # (N, m)
        neg_h, dlogits = negative_entropy(logits)  # (N,), (N, m): a p (1 - p) / N

        # Backward: the decoder splits its gradient between z and w; z also gets the entropy's path.
        dzw = self.decoder.backward(b1 * ddecoded)  # (N, Z + mW)
        dz, dw = dzw[:, : self.z_dim], dzw[:, self.z_dim :]
        # (N, Z): the entropy's path through the adversary (whose grads are kept), into z or straight into mu_z
        dz_adversary = backward_keeping_grads(self.adversary, b4 * dlogits)
        if self.adversary_input == "sample":
            dz = dz + dz_adversary
        dmu_z, dlogvar_z = self.posterior_z.rsample_backward(dz)
        if self.adversary_input == "mean":
            dmu_z = dmu_z + dz_adversary
        self.encoder_z.backward(self.posterior_z.join(dmu_z + b3 * dmu_z_kl, dlogvar_z + b3 * dlogvar_z_kl))
        dmu_w, dlogvar_w = self.posterior_w.rsample_backward(dw)
        self.encoder_w.backward(self.posterior_w.join(dmu_w + b2 * dmu_w_kl, dlogvar_w + b2 * dlogvar_w_kl))

        named = (("reconstruction", rec), ("kl_w", kl_w), ("kl_z", kl_z), ("negative_entropy", neg_h))
        terms = {name: float(np.mean(v, dtype=np.float64)) for name, v in named}
        loss = b1 * terms["reconstruction"] + b2 * terms["kl_w"] + b3 * terms["kl_z"] + b4 * terms["negative_entropy"]
        return {"loss": loss, **terms}

    def adversary_loss_and_grads(self, x, y, rng=None, eps_z=None):
        """Forward and backward pass of the adversary's loss beta5 * BCE(y, q_delta(y | z)), z ~ q(z | x) (or mu_z,
        ``adversary_input="mean"``); fills the adversary's grads only (no backward into the encoder).
        Returns {"loss", "bce", "accuracy"}."""
        beta5 = self.betas[4]
        y = check_attributes(y, x.shape[0], self.num_attributes, "CSVAE")
        mu_z, logvar_z = self.encode_z(x)
        z = mu_z if self.adversary_input == "mean" else self.posterior_z.rsample(mu_z, logvar_z, rng=rng, eps=eps_z)
        logits = self.adversary.forward(z)  # (N, m)
        bce, dlogits = bernoulli_nll(logits, y.astype(logits.dtype))  # (N,), (p - y) / N
        self.adversary.backward(beta5 * dlogits)
        bce_mean = float(np.mean(bce, dtype=np.float64))
        return {"loss": beta5 * bce_mean, "bce": bce_mean, "accuracy": float(np.mean((logits > 0) == (y == 1)))}


# --------------------------------------------------------------------------------------
# How well the subspaces separate the classes
# --------------------------------------------------------------------------------------


def symmetrized_kl(a, b, ridge=1e-6):
    """(KL(P_a || P_b) + KL(P_b || P_a)) / 2 between Gaussian fits (mean, full covariance) of the rows of a and b.

    For k-dimensional Gaussians, KL(P_0 || P_1) = 1/2 (tr(S_1^-1 S_0) + d^T S_1^-1 d - k + log det S_1 / det S_0)
    with d = m_1 - m_0; the log-determinants cancel in the symmetrized sum, leaving
    1/4 (tr(S_1^-1 S_0) + tr(S_0^-1 S_1) + d^T (S_0^-1 + S_1^-1) d) - k / 2. It is 0 for identical fits and
    grows as the classes' codes separate. ``ridge`` (times the mean variance) keeps the covariances invertible.
    """
    fits = []
    for codes in (a, b):
        codes = np.asarray(codes, dtype=np.float64)
        if codes.ndim != 2 or len(codes) < 2:
            raise ValueError(f"symmetrized_kl: expected codes (N >= 2, k), got shape {codes.shape}")
        cov = np.atleast_2d(np.cov(codes, rowvar=False))
        fits.append((codes.mean(axis=0), cov + ridge * (np.trace(cov) / len(cov) + 1e-12) * np.eye(len(cov))))
    (m0, s0), (m1, s1) = fits
    i0, i1, d = np.linalg.inv(s0), np.linalg.inv(s1), m1 - m0
    k = len(m0)
    return float(0.25 * (np.trace(i1 @ s0) + np.trace(i0 @ s1) + d @ (i0 + i1) @ d) - k / 2)


def class_separation(codes, y):
    """symmetrized_kl of the codes (N, k) of the examples with y == 0 and those with y == 1 (y (N,))."""
    y = np.asarray(y)
    return symmetrized_kl(codes[y == 0], codes[y == 1])


def subspace_metrics(model, x, y, rng):
    """How the attributes sit in the latent space, per attribute i (lists of m values), on examples x, y (N, m):

    separation_w: class_separation of the posterior means mu_w of W_i by y_i (large: W_i holds y_i);
    separation_z: class_separation of mu_z by y_i (near 0: z holds no y_i a Gaussian fit can see);
    adversary_accuracy: the trained adversary's accuracy on one draw z ~ q(z | x) (from ``rng``), as in training;
    adversary_accuracy_mean: its accuracy on mu_z; base_rate: the accuracy of always guessing the commoner class.
    """
    y = check_attributes(y, x.shape[0], model.num_attributes, "subspace_metrics")
    mu_z, logvar_z = model.encode_z(x)
    mu_w, _ = model.encode_w(x, y)
    z = model.posterior_z.rsample(mu_z, logvar_z, rng=rng)
    guess, guess_mean = model.adversary.forward(z) > 0, model.adversary.forward(mu_z) > 0  # (N, m) each
    W = model.w_dim
    return {
        "separation_w": [class_separation(mu_w[:, i * W : (i + 1) * W], y[:, i]) for i in range(y.shape[1])],
        "separation_z": [class_separation(mu_z, y[:, i]) for i in range(y.shape[1])],
        "adversary_accuracy": [float(a) for a in np.mean(guess == (y == 1), axis=0)],
        "adversary_accuracy_mean": [float(a) for a in np.mean(guess_mean == (y == 1), axis=0)],
        "base_rate": [float(max(r, 1 - r)) for r in y.mean(axis=0)],
    }


def probe_accuracy(z_train, y_train, z_test, y_test, rng, epochs=10, hidden=64, batch_size=64, lr=1e-3):
    """A stricter test than the adversary: a fresh MLP classifier (Dense, ReLU, Dense, ReLU, Dense) trained with
    Adam on the codes z_train (N, k) to predict each attribute y_train[:, i], after the CSVAE is trained;
    returns its test accuracy per attribute (near the base rate: the codes hold no y that it can find)."""
    accuracies = []
    k = z_train.shape[1]
    for i in range(y_train.shape[1]):
        network = Sequential(Dense(k, hidden, rng=rng, dtype=z_train.dtype), ReLU(),
                             Dense(hidden, hidden, rng=rng, dtype=z_train.dtype), ReLU(),
                             Dense(hidden, 2, rng=rng, dtype=z_train.dtype))  # fmt: skip
        probe = Classifier(network, 2, (k,))
        optimizer = Adam(probe.params, lr=lr)
        for _ in range(epochs):
            order = rng.permutation(len(z_train))
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                probe.loss_and_grads(z_train[rows], y_train[rows, i])
                optimizer.step(probe.grads)
        accuracies.append(float(np.mean(probe.predict(z_test) == y_test[:, i])))
    return accuracies


# --------------------------------------------------------------------------------------
# The preset
# --------------------------------------------------------------------------------------


def _mlp(d_in, d_out, width, act, kw, first=()):
    """first..., Dense d_in -> width, act, Dense width -> width, act, Dense width -> d_out."""
    return Sequential(*first, Dense(d_in, width, **kw), act(), Dense(width, width, **kw), act(),
                      Dense(width, d_out, **kw))  # fmt: skip


def mlp_csvae(input_dim=3, z_dim=2, w_dim=2, num_attributes=1, hidden=64, adversary_hidden=64, *, rng,
              dtype=np.float32, likelihood="gaussian", sigma=1.0, betas=BETAS, w_on_mean=3.0, w_on_std=1.0,
              w_off_std=0.1, adversary_input="sample"):  # fmt: skip
    """A CSVAE of small MLPs for vectors x (N, input_dim), e.g. the swiss roll (input_dim 3).

    encoder_z: Dense D -> H, Tanh, Dense H -> H, Tanh, Dense H -> 2 Z
    encoder_w: Condition(2m), Dense D + 2m -> H, Tanh, Dense H -> H, Tanh, Dense H -> 2 m W
    decoder:   Dense Z + mW -> H, Tanh, Dense H -> H, Tanh, Dense H -> D
    adversary: Dense Z -> A, ReLU, Dense A -> A, ReLU, Dense A -> m (logits)
    Two hidden layers each: one is too few to unroll the swiss roll.
    """
    D = check_int(input_dim, "input_dim", "mlp_csvae", 1)
    z_dim, w_dim = check_int(z_dim, "z_dim", "mlp_csvae", 1), check_int(w_dim, "w_dim", "mlp_csvae", 1)
    m = check_int(num_attributes, "num_attributes", "mlp_csvae", 1)
    H = check_int(hidden, "hidden", "mlp_csvae", 1)
    A = check_int(adversary_hidden, "adversary_hidden", "mlp_csvae", 1)
    kw = dict(rng=rng, dtype=dtype)
    encoder_z = _mlp(D, 2 * z_dim, H, Tanh, kw)
    encoder_w = _mlp(D + 2 * m, 2 * m * w_dim, H, Tanh, kw, first=[Condition(2 * m)])
    decoder = _mlp(z_dim + m * w_dim, D, H, Tanh, kw)
    adversary = _mlp(z_dim, m, A, ReLU, kw)
    config = {"preset": "csvae", "input_dim": D, "z_dim": z_dim, "w_dim": w_dim, "num_attributes": m, "hidden": H,
              "adversary_hidden": A, "dtype": check_dtype(dtype, "mlp_csvae").name, "likelihood": likelihood,
              "sigma": float(sigma), "betas": [float(b) for b in betas], "w_on_mean": float(w_on_mean),
              "w_on_std": float(w_on_std), "w_off_std": float(w_off_std),
              "adversary_input": adversary_input}  # fmt: skip
    return CSVAE(encoder_z, encoder_w, decoder, adversary, z_dim=z_dim, w_dim=w_dim, num_attributes=m,
                 input_shape=(D,), likelihood=likelihood, sigma=sigma, betas=betas, w_on_mean=w_on_mean,
                 w_on_std=w_on_std, w_off_std=w_off_std, adversary_input=adversary_input, config=config)  # fmt: skip


# --------------------------------------------------------------------------------------
# Faces: a convolutional CSVAE, and the conditional VAE it is compared with
# --------------------------------------------------------------------------------------


def _faces_networks(latent_dim, input_shape, channels, sigma, kw):
    """The faces preset's networks for ``latent_dim`` (:func:`tinyvae.presets.faces_vae`): (its encoder's layers
    up to the flattened features: Conv, BatchNorm2D, LeakyReLU blocks and Flatten; their width F; its whole
    encoder x -> (N, 2 latent_dim); its decoder (N, latent_dim) -> (N, C, H, W) means in (0, 1))."""
    from .presets import faces_vae  # presets imports this module (the csvae presets)

    vae = faces_vae(latent_dim, input_shape, channels, sigma, **kw)
    layers = vae.encoder.layers
    flat = next(i for i, layer in enumerate(layers) if isinstance(layer, Flatten))
    return layers[: flat + 1], layers[flat + 1].in_features, vae.encoder, vae.decoder


def conv_csvae(z_dim=32, w_dim=2, num_attributes=2, input_shape=(3, 32, 32), channels=(32, 64, 64, 64), sigma=0.1,
               adversary_hidden=64, *, rng, dtype=np.float32, betas=BETAS, w_on_mean=3.0, w_on_std=1.0,
               w_off_std=0.1, adversary_input="mean"):  # fmt: skip
    """A CSVAE for C x H x W images in [0, 1] (faces), from the faces preset's networks (faces_vae: 3x3 stride-2
    convolutions, BatchNorm, LeakyReLU(0.3), a Sigmoid output) and a Gaussian likelihood with ``sigma`` on pixels.

    encoder_z: faces_vae(Z)'s encoder: x -> (N, 2Z)
    encoder_w: the same conv blocks (their own weights), Flatten (N, F), Condition(2m) (N, F + 2m),
               Dense F + 2m -> 2 m W
    decoder:   faces_vae(Z + mW)'s decoder: [z | w] (N, Z + mW) -> (N, C, H, W)
    adversary: Dense Z -> A, ReLU, Dense A -> A, ReLU, Dense A -> m logits (as mlp_csvae's)
    The attributes join after the convolutions, as the conditional faces VAE's label does (:func:`faces_cvae`).
    """
    where = "conv_csvae"
    z_dim, w_dim = check_int(z_dim, "z_dim", where, 1), check_int(w_dim, "w_dim", where, 1)
    m = check_int(num_attributes, "num_attributes", where, 1)
    A = check_int(adversary_hidden, "adversary_hidden", where, 1)
    kw = dict(rng=rng, dtype=dtype)
    _, _, encoder_z, _ = _faces_networks(z_dim, input_shape, channels, sigma, kw)
    features, F, _, decoder = _faces_networks(z_dim + m * w_dim, input_shape, channels, sigma, kw)
    encoder_w = Sequential(*features, Condition(2 * m), Dense(F + 2 * m, 2 * m * w_dim, **kw))
    adversary = _mlp(z_dim, m, A, ReLU, kw)
    config = {"preset": "conv_csvae", "z_dim": z_dim, "w_dim": w_dim, "num_attributes": m,
              "input_shape": [int(s) for s in input_shape], "channels": [int(c) for c in channels],
              "sigma": float(sigma), "adversary_hidden": A, "dtype": check_dtype(dtype, where).name,
              "betas": [float(b) for b in betas], "w_on_mean": float(w_on_mean), "w_on_std": float(w_on_std),
              "w_off_std": float(w_off_std), "adversary_input": adversary_input}  # fmt: skip
    return CSVAE(encoder_z, encoder_w, decoder, adversary, z_dim=z_dim, w_dim=w_dim, num_attributes=m,
                 input_shape=input_shape, likelihood="gaussian", sigma=sigma, betas=betas, w_on_mean=w_on_mean,
                 w_on_std=w_on_std, w_off_std=w_off_std, adversary_input=adversary_input, config=config)  # fmt: skip


def attribute_classes(y):
    """m binary attributes y (N, m) -> one class of K = 2^m per example, sum_i y_i 2^i (N,): the label of the
    conditional VAE (:func:`faces_cvae`). Attribute i flips with ``classes ^ (1 << i)``."""
    y = np.asarray(y)
    if y.ndim != 2 or not np.all((y == 0) | (y == 1)):
        raise ValueError(f"attribute_classes: expected attributes (N, m) of 0/1, got shape {y.shape}")
    return (y.astype(np.int64) << np.arange(y.shape[1])).sum(axis=1)


def faces_cvae(latent_dim=36, num_attributes=2, input_shape=(3, 32, 32), channels=(32, 64, 64, 64), sigma=0.1, *,
               rng, dtype=np.float32):  # fmt: skip
    """The conditional VAE that the CSVAE is compared with: the faces preset's networks, with the label of
    m binary attributes (one of K = 2^m classes, :func:`attribute_classes`) joined as a one-hot by
    :class:`tinyvae.layers.Condition`, and a Gaussian likelihood with ``sigma`` on pixels in [0, 1].

    encoder: faces_vae's conv blocks, Flatten (N, F), Condition(K) (N, F + K), Dense F + K -> 2L
    decoder: Condition(K) (N, L + K), then faces_vae(L + K)'s decoder -> (N, C, H, W)
    The joint class, rather than one one-hot pair per attribute, lets VAE.condition (labels (N,)) serve as is.
    """
    where = "faces_cvae"
    latent_dim = check_int(latent_dim, "latent_dim", where, 1)
    m = check_int(num_attributes, "num_attributes", where, 1)
    K = 2**m
    kw = dict(rng=rng, dtype=dtype)
    features, F, _, decoder = _faces_networks(latent_dim + K, input_shape, channels, sigma, kw)
    encoder = Sequential(*features, Condition(K), Dense(F + K, 2 * latent_dim, **kw))  # (N, 2L)
    decoder = Sequential(Condition(K), *decoder.layers)  # (N, C, H, W)
    config = {"preset": "faces_cvae", "latent_dim": latent_dim, "num_attributes": m,
              "input_shape": [int(s) for s in input_shape], "channels": [int(c) for c in channels],
              "sigma": float(sigma), "dtype": check_dtype(dtype, where).name}  # fmt: skip
    return VAE(encoder, decoder, latent_dim, input_shape, likelihood="gaussian", sigma=sigma, config=config,
               num_classes=K)  # fmt: skip


# --------------------------------------------------------------------------------------
# Attribute transfer, and how a judge rates it
# --------------------------------------------------------------------------------------


def transfer_w(model, x, y, attribute, w_new, batch_size=500):
    """Put w_new (N, w_dim) into W_attribute of x's codes: returns (reconstructions, transfers), each like x.

    The reconstruction decodes z = mu_z(x), w = mu_w(x, y); the transfer the same codes with the block
    w[:, attribute * w_dim : (attribute + 1) * w_dim] replaced by w_new: z and the other attributes' W kept.
    x (N, C, H, W) and y (N, m) as the model takes them; call ``model.eval()`` first (BatchNorm).
    """
    y = check_attributes(y, x.shape[0], model.num_attributes, "transfer_w")
    attribute = check_int(attribute, "attribute", "transfer_w", 0)
    if attribute >= model.num_attributes:
        raise ValueError(f"transfer_w: attribute must be < num_attributes = {model.num_attributes}, got {attribute}")
    w_new = np.asarray(w_new, dtype=model.dtype)
    if w_new.shape != (x.shape[0], model.w_dim):
        raise ValueError(f"transfer_w: w_new must be ({x.shape[0]}, {model.w_dim}), one w per image, got {w_new.shape}")
    block = slice(attribute * model.w_dim, (attribute + 1) * model.w_dim)
    reconstructions, transfers = [], []
    for start in range(0, x.shape[0], batch_size):
        rows = slice(start, start + batch_size)
        mu_z, mu_w = model.encode_z(x[rows])[0], model.encode_w(x[rows], y[rows])[0]  # (n, Z), (n, mW)
        reconstructions.append(model.mean(model.decode(mu_z, mu_w)))
        mu_w[:, block] = w_new[rows]
        transfers.append(model.mean(model.decode(mu_z, mu_w)))
    return np.concatenate(reconstructions), np.concatenate(transfers)


def judged_transfer(judge, reconstructions, transfers, attribute, on, batch_size=500):
    """How a judge (an AttributeClassifier) sees transfers of ``attribute`` (a name of ``judge.attributes``):

    {"switched": the fraction of transfers it sees with the attribute if ``on`` (without it otherwise);
    "others_kept": the fraction whose every other attribute it sees as on the reconstruction; "both"; "n"}.
    As :func:`tinyvae.evaluate.attribute_edit_rates`, the others are compared with the decoded reconstruction,
    not with x: what the decoder loses anyway counts for neither model (:func:`tinyvae.evaluate.judged_edits`).
    """
    if attribute not in judge.attributes:
        raise ValueError(f"judged_transfer: the judge does not know {attribute!r}; it classifies "
                         f"{', '.join(judge.attributes)}")  # fmt: skip
    if reconstructions.shape != transfers.shape:
        raise ValueError(f"judged_transfer: reconstructions {reconstructions.shape} and transfers {transfers.shape} "
                         "must pair up")  # fmt: skip
    batches = ((reconstructions[s : s + batch_size], transfers[s : s + batch_size])
               for s in range(0, len(transfers), batch_size))  # fmt: skip
    return judged_edits(judge, batches, attribute, on)

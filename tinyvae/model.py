"""The VAE: encoder -> posterior q(z | x) -> decoder -> likelihood p(x | z), wired together;
a Classifier, a network whose logits go through :func:`tinyvae.softmax_cross_entropy`; and an
AttributeClassifier, one whose logits are independent Bernoulli attributes (:func:`tinyvae.bernoulli_nll`).

The model holds the pieces; the arithmetic lives with them: the posterior and the
likelihoods in :mod:`tinyvae.distributions`, the loss and its backward pass in
:func:`tinyvae.objectives.negative_elbo`, the architectures in :mod:`tinyvae.presets`.
"""

import numpy as np

from . import objectives
from .distributions import (
    LIKELIHOODS, DiagonalGaussian, Gaussian, bernoulli_nll, check_attributes, check_labels, softmax_cross_entropy,
)  # fmt: skip
from .layers import Condition
from .module import Module, check_input, check_int


class VAE(Module):
    """A variational autoencoder from an encoder and a decoder module (children ``encoder``, ``decoder``).

    The encoder maps x (N, *input_shape) to h (N, 2 * latent_dim) = [mu | logvar] of the
    diagonal-Gaussian posterior. The decoder maps z (N, latent_dim) to (N, *input_shape):
    Bernoulli logits, or Gaussian means for ``likelihood="gaussian"`` (fixed ``sigma``).
    ``config`` is what :func:`tinyvae.build_vae` needs to rebuild the architecture.

    A conditional VAE (``num_classes`` = K, Sohn et al. 2015) has :class:`tinyvae.layers.Condition`
    layers in its encoder and decoder, which join the one-hot label of each example: q(z | x, y)
    and p(x | z, y). Its methods then take the labels ``y`` (N,), integers in [0, K).
    """

    def __init__(self, encoder, decoder, latent_dim, input_shape, likelihood="bernoulli", sigma=1.0, config=None,
                 num_classes=None):  # fmt: skip
        super().__init__()
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"VAE: likelihood must be one of {tuple(LIKELIHOODS)}, got {likelihood!r}")
        self.encoder, self.decoder = encoder, decoder
        self._children = {"encoder": encoder, "decoder": decoder}
        self.latent_dim = check_int(latent_dim, "latent_dim", "VAE", 1)
        self.input_shape = tuple(check_int(s, "input_shape", "VAE", 1) for s in input_shape)
        self.posterior = DiagonalGaussian(self.latent_dim)
        self.likelihood = Gaussian(sigma) if likelihood == "gaussian" else LIKELIHOODS[likelihood]()
        self.sigma = float(sigma)
        self._config = dict(config or {})
        self.num_classes = None if num_classes is None else check_int(num_classes, "num_classes", "VAE", 2)
        self._conditions = [m for m in _modules(self) if isinstance(m, Condition)]
        if {m.num_classes for m in self._conditions} != ({self.num_classes} if self.num_classes else set()):
            raise ValueError(
                f"VAE: num_classes={self.num_classes}, but the encoder and decoder condition on "
                f"{sorted(m.num_classes for m in self._conditions) or 'no labels'}; they must agree"
            )

    def config(self):
        """The preset and its arguments: ``build_vae(**model.config(), rng=rng)`` rebuilds the architecture."""
        return dict(self._config)

    def __repr__(self):
        return (
            f"VAE(latent_dim={self.latent_dim}, likelihood={self.likelihood!r},\n"
            f" encoder={self.encoder!r},\n decoder={self.decoder!r})"
        )

    def architecture(self):
        """A JSON-able description of the model, compared when a checkpoint is loaded."""
        return {
            "latent_dim": self.latent_dim,
            "input_shape": list(self.input_shape),
            "likelihood": self.likelihood.name,
            "sigma": self.sigma,
            **({"num_classes": self.num_classes} if self.num_classes else {}),
            "encoder": self.encoder.architecture(),
            "decoder": self.decoder.architecture(),
        }

    def condition(self, y, n):
        """Hand the one-hot of the labels y (n,) to the Condition layers; y must be None if not conditional."""
        if self.num_classes is None:
            if y is not None:
                raise ValueError("VAE: labels y were given, but this model is not conditional (num_classes=None)")
            return
        if y is None:
            raise ValueError(f"VAE: this conditional model (num_classes={self.num_classes}) needs labels y, shape ({n},)")
        labels = check_labels(y, n, self.num_classes, "VAE")
        onehot = np.eye(self.num_classes, dtype=self.dtype)[labels]  # (n, K)
        for layer in self._conditions:
            layer.set_labels(onehot)

    # -- the pieces -----------------------------------------------------------------------------
    def encode(self, x, y=None):
        """q(z | x) (or q(z | x, y)): returns (mu, logvar), each (N, latent_dim)."""
        check_input(x, self.input_shape, self.dtype, type(self).__name__)
        self.condition(y, x.shape[0])
        return self.posterior.split(self.encoder.forward(x))  # h (N, 2L) = [mu | logvar]

    def decode(self, z, y=None):
        """p(x | z) (or p(x | z, y))'s parameters: logits (Bernoulli) or means (Gaussian), (N, *input_shape)."""
        self.condition(y, z.shape[0])
        return self.decoder.forward(z)

    def mean(self, decoded):
        """E[x | z] from the decoder's output: sigmoid(logits) or the Gaussian mean itself."""
        return self.likelihood.mean(decoded)

    def reconstruct(self, x, y=None):
        """Decode the posterior mean: E[x | z = mu(x)], (N, *input_shape); conditional: y (N,) both ways."""
        mu, _ = self.encode(x, y)
        return self.mean(self.decode(mu, y))

    def sample(self, n, rng, y=None):
        """Draw z ~ N(0, I) from ``rng`` and return E[x | z] (conditional: E[x | z, y], y (n,)), (n, *input_shape)."""
        z = rng.standard_normal((n, self.latent_dim), dtype=self.dtype)
        return self.mean(self.decode(z, y))

    # -- the objective ----------------------------------------------------------------------------
    def loss_and_grads(self, x, rng=None, eps=None, beta=1.0, objective="elbo", k=None, y=None):
        """Forward and backward pass of the training objective for one batch; fills ``grads``.

        objective "elbo": the negative ELBO (:func:`tinyvae.objectives.negative_elbo`), one
            sample per example; returns {"loss", "reconstruction", "kl"}; eps (N, latent_dim).
        objective "iwae": the negative k-sample importance-weighted bound
            (:func:`tinyvae.objectives.negative_iwae`); returns {"loss", "iwae_bound",
            "reconstruction", "kl"}; eps (k, N, latent_dim); k defaults to eps.shape[0].
        Give ``rng`` or a fixed ``eps``. Every value is a batch mean in nats per example.
        A conditional model takes the labels ``y`` (N,): the terms are those of log p(x | y).
        """
        check_input(x, self.input_shape, self.dtype, type(self).__name__)
        self.condition(y, x.shape[0])
        if objective not in objectives.OBJECTIVES:
            raise ValueError(f"VAE: objective must be one of {tuple(objectives.OBJECTIVES)}, got {objective!r}")
        if objective == "elbo":
            if k not in (None, 1):
                raise ValueError(f"VAE: objective 'elbo' takes one sample per example; k={k!r} is for 'iwae'")
            return objectives.negative_elbo(self, x, rng=rng, eps=eps, beta=beta)
        if k is None:
            if eps is None:
                raise ValueError("VAE: objective 'iwae' needs k, the number of samples per example (or eps (k, N, L))")
            k = eps.shape[0]
        return objectives.negative_iwae(self, x, k, rng=rng, eps=eps, beta=beta)


def _modules(module):
    """``module`` and every module below it."""
    yield module
    for child in module._children.values():
        yield from _modules(child)


class Classifier(Module):
    """A network from images (N, *input_shape) to logits (N, num_classes), trained on softmax cross-entropy.

    ``config`` is what :func:`tinyvae.build_vae` (which builds every preset) needs to rebuild it,
    so ``tinyvae.checkpoint.load_run(out)`` loads a saved classifier too.
    """

    multilabel = False  # one class per image (softmax); AttributeClassifier: any number of attributes
    _fewest_classes = 2

    def __init__(self, network, num_classes, input_shape, config=None):
        super().__init__()
        where = type(self).__name__
        self.network = network
        self._children = {"network": network}
        self.num_classes = check_int(num_classes, "num_classes", where, self._fewest_classes)
        self.input_shape = tuple(check_int(s, "input_shape", where, 1) for s in input_shape)
        self._config = dict(config or {})

    def config(self):
        return dict(self._config)

    def __repr__(self):
        return f"Classifier(num_classes={self.num_classes},\n network={self.network!r})"

    def architecture(self):
        """A JSON-able description of the model, compared when a checkpoint is loaded."""
        return {"num_classes": self.num_classes, "input_shape": list(self.input_shape),
                "network": self.network.architecture()}  # fmt: skip

    def logits(self, x):
        """The unnormalized log-probabilities of the classes, (N, num_classes)."""
        check_input(x, self.input_shape, self.dtype, type(self).__name__)
        return self.network.forward(x)

    def predict(self, x):
        """The most probable class of each image, (N,) int64."""
        return np.argmax(self.logits(x), axis=1)

    def loss_and_grads(self, x, y, rng=None):
        """Forward and backward pass of the mean softmax cross-entropy of labels y (N,); fills ``grads``.

        Returns {"loss": nats per example, "accuracy": the fraction of the batch classified right}.
        ``rng`` is not used (nothing here is random); :func:`tinyvae.train` passes one to every model.
        """
        logits = self.logits(x)  # (N, num_classes)
        loss, dlogits = softmax_cross_entropy(logits, y)  # (N,), (N, num_classes): (softmax - onehot) / N
        self.network.backward(dlogits, input_grad=False)
        correct = np.argmax(logits, axis=1) == y
        return {"loss": float(np.mean(loss, dtype=np.float64)), "accuracy": float(np.mean(correct))}


class AttributeClassifier(Classifier):
    """A multi-label classifier: logits (N, A), one per named attribute, each an independent Bernoulli.

    p(attribute a | x) = sigmoid(logit_a). The loss is the batch mean of the sigmoid cross-entropy
    summed over the attributes, -sum_a [y_a log s_a + (1 - y_a) log(1 - s_a)] with s = sigmoid(logits):
    the Bernoulli negative log-likelihood of a VAE's pixels (:func:`tinyvae.bernoulli_nll`; its formula
    and gradient, sigmoid(logits) - y, are in :func:`tinyvae.kernels_numpy.bernoulli_nll`), with the
    attributes as the targets. ``num_classes`` is the number of attributes A (at least one).

        judge = tinyvae.checkpoint.load_run("runs/faces-judge")   # examples/classifier.py --dataset faces
        judge.attributes                     # ("Blond_Hair", "Eyeglasses", ...): the columns below
        judge.probabilities(images)          # (N, A) float: p(attribute | image)
        judge.predict(images)                # (N, A) bool: probability > 1/2
    """

    multilabel = True
    _fewest_classes = 1

    def __init__(self, network, attributes, input_shape, config=None):
        if (not isinstance(attributes, (list, tuple)) or not attributes or len(set(attributes)) != len(attributes)
                or not all(isinstance(a, str) and a for a in attributes)):  # fmt: skip
            raise ValueError(f"AttributeClassifier: attributes must be a non-empty list of distinct names, "
                             f"got {attributes!r}")  # fmt: skip
        super().__init__(network, len(attributes), input_shape, config)
        self.attributes = tuple(attributes)

    def __repr__(self):
        return f"AttributeClassifier(attributes={list(self.attributes)},\n network={self.network!r})"

    def architecture(self):
        return {**super().architecture(), "attributes": list(self.attributes)}

    def probabilities(self, x):
        """p(attribute | image) = sigmoid(logits), (N, A), computed without overflow."""
        return 0.5 * (1.0 + np.tanh(0.5 * self.logits(x)))

    def predict(self, x):
        """Which attributes each image has, (N, A) bool: probability above 1/2, i.e. logit above 0."""
        return self.logits(x) > 0

    def loss_and_grads(self, x, y, rng=None):
        """Forward and backward pass of the mean summed sigmoid cross-entropy of attributes y (N, A); fills ``grads``.

        y: 0/1 (or booleans), one column per attribute, in the order of ``attributes``. Returns
        {"loss": nats per example (summed over attributes), "accuracy": the fraction of the batch's
        (image, attribute) pairs predicted right}. ``rng`` is not used, as in :meth:`Classifier.loss_and_grads`.
        """
        logits = self.logits(x)  # (N, A)
        targets = check_attributes(y, logits.shape[0], self.num_classes, type(self).__name__).astype(logits.dtype)
        loss, dlogits = bernoulli_nll(logits, targets)  # (N,), (N, A): (sigmoid(logits) - y) / N
        self.network.backward(dlogits, input_grad=False)
        correct = (logits > 0) == (targets == 1)  # (N, A)
        return {"loss": float(np.mean(loss, dtype=np.float64)), "accuracy": float(np.mean(correct))}

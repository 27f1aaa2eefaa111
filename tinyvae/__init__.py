"""tinyvae: a Variational Autoencoder written from scratch in NumPy, every gradient by hand."""

import os

# OpenBLAS's threads spin for a while after every matrix product, waiting for the next one, and
# take the cores that the Numba kernels between products need (Numba's own threads sleep when
# idle: kernels_numba sets OMP_WAIT_POLICY). A timeout of 4 (2^4 cycles instead of OpenBLAS's
# 2^28, about a tenth of a second) stops the spinning: on 2 cores the conv preset's training step
# ran 1.2-1.4x faster with it on three of the four benchmark rows, and `python examples/mnist.py`
# trained in 1 min 52 s - 2 min 0 s instead of 2 min 46 s - 2 min 52 s (README, Performance). OpenBLAS reads it once, when NumPy is first imported,
# so it takes effect when tinyvae is imported before NumPy (as the examples do); a value the
# user set is kept.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from . import checkpoint, datasets, distributions, evaluate, gradcheck, objectives
from .backend import get_backend, set_backend, use_backend
from .checkpoint import load_run
from .distributions import (
    Bernoulli, DiagonalGaussian, Gaussian, Reparameterize, bernoulli_nll, gaussian_nll, kl_normal_standard,
    softmax_cross_entropy,
)  # fmt: skip
from .layers import (
    Concat, Conv2D, ConvTranspose2D, Dense, Flatten, LeakyReLU, ReLU, Reshape, Sequential, Sigmoid, Split, Tanh,
)  # fmt: skip
from .model import VAE, Classifier, AttributeClassifier
from .module import Module
from .optim import SGD, Adam
from .norm import BatchNorm1D, BatchNorm2D
from .presets import PRESETS, build_vae, conv_classifier, conv_vae, faces_vae, mlp_vae, attribute_classifier
from .train import NonFiniteLossError, linear_warmup, train

__version__ = "0.1.0"

__all__ = [
    "Adam", "BatchNorm1D", "BatchNorm2D", "Bernoulli", "Classifier", "Concat", "Conv2D", "ConvTranspose2D", "Dense",
    "DiagonalGaussian", "Flatten", "Gaussian", "LeakyReLU", "Module", "NonFiniteLossError", "PRESETS", "ReLU",
    "Reparameterize", "Reshape", "SGD", "Sequential", "Sigmoid", "Split", "Tanh", "VAE", "bernoulli_nll", "build_vae",
    "checkpoint", "conv_classifier", "conv_vae", "datasets", "distributions", "evaluate", "faces_vae", "gaussian_nll",
    "get_backend", "gradcheck", "kl_normal_standard", "linear_warmup", "load_run", "mlp_vae", "objectives",
    "set_backend", "softmax_cross_entropy", "train", "use_backend", "AttributeClassifier", "attribute_classifier",
]

from .csvae import CSVAE, mlp_csvae  # noqa: E402

__all__ += ["CSVAE", "mlp_csvae"]

"""tinyvae: a Variational Autoencoder written from scratch in NumPy, every gradient by hand."""

from .backend import get_backend, set_backend, use_backend
from .layers import Conv2D, ConvTranspose2D, Dense, Flatten, LeakyReLU, ReLU, Reshape, Sequential, Sigmoid, Tanh
from .losses import bernoulli_nll, gaussian_nll, kl_normal_standard
from .model import PRESETS, VAE, build_vae, conv_vae, mlp_vae
from .optim import SGD, Adam
from .sampling import Reparameterize
from .train import NonFiniteLossError, train

__version__ = "0.1.0"

__all__ = [
    "Adam", "Conv2D", "ConvTranspose2D", "Dense", "Flatten", "LeakyReLU", "NonFiniteLossError",
    "PRESETS", "ReLU", "Reparameterize", "Reshape", "SGD", "Sequential", "Sigmoid", "Tanh", "VAE",
    "bernoulli_nll", "build_vae", "conv_vae", "gaussian_nll", "get_backend", "kl_normal_standard", "mlp_vae",
    "set_backend", "train", "use_backend",
]

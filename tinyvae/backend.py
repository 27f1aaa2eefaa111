"""One switch between the kernel backends, and the interface every backend implements.

    import tinyvae
    tinyvae.set_backend("numba")      # or: TINYVAE_BACKEND=numba python train.py
    tinyvae.get_backend()             # "numba": always the concrete name

Which backend runs: ``set_backend(name)`` if called; otherwise ``TINYVAE_BACKEND`` on first
use; otherwise ``"auto"``. ``"auto"`` means ``"numba"`` if numba can be imported, else
``"numpy"``. Layers, losses and optimizers fetch their kernels with :func:`kernels` at call
time (never by importing a backend module), so a switch takes effect on the next pass.

The interface: a backend is a module with every function in :data:`KERNELS`, each with the
signature and the result (to rounding) of its twin in :mod:`tinyvae.kernels_numpy`, the
reference, whose docstrings state each formula and gradient once. In short:

    conv2d_forward(x, weight, bias, stride, padding) -> out            NCHW, weight (C_out, C_in, kH, kW)
    conv2d_backward(dout, x, weight, stride, padding, input_grad=True) -> dx, dweight, dbias
    conv_transpose2d_forward(x, weight, bias, stride, padding, output_padding) -> out
                                                                       weight (C_in, C_out, kH, kW)
    conv_transpose2d_backward(dout, x, weight, stride, padding, input_grad=True) -> dx, dweight, dbias
    dense_forward(x, weight, bias) -> out;  dense_backward(dout, x, weight, input_grad=True) -> dx, dweight, dbias
    relu_forward(x) -> out;  relu_backward(dout, out) -> dx
    leaky_relu_forward(x, negative_slope) -> out;  leaky_relu_backward(dout, x, negative_slope) -> dx
    reparameterize(mu, logvar, eps) -> z;  reparameterize_backward(dz, logvar, eps) -> dmu, dlogvar
    kl_divergence(mu, logvar) -> kl (N,), dmu, dlogvar       gradients of the batch mean
    bernoulli_nll(logits, x) -> nll (N,), dlogits            gradient of the batch mean
    adam_update(param, grad, m, v, lr, beta1, beta2, eps, step) -> None, in place
    batchnorm_statistics(x) -> mean, var (C,), var biased              x (N, C) or (N, C, H, W)
    batchnorm_forward(x, gamma, beta, mean, var, eps) -> out, x_hat, inv_std
    batchnorm_backward(dout, x_hat, gamma, inv_std, batch_statistics) -> dx, dgamma, dbeta

Arrays come in one floating dtype and results keep it; NaN and Inf propagate, never hidden.
``tests/test_numba_backend.py`` checks that each backend implements :data:`KERNELS`.
"""

import importlib
import os

BACKENDS = ("numpy", "numba")
CHOICES = (*BACKENDS, "auto")
KERNELS = (
    "conv2d_forward", "conv2d_backward", "conv_transpose2d_forward", "conv_transpose2d_backward",
    "dense_forward", "dense_backward", "relu_forward", "relu_backward", "leaky_relu_forward", "leaky_relu_backward",
    "reparameterize", "reparameterize_backward", "kl_divergence", "bernoulli_nll", "adam_update",
    "batchnorm_statistics", "batchnorm_forward", "batchnorm_backward",
)  # fmt: skip
_MODULES = {"numpy": "tinyvae.kernels_numpy", "numba": "tinyvae.kernels_numba"}

_active_name = None
_active_module = None


def _numba_importable():
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def set_backend(name):
    """Select the kernel backend: ``"numpy"``, ``"numba"`` or ``"auto"`` (numba if importable, else numpy).

    Raises ``ValueError`` for an unknown name, ``ImportError`` for ``"numba"`` without numba.
    """
    global _active_name, _active_module
    if name not in CHOICES:
        raise ValueError(f"tinyvae.set_backend: unknown backend {name!r}; expected one of {CHOICES}")
    if name == "auto":
        name = "numba" if _numba_importable() else "numpy"
    elif name == "numba" and not _numba_importable():
        raise ImportError(
            "tinyvae.set_backend('numba'): numba is not installed; "
            "install it with `pip install tinyvae[numba]` (or `pip install -e '.[numba]'` from a checkout)"
        )
    _active_module = importlib.import_module(_MODULES[name])
    _active_name = name


def get_backend():
    """Name of the active backend, ``"numpy"`` or ``"numba"`` (chosen on first use, see above)."""
    if _active_name is None:
        set_backend(os.environ.get("TINYVAE_BACKEND", "auto"))
    return _active_name


def kernels():
    """The active backend's kernel module (the functions of :data:`KERNELS`)."""
    if _active_module is None:
        get_backend()
    return _active_module


class use_backend:
    """Context manager that switches the backend for a block and restores the previous one."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self.previous = get_backend()
        set_backend(self.name)
        return self

    def __exit__(self, *exc):
        set_backend(self.previous)
        return False

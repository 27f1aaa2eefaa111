"""One switch between the kernel backends: ``"numpy"`` (the reference) and ``"numba"``.

    import tinyvae
    tinyvae.set_backend("numba")      # or: TINYVAE_BACKEND=numba python train.py

Layers, losses and optimizers fetch their kernels with :func:`kernels` at call time, so a
switch takes effect on the next forward/backward pass and the model code never changes.
"""

import importlib
import os

BACKENDS = ("numpy", "numba")
_MODULES = {"numpy": "tinyvae.kernels_numpy", "numba": "tinyvae.kernels_numba"}

_active_name = None
_active_module = None


def set_backend(name):
    """Select the kernel backend by name; raises ``ValueError`` or ``ImportError`` if unusable."""
    global _active_name, _active_module
    if name not in BACKENDS:
        raise ValueError(f"tinyvae.set_backend: unknown backend {name!r}; expected one of {BACKENDS}")
    if name == "numba":
        try:
            import numba  # noqa: F401
        except ImportError as err:
            raise ImportError(
                "tinyvae.set_backend('numba'): numba is not installed; "
                "install it with `pip install tinyvae[numba]` (or `pip install -e '.[numba]'` from a checkout)"
            ) from err
    _active_module = importlib.import_module(_MODULES[name])
    _active_name = name


def get_backend():
    """Name of the active backend (from ``TINYVAE_BACKEND`` on first use, default ``"numpy"``)."""
    if _active_name is None:
        set_backend(os.environ.get("TINYVAE_BACKEND", "numpy"))
    return _active_name


def kernels():
    """The active backend's kernel module (see :mod:`tinyvae.kernels_numpy` for the functions)."""
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

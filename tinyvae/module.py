"""``Module``: the base of every layer and model, and the argument checks they share.

A module owns three dicts of arrays and a dict of child modules:

* ``_params``: what the optimizer updates (e.g. ``{"weight": W, "bias": b}``);
* ``_grads``: the gradients of the last backward pass, same keys as ``_params``;
* ``_buffers``: state that is saved but never optimized (e.g. running statistics);
* ``_children``: sub-modules by name (``"0"``, ``"1"``, ... in a ``Sequential``).

``params``, ``grads`` and ``buffers`` flatten the tree into one dict keyed by dotted path
(``"encoder.0.weight"``). The arrays are shared, not copied: an optimizer updating
``model.params[k]`` in place updates the layer.
"""

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class Module:
    def __init__(self):
        self._params, self._grads, self._buffers, self._children = {}, {}, {}, {}
        self.training = True
        self._out_shape = None

    # -- the tree, flattened (written once, for every module) ------------------------------
    def _flatten(self, attribute):
        flat = dict(getattr(self, attribute))
        for child_name, child in self._children.items():
            flat.update({f"{child_name}.{k}": v for k, v in child._flatten(attribute).items()})
        return flat

    @property
    def params(self):
        """Every parameter of the tree, name -> array (shared with the modules)."""
        return self._flatten("_params")

    @property
    def grads(self):
        """The gradients of the last backward pass, keyed like ``params``."""
        return self._flatten("_grads")

    @property
    def buffers(self):
        """Saved, never optimized state of the tree, name -> array."""
        return self._flatten("_buffers")

    @property
    def dtype(self):
        first = next(iter(self.params.values()), None)
        return None if first is None else first.dtype

    def train(self, mode=True):
        """Training mode for this module and its children (``eval()`` switches it off); returns self."""
        self.training = bool(mode)
        for child in self._children.values():
            child.train(mode)
        return self

    def eval(self):
        return self.train(False)

    # -- saving and loading ------------------------------------------------------------------
    def state_dict(self):
        """Copies of every parameter and buffer, keyed by dotted path."""
        return {k: v.copy() for k, v in {**self.params, **self.buffers}.items()}

    def load_state_dict(self, state):
        """Copy arrays in place; every key, shape and dtype must match ``state_dict()``'s."""
        own = {**self.params, **self.buffers}
        missing, extra = set(own) - set(state), set(state) - set(own)
        if missing or extra:
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: missing keys {sorted(missing)}, unexpected keys {sorted(extra)}"
            )
        for k, v in state.items():
            if v.shape != own[k].shape or v.dtype != own[k].dtype:
                raise ValueError(
                    f"{type(self).__name__}.load_state_dict: {k} expected {own[k].shape} {own[k].dtype}, "
                    f"got {v.shape} {v.dtype}"
                )
        for k, v in state.items():
            own[k][...] = v

    # -- description -------------------------------------------------------------------------
    def config(self):
        """The constructor arguments, as plain JSON values (used for reprs and checkpoints)."""
        return {}

    def __repr__(self):
        args = ", ".join(f"{k}={v}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"

    # -- checks shared by every layer ---------------------------------------------------------
    def _check_input(self, x, ndim, what):
        if not isinstance(x, np.ndarray):
            raise ValueError(f"{self!r}: expected a numpy array {what}, got {type(x).__name__}")
        if x.ndim != ndim:
            raise ValueError(f"{self!r}: expected input of shape {what}, got shape {x.shape}")
        if not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"{self!r}: expected floating-point input, got dtype {x.dtype}")
        if self.dtype is not None and x.dtype != self.dtype:
            raise ValueError(
                f"{self!r}: expected {self.dtype} input (the parameters' dtype), got {x.dtype}; "
                f"convert with x.astype(np.{self.dtype})"
            )
        check_batch(x, repr(self))

    def _check_dout(self, dout):
        if self._out_shape is None:
            raise RuntimeError(f"{self!r}: backward called before forward")
        if dout.shape != self._out_shape:
            raise ValueError(f"{self!r}: expected dout of shape {self._out_shape}, got {dout.shape}")


# --------------------------------------------------------------------------------------
# Argument checks: a clear ValueError naming the module and the argument
# --------------------------------------------------------------------------------------


def check_batch(x, where):
    """Refuse an empty batch (N = 0): no backend can average over it."""
    if x.ndim == 0 or x.shape[0] == 0:
        raise ValueError(f"{where}: expected a batch of at least one example, got shape {x.shape}")


def check_input(x, input_shape, dtype, where):
    """A model's input: a non-empty array of shape (N, *input_shape) and the parameters' dtype."""
    expected = f"(N, {', '.join(map(str, input_shape))})"
    if not isinstance(x, np.ndarray) or x.ndim != len(input_shape) + 1 or x.shape[1:] != tuple(input_shape):
        raise ValueError(f"{where}: expected x of shape {expected}, got shape {getattr(x, 'shape', type(x).__name__)}")
    if x.dtype != dtype:
        raise ValueError(f"{where}: expected x of dtype {dtype} (the parameters'), got {x.dtype}; "
                         f"convert with x.astype(np.{dtype})")  # fmt: skip
    check_batch(x, where)


def check_int(value, name, where, minimum):
    """``value`` as an int >= ``minimum``; bools, floats and strings are refused."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{where}: {name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def check_pair(value, name, where, minimum):
    """An int or a pair of ints, each >= ``minimum``, as a tuple (height, width)."""
    pair = (value, value) if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else value
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise ValueError(f"{where}: {name} must be an int or a pair of ints >= {minimum}, got {value!r}")
    return tuple(check_int(v, name, where, minimum) for v in pair)


def check_rng(rng, where):
    if not isinstance(rng, np.random.Generator):
        raise ValueError(
            f"{where}: rng must be a numpy.random.Generator (e.g. np.random.default_rng(0)), got {type(rng).__name__}"
        )


def check_dtype(dtype, where):
    """``dtype`` as a numpy dtype, float32 or float64."""
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    if dtype is None or resolved not in FLOAT_DTYPES:
        raise ValueError(f"{where}: dtype must be float32 or float64, got {dtype!r}")
    return resolved

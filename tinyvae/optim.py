"""Optimizers that update a model's ``params`` in place from its ``grads``.

    opt = Adam(model.params, lr=1e-3)
    model.loss_and_grads(x, rng)
    opt.step(model.grads)

``opt.config()`` describes the optimizer as JSON ({"type": "Adam", "lr", "betas", "eps"});
``state_dict()`` / ``load_state_dict()`` carry its step count and moment buffers (checkpoints).
"""

import math

import numpy as np

from .backend import kernels


def _finite_positive(value, name, owner):
    """``float(value)``, or ValueError unless it is a finite number > 0."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = None
    if isinstance(value, bool) or number is None or not (math.isfinite(number) and number > 0):
        raise ValueError(f"{owner}: {name} must be a finite number > 0, got {value!r}")
    return number


def _in_unit_interval(value, name, owner):
    """``float(value)``, or ValueError unless 0 <= value < 1 (a decay rate)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = None
    if isinstance(value, bool) or number is None or not 0.0 <= number < 1.0:
        raise ValueError(f"{owner}: {name} must be in [0, 1), got {value!r}")
    return number


class Optimizer:
    """Base class: checks ``params`` and ``lr``; subclasses hold their buffers in ``_buffers()``."""

    def __init__(self, params, lr):
        owner = type(self).__name__
        bad_keys = [k for k in params if not isinstance(k, str)] if isinstance(params, dict) else []
        if not isinstance(params, dict) or bad_keys:
            found = f"key {bad_keys[0]!r}" if bad_keys else type(params).__name__
            raise ValueError(f"{owner}: params must be a dict name -> float array (e.g. model.params), got {found}")
        if not params:
            raise ValueError(f"{owner}: params must be a non-empty dict name -> float array, got {{}}")
        for k, v in params.items():
            if not isinstance(v, np.ndarray):
                raise ValueError(f"{owner}: params[{k!r}] must be a writable float array, got {type(v).__name__}")
            if not np.issubdtype(v.dtype, np.floating) or not v.flags.writeable:
                found = f"a read-only {v.dtype} array" if np.issubdtype(v.dtype, np.floating) else v.dtype
                raise ValueError(f"{owner}: params[{k!r}] must be a writable float array, got {found}")
        self.params, self.lr = params, _finite_positive(lr, "lr", owner)
        self.step_count = 0

    def _check_grads(self, grads):
        if grads.keys() != self.params.keys():
            missing, extra = set(self.params) - set(grads), set(grads) - set(self.params)
            raise ValueError(f"{type(self).__name__}.step: missing grads {sorted(missing)}, unexpected {sorted(extra)}")
        for k, g in grads.items():
            if g.shape != self.params[k].shape:
                raise ValueError(f"{type(self).__name__}.step: grad {k} has shape {g.shape}, param {self.params[k].shape}")

    def state_dict(self):
        """Step count ("step", an int64 scalar) and copies of the buffers ("m.<param>", ...)."""
        state = {"step": np.array(self.step_count, dtype=np.int64)}
        for name, buffers in self._buffers().items():
            state.update({f"{name}.{k}": v.copy() for k, v in buffers.items()})
        return state

    def load_state_dict(self, state):
        """Copy a ``state_dict()`` in; every key, shape and dtype is checked before anything changes."""
        where = f"{type(self).__name__}.load_state_dict"
        buffers = {f"{name}.{k}": buf for name, group in self._buffers().items() for k, buf in group.items()}
        expected = {"step", *buffers}
        missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or extra:
            raise ValueError(f"{where}: missing {missing}, unexpected {extra}")
        step = np.asarray(state["step"])
        if step.shape != () or step.dtype.kind not in "iu" or step < 0:
            raise ValueError(f"{where}: step: expected a non-negative integer scalar, got {step.tolist()!r}")
        for key, buf in buffers.items():
            value = state[key]
            if not isinstance(value, np.ndarray) or value.shape != buf.shape or value.dtype != buf.dtype:
                found = f"{value.shape} {value.dtype}" if isinstance(value, np.ndarray) else type(value).__name__
                raise ValueError(f"{where}: {key}: expected {buf.shape} {buf.dtype}, got {found}")
        self.step_count = int(step)
        for key, buf in buffers.items():
            buf[...] = state[key]


class Adam(Optimizer):
    """Adam with bias correction (Kingma & Ba, 2015); the update is a backend kernel.

    lr > 0 and eps > 0 finite; betas = (beta1, beta2), each in [0, 1).
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, lr)
        if isinstance(betas, (str, bytes)) or not hasattr(betas, "__len__") or len(betas) != 2:
            raise ValueError(f"Adam: betas must be a pair (beta1, beta2), each in [0, 1), got {betas!r}")
        self.beta1, self.beta2 = (_in_unit_interval(b, f"betas[{i}]", "Adam") for i, b in enumerate(betas))
        self.eps = _finite_positive(eps, "eps", "Adam")
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}

    def config(self):
        """{"type": "Adam", "lr", "betas": [beta1, beta2], "eps"}: JSON, stored in checkpoints."""
        return {"type": "Adam", "lr": self.lr, "betas": [self.beta1, self.beta2], "eps": self.eps}

    def _buffers(self):
        return {"m": self.m, "v": self.v}

    def step(self, grads):
        self._check_grads(grads)
        self.step_count += 1
        update = kernels().adam_update
        for k, param in self.params.items():
            update(param, grads[k], self.m[k], self.v[k], self.lr, self.beta1, self.beta2, self.eps, self.step_count)


class SGD(Optimizer):
    """SGD with (heavy-ball) momentum: v <- momentum * v + g;  param <- param - lr * v.

    lr > 0 finite; momentum in [0, 1) (0: plain SGD).
    """

    def __init__(self, params, lr=1e-2, momentum=0.9):
        super().__init__(params, lr)
        self.momentum = _in_unit_interval(momentum, "momentum", "SGD")
        self.velocity = {k: np.zeros_like(v) for k, v in params.items()}

    def config(self):
        """{"type": "SGD", "lr", "momentum"}: JSON, stored in checkpoints."""
        return {"type": "SGD", "lr": self.lr, "momentum": self.momentum}

    def _buffers(self):
        return {"velocity": self.velocity}

    def step(self, grads):
        self._check_grads(grads)
        self.step_count += 1
        for k, param in self.params.items():
            velocity = self.velocity[k]
            velocity *= self.momentum
            velocity += grads[k]
            param -= self.lr * velocity

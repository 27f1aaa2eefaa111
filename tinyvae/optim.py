"""Optimizers that update a model's ``params`` in place from its ``grads``.

    opt = Adam(model.params, lr=1e-3)
    model.loss_and_grads(x, rng)
    opt.step(model.grads)
"""

import numpy as np

from .backend import kernels


class Optimizer:
    def __init__(self, params, lr):
        if not lr > 0:
            raise ValueError(f"{type(self).__name__}: lr must be > 0, got {lr}")
        self.params, self.lr = params, float(lr)
        self.step_count = 0

    def _check_grads(self, grads):
        if grads.keys() != self.params.keys():
            missing, extra = set(self.params) - set(grads), set(grads) - set(self.params)
            raise ValueError(f"{type(self).__name__}.step: missing grads {sorted(missing)}, unexpected {sorted(extra)}")
        for k, g in grads.items():
            if g.shape != self.params[k].shape:
                raise ValueError(f"{type(self).__name__}.step: grad {k} has shape {g.shape}, param {self.params[k].shape}")

    def state_dict(self):
        """Step count and moment buffers as plain arrays (saved in checkpoints)."""
        state = {"step": np.array(self.step_count)}
        for name, buffers in self._buffers().items():
            state.update({f"{name}.{k}": v.copy() for k, v in buffers.items()})
        return state

    def load_state_dict(self, state):
        self.step_count = int(state["step"])
        for name, buffers in self._buffers().items():
            for k, buf in buffers.items():
                key = f"{name}.{k}"
                if key not in state or state[key].shape != buf.shape:
                    raise ValueError(f"{type(self).__name__}.load_state_dict: missing or mis-shaped buffer {key}")
                buf[...] = state[key]


class Adam(Optimizer):
    """Adam with bias correction (Kingma & Ba, 2015); the update is a backend kernel."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, lr)
        self.beta1, self.beta2 = (float(b) for b in betas)
        self.eps = float(eps)
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}

    def _buffers(self):
        return {"m": self.m, "v": self.v}

    def step(self, grads):
        self._check_grads(grads)
        self.step_count += 1
        update = kernels().adam_update
        for k, param in self.params.items():
            update(param, grads[k], self.m[k], self.v[k], self.lr, self.beta1, self.beta2, self.eps, self.step_count)


class SGD(Optimizer):
    """SGD with (heavy-ball) momentum: v <- momentum * v + g;  param <- param - lr * v."""

    def __init__(self, params, lr=1e-2, momentum=0.9):
        super().__init__(params, lr)
        self.momentum = float(momentum)
        self.velocity = {k: np.zeros_like(v) for k, v in params.items()}

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

"""Batch normalization: ``BatchNorm2D`` over (N, C, H, W) and ``BatchNorm1D`` over (N, C).

    bn = BatchNorm2D(64)
    y = bn.forward(x)          # training: normalize with the batch's statistics, update the running ones
    dx = bn.backward(dy)       # bn.grads: {"gamma", "beta"}
    bn.eval()                  # now normalize with the running statistics (an affine map)

Per channel c, over its M = N*H*W values (N for BatchNorm1D):
y = gamma_c (x - mean_c) / sqrt(var_c + eps) + beta_c.

* Parameters (``_params``, updated by the optimizer): ``gamma`` (ones) and ``beta`` (zeros).
* Buffers (``_buffers``, saved in checkpoints, never optimized): ``running_mean`` (zeros) and
  ``running_var`` (ones), updated in training mode with PyTorch's convention:
  running = (1 - momentum) running + momentum batch, where the batch variance folded into
  ``running_var`` is the *unbiased* one (divided by M - 1), while normalization uses the
  biased one (divided by M), as PyTorch does.

The gradients, derived once: :func:`tinyvae.kernels_numpy.batchnorm_backward`.
"""

import numpy as np

from .backend import kernels
from .module import Module, check_dtype, check_int


class _BatchNorm(Module):
    ndim = None  # 2 for BatchNorm1D, 4 for BatchNorm2D
    shape_text = None

    def __init__(self, num_features, momentum=0.1, eps=1e-5, dtype=np.float32):
        super().__init__()
        name = type(self).__name__
        self.num_features = check_int(num_features, "num_features", name, 1)
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0.0 <= momentum <= 1.0:
            raise ValueError(f"{name}: momentum must be a number in [0, 1], got {momentum!r}")
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0.0:
            raise ValueError(f"{name}: eps must be a number > 0, got {eps!r}")
        self.momentum, self.eps = float(momentum), float(eps)
        dtype = check_dtype(dtype, name)
        C = self.num_features
        self._params = {"gamma": np.ones(C, dtype=dtype), "beta": np.zeros(C, dtype=dtype)}
        self._buffers = {"running_mean": np.zeros(C, dtype=dtype), "running_var": np.ones(C, dtype=dtype)}

    def config(self):
        return {"num_features": self.num_features, "momentum": self.momentum, "eps": self.eps}

    def forward(self, x):
        C = self.num_features
        self._check_input(x, self.ndim, self.shape_text.format(C=C))
        if x.shape[1] != C:
            shape = self.shape_text.format(C=C)
            raise ValueError(f"{self!r}: expected {C} channels, input of shape {shape}, got {x.shape}")
        k = kernels()
        if self.training:
            M = x.size // C  # values per channel: N*H*W
            if M < 2:
                raise ValueError(
                    f"{self!r}: training mode needs at least 2 values per channel (N*H*W >= 2) for a batch "
                    f"variance, got input of shape {x.shape}; use a larger batch or call .eval()"
                )
            mean, var = k.batchnorm_statistics(x)  # (C,) each, var biased
            m = self.momentum
            running_mean, running_var = self._buffers["running_mean"], self._buffers["running_var"]
            running_mean[...] = (1.0 - m) * running_mean + m * mean
            running_var[...] = (1.0 - m) * running_var + m * var * (M / (M - 1))  # unbiased, as PyTorch
        else:
            mean, var = self._buffers["running_mean"], self._buffers["running_var"]
        gamma, beta = self._params["gamma"], self._params["beta"]
        out, self._x_hat, self._inv_std = k.batchnorm_forward(x, gamma, beta, mean, var, self.eps)
        self._batch_statistics = self.training  # the backward follows the mode of its forward
        self._out_shape = out.shape
        return out

    def backward(self, dout):
        """dout -> dx, same shape; the formulas: :func:`tinyvae.kernels_numpy.batchnorm_backward`."""
        self._check_dout(dout)
        dx, dgamma, dbeta = kernels().batchnorm_backward(
            dout, self._x_hat, self._params["gamma"], self._inv_std, self._batch_statistics
        )
        self._grads = {"gamma": dgamma, "beta": dbeta}
        return dx


class BatchNorm1D(_BatchNorm):
    """Batch normalization of (N, C) features, per feature over the batch."""

    ndim, shape_text = 2, "(N, {C})"


class BatchNorm2D(_BatchNorm):
    """Batch normalization of (N, C, H, W) images, per channel over the batch and the pixels."""

    ndim, shape_text = 4, "(N, {C}, H, W)"

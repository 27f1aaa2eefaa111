"""Layers with a hand-written backward pass.

Every layer has ``forward(x)``, which caches what its backward needs, and
``backward(dout) -> dx``, which also *overwrites* ``layer.grads`` (same keys as
``layer.params``). Parameters are created in ``__init__`` from an explicit
``numpy.random.Generator``. Heavy lifting goes through :func:`tinyvae.backend.kernels`.
"""

import numpy as np

from .backend import kernels
from .kernels_numpy import conv_output_size, conv_transpose_output_size


def _pair(value, name, layer):
    """Normalize an int or a pair of ints to a tuple (height, width)."""
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) for v in pair):
        raise ValueError(f"{layer}: {name} must be an int or a pair of ints, got {value!r}")
    return tuple(int(v) for v in pair)


class Layer:
    """Base class: no parameters, identity shape checks."""

    def __init__(self):
        self.params = {}
        self.grads = {}
        self._out_shape = None

    @property
    def dtype(self):
        first = next(iter(self.params.values()), None)
        return None if first is None else first.dtype

    def config(self):
        """The constructor arguments, as plain JSON values (used for reprs and checkpoints)."""
        return {}

    def __repr__(self):
        args = ", ".join(f"{k}={v}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"

    # -- input checks shared by every layer ----------------------------------------------
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

    def _check_dout(self, dout):
        if self._out_shape is None:
            raise RuntimeError(f"{self!r}: backward called before forward")
        if dout.shape != self._out_shape:
            raise ValueError(f"{self!r}: expected dout of shape {self._out_shape}, got {dout.shape}")


# --------------------------------------------------------------------------------------
# Parametric layers
# --------------------------------------------------------------------------------------


class Dense(Layer):
    """y = x W + b with W shaped (in_features, out_features). Glorot-uniform init, zero bias."""

    def __init__(self, in_features, out_features, rng, dtype=np.float32):
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        limit = np.sqrt(6.0 / (in_features + out_features))
        self.params = {
            "weight": rng.uniform(-limit, limit, size=(in_features, out_features)).astype(dtype),
            "bias": np.zeros(out_features, dtype=dtype),
        }

    def config(self):
        return {"in_features": self.in_features, "out_features": self.out_features}

    def forward(self, x):
        self._check_input(x, 2, f"(N, {self.in_features})")
        if x.shape[1] != self.in_features:
            raise ValueError(f"{self!r}: expected input of shape (N, {self.in_features}), got {x.shape}")
        self._x = x  # (N, in), cached: dW = x^T dout
        out = kernels().dense_forward(x, self.params["weight"], self.params["bias"])  # (N, out)
        self._out_shape = out.shape
        return out

    def backward(self, dout):
        """dout (N, out) -> dx (N, in): dx = dout W^T;  dW = x^T dout (in, out);  db = sum_n dout (out,)."""
        self._check_dout(dout)
        dx, dweight, dbias = kernels().dense_backward(dout, self._x, self.params["weight"])
        self.grads = {"weight": dweight, "bias": dbias}
        return dx  # (N, in)


class Conv2D(Layer):
    """2-D cross-correlation over NCHW input; weight (C_out, C_in, kH, kW). He-normal init."""

    def __init__(self, in_channels, out_channels, kernel_size, rng, stride=1, padding=0, dtype=np.float32):
        super().__init__()
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = _pair(kernel_size, "kernel_size", "Conv2D")
        self.stride = _pair(stride, "stride", "Conv2D")
        self.padding = _pair(padding, "padding", "Conv2D")
        if min(self.kernel_size) < 1 or min(self.stride) < 1 or min(self.padding) < 0:
            raise ValueError(f"{self!r}: kernel_size and stride must be >= 1 and padding >= 0")
        kH, kW = self.kernel_size
        fan_in = in_channels * kH * kW
        self.params = {
            "weight": (rng.standard_normal((out_channels, in_channels, kH, kW)) * np.sqrt(2.0 / fan_in)).astype(dtype),
            "bias": np.zeros(out_channels, dtype=dtype),
        }

    def config(self):
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": list(self.kernel_size),
            "stride": list(self.stride),
            "padding": list(self.padding),
        }

    def output_shape(self, input_shape):
        """(N, C_out, Ho, Wo) for an (N, C_in, H, W) input; Ho = floor((H + 2p - k) / s) + 1."""
        N, _, H, W = input_shape
        Ho = conv_output_size(H, self.kernel_size[0], self.stride[0], self.padding[0])
        Wo = conv_output_size(W, self.kernel_size[1], self.stride[1], self.padding[1])
        return (N, self.out_channels, Ho, Wo)

    def forward(self, x):
        self._check_input(x, 4, f"(N, {self.in_channels}, H, W)")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"{self!r}: expected {self.in_channels} input channels (N, C, H, W), got shape {x.shape}")
        out_shape = self.output_shape(x.shape)
        if min(out_shape[2:]) < 1:
            raise ValueError(f"{self!r}: input of spatial size {x.shape[2:]} is smaller than the kernel")
        self._x = x  # (N, C_in, H, W)
        out = kernels().conv2d_forward(x, self.params["weight"], self.params["bias"], self.stride, self.padding)
        self._out_shape = out.shape  # (N, C_out, Ho, Wo)
        return out

    def backward(self, dout):
        """dout (N, C_out, Ho, Wo) -> dx (N, C_in, H, W).

        dW[f, c] = sum_n x[n, c] * dout[n, f] (as a correlation), i.e. dout_rows^T @ im2col(x);
        db[f] = sum dout[:, f]; dx = col2im(dout_rows @ W), the transposed convolution of dout.
        """
        self._check_dout(dout)
        dx, dweight, dbias = kernels().conv2d_backward(dout, self._x, self.params["weight"], self.stride, self.padding)
        self.grads = {"weight": dweight, "bias": dbias}
        return dx  # (N, C_in, H, W)


class ConvTranspose2D(Layer):
    """Transposed convolution (the adjoint of Conv2D); weight (C_in, C_out, kH, kW).

    Output size, as in PyTorch: Ho = (H - 1) s - 2p + kH + output_padding.
    """

    def __init__(
        self, in_channels, out_channels, kernel_size, rng, stride=1, padding=0, output_padding=0, dtype=np.float32
    ):
        super().__init__()
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = _pair(kernel_size, "kernel_size", "ConvTranspose2D")
        self.stride = _pair(stride, "stride", "ConvTranspose2D")
        self.padding = _pair(padding, "padding", "ConvTranspose2D")
        self.output_padding = _pair(output_padding, "output_padding", "ConvTranspose2D")
        if min(self.kernel_size) < 1 or min(self.stride) < 1 or min(self.padding) < 0:
            raise ValueError(f"{self!r}: kernel_size and stride must be >= 1 and padding >= 0")
        if not all(0 <= op < s for op, s in zip(self.output_padding, self.stride)):
            raise ValueError(f"{self!r}: output_padding must be >= 0 and smaller than stride")
        kH, kW = self.kernel_size
        fan_in = in_channels * kH * kW // (self.stride[0] * self.stride[1]) or 1
        self.params = {
            "weight": (rng.standard_normal((in_channels, out_channels, kH, kW)) * np.sqrt(2.0 / fan_in)).astype(dtype),
            "bias": np.zeros(out_channels, dtype=dtype),
        }

    def config(self):
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": list(self.kernel_size),
            "stride": list(self.stride),
            "padding": list(self.padding),
            "output_padding": list(self.output_padding),
        }

    def output_shape(self, input_shape):
        N, _, H, W = input_shape
        Ho = conv_transpose_output_size(H, self.kernel_size[0], self.stride[0], self.padding[0], self.output_padding[0])
        Wo = conv_transpose_output_size(W, self.kernel_size[1], self.stride[1], self.padding[1], self.output_padding[1])
        return (N, self.out_channels, Ho, Wo)

    def forward(self, x):
        self._check_input(x, 4, f"(N, {self.in_channels}, H, W)")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"{self!r}: expected {self.in_channels} input channels (N, C, H, W), got shape {x.shape}")
        if min(self.output_shape(x.shape)[2:]) < 1:
            raise ValueError(f"{self!r}: padding {self.padding} leaves no output for input size {x.shape[2:]}")
        self._x = x  # (N, C_in, H, W)
        out = kernels().conv_transpose2d_forward(
            x, self.params["weight"], self.params["bias"], self.stride, self.padding, self.output_padding
        )
        self._out_shape = out.shape  # (N, C_out, Ho, Wo)
        return out

    def backward(self, dout):
        """dx = conv2d(dout, W) (Conv2D's forward is this layer's adjoint);
        dW[ci, co] = sum_n x[n, ci] * dout[n, co] (as a correlation); db[co] = sum dout[:, co]."""
        self._check_dout(dout)
        dx, dweight, dbias = kernels().conv_transpose2d_backward(
            dout, self._x, self.params["weight"], self.stride, self.padding
        )
        self.grads = {"weight": dweight, "bias": dbias}
        return dx  # (N, C_in, H, W)


# --------------------------------------------------------------------------------------
# Activations (elementwise; they accept any shape)
# --------------------------------------------------------------------------------------


class _Elementwise(Layer):
    def _check(self, x):
        if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"{self!r}: expected a floating-point numpy array, got {getattr(x, 'dtype', type(x))}")

    def _remember_shape(self, out):
        self._out_shape = out.shape
        return out


class ReLU(_Elementwise):
    def forward(self, x):
        self._check(x)
        self._out = kernels().relu_forward(x)  # max(x, 0), NaN kept
        return self._remember_shape(self._out)

    def backward(self, dout):
        """dx = dout where x > 0 (where the output is > 0), else 0."""
        self._check_dout(dout)
        return kernels().relu_backward(dout, self._out)


class LeakyReLU(_Elementwise):
    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = float(negative_slope)

    def config(self):
        return {"negative_slope": self.negative_slope}

    def forward(self, x):
        self._check(x)
        self._positive = x > 0
        return self._remember_shape(np.where(self._positive, x, self.negative_slope * x))

    def backward(self, dout):
        """dx = dout where x > 0, else negative_slope * dout."""
        self._check_dout(dout)
        return np.where(self._positive, dout, self.negative_slope * dout)


class Sigmoid(_Elementwise):
    def forward(self, x):
        self._check(x)
        self._y = 0.5 * (1.0 + np.tanh(0.5 * x))  # sigmoid without overflow; cached: backward needs y
        return self._remember_shape(self._y)

    def backward(self, dout):
        """dx = dout * y (1 - y), with y = sigmoid(x)."""
        self._check_dout(dout)
        return dout * self._y * (1.0 - self._y)


class Tanh(_Elementwise):
    def forward(self, x):
        self._check(x)
        self._y = np.tanh(x)  # cached: backward needs y, not x
        return self._remember_shape(self._y)

    def backward(self, dout):
        """dx = dout * (1 - y^2), with y = tanh(x)."""
        self._check_dout(dout)
        return dout * (1.0 - self._y * self._y)


# --------------------------------------------------------------------------------------
# Shape layers
# --------------------------------------------------------------------------------------


class Flatten(Layer):
    """(N, d1, d2, ...) -> (N, d1*d2*...)."""

    def forward(self, x):
        if not isinstance(x, np.ndarray) or x.ndim < 2:
            raise ValueError(f"{self!r}: expected an array of shape (N, ...), got {getattr(x, 'shape', type(x))}")
        self._in_shape = x.shape
        out = x.reshape(x.shape[0], -1)
        self._out_shape = out.shape
        return out

    def backward(self, dout):
        """dx = dout reshaped back to the input's shape."""
        self._check_dout(dout)
        return dout.reshape(self._in_shape)


class Reshape(Layer):
    """(N, prod(shape)) -> (N, *shape); the batch axis is kept."""

    def __init__(self, *shape):
        super().__init__()
        self.shape = tuple(int(s) for s in shape)

    def config(self):
        return {"shape": list(self.shape)}

    def __repr__(self):
        return f"Reshape{self.shape}"

    def forward(self, x):
        if not isinstance(x, np.ndarray) or x.ndim < 1 or int(np.prod(x.shape[1:])) != int(np.prod(self.shape)):
            raise ValueError(
                f"{self!r}: expected (N, ...) with {int(np.prod(self.shape))} values per example, "
                f"got shape {getattr(x, 'shape', type(x))}"
            )
        self._in_shape = x.shape
        out = x.reshape((x.shape[0],) + self.shape)
        self._out_shape = out.shape
        return out

    def backward(self, dout):
        """dx = dout reshaped back to the input's shape."""
        self._check_dout(dout)
        return dout.reshape(self._in_shape)


# --------------------------------------------------------------------------------------
# Container
# --------------------------------------------------------------------------------------


class Sequential(Layer):
    """Layers applied in order; backward walks them in reverse.

    ``params`` and ``grads`` are flat dicts keyed ``"<index>.<name>"`` that share memory
    with the layers' own arrays, so an optimizer updating them updates the layers.
    """

    def __init__(self, *layers):
        super().__init__()
        self.layers = list(layers)
        self.params = {f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.params.items()}

    def __repr__(self):
        inner = "".join(f"\n  ({i}) {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential({inner}\n)"

    def __getitem__(self, index):
        return self.layers[index]

    def __len__(self):
        return len(self.layers)

    def architecture(self):
        """A JSON-able description: one {"type", **config} entry per layer."""
        return [{"type": type(layer).__name__, **layer.config()} for layer in self.layers]

    def forward(self, x):
        """Apply the layers in order; each caches what its backward needs."""
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dout):
        """Chain rule: hand each layer the gradient of the one after it, last layer first."""
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        self.grads = {f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.grads.items()}
        return dout

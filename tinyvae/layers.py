"""Layers with a hand-written backward pass.

Every layer is a :class:`tinyvae.module.Module` with ``forward(x)``, which caches what its
backward needs, and ``backward(dout) -> dx``, which also *overwrites* the layer's gradients
(``layer.grads``, same keys as ``layer.params``). Parameters are created in ``__init__``
from an explicit ``numpy.random.Generator``. Heavy lifting goes through
:func:`tinyvae.backend.kernels`; each gradient's formula is stated once, in the docstring of
the reference kernel in :mod:`tinyvae.kernels_numpy` that the backward calls.
"""

import numpy as np

from .backend import kernels
from .geometry import conv_output_size, conv_transpose_output_size
from .module import Module, check_batch, check_dtype, check_int, check_pair, check_rng

# --------------------------------------------------------------------------------------
# Parametric layers
# --------------------------------------------------------------------------------------


class Dense(Module):
    """y = x W + b with W shaped (in_features, out_features). Glorot-uniform init, zero bias."""

    def __init__(self, in_features, out_features, rng, dtype=np.float32):
        super().__init__()
        self.in_features = check_int(in_features, "in_features", "Dense", 1)
        self.out_features = check_int(out_features, "out_features", "Dense", 1)
        check_rng(rng, "Dense")
        dtype = check_dtype(dtype, "Dense")
        limit = np.sqrt(6.0 / (in_features + out_features))
        self._params = {
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
        out = kernels().dense_forward(x, self._params["weight"], self._params["bias"])  # (N, out)
        self._out_shape = out.shape
        return out

    def backward(self, dout, input_grad=True):
        """dout (N, out) -> dx (N, in), or None when ``input_grad`` is False (the input is data:
        the dx product is skipped); the formulas: :func:`tinyvae.kernels_numpy.dense_backward`."""
        self._check_dout(dout)
        dx, dweight, dbias = kernels().dense_backward(dout, self._x, self._params["weight"], input_grad)
        self._grads = {"weight": dweight, "bias": dbias}
        return dx  # (N, in)


class _Conv(Module):
    """What Conv2D and ConvTranspose2D share: argument checks, He-normal init, config, input checks.

    ``weight_shape`` is (C_out, C_in, kH, kW) for Conv2D and (C_in, C_out, kH, kW) for
    ConvTranspose2D, as in PyTorch; ``fan_in`` is the number of inputs summed per output.
    """

    def __init__(self, in_channels, out_channels, kernel_size, rng, stride, padding, dtype):
        super().__init__()
        name = type(self).__name__
        self.in_channels = check_int(in_channels, "in_channels", name, 1)
        self.out_channels = check_int(out_channels, "out_channels", name, 1)
        self.kernel_size = check_pair(kernel_size, "kernel_size", name, 1)
        self.stride = check_pair(stride, "stride", name, 1)
        self.padding = check_pair(padding, "padding", name, 0)
        check_rng(rng, name)
        dtype = check_dtype(dtype, name)
        weight_shape, fan_in = self._weight_shape_and_fan_in()
        self._params = {
            "weight": (rng.standard_normal(weight_shape) * np.sqrt(2.0 / fan_in)).astype(dtype),
            "bias": np.zeros(self.out_channels, dtype=dtype),
        }

    def config(self):
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": list(self.kernel_size),
            "stride": list(self.stride),
            "padding": list(self.padding),
        }

    def _check_conv_input(self, x):
        self._check_input(x, 4, f"(N, {self.in_channels}, H, W)")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"{self!r}: expected {self.in_channels} input channels (N, C, H, W), got shape {x.shape}")
        if min(self.output_shape(x.shape)[2:]) < 1:
            raise ValueError(f"{self!r}: input of spatial size {x.shape[2:]} is smaller than the kernel needs: no output pixel")


class Conv2D(_Conv):
    """2-D cross-correlation over NCHW input; weight (C_out, C_in, kH, kW). He-normal init."""

    def __init__(self, in_channels, out_channels, kernel_size, rng, stride=1, padding=0, dtype=np.float32):
        super().__init__(in_channels, out_channels, kernel_size, rng, stride, padding, dtype)

    def _weight_shape_and_fan_in(self):
        kH, kW = self.kernel_size
        return (self.out_channels, self.in_channels, kH, kW), self.in_channels * kH * kW

    def output_shape(self, input_shape):
        """(N, C_out, Ho, Wo) for an (N, C_in, H, W) input; Ho = floor((H + 2p - k) / s) + 1."""
        N, _, H, W = input_shape
        Ho = conv_output_size(H, self.kernel_size[0], self.stride[0], self.padding[0])
        Wo = conv_output_size(W, self.kernel_size[1], self.stride[1], self.padding[1])
        return (N, self.out_channels, Ho, Wo)

    def forward(self, x):
        self._check_conv_input(x)
        self._x = x  # (N, C_in, H, W)
        out = kernels().conv2d_forward(x, self._params["weight"], self._params["bias"], self.stride, self.padding)
        self._out_shape = out.shape  # (N, C_out, Ho, Wo)
        return out

    def backward(self, dout, input_grad=True):
        """dout (N, C_out, Ho, Wo) -> dx (N, C_in, H, W), or None when ``input_grad`` is False;
        the formulas: :func:`tinyvae.kernels_numpy.conv2d_backward`."""
        self._check_dout(dout)
        dx, dweight, dbias = kernels().conv2d_backward(
            dout, self._x, self._params["weight"], self.stride, self.padding, input_grad
        )
        self._grads = {"weight": dweight, "bias": dbias}
        return dx  # (N, C_in, H, W)


class ConvTranspose2D(_Conv):
    """Transposed convolution (the adjoint of Conv2D); weight (C_in, C_out, kH, kW).

    Output size, as in PyTorch: Ho = (H - 1) s - 2p + kH + output_padding.
    """

    def __init__(
        self, in_channels, out_channels, kernel_size, rng, stride=1, padding=0, output_padding=0, dtype=np.float32
    ):
        super().__init__(in_channels, out_channels, kernel_size, rng, stride, padding, dtype)
        self.output_padding = check_pair(output_padding, "output_padding", "ConvTranspose2D", 0)
        if not all(op < s for op, s in zip(self.output_padding, self.stride)):
            raise ValueError(f"{self!r}: output_padding must be >= 0 and smaller than stride")

    def _weight_shape_and_fan_in(self):
        kH, kW = self.kernel_size
        fan_in = self.in_channels * kH * kW // (self.stride[0] * self.stride[1]) or 1
        return (self.in_channels, self.out_channels, kH, kW), fan_in

    def config(self):
        return {**super().config(), "output_padding": list(self.output_padding)}

    def output_shape(self, input_shape):
        N, _, H, W = input_shape
        Ho = conv_transpose_output_size(H, self.kernel_size[0], self.stride[0], self.padding[0], self.output_padding[0])
        Wo = conv_transpose_output_size(W, self.kernel_size[1], self.stride[1], self.padding[1], self.output_padding[1])
        return (N, self.out_channels, Ho, Wo)

    def forward(self, x):
        self._check_conv_input(x)
        self._x = x  # (N, C_in, H, W)
        out = kernels().conv_transpose2d_forward(
            x, self._params["weight"], self._params["bias"], self.stride, self.padding, self.output_padding
        )
        self._out_shape = out.shape  # (N, C_out, Ho, Wo)
        return out

    def backward(self, dout, input_grad=True):
        """dout (N, C_out, Ho, Wo) -> dx (N, C_in, H, W), or None when ``input_grad`` is False;
        the formulas: :func:`tinyvae.kernels_numpy.conv_transpose2d_backward`."""
        self._check_dout(dout)
        dx, dweight, dbias = kernels().conv_transpose2d_backward(
            dout, self._x, self._params["weight"], self.stride, self.padding, input_grad
        )
        self._grads = {"weight": dweight, "bias": dbias}
        return dx  # (N, C_in, H, W)


# --------------------------------------------------------------------------------------
# Activations (elementwise; they accept any shape)
# --------------------------------------------------------------------------------------


class _Elementwise(Module):
    """ReLU and LeakyReLU have backend kernels (they run on the conv and faces presets' largest
    activations); the others are one NumPy expression each, with their formula in their backward's docstring."""

    def _check(self, x):
        if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"{self!r}: expected a floating-point numpy array, got {getattr(x, 'dtype', type(x))}")
        check_batch(x, repr(self))

    def _remember_shape(self, out):
        self._out_shape = out.shape
        return out


class ReLU(_Elementwise):
    def forward(self, x):
        self._check(x)
        self._out = kernels().relu_forward(x)  # max(x, 0), NaN kept
        return self._remember_shape(self._out)

    def backward(self, dout):
        """dout -> dx, any shape; the formula: :func:`tinyvae.kernels_numpy.relu_backward`."""
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
        self._x = x  # backward needs the sign of x
        return self._remember_shape(kernels().leaky_relu_forward(x, self.negative_slope))

    def backward(self, dout):
        """dout -> dx, any shape; the formula: :func:`tinyvae.kernels_numpy.leaky_relu_backward`."""
        self._check_dout(dout)
        return kernels().leaky_relu_backward(dout, self._x, self.negative_slope)


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


class Flatten(Module):
    """(N, d1, d2, ...) -> (N, d1*d2*...)."""

    def forward(self, x):
        if not isinstance(x, np.ndarray) or x.ndim < 2:
            raise ValueError(f"{self!r}: expected an array of shape (N, ...), got {getattr(x, 'shape', type(x))}")
        check_batch(x, repr(self))
        self._in_shape = x.shape
        out = x.reshape(x.shape[0], -1)
        self._out_shape = out.shape
        return out

    def backward(self, dout):
        """dx = dout reshaped back to the input's shape."""
        self._check_dout(dout)
        return dout.reshape(self._in_shape)


class Reshape(Module):
    """(N, prod(shape)) -> (N, *shape); the batch axis is kept."""

    def __init__(self, *shape):
        super().__init__()
        self.shape = tuple(check_int(s, "shape", "Reshape", 1) for s in shape)

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
        check_batch(x, repr(self))
        self._in_shape = x.shape
        out = x.reshape((x.shape[0],) + self.shape)
        self._out_shape = out.shape
        return out

    def backward(self, dout):
        """dx = dout reshaped back to the input's shape."""
        self._check_dout(dout)
        return dout.reshape(self._in_shape)


# --------------------------------------------------------------------------------------
# Joining and splitting along the feature (or channel) axis: each is the other's backward
# --------------------------------------------------------------------------------------


def _check_parts(layer, parts, what):
    if not isinstance(parts, (list, tuple)) or not parts or not all(isinstance(p, np.ndarray) for p in parts):
        raise ValueError(f"{layer!r}: expected a list of numpy arrays {what}, got {type(parts).__name__}")
    first = parts[0]
    for p in parts:
        if p.ndim < 2 or p.shape[0] != first.shape[0] or p.shape[2:] != first.shape[2:] or p.dtype != first.dtype:
            shapes = [(p.shape, str(p.dtype)) for p in parts]
            raise ValueError(f"{layer!r}: expected arrays {what} of one dtype, differing only in axis 1; got {shapes}")
    check_batch(first, repr(layer))


class Concat(Module):
    """[a, b, ...] -> one array, joined along axis 1: (N, d_a, ...), (N, d_b, ...) -> (N, d_a + d_b, ...).

    E.g. a feature vector and a one-hot label, (N, D) and (N, K) -> (N, D + K). The backward
    is a split: each input gets the slice of dout that its values went to.
    """

    def forward(self, parts):
        _check_parts(self, parts, "(N, d_i, ...)")
        self._sizes = [p.shape[1] for p in parts]
        out = np.concatenate(parts, axis=1)
        self._out_shape = out.shape
        return out

    def backward(self, dout):
        """dout (N, sum d_i, ...) -> [dout[:, :d_a], dout[:, d_a:d_a + d_b], ...]."""
        self._check_dout(dout)
        return np.split(dout, np.cumsum(self._sizes)[:-1], axis=1)


class Split(Module):
    """One array -> parts along axis 1 of the given sizes: (N, d_a + d_b, ...) -> [(N, d_a, ...), (N, d_b, ...)].

    E.g. an encoder's output h (N, 2L) -> [mu, logvar]. The parts are views into the input.
    The backward is a concatenation: each part's gradient goes back where the part came from.
    """

    def __init__(self, *sizes):
        super().__init__()
        if not sizes:
            raise ValueError("Split: give the size of each part along axis 1, e.g. Split(2, 2)")
        self.sizes = tuple(check_int(d, "sizes", "Split", 1) for d in sizes)

    def config(self):
        return {"sizes": list(self.sizes)}

    def forward(self, x):
        total = sum(self.sizes)
        if not isinstance(x, np.ndarray) or x.ndim < 2 or x.shape[1] != total:
            raise ValueError(f"{self!r}: expected an array of shape (N, {total}, ...), got {getattr(x, 'shape', type(x))}")
        check_batch(x, repr(self))
        self._in_shape = x.shape
        return np.split(x, np.cumsum(self.sizes)[:-1], axis=1)

    def backward(self, douts):
        """[dpart_a, dpart_b, ...] -> dx = concatenate(douts, axis 1), the input's shape."""
        if not hasattr(self, "_in_shape"):
            raise RuntimeError(f"{self!r}: backward called before forward")
        _check_parts(self, douts, "shaped like the parts")
        dx = np.concatenate(douts, axis=1)
        if dx.shape != self._in_shape or [d.shape[1] for d in douts] != list(self.sizes):
            raise ValueError(f"{self!r}: expected douts shaped like the parts of {self._in_shape}, got {[d.shape for d in douts]}")
        return dx


# --------------------------------------------------------------------------------------
# Container
# --------------------------------------------------------------------------------------


class Sequential(Module):
    """Layers applied in order; backward walks them in reverse.

    The layers are the children ``"0"``, ``"1"``, ...: ``params`` and ``grads`` are keyed
    ``"<index>.<name>"`` and share memory with the layers' own arrays.
    """

    def __init__(self, *layers):
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise ValueError(f"Sequential: layer {i} must be a tinyvae Module, got {type(layer).__name__}")
        self.layers = list(layers)
        self._children = {str(i): layer for i, layer in enumerate(self.layers)}

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

    def backward(self, dout, input_grad=True):
        """Chain rule: hand each layer the gradient of the one after it, last layer first.

        ``input_grad=False`` when the input is data (an encoder's images): the walk ends at the
        first layer with parameters, which computes only their gradients if it can (Dense,
        Conv2D and ConvTranspose2D skip their dx product), and None is returned.
        """
        first = 0 if input_grad else next((i for i, layer in enumerate(self.layers) if layer.params), 0)
        for i in range(len(self.layers) - 1, first - 1, -1):
            layer = self.layers[i]
            if i == first and not input_grad and isinstance(layer, (Dense, _Conv)):
                return layer.backward(dout, input_grad=False)
            dout = layer.backward(dout)
        return dout if input_grad else None


# --------------------------------------------------------------------------------------
# Conditioning on a class label (appended block: the conditional VAE)
# --------------------------------------------------------------------------------------


class Condition(Module):
    """x (M, D) -> [x | onehot(y)] (M, D + num_classes): the label joins the features, via :class:`Concat`.

    The labels come from outside the data path: the model calls ``set_labels(y)`` with y (N,)
    before each pass. x may have M = r * N rows (r samples per example, row i * N + n belonging
    to example n, as in an importance-weighted pass); the one-hot is then repeated r times.
    The label is an input, not a parameter: the backward returns only dx = dout[:, :D].
    """

    def __init__(self, num_classes):
        super().__init__()
        self.num_classes = check_int(num_classes, "num_classes", "Condition", 2)
        self.joiner = Concat()
        self._onehot = None

    def config(self):
        return {"num_classes": self.num_classes}

    def set_labels(self, onehot):
        """The one-hot labels (N, num_classes) of the examples of the next passes."""
        if onehot.ndim != 2 or onehot.shape[1] != self.num_classes:
            raise ValueError(f"{self!r}: expected one-hot labels (N, {self.num_classes}), got {onehot.shape}")
        self._onehot = onehot

    def forward(self, x):
        if self._onehot is None:
            raise RuntimeError(f"{self!r}: no labels; the model sets them (set_labels) before the forward pass")
        self._check_input(x, 2, f"(N, D) with N a multiple of the {len(self._onehot)} labels")
        repeats, rest = divmod(x.shape[0], len(self._onehot))
        if rest:
            raise ValueError(f"{self!r}: {x.shape[0]} rows for {len(self._onehot)} labels; expected a multiple")
        onehot = np.tile(self._onehot.astype(x.dtype, copy=False), (repeats, 1))  # (M, num_classes)
        out = self.joiner.forward([x, onehot])  # (M, D + num_classes)
        self._out_shape = out.shape
        return out

    def backward(self, dout):
        """dout (M, D + num_classes) -> dx (M, D): the one-hot columns' gradient goes nowhere."""
        self._check_dout(dout)
        dx, _ = self.joiner.backward(dout)
        return dx

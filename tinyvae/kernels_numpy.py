"""Reference kernels in plain NumPy: the hot paths of tinyvae, written to be read.

Every backend (see :mod:`tinyvae.backend`) provides these functions with the same
signatures and the same results; the layers, losses and optimizers call them through
``tinyvae.backend.kernels()`` and never import a backend directly.

Conventions: images are NCHW; ``Conv2D`` weights are (C_out, C_in, kH, kW) and
``ConvTranspose2D`` weights are (C_in, C_out, kH, kW), as in PyTorch. ``stride`` and
``padding`` are (height, width) pairs of ints. Loss kernels return the per-example loss
(summed over the features, shape (N,)) and the gradient of its *batch mean*.
"""

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .geometry import conv_output_size, conv_transpose_output_size

# --------------------------------------------------------------------------------------
# im2col: a convolution as one matrix product
# --------------------------------------------------------------------------------------


def im2col(x_padded, kernel_size, stride, out_size):
    """Gather every receptive field of ``x_padded`` into one row.

    Row ``(n, ho, wo)`` holds ``x_padded[n, :, ho*sh:ho*sh+kH, wo*sw:wo*sw+kW]`` flattened
    in (kH, kW, C) order: the order of a ``Conv2D`` weight flattened by :func:`_taps_last`.
    Returns an (N*Ho*Wo, kH*kW*C) contiguous array. The input goes channels-last first, so
    that the copy moves runs of C contiguous values instead of runs of kW (3x faster).
    """
    (kH, kW), (sh, sw), (Ho, Wo) = kernel_size, stride, out_size
    x_nhwc = np.ascontiguousarray(x_padded.transpose(0, 2, 3, 1))  # (N, Hp, Wp, C)
    N, _, _, C = x_nhwc.shape
    sN, sH, sW, sC = x_nhwc.strides
    windows = as_strided(  # (N, Ho, Wo, kH, kW, C), a view: nothing copied yet
        x_nhwc,
        shape=(N, Ho, Wo, kH, kW, C),
        strides=(sN, sH * sh, sW * sw, sH, sW, sC),
        writeable=False,
    )
    return windows.reshape(N * Ho * Wo, kH * kW * C)  # the copy happens here


def col2im(cols, padded_shape, kernel_size, stride, out_size):
    """Adjoint of :func:`im2col`: scatter-add each row back onto its receptive field.

    ``cols`` is (N*Ho*Wo, kH*kW*C); returns the (N, C, Hp, Wp) array ``padded_shape``.
    This is the textbook (scatter) form of a transposed convolution, kept to be read and
    as the tests' second definition; the kernels compute the same sums in gather form,
    :func:`conv_transpose_phases`, which writes every output once instead of kH*kW times.
    """
    N, C, Hp, Wp = padded_shape
    (kH, kW), (sh, sw), (Ho, Wo) = kernel_size, stride, out_size
    patches = cols.reshape(N, Ho, Wo, kH, kW, C).transpose(0, 5, 3, 4, 1, 2)  # (N, C, kH, kW, Ho, Wo)
    x_padded = np.zeros(padded_shape, dtype=cols.dtype)  # (N, C, Hp, Wp)
    for i in range(kH):
        for j in range(kW):
            x_padded[:, :, i : i + sh * Ho : sh, j : j + sw * Wo : sw] += patches[:, :, i, j]
    return x_padded


def _taps_last(weight):
    """A (C_a, C_b, kH, kW) weight as the (C_a, kH*kW*C_b) matrix that multiplies :func:`im2col`'s rows."""
    return weight.transpose(0, 2, 3, 1).reshape(weight.shape[0], -1)


def _taps_first(matrix, weight_shape):
    """The inverse of :func:`_taps_last`: (C_a, kH*kW*C_b) back to ``weight_shape`` (C_a, C_b, kH, kW)."""
    C_a, C_b, kH, kW = weight_shape
    return np.ascontiguousarray(matrix.reshape(C_a, kH, kW, C_b).transpose(0, 3, 1, 2))


def _pad(x, padding):
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))


def phase_taps(phase, stride, padding, kernel):
    """The taps of one output phase of a transposed convolution, along one axis.

    Output o = s*m + r (phase r, 0 <= r < s) receives input i through tap k exactly when
    o = s*i - p + k, i.e. when (r + p - k) is a multiple of s, and then i = m + (r + p - k) // s.
    Returns [(k, shift)] with shift = (r + p - k) // s: output m of the phase reads input m + shift.
    """
    return [(k, (phase + padding - k) // stride) for k in range(kernel) if (phase + padding - k) % stride == 0]


def _valid(shift, size, count):
    """The range [lo, hi) of phase positions m (< count) whose input m + shift lies in [0, size)."""
    lo = max(0, -shift)
    return lo, max(lo, min(count, size - shift))


def conv_transpose_phases(x, weight, bias, stride, padding, out_size):
    """out = bias + the transposed convolution of x (the adjoint of a strided correlation), in gather form.

    x (N, C_in, H, W), weight (C_in, C_out, kH, kW), bias (C_out,); returns (N, C_out, Ho, Wo)
    with (Ho, Wo) = ``out_size``. ConvTranspose2D's forward and Conv2D's input gradient are
    both this operation.

    The textbook picture scatters: each input pixel stamps its kernel, scaled, onto the
    output at stride s, and overlapping stamps add up (col2im). Read from the output side it
    is a gather: output o = s*m + r receives input i through tap k when o = s*i - p + k, so
    the outputs of one *phase* r (every s-th row, starting at r) all use the same taps, at the
    same offsets. A stride-s transposed convolution is therefore s*s ordinary stride-1
    convolutions with small sub-kernels (the "sub-pixel" view of Shi et al. 2016; Dumoulin
    & Visin 2016), each writing its own disjoint quarter (for s = 2) of the output: no
    scatter, no overlapping writes, every output pixel computed once.

    Example, the conv preset's 7x7 -> 14x14 layer (3x3 kernel, s = 2, p = 1, output_padding 1):
    along each axis (:func:`phase_taps`), even outputs 2m take tap 1 at input m; odd outputs
    2m + 1 take tap 0 at input m + 1 and tap 2 at input m. So the four phases (even, even),
    (even, odd), (odd, even), (odd, odd) are convolutions with 1x1, 1x2, 2x1 and 2x2 taps:
    9 taps in all, exactly the kernel's, each used once per input pixel. Output row 13 (odd,
    m = 6) would read input row 7, past the edge: only its tap 2 (input row 6) contributes.

    Computed as: one matrix product of every input pixel with every tap (N*H*W, C_in) @
    (C_in, kH*kW*C_out), channels last; then each phase adds up its taps' products, each a
    shifted slice of that product, into out[:, r_y::s_y, r_x::s_x]. Any stride, padding and
    output size: a phase that no tap reaches keeps the bias.
    """
    N, C_in, H, W = x.shape  # (N, C_in, H, W)
    _, C_out, kH, kW = weight.shape  # (C_in, C_out, kH, kW)
    (sh, sw), (ph, pw), (Ho, Wo) = stride, padding, out_size
    x_rows = x.transpose(0, 2, 3, 1).reshape(N * H * W, C_in)  # (N*H*W, C_in)
    products = (x_rows @ _taps_last(weight)).reshape(N, H, W, kH, kW, C_out)  # every pixel times every tap
    out = np.empty((N, Ho, Wo, C_out), dtype=x.dtype)  # (N, Ho, Wo, C_out), channels last
    out[...] = bias
    for ry in range(min(sh, Ho)):
        for rx in range(min(sw, Wo)):
            phase = out[:, ry::sh, rx::sw]  # (N, My, Mx, C_out): this phase's outputs, a view
            My, Mx = phase.shape[1:3]
            for ky, dy in phase_taps(ry, sh, ph, kH):
                m0, m1 = _valid(dy, H, My)
                for kx, dx in phase_taps(rx, sw, pw, kW):
                    n0, n1 = _valid(dx, W, Mx)
                    phase[:, m0:m1, n0:n1] += products[:, m0 + dy : m1 + dy, n0 + dx : n1 + dx, ky, kx]
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))  # (N, C_out, Ho, Wo)


# --------------------------------------------------------------------------------------
# Conv2D
# --------------------------------------------------------------------------------------


def conv2d_forward(x, weight, bias, stride, padding):
    """out[n, f] = sum_c x[n, c] (cross-correlated with) weight[f, c] + bias[f]."""
    N, C, H, W = x.shape  # (N, C_in, H, W)
    F, _, kH, kW = weight.shape  # (C_out, C_in, kH, kW)
    Ho = conv_output_size(H, kH, stride[0], padding[0])
    Wo = conv_output_size(W, kW, stride[1], padding[1])
    cols = im2col(_pad(x, padding), (kH, kW), stride, (Ho, Wo))  # (N*Ho*Wo, kH*kW*C)
    out = cols @ _taps_last(weight).T + bias  # (N*Ho*Wo, F)
    return np.ascontiguousarray(out.reshape(N, Ho, Wo, F).transpose(0, 3, 1, 2))  # (N, F, Ho, Wo)


def conv2d_backward(dout, x, weight, stride, padding, input_grad=True):
    """Gradients of Conv2D given dL/dout.

    dweight = dout^T @ cols (each filter against the patches it saw), dbias = sum of dout,
    dx = col2im(dout @ W): every patch gradient added back where the patch came from. That
    scatter-add is the transposed convolution of dout with the same weight, computed in
    gather form by :func:`conv_transpose_phases`. ``input_grad=False``: dx is None, not
    computed (the input is data, as for a network's first layer).
    """
    N, C, H, W = x.shape  # (N, C_in, H, W)
    F, _, kH, kW = weight.shape  # (C_out, C_in, kH, kW)
    Ho, Wo = dout.shape[2:]
    cols = im2col(_pad(x, padding), (kH, kW), stride, (Ho, Wo))  # (N*Ho*Wo, kH*kW*C)
    dout_rows = dout.transpose(0, 2, 3, 1).reshape(N * Ho * Wo, F)  # (N*Ho*Wo, F)
    dweight = _taps_first(dout_rows.T @ cols, weight.shape)  # (F, C, kH, kW)
    dbias = dout_rows.sum(axis=0)  # (F,)
    if not input_grad:
        return None, dweight, dbias
    dx = conv_transpose_phases(dout, weight, np.zeros(C, dtype=dout.dtype), stride, padding, (H, W))  # (N, C, H, W)
    return dx, dweight, dbias


# --------------------------------------------------------------------------------------
# ConvTranspose2D: the adjoint of Conv2D with the same weight
# --------------------------------------------------------------------------------------


def conv_transpose2d_forward(x, weight, bias, stride, padding, output_padding):
    """out = col2im(x @ W) + bias: each input pixel stamps a weighted kernel onto the output.

    This is Conv2D's input gradient with ``weight`` read as a Conv2D weight, so
    <conv2d(y, W), x> = <y, conv_transpose2d(x, W)>. Computed in gather form, one stride-1
    convolution per output phase: :func:`conv_transpose_phases` explains it.
    """
    _, _, H, W = x.shape  # (N, C_in, H, W)
    _, _, kH, kW = weight.shape  # (C_in, C_out, kH, kW)
    Ho = conv_transpose_output_size(H, kH, stride[0], padding[0], output_padding[0])
    Wo = conv_transpose_output_size(W, kW, stride[1], padding[1], output_padding[1])
    return conv_transpose_phases(x, weight, bias, stride, padding, (Ho, Wo))  # (N, C_out, Ho, Wo)


def conv_transpose2d_backward(dout, x, weight, stride, padding, input_grad=True):
    """Gradients of ConvTranspose2D given dL/dout.

    dx = conv2d(dout, W) (the adjoint's adjoint), dweight = x^T @ im2col(dout),
    dbias = sum of dout; dx is None, not computed, when ``input_grad=False``.
    """
    N, Cin, H, W = x.shape  # (N, C_in, H, W)
    cols = im2col(_pad(dout, padding), weight.shape[2:], stride, (H, W))  # (N*H*W, kH*kW*C_out)
    x_rows = x.transpose(0, 2, 3, 1).reshape(N * H * W, Cin)  # (N*H*W, C_in)
    dweight = _taps_first(x_rows.T @ cols, weight.shape)  # (C_in, C_out, kH, kW)
    dbias = dout.sum(axis=(0, 2, 3))  # (C_out,)
    if not input_grad:
        return None, dweight, dbias
    dx_rows = cols @ _taps_last(weight).T  # (N*H*W, C_in)
    dx = dx_rows.reshape(N, H, W, Cin).transpose(0, 3, 1, 2)
    return np.ascontiguousarray(dx), dweight, dbias


# --------------------------------------------------------------------------------------
# Dense
# --------------------------------------------------------------------------------------


def dense_forward(x, weight, bias):
    """out = x @ W + b."""
    return x @ weight + bias  # (N, out)


def dense_backward(dout, x, weight, input_grad=True):
    """dx = dout @ W^T (N, in), dW = x^T @ dout (in, out), db = sum_n dout (out,).

    ``input_grad=False``: dx is None, not computed (the input is data).
    """
    return (dout @ weight.T if input_grad else None), x.T @ dout, dout.sum(axis=0)


# --------------------------------------------------------------------------------------
# ReLU and LeakyReLU
# --------------------------------------------------------------------------------------


def relu_forward(x):
    """out = max(x, 0); maximum, unlike where, keeps NaN visible."""
    return np.maximum(x, 0)


def relu_backward(dout, out):
    """dx = dout where out > 0, else 0 (out = relu(x) is > 0 exactly where x > 0)."""
    return np.where(out > 0, dout, 0)


def leaky_relu_forward(x, negative_slope):
    """out = x where x > 0, else negative_slope * x (NaN stays NaN: NaN > 0 is False, slope * NaN is NaN)."""
    return np.where(x > 0, x, x.dtype.type(negative_slope) * x)


def leaky_relu_backward(dout, x, negative_slope):
    """dx = dout where x > 0, else negative_slope * dout (the slope of the piece x is on; at 0, the left one)."""
    return np.where(x > 0, dout, dout.dtype.type(negative_slope) * dout)


# --------------------------------------------------------------------------------------
# Sampling and the ELBO's terms
# --------------------------------------------------------------------------------------


def reparameterize(mu, logvar, eps):
    """z = mu + exp(logvar / 2) * eps."""
    return mu + np.exp(0.5 * logvar) * eps


def reparameterize_backward(dz, logvar, eps):
    """dz, logvar, eps: (N, L). dmu = dz; dlogvar = dz * eps * exp(logvar / 2) / 2 (dz/dlogvar = sigma eps / 2)."""
    return dz, dz * (0.5 * np.exp(0.5 * logvar) * eps)


def kl_divergence(mu, logvar):
    """KL(N(mu, exp(logvar)) || N(0, I)) per example, and the gradient of its batch mean.

    kl = -1/2 sum(1 + logvar - mu^2 - exp(logvar));
    dkl/dmu = mu, dkl/dlogvar = (exp(logvar) - 1) / 2, each divided by N for the mean.
    """
    var = np.exp(logvar)  # (N, L)
    # the sum in float64 (mu^2 and exp(logvar) in the inputs' dtype), so that it overflows to inf
    # exactly when the float64 result does not fit the dtype, on every backend
    terms = 1.0 + logvar.astype(np.float64) - (mu * mu).astype(np.float64) - var  # (N, L) float64
    kl = (-0.5 * np.sum(terms, axis=1)).astype(mu.dtype)  # (N,)
    scale = 1.0 / mu.shape[0]
    return kl, mu * scale, (0.5 * scale) * (var - 1.0)


def bernoulli_nll(logits, x):
    """-log p(x | logits) per example for Bernoulli pixels, and the gradient of its batch mean.

    With s = sigmoid(l): -x log s - (1 - x) log(1 - s) = softplus(l) - x l, because
    log s = l - softplus(l) and log(1 - s) = -softplus(l).
    nll = sum(softplus(l) - x l), computed as max(l, 0) - x l + log1p(exp(-|l|)) so that no
    exp overflows and no log(0) appears; dnll/dl = sigmoid(l) - x.
    """
    N = logits.shape[0]
    flat_l, flat_x = logits.reshape(N, -1), x.reshape(N, -1)
    e = np.exp(-np.abs(flat_l))  # in (0, 1]: never overflows
    nll = np.sum(np.maximum(flat_l, 0) - flat_x * flat_l + np.log1p(e), axis=1)  # (N,)
    sigmoid = np.where(flat_l >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    dlogits = (sigmoid - flat_x) * (1.0 / N)
    return nll, dlogits.reshape(logits.shape)


# --------------------------------------------------------------------------------------
# Optimizer
# --------------------------------------------------------------------------------------


def adam_update(param, grad, m, v, lr, beta1, beta2, eps, step):
    """One bias-corrected Adam step, in place on ``param``, ``m`` and ``v``.

    m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;
    param <- param - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
    """
    m *= beta1
    m += (1.0 - beta1) * grad
    v *= beta2
    v += (1.0 - beta2) * grad * grad
    step_size = lr / (1.0 - beta1**step)
    denom = np.sqrt(v / (1.0 - beta2**step))
    denom += eps
    param -= step_size * m / denom


# --------------------------------------------------------------------------------------
# Batch normalization: per channel, over every axis but the channel axis (1)
# --------------------------------------------------------------------------------------


def _channels_last_axis(x):
    """x (N, C) or (N, C, H, W) as an (N, C, L) view, L = H*W (1 for (N, C))."""
    return x.reshape(x.shape[0], x.shape[1], -1)


def batchnorm_statistics(x):
    """Per-channel mean and (biased, divide-by-M) variance over the M = N*H*W values of each channel.

    x is (N, C) or (N, C, H, W); returns mean, var, each (C,) in x's dtype. Two passes
    (mean, then the mean of squared deviations), both summed in float64: the one-pass
    E[x^2] - E[x]^2 cancels catastrophically when |mean| >> std.
    """
    x3 = _channels_last_axis(x).astype(np.float64)  # (N, C, L)
    mean = x3.mean(axis=(0, 2))  # (C,)
    var = np.square(x3 - mean[None, :, None]).mean(axis=(0, 2))  # (C,)
    return mean.astype(x.dtype), var.astype(x.dtype)


def batchnorm_forward(x, gamma, beta, mean, var, eps):
    """out = gamma x_hat + beta with x_hat = (x - mean) / sqrt(var + eps), per channel.

    x: (N, C) or (N, C, H, W); gamma, beta, mean, var: (C,). In training ``mean`` and ``var``
    are the batch's (:func:`batchnorm_statistics`), in evaluation the running ones. Returns
    out and x_hat (x's shape) and inv_std = 1 / sqrt(var + eps) (C,), what the backward needs.
    """
    inv_std = (1.0 / np.sqrt(var + eps)).astype(x.dtype)  # (C,)
    x3 = _channels_last_axis(x)  # (N, C, L)
    x_hat = (x3 - mean[None, :, None]) * inv_std[None, :, None]  # (N, C, L)
    out = gamma[None, :, None] * x_hat + beta[None, :, None]  # (N, C, L)
    return out.reshape(x.shape), x_hat.reshape(x.shape), inv_std


def batchnorm_backward(dout, x_hat, gamma, inv_std, batch_statistics):
    """dx, dgamma, dbeta of out = gamma x_hat + beta; dout, x_hat (N, C[, H, W]), gamma, inv_std (C,).

    For one channel, with its M = N*H*W values x_i (i runs over n, h, w), sigma = 1 / inv_std:

        dbeta = sum_i dy_i,    dgamma = sum_i dy_i x_hat_i,    dx_hat_i = gamma dy_i.

    Evaluation (``batch_statistics=False``): mean and sigma are constants (running statistics),
    so the layer is affine in x and dx_i = gamma dy_i / sigma.

    Training (``batch_statistics=True``): mean = (1/M) sum_j x_j and
    sigma = sqrt((1/M) sum_j (x_j - mean)^2 + eps) depend on every x_j:

        d mean / d x_j = 1/M,
        d sigma / d x_j = (1 / (2 sigma)) (2/M) (x_j - mean)  [the sum of (x_k - mean) is 0]
                        = x_hat_j / M,
        d x_hat_i / d x_j = (delta_ij - 1/M) / sigma - (x_i - mean) / sigma^2 * x_hat_j / M
                          = (delta_ij - 1/M - x_hat_i x_hat_j / M) / sigma.

    Summing dx_j = sum_i dx_hat_i d x_hat_i / d x_j gives the compact form:

        dx_j = (1 / sigma) (dx_hat_j - (1/M) sum_i dx_hat_i - x_hat_j (1/M) sum_i dx_hat_i x_hat_i)
             = gamma / (M sigma) (M dy_j - sum_i dy_i - x_hat_j sum_i dy_i x_hat_i)
             = gamma / (M sigma) (M dy_j - dbeta - x_hat_j dgamma).

    So dx is dy with its mean and its component along x_hat removed, scaled by gamma / sigma:
    adding a constant to x, or scaling it, changes nothing after normalization.
    """
    dout3, x_hat3 = _channels_last_axis(dout), _channels_last_axis(x_hat)  # (N, C, L) each
    M = dout3.shape[0] * dout3.shape[2]
    dbeta = dout3.sum(axis=(0, 2), dtype=np.float64)  # (C,)
    dgamma = (dout3 * x_hat3).sum(axis=(0, 2), dtype=np.float64)  # (C,)
    scale = (gamma * inv_std)[None, :, None]  # (1, C, 1): gamma / sigma
    if batch_statistics:  # the 1/M inside: dy - mean(dy) - x_hat mean(dy x_hat), no M * dy to cancel
        removed = (dbeta / M)[None, :, None] + x_hat3 * (dgamma / M)[None, :, None]  # (N, C, L) float64
        dx = scale * (dout3 - removed.astype(dout.dtype))
    else:
        dx = scale * dout3
    return dx.reshape(dout.shape).astype(dout.dtype, copy=False), dgamma.astype(dout.dtype), dbeta.astype(dout.dtype)

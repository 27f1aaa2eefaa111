"""The gather-form (phase-decomposed) transposed convolution against the definition, on every backend.

The definition: each input pixel (iy, ix) stamps weight[:, :, ky, kx] onto output
(iy*s - p + ky, ix*s - p + kx), a loop over pixels and taps with no im2col, no col2im and no
phases, so it shares no code with the kernels it checks. ConvTranspose2D's forward and
Conv2D's input gradient are both this operation.
"""

import numpy as np
import pytest
from hypothesis import given, settings

from conftest import conv_transpose_cases

import tinyvae.kernels_numpy as ref
from tinyvae import backend as backends
from tinyvae import geometry


def transposed_conv_by_definition(x, weight, bias, stride, padding, out_size):
    """out[:, :, iy*sh - ph + ky, ix*sw - pw + kx] += x[:, :, iy, ix] @ weight[:, :, ky, kx], plus the bias."""
    N, _, H, W = x.shape  # (N, C_in, H, W)
    _, C_out, kH, kW = weight.shape  # (C_in, C_out, kH, kW)
    (sh, sw), (ph, pw), (Ho, Wo) = stride, padding, out_size
    out = np.zeros((N, C_out, Ho, Wo)) + bias.reshape(1, C_out, 1, 1)
    for iy in range(H):
        for ix in range(W):
            for ky in range(kH):
                for kx in range(kW):
                    oy, ox = iy * sh - ph + ky, ix * sw - pw + kx
                    if 0 <= oy < Ho and 0 <= ox < Wo:
                        out[:, :, oy, ox] += x[:, :, iy, ix] @ weight[:, :, ky, kx]
    return out


def geometries():
    """Any kernel, stride, padding and output_padding with at least one output pixel, float64:
    (x, weight, bias, stride, padding, output_padding, output size)."""
    return conv_transpose_cases().map(lambda c: (*c[1:4], *c[5:8], c[4].shape[2:]))


def assert_close(actual, expected):
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-12 * max(1.0, float(np.abs(expected).max())))


def test_phase_taps_of_the_conv_preset_upsampling():
    """7x7 -> 14x14, 3x3 kernel, stride 2, padding 1: even outputs 2m take tap 1 at input m;
    odd outputs 2m + 1 take tap 0 at input m + 1 and tap 2 at input m. 1 + 2 taps per axis."""
    assert ref.phase_taps(0, 2, 1, 3) == [(1, 0)]
    assert ref.phase_taps(1, 2, 1, 3) == [(0, 1), (2, 0)]
    # stride 1 is a single phase holding every tap, flipped: output m reads input m + p - k
    assert ref.phase_taps(0, 1, 1, 3) == [(0, 1), (1, 0), (2, -1)]


@settings(max_examples=60, deadline=None)
@given(case=geometries())
def test_conv_transpose_phases_is_the_definition(case):
    x, weight, bias, stride, padding, _, out_size = case
    assert_close(ref.conv_transpose_phases(x, weight, bias, stride, padding, out_size),
                 transposed_conv_by_definition(x, weight, bias, stride, padding, out_size))  # fmt: skip


@settings(max_examples=30, deadline=None)
@given(case=geometries())
def test_each_backend_transposed_convolution_and_conv_input_gradient_are_the_definition(backend, case):
    x, weight, bias, stride, padding, output_padding, out_size = case
    k = backends.kernels()
    assert_close(k.conv_transpose2d_forward(x, weight, bias, stride, padding, output_padding),
                 transposed_conv_by_definition(x, weight, bias, stride, padding, out_size))  # fmt: skip
    # Conv2D's dx: its dout is ``x`` here (N, F, Ho', Wo'), its input the (N, C, H', W') = out_size
    # images whose Conv2D output has x's size; weight (F, C, kH, kW) is the same array.
    # (output_padding < stride, so a Conv2D maps out_size back to x's size exactly)
    images = np.zeros((x.shape[0], weight.shape[1], *out_size))
    dx, _, _ = k.conv2d_backward(x, images, weight, stride, padding)
    assert_close(dx, transposed_conv_by_definition(x, weight, np.zeros(weight.shape[1]), stride, padding, out_size))


PRESET_GEOMETRIES = [  # (kernel, stride, padding, output_padding, input size) of every preset's layers
    (3, 2, 1, 1, 7),  # conv preset: ConvT 7x7 -> 14x14 and 14x14 -> 28x28
    (3, 1, 1, 0, 28),  # conv preset: the last ConvT, stride 1
    (3, 2, 1, 0, 3),  # faces preset: ConvT with output_padding 0 (odd sizes)
    (3, 2, 1, 1, 4),  # faces preset: ConvT with output_padding 1
    (3, 2, 0, 0, 6),  # conv preset encoder: Conv2D 3x3 s2 p0 (13 -> 6); its dx is this transposed conv
    (3, 2, 1, 1, 16),  # faces preset encoder: Conv2D 3x3 s2 p1 on even sizes (dx: output_padding 1)
    (5, 2, 2, 1, 7),  # classifier: Conv2D 5x5 s2 p2 (14 -> 7)
]


@pytest.mark.parametrize("k_, s, p, op, size", PRESET_GEOMETRIES)
def test_the_presets_geometries_are_the_definition(backend, k_, s, p, op, size):
    rng = np.random.default_rng(size)
    x, weight, bias = rng.standard_normal((2, 3, size, size)), rng.standard_normal((3, 4, k_, k_)), rng.standard_normal(4)
    out_size = (geometry.conv_transpose_output_size(size, k_, s, p, op),) * 2
    assert_close(backends.kernels().conv_transpose2d_forward(x, weight, bias, (s, s), (p, p), (op, op)),
                 transposed_conv_by_definition(x, weight, bias, (s, s), (p, p), out_size))  # fmt: skip


@settings(max_examples=30, deadline=None)
@given(case=geometries())
def test_the_scatter_form_col2im_is_the_same_map(case):
    """col2im(x_rows @ W), cropped: each input pixel stamps its kernel (the guide's picture)."""
    x, weight, bias, stride, padding, _, (Ho, Wo) = case
    (N, C_in, H, W), (_, C_out, kH, kW), (ph, pw) = x.shape, weight.shape, padding
    rows = x.transpose(0, 2, 3, 1).reshape(-1, C_in) @ weight.transpose(0, 2, 3, 1).reshape(C_in, -1)
    padded_shape = (N, C_out, max(Ho + 2 * ph, (H - 1) * stride[0] + kH), max(Wo + 2 * pw, (W - 1) * stride[1] + kW))
    stamped = ref.col2im(rows, padded_shape, (kH, kW), stride, (H, W))[:, :, ph : ph + Ho, pw : pw + Wo]
    assert_close(stamped + bias.reshape(1, C_out, 1, 1), ref.conv_transpose_phases(x, weight, bias, stride, padding, (Ho, Wo)))

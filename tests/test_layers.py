"""Shapes, invariants and error messages of the layers (the gradients are in test_gradients.py)."""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tinyvae import Concat, Conv2D, ConvTranspose2D, Dense, Flatten, ReLU, Reparameterize, Reshape, Sequential, Split


@given(
    n=st.integers(1, 2), c=st.integers(1, 3), h=st.integers(1, 12), w=st.integers(1, 12),
    k=st.integers(1, 4), s=st.integers(1, 3), p=st.integers(0, 2),
)  # fmt: skip
def test_conv2d_output_shape(backend, n, c, h, w, k, s, p):
    assume(h + 2 * p >= k and w + 2 * p >= k)
    layer = Conv2D(c, 2, k, rng=np.random.default_rng(0), stride=s, padding=p)
    out = layer.forward(np.zeros((n, c, h, w), np.float32))
    assert out.shape == (n, 2, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1)
    assert out.dtype == np.float32


@given(
    h=st.integers(1, 8), w=st.integers(1, 8), k=st.integers(1, 4), s=st.integers(1, 3), p=st.integers(0, 2),
    op=st.integers(0, 2),
)  # fmt: skip
def test_conv_transpose2d_output_shape_matches_pytorch_formula(backend, h, w, k, s, p, op):
    op = min(op, s - 1)
    layer = ConvTranspose2D(3, 2, k, rng=np.random.default_rng(0), stride=s, padding=p, output_padding=op)
    expected = ((h - 1) * s - 2 * p + k + op, (w - 1) * s - 2 * p + k + op)
    assume(min(expected) >= 1)
    assert layer.forward(np.zeros((2, 3, h, w), np.float32)).shape == (2, 2, *expected)


@given(
    n=st.integers(1, 2), c_in=st.integers(1, 3), c_out=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9),
    k=st.integers(1, 3), s=st.integers(1, 3), p=st.integers(0, 2), seed=st.integers(0, 2**16),
)  # fmt: skip
def test_conv_transpose_is_the_adjoint_of_conv(backend, n, c_in, c_out, h, w, k, s, p, seed):
    """<conv(x), y> = <x, convT(y)> when both use the same weight and no bias."""
    assume(h + 2 * p >= k and w + 2 * p >= k)
    rng = np.random.default_rng(seed)
    conv = Conv2D(c_in, c_out, k, rng=rng, stride=s, padding=p, dtype=np.float64)
    x = rng.standard_normal((n, c_in, h, w))
    y_shape = conv.output_shape(x.shape)
    # output_padding recovers the rows/columns that the strided conv skipped at the end
    op_h, op_w = (h + 2 * p - k) % s, (w + 2 * p - k) % s
    convt = ConvTranspose2D(c_out, c_in, k, rng=rng, stride=s, padding=p, output_padding=(op_h, op_w), dtype=np.float64)
    convt.params["weight"][...] = conv.params["weight"]  # (C_out, C_in, k, k) read as (C_in', C_out', k, k)
    y = rng.standard_normal(y_shape)
    lhs = np.sum(conv.forward(x) * y)
    rhs = np.sum(x * convt.forward(y))
    assert np.isclose(lhs, rhs, rtol=1e-10, atol=1e-10)


def test_sequential_collects_params_and_grads_in_order():
    rng = np.random.default_rng(0)
    model = Sequential(Dense(4, 3, rng=rng), ReLU(), Dense(3, 2, rng=rng))
    assert list(model.params) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert model.params["0.weight"] is model[0].params["weight"]  # shared memory: optimizers update layers
    out = model.forward(rng.standard_normal((5, 4)).astype(np.float32))
    model.backward(np.ones_like(out))
    assert list(model.grads) == list(model.params)
    assert all(model.grads[k].shape == v.shape for k, v in model.params.items())


def test_grads_are_overwritten_not_accumulated():
    rng = np.random.default_rng(0)
    layer = Dense(3, 2, rng=rng)
    x = rng.standard_normal((4, 3)).astype(np.float32)
    layer.backward(np.ones_like(layer.forward(x)))
    first = layer.grads["weight"].copy()
    layer.backward(np.ones_like(layer.forward(x)))
    np.testing.assert_array_equal(layer.grads["weight"], first)


def test_init_is_reproducible_from_the_generator():
    a = Conv2D(2, 3, 3, rng=np.random.default_rng(7)).params["weight"]
    b = Conv2D(2, 3, 3, rng=np.random.default_rng(7)).params["weight"]
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and a.shape == (3, 2, 3, 3)
    assert ConvTranspose2D(2, 3, 3, rng=np.random.default_rng(7)).params["weight"].shape == (2, 3, 3, 3)


# -- bad input: a ValueError that names the layer and what was expected --------------------


@pytest.mark.parametrize(
    "layer, x, message",
    [
        (Dense(4, 2, rng=np.random.default_rng(0)), np.zeros((3, 5), np.float32), r"Dense\(in_features=4.*\(N, 4\)"),
        (Dense(4, 2, rng=np.random.default_rng(0)), np.zeros((3, 4), np.float64), r"Dense.*expected float32.*float64"),
        (Dense(4, 2, rng=np.random.default_rng(0)), np.zeros((3, 4), np.uint8), r"Dense.*floating-point"),
        (Conv2D(3, 2, 3, rng=np.random.default_rng(0)), np.zeros((1, 1, 8, 8), np.float32), r"Conv2D.*3 input channels"),
        (Conv2D(1, 2, 3, rng=np.random.default_rng(0)), np.zeros((1, 8, 8), np.float32), r"Conv2D.*\(N, 1, H, W\)"),
        (Conv2D(1, 2, 5, rng=np.random.default_rng(0)), np.zeros((1, 1, 3, 3), np.float32), r"Conv2D.*smaller than the kernel"),
        (ConvTranspose2D(2, 1, 3, rng=np.random.default_rng(0)), np.zeros((1, 3, 4, 4), np.float32),
         r"ConvTranspose2D.*2 input channels"),
        (Reshape(1, 28, 28), np.zeros((2, 780), np.float32), r"Reshape\(1, 28, 28\).*784 values"),
        (Flatten(), np.zeros(5, np.float32), r"Flatten.*\(N, \.\.\.\)"),
        (ReLU(), np.zeros(3, np.int64), r"ReLU.*floating-point"),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, str) else "",
)  # fmt: skip
def test_bad_input_names_the_layer_and_the_expectation(layer, x, message):
    with pytest.raises(ValueError, match=message):
        layer.forward(x)


def test_bad_dout_shape_is_rejected():
    layer = Dense(4, 2, rng=np.random.default_rng(0))
    layer.forward(np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match=r"Dense.*dout of shape \(3, 2\)"):
        layer.backward(np.zeros((3, 3), np.float32))  # would broadcast silently without the check


def test_bad_constructor_arguments():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="output_padding must be"):
        ConvTranspose2D(1, 1, 3, rng=rng, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="kernel_size must be an int or a pair"):
        Conv2D(1, 1, (3, 3, 3), rng=rng)


def test_reparameterize_requires_an_explicit_generator_and_checks_shapes():
    layer = Reparameterize()
    mu = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="numpy.random.Generator"):
        layer.forward(mu, mu)
    with pytest.raises(ValueError, match=r"Reparameterize: expected mu and logvar of one shape \(N, latent_dim\)"):
        layer.forward(mu, np.zeros((2, 4), np.float32), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"eps of shape \(\.\.\., 2, 3\)"):
        layer.forward(mu, mu, eps=np.zeros((2, 2), np.float32))


def test_reparameterize_uses_mu_and_sigma():
    mu, logvar = np.array([[1.0, -2.0]]), np.log(np.array([[4.0, 0.25]]))
    z = Reparameterize().forward(mu, logvar, eps=np.array([[1.0, 2.0]]))
    np.testing.assert_allclose(z, [[1.0 + 2.0 * 1.0, -2.0 + 0.5 * 2.0]])


def test_reparameterize_draws_leading_sample_axes():
    mu, logvar = np.array([[1.0, -2.0]]), np.log(np.array([[4.0, 0.25]]))
    layer = Reparameterize()
    z = layer.forward(mu, logvar, rng=np.random.default_rng(0), sample_shape=(5, 3))
    assert z.shape == (5, 3, 1, 2)
    np.testing.assert_allclose((z - mu) / np.exp(0.5 * logvar), layer.eps)
    dmu, dlogvar = layer.backward(np.ones_like(z))
    np.testing.assert_allclose(dmu, [[15.0, 15.0]])  # summed over the 15 samples


# -- constructor arguments: a ValueError naming the layer and the argument --------------------


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda rng: Conv2D(1, 2, 3.0, rng=rng), r"Conv2D: kernel_size must be an int or a pair of ints >= 1, got 3.0"),
        (lambda rng: Conv2D(1, 0, 3, rng=rng), r"Conv2D: out_channels must be an int >= 1, got 0"),
        (lambda rng: Conv2D(1.5, 2, 3, rng=rng), r"Conv2D: in_channels must be an int >= 1, got 1.5"),
        (lambda rng: Conv2D(1, 2, 3, rng=rng, stride=0), r"Conv2D: stride must be .* >= 1, got 0"),
        (lambda rng: Conv2D(1, 2, 3, rng=rng, padding=-1), r"Conv2D: padding must be .* >= 0, got -1"),
        (lambda rng: ConvTranspose2D(1, 2, (3, -3), rng=rng), r"ConvTranspose2D: kernel_size must be .* >= 1, got -3"),
        (lambda rng: ConvTranspose2D(1, 2, 3, rng=rng, output_padding=-1), r"ConvTranspose2D: output_padding .*>= 0"),
        (lambda rng: Dense(4, -2, rng=rng), r"Dense: out_features must be an int >= 1, got -2"),
        (lambda rng: Dense(True, 2, rng=rng), r"Dense: in_features must be an int >= 1, got True"),
        (lambda rng: Dense(4, 2, rng=0), r"Dense: rng must be a numpy.random.Generator .*got int"),
        (lambda rng: Conv2D(1, 2, 3, rng=np.random.RandomState(0)), r"Conv2D: rng must be a numpy.random.Generator"),
        (lambda rng: Dense(4, 2, rng=rng, dtype=np.float16), r"Dense: dtype must be float32 or float64, got <class"),
        (lambda rng: Conv2D(1, 2, 3, rng=rng, dtype=np.int32), r"Conv2D: dtype must be float32 or float64"),
        (lambda rng: Reshape(1, 0, 28), r"Reshape: shape must be an int >= 1, got 0"),
        (lambda rng: Split(2, 0), r"Split: sizes must be an int >= 1, got 0"),
    ],
)
def test_bad_constructor_arguments_name_the_layer_and_the_argument(build, message):
    with pytest.raises(ValueError, match=message):
        build(np.random.default_rng(0))


@pytest.mark.parametrize(
    "layer, shape",
    [
        (Conv2D(1, 2, 3, rng=np.random.default_rng(0)), (0, 1, 8, 8)),
        (ConvTranspose2D(1, 2, 3, rng=np.random.default_rng(0)), (0, 1, 4, 4)),
        (Dense(4, 2, rng=np.random.default_rng(0)), (0, 4)),
        (ReLU(), (0, 3)),
        (Flatten(), (0, 2, 2)),
        (Split(1, 1), (0, 2)),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, tuple) else "",
)
def test_an_empty_batch_is_one_clear_error_on_every_backend(backend, layer, shape):
    with pytest.raises(ValueError, match=rf"{type(layer).__name__}.*expected a batch of at least one example"):
        layer.forward(np.zeros(shape, np.float32))


# -- Concat and Split ---------------------------------------------------------------------


def test_concat_joins_a_feature_vector_and_a_label():
    features, labels = np.ones((3, 4)), np.eye(3)
    layer = Concat()
    out = layer.forward([features, labels])  # (3, 4 + 3)
    np.testing.assert_array_equal(out, np.concatenate([features, labels], axis=1))
    dfeatures, dlabels = layer.backward(np.arange(21.0).reshape(3, 7))
    np.testing.assert_array_equal(dlabels, np.arange(21.0).reshape(3, 7)[:, 4:])
    with pytest.raises(ValueError, match=r"Concat.*differing only in axis 1"):
        layer.forward([features, np.ones((2, 3))])


def test_split_is_concat_backwards():
    layer = Split(2, 3)
    mu, logvar = layer.forward(np.arange(10.0).reshape(2, 5))
    assert mu.shape == (2, 2) and logvar.shape == (2, 3)
    np.testing.assert_array_equal(layer.backward([mu, logvar]), np.arange(10.0).reshape(2, 5))
    with pytest.raises(ValueError, match=r"Split\(sizes=\[2, 3\]\): expected an array of shape \(N, 5, \.\.\.\)"):
        layer.forward(np.zeros((2, 4)))


def test_sequential_names_parameters_by_index_and_shares_them():
    rng = np.random.default_rng(0)
    model = Sequential(Dense(4, 3, rng=rng), ReLU(), Dense(3, 2, rng=rng))
    assert list(model.params) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    model.params["2.bias"][...] = 5.0
    np.testing.assert_array_equal(model[2].params["bias"], [5.0, 5.0])
    with pytest.raises(ValueError, match="Sequential: layer 1 must be a tinyvae Module"):
        Sequential(Dense(4, 3, rng=rng), np.tanh)


@pytest.mark.parametrize(
    "layers, shape",
    [
        (lambda rng: [Flatten(), Dense(12, 5, rng=rng), ReLU(), Dense(5, 2, rng=rng)], (4, 3, 2, 2)),
        (lambda rng: [Conv2D(3, 4, 3, rng=rng, stride=2, padding=1), ReLU(), Flatten(), Dense(16, 2, rng=rng)], (2, 3, 4, 4)),
        (lambda rng: [ReLU(), ConvTranspose2D(3, 2, 3, rng=rng, stride=2, padding=1)], (2, 3, 3, 3)),
    ],
    ids=["flatten-dense", "conv2d", "conv-transpose"],
)
def test_backward_without_the_input_gradient_gives_the_same_parameter_gradients(backend, layers, shape):
    # An encoder's input is data: its gradient is skipped (the first parametric layer's dx
    # product, and every layer before it), the parameters' gradients stay exactly what they were.
    rng = np.random.default_rng(0)
    model = Sequential(*layers(rng))
    x = rng.standard_normal(shape).astype(np.float32)
    dout = rng.standard_normal(model.forward(x).shape).astype(np.float32)
    dx = model.backward(dout)
    full = {k: g.copy() for k, g in model.grads.items()}
    assert dx.shape == x.shape
    for grad in model.grads.values():
        grad[...] = np.nan  # a layer the walk missed would leave these
    model.forward(x)
    assert model.backward(dout, input_grad=False) is None
    for name, grad in model.grads.items():
        np.testing.assert_array_equal(grad, full[name], err_msg=name)

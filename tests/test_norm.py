"""BatchNorm1D / BatchNorm2D: gradients (train and eval mode) against central differences on every
backend, the Numba kernels against the NumPy ones, running statistics, buffers and errors."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinyvae
import tinyvae.kernels_numpy as ref
from tinyvae import VAE, Adam, BatchNorm1D, BatchNorm2D, Conv2D, ConvTranspose2D, Dense, Flatten, LeakyReLU, Reshape
from tinyvae import Sequential, Sigmoid
from tinyvae.gradcheck import layer_gradient_errors, numerical_gradient, relative_error

TOL = 1e-6  # float64 central differences with h = 1e-6


def check_layer(layer, x, rng):
    """backward's dx, dgamma, dbeta against finite differences of L = sum(out * G)."""
    errors = layer_gradient_errors(layer, x, rng)
    assert errors.keys() == {"dx", "gamma", "beta"} and max(errors.values()) < TOL, errors


def random_affine(layer, rng):
    layer.params["gamma"][...] = rng.uniform(0.5, 2.0, layer.num_features) * rng.choice([-1, 1], layer.num_features)
    layer.params["beta"][...] = rng.standard_normal(layer.num_features)


def random_running_statistics(layer, rng):
    layer.buffers["running_mean"][...] = rng.standard_normal(layer.num_features)
    layer.buffers["running_var"][...] = rng.uniform(0.2, 3.0, layer.num_features)


images = st.fixed_dictionaries(
    {"n": st.integers(1, 4), "c": st.integers(1, 3), "h": st.integers(1, 4), "w": st.integers(1, 4),
     "seed": st.integers(0, 2**16)}
).filter(lambda g: g["n"] * g["h"] * g["w"] >= 3)  # fmt: skip
# M = 2 values per channel always normalize to +-1 (up to eps): dx is ~0 and finite differences
# see only rounding noise, so the gradient checks start at M = 3.
features = st.fixed_dictionaries({"n": st.integers(3, 6), "c": st.integers(1, 5), "seed": st.integers(0, 2**16)})


@given(g=images)
def test_batchnorm2d_gradients_in_training_mode(backend, g):
    rng = np.random.default_rng(g["seed"])
    layer = BatchNorm2D(g["c"], dtype=np.float64)
    random_affine(layer, rng)
    # an offset and a scale per channel: the gradient must not depend on them
    x = rng.standard_normal((g["n"], g["c"], g["h"], g["w"])) * 3.0 + rng.standard_normal((1, g["c"], 1, 1)) * 5
    check_layer(layer, x, rng)


@given(g=features)
def test_batchnorm1d_gradients_in_training_mode(backend, g):
    rng = np.random.default_rng(g["seed"])
    layer = BatchNorm1D(g["c"], dtype=np.float64)
    random_affine(layer, rng)
    check_layer(layer, rng.standard_normal((g["n"], g["c"])) * 2.0 + 1.0, rng)


@given(g=images)
def test_batchnorm2d_gradients_in_eval_mode(backend, g):
    rng = np.random.default_rng(g["seed"])
    layer = BatchNorm2D(g["c"], dtype=np.float64)
    random_affine(layer, rng)
    random_running_statistics(layer, rng)
    layer.eval()
    check_layer(layer, rng.standard_normal((g["n"], g["c"], g["h"], g["w"])), rng)


@given(g=features)
def test_batchnorm1d_gradients_in_eval_mode(backend, g):
    rng = np.random.default_rng(g["seed"])
    layer = BatchNorm1D(g["c"], dtype=np.float64)
    random_affine(layer, rng)
    random_running_statistics(layer, rng)
    layer.eval()
    check_layer(layer, rng.standard_normal((g["n"], g["c"])), rng)


def test_gradients_through_a_conv_and_batchnorm_stack(backend):
    rng = np.random.default_rng(3)
    conv = Conv2D(2, 3, 3, rng=rng, stride=2, padding=1, dtype=np.float64)
    model = Sequential(conv, BatchNorm2D(3, dtype=np.float64))
    random_affine(model[1], rng)
    x = rng.standard_normal((3, 2, 5, 5))
    out = model.forward(x)
    G = rng.standard_normal(out.shape)
    dx = model.backward(G)

    def loss():
        return float(np.sum(model.forward(x) * G))

    assert relative_error(dx, numerical_gradient(loss, x)) < TOL
    for name in ("0.weight", "1.gamma", "1.beta"):
        assert relative_error(model.grads[name], numerical_gradient(loss, model.params[name])) < TOL, name
    # batch normalization subtracts the channel's mean: a bias before it has no effect, no gradient
    np.testing.assert_allclose(model.grads["0.bias"], 0.0, atol=1e-12)


def batchnorm_rgb_vae(rng):
    """A small RGB conv VAE with BatchNorm in the encoder (2D and 1D) and the decoder, as in the faces preset."""
    kw = dict(rng=rng, dtype=np.float64)
    encoder = Sequential(
        Conv2D(3, 4, 3, stride=2, padding=1, **kw), BatchNorm2D(4, dtype=np.float64), LeakyReLU(0.2),  # (N, 4, 2, 2)
        Flatten(), Dense(16, 6, **kw), BatchNorm1D(6, dtype=np.float64), LeakyReLU(0.2), Dense(6, 4, **kw),  # (N, 2L)
    )  # fmt: skip
    decoder = Sequential(
        Dense(2, 16, **kw), Reshape(4, 2, 2),  # (N, 4, 2, 2)
        ConvTranspose2D(4, 3, 3, stride=2, padding=1, output_padding=1, **kw), BatchNorm2D(3, dtype=np.float64),
        Sigmoid(),  # (N, 3, 4, 4) in (0, 1)
    )  # fmt: skip
    for layer in [*encoder, *decoder]:
        if isinstance(layer, (BatchNorm1D, BatchNorm2D)):
            random_affine(layer, rng)
    return VAE(encoder, decoder, latent_dim=2, input_shape=(3, 4, 4), likelihood="gaussian", sigma=0.5)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_whole_vae_gradients_through_batchnorm(backend, mode):
    """d(loss)/d(every parameter) of a VAE with BatchNorm layers, in training and evaluation mode."""
    rng = np.random.default_rng(5)
    model = batchnorm_rgb_vae(rng)
    x = rng.random((3, 3, 4, 4))
    eps = rng.standard_normal((3, 2))
    model.loss_and_grads(x, eps=eps)  # (fills the running statistics with something)
    if mode == "eval":
        model.eval()
        assert not any(layer.training for layer in [*model.encoder, *model.decoder])
    model.loss_and_grads(x, eps=eps)
    analytic = {k: v.copy() for k, v in model.grads.items()}

    def loss():
        return model.loss_and_grads(x, eps=eps)["loss"]

    assert analytic.keys() == model.params.keys()
    before_batchnorm = {"encoder.0.bias", "encoder.4.bias", "decoder.2.bias"}  # cancelled by the mean subtraction
    for name, param in model.params.items():
        numeric = numerical_gradient(loss, param)
        if mode == "train" and name in before_batchnorm:
            np.testing.assert_allclose(analytic[name], 0.0, atol=1e-12)
            np.testing.assert_allclose(numeric, 0.0, atol=1e-7)  # rounding noise of the differences only
        else:
            assert relative_error(analytic[name], numeric) < TOL, name


# --------------------------------------------------------------------------------------
# What the layer computes
# --------------------------------------------------------------------------------------


def test_training_output_is_normalized_per_channel(backend):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((16, 3, 5, 5)) * [[[[2.0]], [[10.0]], [[0.5]]]] + 100.0).astype(np.float32)
    out = BatchNorm2D(3).forward(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0.0, atol=1e-4)
    np.testing.assert_allclose(out.var(axis=(0, 2, 3)), 1.0, rtol=1e-3)


def test_running_statistics_follow_pytorch_convention(backend):
    rng = np.random.default_rng(1)
    layer = BatchNorm2D(2, momentum=0.25, dtype=np.float64)
    batches = [rng.standard_normal((4, 2, 3, 3)) * 2 + 3 for _ in range(3)]
    running_mean, running_var = np.zeros(2), np.ones(2)
    for x in batches:
        layer.forward(x)
        running_mean = 0.75 * running_mean + 0.25 * x.mean(axis=(0, 2, 3))
        running_var = 0.75 * running_var + 0.25 * x.var(axis=(0, 2, 3), ddof=1)  # unbiased: M - 1
    np.testing.assert_allclose(layer.buffers["running_mean"], running_mean, rtol=1e-12)
    np.testing.assert_allclose(layer.buffers["running_var"], running_var, rtol=1e-12)


def test_eval_mode_uses_running_statistics_and_leaves_them_alone(backend):
    rng = np.random.default_rng(2)
    layer = BatchNorm1D(3, eps=1e-3, dtype=np.float64)
    random_affine(layer, rng)
    random_running_statistics(layer, rng)
    before = {k: v.copy() for k, v in layer.buffers.items()}
    layer.eval()
    x = rng.standard_normal((1, 3))  # one example is fine in eval mode
    x_hat = (x - before["running_mean"]) / np.sqrt(before["running_var"] + 1e-3)
    expected = layer.params["gamma"] * x_hat + layer.params["beta"]
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-12)
    for k, v in layer.buffers.items():
        np.testing.assert_array_equal(v, before[k])


def test_running_statistics_are_buffers_saved_and_never_optimized():
    rng = np.random.default_rng(4)
    model = Sequential(Conv2D(1, 2, 3, rng=rng, padding=1), BatchNorm2D(2))
    assert set(model.params) == {"0.weight", "0.bias", "1.gamma", "1.beta"}
    assert set(model.buffers) == {"1.running_mean", "1.running_var"}
    assert {"1.running_mean", "1.running_var"} <= set(model.state_dict())
    optimizer = Adam(model.params, lr=0.1)
    x = rng.standard_normal((4, 1, 4, 4)).astype(np.float32)
    model.backward(np.ones_like(model.forward(x)))
    running = {k: v.copy() for k, v in model.buffers.items()}
    optimizer.step(model.grads)
    for k, v in model.buffers.items():
        np.testing.assert_array_equal(v, running[k])  # the step moved parameters only
    clone = Sequential(Conv2D(1, 2, 3, rng=np.random.default_rng(9), padding=1), BatchNorm2D(2))
    clone.load_state_dict(model.state_dict())
    np.testing.assert_array_equal(clone.buffers["1.running_var"], model.buffers["1.running_var"])


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "layer, x", [(BatchNorm2D(3), np.zeros((1, 3, 1, 1), np.float32)), (BatchNorm1D(3), np.zeros((1, 3), np.float32))]
)
def test_one_value_per_channel_in_training_is_a_clear_error(layer, x):
    with pytest.raises(ValueError, match=rf"{type(layer).__name__}.*at least 2 values per channel"):
        layer.forward(x)
    assert layer.eval().forward(x).shape == x.shape  # eval mode needs no batch statistics


def test_wrong_channel_count_or_shape_is_a_clear_error():
    with pytest.raises(ValueError, match=r"BatchNorm2D\(num_features=3.*expected 3 channels.*\(2, 4, 5, 5\)"):
        BatchNorm2D(3).forward(np.zeros((2, 4, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"BatchNorm1D.*\(N, 3\)"):
        BatchNorm1D(3).forward(np.zeros((2, 3, 1, 1), np.float32))
    with pytest.raises(ValueError, match="momentum"):
        BatchNorm2D(3, momentum=1.5)
    with pytest.raises(ValueError, match="eps"):
        BatchNorm2D(3, eps=0)
    with pytest.raises(ValueError, match="num_features"):
        BatchNorm1D(0)


def test_backward_before_forward_is_a_clear_error():
    with pytest.raises(RuntimeError, match="backward called before forward"):
        BatchNorm2D(2).backward(np.zeros((2, 2, 1, 1), np.float32))


# --------------------------------------------------------------------------------------
# The Numba kernels against the NumPy ones
# --------------------------------------------------------------------------------------

TOLERANCE = {np.float64: 1e-12, np.float32: 1e-5}


def assert_close(actual, expected, dtype, scale=None):
    """|actual - expected| within the dtype's rounding of ``scale``: the size of the terms summed (by default
    the result's own, which is too small where the terms cancel, as the batch-statistics gradient does)."""
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    scale = max(float(np.max(np.abs(expected))) if scale is None else scale, 1e-30)
    assert float(np.max(np.abs(actual.astype(np.float64) - expected))) <= TOLERANCE[dtype] * scale


@given(
    shape=st.one_of(
        st.tuples(st.integers(1, 5), st.integers(1, 6), st.integers(1, 6), st.integers(1, 6)),
        st.tuples(st.integers(2, 9), st.integers(1, 6)),
    ),
    dtype=st.sampled_from([np.float64, np.float32]),
    batch_statistics=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_numba_batchnorm_kernels_match_numpy(shape, dtype, batch_statistics, seed):
    numba_kernels = pytest.importorskip("tinyvae.kernels_numba", reason="numba not installed")
    rng = np.random.default_rng(seed)
    C = shape[1]
    x = (rng.standard_normal(shape) * 3 + 7).astype(dtype)
    gamma, beta = rng.standard_normal(C).astype(dtype), rng.standard_normal(C).astype(dtype)
    dout = rng.standard_normal(shape).astype(dtype)
    expected_stats = ref.batchnorm_statistics(x)
    for a, e in zip(numba_kernels.batchnorm_statistics(x), expected_stats):
        assert_close(a, e, dtype)
    mean, var = expected_stats
    expected = ref.batchnorm_forward(x, gamma, beta, mean, var, 1e-5)
    for a, e in zip(numba_kernels.batchnorm_forward(x, gamma, beta, mean, var, 1e-5), expected):
        assert_close(a, e, dtype)
    _, x_hat, inv_std = expected
    # dx = gamma inv_std (dout - mean(dout) - x_hat mean(dout x_hat)): terms up to this size, cancelling
    terms = ref.batchnorm_backward(np.abs(dout), np.abs(x_hat), np.abs(gamma), inv_std, False)  # (dx, dgamma, dbeta)
    for a, e, t, x_hat_factor in zip(
        numba_kernels.batchnorm_backward(dout, x_hat, gamma, inv_std, batch_statistics),
        ref.batchnorm_backward(dout, x_hat, gamma, inv_std, batch_statistics),
        terms,
        (1 + float(np.max(np.abs(x_hat))) ** 2, 1, 1),
    ):
        assert_close(a, e, dtype, scale=float(np.max(np.abs(t))) * x_hat_factor)


def test_batchnorm_is_exported():
    assert tinyvae.BatchNorm2D is BatchNorm2D and "BatchNorm1D" in tinyvae.__all__

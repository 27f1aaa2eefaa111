"""The Numba backend against its NumPy twin: same interface, same results, NaN kept, race-free.

Tolerances, relative to the largest magnitude of the reference result: 1e-12 in float64
(only the order of the sums differs), 1e-5 in float32 (BLAS blocking and Numba's float64
accumulators round differently from NumPy's pairwise float32 sums).
"""

import inspect
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import conv_transpose_cases

import tinyvae
import tinyvae.backend
import tinyvae.kernels_numpy as ref
from tinyvae import geometry

numba_kernels = pytest.importorskip("tinyvae.kernels_numba", reason="numba not installed")

TOLERANCE = {np.float64: 1e-12, np.float32: 1e-5}
dtypes = st.sampled_from([np.float64, np.float32])
# A tiny chunk puts every batch item in its own BLAS call; the default keeps one chunk here.
chunk_bytes = st.sampled_from([1, numba_kernels.CHUNK_BYTES])


def assert_close(actual, expected, dtype, scale=None):
    """Equal to within TOLERANCE relative to ``scale`` (default: the largest |expected|)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    if scale is None:
        scale = max(float(np.max(np.abs(expected), initial=0.0)), 1e-30)
    error = float(np.max(np.abs(actual.astype(np.float64) - expected), initial=0.0))
    assert error <= TOLERANCE[dtype] * scale, f"relative error {error / scale:.2e}"


def assert_kernel_matches_reference(kernel, *args, dtype):
    """The Numba ``kernel(*args)`` equals the reference's to TOLERANCE relative to its sums of |terms|.

    A float32 sum rounds in proportion to its terms, not to its (possibly cancelled, tiny) result:
    for these multilinear kernels the reference run on |args| gives each output's sum of |terms|.
    """
    actual, expected = getattr(numba_kernels, kernel)(*args), getattr(ref, kernel)(*args)
    magnitude = getattr(ref, kernel)(*(np.abs(a).astype(np.float64) if isinstance(a, np.ndarray) else a for a in args))
    if not isinstance(expected, tuple):
        actual, expected, magnitude = (actual,), (expected,), (magnitude,)
    assert len(actual) == len(expected)
    for a, e, m in zip(actual, expected, magnitude):
        assert_close(a, e, dtype, scale=max(float(np.max(m, initial=0.0)), 1e-30))


def assert_all_close(actual, expected, dtype):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert_close(a, e, dtype)


@st.composite
def conv_cases(draw):
    """A Conv2D problem with at least one output pixel: (x, weight, bias, dout, stride, padding)."""
    dtype = draw(dtypes)
    N, C, F = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    kH, kW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    H = draw(st.integers(max(1, kH - 2 * ph), 10))
    W = draw(st.integers(max(1, kW - 2 * pw), 10))
    Ho, Wo = geometry.conv_output_size(H, kH, sh, ph), geometry.conv_output_size(W, kW, sw, pw)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    weight = rng.standard_normal((F, C, kH, kW)).astype(dtype)
    bias = rng.standard_normal(F).astype(dtype)
    dout = rng.standard_normal((N, F, Ho, Wo)).astype(dtype)
    return dtype, x, weight, bias, dout, (sh, sw), (ph, pw)


# --------------------------------------------------------------------------------------
# The interface
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", [ref, numba_kernels], ids=["numpy", "numba"])
def test_each_backend_implements_the_interface_with_the_reference_signatures(module):
    for name in tinyvae.backend.KERNELS:
        assert inspect.isfunction(getattr(module, name, None)), f"{module.__name__} lacks {name}"
        assert inspect.signature(getattr(module, name)) == inspect.signature(getattr(ref, name)), name


def test_layers_reach_kernels_only_through_the_backend_switch():
    root = Path(tinyvae.__file__).parent
    for path in root.glob("*.py"):
        if path.name not in ("backend.py", "kernels_numpy.py", "kernels_numba.py"):
            imports = re.findall(r"^\s*(?:from|import) .*$", path.read_text(), re.M)
            assert not [line for line in imports if "kernels_n" in line], f"{path.name} imports a backend module"


def test_auto_is_numba_when_importable_else_numpy(monkeypatch):
    monkeypatch.setattr(tinyvae.backend, "_active_name", None)
    monkeypatch.setattr(tinyvae.backend, "_active_module", None)
    tinyvae.set_backend("auto")
    assert tinyvae.get_backend() == "numba"  # the concrete name
    monkeypatch.setitem(sys.modules, "numba", None)  # makes `import numba` raise ImportError
    tinyvae.set_backend("auto")
    assert tinyvae.get_backend() == "numpy" and tinyvae.backend.kernels() is ref


@pytest.mark.parametrize("env, expected", [(None, "numba"), ("numpy", "numpy"), ("auto", "numba")])
def test_the_default_backend_follows_tinyvae_backend(monkeypatch, env, expected):
    monkeypatch.setattr(tinyvae.backend, "_active_name", None)
    monkeypatch.setattr(tinyvae.backend, "_active_module", None)
    if env is None:
        monkeypatch.delenv("TINYVAE_BACKEND", raising=False)
    else:
        monkeypatch.setenv("TINYVAE_BACKEND", env)
    assert tinyvae.get_backend() == expected


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown backend 'cuda'; expected one of \('numpy', 'numba', 'auto'\)"):
        tinyvae.set_backend("cuda")


def test_set_backend_numba_without_numba_is_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "numba", None)  # makes `import numba` raise ImportError
    monkeypatch.setattr(tinyvae.backend, "_active_name", None)
    monkeypatch.setattr(tinyvae.backend, "_active_module", None)
    with pytest.raises(ImportError, match=r"numba is not installed.*pip install"):
        tinyvae.set_backend("numba")
    assert tinyvae.backend._active_module is None  # nothing half-switched


# --------------------------------------------------------------------------------------
# Convolutions
# --------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(case=conv_cases(), chunk=chunk_bytes)
def test_conv2d_matches_numpy(case, chunk, monkeypatch):
    dtype, x, weight, bias, dout, stride, padding = case
    monkeypatch.setattr(numba_kernels, "CHUNK_BYTES", chunk)
    assert_kernel_matches_reference("conv2d_forward", x, weight, bias, stride, padding, dtype=dtype)
    assert_kernel_matches_reference("conv2d_backward", dout, x, weight, stride, padding, dtype=dtype)


@settings(max_examples=40, deadline=None)
@given(case=conv_transpose_cases(dtypes), chunk=chunk_bytes)
def test_conv_transpose2d_matches_numpy(case, chunk, monkeypatch):
    dtype, x, weight, bias, dout, stride, padding, output_padding = case
    monkeypatch.setattr(numba_kernels, "CHUNK_BYTES", chunk)
    assert_kernel_matches_reference("conv_transpose2d_forward", x, weight, bias, stride, padding, output_padding, dtype=dtype)
    assert_kernel_matches_reference("conv_transpose2d_backward", dout, x, weight, stride, padding, dtype=dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_preset_layers_match_numpy(dtype):
    """Every conv layer of the built conv preset (batch 8, its own shapes), chunked over the batch as in training."""
    rng = np.random.default_rng(0)
    model = tinyvae.conv_vae(2, rng=rng, dtype=dtype)
    inputs = []  # (layer, its input) as the preset passes a batch through
    with tinyvae.use_backend("numpy"):
        for sequential, x in ((model.encoder, rng.random((8, *model.input_shape)).astype(dtype)),
                              (model.decoder, rng.standard_normal((8, 2)).astype(dtype))):  # fmt: skip
            for layer in sequential.layers:
                inputs.append((layer, x))
                x = layer.forward(x)
    convs = [(layer, x) for layer, x in inputs if isinstance(layer, (tinyvae.Conv2D, tinyvae.ConvTranspose2D))]
    assert len(convs) == 5
    for layer, x in convs:
        w, b = rng.standard_normal(layer.params["weight"].shape).astype(dtype), rng.standard_normal(layer.out_channels).astype(dtype)
        s, p = layer.stride, layer.padding
        if isinstance(layer, tinyvae.Conv2D):
            dout = rng.standard_normal(ref.conv2d_forward(x, w, b, s, p).shape).astype(dtype)
            assert_kernel_matches_reference("conv2d_forward", x, w, b, s, p, dtype=dtype)
            assert_kernel_matches_reference("conv2d_backward", dout, x, w, s, p, dtype=dtype)
        else:
            op = layer.output_padding
            dout = rng.standard_normal(ref.conv_transpose2d_forward(x, w, b, s, p, op).shape).astype(dtype)
            assert_kernel_matches_reference("conv_transpose2d_forward", x, w, b, s, p, op, dtype=dtype)
            assert_kernel_matches_reference("conv_transpose2d_backward", dout, x, w, s, p, dtype=dtype)


def test_non_contiguous_inputs_are_accepted():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 5, 5, 3)).transpose(0, 3, 1, 2)  # (N, C, H, W), a transposed view
    w, b = rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    assert_close(numba_kernels.conv2d_forward(x, w, b, (1, 1), (1, 1)), ref.conv2d_forward(x, w, b, (1, 1), (1, 1)), np.float64)


# --------------------------------------------------------------------------------------
# Elementwise kernels
# --------------------------------------------------------------------------------------


@settings(deadline=None)
@given(dtype=dtypes, shape=st.lists(st.integers(1, 6), min_size=1, max_size=4), seed=st.integers(0, 2**32 - 1))
def test_relu_matches_numpy(dtype, shape, seed):
    rng = np.random.default_rng(seed)
    x, dout = rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype)
    x.flat[0] = 0.0  # the kink: gradient 0, as in the reference
    out = numba_kernels.relu_forward(x)
    assert_close(out, ref.relu_forward(x), dtype)
    assert_close(numba_kernels.relu_backward(dout, out), ref.relu_backward(dout, ref.relu_forward(x)), dtype)


@settings(deadline=None)
@given(dtype=dtypes, shape=st.lists(st.integers(1, 6), min_size=1, max_size=4), slope=st.sampled_from([0.0, 0.3, 1.5]),
       seed=st.integers(0, 2**32 - 1))  # fmt: skip
def test_leaky_relu_matches_numpy(dtype, shape, slope, seed):
    rng = np.random.default_rng(seed)
    x, dout = rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype)
    x.flat[0] = 0.0  # the kink: the left slope, as in the reference
    assert_close(numba_kernels.leaky_relu_forward(x, slope), ref.leaky_relu_forward(x, slope), dtype)
    assert_close(numba_kernels.leaky_relu_backward(dout, x, slope), ref.leaky_relu_backward(dout, x, slope), dtype)
    assert numba_kernels.leaky_relu_forward(x, slope).dtype == dtype


@settings(deadline=None)
@given(dtype=dtypes, n=st.integers(1, 5), latent=st.integers(1, 6), seed=st.integers(0, 2**32 - 1))
def test_latent_kernels_match_numpy(dtype, n, latent, seed):
    rng = np.random.default_rng(seed)
    hidden = (3 * rng.standard_normal((n, 2 * latent))).astype(dtype)
    mu, logvar = hidden[:, :latent], hidden[:, latent:]  # views, as the model passes them
    eps, dz = rng.standard_normal((n, latent)).astype(dtype), rng.standard_normal((n, latent)).astype(dtype)
    assert_close(numba_kernels.reparameterize(mu, logvar, eps), ref.reparameterize(mu, logvar, eps), dtype)
    assert_all_close(numba_kernels.reparameterize_backward(dz, logvar, eps), ref.reparameterize_backward(dz, logvar, eps), dtype)
    assert_all_close(numba_kernels.kl_divergence(mu, logvar), ref.kl_divergence(mu, logvar), dtype)


@settings(deadline=None)
@given(dtype=dtypes, n=st.integers(1, 5), size=st.integers(1, 12), scale=st.sampled_from([1.0, 30.0, 1e4]), seed=st.integers(0, 2**32 - 1))
def test_bernoulli_nll_matches_numpy(dtype, n, size, scale, seed):
    rng = np.random.default_rng(seed)
    logits = (scale * rng.standard_normal((n, 1, size, size))).astype(dtype)  # large |logits| too
    x = (rng.random((n, 1, size, size)) < 0.5).astype(dtype)
    (nll, dlogits), (ref_nll, ref_dlogits) = numba_kernels.bernoulli_nll(logits, x), ref.bernoulli_nll(logits, x)
    assert_close(nll, ref_nll, dtype)
    # dlogits = (sigmoid(l) - x) / N subtracts numbers of size 1 / N: rounding is relative to that,
    # not to the (possibly tiny) difference (l = 9.6, x = 1 gives -6.7e-5 from 1 - 6.7e-5 and 1).
    assert_close(dlogits, ref_dlogits, dtype, scale=1.0 / n)


@settings(deadline=None)
@given(
    dtype=dtypes,
    size=st.sampled_from([1, 7, 1000, numba_kernels.ADAM_PARALLEL_SIZE + 3]),  # serial and parallel kernels
    step=st.integers(1, 1000),
    seed=st.integers(0, 2**32 - 1),
)
def test_adam_update_matches_numpy(dtype, size, step, seed):
    rng = np.random.default_rng(seed)
    param, grad = rng.standard_normal(size).astype(dtype), rng.standard_normal(size).astype(dtype)
    m, v = (0.1 * rng.standard_normal(size)).astype(dtype), rng.random(size).astype(dtype)
    expected = [a.copy() for a in (param, m, v)]
    ref.adam_update(*expected[:1], grad, *expected[1:], 1e-3, 0.9, 0.999, 1e-8, step)
    numba_kernels.adam_update(param, grad, m, v, 1e-3, 0.9, 0.999, 1e-8, step)
    assert_all_close((param, m, v), expected, dtype)


def test_every_float_kernel_divides_as_numpy_does_so_that_its_loops_vectorize():
    """error_model="numpy": a division by zero is inf/NaN as in the twin, with no per-division check,
    which kept Adam's update scalar (9x slower)."""
    dispatchers = [f for f in vars(numba_kernels).values() if hasattr(f, "targetoptions") and f.__module__ == numba_kernels.__name__]
    float_kernels = [f for f in dispatchers if f.targetoptions.get("fastmath")]
    assert numba_kernels._adam_serial in float_kernels and numba_kernels._bernoulli_nll in float_kernels
    assert {f.__name__: f.targetoptions.get("error_model") for f in float_kernels} == {f.__name__: "numpy" for f in float_kernels}


def test_adam_update_on_a_non_contiguous_parameter_updates_it_in_place():
    rng = np.random.default_rng(2)
    base = rng.standard_normal((4, 6))
    param, grad = base[:, ::2], rng.standard_normal((4, 3))  # a strided view
    m, v = np.zeros((4, 3)), np.zeros((4, 3))
    expected = param.copy()
    ref.adam_update(expected, grad, np.zeros((4, 3)), np.zeros((4, 3)), 1e-2, 0.9, 0.999, 1e-8, 1)
    numba_kernels.adam_update(param, grad, m, v, 1e-2, 0.9, 0.999, 1e-8, 1)
    assert_close(base[:, ::2], expected, np.float64)


# --------------------------------------------------------------------------------------
# fastmath keeps NaN and Inf; parallel loops are race-free
# --------------------------------------------------------------------------------------


def test_nan_in_the_input_reaches_the_loss():
    rng = np.random.default_rng(0)
    with tinyvae.use_backend("numba"):
        model = tinyvae.conv_vae(2, rng=rng)
        x = (rng.random((4, 1, 28, 28)) < 0.5).astype(np.float32)
        x[1, 0, 10, 10] = np.nan
        terms = model.loss_and_grads(x, rng=rng)
    assert np.isnan(terms["reconstruction"]) and np.isnan(terms["loss"])


def test_nan_and_inf_propagate_through_each_kernel():
    x = np.ones((2, 2, 5, 5))
    x[0, 1, 2, 2] = np.nan
    w, b = np.ones((3, 2, 3, 3)), np.zeros(3)
    out = numba_kernels.conv2d_forward(x, w, b, (1, 1), (1, 1))
    assert np.isnan(out[0]).any() and not np.isnan(out[1]).any()
    assert np.isnan(numba_kernels.conv_transpose2d_forward(x, w.transpose(1, 0, 2, 3), b, (2, 2), (1, 1), (1, 1))[0]).any()
    assert np.isnan(numba_kernels.relu_forward(x)[0, 1, 2, 2])
    assert np.isnan(numba_kernels.leaky_relu_forward(x, 0.3)[0, 1, 2, 2])
    logits, target = np.array([[np.nan, 0.0], [-np.inf, 0.0]]), np.array([[1.0, 0.0], [1.0, 1.0]])
    nll, _ = numba_kernels.bernoulli_nll(logits, target)
    assert np.isnan(nll[0]) and nll[1] == np.inf == ref.bernoulli_nll(logits, target)[0][1]


def test_parallel_kernels_are_bit_identical_run_to_run():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((16, 8, 9, 9)).astype(np.float32)
    w = rng.standard_normal((8, 6, 3, 3)).astype(np.float32)
    dout = rng.standard_normal((16, 6, 18, 18)).astype(np.float32)
    logits, target = rng.standard_normal((64, 784)).astype(np.float32), (rng.random((64, 784)) < 0.5).astype(np.float32)

    def run():
        forward = numba_kernels.conv_transpose2d_forward(x, w, np.zeros(6, np.float32), (2, 2), (1, 1), (1, 1))
        backward = numba_kernels.conv_transpose2d_backward(dout, x, w, (2, 2), (1, 1))  # dx by item, dw over the batch
        return (forward, *backward, *numba_kernels.bernoulli_nll(logits, target), numba_kernels.relu_forward(dout))

    first = run()
    for _ in range(10):
        assert all(np.array_equal(a, b) for a, b in zip(run(), first))

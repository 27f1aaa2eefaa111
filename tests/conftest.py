import importlib.util
import os
from pathlib import Path

import numpy as np

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tinyvae.backend import use_backend
from tinyvae import geometry
from tinyvae.datasets import write_idx

settings.register_profile(
    "default", deadline=None, max_examples=20, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
# On CI, draw the same examples every run so that a red build is reproducible.
settings.register_profile("ci", parent=settings.get_profile("default"), derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")

HAVE_NUMBA = importlib.util.find_spec("numba") is not None


@pytest.fixture(
    params=["numpy", pytest.param("numba", marks=pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed"))]
)
def backend(request):
    """Run the test once per kernel backend."""
    with use_backend(request.param):
        yield request.param


def load_example(name):
    """Import ``examples/<name>.py`` (``name`` may be ``exercises/<file>``) as a module; its main(argv) runs it."""
    script = Path(__file__).resolve().parents[1] / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name.replace("/", ".") + "_example", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def mnist():
    """examples/mnist.py, imported as a module."""
    return load_example("mnist")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Tiny MNIST-format IDX files: 96 training and 24 test images of random strokes, labels 0..9 in turn."""
    directory = tmp_path_factory.mktemp("idx")
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 96), ("t10k", 24)):
        images = np.where(rng.random((n, 28, 28)) < 0.2, rng.integers(0, 256, (n, 28, 28)), 0).astype(np.uint8)
        write_idx(directory / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8))
    return directory


@st.composite
def conv_transpose_cases(draw, dtypes=st.just(np.float64)):
    """A ConvTranspose2D problem with at least one output pixel, of a dtype drawn from ``dtypes``:
    (dtype, x, weight, bias, dout, stride, padding, output_padding)."""
    dtype = draw(dtypes)
    N, C_in, C_out = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    kH, kW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    oph, opw = draw(st.integers(0, sh - 1)), draw(st.integers(0, sw - 1))
    H, W = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    Ho = geometry.conv_transpose_output_size(H, kH, sh, ph, oph)
    Wo = geometry.conv_transpose_output_size(W, kW, sw, pw, opw)
    if min(Ho, Wo) < 1:
        H, W, ph, pw = H + 2, W + 2, 0, 0
        Ho = geometry.conv_transpose_output_size(H, kH, sh, ph, oph)
        Wo = geometry.conv_transpose_output_size(W, kW, sw, pw, opw)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((N, C_in, H, W)).astype(dtype)
    weight = rng.standard_normal((C_in, C_out, kH, kW)).astype(dtype)
    bias = rng.standard_normal(C_out).astype(dtype)
    dout = rng.standard_normal((N, C_out, Ho, Wo)).astype(dtype)
    return dtype, x, weight, bias, dout, (sh, sw), (ph, pw), (oph, opw)

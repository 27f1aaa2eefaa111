"""The teaching material runs and tells the truth: examples/ and docs/backprop-through-sampling.md.

- examples/gradients_by_hand.py: every hand-derived gradient matches central differences.
- examples/gradient_variance.py: both estimators are unbiased, reparameterization has the
  lower variance, and the plot is written.
- The guide's ``>>>`` snippets run (doctest), and every output it quotes is printed verbatim
  by the example it names.
"""

import contextlib
import doctest
import importlib.util
import io
import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "backprop-through-sampling.md"

HAND_VS_NUMERIC_TOL = 1e-6  # float64 central differences (h = 1e-6) agree to ~1e-9 here
STANDARD_ERRORS = 4  # an unbiased estimator's mean lands this close to the exact value


def load_example(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_main(name, *args):
    """Run ``examples/<name>.py``'s main(*args); return (its result, what it printed)."""
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        result = load_example(name).main(*args)
    return result, stdout.getvalue()


@pytest.fixture(scope="module")
def walkthrough():
    return run_main("gradients_by_hand")


@pytest.fixture(scope="module")
def variance(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "gradient_variance.png"
    results, printed = run_main("gradient_variance", ["--out", str(out)])
    return results, printed, out


def test_hand_gradients_match_finite_differences(walkthrough):
    errors, printed = walkthrough
    paths = [f"dL/d{v}{part}" for v in ("mu", "logvar") for part in (", z path", ", KL path", "")]
    params = [f"{part}.{i}.{k}" for part in ("encoder", "decoder") for i in (0, 2) for k in ("weight", "bias")]
    assert set(errors) == {"dL/dlogits", "dL/dz", *paths, *params}
    assert max(errors.values()) < HAND_VS_NUMERIC_TOL, errors
    assert "VAE.loss_and_grads gives the same parameter gradients as the walk above: True" in printed


def test_reparameterization_has_lower_variance(variance):
    results, _, _ = variance
    for p in ("mu", "logvar"):
        assert np.all(results[p]["pathwise_var"] < results[p]["score_var"]), p


def test_both_estimators_are_unbiased(variance):
    results, _, _ = variance
    for p in ("mu", "logvar"):
        r = results[p]
        for name in ("pathwise", "score"):
            stderr = np.sqrt(r[f"{name}_var"] / results["trials"])
            assert np.all(np.abs(r[f"{name}_mean"] - r["exact"]) < STANDARD_ERRORS * stderr), (p, name)


def test_variance_plot_is_written(variance):
    _, printed, out = variance
    assert out.read_bytes().startswith(b"\x89PNG")
    assert f"wrote {out}" in printed


def test_guide_quotes_the_examples_verbatim(walkthrough, variance):
    printed = {"gradients_by_hand": walkthrough[1], "gradient_variance": variance[1]}
    quotes = re.findall(r"<!-- output of: python examples/(\w+)\.py -->\n```text\n(.*?)```", GUIDE.read_text(), re.S)
    assert quotes, "the guide quotes no example output"
    for name, block in quotes:
        for line in block.splitlines():
            assert line in printed[name], f"{GUIDE.name} quotes a line that {name}.py does not print: {line!r}"


def test_guide_snippets_run():
    failed, attempted = doctest.testfile(
        str(GUIDE), module_relative=False, optionflags=doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert attempted > 0 and failed == 0

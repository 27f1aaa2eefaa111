"""The teaching material runs and tells the truth: examples/ and docs/backprop-through-sampling.md.

- examples/gradients_by_hand.py: every hand-derived gradient matches central differences.
- examples/gradient_variance.py: both estimators are unbiased, reparameterization has the
  lower variance, and the plot is written.
- The guide's ``>>>`` snippets run (doctest), and every output it quotes is printed by the
  example it names: the same text, and the same numbers to within one unit of their last
  printed digit (summation order differs between CPUs, so a rounded digit may flip).
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


NUMBER = re.compile(r"-?\d+\.\d+(?:e[-+]?\d+)?")


def same_line(quoted, printed):
    """True if the lines differ at most in numbers, each within one unit of its last quoted digit."""
    if NUMBER.split(quoted) != NUMBER.split(printed):
        return False
    for q, p in zip(NUMBER.findall(quoted), NUMBER.findall(printed)):
        mantissa, _, exponent = q.partition("e")
        unit = 10.0 ** (int(exponent or 0) - len(mantissa.split(".")[1]))
        if abs(float(q) - float(p)) > unit * 1.0001:
            return False
    return True


def test_same_line_allows_only_the_last_digit_to_move():
    assert same_line("loss [2.828732]", "loss [2.828733]")
    assert same_line("mu  1  -3.0302  51.3119", "mu  1  -3.0301  51.3120")
    assert not same_line("loss [2.828732]", "loss [2.828734]")
    assert not same_line("loss [2.828732]", "lass [2.828732]")
    assert not same_line("error 2.3e-09", "error 3.3e-09")


def test_guide_quotes_the_examples_output(walkthrough, variance):
    printed = {"gradients_by_hand": walkthrough[1], "gradient_variance": variance[1]}
    quotes = re.findall(r"<!-- output of: python examples/(\w+)\.py -->\n```text\n(.*?)```", GUIDE.read_text(), re.S)
    assert quotes, "the guide quotes no example output"
    for name, block in quotes:
        lines = printed[name].splitlines()
        for line in block.splitlines():
            assert any(same_line(line, p) for p in lines), f"{GUIDE.name} quotes a line that {name}.py does not print: {line!r}"


def test_guide_snippets_run():
    failed, attempted = doctest.testfile(
        str(GUIDE), module_relative=False, optionflags=doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert attempted > 0 and failed == 0

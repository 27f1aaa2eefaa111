"""README's commands and example stay equal to reality."""

import re
from pathlib import Path

from conftest import load_example


ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def code_blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_ci_runs_exactly_the_readme_test_command():
    test_command = next(block.strip() for block in code_blocks("bash") if "pytest" in block)
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines


def test_quick_start_trains_and_the_loss_falls(capsys):
    namespace = {}
    exec(compile(code_blocks("python")[0], "README.md quick start", "exec"), namespace)
    history = namespace["history"]
    assert len(history) == 15
    assert history[-1]["loss"] < 0.6 * history[0]["loss"]
    # README quotes the printed line; BLAS rounding differs across CPUs, so compare to 2%
    printed = [float(v) for v in re.findall(r"\d+\.\d", capsys.readouterr().out)]
    quoted = [float(v) for v in re.search(r"`negative ELBO: ([\d.]+) -> ([\d.]+) nats", README).groups()]
    assert all(abs(p - q) <= 0.02 * q for p, q in zip(printed, quoted, strict=True))


def test_mnist_snippet_trains_and_loads_a_run_back(tmp_path, monkeypatch, capsys):
    """README's second Python block: train on MNIST from Python, then tv.load_run("runs/mnist")."""
    mnist = load_example("mnist")
    monkeypatch.chdir(tmp_path)  # the snippet reads runs/mnist, relative to where it runs
    mnist.main(["--arch", "mlp", "--hidden", "16", "--train-size", "256", "--test-size", "64", "--epochs", "1",
                "--iwae-k", "0", "--out", "runs/mnist"])  # fmt: skip
    capsys.readouterr()
    namespace = {}
    exec(compile(code_blocks("python")[1], "README.md MNIST snippet", "exec"), namespace)
    nll = float(re.search(r"one epoch on 10,000 images: (\d+) nats", capsys.readouterr().out).group(1))
    assert 100 < nll < 250  # from ~545 nats untrained; the digits' negative ELBO after one pass
    digits = namespace["digits"]
    assert digits.shape == (16, 1, 28, 28) and 0 <= digits.min() and digits.max() <= 1
    assert not namespace["trained"].training

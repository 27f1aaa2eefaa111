"""README's commands and example stay equal to reality."""

import re
from pathlib import Path

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

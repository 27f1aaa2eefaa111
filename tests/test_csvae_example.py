"""examples/csvae.py: the swiss roll data, a tiny run end to end, resume, refusals."""

import json

import numpy as np
import pytest
from conftest import load_example

from tinyvae.checkpoint import load_checkpoint, load_run
from tinyvae.datasets import swiss_roll

TINY = ["--n-train", "256", "--n-test", "128", "--hidden", "8", "--adversary-hidden", "8", "--adversary-steps", "2",
        "--backend", "numpy"]  # fmt: skip


@pytest.fixture(scope="module")
def example():
    return load_example("csvae")


def test_swiss_roll_points_and_labels():
    x, y = swiss_roll(1000, np.random.default_rng(0))
    assert x.shape == (1000, 3) and x.dtype == np.float32 and y.shape == (1000, 1) and y.dtype == np.int64
    radius = np.hypot(x[:, 0], x[:, 2]) * 10  # the angle t, also the distance from the roll's axis
    assert radius.min() >= 1.5 * np.pi - 1e-4 and radius.max() <= 4.5 * np.pi + 1e-4
    np.testing.assert_array_equal(y[:, 0], radius > 3 * np.pi)  # y = 1 on the outer half
    assert 0.45 < y.mean() < 0.55 and np.abs(x[:, 1]).max() <= 1
    again, _ = swiss_roll(1000, np.random.default_rng(0))
    np.testing.assert_array_equal(x, again)
    with pytest.raises(ValueError, match=r"swiss_roll: noise must be a finite number >= 0, got -1"):
        swiss_roll(10, np.random.default_rng(0), noise=-1)


@pytest.mark.parametrize("decay", [[], ["--lr-decay", "0.5"]], ids=["constant-lr", "lr-decay"])
def test_a_tiny_run_writes_its_files_and_resumes_exactly(example, tmp_path, decay):
    straight = example.main([*TINY, *decay, "--epochs", "2", "--out", str(tmp_path / "straight")])
    assert straight["epochs_done"] == 2 and len(straight["history"]) == 2
    for key in ("separation_w", "separation_z", "adversary_accuracy", "probe_accuracy", "base_rate"):
        assert len(straight[key]) == 1
    assert {"data.png", "latent.png", "curves.png"} <= {p.name for p in (tmp_path / "straight").iterdir()}
    saved = json.loads((tmp_path / "straight" / "summary.json").read_text())
    assert saved["config"]["betas"] == [2.0, 1.0, 2.0, 20.0, 1.0]

    example.main([*TINY, *decay, "--epochs", "1", "--out", str(tmp_path / "resumed")])
    example.main([*TINY, *decay, "--epochs", "2", "--out", str(tmp_path / "resumed"), "--resume"])
    a, b = load_run(tmp_path / "straight"), load_run(tmp_path / "resumed")
    for k, v in a.state_dict().items():
        np.testing.assert_array_equal(b.state_dict()[k], v, err_msg=k)
    optimizers = load_checkpoint(tmp_path / "resumed").meta["optimizers"]
    assert sorted(optimizers) == ["adversary", "vae"]
    lr = 1e-3 * (0.5 if decay else 1.0)  # epoch 2 trained at lr * decay
    assert all(o["lr"] == pytest.approx(lr) for o in optimizers.values()), optimizers


def test_refusals_name_the_problem(example, tmp_path, capsys):
    example.main([*TINY, "--epochs", "1", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="already holds a run"):
        example.main([*TINY, "--epochs", "1", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match=r"--resume: .* was trained with other settings: --hidden 16"):
        example.main([*TINY, "--hidden", "16", "--epochs", "2", "--out", str(tmp_path), "--resume"])
    with pytest.raises(SystemExit):
        example.main([*TINY, "--betas", "1,2,3", "--out", str(tmp_path / "new")])
    assert "--betas: expected five finite numbers >= 0 separated by commas, got '1,2,3'" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()

"""examples/mnist.py, run in-process with tiny settings: outputs, resume, errors, flags."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

import tinyvae
from tinyvae.checkpoint import CheckpointError, load_checkpoint
from tinyvae.datasets import write_idx

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "mnist.py"
PICTURES = {"reconstructions.png", "samples.png", "latent.png", "manifold.png", "interpolation.png", "curves.png"}


@pytest.fixture(scope="module")
def mnist():
    spec = importlib.util.spec_from_file_location("mnist_example", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Tiny MNIST-format IDX files: 96 training and 24 test images of random strokes."""
    directory = tmp_path_factory.mktemp("idx")
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 96), ("t10k", 24)):
        images = np.where(rng.random((n, 28, 28)) < 0.2, rng.integers(0, 256, (n, 28, 28)), 0).astype(np.uint8)
        write_idx(directory / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8))
    return directory


@pytest.fixture
def no_pictures(mnist, monkeypatch):
    """Skip matplotlib in tests that are about training and checkpoints."""
    monkeypatch.setattr(mnist, "draw_pictures", lambda *args: [])


def small(data_dir, out, *extra):
    """Flags for a quick mlp run on the tiny IDX files."""
    return ["--data-dir", str(data_dir), "--arch", "mlp", "--hidden", "16", "--batch-size", "32",
            "--backend", "numpy", "--iwae-k", "2", "--out", str(out), *extra]  # fmt: skip


def test_tiny_end_to_end_run_writes_everything(mnist, tmp_path):
    out = tmp_path / "run"
    argv = ["--train-size", "256", "--test-size", "128", "--epochs", "2", "--iwae-k", "5", "--backend", "numpy"]
    summary = mnist.main([*argv, "--out", str(out)])

    assert PICTURES <= {p.name for p in out.iterdir()}
    assert all((out / name).stat().st_size > 1000 for name in PICTURES)
    saved = json.loads((out / "summary.json").read_text())
    assert saved == json.loads(json.dumps(summary))
    assert saved["backend"] == "numpy" and saved["n_train"] == 256 and saved["n_test"] == 128
    assert saved["binarization"].startswith("dynamic") and "seed 0" in saved["binarization"]
    assert saved["config"]["arch"] == "conv" and saved["config"]["latent_dim"] == 2
    assert [h["epoch"] for h in saved["history"]] == [1, 2]
    for h in saved["history"]:
        assert np.isfinite(h["test_elbo"]) and h["wall_seconds"] > 0 and h["images_per_s"] > 0
    assert saved["test_elbo"] == saved["history"][-1]["test_elbo"] < 0
    assert saved["iwae"]["k"] == 5 and np.isfinite(saved["iwae"]["log_px_bound"])
    assert load_checkpoint(out).epoch == 2
    assert sorted(p.name for p in out.glob("checkpoint*")) == ["checkpoint-epoch0002.npz", "checkpoint.json"]


def test_help_explains_every_flag(mnist, capsys):
    with pytest.raises(SystemExit) as exit_info:
        mnist.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--arch", "--latent-dim", "--hidden", "--epochs", "--batch-size", "--lr", "--beta", "--binarize",
                 "--backend", "--seed", "--out", "--resume", "--iwae-k", "--dataset", "--data-dir",
                 "--train-size", "--test-size", "--time-limit"):  # fmt: skip
        assert flag in text
    assert "(default: runs/mnist)" in text


def test_data_dir_static_binarization_and_pca(mnist, data_dir, tmp_path):
    out = tmp_path / "run"
    summary = mnist.main(small(data_dir, out, "--epochs", "1", "--binarize", "static", "--latent-dim", "3"))
    assert summary["n_train"] == 96 and summary["n_test"] == 24
    assert summary["binarization"].startswith("static")
    assert PICTURES - {"manifold.png"} <= {p.name for p in out.iterdir()}
    assert not (out / "manifold.png").exists()  # latent dim 3: no 2-D manifold


def final_state(out):
    ckpt = load_checkpoint(out)
    return ckpt, {**ckpt.model_state, **{f"opt/{k}": v for k, v in ckpt.optimizer_state.items()}}


def test_interrupted_and_resumed_run_matches_an_uninterrupted_one(mnist, data_dir, tmp_path, monkeypatch, no_pictures):
    straight = mnist.main(small(data_dir, tmp_path / "straight", "--epochs", "3"))

    # Interrupt the second run in the middle of epoch 3 (after its epoch-2 checkpoint) ...
    def interrupt(self, epoch, step, n_steps, terms):
        if epoch == 3 and step == 2:
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(mnist.ProgressBar, "__call__", interrupt)
        with pytest.raises(KeyboardInterrupt):
            mnist.main(small(data_dir, tmp_path / "resumed", "--epochs", "3"))
    assert load_checkpoint(tmp_path / "resumed").epoch == 2
    # ... then resume it with no flags but --out.
    resumed = mnist.main(["--resume", "--out", str(tmp_path / "resumed")])

    (a, arrays_a), (b, arrays_b) = final_state(tmp_path / "straight"), final_state(tmp_path / "resumed")
    assert a.epoch == b.epoch == 3 and arrays_a.keys() == arrays_b.keys()
    for k in arrays_a:
        np.testing.assert_array_equal(arrays_a[k], arrays_b[k], err_msg=k)
    assert a.meta["rng_state"] == b.meta["rng_state"]
    for key in ("loss", "reconstruction", "kl", "test_elbo"):
        assert [h[key] for h in straight["history"]] == [h[key] for h in resumed["history"]]
    assert straight["iwae"] == {**resumed["iwae"], "seconds": straight["iwae"]["seconds"]}


def test_resume_refuses_other_settings_and_other_architectures(mnist, data_dir, tmp_path, no_pictures):
    out = tmp_path / "run"
    mnist.main(small(data_dir, out, "--epochs", "1"))
    with pytest.raises(SystemExit, match=r"--latent-dim 3 \(checkpoint: 2\).*another --out"):
        mnist.main(["--resume", "--out", str(out), "--latent-dim", "3"])
    conv = tinyvae.conv_vae(latent_dim=2, rng=np.random.default_rng(0))
    with pytest.raises(CheckpointError, match=rf"{out / 'checkpoint.json'}: the checkpoint's architecture differs"):
        load_checkpoint(out).restore(conv)
    with pytest.raises(SystemExit, match=r"--resume: .*no checkpoint here"):
        mnist.main(["--resume", "--out", str(tmp_path / "empty")])


def test_resume_from_a_truncated_checkpoint_is_a_clear_error(mnist, data_dir, tmp_path, no_pictures):
    out = tmp_path / "run"
    mnist.main(small(data_dir, out, "--epochs", "1"))
    npz = out / "checkpoint-epoch0001.npz"
    npz.write_bytes(npz.read_bytes()[:500])
    with pytest.raises(SystemExit, match=r"checkpoint-epoch0001\.npz: corrupt or truncated"):
        mnist.main(["--resume", "--out", str(out), "--epochs", "2"])


def test_nan_stops_the_run_and_keeps_the_last_checkpoint(mnist, data_dir, tmp_path, monkeypatch, no_pictures):
    out = tmp_path / "run"
    mnist.main(small(data_dir, out, "--epochs", "1"))
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    # Poison a parameter after the first update of epoch 2: the next loss is NaN.
    adam_step = tinyvae.Adam.step

    def poisoned_step(self, grads):
        adam_step(self, grads)
        self.params["decoder.0.weight"][0, 0] = np.nan

    monkeypatch.setattr(tinyvae.Adam, "step", poisoned_step)
    with pytest.raises(SystemExit, match=r"(?s)is nan at epoch 2, step 2.*last good checkpoint \(epoch 1\) is intact"):
        mnist.main(["--resume", "--out", str(out), "--epochs", "3"])
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert load_checkpoint(out).epoch == 1


def test_time_limit_stops_after_the_epoch_that_crosses_it(mnist, data_dir, tmp_path, no_pictures):
    summary = mnist.main(small(data_dir, tmp_path / "run", "--epochs", "5", "--time-limit", "1e-6"))
    assert summary["epochs_done"] == 1 and load_checkpoint(tmp_path / "run").epoch == 1

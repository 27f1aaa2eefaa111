"""examples/mnist.py, run in-process with tiny settings: outputs, resume, errors, flags."""

import fcntl
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import tinyvae
from tinyvae.checkpoint import CheckpointError, load_checkpoint

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "mnist.py"
PICTURES = {"reconstructions.png", "samples.png", "latent.png", "manifold.png", "interpolation.png", "curves.png",
            "kl_per_dim.png"}


@pytest.fixture
def no_pictures(mnist, monkeypatch):
    """Skip matplotlib in tests that are about training and checkpoints."""
    monkeypatch.setattr(mnist, "PICTURES", {})


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
                 "--train-size", "--test-size", "--time-limit", "--overwrite", "--debug", "--objective", "--k",
                 "--warmup-epochs"):  # fmt: skip
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

    # Interrupt the second run in the middle of epoch 3 (after its epoch-2 checkpoint; 3 steps per epoch) ...
    adam_step = tinyvae.Adam.step

    def interrupt(self, grads):
        adam_step(self, grads)
        if self.step_count == 2 * 3 + 2:
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(tinyvae.Adam, "step", interrupt)
        with pytest.raises(SystemExit) as exit_info:  # Ctrl-C: a message, no traceback
            mnist.main(small(data_dir, tmp_path / "resumed", "--epochs", "3"))
    assert exit_info.value.code == 130
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
    # The metrics log continues from the checkpoint: epoch 3's partial steps before the interruption are gone.
    logs = [metrics(tmp_path / name) for name in ("straight", "resumed")]
    assert [(m["epoch"], m["step"]) for m in logs[1]] == [(e, s) for e in (1, 2, 3) for s in (1, 2, 3)]
    for m in logs:
        for entry in m:
            del entry["images_per_s"]
    assert logs[0] == logs[1]


def test_resume_refuses_other_settings_and_other_architectures(mnist, data_dir, tmp_path, no_pictures):
    out = tmp_path / "run"
    mnist.main(small(data_dir, out, "--epochs", "1"))
    with pytest.raises(SystemExit, match=r"--latent-dim 3 \(checkpoint: 20\).*another --out"):
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


def metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_time_limit_stops_after_the_epoch_that_crosses_it(mnist, data_dir, tmp_path, no_pictures):
    summary = mnist.main(small(data_dir, tmp_path / "run", "--epochs", "5", "--time-limit", "1e-6"))
    assert summary["epochs_done"] == 1 and load_checkpoint(tmp_path / "run").epoch == 1


# --------------------------------------------------------------------------------------
# Bad flags and unsafe output folders are refused before anything is written
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("flag, value", [("--lr", "inf"), ("--lr", "nan"), ("--beta", "nan"), ("--beta", "inf"),
                                         ("--time-limit", "nan"), ("--time-limit", "inf"), ("--seed", "-1"),
                                         ("--lr-decay", "0"), ("--lr-decay", "nan"),
                                         ("--lr", "0"), ("--epochs", "-1")])  # fmt: skip
def test_non_finite_or_out_of_range_flags_are_refused(mnist, data_dir, tmp_path, capsys, flag, value):
    with pytest.raises(SystemExit) as exit_info:
        mnist.main(small(data_dir, tmp_path / "run", "--epochs", "1", flag, value))
    assert exit_info.value.code == 2
    assert f"argument {flag}" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_an_iwae_k_that_cannot_fit_in_memory_is_refused_before_training(mnist, data_dir, tmp_path):
    with pytest.raises(SystemExit, match=r"--iwae-k 1000000000000: .*memory"):
        mnist.main(small(data_dir, tmp_path / "run", "--epochs", "1", "--iwae-k", str(10**12)))
    assert not (tmp_path / "run" / "checkpoint.json").exists()


def test_a_new_run_refuses_to_replace_a_checkpoint_without_overwrite(mnist, data_dir, tmp_path):
    out = tmp_path / "run"
    mnist.main(small(data_dir, out, "--epochs", "1", "--latent-dim", "2", "--test-size", "12"))
    assert (out / "manifold.png").exists()
    (out / "notes.txt").write_text("mine")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(SystemExit, match=r"already holds a run \(epoch 1\).*--resume.*--overwrite"):
        mnist.main(small(data_dir, out, "--epochs", "2"))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before

    # --overwrite starts afresh and removes the old run's outputs that the new run does not write.
    mnist.main(small(data_dir, out, "--epochs", "1", "--latent-dim", "3", "--test-size", "12", "--overwrite"))
    assert not (out / "manifold.png").exists()
    assert (out / "notes.txt").read_text() == "mine"
    assert json.loads((out / "summary.json").read_text())["config"]["latent_dim"] == 3


def test_a_second_concurrent_run_in_the_same_folder_is_refused(mnist, data_dir, tmp_path, no_pictures):
    out = tmp_path / "run"
    out.mkdir()
    holder = os.open(out / mnist.runner.LOCK_NAME, os.O_CREAT | os.O_RDWR)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(SystemExit, match=r"another run is writing into .*run"):
            mnist.main(small(data_dir, out, "--epochs", "1"))
    finally:
        os.close(holder)  # a killed process's lock goes away like this one: the next run may start
    assert not (out / "checkpoint.json").exists()
    mnist.main(small(data_dir, out, "--epochs", "1"))
    assert load_checkpoint(out).epoch == 1


def test_outputs_replace_planted_symlinks_instead_of_writing_through_them(mnist, data_dir, tmp_path):
    out, outside = tmp_path / "run", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    (out / mnist.runner.LOCK_NAME).symlink_to(outside / "lock")
    with pytest.raises(SystemExit, match=r"tinyvae\.lock: cannot open the lock file"):
        mnist.main(small(data_dir, out, "--epochs", "1"))
    assert not (outside / "lock").exists()
    (out / mnist.runner.LOCK_NAME).unlink()
    for name in ("summary.json", "curves.png", "metrics.jsonl", "samples.gif"):
        (outside / name).write_text("keep")
        (out / name).symlink_to(outside / name)
    mnist.main(small(data_dir, out, "--epochs", "1"))
    for name in ("summary.json", "curves.png", "metrics.jsonl", "samples.gif"):
        assert (outside / name).read_text() == "keep"
        assert (out / name).is_file() and not (out / name).is_symlink()


def test_divergence_on_an_epochs_last_step_keeps_the_last_good_checkpoint(
    mnist, data_dir, tmp_path, monkeypatch, no_pictures
):
    out = tmp_path / "run"
    mnist.main(small(data_dir, out, "--epochs", "1"))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    adam_step = tinyvae.Adam.step

    def poison_the_last_step_of_epoch_2(self, grads):  # 3 steps per epoch: training never sees a NaN loss
        adam_step(self, grads)
        if self.step_count == 2 * 3:
            self.params["decoder.0.weight"][0, 0] = np.nan

    monkeypatch.setattr(tinyvae.Adam, "step", poison_the_last_step_of_epoch_2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no NumPy RuntimeWarning before the message
        with pytest.raises(SystemExit, match=r"(?s)epoch 2.*not finite.*last good checkpoint \(epoch 1\) is intact"):
            mnist.main(["--resume", "--out", str(out), "--epochs", "3"])
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_test_set_too_small_for_some_pictures_still_writes_the_summary(mnist, data_dir, tmp_path):
    out = tmp_path / "run"
    summary = mnist.main(small(data_dir, out, "--epochs", "1", "--test-size", "1", "--latent-dim", "3"))
    saved = json.loads((out / "summary.json").read_text())
    assert saved["n_test"] == 1 and "interpolation.png" in saved["pictures_skipped"]
    assert "latent.png" in saved["pictures_skipped"] and "reconstructions.png" in saved["pictures"]
    assert summary["pictures_skipped"]["interpolation.png"].startswith("needs at least 2 test images")


def test_the_backend_comes_from_the_flag_then_tinyvae_backend_then_auto(mnist, data_dir, tmp_path, monkeypatch,
                                                                        capsys, no_pictures):  # fmt: skip
    monkeypatch.setenv("TINYVAE_BACKEND", "numpy")
    argv = [a for a in small(data_dir, tmp_path / "run", "--epochs", "0") if a not in ("--backend", "numpy")]
    assert mnist.main(argv)["backend"] == "numpy"
    assert capsys.readouterr().out.splitlines()[0] == "backend: numpy (TINYVAE_BACKEND=numpy)"
    monkeypatch.setenv("TINYVAE_BACKEND", "cuda")
    with pytest.raises(SystemExit, match=r"TINYVAE_BACKEND=cuda: .*numpy.*numba"):
        mnist.main(argv + ["--overwrite"])
    assert mnist.main(argv + ["--overwrite", "--backend", "numpy"])["backend"] == "numpy"
    assert capsys.readouterr().out.splitlines()[0] == "backend: numpy (--backend)"


def test_expected_errors_are_one_message_without_a_traceback(mnist, tmp_path):
    with pytest.raises(SystemExit, match=r"data: .*nonexistent.*not found"):
        mnist.main(["--data-dir", str(tmp_path / "nonexistent"), "--out", str(tmp_path / "run")])
    with pytest.raises(FileNotFoundError):  # --debug keeps the traceback
        mnist.main(["--data-dir", str(tmp_path / "nonexistent"), "--out", str(tmp_path / "run"), "--debug"])
    done = subprocess.run([sys.executable, str(SCRIPT), "--data-dir", str(tmp_path / "nonexistent"),
                           "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(SCRIPT.parents[1])})  # fmt: skip
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "nonexistent" in done.stderr.strip().splitlines()[-1]


# --------------------------------------------------------------------------------------
# What a run shows and writes
# --------------------------------------------------------------------------------------


def test_piped_output_reports_progress_inside_an_epoch(mnist, data_dir, tmp_path, monkeypatch, capsys, no_pictures):
    import tinyvae.progress

    monkeypatch.setattr(tinyvae.progress, "PIPED_EVERY_S", 0.0)  # a line per step instead of every 10 s
    mnist.main(small(data_dir, tmp_path / "run", "--epochs", "1"))
    lines = capsys.readouterr().out.splitlines()
    steps = [i for i, line in enumerate(lines) if line.startswith("epoch 1/1: step ")]
    assert len(steps) >= 2 and steps[0] < [i for i, line in enumerate(lines) if line.startswith("epoch   1/1")][0]
    assert any(line.startswith("IWAE bound (k=2): batch ") for line in lines)
    assert "1 epoch," in lines[-1] and "1 epochs" not in lines[-1]


def test_every_epoch_adds_a_sample_frame_and_a_metrics_entry_per_step(mnist, data_dir, tmp_path, no_pictures):
    out = tmp_path / "run"
    summary = mnist.main(small(data_dir, out, "--epochs", "2"))
    frames = sorted(p.name for p in out.glob("samples-epoch*.png"))
    assert frames == ["samples-epoch000.png", "samples-epoch001.png", "samples-epoch002.png"]
    from PIL import Image

    with Image.open(out / "samples.gif") as gif:
        assert gif.n_frames == 3
    log = metrics(out)
    assert [(m["epoch"], m["step"]) for m in log] == [(e, s) for e in (1, 2) for s in (1, 2, 3)]
    assert {"loss", "reconstruction", "kl", "images_per_s"} <= set(log[0])
    assert {"samples.gif", "metrics.jsonl"} <= set(summary["files"])


def test_mlp_defaults_to_latent_dim_20_and_conv_to_2(mnist, data_dir, tmp_path, no_pictures):
    mlp = mnist.main(small(data_dir, tmp_path / "mlp", "--epochs", "0"))
    assert mlp["config"]["latent_dim"] == 20
    assert load_checkpoint(tmp_path / "mlp").meta["architecture"]["latent_dim"] == 20


# --------------------------------------------------------------------------------------
# Objectives, KL warm-up, and the latent diagnostics
# --------------------------------------------------------------------------------------


def test_the_default_run_trains_the_elbo_without_warm_up(mnist, data_dir, tmp_path, no_pictures):
    summary = mnist.main(small(data_dir, tmp_path / "run", "--epochs", "1"))
    assert summary["config"]["objective"] == "elbo" and summary["config"]["warmup_epochs"] == 0
    assert summary["history"][0]["beta"] == 1.0 and summary["history"][0]["lr"] == 1e-3
    assert set(metrics(tmp_path / "run")[0]) == {"epoch", "step", "n_steps", "loss", "reconstruction", "kl",
                                                 "images_per_s"}  # fmt: skip


@pytest.mark.parametrize("interrupt_at", [3 + 2, 2 * 3 + 2], ids=["warm-up epoch 2", "decayed lr epoch 3"])
def test_iwae_with_warm_up_resumes_exactly_and_reports_the_active_units(
    mnist, data_dir, tmp_path, monkeypatch, capsys, no_pictures, interrupt_at
):
    flags = ["--epochs", "3", "--objective", "iwae", "--k", "3", "--warmup-epochs", "2", "--latent-dim", "4",
             "--lr-decay", "0.5"]
    straight = mnist.main(small(data_dir, tmp_path / "straight", *flags))
    lines = capsys.readouterr().out.splitlines()
    epoch_lines = [line for line in lines if line.startswith("epoch   ")]
    assert len(epoch_lines) == 3 and all("iwae_bound" in line and "active units" in line for line in epoch_lines)
    assert "beta 0.333" in epoch_lines[0] and "beta 1" in epoch_lines[2]
    assert any("objective IWAE bound, k=3, beta 1.0 (warmed up over 2 epochs)" in line for line in lines)

    log = metrics(tmp_path / "straight")
    np.testing.assert_allclose([m["beta"] for m in log], [min(1.0, t / 6) for t in range(9)], rtol=1e-12)
    for m in log:
        assert m["loss"] > 0 and m["iwae_bound"] < 0 and np.isfinite(m["kl"])
    assert [h["beta"] for h in straight["history"]] == pytest.approx([2 / 6, 5 / 6, 1.0])  # at each epoch's last step
    assert [h["lr"] for h in straight["history"]] == pytest.approx([1e-3, 5e-4, 2.5e-4])
    for h in straight["history"]:
        assert 0 <= h["active_units"] <= 4 and len(h["kl_per_dim"]) == len(h["mu_variance"]) == 4
    assert straight["active_units"] == straight["history"][-1]["active_units"]
    assert straight["kl_per_dim"] == straight["history"][-1]["kl_per_dim"]
    config = load_checkpoint(tmp_path / "straight").meta["config"]
    assert (config["objective"], config["k"], config["warmup_epochs"]) == ("iwae", 3, 2.0)

    adam_step = tinyvae.Adam.step

    def interrupt(self, grads):  # 3 steps an epoch: mid epoch 2 (warming up), or mid epoch 3 (the checkpoint's lr decayed)
        adam_step(self, grads)
        if self.step_count == interrupt_at:
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(tinyvae.Adam, "step", interrupt)
        with pytest.raises(SystemExit):
            mnist.main(small(data_dir, tmp_path / "resumed", *flags))
    resumed = mnist.main(["--resume", "--out", str(tmp_path / "resumed")])
    (_, a), (_, b) = final_state(tmp_path / "straight"), final_state(tmp_path / "resumed")
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    for key in ("loss", "iwae_bound", "beta", "lr", "test_elbo", "kl_per_dim", "active_units"):
        assert [h[key] for h in straight["history"]] == [h[key] for h in resumed["history"]], key


@pytest.mark.parametrize("flag, value, saved, shown", [("--objective", "iwae", "elbo", "iwae"), ("--k", "7", "5", "7"),
                                                       ("--warmup-epochs", "3", "0.0", "3.0")])  # fmt: skip
def test_resume_refuses_another_objective_or_warm_up(mnist, data_dir, tmp_path, no_pictures, flag, value, saved,
                                                    shown):
    out = tmp_path / "run"
    mnist.main(small(data_dir, out, "--epochs", "1"))
    with pytest.raises(SystemExit, match=rf"{flag} {shown} \(checkpoint: {saved}\)"):
        mnist.main(["--resume", "--out", str(out), "--epochs", "2", flag, value])


def test_the_kl_picture_is_drawn_and_listed(mnist, data_dir, tmp_path):
    out = tmp_path / "run"
    summary = mnist.main(small(data_dir, out, "--epochs", "1", "--latent-dim", "3", "--iwae-k", "0"))
    assert "kl_per_dim.png" in summary["pictures"] and (out / "kl_per_dim.png").stat().st_size > 1000
    assert summary["active_units"] == sum(v > 0.01 for v in summary["mu_variance"])

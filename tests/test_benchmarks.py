"""benchmarks/run.py runs end to end in its quick mode, on the shapes of the built presets."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TUNING = ("OPENBLAS_THREAD_TIMEOUT", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def run_benchmark(tmp_path, *flags):
    # no PYTHONPATH: the script itself must find this checkout's tinyvae, even where another one is
    # installed; the caller's environment has no tuning variables
    env = {k: v for k, v in os.environ.items() if k not in (*TUNING, "PYTHONPATH")}
    command = [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--no-torch", "--out", str(tmp_path), *flags]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_quick_benchmark_runs_and_writes_its_results(tmp_path):
    stdout = run_benchmark(tmp_path)
    result = json.loads((tmp_path / "benchmark.json").read_text())
    kernels = {row["kernel"] for row in result["kernels"]}
    assert {"conv1", "conv2", "convT1", "convT2", "convT3", "dense_enc", "dense_dec"} <= kernels
    assert [(r["preset"], r["latent"]) for r in result["train"]] == [("conv", 2), ("conv", 32), ("mlp", 20)]
    assert all(r["numpy_img_s"] > 0 and r["numba_img_s"] > 0 and r["numba_tuned_env_img_s"] > 0 for r in result["train"])
    assert "CPU: " in stdout and result["system"]["cpu"]


def test_the_benchmark_measures_the_checkout_it_lives_in(tmp_path):
    run_benchmark(tmp_path, "--profile", "--profile-batch", "2")
    runs = json.loads((tmp_path / "profile.json").read_text())["runs"]
    assert {Path(run["tinyvae"]).parent for run in runs} == {ROOT / "tinyvae"}


def test_the_headline_columns_run_in_the_default_environment(tmp_path):
    """What a user gets: nothing exported by the benchmark, except in the tuned "Numba+" column."""
    run_benchmark(tmp_path)
    environments = json.loads((tmp_path / "benchmark.json").read_text())["system"]["worker_environment"]
    assert set(environments["numpy"].values()) == set(environments["numba"].values()) == {None}
    assert environments["numba_tuned_env"]["OPENBLAS_THREAD_TIMEOUT"] == "4"


def test_profile_gives_every_layer_and_pass_its_share_of_the_step(tmp_path):
    stdout = run_benchmark(tmp_path, "--profile", "--profile-batch", "4")
    profile = json.loads((tmp_path / "profile.json").read_text())
    assert [run["backend"] for run in profile["runs"]] == ["numpy", "numba"]
    for run in profile["runs"]:
        assert [(p["preset"], p["latent"]) for p in run["profile"]] == [("conv", 2), ("mlp", 20), ("faces", 200)]
        for preset in run["profile"]:
            rows = preset["rows"]
            layers = [r["layer"] for r in rows if r["pass"] == "backward"]
            assert any("ConvTranspose2D" in name for name in layers) or preset["preset"] == "mlp"
            assert all(r["s"] >= 0 for r in rows if r["layer"] != "loss, sampling, KL and glue")
            assert abs(sum(r["s"] for r in rows) - preset["step_s"]) <= 1e-9 * max(1.0, preset["step_s"])
    assert "decoder.5 ConvTranspose2D" in stdout and "share" in stdout


def test_importing_tinyvae_stops_openblas_threads_spinning_unless_the_user_chose():
    def timeout_seen(**exported):
        env = {k: v for k, v in os.environ.items() if k not in TUNING} | exported
        code = "import tinyvae, os; print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'))"
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert timeout_seen() == "4"
    assert timeout_seen(OPENBLAS_THREAD_TIMEOUT="9") == "9"

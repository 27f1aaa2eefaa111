"""benchmarks/run.py runs end to end in its quick mode, on the shapes of the built presets."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quick_benchmark_runs_and_writes_its_results(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # the workers import this checkout's tinyvae
    command = [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--no-torch", "--out", str(tmp_path)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "benchmark.json").read_text())
    kernels = {row["kernel"] for row in result["kernels"]}
    assert {"conv1", "conv2", "convT1", "convT2", "convT3", "dense_enc", "dense_dec"} <= kernels
    assert [(r["preset"], r["latent"]) for r in result["train"]] == [("conv", 2), ("conv", 32), ("mlp", 20)]
    assert all(r["numpy_img_s"] > 0 and r["numba_img_s"] > 0 for r in result["train"])


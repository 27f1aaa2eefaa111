"""What Numba's JIT costs: first-call compile of every kernel, and the cached load in a new process.

    python benchmarks/jit_cost.py [--out benchmarks/results]

Runs two fresh Python processes that share a brand-new, empty NUMBA_CACHE_DIR: the first
compiles every kernel of ``tinyvae.kernels_numba`` (float32, the training dtype, then
float64) and writes the on-disk cache; the second does the same calls again and only loads
that cache. Prints both and writes ``jit_cost.json`` to ``--out``.
Targets: compile of all kernels < 20 s; cached load in a new process < 2 s.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # time this checkout's tinyvae, not whichever one is installed


def exercise(dtype_name):
    """Call every public kernel once (both Adam variants, thin and wide convolutions) on small inputs."""
    import numpy as np

    import tinyvae.kernels_numba as k

    dtype = np.dtype(dtype_name).type
    rng = np.random.default_rng(0)

    def randn(*shape):
        return rng.standard_normal(shape).astype(dtype)

    x, w, b = randn(4, 3, 9, 9), randn(5, 3, 3, 3), randn(5)
    out = k.conv2d_forward(x, w, b, (2, 2), (1, 1))
    k.conv2d_backward(randn(*out.shape), x, w, (2, 2), (1, 1))
    wt = randn(3, 5, 3, 3)
    out = k.conv_transpose2d_forward(x, wt, b, (2, 2), (1, 1), (1, 1))
    k.conv_transpose2d_backward(randn(*out.shape), x, wt, (2, 2), (1, 1))
    h, d = randn(4, 6), randn(4, 6)
    k.dense_backward(d, h, randn(6, 6)), k.dense_forward(h, randn(6, 6), randn(6))
    y = k.relu_forward(x)
    k.relu_backward(randn(*y.shape), y)
    mu, logvar, eps = h[:, :3], h[:, 3:], randn(4, 3)
    k.reparameterize(mu, logvar, eps), k.reparameterize_backward(eps, logvar, eps), k.kl_divergence(mu, logvar)
    k.bernoulli_nll(randn(4, 1, 5, 5), (rng.random((4, 1, 5, 5)) < 0.5).astype(dtype))
    for size in (10, k.ADAM_PARALLEL_SIZE):
        p = randn(size)
        k.adam_update(p, randn(size), np.zeros_like(p), np.zeros_like(p), 1e-3, 0.9, 0.999, 1e-8, 1)


def child():
    """One process: seconds to import the backend, then to run every kernel in float32, then float64."""
    start = time.perf_counter()
    import tinyvae

    tinyvae.set_backend("numba")
    import tinyvae.kernels_numba  # noqa: F401

    timings = {"import_s": time.perf_counter() - start}
    for dtype in ("float32", "float64"):
        start = time.perf_counter()
        exercise(dtype)
        timings[f"{dtype}_s"] = time.perf_counter() - start
    print(json.dumps(timings))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / "results", help="folder for jit_cost.json")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child()
        return
    with tempfile.TemporaryDirectory(prefix="tinyvae-numba-cache-") as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        runs = {}
        for name in ("compile", "cached"):
            wall = time.perf_counter()
            done = subprocess.run([sys.executable, __file__, "--child"], env=env, capture_output=True, text=True, check=True)
            runs[name] = {**json.loads(done.stdout.strip().splitlines()[-1]), "process_wall_s": time.perf_counter() - wall}
    first, cached = runs["compile"], runs["cached"]
    print(f"first call, empty cache:  float32 kernels {first['float32_s']:6.2f} s  (+ float64 {first['float64_s']:6.2f} s)"
          f"  import {first['import_s']:.2f} s  whole process {first['process_wall_s']:.1f} s")
    print(f"new process, warm cache:  float32 kernels {cached['float32_s']:6.2f} s  (+ float64 {cached['float64_s']:6.2f} s)"
          f"  import {cached['import_s']:.2f} s  whole process {cached['process_wall_s']:.1f} s")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "jit_cost.json").write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()

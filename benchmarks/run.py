"""Benchmark tinyvae's kernel backends (NumPy, Numba) side by side, and PyTorch CPU on the same models.

    python benchmarks/run.py               # full run, a few minutes
    python benchmarks/run.py --quick       # fewer repeats, a smoke test
    python benchmarks/run.py --repeats 15 --rounds 3 --threads 2 --out benchmarks/results

What it measures, all in float32 with the same thread count everywhere (NumPy's BLAS, Numba,
PyTorch):

* the practical peak: GFLOP/s of a 2048 x 2048 float32 matrix product (NumPy's BLAS);
* per kernel, NumPy vs Numba: forward and backward of each layer of the conv preset at
  MNIST size and batch 128, plus ReLU, the Bernoulli loss, the latent terms and Adam;
* end to end, training images per second (forward + backward + Adam step) of the conv
  preset (latent 2 and 32) and the MLP preset, at batch 32 and 128: NumPy, Numba, and
  PyTorch CPU on the same architectures when torch is importable (an optional column).

Each backend runs in its own fresh subprocess (its own thread pools, no cross-talk between
OpenMP runtimes), in ``--rounds`` alternating rounds so that a burst of background load
hits all of them; every figure is the median over all repeats, each repeat timed after
warm-up (which also absorbs Numba's compilation). Results: a table on stdout, and
``benchmark.json`` and ``benchmark.png`` in ``--out``.

Environment: the NumPy and Numba workers run with ``OPENBLAS_THREAD_TIMEOUT=4`` (idle
OpenBLAS threads sleep at once instead of spinning for ~0.1 s after every product, which
on a machine with as many cores as threads takes the cores from Numba's threads; PyTorch
does not use OpenBLAS). The training table also shows Numba without it ("Numba, default
env"), which is what an untuned process gets.
"""

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BATCH = 128
BLAS_ENV = {"OPENBLAS_THREAD_TIMEOUT": "4"}  # see the module docstring

# ----------------------------------------------------------------------------------------
# Workloads
# ----------------------------------------------------------------------------------------

# The conv preset's layers at MNIST size: (name, kind, C_in, C_out, input size, stride, padding, output_padding).
CONV_LAYERS = [
    ("conv1", "conv", 1, 32, 28, 2, 0, 0),
    ("conv2", "conv", 32, 64, 13, 2, 0, 0),
    ("convT1", "convT", 32, 64, 7, 2, 1, 1),
    ("convT2", "convT", 64, 32, 14, 2, 1, 1),
    ("convT3", "convT", 32, 1, 28, 1, 1, 0),
]
# (name, in, out) for latent 2
DENSE_LAYERS = [("dense_enc", 2304, 4), ("dense_dec", 2, 1568)]
TRAIN_CONFIGS = [("conv", 2), ("conv", 32), ("mlp", 20)]
TRAIN_COLUMNS = ["numpy", "numba", "numba_default_env", "torch"]
TRAIN_BATCHES = [32, 128]


def conv_macs(kind, c_in, c_out, size, stride, padding, output_padding, k=3):
    """Multiply-adds of one forward pass per image (a ConvTranspose2D counts its input pixels)."""
    if kind == "conv":
        out = (size + 2 * padding - k) // stride + 1
        return out * out * c_out * c_in * k * k
    return size * size * c_in * c_out * k * k


def model_flops(preset, latent, batch):
    """Nominal FLOPs of one training step: 3 x the forward FLOPs (forward, input grads, weight
    grads) of the conv and dense layers, 2 FLOPs per multiply-add. Elementwise work not counted."""
    if preset == "conv":
        macs = sum(conv_macs(*layer[1:]) for layer in CONV_LAYERS) + 2304 * 2 * latent + latent * 1568
    else:
        hidden = 500
        macs = 784 * hidden + hidden * 2 * latent + latent * hidden + hidden * 784
    return 3 * 2 * macs * batch


# ----------------------------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------------------------


def measure(fn, repeats, inner, warmup):
    """Seconds per call of fn, one figure per repeat (each the mean of ``inner`` calls)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - start) / inner)
    return times


def system_info():
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "logical_cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


# ----------------------------------------------------------------------------------------
# Workers (each runs in its own subprocess and prints one JSON object)
# ----------------------------------------------------------------------------------------


def worker_peak(args):
    import numpy as np

    a = np.random.default_rng(0).standard_normal((2048, 2048)).astype(np.float32)
    times = measure(lambda: a @ a, args.repeats, 1, 2)
    return {"numpy": np.__version__, "matmul_2048_times": times, "flops": 2 * 2048**3}


def _kernel_cases(k, np):
    """(name, pass, flops, thunk) for every kernel measured, on fixed random inputs."""
    rng = np.random.default_rng(0)

    def randn(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    cases = []
    for name, kind, c_in, c_out, size, s, p, op in CONV_LAYERS:
        x = randn(BATCH, c_in, size, size)
        flops = 2 * BATCH * conv_macs(kind, c_in, c_out, size, s, p, op)
        if kind == "conv":
            w, b = randn(c_out, c_in, 3, 3), randn(c_out)
            out = k.conv2d_forward(x, w, b, (s, s), (p, p))
            dout = randn(*out.shape)
            cases.append((name, "forward", flops, lambda x=x, w=w, b=b, s=s, p=p: k.conv2d_forward(x, w, b, (s, s), (p, p))))
            cases.append((name, "backward", 2 * flops, lambda d=dout, x=x, w=w, s=s, p=p: k.conv2d_backward(d, x, w, (s, s), (p, p))))
        else:
            w, b = randn(c_in, c_out, 3, 3), randn(c_out)
            fwd = lambda x=x, w=w, b=b, s=s, p=p, op=op: k.conv_transpose2d_forward(x, w, b, (s, s), (p, p), (op, op))  # noqa: E731
            dout = randn(*fwd().shape)
            cases.append((name, "forward", flops, fwd))
            cases.append((name, "backward", 2 * flops, lambda d=dout, x=x, w=w, s=s, p=p: k.conv_transpose2d_backward(d, x, w, (s, s), (p, p))))
    for name, n_in, n_out in DENSE_LAYERS:
        x, w, b, dout = randn(BATCH, n_in), randn(n_in, n_out), randn(n_out), randn(BATCH, n_out)
        flops = 2 * BATCH * n_in * n_out
        cases.append((name, "forward", flops, lambda x=x, w=w, b=b: k.dense_forward(x, w, b)))
        cases.append((name, "backward", 2 * flops, lambda d=dout, x=x, w=w: k.dense_backward(d, x, w)))
    if hasattr(k, "relu_forward"):
        h, dh = randn(BATCH, 32, 28, 28), randn(BATCH, 32, 28, 28)
        y = k.relu_forward(h)
        cases.append(("relu (N,32,28,28)", "forward", 0, lambda: k.relu_forward(h)))
        cases.append(("relu (N,32,28,28)", "backward", 0, lambda: k.relu_backward(dh, y)))
    logits, target = randn(BATCH, 1, 28, 28), (rng.random((BATCH, 1, 28, 28)) < 0.3).astype(np.float32)
    cases.append(("bernoulli_nll", "loss+grad", 0, lambda: k.bernoulli_nll(logits, target)))
    hidden, eps, dz = randn(BATCH, 4), randn(BATCH, 2), randn(BATCH, 2)
    mu, logvar = hidden[:, :2], hidden[:, 2:]

    def latent():
        k.reparameterize(mu, logvar, eps)
        k.kl_divergence(mu, logvar)
        k.reparameterize_backward(dz, logvar, eps)

    cases.append(("reparam + KL", "fwd+bwd", 0, latent))
    import tinyvae

    model = tinyvae.conv_vae(2, rng=np.random.default_rng(0))
    state = {key: (value, randn(*value.shape), np.zeros_like(value), np.zeros_like(value)) for key, value in model.params.items()}

    def adam():
        for param, grad, m, v in state.values():
            k.adam_update(param, grad, m, v, 1e-3, 0.9, 0.999, 1e-8, 1)

    cases.append(("adam (conv preset)", "step", 0, adam))
    return cases


def worker_kernels(args):
    import numpy as np

    import tinyvae

    tinyvae.set_backend(args.backend)
    k = tinyvae.backend.kernels()
    results = []
    for name, pass_, flops, thunk in _kernel_cases(k, np):
        times = measure(thunk, args.repeats, args.inner, args.warmup)
        results.append({"kernel": name, "pass": pass_, "flops": flops, "times": times})
    return {"backend": args.backend, "kernels": results, **_backend_info(args.backend)}


def _backend_info(backend):
    import numpy as np

    info = {"numpy": np.__version__}
    if backend == "numba":
        import numba

        info.update(numba=numba.__version__, numba_threads=numba.get_num_threads(), numba_threading_layer=numba.threading_layer())
    return info


def _batches(np, batch, n=4):
    rng = np.random.default_rng(1)
    return [(rng.random((batch, 1, 28, 28)) < 0.3).astype(np.float32) for _ in range(n)]


def worker_train(args):
    import numpy as np

    import tinyvae

    tinyvae.set_backend(args.backend)
    results = []
    for preset, latent in TRAIN_CONFIGS:
        for batch in TRAIN_BATCHES:
            rng = np.random.default_rng(0)
            model = tinyvae.build_vae(preset, rng=rng, latent_dim=latent)
            optimizer = tinyvae.Adam(model.params, lr=1e-3)
            data, i = _batches(np, batch), [0]

            def step():
                model.loss_and_grads(data[i[0] % len(data)], rng=rng)
                optimizer.step(model.grads)
                i[0] += 1

            times = measure(step, args.repeats, args.steps, args.warmup)
            results.append({"preset": preset, "latent": latent, "batch": batch, "times": times})
    return {"backend": args.backend, "train": results, **_backend_info(args.backend)}


def _torch_vae(torch, preset, latent):
    nn = torch.nn
    if preset == "conv":
        encoder = nn.Sequential(
            nn.Conv2d(1, 32, 3, 2), nn.ReLU(), nn.Conv2d(32, 64, 3, 2), nn.ReLU(), nn.Flatten(), nn.Linear(2304, 2 * latent)
        )
        decoder = nn.Sequential(
            nn.Linear(latent, 1568), nn.ReLU(), nn.Unflatten(1, (32, 7, 7)),
            nn.ConvTranspose2d(32, 64, 3, 2, 1, 1), nn.ReLU(),
            nn.ConvTranspose2d(64, 32, 3, 2, 1, 1), nn.ReLU(),
            nn.ConvTranspose2d(32, 1, 3, 1, 1),
        )  # fmt: skip
    else:
        encoder = nn.Sequential(nn.Flatten(), nn.Linear(784, 500), nn.Tanh(), nn.Linear(500, 2 * latent))
        decoder = nn.Sequential(nn.Linear(latent, 500), nn.Tanh(), nn.Linear(500, 784), nn.Unflatten(1, (1, 28, 28)))
    return encoder, decoder


def worker_torch(args):
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    functional = torch.nn.functional
    results = []
    for preset, latent in TRAIN_CONFIGS:
        for batch in TRAIN_BATCHES:
            encoder, decoder = _torch_vae(torch, preset, latent)
            optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=1e-3)
            data, i = [torch.from_numpy(x) for x in _batches(np, batch)], [0]

            def step():
                x = data[i[0] % len(data)]
                i[0] += 1
                h = encoder(x)
                mu, logvar = h[:, :latent], h[:, latent:]
                z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
                rec = functional.binary_cross_entropy_with_logits(decoder(z), x, reduction="none").sum(dim=(1, 2, 3))
                kl = -0.5 * (1 + logvar - mu * mu - logvar.exp()).sum(dim=1)
                loss = (rec + kl).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

            times = measure(step, args.repeats, args.steps, args.warmup)
            results.append({"preset": preset, "latent": latent, "batch": batch, "times": times})
    return {"backend": "torch", "train": results, "torch": torch.__version__, "torch_threads": torch.get_num_threads()}


WORKERS = {"peak": worker_peak, "kernels": worker_kernels, "train": worker_train, "torch": worker_torch}


# ----------------------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------------------


def run_worker(role, args, backend=None, blas_env=True):
    env = {k: v for k, v in os.environ.items() if k not in BLAS_ENV}
    env.update(BLAS_ENV if blas_env else {})
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[var] = str(args.threads)
    command = [sys.executable, __file__, "--worker", role, "--threads", str(args.threads)]
    command += ["--repeats", str(args.repeats_per_round), "--inner", str(args.inner), "--steps", str(args.steps)]
    command += ["--warmup", str(args.warmup)] + (["--backend", backend] if backend else [])
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=args.timeout)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark worker {role} {backend or ''} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def median(values):
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])


def collect(args):
    have_torch = not args.no_torch and importlib.util.find_spec("torch") is not None
    rounds = {"peak": [], "kernels": {"numpy": [], "numba": []}, "train": {b: [] for b in TRAIN_COLUMNS}}
    for r in range(args.rounds):
        print(f"round {r + 1}/{args.rounds}: ", end="", flush=True)
        rounds["peak"].append(run_worker("peak", args))
        for backend in ("numpy", "numba"):
            print(f"kernels {backend}, ", end="", flush=True)
            rounds["kernels"][backend].append(run_worker("kernels", args, backend))
        for column in TRAIN_COLUMNS:
            if column == "torch" and not have_torch:
                continue
            print(f"train {column}, ", end="", flush=True)
            if column == "torch":
                run = run_worker("torch", args)
            else:
                run = run_worker("train", args, column.split("_")[0], blas_env=column != "numba_default_env")
            rounds["train"][column].append(run)
        print("done", flush=True)
    return summarize(rounds, args, have_torch)


def summarize(rounds, args, have_torch):
    """Pool every round's repeats and take medians."""
    peak_times = [t for run in rounds["peak"] for t in run["matmul_2048_times"]]
    peak = rounds["peak"][0]["flops"] / median(peak_times) / 1e9
    kernels = []
    first = {b: rounds["kernels"][b][0] for b in ("numpy", "numba")}
    for index, case in enumerate(first["numpy"]["kernels"]):
        row = {"kernel": case["kernel"], "pass": case["pass"], "flops": case["flops"]}
        for backend in ("numpy", "numba"):
            times = [t for run in rounds["kernels"][backend] for t in run["kernels"][index]["times"]]
            row[f"{backend}_ms"] = 1e3 * median(times)
        kernels.append(row)
    train = []
    backends = [c for c in TRAIN_COLUMNS if c != "torch" or have_torch]
    for index, case in enumerate(rounds["train"]["numpy"][0]["train"]):
        row = {k: case[k] for k in ("preset", "latent", "batch")}
        row["flops"] = model_flops(case["preset"], case["latent"], case["batch"])
        for backend in backends:
            times = [t for run in rounds["train"][backend] for t in run["train"][index]["times"]]
            row[f"{backend}_ms"] = 1e3 * median(times)
            row[f"{backend}_img_s"] = case["batch"] / median(times)
        train.append(row)
    numba_run = rounds["train"]["numba"][0]
    info = {
        **system_info(),
        "threads": args.threads,
        "numpy": numba_run["numpy"],
        "numba": numba_run["numba"],
        "numba_threading_layer": numba_run["numba_threading_layer"],
        "numba_threads": numba_run["numba_threads"],
        "torch": rounds["train"]["torch"][0]["torch"] if have_torch else None,
        "torch_threads": rounds["train"]["torch"][0]["torch_threads"] if have_torch else None,
        "blas_env": BLAS_ENV,
        "rounds": args.rounds,
        "repeats_per_round": args.repeats_per_round,
        "steps_per_repeat": args.steps,
        "calls_per_repeat": args.inner,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    return {"system": info, "peak_gflops": peak, "kernels": kernels, "train": train}


def print_report(result):
    info, peak = result["system"], result["peak_gflops"]
    torch_note = f", PyTorch {info['torch']} ({info['torch_threads']} threads)" if info["torch"] else ", PyTorch not installed"
    print(f"\nCPU: {info['cpu']} ({info['logical_cpus']} logical CPUs); {info['threads']} threads each")
    print(f"NumPy {info['numpy']}, Numba {info['numba']} ({info['numba_threads']} threads, {info['numba_threading_layer']} layer){torch_note}")
    print(f"Practical peak (float32 2048x2048 matmul): {peak:.0f} GFLOP/s")
    print(f"Medians of {info['rounds']} x {info['repeats_per_round']} repeats, after warm-up.\n")
    print(f"Kernels, float32, batch {BATCH}, conv preset layers (MNIST size):")
    print(f"{'kernel':20s} {'pass':10s} {'NumPy ms':>9s} {'Numba ms':>9s} {'speedup':>8s} {'NumPy GF/s':>11s} {'Numba GF/s':>11s}")
    for row in result["kernels"]:
        gf = [f"{row['flops'] / row[f'{b}_ms'] / 1e6:11.1f}" if row["flops"] else f"{'':11s}" for b in ("numpy", "numba")]
        speedup = row["numpy_ms"] / row["numba_ms"]
        print(f"{row['kernel']:20s} {row['pass']:10s} {row['numpy_ms']:9.2f} {row['numba_ms']:9.2f} {speedup:7.2f}x {gf[0]} {gf[1]}")
    has_torch = "torch_img_s" in result["train"][0]
    print("\nTraining step (forward + backward + Adam), float32: images/s")
    header = f"{'model':12s} {'batch':>5s} {'NumPy':>8s} {'Numba':>8s} {'Numba*':>8s}" + (f" {'PyTorch':>8s}" if has_torch else "")
    header += f" {'Numba/NumPy':>11s}" + (f" {'Numba/PyTorch':>13s}" if has_torch else "") + f" {'Numba GF/s':>10s} {'% peak':>6s}"
    print(header)
    for row in result["train"]:
        model = f"{row['preset']} L={row['latent']}"
        line = f"{model:12s} {row['batch']:5d} {row['numpy_img_s']:8.0f} {row['numba_img_s']:8.0f} {row['numba_default_env_img_s']:8.0f}"
        line += f" {row['torch_img_s']:8.0f}" if has_torch else ""
        line += f" {row['numba_img_s'] / row['numpy_img_s']:10.2f}x"
        line += f" {row['numba_img_s'] / row['torch_img_s']:12.2f}x" if has_torch else ""
        gflops = row["flops"] / row["numba_ms"] / 1e6
        line += f" {gflops:10.1f} {100 * gflops / peak:5.0f}%"
        print(line)
    blas_env = " ".join(f"{k}={v}" for k, v in info["blas_env"].items())
    print(f"NumPy and Numba with {blas_env}; Numba* without it (the default environment).")
    print("GF/s: nominal model FLOPs (3 x forward conv/dense FLOPs) per second; % of the matmul peak.")


def plot(result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (left, right) = plt.subplots(1, 2, figsize=(15, 6))
    kernels = result["kernels"]
    labels = [f"{r['kernel']}\n{r['pass']}" for r in kernels]
    pos = np.arange(len(kernels))
    left.barh(pos - 0.2, [r["numpy_ms"] for r in kernels], 0.4, label="NumPy")
    left.barh(pos + 0.2, [r["numba_ms"] for r in kernels], 0.4, label="Numba")
    left.set_yticks(pos, labels, fontsize=7)
    left.invert_yaxis()
    left.set_xscale("log")
    left.set_xlabel("ms per call (median, log scale)")
    left.set_title(f"Kernels, float32, batch {BATCH}")
    left.legend()
    train = result["train"]
    backends = [b for b in TRAIN_COLUMNS if f"{b}_img_s" in train[0]]
    names = {"numpy": "NumPy", "numba": "Numba", "numba_default_env": "Numba, default env", "torch": "PyTorch CPU"}
    pos = np.arange(len(train))
    width = 0.8 / len(backends)
    for i, backend in enumerate(backends):
        right.bar(pos + (i - (len(backends) - 1) / 2) * width, [r[f"{backend}_img_s"] for r in train], width, label=names[backend])
    right.set_xticks(pos, [f"{r['preset']} L={r['latent']}\nbatch {r['batch']}" for r in train], fontsize=8)
    right.set_yscale("log")
    right.set_ylabel("training images / s (median, log scale)")
    right.set_title("Training step: forward + backward + Adam")
    right.legend()
    info = result["system"]
    fig.suptitle(f"{info['cpu']}, {info['threads']} threads; matmul peak {result['peak_gflops']:.0f} GFLOP/s", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few repeats and one round: a smoke test, not a measurement")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per figure, over all rounds (default 15; quick 3)")
    parser.add_argument("--rounds", type=int, default=None, help="alternating rounds over the backends (default 3; quick 1)")
    parser.add_argument("--threads", type=int, default=2, help="threads for BLAS, Numba and PyTorch alike (default 2)")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="folder for benchmark.json and benchmark.png")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch column")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed per worker process")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    parser.add_argument("--inner", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(WORKERS[args.worker](args)))
        return
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.repeats = args.repeats or (3 if args.quick else 15)
    args.repeats_per_round = max(1, -(-args.repeats // args.rounds))
    args.inner = args.inner or (2 if args.quick else 5)
    args.steps = args.steps or (1 if args.quick else 3)
    args.warmup = args.warmup or (2 if args.quick else 3)
    result = collect(args)
    print_report(result)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "benchmark.json").write_text(json.dumps(result, indent=1))
    print(f"\nwrote {args.out / 'benchmark.json'}", end="")
    if importlib.util.find_spec("matplotlib") is None:
        print(" (matplotlib not installed: no chart)")
        return
    plot(result, args.out / "benchmark.png")
    print(f" and {args.out / 'benchmark.png'}")


if __name__ == "__main__":
    main()

"""Benchmark tinyvae's kernel backends (NumPy, Numba) side by side, and PyTorch CPU on the same models.

    python benchmarks/run.py               # full run, a few minutes: the README's table
    python benchmarks/run.py --quick       # tiny batches, one repeat: a smoke test (seconds)
    python benchmarks/run.py --profile     # per layer: each layer's share of a training step
    python benchmarks/run.py --repeats 15 --rounds 3 --threads 2 --out benchmarks/results

What it measures, all in float32:

* the practical peak: GFLOP/s of a 2048 x 2048 float32 matrix product (NumPy's BLAS);
* per kernel, NumPy vs Numba: forward and backward of each layer of the conv preset at
  MNIST size and batch 128, plus ReLU, the Bernoulli loss, the latent terms and Adam (the
  shapes come from the built preset, see :func:`traced_layers`);
* end to end, training images per second (forward + backward + Adam step) of the conv
  preset (latent 2 and 32) and the MLP preset, at batch 32 and 128: NumPy, Numba, and
  PyTorch CPU on the same architectures when torch is importable (an optional column).

The headline is what a user gets by default: each worker inherits this process's
environment unchanged (no thread or wait-policy variables added) and every library picks its
own thread count, which the report prints. ``--threads N`` sets ``OMP_NUM_THREADS``,
``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``, ``NUMBA_NUM_THREADS`` and PyTorch's thread
count to N for every worker instead. One extra column, ``Numba+``, repeats Numba with
``OPENBLAS_THREAD_TIMEOUT=4`` exported (the old hand-tuned recipe), to show what it still
changes.

Each backend runs in its own fresh subprocess (its own thread pools, no cross-talk between
OpenMP runtimes), in ``--rounds`` alternating rounds so that a burst of background load
hits all of them; every figure is the median over all repeats, each repeat timed after
warm-up (which also absorbs Numba's compilation). Results: a table on stdout, and
``benchmark.json`` and ``benchmark.png`` in ``--out``.

``--profile`` instead times every layer's forward and backward inside real training steps
(conv preset, latent 2; the MLP preset; the faces preset, 64x64 RGB, latent 200; batch
``--profile-batch``), on both backends, and prints each one's milliseconds per step and share of the step.
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
sys.path.insert(0, str(HERE.parent))  # measure this checkout's tinyvae, not whichever one is installed
TUNED_ENV = {"OPENBLAS_THREAD_TIMEOUT": "4"}  # the "Numba+" column only; see the module docstring
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")

# ----------------------------------------------------------------------------------------
# Workloads: the layers and shapes of the built presets, never restated by hand
# ----------------------------------------------------------------------------------------

KERNEL_PRESET = ("conv", 2)  # the per-kernel table times this preset's layers
TRAIN_CONFIGS = [("conv", 2), ("conv", 32), ("mlp", 20)]
TRAIN_COLUMNS = ["numpy", "numba", "numba_tuned_env", "torch"]
PROFILE_CONFIGS = [("conv", 2), ("mlp", 20), ("faces", 200)]  # faces: the preset's 64x64 RGB network


def traced_layers(preset, latent):
    """Build ``preset`` and pass one image through it: (model, [(part, layer, input shape per image)])."""
    import tinyvae  # before NumPy, as the examples: its OpenBLAS setting applies (see tinyvae/__init__.py)

    import numpy as np

    model = tinyvae.build_vae(preset, rng=np.random.default_rng(0), latent_dim=latent)
    traced = []
    with tinyvae.use_backend("numpy"):
        for part, x in (("encoder", np.zeros((1, *model.input_shape), model.dtype)),
                        ("decoder", np.zeros((1, latent), model.dtype))):  # fmt: skip
            for layer in getattr(model, part).layers:
                traced.append((part, layer, x.shape[1:]))
                x = layer.forward(x)
    return model, traced


def layer_macs(layer, in_shape):
    """Multiply-adds of one forward pass per image (a ConvTranspose2D counts its input pixels)."""
    kind = type(layer).__name__
    if kind == "Dense":
        return layer.in_features * layer.out_features
    if kind in ("Conv2D", "ConvTranspose2D"):
        kH, kW = layer.kernel_size
        pixels = layer.output_shape((1, *in_shape))[2:] if kind == "Conv2D" else in_shape[1:]
        return pixels[0] * pixels[1] * layer.in_channels * layer.out_channels * kH * kW
    return 0


def model_flops(preset, latent, batch):
    """Nominal FLOPs of one training step: 3 x the forward FLOPs (forward, input grads, weight
    grads) of the conv and dense layers, 2 FLOPs per multiply-add. Elementwise work not counted."""
    _, traced = traced_layers(preset, latent)
    return 3 * 2 * batch * sum(layer_macs(layer, shape) for _, layer, shape in traced)


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

    n = args.peak_size
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    times = measure(lambda: a @ a, args.repeats, 1, 2)
    return {"numpy": np.__version__, "matmul_times": times, "size": n, "flops": 2 * n**3}


def _kernel_cases(k, np, batch):
    """(name, pass, flops, thunk) for every kernel measured, on fixed random inputs."""
    rng = np.random.default_rng(0)

    def randn(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    model, traced = traced_layers(*KERNEL_PRESET)
    cases, counts, relu_shape = [], {}, (0,)
    for part, layer, shape in traced:
        kind = type(layer).__name__
        if kind == "ReLU" and np.prod(shape) > np.prod(relu_shape):
            relu_shape = shape  # the largest activation
        if kind not in ("Conv2D", "ConvTranspose2D", "Dense"):
            continue
        counts[kind] = counts.get(kind, 0) + 1
        name = {"Conv2D": "conv", "ConvTranspose2D": "convT"}.get(kind, "dense_") + (
            part[:3] if kind == "Dense" else str(counts[kind])
        )
        x, w, b = randn(batch, *shape), randn(*layer.params["weight"].shape), randn(*layer.params["bias"].shape)
        flops = 2 * batch * layer_macs(layer, shape)
        if kind == "Conv2D":
            s, p = layer.stride, layer.padding
            fwd = lambda x=x, w=w, b=b, s=s, p=p: k.conv2d_forward(x, w, b, s, p)  # noqa: E731
            bwd = lambda d, x=x, w=w, s=s, p=p: k.conv2d_backward(d, x, w, s, p)  # noqa: E731
        elif kind == "ConvTranspose2D":
            s, p, op = layer.stride, layer.padding, layer.output_padding
            fwd = lambda x=x, w=w, b=b, s=s, p=p, op=op: k.conv_transpose2d_forward(x, w, b, s, p, op)  # noqa: E731
            bwd = lambda d, x=x, w=w, s=s, p=p: k.conv_transpose2d_backward(d, x, w, s, p)  # noqa: E731
        else:
            fwd = lambda x=x, w=w, b=b: k.dense_forward(x, w, b)  # noqa: E731
            bwd = lambda d, x=x, w=w: k.dense_backward(d, x, w)  # noqa: E731
        dout = randn(*fwd().shape)
        cases.append((name, "forward", flops, fwd))
        cases.append((name, "backward", 2 * flops, lambda bwd=bwd, d=dout: bwd(d)))
    h, dh = randn(batch, *relu_shape), randn(batch, *relu_shape)
    y = k.relu_forward(h)
    relu_name = f"relu (N,{','.join(map(str, relu_shape))})"
    cases.append((relu_name, "forward", 0, lambda: k.relu_forward(h)))
    cases.append((relu_name, "backward", 0, lambda: k.relu_backward(dh, y)))
    logits = randn(batch, *model.input_shape)
    target = (rng.random((batch, *model.input_shape)) < 0.3).astype(np.float32)
    cases.append(("bernoulli_nll", "loss+grad", 0, lambda: k.bernoulli_nll(logits, target)))
    L = model.latent_dim
    hidden, eps, dz = randn(batch, 2 * L), randn(batch, L), randn(batch, L)
    mu, logvar = hidden[:, :L], hidden[:, L:]

    def latent():
        k.reparameterize(mu, logvar, eps)
        k.kl_divergence(mu, logvar)
        k.reparameterize_backward(dz, logvar, eps)

    cases.append(("reparam + KL", "fwd+bwd", 0, latent))
    state = {key: (value, randn(*value.shape), np.zeros_like(value), np.zeros_like(value)) for key, value in model.params.items()}

    def adam():
        for param, grad, m, v in state.values():
            k.adam_update(param, grad, m, v, 1e-3, 0.9, 0.999, 1e-8, 1)

    cases.append((f"adam ({KERNEL_PRESET[0]} preset)", "step", 0, adam))
    return cases


def worker_kernels(args):
    import tinyvae  # before NumPy, as the examples: its OpenBLAS setting applies (see tinyvae/__init__.py)

    import numpy as np

    tinyvae.set_backend(args.backend)
    k = tinyvae.backend.kernels()
    results = []
    for name, pass_, flops, thunk in _kernel_cases(k, np, args.batch):
        times = measure(thunk, args.repeats, args.inner, args.warmup)
        results.append({"kernel": name, "pass": pass_, "flops": flops, "times": times})
    return {"backend": args.backend, "kernels": results, **_backend_info(args.backend)}


def _backend_info(backend):
    import tinyvae  # before NumPy, as the examples: its OpenBLAS setting applies (see tinyvae/__init__.py)

    import numpy as np

    info = {"numpy": np.__version__, "tinyvae": tinyvae.__file__}
    if backend == "numba":
        import numba

        info.update(numba=numba.__version__, numba_threads=numba.get_num_threads(), numba_threading_layer=numba.threading_layer())
    return info


def _batches(np, batch, input_shape, n=4):
    rng = np.random.default_rng(1)
    return [(rng.random((batch, *input_shape)) < 0.3).astype(np.float32) for _ in range(n)]


def worker_train(args):
    import tinyvae  # before NumPy, as the examples: its OpenBLAS setting applies (see tinyvae/__init__.py)

    import numpy as np

    tinyvae.set_backend(args.backend)
    results = []
    for preset, latent in TRAIN_CONFIGS:
        for batch in args.train_batches:
            rng = np.random.default_rng(0)
            model = tinyvae.build_vae(preset, rng=rng, latent_dim=latent)
            optimizer = tinyvae.Adam(model.params, lr=1e-3)
            data, i = _batches(np, batch, model.input_shape), [0]

            def step():
                model.loss_and_grads(data[i[0] % len(data)], rng=rng)
                optimizer.step(model.grads)
                i[0] += 1

            times = measure(step, args.repeats, args.steps, args.warmup)
            results.append({"preset": preset, "latent": latent, "batch": batch, "times": times})
    return {"backend": args.backend, "train": results, **_backend_info(args.backend)}


def _timed(method, key, totals):
    """``method`` wrapped so that its seconds add up in ``totals[key]``."""

    def timed(*args, **kwargs):
        start = time.perf_counter()
        result = method(*args, **kwargs)
        totals[key] = totals.get(key, 0.0) + time.perf_counter() - start
        return result

    return timed


def worker_profile(args):
    """Per layer and pass, seconds per training step inside real steps; the rest of the step
    (likelihood, sampling, KL, glue) and the Adam step as their own rows."""
    import tinyvae  # before NumPy, as the examples: its OpenBLAS setting applies (see tinyvae/__init__.py)

    import numpy as np

    tinyvae.set_backend(args.backend)
    results = []
    for preset, latent in PROFILE_CONFIGS:
        rng = np.random.default_rng(0)
        model = tinyvae.build_vae(preset, rng=rng, latent_dim=latent)
        optimizer = tinyvae.Adam(model.params, lr=1e-3)
        data, totals, rows = _batches(np, args.batch, model.input_shape), {}, []
        for part in ("encoder", "decoder"):
            for index, layer in enumerate(getattr(model, part).layers):
                name = f"{part}.{index} {layer!r}"
                rows.append(name)
                for pass_ in ("forward", "backward"):  # instance attributes shadow the methods Sequential calls
                    setattr(layer, pass_, _timed(getattr(layer, pass_), (name, pass_), totals))
        step = _timed(optimizer.step, ("Adam step", "update"), totals)
        for i in range(args.warmup + args.steps):
            if i == args.warmup:
                totals.clear()
                start = time.perf_counter()
            model.loss_and_grads(data[i % len(data)], rng=rng)
            step(model.grads)
        total = (time.perf_counter() - start) / args.steps
        layers = [(name, pass_, totals.get((name, pass_), 0.0) / args.steps) for name in rows for pass_ in ("forward", "backward")]
        adam = totals[("Adam step", "update")] / args.steps
        rest = total - adam - sum(t for _, _, t in layers)
        rows = [*layers, ("loss, sampling, KL and glue", "fwd+bwd", rest), ("Adam step", "update", adam)]
        results.append({"preset": preset, "latent": latent, "batch": args.batch, "step_s": total,
                        "rows": [{"layer": n, "pass": p, "s": t} for n, p, t in rows]})  # fmt: skip
    return {"backend": args.backend, "profile": results, **_backend_info(args.backend)}


def _torch_vae(torch, preset, latent):
    """The same architecture in torch.nn, translated layer by layer from the built preset."""
    nn = torch.nn

    def translate(layer):
        kind, c = type(layer).__name__, layer.config()
        if kind == "Conv2D":
            return nn.Conv2d(c["in_channels"], c["out_channels"], c["kernel_size"], c["stride"], c["padding"])
        if kind == "ConvTranspose2D":
            return nn.ConvTranspose2d(
                c["in_channels"], c["out_channels"], c["kernel_size"], c["stride"], c["padding"], c["output_padding"]
            )
        if kind == "Dense":
            return nn.Linear(c["in_features"], c["out_features"])
        if kind == "Reshape":
            return nn.Unflatten(1, tuple(c["shape"]))
        return {"ReLU": nn.ReLU, "Tanh": nn.Tanh, "Flatten": nn.Flatten, "Sigmoid": nn.Sigmoid}[kind]()

    model, _ = traced_layers(preset, latent)
    encoder = nn.Sequential(*(translate(layer) for layer in model.encoder.layers))
    decoder = nn.Sequential(*(translate(layer) for layer in model.decoder.layers))
    return encoder, decoder, model.input_shape


def worker_torch(args):
    import numpy as np
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    functional = torch.nn.functional
    results = []
    for preset, latent in TRAIN_CONFIGS:
        for batch in args.train_batches:
            encoder, decoder, input_shape = _torch_vae(torch, preset, latent)
            optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=1e-3)
            data, i = [torch.from_numpy(x) for x in _batches(np, batch, input_shape)], [0]

            def step():
                x = data[i[0] % len(data)]
                i[0] += 1
                h = encoder(x)
                mu, logvar = h[:, :latent], h[:, latent:]
                z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
                rec = functional.binary_cross_entropy_with_logits(decoder(z), x, reduction="none").flatten(1).sum(dim=1)
                kl = -0.5 * (1 + logvar - mu * mu - logvar.exp()).sum(dim=1)
                loss = (rec + kl).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

            times = measure(step, args.repeats, args.steps, args.warmup)
            results.append({"preset": preset, "latent": latent, "batch": batch, "times": times})
    return {"backend": "torch", "train": results, "torch": torch.__version__, "torch_threads": torch.get_num_threads()}


WORKERS = {"peak": worker_peak, "kernels": worker_kernels, "train": worker_train, "torch": worker_torch,
           "profile": worker_profile}


# ----------------------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------------------


def run_worker(role, args, backend=None, tuned_env=False):
    """Run one worker in a fresh process with this process's environment (plus ``--threads``'s
    variables if given, plus TUNED_ENV if ``tuned_env``); returns its JSON result."""
    env = dict(os.environ)
    env.update(TUNED_ENV if tuned_env else {})
    if args.threads:
        env.update({var: str(args.threads) for var in THREAD_VARIABLES})
    command = [sys.executable, __file__, "--worker", role] + (["--threads", str(args.threads)] if args.threads else [])
    command += ["--repeats", str(args.repeats_per_round), "--inner", str(args.inner), "--steps", str(args.steps)]
    command += ["--warmup", str(args.warmup)] + (["--backend", backend] if backend else [])
    command += ["--batch", str(args.batch), "--peak-size", str(args.peak_size), "--train-batches"]
    command += [str(b) for b in args.train_batches]
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
                run = run_worker("train", args, column.split("_")[0], tuned_env=column == "numba_tuned_env")
            rounds["train"][column].append(run)
        print("done", flush=True)
    return summarize(rounds, args, have_torch)


def summarize(rounds, args, have_torch):
    """Pool every round's repeats and take medians."""
    peak_times = [t for run in rounds["peak"] for t in run["matmul_times"]]
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
        "threads": args.threads or "library defaults",
        "thread_variables": {var: os.environ.get(var) for var in THREAD_VARIABLES} if not args.threads else None,
        "numpy": numba_run["numpy"],
        "numba": numba_run["numba"],
        "numba_threading_layer": numba_run["numba_threading_layer"],
        "numba_threads": numba_run["numba_threads"],
        "torch": rounds["train"]["torch"][0]["torch"] if have_torch else None,
        "torch_threads": rounds["train"]["torch"][0]["torch_threads"] if have_torch else None,
        "tuned_env": TUNED_ENV,
        "worker_environment": {column: runs[0]["environment"] for column, runs in rounds["train"].items() if runs},
        "rounds": args.rounds,
        "repeats_per_round": args.repeats_per_round,
        "steps_per_repeat": args.steps,
        "calls_per_repeat": args.inner,
        "kernel_batch": args.batch,
        "peak_matmul_size": args.peak_size,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    return {"system": info, "peak_gflops": peak, "kernels": kernels, "train": train}


def print_report(result):
    info, peak = result["system"], result["peak_gflops"]
    torch_note = f", PyTorch {info['torch']} ({info['torch_threads']} threads)" if info["torch"] else ", PyTorch not installed"
    if info.get("thread_variables") is not None:
        exported = ", ".join(f"{k}={v}" for k, v in info["thread_variables"].items() if v is not None)
        threads = f"each library's default thread count ({'exported by the caller: ' + exported if exported else 'no thread variables set'})"
    else:
        threads = f"{info['threads']} threads each (--threads)"
    print(f"\nCPU: {info['cpu']} ({info['logical_cpus']} logical CPUs); {threads}")
    print(f"NumPy {info['numpy']}, Numba {info['numba']} ({info['numba_threads']} threads, {info['numba_threading_layer']} layer){torch_note}")
    n = info["peak_matmul_size"]
    print(f"Practical peak (float32 {n}x{n} matmul): {peak:.0f} GFLOP/s")
    print(f"Medians of {info['rounds']} x {info['repeats_per_round']} repeats, after warm-up.\n")
    print(f"Kernels, float32, batch {info['kernel_batch']}, {KERNEL_PRESET[0]} preset layers (latent {KERNEL_PRESET[1]}):")
    print(f"{'kernel':20s} {'pass':10s} {'NumPy ms':>9s} {'Numba ms':>9s} {'speedup':>8s} {'NumPy GF/s':>11s} {'Numba GF/s':>11s}")
    for row in result["kernels"]:
        gf = [f"{row['flops'] / row[f'{b}_ms'] / 1e6:11.1f}" if row["flops"] else f"{'':11s}" for b in ("numpy", "numba")]
        speedup = row["numpy_ms"] / row["numba_ms"]
        print(f"{row['kernel']:20s} {row['pass']:10s} {row['numpy_ms']:9.2f} {row['numba_ms']:9.2f} {speedup:7.2f}x {gf[0]} {gf[1]}")
    has_torch = "torch_img_s" in result["train"][0]
    print("\nTraining step (forward + backward + Adam), float32: images/s, default environment")
    header = f"{'model':12s} {'batch':>5s} {'NumPy':>8s} {'Numba':>8s} {'Numba+':>8s}" + (f" {'PyTorch':>8s}" if has_torch else "")
    header += f" {'Numba/NumPy':>11s}" + (f" {'NumPy/PyTorch':>13s} {'Numba/PyTorch':>13s}" if has_torch else "")
    header += f" {'NumPy GF/s':>10s} {'% peak':>6s} {'Numba GF/s':>10s} {'% peak':>6s}"
    print(header)
    for row in result["train"]:
        model = f"{row['preset']} L={row['latent']}"
        line = f"{model:12s} {row['batch']:5d} {row['numpy_img_s']:8.0f} {row['numba_img_s']:8.0f} {row['numba_tuned_env_img_s']:8.0f}"
        line += f" {row['torch_img_s']:8.0f}" if has_torch else ""
        line += f" {row['numba_img_s'] / row['numpy_img_s']:10.2f}x"
        if has_torch:
            line += f" {row['numpy_img_s'] / row['torch_img_s']:12.2f}x {row['numba_img_s'] / row['torch_img_s']:12.2f}x"
        for backend in ("numpy", "numba"):
            gflops = row["flops"] / row[f"{backend}_ms"] / 1e6
            line += f" {gflops:10.1f} {100 * gflops / peak:5.0f}%"
        print(line)
    tuned_env = " ".join(f"{k}={v}" for k, v in info["tuned_env"].items())
    print(f"NumPy, Numba, PyTorch: the environment as given (nothing exported by the benchmark); Numba+: with {tuned_env}.")
    print("GF/s: nominal model FLOPs (3 x forward conv/dense FLOPs) per second; % of the matmul peak.")


def print_profile(runs):
    """One table per preset: ms per step and share of the step, per layer and pass, NumPy | Numba."""
    by_backend = {run["backend"]: run["profile"] for run in runs}
    backends = list(by_backend)
    for index, first in enumerate(by_backend[backends[0]]):
        steps = {b: by_backend[b][index]["step_s"] for b in backends}
        print(f"\n{first['preset']} preset, latent {first['latent']}, batch {first['batch']}: one training step = "
              + ", ".join(f"{b} {1e3 * steps[b]:.1f} ms" for b in backends))  # fmt: skip
        print(f"{'layer':58s} {'pass':9s}" + "".join(f" {b + ' ms':>10s} {'share':>6s}" for b in backends))
        for r, row in enumerate(first["rows"]):
            line = f"{row['layer'][:58]:58s} {row['pass']:9s}"
            for b in backends:
                seconds = by_backend[b][index]["rows"][r]["s"]
                line += f" {1e3 * seconds:10.2f} {100 * seconds / steps[b]:5.1f}%"
            print(line)


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
    left.set_title(f"Kernels, float32, batch {result['system']['kernel_batch']}")
    left.legend()
    train = result["train"]
    backends = [b for b in TRAIN_COLUMNS if f"{b}_img_s" in train[0]]
    names = {"numpy": "NumPy", "numba": "Numba", "numba_tuned_env": "Numba, OPENBLAS_THREAD_TIMEOUT=4", "torch": "PyTorch CPU"}
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
    fig.suptitle(f"{info['cpu']}, threads: {info['threads']}; matmul peak {result['peak_gflops']:.0f} GFLOP/s", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny batches, one repeat, one round: a smoke test, not a measurement")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per figure, over all rounds (default 15; quick 3)")
    parser.add_argument("--rounds", type=int, default=None, help="alternating rounds over the backends (default 3; quick 1)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for BLAS, Numba and PyTorch alike (default: each library's own default, as a user gets)")
    parser.add_argument("--profile", action="store_true", help="per layer: ms and share of a training step, NumPy and Numba")
    parser.add_argument("--profile-batch", type=int, default=128, help="batch size of --profile (default 128)")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="folder for benchmark.json and benchmark.png")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch column")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed per worker process")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    parser.add_argument("--inner", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--train-batches", type=int, nargs="+", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--peak-size", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        environment = {var: os.environ.get(var) for var in (*THREAD_VARIABLES, *TUNED_ENV)}  # as the worker started
        print(json.dumps({**WORKERS[args.worker](args), "environment": environment}))
        return
    args.peak_size = args.peak_size or (256 if args.quick else 2048)
    args.repeats_per_round = args.inner = 1
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.repeats = args.repeats or (1 if args.quick else 15)
    args.repeats_per_round = max(1, -(-args.repeats // args.rounds))
    args.inner = args.inner or (1 if args.quick else 5)
    args.steps = args.steps or (1 if args.quick else 3)
    args.warmup = args.warmup or (1 if args.quick else 3)
    args.batch = args.batch or (4 if args.quick else 128)
    args.train_batches = args.train_batches or ([4] if args.quick else [32, 128])
    args.peak_size = args.peak_size or (256 if args.quick else 2048)
    if args.profile:
        args.batch, args.train_batches = args.profile_batch, [args.profile_batch]
        args.steps, args.warmup = (2, 1) if args.quick else (10, 3)
        runs = [run_worker("profile", args, backend) for backend in ("numpy", "numba")]
        print(f"CPU: {system_info()['cpu']}; default environment" + (f", --threads {args.threads}" if args.threads else ""))
        print_profile(runs)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "profile.json").write_text(json.dumps({"system": system_info(), "runs": runs}, indent=1))
        print(f"\nwrote {args.out / 'profile.json'}")
        return
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

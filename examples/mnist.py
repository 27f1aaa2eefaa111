"""Train a VAE on binarized MNIST, measure it, and draw what it learned.

    python examples/mnist.py                        # the default run: under 10 minutes on 2 cores
    python examples/mnist.py --arch mlp --latent-dim 20 --epochs 50 --out runs/mlp20
    python examples/mnist.py --resume               # continue the run saved in --out
    python examples/mnist.py --help

MNIST ships with tinyvae, so no internet is needed (Fashion-MNIST is downloaded once).
Written into --out (default runs/mnist):

    reconstructions.png  test images (odd rows) and their reconstructions (even rows)
    samples.png          decoded draws z ~ N(0, I) from the prior
    latent.png           posterior means of the test set, coloured by class (PCA if latent dim > 2)
    manifold.png         the decoder over a grid of Normal quantiles (latent dim 2 only)
    interpolation.png    straight lines in latent space between pairs of test images, decoded
    curves.png           ELBO, reconstruction and KL per epoch
    summary.json         config, per-epoch history, test ELBO, IWAE bound, timings
    checkpoint.json + checkpoint-epochNNNN.npz   the latest epoch (see tinyvae/checkpoint.py)

Numbers are in nats per image; the ELBO and the IWAE bound are lower bounds on log p(x)
of the *binarized* test images, so they depend on how those were binarized (reported too).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path
from statistics import NormalDist

# One BLAS thread (unless the variable is already set): on 2 cores it is as fast as two for
# these small matrices, and two threads slow down several-fold when another process is busy.
# It must be set before numpy is imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import tinyvae  # noqa: E402
from tinyvae.checkpoint import CheckpointError, load_checkpoint, save_checkpoint  # noqa: E402
from tinyvae.datasets import FASHION_MNIST_CLASSES, binarize_dynamic, binarize_static, load_mnist  # noqa: E402
from tinyvae.evaluate import latent_means, mean_elbo, mean_iwae_bound, pca  # noqa: E402

# The default run, in one place. Tuned so that `python examples/mnist.py` takes under 10
# minutes on 2 cores with the numpy backend: conv, one BLAS thread, about 470 training
# images/s, 14 s per test ELBO and 10.5 s per IWAE sample on the 10,000 test images, so
# 3 x (128 + 14) s + 5 x 10.5 s + ~10 s ~ 8 min. summary.json records the timings to re-tune.
DEFAULTS = {
    "arch": "conv",  # conv | mlp
    "latent_dim": 2,
    "hidden": 500,  # mlp only
    "epochs": 3,
    "batch_size": 64,
    "lr": 1e-3,
    "beta": 1.0,
    "binarize": "dynamic",  # dynamic | static
    "backend": None,  # None: numba if importable, else numpy
    "seed": 0,
    "out": "runs/mnist",
    "iwae_k": 5,  # 0: skip the IWAE bound
    "dataset": "mnist",
    "data_dir": None,
    "train_size": None,  # None: the whole split
    "test_size": None,
    "time_limit": None,  # minutes; None: no limit
}
# Settings that define the training run: --resume refuses to change them.
RUN_KEYS = ("arch", "latent_dim", "hidden", "batch_size", "lr", "beta", "binarize", "seed", "dataset",
            "train_size", "test_size")  # fmt: skip
TEST_SEED = 0  # seeds the one Bernoulli sample of the test set (dynamic binarization)
EVAL_SEED = 1  # seeds the eps of every evaluation, so epochs are compared on the same draws
EVAL_BATCH = 500


def parse_args(argv):
    """Returns (the flags given on the command line, resume?); defaults are filled in later."""

    def number(cast, low, strict=False):
        """An argparse type: ``cast(text)``, at least (or, if strict, above) ``low``."""

        def parse(text):
            value = cast(text)
            if value < low or (strict and value == low):
                raise argparse.ArgumentTypeError(f"expected a number {'>' if strict else '>='} {low}, got {text}")
            return value

        return parse

    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[1:]), argument_default=argparse.SUPPRESS,
    )  # fmt: skip

    def add(flag, help, **kw):
        default = DEFAULTS[flag.lstrip("-").replace("-", "_")]
        parser.add_argument(flag, help=help if default is None else f"{help} (default: {default})", **kw)

    add("--arch", "conv: the TensorFlow CVAE tutorial's network; mlp: Kingma & Welling's", choices=["conv", "mlp"])
    add("--latent-dim", "size of z; 2 also draws manifold.png", type=number(int, 1))
    add("--hidden", "hidden units of the mlp", type=number(int, 1))
    add("--epochs", "train up to this epoch (with --resume: the total, not the number to add)", type=number(int, 0))
    add("--batch-size", "images per optimizer step", type=number(int, 1))
    add("--lr", "Adam learning rate", type=number(float, 0, strict=True))
    add("--beta", "weight of the KL term (1: the ELBO; beta-VAE otherwise)", type=number(float, 0))
    add("--binarize", "dynamic: a fresh Bernoulli sample of the training images every epoch, "
        "the test set sampled once with a fixed seed; static: threshold 0.5", choices=["dynamic", "static"])  # fmt: skip
    add("--backend", "kernel backend (default: numba if importable, else numpy)", choices=["numpy", "numba"])
    add("--seed", "seeds initialization, shuffling, binarization and eps", type=int)
    add("--out", "directory for pictures, summary.json and checkpoints")
    add("--iwae-k", "importance samples for the final IWAE bound on log p(x); 0 skips it", type=number(int, 0))
    add("--dataset", "mnist (shipped) or fashion-mnist (downloaded once)", choices=["mnist", "fashion-mnist"])
    add("--data-dir", "read the four MNIST-format IDX files from this directory instead of --dataset")
    add("--train-size", "use only the first N training images, for quick runs (default: all)", type=number(int, 1))
    add("--test-size", "use only the first N test images, for quick runs (default: all)", type=number(int, 1))
    add("--time-limit", "stop after the epoch that crosses this many minutes of training in this "
        "invocation; --resume continues (default: no limit)", type=number(float, 0, strict=True))  # fmt: skip
    parser.add_argument("--resume", action="store_true", default=False,
                        help="continue from the checkpoint in --out with its settings; flags given "
                        "again must agree, except --epochs, --time-limit, --iwae-k, --backend, --data-dir")  # fmt: skip
    explicit = vars(parser.parse_args(argv))
    return explicit, explicit.pop("resume")


def choose_backend(name):
    """Activate ``name``, or numba if it imports and numpy otherwise; returns a line saying which."""
    if name is not None:
        tinyvae.set_backend(name)
        return f"backend: {name} (--backend)"
    try:
        tinyvae.set_backend("numba")
        return "backend: numba (default: numba is importable)"
    except ImportError as err:
        tinyvae.set_backend("numpy")
        return f"backend: numpy (default: numba is not importable: {err})"


def binarize_test(images, mode):
    """The test set, binarized once: (N, 1, 28, 28) float32, and how (for every reported number)."""
    if mode == "static":
        return binarize_static(images), "static (threshold 0.5, train and test)"
    sample = binarize_dynamic(images, np.random.default_rng(TEST_SEED))
    return sample, f"dynamic (train: a fresh Bernoulli sample per epoch; test: one Bernoulli sample, seed {TEST_SEED})"


class ProgressBar:
    """A text bar for one epoch on stderr, redrawn in place; silent unless stderr is a terminal."""

    def __init__(self, epochs, stream=sys.stderr, width=30):
        self.epochs, self.stream, self.width = epochs, stream, width
        self.enabled = stream.isatty()
        self.started = self.drawn = time.perf_counter()

    def __call__(self, epoch, step, n_steps, terms):  # train's on_batch hook
        now = time.perf_counter()
        if not self.enabled or (now - self.drawn < 0.2 and step < n_steps):
            return
        self.drawn, done = now, step / n_steps
        filled = int(self.width * done)
        eta = (now - self.started) * (1 - done) / done
        self.stream.write(f"\repoch {epoch}/{self.epochs} [{'#' * filled}{'.' * (self.width - filled)}] "
                          f"{step}/{n_steps}  loss {terms['loss']:7.2f}  ETA {eta:4.0f}s ")  # fmt: skip
        self.stream.flush()

    def close(self):
        if self.enabled:
            self.stream.write("\r" + " " * (self.width + 60) + "\r")
            self.stream.flush()


def minutes(seconds):
    return f"{int(seconds // 60)}m{seconds % 60:04.1f}s"


# --------------------------------------------------------------------------------------
# Pictures
# --------------------------------------------------------------------------------------


def tile(images, cols):
    """Images (N, 1, H, W) -> one (rows * H, cols * W) mosaic, row by row (blank padding)."""
    n, _, h, w = images.shape
    rows = -(-n // cols)
    grid = np.ones((rows * cols, h, w), dtype=images.dtype)
    grid[:n] = images[:, 0]
    return grid.reshape(rows, cols, h, w).transpose(0, 2, 1, 3).reshape(rows * h, cols * w)


def save_mosaic(plt, path, mosaic, title):
    fig, ax = plt.subplots(figsize=(mosaic.shape[1] / 40, mosaic.shape[0] / 40 + 0.4))
    ax.imshow(mosaic, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def draw_reconstructions(plt, path, model, test_x, cols=12, pairs=4):
    x = test_x[: cols * pairs]  # (cols * pairs, 1, 28, 28)
    rec = model.reconstruct(x)
    rows = [row for p in range(pairs) for row in (x[p * cols : (p + 1) * cols], rec[p * cols : (p + 1) * cols])]
    save_mosaic(plt, path, tile(np.concatenate(rows), cols), "test images (odd rows) and E[x | z = mu(x)] (even rows)")


def draw_samples(plt, path, model, rng, n=100):
    save_mosaic(plt, path, tile(model.sample(n, rng), 10), f"E[x | z], z ~ N(0, I): {n} samples from the prior")


def draw_latent(plt, path, model, test_x, test_y, class_names):
    mu = latent_means(model, test_x, EVAL_BATCH).astype(np.float64)  # (N, L)
    if mu.shape[1] == 2:
        xy, labels = mu, ("z[0]", "z[1]")
    elif mu.shape[1] == 1:
        xy, labels = np.column_stack([mu[:, 0], test_y]), ("z[0]", "class")
    else:
        xy, ratio = pca(mu)
        labels = tuple(f"PC{i + 1} ({100 * r:.0f}% of the variance)" for i, r in enumerate(ratio))
    fig, ax = plt.subplots(figsize=(7, 6))
    for c, name in enumerate(class_names):
        pick = test_y == c
        ax.scatter(xy[pick, 0], xy[pick, 1], s=3, color=plt.cm.tab10(c), label=name, alpha=0.7)
    ax.legend(markerscale=4, fontsize=8, loc="best")
    ax.set(xlabel=labels[0], ylabel=labels[1], title=f"posterior means mu(x) of {len(mu)} test images")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def draw_manifold(plt, path, model, n=20):
    """Decode z on an n x n grid of Normal quantiles 5%..95%, so each cell covers equal prior mass."""
    q = np.array([NormalDist().inv_cdf(p) for p in np.linspace(0.05, 0.95, n)], dtype=model.dtype)  # (n,)
    z = np.stack(np.meshgrid(q, q[::-1]), axis=-1).reshape(-1, 2)  # (n * n, 2): z[1] decreases downwards
    save_mosaic(plt, path, tile(model.mean(model.decode(z)), n),
                "E[x | z] on a grid of N(0, 1) quantiles 5%..95%: z[0] left to right, z[1] bottom to top")  # fmt: skip


def draw_interpolation(plt, path, model, test_x, pairs=5, steps=10):
    """Rows: test image a, decoded points on the line from mu(a) to mu(b), test image b."""
    pairs = min(pairs, len(test_x) // 2)
    a, b = test_x[0 : 2 * pairs : 2], test_x[1 : 2 * pairs : 2]  # (pairs, 1, 28, 28) each
    mu_a, mu_b = model.encode(a)[0], model.encode(b)[0]  # (pairs, L) each
    t = np.linspace(0, 1, steps, dtype=model.dtype)[:, None]  # (steps, 1)
    rows = []
    for r in range(pairs):
        z = (1 - t) * mu_a[r] + t * mu_b[r]  # (steps, L)
        rows += [a[r : r + 1], model.mean(model.decode(z)), b[r : r + 1]]
    save_mosaic(plt, path, tile(np.concatenate(rows), steps + 2),
                "test image a, decoded (1 - t) mu(a) + t mu(b) for t = 0..1, test image b")  # fmt: skip


def draw_curves(plt, path, history, binarization):
    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), constrained_layout=True)
    axes[0].plot(epochs, [-(h["reconstruction"] + h["kl"]) for h in history], "o-", label="train (running mean)")
    axes[0].plot(epochs, [h["test_elbo"] for h in history], "s-", label="test")
    axes[0].set(title="ELBO (nats / image)", xlabel="epoch")
    axes[0].legend()
    axes[1].plot(epochs, [h["reconstruction"] for h in history], "o-")
    axes[1].set(title="reconstruction -log p(x | z), train", xlabel="epoch")
    axes[2].plot(epochs, [h["kl"] for h in history], "o-", color="C2")
    axes[2].set(title="KL(q(z | x) || p(z)), train", xlabel="epoch")
    for ax in axes:
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    fig.suptitle(f"binarization: {binarization}", fontsize=8)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def draw_pictures(out, model, test_x, test_y, history, binarization, class_names, rng):
    """Write every PNG into ``out``; returns their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["reconstructions.png", "samples.png", "latent.png", "interpolation.png", "curves.png"]
    draw_reconstructions(plt, out / names[0], model, test_x)
    draw_samples(plt, out / names[1], model, rng)
    draw_latent(plt, out / names[2], model, test_x, test_y, class_names)
    draw_interpolation(plt, out / names[3], model, test_x)
    draw_curves(plt, out / names[4], history, binarization)
    if model.latent_dim == 2:
        draw_manifold(plt, out / "manifold.png", model)
        names.append("manifold.png")
    return names


# --------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------


def resolve_config(explicit, resume, out):
    """DEFAULTS < the checkpoint's config (with --resume) < the flags given; returns (cfg, checkpoint)."""
    if not resume:
        return {**DEFAULTS, **explicit}, None
    try:
        ckpt = load_checkpoint(out)
    except FileNotFoundError as err:
        sys.exit(f"--resume: {err}; run without --resume to start a new run")
    except CheckpointError as err:
        sys.exit(f"--resume: {err}")
    saved = ckpt.meta["config"]
    conflicts = [f"--{k.replace('_', '-')} {explicit[k]} (checkpoint: {saved.get(k)})"
                 for k in RUN_KEYS if k in explicit and explicit[k] != saved.get(k)]  # fmt: skip
    if conflicts:
        sys.exit(f"--resume: {ckpt.path} was trained with other settings: {', '.join(conflicts)}; "
                 "drop those flags, or start a new run with another --out")  # fmt: skip
    return {**DEFAULTS, **saved, **explicit, "out": str(out)}, ckpt


def main(argv=None):
    """Train, evaluate, draw; returns the summary dict (also written to summary.json)."""
    explicit, resume = parse_args(argv)
    out = Path(explicit.get("out", DEFAULTS["out"]))
    cfg, ckpt = resolve_config(explicit, resume, out)
    out.mkdir(parents=True, exist_ok=True)
    print(choose_backend(cfg["backend"]))
    backend = tinyvae.get_backend()

    # Data: uint8 (N, 28, 28) images; the model takes float32 (N, 1, 28, 28) of 0.0 / 1.0.
    data = load_mnist(cfg["data_dir"], cfg["dataset"])
    train_images = data.train_images[: cfg["train_size"]]
    test_x, binarization = binarize_test(data.test_images[: cfg["test_size"]], cfg["binarize"])
    test_y = data.test_labels[: cfg["test_size"]]
    if cfg["binarize"] == "static":
        train_x, transform = binarize_static(train_images), None
    else:
        train_x, transform = train_images, binarize_dynamic  # re-sampled batch by batch, every epoch
    class_names = FASHION_MNIST_CLASSES if cfg["dataset"] == "fashion-mnist" and not cfg["data_dir"] else range(10)
    print(f"data: {len(train_x)} training and {len(test_x)} test images, binarization: {binarization}")

    # Model, optimizer and the training RNG (shuffling, binarization, eps), all from --seed.
    init_rng, train_rng, picture_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(cfg["seed"]).spawn(3))
    sizes = {"latent_dim": cfg["latent_dim"], **({"hidden": cfg["hidden"]} if cfg["arch"] == "mlp" else {})}
    model = tinyvae.build_vae(cfg["arch"], rng=init_rng, **sizes)
    optimizer = tinyvae.Adam(model.params, lr=cfg["lr"])
    saved_cfg = {k: v for k, v in cfg.items() if k != "out"}
    if ckpt is not None:
        try:
            ckpt.restore(model, optimizer, train_rng)
        except CheckpointError as err:
            sys.exit(f"--resume: {err}")
        history, start_epoch = ckpt.meta["history"], ckpt.epoch
        print(f"resuming {ckpt.path} after epoch {start_epoch}")
    else:
        history, start_epoch = [], 0
        save_checkpoint(out, model, optimizer, epoch=0, rng=train_rng, config=saved_cfg, history=history)
        print(f"new run in {out} (replacing any checkpoint there)")
    print(f"model: {cfg['arch']}, latent dim {cfg['latent_dim']}, {sum(p.size for p in model.params.values())} "
          f"parameters; Adam lr {cfg['lr']}, batch {cfg['batch_size']}, beta {cfg['beta']}")  # fmt: skip

    # Training: one call of tinyvae.train per epoch, then evaluation and a checkpoint.
    started = time.perf_counter()
    for epoch in range(start_epoch + 1, cfg["epochs"] + 1):
        bar = ProgressBar(cfg["epochs"])
        try:
            (stats,) = tinyvae.train(
                model, optimizer, train_x, epochs=epoch, start_epoch=epoch - 1, batch_size=cfg["batch_size"],
                rng=train_rng, beta=cfg["beta"], transform=transform, on_batch=bar,
            )  # fmt: skip
        except tinyvae.NonFiniteLossError as err:
            bar.close()
            sys.exit(f"{err}\nThe last good checkpoint (epoch {epoch - 1}) is intact: {out / 'checkpoint.json'}")
        bar.close()
        eval_started = time.perf_counter()
        stats["test_elbo"] = mean_elbo(model, test_x, np.random.default_rng(EVAL_SEED), EVAL_BATCH)
        stats["eval_seconds"] = time.perf_counter() - eval_started
        stats["wall_seconds"] = stats["seconds"] + stats["eval_seconds"]
        history.append(stats)
        save_checkpoint(out, model, optimizer, epoch=epoch, rng=train_rng, config=saved_cfg, history=history)
        elapsed = time.perf_counter() - started
        eta = elapsed / (epoch - start_epoch) * (cfg["epochs"] - epoch)
        print(f"epoch {epoch:3d}/{cfg['epochs']}  train: rec {stats['reconstruction']:7.2f} + KL {stats['kl']:6.2f} "
              f"= {stats['reconstruction'] + stats['kl']:7.2f}  test ELBO {stats['test_elbo']:8.2f}  "
              f"{stats['images_per_s']:6.0f} img/s  {stats['wall_seconds']:5.1f}s  ETA {minutes(eta)}", flush=True)  # fmt: skip
        if cfg["time_limit"] and elapsed > 60 * cfg["time_limit"] and epoch < cfg["epochs"]:
            print(f"time limit of {cfg['time_limit']} minutes reached after epoch {epoch}; --resume continues")
            break

    # Evaluation on the whole test set: the ELBO, and the tighter importance-weighted bound.
    test_elbo = history[-1]["test_elbo"] if history else mean_elbo(model, test_x, np.random.default_rng(EVAL_SEED))
    iwae = None
    if cfg["iwae_k"] > 0:
        iwae_started = time.perf_counter()
        value = mean_iwae_bound(model, test_x, cfg["iwae_k"], np.random.default_rng(EVAL_SEED))
        iwae = {"k": cfg["iwae_k"], "log_px_bound": value, "seconds": time.perf_counter() - iwae_started}

    pictures = draw_pictures(out, model, test_x, test_y, history, binarization, class_names, picture_rng)
    summary = {
        "config": saved_cfg,
        "backend": backend,
        "binarization": binarization,
        "n_train": len(train_x),
        "n_test": len(test_x),
        "epochs_done": history[-1]["epoch"] if history else 0,
        "test_elbo": test_elbo,
        "iwae": iwae,
        "history": history,
        "train_seconds": sum(h["wall_seconds"] for h in history),
        "pictures": pictures,
        "checkpoint": str(out / "checkpoint.json"),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    iwae_text = f", IWAE (k={iwae['k']}) {iwae['log_px_bound']:.2f}" if iwae else ", IWAE skipped (--iwae-k 0)"
    print(f"test ELBO {test_elbo:.2f}{iwae_text} nats/image on {len(test_x)} test images, "
          f"binarization {binarization}; {cfg['arch']}, latent dim {cfg['latent_dim']}, {backend} backend, "
          f"{summary['epochs_done']} epochs, {minutes(summary['train_seconds'])} training; pictures and "
          f"summary.json in {out}")  # fmt: skip
    return summary


if __name__ == "__main__":
    main()

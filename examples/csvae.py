"""Train a CSVAE (Klys, Snell & Zemel 2018) on the swiss roll: y in its own subspace W, the rest in Z.

    python examples/csvae.py                      # the swiss roll, about a minute on 2 cores
    python examples/csvae.py --epochs 120 --resume
    python examples/csvae.py --help

The model is tinyvae/csvae.py (preset "csvae": small MLPs, a 2-D z, a 2-D w per attribute). Each batch
takes two steps, each with its own Adam: the encoders and the decoder on their objective (reconstruction,
the KL of w to p(w | y), the KL of z to N(0, I), the negative entropy of the adversary's q(y | z)), then the
adversary on its cross-entropy (--adversary-steps times), reading the updated encoder's mu_z (or a fresh
sample of z with --adversary-input sample). After every epoch, on the test points: the separation of the
two classes in w and in z (symmetrized KL of Gaussian fits, tinyvae.csvae.symmetrized_kl), and the
adversary's accuracy from z ~ q(z | x) against the base rate. At the end a fresh classifier (a probe) is
trained on the codes mu_z of the training points: the stricter test.
Written into --out (default runs/csvae):

    data.png          the training points in 3-D, coloured by y
    latent.png        the test points' codes: the w plane and the z plane, coloured by y
    curves.png        each term per epoch, the separations and the accuracies
    summary.json      config, per-epoch history, the final metrics, timings
    checkpoint.json + checkpoint-epochNNNN.npz   the latest epoch: the model and both optimizers
                      (tinyvae/checkpoint.py; tinyvae.load_run(out) rebuilds the model)

--resume continues a run (its settings are kept; --epochs is the total), --overwrite replaces one; a
second run writing into the same --out is refused; a NaN stops the run and the last checkpoint stays.
--data faces is not there yet (issue 13).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small matrices: one BLAS thread is as fast, and shares well
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import tinyvae  # noqa: E402
from tinyvae import runner  # noqa: E402
from tinyvae.checkpoint import CheckpointError, save_checkpoint  # noqa: E402
from tinyvae.csvae import probe_accuracy, subspace_metrics  # noqa: E402
from tinyvae.datasets import swiss_roll  # noqa: E402
from tinyvae.optim import Adam  # noqa: E402
from tinyvae.pictures import save_figure  # noqa: E402
from tinyvae.runner import Flag, RunError  # noqa: E402

DEFAULTS = {"out": "runs/csvae", "epochs": 60, "batch_size": 64, "lr": 1e-3}
TRAIN_SEED, TEST_SEED, EVAL_SEED = 0, 1, 2  # the training and test points (independent of --seed), evaluation eps
PROBE_EPOCHS = 10
COMMON = ("--epochs", "--batch-size", "--lr", "--seed", "--backend", "--out", "--time-limit")


def betas(text):
    """--betas "b1,b2,b3,b4,b5" -> a list of five floats; argparse.ArgumentTypeError (a usage error) otherwise."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 5 or not all(np.isfinite(v) and v >= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected five finite numbers >= 0 separated by commas, got {text!r}")
    return values


FLAGS = [
    Flag("--data", "swiss-roll", "the data: the swiss roll (3-D points, y = 1 on the outer half of the roll)",
         choices=("swiss-roll",)),
    Flag("--n-train", 10000, "training points", int, low=2),
    Flag("--n-test", 2000, "test points", int, low=2),
    Flag("--noise", 0.0, "standard deviation of the noise added to each coordinate of the points", float, low=0),
    Flag("--z-dim", 2, "size of z, the subspace that must hold no y", int, low=1),
    Flag("--w-dim", 2, "size of each attribute's subspace W_i", int, low=1),
    Flag("--hidden", 64, "hidden units of the encoders and the decoder", int, low=1),
    Flag("--adversary-hidden", 64, "hidden units of the adversary q(y | z)", int, low=1),
    Flag("--betas", [2.0, 1.0, 2.0, 20.0, 1.0], "beta1..beta5: reconstruction, KL of w, KL of z, negative "
         "entropy of q(y | z), the adversary's cross-entropy", betas, default_text="2,1,2,20,1"),
    Flag("--adversary-input", "mean", "what the adversary reads: mean, mu_z (y cannot hide in mu_z under the "
         "posterior's noise), or sample, z ~ q(z | x) (the paper)", choices=("mean", "sample")),
    Flag("--adversary-steps", 1, "adversary steps after each encoder/decoder step, each on a fresh draw of z",
         int, low=1),
    Flag("--sigma", 0.1, "the Gaussian likelihood's standard deviation, on coordinates in about [-1.4, 1.4]",
         float, low=0, strict=True),
    Flag("--w-on-mean", 3.0, "p(w_i | y_i = 1) = N(this in every dimension, --w-on-std^2 I)", float),
    Flag("--w-on-std", 1.0, "see --w-on-mean", float, low=0, strict=True),
    Flag("--w-off-std", 0.1, "p(w_i | y_i = 0) = N(0, this^2 I): a tight Gaussian at the origin", float, low=0,
         strict=True),
    *[f for f in runner.COMMON_FLAGS if f.name in COMMON],
]  # fmt: skip


def load_data(cfg):
    x, y = swiss_roll(cfg["n_train"], np.random.default_rng(TRAIN_SEED), noise=cfg["noise"])
    x_test, y_test = swiss_roll(cfg["n_test"], np.random.default_rng(TEST_SEED), noise=cfg["noise"])
    return x, y, x_test, y_test


def build_model(cfg, rng):
    return tinyvae.build_vae("csvae", rng=rng, input_dim=3, z_dim=cfg["z_dim"], w_dim=cfg["w_dim"],
                             hidden=cfg["hidden"], adversary_hidden=cfg["adversary_hidden"], sigma=cfg["sigma"],
                             betas=cfg["betas"], w_on_mean=cfg["w_on_mean"], w_on_std=cfg["w_on_std"],
                             w_off_std=cfg["w_off_std"], adversary_input=cfg["adversary_input"])  # fmt: skip


def train_epoch(model, optimizers, x, y, batch_size, rng, adversary_steps=1):
    """One pass over (x, y): per batch, an encoder/decoder step, then ``adversary_steps`` adversary steps (each on
    a fresh draw of z for the batch); returns the mean terms (the adversary's: of its last step)."""
    order = rng.permutation(len(x))
    sums, steps = {}, 0
    for start in range(0, len(x), batch_size):
        rows = order[start : start + batch_size]
        terms = model.loss_and_grads(x[rows], y[rows], rng=rng)
        if not np.isfinite(terms["loss"]):
            raise FloatingPointError(f"the loss is {terms['loss']} at step {steps + 1}")
        optimizers["vae"].step(model.vae_grads())
        for _ in range(adversary_steps):
            adversary = model.adversary_loss_and_grads(x[rows], y[rows], rng=rng)
            if not np.isfinite(adversary["loss"]):
                raise FloatingPointError(f"the adversary's loss is {adversary['loss']} at step {steps + 1}")
            optimizers["adversary"].step(model.adversary_grads())
        for k, v in {**terms, "adversary_bce": adversary["bce"]}.items():
            sums[k] = sums.get(k, 0.0) + v
        steps += 1
    return {k: v / steps for k, v in sums.items()}


def draw(out, model, x, y, x_test, y_test, history):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = np.where(y[:, 0] == 1, "tab:red", "tab:blue")
    fig = plt.figure(figsize=(5, 5))
    axes = fig.add_subplot(projection="3d")
    axes.scatter(*x[:2000].T, c=colours[:2000], s=3)
    axes.set_title("swiss roll: y = 1 red, y = 0 blue")
    save_figure(fig, out / "data.png")
    plt.close(fig)

    mu_z, _ = model.encode_z(x_test)
    mu_w, _ = model.encode_w(x_test, y_test)
    colours = np.where(y_test[:, 0] == 1, "tab:red", "tab:blue")
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.5))
    for axes, codes, name in ((left, mu_w, "w"), (right, mu_z, "z")):
        axes.scatter(codes[:, 0], codes[:, 1 % codes.shape[1]], c=colours, s=3)
        axes.set_title(f"test codes: mu_{name} (y = 1 red, y = 0 blue)")
        axes.set_aspect("equal", adjustable="datalim")
    save_figure(fig, out / "latent.png")
    plt.close(fig)

    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for k in ("reconstruction", "kl_w", "kl_z", "negative_entropy", "adversary_bce"):
        axes[0].plot(epochs, [h[k] for h in history], label=k)
    axes[0].set_title("training terms (nats per point)")
    axes[1].semilogy(epochs, [h["separation_w"][0] for h in history], label="w")
    axes[1].semilogy(epochs, [max(h["separation_z"][0], 1e-6) for h in history], label="z")
    axes[1].set_title("class separation (symmetrized KL)")
    axes[2].plot(epochs, [h["adversary_accuracy"][0] for h in history], label="adversary, z ~ q(z | x)")
    axes[2].plot(epochs, [h["base_rate"][0] for h in history], "k--", label="base rate")
    axes[2].set_title("accuracy from z")
    for a in axes:
        a.set_xlabel("epoch")
        a.legend()
    save_figure(fig, out / "curves.png")
    plt.close(fig)
    return ["data.png", "latent.png", "curves.png"]


def _locked_run(out, explicit, resume):
    cfg, ckpt = runner.resolve_config(explicit, resume, out, FLAGS, DEFAULTS)
    print(runner.choose_backend(explicit.get("backend"), ckpt and ckpt.meta["config"].get("backend")), flush=True)
    cfg["backend"] = tinyvae.get_backend()
    x, y, x_test, y_test = load_data(cfg)
    print(f"data: {len(x)} training and {len(x_test)} test points of the swiss roll, y = 1 for "
          f"{100 * y.mean():.1f}% of the training points")  # fmt: skip
    init_rng, train_rng, probe_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(cfg["seed"]).spawn(3))
    try:
        model = build_model(cfg, init_rng)
    except ValueError as err:
        raise RunError(f"model: {err}") from err
    optimizers = {"vae": Adam(model.vae_params(), lr=cfg["lr"]), "adversary": Adam(model.adversary_params(),
                                                                                    lr=cfg["lr"])}  # fmt: skip
    saved_cfg = {k: v for k, v in cfg.items() if k != "out"}
    if ckpt is not None:
        try:
            ckpt.restore(model, optimizers, train_rng)
        except CheckpointError as err:
            raise RunError(f"--resume: {err}") from err
        history, start_epoch = ckpt.meta["history"], ckpt.epoch
        print(f"resuming {ckpt.path} after epoch {start_epoch}")
    else:
        history, start_epoch = [], 0
        save_checkpoint(out, model, optimizers, epoch=0, rng=train_rng, config=saved_cfg, history=history)
        print(f"new run in {out}")
    print(f"model: {model!r}; {sum(p.size for p in model.params.values())} parameters; two Adams, lr {cfg['lr']}, "
          f"batch {cfg['batch_size']}")  # fmt: skip

    started = time.perf_counter()
    for epoch in range(start_epoch + 1, cfg["epochs"] + 1):
        epoch_started = time.perf_counter()
        try:
            stats = train_epoch(model, optimizers, x, y, cfg["batch_size"], train_rng, cfg["adversary_steps"])
        except FloatingPointError as err:
            raise RunError(f"epoch {epoch}: {err}; lower --lr. The last good checkpoint (epoch {epoch - 1}) is "
                           f"intact: {out / 'checkpoint.json'}") from err  # fmt: skip
        stats = {"epoch": epoch, **stats, "seconds": time.perf_counter() - epoch_started,
                 **subspace_metrics(model, x_test, y_test, np.random.default_rng(EVAL_SEED))}  # fmt: skip
        history.append(stats)
        save_checkpoint(out, model, optimizers, epoch=epoch, rng=train_rng, config=saved_cfg, history=history)
        print(f"epoch {epoch:3d}/{cfg['epochs']}  loss {stats['loss']:8.3f} (reconstruction "
              f"{stats['reconstruction']:.3f}, KL w {stats['kl_w']:.3f}, KL z {stats['kl_z']:.3f}, -H "
              f"{stats['negative_entropy']:.3f}, adversary BCE {stats['adversary_bce']:.3f})  separation w "
              f"{stats['separation_w'][0]:.3g} z {stats['separation_z'][0]:.3g}  adversary accuracy from z "
              f"{100 * stats['adversary_accuracy'][0]:.1f}% (base rate {100 * stats['base_rate'][0]:.1f}%)  "
              f"{stats['seconds']:.1f}s", flush=True)  # fmt: skip
        if cfg["time_limit"] and time.perf_counter() - started > 60 * cfg["time_limit"] and epoch < cfg["epochs"]:
            print(f"time limit of {cfg['time_limit']:g} minutes reached after epoch {epoch}; --resume continues")
            break

    final = subspace_metrics(model, x_test, y_test, np.random.default_rng(EVAL_SEED))
    mu_z_train, mu_z_test = model.encode_z(x)[0], model.encode_z(x_test)[0]
    final["probe_accuracy"] = probe_accuracy(mu_z_train, y, mu_z_test, y_test, probe_rng, epochs=PROBE_EPOCHS)
    final["reconstruction_rmse"] = float(np.sqrt(np.mean((model.reconstruct(x_test, y_test) - x_test) ** 2)))
    final["separation_ratio"] = [w / max(z, 1e-12) for w, z in zip(final["separation_w"], final["separation_z"])]
    try:
        drawn = draw(out, model, x, y, x_test, y_test, history)
    except ImportError as err:  # matplotlib is the optional "plot" extra
        drawn = []
        print(f"no pictures: {err.name} is not installed (pip install 'tinyvae[plot]')")
    summary = {"config": saved_cfg, "epochs_done": history[-1]["epoch"] if history else 0, **final,
               "history": history, "train_seconds": sum(h["seconds"] for h in history), "pictures": drawn,
               "checkpoint": str(out / "checkpoint.json")}  # fmt: skip
    runner.write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    print(f"test points: separation of the classes in w {final['separation_w'][0]:.3g}, in z "
          f"{final['separation_z'][0]:.3g} (ratio {final['separation_ratio'][0]:.3g}); accuracy of y from z: "
          f"the adversary {100 * final['adversary_accuracy'][0]:.1f}% (on z ~ q(z | x); "
          f"{100 * final['adversary_accuracy_mean'][0]:.1f}% on mu_z), a fresh probe trained on mu_z "
          f"{100 * final['probe_accuracy'][0]:.1f}%, base rate {100 * final['base_rate'][0]:.1f}%; reconstruction "
          f"RMSE {final['reconstruction_rmse']:.3f} per coordinate; "
          f"{runner.minutes(summary['train_seconds'])} training; files in {out}")  # fmt: skip
    return summary


def main(argv=None):
    """Train, evaluate, draw; returns the summary dict (also written to summary.json)."""
    explicit, switches = runner.parse_args(argv, __doc__, FLAGS, DEFAULTS)
    debug = switches["debug"] or os.environ.get("TINYVAE_DEBUG") == "1"
    out = Path(explicit.get("out", DEFAULTS["out"]))
    try:
        with np.errstate(all="ignore"):  # non-finite values are checked and reported, not warned about
            runner.refuse_to_replace(out, switches["resume"], switches["overwrite"])
            out.mkdir(parents=True, exist_ok=True)
            with runner.OutputLock(out):
                runner.refuse_to_replace(out, switches["resume"], switches["overwrite"])
                return _locked_run(out, explicit, switches["resume"])
    except RunError as err:
        if debug:
            raise err.__cause__ or err
        sys.exit(str(err))


if __name__ == "__main__":
    main()

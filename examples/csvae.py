"""Train a CSVAE (Klys, Snell & Zemel 2018) on the swiss roll or faces: y in its own subspace W, the rest in Z.

    python examples/csvae.py                      # the swiss roll, about a minute on 2 cores
    python examples/csvae.py --epochs 120 --resume
    python examples/csvae.py --data faces --judge runs/faces-judge32   # conv CSVAE on 32x32 synthetic faces
    python examples/csvae.py --data faces --model cvae --out runs/csvae-cvae  # a baseline, same faces and budget
    python examples/csvae.py --help

The model is tinyvae/csvae.py (preset "csvae": small MLPs, a 2-D z, a 2-D w per attribute). Each batch
takes two steps, each with its own Adam (both at --lr, times --lr-decay after every epoch): the encoders
and the decoder on their objective (reconstruction, the KL of w to p(w | y), the KL of z to N(0, I), the
negative entropy of the adversary's q(y | z)), then the adversary on its cross-entropy (--adversary-steps
times), reading the updated encoder's mu_z (or a fresh sample of z with --adversary-input sample). After
every epoch, on the test points: the separation of the two classes in w and in z (symmetrized KL of
Gaussian fits, tinyvae.csvae.symmetrized_kl), and the adversary's accuracy from z ~ q(z | x) against the
base rate. At the end a fresh classifier (a probe) is trained on the codes mu_z of the training points:
the stricter test.
Written into --out (default runs/csvae):

    data.png          the training points in 3-D, coloured by y
    latent.png        the test points' codes: the w plane and the z plane, coloured by y
    curves.png        each term per epoch, the separations and the accuracies
    summary.json      config, per-epoch history, the final metrics, timings
    checkpoint.json + checkpoint-epochNNNN.npz   the latest epoch: the model and both optimizers
                      (tinyvae/checkpoint.py; tinyvae.load_run(out) rebuilds the model)

--data faces trains a convolutional CSVAE (tinyvae.csvae.conv_csvae: the faces preset's conv, BatchNorm
and LeakyReLU blocks; a Gaussian likelihood with --sigma on pixels in [0, 1]) on the synthetic faces of
examples/faces.py (the same seeds and loading code; CelebA with --data-dir), one 2-D W per attribute of
--attributes (default Eyeglasses,Smiling). --model cvae and --model vae train the baselines on the same
faces, with the same loop, batches and epochs, and the same latent size (--z-dim + attributes x --w-dim):
a conditional VAE whose label is the attributes' joint class (tinyvae.csvae.faces_cvae) and the plain faces
VAE (tinyvae.presets.faces_vae). Its files:

    styles.png        for one test face, a grid over the W plane of each attribute, z and the other W kept
    transfer.png      attribute transfer: faces without the attribute given the w of a face with it, and back
    latent.png        the test faces' mu_w, one plane per attribute, coloured by it
    curves.png, summary.json, checkpoint.json + checkpoint-epochNNNN.npz, as above

With --judge DIR (an attribute classifier: examples/classifier.py --dataset faces --out DIR) the transfers
are rated at the end (summary.json "transfers"; examples/csvae_table.py puts several runs side by side).

--resume continues a run (its settings are kept; --epochs is the total), --overwrite replaces one; a
second run writing into the same --out is refused; a NaN stops the run and the last checkpoint stays.
"""

import argparse
import dataclasses
import importlib.util
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
from tinyvae.csvae import (  # noqa: E402
    CSVAE, attribute_classes, judged_transfer, probe_accuracy, subspace_metrics, transfer_w,
)  # fmt: skip
from tinyvae.datasets import CELEBA_ATTRIBUTES, FACE_ATTRIBUTES, swiss_roll  # noqa: E402
from tinyvae.evaluate import attribute_edit_rates, check_attribute_judge  # noqa: E402
from tinyvae.latent_edit import attribute_vector  # noqa: E402
from tinyvae.optim import Adam  # noqa: E402
from tinyvae.pictures import save_figure, tile  # noqa: E402
from tinyvae.runner import Flag, RunError  # noqa: E402


def _load_faces_example():
    """examples/faces.py as a module: its face loading (synthetic or CelebA) is reused, not copied."""
    spec = importlib.util.spec_from_file_location("faces_example", Path(__file__).with_name("faces.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


faces_example = _load_faces_example()

TRAIN_SEED, TEST_SEED, EVAL_SEED = 0, 1, 2  # the training and test points (independent of --seed), evaluation eps
TRANSFER_SEED = 3  # which face gives its w in a rated transfer
PROBE_EPOCHS = 10
PROBE_FACES = 4000  # the probe on mu_z (faces): trained on the first training faces' codes
VECTOR_FACES = 2000  # the plain VAE's attribute vectors: from the first training faces' codes (as examples/faces.py)
VAE_FACTORS = (1.0, 2.0)  # the plain VAE's edits: mu(x) +- factor x the attribute vector
BATCH = 500  # images per batch when encoding or decoding many


def by_data(swiss_roll_value, faces_value):
    """A flag's default that depends on --data."""
    return lambda cfg: swiss_roll_value if cfg["data"] == "swiss-roll" else faces_value


# faces: Adam at 3e-3 decayed by 0.93 per epoch switched and kept more attributes than a constant 1e-3 (README)
DEFAULTS = {"out": "runs/csvae", "epochs": by_data(60, 40), "batch_size": by_data(64, 32), "lr": by_data(1e-3, 3e-3),
            "lr_decay": by_data(1.0, 0.93)}


def attribute_list(text):
    """--attributes "Eyeglasses,Smiling" -> ["Eyeglasses", "Smiling"]; the names are checked against the data's."""
    names = [a.strip() for a in text.split(",")]
    if not all(names) or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"expected distinct attribute names separated by commas, got {text!r}")
    return names
COMMON_BY_DATA = {"--epochs": "60 (swiss roll), 40 (faces)", "--batch-size": "64 (swiss roll), 32 (faces)",
                  "--lr": "0.001 (swiss roll), 0.003 (faces)", "--lr-decay": "1 (swiss roll), 0.93 (faces)"}
COMMON = ("--epochs", "--batch-size", "--lr", "--lr-decay", "--seed", "--backend", "--out", "--time-limit")


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
    Flag("--data", "swiss-roll", "swiss-roll (3-D points, y = 1 on the outer half of the roll) or faces (synthetic, "
         "or CelebA with --data-dir)", choices=("swiss-roll", "faces")),
    Flag("--model", "csvae", "csvae, or a baseline for --data faces: cvae (a conditional VAE, label = the "
         "attributes' joint class) or vae (the plain faces VAE)", choices=("csvae", "cvae", "vae")),
    Flag("--n-train", by_data(10000, 8000), "training points (synthetic faces: faces to draw)", int, low=2,
         default_text="10000 (swiss roll), 8000 (faces)"),
    Flag("--n-test", by_data(2000, 1000), "test points (faces: the first test faces)", int, low=2,
         default_text="2000 (swiss roll), 1000 (faces)"),
    Flag("--noise", 0.0, "swiss roll: standard deviation of the noise added to each coordinate", float, low=0),
    Flag("--z-dim", by_data(2, 32), "size of z, the subspace that must hold no y", int, low=1,
         default_text="2 (swiss roll), 32 (faces)"),
    Flag("--w-dim", 2, "size of each attribute's subspace W_i", int, low=1),
    Flag("--hidden", 64, "swiss roll: hidden units of the encoders and the decoder", int, low=1),
    Flag("--adversary-hidden", 64, "hidden units of the adversary q(y | z)", int, low=1),
    Flag("--betas", by_data([2.0, 1.0, 2.0, 20.0, 1.0], [1.0, 10.0, 1.0, 100.0, 1.0]), "beta1..beta5: "
         "reconstruction, KL of w, KL of z, negative entropy of q(y | z), the adversary's cross-entropy", betas,
         default_text="2,1,2,20,1 (swiss roll), 1,10,1,100,1 (faces)"),
    Flag("--size", 32, "faces: image height and width", int, choices=(32, 64)),
    Flag("--data-dir", None, "faces: read CelebA from this directory (as examples/faces.py) instead of drawing "
         "synthetic faces"),
    Flag("--attributes", ["Eyeglasses", "Smiling"], "faces: the attributes y, each with its own W",
         attribute_list, default_text="Eyeglasses,Smiling"),
    Flag("--channels", [32, 64], "faces: channels of the stride-2 convolutions (as examples/faces.py --channels)",
         faces_example.channel_list, default_text="32,64"),
    Flag("--judge", None, "faces: an attribute classifier run (examples/classifier.py --dataset faces --out DIR, "
         "same --size) that rates the attribute transfers at the end", run_setting=False),
    Flag("--adversary-input", "mean", "what the adversary reads: mean, mu_z (y cannot hide in mu_z under the "
         "posterior's noise), or sample, z ~ q(z | x) (the paper)", choices=("mean", "sample")),
    Flag("--adversary-steps", by_data(1, 2), "adversary steps after each encoder/decoder step, each on a fresh draw "
         "of z", int, low=1, default_text="1 (swiss roll), 2 (faces)"),
    Flag("--sigma", 0.1, "the Gaussian likelihood's standard deviation, on coordinates in about [-1.4, 1.4] "
         "(swiss roll) or pixels in [0, 1] (faces)", float, low=0, strict=True),
    Flag("--w-on-mean", by_data(3.0, 2.0), "p(w_i | y_i = 1) = N(this in every dimension, --w-on-std^2 I)", float,
         default_text="3 (swiss roll), 2 (faces)"),
    Flag("--w-on-std", by_data(1.0, 0.5), "see --w-on-mean", float, low=0, strict=True,
         default_text="1 (swiss roll), 0.5 (faces)"),
    Flag("--w-off-std", 0.1, "p(w_i | y_i = 0) = N(0, this^2 I): a tight Gaussian at the origin", float, low=0,
         strict=True),
    *[dataclasses.replace(f, default_text=COMMON_BY_DATA.get(f.name)) for f in runner.COMMON_FLAGS
      if f.name in COMMON],
]  # fmt: skip


def load_data(cfg):
    """(x, y, x_test, y_test, transform, names): training inputs (faces: uint8, made float32 in [0, 1] per batch by
    ``transform``), their attributes y (N, m) of 0/1, the test inputs (float32) and attributes, the names of y's
    columns."""
    if cfg["data"] == "swiss-roll":
        if cfg["model"] != "csvae":
            raise ValueError(f"--model {cfg['model']}: the baselines are for --data faces")
        x, y = swiss_roll(cfg["n_train"], np.random.default_rng(TRAIN_SEED), noise=cfg["noise"])
        x_test, y_test = swiss_roll(cfg["n_test"], np.random.default_rng(TEST_SEED), noise=cfg["noise"])
        return x, y, x_test, y_test, None, ["y"]
    names = CELEBA_ATTRIBUTES if cfg["data_dir"] else FACE_ATTRIBUTES
    unknown = [a for a in cfg["attributes"] if a not in names]
    if unknown:
        raise ValueError(f"--attributes: {', '.join(unknown)} unknown; these faces have {', '.join(names)}")
    data, train_attributes, test_attributes, names = faces_example.load_faces(
        {"attribute": cfg["attributes"][0], "data_dir": cfg["data_dir"], "size": cfg["size"],
         "n_train": cfg["n_train"], "test_size": cfg["n_test"]})  # fmt: skip
    columns = [names.index(a) for a in cfg["attributes"]]
    y, y_test = (a[: len(x), columns].astype(np.int64) for a, x in ((train_attributes, data.train_x),
                                                                   (test_attributes, data.test_x)))  # fmt: skip
    return data.train_x, y, data.test_x, y_test, data.transform, list(cfg["attributes"])


def build_model(cfg, rng):
    if cfg["data"] == "swiss-roll":
        return tinyvae.build_vae("csvae", rng=rng, input_dim=3, z_dim=cfg["z_dim"], w_dim=cfg["w_dim"],
                                 hidden=cfg["hidden"], adversary_hidden=cfg["adversary_hidden"], sigma=cfg["sigma"],
                                 betas=cfg["betas"], w_on_mean=cfg["w_on_mean"], w_on_std=cfg["w_on_std"],
                                 w_off_std=cfg["w_off_std"], adversary_input=cfg["adversary_input"])  # fmt: skip
    m, shape = len(cfg["attributes"]), (3, cfg["size"], cfg["size"])
    latent = cfg["z_dim"] + m * cfg["w_dim"]  # the baselines get the CSVAE's whole latent size
    faces = dict(input_shape=shape, channels=cfg["channels"], sigma=cfg["sigma"])
    if cfg["model"] == "vae":
        return tinyvae.build_vae("faces", rng=rng, latent_dim=latent, **faces)
    if cfg["model"] == "cvae":
        return tinyvae.build_vae("faces_cvae", rng=rng, latent_dim=latent, num_attributes=m, **faces)
    return tinyvae.build_vae("conv_csvae", rng=rng, z_dim=cfg["z_dim"], w_dim=cfg["w_dim"], num_attributes=m,
                             adversary_hidden=cfg["adversary_hidden"], betas=cfg["betas"],
                             w_on_mean=cfg["w_on_mean"], w_on_std=cfg["w_on_std"], w_off_std=cfg["w_off_std"],
                             adversary_input=cfg["adversary_input"], **faces)  # fmt: skip


def make_optimizers(model, lr):
    """Two Adams for a CSVAE ("vae": encoders and decoder, "adversary"); one ("vae") for a baseline."""
    if isinstance(model, CSVAE):
        return {"vae": Adam(model.vae_params(), lr=lr), "adversary": Adam(model.adversary_params(), lr=lr)}
    return {"vae": Adam(model.params, lr=lr)}


def train_epoch(model, optimizers, x, y, batch_size, rng, adversary_steps=1, transform=None):
    """One pass over (x, y). A CSVAE, per batch: an encoder/decoder step, then ``adversary_steps`` adversary steps
    (each on a fresh draw of z for the batch); a baseline VAE: one step on its negative ELBO (a conditional one
    given the attributes' joint class). Returns the mean terms (the adversary's: of its last step).
    ``transform`` makes each batch of x the model's input (faces: uint8 -> float32 in [0, 1])."""
    model.train()
    order = rng.permutation(len(x))
    sums, steps = {}, 0
    for start in range(0, len(x), batch_size):
        rows = order[start : start + batch_size]
        batch = x[rows] if transform is None else transform(x[rows])
        if isinstance(model, CSVAE):
            terms = model.loss_and_grads(batch, y[rows], rng=rng)
        else:
            terms = model.loss_and_grads(batch, rng=rng, y=attribute_classes(y[rows]) if model.num_classes else None)
        if not np.isfinite(terms["loss"]):
            raise FloatingPointError(f"the loss is {terms['loss']} at step {steps + 1}")
        if isinstance(model, CSVAE):
            optimizers["vae"].step(model.vae_grads())
            for _ in range(adversary_steps):
                adversary = model.adversary_loss_and_grads(batch, y[rows], rng=rng)
                if not np.isfinite(adversary["loss"]):
                    raise FloatingPointError(f"the adversary's loss is {adversary['loss']} at step {steps + 1}")
                optimizers["adversary"].step(model.adversary_grads())
            terms = {**terms, "adversary_bce": adversary["bce"]}
        else:
            optimizers["vae"].step(model.grads)
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + v
        steps += 1
    model.eval()
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


def in_batches(fn, *arrays):
    """fn over BATCH rows of the arrays at a time, the results concatenated."""
    return np.concatenate([fn(*(a[s : s + BATCH] for a in arrays)) for s in range(0, len(arrays[0]), BATCH)])


def reconstruct(model, x, y):
    """E[x | the posterior means] of each model, batch by batch: the CSVAE's needs y, a conditional VAE's its class."""
    if isinstance(model, CSVAE):
        return in_batches(model.reconstruct, x, y)
    if model.num_classes:
        return in_batches(model.reconstruct, x, attribute_classes(y))
    return in_batches(model.reconstruct, x)


def decoded_pair(model, x, y, attribute):
    """A conditional VAE's (reconstructions, label flips of ``attribute``): z = mu(x, y) decoded with y's class,
    then with the class whose ``attribute`` is flipped."""
    classes = attribute_classes(y)
    mu = in_batches(lambda b, c: model.encode(b, c)[0], x, classes)
    reconstructions = in_batches(lambda z, c: model.mean(model.decode(z, c)), mu, classes)
    return reconstructions, in_batches(lambda z, c: model.mean(model.decode(z, c)), mu, classes ^ (1 << attribute))


def rate_transfers(model, judge, x_test, y_test, names, x_train, y_train, transform):
    """The judge's view of each attribute's transfers: rows {"method", "attribute", "way", "switched",
    "others_kept", "both", "n"}, "add" on the test faces without the attribute, "remove" on those with it.

    csvae: W_i replaced by the mu_w of a random test face of the other side (z and the other W kept);
    cvae: the label's attribute flipped, z = mu(x, y) kept; vae x<f>: mu(x) +- f x the attribute vector (the
    mean code of the first VECTOR_FACES training faces with the attribute minus without). Each is judged
    against its own reconstruction (tinyvae.csvae.judged_transfer, tinyvae.evaluate.attribute_edit_rates).
    """
    rng = np.random.default_rng(TRANSFER_SEED)
    model.eval()
    if isinstance(model, CSVAE):
        mu_w = in_batches(lambda b, a: model.encode_w(b, a)[0], x_test, y_test)  # (N, mW)
    elif not model.num_classes:
        n = min(VECTOR_FACES, len(x_train))
        codes = in_batches(lambda b: model.encode(transform(b))[0], x_train[:n])  # (n, L)
    rows = []
    for i, name in enumerate(names):
        has = y_test[:, i] == 1
        for way, faces, donors in (("add", np.flatnonzero(~has), np.flatnonzero(has)),
                                   ("remove", np.flatnonzero(has), np.flatnonzero(~has))):  # fmt: skip
            if not len(faces) or not len(donors):
                continue
            x, y = x_test[faces], y_test[faces]
            if isinstance(model, CSVAE):
                w_new = mu_w[donors[rng.integers(0, len(donors), len(faces))], i * model.w_dim : (i + 1) * model.w_dim]
                rated = {"csvae": judged_transfer(judge, *transfer_w(model, x, y, i, w_new), name, way == "add")}
            elif model.num_classes:
                rated = {"cvae": judged_transfer(judge, *decoded_pair(model, x, y, i), name, way == "add")}
            else:
                vector = attribute_vector(codes, y_train[:n, i])
                rated = {f"vae x{f:g}": attribute_edit_rates(model, judge, x, name, vector, f if way == "add" else -f)
                         for f in VAE_FACTORS}  # fmt: skip
            for method, r in rated.items():
                rows.append({"method": method, "attribute": name, "way": way,
                             **{k: r[k] for k in ("switched", "others_kept", "both", "n")}})  # fmt: skip
    return rows


def overall(rows):
    """Per method and attribute, the add and remove rows pooled (weighted by their faces): {(method, attribute):
    {"switched", "others_kept", "both", "n"}}."""
    pooled = {}
    for r in rows:
        p = pooled.setdefault((r["method"], r["attribute"]), {"switched": 0.0, "others_kept": 0.0, "both": 0.0, "n": 0})
        for k in ("switched", "others_kept", "both"):
            p[k] += r[k] * r["n"]
        p["n"] += r["n"]
    for p in pooled.values():
        for k in ("switched", "others_kept", "both"):
            p[k] /= p["n"]
    return pooled


def load_judge(cfg):
    """The --judge attribute classifier, checked against the faces and --attributes; None without --judge."""
    if cfg["judge"] is None:
        return None
    where = f"--judge {cfg['judge']}"
    if cfg["data"] != "faces":
        raise RunError(f"{where}: the judge rates attribute transfers of --data faces")
    try:
        judge = tinyvae.load_run(cfg["judge"])
        check_attribute_judge(judge, (3, cfg["size"], cfg["size"]), np.float32, cfg["attributes"])
    except FileNotFoundError as err:
        raise RunError(f"{where}: {err}; train an attribute classifier there first (examples/classifier.py "
                       f"--dataset faces --size {cfg['size']} --out DIR)") from err  # fmt: skip
    except (ValueError, CheckpointError) as err:
        raise RunError(f"{where}: {err}") from err
    return judge


def draw_faces(out, model, x_test, y_test, names, history):
    """curves.png for every model; styles.png, transfer.png and latent.png for a CSVAE. Returns the names drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    csvae = isinstance(model, CSVAE)
    fig, axes = plt.subplots(1, 2 if csvae else 1, figsize=(12 if csvae else 6, 4), squeeze=False)
    for k in ("kl_w", "kl_z", "kl", "negative_entropy", "adversary_bce"):
        if history and k in history[0]:
            axes[0, 0].plot(epochs, [h[k] for h in history], label=k)
    axes[0, 0].set_title(f"training terms (nats per face); reconstruction RMSE of the test faces "
                         f"{history[-1]['rmse']:.3f}" if history else "training terms", fontsize=9)  # fmt: skip
    if csvae:
        for i, name in enumerate(names):
            axes[0, 1].plot(epochs, [h["adversary_accuracy"][i] for h in history], label=f"adversary: {name}")
            axes[0, 1].plot(epochs, [h["base_rate"][i] for h in history], "--", label=f"base rate: {name}")
        axes[0, 1].set_title("accuracy of y from z ~ q(z | x)", fontsize=9)
    for a in axes.flat:
        a.set_xlabel("epoch")
        a.legend(fontsize=7)
    save_figure(fig, out / "curves.png")
    plt.close(fig)
    if not csvae:
        return ["curves.png"]

    model.eval()
    W, G = model.w_dim, 7  # a G x G grid over the first two dimensions of W_i
    mu_z = in_batches(lambda b: model.encode_z(b)[0], x_test)
    mu_w = in_batches(lambda b, a: model.encode_w(b, a)[0], x_test, y_test)
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 4.6), squeeze=False)
    for i, (name, ax) in enumerate(zip(names, axes.flat)):
        face = int(np.flatnonzero(y_test[:, i] == 1)[0]) if y_test[:, i].any() else 0
        block = mu_w[:, i * W : i * W + min(W, 2)]  # the test faces' W_i: the grid spans them
        lo, hi = block.min(axis=0), block.max(axis=0)
        axis0 = np.linspace(lo[0], hi[0], G)
        axis1 = np.linspace(lo[-1], hi[-1], G)
        w = np.repeat(mu_w[face : face + 1], G * G, axis=0)  # (G*G, mW): the face's own W, then W_i on the grid
        w[:, i * W] = np.tile(axis0, G)
        if min(W, 2) == 2:
            w[:, i * W + 1] = np.repeat(axis1[::-1], G)
        grid = model.mean(model.decode(np.repeat(mu_z[face : face + 1], G * G, axis=0), w))
        ax.imshow(np.clip(tile(grid, G), 0, 1), interpolation="nearest")
        ax.set_title(f"{name}: test face {face}, W_{i} over [{lo[0]:.1f}, {hi[0]:.1f}] x [{lo[-1]:.1f}, "
                     f"{hi[-1]:.1f}]", fontsize=8)  # fmt: skip
        ax.axis("off")
    save_figure(fig, out / "styles.png")
    plt.close(fig)

    cols = 8
    fig, axes = plt.subplots(len(names), 1, figsize=(cols * 0.9, 4 * 0.95 * len(names) + 0.5), squeeze=False)
    for i, (name, ax) in enumerate(zip(names, axes.flat)):
        rows = []
        for side in (0, 1):  # faces without the attribute get the w of faces with it, then the reverse
            faces, donors = np.flatnonzero(y_test[:, i] == side)[:cols], np.flatnonzero(y_test[:, i] != side)[:cols]
            n = min(len(faces), len(donors))
            faces, donors = faces[:n], donors[:n]
            _, moved = transfer_w(model, x_test[faces], y_test[faces], i, mu_w[donors, i * W : (i + 1) * W])
            pad = np.zeros((cols - n, *x_test.shape[1:]), x_test.dtype)
            rows += [np.concatenate([x_test[faces], pad]), np.concatenate([moved, pad])]
        ax.imshow(np.clip(tile(np.concatenate(rows), cols), 0, 1), interpolation="nearest")
        ax.set_title(f"{name}: test faces without it, given the w of a face with it; then faces with it, given "
                     "the w of one without", fontsize=8)  # fmt: skip
        ax.axis("off")
    save_figure(fig, out / "transfer.png")
    plt.close(fig)

    fig, axes = plt.subplots(1, len(names) + 1, figsize=(4.2 * (len(names) + 1), 4), squeeze=False)
    for i, name in enumerate(names):
        colours = np.where(y_test[:, i] == 1, "tab:red", "tab:blue")
        axes[0, i].scatter(mu_w[:, i * W], mu_w[:, i * W + 1 % W], c=colours, s=3)
        axes[0, i].set_title(f"mu_w of W_{i}: {name} red, without blue", fontsize=8)
    colours = np.where(y_test[:, 0] == 1, "tab:red", "tab:blue")
    axes[0, -1].scatter(mu_z[:, 0], mu_z[:, 1 % mu_z.shape[1]], c=colours, s=3)
    axes[0, -1].set_title(f"mu_z, first two dimensions: {names[0]} red", fontsize=8)
    save_figure(fig, out / "latent.png")
    plt.close(fig)
    return ["curves.png", "styles.png", "transfer.png", "latent.png"]


def _locked_run(out, explicit, resume):
    cfg, ckpt = runner.resolve_config(explicit, resume, out, FLAGS, DEFAULTS)
    judge = load_judge(cfg)
    print(runner.choose_backend(explicit.get("backend"), ckpt and ckpt.meta["config"].get("backend")), flush=True)
    cfg["backend"] = tinyvae.get_backend()
    try:
        x, y, x_test, y_test, transform, names = load_data(cfg)
    except ValueError as err:
        raise RunError(f"data: {err}") from err
    faces = cfg["data"] == "faces"
    what = "faces" if faces else "points of the swiss roll"
    print(f"data: {len(x)} training and {len(x_test)} test {what}; "
          + ", ".join(f"{name} in {100 * p:.1f}%" for name, p in zip(names, y.mean(axis=0))))  # fmt: skip
    init_rng, train_rng, probe_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(cfg["seed"]).spawn(3))
    try:
        model = build_model(cfg, init_rng)
    except ValueError as err:
        raise RunError(f"model: {err}") from err
    csvae = isinstance(model, CSVAE)
    optimizers = make_optimizers(model, cfg["lr"])
    saved_cfg = {k: v for k, v in cfg.items() if k not in ("out", "judge")}
    if ckpt is not None:
        for optimizer in optimizers.values():  # the rate its last epoch trained at, as runner.run resumes
            optimizer.lr = runner.lr_of_epoch(cfg, ckpt.epoch)
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
    decay = "" if cfg["lr_decay"] == 1 else f" x {cfg['lr_decay']:g} per epoch"
    print(f"model: {model!r}; {sum(p.size for p in model.params.values())} parameters; "
          f"{' and '.join(optimizers)} Adam, lr {cfg['lr']}{decay}, batch {cfg['batch_size']}")  # fmt: skip

    def evaluate():
        model.eval()
        found = subspace_metrics(model, x_test, y_test, np.random.default_rng(EVAL_SEED)) if csvae else {}
        if faces:
            found["rmse"] = float(np.sqrt(np.mean((reconstruct(model, x_test, y_test) - x_test) ** 2)))
        return found

    started = time.perf_counter()
    for epoch in range(start_epoch + 1, cfg["epochs"] + 1):
        epoch_started = time.perf_counter()
        for optimizer in optimizers.values():
            optimizer.lr = runner.lr_of_epoch(cfg, epoch)  # a function of the epoch: resumes exactly
        try:
            stats = train_epoch(model, optimizers, x, y, cfg["batch_size"], train_rng, cfg["adversary_steps"],
                                transform)  # fmt: skip
        except FloatingPointError as err:
            raise RunError(f"epoch {epoch}: {err}; lower --lr. The last good checkpoint (epoch {epoch - 1}) is "
                           f"intact: {out / 'checkpoint.json'}") from err  # fmt: skip
        stats = {"epoch": epoch, **stats, "seconds": time.perf_counter() - epoch_started, **evaluate()}
        history.append(stats)
        save_checkpoint(out, model, optimizers, epoch=epoch, rng=train_rng, config=saved_cfg, history=history)
        terms = ", ".join(f"{k} {stats[k]:.3f}" for k in ("reconstruction", "kl", "kl_w", "kl_z", "negative_entropy",
                                                          "adversary_bce") if k in stats)  # fmt: skip
        line = f"epoch {epoch:3d}/{cfg['epochs']}  loss {stats['loss']:8.3f} ({terms})"
        if csvae:
            line += "  " + "; ".join(
                f"{name}: separation w {stats['separation_w'][i]:.3g} z {stats['separation_z'][i]:.3g}, adversary "
                f"accuracy from z {100 * stats['adversary_accuracy'][i]:.1f}% (base rate "
                f"{100 * stats['base_rate'][i]:.1f}%)" for i, name in enumerate(names))  # fmt: skip
        if faces:
            line += f"  test RMSE {stats['rmse']:.4f}"
        print(f"{line}  {stats['seconds']:.1f}s", flush=True)
        if cfg["time_limit"] and time.perf_counter() - started > 60 * cfg["time_limit"] and epoch < cfg["epochs"]:
            print(f"time limit of {cfg['time_limit']:g} minutes reached after epoch {epoch}; --resume continues")
            break

    final = evaluate()
    if csvae:
        n = min(len(x), PROBE_FACES) if faces else len(x)
        prepared = (lambda b: b) if transform is None else transform
        mu_z_train = in_batches(lambda b: model.encode_z(prepared(b))[0], x[:n])
        mu_z_test = in_batches(lambda b: model.encode_z(b)[0], x_test)
        final["probe_accuracy"] = probe_accuracy(mu_z_train, y[:n], mu_z_test, y_test, probe_rng, epochs=PROBE_EPOCHS)
        final["separation_ratio"] = [w / max(z, 1e-12) for w, z in zip(final["separation_w"], final["separation_z"])]
    final["reconstruction_rmse"] = float(np.sqrt(np.mean((reconstruct(model, x_test, y_test) - x_test) ** 2)))
    try:
        if faces:
            drawn = draw_faces(out, model, x_test, y_test, names, history)
        else:
            drawn = draw(out, model, x, y, x_test, y_test, history)
    except ImportError as err:  # matplotlib is the optional "plot" extra
        drawn = []
        print(f"no pictures: {err.name} is not installed (pip install 'tinyvae[plot]')")
    if judge is not None:
        final["judge"] = str(cfg["judge"])
        final["transfers"] = rate_transfers(model, judge, x_test, y_test, names, x, y, transform)
    summary = {"config": saved_cfg, "epochs_done": history[-1]["epoch"] if history else 0, **final,
               "history": history, "train_seconds": sum(h["seconds"] for h in history), "pictures": drawn,
               "checkpoint": str(out / "checkpoint.json")}  # fmt: skip
    runner.write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    if csvae:
        print("test " + what + ": " + "; ".join(
            f"{name}: separation of the classes in w {final['separation_w'][i]:.3g}, in z "
            f"{final['separation_z'][i]:.3g} (ratio {final['separation_ratio'][i]:.3g}); accuracy of it from z: the "
            f"adversary {100 * final['adversary_accuracy'][i]:.1f}% (on z ~ q(z | x); "
            f"{100 * final['adversary_accuracy_mean'][i]:.1f}% on mu_z), a fresh probe trained on mu_z "
            f"{100 * final['probe_accuracy'][i]:.1f}%, base rate {100 * final['base_rate'][i]:.1f}%"
            for i, name in enumerate(names)))  # fmt: skip
    for (method, name), r in overall(final.get("transfers", [])).items():
        print(f"transfers of {name} ({method}, {r['n']} test faces): switched {100 * r['switched']:.1f}%, others "
              f"kept {100 * r['others_kept']:.1f}%, both {100 * r['both']:.1f}%")  # fmt: skip
    print(f"reconstruction RMSE {final['reconstruction_rmse']:.4f} per {'pixel' if faces else 'coordinate'}; "
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

"""Train the faces VAE of "Generative Deep Learning" on RGB faces, then edit faces in latent space.

    python examples/faces.py                              # synthetic faces: under 10 minutes on 2 cores
    python examples/faces.py --size 32 --n-train 20000 --epochs 10 --out runs/faces32
    python examples/faces.py --data-dir ~/data --size 64  # a local CelebA copy (tinyvae/datasets/celeba.py)
    python examples/faces.py --resume                     # continue the run saved in --out
    python examples/faces.py --help

By default the faces are synthetic (tinyvae.datasets.synthetic_faces: no download, known
attributes); --data-dir reads CelebA's train and test splits instead. The model is the faces
preset (tinyvae/presets.py: faces_vae), a Gaussian likelihood with --sigma on pixels in [0, 1].
Written into --out (default runs/faces):

    reconstructions.png       test faces (odd rows) and their reconstructions (even rows)
    samples.png               decoded draws z ~ N(0, I) from the prior
    latent.png                the test codes mu(x) on their first two principal components, by --attribute
    latent_histograms.png     a few latent dimensions of the test codes z ~ q(z | x), against N(0, 1)
    attribute_arithmetic.png  test faces plus factor x the --attribute vector, factor -3..3
    morphing.png              test face a, decoded codes on the line from a to b, test face b
                              (tinyvae/pictures.py: interpolation)
    curves.png                each training term per step, and the test ELBO per epoch (nats/image)
    samples-epochNNN.png, samples.gif, metrics.jsonl, summary.json, checkpoint.json + .npz
                              as in examples/mnist.py (the run itself is tinyvae/runner.py)

The attribute vector is the mean code mu(x) of the test faces with the attribute minus that of
those without (tinyvae/latent_edit.py), computed on the test set drawn into --out.

Judged attribute arithmetic: --attribute-judge DIR names an attribute classifier trained on the
same faces (python examples/classifier.py --dataset faces --out DIR; add --data-dir for CelebA).
Checked before training, it rates at the end, for Eyeglasses, Smiling and --attribute, with
the vector from the first 2000 training faces: of the test faces without the attribute, how many
the judge sees with it after adding factor x the vector (factors 1, 2, 3), and how many keep every
other attribute as the judge sees it on their reconstruction; and the converse, removing it from
the faces with it (tinyvae.evaluate.attribute_edit_rates). Into summary.json ("attribute_edits")
and the last lines printed. `--resume --attribute-judge DIR` judges a finished run without training.

Time of the default run (64 x 64, channels 32,64,64: an 8 x 8 map where the book's 32,64,64,64 ends at
4 x 4; latent 200, sigma 0.1, 8000 synthetic training faces, 500 test faces, 24 epochs, batch 32, Adam
3e-3 decayed by 0.9 per epoch; README's Faces section has the runs that chose these), numba backend,
on this 2-core machine, idle otherwise: 6 min 40 s of training (about 470-520 images/s), 7 min 15 s in all
(the test ELBO each epoch, the IWAE bound, the pictures, the judged edits). The numpy backend was not timed
on this network: without Numba, use --size 32 or fewer --epochs. After 24 epochs the reconstructions
keep pose, hair, hat, colours, open or closed mouths and glasses, a little blurred; the samples are
face-like but mix features (hats over hair, colour fringes).
"""

import tinyvae  # first: its OpenBLAS thread setting must precede NumPy's import (tinyvae/__init__.py)

import argparse
import json
from pathlib import Path

import numpy as np

from tinyvae import pictures, runner
from tinyvae.datasets import CELEBA_ATTRIBUTES, FACE_ATTRIBUTES, load_celeba, synthetic_faces
from tinyvae.checkpoint import load_run
from tinyvae.evaluate import (
    attribute_accuracy, attribute_edit_rates, check_attribute_judge,
)  # fmt: skip
from tinyvae.latent_edit import add_attribute, attribute_vector
from tinyvae.pictures import Skip, tile
from tinyvae.runner import Data, Flag, OutputLock, write_text

# Measured on synthetic faces (README, "## Faces"): three stride-2 layers (an 8 x 8 feature map, not the book's
# 4 x 4) reconstruct mouths and glasses sooner; lr 3e-3 in batches of 32, decayed, fits 24 epochs in the budget.
DEFAULTS = {"out": "runs/faces", "epochs": 24, "batch_size": 32, "lr": 3e-3, "lr_decay": 0.9, "iwae_k": 5,
            "test_size": 500}
TRAIN_SEED, TEST_SEED = 0, 1  # the synthetic training and test faces (independent of --seed)
FACTORS = np.arange(-3, 4)  # attribute arithmetic: z + factor * vector
JUDGED = ("Eyeglasses", "Smiling")  # --attribute-judge rates these (and --attribute)
JUDGED_FACTORS = (1.0, 2.0, 3.0)  # add (remove) factor x the vector
VECTOR_FACES = 2000  # the first training faces, whose codes give the judged arithmetic's vectors


def channel_list(text):
    """--channels: "32,64,64,64" -> [32, 64, 64, 64] (a list, as the checkpoint's JSON config holds it)."""
    try:
        channels = [int(c) for c in text.split(",")]
    except ValueError:
        channels = []
    if not channels or min(channels) < 1:
        raise argparse.ArgumentTypeError(f"expected channel counts >= 1 separated by commas, e.g. 32,64,64,64; "
                                         f"got {text!r}")  # fmt: skip
    return channels


FLAGS = [
    Flag("--size", 64, "image height and width", int, choices=(32, 64)),
    Flag("--n-train", 8000, "synthetic training faces to draw (with --data-dir: use --train-size)", int, low=1),
    Flag("--data-dir", None, "read CelebA (torchvision's or Kaggle's layout) from this directory instead of "
         "drawing synthetic faces", run_setting=False),
    Flag("--attribute", "Smiling", "the attribute of attribute_arithmetic.png (a CelebA attribute name; synthetic "
         f"faces have {', '.join(FACE_ATTRIBUTES)})", run_setting=False),
    Flag("--latent-dim", 200, "size of z", int, low=1),
    Flag("--channels", [32, 64, 64], "channels of the encoder's stride-2 convolutions (the decoder mirrors them; "
         "the book's are 32,64,64,64)", channel_list, default_text="32,64,64"),
    Flag("--sigma", 0.1, "standard deviation of the Gaussian likelihood on pixels in [0, 1]", float, low=0,
         strict=True),
    Flag("--attribute-judge", None, "an attribute classifier run (examples/classifier.py --dataset faces --out DIR) "
         "that judges the attribute arithmetic at the end (default: none)", run_setting=False),
]  # fmt: skip


def to_unit_float(images, rng=None):
    """uint8 (N, 3, S, S) -> float32 in [0, 1]; the training transform (per batch: CelebA stays uint8 in memory)."""
    return images.astype(np.float32) / np.float32(255.0)


def load_faces(cfg):
    """(Data, the training faces' attributes (N, A), the test faces' (N, A), the attribute names).

    Data: the training faces (uint8, scaled per batch), the test faces (float32), and the test
    faces' --attribute as their class: ``test_labels`` (N,) is 1 with it, 0 without, and
    ``class_names`` is ["no <attribute>", "<attribute>"] (latent.png colours by it).
    """
    names = CELEBA_ATTRIBUTES if cfg["data_dir"] else FACE_ATTRIBUTES
    if cfg["attribute"] not in names:
        raise ValueError(f"--attribute {cfg['attribute']}: unknown; {'CelebA' if cfg['data_dir'] else 'synthetic'} "
                         f"faces have {', '.join(names)}")  # fmt: skip
    size = cfg["size"]
    if cfg["data_dir"]:
        train_x, train_attributes, _ = load_celeba(cfg["data_dir"], image_size=size, split="train")
        test_x, test_attributes, names = load_celeba(cfg["data_dir"], image_size=size, split="test")
        source = f"CelebA from {cfg['data_dir']}"
    else:
        train_x, train_attributes, _ = synthetic_faces(cfg["n_train"], size=size, rng=np.random.default_rng(TRAIN_SEED))
        test_x, test_attributes, names = synthetic_faces(cfg["test_size"], size=size,
                                                         rng=np.random.default_rng(TEST_SEED))  # fmt: skip
        source = f"synthetic faces (seeds {TRAIN_SEED} train, {TEST_SEED} test)"
    attribute = cfg["attribute"]
    test_attributes = test_attributes[: cfg["test_size"]]
    has = test_attributes[:, list(names).index(attribute)]  # (N,) 0/1
    data = Data(train_x, to_unit_float(test_x[: cfg["test_size"]]), has, [f"no {attribute}", attribute],
                to_unit_float, notes={"data": f"{source}, {size}x{size}"})  # fmt: skip
    return data, train_attributes, test_attributes, list(names)


def load_data(cfg):
    """The runner's data: :func:`load_faces`'s Data."""
    return load_faces(cfg)[0]


def build_model(cfg, rng):
    return tinyvae.build_vae("faces", rng=rng, latent_dim=cfg["latent_dim"], input_shape=(3, cfg["size"], cfg["size"]),
                             channels=cfg["channels"], sigma=cfg["sigma"])  # fmt: skip


# --------------------------------------------------------------------------------------
# Pictures (tinyvae/pictures.py draws the shared ones)
# --------------------------------------------------------------------------------------


def latent_histograms(plt, run, dims=8):
    """Histograms of z ~ q(z | x) over the test faces, for the first ``dims`` latent dimensions, with N(0, 1)."""
    if len(run.test_x) < 10:
        raise Skip(f"needs at least 10 test faces for a histogram, got {len(run.test_x)}")
    model = run.model
    codes = []
    for start in range(0, len(run.test_x), 500):
        mu, logvar = model.encode(run.test_x[start : start + 500])  # (B, L) each
        codes.append(mu + np.exp(0.5 * logvar) * run.rng.standard_normal(mu.shape, dtype=mu.dtype))
    z = np.concatenate(codes)  # (N, L)
    dims = min(dims, model.latent_dim)
    cols = min(dims, 4)
    rows = -(-dims // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2.4 * rows), constrained_layout=True, squeeze=False)
    grid = np.linspace(-4, 4, 200)
    for d, ax in enumerate(axes.flat):
        if d >= dims:
            ax.axis("off")
            continue
        ax.hist(z[:, d], bins=30, range=(-4, 4), density=True, alpha=0.6, label="test codes")
        ax.plot(grid, np.exp(-0.5 * grid**2) / np.sqrt(2 * np.pi), "k", lw=1, label="N(0, 1)")
        ax.set_title(f"z[{d}]: mean {z[:, d].mean():+.2f}, std {z[:, d].std():.2f}", fontsize=9)
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"z ~ q(z | x) of {len(z)} test faces, first {dims} of {model.latent_dim} dimensions", fontsize=9)
    return fig


def attribute_arithmetic(plt, run, faces=5):
    """Rows: a test face, then decoded mu(x) + factor * (attribute vector) for each factor in FACTORS."""
    name, has = run.class_names[1], run.test_labels  # (N,) 1 with the attribute, 0 without (see load_data)
    if has.all() or not has.any():
        raise Skip(f"the {len(has)} test faces are all {'with' if has.all() else 'without'} {name}; "
                   "the vector needs both")  # fmt: skip
    model = run.model
    codes = np.concatenate([model.encode(run.test_x[s : s + 500])[0] for s in range(0, len(run.test_x), 500)])
    vector = attribute_vector(codes, has)  # (L,)
    faces = min(faces, len(run.test_x))
    edited = add_attribute(codes[:faces], vector, FACTORS)  # (faces, F, L)
    decoded = model.mean(model.decode(edited.reshape(-1, model.latent_dim)))  # (faces * F, 3, H, W)
    rows = np.concatenate([run.test_x[:faces, None], decoded.reshape(faces, len(FACTORS), *decoded.shape[1:])], 1)
    title = (f"{name}: a test face, then mu(x) + factor x (mean code with {name} - without), factor "
             f"{FACTORS[0]}..{FACTORS[-1]} ({int(has.sum())} of {len(has)} test faces have it)")
    return pictures._mosaic_figure(plt, tile(rows.reshape(-1, *decoded.shape[1:]), len(FACTORS) + 1), title, run.cmap)


PICTURES = {
    "reconstructions.png": pictures.reconstructions,
    "samples.png": pictures.samples,
    "latent.png": pictures.latent,
    "latent_histograms.png": latent_histograms,
    "attribute_arithmetic.png": attribute_arithmetic,
    "morphing.png": pictures.interpolation,
    "curves.png": pictures.curves,
}


# --------------------------------------------------------------------------------------
# Judged attribute arithmetic (--attribute-judge)
# --------------------------------------------------------------------------------------


class JudgedArithmetic:
    """The runner's load_data and build_model, keeping what --attribute-judge needs after the run.

    load_data loads the judge and checks it before anything is trained; after ``runner.run``,
    :meth:`judge` rates the attribute arithmetic of the trained model and adds it to summary.json.
    """

    def __init__(self):
        self.judge = None

    def load_data(self, cfg):
        self.data, self.train_attributes, self.test_attributes, self.names = load_faces(cfg)
        self.attributes = list(dict.fromkeys([*JUDGED, cfg["attribute"]]))
        if cfg["attribute_judge"]:
            where = f"--attribute-judge {cfg['attribute_judge']}"
            try:
                self.judge = load_run(cfg["attribute_judge"])
            except FileNotFoundError as err:
                raise FileNotFoundError(f"{where}: {err}; train an attribute classifier there first "
                                        f"(examples/classifier.py --dataset faces --out DIR)") from err  # fmt: skip
            except ValueError as err:
                raise ValueError(f"{where}: {err}") from err
            try:
                check_attribute_judge(self.judge, (3, cfg["size"], cfg["size"]), np.float32, self.names)
            except ValueError as err:
                raise ValueError(f"{where}: {err}") from err
            if len(self.judge.attributes) != len(self.names):
                raise ValueError(f"{where}: it classifies {', '.join(self.judge.attributes)}, but these faces have "
                                 f"{', '.join(self.names)}; train it on the same faces")  # fmt: skip
        return self.data

    def build_model(self, cfg, rng):
        self.model = build_model(cfg, rng)
        return self.model

    def rates(self, cfg):
        """summary.json's "attribute_edits", and the lines that report them."""
        model, judge, data = self.model, self.judge, self.data
        n = min(VECTOR_FACES, len(data.train_x))
        codes = np.concatenate([model.encode(to_unit_float(data.train_x[s : min(s + 500, n)]))[0]
                                for s in range(0, n, 500)])  # (n, L)  # fmt: skip
        columns = [self.names.index(a) for a in judge.attributes]  # the judge's attributes in the data's columns
        reconstructions = np.concatenate([model.reconstruct(data.test_x[s : s + 500])
                                          for s in range(0, len(data.test_x), 500)])  # fmt: skip
        accuracy = {"test faces": attribute_accuracy(judge, data.test_x, self.test_attributes[:, columns]),
                    "reconstructions": attribute_accuracy(judge, reconstructions, self.test_attributes[:, columns])}
        edits, lines = {}, []
        for name in self.attributes:
            has = self.train_attributes[:n, self.names.index(name)]
            test_has = self.test_attributes[:, self.names.index(name)].astype(bool)
            if has.all() or not has.any() or test_has.all() or not test_has.any():
                edits[name] = {"skipped": "needs faces with and without it in both the training and test faces"}
                lines.append(f"  {name}: skipped ({edits[name]['skipped']})")
                continue
            vector = attribute_vector(codes[: len(has)], has)
            edits[name] = {"add": [attribute_edit_rates(model, judge, data.test_x[~test_has], name, vector, f)
                                   for f in JUDGED_FACTORS],
                           "remove": [attribute_edit_rates(model, judge, data.test_x[test_has], name, vector, -f)
                                      for f in JUDGED_FACTORS]}  # fmt: skip
            for way, turned in (("add", "on"), ("remove", "off")):
                rates = edits[name][way]
                lines.append(f"  {name} {way} ({rates[0]['n']} test faces {'without' if way == 'add' else 'with'} "
                             "it): " + "; ".join(f"x{r['factor']:g} {turned} {100 * r['switched']:.1f}%, others kept "
                                                 f"{100 * r['others_kept']:.1f}%" for r in rates))  # fmt: skip
        result = {"judge": str(cfg["attribute_judge"]), "factors": list(JUDGED_FACTORS),
                  "vector": f"mean mu(x) of the first {n} training faces with the attribute minus without",
                  "others_compared_with": "the judge's attributes of the reconstruction E[x | z = mu(x)]",
                  "judge_accuracy": accuracy, "attributes": edits}  # fmt: skip
        seen = ", ".join(f"{a} {100 * accuracy['test faces'][a]:.1f}/{100 * accuracy['reconstructions'][a]:.1f}%"
                         for a in judge.attributes)  # fmt: skip
        lines.insert(0, f"judge accuracy on test faces / their reconstructions: {seen}")
        lines.insert(0, f"judged attribute arithmetic ({cfg['attribute_judge']}; vector from {n} training faces; "
                        "others compared with the reconstruction):")  # fmt: skip
        return result, lines

    def judge_run(self, summary):
        """Add the judged attribute arithmetic to the run's summary (and summary.json); print it."""
        cfg = summary["config"]
        if self.judge is None:
            return summary
        out = Path(summary["checkpoint"]).parent
        self.model.eval()
        result, lines = self.rates(cfg)
        summary["attribute_edits"] = result
        with OutputLock(out):
            write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
        print("\n".join(lines))
        return summary


def main(argv=None):
    """Train, evaluate, draw, judge (--attribute-judge); returns the summary dict (also written to summary.json)."""
    judged = JudgedArithmetic()
    summary = runner.run(argv, description=__doc__, flags=FLAGS, defaults=DEFAULTS, load_data=judged.load_data,
                         build_model=judged.build_model, pictures=PICTURES)  # fmt: skip
    return judged.judge_run(summary)


if __name__ == "__main__":
    main()

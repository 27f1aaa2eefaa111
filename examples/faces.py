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
    curves.png                each training term per step, and the test ELBO per epoch (nats/image)
    samples-epochNNN.png, samples.gif, metrics.jsonl, summary.json, checkpoint.json + .npz
                              as in examples/mnist.py (the run itself is tinyvae/runner.py)

The attribute vector is the mean code mu(x) of the test faces with the attribute minus that of
those without (tinyvae/latent_edit.py), computed on the test set drawn into --out.

Time of the default run (64 x 64, the book's channels 32,64,64,64, latent 200, sigma 0.1, 8000
synthetic training faces, 500 test faces, 6 epochs, batch 64), measured with
`time python examples/faces.py --out /tmp/faces-timing` (numba backend, one BLAS thread) on this
2-core machine, which other agents' jobs shared: 3 min 9 s in all at load average ~1 (2 min 55 s
training, ~290 images/s, ~30 s per epoch), and 4 min 22 s at load average 3-4 (4 min 3 s training,
150-300 images/s); the rest is drawing the faces, the test ELBO each epoch, the IWAE bound, the
Numba compilation and the pictures. At 32 x 32 the same network trained at about 600 images/s.
The numpy backend was not timed on this network: without Numba, use --size 32 or fewer --epochs.
After 6 epochs the reconstructions keep pose, hair, hat, skin and background colours but blur the
small features (mouths, glasses), and the samples are face-like blobs; more epochs
(--resume --epochs N) sharpen both.
"""

import argparse
import os

# One BLAS thread (unless the variable is already set): on 2 cores it is as fast as two for
# these small matrices, and two threads slow down several-fold when another process is busy.
# It must be set before numpy is imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import tinyvae  # noqa: E402
from tinyvae import pictures, runner  # noqa: E402
from tinyvae.datasets import CELEBA_ATTRIBUTES, FACE_ATTRIBUTES, load_celeba, synthetic_faces  # noqa: E402
from tinyvae.latent_edit import add_attribute, attribute_vector, morph  # noqa: E402
from tinyvae.pictures import Skip, tile  # noqa: E402
from tinyvae.runner import Data, Flag  # noqa: E402

DEFAULTS = {"out": "runs/faces", "epochs": 6, "batch_size": 64, "lr": 1e-3, "iwae_k": 5, "test_size": 500}
TRAIN_SEED, TEST_SEED = 0, 1  # the synthetic training and test faces (independent of --seed)
FACTORS = np.arange(-3, 4)  # attribute arithmetic: z + factor * vector


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
    Flag("--channels", [32, 64, 64, 64], "channels of the encoder's stride-2 convolutions (the decoder mirrors them)",
         channel_list, default_text="32,64,64,64"),
    Flag("--sigma", 0.1, "standard deviation of the Gaussian likelihood on pixels in [0, 1]", float, low=0,
         strict=True),
]  # fmt: skip


def to_unit_float(images, rng=None):
    """uint8 (N, 3, S, S) -> float32 in [0, 1]; the training transform (per batch: CelebA stays uint8 in memory)."""
    return images.astype(np.float32) / np.float32(255.0)


def load_data(cfg):
    """Training faces (uint8, scaled per batch), test faces (float32), and the test faces' --attribute.

    The attribute is the test faces' class: ``test_labels`` (N,) is 1 with it, 0 without, and
    ``class_names`` is ["no <attribute>", "<attribute>"] (latent.png colours by it).
    """
    names = CELEBA_ATTRIBUTES if cfg["data_dir"] else FACE_ATTRIBUTES
    if cfg["attribute"] not in names:
        raise ValueError(f"--attribute {cfg['attribute']}: unknown; {'CelebA' if cfg['data_dir'] else 'synthetic'} "
                         f"faces have {', '.join(names)}")  # fmt: skip
    size = cfg["size"]
    if cfg["data_dir"]:
        train_x, _, _ = load_celeba(cfg["data_dir"], image_size=size, split="train")
        test_x, test_attributes, names = load_celeba(cfg["data_dir"], image_size=size, split="test")
        source = f"CelebA from {cfg['data_dir']}"
    else:
        train_x, _, _ = synthetic_faces(cfg["n_train"], size=size, rng=np.random.default_rng(TRAIN_SEED))
        test_x, test_attributes, names = synthetic_faces(cfg["test_size"], size=size,
                                                         rng=np.random.default_rng(TEST_SEED))  # fmt: skip
        source = f"synthetic faces (seeds {TRAIN_SEED} train, {TEST_SEED} test)"
    attribute = cfg["attribute"]
    has = test_attributes[: cfg["test_size"], list(names).index(attribute)]  # (N,) 0/1
    return Data(train_x, to_unit_float(test_x[: cfg["test_size"]]), has, [f"no {attribute}", attribute],
                to_unit_float, notes={"data": f"{source}, {size}x{size}"})  # fmt: skip


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


def morphing(plt, run, pairs=4, steps=9):
    """Rows: test face a, decoded codes on the straight line from mu(a) to mu(b), test face b."""
    if len(run.test_x) < 2:
        raise Skip(f"needs at least 2 test faces, got {len(run.test_x)}")
    model, x = run.model, run.test_x
    pairs = min(pairs, len(x) // 2)
    mu = model.encode(x[: 2 * pairs])[0]  # (2 * pairs, L): a = even rows, b = odd rows
    rows = []
    for p in range(pairs):
        path = morph(mu[2 * p], mu[2 * p + 1], steps)  # (steps, L)
        rows += [x[2 * p : 2 * p + 1], model.mean(model.decode(path)), x[2 * p + 1 : 2 * p + 2]]
    return pictures._mosaic_figure(plt, tile(np.concatenate(rows), steps + 2),
                                   "test face a, decoded (1 - t) mu(a) + t mu(b) for t = 0..1, test face b", run.cmap)


PICTURES = {
    "reconstructions.png": pictures.reconstructions,
    "samples.png": pictures.samples,
    "latent.png": pictures.latent,
    "latent_histograms.png": latent_histograms,
    "attribute_arithmetic.png": attribute_arithmetic,
    "morphing.png": morphing,
    "curves.png": pictures.curves,
}


def main(argv=None):
    """Train, evaluate, draw; returns the summary dict (also written to summary.json)."""
    return runner.run(argv, description=__doc__, flags=FLAGS, defaults=DEFAULTS, load_data=load_data,
                      build_model=build_model, pictures=PICTURES)  # fmt: skip


if __name__ == "__main__":
    main()

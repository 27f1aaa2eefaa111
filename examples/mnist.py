"""Train a VAE on binarized MNIST, measure it, and draw what it learned.

    python examples/mnist.py                        # the default run: under 10 minutes on 2 cores
    python examples/mnist.py --arch mlp --epochs 50 --out runs/mlp20
    python examples/mnist.py --arch mlp --objective iwae --k 5 --out runs/iwae5   # Burda et al.'s IWAE
    python examples/mnist.py --arch mlp --warmup-epochs 10 --out runs/warmup    # KL warm-up (beta 0 -> 1)
    python examples/mnist.py --conditional --judge runs/classifier --out runs/cvae   # a CVAE, judged
    python examples/mnist.py --resume               # continue the run saved in --out
    python examples/mnist.py --help

MNIST ships with tinyvae, so no internet is needed (Fashion-MNIST is downloaded once).
Written into --out (default runs/mnist):

    reconstructions.png  test images (odd rows) and their reconstructions (even rows)
    samples.png          decoded draws z ~ N(0, I) from the prior
    latent.png           posterior means of the test set, coloured by class (PCA if latent dim > 2)
    manifold.png         the decoder over a grid of Normal quantiles (latent dim 2 only)
    interpolation.png    straight lines in latent space between pairs of test images, decoded
    curves.png           each training term per step, and the test ELBO per epoch (nats/image)
    kl_per_dim.png       the test set's KL per latent dimension, sorted; active units marked
    classes.png          --conditional: samples, one row per class, the same z in each column
    analogies.png        --conditional: test digits, each decoded as every class (its style, their class)
    samples-epochNNN.png, samples.gif   decoded samples of one fixed z after every epoch, animated
    metrics.jsonl        one line per optimizer step: epoch, step, each term, images/s
    summary.json         config, per-epoch history, test ELBO, IWAE bound, active units, KL per dimension,
                         timings, files
    checkpoint.json + checkpoint-epochNNNN.npz   the latest epoch (see tinyvae/checkpoint.py)

--objective iwae trains on the k-sample importance-weighted bound (--k samples per image);
its training terms are the loss (the negative bound), iwae_bound, reconstruction and the
Monte-Carlo kl. Every epoch reports the active units: latent dimensions whose posterior mean
varies across the test set with variance > 0.01 (Burda et al.); the others collapsed to the prior.

--conditional trains a conditional VAE (Sohn et al. 2015): the label enters the encoder and
the decoder, so the test ELBO and IWAE bound are those of log p(x | y), and z holds the style.
--judge DIR names a classifier run (python examples/classifier.py --out DIR); after training,
--judge-samples samples per class, the decoder's pixel probabilities E[x | z, y] as they are
(the classifier was trained on grayscale digits in [0, 1], not on binary ones), are classified:
the label accuracy, overall and per class, goes in the last line and summary.json.

Numbers are in nats per image; the ELBO and the IWAE bound are lower bounds on log p(x)
of the *binarized* test images, so they depend on how those were binarized (reported too).
The run itself (flags, resume, progress, checks, outputs) is tinyvae/runner.py.
"""

import tinyvae  # first: its OpenBLAS thread setting must precede NumPy's import (tinyvae/__init__.py)

import numpy as np

from tinyvae import pictures, runner
from tinyvae.datasets import FASHION_MNIST_CLASSES, binarize_dynamic, binarize_static, load_mnist
from tinyvae.runner import Data, Flag

# The default run: `python examples/mnist.py` trained in 1 min 52 s - 2 min 0 s on 2 idle cores with the
# Numba backend (about 1,700 training images/s; README, Performance); NumPy (about 930 images/s) takes twice that.
DEFAULTS = {"out": "runs/mnist", "epochs": 3, "batch_size": 64, "lr": 1e-3, "iwae_k": 5}
LATENT_DIM = {"conv": 2, "mlp": 20}  # per architecture, unless --latent-dim is given
TEST_SEED = 0  # seeds the one Bernoulli sample of the test set (dynamic binarization)

FLAGS = [
    Flag("--arch", "conv", "conv: the TensorFlow CVAE tutorial's network; mlp: Kingma & Welling's",
         choices=("conv", "mlp")),
    Flag("--latent-dim", lambda cfg: LATENT_DIM[cfg["arch"]], "size of z; 2 also draws manifold.png", int, low=1,
         default_text="2 for conv, 20 for mlp"),
    Flag("--hidden", 500, "hidden units of the mlp", int, low=1),
    Flag("--depth", 1, "hidden layers of the mlp's encoder and of its decoder", int, low=1),
    Flag("--binarize", "dynamic", "dynamic: a fresh Bernoulli sample of the training images every epoch, the test "
         "set sampled once with a fixed seed; static: threshold 0.5", choices=("dynamic", "static")),
    Flag("--dataset", "mnist", "mnist (shipped) or fashion-mnist (downloaded once)",
         choices=("mnist", "fashion-mnist")),
    Flag("--data-dir", None, "read the four MNIST-format IDX files from this directory instead of --dataset",
         run_setting=False),
    Flag("--conditional", False, "train a conditional VAE: the class label (one-hot) enters the encoder and the "
         "decoder; draws classes.png and analogies.png", bool),
    *runner.JUDGE_FLAGS,
]  # fmt: skip
PICTURES = {**pictures.PICTURES, **pictures.CONDITIONAL_PICTURES}  # the conditional ones skip unconditional models


def load_data(cfg):
    """uint8 (N, 28, 28) training images, binarized per batch (dynamic) or once (static); the test set once."""
    data = load_mnist(cfg["data_dir"], cfg["dataset"])
    test_images = data.test_images[: cfg["test_size"]]
    if cfg["binarize"] == "static":
        train_x, transform = binarize_static(data.train_images), None
        test_x, how = binarize_static(test_images), "static (threshold 0.5, train and test)"
    else:
        train_x, transform = data.train_images, binarize_dynamic  # re-sampled batch by batch, every epoch
        test_x = binarize_dynamic(test_images, np.random.default_rng(TEST_SEED))
        how = f"dynamic (train: a fresh Bernoulli sample per epoch; test: one Bernoulli sample, seed {TEST_SEED})"
    fashion = cfg["dataset"] == "fashion-mnist" and not cfg["data_dir"]
    return Data(train_x, test_x, data.test_labels, FASHION_MNIST_CLASSES if fashion else None, transform,
                notes={"binarization": how}, cmap="gray_r", train_labels=data.train_labels)  # fmt: skip


def build_model(cfg, rng):
    mlp = {"hidden": cfg["hidden"], "depth": cfg["depth"]} if cfg["arch"] == "mlp" else {}
    sizes = {"latent_dim": cfg["latent_dim"], **mlp}
    return tinyvae.build_vae(cfg["arch"], rng=rng, **sizes, **({"num_classes": 10} if cfg["conditional"] else {}))


def main(argv=None):
    """Train, evaluate, draw; returns the summary dict (also written to summary.json)."""
    return runner.run(argv, description=__doc__, flags=FLAGS, defaults=DEFAULTS, load_data=load_data,
                      build_model=build_model, pictures=PICTURES)  # fmt: skip


if __name__ == "__main__":
    main()

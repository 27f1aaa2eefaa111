"""Train a small conv classifier on MNIST, or an attribute classifier on faces, every gradient by hand; save it.

    python examples/classifier.py                      # 4 epochs: 99.05% test accuracy, ~2 minutes on 2 cores
    python examples/classifier.py --epochs 1 --out runs/classifier-quick
    python examples/classifier.py --dataset faces      # the faces judge: 10 epochs, 99.6%, ~4.5 minutes
    python examples/classifier.py --dataset faces --data-dir ~/data --size 64   # on a local CelebA copy
    python examples/classifier.py --help

The network (tinyvae.conv_classifier): Conv 1->32 (5x5, stride 2) ReLU, Conv 32->64 (5x5,
stride 2) ReLU, Flatten, Dense 3136->128 ReLU, Dense 128->10, trained with Adam on the mean
softmax cross-entropy (tinyvae.softmax_cross_entropy), pixels scaled to [0, 1], the learning
rate halved after every epoch (--lr-decay; 0.8 for faces).

--dataset faces trains the same network with one logit per attribute (tinyvae.attribute_classifier,
a multi-label AttributeClassifier: the summed sigmoid cross-entropy of the attributes) on RGB faces,
the judge of examples/faces.py --attribute-judge: the synthetic faces of examples/faces.py (the same
seeds: 0 for the --n-train training faces, 1 for the --n-test test faces; attributes Blond_Hair,
Eyeglasses, Male, Mustache, Smiling, Wearing_Hat) or, with --data-dir, CelebA's train and test
splits (its 40 attributes). Test accuracy is reported per attribute. Written into --out (default
runs/classifier, or runs/faces-judge for faces):

    checkpoint.json + checkpoint-epochNNNN.npz   the latest epoch (tinyvae/checkpoint.py)
    summary.json         config, per-epoch history (train loss and accuracy, test accuracy), timings

Load the trained classifier back with

    model = tinyvae.checkpoint.load_run("runs/classifier")   # in eval mode
    model.predict(images)                                    # images (N, 1, 28, 28) float32 in [0, 1]

    judge = tinyvae.checkpoint.load_run("runs/faces-judge")  # an AttributeClassifier, in eval mode
    judge.attributes                                         # the names of the columns below
    judge.predict(faces)         # (N, A) bool; faces (N, 3, size, size) float32 in [0, 1]
    judge.probabilities(faces)   # (N, A) p(attribute | face)
"""

import tinyvae  # first: its OpenBLAS thread setting must precede NumPy's import (tinyvae/__init__.py)

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from tinyvae.backend import CHOICES, get_backend, set_backend
from tinyvae.checkpoint import save_checkpoint
from tinyvae.datasets import load_celeba, load_mnist, synthetic_faces
from tinyvae.evaluate import accuracy, attribute_accuracy
from tinyvae.runner import Flag, OutputLock, RunError, lr_of_epoch, write_text

FACES_TRAIN_SEED, FACES_TEST_SEED = 0, 1  # as examples/faces.py draws its synthetic faces
OUT = {"mnist": "runs/classifier", "faces": "runs/faces-judge"}
# Per --dataset, measured (README): MNIST is learnt in 4 epochs; the faces judge needs more to see small
# features (Mustache: 91.5% after 4 epochs on 8,000 faces at decay 0.5, 98.3% after 10 on 20,000 at 0.8).
DATASET_DEFAULTS = {"mnist": {"epochs": 4, "lr_decay": 0.5}, "faces": {"epochs": 10, "lr_decay": 0.8}}

FLAGS = [
    Flag("--dataset", "mnist", "mnist (digits, 10 classes) or faces (attributes: synthetic, or CelebA with "
         "--data-dir)", choices=("mnist", "faces")),
    Flag("--epochs", None, "passes over the training set (default: 4 for mnist, 10 for faces)", int, low=0),
    Flag("--batch-size", 64, "images per optimizer step", int, low=1),
    Flag("--lr", 1e-3, "Adam learning rate of the first epoch", float, low=0, strict=True),
    Flag("--lr-decay", None, "the learning rate is multiplied by this after every epoch (1: constant; default: 0.5 "
         "for mnist, 0.8 for faces)", float, low=0, strict=True),
    Flag("--seed", 0, "seeds initialization and shuffling", int, low=0),
    Flag("--backend", None, "kernel backend (default: TINYVAE_BACKEND if set, else numba if importable, else numpy)",
         choices=CHOICES),
    Flag("--out", None, "directory for the checkpoint and summary.json (default: runs/classifier, or "
         "runs/faces-judge for faces)"),
    Flag("--data-dir", None, "mnist: read the four MNIST-format IDX files from this directory (default: the "
         "shipped MNIST); faces: read CelebA from it (default: synthetic faces)"),
    Flag("--size", 64, "faces: image height and width (as examples/faces.py --size)", int, choices=(32, 64)),
    Flag("--n-train", 20000, "synthetic faces: training faces to draw", int, low=1),
    Flag("--n-test", 1000, "synthetic faces: test faces to draw", int, low=1),
    Flag("--train-size", None, "use only the first N training images (default: all)", int, low=1),
    Flag("--test-size", None, "use only the first N test images (default: all)", int, low=1),
]  # fmt: skip


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="\n\n".join(__doc__.split("\n\n")[1:]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    for flag in FLAGS:
        shown = "" if flag.default is None else f" (default: {flag.default})"
        parser.add_argument(flag.name, type=flag.parse, choices=flag.choices, default=flag.default,
                            help=flag.help + shown)  # fmt: skip
    parser.add_argument("--overwrite", action="store_true", help="replace the run in --out")
    cfg = vars(parser.parse_args(argv))
    for name, value in DATASET_DEFAULTS[cfg["dataset"]].items():
        if cfg[name] is None:
            cfg[name] = value
    return cfg


def to_input(images):
    """uint8 (N, 28, 28) (MNIST) or (N, 3, S, S) (faces) -> float32 (N, C, H, W) in [0, 1]."""
    images = images[:, None] if images.ndim == 3 else images
    return (images / np.float32(255.0)).astype(np.float32)


def load_data(cfg):
    """(train images uint8, train labels, test images uint8, test labels, attribute names or None) of --dataset.

    Labels are classes (N,) for MNIST, attributes (N, A) of 0/1 for faces.
    """
    if cfg["dataset"] == "mnist":
        data = load_mnist(cfg["data_dir"])
        return data.train_images, data.train_labels, data.test_images, data.test_labels, None
    if cfg["data_dir"]:
        train_x, train_y, names = load_celeba(cfg["data_dir"], image_size=cfg["size"], split="train")
        test_x, test_y, _ = load_celeba(cfg["data_dir"], image_size=cfg["size"], split="test")
    else:
        train_x, train_y, names = synthetic_faces(cfg["n_train"], cfg["size"], np.random.default_rng(FACES_TRAIN_SEED))
        test_x, test_y, _ = synthetic_faces(cfg["n_test"], cfg["size"], np.random.default_rng(FACES_TEST_SEED))
    return train_x, train_y, test_x, test_y, names


def build_model(names, input_shape, rng):
    """The MNIST classifier, or (names given) the attribute classifier of those attributes."""
    if names is None:
        return tinyvae.conv_classifier(10, rng=rng)
    return tinyvae.attribute_classifier(names, input_shape=input_shape, rng=rng)


def test_accuracy(model, x, labels):
    """(the accuracy: classes right, or the mean over attributes of each one's accuracy; per attribute or None)."""
    if not model.multilabel:
        return accuracy(model, x, labels), None
    per_attribute = attribute_accuracy(model, x, labels)
    return float(np.mean(list(per_attribute.values()))), per_attribute


def main(argv=None):
    """Train, evaluate, save; returns the summary dict (also written to summary.json)."""
    cfg = parse_args(argv)
    try:
        return _run(cfg)
    except RunError as err:
        sys.exit(str(err))


def _run(cfg):
    out = Path(cfg.pop("out") or OUT[cfg["dataset"]])
    overwrite = cfg.pop("overwrite")
    try:
        set_backend(cfg["backend"] or os.environ.get("TINYVAE_BACKEND") or "auto")
    except (ImportError, ValueError) as err:
        raise RunError(f"backend: {err}") from err
    cfg["backend"] = get_backend()
    try:
        train_images, train_labels, test_images, test_labels, names = load_data(cfg)
    except (OSError, ValueError) as err:
        raise RunError(f"data: {err}") from err
    train_images, train_labels = train_images[: cfg["train_size"]], train_labels[: cfg["train_size"]]
    test_x, test_labels = to_input(test_images[: cfg["test_size"]]), test_labels[: cfg["test_size"]]
    out.mkdir(parents=True, exist_ok=True)
    with OutputLock(out):
        if (out / "checkpoint.json").exists() and not overwrite:
            raise RunError(f"{out} already holds a checkpoint; --overwrite replaces it, or choose another --out")
        init_rng, train_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(cfg["seed"]).spawn(2))
        model = build_model(names, test_x.shape[1:], init_rng)
        optimizer = tinyvae.Adam(model.params, lr=cfg["lr"])
        print(f"backend {cfg['backend']}; {len(train_images)} training and {len(test_x)} test images; "
              f"{sum(p.size for p in model.params.values())} parameters", flush=True)  # fmt: skip
        history = []
        save_checkpoint(out, model, optimizer, epoch=0, rng=train_rng, config=cfg, history=history)
        for epoch in range(1, cfg["epochs"] + 1):
            optimizer.lr = lr_of_epoch(cfg, epoch)
            try:
                (stats,) = tinyvae.train(model, optimizer, train_images, labels=train_labels, epochs=epoch,
                                         start_epoch=epoch - 1, batch_size=cfg["batch_size"], rng=train_rng,
                                         beta=None, transform=lambda batch, rng: to_input(batch))  # fmt: skip
            except tinyvae.NonFiniteLossError as err:
                raise RunError(f"{err}\nThe last good checkpoint (epoch {epoch - 1}) is intact: {out}") from err
            started = time.perf_counter()
            stats["test_accuracy"], per_attribute = test_accuracy(model, test_x, test_labels)
            if per_attribute:
                stats["test_accuracy_per_attribute"] = per_attribute
            stats["eval_seconds"] = time.perf_counter() - started
            history.append(stats)
            save_checkpoint(out, model, optimizer, epoch=epoch, rng=train_rng, config=cfg, history=history)
            print(f"epoch {epoch}/{cfg['epochs']}  train loss {stats['loss']:.4f}  train accuracy "
                  f"{100 * stats['accuracy']:.2f}%  test accuracy {100 * stats['test_accuracy']:.2f}%  "
                  f"{stats['images_per_s']:.0f} img/s  {stats['seconds']:.1f}s", flush=True)  # fmt: skip
        if history:
            final, per_attribute = history[-1]["test_accuracy"], history[-1].get("test_accuracy_per_attribute")
        else:
            final, per_attribute = test_accuracy(model, test_x, test_labels)
        summary = {"config": cfg, "n_train": len(train_images), "n_test": len(test_x), "history": history,
                   "test_accuracy": final, **({"test_accuracy_per_attribute": per_attribute} if per_attribute else {}),
                   "train_seconds": sum(h["seconds"] for h in history),
                   "checkpoint": str(out / "checkpoint.json")}  # fmt: skip
        write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    if per_attribute:
        print("test accuracy per attribute: " + ", ".join(f"{a} {100 * v:.2f}%" for a, v in per_attribute.items()))
    mean = " (the mean over attributes)" if per_attribute else ""
    print(f"test accuracy {100 * final:.2f}%{mean} on {len(test_x)} images after {len(history)} epochs "
          f"({summary['train_seconds']:.0f} s of training); saved in {out}")  # fmt: skip
    return summary


if __name__ == "__main__":
    main()

"""Load MNIST or Fashion-MNIST as uint8 arrays."""

from pathlib import Path
from typing import NamedTuple

import numpy as np

from .download import fetch_fashion_mnist
from .idx import (
    EXPECTED_FILES,
    SPLIT_FILES,
    DatasetError,
    find_split_files,
    load_split,
    verify_content,
)

# The copy of MNIST (Y. LeCun, C. Cortes, C. J. C. Burges; CC BY-SA 3.0) shipped in the package.
MNIST_DIR = Path(__file__).resolve().parent / "mnist"

# SHA-256 of the *uncompressed* canonical MNIST IDX files, so a raw or a gzipped copy verifies.
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

DATASETS = ("mnist", "fashion-mnist")
_ALIASES = {"mnist": "mnist", "fashion-mnist": "fashion-mnist", "fashion": "fashion-mnist"}


class MNISTData(NamedTuple):
    """The two splits of an MNIST-format dataset; unpacks as a 4-tuple."""

    train_images: np.ndarray  # (N_train, 28, 28) uint8
    train_labels: np.ndarray  # (N_train,) uint8
    test_images: np.ndarray  # (N_test, 28, 28) uint8
    test_labels: np.ndarray  # (N_test,) uint8


def verify_mnist(directory=None):
    """Check the four MNIST files in ``directory`` (default: the shipped copy) by SHA-256.

    Compares the uncompressed content with :data:`MNIST_SHA256`; raises ``ChecksumError``
    (a ``ValueError``) naming the file on a mismatch. Each file is checked once per process.
    """
    directory = MNIST_DIR if directory is None else Path(directory)
    for split in SPLIT_FILES:
        for name, path in zip(SPLIT_FILES[split], find_split_files(directory, split)):
            verify_content(path, MNIST_SHA256[name])


def load_mnist(data_dir=None, dataset="mnist", cache_dir=None, base_url=None, progress=True):
    """Load an MNIST-format dataset as uint8 arrays; returns :class:`MNISTData`.

    Images are (N, 28, 28) uint8 in 0..255, labels (N,) uint8 in 0..9 (60,000 train and 10,000
    test examples for both datasets). The source is, by priority:

    * ``data_dir``: the four standard IDX files in that directory (``train-images-idx3-ubyte``
      and so on, each ``.gz`` or raw). Their structure is checked, not their checksums, so any
      dataset in this format works; ``dataset`` is then ignored.
    * ``dataset="mnist"`` (default): the copy shipped with tinyvae, verified against
      :data:`MNIST_SHA256` (hashed once per process).
    * ``dataset="fashion-mnist"`` (or ``"fashion"``): downloaded on first use into
      ``<cache_dir>/fashion-mnist`` and verified; see :func:`fetch_fashion_mnist` for
      ``cache_dir``, ``base_url`` and ``progress``.

    Raises ``DatasetError`` for files that do not hold the expected data, ``FileNotFoundError``
    for missing directories or files, ``DownloadError`` when a download fails (all ``OSError``
    but the first; see :mod:`tinyvae.datasets`).
    """
    if data_dir is not None:
        directory, sha256 = Path(data_dir).expanduser(), None
        if not directory.exists():
            raise FileNotFoundError(
                f"{directory}: data directory not found (expected a directory holding "
                f"{EXPECTED_FILES})"
            )
        if not directory.is_dir():
            raise NotADirectoryError(
                f"{directory}: not a directory (expected a directory holding {EXPECTED_FILES})"
            )
    else:
        name = _ALIASES.get(str(dataset).lower().replace("_", "-"))
        if name is None:
            raise DatasetError(
                f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}"
            )
        if name == "mnist":
            directory, sha256 = MNIST_DIR, MNIST_SHA256
        else:
            directory, sha256 = fetch_fashion_mnist(cache_dir, base_url, progress), None
    train_images, train_labels = load_split(directory, "train", sha256=sha256)
    test_images, test_labels = load_split(directory, "test", sha256=sha256)
    return MNISTData(train_images, train_labels, test_images, test_labels)


def load_fashion_mnist(cache_dir=None, base_url=None, progress=True):
    """Load Fashion-MNIST, downloading it on first use; see :func:`load_mnist`."""
    return load_mnist(dataset="fashion-mnist", cache_dir=cache_dir, base_url=base_url,
                      progress=progress)

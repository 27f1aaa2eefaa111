"""Datasets: MNIST (shipped), Fashion-MNIST (downloaded on first use), IDX files, binarization.

    from tinyvae.datasets import load_mnist, binarize_dynamic
    train_x, train_y, test_x, test_y = load_mnist()  # (60000, 28, 28) uint8, (60000,) uint8, ...
    batch = binarize_dynamic(train_x[:128], rng)  # (128, 1, 28, 28) float32 of 0.0 / 1.0

Errors for bad data, each with a one-line message naming the file, directory or URL:

* ``DatasetError`` (a ``ValueError``): a file or directory does not hold the expected data
  (IDX format, counts, image size, labels, unknown dataset name); ``ChecksumError`` is one.
* ``DownloadError`` (an ``OSError``): a download failed or could not be saved.
* other ``OSError``: ``FileNotFoundError`` (no such data directory or file),
  ``NotADirectoryError``, ``PermissionError``, as the file system reports them.

So ``except (DatasetError, OSError)`` catches all of them. Invalid arguments from code (a bad
``kind`` or ``split``, non-uint8 arrays) raise ``ValueError`` or ``TypeError``.

MNIST: Y. LeCun, C. Cortes, C. J. C. Burges, CC BY-SA 3.0. Fashion-MNIST: Zalando Research, MIT.

RGB faces, as (images (N, 3, S, S) uint8, attributes (N, A) uint8 in {0, 1}, attribute names):
``synthetic_faces(n, size, rng)`` draws procedural faces (no download, :mod:`.faces`);
``load_celeba(root, image_size, split)`` reads a local CelebA copy (torchvision's or Kaggle's
layout, :mod:`.celeba`); ``load_image_folder(path, image_size)`` reads any folder of PNG/JPEG
(images and file names). The last two decode once, with Pillow, into a cached ``.npy``.
"""

from .binarize import binarize_dynamic, binarize_static, to_nchw_float
from .download import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_SHA256,
    FASHION_MNIST_SIZES,
    FASHION_MNIST_URL,
    DownloadError,
    default_cache_dir,
    download_file,
    fetch_fashion_mnist,
)
from .idx import (
    ChecksumError,
    DatasetError,
    find_split_files,
    load_split,
    parse_idx,
    read_idx,
    verify_content,
    verify_file,
    write_idx,
)
from .loaders import (
    DATASETS,
    MNIST_DIR,
    MNIST_SHA256,
    MNISTData,
    load_fashion_mnist,
    load_mnist,
    verify_mnist,
)

__all__ = [
    "DATASETS",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_SHA256",
    "FASHION_MNIST_SIZES",
    "FASHION_MNIST_URL",
    "MNIST_DIR",
    "MNIST_SHA256",
    "ChecksumError",
    "DatasetError",
    "DownloadError",
    "MNISTData",
    "binarize_dynamic",
    "binarize_static",
    "default_cache_dir",
    "download_file",
    "fetch_fashion_mnist",
    "find_split_files",
    "load_fashion_mnist",
    "load_mnist",
    "load_split",
    "parse_idx",
    "read_idx",
    "to_nchw_float",
    "verify_content",
    "verify_file",
    "verify_mnist",
    "write_idx",
]

# RGB faces: procedural ones (no download) and local copies of CelebA / image folders
from .celeba import CELEBA_ATTRIBUTES, CELEBA_SPLITS, find_celeba, load_celeba  # noqa: E402
from .faces import FACE_ATTRIBUTES, FACE_PROBABILITIES, synthetic_faces  # noqa: E402
from .images import load_image_folder  # noqa: E402

__all__ += [
    "CELEBA_ATTRIBUTES", "CELEBA_SPLITS", "FACE_ATTRIBUTES", "FACE_PROBABILITIES", "find_celeba", "load_celeba",
    "load_image_folder", "synthetic_faces",
]  # fmt: skip
from .swiss_roll import swiss_roll  # noqa: E402  (the CSVAE's toy data)

__all__ += ["swiss_roll"]

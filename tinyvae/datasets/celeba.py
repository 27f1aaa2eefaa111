"""CelebA from a local copy: aligned face images and their 40 binary attributes.

    images, attributes, names = load_celeba("~/data", image_size=64, split="train")
    # images (N, 3, 64, 64) uint8 (memory-mapped), attributes (N, 40) uint8 in {0, 1}, 40 names

tinyvae never downloads CelebA (the official mirrors fail often); point ``root`` at a copy
in either layout (``root`` may also be the ``celeba`` folder itself):

* torchvision's: ``root/celeba/img_align_celeba/000001.jpg ...``,
  ``root/celeba/list_attr_celeba.txt`` (a count line, a line of the 40 names, then one row per
  image: ``000001.jpg -1  1 ...``) and ``root/celeba/list_eval_partition.txt``
  (``000001.jpg 0``: 0 train, 1 valid, 2 test);
* Kaggle's: ``list_attr_celeba.csv`` (``image_id,5_o_Clock_Shadow,...`` then
  ``000001.jpg,-1,1,...``) and ``list_eval_partition.csv`` (``image_id,partition``), with the
  images in ``img_align_celeba/`` or nested one level deeper, ``img_align_celeba/img_align_celeba/``.

Only the images and the attribute file are required. Without a partition file the rows, in
the attribute file's order, are split 80% / 10% / 10% into train / valid / test (the
official partition is 162,770 / 19,867 / 19,962 images in file order: 80.3% / 9.8% / 9.9%).

Each image is center-cropped to 148 x 148 (the face; the images are 178 x 218) and resized to
``image_size``, decoded once into a uint8 ``.npy`` cache (see :mod:`tinyvae.datasets.images`).
Anything wrong with the files is a :class:`DatasetError` naming the file (and the line).
"""

import csv
from pathlib import Path

import numpy as np

from ..module import check_int
from .download import default_cache_dir
from .idx import DatasetError
from .images import cached_images

CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips",
    "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin",
    "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open",
    "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline",
    "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)  # fmt: skip
CELEBA_SPLITS = {"train": 0, "valid": 1, "test": 2}
CELEBA_CROP = 148  # the centered square kept of each 178 x 218 aligned image
_FALLBACK_FRACTIONS = (0.8, 0.1, 0.1)  # train / valid / test without a partition file
_SIGNS = frozenset(("1", "-1"))  # the values an attribute file may hold


def find_celeba(root):
    """The files of a CelebA copy under ``root``: (images folder, attribute file, partition file or None)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{root}: no such CelebA folder")
    for folder in (root / "celeba", root):
        for suffix in (".txt", ".csv"):
            attributes = folder / f"list_attr_celeba{suffix}"
            if attributes.is_file():
                break
        else:
            continue
        images = folder / "img_align_celeba"
        if (images / "img_align_celeba").is_dir():  # Kaggle's copy nests the folder
            images = images / "img_align_celeba"
        if not images.is_dir():
            raise DatasetError(f"{images}: missing CelebA image folder (next to {attributes.name})")
        partitions = [folder / f"list_eval_partition{s}" for s in (".txt", ".csv")]
        return images, attributes, next((p for p in partitions if p.is_file()), None)
    raise DatasetError(
        f"{root}: no CelebA attribute file (list_attr_celeba.txt or list_attr_celeba.csv) here or in {root / 'celeba'}"
    )


def _read_lines(path):
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise DatasetError(f"{path}: not a text file ({error})") from None


def _read_table(path):
    """Rows of fields: CSV for .csv, whitespace-separated for .txt; with their 1-based line numbers."""
    lines = _read_lines(path)
    if path.suffix == ".csv":
        rows = [[field.strip() for field in row] for row in csv.reader(lines)]
    else:
        rows = [line.split() for line in lines]
    return [(number, row) for number, row in enumerate(rows, 1) if row]


def _check_names(path, names):
    unknown = [n for n in names if n not in CELEBA_ATTRIBUTES]
    if unknown:
        raise DatasetError(f"{path}: unknown attribute name(s) {unknown}; CelebA's 40 are {list(CELEBA_ATTRIBUTES)}")
    missing = [n for n in CELEBA_ATTRIBUTES if n not in names]
    if missing or len(names) != len(set(names)):
        raise DatasetError(f"{path}: expected each of CelebA's 40 attribute names once; missing {missing}, got {names}")


def read_attributes(path):
    """An attribute file (either layout) -> (image file names, attributes (N, 40) uint8 in {0, 1}).

    Columns come back in :data:`CELEBA_ATTRIBUTES` order; +1 becomes 1 and -1 becomes 0.
    """
    path = Path(path)
    rows = _read_table(path)
    if path.suffix == ".csv":
        if not rows:
            raise DatasetError(f"{path}: empty attribute file")
        (_, header), rows = rows[0], rows[1:]
        names = header[1:]
    else:
        if len(rows) < 2:
            raise DatasetError(f"{path}: expected a count line and a line of attribute names")
        (_, count_line), (_, names), rows = rows[0], rows[1], rows[2:]
        if len(count_line) != 1 or not count_line[0].isdigit():
            raise DatasetError(f"{path}: line 1 must be the number of images, got {' '.join(count_line)!r}")
        if int(count_line[0]) != len(rows):
            raise DatasetError(f"{path}: line 1 says {count_line[0]} images, the file has {len(rows)} rows")
    _check_names(path, names)
    for number, row in rows:
        if len(row) != len(names) + 1 or not _SIGNS.issuperset(row[1:]):
            raise DatasetError(
                f"{path}, line {number}: expected an image name and {len(names)} values of 1 or -1, "
                f"got {' '.join(row)[:120]!r}"
            )
    files = [row[0] for _, row in rows]
    # every value is "1" or "-1" now: joined, "-1" -> "0", each row is 40 characters "0"/"1"
    bits = "".join("".join(row[1:]) for _, row in rows).replace("-1", "0")
    values = (np.frombuffer(bits.encode("ascii"), dtype=np.uint8) - ord("0")).reshape(len(rows), len(names))
    if not files:
        raise DatasetError(f"{path}: no image rows")
    if len(set(files)) != len(files):
        raise DatasetError(f"{path}: an image is listed twice")
    order = [names.index(n) for n in CELEBA_ATTRIBUTES]
    return files, np.ascontiguousarray(values[:, order])


def read_partition(path, files):
    """A partition file (either layout) -> (N,) int array of 0/1/2 for ``files``, in their order."""
    path = Path(path)
    rows = _read_table(path)
    if path.suffix == ".csv" and rows and rows[0][1][:1] == ["image_id"]:
        rows = rows[1:]
    split_of = {}
    for number, row in rows:
        if len(row) != 2 or row[1] not in ("0", "1", "2"):
            raise DatasetError(f"{path}, line {number}: expected an image name and 0, 1 or 2, got {' '.join(row)!r}")
        split_of[row[0]] = int(row[1])
    if len(split_of) != len(files) or any(f not in split_of for f in files):
        missing = [f for f in files if f not in split_of][:3]
        raise DatasetError(
            f"{path}: lists {len(split_of)} images, the attribute file {len(files)}; "
            f"they must be the same images (first missing: {missing})"
        )
    return np.array([split_of[f] for f in files])


def _fallback_partition(n):
    """0/1/2 for n rows in order: the first 80% train, the next 10% valid, the rest test."""
    train_end = round(n * _FALLBACK_FRACTIONS[0])
    valid_end = round(n * (_FALLBACK_FRACTIONS[0] + _FALLBACK_FRACTIONS[1]))
    return np.repeat([0, 1, 2], [train_end, valid_end - train_end, n - valid_end])


def load_celeba(root, image_size=64, split="train", cache_dir=None, progress=True):
    """CelebA's ``split`` ("train", "valid", "test" or "all") from a local copy (see the module docstring).

    Returns (images (N, 3, image_size, image_size) uint8, read-only memory-mapped;
    attributes (N, 40) uint8 in {0, 1}; the 40 attribute names). The decoded images are
    cached in ``cache_dir`` (default ``<tinyvae cache>/celeba``: ``$TINYVAE_CACHE`` or
    ``~/.cache/tinyvae``), one file per split and size; a progress display goes to stderr
    while decoding unless ``progress`` is False.
    """
    image_size = check_int(image_size, "image_size", "load_celeba", 1)
    if split not in (*CELEBA_SPLITS, "all"):
        raise ValueError(f"load_celeba: split must be one of {[*CELEBA_SPLITS, 'all']}, got {split!r}")
    images_dir, attribute_file, partition_file = find_celeba(root)
    files, attributes = read_attributes(attribute_file)
    if split != "all":
        if partition_file is None:
            partition = _fallback_partition(len(files))
        else:
            partition = read_partition(partition_file, files)
        keep = partition == CELEBA_SPLITS[split]
        files, attributes = [f for f, k in zip(files, keep) if k], attributes[keep]
    if not files:
        raise DatasetError(f"{partition_file or attribute_file}: no images in split {split!r}")
    cache_dir = default_cache_dir() / "celeba" if cache_dir is None else cache_dir
    prefix = f"celeba_{image_size}_{split}"
    images = cached_images(images_dir, files, image_size, CELEBA_CROP, cache_dir, prefix, progress)
    return images, attributes, list(CELEBA_ATTRIBUTES)

"""RGB images from files: decode, center crop, resize (Pillow), cached once as a uint8 ``.npy``.

    images, names = load_image_folder("photos/", image_size=64)   # (N, 3, 64, 64) uint8, file names

Decoding tens of thousands of JPEGs takes minutes, so :func:`cached_images` does it once and
keeps the result as one uint8 ``.npy`` file, memory-mapped on later runs. The cache file's
name carries a digest of the source list (every file's relative name, size and mtime) and of
the crop and output size: when a source file is added, removed, replaced or touched, the
digest changes and the cache is rebuilt (older caches of the same prefix are then removed).
The file is streamed to disk while decoding (never the whole array in memory) through
:func:`tinyvae.fileio.atomic_write`, so an interrupted build leaves no half cache.

Pillow (the ``images`` extra: ``pip install tinyvae[images]``; matplotlib depends on it too)
is needed to decode.
Errors name the file: a missing or unreadable image is a :class:`DatasetError`.
"""

import hashlib
import os
import sys
from pathlib import Path

import numpy as np

from ..fileio import atomic_write
from ..module import check_int
from ..progress import Progress
from .download import default_cache_dir
from .idx import DatasetError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_CACHE_VERSION = 1  # part of the digest: bump it when decoding changes


def _pillow():
    try:
        from PIL import Image
    except ImportError as error:
        raise ImportError(
            "reading images needs Pillow: `pip install tinyvae[images]` (or `pip install pillow`)"
        ) from error
    return Image


def decode_image(path, image_size, crop=None):
    """One image file as a (3, image_size, image_size) uint8 array.

    The centered square of side ``crop`` (or the largest centered square if ``crop`` is None,
    or if the image is smaller than ``crop``) is cut out and resized with Pillow's bilinear
    filter (which averages over the source pixels when shrinking). Raises DatasetError naming
    the file if it is missing or cannot be decoded.
    """
    Image = _pillow()
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            width, height = image.size
            side = min(width, height) if crop is None else min(crop, width, height)
            left, top = (width - side) // 2, (height - side) // 2
            image = image.crop((left, top, left + side, top + side))
            image = image.resize((image_size, image_size), Image.Resampling.BILINEAR)
            pixels = np.asarray(image, dtype=np.uint8)  # (S, S, 3)
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing image") from None
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise DatasetError(f"{path}: unreadable image ({error})") from None
    return pixels.transpose(2, 0, 1)  # (3, S, S)


def source_digest(directory, names, image_size, crop):
    """A hex digest of (relative name, size, mtime) of every file, the output size and the crop.

    Raises DatasetError naming the first missing file.
    """
    digest = hashlib.sha256(f"v{_CACHE_VERSION} size={image_size} crop={crop}\n".encode())
    for name in names:
        path = Path(directory) / name
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            raise DatasetError(f"{path}: missing image") from None
        digest.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def cached_images(directory, names, image_size, crop, cache_dir, prefix, progress=True):
    """The images ``directory/name`` for each name, as a read-only memory-mapped (N, 3, S, S) uint8 array.

    The cache is ``cache_dir/<prefix>_<digest>.npy`` (see the module docstring); it is built
    on the first call, with a progress display on stderr unless ``progress`` is False.
    """
    names = list(names)
    if not names:
        raise DatasetError(f"{directory}: no images to read")
    image_size = check_int(image_size, "image_size", "cached_images", 1)
    cache_dir = Path(cache_dir)
    path = cache_dir / f"{prefix}_{source_digest(directory, names, image_size, crop)}.npy"
    shape = (len(names), 3, image_size, image_size)
    if path.is_file():
        try:
            cached = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError):
            cached = None  # damaged: decoded again below
        if cached is not None and cached.shape == shape and cached.dtype == np.uint8:
            return cached
    cache_dir.mkdir(parents=True, exist_ok=True)
    bar = Progress(stream=sys.stderr) if progress else None

    def write(f):
        np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False, "shape": shape})
        if bar:
            bar.start(f"decoding {len(names)} images into {path.name}", len(names), unit="image")
        for i, name in enumerate(names, 1):
            f.write(decode_image(Path(directory) / name, image_size, crop).tobytes())
            if bar:
                bar.update(i)
        if bar:
            bar.finish()

    atomic_write(path, write)
    for stale in cache_dir.glob(f"{prefix}_*.npy"):  # caches of older versions of the sources
        if stale != path and len(stale.name) == len(path.name):
            stale.unlink(missing_ok=True)
    return np.load(path, mmap_mode="r", allow_pickle=False)


def load_image_folder(path, image_size=64, cache_dir=None, progress=True):
    """Every PNG / JPEG file directly in folder ``path`` (sorted by name), center-cropped to a square
    and resized: returns (images (N, 3, image_size, image_size) uint8, file names).

    The decoded images are cached (see :func:`cached_images`) in ``cache_dir``, by default
    ``<tinyvae cache>/image_folders`` (``$TINYVAE_CACHE`` or ``~/.cache/tinyvae``).
    """
    folder = Path(path)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder of images")
    names = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not names:
        raise DatasetError(f"{folder}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    cache_dir = default_cache_dir() / "image_folders" if cache_dir is None else cache_dir
    where = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:8]  # two folders of one name: two caches
    prefix = f"{folder.name or 'images'}_{where}_{image_size}"
    return cached_images(folder, names, image_size, None, cache_dir, prefix, progress), names

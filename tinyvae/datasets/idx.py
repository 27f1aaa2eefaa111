"""Read and write IDX files, the format of MNIST and Fashion-MNIST.

An IDX file is a big-endian header followed by raw data. The header is a 4-byte magic number
(two zero bytes, a type code, the number of dimensions) and then one 4-byte size per dimension.
Only the two kinds MNIST uses are supported, both with uint8 data (type code 0x08):

* 2049 (``0x00000801``): labels, 1-D, shape (N,)
* 2051 (``0x00000803``): images, 3-D, shape (N, rows, cols)

Files may be gzip-compressed (recognised by their content, and required when the name ends in
``.gz``) or raw. A file is read in a stream: the header first, then at most the size it declares
plus one byte, so a file larger than its header says is refused without reading it all. Every
problem with a file's content raises ``DatasetError`` (a ``ValueError``) naming the file and
what was expected.
"""

import contextlib
import gzip
import hashlib
import io
import math
import os
import zlib
from pathlib import Path

import numpy as np

LABELS_MAGIC = 2049
IMAGES_MAGIC = 2051
_KINDS = {LABELS_MAGIC: "labels", IMAGES_MAGIC: "images"}
_MAGIC_OF = {"labels": LABELS_MAGIC, "images": IMAGES_MAGIC}
_NDIM_OF = {"labels": 1, "images": 3}
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20  # bytes read (or hashed) at a time
# Deflate expands at most 1032-fold, so n bytes of gzip data hold at most 1032 * n bytes.
_MAX_GZIP_RATIO = 1032

# The standard file names of one split (an optional ``.gz`` suffix is added when looking them up).
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
EXPECTED_FILES = (
    "the four standard MNIST file names: "
    f"{', '.join(n for pair in SPLIT_FILES.values() for n in pair)}, each .gz or raw"
)


class DatasetError(ValueError):
    """A data file or directory does not hold what was expected (the message says what)."""


class ChecksumError(DatasetError):
    """A file's SHA-256 digest is not the expected one."""


# Files whose content already matched a digest in this process:
# (real path, size, mtime_ns, inode, expected digest). Keeps verification to once per process.
_VERIFIED = set()


def _file_key(path, digest):
    """The key under which ``path``, as it is on disk now, is recorded as matching ``digest``."""
    st = os.stat(path)
    return (os.path.realpath(path), st.st_size, st.st_mtime_ns, st.st_ino, digest.lower())


@contextlib.contextmanager
def _open_content(path):
    """Yield (stream of the uncompressed bytes of ``path``, stored size, whether gzipped)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        is_gzip = f.read(2) == _GZIP_MAGIC
        f.seek(0)
        if str(path).endswith(".gz") and not is_gzip:
            raise DatasetError(
                f"{path}: not gzip data although the name ends in .gz (expected the gzip magic "
                f"bytes 1f 8b, found {f.read(2).hex(' ') or 'an empty file'})"
            )
        if not is_gzip:
            yield f, size, False
            return
        try:
            with gzip.GzipFile(fileobj=f, mode="rb") as stream:
                yield stream, size, True
        except (OSError, EOFError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
            raise DatasetError(f"{path}: corrupt or truncated gzip data ({err})") from None


def _check_digest(path, digest, sha256):
    """Raise ChecksumError unless ``digest`` (of ``path``'s bytes) is ``sha256``."""
    found = digest.hexdigest()
    if found != sha256.lower():
        raise ChecksumError(
            f"{path}: SHA-256 mismatch (expected {sha256.lower()}, found {found}); "
            "the file is corrupt or is not the expected file"
        )


def _hash_stream(stream):
    """The SHA-256 of everything left in ``stream``, read a chunk at a time."""
    digest = hashlib.sha256()
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)
    return digest


def parse_idx(data, path="<bytes>", kind=None):
    """Parse uncompressed IDX bytes into a uint8 array: (N,) labels or (N, rows, cols) images.

    ``kind`` ("images" or "labels") additionally requires that kind of file. ``path`` is only
    used in error messages.
    """
    return _read_stream(io.BytesIO(data), len(data), False, path, kind)


def _read_stream(stream, stored_size, is_gzip, path, kind, digest=None):
    """Read one IDX file from ``stream`` (``stored_size`` bytes as stored); see parse_idx.

    Reads the header, then at most the size it declares plus one byte. ``digest``, if given, is
    a hashlib object updated with the bytes read.
    """
    if kind is not None and kind not in _MAGIC_OF:
        raise ValueError(f"kind must be 'images', 'labels' or None, got {kind!r}")
    head = stream.read(4)
    if len(head) < 4:
        raise DatasetError(
            f"{path}: truncated IDX file (expected a 4-byte magic number, found {len(head)} bytes)"
        )
    magic = int.from_bytes(head, "big")
    if magic not in _KINDS:
        raise DatasetError(
            f"{path}: bad magic number {magic} (0x{magic:08x}); expected {LABELS_MAGIC} (labels) "
            f"or {IMAGES_MAGIC} (images), uint8 IDX data"
        )
    found_kind = _KINDS[magic]
    if kind is not None and found_kind != kind:
        raise DatasetError(
            f"{path}: expected an IDX {kind} file (magic {_MAGIC_OF[kind]}, {_NDIM_OF[kind]}-D), "
            f"found an IDX {found_kind} file (magic {magic}, {_NDIM_OF[found_kind]}-D)"
        )
    ndim = _NDIM_OF[found_kind]
    header_len = 4 + 4 * ndim
    head += stream.read(4 * ndim)
    if len(head) < header_len:
        raise DatasetError(
            f"{path}: truncated IDX header (expected {header_len} bytes for a {ndim}-D "
            f"{found_kind} file, found {len(head)})"
        )
    shape = tuple(int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if ndim == 3 and (shape[1] == 0 or shape[2] == 0):
        raise DatasetError(
            f"{path}: invalid image size {shape[1]}x{shape[2]} (expected rows and cols > 0)"
        )
    data_len = math.prod(shape)  # a Python int: no overflow
    expected_len = header_len + data_len
    dims = "x".join(str(d) for d in shape)

    def wrong_size(what, found):
        return DatasetError(
            f"{path}: {what}: a {found_kind} file of shape {dims} must be exactly {expected_len} "
            f"bytes (header {header_len} + data {data_len}), found {found}"
        )

    if not is_gzip and stored_size != expected_len:  # known before reading any data
        what = "truncated" if stored_size < expected_len else "trailing bytes after the data"
        raise wrong_size(what, stored_size)
    if is_gzip and expected_len > _MAX_GZIP_RATIO * stored_size:
        raise wrong_size("truncated", f"{stored_size} bytes of gzip data, which uncompress to "
                                      f"at most {_MAX_GZIP_RATIO * stored_size}")
    try:
        array = np.empty(data_len, dtype=np.uint8)
    except MemoryError:
        raise DatasetError(
            f"{path}: a {found_kind} file of shape {dims} holds {data_len} bytes of data, "
            "more than this machine has memory for"
        ) from None
    view = memoryview(array)
    done = 0
    while done < data_len:
        n = stream.readinto(view[done : done + _CHUNK])
        if not n:
            raise wrong_size("truncated", header_len + done)
        done += n
    if stream.read(1):  # only gzip data gets here (raw sizes were checked above)
        raise wrong_size("trailing bytes after the data (or corrupt gzip data)",
                         f"more than {expected_len}")
    if digest is not None:
        digest.update(head)
        digest.update(view)
    return array.reshape(shape)


def remember_verified(path, sha256):
    """Record that ``path`` (as it is now on disk) was checked against ``sha256``."""
    _VERIFIED.add(_file_key(path, sha256))


def verify_file(path, sha256, size=None):
    """Raise ChecksumError unless the bytes of ``path``, as stored, have SHA-256 ``sha256``.

    ``size``, if given, is the expected size in bytes, checked first (a file of another size is
    not hashed). A file that passed is remembered for the rest of the process and not hashed
    again.
    """
    if _file_key(path, sha256) not in _VERIFIED:
        if size is not None and os.stat(path).st_size != size:
            raise ChecksumError(
                f"{path}: size mismatch (expected {size} bytes, found {os.stat(path).st_size}); "
                "the file is corrupt or is not the expected file"
            )
        with open(path, "rb") as f:
            _check_digest(path, _hash_stream(f), sha256)
        remember_verified(path, sha256)


def verify_content(path, sha256):
    """Raise ChecksumError unless the uncompressed content of ``path`` has SHA-256 ``sha256``.

    Reads a chunk at a time. A file that passed is remembered for the rest of the process and
    not read again.
    """
    if _file_key(path, sha256) not in _VERIFIED:
        with _open_content(path) as (stream, _, _):
            digest = _hash_stream(stream)
        _check_digest(path, digest, sha256)
        remember_verified(path, sha256)


def read_idx(path, kind=None, sha256=None):
    """Read an IDX file (gzip-compressed or raw) into a uint8 array.

    Returns (N,) labels or (N, rows, cols) images. ``kind`` ("images" or "labels") requires that
    kind of file. ``sha256``, if given, is the expected SHA-256 of the *uncompressed* content;
    a mismatch raises ``ChecksumError``. A file that passed is remembered for the rest of the
    process (by path, size, mtime and inode) and not hashed again.
    """
    digest = None
    if sha256 is not None and _file_key(path, sha256) not in _VERIFIED:
        digest = hashlib.sha256()
    with _open_content(path) as (stream, stored_size, is_gzip):
        array = _read_stream(stream, stored_size, is_gzip, path, kind, digest)
    if digest is not None:
        _check_digest(path, digest, sha256)
        remember_verified(path, sha256)
    return array


def write_idx(path, array):
    """Write a uint8 array, (N,) labels or (N, rows, cols) images, as an IDX file.

    The file is gzip-compressed (with a zero timestamp, so the bytes are reproducible) when
    ``path`` ends in ``.gz``. Returns the path.
    """
    array = np.asarray(array)
    if array.dtype != np.uint8 or array.ndim not in (1, 3):
        raise ValueError(
            f"{path}: write_idx expects a uint8 array of shape (N,) or (N, rows, cols), "
            f"got {array.dtype} of shape {array.shape}"
        )
    magic = LABELS_MAGIC if array.ndim == 1 else IMAGES_MAGIC
    header = b"".join(int(v).to_bytes(4, "big") for v in (magic, *array.shape))
    data = header + np.ascontiguousarray(array).tobytes()
    if str(path).endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    Path(path).write_bytes(data)
    return Path(path)


def find_split_files(directory, split):
    """Paths of the (images, labels) files of ``split`` ("train" or "test") in ``directory``.

    Looks for the standard MNIST names, e.g. ``train-images-idx3-ubyte.gz`` or
    ``train-images-idx3-ubyte``; raises FileNotFoundError naming what it looked for.
    """
    if split not in SPLIT_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    directory = Path(directory)
    found = []
    for name in SPLIT_FILES[split]:
        candidates = [directory / f"{name}.gz", directory / name]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise FileNotFoundError(
                f"{directory}: no {split} file {name}.gz or {name} (expected {EXPECTED_FILES})"
            )
        found.append(path)
    return tuple(found)


def load_split(directory, split, image_shape=(28, 28), num_classes=10, sha256=None):
    """Load one split from ``directory``: ((N, rows, cols) uint8 images, (N,) uint8 labels).

    Checks that images and labels have the same, nonzero count, that images are
    ``image_shape`` (None: any size) and labels are below ``num_classes`` (None: any).
    ``sha256`` optionally maps standard file names (without ``.gz``) to the expected SHA-256 of
    their uncompressed content, so a raw and a gzipped copy verify alike (see :func:`read_idx`).
    """
    images_path, labels_path = find_split_files(directory, split)
    sha256 = sha256 or {}
    images_name, labels_name = SPLIT_FILES[split]
    images = read_idx(images_path, "images", sha256.get(images_name))  # (N, rows, cols) uint8
    labels = read_idx(labels_path, "labels", sha256.get(labels_name))  # (N,) uint8
    if len(images) != len(labels):
        raise DatasetError(
            f"{directory}: {split} images and labels disagree: {len(images)} images in "
            f"{images_path.name} but {len(labels)} labels in {labels_path.name}"
        )
    if len(images) == 0:
        raise DatasetError(f"{directory}: {split} split is empty ({images_path.name} has 0 images)")
    if image_shape is not None and images.shape[1:] != tuple(image_shape):
        raise DatasetError(
            f"{images_path}: expected {image_shape[0]}x{image_shape[1]} images, "
            f"found {images.shape[1]}x{images.shape[2]}"
        )
    if num_classes is not None and labels.max() >= num_classes:
        raise DatasetError(
            f"{labels_path}: expected labels 0..{num_classes - 1}, found label {int(labels.max())}"
        )
    return images, labels

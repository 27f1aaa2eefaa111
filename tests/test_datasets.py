"""Tests for tinyvae.datasets: IDX files, shipped MNIST, Fashion-MNIST download, binarization.

Nothing here touches the internet: downloads go to a local HTTP server on 127.0.0.1.
"""

import contextlib
import errno
import fcntl
import gzip
import hashlib
import http.server
import os
import socket
import threading
import time
import tracemalloc

import numpy as np
import pytest

from tinyvae import fileio
from tinyvae.datasets import (
    MNIST_DIR,
    MNIST_SHA256,
    ChecksumError,
    DatasetError,
    DownloadError,
    binarize_dynamic,
    binarize_static,
    default_cache_dir,
    download,
    fetch_fashion_mnist,
    idx,
    load_fashion_mnist,
    load_mnist,
    load_split,
    parse_idx,
    read_idx,
    to_nchw_float,
    verify_mnist,
    write_idx,
)

NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Keep every test away from ~/.cache and from any HTTP proxy."""
    monkeypatch.setenv("TINYVAE_CACHE", str(tmp_path / "env-cache"))
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")


def _tiny_dataset(seed=0, n_train=5, n_test=3):
    """A small MNIST-format dataset: {attribute name: uint8 array}."""
    rng = np.random.default_rng(seed)
    return {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def _write_dataset(directory, arrays, gz=True):
    directory.mkdir(parents=True, exist_ok=True)
    for key, array in arrays.items():
        write_idx(directory / (NAMES[key] + (".gz" if gz else "")), array)
    return directory


def _idx_header(magic, *dims):
    return b"".join(int(v).to_bytes(4, "big") for v in (magic, *dims))


# -- IDX reader ------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("shape", [(7,), (0,), (4, 3, 5), (2, 28, 28)])
def test_idx_round_trip(tmp_path, suffix, shape):
    array = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    path = write_idx(tmp_path / f"a{suffix}", array)
    back = read_idx(path)
    assert back.dtype == np.uint8 and back.shape == shape
    np.testing.assert_array_equal(back, array)
    back[...] = 0  # the result is an ordinary, writable array


def test_idx_layout_matches_the_format(tmp_path):
    path = write_idx(tmp_path / "labels", np.array([3, 1, 4], dtype=np.uint8))
    assert path.read_bytes() == _idx_header(2049, 3) + bytes([3, 1, 4])
    gz = write_idx(tmp_path / "labels.gz", np.array([3, 1, 4], dtype=np.uint8))
    assert gzip.decompress(gz.read_bytes()) == path.read_bytes()
    assert write_idx(tmp_path / "again.gz", np.array([3, 1, 4], dtype=np.uint8)).read_bytes() == (
        gz.read_bytes()
    )  # reproducible bytes (no timestamp)


def test_gzip_is_recognised_by_content(tmp_path):
    path = tmp_path / "labels-without-suffix"
    path.write_bytes(gzip.compress(_idx_header(2049, 2) + b"\x01\x02"))
    np.testing.assert_array_equal(read_idx(path), [1, 2])


def test_write_idx_rejects_other_arrays(tmp_path):
    with pytest.raises(ValueError, match="uint8 array of shape"):
        write_idx(tmp_path / "x", np.zeros((2, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="float64"):
        write_idx(tmp_path / "x", np.zeros(3))


@contextlib.contextmanager
def _raises_naming(path, *fragments):
    """Expect a ValueError whose message names ``path`` and contains every fragment."""
    with pytest.raises(ValueError) as info:
        yield
    message = str(info.value)
    assert str(path) in message, message
    for fragment in fragments:
        assert fragment in message, message


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_truncated_data(tmp_path, suffix):
    data = _idx_header(2051, 2, 28, 28) + bytes(2 * 28 * 28 - 5)
    path = tmp_path / f"images{suffix}"
    path.write_bytes(gzip.compress(data) if suffix else data)
    with _raises_naming(path, "truncated", "2x28x28", "exactly 1584 bytes", "found 1579"):
        read_idx(path)


def test_truncated_header(tmp_path):
    path = tmp_path / "images"
    path.write_bytes(_idx_header(2051, 2, 28))
    with _raises_naming(path, "truncated IDX header", "expected 16 bytes", "found 12"):
        read_idx(path)
    path.write_bytes(b"\x00\x00")
    with _raises_naming(path, "truncated", "found 2 bytes"):
        read_idx(path)


def test_trailing_bytes(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes(_idx_header(2049, 3) + bytes(4))
    with _raises_naming(path, "trailing bytes", "exactly 11 bytes", "found 12"):
        read_idx(path)


@pytest.mark.parametrize("magic", [2050, 0x0D03, 0x03080000])
def test_bad_magic(tmp_path, magic):
    path = tmp_path / "file"
    path.write_bytes(_idx_header(magic, 1, 1, 1) + b"\x00")
    with _raises_naming(path, f"bad magic number {magic}", "expected 2049 (labels) or 2051"):
        read_idx(path)


def test_wrong_kind_of_file(tmp_path):
    labels = write_idx(tmp_path / "labels.gz", np.zeros(4, dtype=np.uint8))
    with _raises_naming(labels, "expected an IDX images file (magic 2051, 3-D)",
                        "found an IDX labels file (magic 2049, 1-D)"):
        read_idx(labels, kind="images")
    images = write_idx(tmp_path / "images", np.zeros((1, 2, 2), dtype=np.uint8))
    with _raises_naming(images, "expected an IDX labels file (magic 2049, 1-D)",
                        "found an IDX images file (magic 2051, 3-D)"):
        read_idx(images, kind="labels")


def test_wrong_dims(tmp_path):
    # The header claims 5 images, the data holds 4.
    path = tmp_path / "images.gz"
    path.write_bytes(gzip.compress(_idx_header(2051, 5, 28, 28) + bytes(4 * 28 * 28)))
    with _raises_naming(path, "shape 5x28x28", "found 3152"):
        read_idx(path)
    path.write_bytes(gzip.compress(_idx_header(2051, 5, 0, 28)))
    with _raises_naming(path, "invalid image size 0x28"):
        read_idx(path)
    # Well-formed, but not 28x28 where MNIST images are expected.
    arrays = _tiny_dataset()
    arrays["test_images"] = np.zeros((3, 27, 28), dtype=np.uint8)
    directory = _write_dataset(tmp_path / "data", arrays)
    with _raises_naming(directory / "t10k-images-idx3-ubyte.gz", "expected 28x28", "found 27x28"):
        load_mnist(data_dir=directory)


def test_corrupt_gzip(tmp_path):
    good = gzip.compress(_idx_header(2049, 1000) + bytes(range(250)) * 4)
    path = tmp_path / "labels.gz"
    path.write_bytes(good[:20] + bytes(b ^ 0xFF for b in good[20:40]) + good[40:])
    with _raises_naming(path, "corrupt"):  # here it uncompresses to more than 1008 bytes
        read_idx(path)
    path.write_bytes(good[: len(good) // 2])  # a cut-off download
    with _raises_naming(path, "corrupt or truncated gzip data"):
        read_idx(path)
    path.write_bytes(_idx_header(2049, 0))  # raw data under a .gz name
    with _raises_naming(path, "not gzip data", "found 00 00"):
        read_idx(path)


def _gzip_bomb(path, header, zero_bytes):
    """Write ``header`` then ``zero_bytes`` zeros as a small multi-member gzip file."""
    member = gzip.compress(bytes(16 << 20), mtime=0)  # 16 MiB of zeros in about 16 KiB
    with open(path, "wb") as f:
        f.write(gzip.compress(header, mtime=0))
        for _ in range(zero_bytes // (16 << 20)):
            f.write(member)
    return path


def _peak_bytes(function):
    """Run ``function`` (which must raise ValueError); return (the error, peak traced memory)."""
    tracemalloc.start()
    try:
        with pytest.raises(ValueError) as info:
            function()
        return info.value, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_gzip_bomb_is_refused_without_decompressing_it(tmp_path):
    # A valid 60000x28x28 header followed by 1 GiB of zeros, in about 1 MB of gzip data.
    directory = _write_dataset(tmp_path / "data", _tiny_dataset())
    path = directory / "train-images-idx3-ubyte.gz"
    _gzip_bomb(path, _idx_header(2051, 60000, 28, 28), 1 << 30)
    assert path.stat().st_size < 2 << 20
    for load in (lambda: read_idx(path), lambda: load_mnist(data_dir=directory)):
        err, peak = _peak_bytes(load)
        assert isinstance(err, DatasetError)
        message = str(err)
        assert str(path) in message and "trailing bytes" in message, message
        assert "exactly 47040016 bytes" in message, message
        assert peak < 128 << 20, peak  # the declared 47 MB, not the 1 GiB


def test_sparse_raw_file_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "images"
    path.write_bytes(_idx_header(2051, 60000, 28, 28))
    with open(path, "r+b") as f:
        f.truncate((1 << 30) + 16)  # 1 GiB of zeros that take no disk space
    err, peak = _peak_bytes(lambda: read_idx(path))
    message = str(err)
    assert str(path) in message and "exactly 47040016 bytes" in message, message
    assert f"found {(1 << 30) + 16}" in message, message
    assert peak < 1 << 20, peak


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dims", [(2**32 - 1, 2**32 - 1, 2**32 - 1), (2**31, 2**16, 2**16)])
def test_absurd_header_dims(tmp_path, suffix, dims):
    # The product of the dims overflows 64-bit integers; it must not wrap or exhaust memory.
    data = _idx_header(2051, *dims) + bytes(100)
    path = tmp_path / f"images{suffix}"
    path.write_bytes(gzip.compress(data) if suffix else data)
    size = 16 + dims[0] * dims[1] * dims[2]
    err, peak = _peak_bytes(lambda: read_idx(path))
    message = str(err)
    assert isinstance(err, DatasetError) and str(path) in message, message
    assert f"exactly {size} bytes" in message and "truncated" in message, message
    assert peak < 1 << 20, peak
    with _raises_naming("<bytes>", f"exactly {size} bytes"):
        parse_idx(data)


def test_declared_size_beyond_memory(tmp_path, monkeypatch):
    # A sparse 2 GiB file with a matching header; the allocation fails as on a small machine.
    path = tmp_path / "images"
    path.write_bytes(_idx_header(2051, 2048, 1024, 1024))
    with open(path, "r+b") as f:
        f.truncate(16 + (2 << 30))
    empty = np.empty

    def small_memory_empty(shape, *args, **kwargs):
        if np.prod(shape, dtype=object) >= 1 << 30:
            raise MemoryError(f"Unable to allocate {shape}")
        return empty(shape, *args, **kwargs)

    monkeypatch.setattr(np, "empty", small_memory_empty)
    with _raises_naming(path, "shape 2048x1024x1024", f"{2 << 30} bytes", "memory"):
        read_idx(path)


def test_truncated_gzip_after_the_data(tmp_path):
    # All declared bytes decompress, but the gzip stream is cut before its end (CRC, size).
    good = gzip.compress(_idx_header(2049, 3) + bytes([1, 2, 3]), mtime=0)
    path = tmp_path / "labels.gz"
    path.write_bytes(good[:-4])
    with _raises_naming(path, "corrupt or truncated gzip data"):
        read_idx(path)
    path.write_bytes(good[:-8] + bytes(8))  # wrong CRC and size
    with _raises_naming(path, "corrupt or truncated gzip data"):
        read_idx(path)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_empty_file(tmp_path, suffix):
    path = tmp_path / f"labels{suffix}"
    path.write_bytes(b"")
    with _raises_naming(path, "an empty file" if suffix else "found 0 bytes"):
        read_idx(path)


def test_data_errors_are_dataset_errors(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes(_idx_header(2049, 3) + bytes(4))
    with pytest.raises(DatasetError):
        read_idx(path)
    assert issubclass(DatasetError, ValueError) and issubclass(ChecksumError, DatasetError)
    with pytest.raises(DatasetError, match="unknown dataset"):
        load_mnist(dataset="cifar")


def test_count_mismatch(tmp_path):
    arrays = _tiny_dataset()
    arrays["train_labels"] = arrays["train_labels"][:4]
    directory = _write_dataset(tmp_path / "data", arrays)
    with _raises_naming(
        directory, "train images and labels disagree", "5 images in train-images-idx3-ubyte.gz",
        "4 labels in train-labels-idx1-ubyte.gz",
    ):
        load_split(directory, "train")


def test_label_out_of_range(tmp_path):
    arrays = _tiny_dataset()
    arrays["test_labels"][1] = 10
    directory = _write_dataset(tmp_path / "data", arrays)
    with _raises_naming(directory / "t10k-labels-idx1-ubyte.gz", "labels 0..9", "found label 10"):
        load_split(directory, "test")


def test_missing_file(tmp_path):
    arrays = _tiny_dataset()
    del arrays["test_labels"]
    directory = _write_dataset(tmp_path / "data", arrays)
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte.gz or t10k-labels-idx1"):
        load_mnist(data_dir=directory)
    with pytest.raises(FileNotFoundError) as info:
        load_mnist(data_dir=tmp_path / "nowhere")
    message = str(info.value)
    assert str(tmp_path / "nowhere") in message and "data directory not found" in message
    assert "train-images-idx3-ubyte" in message  # says what the directory should hold
    a_file = directory / "t10k-images-idx3-ubyte.gz"
    with pytest.raises(NotADirectoryError, match=f"{a_file}: not a directory"):
        load_mnist(data_dir=a_file)


def test_load_from_data_dir_gz_and_raw(tmp_path):
    arrays = _tiny_dataset()
    directory = tmp_path / "data"
    _write_dataset(directory, {k: arrays[k] for k in ("train_images", "test_labels")}, gz=True)
    _write_dataset(directory, {k: arrays[k] for k in ("train_labels", "test_images")}, gz=False)
    data = load_mnist(data_dir=directory)
    for key, expected in arrays.items():
        np.testing.assert_array_equal(getattr(data, key), expected)
    train_x, train_y, test_x, test_y = data  # unpacks as a 4-tuple
    assert train_x.shape == (5, 28, 28) and test_y.shape == (3,)


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown dataset 'cifar'; expected one of mnist"):
        load_mnist(dataset="cifar")


# -- the shipped MNIST -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


def test_shipped_mnist_matches_the_readme(mnist):
    assert mnist.train_images.shape == (60000, 28, 28) and mnist.train_images.dtype == np.uint8
    assert mnist.train_labels.shape == (60000,) and mnist.train_labels.dtype == np.uint8
    assert mnist.test_images.shape == (10000, 28, 28) and mnist.test_images.dtype == np.uint8
    assert mnist.test_labels.shape == (10000,) and mnist.test_labels.dtype == np.uint8
    assert mnist.train_labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert mnist.test_labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(mnist.train_labels).tolist() == [
        5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949,
    ]
    # Exact mean and (population) std of pixel/255 from the histogram of pixel values.
    pixels = mnist.train_images.ravel()
    counts = sum(np.bincount(part, minlength=256) for part in np.array_split(pixels, 60))
    values = np.arange(256) / 255.0
    mean = (counts * values).sum() / counts.sum()
    std = np.sqrt((counts * (values - mean) ** 2).sum() / counts.sum())
    assert round(mean, 4) == 0.1307 and round(std, 4) == 0.3081


def test_shipped_checksums_verify_once_per_process(mnist, monkeypatch):
    for name in MNIST_SHA256:
        assert (MNIST_DIR / f"{name}.gz").is_file()
    verify_mnist()  # already verified by load_mnist(): no hashing now

    def no_hashing(*args):
        raise AssertionError("hashed a file that was already verified")

    monkeypatch.setattr(idx, "_check_digest", no_hashing)
    verify_mnist()
    load_mnist()


def test_tampered_copy_fails_verification(tmp_path):
    copy = tmp_path / "mnist"
    copy.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"):
        (copy / f"{name}.gz").symlink_to(MNIST_DIR / f"{name}.gz")
    raw = bytearray(gzip.decompress((MNIST_DIR / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    raw[8] = 1  # the first test label, 7, becomes 1: still a valid IDX file
    tampered = copy / "t10k-labels-idx1-ubyte.gz"
    tampered.write_bytes(gzip.compress(bytes(raw)))
    expected = MNIST_SHA256["t10k-labels-idx1-ubyte"]
    with pytest.raises(ChecksumError) as info:
        verify_mnist(copy)
    message = str(info.value)
    assert str(tampered) in message and "SHA-256 mismatch" in message and expected in message
    assert isinstance(info.value, ValueError)
    # The same content, uncompressed, fails the same way.
    tampered.unlink()
    (copy / "t10k-labels-idx1-ubyte").write_bytes(bytes(raw))
    with pytest.raises(ChecksumError, match="t10k-labels-idx1-ubyte: SHA-256 mismatch"):
        verify_mnist(copy)


# -- Fashion-MNIST download, against a local server ------------------------------------------


class _Server:
    """An HTTP server on 127.0.0.1 serving ``files`` ({name: bytes}); logs request paths."""

    def __init__(self):
        self.files = {}
        self.requests = []
        self.short = set()  # names sent with a Content-Length 100 bytes too large
        self.special = {}  # name: function(handler) that writes the whole response itself
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                name = self.path.rsplit("/", 1)[-1]
                server.requests.append(name)
                if name in server.special:
                    server.special[name](self)
                    return
                if name not in server.files:
                    self.send_error(404)
                    return
                body = server.files[name]
                self.send_response(200)
                extra = 100 if name in server.short else 0
                self.send_header("Content-Length", str(len(body) + extra))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/fashion/"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def fashion(monkeypatch):
    """A local server with a tiny Fashion-MNIST whose digests replace the real ones."""
    server = _Server()
    server.arrays = _tiny_dataset(seed=7)
    digests = {}
    for key, array in server.arrays.items():
        name = NAMES[key] + ".gz"
        path_bytes = gzip.compress(
            _idx_header(2051 if array.ndim == 3 else 2049, *array.shape) + array.tobytes(), mtime=0
        )
        server.files[name] = path_bytes
        digests[name] = hashlib.sha256(path_bytes).hexdigest()
    monkeypatch.setattr(download, "FASHION_MNIST_SHA256", digests)
    sizes = {name: len(body) for name, body in server.files.items()}
    monkeypatch.setattr(download, "FASHION_MNIST_SIZES", sizes)
    yield server
    server.close()


def _check_fashion(data, arrays):
    for key, expected in arrays.items():
        np.testing.assert_array_equal(getattr(data, key), expected)


def _leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def test_fashion_download_then_cache(fashion, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    data = load_mnist(dataset="fashion-mnist", cache_dir=cache, base_url=fashion.url,
                      progress=False)
    _check_fashion(data, fashion.arrays)
    assert sorted(fashion.requests) == sorted(fashion.files)
    directory = cache / "fashion-mnist"
    assert sorted(p.name for p in directory.iterdir()) == sorted(fashion.files)
    for name, body in fashion.files.items():
        assert (directory / name).read_bytes() == body
    # Second use: served from the cache, nothing downloaded.
    _check_fashion(load_fashion_mnist(cache, fashion.url, progress=False), fashion.arrays)
    assert len(fashion.requests) == 4
    # Likewise in a "new process", which verifies the cached files again instead of downloading.
    monkeypatch.setattr(idx, "_VERIFIED", set())
    assert fetch_fashion_mnist(cache, fashion.url, progress=False) == directory
    assert len(fashion.requests) == 4


def test_fashion_default_cache_is_tinyvae_cache_env(fashion, tmp_path):
    data = load_mnist(dataset="fashion", base_url=fashion.url, progress=False)
    _check_fashion(data, fashion.arrays)
    assert default_cache_dir() == tmp_path / "env-cache"
    assert sorted(p.name for p in (tmp_path / "env-cache" / "fashion-mnist").iterdir()) == sorted(
        fashion.files
    )


def test_default_cache_dir_without_env(tmp_path, monkeypatch):
    monkeypatch.delenv("TINYVAE_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / ".cache" / "tinyvae"


def test_fashion_checksum_mismatch_leaves_no_file(fashion, tmp_path, monkeypatch):
    wrong = dict(download.FASHION_MNIST_SHA256)
    wrong["t10k-images-idx3-ubyte.gz"] = "0" * 64
    monkeypatch.setattr(download, "FASHION_MNIST_SHA256", wrong)
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumError) as info:
        load_fashion_mnist(cache, fashion.url, progress=False)
    message = str(info.value)
    assert fashion.url + "t10k-images-idx3-ubyte.gz" in message and "SHA-256 mismatch" in message
    directory = cache / "fashion-mnist"
    assert not (directory / "t10k-images-idx3-ubyte.gz").exists()
    assert _leftovers(directory) == []  # no temporary file either


def test_fashion_incomplete_transfer_leaves_no_file(fashion, tmp_path):
    fashion.short.add("train-labels-idx1-ubyte.gz")
    download.FASHION_MNIST_SIZES["train-labels-idx1-ubyte.gz"] += 100  # not above the cap
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match="connection closed after"):
        load_fashion_mnist(cache, fashion.url, progress=False)
    directory = cache / "fashion-mnist"
    assert not (directory / "train-labels-idx1-ubyte.gz").exists()
    assert _leftovers(directory) == []


def test_fashion_http_error(fashion, tmp_path):
    del fashion.files["t10k-labels-idx1-ubyte.gz"]
    with pytest.raises(DownloadError, match="ubyte.gz failed: the server answered HTTP 404"):
        load_fashion_mnist(tmp_path / "cache", fashion.url, progress=False)


def test_fashion_offline_error(tmp_path):
    with socket.socket() as sock:  # a port on which nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}/fashion/"
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError) as info:
        load_fashion_mnist(cache, base_url, progress=False)
    message = str(info.value)
    assert f"download of {base_url}train-images-idx3-ubyte.gz failed" in message
    assert "may be offline" in message
    assert str(cache / "fashion-mnist") in message and "--data-dir" in message
    assert isinstance(info.value, OSError)
    assert _leftovers(cache / "fashion-mnist") == []


def test_fashion_corrupt_cached_file_is_downloaded_again(fashion, tmp_path, capsys):
    cache = tmp_path / "cache"
    fetch_fashion_mnist(cache, fashion.url, progress=False)
    bad = cache / "fashion-mnist" / "train-labels-idx1-ubyte.gz"
    bad.write_bytes(b"not the file")
    _check_fashion(load_fashion_mnist(cache, fashion.url, progress=False), fashion.arrays)
    assert fashion.requests[4:] == ["train-labels-idx1-ubyte.gz"]
    assert "downloading it again" in capsys.readouterr().err


def test_fashion_cached_file_of_the_wrong_size_is_not_hashed(fashion, tmp_path, capsys):
    cache = tmp_path / "cache"
    fetch_fashion_mnist(cache, fashion.url, progress=False)
    bad = cache / "fashion-mnist" / "train-labels-idx1-ubyte.gz"
    with open(bad, "r+b") as f:
        f.truncate(8 << 30)  # 8 GiB of zeros that take no disk space (hashing them takes seconds)
    start = time.monotonic()
    _check_fashion(load_fashion_mnist(cache, fashion.url, progress=False), fashion.arrays)
    assert time.monotonic() - start < 2.0
    assert fashion.requests[4:] == ["train-labels-idx1-ubyte.gz"]
    err = capsys.readouterr().err
    size = len(fashion.files["train-labels-idx1-ubyte.gz"])
    assert f"{bad}: size mismatch (expected {size} bytes, found {8 << 30})" in err, err


def test_fashion_progress_bar(fashion, tmp_path, capsys):
    fetch_fashion_mnist(tmp_path / "cache", fashion.url, progress=True)
    err = capsys.readouterr().err
    for name, body in fashion.files.items():
        assert f"{name}: [{'#' * 30}] 100%" in err
    assert err.count("\n") == 4


def test_fashion_real_digests_are_well_formed():
    for name, digest in download.FASHION_MNIST_SHA256.items():
        assert name.endswith(".gz") and len(digest) == 64 and int(digest, 16) >= 0
    assert download.FASHION_MNIST_URL.startswith("https://")
    assert sorted(download.FASHION_MNIST_SIZES) == sorted(download.FASHION_MNIST_SHA256)
    assert download.FASHION_MNIST_SIZES["train-images-idx3-ubyte.gz"] == 26_421_880


def _endless_body(sent, done, rate=None, limit=64 << 20):
    """A response handler: 200 without Content-Length, then zeros until the client leaves.

    ``rate``: None for as fast as possible, else one byte every ``rate`` seconds. Stops after
    ``limit`` bytes or 10 s; the bytes it sent go to ``sent[0]``, and ``done`` is set at the end.
    """

    def respond(handler):
        start = time.monotonic()
        try:
            handler.send_response(200)
            handler.end_headers()
            while sent[0] < limit and time.monotonic() - start < 10:
                chunk = bytes(1 if rate else 1 << 16)
                handler.wfile.write(chunk)
                handler.wfile.flush()
                sent[0] += len(chunk)
                if rate:
                    time.sleep(rate)
        except OSError:  # the client went away
            pass
        finally:
            done.set()

    return respond


def test_download_stops_at_max_bytes(fashion, tmp_path):
    sent, done = [0], threading.Event()
    fashion.special["big.gz"] = _endless_body(sent, done)
    dest = tmp_path / "dl" / "big.gz"
    with pytest.raises(DownloadError) as info:
        download.download_file(fashion.url + "big.gz", dest, "0" * 64, progress=False,
                               max_bytes=1 << 20)
    message = str(info.value)
    assert fashion.url + "big.gz" in message and "more than the expected 1048576 bytes" in message
    assert done.wait(10) and sent[0] < 32 << 20  # the client hung up long before 64 MiB
    assert list(dest.parent.iterdir()) == []


def test_download_refuses_an_announced_size_above_max_bytes(fashion, tmp_path):
    def respond(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", str(200 << 20))
        handler.end_headers()
        handler.wfile.write(bytes(1000))

    fashion.special["big.gz"] = respond
    dest = tmp_path / "dl" / "big.gz"
    expected = "announced 209715200 bytes, more than the expected 1048576 bytes"
    with pytest.raises(DownloadError, match=expected):
        download.download_file(fashion.url + "big.gz", dest, "0" * 64, progress=False,
                               max_bytes=1 << 20)
    assert list(dest.parent.iterdir()) == []


def test_fashion_download_is_capped_at_the_known_size(fashion, tmp_path):
    name = "t10k-labels-idx1-ubyte.gz"
    known_size = len(fashion.files[name])
    fashion.files[name] += bytes(10)
    with pytest.raises(DownloadError, match=f"more than the expected {known_size} bytes"):
        fetch_fashion_mnist(tmp_path / "cache", fashion.url, progress=False)


def _slow_headers(handler):
    try:
        handler.wfile.write(b"HTTP/1.0 200 OK\r\n")
        for _ in range(200):  # 10 s at most
            handler.wfile.write(b"X")
            handler.wfile.flush()
            time.sleep(0.05)
    except OSError:
        pass


@pytest.mark.parametrize("where", ["body", "headers"])
def test_download_deadline(fashion, tmp_path, where):
    # One byte every 0.05 s keeps each read within the 5 s timeout; only a deadline ends it.
    if where == "body":
        fashion.special["slow.gz"] = _endless_body([0], threading.Event(), rate=0.05)
    else:
        fashion.special["slow.gz"] = _slow_headers
    dest = tmp_path / "dl" / "slow.gz"
    start = time.monotonic()
    with pytest.raises(DownloadError) as info:
        download.download_file(fashion.url + "slow.gz", dest, "0" * 64, progress=False,
                               timeout=5.0, max_bytes=1 << 20, deadline=0.5)
    assert time.monotonic() - start < 3.0
    message = str(info.value)
    assert fashion.url + "slow.gz" in message and "0.5 s deadline" in message, message
    assert list(dest.parent.iterdir()) == []


def _redirect_to(location):
    def respond(handler):
        handler.send_response(302)
        handler.send_header("Location", location(handler))
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return respond


def test_download_follows_redirects_on_the_same_host(fashion, tmp_path):
    name = "t10k-labels-idx1-ubyte.gz"
    fashion.special["moved.gz"] = _redirect_to(lambda handler: f"/elsewhere/{name}")
    body = fashion.files[name]
    dest = download.download_file(fashion.url + "moved.gz", tmp_path / name,
                                  hashlib.sha256(body).hexdigest(), progress=False,
                                  max_bytes=len(body))
    assert dest.read_bytes() == body and fashion.requests == ["moved.gz", name]


def test_download_refuses_redirects_to_other_hosts(fashion, tmp_path):
    port = fashion.httpd.server_address[1]
    other = f"http://localhost:{port}/fashion/t10k-labels-idx1-ubyte.gz"  # same server, other name
    fashion.special["moved.gz"] = _redirect_to(lambda handler: other)
    dest = tmp_path / "dl" / "moved.gz"
    with pytest.raises(DownloadError) as info:
        download.download_file(fashion.url + "moved.gz", dest, "0" * 64, progress=False,
                               max_bytes=1 << 20)
    message = str(info.value)
    assert fashion.url + "moved.gz" in message and f"redirected to {other}" in message, message
    assert "127.0.0.1" in message
    assert fashion.requests == ["moved.gz"] and list(dest.parent.iterdir()) == []


def test_download_to_a_full_disk(fashion, tmp_path, monkeypatch):
    name = "train-labels-idx1-ubyte.gz"  # the second file downloaded

    def full_disk_atomic_write(path, write):
        def write_until_full(f):
            class FullDisk:
                def write(self, data):
                    f.write(data[:10])
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

            write(FullDisk() if path.name == name else f)

        fileio.atomic_write(path, write_until_full)

    monkeypatch.setattr(download, "atomic_write", full_disk_atomic_write)
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError) as info:
        fetch_fashion_mnist(cache, fashion.url, progress=False)
    message = str(info.value)
    assert str(cache / "fashion-mnist" / name) in message, message
    assert os.strerror(errno.ENOSPC) in message, message
    assert sorted(p.name for p in (cache / "fashion-mnist").iterdir()) == [
        "train-images-idx3-ubyte.gz"  # downloaded before the disk was full; no partial file
    ]


def test_stale_temporary_files_are_removed(fashion, tmp_path):
    directory = tmp_path / "cache" / "fashion-mnist"
    directory.mkdir(parents=True)
    stale = [".train-images-idx3-ubyte.gz.k3j_x9a2.part", ".t10k-labels-idx1-ubyte.gz.abcdefgh.tmp"]
    kept = [".train-images-idx3-ubyte.gz.abc.part", ".other.gz.abcdefgh.part", "notes.part",
            ".train-images-idx3-ubyte.gz.abcdefgh.part.bak",
            "t10k-labels-idx1-ubyte.gz.abcdefgh.tmp"]
    for name in stale + kept:
        (directory / name).write_bytes(b"partial")
    # While another process downloads into the folder, its temporary files are left alone.
    other_download = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(other_download, fcntl.LOCK_SH)
        fetch_fashion_mnist(tmp_path / "cache", fashion.url, progress=False)
    finally:
        os.close(other_download)
    assert set(stale + kept) < {p.name for p in directory.iterdir()}
    fetch_fashion_mnist(tmp_path / "cache", fashion.url, progress=False)  # nothing to download
    assert sorted(p.name for p in directory.iterdir()) == sorted(kept + list(fashion.files))


# -- binarization ----------------------------------------------------------------------------


def test_to_nchw_float():
    images = np.array([[[0, 255], [51, 128]]], dtype=np.uint8)  # (1, 2, 2)
    x = to_nchw_float(images)
    assert x.shape == (1, 1, 2, 2) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, 0], [[0.0, 1.0], [0.2, 128 / 255]], rtol=1e-6)
    np.testing.assert_array_equal(to_nchw_float(x), x)  # NCHW float in [0, 1] passes through
    assert to_nchw_float(x) is not x
    with pytest.raises(ValueError, match=r"shape \(N, H, W\) or \(N, 1, H, W\), got \(2, 2\)"):
        to_nchw_float(images[0])
    with pytest.raises(ValueError, match=r"in \[0, 1\], found values in \[0.0, 255.0\]"):
        to_nchw_float(images.astype(np.float64))
    with pytest.raises(ValueError, match="got int64"):
        to_nchw_float(images.astype(np.int64))
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        to_nchw_float(np.full((1, 2, 2), np.nan))


def test_binarize_static_is_a_fixed_threshold():
    pixels = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    out = binarize_static(pixels)
    assert out.shape == (1, 1, 16, 16) and out.dtype == np.float32
    np.testing.assert_array_equal(out.ravel(), (np.arange(256) > 127.5).astype(np.float32))
    np.testing.assert_array_equal(binarize_static(pixels), out)
    np.testing.assert_array_equal(binarize_static(to_nchw_float(pixels)), out)
    halves = np.array([[[0.5, np.nextafter(np.float32(0.5), np.float32(1))]]], dtype=np.float32)
    assert binarize_static(halves).ravel().tolist() == [0.0, 1.0]  # strictly above 0.5


def test_binarize_dynamic_reproducible_and_unbiased():
    levels = np.array([0, 1, 64, 128, 200, 255], dtype=np.uint8)
    images = np.repeat(levels, 20000).reshape(len(levels), 100, 200)  # (6, 100, 200) uint8
    a = binarize_dynamic(images, np.random.default_rng(42))
    b = binarize_dynamic(images, np.random.default_rng(42))
    assert a.shape == (6, 1, 100, 200) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)  # same seed, same sample
    assert set(np.unique(a).tolist()) <= {0.0, 1.0}
    rng = np.random.default_rng(0)
    first, second = binarize_dynamic(images, rng), binarize_dynamic(images, rng)
    assert not np.array_equal(first, second)  # re-sampled on every call
    means = first.mean(axis=(1, 2, 3))
    np.testing.assert_allclose(means, levels / 255.0, atol=0.01)  # 20,000 draws: std <= 0.0036
    assert means[0] == 0.0 and means[-1] == 1.0


def test_binarize_dynamic_needs_a_generator():
    images = np.zeros((1, 28, 28), dtype=np.uint8)
    for rng in (0, np.random.RandomState(0), None):
        with pytest.raises(TypeError, match="numpy.random.Generator"):
            binarize_dynamic(images, rng)

"""Download files into a cache, verified by SHA-256, with atomic writes (standard library only).

A download goes to a temporary file in the destination's directory, is checked against its
SHA-256 digest, and only then renamed to its final name (``os.replace``): an interrupted,
truncated or corrupt download never leaves a file under the final name.
"""

import hashlib
import http.client
import os
import ssl
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from .idx import SPLIT_FILES, ChecksumError, remember_verified, verify_file

# Fashion-MNIST (Zalando Research, MIT license), https://github.com/zalandoresearch/fashion-mnist.
# The same files are served at http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/.
FASHION_MNIST_URL = (
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"
)

# SHA-256 of the .gz files as served (the compressed bytes), as listed by tensorflow_datasets in
# tensorflow_datasets/url_checksums/fashion_mnist.txt. Sizes: 26,421,880; 29,515; 4,422,102; 5,148.
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
}
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)

# Errors that mean the transfer itself failed (disk errors while writing are left as they are).
_NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, ConnectionError,
                   TimeoutError, ssl.SSLError)


class DownloadError(OSError):
    """A download failed: no connection, an HTTP error, or an incomplete transfer."""


def default_cache_dir():
    """The tinyvae cache root: ``$TINYVAE_CACHE`` if set, else ``~/.cache/tinyvae``."""
    env = os.environ.get("TINYVAE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "tinyvae"


class _Progress:
    """A one-line text progress bar on stderr; only the final line if stderr is not a terminal."""

    def __init__(self, label, total, enabled):
        self.label, self.total, self.enabled = label, total, enabled
        self.done = 0
        self.stream = sys.stderr
        self.live = enabled and getattr(self.stream, "isatty", lambda: False)()
        self._last_draw = 0.0

    def update(self, nbytes):
        self.done += nbytes
        now = time.monotonic()
        if self.live and now - self._last_draw >= 0.1:
            self._last_draw = now
            self.stream.write("\r" + self._line())
            self.stream.flush()

    def _line(self):
        done_mb = f"{self.done / 1e6:.1f}"
        if not self.total:
            return f"{self.label}: {done_mb} MB"
        frac = min(self.done / self.total, 1.0)
        bar = "#" * int(30 * frac)
        return f"{self.label}: [{bar:.<30}] {100 * frac:3.0f}% {done_mb}/{self.total / 1e6:.1f} MB"

    def close(self):
        if self.enabled:
            self.stream.write(("\r" if self.live else "") + self._line() + "\n")
            self.stream.flush()


def download_file(url, dest, sha256, progress=True, timeout=60.0, hint=""):
    """Download ``url`` to ``dest`` atomically, verified against ``sha256``; returns ``dest``.

    Raises ``DownloadError`` (an ``OSError``) when the transfer fails, with ``hint`` appended to
    the message, and ``ChecksumError`` (a ``ValueError``) when the digest differs. In both cases
    nothing is left under ``dest``'s name. ``progress`` draws a text progress bar on stderr.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    bar = None
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    total = _content_length(response)
                    bar = _Progress(dest.name, total, progress)
                    while chunk := response.read(1 << 16):
                        out.write(chunk)
                        digest.update(chunk)
                        bar.update(len(chunk))
            except urllib.error.HTTPError as err:
                raise DownloadError(
                    f"download of {url} failed: the server answered HTTP {err.code} "
                    f"({err.reason}){hint}"
                ) from err
            except _NETWORK_ERRORS as err:
                reason = getattr(err, "reason", None) or err
                raise DownloadError(
                    f"download of {url} failed ({reason}); this machine may be offline or the "
                    f"server unreachable{hint}"
                ) from err
            out.flush()
            os.fsync(out.fileno())
        if total is not None and bar.done != total:
            raise DownloadError(
                f"download of {url} failed: the connection closed after {bar.done} of "
                f"{total} bytes{hint}"
            )
        found = digest.hexdigest()
        if found != sha256.lower():
            raise ChecksumError(
                f"download of {url}: SHA-256 mismatch (expected {sha256.lower()}, found {found}); "
                f"the file is corrupt or not the expected one, so nothing was saved as {dest}"
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
        tmp = None
    finally:
        if bar is not None:
            bar.close()
        if tmp is not None:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
    return dest


def _content_length(response):
    """The Content-Length of ``response`` as an int, or None when absent or malformed."""
    try:
        return int(response.headers["Content-Length"])
    except (KeyError, TypeError, ValueError):
        return None


def fetch_fashion_mnist(cache_dir=None, base_url=None, progress=True):
    """Make sure the four Fashion-MNIST .gz files are in the cache; returns their directory.

    The directory is ``<cache_dir>/fashion-mnist``, ``cache_dir`` defaulting to
    :func:`default_cache_dir`. Files already there are verified by SHA-256 (once per process)
    and not downloaded again; missing or mismatching ones are downloaded from ``base_url``
    (default :data:`FASHION_MNIST_URL`). Raises ``DownloadError`` with instructions when offline.
    """
    directory = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    directory = directory / "fashion-mnist"
    base_url = (base_url or FASHION_MNIST_URL).rstrip("/") + "/"
    names = [f"{name}.gz" for pair in SPLIT_FILES.values() for name in pair]
    hint = (
        f". To use Fashion-MNIST without a connection, download {', '.join(names)} from "
        f"{base_url} on another machine and put them in {directory} (they are checked against "
        "their SHA-256), or pass data_dir= (--data-dir in examples/mnist.py) to read the four "
        "files from a directory of your choice."
    )
    for name in names:
        path = directory / name
        sha256 = FASHION_MNIST_SHA256[name]
        if path.is_file():
            try:
                verify_file(path, sha256)
                continue
            except ChecksumError as err:
                print(f"tinyvae: {err}; downloading it again", file=sys.stderr)
        download_file(base_url + name, path, sha256, progress=progress, hint=hint)
        remember_verified(path, sha256)  # download_file checked the digest
    return directory

"""Download files into a cache, verified by SHA-256, with atomic writes (standard library only).

A download is written with :func:`tinyvae.fileio.atomic_write` (a temporary file next to the
destination, renamed once complete), checked against its SHA-256 digest before the rename, and
bounded: at most ``max_bytes`` bytes, at most ``deadline`` seconds, redirects only within the
URL's own host. An interrupted, oversized or corrupt download never leaves a file under the
final name, and temporary files left by killed downloads are removed by the next one.
"""

import contextlib
import hashlib
import http.client
import os
import re
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from ..fileio import atomic_write
from .idx import SPLIT_FILES, ChecksumError, remember_verified, verify_file

try:
    import fcntl
except ImportError:  # Windows, which refuses to delete files that are open anyway
    fcntl = None

# Fashion-MNIST (Zalando Research, MIT license), https://github.com/zalandoresearch/fashion-mnist.
# The same files are served at http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/.
FASHION_MNIST_URL = (
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"
)

# SHA-256 of the .gz files as served (the compressed bytes), as listed by tensorflow_datasets in
# tensorflow_datasets/url_checksums/fashion_mnist.txt, with their sizes in bytes.
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
}
FASHION_MNIST_SIZES = {
    "train-images-idx3-ubyte.gz": 26_421_880,
    "train-labels-idx1-ubyte.gz": 29_515,
    "t10k-images-idx3-ubyte.gz": 4_422_102,
    "t10k-labels-idx1-ubyte.gz": 5_148,
}
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)

# Errors of the transfer itself (errors writing the file are turned into DownloadError first).
_NETWORK_ERRORS = (OSError, http.client.HTTPException)


class DownloadError(OSError):
    """A download failed (connection, HTTP error, size, deadline, redirect) or was not saved."""


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


def download_file(url, dest, sha256, progress=True, timeout=60.0, hint="", *, max_bytes,
                  deadline=1200.0):
    """Download ``url`` to ``dest`` atomically, verified against ``sha256``; returns ``dest``.

    Raises ``DownloadError`` (an ``OSError``), with ``hint`` appended to the message, when the
    transfer fails, sends more than ``max_bytes`` bytes, takes longer than ``deadline`` seconds
    in all, is redirected to another host, or cannot be written (e.g. a full disk); raises
    ``ChecksumError`` (a ``ValueError``) when the digest differs. In every case nothing is left
    under ``dest``'s name. ``timeout`` bounds each network operation; ``progress`` draws a text
    progress bar on stderr.
    """
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with _download_lock(dest.parent, [dest.name]):
            atomic_write(dest, lambda out: _transfer(url, out, sha256, progress, timeout, hint,
                                                     max_bytes, deadline, dest))
    except DownloadError:
        raise
    except OSError as err:  # the local disk: full, read-only, no permission
        raise _cannot_save(url, dest, err, hint) from err
    return dest


def _cannot_save(url, dest, err, hint):
    return DownloadError(f"download of {url}: could not save it as {dest} ({err}){hint}")


def _transfer(url, out, sha256, progress, timeout, hint, max_bytes, deadline, dest):
    """Write the body of ``url`` to the file ``out``; see download_file. Checks the digest."""
    digest = hashlib.sha256()
    bar = None
    watchdog = _Watchdog(deadline)
    opener = urllib.request.build_opener(
        _RedirectWithinHost(url, hint), _HTTPHandler(watchdog.watch), _HTTPSHandler(watchdog.watch)
    )
    try:
        with opener.open(url, timeout=timeout) as response:
            total = _content_length(response)
            if total is not None and total > max_bytes:
                raise DownloadError(
                    f"download of {url} failed: the server announced {total} bytes, more than "
                    f"the expected {max_bytes} bytes{hint}"
                )
            bar = _Progress(dest.name, total, progress)
            while chunk := response.read(min(1 << 16, max_bytes + 1 - bar.done)):
                bar.update(len(chunk))
                if bar.done > max_bytes:  # at most one byte more than allowed was read
                    raise DownloadError(
                        f"download of {url} failed: the server sent more than the expected "
                        f"{max_bytes} bytes{hint}"
                    )
                try:
                    out.write(chunk)
                except OSError as err:  # e.g. a full disk
                    raise _cannot_save(url, dest, err, hint) from err
                digest.update(chunk)
        if watchdog.expired:  # the watchdog's shutdown looks like the end of the body
            raise TimeoutError
    except DownloadError:
        raise
    except urllib.error.HTTPError as err:
        raise DownloadError(
            f"download of {url} failed: the server answered HTTP {err.code} ({err.reason}){hint}"
        ) from err
    except _NETWORK_ERRORS as err:
        if watchdog.expired:
            received = f"{bar.done} bytes received" if bar else "no answer yet"
            raise DownloadError(
                f"download of {url} failed: not finished within the {deadline:g} s deadline "
                f"({received}){hint}"
            ) from None
        reason = getattr(err, "reason", None) or err
        raise DownloadError(
            f"download of {url} failed ({reason}); this machine may be offline or the "
            f"server unreachable{hint}"
        ) from err
    finally:
        watchdog.cancel()
        if bar is not None:
            bar.close()
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


class _Watchdog:
    """Shuts down the sockets it watches once ``seconds`` have passed, ending any blocked read."""

    def __init__(self, seconds):
        self.expired = False
        self._sockets = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock):
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shutdown(sock)

    def _expire(self):
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shutdown(sock)

    def cancel(self):
        self._timer.cancel()


def _shutdown(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # already closed
        pass


class _WatchedConnections:
    """Mixin for urllib's HTTP(S) handlers: passes each connection's socket to ``watch``."""

    def __init__(self, watch, **kwargs):
        super().__init__(**kwargs)
        self.watch = watch

    def do_open(self, http_class, req, **kwargs):
        watch = self.watch

        class WatchedConnection(http_class):
            def connect(self):
                super().connect()
                watch(self.sock)

        return super().do_open(WatchedConnection, req, **kwargs)


class _HTTPHandler(_WatchedConnections, urllib.request.HTTPHandler):
    pass


class _HTTPSHandler(_WatchedConnections, urllib.request.HTTPSHandler):
    pass


class _RedirectWithinHost(urllib.request.HTTPRedirectHandler):
    """Follows redirects only to the scheme, host and port of ``url``."""

    def __init__(self, url, hint):
        self.url, self.hint = url, hint
        self.origin = urllib.parse.urlsplit(url)[:2]  # (scheme, netloc)

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urllib.parse.urlsplit(newurl)[:2] != self.origin:
            fp.close()
            raise DownloadError(
                f"download of {self.url} failed: the server redirected to {newurl}, which is "
                f"not on {self.origin[0]}://{self.origin[1]}; redirects to other hosts are "
                f"refused{self.hint}"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


@contextlib.contextmanager
def _download_lock(directory, names):
    """Hold a shared lock on ``directory`` while downloading into it.

    First, if no other process is downloading there, remove the temporary files that downloads
    of ``names`` left behind when killed. Without ``fcntl`` (Windows) it does nothing.
    """
    if fcntl is None:
        yield
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # another download into this directory is under way
            pass
        else:
            _remove_temporary_files(directory, names)
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


def _remove_temporary_files(directory, names):
    """Remove the temporary files of ``names`` in ``directory``: ``.<name>.XXXXXXXX.tmp``.

    That is the name :func:`tinyvae.fileio.atomic_write` gives them (``.part`` before it).
    """
    alternatives = "|".join(re.escape(name) for name in names)
    pattern = re.compile(rf"\.(?:{alternatives})\.[a-z0-9_]{{8}}\.(?:tmp|part)")
    for path in Path(directory).iterdir():
        if pattern.fullmatch(path.name):
            path.unlink(missing_ok=True)


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
    directory.mkdir(parents=True, exist_ok=True)
    with _download_lock(directory, names):
        for name in names:
            path = directory / name
            sha256 = FASHION_MNIST_SHA256[name]
            if path.is_file():
                try:
                    verify_file(path, sha256, FASHION_MNIST_SIZES[name])
                    continue
                except ChecksumError as err:
                    print(f"tinyvae: {err}; downloading it again", file=sys.stderr)
            download_file(base_url + name, path, sha256, progress=progress, hint=hint,
                          max_bytes=FASHION_MNIST_SIZES[name])
            remember_verified(path, sha256)  # download_file checked the digest
    return directory

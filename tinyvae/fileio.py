"""Writing files so that a crash never leaves half of one: temp file + fsync + rename.

    atomic_write(out / "summary.json", lambda f: f.write(text.encode()))

The temporary file lies next to the target (same file system, so the rename is atomic) and
``os.replace`` swaps it in: a reader sees the old file or the new one, never a mix, and a
symbolic link planted at the target is replaced, not followed.
"""

import os
import tempfile
from pathlib import Path

_UMASK = os.umask(0o022)
os.umask(_UMASK)  # (reading the umask means setting it; this puts it back)


def atomic_write(path, write):
    """Call ``write(file)`` on a temporary file next to ``path``, fsync it, rename it to ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it private; give it an ordinary file's mode
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable (POSIX)
        dir_fd = os.open(path.parent, os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

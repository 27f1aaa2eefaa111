"""Writing files so that a crash never leaves half of one: temp file + fsync + rename.

    atomic_write(out / "summary.json", lambda f: f.write(text.encode()))

The temporary file lies next to the target (same file system, so the rename is atomic) and
``os.replace`` swaps it in: a reader sees the old file or the new one, never a mix, and a
symbolic link planted at the target is replaced, not followed.
"""

import os
import re
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


def leftover_temp_files(directory, target_pattern):
    r"""Temporary files in ``directory`` of atomic_writes that were killed before their rename.

    target_pattern: a regular expression for the whole name of the file being written, e.g.
    ``r"checkpoint\.json"``; only names of atomic_write's own pattern ``.<target>.XXXXXXXX.tmp``
    match, so other files (``.checkpoint.json.tmp``, ``notes.tmp``) are never listed. Nothing
    tells a leftover from a write in progress: call it only where no other process writes.
    """
    # ".<target>.<the 8 random characters of tempfile.mkstemp>.tmp", as atomic_write names them
    pattern = re.compile(rf"\.(?:{target_pattern})\.[a-z0-9_]{{8}}\.tmp")
    return sorted(p for p in Path(directory).iterdir() if pattern.fullmatch(p.name) and (p.is_symlink() or p.is_file()))

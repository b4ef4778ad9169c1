"""Files that land whole and readable: temp file in the target directory, fsync, rename.

``tempfile.mkstemp`` creates files with mode 0600; published segments, blobs and RefgetStore
files must be readable by a web server or another user, so temp files get the mode an
ordinary ``open()`` would give (0666 minus the process umask).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["FILE_MODE", "mkstemp", "atomic_write_bytes"]

_UMASK = os.umask(0o022)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK


def mkstemp(*, dir: Path | str, prefix: str = ".tmp-", suffix: str = "") -> tuple[int, str]:
    """``tempfile.mkstemp`` in ``dir`` with an ordinary file's permissions."""
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=dir)
    os.fchmod(fd, FILE_MODE)
    return fd, name


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically and durably."""
    fd, tmp = mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

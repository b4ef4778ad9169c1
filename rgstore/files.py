"""Files that land whole and readable: temp file in the target directory, fsync, rename.

``tempfile.mkstemp`` creates files with mode 0600; published segments, blobs and RefgetStore
files must be readable by a web server or another user, so temp files get the mode an
ordinary ``open()`` would give (0666 minus the process umask, read when the file is made: a
group-shared store narrows the umask after import, see ``rgstore.sharing``).
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import stat
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .interrupts import deferred

__all__ = ["FILE_MODE", "mkstemp", "atomic_write_bytes", "write_verified", "read_chunks", "temp_target", "CHUNK",
           "flock_held", "current_umask", "open_lock", "lock_is_current", "remove_tree", "remove_dead_temps",
           "SCRATCH_FLOOR_S", "dirs_for"]

CHUNK = 1 << 20

SCRATCH_FLOOR_S = 10.0
"""Temps and scratch directories younger than this are kept whatever else holds: one is unlocked (or unmarked)
for a moment after it is made, before its writer's flock (or in-use lock) is what protects it."""

_UMASK = os.umask(0o022)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK
"""An ordinary file's mode under the umask at import (exports outside a store; ``mkstemp`` reads the umask anew)."""


def current_umask() -> int:
    """The process umask now, read without changing it (Linux ``/proc``; else a set-and-restore)."""
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def mkstemp(*, dir: Path | str, prefix: str = ".tmp-", suffix: str = "") -> tuple[int, str]:
    """``tempfile.mkstemp`` in ``dir`` with an ordinary file's permissions.

    A SIGTERM or Ctrl-C (``rgstore.interrupts``) arriving while the file is made is held until it
    exists with its name bound, then removes it: the caller never learns a name it could clean up.
    """
    made: tuple[int, str] | None = None
    try:
        with deferred():
            import tempfile  # here, not at the top: a read-only command (getseq) never pays its ~4 ms import

            try:
                made = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=dir)
            except PermissionError as exc:
                # The directory is what this user may not write, not a random temp name they never chose.
                raise PermissionError(exc.errno, exc.strerror, os.fspath(dir)) from None
            os.fchmod(made[0], 0o666 & ~current_umask())
    except BaseException:
        if made is not None:
            os.close(made[0])
            os.unlink(made[1])
        raise
    return made


def lock_is_current(fd: int, path: Path) -> bool:
    """Whether lock descriptor ``fd`` is still the file at ``path`` (one removed meanwhile is no rendezvous any more)."""
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def open_lock(path: Path, *, create: bool = True) -> int:
    """A descriptor to ``flock`` on ``path``, created (unless not ``create``) as an ordinary file if missing.

    Lock files are shared by every user of a store: one another user made without group write
    (an older rgstore made them 0644) is opened read-only, which ``flock`` accepts on local disks.
    """
    try:
        return os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o666)
    except PermissionError as exc:
        try:
            return os.open(path, os.O_RDONLY)
        except OSError:
            raise exc from None  # missing, in a directory we may not write: the refusal to create it


# ``.<target name>.<tempfile's 8 random characters>.tmp``: what the atomic writers below (and
# ``logfile.write_log_file``) name a file before it is renamed over its target.
_TEMP_NAME = re.compile(r"\.(.+)\.[a-z0-9_]{8}\.tmp", re.ASCII | re.DOTALL)


def temp_target(name: str) -> str | None:
    """The file name ``name`` is an atomic writer's temp file for, or None if it is not named like one."""
    match = _TEMP_NAME.fullmatch(name)
    return match.group(1) if match else None


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


def read_chunks(path: Path) -> Iterator[bytes]:
    """The bytes of ``path`` in 1 MiB pieces (files here can be gigabytes)."""
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            yield chunk


def write_verified(dest: Path, chunks: Iterable[bytes], sha256: str) -> bool:
    """Stream ``chunks`` into ``dest`` via a durable temp file, renamed only if they hash to ``sha256``.

    Returns False (and leaves ``dest`` untouched, no temp file behind) when the hash differs. The temp
    file's flock is held while bytes arrive: a sweep (``rgstore gc``) leaves a live download's temp
    file however long it stalls, and removes a killed writer's (the kernel dropped its lock).
    """
    import hashlib  # lazily: OpenSSL's ~3 ms import is for writers, not for every short command

    fd, tmp = mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            # Held until the temp file is renamed or removed (the descriptor closes after both), as in
            # BlobStore.put_chunks: a source that stalled after its last bytes leaves an old mtime, so
            # an unlocked moment before the rename would let a sweep delete the finished download.
            fcntl.flock(out.fileno(), fcntl.LOCK_EX)
            for chunk in chunks:
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
            if digest.hexdigest() != sha256:
                Path(tmp).unlink()
                return False
            os.replace(tmp, dest)
        return True
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def flock_held(path: Path, *, shared: bool = False) -> bool:
    """Whether a live process holds an exclusive flock on ``path`` (with ``shared``, any flock); False if free or gone.

    Marks and in-use files are held by their owner's flock for its lifetime, so a killed owner's
    mark reads as free at once: the kernel drops the lock with the process.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False  # removed: its owner is done
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if shared else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def remove_dead_temps(dest: Path, is_temp: Callable[[str], bool], *,
                      older_than: float = SCRATCH_FLOOR_S) -> list[Path]:
    """Remove the temps that killed writers of ``dest`` left beside it; returns those removed.

    ``is_temp(name)`` says whether a name in ``dest``'s folder is one of its writer's temps (only names
    starting ``.<dest name>.`` are asked). One goes only if it is this user's regular file or directory (never
    a symlink), unmodified for ``older_than`` seconds and with no flock held on it: a live writer holds its
    temp's flock from just after making it until it is renamed or removed, and the age covers the moment
    before. Best effort: a temp that cannot be removed stays, and the caller's write goes on.
    """
    prefix = f".{dest.name}."
    now = time.time()
    removed: list[Path] = []
    try:
        with os.scandir(dest.parent) as entries:
            names = [e.name for e in entries if e.name.startswith(prefix) and is_temp(e.name)]
    except OSError:
        return removed
    for name in names:
        tmp = dest.parent / name
        try:
            info = tmp.lstat()
            # Another user's temp may be one we cannot open to test its lock: theirs to remove.
            if info.st_uid != os.geteuid() or now - info.st_mtime < older_than or flock_held(tmp):
                continue
            if stat.S_ISDIR(info.st_mode):
                shutil.rmtree(tmp)  # never follows a link inside it
            elif stat.S_ISREG(info.st_mode):
                tmp.unlink()
            else:
                continue
        except OSError:  # renamed into place or removed by another export meanwhile, or not ours to remove
            continue
        removed.append(tmp)
    return removed


@contextmanager
def dirs_for(path: Path) -> Iterator[None]:
    """Make directory ``path`` (and missing parents) for a write in the block; if the block fails, remove those it made.

    Only the ones still empty go (deepest first; another process's file in one keeps it): a refused
    copy (a full disk, ``ulimit -f``) leaves no empty ``blobs/xx/`` behind in a published directory.
    """
    missing = []
    at = path
    while not os.path.lexists(at) and at != at.parent:
        missing.append(at)
        at = at.parent
    path.mkdir(parents=True, exist_ok=True)
    try:
        yield
    except BaseException:
        for directory in missing:  # deepest first
            try:
                directory.rmdir()
            except OSError:
                break
        raise


def remove_tree(path: Path) -> None:
    """``shutil.rmtree(path)``, whose refusal names the full path of the entry it could not remove.

    Python's descriptor-based rmtree raises with the entry's bare name (``Permission denied:
    gene.fna``), which tells a user whose cache directory another account made read-only nothing
    about where the file is. A file or symlink in the directory's place (a damaged cache entry) is
    unlinked instead: rmtree refuses both, and a symlink's target is never entered.
    """
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink()
        return

    def named(where: str, exc: BaseException) -> None:
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename is not None:
            raise OSError(exc.errno, exc.strerror, where) from exc  # errno picks the subclass: PermissionError
        raise exc

    import shutil  # lazily, as tempfile above

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=lambda _func, where, exc: named(where, exc))
    else:
        shutil.rmtree(path, onerror=lambda _func, where, info: named(where, info[1]))


def hold_dir(path: Path) -> int:
    """An open descriptor of directory ``path`` holding its exclusive flock: the mark of live work in it."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return fd


def dead_work_dirs(parent: Path, named: Callable[[str], object], *, min_age_s: float,
                   own_only: bool = False) -> Iterator[tuple[Path, bool]]:
    """The directories in ``parent`` that ``named`` accepts and no live process holds (``hold_dir``), with whether each is young.

    Each is yielded while this process holds its flock, so no other sweeper acts on it meanwhile;
    "young" (modified under ``min_age_s`` ago) marks one whose maker may not have locked it yet.
    ``own_only`` skips directories another user owns. Symlinks and unreadable entries are skipped.
    """
    try:
        entries = [entry for entry in os.scandir(parent) if named(entry.name)]
    except OSError:
        return
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode) or (own_only and st.st_uid != os.geteuid()):
                continue
            young = time.time() - st.st_mtime < min_age_s
            fd = os.open(entry.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # live work's
            yield Path(entry.path), young
        finally:
            os.close(fd)

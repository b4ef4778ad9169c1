"""Marks for outside copies of views (alias TSVs, FHR files) that a committed command has yet to refresh.

A command whose events touch a view with an outside copy creates ``STORE/.sync-pending-*`` inside
its write transaction (so before it commits) and holds an flock on it until it has refreshed the
copies, then removes it. A process killed in between (or whose refresh failed) leaves the mark
unlocked: the next writable open refreshes every copy and removes such marks, and `rgstore
verify` names them. A mark is made nameless (O_TMPFILE), locked, then linked under its name, so no
other process ever sees it unlocked while its owner lives and a kill leaves no half-made file (where
O_TMPFILE is missing: made under a temporary name, locked, then renamed; the next writable open
removes a half-made one once it is a minute old); it is fsynced with its directory before the
commit, so a power cut that keeps the commit keeps the mark too. An interrupt (KeyboardInterrupt, or the
CLI's SIGTERM SystemExit) may surface just after LMDB's commit returned, so a command that ends
in one keeps its mark (``settle``): at worst the next open refreshes copies that were current.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from .environment import fsync_dir
from .files import flock_held, mkstemp

__all__ = ["PendingSync", "abandoned_marks", "held_marks", "wait_released"]

PREFIX = ".sync-pending-"
_MAKING = ".sync-making-"
_MAKING_GRACE_S = 60.0


class PendingSync:
    """One command's mark, held until ``done`` (refreshed: removed) or ``abandon`` (left for the next open)."""

    def __init__(self, root: Path) -> None:
        made = _make_locked(root)
        if made is not None:
            self._fd, self.path = made
            return
        fd, tmp = mkstemp(dir=root, prefix=_MAKING)
        self.path = root / (PREFIX + Path(tmp).name.removeprefix(_MAKING))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.rename(tmp, self.path)
            # Durable before the command's commit (a power loss must not keep the commit and lose the
            # mark): the file under its final name, then its directory entry (one journal commit on ext4).
            os.fsync(fd)
            fsync_dir(root)
        except BaseException:
            os.close(fd)
            for path in (Path(tmp), self.path):  # nothing is committed yet: no refresh is owed
                path.unlink(missing_ok=True)
            raise
        self._fd = fd

    def done(self) -> None:
        """The copies are refreshed (or nothing was committed): remove the mark."""
        self.path.unlink(missing_ok=True)
        self.abandon()

    def settle(self, exc: BaseException, *, committed: bool) -> None:
        """After ``exc`` ended the command: keep the mark if it may have committed, else remove it."""
        if committed or not isinstance(exc, Exception):
            self.abandon()  # an interrupt is raised at the first bytecode after the commit's C call
        else:
            self.done()

    def abandon(self) -> None:
        """Release the mark but keep it: the next writable open refreshes every copy."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _make_locked(root: Path) -> tuple[int, Path] | None:
    """A new mark, locked and durable before it has a name (O_TMPFILE), so no kill leaves a half-made one.

    None where the filesystem (or OS) has no O_TMPFILE: the caller then makes it under a temporary name.
    """
    flag = getattr(os, "O_TMPFILE", 0)
    if not flag:
        return None
    try:
        fd = os.open(root, flag | os.O_RDWR, 0o600)
    except OSError:
        return None
    linked: Path | None = None
    try:
        import secrets  # lazily: it imports hmac, hence OpenSSL (~3 ms), which a read never needs

        fcntl.flock(fd, fcntl.LOCK_EX)
        for _ in range(100):
            path = root / (PREFIX + secrets.token_hex(6))
            try:
                # A dir_fd makes CPython call linkat(AT_SYMLINK_FOLLOW); plain link() would not follow /proc's link.
                os.link(f"/proc/self/fd/{fd}", path, src_dir_fd=fd, follow_symlinks=True)
            except FileExistsError:
                continue
            linked = path
            break
        else:
            raise FileExistsError(f"no free mark name in {root}")
        os.fsync(fd)  # the file under its name, then that name: durable before the command's commit
        fsync_dir(root)
    except BaseException as exc:
        os.close(fd)
        if linked is not None:
            linked.unlink(missing_ok=True)  # nothing is committed yet: no refresh is owed
        if isinstance(exc, FileNotFoundError) and linked is None:
            return None  # no /proc to link from: the temporary-name way
        raise
    return fd, linked


def abandoned_marks(root: Path) -> list[Path]:
    """Marks that no live process holds (and half-made ones a minute old: their command never committed), sorted."""
    out = []
    now = time.time()
    for path in sorted([*root.glob(PREFIX + "*"), *root.glob(_MAKING + "*")]):
        try:
            if path.name.startswith(_MAKING) and now - path.stat().st_mtime < _MAKING_GRACE_S:
                continue  # its maker may not have locked it yet
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            if os.fstat(fd).st_nlink:  # else its owner removed it (done) between our open and our lock
                out.append(path)
        except BlockingIOError:
            continue
        finally:
            os.close(fd)
    return out


def held_marks(root: Path) -> list[Path]:
    """Marks a live process holds right now: commands that committed and are still refreshing copies."""
    out = []
    for path in sorted(root.glob(PREFIX + "*")):
        if flock_held(path):
            out.append(path)
    return out


def wait_released(marks: list[Path], *, timeout: float) -> bool:
    """Wait until no process holds any of ``marks`` (each refresh takes milliseconds); False on timeout."""
    deadline = time.monotonic() + timeout
    pending = list(marks)
    while pending:
        pending = [path for path in pending if flock_held(path)]
        if not pending:
            break
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True

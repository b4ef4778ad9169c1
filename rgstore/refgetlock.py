"""The RefgetStore's writer lock, taken exactly the way gtars 0.10.0 takes it.

gtars guards each commit with ``<store>/.rgstore.lock``: created with ``O_CREAT|O_EXCL``, holding
a JSON payload (pid, hostname, timestamps, operation), removed by its owner, broken by others
when the owner is provably dead (same host, no such pid) or silent for ``STALE_AFTER_S``. A
breaker first takes gtars' break claim ``.rgstore.lock.break`` (``O_EXCL``, ``"<pid> <host>"``),
checks that the lock is still the one it judged stale, and only then renames it away: two
contenders that judged one dead lock stale at once could otherwise each rename it, the second
taking away the lock the first had just created in its place. gtars' own ``lock_for_batch`` costs ~100 ms to
release (its heartbeat thread ticks at 100 ms); rgstore holds the lock for milliseconds, so it
speaks the same protocol directly and needs no heartbeat.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import ConflictError
from .refgetgate import refget_gate

__all__ = ["BREAK_NAME", "LOCK_NAME", "PENDING_SUFFIX", "STALE_AFTER_S", "refget_write_lock"]

LOCK_NAME = ".rgstore.lock"
STALE_AFTER_S = 120.0
"""gtars' default ``GTARS_STORE_LOCK_STALE_AFTER``."""
BREAK_NAME = f"{LOCK_NAME}.break"
BREAK_STALE_S = 60.0
"""gtars 0.10.0 takes over a break claim whose mtime is older than this (its breaker died mid-break)."""


def _payload(operation: str) -> dict[str, Any]:
    import gtars  # type: ignore[import-untyped]  # its own __version__: importlib.metadata scans every installed distribution (~40 ms)

    now = datetime.now(UTC)
    return {
        "pid": os.getpid(),
        "hostname": socket.gethostname(),
        "started_at": now.isoformat(),
        "heartbeat_at": now.isoformat(),
        "heartbeat_epoch": int(now.timestamp()),
        "operation": operation,
        "gtars_version": str(gtars.__version__),
    }


def _raw(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _parse(raw: bytes | None) -> dict[str, Any] | None:
    try:
        data = json.loads(raw) if raw is not None else None
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _read(path: Path) -> dict[str, Any] | None:
    return _parse(_raw(path))


def _age(path: Path) -> float | None:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stale(path: Path, holder: dict[str, Any] | None) -> bool:
    age = _age(path)
    if holder is None:
        # Unreadable payload: trust the mtime alone. A lock that is gone (its holder let go between our
        # failed create and this read) is not stale: judging it so let a breaker rename away the live
        # lock the next writer had just made (`_break` cannot tell "absent" from "absent, then made").
        return age is not None and age > STALE_AFTER_S
    if holder.get("hostname") == socket.gethostname() and not _pid_alive(int(holder.get("pid", 0))):
        return True
    heartbeat_age = time.time() - float(holder.get("heartbeat_epoch", 0))
    return heartbeat_age > STALE_AFTER_S and (age is None or age > STALE_AFTER_S)


def _steal(path: Path) -> None:
    stolen = path.with_name(f"{LOCK_NAME}.stale.{os.getpid()}.{time.time_ns()}")
    try:
        os.rename(path, stolen)
    except FileNotFoundError:
        return
    stolen.unlink(missing_ok=True)


def _break(path: Path, judged: bytes | None) -> bool:
    """Break the lock at ``path`` if it still holds ``judged`` (the bytes found stale); False: another is breaking it.

    The break claim makes judging and renaming one step among contenders (rgstore's and gtars'
    alike): without it, a contender that judged the dead lock stale a moment late renamed away the
    live lock another had just put in its place, and both went on as holders.
    """
    claim = path.with_name(BREAK_NAME)
    try:
        fd = os.open(claim, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        age = _age(claim)
        if age is not None and age > BREAK_STALE_S:
            _steal(claim)  # its breaker died mid-break, as gtars judges it
        return False
    try:
        os.write(fd, f"{os.getpid()} {socket.gethostname()}".encode())
        os.close(fd)
        if _raw(path) == judged:
            _steal(path)
    finally:
        claim.unlink(missing_ok=True)
    return True


PENDING_SUFFIX = ".new"
"""A lock file written but not yet linked into place is ``.rgstore.lock.<pid>.<nanos>.new`` (``rgstore gc`` sweeps old ones)."""


def _create(path: Path, payload: bytes) -> None:
    """Create the lock file at ``path`` holding ``payload``; FileExistsError if it exists.

    The payload is written and fsynced under a private name first, then hard-linked to ``path``
    (``link`` fails if ``path`` exists, as ``O_EXCL`` does), so the lock never exists empty: a
    writer killed, or out of disk, between creating the lock and writing its owner left an
    unreadable lock that held every writer off for ``STALE_AFTER_S``. A filesystem without
    hard links gets gtars' own create-then-write.
    """
    pending = path.with_name(f"{LOCK_NAME}.{os.getpid()}.{time.time_ns()}{PENDING_SUFFIX}")
    try:
        with open(pending, "xb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(pending, path)
            return
        except FileExistsError:
            raise
        except OSError:
            pass  # no hard links here (some network and FUSE filesystems)
    finally:
        pending.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(payload)
        fh.flush()
        os.fsync(fh.fileno())


HEARTBEAT_S = 20.0
"""How often a long holder (``heartbeat=True``) refreshes the lock, well inside ``STALE_AFTER_S``."""


def _beat(path: Path, mine: dict[str, Any], stop: threading.Event) -> None:
    """Refresh the lock's heartbeat (payload and mtime) until ``stop``, while the lock is still ours."""
    while not stop.wait(HEARTBEAT_S):
        holder = _read(path)
        if holder is not None and (holder.get("pid"), holder.get("hostname")) != (mine["pid"], mine["hostname"]):
            return  # judged stale and taken over after all: never write into another holder's lock
        now = datetime.now(UTC)
        data = json.dumps({**mine, "heartbeat_at": now.isoformat(), "heartbeat_epoch": int(now.timestamp())},
                          indent=2).encode()
        try:
            fd = os.open(path, os.O_WRONLY)
        except OSError:
            return
        try:
            # Overwritten in place, then cut to length: a reader meeting a torn payload trusts the
            # mtime (see _stale), which this write has just moved.
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
        finally:
            os.close(fd)


@contextmanager
def refget_write_lock(
    root: Path, operation: str, *, timeout: float = STALE_AFTER_S, heartbeat: bool = False
) -> Iterator[None]:
    """Hold the RefgetStore writer lock of ``root`` for the block; ConflictError after ``timeout`` s.

    A block that may outlast ``STALE_AFTER_S`` (a backup copying every sequence file to another
    disk) passes ``heartbeat``, as gtars' ``lock_for_batch`` does, so no contender breaks the lock.
    """
    path = root / LOCK_NAME
    deadline = time.monotonic() + timeout
    gate = refget_gate(root)
    # Another thread of this process first (rgstore.refgetgate): a gtars commit waiting for our lock holds the GIL.
    if not gate.acquire(timeout=timeout):
        raise ConflictError(f"the RefgetStore at {root} is locked by another thread of this process for more than "
                            f"{timeout:.0f}s; retry when it finishes")
    try:
        with _file_lock(path, root, operation, deadline, timeout, heartbeat):
            yield
    finally:
        gate.release()


@contextmanager
def _file_lock(path: Path, root: Path, operation: str, deadline: float, timeout: float,
               heartbeat: bool) -> Iterator[None]:
    """``refget_write_lock``'s lock file, taken by this thread (which holds the in-process gate)."""
    backoff = 0.005
    mine = _payload(operation)
    while True:
        try:
            _create(path, json.dumps(mine, indent=2).encode())
        except FileExistsError:
            raw = _raw(path)
            holder = _parse(raw)
            if _stale(path, holder) and _break(path, raw):
                continue
            if time.monotonic() >= deadline:
                who = (
                    f"pid {holder.get('pid')} on {holder.get('hostname')} ({holder.get('operation')})"
                    if holder else "an unknown writer"
                )
                raise ConflictError(
                    f"the RefgetStore at {root} is locked by {who} for more than {timeout:.0f}s; "
                    "retry when it finishes"
                ) from None
            time.sleep(backoff)
            backoff = min(backoff * 2, 1.0)
            continue
        break
    stop = threading.Event()
    beater = threading.Thread(target=_beat, args=(path, mine, stop), name="refget-lock-heartbeat", daemon=True)
    try:
        if heartbeat:
            beater.start()  # inside: a thread that cannot start (a memory limit) must not leave the lock behind
        yield
    finally:
        if beater.ident is not None:  # started
            stop.set()
            beater.join()
        holder = _read(path)
        # Someone may have judged us stale and taken over: never remove their lock.
        owner = (holder.get("pid"), holder.get("hostname")) if holder is not None else None
        if owner == (mine["pid"], mine["hostname"]):
            path.unlink(missing_ok=True)

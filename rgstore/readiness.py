"""Readiness: whether a server can answer from its store now, and whether a follower's copy is current.

A load balancer asks many times a second, so ``ReadinessProbe.check`` looks at the store at most
once per ``CACHE_S``: a ``stat`` of ``log/data.mdb`` (is it still the file this handle opened?),
one short read transaction (the head and the mirror's pull records) and a ``stat`` of ``refget/``.
It never walks or hashes anything: content is ``rgstore verify``'s work. Its one-line answers never
name a filesystem path (the server withholds its layout).
"""

from __future__ import annotations

import os
import stat
import threading
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import lmdb
import msgspec

from .errors import RgstoreError, StoreClosedError

if TYPE_CHECKING:
    from .store import Store

__all__ = ["ReadyState", "ReadinessProbe", "freshness_bound", "CACHE_S", "MIN_BOUND_S"]

CACHE_S = 1.0
"""How long one look at the store answers readiness checks."""
MIN_BOUND_S = 30.0
"""The least age of a follower's last successful pull that makes it not ready (a few slow rounds are normal)."""


def freshness_bound(interval_s: float) -> float:
    """Seconds a follower's last successful pull may be old while it is ready: 3 intervals, at least 30 s."""
    return max(3 * interval_s, MIN_BOUND_S)


class ReadyState(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What a readiness check answers: ready or not, and one line saying why not."""

    ready: bool
    detail: str
    head_seq: int | None = None
    last_pull: str | None = None
    """A mirror's last successful pull (UTC, ``Z``)."""


class _Look(msgspec.Struct, kw_only=True):
    """What one look at the store found (``problem``: why it cannot be read)."""

    problem: str | None = None
    head: int = 0
    replica: bool = False
    last_pull: datetime | None = None
    failing_since: str | None = None


class ReadinessProbe:
    """Readiness of a server over ``store``; ``follow_interval_s`` when a puller keeps it current (``--follow``)."""

    def __init__(self, store: Store, *, follow_interval_s: float | None = None, cache_s: float = CACHE_S) -> None:
        self._store = store
        self._bound = freshness_bound(follow_interval_s) if follow_interval_s is not None else None
        self._cache_s = cache_s
        self._lock = threading.Lock()
        self._look: tuple[float, _Look] | None = None

    def check(self, *, max_age_s: float | None = None) -> ReadyState:
        """Ready when the store is readable and, on a mirror that must be current, its last pull is recent.

        A mirror must be current on a following server (bound: ``freshness_bound`` of its interval)
        or when ``max_age_s`` is given (that bound instead); a primary's copy is always current.
        """
        look = self._cached_look()
        if look.problem is not None:
            return ReadyState(ready=False, detail=look.problem)
        last = look.last_pull.isoformat().replace("+00:00", "Z") if look.last_pull else None
        bound = max_age_s if max_age_s is not None else self._bound
        if bound is not None and (look.replica or self._bound is not None):
            failing = f"; pulls have failed since {look.failing_since} (see replica.error in /status)" \
                if look.failing_since else ""
            if look.last_pull is None:
                return ReadyState(ready=False, detail=f"this mirror has not completed a pull yet{failing}",
                                  head_seq=look.head)
            age = (datetime.now(timezone.utc) - look.last_pull).total_seconds()
            if age > bound:
                return ReadyState(ready=False, head_seq=look.head, last_pull=last, detail=(
                    f"this mirror's last successful pull was {age:.0f}s ago, more than {bound:g}s{failing}"))
        return ReadyState(ready=True, detail="ok", head_seq=look.head, last_pull=last)

    def _cached_look(self) -> _Look:
        now = time.monotonic()
        with self._lock:
            if self._look is not None and now - self._look[0] < self._cache_s:
                return self._look[1]
        look = _look(self._store)  # outside the lock: a slow disk must not queue every other check behind it
        with self._lock:
            self._look = (time.monotonic(), look)
        return look


def _look(store: Store) -> _Look:
    """One look at the store: can its log and RefgetStore be read, and where does a mirror stand."""
    from .mirror import PULL_ERROR, PullError

    try:
        store.environment.check_in_place()
    except StoreClosedError:
        return _Look(problem="the store's directory was deleted, moved or replaced since this server opened it "
                             "(restart the server where the store is now)")
    try:
        with store.read() as txn:
            head, _ = store.log.head(txn)
            replica = store.log.meta_get(txn, "replica_of") is not None
            last = store.log.meta_get(txn, "last_pull")
            error = store.log.meta_get(txn, PULL_ERROR)
    except (RgstoreError, lmdb.Error) as exc:
        return _Look(problem=f"the store's log cannot be read ({exc.__class__.__name__})")
    try:
        mode = os.stat(store.refget_path).st_mode
    except FileNotFoundError:
        mode = None  # no RefgetStore yet (no genome): nothing to read there
    except OSError as exc:
        return _Look(problem=f"the store's refget/ directory cannot be read ({exc.strerror})")
    if mode is not None and not (stat.S_ISDIR(mode) and os.access(store.refget_path, os.R_OK | os.X_OK)):
        return _Look(problem="the store's refget/ directory cannot be read (not a directory this user may read)")
    try:
        last_pull = datetime.fromisoformat(last.decode()) if last else None
        failing = msgspec.json.decode(error, type=PullError).since if error and replica else None
    except (ValueError, msgspec.DecodeError):
        return _Look(problem="the mirror's pull records are unreadable (run `rgstore mirror pull` once)")
    return _Look(head=head, replica=replica, last_pull=last_pull, failing_since=failing)

"""Readiness: whether a server can answer from its store now, and whether a follower's copy is current.

A load balancer asks many times a second, so ``ReadinessProbe.check`` looks at the store at most
once per ``CACHE_S``: a ``stat`` of ``log/data.mdb`` (is it still the file this handle opened?),
one short read transaction (the head and the mirror's pull records) and a ``stat`` of ``refget/``.
It never walks or hashes anything: content is ``rgstore verify``'s work. Its one-line answers never
name a filesystem path (the server withholds its layout).

The handle a server answers from, and its reopening when the store at its path is replaced, are
``rgstore.servedstore``'s; the probe looks through it at the handle being served now.
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
from .servedstore import CACHE_S, ServedStore

if TYPE_CHECKING:
    from .store import Store

__all__ = ["ReadyState", "ReadinessProbe", "freshness_bound", "MIN_BOUND_S"]

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
    moved: bool = False
    """The store at the handle's path is no longer the one it opened (``problem`` says so)."""
    head: int = 0
    replica: bool = False
    promoted: bool = False
    """Promoted from a mirror to a primary (``mirror promote``): current without pulls."""
    last_pull: datetime | None = None
    failing_since: str | None = None


class ReadinessProbe:
    """Readiness of a server over ``store``; ``follow_interval_s`` when a puller keeps it current (``--follow``).

    Over a ``ServedStore`` it looks at the handle being served now; when the store at the path was
    replaced, it serves the one there (``ServedStore.reopen``, blocking: see ``replaced``) and
    answers from it, so a routine restore never reads as not ready. Only a replacement that cannot
    be served yet is not ready, and it says why.
    """

    def __init__(self, store: Store | ServedStore, *, follow_interval_s: float | None = None,
                 cache_s: float = CACHE_S) -> None:
        self._store = store
        self._bound = freshness_bound(follow_interval_s) if follow_interval_s is not None else None
        self._cache_s = cache_s
        self._lock = threading.Lock()
        self._look: tuple[float, Store, _Look] | None = None

    def check(self, *, max_age_s: float | None = None) -> ReadyState:
        """Ready when the store is readable and, on a mirror that must be current, its last pull is recent.

        A mirror must be current on a following server (bound: ``freshness_bound`` of its interval)
        or when ``max_age_s`` is given (that bound instead); a primary's copy is always current, a
        mirror promoted under a following server included (its detail says so).
        """
        look = self._cached_look()
        if look.problem is not None:
            return ReadyState(ready=False, detail=look.problem)
        last = look.last_pull.isoformat().replace("+00:00", "Z") if look.last_pull else None
        bound = max_age_s if max_age_s is not None else self._bound
        if look.promoted and self._bound is not None:
            # The follower stopped, but the store is a primary now (disaster recovery): a load balancer that
            # dropped it for stale pulls would drop the new primary. Still ready; the detail says why.
            return ReadyState(ready=True, head_seq=look.head, last_pull=last, detail=(
                "ok; this store was promoted to a primary, which is always current, so this server's follower "
                "stopped (see replica.error in /status)"))
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

    def replaced(self) -> bool:
        """True when the handle served now was found replaced at its path: ``check`` then opens the one there.

        That open blocks (it may even catch up views): a server runs such a check off its event loop.
        """
        return isinstance(self._store, ServedStore) and self._served_look(self._store).moved

    def _cached_look(self) -> _Look:
        if not isinstance(self._store, ServedStore):
            return self._cached_look_at(self._store)
        served = self._store
        look = self._served_look(served)
        if not look.moved:
            return look
        # The store at the path was replaced (a restore renamed into place): serve the one there now, as the
        # next request would (it looks once a second), rather than call a healthy server not ready meanwhile.
        served.reopen()
        return self._served_look(served, again=True)

    def _served_look(self, served: ServedStore, *, again: bool = False) -> _Look:
        """The look at the handle served now, or why ``served`` cannot answer (``again``: not the cached look)."""
        why = served.problem or served.catching_up
        if why is not None:
            return _Look(problem=why)
        store = served.acquire()  # not closed under the look if another store replaces it meanwhile
        try:
            return self._cached_look_at(store, reopens=True, fresh=again)
        finally:
            served.release(store)

    def _cached_look_at(self, store: Store, *, reopens: bool = False, fresh: bool = False) -> _Look:
        now = time.monotonic()
        with self._lock:
            if not fresh and self._look is not None and now - self._look[0] < self._cache_s \
                    and self._look[1] is store:
                return self._look[2]
        look = _look(store, reopens=reopens)  # outside the lock: a slow disk must not queue every other check
        with self._lock:
            self._look = (time.monotonic(), store, look)
        return look


def _look(store: Store, *, reopens: bool = False) -> _Look:
    """One look at the store: can its log and RefgetStore be read, and where does a mirror stand."""
    from .mirror import PULL_ERROR, PullError

    try:
        store.environment.check_in_place()
    except StoreClosedError:
        then = ("this server serves the store there once it opens" if reopens
                else "restart the server where the store is now")  # a plain handle is never reopened
        return _Look(moved=True, problem=(
            f"the store's directory was deleted, moved or replaced since this server opened it ({then})"))
    try:
        with store.read() as txn:
            head, _ = store.log.head(txn)
            replica = store.log.meta_get(txn, "replica_of") is not None
            promoted = not replica and store.log.meta_get(txn, "promoted_from") is not None
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
    return _Look(head=head, replica=replica, promoted=promoted, last_pull=last_pull, failing_since=failing)

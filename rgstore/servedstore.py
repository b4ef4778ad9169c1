"""The store a server worker answers from: replaced at its path, it is reopened without a restart.

``ServedStore`` is the handle a server answers from: when the directory at its path is replaced by
another store (a restored backup, a rebuilt mirror renamed into place), it opens that one and serves
it from then on, without a restart; the old handle is closed once no request holds it. Each request
holds the handle it answers from until its answer is sent; views an upgrade left behind are caught
up in a child process while the worker answers only liveness and readiness.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import lmdb

from .errors import RgstoreError, StoreClosedError

if TYPE_CHECKING:
    from .store import Store

__all__ = ["ServedStore", "CACHE_S"]

CACHE_S = 1.0
"""How long one look at the store answers readiness checks (and how often a ``ServedStore`` looks for a replacement)."""


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class ServedStore:
    """The read-only handle a server answers from at ``store.path``, reopened when another store replaces it there.

    ``due()`` says, at most once per ``check_s``, whether the store at the path is no longer the
    one the current handle opened (``log/data.mdb`` is another file, or gone: what ``/readyz``
    compares); ``reopen()`` (blocking: run it off the event loop) then opens the store there and
    serves it from then on, logging one line; if it cannot be opened, the old handle goes on
    answering and ``problem`` (and ``unopened``) say why (one line, no path). Each request
    ``acquire``s the handle it uses and ``release``s it when its answer is sent: a replaced handle is
    closed only once no request holds it, and if its directory comes back to the path meanwhile, it
    is served again (LMDB opens those files once per process). A handle opened with views left to
    catch up (``Store.stale_views``) is ``catching_up`` until ``catch_up_views`` is done: meanwhile
    only liveness and readiness answer.
    """

    def __init__(self, store: Store, *, check_s: float = CACHE_S, log: Callable[[str], None] = _say) -> None:
        self.path = store.path
        self._store = store
        self._log_id = _log_id(store)
        self._check_s = check_s
        self._say = log
        self._lock = threading.Condition(threading.Lock())  # notified as requests release handles (_open_again)
        self._reopening = threading.Lock()
        self._next_look = time.monotonic() + check_s
        self._held: dict[Store, int] = {}
        self._retired: set[Store] = set()
        self._child: subprocess.Popen[str] | None = None  # the catch-up's, while it runs
        self._closed = False
        self.problem: str | None = None
        """Why requests cannot be answered as they should (a replaced store that does not open, failed catch-up)."""
        self.unopened: str | None = None
        """Why the store now at the path cannot be served (None while the current handle is the store there)."""
        self.catching_up: str | None = (f"catching up views {', '.join(store.stale_views)} after an upgrade"
                                        if store.stale_views else None)
        """Why requests other than liveness and readiness are refused now (``catch_up_views`` runs)."""

    @property
    def current(self) -> Store:
        """The handle new requests answer from."""
        return self._store

    def due(self) -> bool:
        """True when the store at the path was replaced and a reopen is due (looked at once per ``check_s``)."""
        now = time.monotonic()
        if now < self._next_look:  # every request asks: most answer here, without the lock
            return False
        with self._lock:
            if now < self._next_look:
                return False
            self._next_look = now + self._check_s
        try:
            self._store.environment.check_in_place()
        except StoreClosedError:
            return True
        self.problem = self.unopened = None  # the old directory came back
        return False

    def reopen(self) -> Store:
        """Serve the store now at the path from now on, if it opens read-only; the handle to answer from."""
        from .store import Store

        with self._reopening:  # one open at a time; requests meanwhile answer from the old handle
            old = self._store
            try:
                old.environment.check_in_place()
            except StoreClosedError:
                pass
            else:
                self.problem = self.unopened = None
                return old  # another request's reopen got here first, or the old directory came back
            back = self._serve_again()
            if back is not None:
                return back
            try:
                new = Store.open(self.path, readonly=True)
                log_id = _log_id(new)
            except (RgstoreError, OSError, lmdb.Error) as exc:
                self._cannot_open(exc)
                return old
            other = f"; a different log than before ({self._log_id})" if log_id != self._log_id else ""
            self._serve(new, f"the store at {self.path} was replaced; now serving the one there (log {log_id}, "
                             f"head seq {new.head()[0]}){other}")
            self._log_id = log_id
            return new

    def _serve(self, new: Store, line: str) -> None:
        """Answer from ``new`` from now on; the old handle is closed by the last request holding it."""
        with self._lock:
            closing = self._swap(new)
        if closing is not None:
            closing.close()
        self._say(f"rgstore: worker {os.getpid()}: {line}")

    def _swap(self, new: Store) -> Store | None:
        """Make ``new`` the current handle (under ``_lock``); the old one, when no request holds it (to close)."""
        old, self._store = self._store, new
        self._retired.discard(new)
        self.problem = self.unopened = None
        self.catching_up = None
        if self._held.get(old):
            self._retired.add(old)
            return None
        return old

    def _serve_again(self) -> Store | None:
        """Serve again a replaced handle whose directory is back at the path while a request still holds it.

        Swapping back to the previous store while a long download still reads it: LMDB refuses a second
        open of the same files in one process ("already open") until that request ends, and the handle
        still open is the store there, so it answers again. None when no held handle is the one there.
        """
        with self._lock:  # a request releasing it closes it only while it is retired: decided under the lock
            back = next((store for store in self._retired if _in_place(store)), None)
            if back is None:
                return None
            closing = self._swap(back)
        if closing is not None:
            closing.close()
        log_id = _log_id(back)
        other = f"; a different log than before ({self._log_id})" if log_id != self._log_id else ""
        self._say(f"rgstore: worker {os.getpid()}: the store at {self.path} was replaced by the one this worker "
                  f"served before, still open for a request; serving it again (log {log_id}, head seq "
                  f"{back.head()[0]}){other}")
        self._log_id = log_id
        return back

    def catch_up_views(self) -> None:
        """Catch up the views ``catching_up`` names, then answer from a fresh handle (blocking: run it in a thread).

        The work runs in a child process (an open that may write catches them up), as LMDB refuses a second
        handle on one store within a process; on failure ``problem`` says why, and the views stay unread.
        """
        self._say(f"rgstore: worker {os.getpid()}: catching up views {', '.join(self.current.stale_views)} of "
                  f"{self.path} (after an upgrade); /readyz says 503 until they are")
        with self._lock:
            if self._closed:
                return
            # Killed by ``close`` (the worker stops): no writer of a stopped server goes on in the background.
            child = self._child = subprocess.Popen(
                [sys.executable, "-c", _CATCH_UP_CHILD, str(self.path), str(os.getpid())],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            )
        _, err = child.communicate()
        with self._lock:
            self._child = None
            if self._closed:
                return
        try:
            if child.returncode != 0:
                last = (err.strip().splitlines() or [f"exit status {child.returncode}"])[-1]
                raise RgstoreError(last)
            self._open_again()
        except (RgstoreError, OSError, lmdb.Error) as exc:
            self._say(f"rgstore: worker {os.getpid()}: the views of {self.path} could not be caught up ({exc}); "
                      "restart the server once the cause is fixed")
            self.problem = (f"the store's views could not be caught up after an upgrade "
                            f"({str(exc).replace(str(self.path), '(the store)')}); see the server log")
            return
        self._say(f"rgstore: worker {os.getpid()}: views of {self.path} caught up; answering from them")

    def _open_again(self) -> None:
        """Replace the current handle by a fresh one on the same files (its views caught up meanwhile).

        LMDB allows one handle on a store per process: the old one is closed first, once no request
        holds it, and requests wait (the lock) only for the close and the open, never for each other.
        """
        from .store import Store

        with self._lock:
            while self._held.get(self._store):
                self._lock.wait()
            if self._closed:  # the server stopped meanwhile: nothing to answer from
                return
            self._store.close()
            try:
                new = Store.open(self.path, readonly=True, catch_up_views=False)
            except BaseException:
                self._store = Store.open(self.path, readonly=True, catch_up_views=False, allow_stale_views=True)
                raise
            self._store = new
            if new.stale_views:
                raise RgstoreError(f"views {', '.join(new.stale_views)} are still out of step with the log")
            self.problem = None
            self.catching_up = None

    def _cannot_open(self, exc: BaseException) -> None:
        if not (self.path / "log" / "data.mdb").exists():
            why = "nothing is there now"
        else:
            text = str(exc).replace(str(self.path), "(the store)")
            why = f"the one there now does not open ({exc.__class__.__name__}: {text})"
        problem = (f"the store's directory was deleted, moved or replaced since this server opened it, and {why}; "
                   "this server serves the store there once it opens")
        if problem != self.problem:  # once per reason, not once a second
            self._say(f"rgstore: worker {os.getpid()}: the store at {self.path} was replaced, and it cannot be served "
                      f"yet ({exc}); still answering from the old handle, /readyz says 503")
        self.problem = self.unopened = problem

    def acquire(self) -> Store:
        """The current handle, held for one request until ``release``."""
        with self._lock:
            store = self._store
            self._held[store] = self._held.get(store, 0) + 1
        return store

    def release(self, store: Store) -> None:
        """The request holding ``store`` is done; a replaced handle no request holds any more is closed."""
        with self._lock:
            left = self._held[store] - 1
            if left:
                self._held[store] = left
                return
            del self._held[store]
            self._lock.notify_all()
            if store not in self._retired:
                return
            self._retired.discard(store)
        store.close()

    def close(self) -> None:
        """Close the current handle and every replaced one, and kill a catch-up still running (the server stops)."""
        with self._lock:
            self._closed = True
            child, stores = self._child, [self._store, *self._retired]
            self._retired.clear()
        if child is not None and child.poll() is None:
            child.kill()  # its write transaction is aborted, never half-committed; the next start catches up again
            child.wait()
        for store in stores:
            store.close()


_CATCH_UP_CHILD = """\
import os, sys

if sys.platform.startswith("linux"):
    # A worker killed outright (SIGKILL, the OOM killer) cannot kill this child: the kernel does. No thread
    # of its own could, as the open holds the GIL while it waits for the store's write lock.
    import ctypes, signal
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != int(sys.argv[2]):  # the worker died before that took hold
        sys.exit(1)
from rgstore.store import Store
Store.open(sys.argv[1], readonly=True).close()
"""
"""The catch-up child: a read-only open catches views up through a writer of its own (and never creates a store)."""


def _in_place(store: Store) -> bool:
    """Whether ``store`` is still the store at its path (its ``log/data.mdb`` is the file it opened)."""
    try:
        store.environment.check_in_place()
    except StoreClosedError:
        return False
    return True


def _log_id(store: Store) -> str:
    with store.read() as txn:
        return store.log.log_id(txn)

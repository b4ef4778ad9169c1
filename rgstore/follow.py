"""Following: a loop that keeps a mirror current by pulling from its upstream every few seconds.

``rgstore serve --follow SOURCE`` runs this in one background process (the only writer), while the
API workers open the store read-only and see new events on their next request.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import FrameType

from .errors import (
    ChainError,
    IntegrityError,
    InvalidInputError,
    LogMismatchError,
    RemoteError,
    RgstoreError,
    StoreClosedError,
)
from .interrupts import interrupt, redelivered
from .mirror import pull, record_pull_error
from .mirrorstatus import status as mirror_status
from .store import Store

__all__ = ["follow", "parse_interval", "main", "FollowerProcess", "RESTART_DELAY_S"]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
# ASCII digits only: str.isdigit() also accepts "²", which float() then rejects with a traceback.
_INTERVAL = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)?", re.ASCII)
MIN_INTERVAL = 0.1
MAX_INTERVAL = 86_400.0


def parse_interval(text: str) -> float:
    """Seconds in an interval such as ``5s``, ``500ms``, ``2m`` or ``10`` (seconds); 100ms to 24h."""
    clean = text.strip().lower()
    match = _INTERVAL.fullmatch(clean)
    if match is None:
        raise InvalidInputError(f"invalid interval {text!r}: use e.g. 5s, 500ms, 2m")
    seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds < MIN_INTERVAL:
        raise InvalidInputError(f"interval {text!r} is too short: at least 100ms, so the follower does not spin")
    if seconds > MAX_INTERVAL:  # also catches digits long enough to overflow to inf
        raise InvalidInputError(f"interval {text!r} is too long: at most 24h")
    return seconds


def follow(store_path: Path, source: str, interval: float, *, max_rounds: int | None = None,
           parent: int | None = None, with_sequences: bool = False) -> int:
    """Pull from ``source`` into the store every ``interval`` seconds until SIGTERM/SIGINT (which cut a round short).

    Errors of one round (upstream down, transient HTTP failures) are reported on stderr once (and
    again when they change or clear) and retried next round; a refused upstream (foreign log,
    diverged, tampering) stops the loop with exit 1, a store promoted to a primary meanwhile with exit 0
    (both recorded for ``/status``). When the store's directory is moved, deleted or
    restored over while the loop holds it, the store then at the path is followed into (once one
    opens there: an empty one is never created). With
    ``parent``, the loop also ends when that process is gone (the server was killed).
    ``with_sequences`` also fetches every genome sequence each round (for a mirror that other
    mirrors read sequences from).
    """
    stopping = False

    def stopped() -> None:
        nonlocal stopping
        stopping = True

    rounds = 0
    failing: str | None = None  # the error being retried: an outage is logged once, not every round
    replaced = False
    with _stoppable(stopped), Store.open(store_path, actor="rgstore-follower") as store:
        while not stopping:
            if parent is not None and os.getppid() != parent:
                break
            try:
                store.environment.check_in_place()  # a replaced store is told apart from a failing round
                # The log first: a diverged or tampered upstream stops the follower. Only the whole round's
                # success ends a run of failing rounds (its content may fail next), so "since" stays put.
                pull(store, source, clears_pull_error=False)
                try:
                    pull(store, source, with_blobs=True, with_sequences=with_sequences)
                except IntegrityError as exc:
                    # Content (a blob, cache file or sequence, perhaps a third party's remote genome)
                    # failing its digest is never stored; the log stays current, and it is retried.
                    raise RemoteError(f"content from {source} failed its check, not stored: {exc}") from None
                if failing is not None:
                    print(f"follow: {source} is back; caught up to seq {store.head()[0]}", file=sys.stderr, flush=True)
                    failing = None
            except (LogMismatchError, ChainError, IntegrityError) as exc:
                if _promoted(store):
                    # `mirror promote` from another shell: nothing is wrong upstream, and the server goes on
                    # serving a primary, always current. A stop, not a failure (exit 0: no "restart it" line).
                    print(f"follow: {store.path} was promoted to a primary while this server followed {source}; "
                          "the follower stopped and the server goes on serving it as a primary",
                          file=sys.stderr, flush=True)
                    _record(store, f"the store was promoted to a primary (`rgstore mirror promote`) and no longer "
                                   f"pulls from {source}; a primary is always current")
                    return 0
                print(f"follow: refusing {source}: {exc}", file=sys.stderr, flush=True)
                _record(store, f"refusing the upstream, the follower stopped: {exc}")
                return 1
            except StoreClosedError as exc:
                # The store was moved, deleted or restored over while this process held it: this handle can never
                # write again. A store now at the path (a restored backup, a rebuilt mirror renamed into place) is
                # followed into, as the server's workers serve it (its next pull refuses a foreign log); until one
                # opens there (an operator between two renames), wait for it, never creating one.
                if _opens(store_path):
                    replaced = True
                    break
                why = f"{exc}; no store opens at {store_path} now"
                if why != failing:
                    print(f"follow: {why}; retrying every {interval:g}s", file=sys.stderr, flush=True)
                failing = why
            except (RgstoreError, OSError) as exc:
                if str(exc) != failing:
                    print(f"follow: {exc}; retrying every {interval:g}s", file=sys.stderr, flush=True)
                failing = str(exc)
                _record(store, failing)
            rounds += 1
            if max_rounds is not None and rounds >= max_rounds:
                break
            deadline = time.monotonic() + interval
            while not stopping and time.monotonic() < deadline:
                time.sleep(min(0.1, interval))
    if replaced and not stopping:
        print(f"follow: the store at {store_path} was replaced; following {source} into the store there now",
              file=sys.stderr, flush=True)
        return follow(store_path, source, interval, max_rounds=None if max_rounds is None else max_rounds - rounds,
                      parent=parent, with_sequences=with_sequences)
    return 0


class _Stopped(BaseException):
    """A stop signal unwinding a follower's round (no ``except Exception`` takes it for a failed round)."""


@contextmanager
def _stoppable(stopped: Callable[[], None]) -> Iterator[None]:
    """SIGTERM and SIGINT call ``stopped`` and, while the block runs, end it at once (quietly).

    A round can wait minutes on an upstream that trickles its answer (each read within the read
    timeout), and a server's ``FollowerProcess.stop`` gave up on the follower after 30 s, leaving it
    running. The round is unwound instead, as a Ctrl-C unwinds ``mirror pull``: through ``interrupt``,
    so a ``deferred`` section (an import being recorded) ends first, and under ``redelivered``, so a
    stop raised inside a weakref callback is not lost. What the round committed stays. The handlers
    stay after the block (as before): an in-process caller's late SIGTERM only sets the flag.
    """
    active = True

    def stop(signum: int, _frame: FrameType | None) -> None:
        stopped()
        if active:  # once the block has ended, nothing is left to unwind: the caller sees ``stopped``
            interrupt(_Stopped(), signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with suppress(_Stopped), redelivered():
        try:
            yield
        finally:
            active = False


def _opens(path: Path) -> bool:
    """Whether a store opens read-only at ``path`` (never creating one where a store was moved away)."""
    try:
        Store.open(path, readonly=True).close()
    except (RgstoreError, OSError):
        return False
    return True


def _promoted(store: Store) -> bool:
    """Whether the store was promoted to a primary (``mirror promote``), which a follower must not pull into."""
    try:
        return mirror_status(store, check_upstream=False).promoted
    except (RgstoreError, OSError):
        return False  # unreadable now: the refusal itself is then the clearer thing to say


def _record(store: Store, message: str) -> None:
    """Record a failed round for the server's ``/status`` and ``/readyz``; a store that cannot take it changes nothing."""
    try:
        record_pull_error(store, message)
    except (RgstoreError, OSError):
        pass  # stderr already says why; the next round tries again


RESTART_DELAY_S = 1.0
"""How long a supervised follower that a signal killed stays down before it is started again."""


class FollowerProcess:
    """``python -m rgstore.follow`` as a child of the server, started again whenever a signal kills it.

    A follower killed by the OOM killer or a stray ``kill -9`` would otherwise leave the server
    answering from a mirror that silently stopped following. One that exits by itself (stopped,
    a refused upstream, a crash) stays down: its reason is on stderr, and a restart would repeat it.
    """

    def __init__(self, args: list[str]) -> None:
        self._args = args
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self.restarts = 0
        self.process = self._spawn()
        self._watcher = threading.Thread(target=self._watch, name="rgstore-follower", daemon=True)
        self._watcher.start()

    def _spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "rgstore.follow", *self._args])

    def _watch(self) -> None:
        while True:
            code = self.process.wait()
            # Ctrl-C reaches the follower too: SIGINT is a stop, not a crash.
            if self._stopping.is_set() or code >= 0 or code == -signal.SIGINT:
                if code > 0 and not self._stopping.is_set():
                    print(f"follow: the follower exited with status {code}; this server no longer follows "
                          "its source (restart it once the cause above is fixed)", file=sys.stderr, flush=True)
                return
            print(f"follow: the follower was killed by signal {-code}; starting it again", file=sys.stderr, flush=True)
            if self._stopping.wait(RESTART_DELAY_S):
                return
            with self._lock:
                if self._stopping.is_set():
                    return
                self.process = self._spawn()
                self.restarts += 1

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the follower (SIGTERM: its round is cut short) and never start it again; killed past ``timeout``."""
        with self._lock:
            self._stopping.set()
            process = self.process
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:  # a server must not leave it running: a kill mid-round is safe (OOM)
            process.kill()
            process.wait()


def main(argv: list[str] | None = None) -> int:
    """``python -m rgstore.follow STORE SOURCE INTERVAL [--parent PID] [--with-sequences]``: the follower process."""
    parser = argparse.ArgumentParser(prog="rgstore-follow")
    parser.add_argument("store", type=Path)
    parser.add_argument("source")
    parser.add_argument("interval")
    parser.add_argument("--parent", type=int)
    parser.add_argument("--with-sequences", action="store_true")
    args = parser.parse_args(argv)
    return follow(args.store, args.source, parse_interval(args.interval), parent=args.parent,
                  with_sequences=args.with_sequences)


if __name__ == "__main__":
    sys.exit(main())

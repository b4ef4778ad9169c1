"""Lazy sequence fetches in long-lived worker processes: at most one per fetch slot, started on first need.

gtars holds the GIL while it waits on the network, so a fetch in the server's own process would
stall every request of the worker. A fresh child per sequence paid Python's start-up, rgstore's
imports and gtars' for every fetch (most of a small sequence's cost); a worker here pays them once
and then fetches one sequence at a time, asked over a pipe with one JSON line and answering with
one (``{"fetched": bool}`` or ``{"error": class name, "message": ...}``). It verifies the residues
against their digest exactly as an in-process fetch does (``rgstore.remotefetch.fetch_missing``)
and opens the store anew per request, so a store replaced at the served path is fetched into.
A mirror's missing refpkg blob is fetched the same way (``fetch_blob``: ``rgstore.blobfetch``), and so
is a live cache entry's missing file (``fetch_cache_file``: ``rgstore.cachecopy``).

A worker past its deadline, or stopped (``FetchWorkers.stop``: a request cancelled at shutdown), is
killed and replaced on the next need. A worker exits when its stdin reaches EOF (the server closed
it, or died) and, mid-fetch, when its per-request alarm goes off, so none outlives the server.
"""

from __future__ import annotations

import collections
import json
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from rgstore import errors
from rgstore.errors import RemoteError

__all__ = ["FetchWorkers", "cache_fetch_key", "child_error"]

_WORKER = """
import json, os, signal, sys
from pathlib import Path
answers = os.fdopen(os.dup(1), "w")  # the answers' own channel: a library's stray print goes to stderr instead
os.dup2(2, 1)
from rgstore.cachecopy import fetch_missing_cache_file
from rgstore.errors import RgstoreError
from rgstore.remotefetch import fetch_missing
from rgstore.store import Store
while True:
    line = sys.stdin.buffer.readline()
    if not line:
        break  # EOF: the server closed the pipe, or is gone
    request = json.loads(line)
    signal.alarm(int(request["alarm"]))  # dies on its own if orphaned: gtars waits on a silent server forever
    retire = False
    try:
        with Store.open(Path(request["store"]), readonly=True) as store:
            if "blob" in request:  # a mirror's refpkg blob, from its upstream
                answer = {"fetched": store.blobs.fetch_missing_here(request["blob"], request["size"])}
            elif "cache" in request:  # a mirror's cache file, of an entry its log lists
                answer = {"fetched": fetch_missing_cache_file(store, request["cache"], request["path"])}
            else:
                answer = {"fetched": fetch_missing(store, request["digest"])}
    except RgstoreError as exc:
        answer = {"error": type(exc).__name__, "message": str(exc)}
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # a bug or a gtars panic (pyo3's PanicException is no Exception): say it, leave
        answer, retire = {"crash": f"{type(exc).__name__}: {exc}"}, True
    signal.alarm(0)
    answers.write(json.dumps(answer) + "\\n")
    answers.flush()
    if retire:
        break
"""


class _WorkerDied(Exception):
    """The worker ended (killed, crashed) before it answered; ``sent``: whether its pipe took the request."""

    def __init__(self, *, sent: bool) -> None:
        super().__init__()
        self.sent = sent


_CHATTER = (b"Processing ", b"Added ", b"Imported ", b"note: run with `RUST_BACKTRACE")
"""gtars' import reporting itself on stdout (the worker's stderr), and Rust's hint after a panic:
not last words worth keeping."""


class _Worker:
    """One fetch worker process and what it has sent but not been read yet."""

    def __init__(self) -> None:
        # bufsize=0: answers are read from the raw descriptor, under select, with a deadline.
        self.process = subprocess.Popen([sys.executable, "-c", _WORKER], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
        self.stopped = False
        self.used = False
        self._pending = b""
        self._said: collections.deque[bytes] = collections.deque(maxlen=1)
        # Drained all along (a full pipe would block the worker); only the last line is kept, for a death's reason.
        self._drain = threading.Thread(target=self._read_stderr, name="fetch-worker-stderr", daemon=True)
        self._drain.start()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        with self.process.stderr:
            for line in self.process.stderr:
                line = line.strip()
                if line and not line.startswith(_CHATTER):
                    self._said.append(line[:300])

    def last_words(self) -> str:
        """The last line the ended worker wrote on stderr (a traceback's last line, a panic), or ''."""
        self._drain.join(5.0)
        return self._said[-1].decode(errors="replace") if self._said else ""

    def ask(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send one request and read its answer; TimeoutError past ``timeout``, _WorkerDied on EOF."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.used = True
        try:
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
        except (BrokenPipeError, ValueError):  # ValueError: stdin closed by a shutdown meanwhile
            raise _WorkerDied(sent=False) from None
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            if select.select([fd], [], [], left)[0]:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    raise _WorkerDied(sent=True)
                self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def kill(self) -> None:
        """Kill the process, if it still runs (reaped by ``end``)."""
        if self.process.poll() is None:
            self.process.kill()

    def end(self, grace: float = 0.0) -> int:
        """Close its stdin (an idle worker exits), kill it after ``grace`` seconds, reap it; its exit code."""
        if self.process.stdin is not None:
            try:
                self.process.stdin.close()
            except OSError:
                pass
        try:
            return self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()
        finally:
            if self.process.stdout is not None:
                self.process.stdout.close()


class FetchWorkers:
    """The fetch workers of one API worker process: at most ``slots`` busy at once, idle ones kept for the next fetch."""

    def __init__(self, store_path: Path, *, slots: int, timeout: float) -> None:
        self.store_path = store_path
        self.slots = slots
        self.timeout = timeout
        self._idle: list[_Worker] = []
        self._busy: dict[str, _Worker] = {}
        self._guard = threading.Lock()
        self._closed = False

    def fetch(self, digest: str) -> bool:
        """Blocking: ``fetch_missing`` of ``digest`` in a worker; True if it fetched the sequence; see ``_run``."""
        return self._run(digest, {"digest": digest}, f"sequence SQ.{digest}")

    def fetch_blob(self, sha256: str, size: int | None) -> bool:
        """Blocking: ``fetch_missing_blob`` of ``sha256`` in a worker; True once the blob is here; see ``_run``."""
        return self._run(sha256, {"blob": sha256, "size": size}, f"blob {sha256}")

    def fetch_cache_file(self, key: str, relative: str) -> bool:
        """Blocking: ``fetch_missing_cache_file`` of entry ``key``'s ``relative`` in a worker; True once it is here."""
        return self._run(cache_fetch_key(key, relative), {"cache": key, "path": relative},
                         f"cache file {relative!r} of entry {key}")

    def _run(self, key: str, fields: dict[str, Any], what: str) -> bool:
        """Ask a worker to fetch ``what`` (``fields`` say which; ``key`` names it for ``stop``).

        RemoteError past the deadline or when the worker is stopped or dies; the worker's
        RgstoreError is re-raised by class name (``child_error``). A reused worker found gone when
        the request is sent (killed while idle) is replaced and the fetch asked again, once; not one
        that died after taking it (killed mid-fetch: OOM, a gtars panic), whose download may have
        reached the upstream.
        """
        for attempt in (0, 1):
            worker = self._take()
            with self._guard:
                closed = self._closed
                if not closed:
                    self._busy[key] = worker
            if closed:  # closed while this worker started: it fetches nothing after shutdown
                worker.end()
                raise RemoteError(f"the server is shutting down; the {what.split()[0]} was not fetched")
            reused = worker.used
            try:
                answer = worker.ask({"store": os.fspath(self.store_path), **fields,
                                     "alarm": int(self.timeout) + 30}, self.timeout)
            except TimeoutError:
                worker.end()
                raise RemoteError(f"fetching {what} took more than {self.timeout:.0f}s; gave up") from None
            except _WorkerDied as died:
                code = worker.end()
                if reused and not died.sent and not worker.stopped and attempt == 0:
                    continue  # it was gone before the request went out (died while idle): no upstream saw it
                said = worker.last_words()
                raise RemoteError(f"fetching {what} failed (fetch worker exit {code}"
                                  f"{': ' + said if said else ''})") from None
            finally:
                with self._guard:
                    if self._busy.get(key) is worker:
                        del self._busy[key]
            if "crash" in answer:
                worker.end(grace=5.0)
                raise RemoteError(f"fetching {what} failed: {answer['crash']}")
            self._give_back(worker)
            if "error" in answer:
                raise child_error(str(answer["error"]), str(answer["message"]))
            return bool(answer["fetched"])
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self, digest: str) -> None:
        """Kill the worker fetching ``digest``, if one is; its ``fetch`` then raises RemoteError."""
        with self._guard:
            worker = self._busy.get(digest)
            if worker is not None:
                worker.stopped = True
                worker.kill()

    def close(self) -> None:
        """Stop every worker: idle ones exit on EOF, busy ones are killed; later fetches fail."""
        with self._guard:
            self._closed = True
            idle, self._idle = self._idle, []
            for worker in self._busy.values():
                worker.stopped = True
                worker.kill()
        for worker in idle:
            worker.end(grace=5.0)

    def _take(self) -> _Worker:
        with self._guard:
            if self._closed:
                raise RemoteError("the server is shutting down; the sequence was not fetched")
            while self._idle:
                worker = self._idle.pop()
                if worker.process.poll() is None:
                    return worker
                worker.end()  # died while idle: reaped, replaced below
        return _Worker()

    def _give_back(self, worker: _Worker) -> None:
        with self._guard:
            # Not a stopped one: a stop landing just after its answer was read has killed it or is about to.
            if not self._closed and not worker.stopped and len(self._idle) < self.slots \
                    and worker.process.poll() is None:
                self._idle.append(worker)
                return
        worker.end(grace=5.0)


def cache_fetch_key(key: str, relative: str) -> str:
    """What names the fetch of a cache file for ``stop`` and shared downloads: never a digest or a sha256."""
    return f"cache:{key}/{relative}"


def child_error(name: str, message: str) -> errors.RgstoreError:
    """The fetch worker's error, re-made here by class name (RemoteError for an unknown name or constructor)."""
    cls = getattr(errors, name, None)
    if not (isinstance(cls, type) and issubclass(cls, errors.RgstoreError)):
        return RemoteError(message)
    try:
        return cls(message)
    except TypeError:  # a constructor taking more than a message (ChainError): keep the words
        return RemoteError(message)

"""gtars' FASTA import run in a child process, so the parent can drive a progress bar meanwhile.

gtars 0.10.0's ``add_sequence_collection_from_fasta`` holds the GIL for the whole import (20-35 s
for a human genome) and reports no progress, so in-process no bar can move. Run as a script
(``python -I gtarsimport.py``, no rgstore imports: only the standard library and gtars), it reads
``{"path": sys.path, "store": ..., "fasta": ...}`` as a line on stdin, opens the Raw RefgetStore
and answers ``{"ready": true}``, then on a ``go`` line imports the FASTA and answers ``{"digest",
"was_new"}`` (each answer a JSON line on the stdout it was started with; ``{"error": type name, "args"}``
on failure). Its own fd 1 goes to stderr, so nothing gtars or another library prints can pass for
an answer, and the parent skips any line that is not one regardless. It ignores SIGINT, SIGTERM and
SIGHUP (a terminal's Ctrl-C or hangup reaches the whole process group): the
parent decides, after the import, what to take back; it dies with its parent (PDEATHSIG), as an
in-process import would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .progress import Progress

__all__ = ["GtarsImport", "run"]
_POLL_S = 0.2
_MAX_TEXT = 8000  # a reply must fit a pipe's buffer (64 KiB): the parent reads it only after the child ended


def _die_with_parent(parent: int) -> None:
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: an orphan finishes its import, which gc takes back
        return
    if os.getppid() != parent:  # the parent died before the prctl took effect
        os._exit(1)


_answers: IO[str] = sys.stdout  # the answers' own channel once ``run`` has moved fd 1 aside


def _reply(message: dict[str, Any]) -> None:
    _answers.write(json.dumps(message) + "\n")
    _answers.flush()


def _error(exc: BaseException) -> dict[str, Any]:
    return {"error": type(exc).__name__, "args": [a if isinstance(a, int) else str(a)[:_MAX_TEXT] for a in exc.args]}


def run() -> None:
    """Open the RefgetStore, say so (``{"ready": true}``), and import the FASTA once told ``go``; reply on stdout."""
    global _answers
    # gtars (Rust println!) and Python code print on fd 1: sharing it, a stray line before
    # ``{"ready": true}`` kept the parent from reading any answer (seen under 4 concurrent lazy fetches).
    # Answers get their own duplicate of the pipe; fd 1 (so sys.stdout) goes to stderr.
    _answers = os.fdopen(os.dup(1), "w")
    sys.stdout.flush()
    os.dup2(2, 1)
    request = json.loads(sys.stdin.readline())
    sys.path[:] = request["path"]
    from gtars.refget import RefgetStore  # type: ignore[import-untyped]

    store = request["store"]
    exists = os.path.exists(os.path.join(store, "rgstore.json"))
    try:
        handle = RefgetStore.on_disk(store)
        handle.set_quiet(True)  # gtars prints "Processing …", "Added …", "Imported …" on stdout (stderr here)
        if not exists:  # the parent's ``open_refget`` refused any store that is not Raw
            handle.disable_encoding()  # the mode is fixed at creation; Encoded corrupts IUPAC in 0.10.0
    except Exception as exc:
        _reply(_error(exc))
        return
    _reply({"ready": True})
    if sys.stdin.readline().strip() != "go":  # the parent gave up before the import began
        _reply({"cancelled": True})
        return
    try:
        meta, was_new = handle.add_sequence_collection_from_fasta(request["fasta"])
    except Exception as exc:  # the parent maps it exactly as it mapped the in-process exception
        _reply(_error(exc))
        return
    _reply({"digest": str(meta.digest), "was_new": bool(was_new)})


class GtarsImport:
    """The child import of ``fasta`` into the RefgetStore at ``store`` (both as gtars takes paths).

    ``follow`` drives a bar until the child ends; ``wait`` lets it finish whatever interrupted the
    parent, so ``digest``/``was_new`` are known and what it committed can be taken back;
    ``error`` is its exception as ``(type name, args)``, ``failure`` any other way it ended.
    """

    def __init__(self, store: str, fasta: str) -> None:
        self.digest: str | None = None
        self.was_new = False
        self.error: tuple[str, list[Any]] | None = None
        self.failure = ""
        self._done = False
        # -I: no user site, no script dir on sys.path (ours holds modules named like the stdlib's);
        # the parent's sys.path goes along so gtars resolves exactly as in this process.
        self.proc = subprocess.Popen(
            [sys.executable, "-I", __file__, str(os.getpid())], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"path": sys.path, "store": store, "fasta": fasta}).encode() + b"\n")
        self.proc.stdin.flush()
        # The child's handle is open once it says so: the import starts from the store as it was then.
        self.ready = self._first_answer() == {"ready": True}

    def _first_answer(self) -> dict[str, Any] | None:
        """The child's first answer (None if it ended without one); lines that are none are skipped."""
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                return None
            reply = self._read(line)
            if reply is not None:
                return reply

    def start(self) -> None:
        """Let the child import (its handle is open); a child that failed to open the store just ends."""
        assert self.proc.stdin is not None
        try:
            with self.proc.stdin:
                if self.ready:
                    self.proc.stdin.write(b"go\n")
        except BrokenPipeError:  # it ended already: ``wait`` says how
            pass

    def follow(self, bar: Progress, total: int) -> None:
        """Advance ``bar`` by the bytes the child has read and written (at most ``total``) until it ends.

        gtars reads the FASTA (smoothly) and then writes each sequence (one write per sequence),
        so read plus written bytes move through the whole import. They come from the kernel's
        ``/proc/PID/io``, which needs nothing of the child; where it is unreadable the bar stays.
        The child's own start-up reads (under 1 MB) count too: hence the cap. The last reading is
        taken from the ended child before it is reaped (WNOWAIT), so the bar gets all it did.
        """
        shown = 0
        while True:
            try:
                ended = os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
            except ChildProcessError:  # reaped elsewhere (SIGCHLD ignored): nothing more to read
                ended = True
            done = min(self._io(), total)
            if done > shown:
                bar.update(done - shown)
                shown = done
            if ended:
                return
            time.sleep(_POLL_S)

    def _io(self) -> int:
        try:
            with open(f"/proc/{self.proc.pid}/io", "rb") as fh:
                fields = dict(line.split(b": ", 1) for line in fh.read().splitlines() if b": " in line)
            return int(fields[b"rchar"]) + int(fields[b"wchar"])
        except (OSError, KeyError, ValueError):
            return 0

    def wait(self) -> None:
        """Wait for the child to end (a further KeyboardInterrupt is held until then) and read its reply.

        A child not yet started is told to end without importing. Idempotent.
        """
        if self._done:
            return
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if not self.proc.stdin.closed:
            self.proc.stdin.close()
        held: BaseException | None = None
        while True:
            try:
                self.proc.wait()
                break
            except KeyboardInterrupt as exc:  # Ctrl-C again: its commit must still be known to be undone
                held = held or exc
        with self.proc.stdout:  # the reply fits the pipe's buffer (messages are capped), so it is all there
            replies = [r for r in map(self._read, self.proc.stdout.read().splitlines()) if r is not None]
        reply = replies[-1] if replies else None  # its last answer says how it ended
        self._done = True
        if self.error is None and reply is not None and "digest" in reply:
            self.digest, self.was_new = str(reply["digest"]), bool(reply.get("was_new"))
        elif self.error is None and (reply is None or "cancelled" not in reply):
            self.failure = f"the gtars import process ended with exit status {self.proc.returncode} and no reply"
        if held is not None:
            raise held

    def _read(self, line: bytes) -> dict[str, Any] | None:
        """A reply line as a dict (an error reply is kept in ``error``); None for any other line."""
        try:
            reply = json.loads(line)
        except ValueError:
            return None
        if not isinstance(reply, dict) or not reply.keys() & {"ready", "digest", "error", "cancelled"}:
            return None
        if "error" in reply:
            self.error = (str(reply["error"]), list(reply.get("args", [])))
        return reply


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a kill of the process group: the parent unwinds for both
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a terminal's hangup reaches the whole group too
    _die_with_parent(int(sys.argv[1]))
    run()

"""Claims: an interrupt raised through ``interrupt`` waits for the end of a ``deferred`` block, and
an import interrupted (or refused) while it is being recorded leaves nothing in the RefgetStore."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from rgstore.interrupts import deferred, interrupt, redelivered
from rgstore.refgetstore import ingest_fasta
from rgstore.store import Store


def test_interrupt_outside_a_deferred_block_raises_at_once() -> None:
    with pytest.raises(SystemExit) as caught:
        interrupt(SystemExit(143))
    assert caught.value.code == 143


def test_a_real_signal_during_a_deferred_block_is_raised_after_its_last_statement() -> None:
    done: list[str] = []

    def stop(signum: int, _frame: Any) -> None:
        interrupt(SystemExit(128 + signum))

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        with pytest.raises(SystemExit) as caught:
            with deferred():
                with deferred():  # nested: only the outermost block raises
                    os.kill(os.getpid(), signal.SIGTERM)
                    done.append("inner")
                done.append("outer")
        assert caught.value.code == 128 + signal.SIGTERM
        assert done == ["inner", "outer"]
        with deferred():  # the pending interrupt was consumed
            done.append("again")
        assert done[-1] == "again"
    finally:
        signal.signal(signal.SIGTERM, previous)


class _Referent:
    pass


def test_a_signal_whose_exception_a_weakref_callback_dropped_is_sent_again() -> None:
    # Seen in CI: SIGTERM landed in the import system's module-lock weakref callback, CPython printed
    # "Exception ignored" and dropped the SystemExit, and `genome init` waited on a FIFO for good.
    def stop(signum: int, _frame: Any) -> None:
        interrupt(SystemExit(128 + signum), signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        with pytest.raises(SystemExit) as caught:
            with redelivered():
                referent = _Referent()
                ref = weakref.ref(referent, lambda _: os.kill(os.getpid(), signal.SIGTERM))
                del referent  # the callback runs here; the handler's SystemExit is raised inside it and dropped
                assert ref() is None
                time.sleep(30)  # the signal sent again wakes this (without it, the sleep ends and nothing raises)
        assert caught.value.code == 128 + signal.SIGTERM
    finally:
        signal.signal(signal.SIGTERM, previous)


_DROPPED_AS_THE_BLOCK_ENDS = """
import os, signal, sys, time, weakref
from rgstore_cli.getseq import signals_unwind

class Referent:
    pass

with signals_unwind():
    referent = Referent()
    ref = weakref.ref(referent, lambda _: os.kill(os.getpid(), signal.SIGTERM))
    del referent  # the last statement: the SIGTERM handled in the callback is dropped
print("the block ran to its end", flush=True)
time.sleep(2)  # (a signal resent now would meet the restored SIG_DFL)
print("exiting", flush=True)
"""


def test_a_signal_dropped_as_its_block_ends_unwinds_it_there_not_killing_the_process_after() -> None:
    # The resending thread outlived the block: signals_unwind had put SIG_DFL back, and the resent
    # SIGTERM killed the process outright (no atexit, no flush), 10 ms after its command had finished.
    done = subprocess.run([sys.executable, "-c", _DROPPED_AS_THE_BLOCK_ENDS], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent, timeout=60)
    assert (done.returncode, done.stdout) == (128 + signal.SIGTERM, "")


def test_a_stop_dropped_as_a_followers_block_ends_is_not_sent_again_after_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # A follower's handler only sets its flag once its block has ended, so nothing told the resending
    # thread the signal was handled: it went on sending SIGTERM for 5 s after the block.
    import threading

    from rgstore import interrupts
    from rgstore.follow import _stoppable

    monkeypatch.setattr(interrupts, "RESEND_TRIES", 3)  # (the old code's resending ends within the test)
    stops: list[None] = []
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        with _stoppable(lambda: stops.append(None)):
            referent = _Referent()
            ref = weakref.ref(referent, lambda _: os.kill(os.getpid(), signal.SIGTERM))
            del referent  # the last statement: the stop raised in the callback is dropped
        for thread in threading.enumerate():
            if thread.name == "rgstore-redeliver":
                thread.join()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    assert ref() is None and len(stops) == 1


def test_other_unraisable_exceptions_still_reach_the_previous_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)

    def fail(_: object) -> None:
        raise ValueError("a callback's own bug")

    with redelivered():
        referent = _Referent()
        ref = weakref.ref(referent, fail)
        del referent
    assert ref() is None
    assert [type(u.exc_value) for u in seen] == [ValueError]
    assert sys.unraisablehook == seen.append  # restored on the way out


@pytest.mark.parametrize("in_child", [False, True])
@pytest.mark.parametrize("failure", [SystemExit(143), KeyboardInterrupt(), RuntimeError("refused")])
def test_an_import_whose_recording_fails_is_taken_back(store: Store, tmp_path: Path, failure: BaseException,
                                                       monkeypatch: pytest.MonkeyPatch, in_child: bool) -> None:
    import rgstore.refgetstore as refgetstore

    monkeypatch.setattr(refgetstore, "CHILD_IMPORT_MIN_BYTES", 0 if in_child else 1 << 62)  # gtars' two ways to run
    fasta = tmp_path / "a.fa"
    fasta.write_text(">c1\nACGTACGTNN\n>c2\nGGGCCC\n")
    seen: list[str] = []

    def record(ingested: Any) -> None:
        seen.append(ingested.digest)
        assert (store.refget_path / "collections.rgci").read_text().count(ingested.digest) == 1
        raise failure

    with pytest.raises(type(failure)):
        ingest_fasta(store, fasta, then=record)
    assert len(seen) == 1
    assert seen[0] not in (store.refget_path / "collections.rgci").read_text()
    assert not list((store.refget_path / "sequences").rglob("*.seq"))
    assert not list(store.path.glob(".ingest-*"))


def test_a_signal_while_a_temp_file_is_made_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # SIGTERM landed between the temp file's creation and the caller binding its name (a blob left in blobs/).
    import rgstore.files as files
    from rgstore.interrupts import interrupt

    def signal_arrives() -> int:  # the handler runs here: right after the file exists
        interrupt(SystemExit(143))
        return 0o022

    monkeypatch.setattr(files, "current_umask", signal_arrives)
    with pytest.raises(SystemExit):
        files.mkstemp(dir=tmp_path, prefix=".tmp-")
    assert list(tmp_path.iterdir()) == []



@contextmanager
def _sigterm_as_mkdtemp_returns(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """While the block runs, SIGTERM (handled through ``interrupt``) arrives once ``tempfile.mkdtemp`` has made its directory."""
    import tempfile

    real_mkdtemp = tempfile.mkdtemp

    def made_then_signalled(*args: Any, **kwargs: Any) -> str:
        made = real_mkdtemp(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)  # the handler runs here: the directory exists, its name not yet returned
        return made

    def stop(signum: int, _frame: Any) -> None:
        interrupt(SystemExit(128 + signum), signum)

    monkeypatch.setattr(tempfile, "mkdtemp", made_then_signalled)
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        with pytest.raises(SystemExit) as caught:
            yield
        assert caught.value.code == 128 + signal.SIGTERM
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_signal_while_a_scratch_directory_is_made_leaves_no_directory(store: Store,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # As with the temp file: a SIGTERM handled inside mkdtemp, once the directory existed, unwound before
    # scratch_dir had bound its name, and the .ingest-* directory stayed behind.
    from rgstore.refgetstore import scratch_dir

    with _sigterm_as_mkdtemp_returns(monkeypatch), scratch_dir(store, ".ingest-"):
        pass
    assert list(store.path.glob(".ingest-*")) == []


def test_a_signal_while_a_first_pull_makes_its_staging_leaves_neither_it_nor_the_directories_it_made(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rgstore.firstpull import build_new_store

    ran: list[Store] = []
    with _sigterm_as_mkdtemp_returns(monkeypatch):
        build_new_store(tmp_path / "new" / "mirror", ran.append)
    assert ran == [] and list(tmp_path.iterdir()) == []

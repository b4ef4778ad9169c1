"""Claims about outside copies of views (alias TSVs, FHR files): a command killed between its commit and
their refresh leaves them stale only until the next open that may write; verify never passes over it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lmdb
import pytest
import zstandard

from rgstore.events import Noted
from rgstore.log import NewEvent
from rgstore.pendingsync import PendingSync, abandoned_marks
from rgstore.refgetlock import refget_write_lock
from rgstore.replay import replay_file
from rgstore.store import DICTIONARY_AFTER, Store
from tests.conftest import REPO, run_rgstore

TINY = REPO / "rgstore" / "data" / "tiny.fa"


def _tsv(store_path: Path) -> str:
    return (store_path / "refget" / "aliases" / "collections" / "refgenie.tsv").read_text()


def _kill_after_commit(store_path: Path, *args: str) -> None:
    """Run a CLI command and SIGKILL it once it has committed, while its refresh waits for the RefgetStore lock."""
    with Store.open(store_path, readonly=True) as store:
        head = store.head()[0]
    with refget_write_lock(store_path / "refget", "test-holds-the-refresh", timeout=5):
        proc = subprocess.Popen([sys.executable, "-m", "rgstore_cli", "--store", str(store_path), *args], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                assert proc.poll() is None, proc.communicate()
                with Store.open(store_path, readonly=True) as store:
                    if store.head()[0] > head:
                        break
                time.sleep(0.02)
            else:
                raise AssertionError("the command never committed")
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.communicate()


def test_alias_files_left_stale_by_a_killed_command_are_refreshed_by_the_next_open(store_path: Path) -> None:
    with Store.open(store_path) as store:
        digest = store.genomes.init(TINY, ["tiny"]).genome.digest
    _kill_after_commit(store_path, "alias", "set", "other", digest)
    assert "other" not in _tsv(store_path)  # committed, but the copy gtars serves was never refreshed
    assert len(abandoned_marks(store_path)) == 1
    verify = run_rgstore("--store", str(store_path), "verify")  # a read-only open that may write repairs it
    assert verify.returncode == 0, verify.stderr
    assert _tsv(store_path) == f"other\t{digest}\ntiny\t{digest}\n"
    assert abandoned_marks(store_path) == []


def test_alias_undo_killed_before_its_refresh_is_completed_by_any_writing_command(store_path: Path) -> None:
    with Store.open(store_path) as store:
        digest = store.genomes.init(TINY, ["tiny"]).genome.digest
        store.aliases.set("second", digest)
    _kill_after_commit(store_path, "alias", "undo", "second")
    assert "second" in _tsv(store_path)
    with Store.open(store_path) as store:  # e.g. the next `rgstore log`, or any command
        assert [a.name for a in store.aliases.list()] == ["tiny"]
    assert _tsv(store_path) == f"tiny\t{digest}\n"


def test_a_command_that_commits_and_refreshes_leaves_no_mark(store_path: Path) -> None:
    with Store.open(store_path) as store:
        digest = store.genomes.init(TINY, ["tiny"]).genome.digest
        store.aliases.set("x", digest)
        assert abandoned_marks(store_path) == []
        assert sorted(p.name for p in store_path.iterdir() if p.name.startswith(".sync")) == []


def test_a_commands_mark_is_fsynced_with_its_directory_entry_before_the_commit(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # LMDB's commit is durable: a mark only in the page cache could be lost to a power cut that keeps the
    # commit, and the next open would not know the alias files are stale.
    with Store.open(store_path) as store:
        digest = store.genomes.init(TINY, ["tiny"]).genome.digest
        real_fsync, synced, at_commit = os.fsync, [], []

        def fsync(fd: int) -> None:
            synced.append(Path(os.readlink(f"/proc/self/fd/{fd}")))
            real_fsync(fd)

        def profile(frame: object, event: str, arg: Any) -> None:
            if event == "c_call" and _is_commit(arg) and not at_commit:
                at_commit.append(list(synced))

        monkeypatch.setattr(os, "fsync", fsync)
        sys.setprofile(profile)
        try:
            store.aliases.set("other", digest)
        finally:
            sys.setprofile(None)
    [before] = at_commit
    # A mark made nameless (O_TMPFILE) and linked later still reads back as "#<inode> (deleted)" in /proc.
    marks = [i for i, path in enumerate(before) if path.name.startswith((".sync-pending-", "#"))]
    assert marks and store_path.resolve() in before[marks[0]:], before  # the file, then its directory


def test_a_replay_killed_before_its_refresh_leaves_alias_files_that_the_next_open_completes(
    store_path: Path, tmp_path: Path
) -> None:
    with Store.open(store_path) as store:
        digest = store.genomes.init(TINY, ["tiny"]).genome.digest
        store.aliases.set("other", digest)
    export = tmp_path / "x.rglog"
    assert run_rgstore("--store", str(store_path), "log", "export", str(export)).returncode == 0
    target = tmp_path / "replica"
    Store.open(target).close()
    _kill_after_commit(target, "replay", str(export))  # every batch committed, the refresh never ran
    assert not (target / "refget" / "aliases" / "collections" / "refgenie.tsv").exists()
    assert len(abandoned_marks(target)) == 1
    with Store.open(target) as store:
        assert store.head()[0] > 0
    assert _tsv(target) == f"other\t{digest}\ntiny\t{digest}\n"


@contextmanager
def _on_return(matches: Callable[[Any], bool], action: Callable[[], None]) -> Iterator[None]:
    """Run ``action`` once, the moment a C function ``matches`` returns: where a signal that arrived during
    the call is raised (CPython runs Python-level handlers at the next bytecode), or where another process
    may act between two of our system calls."""
    fired: list[Any] = []

    def profile(frame: object, event: str, arg: Any) -> None:
        if event == "c_return" and not fired and matches(arg):
            fired.append(arg)
            sys.setprofile(None)
            action()

    sys.setprofile(profile)
    try:
        yield
    finally:
        sys.setprofile(None)


def _is_commit(fn: Any) -> bool:
    return getattr(fn, "__name__", "") == "commit" and isinstance(getattr(fn, "__self__", None), lmdb.Transaction)


def _sigint() -> None:
    signal.raise_signal(signal.SIGINT)  # Python's own handler: KeyboardInterrupt


def test_a_ctrl_c_during_a_commit_leaves_the_mark_so_the_next_open_refreshes_the_alias_files(
    store_path: Path,
) -> None:
    with Store.open(store_path) as store:
        digest = store.genomes.init(TINY, ["tiny"]).genome.digest
        aliases = store.aliases
        with pytest.raises(KeyboardInterrupt), _on_return(_is_commit, _sigint):
            aliases.set("other", digest)
        assert [a.name for a in aliases.list()] == ["other", "tiny"]  # the commit had happened
    assert "other" not in _tsv(store_path)
    assert len(abandoned_marks(store_path)) == 1
    Store.open(store_path).close()
    assert _tsv(store_path) == f"other\t{digest}\ntiny\t{digest}\n"
    assert abandoned_marks(store_path) == []


def test_a_replay_interrupted_just_after_its_first_batch_commits_leaves_the_mark(
    store_path: Path, tmp_path: Path
) -> None:
    with Store.open(store_path) as store:
        digest = store.genomes.init(TINY, ["tiny"]).genome.digest
    export = tmp_path / "x.rglog"
    assert run_rgstore("--store", str(store_path), "log", "export", str(export)).returncode == 0
    target = tmp_path / "replica"
    with Store.open(target) as replica:
        with pytest.raises(KeyboardInterrupt), _on_return(_is_commit, _sigint):
            replay_file(replica, export)
        assert replica.head()[0] > 0
    assert len(abandoned_marks(target)) == 1
    Store.open(target).close()
    assert _tsv(target) == f"tiny\t{digest}\n"


def test_a_command_interrupted_while_the_log_trains_its_dictionary_has_refreshed_its_alias_files(
    store_path: Path,
) -> None:
    with Store.open(store_path) as store:
        digest = store.genomes.init(TINY, ["tiny"]).genome.digest
        fill = DICTIONARY_AFTER - 1 - store.head()[0]
        store.append([NewEvent(stream=f"note:{i % 97}", event=Noted(text=f"note {i} of {i * 7919 % 10007}"))
                      for i in range(fill)])
        aliases = store.aliases
        with pytest.raises(KeyboardInterrupt), _on_return(lambda fn: fn is zstandard.train_dictionary, _sigint):
            aliases.set("other", digest)  # the event that crosses the threshold: this command trains
        assert _tsv(store_path) == f"other\t{digest}\ntiny\t{digest}\n"
        assert abandoned_marks(store_path) == []
        assert sorted(p.name for p in store_path.iterdir() if p.name.startswith(".sync")) == []


def test_a_mark_its_owner_removes_while_another_process_checks_it_is_not_taken_for_abandoned(
    tmp_path: Path,
) -> None:
    mark = PendingSync(tmp_path)
    # The owner finishes between the checker's open of the mark and its flock, which then succeeds.
    with _on_return(lambda fn: fn is os.open, mark.done):
        assert abandoned_marks(tmp_path) == []
    assert not mark.path.exists()



def test_a_read_whose_pending_refresh_cannot_run_still_reads_and_verify_names_the_mark(store_path: Path) -> None:
    with Store.open(store_path) as store:
        digest = store.genomes.init(TINY, ["tiny"]).genome.digest
    _kill_after_commit(store_path, "alias", "set", "other", digest)
    tsvs = store_path / "refget" / "aliases" / "collections"
    for path in tsvs.iterdir():
        path.unlink()
    tsvs.rmdir()
    tsvs.write_text("a file where the refresh needs a directory")  # so the refresh fails, even for root
    with Store.open(store_path, readonly=True) as store:  # the views are sound: the read goes ahead
        assert {a.name for a in store.aliases.list()} == {"tiny", "other"}
        report = store.verify()
    assert not report.ok and any("before refreshing the alias TSVs" in p for p in report.problems)
    assert len(abandoned_marks(store_path)) == 1


def test_a_rebuild_killed_before_its_refresh_leaves_a_mark_the_next_open_completes(store_path: Path) -> None:
    from rgstore.checkpoints import rebuild_count

    def rebuilds() -> int:
        with Store.open(store_path, readonly=True) as store, store.read() as txn:
            return rebuild_count(store.log, txn)

    with Store.open(store_path) as store:
        digest = store.genomes.init(TINY, ["tiny"]).genome.digest
    tsv = store_path / "refget" / "aliases" / "collections" / "refgenie.tsv"
    tsv.write_text("hand-edited\tX\n")  # what the rebuild's refresh is there to put right
    before = rebuilds()
    with refget_write_lock(store_path / "refget", "test-holds-the-refresh", timeout=5):
        proc = subprocess.Popen([sys.executable, "-m", "rgstore_cli", "--store", str(store_path), "rebuild"], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while rebuilds() == before:
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
                time.sleep(0.02)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
    assert tsv.read_text() == "hand-edited\tX\n" and len(abandoned_marks(store_path)) == 1
    with Store.open(store_path):
        pass
    assert tsv.read_text() == f"tiny\t{digest}\n" and abandoned_marks(store_path) == []


def test_a_command_killed_while_making_its_mark_leaves_no_half_made_file(tmp_path: Path) -> None:
    # Killed between creating the mark and locking it: the mark must not be visible yet (O_TMPFILE),
    # else a `.sync-making-*` file stays behind until an open a minute later sweeps it.
    code = ("import fcntl, os, sys\n"
            "from pathlib import Path\n"
            "from rgstore.pendingsync import PendingSync\n"
            "fcntl.flock = lambda fd, op: os._exit(9)\n"
            "PendingSync(Path(sys.argv[1]))\n")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 9, done.stderr
    assert list(tmp_path.iterdir()) == []

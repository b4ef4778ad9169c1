"""Claims about view checkpoints: a damaged one is repaired by the next open, and verify names it."""

from __future__ import annotations

from pathlib import Path

import lmdb
import pytest

from rgstore.events import Noted
from rgstore.log import NewEvent
from rgstore.store import Store
from rgstore.verify import view_digests
from tests.conftest import run_rgstore


def _filled(store_path: Path) -> dict[str, str]:
    with Store.open(store_path) as store:
        store.append([NewEvent(stream=f"s{i}", event=Noted(text=str(i))) for i in range(5)])
        return view_digests(store)


def _checkpoints(store_path: Path, change: dict[bytes, bytes | None]) -> None:
    """Edit the checkpoints sub-db behind rgstore's back (what a bad disk or a stray tool could do)."""
    env = lmdb.open(str(store_path / "log"), max_dbs=64)
    try:
        db = env.open_db(b"checkpoints", create=False)
        with env.begin(write=True, db=db) as txn:
            for key, value in change.items():
                if value is None:
                    txn.delete(key)
                else:
                    txn.put(key, value)
    finally:
        env.close()


@pytest.mark.parametrize(("change", "named"), [
    ({b"streams": None}, "checkpoint is missing though the view holds data"),
    ({b"streams": b"\x01\x02"}, "checkpoint record is malformed"),
    ({b"streams": (1).to_bytes(4, "big") + (2).to_bytes(8, "big")}, "checkpoint is at seq 2 but the log's head is 5"),
])
def test_verify_names_a_damaged_checkpoint_that_its_open_repaired(store_path: Path, change: dict[bytes, bytes | None],
                                                                   named: str) -> None:
    before = _filled(store_path)
    _checkpoints(store_path, change)
    with Store.open(store_path, readonly=True) as store:
        report = store.verify()
        assert not report.ok
        assert report.repaired == [f"view 'streams' was out of step with the log (its {named}); rebuilt from the log"]
        assert view_digests(store) == before
    with Store.open(store_path, readonly=True) as store:
        assert store.verify().ok  # repaired once, reported once


def test_the_cli_verify_fails_on_a_deleted_checkpoint_and_passes_after(store_path: Path) -> None:
    _filled(store_path)
    _checkpoints(store_path, {b"aliases": None, b"streams": None})
    first = run_rgstore("--store", str(store_path), "verify")
    assert first.returncode == 1
    assert b"view 'streams' was out of step with the log" in first.stderr
    assert b"Traceback" not in first.stderr
    assert run_rgstore("--store", str(store_path), "verify").returncode == 0


def test_a_malformed_checkpoint_is_rebuilt_by_any_writable_open_not_a_traceback(store_path: Path) -> None:
    before = _filled(store_path)
    _checkpoints(store_path, {b"ids": b"junk"})
    with Store.open(store_path) as store:
        assert store.repaired == ["view 'ids' was out of step with the log (its checkpoint record is malformed); "
                                  "rebuilt from the log"]
        assert view_digests(store) == before
        store.append([NewEvent(stream="later", event=Noted(text="x"))])
    with Store.open(store_path, readonly=True) as store:
        assert store.verify().ok


def test_an_upgrade_or_a_new_view_is_rebuilt_without_being_reported(store_path: Path) -> None:
    _filled(store_path)
    # An older rgstore folded 'streams' at version 0 up to the head; 'cache' holds nothing yet.
    _checkpoints(store_path, {b"streams": (0).to_bytes(4, "big") + (5).to_bytes(8, "big"), b"cache": None})
    with Store.open(store_path, readonly=True) as store:
        assert store.repaired == []
        assert store.verify().ok


def test_any_command_that_repairs_a_damaged_checkpoint_says_so_once_on_stderr(store_path: Path) -> None:
    _filled(store_path)
    _checkpoints(store_path, {b"streams": None})
    first = run_rgstore("--store", str(store_path), "log", "--json")
    assert first.returncode == 0 and len(first.stdout.splitlines()) == 5  # stdout stays clean for pipes
    assert first.stderr.startswith(b"note: view 'streams' was out of step with the log") and first.stderr.count(b"\n") == 1
    again = run_rgstore("--store", str(store_path), "log", "--json")
    assert again.returncode == 0 and again.stderr == b""


def test_every_rebuild_is_counted_in_its_own_transaction_and_the_head_stays(store_path: Path) -> None:
    from rgstore.checkpoints import rebuild_count

    _filled(store_path)
    with Store.open(store_path) as store:
        head = store.head()
        with store.read() as txn:
            before = rebuild_count(store.log, txn)
        store.rebuild()
        store.rebuild([store.views[0]])
        with store.read() as txn:
            assert rebuild_count(store.log, txn) == before + 2
        assert store.head() == head


def test_views_an_older_rgstore_lacks_catch_up_silently_after_it_appended(store_path: Path) -> None:
    # A downgrade and back: this rgstore wrote, then a release without the views added since appended
    # (it folds and checkpoints only its own views), then this rgstore opens the store again.
    from rgstore.checkpoints import FIRST_RELEASE_VIEWS
    from rgstore.log import EventLog

    _filled(store_path)
    with Store.open(store_path) as store:
        assert any(view.name not in FIRST_RELEASE_VIEWS for view in store.views)  # e.g. 'streamindex'
        older = EventLog(store.environment, [view for view in store.views if view.name in FIRST_RELEASE_VIEWS])
        store.environment.write(lambda txn: older.append(txn, [NewEvent(stream="later", event=Noted(text="x"))],
                                                         "old@lab"))
    first = run_rgstore("--store", str(store_path), "verify")
    assert first.returncode == 0, first.stderr
    assert b"out of step" not in first.stderr
    with Store.open(store_path, readonly=True) as store:
        assert [env.seq for env in store.events(stream="later")] == [6]  # the caught-up views hold the old append
        assert store.verify().ok


def test_a_view_of_every_release_behind_the_head_is_still_damage(store_path: Path) -> None:
    from rgstore.checkpoints import FIRST_RELEASE_VIEWS

    _filled(store_path)
    for name in sorted(FIRST_RELEASE_VIEWS):
        _checkpoints(store_path, {name.encode(): (1).to_bytes(4, "big") + (3).to_bytes(8, "big")})
        with Store.open(store_path, readonly=True) as store:
            assert store.repaired == [f"view {name!r} was out of step with the log (its checkpoint is at seq 3 "
                                      "but the log's head is 5); rebuilt from the log"]

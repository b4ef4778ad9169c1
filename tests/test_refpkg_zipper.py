"""Claims about the refpkg view's zipper: it follows the engine's history view for any event sequence.

Commands only write refpkg events to a package's stream, but ``Store.append`` (and so any
replayed log) may put other domains' undoable events, raw creations and raw zipper events there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rgstore.errors import IntegrityError, RgstoreError
from rgstore.events import (
    AliasSet,
    AnyEvent,
    Envelope,
    FhrSet,
    HistoryStripped,
    Noted,
    Redone,
    RefpkgCreated,
    RefpkgRemoved,
    RefpkgUpdated,
    Undone,
)
from rgstore.log import NewEvent
from rgstore.store import Store
from rgstore.views import FoldContext
from rgstore.views.history import done_stack, undone_stack
from rgstore.views.refpkgs import Head, refpkg_head, refpkg_step
from tests.conftest import seeded_store_path

NAMES = ("a", "b")


def _view(store: Store) -> Any:
    return next(v for v in store.views if v.name == "refpkgs")


def _contents(store: Store) -> list[tuple[str, bytes, bytes]]:
    with store.read() as txn:
        return list(_view(store).contents(txn, store.environment))


def _assert_view_follows_history(store: Store, name: str) -> None:
    """The package's current step, its parents and its redo steps are the history view's stacks."""
    env = store.environment
    with store.read() as txn:
        head = refpkg_head(txn, env, name)
        done = done_stack(txn, env.db("history"), f"refpkg:{name}")
        undone = undone_stack(txn, env.db("history"), f"refpkg:{name}")
        chain: list[int] = []
        seq = head.current if head else 0
        while seq:
            chain.append(seq)
            seq = refpkg_step(txn, env, name, seq).parent
        assert list(reversed(chain)) == done
        assert (head.redo if head else []) == undone
        for seq in undone:
            refpkg_step(txn, env, name, seq)  # every redo target is retained


def test_a_foreign_event_on_a_refpkg_stream_is_a_step_rollback_and_rollforward_follow(store: Store) -> None:
    r = store.refpkgs
    r.create("pkg", locus="L")
    r.update_metadata("pkg", ["author=x"])
    store.append([NewEvent(stream="refpkg:pkg", event=AliasSet(namespace="n", name="x", digest="d"))])
    assert r.info("pkg").log[0] == "Recorded alias-set event" and r.info("pkg").rollbacks == 2
    assert r.rollback("pkg").entry == "Updated metadata: author=x"
    info = r.rollforward("pkg")  # used to point the head at a step the view never kept
    assert (info.rollbacks, info.rollforwards, info.metadata["author"]) == (2, 0, "x")
    assert [s.name for s in r.list_all()] == ["pkg"] and r.log("pkg")[0].message == "Recorded alias-set event"
    assert r.rollback("pkg", 2).metadata.get("author") is None
    _assert_view_follows_history(store, "pkg")


def test_a_raw_creation_over_a_live_package_can_be_undone_back_to_it(store: Store) -> None:
    r = store.refpkgs
    r.create("pkg", locus="old")
    r.update_metadata("pkg", ["k=v"])
    store.append([NewEvent(stream="refpkg:pkg", event=RefpkgCreated(name="pkg", metadata={"locus": "new"},
                                                                    log=["fresh"]))])
    info = r.info("pkg")
    assert (info.metadata, info.log, info.rollbacks) == ({"locus": "new"}, ["fresh"], 0)
    store.append([NewEvent(stream="refpkg:pkg", event=Undone())])  # the engine's generic undo
    assert r.info("pkg").metadata["k"] == "v" and r.info("pkg").rollforwards == 1
    _assert_view_follows_history(store, "pkg")


def test_zipper_events_with_nothing_to_move_fold_to_no_change(store: Store) -> None:
    """A replayed log may hold them (the engine refuses to append them): the fold stays total."""
    store.refpkgs.create("pkg", locus="L")
    store.refpkgs.update_metadata("pkg", ["k=v"])
    before = _contents(store)
    time = store.event(1).time
    raw: list[tuple[str, AnyEvent]] = [
        ("refpkg:ghost", Undone(undone_seq=7, restored_seq=5)),
        ("refpkg:ghost", Redone(redone_seq=3)),
        ("refpkg:pkg", Redone(redone_seq=1)),
    ]
    bogus = [
        Envelope(seq=100 + i, id=f"id{i}", stream=stream, stream_version=9, time=time, actor="x", event=event)
        for i, (stream, event) in enumerate(raw)
    ]
    store.environment.write(lambda txn: _view(store).apply_batch(FoldContext(txn, store.environment), bogus))
    after = _contents(store)
    assert [row for row in after if row[1] != b"ghost"] == before  # pkg: head, steps and names unchanged
    with store.read() as txn:
        assert refpkg_head(txn, store.environment, "ghost") == Head(current=0)  # names no package
    assert store.refpkgs.info("pkg").metadata["k"] == "v"


def test_a_step_the_view_does_not_retain_is_an_integrity_error(store: Store) -> None:
    store.refpkgs.create("pkg", locus="L")
    with store.read() as txn, pytest.raises(IntegrityError, match="rgstore rebuild"):
        refpkg_step(txn, store.environment, "pkg", 999)


_RAW = st.sampled_from([
    Noted(text="note"),
    AliasSet(namespace="n", name="x", digest="d"),
    FhrSet(digest="d", fhr={}),
    RefpkgCreated(name="raw", metadata={"locus": "raw"}, log=["raw create"]),
    RefpkgUpdated(name="raw", metadata={"raw": "1"}, message="raw update"),
    RefpkgRemoved(name="raw"),
    Undone(), Redone(), HistoryStripped(),
])
_OP = st.one_of(
    st.tuples(st.sampled_from(["create", "meta", "strip", "remove"]), st.sampled_from(NAMES)),
    st.tuples(st.sampled_from(["rollback", "rollforward"]), st.sampled_from(NAMES), st.integers(1, 3)),
    st.tuples(st.just("raw"), st.sampled_from(NAMES), st.lists(_RAW, min_size=1, max_size=3)),
)


def _run(store: Store, op: tuple[Any, ...]) -> None:
    r, kind, name = store.refpkgs, op[0], op[1]
    if kind == "create":
        r.create(name, locus="L")
    elif kind == "meta":
        r.update_metadata(name, [f"k{store.head()[0]}=v"])
    elif kind == "strip":
        r.strip(name)
    elif kind == "remove":
        r.remove(name)
    elif kind == "rollback":
        r.rollback(name, op[2])
    elif kind == "rollforward":
        r.rollforward(name, op[2])
    else:
        store.append([NewEvent(stream=f"refpkg:{name}", event=e) for e in op[2]])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(_OP, max_size=14))
def test_any_append_sequence_keeps_refpkgs_readable_and_in_step_with_history(
    tmp_path_factory: pytest.TempPathFactory, empty_refget: Path, ops: list[tuple[Any, ...]]
) -> None:
    root = tmp_path_factory.mktemp("zipper")
    with Store.open(seeded_store_path(empty_refget, root)) as store:
        for op in ops:
            try:
                _run(store, op)
            except RgstoreError:
                pass  # refused whole: nothing to undo, no such package, ...
        for name in NAMES:
            _assert_view_follows_history(store, name)
            try:
                info = store.refpkgs.info(name)
            except RgstoreError:
                continue  # no package (never created, or its creation was undone)
            assert len(store.refpkgs.log(name)) == len(info.log)
            store.refpkgs.export(name, root / f"{name}.refpkg")
        store.refpkgs.list_all()
        incremental = _contents(store)
        store.rebuild([_view(store)])
        assert _contents(store) == incremental



def test_a_raw_event_with_names_too_long_for_an_lmdb_key_still_folds(store: Store) -> None:
    """The fold is total: a replayed or raw event whose package + file name passes LMDB's key limit folds."""
    from rgstore.events import FileRef, RefpkgCreated
    from rgstore.log import NewEvent
    from rgstore.verify import view_digests

    name, filename = "p" * 493, "t" * 100
    ref = FileRef(name=filename, sha256="0" * 64, md5="0" * 32, size=1)
    store.append([NewEvent(stream=f"refpkg:{name}", event=RefpkgCreated(name=name, files={"tree": ref}))])
    with store.read() as txn:
        from rgstore.views.refpkgs import name_owner

        assert name_owner(txn, store.environment, name, filename) == "0" * 64
    before = view_digests(store)
    store.rebuild()
    assert view_digests(store) == before


def test_a_removal_empties_both_zippers_even_over_a_raw_creation_on_a_live_package(store: Store) -> None:
    r = store.refpkgs
    r.create("pkg", locus="old")
    r.update_metadata("pkg", ["k=v"])
    store.append([NewEvent(stream="refpkg:pkg", event=RefpkgCreated(name="pkg", metadata={"locus": "new"}))])
    store.append([NewEvent(stream="refpkg:pkg", event=Undone())])  # back to the old package, one redo
    r.remove("pkg")
    _assert_view_follows_history(store, "pkg")
    with store.read() as txn:
        assert refpkg_head(txn, store.environment, "pkg") == Head(current=0)
    assert not [row for row in _contents(store) if row[1].startswith(b"pkg\x00")]  # no step, no file name
    assert r.create("pkg", locus="again").rollbacks == 0
    _assert_view_follows_history(store, "pkg")

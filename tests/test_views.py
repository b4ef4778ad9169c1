"""Claims about projections: incremental folding equals a rebuild from the log, byte for byte."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rgstore.errors import ConflictError
from rgstore.events import Event
from rgstore.log import NewEvent
from rgstore.store import Store
from rgstore.verify import view_digests
from rgstore.views import View
from tests.conftest import seeded_store_path
from tests.strategies import plausible_event

step = st.lists(plausible_event(), min_size=1, max_size=4)
"""One command: up to four events, so multi-event batches (with undos inside them) are folded too."""


def _apply_all(store: Store, steps: list[list[tuple[str, Event]]]) -> None:
    for command in steps:
        try:
            store.append([NewEvent(stream=s, event=e) for s, e in command])  # type: ignore[arg-type]
        except ConflictError:
            pass  # undo with nothing to undo, etc.: refused, and nothing was written


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, max_size=25))
def test_rebuild_gives_byte_identical_views(tmp_path_factory: object, empty_refget: Path,
                                            steps: list[list[tuple[str, Event]]]) -> None:
    root = Path(str(tmp_path_factory.mktemp("prop")))  # type: ignore[attr-defined]
    with Store.open(seeded_store_path(empty_refget, root)) as store:
        _apply_all(store, steps)
        incremental = view_digests(store)
        store.rebuild()
        assert view_digests(store) == incremental
        report = store.verify()
        # Random FileRefs name blobs, and random cache inserts name files, that were never stored; the rest must check out.
        assert [p for p in report.problems if not p.endswith(("referenced blob is missing", "not a sha256 digest"))
                and ": cache file of entry " not in p] == []


def test_a_view_whose_version_changed_is_rebuilt_on_open(store_path: Path) -> None:
    from rgstore.views.streams import StreamsView

    with Store.open(store_path) as store:
        from rgstore.events import Noted

        store.append([NewEvent(stream="s", event=Noted(text="1")), NewEvent(stream="t", event=Noted())])
        before = view_digests(store)
        # Simulate an older layout: wipe the view and mark it as folded by version 0.
        def corrupt(txn: object) -> None:
            view = next(v for v in store.views if isinstance(v, StreamsView))
            view.clear(txn, store.environment)  # type: ignore[arg-type]
            store.log.set_checkpoint(txn, view, 0)  # type: ignore[arg-type]

        store.environment.write(corrupt)
        assert view_digests(store) != before
    with Store.open(store_path) as store:
        assert view_digests(store) == before


def test_a_read_only_open_after_an_upgrade_rebuilds_stale_views_without_adding_events(store_path: Path) -> None:
    """`rgstore verify`, `getseq` or `serve` right after an upgrade work: views are derived data."""
    from rgstore.events import Noted
    from rgstore.views.streams import StreamsView

    with Store.open(store_path) as store:
        store.append([NewEvent(stream="s", event=Noted(text="1"))])
        before, head = view_digests(store), store.head()

        def older(txn: object) -> None:
            view = next(v for v in store.views if isinstance(v, StreamsView))
            view.clear(txn, store.environment)  # type: ignore[arg-type]
            store.log.set_checkpoint(txn, view, 0)  # type: ignore[arg-type]

        store.environment.write(older)
    with Store.open(store_path, readonly=True) as store:
        assert store.readonly
        assert (view_digests(store), store.head()) == (before, head)
        assert store.verify().ok


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=10, max_size=60))
def test_each_views_batch_fold_equals_its_one_event_fold(
    tmp_path_factory: object, empty_refget: Path, steps: list[list[tuple[str, Event]]]
) -> None:
    root = Path(str(tmp_path_factory.mktemp("prop")))  # type: ignore[attr-defined]
    with Store.open(seeded_store_path(empty_refget, root)) as store:
        _apply_all(store, steps)
        for view in store.views:
            batched = _refold(store, view, "batch")
            assert _refold(store, view, "batches of one") == batched, view.name
            assert _refold(store, view, "apply") == batched, view.name


def _refold(store: Store, view: View, how: str) -> list[tuple[str, bytes, bytes]]:
    """The view's contents after folding the whole log into it again ``how``, in a txn that is rolled back."""
    from rgstore.views import FoldContext

    env = store.environment

    def run(txn: Any) -> None:
        view.clear(txn, env)
        ctx = FoldContext(txn, env)
        envelopes = list(store.log.envelopes(txn))
        if how == "batch":
            store.log.fold_batch(ctx, envelopes, [view])
        elif how == "batches of one":
            for envelope in envelopes:
                store.log.fold_batch(ctx, [envelope], [view])
        else:  # the view's own single-event fold, behind the same filter fold_batch applies
            for e in envelopes:
                if (not view.handles or type(e.event) in view.handles) and e.stream.startswith(
                    view.streams or ("",)
                ):
                    view.apply(ctx, e)
        raise _Rollback(list(view.contents(txn, env)))

    try:
        env.write(run)
    except _Rollback as done:
        return done.contents
    raise AssertionError("unreachable")


def test_a_big_batch_over_many_stream_families_folds_every_view_as_event_by_event(store_path: Path) -> None:
    """A rebuild-sized batch (over 64 events: fold_batch sorts it into stream families once) gives the same bytes."""
    from rgstore.events import AliasRemoved, AliasSet, CacheTouched, Noted, RefpkgUpdated, Undone

    events: list[NewEvent] = []
    for i in range(240):
        k = i % 6
        if k == 0:
            events.append(NewEvent(stream=f"alias:refgenie/g{i % 7}",
                                   event=AliasSet(namespace="refgenie", name=f"g{i % 7}", digest=f"{i:032d}")))
        elif k == 1:
            events.append(NewEvent(stream=f"refpkg:p{i % 3}",
                                   event=RefpkgUpdated(name=f"p{i % 3}", metadata={"step": str(i)}, message=f"m{i}")))
        elif k == 2:
            events.append(NewEvent(stream=f"cache:{i % 5:064x}", event=CacheTouched(key=f"{i % 5:064x}")))
        elif k == 3:  # no ':' (family ""), a nested name, and a name that only starts like a domain's
            events.append(NewEvent(stream=("audit", "audit:x:y", "aliasy")[i % 3], event=Noted(text=f"n{i}")))
        elif k == 4:
            events.append(NewEvent(stream=f"alias:refgenie/g{i % 7}", event=Undone()))
        else:
            events.append(NewEvent(stream=f"alias:refgenie/g{i % 7}",
                                   event=AliasRemoved(namespace="refgenie", name=f"g{i % 7}")))
    with Store.open(store_path) as store:
        for event in events:
            try:
                store.append([event])
            except ConflictError:
                pass  # an undo with nothing to undo
        assert store.head()[0] > 150
        for view in store.views:
            batched = _refold(store, view, "batch")
            if view.name in ("ids", "streams", "history", "aliases", "refpkgs", "streamindex", "timeindex"):
                assert batched, view.name  # (no cache entry exists to touch, and no genome)
            assert _refold(store, view, "batches of one") == batched, view.name
            assert _refold(store, view, "apply") == batched, view.name


def test_the_ids_batch_fold_keys_every_id_spelling_as_id_key_does(store_path: Path) -> None:
    """Ids in random order and in every spelling uuid accepts (a foreign log's) map to id_key's key, with append or not."""
    import random
    import uuid
    from datetime import datetime, timezone

    from rgstore.events import Envelope, Noted
    from rgstore.views import FoldContext
    from rgstore.views.ids import _VALUE, IdsView, id_key

    rng = random.Random(7)
    canonical = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(200)]
    spelled = [canonical[0].upper(), "{" + canonical[1] + "}", "urn:uuid:" + canonical[2], canonical[3].replace("-", "")]
    ids = spelled + canonical[4:]
    rng.shuffle(ids)
    now = datetime.now(timezone.utc)
    envelopes = [Envelope(seq=n, id=i, stream="s", stream_version=n, time=now, actor="a", event=Noted())
                 for n, i in enumerate(ids, start=1)]
    view = IdsView()
    with Store.open(store_path) as store:
        env = store.environment
        out: list[list[tuple[str, bytes, bytes]]] = []
        for first in (0, 100):  # 100: half the batch is stored already, so the rest mostly goes in with MDB_APPEND

            def run(txn: Any, first: int = first) -> None:
                view.clear(txn, env)
                ctx = FoldContext(txn, env)
                for e in envelopes[:first]:
                    view.apply(ctx, e)
                view.apply_batch(ctx, envelopes[first:])
                raise _Rollback(list(view.contents(txn, env)))

            try:
                env.write(run)
            except _Rollback as done:
                out.append(done.contents)
        want = sorted(("ids", id_key(e.id), _VALUE.pack(e.seq)) for e in envelopes)
        assert out == [want, want]
        assert len({key for _db, key, _value in want}) == len(ids)


class _Rollback(Exception):
    """Carries a view's contents out of a write transaction that must not commit."""

    def __init__(self, contents: list[tuple[str, bytes, bytes]]) -> None:
        super().__init__("rollback")
        self.contents = contents


def test_a_reader_who_cannot_rebuild_the_indexes_an_older_rgstore_lacked_reads_the_log_instead_of_refusing(
    store_path: Path,
) -> None:
    """After an upgrade, a server on a read-only copy keeps serving: an index costs speed, not truth."""
    import os
    from datetime import datetime, timezone

    from rgstore.events import Noted
    from tests.test_sharing import _OUTSIDER, _as_user, outsiders_lab, readers_may_lock

    def read(path: Path) -> str:
        with Store.open(path, readonly=True) as store:
            from rgstore.status import store_status

            since = datetime(2000, 1, 1, tzinfo=timezone.utc)
            report, status = store.verify(), store_status(store)  # lagging, not damaged: neither fails on them
            return repr(([e.seq for e in store.events(stream="s")], [e.seq for e in store.events(since=since)],
                         report.ok, report.lagging_indexes, status.healthy))

    with outsiders_lab("rgstore-views-") as lab:
        root = lab / "store"
        with Store.open(root) as store:
            store.append([NewEvent(stream=s, event=Noted(text=s)) for s in ("s", "t", "s")])

            def older(txn: object) -> None:  # as a store an older rgstore, without these indexes, leaves it
                for view in store.views:
                    if view.reads_fall_back:
                        view.clear(txn, store.environment)  # type: ignore[arg-type]
                        store.log.set_checkpoint(txn, view, 0)  # type: ignore[arg-type]

            store.environment.write(older)
        readers_may_lock(root)
        want = repr(([1, 3], [1, 2, 3], True, ["streamindex", "timeindex"], True))
        if os.geteuid() == 0:  # root may write any file: read as a user who may not write the store
            assert _as_user(root, _OUTSIDER, [], lambda: read(root)) == f"ok: {want}"
        else:
            os.chmod(root / "log" / "data.mdb", 0o444)
            assert read(root) == want
            os.chmod(root / "log" / "data.mdb", 0o644)
        with Store.open(root, readonly=True) as store:  # one who may write rebuilds them on a read-only open
            from rgstore.checkpoints import out_of_step

            assert out_of_step(store) == [] and store.verify().ok

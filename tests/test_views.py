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
def test_rebuild_gives_byte_identical_views(tmp_path_factory: object, steps: list[list[tuple[str, Event]]]) -> None:
    root = Path(str(tmp_path_factory.mktemp("prop")))  # type: ignore[attr-defined]
    with Store.open(root / "s") as store:
        _apply_all(store, steps)
        incremental = view_digests(store)
        store.rebuild()
        assert view_digests(store) == incremental
        report = store.verify()
        # Random FileRefs name blobs that were never stored; everything else must check out.
        assert [p for p in report.problems if not p.endswith(("referenced blob is missing", "not a sha256 digest"))] == []


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
    tmp_path_factory: object, steps: list[list[tuple[str, Event]]]
) -> None:
    from rgstore.views import FoldContext, View

    root = Path(str(tmp_path_factory.mktemp("prop")))  # type: ignore[attr-defined]
    with Store.open(root / "s") as store:
        _apply_all(store, steps)
        env = store.environment

        def refold(view: View, how: str) -> list[tuple[str, bytes, bytes]]:
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

        for view in store.views:
            batched = refold(view, "batch")
            assert refold(view, "batches of one") == batched, view.name
            assert refold(view, "apply") == batched, view.name


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

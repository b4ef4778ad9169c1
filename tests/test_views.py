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

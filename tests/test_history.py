"""Claims about the generic undo/redo zipper (taxtastic's rollback/rollforward semantics)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rgstore.errors import NothingToRedoError, NothingToUndoError
from rgstore.events import HistoryStripped, Noted, Redone, Undone
from rgstore.log import NewEvent
from rgstore.store import Store
from rgstore.views.history import done_stack, undone_stack
from tests.conftest import seeded_store_path

S = "refpkg:zip"


def stacks(store: Store) -> tuple[list[int], list[int]]:
    with store.read() as txn:
        db = store.environment.db("history")
        return done_stack(txn, db, S), undone_stack(txn, db, S)


def push(store: Store, text: str = "") -> int:
    return store.append([NewEvent(stream=S, event=Noted(text=text))])[0]


def test_undo_then_redo_is_identity(store: Store) -> None:
    push(store), push(store), push(store)
    before = stacks(store)
    store.append([NewEvent(stream=S, event=Undone())])
    store.append([NewEvent(stream=S, event=Redone())])
    assert stacks(store) == before


def test_a_new_step_discards_the_redo_side(store: Store) -> None:
    a, b = push(store), push(store)
    store.append([NewEvent(stream=S, event=Undone())])
    assert stacks(store) == ([a], [b])
    c = push(store)
    assert stacks(store) == ([a, c], [])
    with pytest.raises(NothingToRedoError):
        store.append([NewEvent(stream=S, event=Redone())])


def test_strip_keeps_only_the_current_step(store: Store) -> None:
    push(store)
    b = push(store)
    push(store)
    store.append([NewEvent(stream=S, event=Undone())])
    store.append([NewEvent(stream=S, event=HistoryStripped())])
    assert stacks(store) == ([b], [])
    store.append([NewEvent(stream=S, event=Undone())])
    with pytest.raises(NothingToUndoError):
        store.append([NewEvent(stream=S, event=Undone())])


def test_an_event_that_ends_history_empties_both_stacks_in_one_batch_or_one_at_a_time(store: Store) -> None:
    from rgstore.events import RefpkgRemoved

    push(store), push(store), push(store)
    store.append([NewEvent(stream=S, event=Undone())])
    store.append([NewEvent(stream=S, event=RefpkgRemoved(name="zip"))])
    assert stacks(store) == ([], [])
    with pytest.raises(NothingToUndoError):
        store.append([NewEvent(stream=S, event=Undone())])
    c = push(store)
    # In one command: the step pushed, undone and redone before the removal are all gone after it.
    store.append([NewEvent(stream=S, event=Noted()), NewEvent(stream=S, event=Undone()),
                  NewEvent(stream=S, event=RefpkgRemoved(name="zip")), NewEvent(stream=S, event=Noted())])
    after = stacks(store)
    assert after == ([store.head()[0]], []) and c not in after[0]
    store.rebuild([next(v for v in store.views if v.name == "history")])
    assert stacks(store) == after


ops = st.lists(st.sampled_from(["step", "undo", "redo"]), max_size=30)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=ops)
def test_zipper_matches_a_list_model(tmp_path_factory: object, empty_refget: Path, ops: list[str]) -> None:
    model_done: list[int] = []
    model_undone: list[int] = []
    with Store.open(seeded_store_path(empty_refget, tmp_path_factory.mktemp("zip"))) as store:  # type: ignore[attr-defined]
        for op in ops:
            if op == "step":
                model_done.append(push(store))
                model_undone.clear()
            elif op == "undo":
                if model_done:
                    store.append([NewEvent(stream=S, event=Undone())])
                    model_undone.append(model_done.pop())
            elif model_undone:
                store.append([NewEvent(stream=S, event=Redone())])
                model_done.append(model_undone.pop())
            assert stacks(store) == (model_done, model_undone)


def test_a_redo_after_two_undos_redoes_the_step_undone_last(store: Store) -> None:
    a, b, c = push(store), push(store), push(store)
    store.append([NewEvent(stream=S, event=Undone())])
    store.append([NewEvent(stream=S, event=Undone())])
    (redo,) = store.append([NewEvent(stream=S, event=Redone())])
    assert store.events(after=redo - 1)[0].event == Redone(redone_seq=b)
    assert stacks(store) == ([a, b], [c])


def test_a_copy_fed_the_log_in_pieces_has_the_primarys_zipper(store: Store, tmp_path: object) -> None:
    from pathlib import Path

    push(store), push(store)
    store.append([NewEvent(stream=S, event=Undone())])  # the copy's first piece ends with a redo side
    push(store)
    store.append([NewEvent(stream=S, event=Undone())])  # a step, then an undo, in the second piece
    with store.read() as txn:
        log_id = store.log.log_id(txn)
        records = [(seq, bytes(raw)) for seq, raw in store.log.records(txn)]
    with Store.open(Path(str(tmp_path)) / "copy") as copy:
        for piece in (records[:3], records[3:]):
            def write(txn: object, piece: list[tuple[int, bytes]] = piece) -> int:
                copy.log.adopt_identity(txn, log_id)  # type: ignore[arg-type]
                return copy.log.append_records(txn, piece, log_id)  # type: ignore[arg-type]

            copy.environment.write(write)
        assert stacks(copy) == stacks(store) == ([1], [4])
        assert copy.verify().ok

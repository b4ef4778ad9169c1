"""Claims about the time floor index: a ``since`` read skips older blocks and still equals a full scan."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rgstore.log
import rgstore.views.timeindex as timeindex
from rgstore.events import Noted
from rgstore.log import NewEvent
from rgstore.store import Store
from rgstore.verify import view_digests
from rgstore.views.timeindex import TimeIndexView
from tests.conftest import seeded_store_path
from tests.log_clock import LogClock

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)


class _Clock(LogClock):
    current = T0


def _append(store: Store, commands: list[tuple[int, int]]) -> None:
    """Each command: (events, minutes from T0 its clock reads)."""
    for size, minutes in commands:
        _Clock.current = T0 + timedelta(minutes=minutes)
        store.append([NewEvent(stream=f"note:{n % 3}", event=Noted(text=str(n))) for n in range(size)])


def _floor(store: Store, since: datetime) -> int | None:
    with store.read() as txn:
        return TimeIndexView.floor(txn, store.environment.db("timeindex"), since)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(commands=st.lists(st.tuples(st.integers(1, 9), st.integers(-50, 50)), min_size=1, max_size=25),
       block=st.sampled_from([1, 2, 3, 7]), data=st.data())
def test_a_since_read_through_the_floor_equals_a_full_scan_however_the_clock_steps_back(
    tmp_path_factory: Any, empty_refget: Path, monkeypatch: pytest.MonkeyPatch, commands: list[tuple[int, int]],
    block: int, data: st.DataObject,
) -> None:
    monkeypatch.setattr(rgstore.log, "datetime", _Clock)
    monkeypatch.setattr(timeindex, "BLOCK", block)  # small blocks: many boundaries in a few events
    with Store.open(seeded_store_path(empty_refget, Path(str(tmp_path_factory.mktemp("t"))))) as store:
        _append(store, commands)
        with store.read() as txn:
            every = list(store.log.envelopes(txn))
        times = sorted({e.time for e in every})
        for since in [times[0] - timedelta(minutes=1), *times, times[-1] + timedelta(seconds=1)]:
            want = [e.seq for e in every if e.time >= since]
            after = data.draw(st.sampled_from([0, 0, *(e.seq for e in every)]))
            assert [e.seq for e in store.events(since=since, after=after)] == [s for s in want if s > after]
            assert [e.seq for e in store.events(since=since, last=2)] == want[-2:]
            floor = _floor(store, since)
            if want:  # the floor never skips a match, and stops at a block boundary
                assert floor is not None and floor < want[0] and floor % block == 0
            else:
                assert floor is None
        live = view_digests(store)
        store.rebuild()
        assert view_digests(store) == live


def test_a_since_read_of_the_last_hour_starts_at_the_block_where_the_clock_reached_it(
    store_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rgstore.log, "datetime", _Clock)
    with Store.open(store_path) as store:
        # A month of commands, one a day, 500 events each; then the clock steps back a day for one command.
        _append(store, [(500, day * 24 * 60) for day in range(30)] + [(10, 28 * 24 * 60)])
        with store.read() as txn:
            every = list(store.log.envelopes(txn))
        for day in (29, 28):
            since = T0 + timedelta(days=day)
            want = [e.seq for e in every if e.time >= since]
            # 500 (or 1,010) events, beside a log of 15,000: the read starts at the block holding the first.
            assert len(want) == (500 if day == 29 else 1010) and want == list(range(want[0], want[0] + len(want)))
            assert _floor(store, since) == ((want[0] - 1) // timeindex.BLOCK) * timeindex.BLOCK
            assert [e.seq for e in store.events(since=since)] == want
        assert store.events(since=T0 + timedelta(days=31)) == [] and _floor(store, T0 + timedelta(days=31)) is None


def test_without_the_index_at_the_head_a_since_read_scans_and_gives_the_same_events(
    store_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As after an older rgstore (which lacks the index) appended: the index lags, so reads must not trust it.
    monkeypatch.setattr(rgstore.log, "datetime", _Clock)
    with Store.open(store_path) as store:
        _append(store, [(5, 0), (5, 10)])
        view = next(v for v in store.views if v.name == "timeindex")
        # The index as an older rgstore leaves it: folded to seq 5 only, so it knows no time after minute 0.
        store.environment.write(lambda txn: (
            txn.put(b"\0" * 8, timeindex._US.pack(timeindex._micros(T0)), db=store.environment.db("timeindex")),
            store.log.set_checkpoint(txn, view, 5)))
        assert _floor(store, T0 + timedelta(minutes=5)) is None  # what trusting it would have answered
        assert [e.seq for e in store.events(since=T0 + timedelta(minutes=5))] == list(range(6, 11))

"""Event ids are UUIDv7s: valid, unique, and sorted by the time they were drawn."""

from __future__ import annotations

import time
import uuid

import pytest

from rgstore.eventids import id_source, new_event_id


def test_event_ids_are_time_ordered_uuid7() -> None:
    ids = [new_event_id() for _ in range(200)]
    assert all(i[14] == "7" for i in ids)
    assert [i[:13] for i in ids] == sorted(i[:13] for i in ids)
    assert len(set(ids)) == 200


@pytest.mark.parametrize("n", [1, 11, 12, 13, 5000])  # both ways of drawing them (one by one below 12)
def test_ids_drawn_in_bulk_are_valid_distinct_uuid7s_with_the_rfc_variant(n: int) -> None:
    ids = list(id_source(n))
    parsed = [uuid.UUID(i) for i in ids]
    assert len(set(ids)) == n
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 and str(u) == i for u, i in zip(parsed, ids))


def test_a_bulk_batch_carries_the_current_millisecond_and_sorts_after_earlier_ids() -> None:
    before = new_event_id()
    time.sleep(0.002)
    batch = list(id_source(3))
    now_ms = time.time_ns() // 1_000_000
    stamp = int(batch[0].replace("-", "")[:12], 16)
    assert now_ms - 1000 <= stamp <= now_ms
    assert all(before < i for i in batch)


def test_a_clock_set_before_1970_still_draws_valid_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    # A negative millisecond count made every write fail with OverflowError.
    from rgstore import eventids

    monkeypatch.setattr(eventids._time, "time_ns", lambda: -3_600 * 10**9)
    ids = [new_event_id(), *id_source(2)]
    assert all(uuid.UUID(i).version == 7 and i.startswith("00000000-0000-7") for i in ids)


def test_bulk_ids_keep_every_random_bit_of_uuid7_after_their_shared_millisecond() -> None:
    ids = list(id_source(5000))
    assert len({i[:13] for i in ids}) == 1  # the batch shares one millisecond stamp
    for at in [*range(15, 18), 19, *range(20, 23), *range(24, 36)]:
        assert len({i[at] for i in ids}) == (4 if at == 19 else 16), at
    assert list(id_source(0)) == []

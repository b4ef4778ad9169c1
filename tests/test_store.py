"""Claims about Store's read API beyond the log module: paged event iteration."""

from __future__ import annotations

from rgstore.events import Noted
from rgstore.log import NewEvent
from rgstore.store import Store


def test_iter_events_yields_what_events_returns_page_by_page_for_every_filter(store: Store) -> None:
    store.append([NewEvent(stream=f"audit:{i % 3}", event=Noted(text=f"n{i}")) for i in range(25)])
    for stream in (None, "audit:1", "audit:*", "nothing:*"):
        for page in (1, 4, 7, 25, 26, 100):
            got = [e.seq for e in store.iter_events(stream=stream, page=page)]
            assert got == [e.seq for e in store.events(stream=stream)], (stream, page)
    assert [e.seq for e in store.iter_events(after=20, page=2)] == [21, 22, 23, 24, 25]


def test_iter_events_reads_one_page_at_a_time(store: Store) -> None:
    store.append([NewEvent(stream="audit:x", event=Noted(text=f"n{i}")) for i in range(10)])
    pages = store.iter_events(page=4)
    first = [next(pages).seq for _ in range(4)]
    # Appended after the first page was read: a later page sees it (no snapshot of the whole log is held).
    store.append([NewEvent(stream="audit:x", event=Noted(text="late"))])
    assert first + [e.seq for e in pages] == list(range(1, 12))

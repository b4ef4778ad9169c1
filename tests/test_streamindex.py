"""Claims about the per-stream seq index and the stream-filtered reads it serves."""

from __future__ import annotations

import json
from datetime import datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rgstore.errors import ConflictError
from rgstore.events import Envelope, Event, Noted
from rgstore.log import NewEvent
from rgstore.store import Store
from rgstore.verify import view_digests
from rgstore.views.streamindex import StreamIndexView, literal_prefix
from tests.conftest import seeded_store_path
from tests.strategies import natural_streams, plausible_event

# Names chosen to sit next to each other in key order: a stream, its extensions, glob characters in names.
ODD_STREAMS = ("a", "a/b", "a b", "ab", "a[b", "a*", "alias:x/1", "alias:x/10", "alias:y/1", "é:1", "b")
GLOBS = ("*", "a*", "a/*", "alias:*", "alias:x/*", "alias:*/1", "a?", "a[b", "[ab]*", "*b", "alias:x/1*",
         "cache:*", "refpkg:*", "note:?", "é*", "zz*", "a[/ ]b", "alias:collection/*", "a[b*", "no-such")
TAGS = ("noted", "alias-set", "refpkg-updated", "undone", "cache-touched", "genome-added")

noted = st.tuples(st.sampled_from(ODD_STREAMS), st.builds(Noted, text=st.text(max_size=3)))
command = st.lists(st.one_of(noted, plausible_event()), min_size=1, max_size=4)


ACTORS = ("alice@lab", "bob@lab", "alice@home")
ACTOR_FILTERS = ("alice@lab", "alice@*", "*@lab", "bob@lab", "nobody", "?ob@lab")


def _append_all(store: Store, commands: list[list[tuple[str, Event]]]) -> None:
    for number, batch in enumerate(commands):
        store.actor = ACTORS[number % len(ACTORS)]  # who acts varies by command, as in a shared store
        try:
            store.append([NewEvent(stream=s, event=e) for s, e in batch])  # type: ignore[arg-type]
        except ConflictError:
            pass  # an undo with nothing to undo: refused, nothing written


def _brute(every: list[Envelope], stream: str | None, type_: str | None, since: datetime | None,
           after: int, limit: int | None, last: int | None, until: datetime | None = None,
           actor: str | None = None) -> list[int]:
    """The documented meaning of ``Store.events``, over the whole log."""
    if (limit is not None and limit <= 0) or (last is not None and last <= 0):
        return []
    out = [e.seq for e in every if e.seq > after
           and (stream is None or e.stream == stream or fnmatchcase(e.stream, stream))
           and (type_ is None or e.event.__struct_config__.tag == type_)
           and (since is None or e.time >= since) and (until is None or e.time < until)
           and (actor is None or fnmatchcase(e.actor, actor))]
    if limit is not None:
        out = out[:limit]
    return out[-last:] if last is not None else out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(commands=st.lists(command, max_size=30), bulk=st.lists(noted, min_size=8, max_size=40), data=st.data())
def test_index_backed_stream_reads_equal_a_brute_force_scan(
    tmp_path_factory: Any, empty_refget: Path, commands: list[list[tuple[str, Event]]], bulk: list[tuple[str, Event]],
    data: st.DataObject,
) -> None:
    root = Path(str(tmp_path_factory.mktemp("idx")))
    with Store.open(seeded_store_path(empty_refget, root)) as store:
        _append_all(store, [bulk, *commands] if bulk else commands)  # bulk: enough events to page and to cut
        with store.read() as txn:
            every = list(store.log.envelopes(txn))
        if not every:
            assert store.events(stream="a") == [] and list(store.iter_events(stream="a*")) == []
            return
        used = sorted({e.stream for e in every})
        names = sorted(set(used) | set(natural_streams()) | set(ODD_STREAMS))
        for _ in range(25):
            stream = data.draw(st.one_of(st.none(), st.sampled_from(used), st.sampled_from(names),
                                         st.sampled_from(GLOBS)))
            type_ = data.draw(st.sampled_from((None,) * len(TAGS) + TAGS))
            since = data.draw(st.sampled_from([None] * 4 + [e.time for e in every][:4]))
            until = data.draw(st.sampled_from([None] * 4 + [e.time for e in every][-4:]))
            actor = data.draw(st.sampled_from((None,) * 4 + ACTOR_FILTERS))
            # An event's own seq as `after` puts the boundary on a matching event as often as not.
            after = data.draw(st.sampled_from([0, 0, 0, *(e.seq for e in every)][:12]))
            cut = data.draw(st.sampled_from(("none", "limit", "last", "last", "both")))
            limit = data.draw(st.integers(0, 6)) if cut in ("limit", "both") else None
            last = data.draw(st.integers(0, 6)) if cut in ("last", "both") else None
            got = store.events(stream=stream, type=type_, since=since, after=after, limit=limit, last=last,
                               until=until, actor=actor)
            assert [e.seq for e in got] == _brute(every, stream, type_, since, after, limit, last, until, actor)
            assert got == [every[e.seq - 1] for e in got]  # whole envelopes, not just seqs
            page = data.draw(st.integers(1, 5))
            paged = [e.seq for e in store.iter_events(stream=stream, type=type_, since=since, after=after, page=page,
                                                      until=until, actor=actor)]
            assert paged == _brute(every, stream, type_, since, after, None, None, until, actor)


def test_an_exact_stream_never_picks_up_streams_that_extend_its_name(store: Store) -> None:
    store.append([NewEvent(stream=s, event=Noted(text=s)) for s in ("a", "a/b", "a b", "ab", "a", "a\u00e9")])
    assert [e.seq for e in store.events(stream="a")] == [1, 5]
    assert [e.seq for e in store.events(stream="a", last=1)] == [5]
    assert [e.seq for e in store.events(stream="a", after=1, last=5)] == [5]  # `after` holds reading backwards
    assert store.events(stream="a", after=5, last=5) == []
    assert [e.seq for e in store.events(stream="a*", after=1, last=2)] == [5, 6]
    assert [e.seq for e in store.events(stream="a/*")] == [2]


def test_the_index_holds_one_key_per_event_in_stream_then_seq_order(store: Store) -> None:
    store.append([NewEvent(stream="z", event=Noted()), NewEvent(stream="y", event=Noted()),
                  NewEvent(stream="z", event=Noted())])
    with store.read() as txn:
        db = store.environment.db("streamindex")
        with txn.cursor(db=db) as cur:
            keys = [bytes(k) for k, _ in cur]
        assert keys == [b"y\x00" + (2).to_bytes(8, "big"), b"z\x00" + (1).to_bytes(8, "big"),
                        b"z\x00" + (3).to_bytes(8, "big")]
        assert list(StreamIndexView.seqs(txn, db, "z", backwards=True)) == [3, 1]
        assert list(StreamIndexView.seqs(txn, db, "z", after=1)) == [3]


def test_literal_prefix_stops_at_the_first_wildcard() -> None:
    assert literal_prefix("alias:refgenie/*") == "alias:refgenie/"
    assert literal_prefix("alias:*/hg38") == "alias:"
    assert literal_prefix("a?b[c]") == "a"
    assert literal_prefix("*x") == ""
    assert literal_prefix("plain") == "plain"


def _drop_index(store: Store) -> None:
    """Make the store look as if written by an rgstore without the index: no data, no checkpoint."""
    view = next(v for v in store.views if isinstance(v, StreamIndexView))

    def run(txn: Any) -> None:
        view.clear(txn, store.environment)
        txn.delete(view.name.encode(), db=store.environment.db("checkpoints"))

    store.environment.write(run)


def test_a_store_written_before_the_index_gets_it_built_on_a_read_only_open(store_path: Path, cli: Any) -> None:
    with Store.open(store_path) as store:
        store.append([NewEvent(stream=f"alias:refgenie/g{i % 3}", event=Noted(text=str(i))) for i in range(9)])
        full = view_digests(store)
        _drop_index(store)
        assert view_digests(store)["streamindex"] != full["streamindex"]
    result = cli("log", "--stream", "alias:refgenie/g1", "--json")
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["seq"] for line in result.stdout.splitlines()] == [2, 5, 8]
    assert "note:" not in result.output  # a view new to the store is an upgrade, not damage
    with Store.open(store_path, readonly=True) as store:
        assert view_digests(store) == full
        assert store.verify().problems == []


def test_rebuild_reproduces_the_index_byte_for_byte(store: Store) -> None:
    store.append([NewEvent(stream=f"s{i % 7}", event=Noted()) for i in range(50)])
    store.append([NewEvent(stream="s1", event=Noted())])
    before = view_digests(store)["streamindex"]
    store.rebuild()
    assert view_digests(store)["streamindex"] == before


def test_a_handle_open_while_an_older_rgstore_appended_still_finds_those_events(store: Store) -> None:
    # An older release, which lacks the index, appends without folding it; a handle opened before
    # (`rgstore serve`, a library user) must not answer stream reads from the index that misses them.
    from rgstore.checkpoints import FIRST_RELEASE_VIEWS
    from rgstore.log import EventLog

    store.append([NewEvent(stream="old/1", event=Noted(text="new"))])
    older = EventLog(store.environment, [view for view in store.views if view.name in FIRST_RELEASE_VIEWS])
    store.environment.write(lambda txn: older.append(
        txn, [NewEvent(stream=s, event=Noted(text="old")) for s in ("old/1", "old/2")], "old@lab"))
    assert [e.seq for e in store.events(stream="old/1")] == [1, 2]
    assert [e.seq for e in store.events(stream="old/1", last=1)] == [2]
    assert [e.seq for e in store.events(stream="old/*")] == [1, 2, 3]
    assert [e.seq for e in store.iter_events(stream="old/*", page=2)] == [1, 2, 3]
    assert [e.seq for e in store.iter_events(stream="old/2")] == [3]


def test_a_stream_pattern_holding_bytes_that_are_not_utf8_matches_nothing_instead_of_raising(store: Store) -> None:
    # A command-line byte that is not UTF-8 arrives as a lone surrogate ('\udcff'), which no stored name holds.
    store.append([NewEvent(stream=s, event=Noted()) for s in ("a", "a\u00ff")])
    for pattern in ("\udcff", "a\udcff", "a\udcff*", "a*\udcff"):
        assert store.events(stream=pattern) == [] and store.events(stream=pattern, last=1) == []
        assert list(store.iter_events(stream=pattern)) == []

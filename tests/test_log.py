"""Claims about the append-only log: seqs, ids, expected versions, atomicity, chain, framing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import lmdb
import pytest

from rgstore.codec import CODEC_RAW, CODEC_ZSTD, chain_hash, decode_envelope, genesis_hash, unframe
from rgstore.errors import (
    ChainError,
    ConcurrencyConflictError,
    IdempotencyConflictError,
    InvalidInputError,
    NothingToRedoError,
    NothingToUndoError,
)
from rgstore.events import AliasSet, Noted, Redone, Undone
from rgstore.log import NewEvent, new_event_id
from rgstore.store import Store


def note(stream: str, text: str = "x", **kw: object) -> NewEvent:
    return NewEvent(stream=stream, event=Noted(text=text), **kw)  # type: ignore[arg-type]


def test_append_assigns_gapless_seqs_from_one(store: Store) -> None:
    assert store.append([note("a")]) == [1]
    assert store.append([note("b"), note("a")]) == [2, 3]
    assert [e.seq for e in store.events()] == [1, 2, 3]


def test_envelope_carries_stream_version_actor_and_utc_time(store: Store) -> None:
    store.append([note("a"), note("b"), note("a")])
    envs = store.events()
    assert [(e.stream, e.stream_version) for e in envs] == [("a", 1), ("b", 1), ("a", 2)]
    assert {e.actor for e in envs} == {"tester@test"}
    assert all(e.time.utcoffset() is not None and e.time.utcoffset().total_seconds() == 0 for e in envs)


def test_retry_with_same_ids_returns_original_seqs_and_writes_nothing(store: Store) -> None:
    batch = [note("a", id=new_event_id()), note("b", id=new_event_id())]
    assert store.append(batch) == [1, 2]
    assert store.append(batch) == [1, 2]
    assert store.head()[0] == 2


def test_same_id_with_different_payload_is_a_conflict(store: Store) -> None:
    eid = new_event_id()
    store.append([note("a", "one", id=eid)])
    with pytest.raises(IdempotencyConflictError, match="different payload"):
        store.append([note("a", "two", id=eid)])
    assert store.head()[0] == 1


def test_partially_repeated_batch_is_a_conflict(store: Store) -> None:
    first = note("a", id=new_event_id())
    store.append([first])
    with pytest.raises(IdempotencyConflictError):
        store.append([first, note("a", id=new_event_id())])
    assert store.head()[0] == 1


def test_expected_version_mismatch_raises_and_appends_nothing(store: Store) -> None:
    store.append([note("a", expected_version=0)])
    store.append([note("a", expected_version=1)])
    with pytest.raises(ConcurrencyConflictError, match="version 2, expected 1"):
        store.append([note("b"), note("a", expected_version=1)])
    assert store.head()[0] == 2
    assert store.stream_version("b") == 0


def test_expected_version_zero_means_the_stream_must_not_exist(store: Store) -> None:
    store.append([note("a")])
    with pytest.raises(ConcurrencyConflictError):
        store.append([note("a", expected_version=0)])


def test_a_failing_command_leaves_no_event(store: Store) -> None:
    def command(txn: object) -> list[NewEvent]:
        raise InvalidInputError("bad input")

    with pytest.raises(InvalidInputError):
        store.transact(command)
    assert store.head()[0] == 0


def test_stream_names_must_be_printable(store: Store) -> None:
    with pytest.raises(InvalidInputError):
        store.append([note("bad\x00stream")])


def test_an_event_holding_a_lone_surrogate_is_refused_in_one_line_and_nothing_is_written(store: Store) -> None:
    # A command-line argument with a byte that is not UTF-8 reaches events as '\udcff'.
    store.append([note("a")])
    with pytest.raises(InvalidInputError, match=r"^Noted: text 'made by \\udcff' is not valid Unicode"):
        store.append([note("a"), note("a", "made by \udcff")])
    assert store.head()[0] == 1 and store.verify().ok


def test_stream_names_are_limited_in_utf8_bytes_not_characters(store: Store) -> None:
    store.append([note("s" + "é" * 249)])  # 499 bytes: every view key built from it fits LMDB
    with pytest.raises(InvalidInputError, match="1-500 bytes of printable UTF-8"):
        store.append([note("s" + "é" * 250)])  # 251 characters, 501 bytes
    assert store.head()[0] == 1 and store.verify().ok


def test_chain_hash_follows_the_documented_formula(store: Store) -> None:
    store.append([note("a"), note("b")])
    prev = genesis_hash(store.log_id())
    assert prev == hashlib.sha256(b"rgstore-v1" + store.log_id().encode()).digest()
    with store.read() as txn:
        for seq, record in store.log.records(txn):
            chain, payload = unframe(record, seq)
            expected = hashlib.sha256(prev + seq.to_bytes(8, "big") + payload).digest()
            assert chain == expected == chain_hash(prev, seq, payload)
            prev = chain
        assert store.log.head(txn) == (2, prev)


def test_large_records_are_zstd_compressed_and_small_ones_raw(store: Store) -> None:
    store.append([note("a", "x"), note("b", "ACGT" * 2000)])
    with store.read() as txn:
        codecs = {seq: bytes(rec[:1])[0] for seq, rec in store.log.records(txn)}
        assert codecs == {1: CODEC_RAW, 2: CODEC_ZSTD}
        big = store.log.record(txn, 2)
        assert big is not None and len(big) < 2000
        assert decode_envelope(unframe(big, 2)[1]).event == Noted(text="ACGT" * 2000)


def test_undo_and_redo_fill_their_target_seqs(store: Store) -> None:
    stream = "alias:refgenie/x"
    store.append([NewEvent(stream=stream, event=AliasSet(namespace="refgenie", name="x", digest="d1"))])
    store.append([NewEvent(stream=stream, event=AliasSet(namespace="refgenie", name="x", digest="d2"))])
    store.append([NewEvent(stream=stream, event=Undone())])
    store.append([NewEvent(stream=stream, event=Redone())])
    events = [e.event for e in store.events()]
    assert events[2] == Undone(undone_seq=2, restored_seq=1)
    assert events[3] == Redone(redone_seq=2)


def test_undo_of_an_empty_stream_and_redo_without_undo_are_refused(store: Store) -> None:
    with pytest.raises(NothingToUndoError):
        store.append([NewEvent(stream="s", event=Undone())])
    store.append([note("s")])
    with pytest.raises(NothingToRedoError):
        store.append([NewEvent(stream="s", event=Redone())])
    assert store.head()[0] == 1


def test_the_map_grows_when_full(tmp_path: object) -> None:
    from pathlib import Path

    from rgstore.environment import Environment

    root = Path(str(tmp_path)) / "small"
    (root / "log").mkdir(parents=True)
    # Pre-create a tiny environment: the store must grow its map instead of failing.
    env = lmdb.open(str(root / "log"), map_size=256 * 1024, max_dbs=64)
    env.close()
    store = Store.__new__(Store)
    Store.__init__(store, root, Environment(root / "log", readonly=False, map_size=256 * 1024), "t@t")
    store.environment.write(lambda txn: store.log.initialise(txn))
    for _ in range(20):
        store.append([note("a", "y" * 300) for _ in range(100)])
    assert store.head()[0] == 2000
    assert store.environment.env.info()["map_size"] > 256 * 1024
    store.close()


def test_readonly_store_refuses_writes(store_path: object, store: Store) -> None:
    from rgstore.errors import ReadOnlyError

    store.append([note("a")])
    head = store.head()
    store.close()  # LMDB allows one open environment per path per process
    ro = Store.open(store.path, readonly=True)
    try:
        with pytest.raises(ReadOnlyError):
            ro.append([note("a")])
        assert ro.head() == head
    finally:
        ro.close()


def test_after_enough_events_small_records_use_a_dictionary_that_travels_in_the_log(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    from rgstore.codec import CODEC_ZSTD_DICT
    from rgstore.replay import export_log
    from rgstore.store import DICTIONARY_AFTER
    from tests.conftest import REPO

    with Store.open(tmp_path / "p") as store:
        for k in range(DICTIONARY_AFTER // 1000 + 2):
            store.append([NewEvent(stream=f"alias:refgenie/g{i % 50}",
                                   event=AliasSet(namespace="refgenie", name=f"g{i % 50}", digest=f"{k}-{i:030d}"))
                          for i in range(1000)])
        (announced,) = store.events(type="codec-dictionary-added")
        with store.read() as txn:
            late = [rec for seq, rec in store.log.records(txn, after=announced.seq)]
        assert late and all(rec[0] == CODEC_ZSTD_DICT for rec in late)
        assert store.verify().ok
        export_log(store, tmp_path / "x.rglog")
        head = store.head()
    # A fresh process has never seen the dictionary: it learns it from the log while replaying.
    code = ("from pathlib import Path\nfrom rgstore.store import Store\nfrom rgstore.replay import replay_file\n"
            f"m = Store.open({str(tmp_path / 'm')!r})\nreplay_file(m, Path({str(tmp_path / 'x.rglog')!r}))\n"
            "print(m.head()[1], m.verify().ok)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.split() == [head[1], "True"]


def test_an_append_over_a_record_the_head_does_not_know_is_refused_whole(store: Store) -> None:
    store.append([NewEvent(stream="s", event=Noted(text="one"))])
    stray = (2).to_bytes(8, "big")
    store.environment.write(lambda txn: txn.put(stray, b"stray", db=store.environment.db("log")))
    with pytest.raises(ChainError, match="log and head disagree"):
        store.append([NewEvent(stream="s", event=Noted(text="two")), NewEvent(stream="s", event=Noted(text="3"))])
    assert store.head()[0] == 1
    with store.read() as txn:
        assert txn.get(stray, db=store.environment.db("log")) == b"stray"
        assert txn.get((3).to_bytes(8, "big"), db=store.environment.db("log")) is None


def test_an_object_that_is_not_a_registered_event_is_refused_and_the_log_stays_readable(store: Store) -> None:
    import msgspec

    class Foreign(msgspec.Struct, frozen=True, tag="foreign"):
        text: str = ""

    for bogus in ("hello", {"type": "noted"}, Foreign(text="x")):
        with pytest.raises(InvalidInputError, match="not an event type"):
            store.append([note("a"), NewEvent(stream="a", event=bogus)])  # type: ignore[arg-type]
    assert store.head()[0] == 0
    store.append([note("a")])
    assert [e.seq for e in store.events(type="noted")] == [1]


def test_an_event_id_that_is_not_a_uuid_is_a_clear_input_error(store: Store) -> None:
    for bad in ("id1", "", "x" * 600):
        with pytest.raises(InvalidInputError, match="not a UUID"):
            store.append([note("a", id=bad)])
    assert store.head()[0] == 0
    uid = new_event_id()
    assert store.append([note("a", id=uid)]) == store.append([note("a", id=uid)]) == [1]


def test_the_most_recent_matches_are_found_from_the_head_in_seq_order(store: Store) -> None:
    for i in range(30):
        store.append([note(f"s{i % 3}", text=str(i))])
    assert [e.event.text for e in store.events(stream="s1", last=3)] == ["22", "25", "28"]  # type: ignore[union-attr]
    assert [e.seq for e in store.events(last=2)] == [29, 30]
    assert [e.seq for e in store.events(stream="s*", limit=2)] == [1, 2]
    assert store.events(last=0) == [] and store.events(after=-5, limit=1)[0].seq == 1


def test_stream_filters_take_globs_anywhere_in_the_name(store: Store) -> None:
    for stream in ("alias:refgenie/hg38", "alias:ucsc/hg38", "alias:refgenie/mm10", "refpkg:hg38", "a[1]"):
        store.append([note(stream)])
    assert [e.stream for e in store.events(stream="alias:*/hg38")] == ["alias:refgenie/hg38", "alias:ucsc/hg38"]
    assert [e.stream for e in store.events(stream="*hg3?")] == ["alias:refgenie/hg38", "alias:ucsc/hg38", "refpkg:hg38"]
    assert [e.stream for e in store.events(stream="alias:*")][-1] == "alias:refgenie/mm10"
    assert [e.stream for e in store.events(stream="a[1]")] == ["a[1]"]  # an exact name wins over its glob reading


def test_a_seq_outside_the_log_or_beyond_64_bits_is_not_found(store: Store) -> None:
    from rgstore.errors import NotFoundError

    store.append([note("a")])
    for seq in (0, -1, 2, 1 << 64, 10**30):
        with pytest.raises(NotFoundError, match=f"no event at seq {seq}"):
            store.event(seq)


def test_a_seq_past_the_head_is_not_found_naming_the_head(store: Store) -> None:
    from rgstore.errors import NotFoundError

    store.append([note("a"), note("b")])
    head = store.head()[0]
    for seq in (head + 1, 1 << 64, 10**30):
        with pytest.raises(NotFoundError, match=rf"^no event at seq {seq}: the head is {head}; see `rgstore log`$"):
            store.event(seq)


def test_odd_actors_are_refused_before_anything_is_opened(tmp_path) -> None:  # type: ignore[no-untyped-def]
    for actor in ("", " alice", "a\nb", "x" * 201, "tab\there"):
        with pytest.raises(InvalidInputError, match="invalid actor"):
            Store.open(tmp_path / "s", actor=actor)
    assert not (tmp_path / "s").exists()
    with Store.open(tmp_path / "s", actor="ünï cødé 🧬@lab") as s:
        s.append([note("a")])
        assert s.events()[0].actor == "ünï cødé 🧬@lab"


def test_a_store_opened_without_an_actor_names_user_at_host_on_its_events(tmp_path: Path) -> None:
    # Store.actor is resolved on first use (a read never pays for getpass and socket): a write still names the user.
    import getpass
    import socket

    with Store.open(tmp_path / "s") as s:
        s.append([note("a")])
        assert s.events()[0].actor == f"{getpass.getuser()}@{socket.gethostname()}" == s.actor


def test_a_handles_actor_can_be_changed_between_commands_and_is_checked_as_open_checks_it(tmp_path: Path) -> None:
    # A plain attribute once; the lazy property must keep it settable (tests and scripts switch actors).
    with Store.open(tmp_path / "s", actor="alice@lab") as s:
        s.append([note("a")])
        s.actor = "bob@lab"
        s.append([note("b")])
        with pytest.raises(InvalidInputError, match="invalid actor"):
            s.actor = " padded "
        assert [e.actor for e in s.events()] == ["alice@lab", "bob@lab"] and s.actor == "bob@lab"


def test_an_empty_store_path_or_a_second_handle_in_one_process_is_a_clear_error(store: Store) -> None:
    from rgstore.errors import StoreOpenError

    with pytest.raises(InvalidInputError, match="store path is empty"):
        Store.open("")
    with pytest.raises(StoreOpenError, match="already open in this process"):
        Store.open(store.path, readonly=True)


def test_a_store_of_a_newer_log_format_is_refused_before_anything_is_written_to_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from rgstore.errors import RgstoreError

    Store.open(tmp_path / "s").close()
    env = lmdb.open(str(tmp_path / "s" / "log"), max_dbs=64)
    with env.begin(write=True) as txn:
        txn.put(b"format", b"2", db=env.open_db(b"meta", txn=txn))
        txn.drop(env.open_db(b"streams", txn=txn), delete=True)  # a sub-db the newer format no longer has
    env.close()
    for readonly in (False, True):
        with pytest.raises(RgstoreError, match=r"newer rgstore \(log format 2, this one reads 1\); upgrade"):
            Store.open(tmp_path / "s", readonly=readonly)
    env = lmdb.open(str(tmp_path / "s" / "log"), max_dbs=64, readonly=True)
    with env.begin() as txn:
        assert txn.get(b"streams") is None
    env.close()


def test_a_store_whose_format_marker_is_not_a_number_is_refused_in_one_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # int(b"x1") was a ValueError traceback from every command on such a store.
    from rgstore.errors import StoreOpenError

    Store.open(tmp_path / "s").close()
    env = lmdb.open(str(tmp_path / "s" / "log"), max_dbs=64)
    with env.begin(write=True) as txn:
        txn.put(b"format", b"x1", db=env.open_db(b"meta", txn=txn))
    env.close()
    for readonly in (False, True):
        with pytest.raises(StoreOpenError, match=r"format marker b'x1' is not a number .*restore the store"):
            Store.open(tmp_path / "s", readonly=readonly)


def _older_release_appends(store: Store, texts: list[str]) -> None:
    """Append as a release without the views added since the first does: it folds and checkpoints only its own."""
    from rgstore.checkpoints import FIRST_RELEASE_VIEWS
    from rgstore.log import EventLog

    older = EventLog(store.environment, [view for view in store.views if view.name in FIRST_RELEASE_VIEWS])
    assert len(older.views) < len(store.views)  # this release has views the first lacked (e.g. 'streamindex')
    store.environment.write(lambda txn: older.append(txn, [NewEvent(stream="old", event=Noted(text=t)) for t in texts],
                                                     "old@lab"))


def test_a_writer_open_while_an_older_rgstore_appended_folds_those_records_into_the_views_it_lacks(
    store: Store,
) -> None:
    # A long-lived handle (`serve --follow`, a long `genome init`) opened before a lab machine on an
    # older release wrote: its next commit must not leave the older release's events out of newer views.
    store.append([NewEvent(stream="new", event=Noted(text="1"))])
    _older_release_appends(store, ["a", "b"])
    store.append([NewEvent(stream="new", event=Noted(text="2"))])
    assert [env.seq for env in store.events(stream="old")] == [2, 3]
    report = store.verify()
    assert report.ok, report.problems


def test_the_next_open_after_an_older_rgstore_appended_folds_only_its_records_instead_of_rebuilding(
    tmp_path: Path,
) -> None:
    # A lab on mixed releases: every open after each older append refolded the whole log into the time
    # index (3.5 s at 600k events, under the writer lock, for an `alias get`); only the gap needs folding.
    from rgstore.checkpoints import rebuild_count
    from tests.progress_recorder import Bars

    with Store.open(tmp_path / "s") as store:
        store.append([NewEvent(stream="new", event=Noted(text=str(i))) for i in range(3)])
        _older_release_appends(store, ["a", "b"])
        with store.read() as txn:
            rebuilds = rebuild_count(store.log, txn)
    bars = Bars()
    with Store.open(tmp_path / "s", readonly=True, progress=bars) as store:  # a reader who may write catches up too
        # On a terminal it says what it folds: after an old mirror's 1M-event pull this takes seconds.
        assert {tuple(bar) for bar in bars.totals()} == {(f"catch up {view.name}", 2, 2) for view in store.views
                                                          if view.reads_fall_back}
        with store.read() as txn:
            assert rebuild_count(store.log, txn) == rebuilds
            assert all(store.log.checkpoint(txn, view) == (view.version, 5) for view in store.views)
        assert store.repaired == []
        assert [env.seq for env in store.events(stream="old")] == [4, 5]
        report = store.verify()
        assert report.ok and not report.lagging_indexes, report.problems


def test_a_mirror_handle_open_while_an_older_rgstore_pulled_folds_those_records_too(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from rgstore.replay import apply_records

    with Store.open(tmp_path / "primary") as primary:
        primary.append([NewEvent(stream=f"s{i}", event=Noted(text=str(i))) for i in range(4)])
        with primary.read() as txn:
            log_id, records = primary.log.log_id(txn), [(s, bytes(r)) for s, r in primary.log.records(txn)]
    with Store.open(tmp_path / "mirror") as mirror:
        apply_records(mirror, log_id, records[:1])
        older = records[1:3]

        def older_pull(txn: object) -> None:
            from rgstore.checkpoints import FIRST_RELEASE_VIEWS
            from rgstore.log import EventLog

            EventLog(mirror.environment, [v for v in mirror.views if v.name in FIRST_RELEASE_VIEWS]).append_records(
                txn, older, log_id)  # type: ignore[arg-type]

        mirror.environment.write(older_pull)
        apply_records(mirror, log_id, records[3:])
        assert [env.seq for env in mirror.events(stream="s1")] == [2]
        report = mirror.verify()
        assert report.ok, report.problems


def test_a_log_whose_meta_lost_its_identity_is_refused_not_given_a_new_one(tmp_path: Path) -> None:
    # What a copy of log/ taken while a writer ran can look like: records present, the meta table emptied.
    from rgstore.errors import StoreOpenError

    root = tmp_path / "s"
    with Store.open(root) as store:
        store.append([note("a"), note("b")])
    env = lmdb.open(str(root / "log"), max_dbs=64)
    meta = env.open_db(b"meta")
    with env.begin(write=True) as txn:
        txn.drop(meta, delete=False)
    env.close()
    for readonly in (False, True):
        with pytest.raises(StoreOpenError, match="holds 2 log records but no log id"):
            Store.open(root, readonly=readonly)
    env = lmdb.open(str(root / "log"), max_dbs=64, readonly=True)
    with env.begin(db=env.open_db(b"meta", create=False)) as txn:
        assert txn.get(b"log_id") is None  # nothing was written over the damage
    env.close()


def test_a_reused_id_on_another_stream_is_a_conflict_not_a_repeat(store: Store) -> None:
    eid = new_event_id()
    store.append([note("a", "one", id=eid)])
    with pytest.raises(IdempotencyConflictError):
        store.append([note("b", "one", id=eid)])
    assert store.head()[0] == 1 and store.stream_version("b") == 0


def test_a_retried_undo_is_a_repeat_but_its_id_on_a_redo_is_a_conflict(store: Store) -> None:
    store.append([note("s"), note("s")])
    eid = new_event_id()
    assert store.append([NewEvent(stream="s", event=Undone(), id=eid)]) == [3]
    assert store.append([NewEvent(stream="s", event=Undone(), id=eid)]) == [3]  # the stored one has its seqs filled
    with pytest.raises(IdempotencyConflictError):
        store.append([NewEvent(stream="s", event=Redone(), id=eid)])
    assert store.head()[0] == 3


def test_an_empty_stream_name_is_refused(store: Store) -> None:
    with pytest.raises(InvalidInputError, match="1-500 bytes"):
        store.append([note("")])
    assert store.head()[0] == 0


def test_a_stream_name_of_exactly_500_utf8_bytes_is_accepted(store: Store) -> None:
    assert store.append([note("é" * 250)]) == [1]
    assert store.stream_version("é" * 250) == 1 and store.verify().ok


def test_an_expected_version_ahead_of_the_stream_is_a_conflict(store: Store) -> None:
    store.append([note("a")])
    with pytest.raises(ConcurrencyConflictError, match="version 1, expected 3"):
        store.append([note("a", expected_version=3)])
    assert store.head()[0] == 1


def test_the_most_recent_matches_after_a_seq_leave_that_seq_out(store: Store) -> None:
    for _ in range(6):
        store.append([note("s")])
    assert [e.seq for e in store.events(after=5, last=3)] == [6]
    assert [e.seq for e in store.events(after=4, last=5)] == [5, 6]


def test_an_undo_in_the_same_command_as_a_step_undoes_that_step(store: Store) -> None:
    store.append([note("s", "one")])
    assert store.append([note("s", "two"), NewEvent(stream="s", event=Undone())]) == [2, 3]
    assert store.events()[-1].event == Undone(undone_seq=2, restored_seq=1)
    assert store.append([NewEvent(stream="s", event=Redone())]) == [4]
    assert store.events()[-1].event == Redone(redone_seq=2)
    assert store.verify().ok


def _copy_of(tmp_path: Path, n: int) -> tuple[str, list[tuple[int, bytes]]]:
    """The log id and stored records of a fresh primary holding ``n`` notes."""
    with Store.open(tmp_path / "primary") as primary:
        primary.append([note("s", str(i)) for i in range(n)])
        with primary.read() as txn:
            return primary.log.log_id(txn), [(seq, bytes(raw)) for seq, raw in primary.log.records(txn)]


def test_records_from_a_copy_are_refused_whole_over_a_record_the_head_does_not_know(tmp_path: Path) -> None:
    log_id, records = _copy_of(tmp_path, 3)
    with Store.open(tmp_path / "m") as mirror:
        def first(txn: object) -> int:
            mirror.log.adopt_identity(txn, log_id)  # type: ignore[arg-type]
            return mirror.log.append_records(txn, records[:1], log_id)  # type: ignore[arg-type]

        assert mirror.environment.write(first) == 1
        stray, db = (2).to_bytes(8, "big"), mirror.environment.db("log")
        mirror.environment.write(lambda txn: txn.put(stray, b"stray", db=db))
        with pytest.raises(ChainError, match="log and head disagree"):
            mirror.environment.write(lambda txn: mirror.log.append_records(txn, records[1:], log_id))
        assert mirror.head()[0] == 1
        with mirror.read() as txn:
            assert txn.get(stray, db=db) == b"stray" and txn.get((3).to_bytes(8, "big"), db=db) is None


def test_a_chained_record_whose_payload_claims_another_seq_is_refused(tmp_path: Path) -> None:
    from rgstore.codec import frame

    log_id, records = _copy_of(tmp_path, 2)
    payload = unframe(records[1][1])[1]  # the envelope of seq 2, chained as if it were seq 1
    forged = frame(payload, chain_hash(genesis_hash(log_id), 1, payload), compress=False)
    with Store.open(tmp_path / "m") as mirror:
        def write(txn: object) -> int:
            mirror.log.adopt_identity(txn, log_id)  # type: ignore[arg-type]
            return mirror.log.append_records(txn, [(1, forged)], log_id)  # type: ignore[arg-type]

        with pytest.raises(ChainError, match="seq 1: payload claims seq 2"):
            mirror.environment.write(write)
        assert mirror.head()[0] == 0


def test_one_id_on_two_events_of_one_command_is_refused(store: Store) -> None:
    eid = new_event_id()
    with pytest.raises(InvalidInputError, match=f"event id {eid} appears twice in one command"):
        store.append([note("a", id=eid), note("b", id=eid)])
    assert store.head()[0] == 0


def test_a_retry_spelling_its_id_in_another_uuid_form_is_the_same_event(store: Store) -> None:
    eid = new_event_id()
    assert store.append([note("a", id=eid)]) == [1]
    for spelling in (eid.upper(), "{" + eid + "}", "urn:uuid:" + eid, eid.replace("-", "")):
        assert store.append([note("a", id=spelling)]) == [1]
    assert store.head()[0] == 1


def test_a_rebuild_of_more_than_64_events_folds_every_domain_views_streams(store: Store) -> None:
    from rgstore.verify import view_digests

    # Past 64 envelopes, fold_batch sorts a batch into stream families once: every family must reach its view.
    store.append([NewEvent(stream=f"alias:refgenie/g{i}", event=AliasSet(namespace="refgenie", name=f"g{i}",
                                                                        digest=f"d{i}")) for i in range(80)]
                 + [note(f"s{i}") for i in range(20)])
    aliases = next(v for v in store.views if v.name == "aliases")
    with store.read() as txn:  # folded by the append itself, too
        assert any(b"g79" in key for _, key, _ in aliases.contents(txn, store.environment))
    incremental = view_digests(store)
    store.rebuild()
    assert view_digests(store) == incremental
    assert store.verify().ok


def test_cli_log_show_past_the_head_and_a_reversed_time_window_say_so_in_one_line(
    store: Store, store_path: Path,
) -> None:
    from tests.conftest import run_rgstore

    store.append([note("a")])
    head = store.head()[0]
    store.close()
    proc = run_rgstore("--store", str(store_path), "log", "show", str(head + 5))
    assert proc.returncode == 1
    assert proc.stderr.decode() == f"error: no event at seq {head + 5}: the head is {head}; see `rgstore log`\n"
    for window in (("--since", "2026-02-01", "--until", "2026-01-01"), ("--since", "1d", "--until", "7d")):
        proc = run_rgstore("--store", str(store_path), "log", *window)
        err = proc.stderr.decode()
        assert proc.returncode == 2 and proc.stdout == b"", err
        assert f"--since {window[1]} is after --until {window[3]}: no event can match; swap them" in err, err
        assert err.startswith("error: ") and err.count("\n") == 1, err

"""Claims about data only a newer rgstore writes: every reader refuses it in one line naming the upgrade, and changes nothing.

"Newer" records are built with the real codec (``encode_envelope``, ``frame``, ``chain_hash``) as a
newer writer would chain them: an envelope whose event tag this version does not know, or whose
``schema`` is above ``SCHEMA_VERSION``. A newer export header (format 2) goes through ``write_log_file``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import lmdb
import msgspec
import pytest

from rgstore.codec import chain_hash, decode_value, encode_envelope, encode_value, frame
from rgstore.errors import NewerRgstoreError
from rgstore.eventids import new_event_id
from rgstore.events import SCHEMA_VERSION, Envelope, Noted
from rgstore.log import NewEvent
from rgstore.logfile import LogHeader, write_log_file
from rgstore.mirror import pull
from rgstore.replay import export_log, replay_file
from rgstore.segments import publish
from rgstore.store import Store
from rgstore.verify import verify_store
from tests.conftest import run_rgstore

NEWER = r"written by a newer rgstore.*upgrade rgstore"


def _unknown_tag(envelope: Envelope) -> bytes:
    raw = decode_value(encode_envelope(envelope))
    assert isinstance(raw, dict)
    raw["event"] = {"type": "from-the-future", "size": 1}
    return encode_value(raw)


def _higher_schema(envelope: Envelope) -> bytes:
    return encode_envelope(msgspec.structs.replace(envelope, schema=SCHEMA_VERSION + 1))


NEWER_PAYLOADS: dict[str, Callable[[Envelope], bytes]] = {"unknown event tag": _unknown_tag,
                                                          "higher schema": _higher_schema}


def append_as_newer_writer(store: Store, make: Callable[[Envelope], bytes]) -> int:
    """Chain one newer record after the head, with views checkpointed past it (as the newer writer left them)."""
    def write(txn: lmdb.Transaction) -> int:
        seq, prev = store.log.head(txn)
        envelope = Envelope(seq=seq + 1, id=new_event_id(), stream="note:future", stream_version=1,
                            time=store.events()[-1].time, actor="new@host", event=Noted(text="x"))
        payload = make(envelope)
        digest = chain_hash(prev, seq + 1, payload)
        txn.put((seq + 1).to_bytes(8, "big"), frame(payload, digest, compress=False), db=store.environment.db("log"))
        txn.put(b"head", (seq + 1).to_bytes(8, "big") + digest, db=store.environment.db("meta"))
        for view in store.views:
            store.log.set_checkpoint(txn, view, seq + 1)
        return seq + 1

    return store.environment.write(write)


def _digest(path: Path) -> str:
    return hashlib.sha256((path / "log" / "data.mdb").read_bytes()).hexdigest()


@pytest.fixture(params=sorted(NEWER_PAYLOADS))
def newer(request: pytest.FixtureRequest) -> Callable[[Envelope], bytes]:
    return NEWER_PAYLOADS[request.param]


def test_reads_rebuild_and_verify_of_a_log_with_a_newer_record_refuse_naming_its_seq(
        store: Store, newer: Callable[[Envelope], bytes]) -> None:
    store.append([NewEvent(stream="note:a", event=Noted(text="a"))])
    seq = append_as_newer_writer(store, newer)
    for read in (store.events, lambda: store.event(seq), lambda: store.events(last=1), store.rebuild,
                 lambda: verify_store(store)):
        with pytest.raises(NewerRgstoreError, match=f"^log record seq {seq} was {NEWER} to read this log$"):
            read()


def test_opening_a_store_whose_head_a_newer_rgstore_wrote_is_refused_and_changes_nothing(
        tmp_path: Path, newer: Callable[[Envelope], bytes]) -> None:
    with Store.open(tmp_path / "s") as store:
        store.append([NewEvent(stream="note:a", event=Noted(text="a"))])
        append_as_newer_writer(store, newer)
    before = _digest(tmp_path / "s")
    for readonly in (False, True):
        with pytest.raises(NewerRgstoreError, match=NEWER):
            Store.open(tmp_path / "s", readonly=readonly)
    assert _digest(tmp_path / "s") == before


def test_replay_and_mirror_pulls_of_a_newer_log_refuse_and_leave_no_store(
        tmp_path: Path, newer: Callable[[Envelope], bytes]) -> None:
    with Store.open(tmp_path / "p") as primary:
        primary.append([NewEvent(stream="note:a", event=Noted(text="a"))])
        append_as_newer_writer(primary, newer)
        export_log(primary, tmp_path / "x.rglog")
        publish(primary, tmp_path / "pub")
    with Store.open(tmp_path / "r") as target:
        with pytest.raises(NewerRgstoreError, match=NEWER):
            replay_file(target, tmp_path / "x.rglog")
        assert target.head()[0] == 0
    for source in ("x.rglog", "pub"):
        with Store.open(tmp_path / f"m-{source}") as mirror:
            with pytest.raises(NewerRgstoreError, match=NEWER):
                pull(mirror, str(tmp_path / source))
            assert mirror.head()[0] == 0
        result = run_rgstore("mirror", "pull", str(tmp_path / source), "--store", str(tmp_path / f"new-{source}"))
        lines = result.stderr.decode().splitlines()
        assert result.returncode == 1 and not (tmp_path / f"new-{source}").exists()
        assert len(lines) == 1 and "written by a newer rgstore" in lines[0], lines


def test_the_cli_refuses_a_store_a_newer_rgstore_wrote_in_one_line(
        tmp_path: Path, newer: Callable[[Envelope], bytes]) -> None:
    with Store.open(tmp_path / "s") as store:
        store.append([NewEvent(stream="note:a", event=Noted(text="a"))])
        append_as_newer_writer(store, newer)
    before = _digest(tmp_path / "s")
    for command in (["status"], ["verify"], ["log"], ["log", "show", "2"], ["rebuild"]):
        result = run_rgstore("--store", str(tmp_path / "s"), *command)
        lines = result.stderr.decode().splitlines()
        assert result.returncode == 1 and len(lines) == 1, (command, lines)
        assert "written by a newer rgstore" in lines[0] and "upgrade rgstore" in lines[0]
    assert _digest(tmp_path / "s") == before


def test_an_export_whose_header_has_a_newer_format_is_refused_as_a_newer_writers(tmp_path: Path) -> None:
    header = LogHeader(log_id="a" * 32, first_seq=1, last_seq=0, prev_hash="0" * 64, head_hash="0" * 64, format=2)
    write_log_file(tmp_path / "x.rglog", header, [])
    with Store.open(tmp_path / "r") as target:
        with pytest.raises(NewerRgstoreError, match=r"x\.rglog was written by a newer rgstore \(export format 2, "
                                                    r"this one reads 1\); upgrade rgstore"):
            replay_file(target, tmp_path / "x.rglog")
        assert target.head()[0] == 0

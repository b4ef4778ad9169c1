"""The /events feed and /events/head against a real uvicorn server on loopback."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rgstore.codec import chain_hash, genesis_hash, unframe
from rgstore.events import Noted
from rgstore.log import NewEvent
from rgstore.logfile import iter_frames
from rgstore.store import Store
from tests.server_fixture import Server, running_server

FRAMES = "application/vnd.rgstore.frames"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    root = tmp_path_factory.mktemp("events")
    path = root / "store"
    with Store.open(path, actor="tester@test") as store:
        # A large note gets zstd-compressed on disk: the feed must ship it still compressed.
        store.append([NewEvent(stream=f"note:{i % 3}", event=Noted(text=f"n{i}" * (1 + 300 * (i == 7))))
                      for i in range(25)])
    with running_server(path) as server:
        yield server, path


def stored_records(path: Path, after: int = 0) -> list[tuple[int, bytes]]:
    with Store.open(path, readonly=True) as store, store.read() as txn:
        return [(seq, bytes(rec)) for seq, rec in store.log.records(txn, after=after)]


def test_frames_are_the_stored_records_byte_for_byte(served: tuple[Server, Path]) -> None:
    server, path = served
    r = httpx.get(f"{server.url}/events", headers={"Accept": FRAMES})
    assert r.status_code == 200
    assert r.headers["content-type"] == FRAMES
    assert int(r.headers["content-length"]) == len(r.content)
    frames = list(iter_frames(io.BytesIO(r.content)))
    assert frames == stored_records(path)
    assert any(rec[0] == 1 for _, rec in frames), "the compressed record was re-encoded"


def test_frames_verify_against_the_hash_chain_from_genesis(served: tuple[Server, Path]) -> None:
    server, _ = served
    head = httpx.get(f"{server.url}/events/head").json()
    body = httpx.get(f"{server.url}/events", headers={"Accept": FRAMES}).content
    prev = genesis_hash(head["log_id"])
    for seq, record in iter_frames(io.BytesIO(body)):
        chain, payload = unframe(record, seq)
        prev = chain_hash(prev, seq, payload)
        assert chain == prev
    assert prev.hex() == head["head_hash"]


def test_json_lines_decode_each_envelope_and_add_its_chain_hash(served: tuple[Server, Path]) -> None:
    server, path = served
    r = httpx.get(f"{server.url}/events", params={"after": 20})
    assert r.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in r.text.splitlines()]
    expected = stored_records(path, after=20)
    assert [line["seq"] for line in lines] == [seq for seq, _ in expected] == [21, 22, 23, 24, 25]
    for line, (seq, record) in zip(lines, expected):
        assert line["chain_hash"] == unframe(record, seq)[0].hex()
        assert line["event"]["type"] == "noted"
        assert line["stream"] == f"note:{(seq - 1) % 3}"


def test_after_and_limit_page_through_the_whole_log(served: tuple[Server, Path]) -> None:
    server, path = served
    got: list[tuple[int, bytes]] = []
    after = 0
    while True:
        r = httpx.get(f"{server.url}/events", params={"after": after, "limit": 7}, headers={"Accept": FRAMES})
        page = list(iter_frames(io.BytesIO(r.content)))
        assert len(page) <= 7
        if not page:
            assert r.headers["x-rgstore-last-seq"] == str(after)
            break
        got += page
        after = int(r.headers["x-rgstore-last-seq"])
        assert after == page[-1][0]
    assert got == stored_records(path)
    assert int(r.headers["x-rgstore-head-seq"]) == 25


def test_head_matches_the_store_head(served: tuple[Server, Path]) -> None:
    server, path = served
    with Store.open(path, readonly=True) as store:
        seq, digest = store.head()
        log_id = store.log_id()
    assert httpx.get(f"{server.url}/events/head").json() == {
        "log_id": log_id, "head_seq": seq, "head_hash": digest,
    }


def test_head_request_sends_length_but_no_body(served: tuple[Server, Path]) -> None:
    server, _ = served
    get = httpx.get(f"{server.url}/events", headers={"Accept": FRAMES})
    head = httpx.head(f"{server.url}/events", headers={"Accept": FRAMES})
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"]


@pytest.mark.parametrize(("accept", "media"), [
    (None, "application/x-ndjson"),
    ("*/*", "application/x-ndjson"),
    (FRAMES, FRAMES),
    (f"{FRAMES};q=0.0, */*", "application/x-ndjson"),  # q=0.0 refuses frames, as q=0 does
    (f"{FRAMES};q=0.2, application/x-ndjson", "application/x-ndjson"),  # the higher q wins
    (f"application/x-ndjson;q=0.3, {FRAMES};q=0.9", FRAMES),
    ("APPLICATION/VND.RGSTORE.FRAMES", FRAMES),
])
def test_accept_chooses_frames_or_json_lines_by_q_value(served: tuple[Server, Path], accept: str | None,
                                                        media: str) -> None:
    server, _ = served
    r = httpx.get(f"{server.url}/events", params={"limit": 2}, headers={"Accept": accept} if accept else {})
    assert r.status_code == 200 and r.headers["content-type"] == media


def test_two_accept_lines_are_judged_together_as_rfc_9110_combines_them(served: tuple[Server, Path]) -> None:
    """Only the second line names frames: judged on the first alone, it was a 406."""
    server, _ = served
    r = httpx.get(f"{server.url}/events", params={"limit": 2}, headers=[("Accept", "text/html"), ("Accept", FRAMES)])
    assert r.status_code == 200 and r.headers["content-type"] == FRAMES, r.text


@pytest.mark.parametrize("accept", ["application/json", "text/html", f"{FRAMES};q=0"])
def test_an_accept_the_feed_cannot_answer_is_406_in_one_line(served: tuple[Server, Path], accept: str) -> None:
    server, _ = served
    r = httpx.get(f"{server.url}/events", headers={"Accept": accept})
    assert r.status_code == 406
    assert FRAMES in r.json()["detail"] and "\n" not in r.json()["detail"]


@pytest.mark.parametrize("params", [{"after": -1}, {"limit": 0}, {"limit": 10**6}, {"after": "x"}])
def test_bad_paging_parameters_are_client_errors(served: tuple[Server, Path], params: dict[str, object]) -> None:
    server, _ = served
    r = httpx.get(f"{server.url}/events", params=params)
    assert r.status_code == 422
    assert isinstance(r.json()["detail"], str)


def test_feed_sees_events_appended_after_the_server_started(tmp_path: Path) -> None:
    path = tmp_path / "store"
    with Store.open(path, actor="tester@test") as store:
        store.append([NewEvent(stream="note:x", event=Noted(text="before"))])
        with running_server(path) as server:
            assert httpx.get(f"{server.url}/events/head").json()["head_seq"] == 1
            store.append([NewEvent(stream="note:x", event=Noted(text="after"))])
            lines = httpx.get(f"{server.url}/events", params={"after": 1}).text.splitlines()
            assert [json.loads(line)["event"]["text"] for line in lines] == ["after"]
            assert httpx.get(f"{server.url}/events/head").json()["head_seq"] == 2


def test_a_mirror_pulls_the_whole_store_through_the_server(tmp_path: Path) -> None:
    """`rgstore mirror pull URL --with-blobs` consumes /events/head, /events frames and /blobs end to end."""
    from tests.server_fixture import init_genome, rgstore_cli

    primary, mirror = tmp_path / "primary", tmp_path / "mirror"
    (tmp_path / "g.fa").write_text(">chr1\nACGTACGTTTGA\n>chrM\nGATTACA\n")
    init_genome(primary, tmp_path / "g.fa", "g", "--circular", "chrM")
    (tmp_path / "tree.nwk").write_text("(a:0.1,b:0.2);\n")
    rgstore_cli(primary, "refpkg", "create", "pkg", "-l", "16S", "-t", str(tmp_path / "tree.nwk"))
    with running_server(primary) as server:
        said = rgstore_cli(mirror, "mirror", "pull", server.url, "--with-blobs")
        assert "fetched 1 blob and 0 cache files" in said
        head = httpx.get(f"{server.url}/events/head").json()
    with Store.open(mirror, readonly=True) as store:
        assert store.head() == (head["head_seq"], head["head_hash"])
        assert store.log_id() == head["log_id"]
    assert json.loads(rgstore_cli(mirror, "genome", "show", "g", "--json"))["circular"] == ["chrM"]
    rp = Path(rgstore_cli(mirror, "refpkg", "rp", "pkg", "tree").strip())
    assert rp.read_bytes() == b"(a:0.1,b:0.2);\n"


def test_a_page_parsed_in_memory_gives_the_frames_and_the_errors_a_stream_parse_gives() -> None:
    # Mirrors parse each /events page in memory (frame_list), the truncation errors included.
    from rgstore.errors import ChainError
    from rgstore.logfile import encode_frame, frame_list

    records = [(seq, bytes([seq % 256]) * (seq * 7)) for seq in range(3, 40)]
    whole = b"".join(encode_frame(seq, rec) for seq, rec in records)
    assert frame_list(whole) == list(iter_frames(io.BytesIO(whole))) == records
    assert frame_list(b"") == []
    for cut in (len(whole) - 1, len(whole) - len(records[-1][1]) - 5, 5):
        with pytest.raises(ChainError) as streamed:
            list(iter_frames(io.BytesIO(whole[:cut])))
        with pytest.raises(ChainError) as in_memory:
            frame_list(whole[:cut])
        assert (in_memory.value.seq, str(in_memory.value)) == (streamed.value.seq, str(streamed.value))
    huge = encode_frame(9, b"")[:8] + (2**31).to_bytes(4, "big")
    with pytest.raises(ChainError, match="seq 9: frame claims 2147483648 bytes"):
        frame_list(huge)


def test_a_cursor_from_another_log_is_a_409_in_one_line_not_that_logs_records(served: tuple[Server, Path]) -> None:
    server, _ = served
    head = httpx.get(f"{server.url}/events/head").json()
    same = httpx.get(f"{server.url}/events", params={"after": 3, "limit": 2, "log_id": head["log_id"]})
    assert same.status_code == 200 and [json.loads(line)["seq"] for line in same.text.splitlines()] == [4, 5]
    for other in ("0" * 32, "x\ny"):
        r = httpx.get(f"{server.url}/events", params={"after": 3, "log_id": other}, headers={"Accept": FRAMES})
        assert r.status_code == 409, r.text
        detail = r.json()["detail"]
        assert head["log_id"] in detail and "after=0" in detail and "\n" not in detail


def test_paging_while_the_primary_appends_returns_every_seq_once_in_order_and_ends(tmp_path: Path) -> None:
    import threading

    path = tmp_path / "store"
    with Store.open(path, actor="tester@test") as store:
        store.append([NewEvent(stream="note:x", event=Noted(text="0"))])
        with running_server(path) as server:
            stop = threading.Event()

            def write() -> None:
                for i in range(60):
                    if stop.is_set():
                        return
                    store.append([NewEvent(stream=f"note:{i % 5}", event=Noted(text=str(i)))])

            writer = threading.Thread(target=write)
            writer.start()
            seqs: list[int] = []
            after, log_id = 0, None
            try:
                for _ in range(1000):  # a bound, not a timing: each page advances by at least one record
                    written = not writer.is_alive()  # before the request: that page then sees the last append
                    r = httpx.get(f"{server.url}/events", params={"after": after, "limit": 3,
                                                                  **({"log_id": log_id} if log_id else {})})
                    assert r.status_code == 200, r.text
                    seqs += [json.loads(line)["seq"] for line in r.text.splitlines()]
                    log_id, after = r.headers["x-rgstore-log-id"], int(r.headers["x-rgstore-last-seq"])
                    if written and after >= int(r.headers["x-rgstore-head-seq"]):
                        break
            finally:
                stop.set()
                writer.join()
            head = store.head()[0]
    assert seqs == list(range(1, head + 1))

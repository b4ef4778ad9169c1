"""GA4GH refget sequences v2 against a real server: every case of the GA4GH compliance suite (v2) and the spec.

The three compliance sequences (yeast I and VI, circular phiX NC_001422.1) are loaded with
`rgstore genome init` and their `insdc:` accessions with `rgstore alias set --sequence`; the
cases and expected answers are those of ga4gh/refget-compliance-suite `compliance_suite/tests.py`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.httpfixture import serve_directory
from tests.server_fixture import REPO, Server, init_genome, rgstore_cli, running_server
from tests.test_remote import FASTA as REMOTE_FASTA
from tests.test_remote import LONG as REMOTE_LONG
from tests.test_remote import build_refget

DATA = REPO / "tests" / "data" / "refget-compliance"  # the GA4GH compliance suite's sequences
CHECKSUMS = json.loads((DATA / "checksums.json").read_text())
I_MD5 = CHECKSUMS["I"]["md5"]
NC_MD5 = CHECKSUMS["NC"]["md5"]
V1_SEQ = {"Accept": "text/vnd.ga4gh.refget.v1.0.0+plain"}
V2_SEQ_TYPE = "text/vnd.ga4gh.refget.v2.0.0+plain; charset=us-ascii"
JSON_ACCEPT = {"Accept": "application/vnd.ga4gh.refget.v1.0.0+json,application/vnd.ga4gh.refget.v2.0.0+json"}


def bases(name: str) -> bytes:
    lines = (DATA / f"{name}.faa").read_bytes().splitlines()
    return b"".join(line.strip() for line in lines if not line.startswith(b">")).upper()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    store = tmp_path_factory.mktemp("refget") / "store"
    for name, entry in CHECKSUMS.items():
        header = (DATA / f"{name}.faa").read_text().split("\n", 1)[0][1:].split()[0]
        circular = ("--circular", header) if entry["is_circular"] else ()
        init_genome(store, DATA / f"{name}.faa", f"compliance-{name}", *circular)
        rgstore_cli(store, "alias", "set", "--sequence", entry["insdc"], entry["ga4gh"].removeprefix("ga4gh:"))
    with running_server(store) as server:
        yield server


def get(server: Server, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.get(f"{server.url}/{path}", headers=headers or {}, timeout=30)


# -- service-info -----------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, JSON_ACCEPT, {"Accept": "application/json"}])
def test_service_info_advertises_circular_support_algorithms_and_insdc(served: Server, headers: dict[str, str]) -> None:
    r = get(served, "sequence/service-info", headers)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/vnd.ga4gh.refget.v2.0.0+json; charset=us-ascii"
    info = r.json()
    assert info["type"] == {"group": "org.ga4gh", "artifact": "refget-sequence", "version": "2.0.0"}
    refget = info["refget"]
    assert refget["circular_supported"] is True
    assert set(refget["algorithms"]) == {"md5", "ga4gh", "trunc512"}
    assert "insdc" in refget["identifier_types"]
    assert refget["subsequence_limit"] is None


@pytest.mark.parametrize("accept", ["application/vnd.ga4gh.refget.v1.0.0+json", "application/vnd.ga4gh.seq.v1.0.0+json"])
def test_service_info_answered_as_v1_carries_the_v1_service_section(served: Server, accept: str) -> None:
    # What refget v1 clients (and the PyPI v1 compliance suite) read: {"service": {...}}.
    r = get(served, "sequence/service-info", {"Accept": accept})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/vnd.ga4gh.refget.v1.0.0+json; charset=us-ascii"
    service = r.json()["service"]
    assert service["circular_supported"] is True
    assert "trunc512" in service["algorithms"] and "md5" in service["algorithms"]
    assert service["subsequence_limit"] is None
    assert "1.0" in service["supported_api_versions"]
    assert "service" not in get(served, "sequence/service-info").json()  # a v2 answer is v2's shape only


def test_service_info_refuses_an_unsupported_media_type(served: Server) -> None:
    assert get(served, "sequence/service-info", {"Accept": "embl/some_json"}).status_code == 406


# -- metadata -------------------------------------------------------------------------------------


@pytest.mark.parametrize("ident", [
    I_MD5, I_MD5.upper(), f"md5:{I_MD5}", CHECKSUMS["I"]["sha512"], f"trunc512:{CHECKSUMS['I']['sha512']}",
    CHECKSUMS["I"]["ga4gh"], CHECKSUMS["I"]["ga4gh"].removeprefix("ga4gh:"), CHECKSUMS["I"]["insdc"],
])
def test_metadata_resolves_every_identifier_form(served: Server, ident: str) -> None:
    r = get(served, f"sequence/{ident}/metadata", JSON_ACCEPT)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/vnd.ga4gh.refget.v2.0.0+json; charset=us-ascii"
    meta = r.json()["metadata"]
    assert meta["md5"] == I_MD5
    assert meta["ga4gh"] == CHECKSUMS["I"]["ga4gh"].removeprefix("ga4gh:")
    assert meta["trunc512"] == CHECKSUMS["I"]["sha512"]
    assert meta["length"] == 230218
    assert {"alias": "BK006935.2", "naming_authority": "insdc"} in meta["aliases"]


def test_metadata_of_the_circular_sequence(served: Server) -> None:
    meta = get(served, f"sequence/{NC_MD5}/metadata").json()["metadata"]
    assert meta["length"] == len(bases("NC")) == 5386
    assert meta["aliases"] == [{"alias": "NC_001422.1", "naming_authority": "insdc"}]


@pytest.mark.parametrize(("path", "headers", "status"), [
    ("sequence/Garbagechecksum/metadata", JSON_ACCEPT, 404),
    ("sequence/insdc:NO_SUCH.1/metadata", JSON_ACCEPT, 404),
    ("sequence/nosuchns:BK006935.2/metadata", JSON_ACCEPT, 404),
    (f"sequence/{I_MD5}/metadata", {"Accept": "embl/some_json"}, 406),
    (f"sequence/{I_MD5}/metadata", {"Accept": "text/plain"}, 406),
])
def test_metadata_errors(served: Server, path: str, headers: dict[str, str], status: int) -> None:
    r = get(served, path, headers)
    assert r.status_code == status
    assert r.json()["detail"]


# -- whole sequences and media types --------------------------------------------------------------


@pytest.mark.parametrize("name", ["I", "VI", "NC"])
def test_whole_sequence_is_the_fasta_bases_and_digests_to_its_id(served: Server, name: str) -> None:
    r = get(served, f"sequence/{CHECKSUMS[name]['md5']}", V1_SEQ)
    assert r.status_code == 200
    assert r.content == bases(name)
    assert int(r.headers["content-length"]) == len(r.content)
    assert "transfer-encoding" not in r.headers
    assert hashlib.md5(r.content).hexdigest() == CHECKSUMS[name]["md5"]
    sq = base64.urlsafe_b64encode(hashlib.sha512(r.content).digest()[:24]).decode()
    assert f"ga4gh:SQ.{sq}" == CHECKSUMS[name]["ga4gh"]


@pytest.mark.parametrize(("accept", "content_type"), [
    (None, V2_SEQ_TYPE),
    ("text/vnd.ga4gh.refget.v2.0.0+plain; charset=us-ascii", V2_SEQ_TYPE),
    ("text/vnd.ga4gh.refget.v2.0.0+plain", V2_SEQ_TYPE),
    ("text/plain", V2_SEQ_TYPE),
    ("*/*", V2_SEQ_TYPE),
    ("text/vnd.ga4gh.refget.v1.0.0+plain", "text/vnd.ga4gh.refget.v1.0.0+plain; charset=us-ascii"),
    ("text/vnd.ga4gh.refget.v1.0.0+plain, text/vnd.ga4gh.refget.v2.0.0+plain", V2_SEQ_TYPE),
    ("application/json;q=0.9, text/plain;q=0.5", V2_SEQ_TYPE),
])
def test_accept_degrades_as_the_spec_requires(served: Server, accept: str | None, content_type: str) -> None:
    r = get(served, f"sequence/{I_MD5}?start=0&end=4", {"Accept": accept} if accept else {})
    assert r.status_code == 200
    assert r.headers["content-type"] == content_type
    assert r.content == bases("I")[:4]


@pytest.mark.parametrize("accept", [
    "text/vnd.ga4gh.refget.v2.0.0+plain;q=0, text/plain",
    "*/*, text/vnd.ga4gh.refget.v2.0.0+plain; q=0",
    "text/*;q=0, text/plain;q=0.5",
])
def test_a_type_refused_with_q_0_is_never_the_answer(served: Server, accept: str) -> None:
    # The v2 type the client refused with q=0 was answered anyway (200 with that Content-Type).
    r = get(served, f"sequence/{I_MD5}?start=0&end=4", {"Accept": accept})
    assert r.status_code == 200 and r.headers["content-type"] == "text/plain; charset=us-ascii", r.headers
    assert r.content == bases("I")[:4]
    whole = get(served, f"sequence/{I_MD5}", {"Accept": accept, "Range": "bytes=0-3"})
    assert whole.status_code == 206 and whole.headers["etag"] != get(served, f"sequence/{I_MD5}", {
        "Range": "bytes=0-3"}).headers["etag"]  # another representation, another tag


@pytest.mark.parametrize("bad_q", ["nan", "inf", "2", "1.5", "-1", "0.0001"])
def test_an_entry_with_a_q_outside_rfc_9110s_grammar_never_outranks_a_well_formed_one(
    served: Server, bad_q: str
) -> None:
    # float() took "nan" (which then beat q=1, as nan compares false both ways), "inf" and "2".
    accept = f"text/vnd.ga4gh.refget.v2.0.0+plain;q={bad_q}, text/vnd.ga4gh.refget.v1.0.0+plain;q=0.9"
    r = get(served, f"sequence/{I_MD5}?start=0&end=4", {"Accept": accept})
    assert r.status_code == 200 and r.headers["content-type"] == "text/vnd.ga4gh.refget.v1.0.0+plain; charset=us-ascii"


@pytest.mark.parametrize(("path", "accept"), [
    (f"sequence/{I_MD5}", "text/vnd.ga4gh.refget.v2.0.0+plain;q=0, text/plain;q=0"),
    (f"sequence/{I_MD5}", "text/*;q=0, */*;q=0"),
    (f"sequence/{I_MD5}/metadata", "application/vnd.ga4gh.refget.v2.0.0+json;q=0, application/json;q=0"),
])
def test_every_offered_type_refused_with_q_0_is_406(served: Server, path: str, accept: str) -> None:
    assert get(served, path, {"Accept": accept}).status_code == 406


def test_a_406_quoting_a_huge_accept_is_one_short_line_as_every_error(served: Server) -> None:
    accept = ",".join(f"text/x{i};q=0.1" for i in range(2000))  # ~30 kB, echoed whole before
    for path in (f"sequence/{I_MD5}", "sequence/service-info"):
        r = get(served, path, {"Accept": accept})
        assert r.status_code == 406 and len(r.json()["detail"]) < 1100 and "characters left out" in r.json()["detail"]


def test_negotiated_answers_tell_caches_they_vary_by_accept(served: Server) -> None:
    for path in (f"sequence/{NC_MD5}", f"sequence/{NC_MD5}/metadata", "sequence/service-info"):
        assert "Accept" in get(served, path).headers["vary"], path


@pytest.mark.parametrize("accept", ["embl/some_json", "application/json", "text/plain; charset=latin-1",
                                    "text/plain;q=0"])
def test_unsupported_sequence_media_types_are_406(served: Server, accept: str) -> None:
    assert get(served, f"sequence/{I_MD5}", {"Accept": accept}).status_code == 406


@pytest.mark.parametrize(("path", "acceptable"), [
    (f"sequence/{I_MD5}?start=0&end=4", "text/plain"),
    (f"sequence/{I_MD5}/metadata", "application/json"),
    ("sequence/service-info", "application/json"),
])
def test_two_accept_lines_are_judged_together_as_rfc_9110_combines_them(
    served: Server, path: str, acceptable: str,
) -> None:
    """Only the second line names a type served here: the first alone would be a 406."""
    r = httpx.get(f"{served.url}/{path}", headers=[("Accept", "embl/some_json"), ("Accept", acceptable)], timeout=30)
    assert r.status_code == 200, r.text
    assert "v2.0.0" in r.headers["content-type"]


IMMUTABLE = "public, max-age=31536000, immutable"


@pytest.mark.parametrize(("ident", "extra"), [
    (I_MD5, ""), (CHECKSUMS["I"]["ga4gh"], "?start=3&end=9"), (CHECKSUMS["I"]["ga4gh"].removeprefix("ga4gh:"), ""),
    (f"md5:{I_MD5.upper()}", ""), (CHECKSUMS["I"]["sha512"], "?start=1"),
])
def test_bases_asked_for_by_checksum_tell_caches_they_never_change(served: Server, ident: str, extra: str) -> None:
    r = get(served, f"sequence/{ident}{extra}")
    assert r.status_code == 200
    assert r.headers["cache-control"] == IMMUTABLE
    r = get(served, f"sequence/{ident}", {"Range": "bytes=0-9"})
    assert r.status_code == 206 and r.headers["cache-control"] == IMMUTABLE


@pytest.mark.parametrize("path", [
    f"sequence/{CHECKSUMS['I']['insdc']}?start=0&end=5",  # an alias may be repointed
    f"sequence/{NC_MD5}?start=5374&end=5",  # the wrap depends on a genome recording the sequence circular
    f"sequence/{I_MD5}?start=5&end=1", "sequence/Garbagechecksum", f"sequence/{I_MD5}/metadata",
])
def test_answers_that_can_change_are_not_marked_immutable(served: Server, path: str) -> None:
    assert get(served, path).headers["cache-control"] == "no-cache"  # shared caches revalidate them


def test_unknown_checksum_is_404(served: Server) -> None:
    assert get(served, "sequence/Garbagechecksum", V1_SEQ).status_code == 404
    assert get(served, "sequence/" + "0" * 32, V1_SEQ).status_code == 404


def test_a_running_server_stops_serving_a_removed_genomes_sequence_and_serves_it_again_once_re_added(
    tmp_path: Path,
) -> None:
    # Each worker keeps resolved sequences in memory: a genome removal must still reach a request.
    store = tmp_path / "store"
    init_genome(store, DATA / "NC.faa", "phix")
    path = f"sequence/{CHECKSUMS['NC']['ga4gh'].removeprefix('ga4gh:')}?start=0&end=10"
    with running_server(store) as server:
        before = [get(server, path) for _ in range(3)]
        rgstore_cli(store, "genome", "remove", "phix")
        gone = get(server, path)
        init_genome(store, DATA / "NC.faa", "phix")
        back = get(server, path)
    assert [r.content for r in before] == [bases("NC")[:10]] * 3
    assert gone.status_code == 404, gone.text
    assert back.status_code == 200 and back.content == bases("NC")[:10]


def test_a_running_server_sees_views_a_rebuild_repaired_though_the_log_head_did_not_move(tmp_path: Path) -> None:
    import lmdb

    store = tmp_path / "store"
    init_genome(store, DATA / "NC.faa", "phix")
    path = f"sequence/{CHECKSUMS['NC']['md5']}?start=0&end=10"  # MD5s resolve through the server's genome catalog
    with running_server(store) as server:
        assert get(server, path).status_code == 200
        env = lmdb.open(str(store / "log"), max_dbs=64)  # damage the genomes view behind rgstore's back
        with env.begin(write=True) as txn:
            for name in (b"genomes.records", b"genomes.sequences"):
                txn.drop(env.open_db(name, txn=txn), delete=False)
        env.close()
        init_genome(store, DATA / "I.faa", "yeast1")  # a genome event: the server re-reads the damaged view
        damaged = get(server, path)
        head = rgstore_cli(store, "log", "--json", "--limit", "1")
        rgstore_cli(store, "rebuild")
        assert rgstore_cli(store, "log", "--json", "--limit", "1") == head  # the head did not move
        repaired = get(server, path)
    assert damaged.status_code == 404
    assert repaired.status_code == 200 and repaired.content == bases("NC")[:10]


def test_trunc512_and_insdc_ids_fetch_the_same_bases(served: Server) -> None:
    whole = bases("I")
    assert get(served, f"sequence/{CHECKSUMS['I']['sha512']}", V1_SEQ).content == whole
    assert get(served, f"sequence/{CHECKSUMS['I']['insdc']}?start=10&end=20").content == whole[10:20]


# -- start / end ----------------------------------------------------------------------------------

START_END_SUCCESS = [
    ("?start=10&end=10", 10, 10, 0), ("?start=10&end=20", 10, 20, 10), ("?start=10&end=11", 10, 11, 1),
    ("?start=230208", 230208, None, 10), ("?end=5", None, 5, 5), ("?start=230217&end=230218", 230217, 230218, 1),
    ("?start=0", 0, None, 230218), ("?&end=230218", None, 230218, 230218), ("?start=0&end=230218", 0, 230218, 230218),
    ("?start=1&end=230218", 1, 230218, 230217), ("?start=230217", 230217, None, 1), ("?end=0", None, 0, 0),
]


@pytest.mark.parametrize(("query", "lo", "hi", "length"), START_END_SUCCESS)
def test_start_end_success_cases(served: Server, query: str, lo: int | None, hi: int | None, length: int) -> None:
    r = get(served, f"sequence/{I_MD5}{query}", V1_SEQ)
    assert r.status_code == 200
    assert r.content == bases("I")[lo:hi]
    assert int(r.headers["content-length"]) == length
    assert r.headers["accept-ranges"] == "none"


@pytest.mark.parametrize(("query", "expected"), [
    ("?start=5374&end=5", b"ATCCAACCTGCAGAGTT"),
    ("?start=5374&end=0", b"ATCCAACCTGCA"),
    ("?start=5380&end=25", b"CCTGCAGAGTTTTATCGCTTCCATGACGCAG"),
])
def test_circular_sequence_wraps_the_origin(served: Server, query: str, expected: bytes) -> None:
    r = get(served, f"sequence/{NC_MD5}{query}", V1_SEQ)
    assert r.status_code == 200
    assert r.content == expected
    assert int(r.headers["content-length"]) == len(expected)


@pytest.mark.parametrize(("ident", "query", "status"), [
    (I_MD5, "?start=abc&end=20", 400),
    (I_MD5, "?start=-10&end=-29", 400),
    (I_MD5, "?start=abc", 400),
    (I_MD5, "?start=", 400),
    (I_MD5, "?end=4294967296", 400),
    (I_MD5, "?start=230219", 400),
    (NC_MD5, "?start=67&end=5387", 416),
    (NC_MD5, "?start=5386&end=5375", 416),
    (NC_MD5, "?start=5386&end=5386", 416),
    (NC_MD5, "?start=5386&end=5", 416),
    (I_MD5, "?start=220218&end=671", 416),
])
def test_start_end_errors(served: Server, ident: str, query: str, status: int) -> None:
    r = get(served, f"sequence/{ident}{query}", V1_SEQ)
    assert r.status_code == status
    assert r.json()["detail"]


# -- Range ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("header", "lo", "hi", "length"), [
    ("bytes=10-19", 10, 19, 10), ("bytes=10-230217", 10, 230217, 230208), ("bytes=10-999999", 10, 999999, 230208),
    ("bytes=0-230217", 0, 230217, 230218), ("bytes=0-999999", 0, 999999, 230218), ("bytes=0-0", 0, 0, 1),
    ("bytes=230217-230217", 230217, 230217, 1), ("bytes=10-" + "9" * 40, 10, 230217, 230208),
    ("Bytes=10-19", 10, 19, 10), ("BYTES=10-19", 10, 19, 10),  # range units are case-insensitive (RFC 9110)
])
def test_range_success_cases(served: Server, header: str, lo: int, hi: int, length: int) -> None:
    r = get(served, f"sequence/{I_MD5}", {**V1_SEQ, "Range": header})
    assert r.status_code == 206
    assert r.content == bases("I")[lo:hi + 1]
    assert int(r.headers["content-length"]) == length
    assert r.headers["content-range"] == f"bytes {lo}-{lo + length - 1}/230218"


@pytest.mark.parametrize(("ident", "header", "status"), [
    (I_MD5, "units=20-30", 400), (I_MD5, "bytes=ab-19", 400), (I_MD5, "bytes=-10--19", 400),
    (I_MD5, "bytes=10--19", 400), (I_MD5, "bytes=-10-", 400), (I_MD5, "bytes==10-19", 400),
    (I_MD5, "bytes=1-2,5-6", 400),
    (NC_MD5, "bytes=5200-19", 416), (NC_MD5, "bytes=59-50", 416), (NC_MD5, "bytes=5385-5382", 416),
    (NC_MD5, "bytes=5387-5391", 416), (NC_MD5, "bytes=5386-5387", 416), (NC_MD5, "bytes=9999-99999", 416),
    (NC_MD5, "bytes=" + "9" * 30 + "-", 416),
])
def test_range_errors(served: Server, ident: str, header: str, status: int) -> None:
    r = get(served, f"sequence/{ident}", {**V1_SEQ, "Range": header})
    assert r.status_code == status
    if status == 416:
        assert r.headers["content-range"] == "bytes */5386"


def test_range_together_with_start_or_end_is_400(served: Server) -> None:
    assert get(served, f"sequence/{I_MD5}?start=10", {"Range": "bytes=10-19"}).status_code == 400
    assert get(served, f"sequence/{I_MD5}?end=20", {"Range": "bytes=10-19"}).status_code == 400


def test_an_empty_range_header_is_no_range(served: Server) -> None:
    r = get(served, f"sequence/{NC_MD5}?start=0&end=12", {"Range": ""})
    assert r.status_code == 200 and r.content == bases("NC")[:12]


def test_range_sent_on_two_lines_is_judged_as_the_list_rfc_9110_combines_them(served: Server) -> None:
    url = f"{served.url}/sequence/{NC_MD5}"
    two = httpx.get(url, headers=[("Range", "bytes=0-3"), ("Range", "bytes=10-13")], timeout=30)
    assert two.status_code == 400 and "not a single byte range" in two.json()["detail"]  # two ranges, not the first
    blank_first = httpx.get(url, headers=[("Range", ""), ("Range", "bytes=10-13")], timeout=30)
    assert blank_first.status_code == 206 and blank_first.content == bases("NC")[10:14]


def test_suffix_range_returns_the_last_bytes(served: Server) -> None:
    r = get(served, f"sequence/{NC_MD5}", {"Range": "bytes=-12"})
    assert r.status_code == 206 and r.content == b"ATCCAACCTGCA"


# -- large bodies and HEAD ------------------------------------------------------------------------


def test_large_range_is_streamed_with_a_content_length(served: Server) -> None:
    with httpx.stream("GET", f"{served.url}/sequence/{CHECKSUMS['VI']['md5']}?start=1000&end=270000") as r:
        assert r.status_code == 200
        assert r.headers["content-length"] == str(269000)
        assert "transfer-encoding" not in r.headers
        chunks = list(r.iter_raw())
    assert b"".join(chunks) == bases("VI")[1000:270000]


def test_head_of_a_sequence_gives_its_length_without_a_body(served: Server) -> None:
    r = httpx.head(f"{served.url}/sequence/{CHECKSUMS['VI']['md5']}")
    assert r.status_code == 200
    assert r.content == b""
    assert r.headers["content-length"] == "270161"


def _descriptors_on(pid: int, target: Path) -> int:
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += os.readlink(f"/proc/{pid}/fd/{fd}") == str(target)
        except OSError:  # closed meanwhile
            pass
    return count


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts the server's descriptors in /proc")
def test_clients_that_abort_large_downloads_leave_no_descriptor_open_on_the_sequence_file(tmp_path: Path) -> None:
    # A StreamingResponse's abandoned generator kept its file open until a garbage collection:
    # a server up for weeks ran out of descriptors one aborted download at a time.
    rng = random.Random(7)
    residues = "".join(rng.choice("ACGT") for _ in range(1 << 16)) * 256  # 16 Mbp: more than loopback buffers hold
    fasta = tmp_path / "big.fa"
    fasta.write_text(">big\n" + residues + "\n")
    store = tmp_path / "store"
    digest = str(init_genome(store, fasta, "big")["sequences"][0]).removeprefix("SQ.")  # type: ignore[index]
    seq_file = next((store / "refget").rglob(f"{digest}.seq")).resolve()
    with running_server(store) as server:
        host, port = server.url.removeprefix("http://").rsplit(":", 1)
        clients = []
        for _ in range(8):
            sock = socket.create_connection((host, int(port)))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # reads nothing: the server stalls
            sock.sendall(f"GET /sequence/SQ.{digest} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert sock.recv(12) == b"HTTP/1.1 200"
            clients.append(sock)
        deadline = time.monotonic() + 30
        while _descriptors_on(server.process.pid, seq_file) < len(clients) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _descriptors_on(server.process.pid, seq_file) == len(clients)  # each response streams from its own
        for sock in clients:
            sock.close()
        deadline = time.monotonic() + 30
        while _descriptors_on(server.process.pid, seq_file) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _descriptors_on(server.process.pid, seq_file) == 0
        body = httpx.get(f"{server.url}/sequence/SQ.{digest}?start=1000&end=300000", timeout=30).content
        assert body == residues[1000:300000].encode()  # and it goes on serving


# -- sequences a remote genome has not fetched yet ------------------------------------------------------


def test_a_remote_genomes_sequence_is_fetched_verified_and_served_on_first_request(tmp_path: Path) -> None:
    from rgstore import remote
    from rgstore.store import Store

    root = tmp_path / "remote" / "store"
    root.parent.mkdir()
    digest = build_refget(root, REMOTE_FASTA)
    store_path = tmp_path / "store"
    with serve_directory(root) as upstream:
        with Store.open(store_path) as store:
            chr1 = remote.init_remote(store, upstream.url, ["tiny"], digest=digest).genome.sequences[0]
        assert not (store_path / "refget" / "sequences" / chr1[3:5] / f"{chr1[3:]}.seq").exists()
        with running_server(store_path) as server:
            part = httpx.get(f"{server.url}/sequence/{chr1}", params={"start": 100, "end": 260}, timeout=30)
            whole = httpx.get(f"{server.url}/sequence/{chr1}", timeout=30)
    assert part.status_code == 200, part.text
    assert part.content == REMOTE_LONG[100:260].encode()
    assert whole.status_code == 200 and whole.content == REMOTE_LONG.encode()
    assert (store_path / "refget" / "sequences" / chr1[3:5] / f"{chr1[3:]}.seq").exists()


def test_a_remote_that_cannot_supply_a_sequence_is_a_502_with_one_line(tmp_path: Path) -> None:
    from rgstore import remote
    from rgstore.store import Store

    root = tmp_path / "remote" / "store"
    root.parent.mkdir()
    digest = build_refget(root, REMOTE_FASTA)
    store_path = tmp_path / "store"
    with serve_directory(root) as upstream, Store.open(store_path) as store:
        chr2 = remote.init_remote(store, upstream.url, ["tiny"], digest=digest).genome.sequences[1]
    with running_server(store_path) as server:  # the remote is gone now
        r = httpx.get(f"{server.url}/sequence/{chr2}", timeout=60)
        meta = httpx.get(f"{server.url}/sequence/{chr2}/metadata", timeout=30)
    assert r.status_code == 502, r.text
    assert "x-rgstore-transient" not in r.headers  # a remote down now may be back on a retry
    assert "\n" not in r.json()["detail"] and chr2[3:] in r.json()["detail"]
    assert meta.status_code == 200 and meta.json()["metadata"]["length"] == 18


def test_a_slow_fetch_does_not_block_other_requests(tmp_path: Path) -> None:
    """While one request waits on a remote that never answers, the server keeps answering others."""
    from rgstore import remote
    from rgstore.store import Store

    root = tmp_path / "remote" / "store"
    root.parent.mkdir()
    digest = build_refget(root, REMOTE_FASTA)
    store_path = tmp_path / "store"
    with serve_directory(root) as upstream, Store.open(store_path) as store:
        chrm = remote.init_remote(store, upstream.url, ["tiny"], digest=digest).genome.sequences[2]
        port = int(upstream.url.rsplit(":", 1)[1])
    # The remote's address now accepts connections and never answers.
    hole = socket.socket()
    hole.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    hole.bind(("127.0.0.1", port))
    hole.listen(16)
    hole.settimeout(60)
    try:
        with running_server(store_path) as server, ThreadPoolExecutor(1) as pool:
            stuck = pool.submit(httpx.get, f"{server.url}/sequence/{chrm}", timeout=120)
            accepted, _ = hole.accept()  # the fetch has started and is waiting on the remote
            try:
                health = httpx.get(f"{server.url}/healthz", timeout=20)
                assert health.status_code == 200
                assert not stuck.done()
            finally:
                accepted.close()
                hole.close()  # the fetch fails now
            assert stuck.result().status_code == 502
    finally:
        hole.close()


def _filesystem(path: Path) -> str:
    mounts = [line.split()[1:3] for line in Path("/proc/mounts").read_text().splitlines()]
    best = max((m for m in mounts if str(path).startswith(m[0])), key=lambda m: len(m[0]), default=["", ""])
    return best[1]


@pytest.mark.skipif(not hasattr(os, "RWF_NOWAIT"), reason="no preadv(RWF_NOWAIT) on this platform")
def test_the_event_loop_reads_only_bases_already_in_the_page_cache(tmp_path: Path) -> None:
    """A cold read is left to a thread (the blocking read), a hot one is served without one."""
    from rgstore_api.sequences import StoredSequence, cached_bases, read_bases

    if _filesystem(tmp_path) in ("tmpfs", "ramfs", ""):
        pytest.skip("pages of a memory filesystem cannot be evicted")
    data = bytes(random.Random(3).choices(b"ACGT", k=1 << 20))
    path = tmp_path / "x.seq"
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    seq = StoredSequence(digest="x" * 32, md5="", length=len(data), circular=False, path=str(path))
    fd = os.open(path, os.O_RDONLY)
    try:
        for _ in range(5):  # as if never read: only the disk has it (the advice is only advice)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            if cached_bases(fd, [(500_000, 501_000)]) is None:
                break
            time.sleep(0.2)
        else:
            pytest.skip("the kernel kept the file's pages cached despite POSIX_FADV_DONTNEED: no cold read to test")
        assert read_bases(seq, [(500_000, 501_000)], os.dup(fd)) == data[500_000:501_000]
        assert cached_bases(fd, [(500_000, 501_000), (7, 7)]) == data[500_000:501_000]
    finally:
        os.close(fd)


def test_a_catalogued_sequence_whose_file_is_gone_is_a_500_that_keeps_the_servers_paths_private(
    tmp_path: Path,
) -> None:
    store = tmp_path / "store"
    init_genome(store, DATA / "I.faa", "yeast")
    stored = list((store / "refget").rglob("*.seq"))
    assert stored
    for path in stored:
        path.unlink()
    with running_server(store) as server:
        r = get(server, f"sequence/{I_MD5}?start=0&end=10")
    assert r.status_code == 500 and "is catalogued but its file is missing" in r.text
    assert "rgstore verify" in r.text and str(tmp_path) not in r.text and ".seq" not in r.text


def test_a_fifo_planted_in_place_of_a_sequence_file_is_refused_without_hanging_the_server(tmp_path: Path) -> None:
    # Opening a FIFO for reading blocks until a writer comes: on the event loop, every request would wait.
    store = tmp_path / "store"
    init_genome(store, DATA / "NC.faa", "phix")
    (stored,) = (store / "refget").rglob("*.seq")
    stored.unlink()
    os.mkfifo(stored)
    with running_server(store) as server:
        try:
            r = httpx.get(f"{server.url}/sequence/{NC_MD5}?start=0&end=10", timeout=10)
            health = httpx.get(f"{server.url}/healthz", timeout=10)
        finally:
            fd = os.open(stored, os.O_RDWR | os.O_NONBLOCK)  # releases an open blocked on the old code
            os.close(fd)
    assert r.status_code == 500 and "rgstore verify" in r.text and str(tmp_path) not in r.text
    assert health.status_code == 200


def test_a_refgetstore_in_another_mode_is_a_500_that_keeps_the_servers_paths_private(tmp_path: Path) -> None:
    store = tmp_path / "store"
    init_genome(store, DATA / "NC.faa", "phix")
    manifest = store / "refget" / "rgstore.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "mode": "Encoded"}))
    with running_server(store) as server:
        r = get(server, "sequence/service-info")
    assert r.status_code == 500 and "Encoded mode" in r.json()["detail"]
    assert str(tmp_path) not in r.text


def test_a_checksum_ids_bases_carry_a_strong_etag_that_revalidates_and_guards_ranges(served: Server) -> None:
    ga4gh = CHECKSUMS["I"]["ga4gh"]
    whole = get(served, f"sequence/{ga4gh}")
    etag = whole.headers["etag"]
    assert etag == f'"{ga4gh.removeprefix("ga4gh:SQ.")}"' and get(served, f"sequence/{I_MD5}").headers["etag"] == etag
    again = get(served, f"sequence/{ga4gh}", {"If-None-Match": f'"other", {etag}'})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    assert "immutable" in again.headers["cache-control"]
    # The list on two lines, as RFC 9110 combines them: the first line alone does not match.
    split = httpx.get(f"{served.url}/sequence/{ga4gh}", headers=[("If-None-Match", '"other"'),
                                                                ("If-None-Match", etag)], timeout=30)
    assert split.status_code == 304
    # If-Range: the range when the client's copy is this one, else the whole sequence (never a mixed file).
    part = get(served, f"sequence/{ga4gh}", {"Range": "bytes=10-19", "If-Range": etag})
    assert part.status_code == 206 and part.content == bases("I")[10:20] and part.headers["etag"] == etag
    ranged = get(served, f"sequence/{ga4gh}", {"Range": "bytes=99999999-", "If-None-Match": etag})
    assert ranged.status_code == 304 and "content-range" not in ranged.headers  # the precondition comes first
    stale = get(served, f"sequence/{ga4gh}", {"Range": "bytes=10-19", "If-Range": '"other"'})
    assert stale.status_code == 200 and stale.content == bases("I")
    # v1's media type is another representation of the same bases: another tag.
    assert get(served, f"sequence/{ga4gh}", V1_SEQ).headers["etag"] == f'"{ga4gh.removeprefix("ga4gh:SQ.")}-v1"'


def test_an_alias_ids_bases_carry_no_etag_because_the_alias_may_be_repointed(served: Server) -> None:
    r = get(served, f"sequence/{CHECKSUMS['I']['insdc']}?start=0&end=10", {"If-None-Match": "*"})
    assert r.status_code == 200 and "etag" not in r.headers and r.content == bases("I")[:10]


@pytest.mark.parametrize("if_range", ['"other"', "Mon, 01 Jan 2001 00:00:00 GMT"])
def test_an_alias_ids_range_under_if_range_is_the_whole_sequence_as_no_validator_can_match(
    served: Server, if_range: str
) -> None:
    # The alias may have been repointed since the client's partial copy: RFC 9110 13.1.5 ignores the Range.
    r = get(served, f"sequence/{CHECKSUMS['I']['insdc']}", {"Range": "bytes=10-19", "If-Range": if_range})
    assert r.status_code == 200 and r.content == bases("I") and "content-range" not in r.headers

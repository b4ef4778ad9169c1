"""refget's ``POST /seqcol/collection/{digest}/regions`` on a real server: refget's shape, our refget routes' statuses.

refget's server (``refget/router.py``, ``refget/backend.py``) answers ``[{chrom_name, start, end,
sequence}]`` for ``[{chrom, start, end}]`` (0-based, half-open) and 404 for any failure; here each
fault gets the status ``GET /sequence/{id}?start=&end=`` gives it.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from refget.clients import SequenceCollectionClient

from tests.server_fixture import Server, init_genome, running_server

CHR1 = "ACGTACGTACGTNNNN"
CHRM = "GATTACA"
BIG = "".join(random.Random(7).choice("ACGT") for _ in range(20_001))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, Any]]]:
    root = tmp_path_factory.mktemp("regions")
    (root / "g.fa").write_text(f">chr1\n{CHR1}\n>chrM\n{CHRM}\n>big\n{BIG}\n")
    genome = init_genome(root / "store", root / "g.fa", "g", "--circular", "chrM")
    with running_server(root / "store") as server:
        yield server, genome


def _post(server: Server, digest: str, body: object) -> httpx.Response:
    return httpx.post(f"{server.url}/seqcol/collection/{digest}/regions", json=body, timeout=120)


def _regions(served: tuple[Server, dict[str, Any]], body: object) -> httpx.Response:
    server, genome = served
    return _post(server, genome["digest"], body)


def _one_line(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert list(body) == ["detail"] and "\n" not in body["detail"]
    return str(body["detail"])


def test_a_region_answers_in_refgets_shape_with_its_bases(served: tuple[Server, dict[str, Any]]) -> None:
    r = _regions(served, [{"chrom": "chr1", "start": 2, "end": 7}])
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == [{"chrom_name": "chr1", "start": 2, "end": 7, "sequence": "GTACG"}]


def test_refgets_own_client_reads_regions(served: tuple[Server, dict[str, Any]]) -> None:
    server, genome = served
    client = SequenceCollectionClient(urls=[f"{server.url}/seqcol"])
    got = client.get_regions(genome["digest"], [{"chrom": "chrM", "start": 0, "end": 4}])
    assert got == [{"chrom_name": "chrM", "start": 0, "end": 4, "sequence": "GATT"}]


def test_many_regions_answer_in_the_order_asked_repeats_and_empty_ones_included(
    served: tuple[Server, dict[str, Any]],
) -> None:
    asked = [("big", 19_990, 20_001), ("chr1", 0, 16), ("chrM", 3, 3), ("chr1", 12, 16), ("big", 0, 20_001),
             ("chr1", 16, 16), ("chr1", 12, 16)]
    r = _regions(served, [{"chrom": c, "start": s, "end": e} for c, s, e in asked])
    bases = {"chr1": CHR1, "chrM": CHRM, "big": BIG}
    assert r.json() == [{"chrom_name": c, "start": s, "end": e, "sequence": bases[c][s:e]} for c, s, e in asked]


def test_a_region_of_a_circular_sequence_wraps_the_origin(served: tuple[Server, dict[str, Any]]) -> None:
    r = _regions(served, [{"chrom": "chrM", "start": 5, "end": 2}])
    assert r.json() == [{"chrom_name": "chrM", "start": 5, "end": 2, "sequence": CHRM[5:] + CHRM[:2]}]


def test_an_empty_list_answers_an_empty_list(served: tuple[Server, dict[str, Any]]) -> None:
    r = _regions(served, [])
    assert r.status_code == 200 and r.json() == []


def test_an_unknown_sequence_name_is_a_404_naming_it(served: tuple[Server, dict[str, Any]]) -> None:
    detail = _one_line(_regions(served, [{"chrom": "chr1", "start": 0, "end": 1},
                                         {"chrom": "chrX", "start": 0, "end": 1}]), 404)
    assert "'chrX'" in detail and "region 1" in detail


def test_an_unknown_collection_is_a_404(served: tuple[Server, dict[str, Any]]) -> None:
    server, _ = served
    assert "no sequence collection" in _one_line(_post(server, "A" * 32, []), 404)
    _one_line(_post(server, "not-a-digest", [{"chrom": "chr1", "start": 0, "end": 1}]), 404)


@pytest.mark.parametrize(("chrom", "start", "end", "status"), [
    ("chr1", -1, 4, 400),   # negative
    ("chr1", 2, -1, 400),
    ("chr1", 17, 17, 400),  # start past the end
    ("chr1", 3, 17, 416),   # end past the end
    ("chr1", 5, 2, 416),    # start > end, not circular
], ids=["negative-start", "negative-end", "start-past-end", "end-past-end", "reversed"])
def test_bad_coordinates_get_the_status_the_refget_sequence_route_gives_them(
    served: tuple[Server, dict[str, Any]], chrom: str, start: int, end: int, status: int,
) -> None:
    server, genome = served
    detail = _one_line(_regions(served, [{"chrom": chrom, "start": start, "end": end}]), status)
    assert f"{chrom}:{start}-{end}" in detail
    sequence = genome["sequences"][genome["names"].index(chrom)]
    assert httpx.get(f"{server.url}/sequence/{sequence}", params={"start": start, "end": end}).status_code == status


@pytest.mark.parametrize("body", [b"[{", b"NaN", b"[{\"chrom\": \"chr1\", \"start\": 0, \"end\": Infinity}]"],
                         ids=["truncated", "nan", "infinity"])
def test_a_body_that_is_not_json_is_a_400(served: tuple[Server, dict[str, Any]], body: bytes) -> None:
    server, genome = served
    r = httpx.post(f"{server.url}/seqcol/collection/{genome['digest']}/regions", content=body,
                   headers={"content-type": "application/json"})
    assert "not JSON" in _one_line(r, 400)


@pytest.mark.parametrize("body", [
    {"chrom": "chr1", "start": 0, "end": 1}, [1], [["chr1", 0, 1]], [{"chrom": "chr1", "start": 0}],
    [{"chrom": 1, "start": 0, "end": 1}], [{"chrom": "chr1", "start": 1.0, "end": 2}],
    [{"chrom": "chr1", "start": True, "end": 2}], [{"chrom": "chr1", "start": "0", "end": 2}],
], ids=["object", "number", "bed-row", "no-end", "int-chrom", "float", "bool", "string"])
def test_json_that_is_no_list_of_regions_is_a_422(served: tuple[Server, dict[str, Any]], body: object) -> None:
    _one_line(_regions(served, body), 422)


def test_more_than_ten_thousand_regions_are_refused_with_413(served: tuple[Server, dict[str, Any]]) -> None:
    from rgstore.seqcolregions import MAX_REGIONS

    assert _regions(served, [{"chrom": "chr1", "start": 0, "end": 1}] * MAX_REGIONS).status_code == 200
    detail = _one_line(_regions(served, [{"chrom": "chr1", "start": 0, "end": 1}] * (MAX_REGIONS + 1)), 413)
    assert f"{MAX_REGIONS:,}" in detail


def test_more_bases_than_the_cap_in_all_are_refused_with_413_before_any_is_read(
    served: tuple[Server, dict[str, Any]],
) -> None:
    from rgstore.seqcolregions import MAX_REGION_BASES

    whole = {"chrom": "big", "start": 0, "end": len(BIG)}
    count = MAX_REGION_BASES // len(BIG) + 1
    assert "bases in all" in _one_line(_regions(served, [whole] * count), 413)


def test_a_body_over_the_byte_limit_is_refused_with_413_by_its_length(served: tuple[Server, dict[str, Any]]) -> None:
    from rgstore_api.seqcol_extensions import MAX_REGIONS_BYTES

    server, genome = served
    body = json.dumps([{"chrom": "x" * (MAX_REGIONS_BYTES // 2), "start": 0, "end": 1}] * 2).encode()
    r = httpx.post(f"{server.url}/seqcol/collection/{genome['digest']}/regions", content=body,
                   headers={"content-type": "application/json"}, timeout=120)
    assert f"more than {MAX_REGIONS_BYTES >> 20} MiB" in _one_line(r, 413)


def test_a_body_that_stops_arriving_gets_a_one_line_408_and_the_connection_closed(tmp_path: Path) -> None:
    """As for a posted collection: the head clock stops at the head, so the route times its body itself."""
    from tests.test_api_headertimeout import _closed_by_server, _connect, _read_response

    (tmp_path / "g.fa").write_text(f">chr1\n{CHR1}\n")
    digest = init_genome(tmp_path / "store", tmp_path / "g.fa", "g")["digest"]
    with running_server(tmp_path / "store", extra_args=["--header-timeout", "1s"]) as server, _connect(server) as sock:
        sock.sendall(f"POST /seqcol/collection/{digest}/regions HTTP/1.1\r\nHost: x\r\n".encode()
                     + b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n[{")
        head, body = _read_response(sock)
        assert head.startswith(b"HTTP/1.1 408"), head + body
        assert b"connection: close" in head.lower(), head
        assert body.count(b"\n") <= 1 and "2 of 100 bytes" in json.loads(body)["detail"], body
        assert _closed_by_server(sock)

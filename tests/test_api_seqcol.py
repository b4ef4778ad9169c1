"""GA4GH seqcol under /seqcol against a real server: refget's compliance suite passes in full, plus edge cases.

The six GA4GH test collections are rebuilt from the PyPI refget package's
``compliance_data/test_fasta_digests.json`` (their three sequences are TTGGGGAA, GGAA and GCGC)
and loaded with `rgstore genome init`.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import refget.compliance
from gtars.refget import RefgetStore

from tests.server_fixture import Server, init_genome, rgstore_cli, running_server

DIGESTS = json.loads((Path(refget.compliance.__file__).parent / "compliance_data" / "test_fasta_digests.json")
                     .read_text())
BASE = DIGESTS["base.fa"]


def sq(bases: str) -> str:
    return "SQ." + base64.urlsafe_b64encode(hashlib.sha512(bases.encode()).digest()[:24]).decode()


SEQUENCES = {sq(b): b for b in ("TTGGGGAA", "GGAA", "GCGC")}


def write_test_fastas(folder: Path) -> dict[str, Path]:
    """The six test FASTAs, written from the level-2 names and sequences the fixtures record."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, bundle in DIGESTS.items():
        level2 = bundle["level2"]
        path = folder / name
        path.write_text("".join(f">{n}\n{SEQUENCES[s]}\n" for n, s in zip(level2["names"], level2["sequences"])))
        out[name] = path
    return out


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("seqcol")
    store = root / "store"
    for name, fasta in write_test_fastas(root / "fasta").items():
        genome = init_genome(store, fasta, name.removesuffix(".fa"))
        assert genome["digest"] == DIGESTS[name]["top_level_digest"]
    return store


@pytest.fixture(scope="module")
def served(loaded: Path) -> Iterator[Server]:
    with running_server(loaded) as server:
        yield server


def test_refget_compliance_suite_passes_every_check(served: Server) -> None:
    report = refget.compliance.run_compliance(f"{served.url}/seqcol")
    failed = [(r["name"], r["error"]) for r in report["results"] if not r["passed"]]
    assert failed == []
    assert report["total"] == report["passed"] >= 60


def test_level1_carries_every_attribute_digest_of_the_fixtures(served: Server) -> None:
    for bundle in DIGESTS.values():
        level1 = httpx.get(f"{served.url}/seqcol/collection/{bundle['top_level_digest']}", params={"level": 1}).json()
        assert level1 == bundle["level1"]


def test_level2_is_the_default_and_omits_the_transient_attribute(served: Server) -> None:
    body = httpx.get(f"{served.url}/seqcol/collection/{BASE['top_level_digest']}").json()
    assert body == BASE["level2"]
    assert "sorted_name_length_pairs" not in body


def test_collated_false_answers_one_object_per_sequence_as_refgets_api_does(served: Server) -> None:
    r = httpx.get(f"{served.url}/seqcol/collection/{BASE['top_level_digest']}", params={"collated": "false"})
    assert r.status_code == 200
    level2 = BASE["level2"]
    assert r.json() == [{"names": n, "lengths": length, "sequences": s}
                        for n, length, s in zip(level2["names"], level2["lengths"], level2["sequences"])]


@pytest.mark.parametrize("attribute", ["names", "lengths", "sequences", "name_length_pairs"])
def test_the_attribute_parameter_answers_just_that_level2_array(served: Server, attribute: str) -> None:
    r = httpx.get(f"{served.url}/seqcol/collection/{BASE['top_level_digest']}", params={"attribute": attribute})
    assert r.status_code == 200
    assert r.json() == BASE["level2"][attribute]


@pytest.mark.parametrize(("path", "status"), [
    ("/seqcol/collection/NoSuchDigest", 404),
    (f"/seqcol/collection/{BASE['top_level_digest']}?level=3", 422),
    (f"/seqcol/collection/{BASE['top_level_digest']}?level=x", 422),
    (f"/seqcol/attribute/collection/sorted_name_length_pairs/{BASE['level1']['sorted_name_length_pairs']}", 404),
    (f"/seqcol/attribute/collection/colours/{BASE['level1']['names']}", 404),
    ("/seqcol/attribute/collection/names/NoSuchDigest", 404),
    (f"/seqcol/comparison/{BASE['top_level_digest']}/NoSuchDigest", 404),
    ("/seqcol/list/collection?colour=red", 400),
    ("/seqcol/list/collection?page=-1", 422),
    ("/seqcol/list/collection?page_size=0", 422),
    ("/seqcol/list/attributes/colours", 404),
    (f"/seqcol/collection/{BASE['top_level_digest']}?attribute=sorted_name_length_pairs", 404),
    (f"/seqcol/collection/{BASE['top_level_digest']}?attribute=colours", 404),
    ("/seqcol/collection/NoSuchDigest?attribute=names", 404),
    ("/seqcol/collection/NoSuchDigest?collated=false", 404),
    (f"/seqcol/collection/{BASE['top_level_digest']}?collated=maybe", 422),
])
def test_bad_requests_are_client_errors(served: Server, path: str, status: int) -> None:
    r = httpx.get(f"{served.url}{path}")
    assert r.status_code == status
    assert isinstance(r.json()["detail"], str)


def test_list_filters_combine_with_and_and_paginate(served: Server) -> None:
    url = f"{served.url}/seqcol/list/collection"
    same_lengths = httpx.get(url, params={"lengths": BASE["level1"]["lengths"]}).json()
    expected = sorted(b["top_level_digest"] for b in DIGESTS.values() if b["level2"]["lengths"] == [8, 4, 4])
    assert same_lengths["results"] == expected and same_lengths["pagination"]["total"] == len(expected)
    both = httpx.get(url, params={"lengths": BASE["level1"]["lengths"], "names": BASE["level1"]["names"]}).json()
    assert both["results"] == [BASE["top_level_digest"]]
    pages = [httpx.get(url, params={"page": p, "page_size": 4}).json()["results"] for p in range(3)]
    assert pages[0] + pages[1] == sorted(b["top_level_digest"] for b in DIGESTS.values()) and pages[2] == []


def test_list_attributes_gives_distinct_digests(served: Server) -> None:
    body = httpx.get(f"{served.url}/seqcol/list/attributes/lengths").json()
    assert body["results"] == sorted({b["level1"]["lengths"] for b in DIGESTS.values()})


def test_post_comparison_reads_the_body_and_writes_nothing(served: Server) -> None:
    before = httpx.get(f"{served.url}/events/head").json()
    subset = DIGESTS["subset.fa"]["level2"]
    r = httpx.post(f"{served.url}/seqcol/comparison/{BASE['top_level_digest']}", json=subset)
    assert r.status_code == 200
    result = r.json()
    assert result["digests"] == {"a": BASE["top_level_digest"], "b": DIGESTS["subset.fa"]["top_level_digest"]}
    assert result["array_elements"]["a_and_b_count"]["sequences"] == 2
    assert httpx.get(f"{served.url}/events/head").json() == before


@pytest.mark.parametrize("body", [
    {"names": ["chrX", "chr1"], "lengths": [8, 4]},  # no sequences
    {"names": ["chrX"], "lengths": [8, 4], "sequences": ["SQ.a", "SQ.b"]},  # arrays not collated
])
def test_post_comparison_digest_of_a_collection_that_is_no_seqcol_is_null(served: Server, body: dict) -> None:  # type: ignore[type-arg]
    # seqcol 1.0 section 3.3: digests.b is the posted collection's level-0 digest or null, nothing else.
    r = httpx.post(f"{served.url}/seqcol/comparison/{BASE['top_level_digest']}", json=body)
    assert r.status_code == 200
    assert r.json()["digests"] == {"a": BASE["top_level_digest"], "b": None}


def test_digest_addressed_answers_are_immutable_and_the_rest_are_not(served: Server) -> None:
    immutable = "public, max-age=31536000, immutable"
    base, subset = BASE["top_level_digest"], DIGESTS["subset.fa"]["top_level_digest"]
    for path in (f"collection/{base}", f"collection/{base}?level=1", f"comparison/{base}/{subset}",
                 f"attribute/collection/names/{BASE['level1']['names']}"):
        r = httpx.get(f"{served.url}/seqcol/{path}")
        assert r.status_code == 200 and r.headers["cache-control"] == immutable, path
    for path in ("list/collection", "list/attributes/names", "service-info", "collection/NoSuchDigest"):
        assert httpx.get(f"{served.url}/seqcol/{path}").headers["cache-control"] == "no-cache", path
    r = httpx.post(f"{served.url}/seqcol/comparison/{base}", json=DIGESTS["subset.fa"]["level2"])
    assert r.status_code == 200 and r.headers["cache-control"] == "no-cache"


@pytest.mark.parametrize("body", [b"[1, 2]", b'{"names": "chr1"}', b"not json", b'{"names": [NaN, 1]}'])
def test_post_comparison_rejects_malformed_collections(served: Server, body: bytes) -> None:
    r = httpx.post(f"{served.url}/seqcol/comparison/{BASE['top_level_digest']}", content=body,
                   headers={"Content-Type": "application/json"})
    assert r.status_code in (400, 422)


def test_service_info_publishes_the_schema_and_a_store_url_gtars_can_open(served: Server, tmp_path: Path) -> None:
    info = httpx.get(f"{served.url}/seqcol/service-info").json()
    assert info["type"]["artifact"] == "refget-seqcol"
    assert info["seqcol"]["schema"]["ga4gh"]["inherent"] == ["names", "sequences"]
    store = info["seqcol"]["refget_store"]
    assert store["enabled"] is True
    remote = RefgetStore.open_remote(str(tmp_path / "cache"), store["url"])
    remote.set_quiet(True)
    level2 = remote.get_collection_level2(BASE["top_level_digest"])
    assert list(level2["names"]) == BASE["level2"]["names"]
    assert remote.get_substring(BASE["level2"]["sequences"][0], 2, 6) == "GGGG"


def test_seqcol_openapi_lists_its_paths_relative_to_the_mount(served: Server) -> None:
    spec = httpx.get(f"{served.url}/seqcol/openapi.json").json()
    assert {"/collection/{digest}", "/list/collection", "/comparison/{digest1}/{digest2}"} <= set(spec["paths"])
    assert spec["servers"] == [{"url": "/seqcol"}]


def test_collections_added_or_removed_while_serving_are_seen(tmp_path: Path) -> None:
    store = tmp_path / "store"
    fastas = write_test_fastas(tmp_path / "fasta")
    init_genome(store, fastas["base.fa"], "base")
    with running_server(store) as server:
        url = f"{server.url}/seqcol/list/collection"
        assert httpx.get(url).json()["results"] == [BASE["top_level_digest"]]
        rgstore_cli(store, "alias", "set", "other", BASE["top_level_digest"])  # not a genome event
        assert httpx.get(url).json()["results"] == [BASE["top_level_digest"]]
        subset = init_genome(store, fastas["subset.fa"], "subset")["digest"]
        assert httpx.get(url).json()["results"] == sorted([BASE["top_level_digest"], subset])
        rgstore_cli(store, "genome", "remove", "base")
        assert httpx.get(url).json()["results"] == [subset]
        assert httpx.get(f"{server.url}/seqcol/collection/{BASE['top_level_digest']}").status_code == 404


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_oversized_posted_collection_is_refused_with_one_line_of_json(served: Server, chunked: bool) -> None:
    from rgstore_api.seqcol import MAX_POST_BYTES

    body = b'{"names": ["' + b"x" * (MAX_POST_BYTES + 1) + b'"]}'
    # A Content-Length past the cap is refused before the body is read; a chunked body once it passes it.
    content = iter([body[i:i + (1 << 20)] for i in range(0, len(body), 1 << 20)]) if chunked else body
    r = httpx.post(f"{served.url}/seqcol/comparison/{BASE['top_level_digest']}", content=content,
                   headers={"Content-Type": "application/json"}, timeout=60)
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/json"  # Starlette's own limiter answered text/plain
    assert f"more than {MAX_POST_BYTES >> 20} MiB" in r.json()["detail"]


def test_public_url_pins_the_advertised_store_and_organization_urls_whatever_the_host_header(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import httpx

    from rgstore.store import Store
    from tests.server_fixture import running_server

    Store.open(tmp_path / "s").close()
    with running_server(tmp_path / "s", extra_args=["--public-url", "https://refs.example.org/"]) as server:
        info = httpx.get(f"{server.url}/seqcol/service-info", headers={"Host": "evil:1"}).json()
        assert info["seqcol"]["refget_store"]["url"] == "https://refs.example.org/store"
        for route in ("/service-info", "/seqcol/service-info", "/sequence/service-info"):  # every absolute URL
            info = httpx.get(f"{server.url}{route}", headers={"Host": "evil:1"}).json()
            assert info["organization"]["url"] == "https://refs.example.org/", route


def test_a_client_hanging_up_mid_body_leaves_no_traceback_in_the_server_log(tmp_path: Path) -> None:
    import socket

    from rgstore.store import Store

    Store.open(tmp_path / "s").close()
    with running_server(tmp_path / "s") as server:
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(b"POST /seqcol/comparison/x HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 100\r\n\r\n{}")
            sock.shutdown(socket.SHUT_WR)  # 98 bytes short
            while sock.recv(65536):  # the server answers (or closes) once it sees the hang-up
                pass
        assert httpx.get(f"{server.url}/healthz").status_code == 200
        assert "Traceback" not in server.log() and "ClientDisconnect" not in server.log()


@pytest.mark.parametrize(("key", "value"), [(b"names", b"[]"), (b"lengths", b"1")], ids=["nested", "lengths"])
def test_a_posted_collection_of_more_values_than_the_cap_is_refused_before_it_is_parsed(
    served: Server, key: bytes, value: bytes
) -> None:
    from rgstore_api.seqcol import MAX_POST_BYTES, MAX_POST_VALUES

    # Well under the byte cap, yet parsing it would make millions of objects (~100 bytes each).
    body = b'{"' + key + b'": [' + b",".join([value] * (MAX_POST_VALUES + 1)) + b"]}"
    assert len(body) < MAX_POST_BYTES
    r = httpx.post(f"{served.url}/seqcol/comparison/{BASE['top_level_digest']}", content=body,
                   headers={"Content-Type": "application/json"}, timeout=60)
    assert r.status_code == 413
    assert f"{MAX_POST_VALUES:,}" in r.json()["detail"]


@pytest.mark.parametrize("body, status", [
    (b'{"names": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400),  # nested past the parser's depth
    (b"", 400),
    (b'{"names": ["chr1"], "lengths": 8}', 422),
])
def test_a_posted_body_that_is_no_collection_gets_one_line(served: Server, body: bytes, status: int) -> None:
    r = httpx.post(f"{served.url}/seqcol/comparison/{BASE['top_level_digest']}", content=body,
                   headers={"Content-Type": "application/json"})
    assert r.status_code == status
    assert "\n" not in r.json()["detail"] and r.json()["detail"]


def test_a_kept_comparison_is_not_answered_once_a_collection_is_removed(tmp_path: Path) -> None:
    store = tmp_path / "store"
    fastas = write_test_fastas(tmp_path / "fasta")
    base = init_genome(store, fastas["base.fa"], "base")["digest"]
    subset = init_genome(store, fastas["subset.fa"], "subset")["digest"]
    with running_server(store) as server:
        url = f"{server.url}/seqcol/comparison/{base}/{subset}"
        first, again = httpx.get(url), httpx.get(url)
        assert first.status_code == again.status_code == 200 and first.content == again.content
        assert first.json()["array_elements"]["a_and_b_count"]["sequences"] == 2
        rgstore_cli(store, "genome", "remove", "subset")
        assert httpx.get(url).status_code == 404
        assert httpx.get(f"{server.url}/seqcol/comparison/{subset}/{base}").status_code == 404


def _post(served: Server, body: bytes) -> httpx.Response:
    return httpx.post(f"{served.url}/seqcol/comparison/{BASE['top_level_digest']}", content=body,
                      headers={"Content-Type": "application/json"})


def _one_line_422(r: httpx.Response, where: str) -> None:
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and where in detail, detail


@pytest.mark.parametrize("length", [-1, True, 1.5, "8", None, [8], {"length": 8}, 2**53, 10**30])
def test_a_posted_length_that_is_no_non_negative_integer_gets_422(served: Server, length: object) -> None:
    body = {"names": ["chrX", "chr1"], "lengths": [8, length], "sequences": BASE["level2"]["sequences"][:2]}
    _one_line_422(_post(served, json.dumps(body).encode()), "lengths[1]")


@pytest.mark.parametrize("lengths", [8, "8,4", None, {"chrX": 8}, True])
def test_posted_lengths_that_are_no_array_get_422(served: Server, lengths: object) -> None:
    body = {"names": ["chrX"], "lengths": lengths, "sequences": BASE["level2"]["sequences"][:1]}
    _one_line_422(_post(served, json.dumps(body).encode()), '"lengths"')


@pytest.mark.parametrize(("attribute", "element"), [
    ("names", 1), ("names", None), ("names", True), ("names", ["chr1"]), ("names", {"name": "chr1"}),
    ("sequences", 1), ("sequences", None), ("sequences", ["SQ.a"]), ("sequences", {"digest": "SQ.a"}),
    ("sorted_sequences", 7), ("name_length_pairs", {"name": "chrX", "length": -8}),
    ("name_length_pairs", {"name": 1, "length": 8}), ("name_length_pairs", "chrX"),
])
def test_a_posted_name_or_sequence_of_the_wrong_type_gets_422(served: Server, attribute: str, element: object) -> None:
    body = {k: list(v) for k, v in DIGESTS["subset.fa"]["level2"].items()}
    body[attribute][0] = element
    _one_line_422(_post(served, json.dumps(body).encode()), f"{attribute}[0]")


def test_a_posted_name_with_a_lone_surrogate_gets_422_as_jcs_cannot_write_it(served: Server) -> None:
    body = b'{"names": ["chrX", "\\ud800"], "lengths": [8, 4], "sequences": []}'
    _one_line_422(_post(served, body), "names[1]")


@pytest.mark.parametrize("body", [b"[]", b'[{"names": []}]', b'"names"', b"8", b"null", b"true"])
def test_posted_json_that_is_no_object_gets_422(served: Server, body: bytes) -> None:
    _one_line_422(_post(served, body), "not an object of arrays")


@pytest.mark.parametrize("body", [b'{"lengths": [NaN]}', b'{"lengths": [Infinity]}', b'{"lengths": [-Infinity]}'])
def test_nan_and_infinity_are_not_json_and_get_400(served: Server, body: bytes) -> None:
    r = _post(served, body)
    assert r.status_code == 400 and "not JSON" in r.json()["detail"]


@pytest.mark.parametrize("name", DIGESTS)
def test_posting_a_stored_collection_compares_exactly_as_the_get_comparison(served: Server, name: str) -> None:
    base, other = BASE["top_level_digest"], DIGESTS[name]
    posted = httpx.post(f"{served.url}/seqcol/comparison/{base}", json=other["level2"])
    got = httpx.get(f"{served.url}/seqcol/comparison/{base}/{other['top_level_digest']}")
    assert posted.status_code == got.status_code == 200
    assert posted.json() == got.json()


def test_extra_attributes_and_integral_float_lengths_are_compared_not_refused(served: Server) -> None:
    subset = DIGESTS["subset.fa"]
    body = {**subset["level2"], "lengths": [8.0, 4.0], "accessions": [None, {"insdc": ["CM000663.2"]}, 3.5]}
    r = httpx.post(f"{served.url}/seqcol/comparison/{BASE['top_level_digest']}", json=body)
    assert r.status_code == 200
    result = r.json()
    assert result["digests"]["b"] == subset["top_level_digest"]
    assert result["attributes"]["b_only"] == ["accessions"]
    assert result["array_elements"]["b_count"]["accessions"] == 3
    # 8.0 is the integer 8 to JCS, so the lengths overlap as if posted as integers.
    assert result["array_elements"]["a_and_b_count"]["lengths"] == 2


def test_the_posted_collection_is_documented_as_a_request_body_and_its_example_is_accepted(served: Server) -> None:
    documented = []
    for spec_path, path in (("/openapi.json", "/seqcol/comparison/{digest1}"), ("/seqcol/openapi.json",
                                                                                "/comparison/{digest1}")):
        body = httpx.get(f"{served.url}{spec_path}").json()["paths"][path]["post"]["requestBody"]
        assert body["required"] is True
        documented.append(body["content"]["application/json"]["schema"])
    schema = documented[0]
    assert documented[1] == schema  # the seqcol-only description documents it the same way
    assert schema["type"] == "object" and schema["additionalProperties"]["type"] == "array"
    properties = schema["properties"]
    assert {"names", "lengths", "sequences", "name_length_pairs", "sorted_sequences"} <= set(properties)
    assert properties["names"]["items"] == {"type": "string"} == properties["sequences"]["items"]
    assert properties["lengths"]["items"]["type"] == "integer" and properties["lengths"]["items"]["minimum"] == 0
    assert "required" not in schema  # attributes may be missing: the comparison counts what is there
    example = schema["examples"][0]
    answer = httpx.post(f"{served.url}/seqcol/comparison/{BASE['top_level_digest']}", json=example)
    assert answer.status_code == 200, answer.text
    assert answer.json()["digests"]["b"] is not None  # names, lengths and sequences, equally long: a digest

"""refget's seqcol-server extensions under /seqcol (alias and FHR routes, service-info flags) on a real server.

Shapes are those of refget's server (``refget/router.py``, ``refget/backend.py`` in the refget
package): ``{namespace, alias, digest}``, ``{namespaces}``, ``{namespace, aliases}``, ``{digest, aliases:
[[ns, name]]}``, the FHR document and ``{collections}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server_fixture import Server, init_genome, rgstore_cli, running_server
from tests.test_api_seqcol import DIGESTS, write_test_fastas

BASE = DIGESTS["base.fa"]["top_level_digest"]
DIFFERENT = DIGESTS["different_names.fa"]["top_level_digest"]
FHR = {"schemaVersion": 1, "genome": "base", "taxon": {"name": "Homo sapiens", "uri": "https://identifiers.org/taxonomy:9606"},
       "customKey": ["kept", 1]}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("seqcol-ext")
    store = root / "store"
    fastas = write_test_fastas(root / "fasta")
    for name in ("base.fa", "different_names.fa", "pair_swap.fa"):
        init_genome(store, fastas[name], name.removesuffix(".fa"))
    rgstore_cli(store, "alias", "set", "ucsc:b1", BASE)
    rgstore_cli(store, "alias", "set", "ucsc:d1", DIFFERENT)
    sequences = DIGESTS["base.fa"]["level2"]["sequences"]
    rgstore_cli(store, "alias", "set", "--sequence", "insdc:X1.1", sequences[0])
    rgstore_cli(store, "alias", "set", "--sequence", "genbank:G1.1", sequences[0])
    (root / "fhr.json").write_text(json.dumps(FHR))
    rgstore_cli(store, "genome", "fhr", "set", "base", str(root / "fhr.json"))
    return store


@pytest.fixture(scope="module")
def served(store: Path) -> Iterator[Server]:
    with running_server(store) as server:
        yield server


def _get(served: Server, path: str, **params: object) -> httpx.Response:
    return httpx.get(f"{served.url}/seqcol{path}", params=params)  # type: ignore[arg-type]


def _not_found(r: httpx.Response) -> str:
    assert r.status_code == 404, r.text
    body = r.json()
    assert list(body) == ["detail"] and "\n" not in body["detail"]
    return str(body["detail"])


def test_a_collection_alias_resolves_to_its_digest_in_refgets_shape(served: Server) -> None:
    assert _get(served, "/alias/collection/ucsc/b1").json() == {"namespace": "ucsc", "alias": "b1", "digest": BASE}
    assert _get(served, "/alias/collection/refgenie/base").json()["digest"] == BASE


def test_a_sequence_alias_resolves_to_the_bare_digest_as_gtars_gives_it(served: Server) -> None:
    sequence = DIGESTS["base.fa"]["level2"]["sequences"][0]
    body = _get(served, "/alias/sequence/insdc/X1.1").json()
    assert body == {"namespace": "insdc", "alias": "X1.1", "digest": sequence.removeprefix("SQ.")}


@pytest.mark.parametrize("path", ["/alias/collection/ucsc/nope", "/alias/collection/nope/b1",
                                  "/alias/sequence/ucsc/b1", "/alias/collection/insdc/X1.1",
                                  "/alias/collection/bad%20ns/b1", "/alias/collection/ucsc/" + "x" * 600])
def test_an_unknown_or_malformed_alias_gets_a_one_line_404(served: Server, path: str) -> None:
    _not_found(_get(served, path))


@pytest.mark.parametrize("path", ["/alias/genome/ucsc/b1", "/list/alias/genome", "/list/alias/genome/ucsc",
                                  f"/aliases/genome/{BASE}"])
def test_a_kind_other_than_collection_or_sequence_gets_400_as_refget_answers(served: Server, path: str) -> None:
    r = _get(served, path)
    assert r.status_code == 400
    assert "kind must be 'collection' or 'sequence'" in r.json()["detail"]


def test_namespaces_are_listed_per_kind_sorted(served: Server) -> None:
    assert _get(served, "/list/alias/collection").json() == {"namespaces": ["refgenie", "ucsc"]}
    assert _get(served, "/list/alias/sequence").json() == {"namespaces": ["genbank", "insdc"]}


def test_a_namespace_lists_its_alias_names_whole_by_default(served: Server) -> None:
    body = _get(served, "/list/alias/collection/ucsc").json()
    assert body == {"namespace": "ucsc", "aliases": ["b1", "d1"],
                    "pagination": {"page": 0, "page_size": None, "total": 2}}
    assert _get(served, "/list/alias/collection/refgenie").json()["aliases"] == ["base", "different_names", "pair_swap"]


def test_a_namespace_listing_pages_by_page_or_by_cursor(served: Server) -> None:
    first = _get(served, "/list/alias/collection/refgenie", page_size=2)
    assert first.json()["aliases"] == ["base", "different_names"]
    assert first.json()["pagination"] == {"page": 0, "page_size": 2, "total": 3}
    cursor = first.headers["x-rgstore-next-after"]
    second = _get(served, "/list/alias/collection/refgenie", page_size=2, after=cursor)
    assert second.json()["aliases"] == ["pair_swap"] and "x-rgstore-next-after" not in second.headers
    assert _get(served, "/list/alias/collection/refgenie", page_size=2, page=1).json()["aliases"] == ["pair_swap"]


def test_an_unknown_namespace_gets_404_naming_the_known_ones(served: Server) -> None:
    assert "ucsc" in _not_found(_get(served, "/list/alias/collection/ucsd"))
    _not_found(_get(served, "/list/alias/sequence/ucsc"))  # a collection namespace, not a sequence one


def test_reverse_lookup_lists_namespace_name_pairs_of_a_digest(served: Server) -> None:
    assert _get(served, f"/aliases/collection/{BASE}").json() == {
        "digest": BASE, "aliases": [["refgenie", "base"], ["ucsc", "b1"]]}
    sequence = DIGESTS["base.fa"]["level2"]["sequences"][0]
    expected = [["genbank", "G1.1"], ["insdc", "X1.1"]]
    assert _get(served, f"/aliases/sequence/{sequence}").json() == {"digest": sequence, "aliases": expected}
    bare = sequence.removeprefix("SQ.")
    assert _get(served, f"/aliases/sequence/{bare}").json()["aliases"] == expected


def test_reverse_lookup_of_a_stored_digest_without_aliases_is_empty_and_of_an_unknown_one_404(served: Server) -> None:
    other = DIGESTS["base.fa"]["level2"]["sequences"][1]
    assert _get(served, f"/aliases/sequence/{other}").json() == {"digest": other, "aliases": []}
    _not_found(_get(served, "/aliases/collection/" + "A" * 32))
    _not_found(_get(served, "/aliases/collection/short"))
    _not_found(_get(served, "/aliases/sequence/SQ." + "A" * 32))


def test_a_collections_fhr_document_is_served_as_recorded(served: Server) -> None:
    assert _get(served, f"/collection/{BASE}/fhr").json() == FHR


def test_fhr_of_a_collection_without_one_or_of_an_unknown_one_gets_404(served: Server) -> None:
    assert "no FHR metadata" in _not_found(_get(served, f"/collection/{DIFFERENT}/fhr"))
    assert "no sequence collection" in _not_found(_get(served, "/collection/" + "A" * 32 + "/fhr"))


def test_list_fhr_names_the_collections_with_a_document(served: Server) -> None:
    assert _get(served, "/list/fhr").json() == {"collections": [BASE],
                                                "pagination": {"page": 0, "page_size": None, "total": 1}}
    assert _get(served, "/list/fhr", page=1, page_size=1).json()["collections"] == []


def test_service_info_carries_refgets_alias_and_fhr_flags_next_to_the_existing_fields(served: Server) -> None:
    seqcol = _get(served, "/service-info").json()["seqcol"]
    assert seqcol["aliases"] == {"enabled": True}
    assert seqcol["fhr_metadata"] == {"enabled": True}
    assert seqcol["refget_store"]["enabled"] is True and "schema" in seqcol


def test_service_info_flags_are_off_on_a_store_without_aliases_or_fhr(tmp_path: Path) -> None:
    fastas = write_test_fastas(tmp_path / "fasta")
    store = tmp_path / "store"
    init_genome(store, fastas["base.fa"], "base")
    rgstore_cli(store, "alias", "remove", "base")
    with running_server(store) as server:
        seqcol = httpx.get(f"{server.url}/seqcol/service-info").json()["seqcol"]
        assert seqcol["aliases"] == {"enabled": False} and seqcol["fhr_metadata"] == {"enabled": False}
        assert httpx.get(f"{server.url}/seqcol/list/alias/collection").json() == {"namespaces": []}
        assert httpx.get(f"{server.url}/seqcol/list/fhr").json()["collections"] == []


def test_the_extension_routes_are_in_the_seqcol_openapi(served: Server) -> None:
    paths = set(_get(served, "/openapi.json").json()["paths"])
    assert {"/alias/{kind}/{namespace}/{alias}", "/list/alias/{kind}", "/list/alias/{kind}/{namespace}",
            "/aliases/{kind}/{digest}", "/collection/{digest}/fhr", "/list/fhr"} <= paths

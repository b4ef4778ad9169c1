"""refgenie-compatible routes against a real server: the client bootstrap, /v4 aliases and genomes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gtars.refget import RefgetStore

from tests.server_fixture import Server, init_genome, rgstore_cli, running_server

FHR = {
    "schema": "https://raw.githubusercontent.com/FAIR-bioHeaders/FHR-Specification/main/fhr.json",
    "schemaVersion": 1.0,
    "genome": "Testus primus",
    "taxon": {"name": "Testus primus", "uri": "https://identifiers.org/taxonomy:9606"},
    "assemblyAccession": "GCA_000000001.1",
    "version": "1",
    "labNotes": "kept verbatim",
}


@pytest.fixture(scope="module")
def genomes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("refgenie")
    store = root / "store"
    (root / "one.fa").write_text(">chr1\nACGTACGTAC\n>chr2\nGGGGCCCC\n")
    (root / "two.fa").write_text(">chrA\nTTTTAAAACCCC\n")
    (root / "one.fhr.json").write_text(json.dumps(FHR))
    one = init_genome(store, root / "one.fa", "one", "--name", "uno", "--species", "Testus primus",
                      "--description", "the first", "--fhr", str(root / "one.fhr.json"))
    two = init_genome(store, root / "two.fa", "two", "--description", "the second")
    rgstore_cli(store, "alias", "set", "ucsc:one", str(one["digest"]))
    return store, {"one": str(one["digest"]), "two": str(two["digest"])}


@pytest.fixture(scope="module")
def served(genomes: tuple[Path, dict[str, str]]) -> Iterator[Server]:
    with running_server(genomes[0]) as server:
        yield server


def test_service_info_bootstraps_a_refgenie_client_to_the_store(
    served: Server, genomes: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    # make_source: {url}/rgstore.json is not a manifest here, so the client reads /service-info ...
    assert httpx.get(f"{served.url}/rgstore.json").status_code == 404
    info = httpx.get(f"{served.url}/service-info").json()
    assert info["id"] == "org.refgenie.api" and info["refgenie"]["api_base"] == "/v4"
    assert info["seqcol"]["url"] == "/seqcol" and info["seqcol"]["services"][0]["refget_store"]["enabled"]
    store_url = info["seqcol"]["refget_store"]["url"]
    # ... and opens the advertised RefgetStore remotely, as RefgetStoreSource does.
    remote = RefgetStore.open_remote(str(tmp_path / "cache"), store_url)
    remote.set_quiet(True)
    remote.pull_aliases()
    level2 = remote.get_collection_level2(genomes[1]["one"])
    assert list(level2["names"]) == ["chr1", "chr2"]
    assert remote.get_substring(level2["sequences"][1], 0, 4) == "GGGG"


def test_flat_alias_resolution_through_the_openapi_operation_id(served: Server,
                                                                genomes: tuple[Path, dict[str, str]]) -> None:
    spec = httpx.get(f"{served.url}/openapi.json").json()
    paths = [path for path, ops in spec["paths"].items()
             if ops.get("get", {}).get("operationId") == "get_alias_v4_aliases__name__get"]
    assert paths == ["/v4/aliases/{name}"]
    body = httpx.get(f"{served.url}{paths[0].format(name='uno')}").json()
    assert body == {
        "alias": "uno", "digest": genomes[1]["one"], "source": "server",
        "collection": {"names": ["chr1", "chr2"], "lengths": [10, 8], "sequences": body["collection"]["sequences"]},
        "fhr": FHR,
    }
    assert all(s.startswith("SQ.") for s in body["collection"]["sequences"])


def test_namespaced_alias_and_unknown_alias(served: Server, genomes: tuple[Path, dict[str, str]]) -> None:
    assert httpx.get(f"{served.url}/v4/aliases/ucsc:one").json()["digest"] == genomes[1]["one"]
    r = httpx.get(f"{served.url}/v4/aliases/nope")
    assert r.status_code == 404 and r.json() == {"detail": "Alias 'nope' not found"}
    assert httpx.get(f"{served.url}/v4/aliases/bad name with spaces").status_code == 404


def test_alias_list_filters_and_pages(served: Server, genomes: tuple[Path, dict[str, str]]) -> None:
    one, two = genomes[1]["one"], genomes[1]["two"]
    everything = httpx.get(f"{served.url}/v4/aliases").json()
    assert everything["items"] == [
        {"name": "one", "namespace": "refgenie", "genome_digest": one},
        {"name": "two", "namespace": "refgenie", "genome_digest": two},
        {"name": "uno", "namespace": "refgenie", "genome_digest": one},
        {"name": "ucsc:one", "namespace": "ucsc", "genome_digest": one},
    ]
    assert everything["pagination"] == {"offset": 0, "limit": 100, "total": 4}
    by_digest = httpx.get(f"{served.url}/v4/aliases", params={"genome_digest": two}).json()
    assert [i["name"] for i in by_digest["items"]] == ["two"]
    paged = httpx.get(f"{served.url}/v4/aliases", params={"offset": 1, "limit": 2}).json()
    assert [i["name"] for i in paged["items"]] == ["two", "uno"] and paged["pagination"]["total"] == 4


def test_genome_list_with_alias_digest_and_text_filters(served: Server, genomes: tuple[Path, dict[str, str]]) -> None:
    one, two = genomes[1]["one"], genomes[1]["two"]
    url = f"{served.url}/v4/genomes"
    listed = httpx.get(url).json()
    assert sorted(i["digest"] for i in listed["items"]) == sorted([one, two])
    first = next(i for i in listed["items"] if i["digest"] == one)
    assert sorted(first["aliases"]) == ["one", "ucsc:one", "uno"]
    assert first["species_name"] == "Testus primus" and first["taxon_id"] == 9606
    assert httpx.get(url, params={"alias": "ucsc:one"}).json()["items"][0]["digest"] == one
    assert httpx.get(url, params={"alias": "missing"}).json() == {
        "items": [], "pagination": {"offset": 0, "limit": 100, "total": 0}}
    assert [i["digest"] for i in httpx.get(url, params={"q": "SECOND"}).json()["items"]] == [two]
    assert [i["digest"] for i in httpx.get(url, params={"digest": two}).json()["items"]] == [two]
    assert httpx.get(url, params={"limit": 0}).status_code == 422


def test_genome_detail_has_fhr_and_taxon_uri(served: Server, genomes: tuple[Path, dict[str, str]]) -> None:
    one = genomes[1]["one"]
    detail = httpx.get(f"{served.url}/v4/genomes/{one}").json()
    assert detail["fhr"] == FHR
    assert detail["taxon_uri"] == "https://identifiers.org/taxonomy:9606"
    assert detail["assembly_accession"] == "GCA_000000001.1"
    assert detail["names"] == ["chr1", "chr2"] and detail["lengths"] == [10, 8]
    assert httpx.get(f"{served.url}/v4/genomes/NoSuchDigest").status_code == 404


def test_fhr_is_served_as_a_store_file_that_a_remote_gtars_pulls(
    served: Server, genomes: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    one, two = genomes[1]["one"], genomes[1]["two"]
    served_fhr = httpx.get(f"{served.url}/store/fhr/{one}.fhr.json")
    assert served_fhr.status_code == 200 and served_fhr.json() == FHR
    assert httpx.get(f"{served.url}/store/fhr/{two}.fhr.json").status_code == 404  # two has no FHR
    remote = RefgetStore.open_remote(str(tmp_path / "cache"), f"{served.url}/store")
    remote.set_quiet(True)
    pulled = remote.pull_fhr()
    assert pulled["pulled"] == 1 and pulled["not_found"] == 1
    assert remote.get_fhr_metadata(one).to_dict() == FHR

"""refgenie-compatible routes against a real server: the client bootstrap, /v4 aliases and genomes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gtars.refget import RefgetStore

from rgstore.events import AliasSet, GenomeAdded
from rgstore.log import NewEvent
from rgstore.store import Store
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


def test_genome_list_json_and_the_v4_genome_items_share_their_own_fields_and_added_at(
        served: Server, genomes: tuple[Path, dict[str, str]]) -> None:
    # A script moving from `genome list --json` to /v4/genomes (or back) finds the same facts under the
    # same names; only the refgenie spec's names differ (species_name for species).
    cli_rows = {row["digest"]: row for row in json.loads(rgstore_cli(genomes[0], "genome", "list", "--json"))}
    api_rows = {row["digest"]: row for row in httpx.get(f"{served.url}/v4/genomes").json()["items"]}
    assert cli_rows.keys() == api_rows.keys() == set(genomes[1].values())
    for digest, row in cli_rows.items():
        api = api_rows[digest]
        for field in ("aliases", "n_sequences", "total_length", "description", "added_at"):
            assert row[field] == api[field], field
        assert row["species"] == (api["species_name"] or "")
        shown = json.loads(rgstore_cli(genomes[0], "genome", "show", "--digest", digest, "--json"))
        assert row["added_at"] == shown["added_at"] and row["added_at"].endswith("Z")


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


def test_listing_and_searching_genomes_decode_no_genome_record_once_the_catalog_is_built(
    genomes: tuple[Path, dict[str, str]]
) -> None:
    """Search used to decode every genome record in full per request: megabytes for each big assembly."""
    import asyncio

    from rgstore_api.app import create_app
    from rgstore_api.catalog import GenomeCatalog

    one, two = genomes[1]["one"], genomes[1]["two"]
    app = create_app(str(genomes[0]))
    queries: list[dict[str, str | int]] = [
        {"q": "FIRST"}, {"q": "ucsc"}, {"q": "no such"}, {}, {"offset": 1, "limit": 1}, {"q": "the", "limit": 1}]

    async def run() -> tuple[list[dict], GenomeCatalog]:  # type: ignore[type-arg]
        transport = httpx.ASGITransport(app=app)
        async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            bodies = [(await c.get("/v4/genomes", params=q)).json() for q in queries]
            return bodies, app.state.store.service("api.catalog", GenomeCatalog)

    bodies, catalog = asyncio.run(run())
    assert catalog.builds == 1 and catalog.record_reads == 0
    assert [[i["digest"] for i in b["items"]] for b in bodies] == [[one], [one], [], sorted([one, two]),
                                                                    [sorted([one, two])[1]], [sorted([one, two])[0]]]
    assert [b["pagination"]["total"] for b in bodies] == [1, 1, 0, 2, 2, 2]
    sizes = {i["digest"]: (i["n_sequences"], i["total_length"]) for i in bodies[3]["items"]}
    assert sizes == {one: (2, 18), two: (1, 12)}


def test_a_catalog_newer_than_a_requests_transaction_answers_from_that_transaction(store: Store) -> None:
    from rgstore_api.catalog import GenomeCatalog

    def add(digest: str, n: int) -> None:
        store.append([NewEvent(stream=f"genome:{digest}", event=GenomeAdded(
            digest=digest, names=[f"c{i}" for i in range(n)], lengths=[10] * n,
            sequences=[f"SQ.{digest[:24]}{i:08d}" for i in range(n)], description=f"genome {digest[0]}"))])

    a, b = "a" * 32, "b" * 32
    catalog = GenomeCatalog(store)
    add(a, 3)
    with store.read() as old:
        add(b, 4)
        with store.read() as new:
            assert [(s.digest, s.n_sequences, s.total_length) for s in catalog.summaries(new, [a, b])] == [
                (a, 3, 30), (b, 4, 40)]
        assert catalog.record_reads == 0
        # The snapshot now reflects a later head than ``old``: b must not appear, read from old's own view.
        assert [s.digest for s in catalog.summaries(old, [a, b])] == [a]
    assert catalog.record_reads == 2 and catalog.builds == 1


def test_an_alias_page_reads_only_its_own_aliases_however_many_the_store_holds(store_path: Path) -> None:
    """/v4/aliases used to decode every alias of the store per page (0.4 s a page at 70k aliases)."""
    import asyncio

    from rgstore_api.app import create_app

    digests = ["a" * 32, "b" * 32]
    names = [("ncbi", f"n{i:03d}") for i in range(30)] + [("ucsc", f"u{i:03d}") for i in range(40)]
    with Store.open(store_path) as store:
        store.append([NewEvent(stream=f"alias:{ns}/{n}", event=AliasSet(namespace=ns, name=n, digest=digests[i % 2]))
                      for i, (ns, n) in enumerate(names)])
    flat = [f"{ns}:{n}" for ns, n in names]
    queries: list[dict[str, str | int]] = [
        {"offset": 25, "limit": 10}, {"namespace": "ucsc", "offset": 38}, {"name": "ucsc:u007"},
        {"genome_digest": digests[1], "namespace": "ucsc", "limit": 2}, {"namespace": "nope"}, {"offset": 500}]

    def ask() -> list[dict]:  # type: ignore[type-arg]
        app = create_app(str(store_path))

        async def run() -> list[dict]:  # type: ignore[type-arg]
            transport = httpx.ASGITransport(app=app)
            async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                return [(await c.get("/v4/aliases", params=q)).json() for q in queries]

        return asyncio.run(run())

    expected = [(flat[25:35], 70), (flat[68:], 40), (["ucsc:u007"], 1), (["ucsc:u001", "ucsc:u003"], 20), ([], 0), ([], 70)]
    before = ask()
    assert [([i["name"] for i in b["items"]], b["pagination"]["total"]) for b in before] == expected
    # Damage the values of every alias no query returns: a route that decoded them would fail.
    returned = {i["name"] for b in before for i in b["items"]}
    with Store.open(store_path) as store:
        db = store.environment.db("aliases.collections")
        store.environment.write(lambda txn: [txn.put(f"{ns}\x00{n}".encode(), b"\xc1", db=db)
                                             for ns, n in names if f"{ns}:{n}" not in returned])
    assert ask() == before


def test_a_bare_alias_the_refgenie_namespace_lacks_resolves_through_the_other_namespaces(tmp_path: Path) -> None:
    """The seed's server order: refgenie's own aliases win, then ncbi/insdc/ucsc/...; disagreement is a 409."""
    store = tmp_path / "store"
    (tmp_path / "one.fa").write_text(">chr1\nACGTACGTAC\n>chr2\nGGGGCCCC\n")
    (tmp_path / "two.fa").write_text(">chrA\nTTTTAAAACCCC\n")
    one = str(init_genome(store, tmp_path / "one.fa", "one")["digest"])
    two = str(init_genome(store, tmp_path / "two.fa", "two")["digest"])
    for flat, digest in [("ncbi:GCA_ONE.1", one), ("ucsc:shared", one), ("ncbi:shared", one),
                         ("ucsc:clash", one), ("ncbi:clash", two), ("ucsc:two", one)]:
        rgstore_cli(store, "alias", "set", flat, digest)
    with running_server(store) as server:
        body = httpx.get(f"{server.url}/v4/aliases/GCA_ONE.1").json()
        assert (body["alias"], body["digest"], body["collection"]["names"]) == ("GCA_ONE.1", one, ["chr1", "chr2"])
        assert httpx.get(f"{server.url}/v4/aliases/shared").json()["digest"] == one
        assert httpx.get(f"{server.url}/v4/aliases/two").json()["digest"] == two    # refgenie:two wins over ucsc:two
        clash = httpx.get(f"{server.url}/v4/aliases/clash")
        assert clash.status_code == 409
        assert f"ncbi:clash -> {two}" in clash.json()["detail"] and f"ucsc:clash -> {one}" in clash.json()["detail"]
        assert httpx.get(f"{server.url}/v4/aliases/ucsc:GCA_ONE.1").status_code == 404   # a namespace stays exact
        assert httpx.get(f"{server.url}/v4/aliases/nope").status_code == 404
        listed = httpx.get(f"{server.url}/v4/genomes", params={"alias": "GCA_ONE.1"}).json()["items"]
        assert [item["digest"] for item in listed] == [one]

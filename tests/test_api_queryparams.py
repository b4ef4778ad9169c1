"""One rule for query parameters on every route of a real server: blank or repeated values are a 422 naming them.

The routes are read from the server's own /openapi.json, so a route added later is held to the
rule too. ``q`` (a substring: every genome holds the empty one) is the one parameter a blank value
is meant for; refget's ``start``/``end`` keep refget's 400; parameters no route declares are ignored.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.server_fixture import Server, init_genome, rgstore_cli, running_server


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    root = tmp_path_factory.mktemp("queryparams")
    store = root / "store"
    (root / "one.fa").write_text(">chr1\nACGTACGTAC\n>chr2\nGGGGCCCC\n")
    (root / "two.fa").write_text(">chrA\nTTTTAAAACCCC\n")
    one = init_genome(store, root / "one.fa", "one", "--species", "Testus primus")
    init_genome(store, root / "two.fa", "two")
    rgstore_cli(store, "alias", "set", "ucsc:one", str(one["digest"]))
    (root / "tree.nwk").write_text("(a:0.1,b:0.2);\n")
    rgstore_cli(store, "refpkg", "create", "pkg", "-l", "16S", "-t", str(root / "tree.nwk"))
    sequences = one["sequences"]
    assert isinstance(sequences, list)
    path_values = {"digest": str(one["digest"]), "digest1": str(one["digest"]), "digest2": str(one["digest"]),
                   "name": "pkg", "attribute": "names", "id": str(sequences[0]),
                   "kind": "collection", "namespace": "ucsc", "alias": "one"}
    with running_server(store) as server:
        yield server, path_values


def _declared_query_parameters(server: Server, path_values: dict[str, str]) -> list[tuple[str, str]]:
    """(URL path, parameter) of every GET route's declared query parameters, path parameters filled in."""
    spec = httpx.get(f"{server.url}/openapi.json").json()
    found = []
    for path, operations in spec["paths"].items():
        for parameter in operations.get("get", {}).get("parameters", []):
            if parameter["in"] == "query":
                found.append((path.format(**path_values), parameter["name"]))
    return found


def _queried(server: Server, path: str, query: str) -> httpx.Response:
    return httpx.get(f"{server.url}{path}?{query}", timeout=30)


@pytest.mark.parametrize("blank", ["", "%20%20", "%09"])
def test_a_blank_query_value_is_a_422_naming_the_parameter_on_every_route(
    served: tuple[Server, dict[str, str]], blank: str,
) -> None:
    server, path_values = served
    checked = []
    for path, name in _declared_query_parameters(server, path_values):
        if name == "q" or path.startswith("/sequence/") and name in ("start", "end"):
            continue  # below: q= means every genome, and refget answers a bad coordinate with its 400
        answer = _queried(server, path, f"{name}={blank}")
        assert answer.status_code == 422, (path, name, answer.text)
        detail = answer.json()["detail"]
        assert detail.startswith(f"{name}: is ") and f"leave {name} out" in detail and "\n" not in detail
        checked.append((path, name))
    # The filters whose blank value once meant something silently: nothing matched, or no filter at all.
    assert {("/v4/aliases", "namespace"), ("/v4/aliases", "name"), ("/v4/genomes", "digest"),
            ("/seqcol/list/collection", "names"), ("/events", "log_id"), ("/refpkgs", "after"),
            ("/seqcol/list/alias/collection/ucsc", "after")} <= set(checked)


def test_a_query_parameter_given_twice_is_a_422_not_the_last_value_silently(
    served: tuple[Server, dict[str, str]],
) -> None:
    server, path_values = served
    for path, name in _declared_query_parameters(server, path_values):
        answer = _queried(server, path, f"{name}=1&{name}=2")
        want = 400 if path.startswith("/sequence/") else 422  # refget's status for a bad coordinate
        assert answer.status_code == want, (path, name, answer.text)
        assert answer.json()["detail"].startswith(f"{name}") and "given 2 times; give it once" in answer.json()["detail"]


def test_an_empty_search_lists_every_genome_as_no_search_does(served: tuple[Server, dict[str, str]]) -> None:
    server, _ = served
    everything = _queried(server, "/v4/genomes", "").json()
    assert everything["pagination"]["total"] == 2
    assert _queried(server, "/v4/genomes", "q=").json() == everything
    # A space is a substring like any other: the species 'Testus primus' holds one, 'two' nothing.
    spaced = _queried(server, "/v4/genomes", "q=%20").json()
    assert [item["species_name"] for item in spaced["items"]] == ["Testus primus"]


def test_a_blank_coordinate_keeps_refgets_400(served: tuple[Server, dict[str, str]]) -> None:
    server, path_values = served
    answer = _queried(server, f"/sequence/{path_values['id']}", "start=")
    assert answer.status_code == 400 and answer.json()["detail"] == "start='' is not a 32-bit unsigned integer"


def test_parameters_no_route_declares_are_ignored(served: tuple[Server, dict[str, str]]) -> None:
    server, path_values = served
    plain = _queried(server, "/v4/aliases", "namespace=ucsc")
    assert [item["name"] for item in plain.json()["items"]] == ["ucsc:one"]
    # A cache-buster or tracking tag, even blank or repeated, changes nothing.
    assert _queried(server, "/v4/aliases", "namespace=ucsc&_=1&_=2&utm_source=").json() == plain.json()
    assert _queried(server, f"/sequence/{path_values['id']}", "_=").text == "ACGTACGTAC"

"""schemathesis against the real server's /openapi.json: generated (and malformed) requests on every route never get a 5xx.

Bounded: a fixed number of examples per operation, a small store with genomes, aliases,
sequence aliases and a refpkg so that some generated requests also hit real data.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from tests.server_fixture import Server, init_genome, rgstore_cli, running_server

EXAMPLES = 30


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("schema")
    store = root / "store"
    (root / "g.fa").write_text(">chr1\nACGTACGTACGTNNNN\n>chrM\nGATTACA\n")
    genome = init_genome(store, root / "g.fa", "g", "--circular", "chrM")
    sequences = genome["sequences"]
    assert isinstance(sequences, list)
    rgstore_cli(store, "alias", "set", "--sequence", "insdc:X1.1", str(sequences[0]))
    (root / "tree.nwk").write_text("(a:0.1,b:0.2);\n")
    rgstore_cli(store, "refpkg", "create", "pkg", "-l", "16S", "-t", str(root / "tree.nwk"))
    with running_server(store) as server:
        yield server


@pytest.fixture(scope="module")
def api_schema(served: Server) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{served.url}/openapi.json")


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_generated_request_gets_a_server_error(api_schema: schemathesis.BaseSchema, mode: GenerationMode) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 20
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
                  derandomize=True, database=None)
        def call(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=[not_a_server_error], timeout=30)

        try:
            call()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # an operation without inputs has no invalid form


def test_the_schema_covers_every_route(api_schema: schemathesis.BaseSchema, tmp_path: Path) -> None:
    paths = set(api_schema.raw_schema["paths"])
    assert {"/sequence/{id}", "/seqcol/collection/{digest}", "/v4/aliases/{name}", "/store/{path}", "/events",
            "/refpkgs/{name}/files/{key}", "/cache/entries/{key}"} <= paths

"""schemathesis against the real server's /openapi.json: generated (and malformed) requests on every route never get
a 5xx, and every answer (status, media type, body, headers) is one the schema documents.

Bounded: a fixed number of examples per operation, a small store with genomes, aliases,
sequence aliases and a refpkg so that some generated requests also hit real data.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.server_fixture import Server, init_genome, rgstore_cli, running_server

EXAMPLES = 30
# What /openapi.json documents must be what the server sends: statuses, media types, bodies, headers.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]


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
def test_no_generated_request_gets_a_server_error_or_an_undocumented_answer(
    api_schema: schemathesis.BaseSchema, mode: GenerationMode
) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 20
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
                  derandomize=True, database=None)
        def call(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=CHECKS, timeout=30)

        try:
            call()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # an operation without inputs has no invalid form


def test_the_schema_covers_every_route(api_schema: schemathesis.BaseSchema, tmp_path: Path) -> None:
    paths = set(api_schema.raw_schema["paths"])
    assert {"/sequence/{id}", "/seqcol/collection/{digest}", "/v4/aliases/{name}", "/store/{path}", "/events",
            "/refpkgs/{name}/files/{key}", "/cache/entries/{key}"} <= paths


def _operation(spec: dict[str, Any], path: str) -> dict[str, Any]:
    """The documented GET operation serving ``path``; literal routes win over templated ones."""
    for template in sorted(spec["paths"], key=lambda t: t.count("{")):
        parts = re.split(r"(\{[^}]+\})", template)
        pattern = "".join((".+" if part == "{path}" else "[^/]+") if part.startswith("{") else re.escape(part)
                          for part in parts)
        if "get" in spec["paths"][template] and re.fullmatch(pattern, path):
            return spec["paths"][template]["get"]  # type: ignore[no-any-return]
    raise AssertionError(f"{path} matches no documented route")


def test_real_answers_on_real_data_have_documented_statuses_media_types_and_bodies(served: Server) -> None:
    """Generated requests mostly meet 404s; these reach real genomes, refpkg files and store files."""
    spec = httpx.get(f"{served.url}/openapi.json").json()
    digest = httpx.get(f"{served.url}/v4/aliases/g").json()["digest"]
    blob = httpx.head(f"{served.url}/refpkgs/pkg/files/tree").headers["etag"].strip('"')
    sequence = httpx.get(f"{served.url}/seqcol/collection/{digest}").json()["sequences"][0]
    names = httpx.get(f"{served.url}/seqcol/collection/{digest}?level=1").json()["names"]
    requests: list[tuple[str, dict[str, str]]] = [(url, {}) for url in (
        "/healthz", "/service-info", "/sequence/service-info", f"/sequence/{sequence}", "/sequence/insdc:X1.1/metadata",
        "/v4/genomes", f"/v4/genomes/{digest}", "/v4/aliases", "/v4/aliases/g", "/v4/aliases/nope",
        "/seqcol/service-info", f"/seqcol/collection/{digest}", f"/seqcol/collection/{digest}?level=1",
        f"/seqcol/attribute/collection/names/{names}", f"/seqcol/comparison/{digest}/{digest}",
        "/seqcol/list/collection", "/seqcol/list/attributes/names", "/refpkgs", "/refpkgs/pkg", "/refpkgs/pkg/history",
        "/seqcol/alias/sequence/insdc/X1.1", "/seqcol/alias/sequence/insdc/nope", "/seqcol/alias/genome/insdc/X1.1",
        "/seqcol/list/alias/sequence", "/seqcol/list/alias/sequence/insdc", "/seqcol/list/alias/sequence/nope",
        f"/seqcol/aliases/collection/{digest}", f"/seqcol/aliases/sequence/{sequence}", f"/seqcol/collection/{digest}/fhr",
        "/seqcol/list/fhr",
        # Arrays, not the collated object: the route documents both shapes.
        f"/seqcol/collection/{digest}?collated=false", f"/seqcol/collection/{digest}?attribute=names",
        "/refpkgs/pkg/files/tree", f"/blobs/{blob}", "/cache/entries", "/cache/entries/nope", "/events", "/events/head",
        "/store/rgstore.json", "/store/sequences.rgsi", f"/store/collections/{digest}.rgsi", "/store/nope",
    )]
    requests += [(f"/sequence/{sequence}", {"Accept": "text/vnd.ga4gh.refget.v1.0.0+plain"}),
                 ("/sequence/service-info", {"Accept": "application/vnd.ga4gh.refget.v1.0.0+json"}),
                 (f"/sequence/{sequence}", {"Range": "bytes=0-3"}), ("/store/rgstore.json", {"Range": "bytes=0-3"}),
                 ("/store/rgstore.json", {"Range": "bytes=99999-"}), ("/events", {"Accept": "application/json"}),
                 ("/events", {"Accept": "application/vnd.rgstore.frames"}),
                 (f"/blobs/{blob}", {"If-None-Match": f'"{blob}"'})]
    for url, headers in requests:
        r = httpx.get(f"{served.url}{url}", headers=headers)
        documented = _operation(spec, url.split("?")[0])["responses"]
        assert str(r.status_code) in documented, (url, headers, r.status_code)
        content = documented[str(r.status_code)].get("content")
        if r.status_code == 304:
            continue
        media = r.headers["content-type"].split(";")[0]
        assert content and media in content, (url, headers, media)
        schema = content[media].get("schema")
        if schema and (media == "application/json" or media.endswith("+json")):
            jsonschema.validate(r.json(), {**schema, "components": spec["components"]})


def test_regions_answers_on_real_data_are_the_documented_ones(served: Server) -> None:
    """Generated bodies name no stored collection: these reach a real one (bases, a wrap, each fault)."""
    spec = httpx.get(f"{served.url}/openapi.json").json()
    documented = spec["paths"]["/seqcol/collection/{digest}/regions"]["post"]["responses"]
    digest = httpx.get(f"{served.url}/v4/aliases/g").json()["digest"]
    url = f"{served.url}/seqcol/collection/{digest}/regions"
    ok = httpx.post(url, json=[{"chrom": "chrM", "start": 5, "end": 2}, {"chrom": "chr1", "start": 0, "end": 4}])
    assert [r["sequence"] for r in ok.json()] == ["CAGA", "ACGT"]
    answers = [ok] + [httpx.post(url, json=body) for body in (
        [{"chrom": "chrX", "start": 0, "end": 1}], [{"chrom": "chr1", "start": 5, "end": 2}],
        [{"chrom": "chr1", "start": -1, "end": 2}], [{"chrom": "chr1", "start": 0}], [])]
    assert [r.status_code for r in answers] == [200, 404, 416, 400, 422, 200]
    for r in answers:
        schema = documented[str(r.status_code)]["content"]["application/json"]["schema"]
        jsonschema.validate(r.json(), {**schema, "components": spec["components"]})

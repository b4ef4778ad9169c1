"""Claims about the FHR provenance a remote genome brings along (`genome init --remote`), against a real
`rgstore serve` (uvicorn) and a static RefgetStore served over loopback HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rgstore import remote
from rgstore.errors import NotFoundError
from rgstore.store import Store
from tests.hostile_http import HostileServer, Reply, fixed
from tests.httpfixture import serve_directory
from tests.server_fixture import running_server
from tests.test_remote import FASTA, build_refget

FHR: dict[str, Any] = {"schemaVersion": 1, "genome": "Tinyus testus", "version": "1",
                       "taxon": {"name": "Tinyus testus", "uri": "https://identifiers.org/taxonomy:9606"}}
OURS: dict[str, Any] = {"schemaVersion": 1, "genome": "Tinyus testus", "version": "ours"}


def _fhr_sets(store: Store) -> int:
    return len(store.events(type="fhr-set"))


@pytest.fixture
def primary(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A real `rgstore serve` of a store holding genome g with the FHR document ``FHR``: (URL, digest)."""
    fasta = tmp_path / "g.fa"
    fasta.write_text(FASTA)
    with Store.open(tmp_path / "primary") as store:
        digest = store.genomes.init(fasta, ["g"], fhr=FHR).genome.digest
    with running_server(tmp_path / "primary") as server:
        yield server.url, digest


def static_store(root: Path, fhr_body: str | None) -> str:
    """A gtars RefgetStore at ``root`` whose genome's FHR file (where gtars writes it) holds ``fhr_body``."""
    digest = build_refget(root, FASTA)
    if fhr_body is not None:
        (root / "fhr").mkdir(exist_ok=True)
        (root / "fhr" / f"{digest}.fhr.json").write_text(fhr_body)
    return digest


def _static_routes(root: Path) -> tuple[str, dict[str, Reply]]:
    """A gtars RefgetStore at ``root`` without an FHR file, as HostileServer routes: (its genome's digest, routes)."""
    digest = static_store(root, None)
    return digest, {f"/{p.relative_to(root).as_posix()}": fixed("200 OK", p.read_bytes())
                    for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("mount", ["", "/seqcol", "/store"], ids=["server", "seqcol-url", "its-bare-store"])
def test_a_genome_from_an_rgstore_server_comes_with_its_fhr_document(
    primary: tuple[str, str], store: Store, mount: str
) -> None:
    # Before: the server's record carried `fhr`, but init_remote took only species and circular from it.
    url, digest = primary
    result = remote.init_remote(store, url + mount, ["g"], digest=digest)
    assert (result.fhr_set, result.fhr_from_remote, result.fhr_replaced, result.fhr_not_recorded) == (
        True, True, False, None)
    assert store.genomes.fhr_get("g") == FHR == result.genome.fhr
    assert _fhr_sets(store) == 1  # recorded as `--fhr` records one: an FhrSet event


def test_a_bare_static_store_gives_the_fhr_file_gtars_wrote(tmp_path: Path, store: Store) -> None:
    from gtars.refget import FhrMetadata, RefgetStore

    root = tmp_path / "site" / "store"
    digest = static_store(root, None)
    handle = RefgetStore.open_local(str(root))
    handle.set_quiet(True)
    handle.set_fhr_metadata(digest, FhrMetadata(**FHR))  # the layout gtars itself writes and pull_fhr reads
    with serve_directory(root) as server:
        result = remote.init_remote(store, server.url, ["tiny"], digest=digest)
    assert result.fhr_from_remote and store.genomes.fhr_get("tiny") == FHR


def test_a_store_without_an_fhr_document_records_none_and_warns_nothing(tmp_path: Path, store: Store) -> None:
    root = tmp_path / "site" / "store"
    digest = static_store(root, None)
    with serve_directory(root) as server:
        result = remote.init_remote(store, server.url, ["tiny"], digest=digest)
    assert (result.fhr_set, result.fhr_not_recorded, result.genome.fhr) == (False, None, None)
    with pytest.raises(NotFoundError, match="no FHR"):
        store.genomes.fhr_get("tiny")


def test_a_given_fhr_wins_over_the_remotes(primary: tuple[str, str], store: Store, tmp_path: Path) -> None:
    url, digest = primary
    mine = tmp_path / "mine.fhr.json"
    mine.write_text(json.dumps(OURS))
    result = remote.init_remote(store, url, ["g"], digest=digest, fhr=mine)
    assert (result.fhr_set, result.fhr_from_remote) == (True, False)
    assert store.genomes.fhr_get("g") == OURS
    assert _fhr_sets(store) == 1


@pytest.mark.parametrize(("body", "reason"), [
    ('{"schemaVersion": 3}', "schemaVersion 3 is not FHR 1.x"),
    ('{"genome": 5}', "not a valid FHR 1.0 document"),
    ("[1, 2]", "an FHR document must be a JSON object"),
    ("{not json", "the FHR document is not JSON"),
], ids=["fhr-2", "wrong-type", "not-an-object", "not-json"])
def test_a_malformed_remote_fhr_is_skipped_with_a_one_line_warning_and_the_genome_is_recorded(
    tmp_path: Path, cli, body: str, reason: str  # type: ignore[no-untyped-def]
) -> None:
    root = tmp_path / "site" / "store"
    digest = static_store(root, body)
    with serve_directory(root) as server:
        result = cli("genome", "init", "--remote", server.url, "--digest", digest, "--name", "tiny")
    assert result.exit_code == 0, result.output
    warning = result.stderr.splitlines()
    assert len(warning) == 1 and warning[0].startswith("warning: ") and reason in warning[0], result.stderr
    assert warning[0].endswith("; the genome is recorded without it")
    assert f"{server.url}/fhr/{digest}.fhr.json" in warning[0]  # where the bad document is
    assert result.stdout.startswith(f"{digest}  added: 3 sequences") and "fhr" not in result.stdout
    shown = [line for line in cli("genome", "show", "tiny").output.splitlines() if line.startswith("fhr")]
    assert shown == ["fhr          no"]


def test_a_malformed_remote_fhr_is_named_in_the_json_result(tmp_path: Path, store: Store) -> None:
    root = tmp_path / "site" / "store"
    digest = static_store(root, '{"schemaVersion": 3}')
    with serve_directory(root) as server:
        result = remote.init_remote(store, server.url, ["tiny"], digest=digest)
    assert result.added and not result.fhr_set
    assert result.fhr_not_recorded is not None and "not FHR 1.x" in result.fhr_not_recorded
    assert "\n" not in result.fhr_not_recorded


def test_a_remote_fhr_that_cannot_be_read_is_skipped_not_fatal(tmp_path: Path, store: Store) -> None:
    """An outage of the FHR file alone (HTTP 500) leaves the genome recordable: provenance is not worth a refusal."""
    digest, routes = _static_routes(tmp_path / "site" / "store")
    routes[f"/fhr/{digest}.fhr.json"] = fixed("500 Internal Server Error")
    with HostileServer(routes) as server:
        result = remote.init_remote(store, server.url, ["tiny"], digest=digest)
    assert result.added and result.genome.fhr is None
    assert result.fhr_not_recorded is not None and "answered HTTP 500" in result.fhr_not_recorded

def test_a_bucket_answering_403_for_a_missing_fhr_file_is_a_store_without_one(tmp_path: Path, store: Store) -> None:
    """S3 without public listing answers 403, not 404, for a key it lacks: no FHR, and nothing to warn about."""
    digest, routes = _static_routes(tmp_path / "site" / "store")
    for path in (f"/fhr/{digest}.fhr.json", f"/collections/{digest}.fhr.json"):
        routes[path] = fixed("403 Forbidden", b"<Error><Code>AccessDenied</Code></Error>")
    with HostileServer(routes) as server:
        result = remote.init_remote(store, server.url, ["tiny"], digest=digest)
    assert result.added and result.genome.fhr is None
    assert (result.fhr_set, result.fhr_not_recorded) == (False, None)


def test_reinit_never_replaces_a_stored_fhr_with_the_remotes(
    primary: tuple[str, str], store: Store
) -> None:
    url, digest = primary
    remote.init_remote(store, url, ["g"], digest=digest, fhr=OURS)
    head = store.head()
    again = remote.init_remote(store, url, ["g", "g2"], digest=digest)  # adding a name; the remote's FHR differs
    assert (again.aliases_added, again.fhr_set, again.fhr_replaced) == (["refgenie:g2"], False, False)
    assert store.genomes.fhr_get("g") == OURS
    assert _fhr_sets(store) == 1 and store.head()[0] == head[0] + 1  # the alias only


def test_reinit_fills_in_the_remotes_fhr_for_a_genome_stored_without_one(
    primary: tuple[str, str], store: Store, tmp_path: Path
) -> None:
    # A genome recorded from its FASTA (no --fhr) gains provenance from the remote; nothing is replaced.
    url, digest = primary
    (tmp_path / "g.fa").write_text(FASTA)
    store.genomes.init(tmp_path / "g.fa", ["g"])
    again = remote.init_remote(store, url, ["g2"], digest=digest)
    assert (again.fhr_set, again.fhr_from_remote, again.fhr_replaced) == (True, True, False)
    assert store.genomes.fhr_get("g") == FHR
    assert remote.init_remote(store, url, ["g3"], digest=digest).fhr_set is False  # the same again: nothing


def test_cli_reinit_with_a_different_fhr_replaces_the_stored_one_and_says_so(  # type: ignore[no-untyped-def]
    primary: tuple[str, str], cli, tmp_path: Path
) -> None:
    url, digest = primary
    init = ("genome", "init", "--remote", url, "--digest", digest)
    first = cli(*init, "--name", "g")
    assert first.exit_code == 0 and "  fhr set (the remote's)" in first.stdout.splitlines(), first.output
    mine = tmp_path / "mine.fhr.json"
    mine.write_text(json.dumps(OURS))
    replaced = cli(*init, "--name", "g2", "--fhr", str(mine))
    assert replaced.exit_code == 0, replaced.output
    assert f"  fhr replaced (earlier documents: rgstore log --type fhr-set --stream genome:{digest})" in \
        replaced.stdout.splitlines()
    assert json.loads(cli("genome", "fhr", "get", "g").stdout) == OURS
    kept = json.loads(cli(*init, "--name", "g3", "--json").stdout)  # no --fhr: the remote's does not come back
    assert (kept["fhr_set"], kept["fhr_from_remote"], kept["fhr_not_recorded"]) == (False, False, None)
    assert json.loads(cli("genome", "fhr", "get", "g").stdout) == OURS


def test_reinit_of_a_genome_with_a_stored_fhr_neither_reads_nor_warns_about_the_remotes(
    tmp_path: Path, store: Store
) -> None:
    # The remote's FHR can never replace a stored one, yet it was fetched and, when unreadable, warned about
    # ("...answered HTTP 500; the genome is recorded without it") on every re-run that only adds a name.
    digest, routes = _static_routes(tmp_path / "site" / "store")
    routes[f"/fhr/{digest}.fhr.json"] = fixed("500 Internal Server Error")
    with HostileServer(routes) as server:
        first = remote.init_remote(store, server.url, ["tiny"], digest=digest, fhr=OURS)
        again = remote.init_remote(store, server.url, ["tiny2"], digest=digest)
    assert first.fhr_set and (again.aliases_added, again.fhr_set, again.fhr_not_recorded) == (
        ["refgenie:tiny2"], False, None)
    assert store.genomes.fhr_get("tiny") == OURS

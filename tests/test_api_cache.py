"""/cache against a real server: entries fetched by `rgstore cache` from a loopback upstream, pins, evictions."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.server_fixture import Server, rgstore_cli, running_server
from tests.upstream_fixture import UpstreamServer, upstream_tree

ENS = ["--source", "ensembl", "--species", "synthetica_testii", "--release", "110"]


@pytest.fixture(scope="module")
def cached(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, object]]]:
    root = tmp_path_factory.mktemp("cache")
    upstream_tree(root / "upstream")
    store = root / "store"
    with UpstreamServer(root / "upstream") as upstream:
        rows = json.loads(rgstore_cli(store, "cache", "regions", *ENS, "--regions", "gene,CDS",
                                      "--base-url", f"{upstream.url}/ensembl", "--json"))
    rgstore_cli(store, "cache", "pin", str(rows[0]["key"]))
    return store, rows


@pytest.fixture(scope="module")
def served(cached: tuple[Path, list[dict[str, object]]]) -> Iterator[Server]:
    with running_server(cached[0]) as server:
        yield server


def test_entries_lists_both_levels_with_files_and_checksums(served: Server, cached: tuple[Path, list]) -> None:
    body = httpx.get(f"{served.url}/cache/entries").json()
    levels = sorted(e["level"] for e in body["items"])
    assert levels == [1, 1, 2] and body["pagination"]["total"] == 3
    for entry in body["items"]:
        assert entry["state"] == "live" and not entry["path"].startswith("/")
        assert entry["size"] == sum(f["size"] for f in entry["files"].values()) > 0
        assert all(len(f["sha256"]) == 64 and len(f["md5"]) == 32 for f in entry["files"].values())
        # Times are written as every other JSON time is (the log's envelopes): ISO 8601 UTC with Z.
        assert entry["inserted_at"].endswith("Z") and datetime.fromisoformat(entry["last_access"]).utcoffset() == timedelta(0)
    only_regions = httpx.get(f"{served.url}/cache/entries", params={"level": 1}).json()["items"]
    assert sorted(e["key"] for e in only_regions) == sorted(str(r["key"]) for r in cached[1])


def test_one_entry_shows_its_pin_and_reading_it_records_nothing(served: Server, cached: tuple[Path, list]) -> None:
    key = str(cached[1][0]["key"])
    before = httpx.get(f"{served.url}/events/head").json()
    entry = httpx.get(f"{served.url}/cache/entries/{key}").json()
    assert entry["key"] == key and entry["pinned"] is True and entry["level"] == 1
    assert httpx.get(f"{served.url}/events/head").json() == before


def test_unknown_keys_are_404_and_bad_levels_422(served: Server) -> None:
    assert httpx.get(f"{served.url}/cache/entries/nope").status_code == 404
    assert httpx.get(f"{served.url}/cache/entries", params={"level": 3}).status_code == 422


def test_an_entry_file_is_served_verified_and_a_tampered_one_is_refused(
    served: Server, cached: tuple[Path, list]
) -> None:
    store, rows = cached
    key, local = str(rows[0]["key"]), Path(str(rows[0]["path"]))
    url = f"{served.url}/cache/entries/{key}/files/annotation/{local.name}"
    original = local.read_bytes()
    resp = httpx.get(url)
    assert resp.status_code == 200 and resp.content == original
    assert resp.headers["x-checksum-sha256"] == hashlib.sha256(original).hexdigest()
    head = httpx.head(url)
    assert head.status_code == 200 and head.content == b"" and int(head.headers["content-length"]) == len(original)
    assert httpx.get(f"{served.url}/cache/entries/{key}/files/annotation/../../../etc/passwd").status_code == 404
    local.write_bytes(original[:-2] + b"N\n")
    try:
        assert httpx.get(url).status_code == 500
    finally:
        local.write_bytes(original)


def test_an_evicted_entry_shows_its_tombstone(cached: tuple[Path, list], tmp_path: Path) -> None:
    store, rows = cached
    key = str(rows[1]["key"])
    rgstore_cli(store, "cache", "gc", "--max-age", "0s")
    with running_server(store, log_dir=tmp_path) as server:
        entry = httpx.get(f"{server.url}/cache/entries/{key}").json()
        assert entry["state"] == "evicted" and entry["reason"]
        pinned = httpx.get(f"{server.url}/cache/entries/{rows[0]['key']}").json()
        assert pinned["state"] == "live"

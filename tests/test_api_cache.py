"""/cache against a real server: entries fetched by `rgstore cache` from a loopback upstream, pins, evictions."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from rgstore_api.cache import entry_json
from rgstore_api.cacheorder import CacheOrder
from rgstore_api.wire import json_bytes

from rgstore.environment import Txn
from rgstore.events import CacheEvicted, CacheInserted, CachePinned, CacheTouched, FileRef
from rgstore.log import NewEvent
from rgstore.store import Store
from rgstore.views.cache import CacheView
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
        corrupt = httpx.get(url)
        # Bad bytes stay bad: a mirror reading through this server is told not to retry them.
        assert corrupt.status_code == 500 and corrupt.headers["x-rgstore-transient"] == "0"
    finally:
        local.write_bytes(original)


def test_a_fifo_planted_in_place_of_an_entry_file_is_refused_without_hanging_the_server(
    served: Server, cached: tuple[Path, list]
) -> None:
    # Opening a FIFO for reading blocks until a writer comes: on the event loop, every request would wait.
    _, rows = cached
    key, local = str(rows[0]["key"]), Path(str(rows[0]["path"]))
    original, mode = local.read_bytes(), local.stat().st_mode
    local.unlink()
    os.mkfifo(local)
    try:
        r = httpx.get(f"{served.url}/cache/entries/{key}/files/annotation/{local.name}", timeout=10)
        health = httpx.get(f"{served.url}/healthz", timeout=10)
    finally:
        os.close(os.open(local, os.O_RDWR | os.O_NONBLOCK))  # releases an open blocked on the old code
        local.unlink()
        local.write_bytes(original)
        local.chmod(mode)
    assert r.status_code == 404 and "not a file" in r.json()["detail"]
    assert health.status_code == 200


def test_an_evicted_entry_shows_its_tombstone(cached: tuple[Path, list], tmp_path: Path) -> None:
    # gc runs on a copy: the module's other tests read the shared store, in whatever order they run.
    store, rows = tmp_path / "store", cached[1]
    shutil.copytree(cached[0], store, ignore=shutil.ignore_patterns("lock.mdb"))
    key = str(rows[1]["key"])
    rgstore_cli(store, "cache", "gc", "--max-age", "0s")
    with running_server(store, log_dir=tmp_path) as server:
        entry = httpx.get(f"{server.url}/cache/entries/{key}").json()
        assert entry["state"] == "evicted" and entry["reason"]
        pinned = httpx.get(f"{server.url}/cache/entries/{rows[0]['key']}").json()
        assert pinned["state"] == "live"


def test_cache_show_json_and_the_entries_route_give_an_entry_and_a_tombstone_the_same_fields(
        cached: tuple[Path, list], tmp_path: Path) -> None:
    # A script moving from `rgstore cache ls/show --json` to /cache/entries (or back) finds every
    # field the other gives, with the same values: size, LRU order, and what an eviction took.
    store, rows = tmp_path / "store", cached[1]
    shutil.copytree(cached[0], store, ignore=shutil.ignore_patterns("lock.mdb"))
    live_key, gone_key = str(rows[0]["key"]), str(rows[1]["key"])  # the first is pinned: gc keeps it
    rgstore_cli(store, "cache", "gc", "--max-age", "0s")
    listed = {e["key"]: e for e in json.loads(rgstore_cli(store, "cache", "ls", "--json"))}
    live = json.loads(rgstore_cli(store, "cache", "show", live_key, "--json"))
    gone = json.loads(rgstore_cli(store, "cache", "show", gone_key, "--json"))
    with running_server(store, log_dir=tmp_path) as server:
        api_live = httpx.get(f"{server.url}/cache/entries/{live_key}").json()
        api_gone = httpx.get(f"{server.url}/cache/entries/{gone_key}").json()
        api_listed = {e["key"]: e for e in httpx.get(f"{server.url}/cache/entries").json()["items"]}
    assert live["state"] == api_live["state"] == "live" and gone["state"] == api_gone["state"] == "evicted"
    assert listed.keys() == api_listed.keys()
    assert {**listed[live_key], "state": "live"} == api_live == api_listed[live_key]
    assert {**live["entry"], "state": "live"} == api_live
    assert {**gone["tombstone"], "state": "evicted"} == api_gone
    assert api_gone["files"] and all(len(f["sha256"]) == 64 for f in api_gone["files"].values())


def _insert(key: str, level: int, path: str) -> NewEvent:
    ref = FileRef(name="a.fna", sha256="0" * 64, md5="0" * 32, size=7)
    return NewEvent(stream=f"cache:{key}", event=CacheInserted(key=key, level=level, path=path, files={"a.fna": ref}))


def _synthetic_keys(n: int) -> list[str]:
    return [hashlib.sha256(f"k{i}".encode()).hexdigest() for i in range(n)]


def _listed(store: Store, level: int | None, offset: int, limit: int) -> bytes:
    """The page as the route listed it before CacheOrder: every entry read, sorted by (level, path)."""
    with store.read() as txn:
        entries = [e for e in CacheView.entries(txn, store.environment) if level is None or e.level == level]
    entries.sort(key=lambda e: (e.level, e.path))
    return json_bytes({"items": [entry_json(e) for e in entries[offset:offset + limit]],
                       "pagination": {"offset": offset, "limit": limit, "total": len(entries)}})


def test_a_page_of_entries_reads_only_its_own_entries_once_the_order_is_kept(store_path: Path) -> None:
    """Each page used to decode and sort every live entry: seconds for a cache of 100k entries."""
    import asyncio

    from rgstore_api.app import create_app

    keys = _synthetic_keys(300)
    with Store.open(store_path) as writer:  # paths not in key order, and equal paths tie-broken by key
        writer.append([_insert(k, 1 + i % 2, f"dir{(i * 7) % 50:03d}") for i, k in enumerate(keys)])
    pages = [(None, 0, 100), (None, 290, 100), (1, 3, 40), (2, 149, 5), (2, 0, 1000), (1, 10**6, 10)]
    app = create_app(str(store_path))

    async def run() -> tuple[list[bytes], CacheOrder]:
        transport = httpx.ASGITransport(app=app)
        async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            bodies = []
            for level, offset, limit in pages:
                params = {"offset": offset, "limit": limit, **({"level": level} if level else {})}
                bodies.append((await c.get("/cache/entries", params=params)).content)
            return bodies, app.state.store.service("api.cache_order", CacheOrder)

    bodies, order = asyncio.run(run())
    assert order.entry_reads == 300  # one narrow pass to sort; the pages read only their own entries
    with Store.open(store_path, readonly=True) as reader:
        assert bodies == [_listed(reader, *page) for page in pages]


def test_the_order_follows_new_events_by_rereading_only_the_keys_they_name(store: Store) -> None:
    keys = _synthetic_keys(200)
    store.append([_insert(k, 1 + i % 2, f"dir{(i * 7) % 50:03d}") for i, k in enumerate(keys)])
    order = CacheOrder(store)
    with store.read() as txn:
        before = order.placement(txn).rows
    assert order.entry_reads == 200
    with store.read() as old:
        store.append([
            *(NewEvent(stream=f"cache:{k}", event=CacheTouched(key=k)) for k in keys[:20]),
            *(NewEvent(stream=f"cache:{k}", event=CacheEvicted(key=k, reason="gc")) for k in keys[20:25]),
            _insert(keys[30], 2, "aaa/moved"),  # a re-insert may change level and path
            _insert("f" * 64, 1, "dir000"),
            NewEvent(stream=f"cache:{keys[40]}", event=CachePinned(key=keys[40])),
        ])
        with store.read() as new:
            rows = order.placement(new).rows
        assert order.entry_reads == 200 + 20 + 3  # the touched, re-inserted, new and pinned keys (evicted: none left)
        assert order.placement(old).rows == before  # an older transaction still sees its own entries
    with store.read() as txn:
        expected = sorted((e.level, e.path, e.key) for e in CacheView.entries(txn, store.environment))
    assert rows == expected and len(rows) == 200 - 5 + 1
    assert (2, "aaa/moved", keys[30]) in rows and not any(r[2] in keys[20:25] for r in rows)


def test_a_request_older_than_the_kept_order_advances_earlier_rows_instead_of_sorting_every_entry(store: Store) -> None:
    """Requests queued on the lock while writes landed each sorted every entry again (p99 0.04 -> 0.7 s)."""
    keys = _synthetic_keys(200)
    store.append([_insert(k, 1 + i % 2, f"dir{(i * 7) % 50:03d}") for i, k in enumerate(keys)])
    order = CacheOrder(store)

    def listed(txn: Txn) -> list[tuple[int, str, str]]:
        return sorted((e.level, e.path, e.key) for e in CacheView.entries(txn, store.environment))

    with store.read() as first:
        order.placement(first)
    store.append([_insert("f" * 64, 1, "dir000")])
    with store.read() as middle:
        store.append([_insert("e" * 64, 2, "dir001"),
                      NewEvent(stream=f"cache:{keys[0]}", event=CacheEvicted(key=keys[0], reason="gc"))])
        with store.read() as newest:
            assert order.placement(newest).rows == listed(newest)
        reads = order.entry_reads
        rows = order.placement(middle).rows  # a request that waited while the newer one moved the order on
        assert order.entry_reads == reads + 1  # only the key its own new event names, not all 201 entries
        assert rows == listed(middle) and (1, "dir000", "f" * 64) in rows and len(rows) == 201
        assert order.placement(middle).rows is rows and order.entry_reads == reads + 1  # kept for its head too

"""Keyset paging (``after`` + ``X-Rgstore-Next-After``) of the offset-paged listings, against a real server
while this process writes to the store between pages: inserts before and after the cursor, removals of the
cursor's own entry and of entries not yet reached."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from rgstore import seqcol
from rgstore.events import (
    AliasRemoved,
    AliasSet,
    CacheEvicted,
    CacheInserted,
    Event,
    FileRef,
    GenomeAdded,
    GenomeRemoved,
    RefpkgCreated,
    RefpkgRemoved,
)
from rgstore.log import NewEvent
from rgstore.pagecursor import encode_cursor
from rgstore.store import Store
from rgstore.views.refpkgs import refpkg_stream
from tests.server_fixture import Server, running_server

STABLE = 24
"""Entries of each kind that exist from before the walk to after it: each must be listed exactly once."""
LIMIT = 4
_REF = FileRef(name="a.fna", sha256="0" * 64, md5="0" * 32, size=7)


def _name(prefix: str, i: int, suffix: str = "") -> str:
    return f"{prefix}{i:03d}0{suffix}"   # "g0090-b1" sorts between stable g0090 and g0100


def _genome(name: str) -> GenomeAdded:
    names, lengths, sequences = [name], [4], ["SQ." + seqcol.sha512t24u(b"ACGT")]
    return GenomeAdded(digest=name, names=names, lengths=lengths, sequences=sequences,
                       level1=seqcol.level1(names, lengths, sequences), description=name)


def _cache_key(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


@dataclass(frozen=True)
class Listing:
    """One keyset-pageable route: how to add and remove the entry named ``name``, and the key of a listed item."""

    path: str
    add: Callable[[str, Any], list[NewEvent]]
    remove: Callable[[str], list[NewEvent]]
    key: Callable[[Any], str]
    prefix: str
    """Of this listing's own names: genomes and seqcol list the same genomes, each walk changes only its own."""
    items: str = "items"
    start: str = "offset"


def _ev(stream: str, event: Event) -> list[NewEvent]:
    return [NewEvent(stream=stream, event=event)]


LISTINGS = {
    "aliases": Listing(
        "/v4/aliases", lambda n, refs: _ev(f"alias:ncbi/{n}", AliasSet(namespace="ncbi", name=n, digest="a" * 32)),
        lambda n: _ev(f"alias:ncbi/{n}", AliasRemoved(namespace="ncbi", name=n)), lambda item: item["name"][5:], "a"),
    "genomes": Listing("/v4/genomes", lambda n, refs: _ev(f"genome:{n}", _genome(n)),
                       lambda n: _ev(f"genome:{n}", GenomeRemoved(digest=n)), lambda item: item["digest"], "g"),
    "seqcol": Listing("/seqcol/list/collection", lambda n, refs: _ev(f"genome:{n}", _genome(n)),
                      lambda n: _ev(f"genome:{n}", GenomeRemoved(digest=n)), lambda item: item, "s",
                      items="results", start="page"),
    "cache": Listing(
        "/cache/entries", lambda n, refs: _ev(f"cache:{_cache_key(n)}", CacheInserted(
            key=_cache_key(n), level=1, path=n, files={"a.fna": _REF})),
        lambda n: _ev(f"cache:{_cache_key(n)}", CacheEvicted(key=_cache_key(n), reason="test")),
        lambda item: item["path"], "c"),
    "refpkgs": Listing(
        "/refpkgs", lambda n, ref: _ev(refpkg_stream(n), RefpkgCreated(name=n, files={"tree": ref}, log=["made"])),
        lambda n: _ev(refpkg_stream(n), RefpkgRemoved(name=n)), lambda item: item["name"], "r"),
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Server]]:
    path = tmp_path_factory.mktemp("keyset") / "store"
    with Store.open(path) as store:
        info, _ = store.blobs.put_bytes(b"(a:1,b:2);\n")
        ref = FileRef(name="tree.nwk", sha256=info.sha256, md5=info.md5, size=info.size)
        store.append([e for listing in LISTINGS.values() for i in range(STABLE)
                      for e in listing.add(_name(listing.prefix, i), ref)])
    with running_server(path) as server:
        yield path, server


def _walk(path: Path, server: Server, listing: Listing) -> tuple[list[str], set[str]]:
    """Page ``listing`` to its end with ``after``, changing the store between pages; (keys listed, own keys ever there)."""
    listed: list[str] = []
    ever = {_name(listing.prefix, i) for i in range(STABLE)}
    size = "limit" if listing.start == "offset" else "page_size"
    token: str | None = None
    with Store.open(path) as store:
        info, _ = store.blobs.put_bytes(b"(a:1,b:2);\n")
        ref = FileRef(name="tree.nwk", sha256=info.sha256, md5=info.md5, size=info.size)
        for page in range(10 * STABLE):
            # The first page by offset: its header is how a client switches to keyset paging.
            params: dict[str, Any] = {size: LIMIT, **({"after": token} if token else {listing.start: 0})}
            answer = httpx.get(f"{server.url}{listing.path}", params=params)
            assert answer.status_code == 200, answer.text
            keys = [listing.key(item) for item in answer.json()[listing.items]]
            listed += keys
            token = answer.headers.get("x-rgstore-next-after")
            if token is None:
                break
            cursor = keys[-1]
            j = int(cursor[1:4])
            # Inserted before the cursor and after it; the cursor's own entry removed (keyset seeks past
            # its key, it does not look it up); now and then an entry not listed yet removed before it is.
            before, after = _name(listing.prefix, j - 1, f"-b{page}"), _name(listing.prefix, j + 1, f"-a{page}")
            ever |= {before, after}
            events = listing.add(before, ref) + listing.add(after, ref)
            if cursor.startswith(listing.prefix):
                events += listing.remove(cursor)
            if page % 2:
                events += listing.remove(after)
            store.append(events)
    assert token is None, "the walk did not end"
    return listed, ever


@pytest.mark.parametrize("route", sorted(LISTINGS))
def test_paging_with_after_while_the_store_changes_lists_each_lasting_entry_once_in_order(
    served: tuple[Path, Server], route: str,
) -> None:
    path, server = served
    listing = LISTINGS[route]
    listed, ever = _walk(path, server, listing)
    assert listed == sorted(set(listed)), "an entry came twice or out of order"
    own = {key for key in listed if key.startswith(listing.prefix)}
    assert {_name(listing.prefix, i) for i in range(STABLE)} <= own <= ever


def test_the_distinct_attribute_listing_pages_by_digest_while_genomes_come_and_go(
    served: tuple[Path, Server],
) -> None:
    path, server = served
    genomes = httpx.get(f"{server.url}/seqcol/list/collection", params={"page_size": 10_000}).json()["results"]
    lasting = {_genome(digest).level1["names"] for digest in genomes}
    listed: list[str] = []
    token: str | None = None
    with Store.open(path) as store:
        for page in range(100):
            params: dict[str, Any] = {"page_size": 3, **({"after": token} if token else {})}
            answer = httpx.get(f"{server.url}/seqcol/list/attributes/names", params=params)
            listed += answer.json()["results"]
            token = answer.headers.get("x-rgstore-next-after")
            if token is None:
                break
            # A genome (so a names digest, before or after the cursor by chance) comes, the one before goes.
            events = _ev(f"genome:x{page}", _genome(f"x{page}"))
            if page:
                events += _ev(f"genome:x{page - 1}", GenomeRemoved(digest=f"x{page - 1}"))
            store.append(events)
    assert token is None
    assert listed == sorted(set(listed)) and lasting <= set(listed)


def test_the_next_cursor_is_on_every_page_but_the_last_and_offset_bodies_are_unchanged(
    served: tuple[Path, Server],
) -> None:
    _, server = served
    full = httpx.get(f"{server.url}/refpkgs", params={"limit": 1000})
    assert "x-rgstore-next-after" not in full.headers
    names = [item["name"] for item in full.json()["items"]]
    first = httpx.get(f"{server.url}/refpkgs", params={"limit": 2})
    assert first.json()["items"] == full.json()["items"][:2]
    assert first.json()["pagination"] == {"offset": 0, "limit": 2, "total": len(names)}
    tail = httpx.get(f"{server.url}/refpkgs", params={"offset": len(names) - 2, "limit": 2})
    assert "x-rgstore-next-after" not in tail.headers
    # A cursor beyond every entry is an empty last page, not an error.
    past_end = httpx.get(f"{server.url}/refpkgs", params={"after": encode_cursor(b"zzz")})
    assert past_end.status_code == 200 and past_end.json()["items"] == []
    assert "x-rgstore-next-after" not in past_end.headers


@pytest.mark.parametrize(("path", "params"), [
    ("/v4/aliases", {"offset": 0, "after": encode_cursor(b"ncbi\x00k")}),
    ("/v4/genomes", {"offset": 3, "after": encode_cursor(b"k")}),
    ("/seqcol/list/collection", {"page": 0, "after": encode_cursor(b"k")}),
    ("/seqcol/list/attributes/names", {"page": 1, "after": encode_cursor(b"k")}),
    ("/cache/entries", {"offset": 0, "after": encode_cursor(b"k")}),
    ("/refpkgs", {"offset": 0, "after": encode_cursor(b"k")}),
    ("/v4/aliases", {"after": encode_cursor(b"no separator")}),
    ("/v4/genomes", {"after": "not!base64"}),
    ("/v4/genomes", {"after": "A"}),
    ("/v4/genomes", {"after": encode_cursor(b"\xff\xfe")}),
    ("/seqcol/list/collection", {"after": ""}),
    ("/cache/entries", {"after": encode_cursor(b"k")}),
    ("/refpkgs", {"after": "a" * 5000}),
])
def test_after_with_offset_or_page_and_malformed_cursors_are_one_line_422s(
    served: tuple[Path, Server], path: str, params: dict[str, Any],
) -> None:
    answer = httpx.get(f"{served[1].url}{path}", params=params)
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and "after" in detail


def test_refpkg_pages_after_any_name_seek_past_long_removed_runs_to_the_next_existing_package(tmp_path: Path) -> None:
    """The engine's seek: from every name (existing, removed, inside a long removed run, absent) the next ones."""
    with Store.open(tmp_path / "store") as store:
        info, _ = store.blobs.put_bytes(b"(a:1,b:2);\n")
        ref = FileRef(name="tree.nwk", sha256=info.sha256, md5=info.md5, size=info.size)
        names = [f"p{i:04d}" for i in range(300)]
        store.transact(lambda txn: [NewEvent(stream=refpkg_stream(n), event=RefpkgCreated(name=n, files={"tree": ref}))
                                    for n in names])
        # Runs of 40 removed (past SKIP_RUN) between blocks of 20, every 5th of a block removed too, the tail removed.
        removed = {n for i, n in enumerate(names) if i % 60 >= 20 or i % 5 == 4 or i >= 260}
        store.transact(lambda txn: [NewEvent(stream=refpkg_stream(n), event=RefpkgRemoved(name=n))
                                    for n in sorted(removed)])
        existing = [n for n in names if n not in removed]
        probes = [*names, "", "p", "p0025x", "p9999", "q"]
        with store.read() as txn:
            for after in probes:
                total, page = store.refpkgs.page(txn, 0, 7, after=after)
                assert total == len(existing)
                assert [n for n, _ in page] == [n for n in existing if n > after][:7], after

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
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
    RefpkgUpdated,
)
from rgstore.log import NewEvent
from rgstore.pagecursor import (
    MAX_CURSOR_CHARS,
    BadCursorError,
    decode_cursor,
    decode_pair,
    decode_row,
    decode_text,
    encode_cursor,
    encode_pair,
    encode_row,
    encode_text,
)
from rgstore.store import Store
from rgstore.views.aliases import COLLECTION, AliasCounts
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


# -- adversarial cursors, filters and boundaries (a second, read-only store served under --root-path) ---------

_NAMESPACES = ("refgenie", "n", "ncbi", "ncbi2", "ucsc")
_DIGESTS = ("a" * 32, "b" * 32)


def _any_key(route: str, token: str) -> Any:
    """The sort key ``route`` decodes ``token`` to; BadCursorError if it decodes none."""
    if route == "/v4/aliases":
        return decode_pair(token)
    if route == "/cache/entries":
        return decode_row(token, tuple[int, str, str])
    if route == HISTORY:
        return decode_row(token, tuple[int, int])  # (fold, last seq): the order depends on the fold
    return decode_text(token)


HISTORY = "/refpkgs/r0/history"
"""A package's history in the fixed store: current and done steps only, so ``_above`` can order it for any fold."""


def _above(route: str, full: list[Any], key: Any) -> list[Any]:
    """The items of ``route``'s full listing a cursor decoded to ``key`` pages after, in that page's order."""
    if route == HISTORY:
        fold, last = key

        def order(seq: int) -> tuple[int, int]:  # at or below the fold newest first, above it oldest first
            return (0, -seq) if seq <= fold else (1, seq)
        return sorted((item for item in full if order(item["seq"]) > order(last)), key=lambda item: order(item["seq"]))
    return [item for item in full if KEYED[route].key(item) > key]


@dataclass(frozen=True)
class Keyed:
    """One listing of the read-only store: its page-size parameter, items field and each item's sort key."""

    size: str
    items: str
    key: Callable[[Any], Any]
    encode: Callable[[Any], str]


KEYED = {
    "/v4/aliases": Keyed("limit", "items", lambda item: (item["namespace"], item["name"].rpartition(":")[2]),
                         lambda key: encode_pair(*key)),
    "/v4/genomes": Keyed("limit", "items", lambda item: item["digest"], encode_text),
    "/seqcol/list/collection": Keyed("page_size", "results", lambda item: item, encode_text),
    "/seqcol/list/attributes/names": Keyed("page_size", "results", lambda item: item, encode_text),
    "/cache/entries": Keyed("limit", "items", lambda item: (item["level"], item["path"], item["key"]), encode_row),
    "/refpkgs": Keyed("limit", "items", lambda item: item["name"], encode_text),
    HISTORY: Keyed("limit", "steps", lambda item: item["seq"], encode_row),
}


@pytest.fixture(scope="module")
def fixed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server (behind ``--root-path /rg``) over a store nothing writes to: aliases in several namespaces
    (``n`` < ``ncbi`` < ``ncbi2`` as prefixes of each other), two targets, cache entries on both levels."""
    path = tmp_path_factory.mktemp("keyset-fixed") / "store"
    with Store.open(path) as store:
        info, _ = store.blobs.put_bytes(b"(a:1,b:2);\n")
        ref = FileRef(name="tree.nwk", sha256=info.sha256, md5=info.md5, size=info.size)
        events: list[NewEvent] = []
        for i in range(5):
            events += _ev(f"genome:g{i}", _genome(f"g{i}")) + LISTINGS["refpkgs"].add(f"r{i}", ref)
            for level in (1, 2):
                name = f"c{i}-{level}"
                events += _ev(f"cache:{_cache_key(name)}", CacheInserted(
                    key=_cache_key(name), level=level, path=f"p{4 - i}", files={"a.fna": _REF}))
        for j, ns in enumerate(_NAMESPACES):
            for k, alias in enumerate(("x", "x.1", "y", "Z", "_a")):
                events += _ev(f"alias:{ns}/{alias}", AliasSet(namespace=ns, name=alias, digest=_DIGESTS[(j + k) % 2]))
        for j in range(4):  # HISTORY: five steps
            events += _ev(refpkg_stream("r0"), RefpkgUpdated(name="r0", metadata={"k": str(j)},
                                                               message=f"Updated metadata: k={j}"))
        store.append(events)
    with running_server(path, extra_args=["--root-path", "/rg"]) as server:
        yield server


def _full(server: Server, route: str, params: dict[str, Any] | None = None) -> list[Any]:
    keyed = KEYED[route]
    answer = httpx.get(f"{server.url}{route}", params={**(params or {}), keyed.size: 1000})
    assert answer.status_code == 200 and "x-rgstore-next-after" not in answer.headers, answer.text
    items: list[Any] = answer.json()[keyed.items]
    return items


def _page_after(server: Server, route: str, token: str, limit: int, params: dict[str, Any] | None = None,
                ) -> httpx.Response:
    return httpx.get(f"{server.url}{route}", params={**(params or {}), KEYED[route].size: limit, "after": token})


def _is_one_line_422(answer: httpx.Response) -> bool:
    detail = answer.json().get("detail")
    return answer.status_code == 422 and isinstance(detail, str) and "\n" not in detail


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.binary().map(encode_cursor)))
def test_cursor_decoders_return_a_key_or_raise_a_one_line_bad_cursor_error_for_any_token(token: str) -> None:
    for decode in (decode_cursor, decode_text, decode_pair, lambda t: decode_row(t, tuple[int, str, str])):
        try:
            decode(token)
        except BadCursorError as exc:
            assert "\n" not in str(exc) and str(exc).startswith("after: ")


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1))
def test_every_non_empty_key_survives_its_token_and_no_other_spelling_decodes(key: bytes) -> None:
    token = encode_cursor(key)
    assert decode_cursor(token) == key
    for other in (token + "=", token + "A", token[:-1] + ("B" if token[-1] == "A" else "A")):
        try:
            assert decode_cursor(other) != key
        except BadCursorError:
            pass


def test_a_cursor_over_the_length_bound_is_refused_before_it_is_decoded() -> None:
    # 4100 "A"s are valid base64 (of NUL bytes): only the length bound refuses them.
    with pytest.raises(BadCursorError):
        decode_cursor("A" * (MAX_CURSOR_CHARS + 4))
    assert decode_cursor("A" * MAX_CURSOR_CHARS) == b"\x00" * (MAX_CURSOR_CHARS * 3 // 4)


@pytest.mark.parametrize(("route", "params"), [
    ("/v4/aliases", {}),
    ("/v4/aliases", {"namespace": "ncbi"}),
    ("/v4/aliases", {"namespace": "n"}),
    ("/v4/aliases", {"namespace": "refgenie"}),
    ("/v4/aliases", {"genome_digest": "a" * 32}),
    ("/v4/aliases", {"genome_digest": "b" * 32, "namespace": "ncbi2"}),
    ("/v4/aliases", {"name": "ucsc:y"}),
    ("/v4/genomes", {}),
    ("/v4/genomes", {"q": "g"}),
    ("/v4/genomes", {"digest": "g3"}),
    ("/seqcol/list/collection", {}),
    ("/seqcol/list/attributes/names", {}),
    ("/cache/entries", {}),
    ("/cache/entries", {"level": 2}),
    ("/refpkgs", {}),
    (HISTORY, {}),
])
def test_walks_of_limit_1_and_2_with_a_filter_list_exactly_what_one_full_page_lists(
    fixed: Server, route: str, params: dict[str, Any],
) -> None:
    full = _full(fixed, route, params)
    assert full or params, "the fixture store lists nothing here"
    for limit in (1, 2):
        listed: list[Any] = []
        answer = httpx.get(f"{fixed.url}{route}", params={**params, KEYED[route].size: limit})
        for _ in range(len(full) + 1):
            assert answer.status_code == 200, answer.text
            listed += answer.json()[KEYED[route].items]
            token = answer.headers.get("x-rgstore-next-after")
            if token is None:
                break
            answer = _page_after(fixed, route, token, limit, params)
        assert listed == full, (limit, params)


@pytest.mark.parametrize("route", sorted(set(KEYED) - {HISTORY}))  # its (fold, seq) cursors: test_api_refpkgs
def test_a_cursor_at_before_between_and_past_the_keys_starts_at_the_first_key_above_it(
    fixed: Server, route: str,
) -> None:
    keyed = KEYED[route]
    full = _full(fixed, route)
    keys = [keyed.key(item) for item in full]
    assert keys == sorted(keys)
    first, last = keys[0], keys[-1]
    if isinstance(first, tuple) and isinstance(first[0], int):
        probes = [*keys, (first[0], "", ""), (-1, "", ""), (last[0], last[1], last[2] + "~"), (last[0] + 1, "", "")]
    elif isinstance(first, tuple):
        probes = [*keys, ("", ""), ("n", ""), ("ncbi", "\U0010ffff"), ("ncbi:x", "y"), ("zzz", "")]
    else:
        probes = [*keys, "\x00", first[:-1], first + "\x00", last + "\U0010ffff", "\x7f"]
    for probe in probes:
        answer = _page_after(fixed, route, keyed.encode(probe), 3)
        assert answer.status_code == 200, (probe, answer.text)
        above = [item for item, key in zip(full, keys) if key > probe]
        assert answer.json()[keyed.items] == above[:3], probe
        token = answer.headers.get("x-rgstore-next-after")
        assert (token is not None) == (len(above) > 3), probe
        if token is not None:
            assert _any_key(route, token) == keyed.key(above[2])


@pytest.mark.parametrize("source", sorted(KEYED))
def test_a_cursor_handed_out_by_one_listing_is_a_well_defined_seek_or_a_one_line_422_on_every_other(
    fixed: Server, source: str,
) -> None:
    token = httpx.get(f"{fixed.url}{source}", params={KEYED[source].size: 1}).headers["x-rgstore-next-after"]
    for route, keyed in KEYED.items():
        answer = _page_after(fixed, route, token, 2)
        try:
            key = _any_key(route, token)
        except BadCursorError:
            assert _is_one_line_422(answer), (source, route, answer.text)
            continue
        assert answer.status_code == 200, (source, route, answer.text)
        full = _full(fixed, route)
        try:
            expected = _above(route, full, key)[:2]
        except TypeError:  # a row's cursor decodes as no key of another shape; shapes never compare
            pytest.fail(f"{source} cursor decoded as {key!r} on {route}")
        assert answer.json()[keyed.items] == expected, (source, route)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(token=st.one_of(
    st.text(max_size=60),
    st.binary(max_size=48).map(encode_cursor),
    st.tuples(st.text(max_size=8), st.text(max_size=8)).map(
        lambda p: encode_cursor(p[0].encode("utf-8", "surrogatepass") + b"\x00" + p[1].encode("utf-8", "surrogatepass"))),
    st.tuples(st.integers(-(2**63), 2**64 - 1), st.text(max_size=8), st.text(max_size=8)).map(
        lambda row: encode_cursor(msgspec.msgpack.encode(row))),
    st.tuples(st.integers(-(2**63), 2**64 - 1), st.integers(-(2**63), 2**64 - 1)).map(  # HISTORY's shape
        lambda row: encode_cursor(msgspec.msgpack.encode(row))),
))
def test_any_after_is_the_page_above_its_key_or_a_one_line_422_never_a_500(
    fixed: Server, full_listings: dict[str, list[Any]], token: str,
) -> None:
    with httpx.Client(base_url=fixed.url) as client:
        for route, keyed in KEYED.items():
            answer = client.get(route, params={keyed.size: 2, "after": token})
            try:
                key = _any_key(route, token)
            except BadCursorError:
                assert _is_one_line_422(answer), (route, token, answer.text)
                continue
            assert answer.status_code == 200, (route, token, answer.text)
            assert answer.json()[keyed.items] == _above(route, full_listings[route], key)[:2]


@pytest.fixture(scope="module")
def full_listings(fixed: Server) -> dict[str, list[Any]]:
    return {route: _full(fixed, route) for route in KEYED}


@pytest.mark.parametrize("route", sorted(KEYED))
def test_head_answers_carry_the_same_next_cursor_as_get_and_no_validator_makes_a_304(
    fixed: Server, route: str,
) -> None:
    keyed = KEYED[route]
    first = httpx.get(f"{fixed.url}{route}", params={keyed.size: 1})
    token = first.headers["x-rgstore-next-after"]
    cases: list[dict[str, Any]] = [{keyed.size: 1}, {keyed.size: 1, "after": token}, {keyed.size: 1000}]
    for params in cases:
        get = httpx.get(f"{fixed.url}{route}", params=params)
        head = httpx.head(f"{fixed.url}{route}", params=params)
        assert (head.status_code, head.content) == (200, b"")
        assert head.headers.get("x-rgstore-next-after") == get.headers.get("x-rgstore-next-after"), params
        assert "etag" not in get.headers and "last-modified" not in get.headers
        revalidated = httpx.get(f"{fixed.url}{route}", params=params, headers={"If-None-Match": "*"})
        assert revalidated.status_code == 200
        assert revalidated.headers.get("x-rgstore-next-after") == get.headers.get("x-rgstore-next-after")


def test_a_namespace_total_is_walked_once_per_commit_and_stays_exact_for_every_snapshot(tmp_path: Path) -> None:
    """Each page of ``/v4/aliases?namespace=`` counts the namespace: once per snapshot, not once per page."""
    def aliases(namespace: str, names: range) -> list[NewEvent]:
        return [e for i in names for e in _ev(f"alias:{namespace}/a{i:04d}",
                                              AliasSet(namespace=namespace, name=f"a{i:04d}", digest="a" * 32))]

    big = AliasCounts.MEMO_FROM + 44
    with Store.open(tmp_path / "store") as store:
        store.append(aliases("ncbi", range(big)) + aliases("ucsc", range(3)))
        counts = AliasCounts(store.environment)
        with store.read() as old:
            for _ in range(3):
                assert counts.count(old, COLLECTION, "ncbi") == big
            assert counts.keys_walked == big
            for _ in range(2):
                assert counts.count(old, COLLECTION, "ucsc") == 3  # too small to keep: walked each time
            assert counts.count(old, COLLECTION, "nope") == 0
            assert counts.keys_walked == big + 6
            store.append(aliases("ncbi", range(big, big + 1)))
            with store.read() as new:
                assert counts.count(new, COLLECTION, "ncbi") == big + 1
                assert counts.count(new, COLLECTION, "ncbi") == big + 1
                assert counts.count(new, COLLECTION) == big + 4
            assert counts.count(old, COLLECTION, "ncbi") == big  # an older snapshot still counts its own
        assert counts.keys_walked == 3 * big + 7

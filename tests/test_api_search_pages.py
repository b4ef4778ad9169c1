"""``/v4/genomes?q=`` and ``/seqcol/list/attributes`` over many genomes answer exactly what a per-request
scan and sort does: same items, totals and cursors, page by page, on a real server."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from rgstore_api.catalog import GenomeCatalog
from rgstore_api.genomesearch import GenomeSearch
from rgstore_api.refgenie import flat_name

from rgstore import seqcol
from rgstore.events import AliasRemoved, AliasSet, GenomeAdded, GenomeRemoved
from rgstore.log import NewEvent
from rgstore.pagecursor import encode_text
from rgstore.store import Store
from rgstore.views.aliases import COLLECTION, DEFAULT_NAMESPACE, alias_stream, collection_aliases_of
from rgstore.views.genomes import all_genomes
from tests.server_fixture import Server, running_server

N = 300
LIMIT = 37
NEEDLES = ["genome", "MUS", "g1", "ucsc:", "σ", "ς", "Σ", "0\x001", "zz-none", "ä", "-7", "homo sapiens x"]
ODD_DIGESTS = ["ÄΣ-genome", "ünïcode"]
"""Digests the alias view's keys cannot be split by on their own (non-ASCII): searched one by one."""


def _genome(digest: str, i: int) -> GenomeAdded:
    names, lengths = [f"chr{i % 11}", f"c{i}"], [4 + i % 5, 8]
    sequences = ["SQ." + seqcol.sha512t24u(b"ACGT")] * 2
    return GenomeAdded(digest=digest, names=names, lengths=lengths, sequences=sequences,
                       level1=seqcol.level1(names, lengths, sequences), description=f"Genome {i} ΑΣ" * (i % 2),
                       species=["Homo sapiens", "Mus musculus", "", "ΟΔΥΣΣΕΥΣ"][i % 4])


def _alias(namespace: str, name: str, digest: str | None) -> NewEvent:
    event = (AliasSet(namespace=namespace, name=name, digest=digest) if digest is not None
             else AliasRemoved(namespace=namespace, name=name))
    return NewEvent(stream=alias_stream(COLLECTION, namespace, name), event=event)


def _fill(store: Store) -> None:
    rng = random.Random(13)
    digests = [seqcol.sha512t24u(str(i)) for i in range(N)] + ODD_DIGESTS
    events: list[NewEvent] = []
    for i, digest in enumerate(digests):
        events.append(NewEvent(stream=f"genome:{digest}", event=_genome(digest, i)))
        for _ in range(rng.randint(0, 2)):
            namespace = rng.choice([DEFAULT_NAMESPACE, "ucsc", "ΣNS"])
            events.append(_alias(namespace, f"g{rng.randint(0, 999)}{rng.choice(['', 'Σ', '-7'])}", digest))
    store.append(events)
    # Removals and re-points, so the reverse index holds keys of aliases that moved.
    store.append([_alias(DEFAULT_NAMESPACE, "g1", digests[5]), _alias("ucsc", "g2", None),
                  NewEvent(stream=f"genome:{digests[7]}", event=GenomeRemoved(digest=digests[7]))])


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("search") / "store"
    with Store.open(path, actor="test@host") as store:
        _fill(store)
    return path


@pytest.fixture(scope="module")
def served(store_path: Path) -> Iterator[Server]:
    with running_server(store_path) as server:
        yield server


def _reference_matches(store_path: Path, q: str) -> list[str]:
    """The straightforward answer: every genome, its aliases read one by one, every field lower-cased."""
    with Store.open(store_path, actor="test@host") as store:
        return _reference_in(store, q)


def _reference_in(store: Store, q: str) -> list[str]:
    with store.read() as txn:
        env = store.environment
        needle = q.lower()
        return [g.digest for g in all_genomes(txn, env) if any(needle in field.lower() for field in (
            g.digest, g.description, g.species,
            *(flat_name(ns, name) for ns, name in collection_aliases_of(txn, env, g.digest))))]


def _walk(served: Server, path: str, params: dict[str, str | int]) -> Iterator[httpx.Response]:
    after = None
    with httpx.Client(base_url=served.url, timeout=30) as client:
        while True:
            answer = client.get(path, params={**params, **({"after": after} if after else {})})
            assert answer.status_code == 200, answer.text
            yield answer
            after = answer.headers.get("X-Rgstore-Next-After")
            if after is None:
                return


@pytest.mark.parametrize("q", NEEDLES)
def test_a_genome_search_walked_by_cursor_lists_exactly_the_reference_matches_in_digest_order(
    served: Server, store_path: Path, q: str
) -> None:
    expected = _reference_matches(store_path, q)
    seen: list[str] = []
    for answer in _walk(served, "/v4/genomes", {"q": q, "limit": LIMIT}):
        body = answer.json()
        page = [item["digest"] for item in body["items"]]
        assert page == expected[len(seen):len(seen) + LIMIT]
        assert body["pagination"]["total"] == len(expected)
        seen += page
        cursor = answer.headers.get("X-Rgstore-Next-After")
        assert cursor == (encode_text(page[-1]) if len(seen) < len(expected) else None)
    assert seen == expected
    if q in ("genome", "σ", "g1"):
        assert expected  # the search found something to page through


@pytest.mark.parametrize("attribute", ["names", "lengths", "name_length_pairs", "sorted_name_length_pairs"])
def test_attribute_listings_walked_by_cursor_are_the_sorted_distinct_digests(
    served: Server, store_path: Path, attribute: str
) -> None:
    with Store.open(store_path, actor="test@host") as store, store.read() as txn:
        expected = sorted({g.level1[attribute] for g in all_genomes(txn, store.environment)})
    seen: list[str] = []
    for answer in _walk(served, f"/seqcol/list/attributes/{attribute}", {"page_size": LIMIT}):
        body = answer.json()
        assert body["pagination"]["total"] == len(expected)
        seen += body["results"]
        cursor = answer.headers.get("X-Rgstore-Next-After")
        assert cursor == (encode_text(seen[-1]) if len(seen) < len(expected) else None)
    assert seen == expected and len(expected) > 1


def test_a_search_reads_aliases_one_genome_at_a_time_only_for_digests_its_index_walk_cannot_split(
    store_path: Path,
) -> None:
    with Store.open(store_path, actor="test@host") as store, store.read() as txn:
        summaries = GenomeCatalog(store).summaries(txn, GenomeCatalog(store).snapshot(txn).digests)
        asked: list[str] = []

        def one_by_one(digest: str) -> list[str]:
            asked.append(digest)
            return [flat_name(ns, name) for ns, name in collection_aliases_of(txn, store.environment, digest)]

        search = GenomeSearch(store)
        assert search.matching(txn, summaries, "zz-none", flat_name, one_by_one) == []
        assert sorted(asked) == sorted(ODD_DIGESTS)  # of N + 2 genomes, only these two
        asked.clear()
        assert search.matching(txn, summaries, "g1", flat_name, one_by_one) == _reference_in(store, "g1")
        assert set(asked) <= set(ODD_DIGESTS)

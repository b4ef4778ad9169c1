"""The server's genome catalog: updates apply only the new genome events, and always equal a full rebuild."""

from __future__ import annotations

import hashlib
import random
from typing import Any

import pytest
from rgstore_api.catalog import REBUILD_GAP, CatalogSnapshot, GenomeCatalog

from rgstore import seqcol
from rgstore.events import AliasRemoved, AliasSet, FhrSet, GenomeAdded, GenomeRemoved
from rgstore.log import NewEvent
from rgstore.store import Store

_POOL = [bytes(random.Random(i).choices(b"ACGT", k=8 + i % 5)) for i in range(10)]
"""Small sequences the synthetic genomes draw from, so genomes share sequences (and MD5s)."""


def _genome(rng: random.Random, *, drop_md5s: bool = False, wrong_md5: bool = False) -> GenomeAdded:
    picks = [rng.choice(_POOL[1:] if wrong_md5 else _POOL) for _ in range(rng.randint(1, 5))]  # may repeat
    names = [f"chr{i}" for i in range(len(picks))]
    lengths = [len(p) for p in picks]
    sequences = ["SQ." + seqcol.sha512t24u(p) for p in picks]
    md5s = [hashlib.md5(p).hexdigest().upper() if rng.random() < 0.2 else hashlib.md5(p).hexdigest() for p in picks]
    if wrong_md5:
        md5s[0] = hashlib.md5(_POOL[0]).hexdigest()  # the MD5 of another sequence
    if drop_md5s:
        md5s = md5s[: rng.randint(0, len(md5s))]  # events written before MD5s were recorded
    level1 = seqcol.level1(names, lengths, sequences)
    return GenomeAdded(digest=seqcol.top_level_digest(level1), names=names, lengths=lengths, sequences=sequences,
                       level1=level1, md5s=md5s, description=f"genome {rng.random():.3f}", species="synthetic",
                       circular=rng.sample(names, rng.randint(0, min(2, len(names)))))


def _added(event: GenomeAdded) -> NewEvent:
    return NewEvent(stream=f"genome:{event.digest}", event=event)


def _fresh(store: Store) -> CatalogSnapshot:
    with store.read() as txn:
        return GenomeCatalog(store).snapshot(txn)


def _data(snap: CatalogSnapshot) -> dict[str, Any]:
    """Everything a snapshot answers with, as plain values."""
    return {"head": snap.head, "digests": list(snap.digests), "known": set(snap.known),
            "by_attribute": snap.by_attribute, "attribute_values": snap.attribute_values, "md5": dict(snap.md5), "circular": set(snap.circular),
            "sizes": (len(snap.md5), len(snap.circular), len(snap.md5_shared), len(snap.circular_shared)),
            "summaries": dict(snap.summaries), "added": dict(snap.added), "md5_shared": dict(snap.md5_shared),
            "circular_shared": dict(snap.circular_shared), "clash": snap.clash}


def _random_step(rng: random.Random, held: dict[str, GenomeAdded]) -> list[NewEvent]:
    """One command's worth of genome init/remove/re-add, alias and FHR events."""
    batch: list[NewEvent] = []
    for _ in range(rng.randint(1, 3)):
        roll = rng.random()
        if roll < 0.4 or not held:
            event = _genome(rng, drop_md5s=rng.random() < 0.15)
            held[event.digest] = event
            batch.append(_added(event))
        elif roll < 0.6:
            digest = rng.choice(sorted(held))
            del held[digest]
            batch.append(NewEvent(stream=f"genome:{digest}", event=GenomeRemoved(digest=digest)))
        elif roll < 0.7:  # the same digest again with other contents (a forged upstream): it replaces the record
            digest = rng.choice(sorted(held))
            event = _genome(rng)
            event = GenomeAdded(**{**{f: getattr(event, f) for f in event.__struct_fields__}, "digest": digest})
            held[digest] = event
            batch.append(_added(event))
        elif roll < 0.85:
            name = f"g{rng.randint(0, 3)}"
            if rng.random() < 0.7:
                batch.append(NewEvent(stream=f"alias:refgenie/{name}",
                                      event=AliasSet(namespace="refgenie", name=name, digest=rng.choice(sorted(held)))))
            else:
                batch.append(NewEvent(stream=f"alias:refgenie/{name}", event=AliasRemoved(namespace="refgenie", name=name)))
        else:
            digest = rng.choice(sorted(held))
            batch.append(NewEvent(stream=f"genome:{digest}", event=FhrSet(digest=digest, fhr={"schema": str(rng.random())})))
    return batch


@pytest.mark.parametrize("seed", range(4))
def test_random_genome_add_remove_alias_steps_update_the_catalog_exactly_as_a_full_rebuild(
    store: Store, seed: int
) -> None:
    rng = random.Random(seed)
    catalog = GenomeCatalog(store)
    held: dict[str, GenomeAdded] = {}
    kept: list[tuple[CatalogSnapshot, dict[str, Any]]] = []
    for _ in range(40):
        for _ in range(rng.randint(1, 2)):  # sometimes two commands land between requests
            batch = _random_step(rng, held)
            # An alias may name a genome removed earlier in the same batch; only genome events matter here.
            store.append(batch)
        with store.read() as txn:
            snap = catalog.snapshot(txn)
        assert _data(snap) == _data(_fresh(store))
        assert set(snap.digests) == set(held)
        assert snap.attribute_values == {attr: sorted(values) for attr, values in snap.by_attribute.items()}
        if rng.random() < 0.3:
            kept.append((snap, _data(snap)))
    assert catalog.builds == 1 and catalog.updates > 20
    # Snapshots that requests of older transactions still hold were never edited by later updates.
    assert all(_data(snap) == data for snap, data in kept)


def test_an_update_decodes_only_the_genomes_the_new_events_name(store: Store) -> None:
    rng = random.Random(7)
    genomes = [_genome(rng) for _ in range(8)]
    store.append([_added(g) for g in genomes])
    catalog = GenomeCatalog(store)

    def refresh() -> tuple[CatalogSnapshot, int]:
        before = catalog.records_decoded
        with store.read() as txn:
            return catalog.snapshot(txn), catalog.records_decoded - before

    first, decoded = refresh()
    assert decoded == len({g.digest for g in genomes}) and catalog.builds == 1
    extra = _genome(random.Random(99))
    store.append([_added(extra)])
    assert refresh()[1] == 1  # the new record
    store.append([NewEvent(stream=f"genome:{extra.digest}", event=GenomeRemoved(digest=extra.digest))])
    assert refresh()[1] == 1  # the removed genome's GenomeAdded, read from the log
    more = [_genome(random.Random(100 + i)) for i in range(2)]
    gone = genomes[0].digest
    store.append([*map(_added, more), NewEvent(stream=f"genome:{gone}", event=GenomeRemoved(digest=gone))])
    snap, decoded = refresh()
    assert decoded == 3
    store.append([NewEvent(stream="alias:refgenie/x", event=AliasSet(namespace="refgenie", name="x", digest=more[0].digest)),
                  NewEvent(stream=f"genome:{more[0].digest}", event=FhrSet(digest=more[0].digest, fhr={"schema": "x"}))])
    after, decoded = refresh()
    # No genome record changed: nothing decoded, and the same digests list (per-worker caches key on it).
    assert decoded == 0 and after.digests is snap.digests and after.head > snap.head
    assert catalog.builds == 1 and catalog.updates == 3  # the alias/FHR step only moved the head
    assert _data(after) == _data(_fresh(store))


def _primed(store: Store) -> GenomeCatalog:
    """A catalog that has built its first snapshot."""
    catalog = GenomeCatalog(store)
    with store.read() as txn:
        catalog.snapshot(txn)
    return catalog


def _after_a_gap(store: Store, catalog: GenomeCatalog) -> tuple[GenomeAdded, CatalogSnapshot]:
    """Append ``REBUILD_GAP`` alias events then one new genome; the catalog's next snapshot."""
    extra = _genome(random.Random(42))
    store.append([NewEvent(stream=f"alias:refgenie/a{i}", event=AliasSet(namespace="refgenie", name=f"a{i}",
                                                                          digest=extra.digest))
                  for i in range(REBUILD_GAP)] + [_added(extra)])
    with store.read() as txn:
        return extra, catalog.snapshot(txn)


def test_a_gap_past_the_rebuild_threshold_rebuilds_the_catalog_in_full(store: Store) -> None:
    rng = random.Random(3)
    store.append([_added(_genome(rng)) for _ in range(3)])
    catalog = _primed(store)
    extra, snap = _after_a_gap(store, catalog)
    assert catalog.builds == 2 and catalog.updates == 0
    assert extra.digest in snap.known and _data(snap) == _data(_fresh(store))


def test_a_log_where_one_md5_names_two_sequences_is_rebuilt_in_full_and_matches_a_fresh_build(store: Store) -> None:
    rng = random.Random(11)
    store.append([_added(_genome(rng)) for _ in range(3)])
    holder = _genome(rng)
    holder = GenomeAdded(digest=holder.digest, names=["a"], lengths=[len(_POOL[0])],
                         sequences=["SQ." + seqcol.sha512t24u(_POOL[0])], md5s=[hashlib.md5(_POOL[0]).hexdigest()])
    store.append([_added(holder)])
    catalog = _primed(store)
    for step in range(3):
        forged = _genome(random.Random(500 + step), wrong_md5=True)
        store.append([_added(forged)])
        with store.read() as txn:
            snap = catalog.snapshot(txn)
        assert _data(snap) == _data(_fresh(store))
    assert snap.clash and catalog.builds >= 2


def test_a_big_catalog_scans_a_gap_past_the_fixed_threshold_instead_of_rebuilding_every_genome(store: Store) -> None:
    """A follower pulling 5,001 records rebuilt 8 x 50k contigs (~1 s) where scanning them takes ~20 ms."""
    n = 4 * REBUILD_GAP + 8  # MD5s enough that a quarter of them exceeds the fixed threshold
    names = [f"chr{i}" for i in range(n)]
    lengths = [100 + i for i in range(n)]
    sequences = ["SQ." + hashlib.sha512(b"%d" % i).hexdigest()[:32] for i in range(n)]
    level1 = seqcol.level1(names, lengths, sequences)
    big = GenomeAdded(digest=seqcol.top_level_digest(level1), names=names, lengths=lengths, sequences=sequences,
                      level1=level1, md5s=[hashlib.md5(b"%d" % i).hexdigest() for i in range(n)])
    store.append([_added(big)])
    catalog = _primed(store)
    extra, snap = _after_a_gap(store, catalog)
    assert catalog.builds == 1 and catalog.updates == 1  # only the new genome's record decoded
    assert extra.digest in snap.known and _data(snap) == _data(_fresh(store))


def test_kept_collection_bodies_stay_within_their_byte_budget_and_the_newest_is_always_kept(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rgstore_api.catalog import CollectionCache

    rng = random.Random(5)
    events = {e.digest: e for e in (_genome(rng) for _ in range(12))}
    store.append([_added(e) for e in events.values()])
    cache = CollectionCache(store)
    with store.read() as txn:
        sizes = {d: len(cache.body(txn, d, "level2")) for d in events}
    budget = 3 * max(sizes.values())
    monkeypatch.setattr(CollectionCache, "MAX_BYTES", budget)
    cache = CollectionCache(store)
    with store.read() as txn:
        for digest in events:
            body = cache.body(txn, digest, "level2")
            assert len(body) == sizes[digest]
            kept = sum(len(b) for b in cache._items.values())
            assert kept == cache._bytes and kept <= budget and (digest, "level2") in cache._items
    monkeypatch.setattr(CollectionCache, "MAX_BYTES", 1)  # smaller than any body: only the newest stays
    cache = CollectionCache(store)
    with store.read() as txn:
        for digest in events:
            cache.body(txn, digest, "level1")
            assert list(cache._items) == [(digest, "level1")]

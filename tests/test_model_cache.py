"""The FASTA cache means what a small pure-Python model says it means, after any command sequence.

A hypothesis state machine drives the real ``store.cache`` (real LMDB, real downloads from a
loopback upstream, real extraction) with random region requests (hits, touches, rebuilds after
eviction or damage, level 2 fetched again), pins and unpins (by key, key prefix and directory),
gc by age and size (dry runs too), ``verify`` with and without ``evict``, damaged files and a log
clock set by hand (forward, and back as NTP does), mirrors each in a model written from the
documented semantics (docs/python-api.md, ``rgstore.cache``, ``rgstore.cachegc``), and compares
entries, access order, tombstones, event counts and the files on disk after every step; every few
steps it reopens the store, and once per run it rebuilds every view.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule, run_state_machine_as_test

import rgstore.log
from rgstore.cache import TOUCH_INTERVAL
from rgstore.cachekeys import REGIONS
from rgstore.errors import NotFoundError
from rgstore.events import CacheEvicted
from rgstore.log import NewEvent
from rgstore.store import Store
from tests.log_clock import LogClock
from tests.test_model import ACTOR, StoreMachine
from tests.upstream_fixture import ENSEMBL, NCBI, UpstreamServer, base, req

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
SOURCES = {"ensembl": ENSEMBL, "ncbi": NCBI}
STEPS = (0.0, 600.0, TOUCH_INTERVAL, 2 * 3600.0, 2 * 86400.0, 40 * 86400.0, -2 * 3600.0)
"""Clock moves: none, less than the touch interval, exactly it, more, days, past the default max age, back."""
MAX_AGES = (None, 3600.0, 86400.0, 30 * 86400.0)
SIZE_FRACTIONS = (None, 0.0, 0.25, 0.5, 0.9, 1.0)
REOPEN_EVERY = 5
REBUILD_AT = 7


class _Clock(LogClock):
    current = T0


@dataclass
class Entry:
    """One key as the model sees it: live (``evicted_seq`` 0) or a tombstone."""

    key: str
    level: int
    source: str
    region: str
    """``raw`` for level 2."""
    path: str
    files: dict[str, tuple[str, int]]
    """File -> (sha256, size) as the insert recorded it (the same bytes every rebuild)."""
    inserted_seq: int
    inserted_at: float
    last_access: float
    access_seq: int
    touches: int = 0
    pinned: bool = False
    damaged: str = ""
    """A file the test broke: "" (intact), "truncated" or "missing"."""
    evicted_seq: int = 0
    evicted_at: float = 0.0
    reason: str = ""
    pending: bool = False
    """Evicted by a gc killed before it deleted the files: they are still on disk for the next gc to delete."""
    events: int = 1
    """Events on the key's stream."""

    @property
    def size(self) -> int:
        return sum(size for _sha, size in self.files.values())

    @property
    def live(self) -> bool:
        return self.evicted_seq == 0


@dataclass
class Template:
    root: Path
    entries: dict[str, Entry] = field(default_factory=dict)
    forms: dict[tuple[str, str], str] = field(default_factory=dict)
    """(source, region) -> level-1 key; (source, "raw") -> level-2 key."""


def _entry(store: Store, key: str, source: str, region: str) -> Entry:
    e = store.cache.entry(key)
    assert e is not None
    return Entry(key=key, level=e.level, source=source, region=region, path=e.path,
                 files={f: (r.sha256, r.size) for f, r in e.files.items()}, inserted_seq=e.inserted_seq,
                 inserted_at=e.inserted_at, last_access=e.last_access, access_seq=e.access_seq,
                 events=store.cache.show(key, last=0).older_events)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, tree: Path, empty_refget: Path) -> Iterator[Template]:
    """A store whose cache holds both sources' level 2 and every region, inserted at T0."""
    out = Template(tmp_path_factory.mktemp("model-cache"))
    shutil.copytree(empty_refget, out.root / "store" / "refget")
    with pytest.MonkeyPatch.context() as patch, UpstreamServer(tree) as srv:
        patch.setattr(rgstore.log, "datetime", _Clock)
        with Store.open(out.root / "store", actor=ACTOR) as store:
            store.cache.clock = T0.timestamp
            for source, params in SOURCES.items():
                results = store.cache.regions(req(params, ",".join(REGIONS)), base_url=base(srv, source))
                raw = store.cache.fetch_raw(req(params), base_url=base(srv, source))
                out.forms[(source, "raw")] = raw.key
                out.entries[raw.key] = _entry(store, raw.key, source, "raw")
                for r in results:
                    out.forms[(source, r.region)] = r.key
                    out.entries[r.key] = _entry(store, r.key, source, r.region)
    yield out


def _idle(seconds: float) -> str:
    """The reason's age as gc states it: days from a day on, else hours, else minutes, else whole seconds."""
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} hours"
    if seconds >= 60:
        return f"{seconds / 60:.1f} minutes"
    return f"{seconds:.0f} seconds"


class CacheModel(StoreMachine):
    """Random cache commands against the real store and the model, compared after every step."""

    template: Template
    server: UpstreamServer
    runs = 0

    def __init__(self) -> None:
        super().__init__()
        CacheModel.runs += 1
        self.path = self.template.root / f"run{CacheModel.runs}"
        shutil.copytree(self.template.root / "store", self.path)
        self.now = T0.timestamp()
        _Clock.current = T0
        self.store = self._open()
        with self.store.read() as txn:
            self.next_seq = self.store.log.head(txn)[0] + 1
        self.entries = {k: replace(e, files=dict(e.files)) for k, e in self.template.entries.items()}
        self.steps = 0
        self.rebuilt = False

    def _open(self) -> Store:
        store = Store.open(self.path, actor=ACTOR)
        store.cache.clock = lambda: self.now
        return store

    def _event(self, e: Entry) -> int:
        e.events += 1
        return self._take_seq()

    def _key(self, source: str, region: str) -> str:
        return self.template.forms[(source, region)]

    def _touch(self, e: Entry) -> None:
        """A hit: recorded when the last recorded use is an interval away (either side: a clock set back)."""
        if e.live and abs(self.now - e.last_access) >= TOUCH_INTERVAL:
            e.access_seq = self._event(e)
            e.last_access = self.now
            e.touches += 1

    def _insert(self, e: Entry) -> None:
        """A rebuild: a live (damaged) record is evicted first, then inserted, keeping its pin."""
        if e.live:
            self._evict(e, "damaged: rebuilt")
        seq = self._event(e)
        pinned = e.pinned
        self.entries[e.key] = replace(e, inserted_seq=seq, inserted_at=self.now, last_access=self.now,
                                      access_seq=seq, touches=0, damaged="", evicted_seq=0, evicted_at=0.0,
                                      reason="", pending=False)
        if pinned:
            self._event(self.entries[e.key])

    def _evict(self, e: Entry, reason: str) -> None:
        e.evicted_seq = self._event(e)
        e.evicted_at = self.now
        e.reason = reason

    def _pending(self) -> list[Entry]:
        """Tombstones whose files a killed gc left, in key order (as gc finishes them)."""
        return sorted((e for e in self.entries.values() if e.pending), key=lambda e: e.key)

    # -- commands -------------------------------------------------------------------------------

    @rule(seconds=st.sampled_from(STEPS))
    def clock(self, seconds: float) -> None:
        self.now += seconds
        _Clock.current = T0 + timedelta(seconds=self.now - T0.timestamp())

    @rule(source=st.sampled_from(sorted(SOURCES)),
          regions=st.lists(st.sampled_from(REGIONS), min_size=1, max_size=3, unique=True))
    def regions(self, source: str, regions: list[str]) -> None:
        wanted = [r for r in REGIONS if r in regions]
        forms = [self.entries[self._key(source, r)] for r in wanted]
        hit = {e.key for e in forms if e.live and not e.damaged}
        raw = self.entries[self._key(source, "raw")]
        fetched = not raw.live or bool(raw.damaged)
        if len(hit) < len(forms):
            if raw.live and raw.damaged in ("", "flipped"):  # sizes match: a hit, until extraction re-hashes
                self._touch(raw)
            if not raw.live or raw.damaged:
                self._insert(raw)
            for e in forms:
                if e.key not in hit:
                    self._insert(e)
        for e in forms:
            if e.key in hit:
                self._touch(e)
        asked = len(self.server.requests)
        results = self.store.cache.regions(req(SOURCES[source], ",".join(regions)),
                                           base_url=base(self.server, source))
        assert [(r.region, r.key, r.hit) for r in results] == [(e.region, e.key, e.key in hit) for e in forms]
        if len(hit) == len(forms) or not fetched:  # level 1 hits (or level 2 intact) need no network
            assert len(self.server.requests) == asked

    def _ref(self, e: Entry, spelled: str) -> str:
        if spelled == "prefix":
            return e.key[:10]
        if spelled == "directory":
            return str(self.store.cache_path / e.path)
        return e.key

    @rule(source=st.sampled_from(sorted(SOURCES)), region=st.sampled_from(("raw", *REGIONS)), pin=st.booleans(),
          spelled=st.sampled_from(("key", "prefix", "directory")))
    def pin(self, source: str, region: str, pin: bool, spelled: str) -> None:
        e = self.entries[self._key(source, region)]
        call = self.store.cache.pin if pin else self.store.cache.unpin
        if not e.live:
            with pytest.raises(NotFoundError):
                call(self._ref(e, spelled))
            return
        changed = e.pinned != pin
        if changed:
            self._event(e)
            e.pinned = pin
        assert call(self._ref(e, spelled)) == (e.key, changed)

    @rule(max_age=st.sampled_from(MAX_AGES), fraction=st.sampled_from(SIZE_FRACTIONS), dry_run=st.booleans())
    def gc(self, max_age: float | None, fraction: float | None, dry_run: bool) -> None:
        live = sorted((e for e in self.entries.values() if e.live), key=lambda e: (e.level, e.path))
        total = sum(e.size for e in live)
        max_size = None if fraction is None else int(total * fraction)
        chosen: list[tuple[Entry, str]] = []
        keep = []
        for e in live:
            if max_age is not None and not e.pinned and self.now - e.last_access > max_age:
                chosen.append((e, f"age: unused for {_idle(self.now - e.last_access)}"))
            else:
                keep.append(e)
        if max_size is not None:
            left = sum(e.size for e in keep)
            for e in sorted((e for e in keep if not e.pinned), key=lambda e: (e.access_seq, e.key)):
                if left <= max_size:
                    break
                chosen.append((e, f"size: least recently used beyond {max_size} bytes"))
                left -= e.size
        items = [(e.key, e.level, e.path, e.size, e.last_access, why) for e, why in chosen]
        pending = [e.key for e in self._pending()]
        report = self.store.cache.gc(max_age=max_age, max_size=max_size, dry_run=dry_run)
        assert [(i.key, i.level, i.path, i.size, i.last_access, i.reason) for i in report.evicted] == items
        assert (report.completed, report.strays, report.dry_run) == (pending, [], dry_run)
        assert report.pinned_kept == sum(e.pinned for e in live)
        assert report.bytes_freed == sum(e.size for e, _ in chosen)
        if not dry_run:
            for e in self._pending():
                e.pending = False
            for e, why in chosen:
                self._evict(e, why)
            locks = {p.name.removesuffix(".lock") for p in (self.store.cache_path / ".locks").glob("*.lock")}
            assert locks <= {e.key for e in self.entries.values() if e.live}
        assert report.live_bytes == (total if dry_run else sum(e.size for e in self.entries.values() if e.live))

    @rule(source=st.sampled_from(sorted(SOURCES)), region=st.sampled_from(("raw", *REGIONS)))
    def killed_gc(self, source: str, region: str) -> None:
        """What a gc killed between its commit and its deletions leaves: the eviction logged, the files there."""
        e = self.entries[self._key(source, region)]
        if not e.live:
            return
        self.store.append([NewEvent(stream=f"cache:{e.key}", event=CacheEvicted(key=e.key, reason="killed"))])
        self._evict(e, "killed")
        e.pending = True

    @rule(source=st.sampled_from(sorted(SOURCES)), region=st.sampled_from(("raw", *REGIONS)),
          how=st.sampled_from(("missing", "truncated", "flipped")))
    def damage(self, source: str, region: str, how: str) -> None:
        """Break a live file behind the cache's back (level 2: its decompressed genome): rebuilt, never served."""
        e = self.entries[self._key(source, region)]
        if not e.live or e.damaged:
            return
        target = self.store.cache_path / e.path / self._damage_file(e)
        data = target.read_bytes()
        if how == "missing":
            target.unlink()
        elif how == "truncated" or not data:
            target.write_bytes(data[:-1] if data else b"!")
        else:  # the same size: only a hash tells
            target.write_bytes(data[:-1] + (b"A" if data[-1:] != b"A" else b"C"))
        e.damaged = how

    @staticmethod
    def _damage_file(e: Entry) -> str:
        return next(f for f in sorted(e.files) if e.level == 1 or f.startswith("decompressed/") and "gtf" not in f
                    and "annotation" not in f)

    @rule(evict=st.booleans())
    def verify(self, evict: bool) -> None:
        live = [e for e in self.entries.values() if e.live]
        bad = sorted((e for e in live if e.damaged), key=lambda e: e.key)
        report = self.store.cache.verify(evict=evict)
        assert report.entries == len(live) and report.files == sum(len(e.files) for e in live)
        assert sorted((p.key, p.problem == "missing") for p in report.problems) == [
            (e.key, e.damaged == "missing") for e in bad]
        if evict:
            assert report.evicted == [e.key for e in bad]
            for e in bad:  # pinned ones too: a damaged file is no use to anyone
                rel = self._damage_file(e)
                self._evict(e, f"corrupt: {rel} {'missing' if e.damaged == 'missing' else 'checksum mismatch'}")
        else:
            assert report.evicted == []

    # -- the comparison -------------------------------------------------------------------------

    @invariant()
    def store_matches_model(self) -> None:
        self.steps += 1
        if self.steps % REOPEN_EVERY == 0:
            self.store.close()
            self.store = self._open()
        if self.steps == REBUILD_AT and not self.rebuilt:
            self.rebuilt = True
            self.store.rebuild()
        cache = self.store.cache
        live = sorted((e for e in self.entries.values() if e.live), key=lambda e: (e.level, e.path))

        def row(e: Entry) -> tuple[object, ...]:
            return (e.key, e.level, e.path, e.inserted_seq, e.inserted_at, e.last_access, e.access_seq, e.touches,
                    e.pinned, e.size)

        listed = cache.ls()
        assert [(e.key, e.level, e.path, e.inserted_seq, e.inserted_at, e.last_access, e.access_seq, e.touches,
                 e.pinned, e.size) for e in listed] == [row(e) for e in live]
        assert [{f: (r.sha256, r.size) for f, r in e.files.items()} for e in listed] == [e.files for e in live]
        for level in (1, 2):
            assert [e.key for e in cache.ls(level=level)] == [e.key for e in live if e.level == level]
        for e in self.entries.values():
            details = cache.show(e.key, last=0)
            assert (details.state, details.older_events) == ("live" if e.live else "evicted", e.events)
            directory = self.store.cache_path / e.path
            if e.live:
                assert details.tombstone is None
                for name, (sha, size) in e.files.items():
                    if not e.damaged:
                        data = (directory / name).read_bytes()
                        assert (hashlib.sha256(data).hexdigest(), len(data)) == (sha, size)
                continue
            tomb = details.tombstone
            assert tomb is not None and details.entry is None
            assert (tomb.level, tomb.path, tomb.evicted_seq, tomb.evicted_at, tomb.reason, tomb.pinned) == (
                e.level, e.path, e.evicted_seq, e.evicted_at, e.reason, e.pinned)
            assert {f: (r.sha256, r.size) for f, r in tomb.files.items()} == e.files
            if e.pending:
                assert directory.is_dir()
            else:
                assert not directory.exists(), f"evicted {e.region} of {e.source} is still on disk"
        on_disk = {p.name for p in self.store.cache_path.glob("cached_genomic_*")}
        assert on_disk == {Path(e.path).name for e in self.entries.values() if e.level == 1 and (e.live or e.pending)}


def test_the_cache_matches_the_model_after_any_commands(
        template: Template, tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every cache entry, tombstone, access order and file equals the model after each random command, across
    reopens and a rebuild."""
    monkeypatch.setattr(rgstore.log, "datetime", _Clock)
    with UpstreamServer(tree) as srv:
        CacheModel.template, CacheModel.server = template, srv
        run_state_machine_as_test(CacheModel, settings=settings(
            max_examples=40, stateful_step_count=40, deadline=None, derandomize=True, database=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]))

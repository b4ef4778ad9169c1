"""Claims about cache eviction and verification: events first, files after, pins respected."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rgstore.cachegc import parse_duration, parse_size, plan
from rgstore.cachelock import entry_lock
from rgstore.errors import ConflictError, InvalidInputError, NotFoundError
from rgstore.events import CacheEvicted, CacheInserted, FileRef
from rgstore.log import NewEvent
from rgstore.store import Store
from rgstore.views.cache import CacheEntry, CacheView
from tests.upstream_fixture import ENSEMBL, UpstreamServer, base, cache_events, req

DAY = 86400.0


@pytest.fixture
def filled(store: Store, tree: Path) -> Iterator[Store]:
    """A store whose cache holds Ensembl level 2 plus gene, exon and CDS, inserted in that order."""
    with UpstreamServer(tree) as srv:
        for region in ("gene", "exon", "CDS"):
            store.cache.regions(req(ENSEMBL, region), base_url=base(srv, "ensembl"))
    yield store


def _later(store: Store, seconds: float) -> None:
    store.cache.clock = lambda: time.time() + seconds


def test_gc_by_age_evicts_unused_entries_but_never_pinned_ones(filled: Store) -> None:
    entries = filled.cache.ls()
    pinned = {e.key for e in entries if e.level == 2 or e.request["genomic_regions"] == {"gene": True}}
    for key in pinned:
        filled.cache.pin(key)
    _later(filled, 40 * DAY)
    report = filled.cache.gc(max_age=30 * DAY)
    assert {i.key for i in report.evicted} == {e.key for e in entries} - pinned
    assert {e.key for e in filled.cache.ls()} == pinned
    for e in entries:
        assert (filled.cache_path / e.path).exists() == (e.key in pinned)
    assert report.bytes_freed == sum(e.size for e in entries if e.key not in pinned)
    assert cache_events(filled).count("cache-evicted") == len(entries) - len(pinned)


def _region(entry: CacheEntry) -> str:
    return next(iter(entry.request["genomic_regions"])) if entry.level == 1 else "raw"


def test_gc_by_size_evicts_least_recently_used_first(filled: Store) -> None:
    by_region = {_region(e): e for e in filled.cache.ls()}
    filled.cache.pin(by_region["raw"].key)
    _later(filled, 2 * 3600)
    # All hits (level 2 is cached), so the unreachable base URL is never contacted.
    filled.cache.regions(req(ENSEMBL, "gene"), base_url="http://127.0.0.1:9")
    total = sum(e.size for e in filled.cache.ls())
    report = filled.cache.gc(max_age=None, max_size=total - by_region["exon"].size)
    # gene was just used; exon is now the least recently used unpinned entry, and evicting it is enough.
    assert [i.key for i in report.evicted] == [by_region["exon"].key]
    assert report.live_bytes <= total - by_region["exon"].size


def test_a_dry_run_changes_nothing(filled: Store) -> None:
    head = filled.head()
    _later(filled, 40 * DAY)
    report = filled.cache.gc(max_age=30 * DAY, dry_run=True)
    assert len(report.evicted) == 4 and report.dry_run
    assert filled.head() == head
    assert all((filled.cache_path / e.path).exists() for e in filled.cache.ls())


def test_an_interrupted_gc_is_completed_by_the_next_run(filled: Store) -> None:
    victim = next(e for e in filled.cache.ls() if e.level == 1)
    # The state a gc killed right after its commit leaves: the event is in, the files are still there.
    filled.append([NewEvent(stream=f"cache:{victim.key}", event=CacheEvicted(key=victim.key, reason="age"))])
    assert (filled.cache_path / victim.path).exists()
    assert victim.key not in {e.key for e in filled.cache.ls()}
    report = filled.cache.gc(max_age=None)
    assert report.completed == [victim.key] and report.evicted == []
    assert not (filled.cache_path / victim.path).exists()
    assert filled.cache.gc(max_age=None).completed == []


def test_an_entry_rebuilt_after_eviction_is_not_deleted_by_its_old_tombstone(
    filled: Store, tree: Path
) -> None:
    victim = next(e for e in filled.cache.ls() if e.request.get("genomic_regions") == {"exon": True})
    filled.append([NewEvent(stream=f"cache:{victim.key}", event=CacheEvicted(key=victim.key, reason="age"))])
    with UpstreamServer(tree) as srv:
        rebuilt = filled.cache.regions(req(ENSEMBL, "exon"), base_url=base(srv, "ensembl"))[0]
    assert (rebuilt.key, rebuilt.hit) == (victim.key, False)
    assert filled.cache.gc(max_age=None).completed == []
    assert Path(rebuilt.path).is_file()


def test_verify_reports_a_corrupted_file_and_evict_removes_its_entry(filled: Store) -> None:
    assert filled.cache.verify().ok
    victim = next(e for e in filled.cache.ls() if e.level == 1)
    target = filled.cache_path / victim.path / next(iter(victim.files))
    target.write_bytes(target.read_bytes()[:-10])
    report = filled.cache.verify()
    assert not report.ok
    assert [(p.key, p.file) for p in report.problems] == [(victim.key, str(target))]
    assert filled.cache.entry(victim.key) is not None  # reporting alone changes nothing
    report = filled.cache.verify(evict=True)
    assert report.evicted == [victim.key]
    assert filled.cache.entry(victim.key) is None and not target.exists()
    assert filled.cache.verify().ok


def test_verify_reports_a_missing_level2_file(filled: Store) -> None:
    raw = filled.cache.ls(level=2)[0]
    (filled.cache_path / raw.path / "decompressed" / "genome.fna").unlink()
    problems = filled.cache.verify().problems
    assert [(p.key, p.problem) for p in problems] == [(raw.key, "missing")]


@pytest.mark.parametrize(("idle", "said"), [(40 * DAY, "40.0 days"), (5 * 3600, "5.0 hours"),
                                            (90 * 60, "1.5 hours"), (20 * 60, "20.0 minutes"), (42, "42 seconds")])
def test_an_age_eviction_says_how_long_the_entry_went_unused_in_a_unit_that_is_not_zero(
    filled: Store, idle: float, said: str
) -> None:
    # `--max-age 12h` evicted entries "unused for 0.0 days".
    newest = max(filled.cache.ls(), key=lambda e: e.last_access)
    chosen = {e.key: why for e, why in plan([newest], now=newest.last_access + idle, max_age=1.0, max_size=None)}
    assert chosen == {newest.key: f"age: unused for {said}"}


def test_plan_counts_pinned_bytes_but_never_picks_them(filled: Store) -> None:
    entries = filled.cache.ls()
    for e in entries:
        filled.cache.pin(e.key)
    pinned = filled.cache.ls()
    assert plan(pinned, now=time.time() + 1000 * DAY, max_age=1.0, max_size=0) == []


@pytest.mark.parametrize(
    "text,seconds",
    [("30d", 30 * DAY), ("12h", 43200), ("90m", 5400), ("2w", 14 * DAY), ("3600", 3600), ("1.5d", 1.5 * DAY)],
)
def test_durations_parse(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text,size",
    [("2048", 2048), ("500M", 500 * 2**20), ("10G", 10 * 2**30), ("1.5GiB", int(1.5 * 2**30)), ("3kb", 3072)],
)
def test_sizes_parse(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_a_size_too_large_for_a_number_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="too large"):
        parse_size("9" * 400 + "P")


@pytest.mark.parametrize("bad", ["30 days", "-1d", "d", "5\u017f"])  # U+017F, the long s: "s" case-insensitively
def test_bad_durations_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInputError, match="invalid duration"):
        parse_duration(bad)


def _age(path: Path, seconds: float) -> None:
    old = time.time() - seconds
    for p in [path, *path.rglob("*")]:
        os.utime(p, (old, old))


def test_gc_removes_day_old_directories_no_event_describes(filled: Store) -> None:
    root = filled.cache_path
    staging = root / f".tmp-{'a' * 64}"
    (staging / "raw").mkdir(parents=True)
    (staging / "raw" / "genome.fna.gz.part").write_bytes(b"partial")
    unrecorded = root / f"cached_genomic_{'b' * 64}" / "annotation"
    unrecorded.mkdir(parents=True)
    (unrecorded / "gene.fna").write_text(">x\nA\n")
    raw_orphan = root / "ncbi_raw" / "9606" / "GCF_000000001.1" / "raw"
    raw_orphan.mkdir(parents=True)
    young = root / f".tmp-{'c' * 64}"
    young.mkdir()
    for path in (staging, unrecorded.parent, raw_orphan.parent):
        _age(path, 2 * DAY)
    assert sorted(filled.cache.gc(max_age=None, dry_run=True).strays) == sorted(
        [staging.name, unrecorded.parent.name, "ncbi_raw/9606/GCF_000000001.1"]
    )
    assert staging.exists()
    report = filled.cache.gc(max_age=None)
    assert len(report.strays) == 3
    assert not staging.exists() and not unrecorded.parent.exists() and not (root / "ncbi_raw").exists()
    assert young.exists()  # may belong to a command still running
    assert all((root / e.path).exists() for e in filled.cache.ls())  # recorded entries untouched


def test_gc_leaves_a_locked_stray_alone(filled: Store) -> None:
    key = "d" * 64
    staging = filled.cache_path / f".tmp-{key}"
    staging.mkdir()
    _age(staging, 2 * DAY)
    with entry_lock(filled.cache_path, key):
        assert filled.cache.gc(max_age=None).strays == []
    assert staging.exists()
    assert filled.cache.gc(max_age=None).strays == [staging.name]


@pytest.mark.parametrize("replacement", ["file", "symlink"])
def test_gc_evicts_an_entry_whose_directory_became_a_file_or_symlink_and_never_enters_the_link(
    filled: Store, tmp_path: Path, replacement: str
) -> None:
    # rmtree refused both ("Not a directory", "Cannot call rmtree on a symbolic link") after the
    # eviction committed, so every later gc failed on the same pending deletion.
    entry = next(e for e in filled.cache.ls() if e.level == 1)
    directory = filled.cache_path / entry.path
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("not the cache's\n")
    for child in sorted(directory.rglob("*"), reverse=True):
        child.rmdir() if child.is_dir() else child.unlink()
    directory.rmdir()
    if replacement == "file":
        directory.write_text("not a directory\n")
    else:
        directory.symlink_to(outside, target_is_directory=True)
    report = filled.cache.gc(max_age=None, max_size=0)
    assert entry.key in {i.key for i in report.evicted}
    assert not os.path.lexists(directory)
    assert (outside / "keep.txt").read_text() == "not the cache's\n"
    assert filled.cache.gc(max_age=None, max_size=0).completed == []
    assert filled.verify().ok


def test_evicting_a_raw_entry_prunes_its_empty_parents(filled: Store) -> None:
    raw = filled.cache.ls(level=2)[0]
    _later(filled, 40 * DAY)
    filled.cache.gc(max_age=30 * DAY)
    assert not (filled.cache_path / raw.path).exists()
    assert not (filled.cache_path / "ensembl_raw").exists()


def test_gc_reads_the_live_entries_a_few_times_not_once_per_eviction(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = b">r\nACGT\n"
    ref = FileRef(name="annotation/gene.fna", sha256=hashlib.sha256(data).hexdigest(),
                  md5=hashlib.md5(data).hexdigest(), size=len(data))
    events = []
    for i in range(40):
        key = hashlib.sha256(f"k{i}".encode()).hexdigest()
        (store.cache_path / f"cached_genomic_{key}" / "annotation").mkdir(parents=True)
        (store.cache_path / f"cached_genomic_{key}" / "annotation" / "gene.fna").write_bytes(data)
        events.append(NewEvent(stream=f"cache:{key}", event=CacheInserted(
            key=key, level=1, path=f"cached_genomic_{key}", files={"annotation/gene.fna": ref})))
    store.append(events)
    reads, real = [0], CacheView.entries

    def counting(txn: Any, environment: Any) -> Any:
        reads[0] += 1
        return real(txn, environment)

    monkeypatch.setattr(CacheView, "entries", staticmethod(counting))
    report = store.cache.gc(max_age=None, max_size=10 * len(data))
    assert len(report.evicted) == 30 and report.bytes_freed == 30 * len(data)
    assert len(store.cache.ls()) == 10 and sum(1 for _ in store.cache_path.glob("cached_genomic_*")) == 10
    assert reads[0] < 10  # each deletion re-checked the live directories: once per log head, not per entry


def test_gc_by_size_follows_the_order_of_use_even_after_the_clock_was_set_back(
    filled: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datetime as real

    by_region = {_region(e): e for e in filled.cache.ls()}
    filled.cache.pin(by_region["raw"].key)

    class SetBack(real.datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return real.datetime.now(tz) - real.timedelta(days=1)

    # The clock is corrected a day back, then gene is used: its recorded time is older than
    # exon's, but it is the most recently used entry and exon must go first.
    monkeypatch.setattr("rgstore.log.datetime", SetBack)
    _later(filled, -DAY)
    filled.cache.regions(req(ENSEMBL, "gene"), base_url="http://127.0.0.1:9")
    touched = filled.cache.entry(by_region["gene"].key)
    assert touched is not None and touched.last_access < by_region["exon"].last_access
    total = sum(e.size for e in filled.cache.ls())
    report = filled.cache.gc(max_age=None, max_size=total - by_region["exon"].size)
    assert [i.key for i in report.evicted] == [by_region["exon"].key]


def test_an_entry_rebuilt_after_eviction_has_no_tombstone_left(filled: Store, tree: Path) -> None:
    victim = next(e for e in filled.cache.ls() if e.request.get("genomic_regions") == {"exon": True})
    filled.append([NewEvent(stream=f"cache:{victim.key}", event=CacheEvicted(key=victim.key, reason="age"))])
    assert filled.cache.show(victim.key).state == "evicted"
    with UpstreamServer(tree) as srv:
        filled.cache.regions(req(ENSEMBL, "exon"), base_url=base(srv, "ensembl"))
    details = filled.cache.show(victim.key)
    assert (details.state, details.tombstone) == ("live", None)
    with filled.read() as txn:
        assert victim.key not in {t.key for t in CacheView.tombstones(txn, filled.environment)}


def test_gc_long_after_the_inserts_never_takes_live_entries_for_strays(filled: Store) -> None:
    """Live level-1 and level-2 directories are a day old too: only directories no event describes are strays."""
    before = filled.cache.ls()
    _later(filled, 3 * DAY)
    report = filled.cache.gc(max_age=None)
    assert (report.strays, report.evicted, report.completed) == ([], [], [])
    assert [e.key for e in filled.cache.ls()] == [e.key for e in before]
    assert all((filled.cache.root / e.path / rel).is_file() for e in before for rel in e.files)
    assert filled.cache.verify().ok


def _meanwhile(store: Store, action: Any) -> None:
    """Run ``action`` once, right after gc has read the live entries and before it commits (its second clock read).

    gc reads the clock first for its stray sweep, then right after listing the entries it plans from;
    the action is another command landing in that window, as a concurrent `rgstore cache` call would.
    """
    calls = 0

    def clock() -> float:
        nonlocal calls
        calls += 1
        if calls == 2:
            store.cache.clock = lambda: time.time() + 40 * DAY  # the action's own clock reads
            action()
            store.cache.clock = clock
        return time.time() + 40 * DAY

    store.cache.clock = clock


def test_an_entry_pinned_while_gc_plans_is_kept(filled: Store) -> None:
    victim = next(e for e in filled.cache.ls() if _region(e) == "exon")
    _meanwhile(filled, lambda: filled.cache.pin(victim.key))
    report = filled.cache.gc(max_age=30 * DAY)
    assert victim.key not in {i.key for i in report.evicted} and len(report.evicted) == 3
    assert [e.key for e in filled.cache.ls()] == [victim.key]
    assert (filled.cache_path / victim.path).exists() and report.bytes_freed > 0


def test_an_entry_used_while_gc_plans_is_kept(filled: Store) -> None:
    gene = next(e for e in filled.cache.ls() if _region(e) == "gene")
    # A level-1 hit (the unreachable base URL is never contacted) touches that entry alone.
    _meanwhile(filled, lambda: filled.cache.regions(req(ENSEMBL, "gene"), base_url="http://127.0.0.1:9"))
    report = filled.cache.gc(max_age=30 * DAY)
    assert [e.key for e in filled.cache.ls()] == [gene.key] and len(report.evicted) == 3
    assert gene.key not in {i.key for i in report.evicted} and (filled.cache_path / gene.path).exists()


def test_an_entry_evicted_and_rebuilt_while_gc_plans_is_kept(filled: Store, tree: Path) -> None:
    exon = next(e for e in filled.cache.ls() if _region(e) == "exon")

    def rebuild() -> None:
        filled.append([NewEvent(stream=f"cache:{exon.key}", event=CacheEvicted(key=exon.key, reason="age"))])
        with UpstreamServer(tree) as srv:
            filled.cache.regions(req(ENSEMBL, "exon"), base_url=base(srv, "ensembl"))

    _meanwhile(filled, rebuild)
    report = filled.cache.gc(max_age=30 * DAY)
    assert exon.key not in {i.key for i in report.evicted}
    rebuilt = filled.cache.entry(exon.key)
    assert rebuilt is not None and (filled.cache_path / rebuilt.path).exists()
    assert filled.cache.verify().ok


def test_gc_refused_a_deletion_names_the_file_and_the_next_gc_finishes_it(tree: Path) -> None:
    """A cache directory the gc's user may not change (another account's, a chmod -R a-w): where, not a bare name."""
    import shutil
    import tempfile

    from tests.test_files import as_unprivileged

    lab = Path(tempfile.mkdtemp(prefix="rgstore-gc-"))
    os.chmod(lab, 0o711)  # uid nobody (when the tests run as root) may reach the store
    try:
        with Store.open(lab / "store") as store, UpstreamServer(tree) as srv:
            store.cache.regions(req(ENSEMBL, "gene"), base_url=base(srv, "ensembl"))
            gene = next(e for e in store.cache.ls() if e.level == 1)
            store.cache.gc(max_age=0.0, dry_run=True)  # loads what gc imports: the child may not read the venv
        if os.geteuid() == 0:
            for d, _, files in os.walk(lab / "store"):
                for name in [".", *files]:
                    os.chown(Path(d) / name, 65534, 65534)
        annotation = lab / "store" / "cache" / gene.path / "annotation"
        os.chmod(annotation, 0o555)

        def collect() -> str:
            with Store.open(lab / "store") as child:
                return repr(child.cache.gc(max_age=0.0))

        said = as_unprivileged(collect)
        assert said == f"PermissionError: [Errno 13] Permission denied: '{annotation}/gene.fna'"
        os.chmod(annotation, 0o755)
        with Store.open(lab / "store") as store:
            assert store.cache.ls() == []  # the evictions were committed before the files were deleted
            report = store.cache.gc(max_age=0.0)
            assert gene.key in report.completed and not (lab / "store" / "cache" / gene.path).exists()
            assert store.cache.verify().ok
    finally:
        for d, _, _ in os.walk(lab):
            os.chmod(d, 0o755)
        shutil.rmtree(lab, ignore_errors=True)


def test_evict_by_key_prefix_and_directory_commits_events_then_deletes_only_those_entries(filled: Store) -> None:
    by_region = {_region(e): e for e in filled.cache.ls()}
    gene, raw = by_region["gene"], by_region["raw"]
    report = filled.cache.evict([gene.key[:10], str(filled.cache_path / raw.path)])
    assert sorted(i.key for i in report.evicted) == sorted([gene.key, raw.key])
    assert all(i.reason == "evicted by request" for i in report.evicted)
    assert report.bytes_freed == gene.size + raw.size
    assert {e.key for e in filled.cache.ls()} == {by_region["exon"].key, by_region["CDS"].key}
    assert not (filled.cache_path / gene.path).exists() and not (filled.cache_path / raw.path).exists()
    assert (filled.cache_path / by_region["exon"].path).exists()
    assert cache_events(filled).count("cache-evicted") == 2
    assert filled.cache.show(gene.key).state == "evicted"


@pytest.mark.parametrize("case", ["pinned", "unknown", "evicted"])
def test_evict_refuses_the_lot_when_one_entry_is_pinned_unknown_or_already_evicted(filled: Store, case: str) -> None:
    by_region = {_region(e): e for e in filled.cache.ls()}
    other = by_region["CDS"].key
    if case == "pinned":
        filled.cache.pin(other)
    elif case == "evicted":
        filled.cache.evict([other])
    head = filled.head()
    ref = "0" * 64 if case == "unknown" else other
    expected = {"pinned": ConflictError, "unknown": NotFoundError, "evicted": NotFoundError}[case]
    with pytest.raises(expected, match="unpin" if case == "pinned" else "no live cache entry"):
        filled.cache.evict([by_region["gene"].key, ref])
    assert filled.head() == head  # nothing committed, not even the entry that could have gone
    assert filled.cache.entry(by_region["gene"].key) is not None
    assert (filled.cache_path / by_region["gene"].path).exists()


def test_an_evict_dry_run_changes_nothing(filled: Store) -> None:
    head = filled.head()
    entry = filled.cache.ls()[0]
    report = filled.cache.evict([entry.key], dry_run=True)
    assert report.dry_run and [i.key for i in report.evicted] == [entry.key]
    assert filled.head() == head and (filled.cache_path / entry.path).exists()


def test_an_evicted_region_is_built_again_by_the_next_request(filled: Store, tree: Path) -> None:
    gene = next(e for e in filled.cache.ls() if _region(e) == "gene")
    filled.cache.evict([gene.key])
    with UpstreamServer(tree) as srv:
        again = filled.cache.regions(req(ENSEMBL, "gene"), base_url=base(srv, "ensembl"))
    live = filled.cache.entry(gene.key)
    assert live is not None and live.files == gene.files
    assert again

"""Claims about `verify`: it names the first bad seq, view or file."""

from __future__ import annotations

import os
import random
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lmdb
import pytest

from rgstore.events import Noted
from rgstore.log import NewEvent
from rgstore.store import Store
from rgstore.views import seq_key
from tests.conftest import REPO


def _fill(store: Store, n: int = 10) -> None:
    for i in range(n):
        store.append([NewEvent(stream=f"s{i % 3}", event=Noted(text=f"event {i}"))])


def _flip_record_byte(path: Path, seq: int, offset: int) -> None:
    env = lmdb.open(str(path / "log"), max_dbs=64)
    db = env.open_db(b"log")
    with env.begin(write=True) as txn:
        rec = bytearray(txn.get(seq_key(seq), db=db))
        rec[offset] ^= 0x01
        txn.put(seq_key(seq), bytes(rec), db=db)
    env.close()


def test_a_clean_store_verifies(store: Store) -> None:
    _fill(store)
    report = store.verify()
    assert report.ok and report.events == 10


def test_a_flipped_payload_byte_is_named_by_seq(store_path: Path) -> None:
    with Store.open(store_path) as store:
        _fill(store)
    _flip_record_byte(store_path, 6, -1)
    with Store.open(store_path, readonly=True) as store:
        report = store.verify()
    assert not report.ok
    assert report.first_bad_seq == 6
    assert "seq 6" in report.problems[0]


def test_a_flipped_chain_byte_is_named_by_seq(store_path: Path) -> None:
    with Store.open(store_path) as store:
        _fill(store)
    _flip_record_byte(store_path, 3, 5)
    with Store.open(store_path, readonly=True) as store:
        report = store.verify()
    assert report.first_bad_seq == 3


def test_a_corrupt_blob_is_named_by_file(store: Store) -> None:
    info, _ = store.blobs.put_bytes(b"ACGT" * 100)
    path = store.blobs.path(info.sha256)
    data = bytearray(path.read_bytes())
    data[10] ^= 0xFF
    path.write_bytes(bytes(data))
    report = store.verify()
    assert not report.ok
    assert str(path) in report.problems[0] and "corrupt" in report.problems[0]


def test_a_view_edited_behind_the_logs_back_is_detected(store: Store) -> None:
    _fill(store)

    def tamper(txn: object) -> None:
        txn.put(b"s0", b"\x00" * 16, db=store.environment.db("streams"))  # type: ignore[attr-defined]

    store.environment.write(tamper)
    report = store.verify()
    assert not report.ok
    assert "view 'streams'" in report.problems[0] and "b's0'" in report.problems[0]


def test_unreferenced_blobs_are_reported_and_gc_frees_them(store: Store) -> None:
    from rgstore.gc import collect_garbage

    info, created = store.blobs.put_bytes(b"orphan")
    assert created
    assert store.verify().unreferenced_blobs == [info.sha256]
    assert collect_garbage(store, grace=3600).removed == []  # too young: may belong to a running command
    report = collect_garbage(store, grace=0)
    assert report.removed == [info.sha256]
    assert not store.blobs.exists(info.sha256)


def test_a_sequence_file_with_altered_bases_or_gone_is_named(store: Store, tmp_path: Path) -> None:
    """Sequences are content too: each .seq file must hash to its refget digest."""
    fasta = tmp_path / "g.fa"
    fasta.write_text(">chr1\nACGTACGTTTGA\n>chr2\nGGGCCCAAATTT\n")
    store.genomes.init(fasta, ["g"])
    report = store.verify()
    assert report.ok and report.sequences == 2
    files = sorted((store.refget_path / "sequences").rglob("*.seq"))
    data = files[0].read_bytes()
    files[0].write_bytes(data[:3] + (b"A" if data[3:4] != b"A" else b"C") + data[4:])  # same length
    files[1].unlink()
    problems = store.verify().problems
    assert len(problems) == 2
    assert any(p.startswith(str(files[0])) and "is corrupt (its bytes do not hash to its digest" in p
               for p in problems)
    missing = next(p for p in problems if p.startswith(str(files[1])))
    # Not a mirror: the hint is the FASTA or a copy, never a `mirror pull`, which refuses such a store.
    assert "is missing" in missing and "genome init" in missing and "copy refget/" in missing
    assert "mirror pull" not in missing


def test_a_collection_index_with_an_altered_length_is_named_by_file(store: Store, tmp_path: Path) -> None:
    """gtars reads collections/<digest>.rgsi to serve a genome and re-check its FASTA: verify must read it too."""
    fasta = tmp_path / "g.fa"
    fasta.write_text(">chr1\nACGTACGTTTGA\n>chr2\nGGGCCCAAATTT\n")
    digest = store.genomes.init(fasta, ["g"]).genome.digest
    assert store.verify().ok
    index = store.refget_path / "collections" / f"{digest}.rgsi"
    text = index.read_text()
    assert text.count("chr2\t12\t") == 1
    index.write_text(text.replace("chr2\t12\t", "chr2\t52\t"))  # one flipped bit in a digit
    problems = store.verify().problems
    assert len(problems) == 1 and problems[0].startswith(f"{index}: collection index of genome {digest} disagrees")


@pytest.mark.parametrize("damage", ["altered", "truncated", "missing"])
def test_genome_init_of_the_same_fasta_rewrites_a_damaged_or_missing_collection_index_as_verify_says(
    store: Store, tmp_path: Path, damage: str,
) -> None:
    fasta = tmp_path / "g.fa"
    fasta.write_text(">chr1\nACGTACGTTTGA\n>chr2\nGGGCCCAAATTT\n")
    digest = store.genomes.init(fasta, ["g"]).genome.digest
    index = store.refget_path / "collections" / f"{digest}.rgsi"
    intact = index.read_bytes()
    if damage == "missing":
        index.unlink()
    else:
        index.write_bytes(intact.replace(b"chr2\t12\t", b"chr2\t52\t") if damage == "altered" else intact[:40])
    # A local genome on a primary: nothing fetches its index on first read, so a missing one is a problem too.
    problems = store.verify().problems
    assert len(problems) == 1 and problems[0].startswith(f"{index}: collection index of genome {digest}")
    assert "re-add the genome's FASTA with `rgstore genome init` to rewrite it" in problems[0]
    head = store.head()[0]
    assert store.genomes.init(fasta, ["g"]).genome.digest == digest
    assert index.read_bytes() == intact
    assert store.head()[0] == head  # the log already held the genome: nothing recorded again
    assert store.verify().ok
    assert not (tmp_path / "g.rgsi").exists()  # no gtars sidecar next to the FASTA


def test_stray_files_under_blobs_are_named_and_neither_break_verify_nor_get_collected(store: Store) -> None:
    from rgstore.gc import collect_garbage

    info, _ = store.blobs.put_bytes(b"kept")
    upper = store.blobs.root / "AB" / ("A" * 64)
    misplaced = store.blobs.root / "ab" / info.sha256  # a real blob's name in the wrong folder
    readme = store.blobs.root / info.sha256[:2] / "README"
    for path in (upper, misplaced, readme):
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"kept")
    report = store.verify()
    assert report.ok and report.blobs == 1
    assert report.stray_files == sorted(map(str, (upper, misplaced, readme)))
    assert collect_garbage(store, grace=0).removed == [info.sha256]
    assert all(path.exists() for path in (upper, misplaced, readme))


def test_sequences_the_refget_index_cannot_reach_are_named_though_their_files_are_intact(
        store_path: Path, tmp_path: Path) -> None:
    """getseq reads through the RefgetStore's index: a lost index must fail verify, not only getseq."""
    import shutil

    fasta = tmp_path / "g.fa"
    fasta.write_text(">chr1\nACGTACGTTTGA\n>chr2\nGGGCCCAAATTT\n")
    with Store.open(store_path) as s:
        s.genomes.init(fasta, ["g"])
    for lost, needle in (("sequences.rgsi", "not in the RefgetStore's index"), ("rgstore.json", "rgstore.json is missing")):
        copy = tmp_path / f"copy-{lost}"
        shutil.copytree(store_path, copy)
        (copy / "refget" / lost).unlink()
        with Store.open(copy, readonly=True) as s:
            problems = s.verify().problems
        assert problems and all(needle in p for p in problems), (lost, problems)


def test_verify_names_alias_and_fhr_files_that_disagree_with_their_views_until_a_rebuild(tmp_path: Path) -> None:
    import json

    from tests.test_genomes import FHR, TINY

    fhr = tmp_path / "tiny.fhr.json"
    fhr.write_text(json.dumps(FHR))
    with Store.open(tmp_path / "s") as store:
        digest = store.genomes.init(TINY, ["tiny"], fhr=fhr).genome.digest
        assert store.verify().ok
        tsv = store.refget_path / "aliases" / "collections" / "refgenie.tsv"
        tsv.write_text("tiny\tSOMETHINGELSE\n")  # a refresh lost (power loss) or a hand edit
        (tsv.parent / "stray.tsv").write_text("x\ty\n")
        (store.refget_path / "fhr" / f"{digest}.fhr.json").unlink()
        problems = store.verify().problems
        assert sorted(p.split(" ")[0] for p in problems) == [
            "refget/aliases/collections/refgenie.tsv", "refget/aliases/collections/stray.tsv",
            f"refget/fhr/{digest}.fhr.json"]
        assert all("disagrees with the" in p and "rgstore rebuild" in p for p in problems)
        store.rebuild()
        assert store.verify().ok


def test_verify_waits_for_a_refresh_another_command_is_still_doing_instead_of_calling_it_lost(tmp_path: Path) -> None:
    import threading

    from rgstore.pendingsync import PendingSync
    from tests.test_genomes import TINY

    with Store.open(tmp_path / "s") as store:
        digest = store.genomes.init(TINY, ["tiny"]).genome.digest
        tsv = store.refget_path / "aliases" / "collections" / "chaos.tsv"
        # Another process's `alias set chaos:x` has committed and holds its mark, but has not yet
        # rewritten the TSV (the state between its commit and its refresh).
        mark = PendingSync(store.path)
        store.aliases.set("x", digest, namespace="chaos")
        tsv.unlink()

        def finish_refresh() -> None:
            time.sleep(1.0)
            store.sync_external_views()
            mark.done()

        refresher = threading.Thread(target=finish_refresh)
        refresher.start()
        try:
            report = store.verify()
        finally:
            refresher.join()
        assert report.ok, report.problems
        assert tsv.read_text() == f"x\t{digest}\n"


class _OnBar:
    """A progress factory that runs ``action`` (what another process does meanwhile) when the bar ``desc`` opens."""

    def __init__(self, desc: str, action: Callable[[], object]) -> None:
        self.desc, self.action, self.fired = desc, action, False

    def __call__(self, desc: str, total: int | None = None, unit: str = "it") -> _OnBar:
        if desc == self.desc and not self.fired:
            self.fired = True
            self.action()
        return self

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def test_blobs_and_sequences_a_concurrent_remove_and_gc_deletes_mid_verify_are_not_problems(store: Store) -> None:
    from rgstore.gc import collect_garbage
    from rgstore.verify import verify_store
    from tests.test_genomes import TINY

    orphan, _ = store.blobs.put_bytes(b"an unreferenced blob")
    hook = _OnBar("verify blobs", lambda: collect_garbage(store, grace=0))
    report = verify_store(store, progress=hook)
    assert hook.fired and not store.blobs.exists(orphan.sha256)
    assert report.ok, report.problems

    store.genomes.init(TINY, ["tiny"])

    def remove_and_collect() -> None:
        store.genomes.remove("tiny")
        assert collect_garbage(store, grace=0).collections_removed

    hook = _OnBar("verify sequences", remove_and_collect)
    report = verify_store(store, progress=hook)
    assert hook.fired and store.genomes.list() == []
    assert report.ok, report.problems


def test_a_view_referencing_a_blob_name_that_is_no_sha256_is_a_problem_not_a_crash(store: Store) -> None:
    # A raw append (or a foreign log) can name anything as a blob; verify reports it like a missing blob.
    from rgstore.events import FileRef, RefpkgCreated

    ref = FileRef(name="tree.nwk", sha256="0", md5="0" * 32, size=1)
    store.append([NewEvent(stream="refpkg:odd", event=RefpkgCreated(name="odd", files={"tree": ref}))])
    report = store.verify()
    assert report.problems == ["a view references '0', which is not a sha256 digest"]


def test_re_adding_the_fasta_rewrites_sequence_files_that_were_deleted_cut_short_grown_or_altered(
        store: Store, tmp_path: Path) -> None:
    """verify's advice for a bad .seq file (re-add the FASTA) must work though gtars skips indexed sequences."""
    import gzip

    fasta = tmp_path / "g.fa.gz"
    with gzip.open(fasta, "wt") as fh:
        fh.write(">chr1 one\nacgtACGTTTGA\nNNAC\n>chr2\nGGGCCCAAATTT\n>chr3\nTTTT\n>chr4\nCCCCGG\n")
    store.genomes.init(fasta, ["g"])
    files = sorted((store.refget_path / "sequences").rglob("*.seq"))
    assert len(files) == 4
    want = {path: path.read_bytes() for path in files}
    files[0].unlink()
    files[1].write_bytes(want[files[1]][:3])
    files[2].write_bytes(want[files[2]] + b"A")
    files[3].write_bytes(b"A" * len(want[files[3]]) if want[files[3]][:1] != b"A" else b"C" * len(want[files[3]]))
    assert len(store.verify().problems) == 4
    assert not store.genomes.init(fasta, ["g"]).added
    assert {path: path.read_bytes() for path in files} == want
    assert store.verify().ok
    assert store.genomes.getseq("g", "chr1") == "ACGTACGTTTGANNAC"
    assert not list(files[0].parent.glob(".tmp-*"))


def _edit_log(path: Path, edit: Callable[[lmdb.Transaction, Any, Any], None]) -> None:
    env = lmdb.open(str(path / "log"), max_dbs=64)
    log, meta = env.open_db(b"log"), env.open_db(b"meta")  # not inside the write txn: open_db takes the writer lock
    with env.begin(write=True) as txn:
        edit(txn, log, meta)
    env.close()


def _reheaded(txn: lmdb.Transaction, log: Any, meta: Any) -> None:
    """Rewrite the head record so its payload claims seq 99, chained correctly, and move the head hash along."""
    import msgspec

    from rgstore.codec import chain_hash, chain_of, decode_envelope, encode_envelope, frame, unframe

    payload = encode_envelope(msgspec.structs.replace(decode_envelope(unframe(txn.get(seq_key(10), db=log))[1]), seq=99))
    chain = chain_hash(chain_of(txn.get(seq_key(9), db=log)), 10, payload)
    txn.put(seq_key(10), frame(payload, chain, compress=False), db=log)
    txn.put(b"head", (10).to_bytes(8, "big") + chain, db=meta)


@pytest.mark.parametrize(
    ("edit", "bad_seq", "problem"),
    [
        (lambda txn, log, meta: txn.delete(seq_key(4), db=log), 4, "log record seq 4: missing (next record is seq 5)"),
        (lambda txn, log, meta: txn.delete(seq_key(10), db=log), 10, "log ends at seq 9 but the head says 10"),
        (lambda txn, log, meta: txn.put(b"head", (10).to_bytes(8, "big") + bytes(32), db=meta), 10,
         "log record seq 10: head hash in meta differs from the chain"),
        (_reheaded, 10, "log record seq 10: payload claims seq 99"),
    ],
    ids=["a deleted record", "a lost last record", "an altered head hash", "a rechained record claiming another seq"],
)
def test_log_damage_the_chain_alone_would_miss_or_misplace_is_named_by_seq(
    store_path: Path, edit: Callable[[lmdb.Transaction, Any, Any], None], bad_seq: int, problem: str
) -> None:
    with Store.open(store_path) as store:
        _fill(store)
    _edit_log(store_path, edit)
    with Store.open(store_path, readonly=True) as store:
        report = store.verify()
    assert report.first_bad_seq == bad_seq
    assert problem in report.problems[0]


@pytest.mark.parametrize(
    ("tamper", "problem"),
    [
        (lambda txn, db: txn.put(b"s2", b"\x00" * 16, db=db), "value of key b's2' in streams differs"),
        (lambda txn, db: txn.put(b"s10", b"\x00" * 16, db=db), "unexpected key b's10' in streams"),
        (lambda txn, db: txn.delete(b"s1", db=db), "missing key b's1' in streams"),
    ],
    ids=["an edited last key", "an extra key", "a deleted key"],
)
def test_a_view_edit_past_its_first_key_is_named_by_key(
    store: Store, tamper: Callable[[object, object], None], problem: str
) -> None:
    _fill(store)
    store.environment.write(lambda txn: tamper(txn, store.environment.db("streams")))
    report = store.verify()
    assert not report.ok
    assert f"view 'streams' disagrees with a fresh replay: {problem}" in report.problems[0]


def _verify_with_file_limit(store_path: Path, scratch: Path, fsize: int) -> subprocess.CompletedProcess[str]:
    """`rgstore verify` in a subprocess whose files may not grow past ``fsize`` bytes, its $TMPDIR ``scratch``."""
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, resource.RLIM_INFINITY))

    scratch.mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-m", "rgstore_cli", "--store", str(store_path), "verify"], cwd=REPO,
                          env={**os.environ, "TMPDIR": str(scratch)}, capture_output=True, text=True, timeout=120,
                          preexec_fn=limit)


def _long_history(store_path: Path) -> int:
    """A store whose log (40 notes of 48 kB) dwarfs its views; returns the log's data.mdb size."""
    rnd = random.Random(1)
    with Store.open(store_path) as store:
        for i in range(40):
            store.append([NewEvent(stream=f"audit:n{i}", event=Noted(text=rnd.randbytes(24_000).hex()))])
    return (store_path / "log" / "data.mdb").stat().st_size


def test_verify_needs_scratch_room_for_the_views_not_a_second_copy_of_the_whole_log(store_path: Path,
                                                                                    tmp_path: Path) -> None:
    # The scratch replay copied every log record too: a store used for months needed its whole log's size
    # again in $TMPDIR (often a small tmpfs), and verify failed once the history outgrew it.
    log_size = _long_history(store_path)
    assert log_size > 1_000_000
    done = _verify_with_file_limit(store_path, tmp_path / "scratch", 512 * 1024)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok: 40 events")
    assert list((tmp_path / "scratch").iterdir()) == []


def test_verify_without_scratch_room_says_it_is_tmpdir_and_that_the_store_was_not_changed(store_path: Path,
                                                                                         tmp_path: Path) -> None:
    # Out of room in $TMPDIR, verify said "writing the store's log in /tmp/rgstore-verify-... failed; nothing
    # was committed": it blamed the store and gave no way out.
    _long_history(store_path)
    refused = _verify_with_file_limit(store_path, tmp_path / "scratch", 20 * 1024)
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
    line = refused.stderr
    assert line.startswith(f"error: verify replays the log into scratch views under {tmp_path / 'scratch'} ($TMPDIR)")
    assert "the store was not changed" in line and "TMPDIR=/var/tmp rgstore verify" in line
    assert "writing the store's log" not in line
    assert list((tmp_path / "scratch").iterdir()) == []
    with Store.open(store_path, readonly=True) as store:
        assert store.head()[0] == 40 and store.verify().ok


def _altered(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:-2] + (b"A" if data[-2:-1] != b"A" else b"C") + b"\n")  # same size, other bytes


def test_cache_files_that_are_altered_or_gone_are_named_and_fail_verify_like_cache_verify(
        store: Store, server: Any) -> None:
    from tests.conftest import run_rgstore
    from tests.upstream_fixture import ENSEMBL, base, req

    store.cache.regions(req(ENSEMBL, "gene,CDS"), base_url=base(server, "ensembl"))
    clean = store.verify()
    assert clean.ok and clean.cache_files == 6 and clean.unfetched_cache_files == []
    level1 = store.cache.ls(level=1)[0]
    altered = store.cache_path / level1.path / sorted(level1.files)[0]
    _altered(altered)
    level2 = store.cache.ls(level=2)[0]
    gone = store.cache_path / level2.path / sorted(level2.files)[0]
    gone.unlink()
    report = store.verify()
    assert not report.ok and report.cache_files == 6
    assert {str(p.file) for p in store.cache.verify().problems} == {str(altered), str(gone)}
    [bad] = [p for p in report.problems if str(altered) in p]
    assert "corrupt" in bad and level1.key in bad and "cache verify --evict" in bad
    [missing] = [p for p in report.problems if str(gone) in p]
    assert "missing" in missing and level2.key in missing
    done = run_rgstore("--store", str(store.path), "verify")
    assert done.returncode == 1, done.stdout
    assert str(altered) in done.stderr.decode() and str(gone) in done.stderr.decode()


def test_a_mirror_notes_cache_files_it_has_not_fetched_yet_but_fails_on_one_it_holds_altered(
        store: Store, server: Any, tmp_path: Path) -> None:
    from rgstore.cachecopy import publish_cache
    from rgstore.mirror import pull
    from rgstore.segments import publish
    from tests.conftest import run_rgstore
    from tests.upstream_fixture import ENSEMBL, base, req

    store.cache.regions(req(ENSEMBL, "gene"), base_url=base(server, "ensembl"))
    pub = tmp_path / "pub"
    publish(store, pub)
    publish_cache(store, pub)
    files = sum(len(e.files) for e in store.cache.ls())
    with Store.open(tmp_path / "mirror") as mirror:
        pull(mirror, str(pub))  # the log only: cache files come with --with-blobs
        lazy = mirror.verify()
        assert lazy.ok and lazy.cache_files == files and len(lazy.unfetched_cache_files) == files
        assert not mirror.cache.verify().ok  # `cache verify` alone calls them missing
    shown = run_rgstore("--store", str(tmp_path / "mirror"), "verify")
    assert shown.returncode == 0 and f"not fetched {files} cache files yet" in shown.stdout.decode(), shown.stdout
    with Store.open(tmp_path / "mirror") as mirror:
        pull(mirror, str(pub), with_blobs=True)
        fetched = mirror.verify()
        assert fetched.ok and fetched.unfetched_cache_files == []
        entry = mirror.cache.ls(level=1)[0]
        local = mirror.cache_path / entry.path / "annotation" / "gene.fna"
        _altered(local)
        report = mirror.verify()
    assert not report.ok and len(report.problems) == 1
    assert str(local) in report.problems[0] and "corrupt" in report.problems[0]
    assert "mirror pull SOURCE --with-blobs" in report.problems[0]


def test_the_verify_views_bar_moves_within_the_first_thousand_events_and_still_finds_the_views_sound(
        store: Store) -> None:
    # Its first step came only after a whole REBUILD_BATCH (20,000 events) was folded: seconds at 0% on a big store.
    from rgstore.store import REBUILD_BATCH
    from rgstore.verify import verify_store
    from tests.progress_recorder import Bars

    n = REBUILD_BATCH + 5_000  # past one full batch: the ramp's batches and then a full-size one
    for start in range(0, n, 5_000):
        store.append([NewEvent(stream=f"s{i % 3}", event=Noted(text=f"event {i}")) for i in range(start, start + 5_000)])
    bars = Bars()
    report = verify_store(store, progress=bars)
    assert report.ok, report.problems
    head = store.head()[0]
    assert ["verify views", head, head] in bars.totals()  # every event counted once
    [steps] = [steps for desc, _total, steps in bars.bars if desc == "verify views"]
    assert steps[0] <= 1_000  # type: ignore[index]
    assert "verify views" in bars.closed


def test_a_store_replayed_from_a_log_export_alone_gets_one_hint_to_copy_its_content_after_every_missing_file(
        store: Store, server: Any, tmp_path: Path) -> None:
    # Every blob, cache file and sequence was a FAIL of its own, with nothing saying the log came without them.
    import json
    import shutil

    from tests.conftest import run_rgstore
    from tests.test_genomes import TINY
    from tests.upstream_fixture import ENSEMBL, base, req

    (tmp_path / "tree.nwk").write_text("(a,b);\n")
    store.genomes.init(TINY, ["tiny"])
    store.refpkgs.create("rp", locus="16S", files=[("tree", tmp_path / "tree.nwk")])
    store.cache.regions(req(ENSEMBL, "gene,CDS"), base_url=base(server, "ensembl"))
    clean = store.verify()
    assert clean.ok and clean.hint == "" and clean.missing_content == {}
    blobs, cache_files, sequences = clean.blobs, clean.cache_files, clean.sequences
    assert blobs and cache_files and sequences
    export, new = tmp_path / "x.rglog", tmp_path / "new"
    assert run_rgstore("--store", str(store.path), "log", "export", str(export)).returncode == 0
    assert run_rgstore("replay", str(export), "--store", str(new)).returncode == 0

    shown = run_rgstore("--store", str(new), "verify")
    assert shown.returncode == 1
    lines = shown.stderr.decode().splitlines()
    fails = [line for line in lines if line.startswith("FAIL ")]
    assert len(fails) == blobs + cache_files + sequences  # each missing file still named
    [hint] = [line for line in lines if line.startswith("hint: ")]
    assert lines.index(hint) == len(fails)  # one line, after the problems
    assert f"blobs/ 0 of {blobs} blob" in hint and f"cache/ 0 of {cache_files} cache files" in hint
    assert f"refget/ 0 of {sequences} sequences" in hint and "`rgstore replay`" in hint
    assert "copy blobs/, cache/ and refget/ from the store the log came from" in hint
    assert "`rgstore log publish DIR --with-blobs --with-refget`" in hint
    assert "mirror pull DIR --with-blobs --with-sequences" in hint and "`rgstore cache verify --evict`" in hint
    as_json = json.loads(run_rgstore("--store", str(new), "verify", "--json").stdout)
    assert as_json["ok"] is False and len(as_json["problems"]) == len(fails)
    assert as_json["missing_content"] == {"blobs": [blobs, blobs], "cache_files": [cache_files, cache_files],
                                          "sequences": [sequences, sequences]}
    assert as_json["hint"] == hint.removeprefix("hint: ")

    # Doing what it says mends the store; one file lost among those present then fails with no such hint.
    shutil.rmtree(new / "refget")
    for part in ("blobs", "cache", "refget"):
        shutil.copytree(store.path / part, new / part, dirs_exist_ok=True)
    assert run_rgstore("--store", str(new), "rebuild").returncode == 0
    assert run_rgstore("--store", str(new), "verify").returncode == 0
    next((new / "refget" / "sequences").rglob("*.seq")).unlink()
    with Store.open(new, readonly=True) as copy:
        one_gone = copy.verify()
    assert len(one_gone.problems) == 1 and one_gone.hint == "" and one_gone.missing_content == {}

"""Claims about `rgstore gc`: it frees only what nothing references, and never young content."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from gtars.refget import RefgetStore

from rgstore.gc import collect_garbage
from rgstore.store import Store
from tests.conftest import REPO


def _fasta(path: Path, records: dict[str, str]) -> Path:
    path.write_text("".join(f">{name}\n{seq}\n" for name, seq in records.items()))
    return path


def _collections(store: Store) -> set[str]:
    return {p.stem for p in (store.refget_path / "collections").glob("*.rgsi")}


def test_gc_removes_the_collection_of_a_removed_genome_and_keeps_shared_sequences(tmp_path: Path,
                                                                                   store: Store) -> None:
    shared = "ACGTACGTAAAACCCCGGGGTTTT"
    a = store.genomes.init(_fasta(tmp_path / "a.fa", {"c1": shared, "c2": "TTTTGGGGAAAA"}), ["a"])
    b = store.genomes.init(_fasta(tmp_path / "b.fa", {"c1": shared, "x": "GATTACAGATTACA"}), ["b"])
    a_digest, b_digest = store.genomes.resolve("a"), store.genomes.resolve("b")
    only_b = store.genomes.show("b").sequences[1].removeprefix("SQ.")
    only_b_file = store.refget_path / "sequences" / only_b[:2] / f"{only_b}.seq"
    assert only_b_file.is_file()
    assert (a, b) and {a_digest, b_digest} <= _collections(store)
    store.genomes.remove("b")
    # Young content is kept: it may belong to a command that has not committed yet.
    assert collect_garbage(store).collections_kept_recent == [b_digest]
    assert collect_garbage(store, grace=0, dry_run=True).collections_removed == [b_digest]
    assert b_digest in _collections(store)
    report = collect_garbage(store, grace=0)
    assert report.collections_removed == [b_digest]
    assert _collections(store) == {a_digest}
    assert not only_b_file.exists()  # its own sequence went with it
    # The remaining genome reads as before, the shared sequence included, and gtars agrees.
    assert store.getseq("a", "c1", 0, 24) == shared
    handle = RefgetStore.open_local(str(store.refget_path))
    assert handle.list_collections()["pagination"]["total"] == 1
    assert store.verify().ok


def test_gc_after_refpkg_remove_removes_the_rp_name_link_with_its_blob(tmp_path: Path, store: Store) -> None:
    tree = tmp_path / "tree.nwk"
    tree.write_text("(a:0.1,b:0.2);\n")
    store.refpkgs.create("pkg", locus="L", files=[("tree", tree)])
    link = store.refpkgs.resource_path("pkg", "tree")
    assert link.name == "tree.nwk" and link.is_symlink()
    assert collect_garbage(store, grace=0).name_links_removed == 0 and link.is_symlink()  # still referenced
    store.refpkgs.remove("pkg")
    assert collect_garbage(store).name_links_removed == 0 and link.is_symlink()  # the blob is young: kept with it
    assert collect_garbage(store, grace=0, dry_run=True).name_links_removed == 1 and link.is_symlink()
    report = collect_garbage(store, grace=0)
    assert len(report.removed) == 1 and report.name_links_removed == 1
    assert not link.is_symlink() and not link.parent.exists() and list((store.path / "names").iterdir()) == []
    assert store.verify().ok


def test_gc_removes_a_name_link_whose_blob_is_gone_once_it_is_older_than_the_grace(tmp_path: Path,
                                                                                   store: Store) -> None:
    tree = tmp_path / "tree.nwk"
    tree.write_text("(a:0.1,b:0.2);\n")
    store.refpkgs.create("pkg", locus="L", files=[("tree", tree)])
    link = store.refpkgs.resource_path("pkg", "tree")
    store.refpkgs.remove("pkg")
    store.blobs.delete(link.parent.name)  # gone by other means than gc
    killed_rp = store.path / "names" / ".tmp-0123456789abcdef"
    os.symlink("../blobs/xx/none", killed_rp)
    assert collect_garbage(store).name_links_removed == 0 and link.is_symlink()  # young: an rp may be at work
    old = time.time() - 3600
    for entry in (link, killed_rp):
        os.utime(entry, (old, old), follow_symlinks=False)
    assert collect_garbage(store).name_links_removed == 2
    assert list((store.path / "names").iterdir()) == []


def test_gc_keeps_a_removed_genomes_sequence_that_a_sequence_alias_names_so_gtars_still_resolves_it(
        tmp_path: Path, store: Store) -> None:
    store.genomes.init(_fasta(tmp_path / "z.fa", {"z1": "GATTACAGATTACACCCC", "z2": "TTTTGGGG"}), ["z"])
    z1 = store.genomes.show("z").sequences[0].removeprefix("SQ.")
    store.aliases.set("insdc:Z1", z1, sequence=True)
    store.genomes.remove("z")
    assert collect_garbage(store, grace=0, dry_run=True).collections_removed == []  # a dry run says the same
    assert collect_garbage(store, grace=0).collections_removed == []  # kept while the alias needs it
    # gtars alone, as any tool opening STORE/refget would: the alias still resolves and reads.
    handle = RefgetStore.open_local(str(store.refget_path))
    handle.set_quiet(True)
    found = handle.get_sequence_metadata_by_alias("insdc", "Z1")
    assert found is not None and found.sha512t24u == z1
    assert handle.get_substring(z1, 0, 18) == "GATTACAGATTACACCCC"
    assert store.verify().ok



def test_gc_removes_a_collection_kept_for_a_sequence_alias_with_all_its_sequences_once_the_alias_goes(
        tmp_path: Path, store: Store) -> None:
    # gtars removes sequences only with their collection: removing the collection while keeping its
    # orphans (for one aliased chrM, say) kept every other sequence of the genome for good.
    store.genomes.init(_fasta(tmp_path / "z.fa", {"z1": "GATTACAGATTACACCCC", "z2": "TTTTGGGGCCCCAAAA"}), ["z"])
    z1, z2 = (s.removeprefix("SQ.") for s in store.genomes.show("z").sequences)
    files = [store.refget_path / "sequences" / d[:2] / f"{d}.seq" for d in (z1, z2)]
    store.aliases.set("insdc:Z1", z1, sequence=True)
    store.genomes.remove("z")
    collect_garbage(store, grace=0)
    assert all(f.is_file() for f in files)
    store.aliases.remove("insdc:Z1", sequence=True)
    assert len(collect_garbage(store, grace=0).collections_removed) == 1
    assert _collections(store) == set() and not any(f.exists() for f in files)
    assert store.verify().ok

def test_gc_keeps_every_collection_a_genome_names(tmp_path: Path, store: Store) -> None:
    store.genomes.init(_fasta(tmp_path / "a.fa", {"c1": "ACGTACGT"}), ["a"])
    assert collect_garbage(store, grace=0).collections_removed == []
    assert store.getseq("a", "c1", 0, 8) == "ACGTACGT"


def test_a_grace_that_is_not_a_number_of_seconds_is_refused_and_removes_nothing(store: Store) -> None:
    import pytest

    from rgstore.errors import InvalidInputError

    info, _ = store.blobs.put_bytes(b"written by a command that has not committed yet")
    for grace in (float("nan"), -1.0):
        with pytest.raises(InvalidInputError, match="grace"):
            collect_garbage(store, grace=grace)
    assert store.blobs.exists(info.sha256)
    assert collect_garbage(store, grace=float("inf")).kept_recent == [info.sha256]


def test_gc_keeps_blobs_only_the_undo_and_redo_history_references(tmp_path: Path, store: Store) -> None:
    first = _fasta(tmp_path / "a.fa", {"s1": "ACGT"})
    second = _fasta(tmp_path / "b.fa", {"s1": "GGCC"})
    store.refpkgs.create("p", locus="16S", files=[("aln_fasta", first)])
    store.refpkgs.update_files("p", [("aln_fasta", str(second))])
    store.refpkgs.rollback("p")  # `second` is now only on the redo side
    assert collect_garbage(store, grace=0).removed == []
    store.refpkgs.rollforward("p")
    assert store.refpkgs.resource_path("p", "aln_fasta").read_text() == second.read_text()
    store.refpkgs.strip("p")  # history dropped: `first` is referenced by nothing
    removed = collect_garbage(store, grace=0).removed
    assert len(removed) == 1 and store.verify().ok


_SCRATCH_HOLDER = (
    "import sys, time\nfrom rgstore.store import Store\nfrom rgstore.refgetstore import scratch_dir\n"
    "store = Store.open(sys.argv[1])\n"
    "with scratch_dir(store, sys.argv[2]) as path:\n"
    "    (path / 'input.fa').write_text('>c1\\nACGT\\n')\n"
    "    print(path, flush=True)\n    time.sleep(120)\n"
)


def _scratch_in(store_path: Path, prefix: str) -> tuple[subprocess.Popen[str], Path]:
    proc = subprocess.Popen([sys.executable, "-c", _SCRATCH_HOLDER, str(store_path), prefix], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line, proc.communicate()
    return proc, Path(line)


def test_gc_removes_scratch_directories_of_killed_imports_but_not_one_in_use(store_path: Path) -> None:
    Store.open(store_path).close()
    killed, left = _scratch_in(store_path, ".ingest-")
    killed.send_signal(signal.SIGKILL)
    killed.communicate()
    fetching, live = _scratch_in(store_path, ".remote-")
    try:
        old = time.time() - 3600
        for path in (left, live):
            os.utime(path, (old, old))
        with Store.open(store_path) as store:
            assert collect_garbage(store, dry_run=True).scratch_removed == [left.name]
            assert left.is_dir()
            assert collect_garbage(store, grace=0).scratch_removed == [left.name]
        assert not left.exists() and (live / "input.fa").is_file()  # a live process holds it
    finally:
        fetching.kill()
        fetching.communicate()


def test_gc_removes_a_refget_writer_lock_its_killed_owner_left_but_not_a_live_ones(store_path: Path) -> None:
    from rgstore.refgetlock import LOCK_NAME

    Store.open(store_path).close()
    holder = (
        "import sys, time\nfrom pathlib import Path\nfrom rgstore.refgetlock import refget_write_lock\n"
        "with refget_write_lock(Path(sys.argv[1]), 'test-holder'):\n    print('held', flush=True)\n    time.sleep(120)\n"
    )
    lock = store_path / "refget" / LOCK_NAME
    for kill in (True, False):
        proc = subprocess.Popen([sys.executable, "-c", holder, str(store_path / "refget")], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        try:
            if kill:
                proc.send_signal(signal.SIGKILL)
                proc.communicate()
            with Store.open(store_path) as store:
                collect_garbage(store, grace=0)
            assert lock.exists() is not kill
        finally:
            proc.kill()
            proc.communicate()


def test_gc_waiting_for_a_busy_refget_store_does_not_hold_up_other_commands(tmp_path: Path) -> None:
    from rgstore.refgetlock import refget_write_lock

    path = tmp_path / "s"
    with Store.open(path) as store:
        store.genomes.init(_fasta(tmp_path / "a.fa", {"c1": "ACGTACGTAAAACCCCGGGG"}), ["a"])
        store.genomes.init(_fasta(tmp_path / "b.fa", {"x": "GATTACAGATTACA"}), ["b"])
        b_digest = store.genomes.resolve("b")
        a_digest = store.genomes.resolve("a")
        store.genomes.remove("b")
    rgstore = [sys.executable, "-m", "rgstore_cli", "--store", str(path)]
    with refget_write_lock(path / "refget", "test-a-long-import", timeout=5):
        gc = subprocess.Popen([*rgstore, "gc", "--grace", "0"], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
        time.sleep(2)  # gc is now waiting for the RefgetStore (up to its 120 s lock timeout)
        assert gc.poll() is None
        # An unrelated command needs only LMDB's writer: gc must not be holding it while it waits.
        other = subprocess.run([*rgstore, "refpkg", "create", "pkg", "-l", "16S"], cwd=REPO,
                               capture_output=True, timeout=60)
        assert other.returncode == 0, other.stderr
    out, err = gc.communicate(timeout=60)
    assert gc.returncode == 0, err
    with Store.open(path, readonly=True) as store:
        assert _collections(store) == {a_digest} and b_digest not in _collections(store)


def test_gc_removes_temp_files_a_killed_alias_refresh_left_under_refget_but_not_a_live_ones(store_path: Path) -> None:
    from tests.test_genomes import TINY

    with Store.open(store_path) as store:
        digest = store.genomes.init(TINY, ["tiny"]).genome.digest
    # The child stops inside the alias TSV refresh, its temp file written but not yet renamed.
    child = (
        "import os, sys, time\nfrom pathlib import Path\nimport rgstore.files as files\nfrom rgstore.store import Store\n"
        "real = os.replace\n"
        "def replace(src, dst):\n"
        "    if str(dst).endswith('.tsv'):\n        print('writing', flush=True)\n        time.sleep(120)\n"
        "    real(src, dst)\n"
        "files.os.replace = replace\n"
        "Store.open(Path(sys.argv[1])).aliases.set(sys.argv[3], sys.argv[2], namespace='chaos')\n"
    )
    tsvs = store_path / "refget" / "aliases" / "collections"
    for kill, name in ((True, "x"), (False, "y")):
        proc = subprocess.Popen([sys.executable, "-c", child, str(store_path), digest, name], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "writing", proc.communicate()
            temps = list(tsvs.glob(".chaos.tsv.*.tmp"))
            assert len(temps) == 1
            if kill:
                proc.send_signal(signal.SIGKILL)
                proc.communicate()
            with Store.open(store_path) as store:
                report = collect_garbage(store, grace=0)
            assert temps[0].exists() is not kill
            assert report.temp_files_removed == (1 if kill else 0)
        finally:
            proc.kill()
            proc.communicate()
    with Store.open(store_path) as store:  # the live child was killed at last: its temp file goes too
        assert collect_garbage(store, grace=0).temp_files_removed == 1
        assert store.verify().ok
        assert (tsvs / "chaos.tsv").read_text() == f"x\t{digest}\ny\t{digest}\n"
    assert not list(tsvs.glob(".*.tmp"))


def test_gc_removes_the_temp_file_a_killed_sequence_repair_left_but_not_a_live_one(tmp_path: Path, store: Store) -> None:
    # Re-adding a FASTA rewrites a damaged data file through a temp file beside it; a SIGKILL mid-write left
    # up to a chromosome's size there that nothing ever removed.
    store.genomes.init(_fasta(tmp_path / "a.fa", {"c1": "ACGTACGTAAAACCCC"}), ["a"])
    folder = next((store.refget_path / "sequences").rglob("*.seq")).parent
    dead, live = folder / ".tmp-k1ll3d00", folder / ".tmp-w0rk1ng0"
    dead.write_bytes(b"ACGT" * 1000)
    live.write_bytes(b"ACGT")
    os.utime(dead, (time.time() - 3600, time.time() - 3600))
    assert collect_garbage(store, dry_run=True).temp_files_removed == 1 and dead.exists()
    assert collect_garbage(store).temp_files_removed == 1
    assert not dead.exists() and live.exists()
    assert store.verify().ok


def test_gc_removes_gtars_own_temp_files_a_killed_commit_left_and_sequence_ones_only_once_aged(
        tmp_path: Path, store: Store) -> None:
    # gtars publishes the manifest, alias TSVs and FHR files through `.rgstore.tmp.<pid>.<ns>.<n>` beside the
    # target, under its writer lock; a SIGKILL of `genome init` between write and rename left one in refget/
    # that no gc ever removed. Sequence and collection files are written outside that lock: only age tells.
    store.genomes.init(_fasta(tmp_path / "a.fa", {"c1": "ACGTACGTAAAACCCC"}), ["a"])
    refget = store.refget_path
    seqs = next((refget / "sequences").rglob("*.seq")).parent
    under_lock = [refget / ".rgstore.tmp.4242.1763790000000000000.0",
                  *(folder / ".rgstore.tmp.4242.1763790000000000001.0"
                    for folder in (refget / "fhr", *(refget / "aliases").glob("*")))]
    for path in under_lock:
        path.write_text("{}")
    old_seq, new_seq = seqs / ".rgstore.tmp.4242.1.0", seqs / ".rgstore.tmp.4343.2.0"
    old_rgsi, new_rgsi = refget / "collections" / ".rgstore.tmp.4242.3.0", refget / "collections" / ".rgstore.tmp.4343.4.0"
    for path in (old_seq, new_seq, old_rgsi, new_rgsi):
        path.write_bytes(b"ACGT")
    for path in (old_seq, old_rgsi):
        os.utime(path, (time.time() - 3600, time.time() - 3600))
    wanted = len(under_lock) + 2
    assert collect_garbage(store, dry_run=True).temp_files_removed == wanted
    assert all(p.exists() for p in [*under_lock, old_seq, old_rgsi])
    assert collect_garbage(store, grace=0).temp_files_removed == wanted
    assert not any(p.exists() for p in [*under_lock, old_seq, old_rgsi]) and new_seq.exists() and new_rgsi.exists()
    assert store.genomes.getseq("a", "c1", 0, 4) == "ACGT" and store.verify().ok


def test_gc_leaves_the_collection_file_a_running_genome_init_is_writing_before_it_takes_the_lock(
        tmp_path: Path, store: Store) -> None:
    # gtars writes `collections/<digest>.rgsi` through a `.rgstore.tmp.*` file BEFORE it takes the writer lock
    # to commit (strace of `genome init`): a gc that held the free lock deleted it, and the import failed with
    # "atomically publishing ... collections/....rgsi (temp file ...)". A fresh one belongs to a live writer.
    store.genomes.init(_fasta(tmp_path / "a.fa", {"c1": "ACGTACGTAAAACCCC"}), ["a"])
    live = store.refget_path / "collections" / f".rgstore.tmp.{os.getpid()}.1795328375607283919.0"
    live.write_bytes(b"a collection index being written")
    report = collect_garbage(store, grace=0)
    assert report.temp_files_removed == 0 and live.exists()
    assert not (store.refget_path / ".rgstore.lock").exists()  # gc took and released the lock meanwhile


def test_gc_removes_a_writer_lock_file_a_killed_writer_never_linked_into_place_once_aged(
        tmp_path: Path, store: Store) -> None:
    # The writer lock is written under a private name and then linked into place; a writer killed in
    # between leaves that file. A fresh one may be a live contender's, about to be linked.
    store.genomes.init(_fasta(tmp_path / "a.fa", {"c1": "ACGTACGTAAAACCCC"}), ["a"])
    dead = store.refget_path / ".rgstore.lock.4242.1763790000000000000.new"
    live = store.refget_path / f".rgstore.lock.{os.getpid()}.{time.time_ns()}.new"
    for path in (dead, live):
        path.write_text('{"pid": 4242}')
    os.utime(dead, (time.time() - 3600, time.time() - 3600))
    assert collect_garbage(store, grace=0).temp_files_removed == 1
    assert not dead.exists() and live.exists() and store.verify().ok


def test_gc_removes_a_collection_file_an_import_wrote_but_never_committed_once_aged(
        tmp_path: Path, store: Store) -> None:
    # gtars writes `collections/<digest>.rgsi` before it locks to commit; an import that then fails (a
    # read-only `sequences/`) or is killed leaves that file with no line in `collections.rgci`. gtars
    # cannot remove a collection its index does not list, so every gc kept it for good.
    store.genomes.init(_fasta(tmp_path / "a.fa", {"c1": "ACGTACGTAAAACCCC"}), ["a"])
    elsewhere = tmp_path / "elsewhere"
    handle = RefgetStore.on_disk(str(elsewhere))
    meta, _ = handle.add_sequence_collection_from_fasta(str(_fasta(tmp_path / "b.fa", {"c9": "GGGGCCCCAAAT"})))
    stray = store.refget_path / "collections" / f"{meta.digest}.rgsi"
    stray.write_bytes((elsewhere / "collections" / f"{meta.digest}.rgsi").read_bytes())
    listed_before = (store.refget_path / "collections.rgci").read_bytes()
    assert collect_garbage(store, grace=0).collections_removed == [] and stray.exists()  # fresh: maybe live
    os.utime(stray, (time.time() - 3600, time.time() - 3600))
    assert collect_garbage(store, dry_run=True).collections_removed == [meta.digest] and stray.exists()
    report = collect_garbage(store)
    assert report.collections_removed == [meta.digest] and not stray.exists()
    assert (store.refget_path / "collections.rgci").read_bytes() == listed_before
    assert store.genomes.getseq("a", "c1", 0, 4) == "ACGT" and store.verify().ok

"""Claims: a write the disk refuses (full, a file size limit) is one line that says what was kept, and the store stays sound.

A file size limit (RLIMIT_FSIZE, with SIGXFSZ ignored: writes fail with EFBIG) stands in for a
full disk in a subprocess; a small tmpfs is used too where this machine lets the test mount one.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from rgstore.diskspace import os_error_text, short_of_space
from rgstore.errors import DiskWriteError, ExternalSyncError
from rgstore.store import Store
from tests.conftest import REPO


def _rgstore(*args: str | Path, fsize: int | None = None) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess, its files limited to ``fsize`` bytes (writes past it fail with EFBIG)."""

    def limit() -> None:
        if fsize is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, resource.RLIM_INFINITY))

    return subprocess.run([sys.executable, "-m", "rgstore_cli", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=120, preexec_fn=limit)


def _genome(store_path: Path, tmp_path: Path) -> str:
    fasta = tmp_path / "g.fa"
    fasta.write_text(">c1\n" + "ACGT" * 50 + "\n>c2\nGGCC\n")
    with Store.open(store_path, actor="t@x") as store:
        return store.genomes.init(fasta, ["g"]).genome.digest


def _one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("error: ")
    return proc.stderr


def test_a_log_commit_the_disk_refuses_is_one_line_saying_nothing_was_committed(store_path: Path,
                                                                                 tmp_path: Path) -> None:
    # LMDB's commit failed with EIO/ENOSPC/EFBIG and the CLI called the store unusable ("is --store an rgstore store?").
    digest = _genome(store_path, tmp_path)
    refused = _rgstore("--store", store_path, "alias", "set", "other", digest, fsize=0)
    line = _one_error_line(refused)
    assert "writing the store's log in" in line and "nothing was committed" in line and "ulimit -f" in line
    assert "is --store an rgstore store" not in line
    assert _rgstore("--store", store_path, "verify").returncode == 0
    with Store.open(store_path, readonly=True) as store:
        assert store.head()[0] == 2 and [a.name for a in store.aliases.list()] == ["g"]
    assert _rgstore("--store", store_path, "alias", "set", "other", digest).returncode == 0


def test_a_blob_the_disk_refuses_names_the_blob_directory_and_leaves_no_temp_file(store_path: Path,
                                                                                   tmp_path: Path) -> None:
    # The write's bare OSError reached the CLI as "error: File too large", naming no file.
    Store.open(store_path).close()
    big = tmp_path / "seqs.fasta"
    big.write_text("".join(f">s{i}\n{'ACGT' * 60}\n" for i in range(400)))
    refused = _rgstore("--store", store_path, "refpkg", "create", "p", "-l", "16S", "-f", big,
                       fsize=big.stat().st_size // 2)
    line = _one_error_line(refused)
    assert f"no room for a blob in {store_path / 'blobs'}" in line and "was not written" in line
    assert list((store_path / "blobs").glob(".tmp-*")) == []
    with Store.open(store_path) as store:
        assert store.head()[0] == 0 and store.verify().ok


def test_exports_the_disk_refuses_name_their_target_and_leave_nothing_behind(store_path: Path,
                                                                            tmp_path: Path) -> None:
    # A bare "error: File too large" (no path) reached the user from log export and refpkg export.
    _genome(store_path, tmp_path)
    seqs = tmp_path / "seqs.fasta"
    seqs.write_text("".join(f">s{i}\n{'ACGT' * 60}\n" for i in range(400)))
    assert _rgstore("--store", store_path, "refpkg", "create", "p", "-l", "16S", "-f", seqs).returncode == 0
    out = tmp_path / "out"
    out.mkdir()
    cases = [("log", "export", out / "log.rglog"), ("refpkg", "export", "p", out / "p.tar.gz"),
             ("refpkg", "export", "p", out / "pdir")]
    for *command, target in cases:
        line = _one_error_line(_rgstore("--store", store_path, *command, target, fsize=256))
        assert f"no room for {target.name} in {out}" in line and "it was not written" in line, line
    assert list(out.iterdir()) == []
    assert _rgstore("--store", store_path, "verify").returncode == 0


def test_a_publish_whose_blob_or_refget_copies_the_disk_refuses_names_what_and_where_in_one_line(
        store_path: Path, tmp_path: Path) -> None:
    # `log publish --with-blobs` (and --with-refget) ended in a bare "error: File too large", naming nothing.
    _genome(store_path, tmp_path)
    seqs = tmp_path / "seqs.fasta"
    seqs.write_text("".join(f">s{i}\n{'ACGT' * 60}\n" for i in range(400)))
    assert _rgstore("--store", store_path, "refpkg", "create", "p", "-l", "16S", "-f", seqs).returncode == 0
    published = tmp_path / "published"
    for flag, what, where in (("--with-blobs", "a published blob", published / "blobs"),
                              ("--with-refget", "a published RefgetStore file", published / "refget")):
        line = _one_error_line(_rgstore("--store", store_path, "log", "publish", published, flag, fsize=0))
        assert line.startswith(f"error: no room for {what} in {where} (File too large; "), line
        assert list(published.rglob("*.tmp")) == [] and not (published / "manifest.json").exists()
    assert _rgstore("--store", store_path, "log", "publish", published, "--with-blobs", "--with-refget").returncode == 0


def test_a_copy_that_fails_names_both_of_its_ends() -> None:
    exc = OSError(28, "No space left on device", "in.fa", None, "store/.ingest-x/input.fa")
    assert os_error_text(exc) == "No space left on device: in.fa -> store/.ingest-x/input.fa"
    assert os_error_text(OSError(28, "No space left on device")) == "No space left on device"


def test_a_disk_with_room_is_not_short_of_space(tmp_path: Path) -> None:
    assert short_of_space(tmp_path, 1) is None
    assert short_of_space(tmp_path, 1 << 62) is not None


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 12 MiB tmpfs with room for 400 files (skipped where this process may not mount one)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m,nr_inodes=400", "tmpfs", str(mnt)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.mark.parametrize("in_child", [False, True])
def test_a_fasta_the_disk_has_no_room_for_is_called_a_full_disk_not_a_bad_fasta(
        small_disk: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_child: bool) -> None:
    # gtars reported "Inserter stopped receiving" and rgstore blamed the FASTA (InvalidInputError).
    # In a child, gtars' error reaches this process as a reply: it must map the same way.
    from rgstore import refgetstore

    monkeypatch.setattr(refgetstore, "CHILD_IMPORT_MIN_BYTES", 0 if in_child else 1 << 62)
    fasta = tmp_path / "big.fa"  # on another filesystem: the import copies it in (~8 MB), then needs ~8 MB more
    with fasta.open("w") as fh:
        for name, unit in (("c1", "ACGTTGCAAC"), ("c2", "TTGACCGTAA")):  # distinct: gtars stores each once
            fh.write(f">{name}\n" + (unit * 6 + "\n") * 66_000)
    store_path = small_disk / "store"
    with Store.open(store_path, actor="t@x") as store:
        with pytest.raises(DiskWriteError, match=r"the store's disk has [\d,]+ free: free space"):
            store.genomes.init(fasta, ["big"])
        assert store.head()[0] == 0 and list(store_path.glob(".ingest-*")) == []
        assert store.verify().ok


def test_a_fasta_copy_the_stores_disk_has_no_room_for_is_a_disk_error_naming_the_store_and_its_free_space(
        small_disk: Path, tmp_path: Path) -> None:
    # A FASTA on another filesystem is copied into the store's scratch area first; a full disk there
    # raised shutil's bare OSError ("error: No space left on device: ..." without the free space).
    fasta = tmp_path / "huge.fa"  # ~14 MB: more than the whole 12 MiB disk
    with fasta.open("w") as fh:
        fh.write(">c1\n" + ("ACGTTGCAAC" * 6 + "\n") * 230_000)
    store_path = small_disk / "store"
    with Store.open(store_path, actor="t@x") as store:
        with pytest.raises(DiskWriteError, match=rf"^no room for a copy of the FASTA {fasta} in {store_path} "
                                                 r"\(No space left on device; [\d,]+ bytes free\)"):
            store.genomes.init(fasta, ["huge"])
        assert store.head()[0] == 0 and list(store_path.glob(".ingest-*")) == []
        assert store.verify().ok


def test_a_collection_index_repair_a_file_size_limit_refuses_is_one_cli_line_naming_the_fasta(
        store_path: Path, tmp_path: Path) -> None:
    # Re-adding a FASTA whose collections/<digest>.rgsi is gone re-imports it with gtars' force; that
    # import's OSError reached the CLI bare ("error: Error importing FASTA: File too large (os error 27)").
    import random

    rng = random.Random(3)
    fasta = tmp_path / "many.fa"  # 200 records: the collection index is the largest file the repair writes
    fasta.write_text("".join(f">c{i}\n{''.join(rng.choices('ACGT', k=20))}\n" for i in range(200)))
    with Store.open(store_path, actor="t@x") as store:
        digest = store.genomes.init(fasta, ["g"]).genome.digest
        head = store.head()[0]
    index = store_path / "refget" / "collections" / f"{digest}.rgsi"
    size, others = index.stat().st_size, max(p.stat().st_size for p in (store_path / "refget").iterdir() if p.is_file())
    assert size > others + 100  # a limit between them lets the plain import through and refuses the repair
    index.unlink()
    refused = _rgstore("--store", store_path, "genome", "init", "--fasta", fasta, "--name", "g",
                       fsize=(size + others) // 2)
    line = _one_error_line(refused)
    assert line.startswith(f"error: {fasta}: the RefgetStore import failed (")
    assert "File too large" in line and "ulimit -f" in line
    assert not index.exists()
    assert _rgstore("--store", store_path, "genome", "init", "--fasta", fasta, "--name", "g").returncode == 0
    assert index.is_file()
    with Store.open(store_path, readonly=True) as store:
        assert store.head()[0] == head and store.verify().ok


def test_a_fasta_copy_a_file_size_limit_refuses_is_one_cli_line_naming_the_store(store_path: Path) -> None:
    # The same copy under RLIMIT_FSIZE, from the CLI: a bare "error: File too large: ... -> ..." before.
    shm = Path("/dev/shm")
    if not shm.is_dir() or not os.access(shm, os.W_OK) or shm.stat().st_dev == store_path.parent.stat().st_dev:
        pytest.skip("needs a writable /dev/shm on another filesystem than the store, so the FASTA is copied")
    Store.open(store_path).close()
    fasta = Path(tempfile.mkdtemp(dir=shm)) / "g.fa"
    try:
        fasta.write_text(">c1\n" + ("ACGTTGCAAC" * 6 + "\n") * 20_000)  # 1.2 MB, past the 1 MiB limit
        line = _one_error_line(_rgstore("--store", store_path, "genome", "init", "--fasta", fasta, "--name", "g",
                                        fsize=1 << 20))
        assert line.startswith(f"error: no room for a copy of the FASTA {fasta} in {store_path} (File too large; ")
    finally:
        shutil.rmtree(fasta.parent)
    assert list(store_path.glob(".ingest-*")) == []
    with Store.open(store_path, readonly=True) as store:
        assert store.head()[0] == 0


def test_an_alias_file_refresh_the_full_disk_refuses_after_the_commit_says_the_change_was_recorded(
    small_disk: Path, tmp_path: Path
) -> None:
    # The bare OSError (ENOSPC) reached the CLI as "error: No space left on device": a failure, though committed.
    store_path = small_disk / "store"
    digest = _genome(store_path, tmp_path)
    fillers = small_disk / "fillers"
    fillers.mkdir()
    with Store.open(store_path, actor="t@x") as store:
        head = store.head()[0]
        try:
            for i in range(1000):  # use up the inodes: the command's pending mark takes the last one
                (fillers / str(i)).touch()
        except OSError:
            (fillers / "0").unlink()
        with pytest.raises(ExternalSyncError, match=r"^alias change recorded, but .*No space left on device.*; the next"):
            store.aliases.set("other", digest)
        assert store.head()[0] == head + 1 and store.aliases.get("other") == digest
    shutil.rmtree(fillers)
    with Store.open(store_path) as reopened:  # its pending mark: the next writable open refreshes the copy
        tsv = reopened.refget_path / "aliases" / "collections" / "refgenie.tsv"
        assert f"other\t{digest}\n" in tsv.read_text()
        assert reopened.verify().ok


_NCBI = ("--source", "ncbi", "--species", "synthetica_testii", "--taxon", "9606", "--release", "RS_2024_01",
         "--assembly", "GCF_000001405.40")


def test_a_cache_download_the_disk_refuses_is_one_line_and_the_rerun_resumes_it(store_path: Path, server) -> None:  # type: ignore[no-untyped-def]
    # A quota (or a disk filling between two free-space checks) ended in a bare "error: File too large".
    Store.open(store_path, actor="t@x").close()
    args = ("--store", store_path, "cache", "fetch-raw", *_NCBI, "--base-url", f"{server.url}/ncbi")
    line = _one_error_line(_rgstore(*args, fsize=20_000))
    assert line.startswith("error: stopped downloading http://") and "the disk refused a write" in line
    assert "run the command again to resume it" in line
    assert _rgstore(*args).returncode == 0
    assert [g.range for g in server.gets("_genomic.fna.gz")] == [None, "bytes=20000-"]


def test_a_decompression_or_extraction_the_disk_refuses_is_one_line_and_caches_nothing(store_path: Path, server) -> None:  # type: ignore[no-untyped-def]
    # gunzip's and the region writer's bare EFBIG/ENOSPC named neither the file nor the disk.
    Store.open(store_path, actor="t@x").close()
    fetch = ("--store", store_path, "cache", "fetch-raw", *_NCBI, "--base-url", f"{server.url}/ncbi")
    line = _one_error_line(_rgstore(*fetch, fsize=60_000))  # the 43 kB download fits, the genome it unpacks not
    assert line.startswith("error: no room for the decompressed genome.fna in ")
    assert _rgstore(*fetch).returncode == 0
    assert len(server.gets("_genomic.fna.gz")) == 1  # the verified download was kept and reused
    regions = ("--store", store_path, "cache", "regions", *_NCBI, "--base-url", f"{server.url}/ncbi")
    line = _one_error_line(_rgstore(*regions, fsize=1_000))
    assert line.startswith("error: no room for a region FASTA in ")
    assert list((store_path / "cache").glob(".tmp-*")) == []
    with Store.open(store_path) as store:
        assert store.verify().ok and store.cache.verify().ok


def _to_stdout(stdout: Path, *args: str | Path, fsize: int | None = None) -> subprocess.CompletedProcess[str]:
    """The real CLI with its stdout opened on ``stdout`` (``> /dev/full``), its files limited to ``fsize`` bytes."""

    def limit() -> None:
        if fsize is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, resource.RLIM_INFINITY))

    with open(stdout, "w") as out:
        return subprocess.run([sys.executable, "-m", "rgstore_cli", *map(str, args)], cwd=REPO, stdout=out,
                              stderr=subprocess.PIPE, text=True, timeout=120, preexec_fn=limit)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_output_a_full_device_or_disk_refuses_is_one_line_naming_where_it_went(store_path: Path,
                                                                              tmp_path: Path) -> None:
    # genome export to /dev/full (or `-`, or getseq, with stdout on /dev/full) said only
    # "error: No space left on device", naming neither OUT nor standard output.
    _genome(store_path, tmp_path)
    packed = tmp_path / "full.fa.gz"  # BGZF, written in place into the device the link names
    packed.symlink_to("/dev/full")
    for out in ("/dev/full", packed):
        line = _one_error_line(_to_stdout(tmp_path / "unused", "--store", store_path, "genome", "export", "g", out))
        assert line == (f"error: no room for {out} (No space left on device); the output is incomplete: "
                        "free space and run the command again\n")
    for command in (("genome", "export", "g", "-"), ("getseq", "g", "c1")):
        line = _one_error_line(_to_stdout(Path("/dev/full"), "--store", store_path, *command))
        assert line.startswith("error: no room for standard output (/dev/full: No space left on device); "), line
    line = _one_error_line(_to_stdout(Path("/dev/full"), "--store", store_path, "genome", "export", "g", "/dev/stdout"))
    assert line.startswith("error: no room for /dev/stdout (/dev/full: No space left on device); "), line
    # Standard output on a regular file of a full disk names the file and the free space of its disk.
    shell_file = tmp_path / "redirected.fa"
    line = _one_error_line(_to_stdout(shell_file, "--store", store_path, "genome", "export", "g", "-", fsize=64))
    assert line.startswith(f"error: no room for standard output ({shell_file}: File too large; ") and "bytes free" in line
    assert (tmp_path / "unused").read_text() == ""


def test_a_store_creation_a_file_size_limit_refuses_is_one_line_and_leaves_no_refget_lock(tmp_path: Path) -> None:
    # gtars' RefgetStore creation said "Error writing store: File too large (os error 27)" and left its lock
    # file empty: the next `rgstore init` waited (silently) for the lock to go stale, STALE_AFTER_S.
    store_path = tmp_path / "s"
    line = _one_error_line(_rgstore("--store", store_path, "init", fsize=0))
    assert f"creating the store's RefgetStore in {store_path / 'refget'} failed" in line and "ulimit -f" in line
    assert list((store_path / "refget").glob(".rgstore.lock*")) == []
    assert _rgstore("--store", store_path, "init").returncode == 0
    with Store.open(store_path) as store:
        assert store.verify().problems == []


def test_a_sequence_larger_than_the_file_size_limit_is_a_disk_error_not_a_bad_fasta(store_path: Path,
                                                                                   tmp_path: Path) -> None:
    # gtars says only "Error importing FASTA: Inserter stopped receiving", which was shown as a bad input.
    _genome(store_path, tmp_path)
    fasta = tmp_path / "long.fa"
    fasta.write_text(">long\n" + "ACGT" * 5000 + "\n")
    line = _one_error_line(_rgstore("--store", store_path, "genome", "init", "--fasta", fasta, "--name", "long",
                                    fsize=8192))
    assert "a sequence of 20,000 residues needs a file larger than this process's file size limit" in line, line
    assert "(8,192 bytes, ulimit -f)" in line
    assert _rgstore("--store", store_path, "genome", "init", "--fasta", fasta, "--name", "long").returncode == 0
    with Store.open(store_path) as store:
        assert store.verify().problems == []

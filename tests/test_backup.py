"""Claims about `rgstore backup`: a consistent, verified copy of a live store, refused over anything existing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from rgstore.backup import backup
from rgstore.errors import ConflictError, InvalidInputError
from rgstore.progress import NullProgress
from rgstore.replay import export_log, replay_file
from rgstore.store import Store
from tests.conftest import REPO
from tests.refpkg_data import write_inputs
from tests.test_sharing import _OUTSIDER, _as_user, needs_root, outsiders_lab, readers_may_lock
from tests.upstream_fixture import ENSEMBL, base

TINY = REPO / "rgstore" / "data" / "tiny.fa"

_WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from rgstore.store import Store
    path, fasta = sys.argv[1], Path(sys.argv[2])
    with Store.open(path, actor="writer@test") as s:
        digest = s.genomes.resolve("tiny")
        print("started", flush=True)
        for i in range(400):
            s.aliases.set(f"a{i}", digest, namespace=f"ns{i % 13}")
            if i == 150:  # a genome mid-way: the RefgetStore changes while the backup may be copying it
                fasta.write_text(">x\\n" + "ACGT" * (50 + i) + "\\n")
                s.genomes.init(fasta, ["second"])
    print("done", flush=True)
""")


def _fill(store: Store, tmp_path: Path) -> None:
    store.genomes.init(TINY, ["tiny"])
    store.genomes.fhr_set("tiny", {"schema": "https://w3id.org/fhr", "genome": "tiny", "version": "1"})
    files = write_inputs(tmp_path / "pkg")
    store.refpkgs.create("pkg", locus="16S", files=[("tree", files["tree"]), ("aln_fasta", files["aln_fasta"])])


def test_a_backup_to_an_empty_path_is_refused_in_one_line(store: Store) -> None:
    with pytest.raises(InvalidInputError, match="^empty path for the backup directory; name one$"):
        backup(store, "")


def test_a_backup_taken_while_another_process_writes_verifies_and_reads_like_the_store(
        tmp_path: Path, store_path: Path) -> None:
    with Store.open(store_path) as store:
        _fill(store, tmp_path)
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(store_path), str(tmp_path / "second.fa")],
                              cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "started"
        dests = []
        with Store.open(store_path, readonly=True) as store:
            for k in range(3):
                dests.append(tmp_path / f"bk{k}")
                result = backup(store, dests[-1])
                assert result.verified and result.head_seq > 0
    finally:
        assert writer.wait(timeout=120) == 0
    heads = []
    for dest in dests:
        with Store.open(dest) as copy:
            report = copy.verify()
            assert report.ok, report.problems
            heads.append(copy.head()[0])
            assert copy.getseq("tiny", "chrM", 0, 10)
            assert copy.refpkgs.info("pkg")
            assert copy.genomes.fhr_get("tiny")["version"] == "1"
            names = {a.name for a in copy.aliases.list()}
            # The alias TSVs hold the snapshot's aliases, not what the writer added after it.
            tsv = "".join(p.read_text() for p in (dest / "refget" / "aliases" / "collections").glob("*.tsv"))
            assert {line.split("\t")[0] for line in tsv.splitlines()} == names
            exported = tmp_path / f"{dest.name}.rglog"
            export_log(copy, exported)
        with Store.open(tmp_path / f"{dest.name}-replayed") as replayed:
            replay_file(replayed, exported)
            assert replayed.head() == (heads[-1], replayed.head()[1])
    assert heads == sorted(heads), heads
    with Store.open(store_path) as store:  # the store itself went on untouched by the backups
        assert store.verify().ok
        assert store.head()[0] >= heads[-1]


def test_a_backup_skips_the_rp_name_links_and_rp_on_the_copy_makes_its_own(tmp_path: Path, store_path: Path) -> None:
    inputs = write_inputs(tmp_path / "inputs")
    with Store.open(store_path) as store:
        store.refpkgs.create("pkg", locus="L", files=[("tree", inputs["tree"])])
        linked = store.refpkgs.resource_path("pkg", "tree")
        assert linked.is_symlink()
        assert backup(store, tmp_path / "bk").verified
    assert not (tmp_path / "bk" / "names").exists()  # derived: made again on demand
    with Store.open(tmp_path / "bk") as copy:
        path = copy.refpkgs.resource_path("pkg", "tree")
        assert path == tmp_path / "bk" / linked.relative_to(store_path)
        assert path.read_bytes() == inputs["tree"].read_bytes()
        assert copy.verify().ok


def test_backup_refuses_a_dest_that_exists_or_lies_inside_the_store_and_leaves_nothing(
        tmp_path: Path, store: Store) -> None:
    store.genomes.init(TINY, ["tiny"])
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "log").mkdir()
    with pytest.raises(ConflictError, match="not an empty directory"):
        backup(store, taken)
    assert sorted(p.name for p in taken.iterdir()) == ["log"]
    with pytest.raises(InvalidInputError, match="inside the store"):
        backup(store, store.path / "bk")
    with pytest.raises(InvalidInputError, match="contains the store"):
        backup(store, store.path.parent)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert backup(store, empty).verified  # an empty directory made for it is fine
    assert not [p for p in tmp_path.iterdir() if ".backup-" in p.name]


@pytest.mark.parametrize("made_empty", [False, True])
def test_two_backups_to_one_new_dest_leave_the_first_and_refuse_the_second_in_the_one_line_of_the_check(
        tmp_path: Path, store: Store, made_empty: bool) -> None:
    store.genomes.init(TINY, ["tiny"])
    dest = tmp_path / "bk"
    if made_empty:
        dest.mkdir()
    first: list[Path] = []

    def other_backup_finishes_meanwhile(desc: str, total: int | None = None, unit: str = "it") -> NullProgress:
        # The window between the check of DEST and the rename into it: a second `rgstore backup DEST`
        # started at the same moment completes here.
        if not first:
            first.append(Path(backup(store, dest).path))
        return NullProgress()

    with pytest.raises(ConflictError, match=r"bk already exists and is not an empty directory; a backup goes"):
        backup(store, dest, progress=other_backup_finishes_meanwhile)
    assert first == [dest]
    with Store.open(dest) as copy:
        assert copy.verify().ok
    assert not [p for p in tmp_path.iterdir() if ".backup-" in p.name]


def test_backup_refusing_dest_says_what_dest_is_a_dangling_link_a_link_or_a_device(
        tmp_path: Path, store: Store) -> None:
    # All three said "already exists and is not an empty directory".
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(ConflictError) as refused:
        backup(store, dangling)
    assert str(refused.value).startswith(f"{dangling} is a symlink to {tmp_path / 'nowhere'} that does not exist; ")
    assert not (tmp_path / "nowhere").exists() and dangling.is_symlink()
    (tmp_path / "empty").mkdir()
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "empty")
    with pytest.raises(ConflictError, match=rf"^{re.escape(str(link))} is a symlink to {re.escape(str(tmp_path))}/empty; "):
        backup(store, link)
    assert list((tmp_path / "empty").iterdir()) == []
    with pytest.raises(ConflictError, match=r"^/dev/null is not a directory \(a character device\); "):
        backup(store, "/dev/null")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConflictError, match=r"file is not a directory \(a regular file\); "):
        backup(store, tmp_path / "file")
    assert not [p for p in tmp_path.iterdir() if ".backup-" in p.name]


def test_backup_cli_copies_cache_files_and_the_copy_passes_cache_verify(  # type: ignore[no-untyped-def]
        tmp_path: Path, store_path: Path, cli, server) -> None:
    assert cli("demo").exit_code == 0
    assert cli("cache", "regions", "--source", "ensembl", "--species", ENSEMBL["species"], "--release", "110",
               "--regions", "gene", "--base-url", base(server, "ensembl")).exit_code == 0
    dest = tmp_path / "bk"
    result = cli("backup", str(dest), "--no-link")
    assert result.exit_code == 0, result.output
    assert "verified" in result.output and "(0 hard-linked)" in result.output
    with Store.open(dest) as copy:
        assert copy.cache.verify().ok
        assert len(copy.cache.ls()) == 2
        assert copy.verify().ok
    again = cli("backup", str(dest))
    assert again.exit_code != 0 and "already exists" in again.output


def test_a_backup_of_a_mirror_is_a_mirror_and_blobs_it_never_fetched_stay_unfetched(tmp_path: Path) -> None:
    from rgstore.errors import ReadOnlyError
    from rgstore.mirror import pull
    from rgstore.segments import publish

    with Store.open(tmp_path / "p") as primary:
        _fill(primary, tmp_path)
        publish(primary, tmp_path / "pub")
    with Store.open(tmp_path / "m") as mirror:
        pull(mirror, str(tmp_path / "pub"))  # without blobs: the refpkg's files are not fetched
        result = backup(mirror, tmp_path / "bk")
    assert result.verified and result.blobs == 0
    with Store.open(tmp_path / "bk") as copy:
        assert copy.refpkgs.info("pkg")
        with pytest.raises(ReadOnlyError, match="read-only mirror"):
            copy.aliases.set("x", copy.genomes.resolve("tiny"))


@needs_root
def test_a_user_who_may_only_read_the_store_is_told_backup_needs_write_access_and_nothing_is_left() -> None:
    with outsiders_lab("rgstore-backup-") as lab:
        with Store.open(lab / "s") as store:
            store.genomes.init(TINY, ["tiny"])
        readers_may_lock(lab / "s")
        (lab / "out").mkdir()
        os.chmod(lab / "out", 0o777)

        def attempt() -> str:
            with Store.open(".", readonly=True) as store:
                backup(store, lab / "out" / "b")
            return "backed up"

        result = _as_user(lab / "s", _OUTSIDER, [], attempt)
        assert "needs write access there: run it as a user who may write the store" in result, result
        assert list((lab / "out").iterdir()) == []


@contextmanager
def _parked_backup(store_path: Path, dest: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """A `rgstore backup` process parked mid-copy (the RefgetStore lock held), with its hidden work directory."""
    import time

    from rgstore.refgetlock import refget_write_lock

    with Store.open(store_path) as store:
        store.genomes.init(TINY, ["tiny"])
    dest.parent.mkdir()
    with refget_write_lock(store_path / "refget", "test holds the lock"):  # parks the backup mid-copy
        proc = subprocess.Popen([sys.executable, "-m", "rgstore_cli", "--store", str(store_path),
                                 "backup", str(dest)], cwd=REPO, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while not list(dest.parent.iterdir()) and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            assert proc.poll() is None, proc.stderr and proc.stderr.read()
            (work,) = dest.parent.iterdir()
            yield proc, work
        finally:
            proc.kill()


def test_a_backup_killed_by_sigterm_leaves_no_hidden_work_directory(tmp_path: Path, store_path: Path) -> None:
    import signal

    out = tmp_path / "out"
    with _parked_backup(store_path, out / "bk") as (proc, _):
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 143
    assert list(out.iterdir()) == []


def test_a_backup_killed_by_sigkill_leaves_a_work_directory_the_next_backup_removes_but_never_a_live_ones(
        tmp_path: Path, store_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A nightly cron backup killed by the OOM killer or a reboot left a hidden full copy each night.
    import signal

    from rgstore import backup as backup_module

    out = tmp_path / "out"
    with _parked_backup(store_path, out / "refs-monday") as (proc, work):
        assert backup_module.remove_abandoned_work(out, min_age_s=0) == [] and work.is_dir()  # a live one's
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    assert work.is_dir() and work.name.startswith(".refs-monday.backup-")
    monkeypatch.setattr(backup_module, "ABANDONED_AFTER_S", 0.0)
    with Store.open(store_path) as store:
        assert backup(store, out / "refs-tuesday").verified
    assert sorted(p.name for p in out.iterdir()) == ["refs-tuesday"]


@needs_root
def test_a_backup_beside_which_it_may_not_write_says_so_in_one_line_naming_the_directory() -> None:
    with outsiders_lab("rgstore-backup-") as lab:
        with Store.open(lab / "s") as store:
            store.genomes.init(TINY, ["tiny"])
        subprocess.run(["chmod", "-R", "a+rwX", str(lab / "s")], check=True)
        (lab / "out").mkdir()  # root's: the outsider may not write in it
        (lab / "out" / "b").mkdir()  # but DEST, prepared for them, is theirs
        os.chown(lab / "out" / "b", _OUTSIDER, -1)

        def attempt() -> str:
            with Store.open(".") as store:
                backup(store, lab / "out" / "b")
            return "backed up"

        result = _as_user(lab / "s", _OUTSIDER, [], attempt)
        assert f"cannot write {lab / 'out'}: a backup is built beside b under a hidden name" in result, result
        assert ".backup-" not in result and list((lab / "out").iterdir()) == [lab / "out" / "b"]


def test_backup_never_builds_through_a_symlink_planted_at_its_work_directory_name(
        tmp_path: Path, store: Store) -> None:
    store.genomes.init(TINY, ["tiny"])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # Another user of a shared parent (/tmp, a group's backup directory) can guess a pid-named work dir.
    (tmp_path / f".bk.backup-{os.getpid()}").symlink_to(elsewhere)
    assert backup(store, tmp_path / "bk").verified
    assert not (tmp_path / "bk").is_symlink() and (tmp_path / "bk" / "log" / "data.mdb").is_file()
    assert list(elsewhere.iterdir()) == []


def test_a_backup_snapshots_under_the_refgetstore_lock_so_gc_cannot_remove_what_the_snapshot_names(
        tmp_path: Path, store: Store) -> None:
    import threading
    import time

    from rgstore.refgetlock import refget_write_lock

    store.genomes.init(TINY, ["tiny"])
    out = tmp_path / "out"
    out.mkdir()
    done: list[object] = []
    # gc removes a removed genome's collection under this lock: a snapshot taken before the lock
    # could name a collection gc deletes before the copy reaches it (the backup then fails verify).
    with refget_write_lock(store.refget_path, "test holds the lock"):
        worker = threading.Thread(target=lambda: done.append(backup(store, out / "bk")))
        worker.start()
        deadline = time.monotonic() + 60
        while not list(out.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.01)
        # The removal commits, then waits for the lock to refresh the alias files.
        remover = threading.Thread(target=lambda: store.genomes.remove("tiny"))
        remover.start()
        while store.genomes.list() and time.monotonic() < deadline:
            time.sleep(0.01)
    worker.join(timeout=120)
    remover.join(timeout=120)
    assert done and done[0].verified  # type: ignore[attr-defined]
    with Store.open(out / "bk") as copy:
        assert copy.genomes.list() == []  # the snapshot is of the state after the removal


def test_a_blob_gc_removes_after_the_snapshot_is_a_conflict_to_retry_not_a_damaged_store(
        tmp_path: Path, store: Store) -> None:
    from rgstore.gc import collect_garbage
    from rgstore.progress import null_progress

    files = write_inputs(tmp_path / "pkg")
    store.refpkgs.create("pkg", locus="16S", files=[("tree", files["tree"])])
    newer = tmp_path / "newer.tre"
    newer.write_text("((a:1,b:2):0.5,c:3);\n")

    def progress(name: str, **kwargs: object) -> object:
        if name == "backup":  # between the snapshot and the blob copy: the old tree stops being referenced
            store.refpkgs.update_files("pkg", [f"tree={newer}"])
            store.refpkgs.strip("pkg")
            assert collect_garbage(store, grace=0).removed
        return null_progress(name, **kwargs)  # type: ignore[arg-type]

    with pytest.raises(ConflictError, match="removed by `rgstore gc` or `rgstore cache gc` after the backup's snapshot; run the backup again"):
        backup(store, tmp_path / "bk", progress=progress)  # type: ignore[arg-type]
    assert not (tmp_path / "bk").exists() and not [p for p in tmp_path.iterdir() if ".backup-" in p.name]
    assert store.verify().ok  # the store itself is fine: the message must not send the user to repair it
    assert backup(store, tmp_path / "bk").verified


def test_sequence_files_are_copied_without_the_refgetstore_lock_and_a_gc_meanwhile_is_a_retry(
        tmp_path: Path, store: Store) -> None:
    from rgstore.gc import collect_garbage
    from rgstore.progress import null_progress
    from rgstore.refgetlock import LOCK_NAME

    store.genomes.init(TINY, ["tiny"])
    (tmp_path / "other.fa").write_text(">solo\n" + "ACGT" * 300 + "\n")
    store.genomes.init(tmp_path / "other.fa", ["other"])
    seen: list[bool] = []

    def progress(name: str, **kwargs: object) -> object:
        if name == "backup sequences":  # the index is copied; the sequence files are next
            seen.append((store.refget_path / LOCK_NAME).exists())
            store.aliases.set("later", store.genomes.resolve("tiny"))  # a writer that needs the lock goes ahead
            store.genomes.remove("other")
            assert collect_garbage(store, grace=0).collections_removed  # its sequence file goes before it is copied
        return null_progress(name, **kwargs)  # type: ignore[arg-type]

    with pytest.raises(ConflictError, match="after the backup's snapshot; run the backup again"):
        backup(store, tmp_path / "bk", progress=progress)  # type: ignore[arg-type]
    assert seen == [False]
    assert not (tmp_path / "bk").exists() and not [p for p in tmp_path.iterdir() if ".backup-" in p.name]
    assert store.verify().ok
    copy = backup(store, tmp_path / "bk")
    assert copy.verified and copy.head_seq == store.head()[0]


def test_a_backup_of_a_group_shared_store_keeps_its_group_and_setgid_so_it_restores_shared(tmp_path: Path) -> None:
    from tests.conftest import run_rgstore
    from tests.test_sharing import _GROUP

    if os.geteuid() == 0:
        gid = _GROUP
    else:  # a member may give a directory any of its groups
        others = [g for g in os.getgroups() if g != os.getegid()]
        if not others:
            pytest.skip("needs root or a supplementary group")
        gid = others[0]
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chown(shared, -1, gid)
    os.chmod(shared, 0o2775)  # as `install -d -m 2775 -g lab` makes it (docs/deployment.md)
    made = run_rgstore("--store", str(shared), "genome", "init", "--fasta", str(TINY), "--name", "tiny")
    assert made.returncode == 0, made.stderr
    for flag in ([], ["--no-link"]):
        dest = tmp_path / f"bk{len(flag)}"
        done = run_rgstore("--store", str(shared), "backup", str(dest), *flag)
        assert done.returncode == 0, done.stderr
        # Moved into the store's place, the copy must let the group go on writing it.
        assert dest.stat().st_mode & 0o7777 == 0o2775
        for path in [dest / "log", dest / "log" / "data.mdb", dest / "refget", dest / "refget" / "rgstore.json",
                     dest / "blobs", dest / "cache"]:
            assert path.stat().st_gid == gid, path


def test_backup_takes_a_str_destination(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s") as store:
        store.refpkgs.create("pkg", locus="16S", files=write_inputs(tmp_path / "in"))
        result = backup(store, str(tmp_path / "bk"))
    assert result.verified and (tmp_path / "bk" / "log" / "data.mdb").is_file()


def _cli_with_file_limit(*args: str | Path, fsize: int) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess whose writes past ``fsize`` bytes fail with EFBIG (a full disk's stand-in)."""
    import resource
    import signal

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, resource.RLIM_INFINITY))

    return subprocess.run([sys.executable, "-m", "rgstore_cli", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=120, preexec_fn=limit)


def test_a_backup_its_disk_has_no_room_for_names_dest_not_a_broken_store_and_leaves_nothing(
        tmp_path: Path, store_path: Path) -> None:
    # LMDB's copy failing for want of room read "the store's LMDB files cannot be used (mdb_env_copy3: No space
    # left on device); is --store an rgstore store?": it blamed a sound store for the backup disk.
    with Store.open(store_path) as store:
        _fill(store, tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    proc = _cli_with_file_limit("--store", store_path, "backup", out / "b", fsize=4096)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"error: no room for the backup b in {out} (File too large;"), proc.stderr
    assert "rgstore store" not in proc.stderr and ".backup-" not in proc.stderr, proc.stderr
    assert list(out.iterdir()) == []
    with Store.open(store_path) as store:
        assert store.verify().problems == []


def test_a_log_copy_the_file_size_limit_cuts_short_is_no_room_for_the_backup_not_a_broken_store(
        tmp_path: Path, store_path: Path) -> None:
    # LMDB's compacting copy calls a write past `ulimit -f` EINVAL: "the store's LMDB files cannot be used
    # (mdb_env_copy3: Invalid argument); is --store an rgstore store?" blamed a sound store.
    with Store.open(store_path) as store:
        _fill(store, tmp_path)
    size = (store_path / "log" / "data.mdb").stat().st_size
    assert size >= 64 << 10  # the log copy needs more than the limit; the small files before it fit
    out = tmp_path / "out"
    out.mkdir()
    # A limit inside a page: LMDB writes part of the page, and its copy calls the next write EINVAL.
    proc = _cli_with_file_limit("--store", store_path, "backup", out / "b", fsize=50_000)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"error: no room for the backup b in {out} (File too large;"), proc.stderr
    assert list(out.iterdir()) == []
    assert _cli_with_file_limit("--store", store_path, "backup", out / "b", fsize=size * 64).returncode == 0

def test_a_backup_onto_a_read_only_file_system_says_it_cannot_write_there_not_a_hidden_path(
        tmp_path: Path, store_path: Path) -> None:
    # It said "error: Read-only file system: ro/.b.backup-PID-RANDOM", a path that never existed.
    import shutil

    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a read-only tmpfs needs root and mount(8)")
    with Store.open(store_path) as store:
        _fill(store, tmp_path)
    mnt = tmp_path / "ro"
    mnt.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mnt)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        proc = subprocess.run([sys.executable, "-m", "rgstore_cli", "--store", str(store_path), "backup",
                               str(mnt / "b")], cwd=REPO, capture_output=True, text=True, timeout=120)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"error: cannot write {mnt}: a backup is built beside b"), proc.stderr
    assert "(Read-only file system)" in proc.stderr and ".backup-" not in proc.stderr, proc.stderr

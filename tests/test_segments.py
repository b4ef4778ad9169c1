"""Published directories: a publish run sweeps the temp files killed runs left, and nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rgstore.errors import InvalidInputError
from rgstore.mirror import pull
from rgstore.segments import (
    TEMP_GRACE_S,
    check_publish_target,
    publish,
    publish_blobs,
    publish_refget,
    published_head,
    sweep_stale_temps,
)
from rgstore.store import Store
from rgstore.verify import referenced_blobs
from tests.conftest import REPO
from tests.progress_recorder import Bars
from tests.signalled import signal_when


def _aged(path: Path, seconds: float) -> Path:
    old = time.time() - seconds
    os.utime(path, (old, old), follow_symlinks=False)
    return path


def _leftover(path: Path, *, age: float = TEMP_GRACE_S + 60) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"half a file")
    return _aged(path, age)


def test_publish_sweeps_stale_temp_files_it_left_and_keeps_fresh_foreign_or_linked_ones(  # type: ignore[no-untyped-def]
        tmp_path: Path, store_path: Path, cli) -> None:
    tree = tmp_path / "tree.nwk"
    tree.write_text("(a:0.1,b:0.2);\n")
    pub = tmp_path / "pub"
    with Store.open(store_path) as primary:
        primary.refpkgs.create("pkg", locus="16S", files=[("tree", tree)])
        primary.genomes.init(REPO / "rgstore" / "data" / "tiny.fa", ["tiny"])
        [sha] = referenced_blobs(primary)
        seq = primary.genomes.show("tiny").sequences[0].removeprefix("SQ.")
    assert cli("log", "publish", str(pub), "--with-blobs", "--with-refget").exit_code == 0

    # What publish runs killed mid-write leave: one temp file per kind of file publish writes.
    stale = [_leftover(p) for p in (
        pub / ".manifest.json.a1b2c3d4.tmp",
        pub / "segments" / ".000000000001-000000000009.rgseg.k_9zq0xy.tmp",
        pub / "blobs" / sha[:2] / f".{sha}.abcdefgh.tmp",
        pub / "refget" / "sequences" / seq[:2] / f".{seq}.seq.qwertyui.tmp",
        pub / "refget" / ".rgstore.json.zxcvbnm1.tmp",
        pub / "cache" / "ensembl" / "x" / ".genome.fa.12345678.tmp",
    )]
    # A concurrent publish's file in flight, and files publish did not make, whatever their age.
    other_sha = ("0" if sha[0] != "0" else "1") * 64
    fresh = _leftover(pub / "segments" / ".000000000010-000000000011.rgseg.inflight.tmp", age=5)
    foreign = [_leftover(p) for p in (
        pub / ".index.html.abcdefgh.tmp",  # publish writes no index.html
        pub / ".manifest.json.tmp",  # not tempfile's name shape
        pub / ".manifest.json.ABCDEFGH.tmp",
        pub / "manifest.json.abcdefgh.tmp",
        pub / "segments" / ".notes.abcdefgh.tmp",
        pub / "blobs" / sha[:2] / f".{other_sha}.abcdefgh.tmp",  # that blob never goes in this folder
        pub / "static" / ".manifest.json.abcdefgh.tmp",  # not a tree publish writes
    )]
    outside = tmp_path / "outside"
    precious = _leftover(outside / ".rgstore.json.abcdefgh.tmp")
    link = pub / "refget" / ".rgstore.json.linkedup.tmp"
    link.symlink_to(precious)
    _aged(link, TEMP_GRACE_S + 60)
    (pub / "cache" / "elsewhere").symlink_to(outside, target_is_directory=True)

    result = cli("log", "publish", str(pub), "--with-blobs", "--with-refget")
    assert result.exit_code == 0, result.output
    assert [p for p in stale if p.exists()] == []
    assert fresh.is_file() and all(p.is_file() for p in foreign)
    assert link.is_symlink() and precious.read_bytes() == b"half a file"

    with Store.open(tmp_path / "mirror") as mirror:
        pulled = pull(mirror, str(pub), with_blobs=True, with_sequences=True)
        assert (pulled.blobs_fetched, pulled.sequences_fetched) == (1, 3)
        assert mirror.verify().ok


def test_every_publish_step_refuses_an_empty_directory_and_takes_a_str(
        tmp_path: Path, store_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # "" must not publish into the working directory (nor crash on str / str)
    with Store.open(store_path) as store:
        store.genomes.init(REPO / "rgstore" / "data" / "tiny.fa", ["tiny"])
        for step in (lambda d: check_publish_target(store, d), published_head, lambda d: publish_refget(store, d),
                     lambda d: publish_blobs(store, d), lambda d: publish(store, d)):
            with pytest.raises(InvalidInputError, match="^empty path for the publish directory; name one$"):
                step("")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]
        assert publish_refget(store, "pub") > 0 and publish(store, "pub").head_seq == store.head()[0]
        assert published_head("pub") == store.head()[0]


def test_the_sweep_walks_a_symlinked_publish_directory_but_no_link_inside_it(tmp_path: Path) -> None:
    real = tmp_path / "srv" / "published"
    stale = _leftover(real / "segments" / ".000000000001-000000000002.rgseg.abcdefgh.tmp")
    outside = _leftover(tmp_path / "other" / ".rgstore.json.abcdefgh.tmp")  # would match under refget/
    (tmp_path / "www").symlink_to(real, target_is_directory=True)
    (real / "refget").symlink_to(tmp_path / "other", target_is_directory=True)
    removed = sweep_stale_temps(tmp_path / "www")
    assert removed == [stale.resolve()] and not stale.exists() and outside.is_file()


def test_a_regular_file_at_a_new_segments_path_stays_until_the_segment_replaces_it(tmp_path: Path,
                                                                                    monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import rgstore.segments as segments
    from rgstore.events import Noted
    from rgstore.log import NewEvent

    with Store.open(tmp_path / "p") as store:
        store.append([NewEvent(stream="s", event=Noted(text=str(i))) for i in range(5)])
        pub = tmp_path / "pub"
        segments.publish(store, pub, segment_size=2)
        store.append([NewEvent(stream="s", event=Noted(text="more"))])
        # A concurrent publish already wrote (and may have listed) the next segment.
        (pub / "segments" / f"{6:012d}-{6:012d}.rgseg").write_bytes(b"an earlier run's copy")
        present: list[bool] = []
        real_write = segments.write_log_file

        def observed(path: Path, *args, **kwargs):  # type: ignore[no-untyped-def]
            present.append(path.exists())  # what a mirror reading that run's manifest would find
            return real_write(path, *args, **kwargs)

        monkeypatch.setattr(segments, "write_log_file", observed)
        segments.publish(store, pub, segment_size=2)
    assert present == [True]
    with Store.open(tmp_path / "p", readonly=True) as primary, Store.open(tmp_path / "m") as mirror:
        pull(mirror, str(pub))
        assert mirror.head() == primary.head()


def test_a_refused_publish_copies_nothing_so_dir_keeps_the_refget_of_the_log_it_publishes(  # type: ignore[no-untyped-def]
        tmp_path: Path, store_path: Path, cli) -> None:
    import shutil

    pub = tmp_path / "pub"
    with Store.open(store_path) as primary:
        primary.genomes.init(REPO / "rgstore" / "data" / "tiny.fa", ["tiny"])
    copy = tmp_path / "copy"
    shutil.copytree(store_path, copy)  # a copy of the idle store: same log id
    with Store.open(store_path) as primary:
        primary.aliases.set("orig", primary.genomes.resolve("tiny"), namespace="ucsc")
    with Store.open(copy) as diverged:
        diverged.aliases.set("fork", diverged.genomes.resolve("tiny"), namespace="ucsc")
    with Store.open(tmp_path / "fresh") as other_log:
        other_log.genomes.init(REPO / "rgstore" / "data" / "tiny.fa", ["other"])
    assert cli("log", "publish", str(pub), "--with-blobs", "--with-refget").exit_code == 0
    published = {p: p.read_bytes() for p in pub.rglob("*") if p.is_file()}
    assert b"orig\t" in (pub / "refget" / "aliases" / "collections" / "ucsc.tsv").read_bytes()

    from click.testing import CliRunner
    from rgstore_cli.main import cli as root

    for other in (copy, tmp_path / "fresh"):  # a diverged copy of this log, then another log
        result = CliRunner().invoke(root, ["--store", str(other), "log", "publish", str(pub), "--with-blobs",
                                           "--with-refget"])
        assert result.exit_code != 0
        assert "diverges from this log at seq" in result.output or "publishes log" in result.output
        assert {p: p.read_bytes() for p in pub.rglob("*") if p.is_file()} == published


def test_publish_never_names_an_event_committed_after_it_copied_the_content(  # type: ignore[no-untyped-def]
        tmp_path: Path, store_path: Path, cli, monkeypatch) -> None:
    # A writer that commits a genome while `log publish` copies the RefgetStore must not get its
    # event into this run's segments: a mirror would see a genome whose sequences were not published.
    import rgstore.segments as segments
    from tests.conftest import run_rgstore

    with Store.open(store_path) as primary:
        primary.genomes.init(REPO / "rgstore" / "data" / "tiny.fa", ["tiny"])
        before = primary.head()[0]
    other = tmp_path / "other.fa"
    other.write_text(">late\n" + "ACGTTGCA" * 50 + "\n")
    real_copy = segments.publish_refget

    def copy_then_a_writer_commits(store: Store, directory: Path) -> int:
        written = real_copy(store, directory)
        proc = run_rgstore("--store", str(store_path), "genome", "init", "--fasta", str(other), "--name", "late")
        assert proc.returncode == 0, proc.stderr
        return written

    monkeypatch.setattr(segments, "publish_refget", copy_then_a_writer_commits)
    pub = tmp_path / "pub"
    assert cli("log", "publish", str(pub), "--with-blobs", "--with-refget").exit_code == 0
    assert segments.published_head(pub) == before
    with Store.open(tmp_path / "m") as mirror:
        pull(mirror, str(pub), with_sequences=True)  # every published genome's sequences are there
        assert mirror.head()[0] == before


def test_publishing_from_a_copy_behind_the_directory_says_to_publish_from_the_copy_further_along(
        tmp_path: Path) -> None:
    import shutil

    import pytest

    from rgstore.errors import LogMismatchError
    from rgstore.events import Noted
    from rgstore.log import NewEvent
    from rgstore.segments import publish

    with Store.open(tmp_path / "p") as primary:
        primary.append([NewEvent(stream="s", event=Noted(text="one"))])
    shutil.copytree(tmp_path / "p", tmp_path / "old")  # a copy that stays at seq 1
    with Store.open(tmp_path / "p") as primary:
        primary.append([NewEvent(stream="s", event=Noted(text="two"))])
        publish(primary, tmp_path / "pub")
    with Store.open(tmp_path / "old") as old, pytest.raises(
            LogMismatchError, match=r"holds seqs up to 2, past this store's head 1: .*further along.*publish from that copy"):
        publish(old, tmp_path / "pub")


def test_publish_refget_replaces_an_index_file_whose_new_bytes_have_the_same_size(tmp_path: Path, store_path: Path) -> None:
    """An alias renamed to a name of the same length changes the TSV's bytes, not its size: it is published again."""
    from rgstore.segments import publish_refget

    tsv = Path("refget", "aliases", "collections", "ucsc.tsv")
    with Store.open(store_path) as store:
        store.genomes.init(REPO / "rgstore" / "data" / "tiny.fa", ["tiny"])
        digest = store.genomes.resolve("tiny")
        store.aliases.set("aaaa", digest, namespace="ucsc")
        publish_refget(store, tmp_path / "pub")
        store.aliases.remove("aaaa", namespace="ucsc")
        store.aliases.set("bbbb", digest, namespace="ucsc")
        assert publish_refget(store, tmp_path / "pub") >= 1
        assert (tmp_path / "pub" / tsv).read_bytes() == (store_path / tsv).read_bytes()
    assert b"bbbb\t" in (tmp_path / "pub" / tsv).read_bytes()


def test_publish_with_blobs_skips_unreferenced_blobs_a_concurrent_gc_removes_after_the_listing(
        tmp_path: Path, store_path: Path) -> None:
    # Blobs are listed before the first byte is copied (for byte progress): a gc during a long publish
    # removing an old unreferenced blob made the whole publish fail with "blob ... is missing".
    from rgstore.gc import collect_garbage
    from rgstore.segments import publish_blobs

    class GcOnFirstCopy:
        def __init__(self, store: Store) -> None:
            self.store, self.removed = store, 0

        def update(self, n: int = 1) -> None:
            if not self.removed:
                self.removed = len(collect_garbage(self.store, grace=600).removed)

        def close(self) -> None:
            pass

    with Store.open(store_path) as store:
        shas = [_aged(store.blobs.path(store.blobs.put_bytes(os.urandom(64))[0].sha256), 3600).name
                for _ in range(6)]
        bar = GcOnFirstCopy(store)
        copied = publish_blobs(store, tmp_path / "pub", progress=lambda *_a, **_k: bar)
    assert (copied, bar.removed) == (1, 6)  # the one copied first goes too: none is referenced
    assert sorted(p.name for p in (tmp_path / "pub" / "blobs").glob("*/*")) == [min(shas)]


def test_publish_to_an_empty_directory_name_is_a_usage_error_not_the_working_directory(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, monkeypatch
) -> None:
    # Path("") is ".": `rgstore log publish "$DIR"` with DIR unset published into the working directory.
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert cli("init").exit_code == 0
    result = cli("log", "publish", "")
    assert result.exit_code == 2 and "'DIRECTORY': is empty; name a path (see" in result.stderr
    assert list(work.iterdir()) == []


_APPEND_ONE = (
    "import sys\n"
    "from rgstore.events import Noted\n"
    "from rgstore.log import NewEvent\n"
    "from rgstore.store import Store\n"
    "with Store.open(sys.argv[1]) as s:\n"
    "    s.append([NewEvent(stream='s', event=Noted(text='late'))])\n"
)


def _ended_or_waiting_on(directory: Path, proc: subprocess.Popen[bytes], limit: float = 60.0) -> None:
    """Wait until ``proc`` has ended or waits for ``directory``'s flock (Linux ``/proc/locks`` marks waiters ``->``)."""
    inode = os.stat(directory).st_ino
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and proc.poll() is None:
        for line in Path("/proc/locks").read_text().splitlines():
            fields = line.split()
            if "->" in fields and fields[-3].endswith(f":{inode}"):
                return
        time.sleep(0.05)


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs Linux /proc/locks to see lock waiters")
def test_two_publishes_into_one_directory_never_take_its_manifest_back_to_an_older_head(  # type: ignore[no-untyped-def]
        tmp_path: Path, monkeypatch) -> None:
    # Two cron runs of `log publish` overlap while a writer commits: the one that read the older head
    # must not rewrite the manifest after the newer run listed more (a mirror would miss those events).
    import rgstore.segments as segments
    from rgstore.events import Noted
    from rgstore.log import NewEvent

    primary, pub = tmp_path / "p", tmp_path / "pub"
    with Store.open(primary) as store:
        store.append([NewEvent(stream="s", event=Noted(text=str(i))) for i in range(4)])
        real_write = segments.write_log_file
        others: list[subprocess.Popen[bytes]] = []

        def another_run_meanwhile(path: Path, *args, **kwargs):  # type: ignore[no-untyped-def]
            if not others:
                appended = subprocess.run([sys.executable, "-c", _APPEND_ONE, str(primary)], cwd=REPO,
                                          capture_output=True, timeout=120)
                assert appended.returncode == 0, appended.stderr
                others.append(subprocess.Popen([sys.executable, "-m", "rgstore_cli", "--store", str(primary),
                                                "log", "publish", str(pub)], cwd=REPO,
                                               stdout=subprocess.PIPE, stderr=subprocess.PIPE))
                _ended_or_waiting_on(pub, others[0])
            return real_write(path, *args, **kwargs)

        monkeypatch.setattr(segments, "write_log_file", another_run_meanwhile)
        assert publish(store, pub).head_seq == 4
    out, err = others[0].communicate(timeout=120)
    assert others[0].returncode == 0, err
    assert published_head(pub) == 5
    assert sorted(p.name for p in (pub / "segments").iterdir()) == [f"{1:012d}-{4:012d}.rgseg", f"{5:012d}-{5:012d}.rgseg"]
    with Store.open(tmp_path / "m") as mirror:
        pull(mirror, str(pub))
        assert mirror.head()[0] == 5


def test_sigterm_mid_publish_leaves_no_temp_file_nor_a_new_manifest_and_the_next_publish_completes(
        tmp_path: Path) -> None:
    # `log publish` ran without signals_unwind: a SIGTERM (a cron timeout, systemd) killed it outright, and
    # the segment it was writing stayed in DIR as a temp file a static host served until a later run's sweep.
    import signal

    from rgstore.events import Noted
    from rgstore.log import NewEvent
    from rgstore.logfile import read_log_file

    primary, pub = tmp_path / "p", tmp_path / "pub"
    with Store.open(primary) as store:
        store.append([NewEvent(stream="s", event=Noted(text="first"))])
        publish(store, pub)
        # 1,000 segments of 20, each written and fsynced through a temp file: a run long enough to stop midway.
        store.append([NewEvent(stream=f"note:{i % 50}", event=Noted(text=f"{i}" * 16)) for i in range(20_000)])
        head = store.head()[0]
    before = (pub / "manifest.json").read_bytes()
    args = [sys.executable, "-m", "rgstore_cli", "--store", str(primary), "log", "publish", str(pub),
            "--segment-size", "20"]
    segments = pub / "segments"
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # Midway: one of this run's segments is in place and the next one is being written.
    err = signal_when(proc, lambda: len(list(segments.glob("*.rgseg"))) > 1 and bool(list(segments.glob(".*.tmp"))),
                      signal.SIGTERM, poll=0.002)
    assert proc.returncode == 128 + signal.SIGTERM and b"Traceback" not in err, err.decode()
    assert [p.name for p in pub.rglob("*.tmp")] == []
    assert (pub / "manifest.json").read_bytes() == before  # the earlier run's, whole
    written = sorted(segments.glob("*.rgseg"))
    assert 1 < len(written) < 1 + (head - 1) // 20
    for path in written:  # every segment in place is whole: its frames run from its first seq to its last
        header, frames = read_log_file(path)
        assert [seq for seq, _record in frames] == list(range(header.first_seq, header.last_seq + 1))

    again = subprocess.run(args, cwd=REPO, capture_output=True, timeout=300)
    assert again.returncode == 0, again.stderr.decode()
    assert published_head(pub) == head and [p.name for p in pub.rglob("*.tmp")] == []
    with Store.open(tmp_path / "m") as mirror:
        pull(mirror, str(pub))
        assert mirror.head()[0] == head and mirror.verify().ok


def test_a_publish_that_fails_mid_segment_closes_its_bar(tmp_path: Path, store: Store) -> None:
    # An error unwinding past an open bar left a Python caller's terminal_progress bar drawn on screen.
    store.genomes.init(REPO / "rgstore" / "data" / "tiny.fa", ["tiny"])
    head = store.head()[0]
    pub = tmp_path / "pub"
    (pub / "segments" / f"{1:012d}-{head:012d}.rgseg").mkdir(parents=True)  # refused: a directory in the way
    bars = Bars()
    with pytest.raises(InvalidInputError, match="is a directory"):
        publish(store, pub, progress=bars)
    assert [desc for desc, _total, _steps in bars.bars] == ["publish"]
    assert bars.closed == ["publish"]

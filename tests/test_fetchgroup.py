"""Concurrent first reads of different sequences: verified each on its own, imported together (a group commit)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from rgstore import remotefetch
from rgstore.errors import IntegrityError
from rgstore.refgetstore import fetch_lock
from rgstore.store import Store
from tests.test_diskspace import small_disk  # noqa: F401  # the fixture: a 12 MiB tmpfs
from tests.test_remote import FASTA, LONG, build_refget
from tests.test_remotefetch import _cached, _recorded_bars, _remote_genome, _serving

RESIDUES = {"chr1": LONG, "chr2": "GGGAAATTTCNNRYACGT", "chrM": "TTTTGGGGCCCCAAAA"}


def _digest(residues: str) -> str:
    from gtars.refget import sha512t24u_digest  # type: ignore[import-untyped]

    return str(sha512t24u_digest(residues))


def _ready(store: Store) -> list[Path]:
    """The verified FASTAs of fetches waiting for the fetch lock."""
    return sorted(store.path.glob(".remote-*/ready.*.fa"))


def _wait_until(claim: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 60
    while not claim():
        assert time.monotonic() < deadline, "the fetches never got as far as waiting for the fetch lock"
        time.sleep(0.02)


def _imports(bars: list[list[object]]) -> int:
    return sum(str(desc).startswith("import ") for desc, *_ in bars)


@pytest.fixture(autouse=True)
def _no_kept_manifests() -> Iterator[None]:
    remotefetch._manifests.clear()
    yield
    remotefetch._manifests.clear()


def _fetch_while_locked(store: Store, url: str, names: list[str], ready: int,
                        progress: Any) -> dict[str, Future[None]]:
    """Fetch ``names`` at once while this test holds the fetch lock, until ``ready`` wait for it and the rest ended."""
    pool = ThreadPoolExecutor(len(names))
    futures: dict[str, Future[None]] = {}
    try:
        with fetch_lock(store):  # the import of a fetch before them, still running
            for name in names:
                futures[name] = pool.submit(remotefetch.fetch_sequence, store, url, _digest(RESIDUES[name]),
                                            len(RESIDUES[name]), progress=progress)
            _wait_until(lambda: len(_ready(store)) + sum(f.done() for f in futures.values()) == len(names))
            assert len(_ready(store)) == ready
    finally:
        pool.shutdown(wait=True)
    return futures


def test_concurrent_fetches_of_different_sequences_are_imported_at_once_each_with_its_residues(
    tmp_path: Path, store: Store
) -> None:
    # Each fetch took the fetch lock for a carrier import of its own (~0.1 s: the lock's release), one after another.
    root = tmp_path / "served" / "store"
    digest = build_refget(root, FASTA)
    bars, progress = _recorded_bars()
    with _serving(root) as server:
        _remote_genome(store, server, digest)
        futures = _fetch_while_locked(store, server.url, list(RESIDUES), 3, progress)
        assert [future.result() for future in futures.values()] == [None, None, None]
        assert _imports(bars) == 1
        assert {name: store.getseq("tiny", name) for name in RESIDUES} == RESIDUES
    assert _ready(store) == [] and store.verify().ok


def test_a_corrupt_sequence_among_concurrent_fetches_fails_alone_and_the_others_are_imported(
    tmp_path: Path, store: Store
) -> None:
    root = tmp_path / "served" / "store"
    digest = build_refget(root, FASTA)
    chr2 = _digest(RESIDUES["chr2"])
    (root / "sequences" / chr2[:2] / f"{chr2}.seq").write_text("A" * len(RESIDUES["chr2"]))  # same length, other residues
    bars, progress = _recorded_bars()
    with _serving(root) as server:
        _remote_genome(store, server, digest)
        futures = _fetch_while_locked(store, server.url, list(RESIDUES), 2, progress)
        with pytest.raises(IntegrityError, match=rf"sequence {chr2} from .* is corrupt"):
            futures["chr2"].result()
        assert futures["chr1"].result() is None and futures["chrM"].result() is None
        assert _imports(bars) == 1
        assert store.getseq("tiny", "chr1") == LONG and store.getseq("tiny", "chrM") == RESIDUES["chrM"]
    assert not _cached(store, chr2) and _ready(store) == [] and store.verify().ok


def test_a_ready_file_of_another_fetch_that_is_not_its_sequence_never_fails_a_fetch(tmp_path: Path, store: Store) -> None:
    # The lock holder imports others' ready files with its own: one not holding what its name says fails that
    # import, and the holder's sequence is imported alone.
    root = tmp_path / "served" / "store"
    digest = build_refget(root, FASTA)
    chrm, impostor = _digest(RESIDUES["chrM"]), "A" * len(RESIDUES["chrM"])
    planted = store.path / ".remote-planted"
    planted.mkdir()
    (planted / f"ready.{chrm}.{len(impostor)}.fa").write_text(f">SQ_{chrm}\n{impostor}\n")
    bars, progress = _recorded_bars()
    with _serving(root) as server:
        _remote_genome(store, server, digest)
        remotefetch.fetch_sequence(store, server.url, _digest(RESIDUES["chr2"]), len(RESIDUES["chr2"]),
                                   progress=progress)  # type: ignore[arg-type]
        assert _imports(bars) == 2  # with the impostor, refused; then its own alone
        assert store.getseq("tiny", "chr2") == RESIDUES["chr2"]
        assert not _cached(store, chrm)  # nothing was kept under the name the impostor gave
        (planted / f"ready.{chrm}.{len(impostor)}.fa").unlink()
        planted.rmdir()
        assert store.getseq("tiny", "chrM") == RESIDUES["chrM"]
    assert store.verify().ok


_OTHER_PROCESS = """
import sys
from pathlib import Path
from typing import Any
from rgstore import remotefetch
from rgstore.store import Store

imports = 0

class Bar:
    def update(self, n=1): pass
    def close(self): pass

def progress(desc, total=None, unit="it"):
    global imports
    imports += desc.startswith("import ")
    return Bar()

with Store.open(Path(sys.argv[1]), readonly=True) as store:
    remotefetch.fetch_sequence(store, sys.argv[2], sys.argv[3], int(sys.argv[4]), progress=progress)
print(imports)
"""


def test_fetches_in_two_processes_waiting_for_the_fetch_lock_are_imported_at_once(tmp_path: Path, store: Store) -> None:
    root = tmp_path / "served" / "store"
    digest = build_refget(root, FASTA)
    bars, progress = _recorded_bars()
    with _serving(root) as server:
        _remote_genome(store, server, digest)
        pool = ThreadPoolExecutor(1)
        try:
            with fetch_lock(store):
                other = subprocess.Popen(
                    [sys.executable, "-c", _OTHER_PROCESS, str(store.path), server.url, _digest(LONG), str(len(LONG))],
                    cwd=Path(__file__).resolve().parent.parent, stdout=subprocess.PIPE, text=True)
                _wait_until(lambda: len(_ready(store)) == 1 or other.poll() is not None)
                here = pool.submit(remotefetch.fetch_sequence, store, server.url, _digest(RESIDUES["chrM"]),
                                   len(RESIDUES["chrM"]), progress=progress)
                _wait_until(lambda: len(_ready(store)) == 2 or here.done() or other.poll() is not None)
                assert len(_ready(store)) == 2
            out, _ = other.communicate(timeout=60)
            assert here.result() is None and other.returncode == 0
        finally:
            pool.shutdown(wait=True)
        assert _imports(bars) + int(out) == 1  # whichever took the lock first imported both
        assert store.getseq("tiny", "chr1") == LONG and store.getseq("tiny", "chrM") == RESIDUES["chrM"]
    assert _ready(store) == [] and store.verify().ok

_BIG = 2_400_000
"""Residues of the sequence fetched onto the small disk: its FASTA, and the one data file gtars writes, ~2.4 MB each."""


@pytest.mark.parametrize(("free", "fetched"), [(2.6, True), (1.5, False)])
def test_a_fetch_whose_group_import_finds_the_disk_full_imports_its_own_alone_or_says_the_disk_is_full(
    small_disk: Path, tmp_path: Path, empty_refget: Path, free: float, fetched: bool  # noqa: F811
) -> None:
    # The combined FASTA (a copy of its own, then the others') stayed on the disk while the fetch imported its own
    # alone, which then found no room (2.6); a disk too full for that copy raised a bare OSError (1.5).
    import random

    from rgstore.errors import DiskWriteError
    from rgstore.fetchgroup import ready_name

    big = "".join(random.Random(7).choices("ACGT", k=_BIG))
    root = tmp_path / "served" / "store"
    digest = build_refget(root, f">big\n{big}\n>chrM\n{RESIDUES['chrM']}\n")
    shutil.copytree(empty_refget, small_disk / "store" / "refget")
    with _serving(root) as server, Store.open(small_disk / "store", actor="tester@test") as store:
        from rgstore import remote

        remote.init_remote(store, server.url, ["tiny"], digest=digest)
        waiting = store.path / ".remote-waiting"  # a fetch of chrM waiting for the fetch lock (or killed waiting)
        waiting.mkdir()
        chrm = RESIDUES["chrM"]
        (waiting / ready_name(_digest(chrm), len(chrm))).write_text(f">SQ_{_digest(chrm)}\n{chrm}\n")
        st = os.statvfs(small_disk)
        filler = st.f_bavail * st.f_frsize - int(free * _BIG)
        with open(small_disk / "filler", "wb") as fh:
            fh.truncate(0)
            fh.write(b"\0" * filler)
        if fetched:
            remotefetch.fetch_sequence(store, server.url, _digest(big), _BIG)
            assert store.getseq("tiny", "big") == big
        else:
            with pytest.raises(DiskWriteError, match=r"free space"):
                remotefetch.fetch_sequence(store, server.url, _digest(big), _BIG)
            assert not _cached(store, _digest(big))
        assert sorted(p.name for p in store.path.glob(".remote-*")) == [".remote-waiting"]

"""Claims about cache entry locks: gc removes lock files nobody holds, and never breaks mutual exclusion."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rgstore.cachelock import LOCK_DIR, entry_lock, sweep_lock_files
from rgstore.errors import ConflictError
from rgstore.store import Store
from tests.conftest import REPO
from tests.upstream_fixture import ENSEMBL, UpstreamServer, base, req

KEY = "ab" * 32

_HOLDER = (
    "import sys\nfrom pathlib import Path\nfrom rgstore.cachelock import entry_lock\n"
    "with entry_lock(Path(sys.argv[1]), sys.argv[2]):\n"
    "    print('held', flush=True)\n    sys.stdin.readline()\n"
)


def _holder(root: Path, key: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", _HOLDER, str(root), key], cwd=REPO, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_until_blocked(lock_file: Path, proc: subprocess.Popen[str], limit: float = 30.0) -> None:
    """Wait until some process waits for ``lock_file``'s flock (Linux ``/proc/locks`` marks waiters ``->``)."""
    inode = os.stat(lock_file).st_ino
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        for line in Path("/proc/locks").read_text().splitlines():
            fields = line.split()
            if "->" in fields and fields[-3].endswith(f":{inode}"):
                return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError(f"nothing waited for {lock_file} within {limit} s")


def test_sweep_removes_lock_files_nobody_holds_and_keeps_held_and_kept_ones(tmp_path: Path) -> None:
    idle, kept, busy = "11" * 32, "22" * 32, "33" * 32
    for key in (idle, kept):
        with entry_lock(tmp_path, key):
            pass
    proc = _holder(tmp_path, busy)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    try:
        assert sweep_lock_files(tmp_path, keep={kept}) == [idle]
        assert sorted(p.name for p in (tmp_path / LOCK_DIR).iterdir()) == [f"{kept}.lock", f"{busy}.lock"]
    finally:
        proc.communicate("\n", timeout=30)
    assert sweep_lock_files(tmp_path) == sorted([kept, busy])


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs Linux /proc/locks to see lock waiters")
def test_a_waiter_on_a_removed_lock_file_locks_the_new_one_so_two_never_hold_a_key(tmp_path: Path) -> None:
    path = tmp_path / LOCK_DIR / f"{KEY}.lock"
    path.parent.mkdir()
    # Play the sweeper: hold the file, let another process queue on it, unlink it, then let go.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    proc = _holder(tmp_path, KEY)
    try:
        _wait_until_blocked(path, proc)
        path.unlink()
        os.close(fd)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        # It holds the file now at the path, not the unlinked one: nobody else gets the key.
        with pytest.raises(ConflictError, match="locked by another process"):
            with entry_lock(tmp_path, KEY, timeout=0.2):
                pass
    finally:
        proc.communicate("\n", timeout=30)
    with entry_lock(tmp_path, KEY, timeout=5):
        assert path.exists()


def test_cache_gc_removes_the_lock_files_of_evicted_entries_and_keeps_live_ones(store: Store, tree: Path) -> None:
    with UpstreamServer(tree) as srv:
        for region in ("gene", "exon"):
            store.cache.regions(req(ENSEMBL, region), base_url=base(srv, "ensembl"))
    entries = store.cache.ls()
    locks = store.cache_path / LOCK_DIR
    assert {p.name for p in locks.iterdir()} >= {f"{e.key}.lock" for e in entries}
    gene = next(e for e in entries if e.request.get("genomic_regions") == {"gene": True})
    store.cache.pin(gene.key)
    store.cache.clock = lambda: time.time() + 40 * 86400
    report = store.cache.gc(max_age=30 * 86400)
    assert {i.key for i in report.evicted} == {e.key for e in entries} - {gene.key}
    assert {p.name for p in locks.iterdir()} == {f"{gene.key}.lock"}
    assert report.lock_files_removed == len(entries) - 1
    assert store.cache.verify().ok

"""Claims about crashes: SIGKILL at any point leaves a store that verifies, with whole commands only."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from rgstore.store import Store
from tests.conftest import REPO

BATCH = 7
BATCHES = 400


def _worker(store: Path, first: int, last: int, stream: str = "crash", expect: bool = False) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "tests.append_worker", str(store), str(first), str(last), str(BATCH), stream]
    if expect:
        args.append("1")
    return subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_sigkill_at_random_points_never_leaves_a_partial_command(tmp_path: Path) -> None:
    store = tmp_path / "store"
    rng = random.Random(1234)
    acknowledged = 0
    for _ in range(50):
        proc = _worker(store, 0, BATCHES)
        time.sleep(rng.uniform(0.15, 0.6))  # start-up is ~0.15 s; kill somewhere inside the appends
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        acked = [line.split() for line in out.decode().splitlines() if line.strip()]
        with Store.open(store) as s:
            head = s.head()[0]
            # Every acknowledged batch is durable, and nothing but whole batches is visible.
            assert head % BATCH == 0
            if acked:
                assert head >= int(acked[-1][-1])
            assert head >= acknowledged
            acknowledged = head
            report = s.verify()
            assert report.ok, report.problems
    # A full retry with the same ids appends each batch exactly once.
    proc = _worker(store, 0, BATCHES)
    assert proc.wait(timeout=120) == 0
    with Store.open(store) as s:
        assert s.head()[0] == BATCHES * BATCH
        texts = [e.event.text for e in s.events()]  # type: ignore[union-attr]
        assert texts == [f"{k}:{i}" for k in range(BATCHES) for i in range(BATCH)]
        assert s.verify().ok


def test_concurrent_writers_lose_nothing_and_keep_seqs_gapless(tmp_path: Path) -> None:
    store = tmp_path / "store"
    Store.open(store).close()
    procs = [_worker(store, 0, 40, stream=f"w{i}") for i in range(4)]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read() if p.stderr else ""
    with Store.open(store) as s:
        envs = s.events()
        assert [e.seq for e in envs] == list(range(1, 4 * 40 * BATCH + 1))
        for i in range(4):
            mine = [e.event.text for e in envs if e.stream == f"w{i}"]  # type: ignore[union-attr]
            assert mine == [f"{k}:{j}" for k in range(40) for j in range(BATCH)]
        assert s.verify().ok


def test_writers_racing_on_one_stream_with_expected_versions_never_interleave(tmp_path: Path) -> None:
    store = tmp_path / "store"
    Store.open(store).close()
    procs = [subprocess.Popen(
        [sys.executable, "-m", "tests.append_worker", str(store), str(i * 1000), str(i * 1000 + 25), "1", "shared", "1"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(4)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    with Store.open(store) as s:
        envs = [e for e in s.events() if e.stream == "shared"]
        # Every batch landed once, and stream versions are exactly 1..n: each conflict was a real race.
        assert len(envs) == 100
        assert [e.stream_version for e in envs] == list(range(1, 101))
        assert sorted(e.event.data["k"] for e in envs) == sorted(  # type: ignore[union-attr]
            i * 1000 + k for i in range(4) for k in range(25))


_ = os

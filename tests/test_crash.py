"""Claims about crashes: SIGKILL at any point leaves a store that verifies, with whole commands only."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rgstore.events import Noted
from rgstore.log import NewEvent
from rgstore.store import Store
from tests.conftest import REPO

BATCH = 7


def _worker(store: Path, first: int, last: int, stream: str = "crash", expect: bool = False) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "tests.append_worker", str(store), str(first), str(last), str(BATCH), stream]
    if expect:
        args.append("1")
    return subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _waiting_worker(store: Path) -> subprocess.Popen[bytes]:
    """An append worker that imports now and reads its FIRST and LAST from stdin: it starts while the last round's
    store is being checked, and touches the store only once told where to begin."""
    return subprocess.Popen([sys.executable, "-m", "tests.append_worker", str(store), "-", "-", str(BATCH), "crash"],
                            cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_sigkill_at_random_points_never_leaves_a_partial_command(tmp_path: Path) -> None:
    store = tmp_path / "store"
    rng = random.Random(1234)
    acknowledged = 0
    first = 0
    waiting = _waiting_worker(store)
    for round_ in range(50):
        # Each round appends fresh batches and is killed after a random number of acknowledgements,
        # so every SIGKILL lands while the worker is busy writing (not after it finished).
        proc = waiting
        assert proc.stdout is not None and proc.stdin is not None
        proc.stdin.write(f"{first} {first + 10_000}\n".encode())
        proc.stdin.flush()
        for _ in range(rng.randint(1, 12)):
            if not proc.stdout.readline():
                break
        time.sleep(rng.uniform(0, 0.004))  # land anywhere inside the next command
        proc.send_signal(signal.SIGKILL)
        rest, _ = proc.communicate()
        assert proc.returncode == -signal.SIGKILL, "the worker must die mid-run"
        if round_ < 49:
            waiting = _waiting_worker(store)  # its imports overlap this round's checks
        with Store.open(store) as s:
            head = s.head()[0]
            # Every acknowledged batch is durable, and nothing but whole batches is visible.
            assert head % BATCH == 0
            assert head > acknowledged
            acknowledged = head
            report = s.verify()
            assert report.ok, report.problems
        first = head // BATCH
    # A retry of everything with the same ids appends nothing twice and fills no gaps twice.
    proc = _worker(store, 0, first)
    assert proc.wait(timeout=120) == 0
    with Store.open(store) as s:
        assert s.head()[0] == first * BATCH
        texts = [e.event.text for e in s.events()]  # type: ignore[union-attr]
        assert texts == [f"{k}:{i}" for k in range(first) for i in range(BATCH)]
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



def test_a_stale_expected_version_from_another_process_is_a_conflict(tmp_path: Path) -> None:
    store = tmp_path / "store"
    with Store.open(store) as s:
        s.append([NewEvent(stream="shared", event=Noted(text="v1"))])
    # Another process reads version 1, then waits; we move the stream on; it appends with version 1.
    code = (
        "import sys\nfrom rgstore.store import Store\nfrom rgstore.log import NewEvent\n"
        "from rgstore.events import Noted\nfrom rgstore.errors import ConcurrencyConflictError\n"
        f"s = Store.open({str(store)!r})\nv = s.stream_version('shared')\nprint(v, flush=True)\nsys.stdin.readline()\n"
        "try:\n    s.append([NewEvent(stream='shared', event=Noted(text='late'), expected_version=v)])\n"
        "    print('appended')\nexcept ConcurrencyConflictError as e:\n    print('conflict', e.expected, e.actual)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None and proc.stdin is not None
    assert proc.stdout.readline().strip() == "1"
    with Store.open(store) as s:
        s.append([NewEvent(stream="shared", event=Noted(text="v2"), expected_version=1)])
    out, _ = proc.communicate("go\n", timeout=60)
    assert out.split() == ["conflict", "1", "2"]
    with Store.open(store) as s:
        assert [e.event.text for e in s.events()] == ["v1", "v2"]  # type: ignore[union-attr]


@pytest.mark.slow
def test_sigkill_during_replay_or_rebuild_leaves_whole_batches_and_a_rerun_finishes(tmp_path: Path) -> None:
    from rgstore.replay import export_log

    with Store.open(tmp_path / "p") as primary:
        for b in range(4):
            primary.append([NewEvent(stream=f"note:{i % 40}", event=Noted(text=f"{b}:{i}")) for i in range(10_000)])
        export_log(primary, tmp_path / "x.rglog")
        head = primary.head()
    rng = random.Random(99)
    for round_ in range(3):
        target = tmp_path / f"r{round_}"
        for command in (["replay", str(tmp_path / "x.rglog")], ["rebuild"]):
            proc = subprocess.Popen([sys.executable, "-m", "rgstore_cli", "--store", str(target), *command], cwd=REPO,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            deadline = time.monotonic() + 60
            while proc.poll() is None and not (target / "log" / "data.mdb").exists() and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.4))  # somewhere inside the replay's batches or the rebuild's one transaction
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
            with Store.open(target) as s:
                landed = s.head()[0]
                assert landed in (0, head[0]) or landed % 20_000 == 0, landed  # whole replay batches only
                assert s.verify().ok
        proc = subprocess.run([sys.executable, "-m", "rgstore_cli", "--store", str(target), "replay", str(tmp_path / "x.rglog")],
                              cwd=REPO, capture_output=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        with Store.open(target, readonly=True) as s:
            assert s.head() == head and s.verify().ok

"""Claims about rgstore's RefgetStore writer lock: gtars 0.10.0 honours it, and it honours gtars'."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rgstore.errors import ConflictError
from rgstore.refgetlock import LOCK_NAME, refget_write_lock


@pytest.fixture
def refget(tmp_path: Path) -> Path:
    from gtars.refget import RefgetStore

    fasta = tmp_path / "a.fa"
    fasta.write_text(">chr1\nACGT\n")
    root = tmp_path / "refget"
    handle = RefgetStore.on_disk(str(root))
    handle.set_quiet(True)
    handle.disable_encoding()
    handle.add_sequence_collection_from_fasta(str(fasta))
    return root


def test_a_gtars_writer_waits_for_our_lock(refget: Path) -> None:
    from gtars.refget import RefgetStore, store_lock_status

    handle = RefgetStore.open_local(str(refget))
    handle.set_quiet(True)
    handle.set_lock_timeout(1)
    with refget_write_lock(refget, "test-hold"):
        status = store_lock_status(str(refget))
        assert status is not None and status["operation"] == "test-hold"
        with pytest.raises(OSError, match="timed out waiting for the RefgetStore write lock"):
            handle.add_collection_alias("ns", "x", "A" * 32)
    assert not (refget / LOCK_NAME).exists()


def test_we_wait_for_a_gtars_batch_lock_and_say_who_holds_it(refget: Path) -> None:
    from gtars.refget import RefgetStore

    holder = RefgetStore.open_local(str(refget))
    holder.set_quiet(True)
    holder.lock_for_batch("gtars-hold")
    try:
        with pytest.raises(ConflictError, match="gtars-hold"), refget_write_lock(refget, "test", timeout=0.3):
            pass
    finally:
        holder.release_batch_lock()
    with refget_write_lock(refget, "test", timeout=0.3):
        assert (refget / LOCK_NAME).exists()


def test_a_lock_left_by_a_dead_process_is_broken(refget: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    import socket

    (refget / LOCK_NAME).write_text(json.dumps({
        "pid": int(dead.stdout), "hostname": socket.gethostname(), "started_at": "", "heartbeat_at": "",
        "heartbeat_epoch": 0, "operation": "crashed", "gtars_version": "0.10.0",
    }))
    with refget_write_lock(refget, "after-crash", timeout=0.5):
        assert json.loads((refget / LOCK_NAME).read_text())["operation"] == "after-crash"
    assert not (refget / LOCK_NAME).exists()


@pytest.mark.parametrize("heartbeat", [False, True])
def test_a_long_holder_with_a_heartbeat_is_never_judged_stale(
    refget: Path, monkeypatch: pytest.MonkeyPatch, heartbeat: bool
) -> None:
    import os
    import time

    from rgstore import refgetlock

    # The same clock ratios as the real 20 s heartbeat against gtars' 120 s staleness, scaled down.
    monkeypatch.setattr(refgetlock, "STALE_AFTER_S", 1.0)
    monkeypatch.setattr(refgetlock, "HEARTBEAT_S", 0.2)
    path = refget / LOCK_NAME
    with refget_write_lock(refget, "a long backup", heartbeat=heartbeat):
        past = time.time() - 2  # as if the lock had been taken two seconds ago and never refreshed
        holder = json.loads(path.read_text())
        path.write_text(json.dumps({**holder, "heartbeat_epoch": int(past)}))
        os.utime(path, (past, past))
        if heartbeat:  # wait for a heartbeat itself, not a guess at how long one takes under load
            deadline = time.monotonic() + 30
            while path.stat().st_mtime <= past and time.monotonic() < deadline:
                time.sleep(0.02)
        else:
            time.sleep(0.6)  # a few heartbeats' time: none may come
        holder = json.loads(path.read_text())
        assert refgetlock._stale(path, holder) is not heartbeat
        assert holder["pid"] == os.getpid() and holder["operation"] == "a long backup"
    assert not path.exists()


def test_a_writer_that_cannot_write_its_owner_leaves_no_lock_behind(refget: Path) -> None:
    # The lock was created empty, then its owner written: a writer out of disk (here, a file-size limit of 0)
    # or killed in between left an unreadable lock that kept every writer out for STALE_AFTER_S.
    script = (
        "import resource, signal, sys\n"
        "from pathlib import Path\n"
        "from rgstore.refgetlock import refget_write_lock\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))\n"
        "try:\n"
        "    with refget_write_lock(Path(sys.argv[1]), 'no-space'):\n"
        "        sys.exit(3)\n"
        "except OSError as exc:\n"
        "    print(exc.errno)\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(refget)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "27", result.stderr  # EFBIG
    assert sorted(path.name for path in refget.glob(f"{LOCK_NAME}*")) == []
    with refget_write_lock(refget, "next", timeout=0.3):
        assert json.loads((refget / LOCK_NAME).read_text())["operation"] == "next"


def test_a_lock_file_is_never_seen_without_its_owner(refget: Path) -> None:
    # A contender polling while we take and release the lock many times reads a payload every time it sees the file.
    seen_empty = subprocess.Popen(
        [sys.executable, "-c",
         "import os, sys, time\n"
         "path, empty, end = sys.argv[1], 0, time.monotonic() + 30\n"
         "while not os.path.exists(sys.argv[2]) and time.monotonic() < end:\n"
         "    try:\n"
         "        with open(path, 'rb') as fh:\n"
         "            empty += fh.read() == b''\n"
         "    except FileNotFoundError:\n"
         "        pass\n"
         "print(empty)\n",
         str(refget / LOCK_NAME), str(refget.parent / "done")],
        stdout=subprocess.PIPE, text=True)
    try:
        for i in range(300):
            with refget_write_lock(refget, f"take {i}"):
                pass
    finally:
        (refget.parent / "done").touch()
        out, _ = seen_empty.communicate(timeout=60)
    assert out.strip() == "0"


def _dead_lock(refget: Path, operation: str = "crashed") -> None:
    """Leave the lock a process on this host held when it died."""
    import socket

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    (refget / LOCK_NAME).write_text(json.dumps({
        "pid": int(dead.stdout), "hostname": socket.gethostname(), "started_at": "", "heartbeat_at": "",
        "heartbeat_epoch": 0, "operation": operation, "gtars_version": "0.10.0",
    }))


_CONTENDER = """
import os, sys, time
from pathlib import Path
from rgstore.refgetlock import refget_write_lock
root, inside, start = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
while time.time() < start:  # every contender meets the dead lock at the same moment
    pass
with refget_write_lock(root, f"contender {os.getpid()}", timeout=60):
    try:
        fd = os.open(inside, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        print("two holders at once")
        sys.exit(1)
    time.sleep(0.02)
    os.close(fd)
    os.unlink(inside)
"""


def test_contenders_breaking_one_dead_lock_at_once_never_hold_it_together(refget: Path, tmp_path: Path) -> None:
    import time

    inside = tmp_path / "inside"
    for _ in range(5):  # the old bare rename let two contenders through in about half of such runs
        _dead_lock(refget)
        start = time.time() + 0.8
        procs = [subprocess.Popen([sys.executable, "-c", _CONTENDER, str(refget), str(inside), str(start)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(5)]
        results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
        assert all(code == 0 for code, _, _ in results), results
        assert not (refget / LOCK_NAME).exists()


def test_a_dead_lock_is_not_broken_while_another_contender_holds_the_break_claim(refget: Path) -> None:
    import os
    import socket

    from rgstore.refgetlock import BREAK_NAME

    _dead_lock(refget)
    (refget / BREAK_NAME).write_text(f"{os.getpid()} {socket.gethostname()}")  # as gtars writes its claim
    with pytest.raises(ConflictError, match="crashed"), refget_write_lock(refget, "waiting", timeout=0.4):
        pass
    assert json.loads((refget / LOCK_NAME).read_text())["operation"] == "crashed"  # left to the claim's holder


def test_a_break_claim_abandoned_for_over_a_minute_is_taken_over(refget: Path) -> None:
    import os
    import time

    from rgstore.refgetlock import BREAK_NAME

    _dead_lock(refget)
    claim = refget / BREAK_NAME
    claim.write_text("1 elsewhere")
    old = time.time() - 200
    os.utime(claim, (old, old))
    with refget_write_lock(refget, "after", timeout=5):
        assert json.loads((refget / LOCK_NAME).read_text())["operation"] == "after"
    assert sorted(path.name for path in refget.glob(f"{LOCK_NAME}*")) == []


def test_gtars_waits_while_we_hold_the_break_claim(refget: Path) -> None:
    import os
    import socket

    from gtars.refget import RefgetStore

    from rgstore.refgetlock import BREAK_NAME

    _dead_lock(refget)
    (refget / BREAK_NAME).write_text(f"{os.getpid()} {socket.gethostname()}")
    waiter = subprocess.Popen([sys.executable, "-c", (
        "import sys\n"
        "from gtars.refget import RefgetStore\n"
        "h = RefgetStore.open_local(sys.argv[1]); h.set_quiet(True)\n"
        "h.add_collection_alias('ns', 'after-claim', sys.argv[2])\n"
    ), str(refget), RefgetStore.open_local(str(refget)).list_collections()["results"][0].digest],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            waiter.wait(timeout=1.5)
        assert json.loads((refget / LOCK_NAME).read_text())["operation"] == "crashed"
    finally:
        (refget / BREAK_NAME).unlink()
    assert waiter.wait(timeout=60) == 0


def test_a_lock_gone_between_a_failed_create_and_its_read_is_not_stale_so_no_one_breaks_its_successor(
    refget: Path,
) -> None:
    # Its holder let go in between: judged stale, a breaker's check ("still what I read": nothing) passed, and
    # its rename took away the live lock the next writer had just made, so both held it (seen under load).
    import time

    from rgstore import refgetlock

    path = refget / LOCK_NAME
    assert not path.exists()
    assert refgetlock._stale(path, None) is False
    path.write_bytes(b"")  # an unreadable payload of a lock still there is judged by its age alone
    assert refgetlock._stale(path, None) is False
    old = time.time() - refgetlock.STALE_AFTER_S - 60
    os.utime(path, (old, old))
    assert refgetlock._stale(path, None) is True

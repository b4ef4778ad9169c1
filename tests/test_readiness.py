"""Readiness (``rgstore.readiness``): a readable store, and a follower's last successful pull within its bound."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from rgstore.events import Noted
from rgstore.log import NewEvent
from rgstore.mirror import pull, record_pull_error
from rgstore.readiness import MIN_BOUND_S, ReadinessProbe, freshness_bound
from rgstore.segments import publish
from rgstore.servedstore import ServedStore
from rgstore.store import Store


def _primary(path: Path) -> Path:
    with Store.open(path, actor="tester@test") as store:
        store.append([NewEvent(stream="note:a", event=Noted(text="x"))])
    return path


def _mirror(tmp_path: Path) -> Path:
    with Store.open(_primary(tmp_path / "primary"), readonly=True) as primary:
        publish(primary, tmp_path / "pub")
    with Store.open(tmp_path / "mirror") as mirror:
        pull(mirror, str(tmp_path / "pub"))
    return tmp_path / "mirror"


def test_the_freshness_bound_is_three_intervals_but_never_under_30_seconds() -> None:
    assert (freshness_bound(0.1), freshness_bound(5), freshness_bound(20), freshness_bound(3600)) == (
        MIN_BOUND_S, 30.0, 60.0, 10_800.0)


def test_a_readable_primary_is_ready_and_a_max_age_does_not_apply_to_it(tmp_path: Path) -> None:
    with Store.open(_primary(tmp_path / "s"), readonly=True) as store:
        state = ReadinessProbe(store).check(max_age_s=0.1)
    assert (state.ready, state.detail, state.head_seq, state.last_pull) == (True, "ok", 1, None)


def test_a_mirror_is_not_ready_once_its_last_successful_pull_is_older_than_the_bound(tmp_path: Path) -> None:
    with Store.open(_mirror(tmp_path), readonly=True) as mirror:
        fresh = ReadinessProbe(mirror, follow_interval_s=0.1).check()  # bound 30 s: it pulled just now
        time.sleep(0.2)
        stale = ReadinessProbe(mirror).check(max_age_s=0.1)
    assert fresh.ready and fresh.last_pull is not None and fresh.last_pull.endswith("Z")
    assert not stale.ready and stale.last_pull == fresh.last_pull
    assert stale.detail.startswith("this mirror's last successful pull was") and "more than 0.1s" in stale.detail


def test_a_stale_mirror_says_since_when_its_pulls_fail_and_a_good_pull_makes_it_ready_again(tmp_path: Path) -> None:
    path = _mirror(tmp_path)
    with Store.open(path) as mirror:
        record_pull_error(mirror, "cannot reach http://up.example: [Errno 111] Connection refused")
        time.sleep(0.2)
        failing = ReadinessProbe(mirror).check(max_age_s=0.1)
        pull(mirror, str(tmp_path / "pub"))
        again = ReadinessProbe(mirror).check(max_age_s=60)
    assert not failing.ready and "pulls have failed since 20" in failing.detail
    assert again.ready and "failed" not in again.detail


def test_a_mirror_promoted_under_a_following_server_is_ready_as_a_primary_and_says_so(tmp_path: Path) -> None:
    from rgstore.mirror import promote

    path = _mirror(tmp_path)
    with Store.open(path) as mirror:
        promote(mirror)
    time.sleep(0.2)
    with Store.open(path, readonly=True) as store:
        following = ReadinessProbe(store, follow_interval_s=0.1).check(max_age_s=0.1)  # past any bound
        plain = ReadinessProbe(store).check(max_age_s=0.1)
    assert following.ready and "promoted to a primary" in following.detail and "replica.error" in following.detail
    assert (plain.ready, plain.detail) == (True, "ok")  # no follower to explain: a primary, as ever


def test_the_store_moved_under_the_handle_is_not_ready_and_the_answer_names_no_path(tmp_path: Path) -> None:
    path = _primary(tmp_path / "s")
    with Store.open(path, readonly=True) as store:
        probe = ReadinessProbe(store, cache_s=3600)
        assert probe.check().ready
        path.rename(tmp_path / "elsewhere")
        cached = probe.check()  # one look answers for cache_s: a load balancer's many checks stay cheap
        moved = ReadinessProbe(store).check()
    assert cached.ready
    assert not moved.ready and "deleted, moved or replaced" in moved.detail and str(tmp_path) not in moved.detail


def test_a_refget_that_is_not_a_readable_directory_is_not_ready(tmp_path: Path) -> None:
    path = _primary(tmp_path / "s")
    with Store.open(path, readonly=True) as store:
        assert ReadinessProbe(store).check().ready
        shutil.rmtree(path / "refget")
        (path / "refget").write_text("not a directory")  # say, a mount point gone wrong under a running server
        state = ReadinessProbe(store).check()
    assert not state.ready and state.detail.startswith("the store's refget/ directory cannot be read")


@pytest.mark.parametrize("follow", [None, 5.0])
def test_a_mirror_on_a_plain_server_is_ready_without_max_age_whatever_its_last_pull(
        tmp_path: Path, follow: float | None) -> None:
    with Store.open(_mirror(tmp_path), readonly=True) as mirror:
        state = ReadinessProbe(mirror, follow_interval_s=follow).check()
    assert state.ready  # pulled a moment ago: within 30 s, and without --follow no bound applies at all


def _served_and_replaced(tmp_path: Path) -> tuple[Path, Store]:
    """A store at ``s`` (one note) opened read-only, then moved to ``s.old`` as an operator makes room for a restore."""
    path = _primary(tmp_path / "s")
    store = Store.open(path, readonly=True)
    path.rename(tmp_path / "s.old")
    return path, store


def test_a_served_store_replaced_by_another_serves_the_new_one_and_closes_the_old_after_its_last_request(
        tmp_path: Path) -> None:
    path, store = _served_and_replaced(tmp_path)
    with Store.open(path, actor="tester@test") as new:  # the restored store: another log, two events
        new.append([NewEvent(stream="note:b", event=Noted(text=t)) for t in ("y", "z")])
    lines: list[str] = []
    served = ServedStore(store, check_s=0, log=lines.append)
    probe = ReadinessProbe(served)
    held = served.acquire()  # a request still streaming from the old handle
    assert served.due()
    current = served.reopen()
    assert current is served.current is not store and current.head()[0] == 2 and probe.check().ready
    assert held.head()[0] == 1  # not closed under the request holding it
    served.release(held)
    assert repr(store).endswith("closed>") and not served.due()
    assert len(lines) == 1 and "was replaced; now serving the one there" in lines[0]
    assert "a different log than before" in lines[0]  # the operator's choice, said in the log
    served.close()


def test_a_served_store_replaced_by_nothing_or_a_non_store_is_not_ready_says_why_and_recovers_once_one_opens(
        tmp_path: Path) -> None:
    path, store = _served_and_replaced(tmp_path)
    lines: list[str] = []
    served = ServedStore(store, check_s=0, log=lines.append)
    probe = ReadinessProbe(served, cache_s=0)
    assert served.due() and served.reopen() is store
    gone = probe.check()
    (path / "log").mkdir(parents=True)
    (path / "log" / "data.mdb").write_bytes(b"not an LMDB file" * 512)  # a restore gone wrong
    assert served.due() and served.reopen() is store and served.reopen() is store
    broken = probe.check()
    shutil.rmtree(path)
    shutil.copytree(tmp_path / "s.old", path)  # a good copy at last (another inode: a new store to open)
    assert served.due() and served.reopen() is not store
    again = probe.check()
    served.close()
    assert not gone.ready and "deleted, moved or replaced" in gone.detail and "nothing is there now" in gone.detail
    assert not broken.ready and "the one there now does not open (StoreOpenError" in broken.detail
    assert str(tmp_path) not in gone.detail + broken.detail
    assert again.ready and again.head_seq == 1
    assert len(lines) == 3, lines  # each reason logged once, then the swap


def _exchange(a: Path, b: Path) -> None:
    """Swap two directories in one step (``mv --exchange``, renameat2 RENAME_EXCHANGE): either path always holds one."""
    import ctypes
    import errno
    import os

    rename = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if rename is None:
        pytest.skip("renameat2 is not available here")
    if rename(-100, os.fsencode(a), -100, os.fsencode(b), 2) != 0:  # AT_FDCWD, RENAME_EXCHANGE
        code = ctypes.get_errno()
        if code in (errno.EINVAL, errno.ENOSYS):
            pytest.skip(f"this file system cannot exchange directories ({os.strerror(code)})")
        raise OSError(code, os.strerror(code), str(a))


def test_readiness_right_after_a_swap_serves_the_store_swapped_in_rather_than_say_the_old_one_moved(
        tmp_path: Path) -> None:
    path = _primary(tmp_path / "s")
    with Store.open(tmp_path / "restored", actor="tester@test") as new:  # another log, two events
        new.append([NewEvent(stream="note:b", event=Noted(text=t)) for t in ("y", "z")])
    lines: list[str] = []
    served = ServedStore(Store.open(path, readonly=True), check_s=3600, log=lines.append)  # no request looks again
    probe = ReadinessProbe(served, cache_s=0)
    try:
        before = probe.check()
        _exchange(path, tmp_path / "restored")
        after = probe.check()
        assert before.ready and before.head_seq == 1
        assert after.ready and after.head_seq == 2, after.detail  # answered from the store there now
        assert not probe.replaced() and len(lines) == 1 and "now serving the one there" in lines[0], lines
    finally:
        served.close()


def _log_id(server_url: str) -> str:
    import httpx

    return str(httpx.get(f"{server_url}/healthz").json()["log_id"])


def test_readyz_of_a_server_right_after_a_swap_is_ready_and_answers_from_the_store_swapped_in(tmp_path: Path) -> None:
    """A load balancer must not drain a healthy backend for the second a worker takes to notice a restore."""
    import httpx

    from tests.server_fixture import running_server

    path = _primary(tmp_path / "store")
    with Store.open(tmp_path / "other", actor="tester@test") as other:  # another log, two events
        other.append([NewEvent(stream="note:b", event=Noted(text=t)) for t in ("y", "z")])
    with running_server(path, log_dir=tmp_path) as server:
        first = _log_id(server.url)
        _exchange(path, tmp_path / "other")
        deadline = time.monotonic() + 30  # the worker looks at the path about once a second
        while _log_id(server.url) == first and time.monotonic() < deadline:
            time.sleep(0.05)
        # The worker has just looked (it serves the other store); it looks again only a second from now.
        _exchange(path, tmp_path / "other")  # and back: /readyz is asked before that look
        ready = httpx.get(f"{server.url}/readyz")
        now = _log_id(server.url)
        log = server.log()
    assert ready.status_code == 200 and ready.json()["head_seq"] == 1, ready.text
    assert now == first and log.count("was replaced; now serving the one there") == 2, log


def test_swapping_back_to_a_store_a_download_still_reads_serves_it_again_at_once(tmp_path: Path) -> None:
    """LMDB refuses to open files already open in the process: the handle the download holds is served again."""
    import random
    import socket

    import httpx

    from tests.server_fixture import init_genome, running_server

    bases = "".join(random.Random(5).choices("ACGT", k=8_000_000))  # far more than the socket buffers hold
    (tmp_path / "big.fa").write_text(f">big\n{bases}\n")
    path = tmp_path / "store"
    digest = init_genome(path, tmp_path / "big.fa", "big")["sequences"][0]  # type: ignore[index]
    _primary(tmp_path / "other")
    with running_server(path, log_dir=tmp_path) as server:
        first, head_seq = _log_id(server.url), httpx.get(f"{server.url}/healthz").json()["head_seq"]
        download = socket.socket()
        download.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a slow reader: the server stalls
        download.settimeout(30)
        download.connect(("127.0.0.1", int(server.url.rsplit(":", 1)[1])))
        download.sendall(f"GET /sequence/{digest} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        received = download.recv(4096)
        _exchange(path, tmp_path / "other")
        deadline = time.monotonic() + 30  # the worker looks at the path about once a second
        while (swapped := _log_id(server.url)) == first and time.monotonic() < deadline:
            time.sleep(0.05)
        _exchange(path, tmp_path / "other")  # back to the store the download still reads
        deadline = time.monotonic() + 30
        while (back := _log_id(server.url)) != first and time.monotonic() < deadline:
            time.sleep(0.05)
        ready = httpx.get(f"{server.url}/readyz")
        while chunk := download.recv(1 << 20):  # the download goes on, then ends
            received += chunk
        download.close()
        after = httpx.get(f"{server.url}/sequence/{digest}", params={"start": 10, "end": 20})
        log = server.log()
    head, _, body = received.partition(b"\r\n\r\n")
    assert swapped != first and back == first, log
    assert ready.status_code == 200 and ready.json()["head_seq"] == head_seq, ready.text
    assert head.startswith(b"HTTP/1.1 200") and body == bases.encode()
    assert after.status_code == 200 and after.content == bases[10:20].encode()  # its handle stays open: it serves
    assert "still open for a request; serving it again" in log and "Traceback" not in log, log


def test_a_running_server_serves_a_store_renamed_into_its_path_without_a_restart(tmp_path: Path) -> None:
    """An operator restores a backup (or rebuilds a mirror) into a new directory and renames it into place."""
    import httpx

    from tests.server_fixture import init_genome, running_server

    path = _primary(tmp_path / "store")
    genome = init_genome(tmp_path / "restored", Path(__file__).resolve().parent.parent / "rgstore" / "data"
                         / "tiny.fa", "tiny")
    with running_server(path, log_dir=tmp_path) as server:
        assert httpx.get(f"{server.url}/v4/genomes/{genome['digest']}").status_code == 404
        path.rename(tmp_path / "store.old")
        (tmp_path / "restored").rename(path)
        deadline = time.monotonic() + 30  # each worker looks at the path about once a second
        while (found := httpx.get(f"{server.url}/v4/genomes/{genome['digest']}")).status_code != 200 \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        sequence = httpx.get(f"{server.url}/sequence/{genome['sequences'][0]}")  # type: ignore[index]
        ready = httpx.get(f"{server.url}/readyz")
        log = server.log()
    assert found.status_code == 200 and found.json()["digest"] == genome["digest"]
    assert sequence.status_code == 200 and sequence.content
    assert ready.status_code == 200, ready.text
    assert log.count("was replaced; now serving the one there") == 1, log


def _genomes_view_left_behind(path: Path) -> dict[str, object]:
    """A store at ``path`` with the tiny genome, as an older rgstore left it: its genomes view to be folded again."""
    from rgstore.views.genomes import GenomesView
    from tests.server_fixture import init_genome

    genome = init_genome(path, Path(__file__).resolve().parent.parent / "rgstore" / "data" / "tiny.fa", "tiny")
    with Store.open(path) as store:

        def older(txn: object) -> None:
            view = next(v for v in store.views if isinstance(v, GenomesView))
            view.clear(txn, store.environment)  # type: ignore[arg-type]
            store.log.set_checkpoint(txn, view, 0)  # type: ignore[arg-type]

        store.environment.write(older)
    return genome


def test_a_server_after_an_upgrade_binds_first_and_is_not_ready_until_its_views_are_caught_up(tmp_path: Path) -> None:
    """Liveness answers at once; everything that reads views answers 503 until the catch-up is done."""
    import httpx
    import lmdb

    from tests.server_fixture import running_server

    path = tmp_path / "store"
    genome = _genomes_view_left_behind(path)
    env = lmdb.open(str(path / "log"), max_dbs=64)
    writer = env.begin(write=True)  # another writer's long transaction: the catch-up waits for it
    try:
        with running_server(path, log_dir=tmp_path) as server:  # it waits for /healthz: bound and live
            waiting = httpx.get(f"{server.url}/readyz")
            refused = httpx.get(f"{server.url}/v4/genomes/{genome['digest']}")
            writer.abort()
            deadline = time.monotonic() + 60
            while (ready := httpx.get(f"{server.url}/readyz")).status_code != 200 and time.monotonic() < deadline:
                time.sleep(0.1)
            found = httpx.get(f"{server.url}/v4/genomes/{genome['digest']}")
            log = server.log()
    finally:
        writer.abort()
        env.close()
    assert waiting.status_code == 503 and "catching up views genomes after an upgrade" in waiting.json()["detail"]
    assert refused.status_code == 503 and refused.headers["retry-after"] == "5"  # never a 404 from a view half built
    assert ready.status_code == 200 and found.status_code == 200, (ready.text, log)
    assert "catching up views genomes" in log and "caught up; answering from them" in log, log


def _catch_up_children(path: Path) -> list[int]:
    """Pids of the running catch-up processes on the store at ``path`` (whoever their parent is now)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:  # not a process, or it has just ended
            continue
        if str(path).encode() in argv and any(b"Store.open(sys.argv[1], readonly=True)" in a for a in argv):
            found.append(int(proc.name))
    return found


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGKILL"])
def test_a_server_stopped_while_it_catches_up_views_leaves_no_catch_up_process_behind(
        tmp_path: Path, stop: str) -> None:
    """An orphaned catch-up would go on writing the store after its server is gone (systemd stops the main pid)."""
    import signal

    import lmdb

    from tests.server_fixture import running_server

    path = tmp_path / "store"
    _genomes_view_left_behind(path)
    env = lmdb.open(str(path / "log"), max_dbs=64)
    writer = env.begin(write=True)  # the catch-up waits for it: still running when the server stops
    try:
        with running_server(path, log_dir=tmp_path) as server:
            deadline = time.monotonic() + 30
            while not (started := _catch_up_children(path)) and time.monotonic() < deadline:
                time.sleep(0.05)
            server.process.send_signal(getattr(signal, stop))
            server.process.wait(timeout=30)
            deadline = time.monotonic() + 10  # a killed worker's child notices within a second
            while (left := _catch_up_children(path)) and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        writer.abort()
        env.close()
    assert started, server.log()
    assert left == [], server.log()
    if stop == "SIGTERM":
        assert server.process.returncode == 0 and "could not be caught up" not in server.log(), server.log()

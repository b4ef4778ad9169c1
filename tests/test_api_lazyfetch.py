"""Lazy fetches from an upstream that accepts and never answers cannot starve the server's other routes.

A real uvicorn server runs in-process on loopback with a deliberately small AnyIO threadpool (3
tokens, set on the default limiter at lifespan startup, as FastAPI's sync routes use it), in front
of a store whose remote genome's sequences are not fetched yet. The remote's port is then taken by
a socket that accepts connections and never replies.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import uvicorn

from tests.httpfixture import serve_directory
from tests.test_remote import build_refget

FASTA = "".join(f">s{i}\n{'ACGT'[i % 4] * 40}{'TGCA'[i % 4] * (30 + i)}\n" for i in range(5))
POOL = 3
"""Tokens of the server's default threadpool: smaller than the fetches the tests start."""


class Hole:
    """A listener on ``port`` that accepts connections and never answers until ``release``."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(64)
        self.accepted: list[socket.socket] = []
        self.released = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)
            if self.released:
                conn.close()

    def wait_for(self, count: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.accepted) < count:
            assert time.monotonic() < deadline, f"only {len(self.accepted)} fetches reached the remote"
            time.sleep(0.05)

    def release(self) -> None:
        """Hang up on everyone, now and on arrival: the fetches waiting on the remote fail."""
        self.released = True
        for conn in self.accepted:
            conn.close()

    def close(self) -> None:
        self.release()
        self.sock.close()


@contextmanager
def lazy_store_behind_a_hole(tmp_path: Path) -> Iterator[tuple[Path, list[str], Hole]]:
    """A store with a remote genome of 5 unfetched sequences, its remote replaced by a ``Hole``."""
    from rgstore import remote
    from rgstore.store import Store

    root = tmp_path / "remote" / "store"
    digest = build_refget(root, FASTA)
    store_path = tmp_path / "store"
    with serve_directory(root) as upstream, Store.open(store_path) as store:
        sequences = list(remote.init_remote(store, upstream.url, ["tiny"], digest=digest).genome.sequences)
        port = int(upstream.url.rsplit(":", 1)[1])
    hole = Hole(port)
    try:
        yield store_path, sequences, hole
    finally:
        hole.close()


@contextmanager
def small_pool_server(store_path: Path) -> Iterator[str]:
    """The real app under a real uvicorn on a free loopback port, with a ``POOL``-token default threadpool."""
    from rgstore_api.app import create_app

    app = create_app(str(store_path))

    async def small_pool(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":  # runs in the server's event loop, before any request
            anyio.to_thread.current_default_thread_limiter().total_tokens = POOL
        await app(scope, receive, send)

    server = uvicorn.Server(uvicorn.Config(small_pool, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(60)


@pytest.fixture
def fetch_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RGSTORE_SERVE_FETCH_SLOTS", "2")
    monkeypatch.setenv("RGSTORE_SERVE_FETCH_WAIT_S", "1")


def test_fetches_hanging_on_a_silent_upstream_leave_every_other_route_answering(
    tmp_path: Path, fetch_limits: None
) -> None:
    with lazy_store_behind_a_hole(tmp_path) as (store_path, sequences, hole), \
            small_pool_server(store_path) as url, ThreadPoolExecutor(len(sequences)) as pool:
        try:
            fetches = [pool.submit(httpx.get, f"{url}/sequence/{seq}", timeout=120) for seq in sequences]
            hole.wait_for(2)  # fetches are now stuck on the remote
            for path in ("v4/genomes", "events", "refpkgs", "store/rgstore.json", "cache/entries",
                         f"sequence/{sequences[0]}/metadata", "seqcol/list/collection"):
                r = httpx.get(f"{url}/{path}", timeout=20)  # the old server never answered these
                assert r.status_code == 200, (path, r.text)
            # Fetches beyond the 2 slots waited their bounded second, then were told to come back.
            deadline = time.monotonic() + 60
            while sum(f.done() for f in fetches) < len(sequences) - 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            busy = [f.result() for f in fetches if f.done()]
            stuck = [f for f in fetches if not f.done()]
            assert len(busy) == len(sequences) - 2 and len(stuck) == 2
            for r in busy:
                assert r.status_code == 503 and r.headers["retry-after"].isdigit(), r.text
                assert "fetch" in r.json()["detail"] and "\n" not in r.json()["detail"]
            hole.release()
            assert [f.result().status_code for f in stuck] == [502, 502]
        finally:
            hole.release()  # on failure too: the client threads must end before the pool does


def test_requests_for_one_unfetched_sequence_share_one_download_and_its_outcome(
    tmp_path: Path, fetch_limits: None
) -> None:
    with lazy_store_behind_a_hole(tmp_path) as (store_path, sequences, hole), \
            small_pool_server(store_path) as url, ThreadPoolExecutor(4) as pool:
        try:
            same: list[Future[httpx.Response]] = [
                pool.submit(httpx.get, f"{url}/sequence/{sequences[1]}", timeout=120) for _ in range(4)]
            hole.wait_for(1)
            assert httpx.get(f"{url}/v4/genomes", timeout=20).status_code == 200
            hole.release()
            answers = [f.result() for f in same]
            assert [r.status_code for r in answers] == [502] * 4, [r.text for r in answers]
            # One download, whose failure every waiting request reports: its GET, hung up on before any answer,
            # is sent once more on a new connection (httpclient's retry); a hang-up is a blip, so the download is
            # tried again as rgstore.retries says, its waits (0.3 + 0.6 + 0.9 s) within a lazy read's 2 s: 4 tries.
            assert len(hole.accepted) == 2 * 4
        finally:
            hole.release()


@pytest.mark.parametrize(("name", "value"), [("RGSTORE_SERVE_FETCH_SLOTS", "0"), ("RGSTORE_SERVE_FETCH_SLOTS", "2.5"),
                                             ("RGSTORE_SERVE_FETCH_WAIT_S", "soon"),
                                             ("RGSTORE_SERVE_FETCH_TIMEOUT_S", "inf"),
                                             ("RGSTORE_SERVE_FETCH_SLOTS", "9" * 400),
                                             ("RGSTORE_LOW_SPEED_LIMIT", "-5"), ("RGSTORE_LOW_SPEED_TIME_S", "nan")])
def test_serve_refuses_a_bad_fetch_limit_in_one_line_before_listening(
    store: Any, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    from rgstore_api.server import serve

    from rgstore.errors import InvalidInputError

    store.close()
    monkeypatch.setenv(name, value)
    with socket.socket() as taken:  # were the limits not checked first, serve would stop here instead
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        with pytest.raises(InvalidInputError, match=rf"^\${name}=.*: expected (a whole number|a number)"):
            serve(store.path, port=taken.getsockname()[1])


def test_the_cli_refuses_a_bad_fetch_limit_before_its_serving_line(store: Any) -> None:
    import subprocess
    import sys

    from tests.conftest import REPO

    store.close()
    env = {**os.environ, "RGSTORE_SERVE_FETCH_SLOTS": "0"}
    proc = subprocess.run([sys.executable, "-m", "rgstore_cli", "--store", str(store.path), "serve", "--port", "0"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert proc.stderr.splitlines() == ["error: $RGSTORE_SERVE_FETCH_SLOTS='0': expected a whole number >= 1"]


@pytest.mark.parametrize(("name", "value"), [("RGSTORE_LOW_SPEED_LIMIT", "inf"), ("RGSTORE_LOW_SPEED_TIME_S", "0")])
def test_the_cli_refuses_a_bad_low_speed_setting_before_its_serving_line(store: Any, name: str, value: str) -> None:
    import subprocess
    import sys

    from tests.conftest import REPO

    store.close()
    env = {**os.environ, name: value}
    proc = subprocess.run([sys.executable, "-m", "rgstore_cli", "--store", str(store.path), "serve", "--port", "0"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0
    assert proc.stderr.splitlines() == [f"error: ${name}='{value}': expected a number >= {'0' if 'LIMIT' in name else '0.001'}"]


def test_a_zero_fetch_wait_still_fetches_when_a_slot_is_free(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rgstore import remote
    from rgstore.store import Store

    monkeypatch.setenv("RGSTORE_SERVE_FETCH_WAIT_S", "0")  # "never queue": a free slot must still be taken
    root = tmp_path / "remote" / "store"
    digest = build_refget(root, FASTA)
    with serve_directory(root) as upstream:
        with Store.open(tmp_path / "store") as store:
            sequences = list(remote.init_remote(store, upstream.url, ["tiny"], digest=digest).genome.sequences)
        with small_pool_server(tmp_path / "store") as url:
            r = httpx.get(f"{url}/sequence/{sequences[2]}", timeout=120)
    assert r.status_code == 200, r.text
    assert r.text == "ACGT"[2] * 40 + "TGCA"[2] * 32


def test_a_fetch_childs_error_is_remade_by_class_even_when_its_constructor_takes_more_than_a_message() -> None:
    # ChainError(seq, why) could not be re-made from a message: a TypeError, so a 500 instead of the child's words.
    from rgstore_api.fetchworker import child_error

    from rgstore.errors import IntegrityError, RemoteError

    assert type(child_error("IntegrityError", "bad residues")) is IntegrityError
    chain = child_error("ChainError", "log record seq 7: hash chain mismatch")
    assert type(chain) is RemoteError and str(chain) == "log record seq 7: hash chain mismatch"
    assert type(child_error("NoSuchError", "x")) is RemoteError


def _fetch_workers(server_pid: int) -> set[int]:
    """Live (not zombie) descendants of ``server_pid`` running the fetch script, read from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if stat[0] != "Z":
                parents[int(entry.name)] = int(stat[1])
    found = set()
    for pid in parents:
        ancestor = parents.get(pid)
        while ancestor is not None and ancestor != server_pid:
            ancestor = parents.get(ancestor)
        if ancestor == server_pid and _runs_the_fetch_script(pid):
            found.add(pid)
    return found


def _until(check: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        time.sleep(0.05)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the fetch workers through Linux /proc")
def test_lazy_fetches_reuse_one_worker_process_a_killed_one_is_replaced_and_none_outlives_the_server(
    tmp_path: Path,
) -> None:
    import signal

    from rgstore import remote
    from rgstore.store import Store
    from tests.server_fixture import running_server

    root = tmp_path / "remote" / "store"
    digest = build_refget(root, FASTA)
    with serve_directory(root) as upstream:
        with Store.open(tmp_path / "store") as store:
            sequences = list(remote.init_remote(store, upstream.url, ["tiny"], digest=digest).genome.sequences)
        seen: set[int] = set()
        with running_server(tmp_path / "store") as server:
            for i in range(3):  # one at a time: one worker fetches them all
                r = httpx.get(f"{server.url}/sequence/{sequences[i]}", timeout=120)
                assert r.status_code == 200 and r.text == "ACGT"[i] * 40 + "TGCA"[i] * (30 + i), r.text
                seen |= _fetch_workers(server.process.pid)
            assert len(seen) == 1 and _fetch_workers(server.process.pid) == seen  # the old server kept none
            (first,) = seen
            os.kill(first, signal.SIGKILL)  # dies while idle: the next fetch gets a new worker
            _until(lambda: first not in _fetch_workers(server.process.pid))
            r = httpx.get(f"{server.url}/sequence/{sequences[3]}", timeout=120)
            assert r.status_code == 200 and r.text == "ACGT"[3] * 40 + "TGCA"[3] * 33, r.text
            replacement = _fetch_workers(server.process.pid)
            assert len(replacement) == 1 and first not in replacement
            seen |= replacement
        # The server has exited (running_server waited for it): its workers read EOF and ended.
        _until(lambda: not [pid for pid in seen if _runs_the_fetch_script(pid)])


def _runs_the_fetch_script(pid: int) -> bool:
    try:  # a zombie's command line reads empty
        return b"import fetch_missing" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the fetch worker through Linux /proc")
def test_a_fetch_whose_worker_dies_mid_download_is_not_sent_again_by_another_worker(tmp_path: Path) -> None:
    # Only a worker already gone when the request goes out is replaced and asked again. One killed while it
    # fetched (OOM, a gtars panic) may have reached the upstream: a new worker sent the download a second time.
    import signal

    from rgstore_api.fetchworker import FetchWorkers

    from rgstore import remote
    from rgstore.errors import RemoteError
    from rgstore.store import Store

    root = tmp_path / "remote" / "store"
    digest = build_refget(root, FASTA)
    workers = FetchWorkers(tmp_path / "store", slots=1, timeout=120)
    try:
        with serve_directory(root) as upstream:
            with Store.open(tmp_path / "store") as store:
                sequences = list(remote.init_remote(store, upstream.url, ["tiny"], digest=digest).genome.sequences)
            assert workers.fetch(sequences[0]) is True  # the next fetch goes to this worker, reused
            port = int(upstream.url.rsplit(":", 1)[1])
        hole = Hole(port)
        pool = ThreadPoolExecutor(1)
        try:
            fetch = pool.submit(workers.fetch, sequences[1])
            hole.wait_for(1)  # the download is under way
            (worker,) = _fetch_workers(os.getpid())
            os.kill(worker, signal.SIGKILL)
            _until(lambda: fetch.done() or len(hole.accepted) > 1)
            assert len(hole.accepted) == 1  # the old code's retry made a second connection
            with pytest.raises(RemoteError, match="fetch worker exit"):
                fetch.result(timeout=60)
        finally:
            hole.close()
            pool.shutdown()
    finally:
        workers.close()


def _fetch_with_a_broken_gtars(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gtars_init: str) -> str:
    """The RemoteError message of a worker fetch whose process imports ``gtars_init`` as gtars (the test's own copy)."""
    from rgstore_api.fetchworker import FetchWorkers

    from rgstore import remote
    from rgstore.errors import RemoteError
    from rgstore.store import Store

    root = tmp_path / "remote" / "store"
    digest = build_refget(root, FASTA)
    fake = tmp_path / "fake" / "gtars"
    fake.mkdir(parents=True)
    fake.joinpath("__init__.py").write_text(gtars_init)
    # Only the workers see it: they start with this environment; this process has the real gtars loaded.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(fake.parent), os.environ.get("PYTHONPATH", "")]))
    workers = FetchWorkers(tmp_path / "store", slots=1, timeout=120)
    try:
        with serve_directory(root) as upstream:
            with Store.open(tmp_path / "store") as store:
                sequences = list(remote.init_remote(store, upstream.url, ["tiny"], digest=digest).genome.sequences)
            with pytest.raises(RemoteError) as failed:
                workers.fetch(sequences[0].removeprefix("SQ."))
        return str(failed.value)
    finally:
        workers.close()


def test_a_gtars_panic_in_a_fetch_worker_is_reported_with_its_message(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # pyo3 raises a Rust panic as PanicException, a BaseException: it got past the worker's `except
    # Exception`, killed it, and the server said only "fetch worker exit 1".
    message = _fetch_with_a_broken_gtars(tmp_path, monkeypatch, (
        "class PanicException(BaseException):\n    pass\n"
        "raise PanicException('index out of bounds: the len is 0 but the index is 3')\n"
    ))
    assert message.endswith("failed: PanicException: index out of bounds: the len is 0 but the index is 3"), message


def test_a_fetch_worker_that_aborts_is_reported_with_its_last_words_on_stderr(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A Rust abort (panic=abort, a double panic) ends the process on the spot after a line on stderr;
    # that stderr went to /dev/null and the server said only "fetch worker exit -6".
    message = _fetch_with_a_broken_gtars(tmp_path, monkeypatch, (
        "import os, sys\n"
        "sys.stderr.write(\"thread '<unnamed>' panicked at src/refget/store.rs:812:9:\\n\"\n"
        "                 'cannot write sequence index\\n'\n"
        "                 'note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\\n')\n"
        "sys.stderr.flush()\n"
        "os.abort()\n"
    ))
    assert message.endswith("(fetch worker exit -6: cannot write sequence index)"), message

"""A worker's budget for regions answers in flight (``api.regionbudget``) on a real server, and its waiting rule.

An answer is held in flight deterministically by a client that asks for one far larger than the
kernel can buffer between it and the server, reads the response's first bytes (so the answer's
room is taken), and then reads no more: the server waits on that connection until it reads or
goes away.
"""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from tests.server_fixture import Server, init_genome, running_server

BIG = "ACGT" * 5_000
BAD = "ACGT" * 5_000


def _kernel_send_buffer_max() -> int:
    """The most a loopback connection's send buffer grows to (Linux's tcp_wmem maximum; 4 MiB if unknown)."""
    try:
        return int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    except (OSError, IndexError, ValueError):
        return 4 << 20


REGION = len(b'{"chrom_name":"big","start":0,"end":20000,"sequence":""},') + len(BIG)
HELD_REGIONS = (_kernel_send_buffer_max() + (8 << 20)) // REGION + 1
"""Regions of an answer the kernel cannot take whole: the server sends it only as its client reads."""
BUDGET_MIB = HELD_REGIONS * REGION // (1 << 20) + 2
"""Room for one held answer, not for two."""


def _store(root: Path) -> tuple[Path, str, str]:
    """A store with genome ``g`` (sequence ``big``) and genome ``b`` whose stored ``bad`` holds a non-residue byte."""
    (root / "g.fa").write_text(f">big\n{BIG}\n")
    (root / "b.fa").write_text(f">bad\n{BAD}\nTT\n")
    good = init_genome(root / "store", root / "g.fa", "g")
    bad = init_genome(root / "store", root / "b.fa", "b")
    bare = str(bad["sequences"][0]).removeprefix("SQ.")  # type: ignore[index]
    path = root / "store" / "refget" / "sequences" / bare[:2] / f"{bare}.seq"
    path.chmod(0o644)
    with open(path, "r+b") as f:  # same length, so the file is opened and read: the fault is found filling the answer
        f.seek(len(BAD) - 1)
        f.write(b"!")
    return root / "store", str(good["digest"]), str(bad["digest"])


@pytest.fixture(scope="module")
def budget_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    return _store(tmp_path_factory.mktemp("budget"))


@pytest.fixture(scope="module")
def short_wait(budget_store: tuple[Path, str, str]) -> Iterator[Server]:
    env = {"RGSTORE_SERVE_REGIONS_BUDGET_MIB": str(BUDGET_MIB), "RGSTORE_SERVE_REGIONS_WAIT_S": "0.5"}
    with running_server(budget_store[0], env=env, log_dir=budget_store[0].parent) as server:
        yield server


def _body(chrom: str, count: int) -> bytes:
    length = len(BIG) if chrom == "big" else len(BAD) + 2
    return json.dumps([{"chrom": chrom, "start": 0, "end": length}] * count).encode()


def _post(server: Server, digest: str, body: bytes) -> httpx.Response:
    return httpx.post(f"{server.url}/seqcol/collection/{digest}/regions", content=body,
                      headers={"content-type": "application/json"}, timeout=120)


class HeldAnswer:
    """A request whose client has read only the first bytes of its answer: the server holds the rest."""

    def __init__(self, server: Server, digest: str, body: bytes) -> None:
        host, port = server.url.removeprefix("http://").rsplit(":", 1)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)  # before connect: no autotuning
        self.sock.connect((host, int(port)))
        self.sock.sendall(f"POST /seqcol/collection/{digest}/regions HTTP/1.1\r\nHost: x\r\n".encode()
                          + f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        self.got = b""
        while b"\r\n\r\n" not in self.got:  # the head: sent only once the answer's room was taken
            chunk = self.sock.recv(1 << 16)
            assert chunk, self.got
            self.got += chunk

    def read_all(self) -> tuple[bytes, bytes]:
        """The rest of the answer, read to its end: (head, body)."""
        head, _, body = self.got.partition(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
        while len(body) < length:
            chunk = self.sock.recv(1 << 20)
            assert chunk, len(body)
            body += chunk
        return head, body

    def hang_up(self) -> None:
        """Close with a reset (SO_LINGER 0): the server sees the client gone at once."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


def _one_line(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, (r.status_code, r.text[:300])
    body = r.json()
    assert list(body) == ["detail"] and "\n" not in body["detail"]
    return str(body["detail"])


def test_an_answer_larger_than_the_whole_budget_is_refused_at_once_with_413(
    short_wait: Server, budget_store: tuple[Path, str, str],
) -> None:
    count = (BUDGET_MIB << 20) // REGION + 1
    detail = _one_line(_post(short_wait, budget_store[1], _body("big", count)), 413)
    assert f"{BUDGET_MIB:,} MiB" in detail


def test_a_request_finding_the_budget_taken_gets_503_with_retry_after_and_succeeds_once_the_first_is_sent(
    short_wait: Server, budget_store: tuple[Path, str, str],
) -> None:
    body = _body("big", HELD_REGIONS)
    held = HeldAnswer(short_wait, budget_store[1], body)
    try:
        assert held.got.startswith(b"HTTP/1.1 200"), held.got[:200]
        r = _post(short_wait, budget_store[1], body)
        assert "ask again" in _one_line(r, 503)
        assert r.headers["retry-after"].isdigit()
        _, answer = held.read_all()
        assert json.loads(answer)[-1] == {"chrom_name": "big", "start": 0, "end": len(BIG), "sequence": BIG}
    finally:
        held.sock.close()
    r = _post(short_wait, budget_store[1], body)
    assert r.status_code == 200 and len(r.json()) == HELD_REGIONS


def test_the_budget_is_given_back_when_filling_an_answer_fails(
    short_wait: Server, budget_store: tuple[Path, str, str],
) -> None:
    # Each failing answer takes most of the budget: one not given back would leave the next a 503.
    for _ in range(3):
        assert "no residue" in _one_line(_post(short_wait, budget_store[2], _body("bad", HELD_REGIONS)), 500)
    assert _post(short_wait, budget_store[1], _body("big", HELD_REGIONS)).status_code == 200


def test_the_budget_is_given_back_when_the_client_hangs_up_mid_answer(budget_store: tuple[Path, str, str]) -> None:
    # A long wait: the next request is answered once the room comes back, however late; never a 503 if it does.
    env = {"RGSTORE_SERVE_REGIONS_BUDGET_MIB": str(BUDGET_MIB), "RGSTORE_SERVE_REGIONS_WAIT_S": "120"}
    body = _body("big", HELD_REGIONS)
    with running_server(budget_store[0], env=env, log_dir=budget_store[0].parent) as server:
        HeldAnswer(server, budget_store[1], body).hang_up()
        r = _post(server, budget_store[1], body)
        assert r.status_code == 200 and len(r.json()) == HELD_REGIONS


def test_a_waiting_reservation_is_granted_when_room_is_given_back_and_room_is_given_back_once() -> None:
    from rgstore_api.regionbudget import RegionBudget, RegionLimits, RegionsBusyError

    async def main() -> None:
        budget = RegionBudget(RegionLimits(budget_bytes=100, wait_s=60))
        first = await budget.reserve(70)
        granted: list[Any] = []

        async def second() -> None:
            granted.append(await budget.reserve(40))

        async with anyio.create_task_group() as group:
            group.start_soon(second)
            await anyio.wait_all_tasks_blocked()
            assert granted == [] and budget.in_flight == 70  # waiting for room
            first.release()
            first.release()  # a second release gives nothing back twice
        assert budget.in_flight == 40
        granted[0].release()
        assert budget.in_flight == 0
        impatient = RegionBudget(RegionLimits(budget_bytes=100, wait_s=0))
        await impatient.reserve(100)
        with pytest.raises(RegionsBusyError):
            await impatient.reserve(1)

    anyio.run(main)


@pytest.mark.parametrize(("name", "value"), [("RGSTORE_SERVE_REGIONS_BUDGET_MIB", "0"),
                                             ("RGSTORE_SERVE_REGIONS_BUDGET_MIB", "1.5"),
                                             ("RGSTORE_SERVE_REGIONS_WAIT_S", "soon")])
def test_serve_refuses_a_bad_regions_limit_in_one_line_before_listening(
    budget_store: tuple[Path, str, str], monkeypatch: pytest.MonkeyPatch, name: str, value: str,
) -> None:
    from rgstore_api.server import serve

    from rgstore.errors import InvalidInputError

    monkeypatch.setenv(name, value)
    with socket.socket() as taken:  # were the limits not checked first, serve would stop here instead
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        with pytest.raises(InvalidInputError, match=rf"^\${name}=.*: expected (a whole number|a number)"):
            serve(budget_store[0], port=taken.getsockname()[1])


def test_a_request_waiting_on_a_lazy_fetch_holds_no_room_in_the_budget(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from tests.test_api_lazyfetch import FASTA, lazy_store_behind_a_hole

    with lazy_store_behind_a_hole(tmp_path) as (store_path, sequences, hole):
        (tmp_path / "g.fa").write_text(f">big\n{BIG}\n")
        local = init_genome(store_path, tmp_path / "g.fa", "g")["digest"]
        name, length = FASTA.split("\n")[0][1:], len(FASTA.split("\n")[1])
        # ~0.9 MB of answer from the unfetched remote sequence, ~0.6 MB from the local one: not both in 1 MiB.
        waiting = json.dumps([{"chrom": name, "start": 0, "end": length}] * 7_000).encode()
        env = {"RGSTORE_SERVE_REGIONS_BUDGET_MIB": "1", "RGSTORE_SERVE_REGIONS_WAIT_S": "0.5"}
        with running_server(store_path, env=env, log_dir=tmp_path) as server, ThreadPoolExecutor(1) as pool:
            listed = httpx.get(f"{server.url}/seqcol/list/collection", timeout=60).json()["results"]
            remote = next(digest for digest in listed if digest != local)
            try:
                fetching = pool.submit(_post, server, remote, waiting)
                hole.wait_for(1)  # its fetch is stuck on the remote
                r = _post(server, str(local), _body("big", 30))
                assert r.status_code == 200, r.text[:300]
            finally:
                hole.release()
            assert fetching.result().status_code == 502

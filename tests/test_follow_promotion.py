"""Claims about a `serve --follow` server whose mirror is promoted while it runs, with real processes.

A real primary server, a real following server over the mirror and a real `rgstore mirror promote`
from another process: the follower stops, and `/status`, `/readyz` and the server's log say why.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from rgstore.events import Noted
from rgstore.log import NewEvent
from rgstore.store import Store
from tests.conftest import run_rgstore
from tests.server_fixture import running_server


def _poll(url: str, until: object, timeout: float = 60.0) -> tuple[int, dict[str, object]]:
    """GET ``url`` until ``until(status_code, body)`` holds (or the timeout passes): the last (status, body)."""
    deadline = time.monotonic() + timeout
    while True:
        resp = httpx.get(url, timeout=10)
        if until(resp.status_code, resp.json()) or time.monotonic() > deadline:  # type: ignore[operator]
            return resp.status_code, resp.json()
        time.sleep(0.1)


def test_a_mirror_promoted_under_its_following_server_says_so_and_stays_ready_as_a_primary(tmp_path: Path) -> None:
    primary_path, mirror = tmp_path / "primary", tmp_path / "mirror"
    with Store.open(primary_path) as primary:
        primary.append([NewEvent(stream="s", event=Noted(text="first"))])
    with running_server(primary_path) as upstream, running_server(
            mirror, extra_args=["--follow", upstream.url, "--interval", "200ms"]) as follower:
        assert _poll(f"{follower.url}/readyz?max_age=2s", lambda code, _: code == 200)[0] == 200
        promoted = run_rgstore("--store", str(mirror), "mirror", "promote")
        assert promoted.returncode == 0, promoted.stderr

        _, status = _poll(f"{follower.url}/status", lambda _, body: body["replica"]["error"] is not None)
        replica = status["replica"]
        assert isinstance(replica, dict) and replica["promoted"] is True, status
        assert "promoted to a primary" in replica["error"] and "the follower stopped" in replica["error"], replica
        assert "refusing the upstream" not in replica["error"]  # nothing is wrong with the upstream

        # A promoted store is a primary, current without pulls: past any freshness bound it stays in the pool,
        # and its readiness says what happened (a look is cached ~1 s: wait for one that has seen it).
        code, ready = _poll(f"{follower.url}/readyz?max_age=1s", lambda _, body: "promoted" in str(body["detail"]))
        assert code == 200 and ready["ready"] is True, ready
        assert "promoted to a primary" in str(ready["detail"]) and "replica.error" in str(ready["detail"]), ready
        time.sleep(1.5)  # older than max_age=1s since the follower's last pull: a mirror would be 503 now
        code, ready = _poll(f"{follower.url}/readyz?max_age=1s", lambda code, _: code == 200, timeout=0)
        assert code == 200 and "promoted" in str(ready["detail"]), ready
        code, ready = _poll(f"{follower.url}/readyz", lambda code, _: code == 200, timeout=0)
        assert code == 200 and "promoted" in str(ready["detail"]), ready

        # It serves the new primary's writes: the workers see them on their next request.
        with Store.open(mirror) as store:
            store.append([NewEvent(stream="s", event=Noted(text="written to the promoted store"))])
        _, head = _poll(f"{follower.url}/events/head", lambda _, body: body["head_seq"] == 2)
        assert head["head_seq"] == 2
        log = follower.log()
    # The server's log says it once, and not as an upstream to fix and restart for.
    assert log.count("was promoted to a primary") == 1, log
    assert "follow: refusing" not in log and "restart it once the cause above is fixed" not in log, log
    text = run_rgstore("--store", str(mirror), "status").stdout.decode()
    assert "promoted; was a mirror of" in text and "the follower stopped at" in text, text

"""Benchmark a fresh mirror's catch-up: from the server over loopback, from published segments,
against a local `replay` of an exported file, in one run.

Usage: python -m tools.bench.mirror [--events N] [--json]
Target from the replication issue: >= 100k events/s over HTTP.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from rgstore.mirror import pull
from rgstore.replay import export_log, replay_file
from rgstore.segments import publish
from rgstore.store import Store
from tools.bench.log import workload

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(store: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "rgstore_cli", "--store", str(store), "serve", "--port", str(port)],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    """Build a primary with N events, then time three ways for a fresh mirror to catch up."""
    parser = argparse.ArgumentParser(prog="bench-mirror", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="rgstore-bench-mirror-"))
    res: dict[str, float] = {}
    server = None
    try:
        events = workload(args.events)
        with Store.open(tmp / "primary", actor="bench@host") as primary:
            for i in range(0, len(events), 5000):
                primary.append(events[i:i + 5000])
            head = primary.head()
            export_log(primary, tmp / "export.rglog")
            publish(primary, tmp / "published", segment_size=100_000)
        port = _free_port()
        server = _serve(tmp / "primary", port)

        def local_replay() -> None:
            with Store.open(tmp / "m-replay") as m:
                replay_file(m, tmp / "export.rglog")
                assert m.head() == head

        def from_segments() -> None:
            with Store.open(tmp / "m-segments") as m:
                pull(m, str(tmp / "published"))
                assert m.head() == head

        def from_server() -> None:
            with Store.open(tmp / "m-server") as m:
                pull(m, f"http://127.0.0.1:{port}")
                assert m.head() == head

        os.sync()
        res["replay_s"] = _timed(local_replay)
        os.sync()
        res["segments_s"] = _timed(from_segments)
        os.sync()
        res["server_s"] = _timed(from_server)
    finally:
        if server is not None:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)
    n = args.events
    rows = [("local replay of an export", res["replay_s"]), ("pull from published segments", res["segments_s"]),
            ("pull from the server over loopback", res["server_s"])]
    if args.json:
        print(json.dumps({"events": n, "results": res}))
        return 0
    print(f"{'catch-up of a fresh mirror, ' + format(n, ',') + ' events':<44}{'events/s':>12}{'vs replay':>12}")
    for name, secs in rows:
        print(f"{name:<44}{n / secs:>12,.0f}{secs / res['replay_s']:>11.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark the HTTP server against `refget store serve` (PyPI refget) on the same RefgetStore, with wrk.

Usage: python -m tools.bench.server [--mbp 20] [--genomes 5] [--duration 5] [--connections 8] [--json]
Builds a store of ``--genomes`` synthetic genomes (the first ~``--mbp`` Mbp in 25 contigs) with
`genome init`, then on loopback, in one run, drives each endpoint with wrk for ``--duration`` s:

  sequence    rgstore ``/sequence/{id}?start=&end=`` (random 1 kb slices); refget ``/sequence/{id}``
              (``refget store serve`` answers 501: it serves no sequences from a store)
  alias       rgstore ``/v4/aliases/{name}``; refget ``/alias/collection/refgenie/{name}``
  collection  rgstore ``/seqcol/collection/{d}``; refget ``/collection/{d}`` (level 2)

rgstore runs with 1 and 2 workers, refget as `refget store serve` (one process; it has no
worker option). Prints requests/s, p99 latency and rgstore/refget throughput ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from rgstore.store import Store
from tools.bench.synth import write_genome

__all__ = ["main", "parse_wrk", "ENDPOINTS"]

REPO = Path(__file__).resolve().parents[2]
ENDPOINTS = ("sequence", "alias", "collection")
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}
_LUA = """
paths = {%s}
i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i %% #paths) + 1])
end
"""


def parse_wrk(text: str) -> dict[str, float]:
    """requests/s, p99 latency (s) and non-2xx count from ``wrk --latency`` output."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    total = re.search(r"(\d+) requests in", text)
    if rps is None or p99 is None or total is None:
        raise RuntimeError(f"cannot read wrk output:\n{text}")
    return {
        "rps": float(rps.group(1)),
        "p99_s": float(p99.group(1)) * _UNITS[p99.group(2)],
        "requests": float(total.group(1)),
        "errors": float(bad.group(1)) if bad else 0.0,
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(cmd: list[str], url: str, probe: str, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd[:3]} exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url + probe, timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{url} did not come up: {log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _wrk(url: str, paths: list[str], script: Path, duration: float, connections: int) -> dict[str, float]:
    script.write_text(_LUA % ",".join(json.dumps(p) for p in paths))
    out = subprocess.run(
        ["wrk", "--latency", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "-s", str(script), url],
        capture_output=True, text=True, timeout=duration + 60, check=True,
    )
    return parse_wrk(out.stdout)


def build_store(work: Path, mbp: float, genomes: int) -> dict[str, Any]:
    """The store under test; returns what the request paths need (digests, names, sequences)."""
    store_path = work / "store"
    info: dict[str, Any] = {"genomes": []}
    with Store.open(store_path, actor="bench@host") as store:
        for i in range(genomes):
            fasta = work / f"g{i}.fa"
            size = int(mbp * 1_000_000) if i == 0 else 200_000
            write_genome(fasta, size, contigs=25 if i == 0 else 3, seed=7 + i)
            result = store.genomes.init(fasta, [f"genome{i}"])
            g = result.genome
            info["genomes"].append({"digest": g.digest, "name": f"genome{i}", "sequences": list(g.sequences),
                                    "lengths": list(g.lengths)})
            fasta.unlink()
    info["store"] = store_path
    return info


def request_paths(info: dict[str, Any], seed: int = 11, n: int = 2000) -> dict[str, dict[str, list[str]]]:
    """endpoint -> server -> the request paths wrk cycles through (same targets for both servers)."""
    rng = random.Random(seed)
    first = info["genomes"][0]
    slices = []
    for _ in range(n):
        k = rng.randrange(len(first["sequences"]))
        length = first["lengths"][k]
        start = rng.randrange(max(1, length - 1000))
        slices.append((first["sequences"][k], start, min(length, start + 1000)))
    names = [g["name"] for g in info["genomes"]]
    digests = [g["digest"] for g in info["genomes"]]
    return {
        "sequence": {
            "rgstore": [f"/sequence/{sq}?start={a}&end={b}" for sq, a, b in slices],
            "refget": [f"/sequence/{sq.removeprefix('SQ.')}?start={a}&end={b}" for sq, a, b in slices],
        },
        "alias": {"rgstore": [f"/v4/aliases/{n}" for n in names],
                  "refget": [f"/alias/collection/refgenie/{n}" for n in names]},
        "collection": {"rgstore": [f"/seqcol/collection/{d}" for d in digests],
                       "refget": [f"/collection/{d}" for d in digests]},
    }


def run(work: Path, mbp: float, genomes: int, duration: float, connections: int) -> dict[str, Any]:
    """Every measurement: results[endpoint][server] = {rps, p99_s, requests, errors}."""
    info = build_store(work, mbp, genomes)
    paths = request_paths(info)
    results: dict[str, dict[str, dict[str, float]]] = {e: {} for e in ENDPOINTS}
    refget_cli = str(Path(sys.executable).parent / "refget")
    servers: list[tuple[str, list[str], str]] = [
        (f"rgstore_{w}w", [sys.executable, "-m", "cli", "--store", str(info["store"]), "serve", "--workers", str(w)],
         "/healthz") for w in (1, 2)
    ]
    servers.append(("refget", [refget_cli, "store", "serve", "--path", str(info["store"] / "refget")],
                    "/service-info"))
    for label, cmd, probe in servers:
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        proc = _start([*cmd, "--port", str(port)], url, probe, work / f"{label}.log")
        try:
            for endpoint in ENDPOINTS:
                which = "refget" if label == "refget" else "rgstore"
                sample = httpx.get(url + paths[endpoint][which][0], timeout=30)
                if sample.status_code != 200:
                    results[endpoint][label] = {"status": float(sample.status_code)}
                    continue
                results[endpoint][label] = _wrk(url, paths[endpoint][which], work / "paths.lua", duration, connections)
        finally:
            _stop(proc)
    return {"genome_bp": sum(info["genomes"][0]["lengths"]), "genomes": genomes, "results": results}


def _ratio(a: dict[str, float], b: dict[str, float]) -> str:
    if "rps" not in a or "rps" not in b or not b["rps"]:
        return "n/a"
    return f"{a['rps'] / b['rps']:.1f}x"


def _cell(r: dict[str, float]) -> str:
    if "rps" not in r:
        return f"HTTP {int(r['status'])}"
    err = f", {int(r['errors'])} non-2xx" if r["errors"] else ""
    return f"{r['rps']:8.0f} req/s  p99 {r['p99_s'] * 1e3:6.2f} ms{err}"


def main(argv: list[str] | None = None) -> int:
    """Run every endpoint against every server once and print the table and ratios (or JSON)."""
    parser = argparse.ArgumentParser(prog="bench-server", description=__doc__.splitlines()[0])
    parser.add_argument("--mbp", type=float, default=20.0, help="size of the first genome (Mbp)")
    parser.add_argument("--genomes", type=int, default=5)
    parser.add_argument("--duration", type=int, default=5, help="seconds of load per endpoint and server")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("bench-server needs wrk (apt-get install wrk)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="rgstore-bench-server-"))
    try:
        res = run(work, args.mbp, args.genomes, args.duration, args.connections)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"store: {args.genomes} genomes (first {res['genome_bp']:,} bp); wrk -t1 -c{args.connections} "
          f"-d{args.duration:g}s per row; {os.cpu_count()} CPUs shared by servers and wrk")
    for endpoint, by_server in res["results"].items():
        print(f"{endpoint}")
        for label, r in by_server.items():
            print(f"  {label:10} {_cell(r)}")
        peer = by_server.get("refget", {})
        print(f"  ratio      1 worker {_ratio(by_server.get('rgstore_1w', {}), peer)}, "
              f"2 workers {_ratio(by_server.get('rgstore_2w', {}), peer)} (rgstore/refget throughput)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

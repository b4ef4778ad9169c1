"""Benchmark the HTTP server against `refget store serve` (PyPI refget) on the same RefgetStore, with wrk.

Usage: python -m tools.bench.server [--mbp 20] [--genomes 5] [--duration 5] [--connections 8] [--json]
Builds a store of ``--genomes`` synthetic genomes (the first ~``--mbp`` Mbp in 25 contigs) with
`genome init`, then on loopback, in one run, drives each endpoint with wrk for ``--duration`` s:

  sequence    rgstore ``/sequence/{id}?start=&end=`` (random 1 kb slices); refget ``/sequence/{id}``
              (``refget store serve`` answers 501: it serves no sequences from a store)
  alias       rgstore ``/v4/aliases/{name}``; refget ``/alias/collection/refgenie/{name}``
  collection  rgstore ``/seqcol/collection/{d}``; refget ``/collection/{d}`` (level 2)

rgstore runs with 1 and 2 workers, refget as `refget store serve` (one process; it has no
worker option). The same 1 kb slices are also asked of two plain static file servers as
``Range: bytes=`` requests on the RefgetStore's ``.seq`` files: nginx (when installed; one
worker, sendfile) and Starlette's ``StaticFiles`` under the same uvicorn as rgstore. Each server's
start-up (spawn to first 200 answer) is timed too; every process runs with bytecode cached, as an
installed package does. Prints requests/s, p99 latency and throughput ratios.
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
from tools.bench.procenv import installed_env
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
_LUA_RANGES = """
paths = {%s}
ranges = {%s}
i = 0
request = function()
  i = i + 1
  local k = (i %% #paths) + 1
  return wrk.format("GET", paths[k], {Range = ranges[k]})
end
"""
_NGINX_CONF = """
worker_processes 1;
daemon off;
%(user)s
pid %(work)s/nginx.pid;
error_log %(work)s/nginx-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nodelay on;
  client_body_temp_path %(work)s/nginx-body;
  proxy_temp_path %(work)s/nginx-proxy;
  fastcgi_temp_path %(work)s/nginx-fastcgi;
  uwsgi_temp_path %(work)s/nginx-uwsgi;
  scgi_temp_path %(work)s/nginx-scgi;
  server { listen 127.0.0.1:%(port)d; root %(root)s; location = /healthz { return 200; } }
}
"""
_STARLETTE_STATIC = """
import sys, uvicorn
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
app = Starlette(routes=[Route("/healthz", lambda request: PlainTextResponse("ok")),
                        Mount("/", app=StaticFiles(directory=sys.argv[1]))])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False)
"""
STATIC = ("nginx", "starlette_static")


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


def _start(cmd: list[str], url: str, probe: str, log: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], float]:
    """The started server and its start-up time: spawn until ``probe`` first answers 200."""
    t0 = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd[:3]} exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url + probe, timeout=2).status_code == 200:
                return proc, time.perf_counter() - t0
        except httpx.TransportError:
            pass
        time.sleep(0.01)
    proc.kill()
    raise RuntimeError(f"{url} did not come up: {log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _wrk(url: str, paths: list[str], script: Path, duration: float, connections: int,
         ranges: list[str] | None = None) -> dict[str, float]:
    quoted = ",".join(json.dumps(p) for p in paths)
    script.write_text(_LUA % quoted if ranges is None else _LUA_RANGES % (quoted, ",".join(json.dumps(r) for r in ranges)))
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
            # RefgetStore's seqdata_path_template, sequences/%s2/%s.seq (rgstore creates it so)
            "static": [f"/sequences/{sq[3:5]}/{sq[3:]}.seq" for sq, _, _ in slices],
            "static_ranges": [f"bytes={a}-{b - 1}" for _, a, b in slices],
        },
        "alias": {"rgstore": [f"/v4/aliases/{n}" for n in names],
                  "refget": [f"/alias/collection/refgenie/{n}" for n in names]},
        "collection": {"rgstore": [f"/seqcol/collection/{d}" for d in digests],
                       "refget": [f"/collection/{d}" for d in digests]},
    }


def _servers(work: Path, store: Path) -> list[tuple[str, list[str], str]]:
    """(label, command without --port, probe path) of every server to measure."""
    refget_cli = str(Path(sys.executable).parent / "refget")
    servers: list[tuple[str, list[str], str]] = [
        (f"rgstore_{w}w", [sys.executable, "-m", "rgstore_cli", "--store", str(store), "serve", "--workers", str(w)],
         "/healthz") for w in (1, 2)
    ]
    servers.append(("refget", [refget_cli, "store", "serve", "--path", str(store / "refget")], "/service-info"))
    if shutil.which("nginx"):
        servers.append(("nginx", ["nginx", "-c", str(work / "nginx.conf"), "-e", str(work / "nginx-error.log")],
                        "/healthz"))
    servers.append(("starlette_static", [sys.executable, "-c", _STARLETTE_STATIC, str(store / "refget")], "/healthz"))
    return servers


def _with_port(label: str, cmd: list[str], port: int, work: Path, store: Path) -> list[str]:
    if label == "nginx":
        user = "user root;" if os.geteuid() == 0 else ""  # root's workers would run as nobody: no access to a 0700 tmp
        conf = _NGINX_CONF % {"user": user, "work": work, "port": port, "root": store / "refget"}
        (work / "nginx.conf").write_text(conf)
        return cmd
    if label == "starlette_static":
        return [*cmd, str(port)]
    return [*cmd, "--port", str(port)]


def run(work: Path, mbp: float, genomes: int, duration: float, connections: int) -> dict[str, Any]:
    """Every measurement: results[endpoint][server] = {rps, p99_s, requests, errors}; startup_s[server]."""
    info = build_store(work, mbp, genomes)
    paths = request_paths(info)
    results: dict[str, dict[str, dict[str, float]]] = {e: {} for e in ENDPOINTS}
    startup: dict[str, float] = {}
    env = installed_env(work)
    for label, cmd, probe in _servers(work, info["store"]):
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        full = _with_port(label, cmd, port, work, info["store"])
        if label != "nginx":  # an untimed first start compiles its modules, as `pip install` does
            _stop(_start(full, url, probe, work / f"{label}.log", env)[0])
        proc, startup[label] = _start(full, url, probe, work / f"{label}.log", env)
        try:
            for endpoint in ENDPOINTS:
                which = "static" if label in STATIC else "refget" if label == "refget" else "rgstore"
                if which == "static" and endpoint != "sequence":
                    continue  # a static server has no aliases or collections to serve
                ranges = paths[endpoint]["static_ranges"] if which == "static" else None
                sample = httpx.get(url + paths[endpoint][which][0], timeout=30,
                                   headers={"Range": ranges[0]} if ranges else None)
                if sample.status_code not in (200, 206):
                    results[endpoint][label] = {"status": float(sample.status_code)}
                    continue
                results[endpoint][label] = _wrk(url, paths[endpoint][which], work / "paths.lua", duration,
                                                connections, ranges)
        finally:
            _stop(proc)
    return {"genome_bp": sum(info["genomes"][0]["lengths"]), "genomes": genomes, "results": results,
            "startup_s": startup}


def _ratio(a: dict[str, float], b: dict[str, float]) -> str:
    if "rps" not in a or "rps" not in b or not b["rps"]:
        return "n/a"
    ratio = a["rps"] / b["rps"]
    return f"{ratio:.2f}x" if ratio < 1 else f"{ratio:.1f}x"


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
            print(f"  {label:16} {_cell(r)}")
        for name in ("refget", *STATIC):
            if name not in by_server:
                continue
            peer = by_server[name]
            print(f"  ratio      1 worker {_ratio(by_server.get('rgstore_1w', {}), peer)}, "
                  f"2 workers {_ratio(by_server.get('rgstore_2w', {}), peer)} (rgstore/{name} throughput)")
    print("start-up (spawn to first 200 answer)")
    for label, took in res["startup_s"].items():
        print(f"  {label:16} {took * 1e3:6.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

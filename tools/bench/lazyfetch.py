"""Benchmark lazy sequence fetches through a read-only mirror's server against the primary and an eager pull.

Usage: python -m tools.bench.lazyfetch [--contigs 300] [--concurrency 4] [--json]
Builds a primary store with one synthetic genome of ``--contigs`` contigs (1-5 kbp each, seeded)
and serves it with `rgstore serve` on loopback; makes a lazy mirror of it (`rgstore mirror pull
URL`, no ``--with-sequences``) and serves that too (one worker each). Then, in one run, asks each
sequence once through the mirror's ``/sequence/SQ...`` route, so each request is a first fetch:

  one at a time   the first sixth of the contigs (50 of 300), then later ones (the 251st-270th)
  N at once       two thirds (200 of 300) with ``--concurrency`` client threads: wall seconds a
                  sequence, and the mean latency of one request
  already fetched the first 20 again: the floor, what a fetched sequence costs to serve

The peers, same run, same sequences: the primary's own ``/sequence/SQ...`` in the same phases
(what a client pays reading from a store that holds them), and `rgstore mirror pull
--with-sequences` into a fresh store (eager fetch; seconds a sequence net of the log-only pull).
Prints seconds a sequence and the ratios lazy/peer. Every process runs with bytecode cached.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from rgstore.store import Store
from tools.bench.procenv import installed_env, warm_up

__all__ = ["main", "phases", "write_contigs"]

REPO = Path(__file__).resolve().parents[2]
_ACGT = bytes(b"ACGT"[i & 3] for i in range(256))
HOT = 20
"""Sequences asked again once fetched (fewer if fewer were fetched)."""


def write_contigs(path: Path, contigs: int, seed: int = 1, width: int = 60) -> None:
    """Write a FASTA of ``contigs`` random ACGT sequences of 1-5 kbp each, the same for the same seed."""
    rng = random.Random(seed)
    with open(path, "wb") as out:
        for i in range(contigs):
            seq = rng.randbytes(rng.randint(1_000, 5_000)).translate(_ACGT)
            out.write(f">c{i}\n".encode())
            out.write(b"\n".join(seq[k:k + width] for k in range(0, len(seq), width)) + b"\n")


def phases(contigs: int, concurrency: int) -> dict[str, int]:
    """How many sequences each phase asks for: one at a time, N at once, one at a time later, again once fetched.

    300 contigs at concurrency 4 give 50, 200, 20 and 20 (the session-16 measurement); a
    ValueError when ``contigs`` is too few for the phases.
    """
    one = max(1, contigs // 6)
    conc = max(concurrency, contigs * 2 // 3)
    late = max(1, contigs // 15)
    if one + conc + late > contigs:
        raise ValueError(f"{contigs} contigs are too few for concurrency {concurrency}: "
                         f"need {one + conc + late} ({one} one at a time, {conc} at once, {late} later)")
    return {"one": one, "concurrent": conc, "late": late, "hot": min(HOT, one + conc)}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown: the mirror's fetch workers end with it
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def _serving(store: Path, log: Path, env: dict[str, str]) -> Iterator[str]:
    """`rgstore serve` (one worker) on ``store`` on a free loopback port until the block ends; its URL."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rgstore_cli", "--store", str(store), "serve", "--host", "127.0.0.1",
             "--port", str(port), "--workers", "1"],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"rgstore serve exited: {log.read_text(errors='replace')[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not come up: {log.read_text(errors='replace')[-2000:]}")
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        yield url
    finally:
        _stop(proc)


def _pull(store: Path, url: str, env: dict[str, str], *extra: str) -> float:
    """Seconds `rgstore mirror pull URL [extra]` into ``store`` takes (a fresh process, as a user runs it)."""
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "rgstore_cli", "--store", str(store), "mirror", "pull", url,
                          "--json", *extra], cwd=REPO, env=env, capture_output=True, text=True, timeout=3600)
    took = time.perf_counter() - t
    if out.returncode != 0:
        raise RuntimeError(f"mirror pull {' '.join(extra)} exited {out.returncode}: {out.stderr[-2000:]}")
    return took


def _measure(client: httpx.Client, url: str, seqs: list[str], lengths: list[int], counts: dict[str, int],
             concurrency: int) -> dict[str, float]:
    """Ask ``url`` for each sequence in the phases of ``counts``: seconds a sequence per phase."""

    def get(k: int) -> float:
        t = time.perf_counter()
        r = client.get(f"{url}/sequence/{seqs[k]}")
        took = time.perf_counter() - t
        if r.status_code != 200 or len(r.content) != lengths[k]:
            raise RuntimeError(f"{url}/sequence/{seqs[k]}: HTTP {r.status_code}, {len(r.content)} bytes "
                               f"(expected {lengths[k]}): {r.text[:300]}")
        return took

    one, conc, late = counts["one"], counts["concurrent"], counts["late"]
    first = [get(k) for k in range(one)]
    t = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = list(pool.map(get, range(one, one + conc)))
    wall = time.perf_counter() - t
    later = [get(k) for k in range(one + conc, one + conc + late)]
    hot = [get(k) for k in range(counts["hot"])]
    return {"one_s": sum(first) / one, "concurrent_wall_s": wall / conc,
            "concurrent_latency_s": sum(latencies) / conc, "late_s": sum(later) / late,
            "fetched_s": sum(hot) / len(hot)}


def run(work: Path, contigs: int, concurrency: int) -> dict[str, Any]:
    """Every measurement in one run: mirror (lazy), primary, eager; see the module doc."""
    counts = phases(contigs, concurrency)
    fasta = work / "g.fa"
    write_contigs(fasta, contigs)
    with Store.open(work / "primary", actor="bench@host") as store:
        genome = store.genomes.init(fasta, ["g"]).genome
    seqs, lengths = list(genome.sequences), list(genome.lengths)
    env = installed_env(work)
    res: dict[str, Any] = {"contigs": contigs, "concurrency": concurrency, "genome_bp": sum(lengths),
                           "phases": counts, "loadavg_before": list(os.getloadavg())}
    with _serving(work / "primary", work / "primary.log", env) as primary_url, \
            httpx.Client(timeout=600, limits=httpx.Limits(max_connections=concurrency + 4)) as client:
        # Untimed: compiles the pull's modules (and the fetch path's) as `pip install` would have.
        warm_up([sys.executable, "-m", "rgstore_cli", "--store", str(work / "warm"), "mirror", "pull", primary_url,
                 "--with-sequences"], env, cwd=REPO)
        shutil.rmtree(work / "warm", ignore_errors=True)
        res["primary"] = _measure(client, primary_url, seqs, lengths, counts, concurrency)
        log_pull = _pull(work / "mirror", primary_url, env)
        eager = _pull(work / "eager", primary_url, env, "--with-sequences")
        res["eager"] = {"log_pull_s": log_pull, "pull_s": eager, "per_seq_s": eager / contigs,
                        "net_per_seq_s": max(eager - log_pull, 0.0) / contigs}
        shutil.rmtree(work / "eager", ignore_errors=True)
        with _serving(work / "mirror", work / "mirror.log", env) as mirror_url:
            res["mirror"] = _measure(client, mirror_url, seqs, lengths, counts, concurrency)
    res["loadavg_after"] = list(os.getloadavg())
    lazy, peer, net = res["mirror"], res["primary"], res["eager"]["net_per_seq_s"]
    res["ratios"] = {
        **{f"{key}_vs_primary": lazy[key] / peer[key] for key in lazy if peer[key]},
        "one_vs_eager": lazy["one_s"] / net if net else None,
        "concurrent_wall_vs_eager": lazy["concurrent_wall_s"] / net if net else None,
    }
    return res


def _x(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio:.2f}x" if ratio < 10 else f"{ratio:.0f}x"


def main(argv: list[str] | None = None) -> int:
    """Run the lazy mirror, the primary and an eager pull on the same genome once; print the table (or JSON)."""
    parser = argparse.ArgumentParser(prog="bench-lazyfetch", description=__doc__.splitlines()[0])
    parser.add_argument("--contigs", type=int, default=300, help="contigs of the genome (1-5 kbp each)")
    parser.add_argument("--concurrency", type=int, default=4, help="requests at once in the concurrent phase")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    try:
        counts = phases(args.contigs, args.concurrency)
    except ValueError as exc:
        parser.error(str(exc))
    work = Path(tempfile.mkdtemp(prefix="rgstore-bench-lazyfetch-"))
    try:  # also on Ctrl-C: the servers are stopped (in _serving) before their stores go
        res = run(work, args.contigs, args.concurrency)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    one, conc, late = counts["one"], counts["concurrent"], counts["late"]
    lazy, peer, eager, ratios = res["mirror"], res["primary"], res["eager"], res["ratios"]
    print(f"one genome, {args.contigs} contigs ({res['genome_bp']:,} bp); one server worker each; "
          f"{os.cpu_count()} CPUs; load average {res['loadavg_before'][0]:.2f} before, "
          f"{res['loadavg_after'][0]:.2f} after")
    print(f"{'seconds a sequence':<52}{'mirror (lazy)':>14}{'primary':>10}{'lazy/primary':>14}")
    rows = [(f"one at a time, first fetches 1-{one}", "one_s"),
            (f"{args.concurrency} at once, wall (fetches {one + 1}-{one + conc})", "concurrent_wall_s"),
            (f"{args.concurrency} at once, latency of one request", "concurrent_latency_s"),
            (f"one at a time, fetches {one + conc + 1}-{one + conc + late}" if late > 1
             else f"one at a time, fetch {one + conc + 1}", "late_s"),
            (f"already fetched ({counts['hot']} asked again)", "fetched_s")]
    for label, key in rows:
        print(f"{label:<52}{lazy[key]:>14.4f}{peer[key]:>10.4f}{_x(ratios.get(key + '_vs_primary')):>14}")
    print(f"eager: `mirror pull --with-sequences` {eager['pull_s']:.2f} s ({eager['per_seq_s']:.4f} s a sequence); "
          f"log-only pull {eager['log_pull_s']:.2f} s; net {eager['net_per_seq_s']:.4f} s a sequence")
    print(f"lazy/eager (net): one at a time {_x(ratios['one_vs_eager'])}, "
          f"{args.concurrency} at once {_x(ratios['concurrent_wall_vs_eager'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark the FASTA cache: region extraction vs gffread on the same inputs, and level-1 hit latency.

Usage: python -m tools.bench.cache [--mbp 100] [--genes 20000] [--repeat 3] [--keep DIR] [--json]
Generates a seeded genome (soft-masked, ~``--mbp`` Mbp) with ``--genes`` genes in the Ensembl layout,
serves it on loopback, and in one run measures: the level-2 fetch (download, BSD-sum check, gunzip),
the cold level-1 build of gene+exon+CDS (GTF parse, extraction, hashing, events), extraction alone,
``gffread -w -x`` on the same decompressed files (its .fai built beforehand), and the latency of an
all-hit request in-process and through the CLI (bytecode cached, as after ``pip install``). Prints
medians and the ratios (target: extraction <= 3x gffread).
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from rgstore.cachekeys import make_request
from rgstore.cachesynth import ENSEMBL_SPECIES, make_genome, write_ensembl_tree
from rgstore.extract import extract_regions, plan_region
from rgstore.gtf import gc_paused, parse_gtf
from rgstore.store import Store
from tools.bench.procenv import installed_env, warm_up

REGIONS = "gene,exon,CDS"
REPO = Path(__file__).resolve().parents[2]


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib signature)
        pass


def _timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _extract_only(fasta: Path, gtf: Path, out: Path) -> None:
    ann = parse_gtf(gtf)
    with gc_paused():  # as rgstore.cache does
        plans = {r: plan_region(ann, r) for r in REGIONS.split(",")}
    with ExitStack() as stack:
        handles = {r: stack.enter_context(open(out / f"{r}.fna", "wb")) for r in plans}
        extract_regions(fasta, plans, handles)


def run(work: Path, mbp: float, genes: int, repeat: int) -> dict[str, float]:
    """Every measurement in seconds (medians), plus sizes and ratios.

    Ours and gffread alternate within each repeat, so both see the same background load.
    """
    res: dict[str, float] = {}
    genome = make_genome(total_bp=int(mbp * 1_000_000), contigs=25 if mbp >= 10 else 3, genes=genes, seed=7)
    write_ensembl_tree(work / "up", genome)
    res["genome_bp"] = float(sum(len(s) for s in genome.sequences))
    del genome
    handler = functools.partial(_Quiet, directory=str(work / "up"))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    request = make_request("ensembl", species=ENSEMBL_SPECIES, release="110", regions=REGIONS)
    cli = [sys.executable, "-m", "rgstore_cli", "--store", str(work / "store"), "cache", "regions", "--source"]
    cli += ["ensembl", "--species", ENSEMBL_SPECIES, "--release", "110", "--regions", REGIONS]
    cli += ["--base-url", url, "--json"]
    env = installed_env(work)  # bytecode cached, as for an installed rgstore
    times: dict[str, list[float]] = {k: [] for k in ("cold", "extract", "gffread", "hit", "hit_cli")}
    try:
        with Store.open(work / "store", actor="bench@host") as store:
            t = time.perf_counter()
            raw = store.cache.fetch_raw(request, base_url=url)
            res["fetch_raw_s"] = time.perf_counter() - t
            store.cache.pin(raw.key)
            fasta = Path(raw.path) / "decompressed" / "genome.fna"
            gtf = Path(raw.path) / "decompressed" / "annotation.gtf"
            scratch = work / "scratch"
            scratch.mkdir()
            shutil.copy(fasta, scratch / "genome.fa")  # gffread writes its .fai next to the FASTA
            subprocess.run(["samtools", "faidx", str(scratch / "genome.fa")], check=True)
            gff = ["gffread", "-w", str(scratch / "w.fa"), "-x", str(scratch / "x.fa")]
            gff += ["-g", str(scratch / "genome.fa"), str(gtf)]
            for _ in range(repeat):
                times["cold"].append(_timed(lambda: store.cache.regions(request, base_url=url)))
                times["gffread"].append(_timed(lambda: subprocess.run(gff, check=True, capture_output=True)))
                times["extract"].append(_timed(lambda: _extract_only(fasta, gtf, scratch)))
                times["hit"].append(_timed(lambda: store.cache.regions(request, base_url=url)))
                if not times["hit_cli"]:  # compile the CLI's modules once, as `pip install` does
                    warm_up(cli, env, REPO)
                times["hit_cli"].append(
                    _timed(lambda: subprocess.run(cli, check=True, capture_output=True, cwd=REPO, env=env))
                )
                store.cache.gc(
                    max_age=0.0
                )  # evict the level-1 entries (level 2 is pinned) for the next cold run
    finally:
        httpd.shutdown()
        httpd.server_close()
    for name, key in (
        ("cold", "cold_regions_s"),
        ("extract", "extract_only_s"),
        ("gffread", "gffread_s"),
        ("hit", "hit_inprocess_s"),
        ("hit_cli", "hit_cli_s"),
    ):
        res[key] = statistics.median(times[name])
    res["ratio_cold_vs_gffread"] = res["cold_regions_s"] / res["gffread_s"]
    res["ratio_extract_vs_gffread"] = res["extract_only_s"] / res["gffread_s"]
    return res


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark once and print a table (or JSON); 1 if gffread or samtools is missing."""
    parser = argparse.ArgumentParser(prog="bench-cache", description=__doc__.splitlines()[0])
    parser.add_argument("--mbp", type=float, default=100.0, help="genome size in Mbp")
    parser.add_argument("--genes", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per timed case (median reported)")
    parser.add_argument("--keep", type=Path, help="work directory to keep (default: a temp dir, removed)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    missing = [tool for tool in ("gffread", "samtools") if shutil.which(tool) is None]
    if missing:
        print(
            f"error: {', '.join(missing)} not installed (the peer this benchmark compares against)",
            file=sys.stderr,
        )
        return 1
    work = args.keep or Path(tempfile.mkdtemp(prefix="rgstore-bench-cache-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        res = run(work, args.mbp, args.genes, args.repeat)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(
        f"genome {res['genome_bp'] / 1e6:.1f} Mbp, {args.genes} genes, regions {REGIONS}, "
        f"median of {args.repeat}"
    )
    rows = [
        ("level-2 fetch (download + BSD sum + gunzip)", res["fetch_raw_s"]),
        ("level-1 cold build (parse + extract + hash + events)", res["cold_regions_s"]),
        ("extraction only (parse GTF + write FASTAs)", res["extract_only_s"]),
        ("gffread -w -x (same inputs, .fai prebuilt)", res["gffread_s"]),
        ("level-1 hit, in-process", res["hit_inprocess_s"]),
        ("level-1 hit, through the CLI", res["hit_cli_s"]),
    ]
    for label, seconds in rows:
        print(f"  {label:<55} {seconds * 1000:>10.1f} ms")
    print(f"  ratio cold build / gffread   {res['ratio_cold_vs_gffread']:.2f}x  (target <= 3x)")
    print(f"  ratio extraction / gffread   {res['ratio_extract_vs_gffread']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark the FASTA cache: region extraction vs gffread on the same inputs, and level-1 hit latency.

Usage: python -m tools.bench.cache [--mbp 100] [--genes 20000] [--repeat 3] [--keep DIR] [--json]
Generates a seeded genome (soft-masked, ~``--mbp`` Mbp) with ``--genes`` genes in the Ensembl layout,
serves it on loopback, and in one run measures: the level-2 fetch (download, BSD-sum check, gunzip),
the cold level-1 build of gene+exon+CDS (GTF parse, extraction, hashing, events), extraction alone,
``gffread -w -x`` on the same decompressed files (its .fai built beforehand), and the latency of an
all-hit request in-process and through the CLI (bytecode cached, as after ``pip install``). Prints
medians and the ratios (target: extraction <= 3x gffread).

The derived regions are timed in the same run: ``intergenic`` extraction (parse GTF, plan, write)
against its peer, ``bedtools complement`` per strand then ``bedtools getfasta -s`` (tools/bench/bedpeer.py,
timed from the GTF to its FASTA), after checking both write the same sequences; and
``exon_exon_junction`` extraction alone (no standard tool writes it), as time and records/s.
A missing bedtools skips the intergenic peer row.
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
from rgstore.extract import GENE_SPAN_REGIONS, extract_regions, plan_region
from rgstore.gtf import gc_paused, parse_gtf
from rgstore.store import Store
from tools.bench.bedpeer import bedtools_intergenic, missing_peer_tools, sequence_digests
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


class PeerMismatch(Exception):
    """Our region and its peer wrote different sequences: their times would not compare equal work."""


def _extract_only(fasta: Path, gtf: Path, out: Path, regions: str = REGIONS) -> dict[str, int]:
    ann = parse_gtf(gtf, genes_only=all(r in GENE_SPAN_REGIONS for r in regions.split(",")))  # as cachestage does
    with gc_paused():  # as rgstore.cache does
        plans = {r: plan_region(ann, r) for r in regions.split(",")}
    with ExitStack() as stack:
        handles = {r: stack.enter_context(open(out / f"{r}.fna", "wb")) for r in plans}
        return extract_regions(fasta, plans, handles)


def _timed_records(fn: Callable[[], dict[str, int]], region: str, counts: dict[str, int]) -> float:
    t = time.perf_counter()
    counts[region] = fn()[region]
    return time.perf_counter() - t


def _check_intergenic(ours: Path, theirs: Path) -> None:
    """Raise PeerMismatch unless both FASTAs hold the same sequences (headers differ by design)."""
    a, b = sequence_digests(ours), sequence_digests(theirs)
    if a != b:
        raise PeerMismatch(
            f"intergenic: rgstore wrote {len(a)} records, bedtools {len(b)}, "
            f"{len(set(a) ^ set(b))} sequences in one only; the ratio would not compare equal work"
        )


def run(work: Path, mbp: float, genes: int, repeat: int) -> dict[str, float]:
    """Every measurement in seconds (medians), plus sizes and ratios.

    Ours and gffread alternate within each repeat, so both see the same background load; so do
    intergenic and bedtools (whose keys are absent when bedtools is missing).
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
    names = ("cold", "extract", "gffread", "hit", "hit_cli", "intergenic", "bedtools", "junction")
    times: dict[str, list[float]] = {k: [] for k in names}
    counts: dict[str, int] = {}
    peer = not missing_peer_tools()
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
                times["intergenic"].append(
                    _timed_records(lambda: _extract_only(fasta, gtf, scratch, "intergenic"), "intergenic", counts)
                )
                if peer:
                    peer_fa = scratch / "bedtools" / "intergenic.fa"
                    times["bedtools"].append(_timed(lambda: bedtools_intergenic(gtf, scratch / "genome.fa", peer_fa.parent)))
                    if len(times["bedtools"]) == 1:
                        _check_intergenic(scratch / "intergenic.fna", peer_fa)
                times["junction"].append(
                    _timed_records(
                        lambda: _extract_only(fasta, gtf, scratch, "exon_exon_junction"), "exon_exon_junction", counts
                    )
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
        ("intergenic", "intergenic_extract_s"),
        ("bedtools", "intergenic_bedtools_s"),
        ("junction", "junction_extract_s"),
    ):
        if times[name]:
            res[key] = statistics.median(times[name])
    res["ratio_cold_vs_gffread"] = res["cold_regions_s"] / res["gffread_s"]
    res["ratio_extract_vs_gffread"] = res["extract_only_s"] / res["gffread_s"]
    res["intergenic_records"] = float(counts["intergenic"])
    if "intergenic_bedtools_s" in res:
        res["ratio_intergenic_vs_bedtools"] = res["intergenic_extract_s"] / res["intergenic_bedtools_s"]
    res["junction_records"] = float(counts["exon_exon_junction"])
    res["junction_records_per_s"] = res["junction_records"] / res["junction_extract_s"]
    return res


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark once and print a table (or JSON); 1 if gffread or samtools is missing, or a peer's output differs."""
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
    except PeerMismatch as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
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
    print(f"derived regions ({res['intergenic_records']:.0f} intergenic, {res['junction_records']:.0f} junction records)")
    print(f"  {'intergenic extraction (parse GTF + write FASTA)':<55} {res['intergenic_extract_s'] * 1000:>10.1f} ms")
    label = "bedtools complement per strand + getfasta -s"
    if "intergenic_bedtools_s" in res:
        print(f"  {label:<55} {res['intergenic_bedtools_s'] * 1000:>10.1f} ms  (same sequences)")
        print(f"  ratio intergenic / bedtools  {res['ratio_intergenic_vs_bedtools']:.2f}x")
    else:
        print(f"  {label:<55} {'skipped':>10}     ({', '.join(missing_peer_tools())} not installed)")
    print(
        f"  {'exon_exon_junction extraction (parse GTF + write)':<55} {res['junction_extract_s'] * 1000:>10.1f} ms"
        f"  ({res['junction_records_per_s']:,.0f} records/s; no standard peer)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark ``rgstore backup`` against what users do without it: ``cp -a`` and export + replay.

One run builds a store (a genome of ``--genome-mb`` Mbp, ``--events`` alias events, ``--blobs``
refpkg files of 1 MiB), then times on the same, idle store:

* ``backup`` (the Python API the CLI calls), hard-linking content on the same filesystem, with
  and without the verify it runs by default; and ``--no-link`` (every file copied, verified);
* ``cp -a`` of the store directory: the usual copy, safe only while nothing writes;
* ``log export`` + ``replay`` into a new store + ``cp -a`` of ``refget/`` and ``blobs/``: the
  documented log-level path before ``backup`` existed.

Ratios are each case's time over ``cp -a``'s. ``backup`` verifies what it wrote (every sequence
and blob re-hashed) where ``cp -a`` checks nothing, so the fair pair is backup without verify.

Run: ``python -m tools.bench.backup [--genome-mb 200 --events 100000 --blobs 20]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rgstore.backup import backup
from rgstore.events import AliasSet
from rgstore.log import NewEvent
from rgstore.replay import export_log, replay_file
from rgstore.store import Store
from tools.bench.synth import write_genome

__all__ = ["main"]


def _build(root: Path, genome_mb: int, events: int, blobs: int) -> Path:
    """A store holding one genome, ``events`` alias moves and a refpkg of ``blobs`` 1 MiB files."""
    path = root / "store"
    fasta = root / "g.fa"
    write_genome(fasta, total_bp=genome_mb * 1_000_000, contigs=max(1, genome_mb // 10))
    with Store.open(path) as store:
        digest = store.genomes.init(fasta, ["g"]).genome.digest
        batch = 1_000
        for at in range(0, events, batch):
            store.append([NewEvent(stream=f"alias:refgenie/a{i % 5000}",
                                   event=AliasSet(namespace="refgenie", name=f"a{i % 5000}", digest=digest))
                          for i in range(at, min(events, at + batch))])
        if blobs:
            files = []
            for i in range(blobs):
                f = root / f"blob{i}.bin"
                f.write_bytes(bytes([i % 251]) * (1 << 20) + i.to_bytes(4, "big"))
                files.append(f)
            store.refpkgs.create("pkg", locus="16S", files=[(f"file{i}", f) for i, f in enumerate(files)])
    fasta.unlink()
    return path


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; print a table of seconds and ratios to ``cp -a`` (or JSON)."""
    parser = argparse.ArgumentParser(prog="python -m tools.bench.backup", description=__doc__.splitlines()[0])
    parser.add_argument("--genome-mb", type=int, default=200, help="genome size in Mbp (default 200)")
    parser.add_argument("--events", type=int, default=100_000, help="alias events in the log (default 100,000)")
    parser.add_argument("--blobs", type=int, default=20, help="1 MiB refpkg files (default 20)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="rgstore-bench-backup-"))
    try:
        store_path = _build(root, args.genome_mb, args.events, args.blobs)
        cases: dict[str, float] = {}
        n = 0

        def dest() -> Path:
            nonlocal n
            n += 1
            return root / f"copy{n}"

        cases["cp -a (idle store only)"] = _timed(lambda: subprocess.run(
            ["cp", "-a", str(store_path), str(dest())], check=True))
        with Store.open(store_path, readonly=True) as store:
            cases["backup, hard links, no verify"] = _timed(lambda: backup(store, dest(), verify=False))
            cases["backup, hard links, verified (default)"] = _timed(lambda: backup(store, dest()))
            cases["backup --no-link, verified"] = _timed(lambda: backup(store, dest(), link=False))

            def export_replay() -> None:
                target, rglog = dest(), root / "backup.rglog"
                with open(rglog, "wb") as out:
                    export_log(store, out)
                target.mkdir()
                for part in ("refget", "blobs"):  # content first: the replay then rewrites alias files
                    subprocess.run(["cp", "-a", str(store_path / part), str(target / part)], check=True)
                with Store.open(target) as copy:
                    replay_file(copy, rglog)

            cases["log export + replay + cp -a of content"] = _timed(export_replay)
        base = cases["cp -a (idle store only)"]
        rows = [{"case": name, "seconds": round(s, 3), "ratio_to_cp": round(s / base, 2)} for name, s in cases.items()]
        if args.json:
            print(json.dumps({"genome_mb": args.genome_mb, "events": args.events, "blobs": args.blobs, "rows": rows}))
        else:
            print(f"store: {args.genome_mb} Mbp genome, {args.events:,} events, {args.blobs} x 1 MiB blobs")
            for row in rows:
                print(f"{row['case']:<42} {row['seconds']:>8.3f} s  {row['ratio_to_cp']:>6.2f}x cp -a")
        return 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark refpkg steps against taxtastic: successive updates, rollbacks, and exporting 200 MB.

One run measures both sides on the same files:

* N successive file updates, then N single-step rollbacks: rgstore's ``Refpkgs`` API (one LMDB
  transaction each) against taxtastic 1.0.1's ``Refpkg.update_file`` / ``Refpkg.rollback`` (what
  ``taxit update`` / ``taxit rollback`` run, minus process start-up and the md5 re-check of every
  current file on load). taxtastic rewrites its whole CONTENTS.json on every step and that file
  grows quadratically with history, so its phases stop at a time budget; ratios compare the same
  first k steps on both sides.
* A K-call sample of the real command lines (``rgstore refpkg update/info/check`` vs ``taxit
  update/info/check``), bytecode cached as after ``pip install``.
* Exporting a package holding ``--export-mb`` MB: ``rgstore refpkg export`` (verify + copy; also
  .tar.gz and .zip) against taxtastic's way to get a verified copy of a package directory
  (copy it, then ``taxit check``, which re-hashes every file), with a plain copy as the floor.

Run: ``python -m tools.bench.refpkg [--updates 1000 --rollbacks 1000 --export-mb 200]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rgstore.store import Store
from tools.bench.procenv import installed_env

__all__ = ["main"]

_TAXIT = str(Path(sys.executable).with_name("taxit"))
_ACGT = bytes(b"ACGT"[i & 3] for i in range(256))


def _tree(i: int) -> str:
    leaves = ",".join(f"s{j}:{(i * 7 + j) % 97 / 100:.2f}" for j in range(40))
    return f"(({leaves}):0.1,x{i}:0.3);\n"


def _write_trees(directory: Path, n: int) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = directory / f"tree{i}.nwk"
        path.write_text(_tree(i))
        paths.append(path)
    return paths


def _write_alignment(directory: Path) -> tuple[Path, Path]:
    """A 40-sequence alignment of the trees' leaves (s0..s39) and its seq_info.csv."""
    directory.mkdir(parents=True, exist_ok=True)
    aln, info = directory / "aln.fasta", directory / "seq_info.csv"
    aln.write_text("".join(f">s{j}\n{'ACGT'[j % 4] * 60}\n" for j in range(40)))
    info.write_text("seqname,tax_id\n" + "".join(f"s{j},{j % 5 + 1}\n" for j in range(40)))
    return aln, info


def _write_data(directory: Path, megabytes: int, parts: int = 4) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    size, paths = megabytes * 1_000_000 // parts, []
    for p in range(parts):
        path = directory / f"part{p}.fasta"
        with open(path, "wb") as out:
            written, record = 0, 0
            while written < size:
                seq = os.urandom(min(6_000_000, size - written)).translate(_ACGT)
                lines = b"\n".join(seq[i:i + 60] for i in range(0, len(seq), 60))
                block = b">seq%d\n%s\n" % (record, lines)
                out.write(block)
                written, record = written + len(block), record + 1
        paths.append(path)
    return paths


# -- rgstore side -----------------------------------------------------------------------------


def _rgstore_steps(store_dir: Path, trees: list[Path], rollbacks: int) -> dict[str, Any]:
    with Store.open(store_dir, actor="bench") as store:
        r = store.refpkgs
        r.create("bench", locus="16S", files=[("tree", trees[0])])
        marks, t0 = [], time.perf_counter()
        for path in trees[1:]:
            r.update_files("bench", [f"tree={path}"])
            marks.append(time.perf_counter() - t0)
        back, t0 = [], time.perf_counter()
        for _ in range(rollbacks):
            r.rollback("bench")
            back.append(time.perf_counter() - t0)
    return {"updates": marks, "rollbacks": back}


# -- taxtastic side (a subprocess: its own recursion limit, memory and imports) ----------------


def _taxtastic_worker(argv: list[str]) -> int:
    pkg, trees_dir, n_updates, n_rollbacks, budget, limit = argv
    sys.setrecursionlimit(int(limit))
    import warnings

    from taxtastic.refpkg import Refpkg

    warnings.simplefilter("ignore")
    trees = [Path(trees_dir) / f"tree{i}.nwk" for i in range(int(n_updates) + 1)]
    out: dict[str, Any] = {}
    r = Refpkg(pkg, create=True)
    r.update_metadata("locus", "16S")
    r.update_file("tree", str(trees[0]))
    for phase, count, step in (
        ("updates", int(n_updates), lambda i: r.update_file("tree", str(trees[i + 1]))),
        ("rollbacks", int(n_rollbacks), lambda i: r.rollback()),
    ):
        marks: list[float] = []
        error, t0 = "", time.perf_counter()
        for i in range(count):
            try:
                step(i)
            except (RecursionError, MemoryError, ValueError) as exc:
                error = f"{type(exc).__name__} at step {i + 1}"
                break
            marks.append(time.perf_counter() - t0)
            if marks[-1] > float(budget):
                error = f"time budget of {budget} s reached after {i + 1} steps"
                break
        out[phase] = {"marks": marks, "stopped": error,
                      "manifest_bytes": os.path.getsize(Path(pkg) / "CONTENTS.json")}
        if error.startswith(("RecursionError", "MemoryError")):
            r._sync_from_disk()  # the failed step left the object half-changed
    print(json.dumps(out))
    return 0


def _taxtastic_steps(work: Path, trees_dir: Path, updates: int, rollbacks: int, budget: float,
                     limit: int) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "tools.bench.refpkg", "--taxtastic-worker", str(work / "taxtastic.refpkg"),
         str(trees_dir), str(updates), str(rollbacks), str(budget), str(limit)],
        capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[2],
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# -- command lines ----------------------------------------------------------------------------


def _cli_sample(work: Path, trees: list[Path], k: int) -> dict[str, float]:
    """Median wall time of K real command lines per tool: ``update``, then ``info`` and ``check``.

    Run with bytecode cached (``tools.bench.procenv``), as an installed ``rgstore`` and ``taxit`` are;
    each tool's untimed ``create`` compiles its modules first. ``check`` of this tree-only package
    exits 1 on both sides (no Stockholm alignment or taxonomy): it times the command, not a pass.
    """
    root = Path(__file__).resolve().parents[2]
    env = installed_env(work)
    store = work / "cli-store"
    aln, seq_info = _write_alignment(work / "cli-inputs")
    rg = [sys.executable, "-m", "rgstore_cli", "--store", str(store), "refpkg"]
    subprocess.run([*rg, "create", "cli", "-l", "16S", "-t", str(trees[0]), "-f", str(aln), "-i", str(seq_info)],
                   check=True, capture_output=True, cwd=root, env=env)
    pkg = work / "cli.refpkg"
    subprocess.run([_TAXIT, "create", "-P", str(pkg), "-l", "16S", "-t", str(trees[0]), "-f", str(aln),
                    "-i", str(seq_info), "--no-reroot"], check=True, capture_output=True, env=env)
    out: dict[str, list[float]] = {}
    for i in range(1, k + 1):
        for side, cmd, must_pass in (
            ("rgstore", [*rg, "update", "cli", f"tree={trees[i]}"], True),
            ("taxit", [_TAXIT, "update", str(pkg), f"tree={trees[i]}"], True),
            ("rgstore_info", [*rg, "info", "cli"], True),
            ("taxit_info", [_TAXIT, "info", str(pkg)], True),
            ("rgstore_check", [*rg, "check", "cli"], False),
            ("taxit_check", [_TAXIT, "check", str(pkg)], False),
        ):
            t0 = time.perf_counter()
            subprocess.run(cmd, check=must_pass, capture_output=True, cwd=root, env=env)
            out.setdefault(side, []).append(time.perf_counter() - t0)
    return {side: statistics.median(v) for side, v in out.items()}


# -- export -----------------------------------------------------------------------------------


def _export(work: Path, data: list[Path]) -> dict[str, float]:
    res: dict[str, float] = {}
    with Store.open(work / "export-store", actor="bench") as store:
        files = [(f"data{i}", p) for i, p in enumerate(data)]
        t0 = time.perf_counter()
        store.refpkgs.create("big", locus="16S", files=files)
        res["rgstore_create_s"] = time.perf_counter() - t0
        targets = (("dir", work / "big.refpkg"), ("tar", work / "big.tar.gz"), ("zip", work / "big.zip"))
        for fmt, dest in targets:
            t0 = time.perf_counter()
            store.refpkgs.export("big", dest, fmt=fmt)
            res[f"rgstore_export_{fmt}_s"] = time.perf_counter() - t0
    pkg = work / "taxit-big.refpkg"
    flags = [x for i, p in enumerate(data) for x in (("-f", "-S", "-i", "-p")[i % 4], str(p))]
    t0 = time.perf_counter()
    subprocess.run([_TAXIT, "create", "-P", str(pkg), "-l", "16S", "--no-reroot", *flags], check=True,
                   capture_output=True)
    res["taxit_create_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    shutil.copytree(pkg, work / "copy-only")
    res["copy_only_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    shutil.copytree(pkg, work / "copy-checked")
    subprocess.run([_TAXIT, "check", str(work / "copy-checked")], capture_output=True)  # rc 1: no tree etc.
    res["taxit_copy_check_s"] = time.perf_counter() - t0
    return res


def _depth_cost(marks: list[float]) -> dict[str, float]:
    """Mean ms per step over the first and the last tenth of the steps (cumulative ``marks``): flat or not."""
    n = len(marks)
    w = max(n // 10, 1)
    if n < 2 * w:
        return {}
    first = marks[w - 1] / w
    last = (marks[-1] - marks[-w - 1]) / w
    return {"window": w, "first_ms": first * 1000, "last_ms": last * 1000}


def _ratio_at(theirs: list[float], ours: list[float]) -> tuple[int, float, float]:
    k = min(len(theirs), len(ours))
    return (k, theirs[k - 1], ours[k - 1]) if k else (0, 0.0, 0.0)


def main(argv: list[str] | None = None) -> int:
    """Run every case once and print times and taxtastic/rgstore ratios (or JSON)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--taxtastic-worker"]:
        return _taxtastic_worker(argv[1:])
    parser = argparse.ArgumentParser(prog="bench-refpkg", description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=1000, help="successive file updates")
    parser.add_argument("--rollbacks", type=int, default=1000, help="single-step rollbacks after the updates")
    parser.add_argument("--export-mb", type=int, default=200, help="MB of files in the exported package")
    parser.add_argument("--cli-sample", type=int, default=20, help="command-line calls timed per tool")
    parser.add_argument("--budget", type=float, default=300.0, help="seconds per taxtastic phase")
    parser.add_argument("--recursion-limit", type=int, default=100_000,
                        help="taxtastic's recursion limit (stock: 1000, which fails on deep histories)")
    parser.add_argument("--keep", type=Path, help="work directory to keep (default: a temp dir, removed)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rollbacks = min(args.rollbacks, args.updates)
    work = args.keep or Path(tempfile.mkdtemp(prefix="rgstore-bench-refpkg-"))
    work.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {}
    try:
        trees = _write_trees(work / "trees", max(args.updates, args.cli_sample) + 1)
        ours = _rgstore_steps(work / "store", trees[: args.updates + 1], rollbacks)
        theirs = _taxtastic_steps(work, work / "trees", args.updates, rollbacks, args.budget,
                                  args.recursion_limit)
        for phase in ("updates", "rollbacks"):
            k, t_theirs, t_ours = _ratio_at(theirs[phase]["marks"], ours[phase])
            res[phase] = {"requested": args.updates if phase == "updates" else rollbacks,
                          "rgstore_all_s": ours[phase][-1] if ours[phase] else 0.0,
                          "compared_steps": k, "rgstore_s": t_ours, "taxtastic_s": t_theirs,
                          "ratio": t_theirs / t_ours if t_ours else 0.0,
                          "taxtastic_stopped": theirs[phase]["stopped"],
                          "taxtastic_manifest_bytes": theirs[phase]["manifest_bytes"],
                          "rgstore_depth_cost": _depth_cost(ours[phase])}
        if args.cli_sample:
            res["cli"] = _cli_sample(work, trees, args.cli_sample)
        if args.export_mb:
            res["export"] = _export(work, _write_data(work / "data", args.export_mb))
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    for phase in ("updates", "rollbacks"):
        p = res[phase]
        print(f"{p['requested']} {phase}: rgstore {p['rgstore_all_s']:.2f} s in all; "
              f"first {p['compared_steps']}: "
              f"rgstore {p['rgstore_s']:.2f} s, taxtastic {p['taxtastic_s']:.2f} s, ratio {p['ratio']:.1f}x"
              + (f" (taxtastic stopped: {p['taxtastic_stopped']})" if p["taxtastic_stopped"] else "")
              + f"; taxtastic CONTENTS.json {p['taxtastic_manifest_bytes'] / 1e6:.1f} MB")
        d = p["rgstore_depth_cost"]
        if d:
            print(f"  rgstore per step: {d['first_ms']:.2f} ms over the first {d['window']}, "
                  f"{d['last_ms']:.2f} ms over the last {d['window']}")
    if "cli" in res:
        c = res["cli"]
        print(f"one command-line update (median of {args.cli_sample}): rgstore {c['rgstore'] * 1000:.0f} ms, "
              f"taxit {c['taxit'] * 1000:.0f} ms, ratio {c['taxit'] / c['rgstore']:.1f}x")
        for what in ("info", "check"):
            ours, theirs = c[f"rgstore_{what}"], c[f"taxit_{what}"]
            print(f"one `refpkg {what}` vs `taxit {what}` (median of {args.cli_sample}): rgstore {ours * 1000:.0f} ms, "
                  f"taxit {theirs * 1000:.0f} ms, ratio {theirs / ours:.1f}x")
    if "export" in res:
        e = res["export"]
        print(f"export {args.export_mb} MB: rgstore dir {e['rgstore_export_dir_s']:.2f} s, "
              f"tar.gz {e['rgstore_export_tar_s']:.2f} s, zip {e['rgstore_export_zip_s']:.2f} s; "
              f"copy + taxit check {e['taxit_copy_check_s']:.2f} s "
              f"(ratio {e['taxit_copy_check_s'] / e['rgstore_export_dir_s']:.2f}x), "
              f"plain copy {e['copy_only_s']:.2f} s; create: rgstore {e['rgstore_create_s']:.2f} s, "
              f"taxit {e['taxit_create_s']:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

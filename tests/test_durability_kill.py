"""Claims about SIGKILL in the middle of writing commands: the store verifies, a rerun reaches the state of an
uninterrupted run, and `gc` leaves nothing behind that the uninterrupted run does not have."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import REPO, run_rgstore
from tests.refpkg_data import write_inputs
from tests.server_fixture import rgstore_cli
from tests.upstream_fixture import GENOME, UpstreamServer, base

_VOLATILE = {"seq", "time", "inserted_seq", "inserted_at", "last_access", "touches", "create_date", "added_at"}


def _norm(value: object) -> object:
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items() if k not in _VOLATILE}
    if isinstance(value, list):
        return [_norm(v) for v in value]
    return value


def _state(store: Path) -> dict[str, object]:
    # In-process: these reads are not about the process boundary (the kill and its rerun are real processes).
    out: dict[str, object] = {}
    for query in (["genome", "list"], ["alias", "list"], ["refpkg", "list"], ["cache", "ls"]):
        out[" ".join(query)] = _norm(json.loads(rgstore_cli(store, *query, "--json")))
    return out


def _collect(store: Path) -> set[str]:
    """gc (scratch directories and temp files aged past gc's floor, as time would), then every path outside LMDB's."""
    old = time.time() - 3600
    # A kill inside a blob's or sequence's copy leaves its temp file, which gc keeps for SCRATCH_FLOOR_S (it
    # cannot tell a killed writer's from one between its creation and its lock): age those too.
    for scratch in [*store.glob(".ingest-*"), *store.glob(".remote-*"), *store.glob("blobs/.tmp-*"),
                    *store.glob("refget/**/.tmp-*"), *store.glob("refget/**/.rgstore.tmp.*")]:
        os.utime(scratch, (old, old))
    rgstore_cli(store, "gc", "--grace", "0")
    return {p.relative_to(store).as_posix() for p in store.rglob("*") if p.relative_to(store).parts[0] != "log"}


def _kill_when(store: Path, args: list[str], ready: Callable[[], bool], delay: float) -> bool:
    """Start the CLI, wait until ``ready()`` (then ``delay`` s more), SIGKILL it; True if it died mid-run."""
    proc = subprocess.Popen([sys.executable, "-m", "rgstore_cli", "--store", str(store), *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while proc.poll() is None and not ready() and time.monotonic() < deadline:
        time.sleep(0.002)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    return proc.returncode == -signal.SIGKILL


def _big_fasta(path: Path) -> Path:
    rng = random.Random(11)
    with open(path, "w") as fh:
        for n in range(4):
            seq = "".join(rng.choices("ACGT", k=500_000))
            fh.write(f">chr{n}\n" + "\n".join(seq[i:i + 60] for i in range(0, len(seq), 60)) + "\n")
    return path


def _check_kills(tmp_path: Path, args: list[str], ready: Callable[[Path], bool], delays: list[float],
                 prepare: Callable[[Path], None] = lambda store: None) -> None:
    reference = tmp_path / "reference"
    prepare(reference)
    assert run_rgstore("--store", str(reference), *args).returncode == 0
    want, want_files = _state(reference), _collect(reference)
    killed: list[bool] = []
    for n, delay in enumerate(delays):
        store = tmp_path / f"killed{n}"
        prepare(store)
        killed.append(_kill_when(store, args, lambda: ready(store), delay))
        if (store / "log" / "data.mdb").exists():  # else killed before it created anything
            rgstore_cli(store, "verify")
        if not (store / "log" / "data.mdb").exists() or _state(store) != want:  # else it finished before the kill
            rerun = run_rgstore("--store", str(store), *args)
            assert rerun.returncode == 0, rerun.stderr
        assert _state(store) == want
        assert _collect(store) == want_files
        rgstore_cli(store, "verify")
        shutil.rmtree(store)
    # Every run that finished before its kill proves nothing about kills: at least one must have died mid-run.
    assert any(killed), f"every command finished before its SIGKILL (delays {delays})"


@pytest.mark.slow
def test_genome_init_killed_mid_import_leaves_nothing_a_rerun_and_gc_do_not_finish(tmp_path: Path) -> None:
    fasta = _big_fasta(tmp_path / "big.fa")
    _check_kills(tmp_path, ["genome", "init", "--fasta", str(fasta), "--name", "big"],
                 lambda store: any(store.glob(".ingest-*")), [0.0, 0.15])


@pytest.mark.slow
def test_cache_fetch_raw_killed_mid_download_is_finished_by_a_rerun(tmp_path: Path, tree: Path) -> None:
    with UpstreamServer(tree) as srv:
        srv.slow(GENOME["ensembl"], 0.6)
        args = ["cache", "fetch-raw", "--source", "ensembl", "--species", "synthetica_testii", "--release", "110",
                "--base-url", base(srv, "ensembl")]
        _check_kills(tmp_path, args, lambda store: any((store / "cache").glob(".tmp-*")), [0.1, 0.4])


@pytest.mark.slow
def test_refpkg_import_killed_mid_copy_leaves_a_store_a_rerun_finishes(tmp_path: Path) -> None:
    inputs = write_inputs(tmp_path / "inputs")
    source = tmp_path / "source"
    assert run_rgstore("--store", str(source), "refpkg", "create", "p", "-l", "16S",
                       *(arg for key, flag in (("aln_fasta", "-f"), ("seq_info", "-i"), ("taxonomy", "-T"),
                                               ("tree", "-t")) for arg in (flag, str(inputs[key])))).returncode == 0
    package = tmp_path / "p.refpkg"
    assert run_rgstore("--store", str(source), "refpkg", "export", "p", str(package)).returncode == 0
    _check_kills(tmp_path, ["refpkg", "import", str(package)], lambda store: (store / "log" / "data.mdb").exists(),
                 [0.0, 0.05])


def test_a_mirror_pull_killed_mid_cache_download_leaves_a_temp_file_gc_removes_but_never_a_live_ones(
        tmp_path: Path, tree: Path) -> None:
    # A pull --with-blobs SIGKILLed while a cache file streamed in left `.annotation.gtf.XXXXXXXX.tmp` inside the
    # live entry's directory: no gc reached it (cache gc removes whole stray directories), a leak per kill.
    primary, mirror, pub = tmp_path / "p", tmp_path / "m", tmp_path / "pub"
    with UpstreamServer(tree) as srv:
        rgstore_cli(primary, "cache", "fetch-raw", "--source", "ensembl", "--species", "synthetica_testii",
                    "--release", "110", "--base-url", base(srv, "ensembl"))
    rgstore_cli(primary, "log", "publish", "--with-blobs", str(pub))
    args = [sys.executable, "-m", "rgstore_cli", "--store", str(mirror), "mirror", "pull", "--with-blobs"]

    def temps() -> list[Path]:
        return sorted((mirror / "cache").rglob(".*.tmp")) if (mirror / "cache").is_dir() else []

    old = time.time() - 3600
    with UpstreamServer(pub) as srv:
        srv.slow(".gtf", 60.0)  # the decompressed annotation trickles in: the pull is mid-download for long
        proc = subprocess.Popen([*args, srv.url], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while proc.poll() is None and not any(t.name.startswith(".annotation.gtf.") for t in temps()) \
                and time.monotonic() < deadline:
            time.sleep(0.01)
        assert temps(), "the pull must be mid-download"
        for tmp in temps():
            os.utime(tmp, (old, old))  # a download stalled past any grace is still live work
        rgstore_cli(mirror, "gc", "--grace", "0")
        assert temps(), "gc removed a live download's temp file"
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    for tmp in temps():
        os.utime(tmp, (old, old))
    rgstore_cli(mirror, "verify")
    rgstore_cli(mirror, "gc", "--grace", "0")
    assert temps() == []
    with UpstreamServer(pub) as srv:
        rgstore_cli(mirror, "mirror", "pull", srv.url, "--with-blobs")
    rgstore_cli(mirror, "cache", "verify")
    rgstore_cli(mirror, "verify")


def test_a_store_whose_first_command_was_killed_before_committing_verifies_as_empty(tmp_path: Path) -> None:
    import lmdb

    store = tmp_path / "store"
    (store / "log").mkdir(parents=True)
    lmdb.open(str(store / "log"), max_dbs=64).close()  # what a first command killed inside its open leaves
    verify = run_rgstore("--store", str(store), "verify", "--json")
    assert verify.returncode == 0, verify.stderr
    report = json.loads(verify.stdout)
    assert (report["ok"], report["events"], report["blobs"], report["problems"]) == (True, 0, 0, [])
    log = run_rgstore("--store", str(store), "log", "--json")
    assert (log.returncode, log.stdout) == (0, b""), log.stderr  # one JSON line per event: none

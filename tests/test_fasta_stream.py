"""Claims: `genome init` reads its FASTA from a stream (--fasta -, <(...), a named FIFO) as it would from the file.

The stream is read once into the store's scratch area and ingested from there; the copy is gone
afterwards whatever the outcome, and the genome records what the user gave (``-`` or the
stream's path) with the size and md5 of the bytes read. Each run is the real `rgstore` in a
subprocess, fed through a real pipe, FIFO or stdin, with a timeout so no test can hang.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from rgstore.refgetstore import sweep_scratch
from rgstore.store import Store
from tests.conftest import REPO, run_rgstore

FASTA = b">chr1 first contig\nACGTNACGTN\nacgtn\n>chr2\nRYKMSWBDHVU\n"
TIMEOUT_S = 120


def _init(store: Path, fasta: str | Path, name: str, *, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return run_rgstore("--store", str(store), "genome", "init", "--fasta", str(fasta), "--name", name, "--json",
                       input=stdin, timeout=TIMEOUT_S)


def _source(proc: subprocess.CompletedProcess[bytes]) -> tuple[str, dict[str, object]]:
    assert proc.returncode == 0, proc.stderr.decode()
    genome = json.loads(proc.stdout)["genome"]
    return genome["digest"], genome["source"]


def _scratch(store: Path) -> list[str]:
    return sorted(p.name for p in store.glob(".ingest-*"))


def _write_fifo_later(fifo: Path, data: bytes) -> threading.Thread:
    def write() -> None:
        with open(fifo, "wb") as fh:  # blocks until the reader opens its end
            fh.write(data)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def _release(fifo: Path, thread: threading.Thread) -> None:
    """Unblock a writer whose reader never came (the run failed before opening the FIFO)."""
    if thread.is_alive():
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        thread.join(TIMEOUT_S)
        os.close(fd)


def test_stdin_gives_the_digest_the_file_gives_and_records_dash_with_the_bytes_size_and_md5(tmp_path: Path) -> None:
    fasta = tmp_path / "g.fa"
    fasta.write_bytes(FASTA)
    from_file, file_source = _source(_init(tmp_path / "a", fasta, "g"))
    from_stdin, stdin_source = _source(_init(tmp_path / "b", "-", "g", stdin=FASTA))
    assert from_stdin == from_file
    assert file_source["path"] == str(fasta)
    assert stdin_source == {**file_source, "path": "-"}
    assert stdin_source["md5"] == hashlib.md5(FASTA).hexdigest() and stdin_source["size"] == len(FASTA)
    assert _scratch(tmp_path / "b") == []


def test_gzip_through_stdin_is_read_by_content_as_the_gzip_file_is(tmp_path: Path) -> None:
    packed = gzip.compress(FASTA[:20]) + gzip.compress(FASTA[20:])  # multi-member, as `cat a.gz b.gz` gives
    plain = tmp_path / "g.fa"
    plain.write_bytes(FASTA)
    expected, _ = _source(_init(tmp_path / "a", plain, "g"))
    digest, source = _source(_init(tmp_path / "b", "-", "g", stdin=packed))
    assert digest == expected
    assert source["md5"] == hashlib.md5(packed).hexdigest() and source["size"] == len(packed)


def test_a_named_fifo_is_read_once_its_writer_comes_and_recorded_by_its_path(tmp_path: Path) -> None:
    fifo = tmp_path / "genome.fifo"
    os.mkfifo(fifo)
    writer = _write_fifo_later(fifo, FASTA)
    try:
        digest, source = _source(_init(tmp_path / "s", fifo, "g"))
    finally:
        _release(fifo, writer)
    plain = tmp_path / "g.fa"
    plain.write_bytes(FASTA)
    assert digest == _source(_init(tmp_path / "t", plain, "g"))[0]
    assert source["path"] == str(fifo) and source["md5"] == hashlib.md5(FASTA).hexdigest()
    assert _scratch(tmp_path / "s") == []


def test_process_substitution_pipe_is_ingested(tmp_path: Path) -> None:
    # What `--fasta <(zcat a.fa.gz)` hands over: /dev/fd/N, the read end of an anonymous pipe.
    read_end, write_end = os.pipe()
    gz = gzip.compress(FASTA)
    proc = subprocess.Popen(
        [sys.executable, "-m", "rgstore_cli", "--store", str(tmp_path / "s"), "genome", "init",
         "--fasta", f"/dev/fd/{read_end}", "--name", "g", "--json"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=[read_end])
    os.close(read_end)
    os.write(write_end, gz)
    os.close(write_end)
    out, err = proc.communicate(timeout=TIMEOUT_S)
    assert proc.returncode == 0, err.decode()
    genome = json.loads(out)["genome"]
    assert genome["names"] == ["chr1", "chr2"] and genome["lengths"] == [15, 11]
    assert genome["source"]["path"] == f"/dev/fd/{read_end}"
    assert genome["source"]["md5"] == hashlib.md5(gz).hexdigest()


def test_malformed_stdin_is_one_line_naming_standard_input_and_leaves_no_spool_and_no_genome(tmp_path: Path) -> None:
    store = tmp_path / "s"
    good = tmp_path / "g.fa"
    good.write_bytes(FASTA)
    _source(_init(store, good, "g"))
    proc = _init(store, "-", "bad", stdin=b">a\nACGT\nAC1T\n")
    assert proc.returncode == 1
    assert proc.stderr.decode().splitlines() == [
        "error: standard input: line 3, column 3: invalid residue '1': not in the IUPAC nucleotide or protein alphabet"]
    assert _scratch(store) == []
    listed = json.loads(run_rgstore("--store", str(store), "genome", "list", "--json").stdout)
    assert [g["aliases"] for g in listed] == [["g"]]
    assert run_rgstore("--store", str(store), "verify").returncode == 0


def test_an_empty_stdin_is_the_error_an_empty_file_gives(tmp_path: Path) -> None:
    empty = tmp_path / "empty.fa"
    empty.write_bytes(b"")
    from_file = _init(tmp_path / "a", empty, "e")
    from_stdin = _init(tmp_path / "b", "-", "e", stdin=b"")
    assert from_stdin.returncode == from_file.returncode == 1
    assert from_file.stderr.decode() == f"error: {empty}: the file is empty (no FASTA records)\n"
    assert from_stdin.stderr.decode() == "error: standard input: the file is empty (no FASTA records)\n"


def test_a_fifo_without_a_writer_waits_for_one_and_a_sigterm_then_leaves_no_spool(tmp_path: Path) -> None:
    # Like `cat FIFO`, the run waits for a writer; it is not refused. SIGTERM ends the wait cleanly.
    store = tmp_path / "s"
    fifo = tmp_path / "nobody.fifo"
    os.mkfifo(fifo)
    proc = subprocess.Popen(
        [sys.executable, "-m", "rgstore_cli", "--store", str(store), "genome", "init", "--fasta", str(fifo),
         "--name", "g"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + TIMEOUT_S  # the store exists once the run is past its signal handlers
        while not (store / "log" / "data.mdb").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()[1].decode()  # still waiting, not refused
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode != 0
    assert "Traceback" not in err.decode()
    assert _scratch(store) == []
    assert run_rgstore("--store", str(store), "verify").returncode == 0


def test_dash_from_a_terminal_is_refused_rather_than_waiting_for_typing(tmp_path: Path) -> None:
    # It waited, silent, for a FASTA typed at the terminal (as `genome fhr set -` no longer does).
    store = tmp_path / "s"
    leader, terminal = os.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "rgstore_cli", "--store", str(store), "genome", "init", "--fasta", "-", "--name",
             "g"], cwd=REPO, stdin=terminal, capture_output=True, timeout=TIMEOUT_S)
    finally:
        os.close(terminal)
        os.close(leader)
    lines = proc.stderr.decode().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, lines
    assert "- reads the FASTA from standard input: pipe one in" in lines[0]
    assert not store.exists()  # refused before the store is created


def test_a_disk_refusing_the_copy_is_a_one_line_disk_error_and_leaves_no_spool(tmp_path: Path) -> None:
    store = tmp_path / "s"
    good = tmp_path / "g.fa"
    good.write_bytes(FASTA)
    _source(_init(store, good, "g"))
    big = b">big\n" + b"ACGTACGTAC" * 6 * 1024 * 64 + b"\n"  # ~4 MiB, past the 1 MiB file size limit

    def limit() -> None:  # a file size limit stands in for a full disk (writes past it fail with EFBIG)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, resource.RLIM_INFINITY))

    proc = subprocess.run(
        [sys.executable, "-m", "rgstore_cli", "--store", str(store), "genome", "init", "--fasta", "-", "--name", "big"],
        cwd=REPO, input=big, capture_output=True, timeout=TIMEOUT_S, preexec_fn=limit)
    lines = proc.stderr.decode().splitlines()
    assert proc.returncode != 0 and len(lines) == 1, lines
    assert lines[0].startswith(f"error: no room for a copy of the FASTA read from standard input in {store} ")
    assert _scratch(store) == []
    assert run_rgstore("--store", str(store), "verify").returncode == 0


def test_a_spool_left_by_a_killed_run_is_collected_by_the_scratch_sweep(tmp_path: Path) -> None:
    store = tmp_path / "s"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rgstore_cli", "--store", str(store), "genome", "init", "--fasta", "-", "--name", "g"],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None
    try:
        proc.stdin.write(FASTA)
        proc.stdin.flush()  # stdin stays open: the run keeps spooling until it is killed
        deadline = time.monotonic() + TIMEOUT_S
        while not list(store.glob(".ingest-*/stdin")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(store.glob(".ingest-*/stdin")), proc.poll()
        proc.kill()
        proc.wait(TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()  # closes stdin too
    assert _scratch(store) != []  # SIGKILL runs no cleanup
    with Store.open(store, actor="t@x") as opened:
        removed = sweep_scratch(opened, older_than=0)
    assert [p.name for p in removed] != [] and _scratch(store) == []

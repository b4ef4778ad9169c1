"""Claims about a SIGKILLed export's temp: the next export to that name removes it, never a live writer's."""

from __future__ import annotations

import fcntl
import gzip
import os
import random
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from rgstore.store import Store

from .conftest import REPO, run_rgstore

_BASES = 2_000_000  # per record, 4 records: a BGZF export runs for a good part of a second
_BLOB = 32 << 20  # incompressible bytes: a refpkg export still copying when the poll sees its temp


def _genome(store_path: Path, fasta: Path) -> str:
    """Genome "g" from random bases; returns its FASTA, as `genome export` writes it (80 a line)."""
    rng = random.Random(7)
    text = []
    for i in range(4):
        bases = "".join(rng.choices("ACGT", k=_BASES))
        text.append(f">c{i}\n" + "".join(bases[j:j + 80] + "\n" for j in range(0, len(bases), 80)))
    fasta.write_text("".join(text))
    with Store.open(store_path) as store:
        store.genomes.init(fasta, ["g"])
    return "".join(text)


def _temps(out: Path, besides: list[Path] | None = None) -> list[Path]:
    """The hidden files beside ``out`` named for it, but for ``besides``."""
    return sorted(p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.") and p not in (besides or []))


def _start(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "rgstore_cli", *args], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait_for_temp(proc: subprocess.Popen[bytes], out: Path, besides: list[Path] | None = None) -> None:
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline and not _temps(out, besides):
        time.sleep(0.001)


def _stop_holding_its_lock(proc: subprocess.Popen[bytes], out: Path) -> Path:
    """SIGSTOP ``proc`` once its temp beside ``out`` is flocked; returns that temp.

    The temp is created a moment before it is locked: a stop in between (a loaded machine) would
    leave an unlocked temp that is, rightly, anyone's to sweep, which is not the case claimed here.
    """
    for _attempt in range(200):
        proc.send_signal(signal.SIGSTOP)
        while Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("T", "Z"):
            time.sleep(0.001)
        [tmp] = _temps(out)
        with open(tmp, "rb") as probe:
            try:
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return tmp
            fcntl.flock(probe, fcntl.LOCK_UN)
        proc.send_signal(signal.SIGCONT)
        time.sleep(0.001)
    raise AssertionError("the export never held its temp's lock")


def _kill_mid_export(out: Path, *args: str, besides: list[Path] | None = None) -> list[Path]:
    """Run ``rgstore ARGS`` (an export to ``out``) and SIGKILL it once its temp exists; returns the temps left."""
    proc = _start(*args)
    try:
        _wait_for_temp(proc, out, besides)
        proc.send_signal(signal.SIGKILL)  # a crash: no cleanup runs, and the kernel drops the temp's flock
        _out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL, f"the export must die mid-run: {err.decode()}"
    left = _temps(out, besides)
    assert left and not out.exists()
    return left


def _age(path: Path) -> None:
    """Make ``path`` look untouched for an hour: what a killed export's temp is by the next export."""
    then = time.time() - 3600
    os.utime(path, (then, then))


def test_a_killed_genome_export_s_temp_goes_at_the_next_export_once_it_is_past_the_floor(
        store_path: Path, tmp_path: Path) -> None:
    expected = _genome(store_path, tmp_path / "in.fa")
    out = tmp_path / "out" / "g.fa.gz"
    out.parent.mkdir()
    # Temps of another destination, and a user's own file, that the export's name begins: never touched.
    others = [out.parent / ".g.fa.gz.x.abcd1234.tmp", out.parent / ".g.fa.gz.notes"]
    for other in others:
        other.write_bytes(b"keep")
        _age(other)
    [tmp] = _kill_mid_export(out, "--store", str(store_path), "genome", "export", "g", str(out), besides=others)

    again = run_rgstore("--store", str(store_path), "genome", "export", "g", str(out))
    assert again.returncode == 0, again.stderr.decode()
    assert tmp.exists()  # unlocked, but young enough to be a writer that has not taken its lock yet
    _age(tmp)
    out.unlink()
    again = run_rgstore("--store", str(store_path), "genome", "export", "g", str(out))
    assert again.returncode == 0, again.stderr.decode()
    assert _temps(out) == sorted(others)
    with gzip.open(out, "rt") as fh:
        assert fh.read() == expected


def test_a_killed_refpkg_export_s_temp_file_or_directory_goes_at_the_next_export(
        store_path: Path, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(random.Random(3).randbytes(_BLOB))
    with Store.open(store_path) as store:
        store.refpkgs.create("pkg", locus="L")
        store.refpkgs.update_files("pkg", [f"big={big}"])
    out = tmp_path / "out"
    out.mkdir()
    for dest in (out / "pkg.refpkg", out / "pkg.zip"):
        for tmp in _kill_mid_export(dest, "--store", str(store_path), "refpkg", "export", "pkg", str(dest)):
            _age(tmp)
        again = run_rgstore("--store", str(store_path), "refpkg", "export", "pkg", str(dest))
        assert again.returncode == 0, again.stderr.decode()
        assert _temps(dest) == []
        if dest.suffix == ".zip":
            with zipfile.ZipFile(dest) as archive:
                assert archive.read("pkg/big.bin") == big.read_bytes()
        else:
            assert (dest / "big.bin").read_bytes() == big.read_bytes()
    assert sorted(p.name for p in out.iterdir()) == ["pkg.refpkg", "pkg.zip"]


def test_a_stalled_live_export_s_temp_is_left_by_another_export_and_it_completes(
        store_path: Path, tmp_path: Path) -> None:
    expected = _genome(store_path, tmp_path / "in.fa")
    out = tmp_path / "g.fa.gz"
    proc = _start("--store", str(store_path), "genome", "export", "g", str(out))
    try:
        _wait_for_temp(proc, out)
        tmp = _stop_holding_its_lock(proc, out)  # stopped mid-run: its temp is there, its flock held
        assert proc.poll() is None
        _age(tmp)  # stalled for an hour, as far as the temp's age tells
        with Store.open(store_path) as store:
            store.genomes.export("g", out)
        assert tmp.exists()
    finally:
        proc.send_signal(signal.SIGCONT)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    assert _temps(out) == []
    with gzip.open(out, "rt") as fh:
        assert fh.read() == expected

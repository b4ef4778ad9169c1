"""Claims about interrupted refpkg commands: SIGTERM mid-copy leaves no temp file, blob or event."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rgstore.store import Store

from .conftest import REPO

_SIZE = 200 * 1024 * 1024  # big enough that the copy is still running when the poll sees its temp file


def _big_file(path: Path) -> Path:
    with open(path, "wb") as out:
        block = os.urandom(1 << 20)  # incompressible, so a .zip export is as slow as a copy
        for _ in range(_SIZE >> 20):
            out.write(block)
    return path


def _terminate_once(args: list[str], temp_glob: tuple[Path, str]) -> int:
    """Run ``rgstore ARGS``, send SIGTERM as soon as a temp file matching ``temp_glob`` exists."""
    proc = subprocess.Popen([sys.executable, "-m", "rgstore_cli", *args], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    where, pattern = temp_glob
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if list(where.glob(pattern)):
            proc.send_signal(signal.SIGTERM)
            break
        time.sleep(0.002)
    _out, err = proc.communicate(timeout=120)
    assert b"Traceback" not in err, err.decode()
    return proc.returncode


@pytest.mark.slow
def test_sigterm_during_update_or_export_leaves_nothing_behind(store_path: Path, tmp_path: Path) -> None:
    with Store.open(store_path) as store:
        store.refpkgs.create("pkg", locus="L")
        head = store.head()[0]
    big = _big_file(tmp_path / "big.bin")
    rc = _terminate_once(["--store", str(store_path), "refpkg", "update", "pkg", f"big={big}"],
                         (store_path / "blobs", ".tmp-*"))
    assert rc == 128 + signal.SIGTERM
    with Store.open(store_path) as store:
        assert store.head()[0] == head and list(store.blobs.all()) == []
    assert list((store_path / "blobs").glob(".tmp-*")) == []

    with Store.open(store_path) as store:
        store.refpkgs.update_files("pkg", [f"big={big}"])
    out = tmp_path / "out"
    out.mkdir()
    for args in (["pkg", str(out / "pkg.refpkg")], ["pkg", "--zip", str(out / "pkg.zip")]):
        rc = _terminate_once(["--store", str(store_path), "refpkg", "export", *args], (out, ".pkg.*tmp-*"))
        assert rc == 128 + signal.SIGTERM
        assert sorted(p.name for p in out.iterdir()) == []

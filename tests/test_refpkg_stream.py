"""`refpkg export --tar -` / `--zip -`: the archive streams to stdout, the same package a file export writes."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from rgstore.store import Store

from .conftest import REPO, run_rgstore
from .refpkg_data import write_inputs


@pytest.fixture
def made(tmp_path: Path) -> Path:
    """A store holding package "pkg" with the valid test file set."""
    with Store.open(tmp_path / "store") as store:
        store.refpkgs.create("pkg", locus="L", files=list(write_inputs(tmp_path / "inputs").items()))
    return tmp_path / "store"


def _export(store: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    """`rgstore refpkg export pkg ARGS` in a subprocess whose stdout is a pipe (never seekable)."""
    return subprocess.run([sys.executable, "-m", "rgstore_cli", "--store", str(store), "refpkg", "export", "pkg",
                           *args], cwd=cwd, capture_output=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


def test_a_tar_to_standard_output_is_the_file_exports_bytes_and_imports_into_another_store(
    made: Path, tmp_path: Path
) -> None:
    run = tmp_path / "cwd"
    run.mkdir()
    assert _export(made, "--tar", str(tmp_path / "pkg.tar.gz"), cwd=run).returncode == 0
    streamed = _export(made, "--tar", "-", cwd=run)
    assert streamed.returncode == 0, streamed.stderr
    assert streamed.stdout == (tmp_path / "pkg.tar.gz").read_bytes()
    assert streamed.stderr == b"wrote standard output (7 files holding 845 bytes)\n"
    assert os.listdir(run) == []  # no file named "-"
    with tarfile.open(fileobj=io.BytesIO(streamed.stdout)) as tar:
        assert tar.getnames()[0] == "pkg" and tar.getnames()[-1] == "pkg/CONTENTS.json"
    imported = run_rgstore("--store", str(tmp_path / "other"), "refpkg", "import", "-", "--name", "pkg", "--json",
                           input=streamed.stdout)
    assert imported.returncode == 0, imported.stderr
    with Store.open(made) as a, Store.open(tmp_path / "other") as b:
        assert a.refpkgs.info("pkg").files == b.refpkgs.info("pkg").files


def test_a_zip_to_a_pipe_holds_the_file_exports_members_and_passes_unzip(made: Path, tmp_path: Path) -> None:
    assert _export(made, "--zip", str(tmp_path / "pkg.zip"), cwd=tmp_path).returncode == 0
    streamed = _export(made, "--zip", "-", "--json", cwd=tmp_path)
    assert streamed.returncode == 0, streamed.stderr
    # --json's report goes to stderr: stdout carries the archive
    assert json.loads(streamed.stderr) == {"name": "pkg", "path": "-", "format": "zip", "files": 7, "bytes": 845,
                                           "history": True}
    (tmp_path / "piped.zip").write_bytes(streamed.stdout)
    with zipfile.ZipFile(tmp_path / "pkg.zip") as whole, zipfile.ZipFile(tmp_path / "piped.zip") as piped:
        assert piped.testzip() is None
        assert [(i.filename, i.date_time, i.external_attr) for i in piped.infolist()] == \
            [(i.filename, i.date_time, i.external_attr) for i in whole.infolist()]
        assert all(piped.read(i) == whole.read(i) for i in whole.namelist())
    checked = subprocess.run(["unzip", "-t", str(tmp_path / "piped.zip")], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout


def test_a_directory_to_standard_output_is_a_usage_error_pointing_at_tar(made: Path, tmp_path: Path) -> None:
    done = _export(made, "-", cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == b""
    assert b"a DIRECTORY cannot go to standard output: use --tar -" in done.stderr
    assert not (tmp_path / "-").exists()


@pytest.mark.parametrize("fmt", ["tar", "zip"])
def test_a_corrupt_blob_streamed_fails_in_one_line_and_leaves_no_whole_archive(
    made: Path, tmp_path: Path, fmt: str
) -> None:
    with Store.open(made) as store:
        ref = store.refpkgs.info("pkg").files["tree"]
        blob = store.blobs.path(ref.sha256)
    blob.chmod(0o644)
    blob.write_text("((s1,s2),s3);" + "x" * (ref.size - 14) + "\n")  # same size, other bytes
    done = _export(made, f"--{fmt}", "-", cwd=tmp_path)
    assert done.returncode == 1
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: blob ") and "is corrupt" in lines[0]
    # The members before the bad one went out (inherent to a stream), but the archive's end never
    # came: a reader fails rather than take a short package whole.
    assert done.stdout.startswith(b"\x1f\x8b" if fmt == "tar" else b"PK\x03\x04")
    with pytest.raises((EOFError, tarfile.TarError, zipfile.BadZipFile)):
        if fmt == "tar":
            with tarfile.open(fileobj=io.BytesIO(done.stdout)) as tar:
                tar.getmembers()
        else:
            zipfile.ZipFile(io.BytesIO(done.stdout))


@pytest.mark.parametrize("fmt", ["tar", "zip"])
@pytest.mark.parametrize("to", ["-", "pkg.out"])
def test_a_truncated_blob_is_named_shorter_than_recorded_by_tar_and_zip_streamed_or_to_a_file(
    made: Path, tmp_path: Path, fmt: str, to: str
) -> None:
    # The zip writer called a short blob a "checksum mismatch"; the tar writer says "shorter than recorded".
    with Store.open(made) as store:
        ref = store.refpkgs.info("pkg").files["tree"]
        blob = store.blobs.path(ref.sha256)
    blob.chmod(0o644)
    blob.write_bytes(blob.read_bytes()[: ref.size // 2])
    done = _export(made, f"--{fmt}", to, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.decode() == f"error: blob {ref.sha256} of file {ref.name} is corrupt (shorter than recorded)\n"
    assert not (tmp_path / to).exists()
    if fmt == "zip" and to == "-":
        # Every member before the short one closed with its data descriptor; the short one never does,
        # so a streaming reader cannot take its half as the whole file.
        assert done.stdout.count(b"PK\x07\x08") == done.stdout.count(b"PK\x03\x04") - 1


def test_a_reader_closing_the_pipe_early_ends_the_stream_quietly(tmp_path: Path) -> None:
    inputs = write_inputs(tmp_path / "inputs")
    inputs["readme"].write_bytes(os.urandom(3 << 20).hex().encode())  # far more than a pipe's buffer
    with Store.open(tmp_path / "store") as store:
        store.refpkgs.create("pkg", locus="L", files=list(inputs.items()))
    proc = subprocess.Popen([sys.executable, "-m", "rgstore_cli", "--store", str(tmp_path / "store"), "refpkg",
                             "export", "pkg", "--tar", "-"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    head = proc.stdout.read(100)  # `| head -c 100`
    proc.stdout.close()
    assert proc.wait(timeout=120) == 0
    assert len(head) == 100 and proc.stderr.read() == b""
    proc.stderr.close()

"""Claims: a store path or destination this user cannot use is one line naming it (not a temp inside it), exit 1.

Paths: a ``--store`` that is a symbolic link to nothing, or holds bytes that are not UTF-8; a refpkg
export into a directory this user may not write; a publish past this process's file size limit
(``ulimit -f``), whose line names the limit rather than free space and which leaves no empty folder.
Each is retried once the condition is gone. Root writes through any mode, so as root the refused
export runs with CAP_DAC_OVERRIDE dropped (``tests.privileges``): the modes bind it as anyone else.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO
from tests.privileges import modes_bind_prefix


def _rgstore(*args: str | bytes | Path, prefix: list[str] | None = None,
             fsize: int | None = None) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess (behind ``prefix``), its files limited to ``fsize`` bytes (EFBIG past it)."""

    def limit() -> None:
        if fsize is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, resource.RLIM_INFINITY))

    argv = [*(prefix or []), sys.executable, "-m", "rgstore_cli", *(a if isinstance(a, bytes) else str(a) for a in args)]
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, errors="backslashreplace", timeout=60,
                          preexec_fn=limit)


def _one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("error: ")
    return proc.stderr.rstrip("\n")


def test_a_store_path_that_is_a_link_to_nothing_is_named_with_its_target_by_init_and_replay(tmp_path: Path) -> None:
    # init said "... is a file, not a directory", and replay named its hidden staging directory
    # (".../store/.rgstore-pull-XXXX: No such file or directory").
    source = tmp_path / "source"
    assert _rgstore("--store", source, "init").returncode == 0
    exported = tmp_path / "log.rgl"
    assert _rgstore("--store", source, "log", "export", exported).returncode == 0
    link, target = tmp_path / "store", tmp_path / "elsewhere"
    link.symlink_to(target)
    expected = (f"error: cannot open a store at {link}: {link} is a symbolic link to {target}, which does not "
                "exist; create that directory or name another store directory")
    for command in (["init"], ["replay", str(exported)], ["status"]):
        assert _one_error_line(_rgstore("--store", link, *command)) == expected, command
    assert not target.exists() and sorted(os.listdir(tmp_path)) == ["log.rgl", "source", "store"]
    target.mkdir()
    assert _rgstore("--store", link, "replay", exported).returncode == 0
    assert _rgstore("--store", link, "verify").returncode == 0


def test_a_store_path_that_is_not_utf8_is_named_as_given_by_status_and_replay(tmp_path: Path) -> None:
    # status/verify/gc said "no rgstore store at .../bad\udcffname; create one with `rgstore init ...`" (a command
    # that fails), and replay named its staging directory inside the store path.
    source = tmp_path / "source"
    assert _rgstore("--store", source, "init").returncode == 0
    exported = tmp_path / "log.rgl"
    assert _rgstore("--store", source, "log", "export", exported).returncode == 0
    bad = os.fsencode(tmp_path) + b"/bad\xffname"
    expected = (f"error: the store path {tmp_path}/bad\\xffname is not valid UTF-8, which LMDB and gtars need; "
                "rename the directory or choose another")
    for command in (["status"], ["verify"], ["replay", str(exported)]):
        assert _one_error_line(_rgstore(b"--store", bad, *command)) == expected, command
    assert not os.path.lexists(bad)


def test_a_refpkg_export_into_a_directory_this_user_may_not_write_names_the_destination(tmp_path: Path) -> None:
    # A directory export said "Permission denied: DIR/.pkg.tmp-0123456789ab", a hidden temp the user never named.
    store = tmp_path / "store"
    tree = tmp_path / "tree.nwk"
    tree.write_text("((a:1,b:2):1,c:3);\n")
    assert _rgstore("--store", store, "refpkg", "create", "rp", "-l", "16S", "-t", tree).returncode == 0
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o555)
    prefix = modes_bind_prefix()
    try:
        for name in ("pkg", "pkg.tar.gz"):
            line = _one_error_line(_rgstore("--store", store, "refpkg", "export", "rp", out / name, prefix=prefix))
            assert line == (f"error: cannot write {out / name}: this user may not create files in {out} "
                            "(Permission denied)"), line
        assert os.listdir(out) == []
    finally:
        out.chmod(0o755)
    assert _rgstore("--store", store, "refpkg", "export", "rp", out / "pkg", prefix=prefix).returncode == 0
    assert (out / "pkg" / "CONTENTS.json").is_file()


def _store_with_big_blob(tmp_path: Path) -> Path:
    store = tmp_path / "store"
    readme = tmp_path / "README.txt"
    readme.write_text("x" * 8000 + "\n")
    assert _rgstore("--store", store, "refpkg", "create", "rp", "-l", "16S", "-R", readme).returncode == 0
    return store


def test_a_publish_past_the_file_size_limit_names_the_limit_not_free_space(tmp_path: Path) -> None:
    # It said "... bytes free); it was not written: free space and run the command again" on a disk with gigabytes free.
    store = _store_with_big_blob(tmp_path)
    line = _one_error_line(_rgstore("--store", store, "log", "publish", "--with-blobs", tmp_path / "pub", fsize=4096))
    assert line.startswith(f"error: no room for a published blob in {tmp_path / 'pub' / 'blobs'} (File too large; ")
    assert line.endswith("; this process's file size limit is 4,096 bytes, ulimit -f); it was not written: "
                         "raise the file size limit (ulimit -f) and run the command again"), line


def test_a_refused_publish_of_a_blob_leaves_no_empty_folder_and_a_retry_completes_it(tmp_path: Path) -> None:
    # The refused blob's blobs/xx/ stayed behind, empty.
    store = _store_with_big_blob(tmp_path)
    pub = tmp_path / "pub"
    _one_error_line(_rgstore("--store", store, "log", "publish", "--with-blobs", pub, fsize=4096))
    assert [str(d.relative_to(pub)) for d in pub.rglob("*") if d.is_dir() and not any(d.iterdir())] == []
    assert _rgstore("--store", store, "log", "publish", "--with-blobs", pub).returncode == 0
    assert [f.name for f in (pub / "blobs").rglob("*") if f.is_file()] == [p.name for p in (store / "blobs").rglob("*") if p.is_file()]


def test_standard_output_past_the_file_size_limit_names_the_limit_not_free_space(tmp_path: Path) -> None:
    # `genome export g - > file` under `ulimit -f` said "...; the output is incomplete: free space and run the command again".
    store = tmp_path / "store"
    fasta = tmp_path / "g.fa"
    fasta.write_text(">c1\n" + "ACGT" * 100 + "\n")
    assert _rgstore("--store", store, "genome", "init", "--fasta", fasta, "--name", "g").returncode == 0
    redirected = tmp_path / "out.fa"

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64, resource.RLIM_INFINITY))

    with open(redirected, "w") as out:
        proc = subprocess.run([sys.executable, "-m", "rgstore_cli", "--store", str(store), "genome", "export", "g", "-"],
                              cwd=REPO, stdout=out, stderr=subprocess.PIPE, text=True, timeout=60, preexec_fn=limit)
    line = _one_error_line(proc)
    assert line.startswith(f"error: no room for standard output ({redirected}: File too large; "), line
    assert line.endswith("; this process's file size limit is 64 bytes, ulimit -f); the output is incomplete: "
                         "raise the file size limit (ulimit -f) and run the command again"), line

"""Progress on a terminal: bars only where they garble nothing, and an error past a drawn bar on a clean line."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path
from typing import IO

from rgstore.store import Store
from tests.conftest import REPO
from tests.refpkg_data import write_inputs


def _terminal_run(*args: str, term: str = "xterm-256color", stdout: IO[bytes] | None = None) -> tuple[int, bytes]:
    """Run `rgstore ARGS` with stderr (and stdout, unless given) on one pseudo-terminal of type ``term``.

    Returns (exit code, what the terminal showed). ``term`` is set whatever the test runner's own
    TERM is: a CI console's ``dumb`` would hide every bar.
    """
    primary, replica = pty.openpty()
    fcntl.ioctl(replica, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a real terminal has a size
    proc = subprocess.Popen([sys.executable, "-m", "rgstore_cli", *args], cwd=REPO, stdin=subprocess.DEVNULL,
                            stdout=replica if stdout is None else stdout, stderr=replica,
                            env={**os.environ, "TERM": term})
    os.close(replica)
    seen = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        seen += chunk
    proc.wait(timeout=60)
    os.close(primary)
    return proc.returncode, seen


def test_an_import_error_mid_bar_is_printed_on_a_clean_line_not_glued_to_the_bar(tmp_path: Path) -> None:
    # `refpkg import` of a package whose file fails its MD5 raised past the "import files" bar's close:
    # the terminal showed "import files: ...| 236M/256M [00:01<00:00, 164MB/s]error: File README.txt ...".
    package = tmp_path / "p.refpkg"
    files = write_inputs(package)
    manifest = {"metadata": {}, "files": {key: path.name for key, path in files.items()},
                "md5": {key: "0" * 32 for key in files}}
    (package / "CONTENTS.json").write_text(json.dumps(manifest))
    code, seen = _terminal_run("--store", str(tmp_path / "s"), "refpkg", "import", str(package))
    assert code != 0
    assert b"import files" in seen  # the bar was drawn, so the claim below is about a bar
    before, error, _ = seen.rpartition(b"error: ")
    assert error and before.endswith((b"\r", b"\n")), seen[-300:]  # the error starts its own line
    assert b"import files" not in seen[seen.rindex(b"error: "):]  # and no bar is drawn after it


def _store_with_tiny(root: Path) -> Path:
    with Store.open(root, actor="tester@test") as store:
        store.genomes.init(REPO / "rgstore" / "data" / "tiny.fa", ["tiny"])
    return root


_BAR = b"%|"  # what every tqdm bar with a total draws: "export:   0%|          | 0/..."


def test_genome_export_to_stdout_on_a_terminal_draws_no_bar_among_the_residues(tmp_path: Path) -> None:
    # The bar went to stderr, the FASTA to stdout: on one screen the bar's redraws landed amid the residues.
    store = _store_with_tiny(tmp_path / "s")
    code, seen = _terminal_run("--store", str(store), "genome", "export", "tiny", "-")
    assert code == 0, seen
    assert b">chr1" in seen
    assert _BAR not in seen, seen[:300]


def test_genome_export_to_redirected_stdout_still_draws_its_bar_on_the_terminal(tmp_path: Path) -> None:
    store = _store_with_tiny(tmp_path / "s")
    with open(tmp_path / "out.fa", "wb") as out:
        code, seen = _terminal_run("--store", str(store), "genome", "export", "tiny", "-", stdout=out)
    assert code == 0, seen
    assert (tmp_path / "out.fa").read_bytes().startswith(b">chr1")
    assert b"export" in seen and _BAR in seen, seen


def test_a_dumb_terminal_gets_no_bars_at_all(tmp_path: Path) -> None:
    # tqdm ignores TERM; stacked bars move the cursor up (ESC[A), which a dumb terminal prints as text.
    store = _store_with_tiny(tmp_path / "s")
    for term in ("dumb", "unknown"):
        code, seen = _terminal_run("--store", str(store), "genome", "export", "tiny", str(tmp_path / "out.fa"),
                                   term=term)
        assert code == 0, seen
        assert (tmp_path / "out.fa").read_bytes().startswith(b">chr1")
        assert _BAR not in seen and b"\x1b[" not in seen, (term, seen)

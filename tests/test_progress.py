"""Progress on a terminal: an error that unwinds past a drawn bar still prints on a clean line of its own."""

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

from tests.conftest import REPO
from tests.refpkg_data import write_inputs


def _terminal_run(*args: str) -> tuple[int, bytes]:
    """Run `rgstore ARGS` with stdout and stderr on one pseudo-terminal: (exit code, what the terminal showed)."""
    primary, replica = pty.openpty()
    fcntl.ioctl(replica, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a real terminal has a size
    proc = subprocess.Popen([sys.executable, "-m", "rgstore_cli", *args], cwd=REPO, stdin=subprocess.DEVNULL,
                            stdout=replica, stderr=replica)
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

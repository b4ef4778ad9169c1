"""Claims about the console script's entry: Ctrl-C while the command line loads is one line, not a traceback."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_ctrl_c_at_any_moment_of_start_up_prints_no_traceback_of_rgstore_and_no_aborted() -> None:
    # Signals land from before the interpreter has a SIGINT handler (it dies by the signal, silently) through
    # the imports of click, lmdb and the engine (where a traceback used to come out) to the command's end.
    # The console script, as a user runs it (`-m rgstore_cli` adds runpy's own start-up window).
    script = Path(sys.executable).parent / "rgstore"
    if not script.exists():
        pytest.skip("no rgstore console script next to this interpreter (the package is not installed)")
    for step in range(30):
        proc = subprocess.Popen([str(script), "--version"], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(0.004 * step)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        # Python's own start-up (streams, site.py, the script's import of this package) can still show a
        # KeyboardInterrupt traceback: none of its frames may be rgstore's, where most signals used to land.
        ours = [f'File "{REPO / part}/'.encode() for part in ("cli", "rgstore", "api")]
        assert not any(frame in err for frame in ours), err.decode(errors="replace")
        # A signal taken as the console script's own first instruction starts is raised before that frame
        # counts for a traceback: Python prints the bare "KeyboardInterrupt" and exits 1, no rgstore code run.
        if b"Traceback" in err or (proc.returncode, err) == (1, b"KeyboardInterrupt\n"):
            continue
        assert proc.returncode in (0, 130, -signal.SIGINT), (proc.returncode, err)
        if proc.returncode == 130:
            assert err.decode().strip() == "error: interrupted"


_INTERRUPT_AT_CLICK = """
import os, signal, sys

class Interrupting:
    # A real SIGINT to this process the moment click is first imported: inside rgstore's own imports.
    def find_spec(self, name, path=None, target=None):
        if name == "click":
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, Interrupting())
sys.argv = ["rgstore", "--version"]
from rgstore_cli.entry import main
main()
"""


def test_ctrl_c_landing_in_the_command_lines_imports_is_one_line_and_exit_130() -> None:
    out = subprocess.run([sys.executable, "-c", _INTERRUPT_AT_CLICK], cwd=REPO, capture_output=True, text=True,
                         timeout=60)
    assert (out.returncode, out.stderr, out.stdout) == (130, "error: interrupted\n", "")


_INTERRUPT_IN_SET_NAME = """
import signal, sys

class Interrupting:
    # A real SIGINT taken while an import builds a class: Python 3.11 reports what a descriptor's
    # __set_name__ raises as "RuntimeError: Error calling __set_name__", the KeyboardInterrupt as its cause.
    def find_spec(self, name, path=None, target=None):
        if name == "click":
            sys.meta_path.remove(self)

            class Descriptor:
                def __set_name__(self, owner, attr):
                    signal.raise_signal(signal.SIGINT)

            class Built:
                field = Descriptor()
        return None

sys.meta_path.insert(0, Interrupting())
sys.argv = ["rgstore", "--version"]
from rgstore_cli.entry import main
main()
"""


def test_ctrl_c_landing_while_an_import_builds_a_class_is_one_line_and_exit_130() -> None:
    # The stdlib builds such classes all through click's imports (platform's uname_result, every enum on
    # 3.11): a Ctrl-C there printed a RuntimeError traceback through rgstore's frames.
    out = subprocess.run([sys.executable, "-c", _INTERRUPT_IN_SET_NAME], cwd=REPO, capture_output=True, text=True,
                         timeout=60)
    assert (out.returncode, out.stderr, out.stdout) == (130, "error: interrupted\n", "")

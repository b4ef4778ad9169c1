"""The environment timed child processes run in: the one a user's installed ``rgstore`` sees.

pip compiles an installed package's modules to bytecode, so a user's ``rgstore`` never compiles
its sources. A shell that sets ``PYTHONDONTWRITEBYTECODE`` (some CI and sandbox images do) makes
every timed process of an editable checkout recompile ~200 modules, adding 100-300 ms to each
command, while the peers (taxit, refget) installed in site-packages keep their bytecode: the
comparison would then be unfair to rgstore by more than the whole start-up it measures.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

__all__ = ["installed_env", "warm_up"]


def installed_env(work: Path) -> dict[str, str]:
    """``os.environ`` with bytecode caching on, the cache under ``work/pycache`` (never in the source tree)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    return env


def warm_up(cmd: Sequence[str], env: dict[str, str], cwd: Path | None = None) -> None:
    """Run ``cmd`` once untimed, so its modules are compiled before any timed run (as after ``pip install``)."""
    subprocess.run(list(cmd), env=env, cwd=cwd, capture_output=True, check=False)

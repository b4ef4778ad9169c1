"""Environments that run the CLI under a locale whose file names are not UTF-8 (skipped where none can be made)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def _fs_encoding(env: dict[str, str]) -> str:
    try:
        probe = subprocess.run([sys.executable, "-c", "import sys; print(sys.getfilesystemencoding())"],
                               env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.skip("could not tell this locale's file-name encoding in time (a loaded machine)")
    return probe.stdout.strip()


def latin1_env(tmp_path: Path) -> dict[str, str]:
    """Variables for an en_US.ISO-8859-1 locale, built with localedef under ``tmp_path`` (LOCPATH)."""
    if shutil.which("localedef") is None:
        pytest.skip("localedef is not installed")
    where = tmp_path / "locales"
    where.mkdir()
    # Exits 1 on mere warnings: whether the locale works is what the probe below checks.
    try:
        subprocess.run(["localedef", "-i", "en_US", "-f", "ISO-8859-1", str(where / "en_US.ISO-8859-1")],
                       capture_output=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.skip("localedef did not build an ISO-8859-1 locale in time")
    env = {"LOCPATH": str(where), "LC_ALL": "en_US.ISO-8859-1", "PYTHONUTF8": "0"}
    if _fs_encoding(env) != "iso8859-1":
        pytest.skip("no ISO-8859-1 locale can be built here (Debian: the locales package)")
    return env


def ascii_env() -> dict[str, str]:
    """Variables for the C locale without Python's UTF-8 mode: file names are ASCII, other bytes surrogates."""
    env = {"LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    if _fs_encoding(env) != "ascii":
        pytest.skip("this platform's C locale does not use ASCII file names")
    return env

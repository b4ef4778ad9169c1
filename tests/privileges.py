"""Running a command under which file modes bind this user: as root, with CAP_DAC_OVERRIDE dropped."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

_NO_OVERRIDE = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]


def modes_bind_prefix() -> list[str]:
    """The command prefix under which this user's reads and writes obey file modes (root's do not by default).

    Skips the test when running as root and ``setpriv`` is missing or cannot drop the capability.
    """
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root, where chmod does not stop writes, and setpriv(1) is not here to drop "
                    "CAP_DAC_OVERRIDE")
    probe = subprocess.run([*_NO_OVERRIDE, "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"running as root, where chmod does not stop writes, and setpriv cannot drop CAP_DAC_OVERRIDE "
                    f"here: {probe.stderr.strip()}")
    return _NO_OVERRIDE

"""Signalling a real CLI subprocess once it is busy: what the SIGTERM and Ctrl-C tests share."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

__all__ = ["signal_when"]


def signal_when(proc: subprocess.Popen[bytes], ready: Callable[[], bool], signum: int, *,
                timeout: float = 60.0, poll: float = 0.005) -> bytes:
    """Send ``signum`` to ``proc`` once ``ready()`` holds and return its stderr after it exits.

    Fails the test if ``proc`` exits first or ``ready()`` does not hold within ``timeout``; the process is
    killed rather than left behind whatever happens.
    """
    try:
        deadline, busy = time.monotonic() + timeout, False
        while proc.poll() is None and time.monotonic() < deadline:
            if ready():
                busy = True
                break
            time.sleep(poll)
        assert busy and proc.poll() is None, proc.communicate()
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=timeout)
        return err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()

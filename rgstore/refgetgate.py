"""One thread of this process at a time writes a RefgetStore: the in-process gate before its writer lock.

gtars holds the GIL for the whole of a commit, including while it waits for the RefgetStore's
writer lock (``.rgstore.lock``). If another thread of the same process held that lock (rgstore's
own ``refget_write_lock``, or a gtars batch lock), it could never run again to release it: two
threads sharing a ``Store`` (``genomes.init`` in one, an alias change refreshing the alias files
in another) hung the process for good. Every in-process holder and every gtars commit therefore
takes this gate first; waiting for it releases the GIL, so the thread inside finishes and lets go.
Other processes are unaffected: gtars waiting for their lock stalls only this process's threads.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

__all__ = ["refget_gate"]

_GATES: dict[str, threading.RLock] = {}
_GATES_LOCK = threading.Lock()


def refget_gate(root: Path) -> threading.RLock:
    """The re-entrant lock this process's threads hold while they hold, or wait in gtars for, ``root``'s writer lock."""
    key = os.path.realpath(root)  # a symlinked or relative path names the same RefgetStore
    with _GATES_LOCK:
        gate = _GATES.get(key)
        if gate is None:
            gate = _GATES[key] = threading.RLock()
        return gate


def _forget_in_child() -> None:
    # A fork copies a gate another thread held, and no thread of the child will ever release it:
    # the child starts with none (its parent's holders do not exist in it).
    global _GATES_LOCK
    _GATES.clear()
    _GATES_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_forget_in_child)

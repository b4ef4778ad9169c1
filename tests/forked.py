"""Run a function in a forked child (optionally as another Unix user) and get back what it returned or raised."""

from __future__ import annotations

import os
from collections.abc import Callable


def in_forked_child(work: Callable[[], str], *, setup: Callable[[], None] | None = None) -> str:
    """``work()`` in a forked child after ``setup()``: its result prefixed "ok: ", or its error's type and message."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child reports through the pipe)
        code = 0
        try:
            os.close(read)
            if setup is not None:
                setup()
            text = "ok: " + work()
        except BaseException as exc:
            text, code = f"{type(exc).__name__}: {exc}", 1
        os.write(write, text.encode()[:60_000])
        os._exit(code)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65_536):
        chunks.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    return b"".join(chunks).decode()

"""File names as events record them: the bytes on disk read as UTF-8, the same text under every locale."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["path_text"]


def path_text(path: Path | str) -> str:
    r"""``path``'s bytes decoded as UTF-8, a byte that is not UTF-8 shown as ``\xNN``: valid text under any locale.

    ``str(path)`` is the name as this process's locale decoded it: a lone surrogate for a byte that is
    not UTF-8 (which no event may hold: recording ``bad\xff.fa`` as a genome's source would refuse the
    whole import), and under a Latin-1 locale another text for the same file than under UTF-8.
    """
    return os.fsencode(path).decode("utf-8", "backslashreplace")

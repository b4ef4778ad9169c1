"""Group commit of lazy fetches: a fetch holding the fetch lock imports the verified FASTAs others wait with.

Each fetched sequence goes into the RefgetStore as a carrier collection under one gtars batch lock,
whose release costs ~0.1 s whatever the size, and the fetch lock (``refgetstore.fetch_lock``, an
flock) lets one such import run at a time. A fetch that has downloaded and verified its sequence
renames its FASTA to ``ready.<digest>.<length>.fa`` in its own scratch directory
(``STORE/.remote-*``) before waiting for the lock; the holder gathers the ready files of the others
(threads or processes) into its own import, and each of them, once it holds the lock, finds its
sequence cached and imports nothing. Nothing is trusted from a ready file but its bytes: the import
checks the digests of what it imported, and an import that fails is retried with the holder's own
sequence alone (``remotefetch._import_fetched``); the others then import their own.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .store import Store

__all__ = ["GROUP_RESIDUES", "gathered", "ready_name"]

_READY = "ready"
"""A fetched, verified FASTA waiting for the fetch lock is ``STORE/.remote-*/ready.<digest>.<length>.fa``."""
GROUP_RESIDUES = 16 << 20
"""Residues of other fetches' ready FASTAs a lock holder imports along with its own, at most."""
_READY_NAME = re.compile(r"ready\.(?P<digest>[A-Za-z0-9_-]{32})\.(?P<length>[0-9]{1,15})\.fa")


def ready_name(bare: str, length: int) -> str:
    """The name a fetch's verified FASTA of sequence ``bare`` takes while it waits for the fetch lock."""
    return f"{_READY}.{bare}.{length}.fa"


def _ready_files(store: Store, own: Path) -> list[Path]:
    """The ready FASTAs in the fetch scratch directories of the store but ``own``; none of a directory removed meanwhile.

    Listed by hand, not globbed: a fetch ending (or starting) removes its directory whenever it
    likes, and a glob walking into it then raises FileNotFoundError.
    """
    found: list[Path] = []
    try:
        with os.scandir(store.path) as entries:
            scratches = [entry.path for entry in entries if entry.name.startswith(".remote-")]
    except OSError:
        return []
    for scratch in sorted(scratches):
        if scratch == os.fspath(own):
            continue
        try:
            names = os.listdir(scratch)
        except OSError:  # gone, not a directory, another user's
            continue
        found.extend(Path(scratch, name) for name in sorted(names) if name.startswith(f"{_READY}."))
    return found


def gathered(store: Store, fasta: Path, lengths: dict[str, int],
              cached: Callable[[str, int], bool] | None) -> tuple[Path, dict[str, int]] | None:
    """``fasta`` with the ready FASTAs of other fetches appended (in its directory), and all their sequences; None if none.

    Called under the fetch lock: a ready file is complete (renamed into place once verified) and its
    owner waits for the lock, so it stays. Sequences already ``cached`` or ``lengths``' own, files
    that cannot be read (gone, another user's) and those past ``GROUP_RESIDUES`` are left out; None
    when the combined file cannot be written (a full disk), which is then removed. The import checks
    the digests of what it imported against the names (``_expecting``).
    """
    picked: dict[str, tuple[Path, int]] = {}
    total = 0
    for path in _ready_files(store, fasta.parent):
        match = _READY_NAME.fullmatch(path.name)
        if match is None:
            continue
        bare, length = match["digest"], int(match["length"])
        if bare in lengths or bare in picked or total + length > GROUP_RESIDUES \
                or (cached is not None and cached(bare, length)):
            continue
        picked[bare] = (path, length)
        total += length
    if not picked:
        return None
    group = fasta.parent / "group.fa"
    try:
        with open(group, "wb") as out:
            with open(fasta, "rb") as own:
                shutil.copyfileobj(own, out)
            for bare, (path, _length) in list(picked.items()):
                start = out.tell()
                try:
                    with open(path, "rb") as theirs:
                        shutil.copyfileobj(theirs, out)
                except OSError:  # its fetch ended meanwhile (killed), or another user's scratch: it fetches its own
                    out.seek(start)
                    out.truncate()
                    del picked[bare]
    except OSError:  # no room for the copy of its own (a full disk): the caller imports its own alone
        picked = {}
    if not picked:
        group.unlink(missing_ok=True)  # on a full disk, the room its own import needs
        return None
    return group, {**lengths, **{bare: length for bare, (_path, length) in picked.items()}}

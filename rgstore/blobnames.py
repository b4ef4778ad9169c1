"""Blobs under a file's own name: ``STORE/names/<sha256>/<filename>``, a symlink to ``blobs/<ab>/<sha256>``.

``refpkg rp`` prints such a path so tools that choose a format from the extension (seqmagick,
pplacer, guppy) see ``seqs.aln.fasta``, as with ``taxit rp``; the bytes are the verified blob's,
never copied. The entries are derived: made on demand, atomically (a symlink under a temp name in
``names/``, renamed into place), so concurrent callers all end with the same link; ``gc`` removes an
entry with its blob (or once its blob is gone and the entry is older than the grace period);
``backup``, mirrors and ``verify`` ignore ``names/`` (the next ``rp`` makes what is missing).

A symlink rather than a hard link: a hard link is refused for another user's blob in a group-shared
store (``fs.protected_hardlinks``) and across filesystems (``blobs/`` may be a symlink to another
disk), and it would keep a blob's bytes alive after gc removed it. A relative target keeps the link
right when the store is moved or copied whole. Editing the file in place still edits the blob, which
``rp`` and ``verify`` then report as corrupt (as before); an editor that replaces the file instead
(``sed -i``) leaves the blob intact and the next ``rp`` puts the link back.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Container
from pathlib import Path

from .refpkg_names import is_safe_filename

__all__ = ["NAMES_DIR", "named_path", "sweep_names"]

NAMES_DIR = "names"
_TEMP_PREFIX = ".tmp-"
_HEX = frozenset("0123456789abcdef")
_ATTEMPTS = 3


def _target(sha256: str) -> str:
    """The link's target, relative to ``names/<sha256>/``."""
    return f"../../blobs/{sha256[:2]}/{sha256}"


def named_path(root: Path, sha256: str, filename: str, blob_path: Path) -> Path:
    """``root/names/<sha256>/<filename>`` linked to the blob, made if missing; ``blob_path`` if it cannot be.

    The caller has verified the blob. A store this process may not write (a read-only mount, another
    user's store) gets ``blob_path``, silently: the path is what the caller prints.
    """
    if not is_safe_filename(filename) or len(sha256) != 64 or not _HEX.issuperset(sha256):
        return blob_path
    names = root / NAMES_DIR
    link = names / sha256 / filename
    import secrets  # lazily: it loads hmac and OpenSSL (~4 ms), which reading a refpkg never needs

    target = _target(sha256)
    for _ in range(_ATTEMPTS):  # gc may remove names/<sha256> between our mkdir and rename (a blob it removed)
        if _points_at(link, target):
            return link
        tmp = names / f"{_TEMP_PREFIX}{secrets.token_hex(8)}"
        try:
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(target, tmp)
            os.replace(tmp, link)  # atomic: a concurrent reader sees the old entry or ours, both right
        except FileNotFoundError:
            _unlink(tmp)
            continue
        except OSError:  # read-only filesystem, no permission, no space, a name the filesystem refuses
            _unlink(tmp)
            return blob_path
    return link if _points_at(link, target) else blob_path


def _points_at(link: Path, target: str) -> bool:
    try:
        return os.readlink(link) == target
    except OSError:
        return False


def _unlink(path: Path) -> bool:
    """Remove ``path`` if this process may; whether it is gone."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        return False
    return True


def sweep_names(
    root: Path, *, removed: Container[str], blob_exists: Callable[[str], bool], grace: float, dry_run: bool
) -> int:
    """Remove name entries whose blob gc ``removed``, or whose blob is gone and that are ``grace`` seconds old.

    Also removes temp links of killed ``rp`` calls older than ``grace``. Returns how many entries went
    (or, with ``dry_run``, would go). Anything in ``names/`` not named like an entry is left alone.
    """
    names = root / NAMES_DIR
    if not names.is_dir():
        return 0
    now = time.time()
    count = 0
    for sub in sorted(names.iterdir()):
        if sub.name.startswith(_TEMP_PREFIX):
            if _older(sub, now, grace) and (dry_run or _unlink(sub)):
                count += 1
            continue
        sha = sub.name
        if len(sha) != 64 or not _HEX.issuperset(sha) or sub.is_symlink() or not sub.is_dir():
            continue
        gone = sha in removed
        if not gone and blob_exists(sha):
            continue
        for entry in sorted(sub.iterdir()):
            if (gone or _older(entry, now, grace)) and not entry.is_dir() and (dry_run or _unlink(entry)):
                count += 1
        if not dry_run:
            try:
                sub.rmdir()
            except OSError:
                pass  # not empty (a young entry, something a user put there): a later gc
    return count


def _older(path: Path, now: float, grace: float) -> bool:
    try:
        return now - path.lstat().st_mtime >= grace
    except OSError:
        return False

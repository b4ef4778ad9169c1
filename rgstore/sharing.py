"""Stores shared by a group of users: a group-writable store directory keeps everything under it group-writable.

Labs keep one store in a group directory (``install -d -m 2775 -g lab /data/refs``) that several
users write. Files are made by many hands (LMDB, gtars' RefgetStore files, blobs, alias TSVs, cache
trees, lock files), each with 0666/0777 minus the writer's umask, so one user with umask 077 or 022
would lock the others out. Like git's ``core.sharedRepository=group``, a store whose directory is
group-writable is taken as shared: every process that opens it drops the group bits from its umask
(others' bits stay as the user set them), so whatever it creates there is group read-write and the
setgid bit the directory carries gives it the store's group. A store directory that is not
group-writable changes nothing.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from pathlib import Path

from .files import current_umask

__all__ = ["group_shared", "adopt_group_sharing", "access_hint", "outside_copies_hint"]

SHARED_DOC = "docs/deployment.md, 'A store shared by a group'"


def group_shared(root: Path) -> bool:
    """Whether the store directory ``root`` is group-writable (a store shared by its group)."""
    try:
        return bool(os.stat(root).st_mode & stat.S_IWGRP)
    except OSError:
        return False


def adopt_group_sharing(root: Path) -> bool:
    """If ``root`` is a shared store, clear the group bits of this process's umask; returns whether it is.

    The umask is process-wide (gtars and LMDB create files too, so no per-call mode would reach
    them); the API server and the CLI open one store per process.
    """
    if not group_shared(root):
        return False
    mask = current_umask()  # read, not set-and-restore: a umask of 0 for an instant is world-writable files
    if mask & 0o070:
        os.umask(mask & ~0o070)
    return True


def _owner(st: os.stat_result) -> str:
    try:
        user = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        user = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return f"{user}:{group}"


def access_hint(checks: list[tuple[Path, bool]]) -> str:
    """The first ``(path, needs write)`` this user cannot use, named with its mode and owner; '' if none."""
    for path, write in checks:
        try:
            st = os.stat(path)
        except OSError:
            continue
        wanted = os.R_OK | (os.W_OK if write else 0) | (os.X_OK if stat.S_ISDIR(st.st_mode) else 0)
        if not os.access(path, wanted):
            return f"{path} is {stat.filemode(st.st_mode)} {_owner(st)}"
    return ""


def outside_copies_hint(refget: Path) -> str:
    """The first RefgetStore directory a view's outside copy (alias TSVs, FHR files) is written in that this
    user may not write, with mode and owner ('' if none; a missing one is made in its parent, checked first)."""
    return access_hint([(refget / name, True) for name in (
        "", "aliases", "aliases/collections", "aliases/sequences", "fhr")])


def store_access_refusal(root: Path, *, readonly: bool) -> str:
    """Why this user cannot reach the store at ``root`` (the first directory or LMDB file it may not use); '' if unseen."""
    log = root / "log"
    who = access_hint([(root, not readonly), (log, not readonly), (log / "lock.mdb", True),
                       (log / "data.mdb", not readonly), (root / "refget", not readonly)])
    if not who:
        return ""
    return (f"the store at {root} cannot be opened: {who}; every user of a store needs read-write access to "
            f"log/lock.mdb and read access to the rest, writers write access throughout (ask the store's owner; "
            f"a store shared by a group: {SHARED_DOC})")


def retry_condition(exc: OSError) -> str:
    """When a refused write of files outside LMDB can succeed on retry: the disk, or this user's access (named)."""
    if not isinstance(exc, PermissionError) or exc.filename is None:
        return "once the disk allows"
    path = Path(os.fsdecode(exc.filename))
    who = access_hint([(path, True), (path.parent, True)])
    return f"once this user may write there ({f'{who}; ' if who else ''}a store shared by a group: {SHARED_DOC})"

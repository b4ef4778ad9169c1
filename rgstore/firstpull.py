"""A mirror's first pull: the new store is built out of sight and appears only once it holds the pulled log.

A first ``mirror pull SOURCE --store NEW`` (or ``serve --follow``) whose SOURCE answers its probe
and then fails (its ``/events`` erroring, a segment missing or tampered) used to leave an empty
store at NEW that later commands took for a real one. ``pull_new_store`` instead builds the store
in a hidden staging directory inside NEW (``NEW/.rgstore-pull-XXXXXXXX``) and moves its entries up
into NEW, ``log/`` last, once the log pull ends or has applied events: a store is there only from the
moment ``NEW/log/`` is. A pull that applied nothing deletes only its own staging directory (no other
process knows its random name, so none can have opened it) and then NEW itself, if this pull made
it and it is empty (``rmdir``: never anything another process put there).

Why stage inside NEW, not beside it: an administrator may prepare NEW (owned by the service user,
group-shared and setgid, ``install -d -m 2775 -g lab``) in a parent nobody else may write; staging
inside needs no write access to the parent, and what is staged takes NEW's group. Why stage at all
rather than delete NEW after a failure: a second process may open NEW meanwhile (another pull, any
command), and a store deleted under an open LMDB environment loses that process's writes silently.

A pull holds an exclusive ``flock`` on its staging directory while it lives (the kernel drops it
when the process dies, however it dies): a later first pull removes any staging directory whose
lock it can take, the leftovers of a pull killed by SIGKILL, and never a live pull's.

``build_new_store`` is that mechanism on its own: ``replay FILE --store NEW`` uses it too, so a
replay whose file turns out damaged part-way, before any event is applied, leaves no store either.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from . import retries
from .files import dead_work_dirs, hold_dir
from .interrupts import deferred
from .mirror import PullResult, probe_source, pull
from .pathtext import user_path
from .progress import ProgressFactory, note, null_progress
from .sharing import adopt_group_sharing
from .store import Store, check_store_path

__all__ = ["STAGING_PREFIX", "build_new_store", "pull_new_store", "remove_abandoned_staging"]

T = TypeVar("T")

STAGING_PREFIX = ".rgstore-pull-"
"""The name a first pull's staging directory inside the new store starts with."""

ABANDONED_AFTER_S = 60.0
"""Age after which an unlocked staging directory is a dead pull's leftovers (a live one locks it at once)."""


def pull_new_store(
    path: Path | str, source: str | os.PathLike[str], *, actor: str | None = None, with_blobs: bool = False,
    with_sequences: bool = False, progress: ProgressFactory = null_progress, batch_size: int = 20_000,
) -> PullResult:
    """Pull ``source`` into the store at ``path``; a first pull that fails before applying anything leaves no store.

    A ``path`` that is already a store, or a directory holding anything, is pulled into as ``pull``
    does. Otherwise (no such directory, or an empty one) the log is pulled into a staging directory
    and moved into place; content (``with_blobs``, ``with_sequences``) is then fetched into the store
    in place, whose events stay whatever that fetch does. A log pull that fails or is interrupted
    (Ctrl-C, SIGTERM) after applying events moves them into place too: the next pull resumes from
    them, as ever. If another process makes a store at ``path`` meanwhile, this pull drops its own
    copy and pulls into that store. A bad SOURCE fails before anything is created (``probe_source``).
    ``batch_size``: records per write transaction, as ``pull`` takes it.
    """
    root = user_path(path).absolute()
    with retries.scope(lambda text: note(progress, f"note: {text}")):  # the probe shares the first pull's budget
        source = probe_source(source)
        staged = build_new_store(root, lambda store: pull(store, source, progress=progress, batch_size=batch_size),
                                 actor=actor)
    if staged is None or not staged[1]:  # a store there already, or another process made one meanwhile
        return _pull_in_place(root, source, actor, with_blobs, with_sequences, progress, batch_size)
    first = staged[0]
    if not (with_blobs or with_sequences):
        return first
    result = _pull_in_place(root, source, actor, with_blobs, with_sequences, progress, batch_size)
    result.applied += first.applied
    return result


def build_new_store(root: Path, work: Callable[[Store], T], *, actor: str | None = None) -> tuple[T, bool] | None:
    """Run ``work`` on a new store staged inside ``root`` and move it into place (see the module); None if it did not run.

    None: ``root`` is a store or a directory holding anything, or a dead first write's staged events
    were adopted as the store there; the caller works on the store at ``root`` in place. Otherwise
    ``(result, placed)``: ``placed`` is False when another process made a store at ``root``
    meanwhile (it wins; this copy was dropped). A ``work`` that raises (Ctrl-C and SIGTERM too)
    after its store holds events moves them into place (a valid store, resumed by the next run)
    and re-raises; one that raises before leaves nothing: not its staging, nor ``root`` if it made it.
    """
    check_store_path(root)  # said of ROOT: Store.open would name the staging directory inside it
    if _occupied(root):
        return None
    made = _make_dirs(root)
    adopt_group_sharing(root)  # the staged files are created as the store's own would be (a group's store)
    if _sweep_staging(root, adopt=True):  # a first write killed outright: resumed from what it had applied
        return None
    staging: Path | None = None
    held = -1
    placed = has_events = False
    try:
        # A SIGTERM handled the moment the staging exists waits until it is named and held: the cleanup below runs.
        with deferred():
            staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=root))
            held = hold_dir(staging)
        try:
            with Store.open(staging, actor=actor) as store:
                try:
                    result = work(store)
                finally:
                    has_events = store.head()[0] > 0
        except BaseException:
            if has_events:  # a store begun: kept where the next run resumes it (a racer's store wins)
                with deferred():
                    placed = _move_into_place(staging, root)
            raise
        with deferred():  # a Ctrl-C mid-move would leave blobs/ and refget/ in NEW without log/
            placed = _move_into_place(staging, root)
    finally:
        if not placed and staging is not None:  # only this run's own directories: no other process knows its name
            shutil.rmtree(staging, ignore_errors=True)
        if held >= 0:
            os.close(held)
        if not placed:
            for directory in made:  # deepest first; rmdir refuses one another process has put anything in
                try:
                    directory.rmdir()
                except OSError:
                    break
    return result, placed


def remove_abandoned_staging(root: Path | str) -> None:
    """Remove the staging directories in ``root`` of first pulls that died (their flock is free; see the module)."""
    _sweep_staging(Path(root), adopt=False)


def _sweep_staging(root: Path, *, adopt: bool, min_age_s: float = ABANDONED_AFTER_S) -> bool:
    """Deal with dead first pulls' staging directories in ``root``; True if one was adopted as the store.

    With ``adopt``, one holding pulled events is moved into place (a first pull killed outright,
    by SIGKILL or the OOM killer, is resumed, not pulled again from nothing). Others are removed,
    except one younger than ``min_age_s``: a live pull takes its lock just after creating it.
    """
    adopted = False
    for staged, young in dead_work_dirs(root, lambda name: name.startswith(STAGING_PREFIX), min_age_s=min_age_s):
        if adopt and not adopted and _holds_events(staged):
            with deferred():
                adopted = _move_into_place(staged, root)
            if adopted:
                continue
        if not young:
            shutil.rmtree(staged, ignore_errors=True)
    return adopted


def _holds_events(staged: Path) -> bool:
    """Whether a dead pull's staged store has any pulled event (an unreadable one has none worth keeping)."""
    if not (staged / "log" / "data.mdb").is_file():
        return False
    try:
        with Store.open(staged, readonly=True) as store:
            return store.head()[0] > 0
    except Exception:  # noqa: BLE001  # damaged (lmdb.Error, a half-made store): nothing worth resuming
        return False


def _pull_in_place(root: Path, source: str, actor: str | None, with_blobs: bool, with_sequences: bool,
                   progress: ProgressFactory, batch_size: int) -> PullResult:
    with Store.open(root, actor=actor, progress=progress) as store:
        return pull(store, source, with_blobs=with_blobs, with_sequences=with_sequences, progress=progress,
                    batch_size=batch_size)


def _occupied(root: Path) -> bool:
    """Whether ``root`` is a store, a directory holding anything but first pulls' staging, or no directory at all."""
    try:
        with os.scandir(root) as entries:
            return any(not entry.name.startswith(STAGING_PREFIX) for entry in entries)
    except FileNotFoundError:
        return False
    except OSError:
        return True  # a file, a directory this user may not read: Store.open says what is wrong


def _make_dirs(root: Path) -> list[Path]:
    """Create ``root`` and any missing parents; the ones this call made, deepest first."""
    missing = []
    at = root
    while not os.path.lexists(at) and at != at.parent:
        missing.append(at)
        at = at.parent
    made = []
    for directory in reversed(missing):
        try:
            directory.mkdir()
        except FileExistsError:
            continue  # another process made it: not this pull's to remove
        made.append(directory)
    return made[::-1]


def _move_into_place(staging: Path, root: Path) -> bool:
    """Move the staged store's entries up into ``root``, ``log/`` last; False if ``root`` has a store's entries already.

    The store is there from the rename of ``log/`` (what ``Store.open`` and the CLI look for).
    Each entry moves only where ``root`` has nothing by its name, so another process's store
    made there meanwhile is never overwritten (it wins; this pull's copy is then dropped).
    """
    from .environment import fsync_dir

    names = sorted(os.listdir(staging), key=lambda name: (name == "log", name))
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # two first pulls finishing together move one at a time
        if any(os.path.lexists(root / name) for name in names):
            return False
        try:
            for name in names:
                os.rename(staging / name, root / name)
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                return False  # a process that is no first pull made a store there meanwhile: it wins
            raise
    finally:
        os.close(fd)  # and with it the lock
    fsync_dir(root)
    staging.rmdir()
    return True

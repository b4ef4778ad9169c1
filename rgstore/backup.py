"""A consistent copy of a live store: one LMDB snapshot, then the content it references, then verify.

Copying a store's directory while a command writes (``cp -a``, rsync) can tear ``log/data.mdb``:
LMDB reuses freed pages, so a file read over seconds mixes transactions. ``backup`` instead takes
the log with LMDB's own copy (``mdb_env_copy2``, compacting) inside one read transaction, so the
copy is exactly one committed state. The snapshot and the RefgetStore's index files are taken
under its writer lock (a genome is in the RefgetStore before its event commits, and gc removes
collections only under that lock, so they agree); the sequence data files, then the blobs and
cache files the snapshot references, follow outside it (a file gc removed meanwhile is a retry).
Files never rewritten in place (blobs, sequence files, cache files) are hard-linked when DEST is
on the same filesystem, otherwise copied. The copy's alias TSVs and FHR files are then rewritten
from its own views, and the whole copy is verified before it appears at DEST (built beside it
under a temporary name and renamed into place, so DEST is never half a backup).

A backup holds an exclusive ``flock`` on that work directory while it lives (the kernel drops it
however the process dies): the next backup into the same parent removes this user's work
directories whose lock it can take, the leftovers of a backup killed by SIGKILL, the OOM killer or
a reboot (a full copy each, hidden, where a nightly cron job would pile them up), never a live one's.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import stat
from pathlib import Path

import lmdb
import msgspec

from .cachecopy import cache_files
from .diskspace import WRITE_ERRNOS, file_size_limit, refused_write
from .errors import ConflictError, IntegrityError, InvalidInputError, NotFoundError, ReadOnlyError
from .files import dead_work_dirs, hold_dir
from .pathtext import given_path
from .progress import ProgressFactory, null_progress
from .refgetlock import refget_write_lock
from .refgetstore import strip_sq
from .sharing import group_shared
from .store import Store
from .verify import referenced_blobs

__all__ = ["BackupResult", "backup", "remove_abandoned_work"]

ABANDONED_AFTER_S = 60.0
"""Age after which an unlocked work directory is a dead backup's leftovers (a live one locks it at once)."""

_WORK_NAME = re.compile(r"\..+\.backup-\d+-[0-9a-f]{12}")
"""The names ``backup`` gives its work directories (``.DEST.backup-PID-RANDOM``)."""


class BackupResult(msgspec.Struct, kw_only=True):
    """What ``backup`` wrote at ``path``: the log up to ``head_seq`` and the content it references."""

    path: str
    log_id: str
    head_seq: int
    blobs: int = 0
    refget_files: int = 0
    cache_files: int = 0
    linked: int = 0
    """Content files hard-linked rather than copied (DEST on the store's filesystem)."""
    verified: bool = False


def _place(src: Path, dest: Path, *, link: bool, result: BackupResult) -> None:
    """Hard-link (when allowed) or copy one content file; FileNotFoundError if it is gone."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if link:
        try:
            os.link(src, dest)
            result.linked += 1
            return
        except FileNotFoundError:
            raise
        except OSError:
            pass  # another filesystem, or hard links refused (fs.protected_hardlinks): copy instead
    shutil.copy2(src, dest)


def _kind(path: Path) -> str:
    """What ``path`` (not a directory) is, as an error message names it: "a regular file", "a character device"..."""
    mode = path.stat().st_mode
    for test, kind in ((stat.S_ISREG, "a regular file"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "an unusual kind of file"


def _check_destination(store: Store, dest: Path) -> None:
    if dest.resolve().is_relative_to(store.path.resolve()):
        raise InvalidInputError(f"{dest} is inside the store {store.path}; back up to a directory outside it")
    if store.path.resolve().is_relative_to(dest.resolve()):
        raise InvalidInputError(f"{dest} contains the store {store.path}; name a new directory for the backup")
    if dest.is_symlink():  # refused even to an empty directory: the finished copy is renamed over DEST
        target = os.readlink(dest)
        what = f"a symlink to {target} that does not exist" if not dest.exists() else f"a symlink to {target}"
        raise ConflictError(f"{dest} is {what}; a backup goes into a new directory, not through a link "
                            "(name a path that does not exist yet)")
    if dest.exists() and not dest.is_dir():
        raise ConflictError(f"{dest} is not a directory ({_kind(dest)}); a backup goes into a new directory "
                            "(name a path that does not exist yet)")
    if dest.exists() and any(dest.iterdir()):
        raise ConflictError(f"{dest} already exists and is not an empty directory; a backup goes into a new one "
                            "(to restore, open the backup itself with --store, or copy it over a removed store)")
    if not dest.parent.is_dir():
        raise NotFoundError(f"{dest.parent} does not exist; create it first")


def _share_like(store_dir: Path, work: Path) -> None:
    """Give a group-shared store's copy the store directory's group and mode (setgid), before anything goes in.

    Restored by moving it into place, the copy must let the group go on writing: with the setgid bit
    everything made under it takes the store's group (see rgstore.sharing).
    """
    if not group_shared(store_dir):
        return
    st = os.stat(store_dir)
    try:
        os.chown(work, -1, st.st_gid)
    except OSError:
        pass  # not a member of the store's group: the copy keeps this user's group
    os.chmod(work, stat.S_IMODE(st.st_mode) | stat.S_IRWXU)


def _copy_refget_index(store: Store, dest: Path, *, result: BackupResult) -> list[Path]:
    """Copy the RefgetStore's index, alias and FHR files (the caller holds its writer lock).

    Returns the sequence data files, relative to the RefgetStore, for ``_copy_sequences`` to place
    after the lock is released: they are never rewritten in place, so only their removal matters.
    """
    src_root = store.refget_path
    sequences: list[Path] = []
    for src in sorted(src_root.rglob("*")):
        if src.name.startswith(".") or not src.is_file() or src.is_symlink():
            continue  # the lock itself, temp files of a killed writer
        rel = src.relative_to(src_root)
        if rel.parts[0] == "sequences" and src.suffix == ".seq":
            sequences.append(rel)
            continue
        _place(src, dest / rel, link=False, result=result)
        result.refget_files += 1
    return sequences


def _copy_sequences(store: Store, dest: Path, sequences: list[Path], *, link: bool, result: BackupResult,
                    progress: ProgressFactory) -> list[str]:
    """Link or copy the sequence data files listed under the lock; returns those gone meanwhile (gc)."""
    gone: list[str] = []
    bar = progress("backup sequences", total=len(sequences), unit="file")
    try:
        for rel in sequences:
            bar.update(1)
            try:
                _place(store.refget_path / rel, dest / rel, link=link, result=result)
            except FileNotFoundError:
                gone.append(rel.stem)
                continue
            result.refget_files += 1
    finally:
        bar.close()
    return gone


def backup(store: Store, dest: Path | str, *, link: bool = True, verify: bool = True,
           progress: ProgressFactory = null_progress) -> BackupResult:
    """Write a consistent, verified copy of ``store`` to the new directory ``dest`` (see module doc).

    Safe while other processes write the store. Raises ConflictError if ``dest`` is not new (or
    empty), IntegrityError if the copy does not verify (then nothing is left at ``dest``).
    """
    dest = given_path(dest, "backup directory")  # a str from a Python caller
    _check_destination(store, dest)
    if store.refget_path.is_dir() and not os.access(store.refget_path, os.W_OK):
        raise ReadOnlyError(f"a backup copies {store.refget_path} under the RefgetStore's writer lock, which needs "
                            "write access there: run it as a user who may write the store")
    remove_abandoned_work(dest.parent)
    # An unguessable name made with mkdir (never through a symlink another user planted in a shared
    # parent, never another backup's directory).
    work = dest.parent / f".{dest.name}.backup-{os.getpid()}-{secrets.token_hex(6)}"
    try:
        work.mkdir()
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):  # EROFS: else the error named the hidden path
            raise
        raise ReadOnlyError(f"cannot write {dest.parent}: a backup is built beside {dest.name} under a hidden "
                            "name and renamed into place, so it needs write access to the directory "
                            f"holding DEST ({exc.strerror})") from None
    held = -1
    try:
        held = hold_dir(work)  # the mark of a live backup (see the module)
        _share_like(store.path, work)
        (work / "log").mkdir()
        result = BackupResult(path=str(work), log_id="", head_seq=0)
        # The lock around the snapshot and the RefgetStore's index, so the two agree (a genome is in the
        # RefgetStore before its event commits; gc removes collections only under the lock). The
        # sequence files follow outside it: copying them to another disk can take minutes, and every
        # genome, alias and gc command would wait that long. One gc removed meanwhile is a retry.
        with refget_write_lock(store.refget_path, "rgstore backup", heartbeat=True):
            with store.read() as txn:  # the snapshot: the copy holds exactly this transaction's state
                _copy_log(store, work / "log", txn)
            sequences = _copy_refget_index(store, work / "refget", result=result)
        gone_sequences = _copy_sequences(store, work / "refget", sequences, link=link, result=result,
                                         progress=progress)
        with Store.open(work, actor=store.actor) as copy:
            gone = _fill(store, copy, result, link=link, progress=progress)
            _check_gone(store, copy, gone, gone_sequences)
            if verify:
                _verify(copy, progress)
                result.verified = True
        try:
            if dest.is_dir():
                with contextlib.suppress(FileNotFoundError):  # another backup to DEST removed it first
                    dest.rmdir()  # an empty directory made for the backup
            os.rename(work, dest)
        except OSError:
            # Something took DEST since the check (another backup to it finished first): the same one
            # line the check gives, never a bare "Directory not empty"; a rename never replaces a full DEST.
            _check_destination(store, dest)
            raise
    except BaseException as exc:
        # DEST's disk full: say so (with the free space before the partial copy goes), not the hidden
        # work path (removed here) nor a copy's two ends.
        refused = refused_write(exc, dest.parent, f"the backup {dest.name}")
        shutil.rmtree(work, ignore_errors=True)
        if refused is not None:
            raise refused from None
        raise
    finally:
        if held >= 0:
            os.close(held)
    result.path = str(dest)
    return result


def _copy_log(store: Store, target: Path, txn: lmdb.Transaction) -> None:
    """LMDB's compacting copy of the snapshot ``txn`` into ``target``; OSError when the copy's disk refused a write.

    py-lmdb reports mdb_env_copy's errno only as text (``mdb_env_copy3: No space left on device``).
    Left an lmdb.Error, it read as a broken store ("is --store an rgstore store?"), while the store
    is fine and it is the backup's disk that is full.
    """
    try:
        store.environment.env.copy(str(target), compact=True, txn=txn)
    except lmdb.Error as exc:
        for code in WRITE_ERRNOS:
            if os.strerror(code) in str(exc):
                raise OSError(code, os.strerror(code)) from None
        limit = file_size_limit()
        if limit is not None and limit < store.environment.path.joinpath("data.mdb").stat().st_size:
            # LMDB's compacting copy calls a write past `ulimit -f` EINVAL: the limit, not the store.
            raise OSError(errno.EFBIG, os.strerror(errno.EFBIG)) from None
        raise


def remove_abandoned_work(parent: Path, *, min_age_s: float | None = None) -> list[Path]:
    """Remove this user's work directories in ``parent`` of backups that died (flock free); returns those removed.

    One younger than ``min_age_s`` (default ``ABANDONED_AFTER_S``) stays (a live backup locks its
    directory just after making it), and so does anything another user owns or that is not a
    directory (see the module).
    """
    removed: list[Path] = []
    age = ABANDONED_AFTER_S if min_age_s is None else min_age_s
    for work, young in dead_work_dirs(parent, _WORK_NAME.fullmatch, min_age_s=age, own_only=True):
        if not young:
            shutil.rmtree(work, ignore_errors=True)
            removed.append(work)
    return removed


def _fill(store: Store, copy: Store, result: BackupResult, *, link: bool,
          progress: ProgressFactory) -> tuple[list[str], set[str]]:
    """Copy the blobs and cache files ``copy``'s log references; returns the blobs and cache keys ``store`` lacked."""
    gone: list[str] = []
    gone_keys: set[str] = set()
    with copy.read() as txn:
        result.head_seq, _ = copy.log.head(txn)
        result.log_id = copy.log.log_id(txn)
    blobs = sorted(referenced_blobs(copy))
    files = list(cache_files(copy))
    bar = progress("backup", total=len(blobs) + len(files), unit="file")
    try:
        for sha in blobs:
            bar.update(1)
            try:
                _place(store.blobs.path(sha), copy.blobs.path(sha), link=link, result=result)
            except FileNotFoundError:
                gone.append(sha)  # not fetched (a mirror pulled without --with-blobs), or gc removed it since
                continue
            result.blobs += 1
        for entry, relative, _ref in files:
            bar.update(1)
            try:
                _place(store.cache_path / entry.path / relative, copy.cache_path / entry.path / relative,
                       link=link, result=result)
            except FileNotFoundError:
                gone_keys.add(entry.key)  # as for blobs (cache gc)
                continue
            result.cache_files += 1
    finally:
        bar.close()
    copy.sync_external_views()  # alias TSVs and FHR files as of the snapshot, not as copied
    return gone, gone_keys


def _check_gone(store: Store, copy: Store, gone: tuple[list[str], set[str]], sequences: list[str]) -> None:
    """ConflictError if a file the snapshot names was removed as the store stopped needing it."""
    blobs, keys = gone
    # gc and cache gc delete files in their own write transactions, and gc a removed genome's
    # sequences after the lock was released: a file the snapshot needed can go before it is
    # copied. The store is fine; this copy is stale. A file gone that the store still needs is
    # damage, which the verify names.
    removed = sorted(set(blobs) - referenced_blobs(store)) if blobs else []
    removed += sorted(keys - {e.key for e in store.cache.ls()}) if keys else []
    if sequences:
        live = {strip_sq(d) for g in store.genomes.list() for d in store.genomes.show(g.digest, by_digest=True).sequences}
        wanted = {strip_sq(d) for g in copy.genomes.list() for d in copy.genomes.show(g.digest, by_digest=True).sequences}
        removed += sorted((set(sequences) & wanted) - live)
    if removed:
        raise ConflictError(f"{len(removed)} file(s) the snapshot references (e.g. {removed[0]}) were removed by "
                            "`rgstore gc` or `rgstore cache gc` after the backup's snapshot; run the backup again")


def _verify(copy: Store, progress: ProgressFactory) -> None:
    """IntegrityError naming the first problem if the copy's log, views, blobs, sequences or cache fail."""
    report = copy.verify(progress=progress)  # cache files included
    problems = list(report.problems)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise IntegrityError(f"the backup does not verify: {problems[0]}{more}; nothing was written to DEST. The "
                             "store may have the same problem: run `rgstore verify` on "
                             "it (`rgstore backup --no-verify` copies it as it is)")

"""The store's one LMDB environment: sub-db handles, transactions, and automatic map growth.

Durability defaults are LMDB's (sync + metasync); never ``writemap`` and never ``lock=False``
(see docs/architecture.md). The map is a large sparse reservation that doubles on
``MapFullError``: the whole write function is retried, so a command never half-applies.
LMDB allows a map resize only while no transaction of the process is open, and the API server
reads from many threads, so a resize waits at a gate until every other thread's transaction
has ended (new transactions wait for the resize).
"""

from __future__ import annotations

import errno
import gc
import mmap
import os
import struct
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import lmdb

from .diskspace import log_write_failed
from .errors import (
    MissingSubDbError,
    OutOfMemoryError,
    ReadOnlyError,
    RgstoreError,
    StoreBusyError,
    StoreClosedError,
    StoreOpenError,
    TooManyOpenFilesError,
)

__all__ = ["Environment", "Txn", "Db", "INITIAL_MAP_SIZE", "read_only_mount"]

T = TypeVar("T")
Txn = lmdb.Transaction
if TYPE_CHECKING:
    from lmdb import _Database as Db
else:
    Db = object  # py-lmdb's handle class is private; its stubs name it _Database

INITIAL_MAP_SIZE = 1 << 36  # 64 GiB of address space; sparse on Linux, so it costs nothing
MAX_DBS = 64
MAX_READERS = 1024
READER_SLOT_WAIT_S = 60.0
"""How long an open or a read waits for a free LMDB reader slot when all are taken (a burst of batch jobs)."""

_LIVE: weakref.WeakSet[Environment] = weakref.WeakSet()
"""Every open environment of this process, so a forked child can tell which ones it inherited."""


FORK_DRAIN_WAIT_S = 5.0
"""How long a fork() waits for other threads' transactions on open stores to end (see ``_hold_for_fork``)."""

_held_for_fork: list[Environment] = []


def _hold_for_fork() -> None:
    """Before fork(): let other threads' transactions end (bounded wait), start no new one, hold every gate.

    A child inherits a transaction open at the fork as a reader slot it must never release (the parent's
    thread still reads through it), so it can neither close that handle nor open the store itself
    (py-lmdb refuses a second open while the first is not closed). Reads are short: waiting for them
    makes every inherited handle idle, and the child closes those (``_release_inherited``). The wait
    is bounded because a thread could be inside a read waiting for something the forking thread holds.
    Holding each gate's lock through the fork also leaves the child's copy of it unlocked.
    """
    deadline = time.monotonic() + FORK_DRAIN_WAIT_S
    for environment in list(_LIVE):
        environment._gate.acquire()
        _held_for_fork.append(environment)
        environment._forking = True
        environment._gate.notify_all()
    for environment in _held_for_fork:
        mine = getattr(environment._mine, "count", 0)  # the forking thread's own: the child inherits them busy
        while environment._open_txns > mine and (left := deadline - time.monotonic()) > 0:
            environment._gate.wait(left)


def _release_after_fork(*, child: bool) -> None:
    """After fork(): let transactions start again; in the child, note which handles came idle from the parent."""
    while _held_for_fork:
        environment = _held_for_fork.pop()
        environment._forking = False
        environment._gate.notify_all()
        environment._gate.release()
    if child:
        for environment in list(_LIVE):
            environment._inherited = True
            environment._inherited_idle = environment._open_txns == 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_hold_for_fork, after_in_parent=lambda: _release_after_fork(child=False),
                        after_in_child=lambda: _release_after_fork(child=True))


def _release_inherited(path: Path) -> None:
    """Close this child's inherited handles on ``path`` that no thread was using at the fork.

    LMDB forbids using an environment across fork() and py-lmdb refuses a second open of the same
    files in one process, so a worker opening the store itself (a pool initializer) would fail while
    the parent's handle lingers here. Closing one with a transaction open at the fork would end that
    transaction's reader slot, which the parent's thread still relies on, so those stay.
    """
    for environment in list(_LIVE):
        if environment._inherited_idle and environment.path.resolve() == path.resolve():
            environment.close(why="it was opened before this process forked, and the store was opened again here")


def _inherited_busy(path: Path) -> bool:
    """Whether a handle on ``path`` came through fork() with a transaction open (so it must stay open here)."""
    return any(e._inherited and not e._inherited_idle and not e._closed and e.path.resolve() == path.resolve()
               for e in list(_LIVE))


_MDB_MAGIC = 0xBEEFC0DE
_P_INVALID = (1 << 64) - 1
_META_ROOTS = struct.Struct("<16xI60xQ6xH32xQQQ")
"""A meta page (64-bit LMDB 0.9): magic, free tree root, main tree depth, main root, last page, txnid."""


def _file_identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of a file, or None if it is gone."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _refuse_cut_short(env: lmdb.Environment, path: Path) -> None:
    """StoreOpenError (env closed) if ``data.mdb`` ends before a tree root its newest meta page names.

    LMDB maps the file: reading a page past its end (a copy or restore cut short, a hand truncate)
    kills the process with SIGBUS and no message. A healthy file may end before its last page
    number (a page one transaction allocates at the end and frees again is never written), so the
    check is on pages LMDB will read: the free and main trees' roots and, when the main tree is one
    page, every sub-db's root (its entries are sub-db records: rgstore keeps nothing else there).
    """
    psize = int(env.stat()["psize"])
    try:
        with open(path / "data.mdb", "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            metas = [os.pread(fh.fileno(), _META_ROOTS.size, i * psize) for i in (0, 1)]
    except OSError:
        return
    valid = [_META_ROOTS.unpack(m) for m in metas if len(m) == _META_ROOTS.size]
    valid = [m for m in valid if m[0] == _MDB_MAGIC]
    if not valid:
        return  # LMDB opened it, so this is a layout this check does not know: leave it to LMDB
    _, free_root, main_depth, main_root, _last, _txnid = max(valid, key=lambda m: m[5])
    roots = [r for r in (free_root, main_root) if r != _P_INVALID]
    need = (max(roots, default=1) + 1) * psize
    if size >= need and main_depth == 1 and main_root != _P_INVALID:
        try:
            with env.begin() as txn:
                roots += [r for (r,) in (_SUBDB_ROOT.unpack_from(v) for _, v in txn.cursor() if len(v) == 48)
                          if r != _P_INVALID]
        except lmdb.Error:
            pass  # a damaged page inside the file: LMDB names it when it is read
        need = (max(roots, default=1) + 1) * psize
    if size < need:
        env.close()
        raise StoreOpenError(
            f"{path / 'data.mdb'} is cut short ({size:,} bytes; its committed pages need {need:,}): the log cannot "
            "be read; restore log/ from a backup (`rgstore replay backup.rglog --store NEW`, or a mirror)"
        )


_SUBDB_ROOT = struct.Struct("<40xQ")
"""The root page of a sub-db record (LMDB's MDB_db, 48 bytes)."""


class _SlotWait:
    """Back-off while the reader table is full: slots free up as other readers finish, so wait, then refuse."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.deadline = time.monotonic() + READER_SLOT_WAIT_S
        self.delay = 0.01

    def pause(self) -> None:
        """Sleep a little longer each time; StoreBusyError once ``READER_SLOT_WAIT_S`` have passed."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise StoreBusyError(
                f"every LMDB reader slot of {self.path} stayed taken for {READER_SLOT_WAIT_S:g} s: too many processes "
                "read this store at once; retry, or run fewer jobs on it at a time"
            )
        import random  # only a store whose reader slots are all taken waits: not every open's import

        time.sleep(min(left, self.delay * (0.5 + random.random())))  # jitter: a burst of jobs must not retry in step
        self.delay = min(self.delay * 2, 1.0)


class Environment:
    """An open LMDB environment with named sub-dbs created on demand (in write mode)."""

    def __init__(self, path: Path, *, readonly: bool, map_size: int = INITIAL_MAP_SIZE) -> None:
        self.path = path
        self.readonly = readonly
        if not readonly:
            path.mkdir(parents=True, exist_ok=True)
        elif not (path / "data.mdb").exists():
            raise RgstoreError(f"no store log at {path}; create one with `rgstore init`")
        elif (path / "data.mdb").stat().st_size == 0 and os.access(path / "data.mdb", os.W_OK):
            # A first open stopped (full disk, Ctrl-C) before LMDB wrote its meta pages: a read-only open
            # would fail with EBADF; a writable one writes them, as it would have.
            Environment(path, readonly=False, map_size=map_size).close()
        self._closed = ""
        self._inherited = False
        self._inherited_idle = False
        self._forking = False
        try:
            try:
                self.env = self._open(path, map_size)
            except lmdb.Error as exc:
                if "already open" not in str(exc):
                    raise
                # A Store dropped without close() (a notebook's `Store.open(p).getseq(...)`) lingers in a
                # reference cycle until the collector runs; a forked child holds its parent's handles.
                gc.collect()
                _release_inherited(path)
                self.env = self._open(path, map_size)
        except lmdb.Error as exc:
            text = str(exc)
            if "already open" in text and _inherited_busy(path):
                hint = ("; this process was forked while a thread of its parent was inside a read (or a write) of "
                        "this store, and the handle it inherited cannot be closed here without ending it: start "
                        "workers with the 'spawn' or 'forkserver' multiprocessing start method, or fork before "
                        "opening the store")
            elif "already open" in text:
                hint = ("; one process opens a store once: use the Store already open on it (threads may share "
                        "it), or close() that one first")
            elif os.strerror(errno.EMFILE) in text:  # `ulimit -n`, not a store that is not one
                raise TooManyOpenFilesError() from None
            elif not readonly and _refused_by_disk(exc):
                raise log_write_failed(path, exc) from None
            elif not readonly and (os.strerror(errno.EROFS) in text
                                   or ("Permission denied" in text and read_only_mount(path))):
                # A reference store exported read-only to compute nodes (a ro bind mount, a ro NFS export).
                raise ReadOnlyError(
                    f"{path.parent} is on a read-only file system: commands that only read the store (getseq, "
                    "genome list, log, verify, serve, ...) work there; run this one where it is mounted writable"
                ) from None
            elif "Permission denied" in text and read_only_mount(path):
                # A bind mount made read-only (docker -v ...:ro, a Kubernetes readOnly volume) checks the
                # file's mode before the mount: LMDB never sees EROFS, so never reads without its lock file.
                from .sharing import access_hint

                who = access_hint([(path / "lock.mdb", True)])
                raise StoreOpenError(
                    f"{path.parent} is on a read-only mount, and {who or 'log/lock.mdb'}: LMDB reads a read-only "
                    "mount only for users that file's mode would let write it (it is never written there); where the "
                    "store is writable, run `chmod a+rw log/lock.mdb` (docs/deployment.md, 'Clusters and network "
                    "file systems')"
                ) from None
            elif "Permission denied" in text:
                from .sharing import SHARED_DOC, access_hint

                who = access_hint([(path / "lock.mdb", True), (path / "data.mdb", not readonly), (path, not readonly)])
                hint = (f"{f': {who}' if who else ''}; every user of a store needs read-write access to log/lock.mdb, "
                        f"writers to log/data.mdb too (ask the store's owner; a store shared by a group: {SHARED_DOC})")
            else:
                hint = "; is this an rgstore store?"
            raise StoreOpenError(f"the store's LMDB files cannot be used ({text}){hint}") from None
        _refuse_cut_short(self.env, path)
        self._data_file = os.path.abspath(path / "data.mdb")
        self._identity = _file_identity(self._data_file)
        # Reclaim reader slots leaked by killed processes; read-only opens too: a server worker the
        # supervisor restarts frees its killed predecessor's, which on a store nobody writes to
        # would otherwise pile up until every request fails with MDB_READERS_FULL.
        self.env.reader_check()
        self._dbs: dict[str, Db] = {}
        self._gate = threading.Condition()
        self._open_txns = 0
        self._resizing = False
        self._mine = threading.local()
        _LIVE.add(self)

    def _open(self, path: Path, map_size: int) -> lmdb.Environment:
        wait = _SlotWait(path)
        while True:
            try:
                return self._open_once(path, map_size)
            except lmdb.ReadersFullError:  # opening reads the main db in a transaction of its own
                wait.pause()

    def _open_once(self, path: Path, map_size: int) -> lmdb.Environment:
        try:
            return self._lmdb_open(path, map_size)
        except lmdb.MemoryError:
            # An address-space limit (`ulimit -v`, usual on cluster nodes) refuses the sparse 64 GiB
            # reservation: a smaller map reads and writes the same, and doubles when a write fills it.
            for size in _smaller_maps(map_size, path / "data.mdb"):
                try:
                    return self._lmdb_open(path, size)
                except lmdb.MemoryError:
                    continue
            raise _address_space_error(path) from None

    def _lmdb_open(self, path: Path, map_size: int) -> lmdb.Environment:
        return lmdb.open(
            str(path),
            map_size=map_size,
            max_dbs=MAX_DBS,
            max_readers=MAX_READERS,
            readonly=self.readonly,
            subdir=True,
            mode=0o777,  # LMDB drops the x bits: data.mdb and lock.mdb get 0666 minus the umask, like any file
            max_spare_txns=0,  # spare read txns leave stale reader slots across fork (py-lmdb #346)
            metasync=True,
            sync=True,
            writemap=False,
            lock=True,
        )

    def close(self, *, why: str = "it was closed") -> None:
        """Close the environment; handles and transactions become invalid, and later use raises StoreClosedError."""
        if not self._closed:
            self._closed = why
        _LIVE.discard(self)
        self.env.close()

    def _refuse_closed(self) -> None:
        raise StoreClosedError(
            f"the store handle on {self.path.parent} cannot be used: {self._closed}; "
            "open the store again (Store.open) and use that handle"
        )

    def check_in_place(self) -> None:
        """StoreClosedError if ``data.mdb`` is no longer the file this handle opened (deleted, moved or replaced)."""
        if _file_identity(self._data_file) != self._identity:
            # LMDB writes on through its open descriptor: a commit into a deleted or replaced file is lost.
            raise StoreClosedError(
                f"the store handle on {self.path.parent} cannot be used: the store's directory was deleted, moved "
                "or replaced since it was opened (a commit through it would be lost); open the store again "
                "(Store.open) where it is now"
            )

    def open_dbs(self, names: list[str]) -> None:
        """Open (creating in write mode) every named sub-db once, in one transaction."""
        missing = [n for n in names if n not in self._dbs]
        if not missing:
            return
        if self.readonly:
            # py-lmdb only keeps handles opened through its own internal read txn valid afterwards.
            with self.env.begin() as txn:
                existing = [n for n in missing if txn.get(n.encode()) is not None]
            for name in existing:  # the rest are created by the first writer; reads see nothing yet
                self._dbs[name] = self.env.open_db(name.encode(), create=False)
            return
        txn = self.env.begin(write=True)
        try:
            for name in missing:
                self._dbs[name] = self.env.open_db(name.encode(), txn=txn, create=True)
            txn.commit()
        except lmdb.Error as exc:
            txn.abort()
            if _refused_by_disk(exc):
                raise log_write_failed(self.path, exc) from None
            raise
        except BaseException:
            txn.abort()
            raise

    def db(self, name: str) -> Db:
        """The handle of an opened sub-db (see ``open_dbs``)."""
        try:
            return self._dbs[name]
        except KeyError:
            raise MissingSubDbError(f"sub-db {name!r} does not exist in {self.path} (open it writable once)") from None

    def has_db(self, name: str) -> bool:
        """Whether sub-db ``name`` is open."""
        return name in self._dbs

    def write(self, fn: Callable[[Txn], T]) -> T:
        """Run ``fn`` in one write transaction; commit on return, abort on any exception.

        On a full map the transaction is aborted, the map doubled, and ``fn`` re-run from the start.
        LMDB refusing memory (a limit such as ``ulimit -v`` reached) is OutOfMemoryError, nothing committed.
        """
        if self._closed:
            self._refuse_closed()
        if self.readonly:
            raise ReadOnlyError("this store handle is read-only")
        self.check_in_place()
        while True:
            # A process killed inside a read transaction leaves its reader slot pinning that snapshot:
            # no page freed since can be reused, so every commit grows the file. Checking only at open
            # lets a long-lived writer (the follower of `serve --follow`) grow it without bound.
            try:
                self.env.reader_check()  # mallocs its list of reader pids
            except lmdb.MemoryError:
                raise OutOfMemoryError() from None
            self._enter()
            try:
                try:
                    txn = self.env.begin(write=True)
                except lmdb.MapResizedError:
                    new_size = 0  # another process grew the map: adopt its size and retry
                except lmdb.MemoryError:
                    # Taking over the lock of a writer that died mallocs too (LMDB checks the readers then):
                    # the same memory limit as a put's, before anything was written.
                    raise OutOfMemoryError() from None
                else:
                    try:
                        result = fn(txn)
                        txn.commit()
                        return result
                    except lmdb.MapFullError:
                        txn.abort()
                        new_size = self.env.info()["map_size"] * 2
                    except lmdb.MemoryError:
                        txn.abort()
                        # A put's dirty pages are malloc'd: ENOMEM is a memory limit reached, not a broken store.
                        raise OutOfMemoryError() from None
                    except lmdb.Error as exc:
                        txn.abort()
                        if self._closed:  # closed by another thread during this write: nothing was committed
                            self._refuse_closed()
                        if _refused_by_disk(exc):  # a full disk or a size limit, not a broken store
                            raise log_write_failed(self.path, exc) from None
                        raise
                    except BaseException:
                        txn.abort()
                        raise
            finally:
                self._leave()
            self._resize(new_size)

    @contextmanager
    def read(self) -> Iterator[Txn]:
        """A short read transaction (never blocks on writers); OutOfMemoryError if LMDB cannot allocate one."""
        if self._closed:
            self._refuse_closed()
        wait: _SlotWait | None = None
        while True:
            self._enter()
            try:
                txn = self.env.begin(buffers=False)
                break
            except lmdb.MapResizedError:
                self._leave()
                self._resize(0)  # another process grew the map; adopt its size
            except lmdb.ReadersFullError:
                self._leave()
                try:
                    self.env.reader_check()  # slots of killed processes first; mallocs its list of reader pids
                except lmdb.MemoryError:
                    raise OutOfMemoryError() from None
                wait = wait or _SlotWait(self.path)
                wait.pause()
            except lmdb.MemoryError:
                self._leave()
                # A read transaction is malloc'd (no spare ones are kept): a memory limit reached, as in ``write``.
                raise OutOfMemoryError() from None
            except BaseException:
                self._leave()
                raise
        try:
            yield txn
        except lmdb.Error:
            if self._closed:  # another thread closed the store during this read: say so, as a read after it does
                self._refuse_closed()
            raise
        finally:
            txn.abort()
            self._leave()

    def _enter(self) -> None:
        """Count a transaction about to begin; wait while another thread resizes the map or forks."""
        mine = getattr(self._mine, "count", 0)
        with self._gate:
            # A thread already inside a transaction goes on: making it wait would block the resize (or the fork).
            while (self._resizing or self._forking) and not mine:
                self._gate.wait()
            self._open_txns += 1
            self._mine.count = mine + 1

    def _leave(self) -> None:
        with self._gate:
            self._mine.count -= 1
            self._open_txns -= 1
            self._gate.notify_all()

    def _resize(self, size: int) -> None:
        """``set_mapsize(size)`` (0: adopt the size another process set) once no other thread is in a transaction."""
        if getattr(self._mine, "count", 0):
            # LMDB would invalidate this thread's own open transaction, and waiting for it would deadlock.
            raise RgstoreError(
                f"the store's map in {self.path} must grow, which cannot happen inside an open transaction; "
                "finish the outer read before writing"
            )
        with self._gate:
            if self._resizing:  # another thread is resizing: its result will do, the caller retries
                while self._resizing:
                    self._gate.wait()
                return
            self._resizing = True
            try:
                while self._open_txns:
                    self._gate.wait()
                self._set_mapsize(size)
            finally:
                self._resizing = False
                self._gate.notify_all()

    def _set_mapsize(self, size: int) -> None:
        """``set_mapsize(size)``, or the largest smaller map an address-space limit (``ulimit -v``) allows.

        py-lmdb drops the environment when a remap fails, so the size is tried first as a bare
        reservation of the room it adds (LMDB unmaps the old map before mapping the new one). A growth
        (``size`` above the current map) that finds no larger room is an error, the map left as it
        was: retrying the write at the same size would only fill it again.
        """
        before = self.env.info()["map_size"]
        data_file = Path(self._data_file)
        wanted = size or max(INITIAL_MAP_SIZE, _file_size(data_file))  # 0: adopt another process's size
        # The room a remap adds, and the heap a write still needs after it (its dirty pages are malloc'd):
        # a map filling the limit to the byte fails the next put with a bare lmdb.MemoryError.
        if _reservable(wanted - before + HEAP_ROOM):
            self.env.set_mapsize(size)
            return
        fit = next((smaller for smaller in _smaller_maps(wanted, data_file) if _reservable(smaller - before + HEAP_ROOM)), None)
        if size and (fit is None or fit <= before):
            raise RgstoreError(
                f"the store's log in {self.path} needs a map larger than {before:,} bytes, which this process's "
                "address-space limit (ulimit -v) refuses; nothing was committed: raise the limit and run the "
                "command again"
            )
        if fit is None:
            raise _address_space_error(self.path)
        self.env.set_mapsize(fit)

    def sync(self) -> None:
        """Force a flush to disk (after unsynced bulk loads)."""
        self.env.sync(True)

    def stat_db(self, name: str, txn: Txn) -> dict[str, int]:
        """LMDB statistics of one sub-db."""
        stats = txn.stat(self.db(name))
        return {key: int(stats[key]) for key in stats}  # type: ignore[literal-required]


MIN_MAP_SIZE = 1 << 24
"""The smallest map tried when an address-space limit refuses a larger one (LMDB raises it to the file's size)."""


HEAP_ROOM = 1 << 24
"""Address space a map growth leaves free for the heap under an address-space limit (a write's dirty pages)."""


def _file_size(path: Path) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _reservable(size: int) -> bool:
    """Whether this process may map ``size`` more bytes of address space now (``ulimit -v`` allowing)."""
    if size <= 0:  # no more than it has mapped already (mmap refuses a length of 0)
        return True
    try:
        probe = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, prot=0)  # PROT_NONE: no memory
    except (OSError, OverflowError, ValueError):
        return False
    probe.close()
    return True


def _smaller_maps(size: int, data_file: Path) -> Iterator[int]:
    """Ever smaller map sizes below ``size``, halving, down to the log file's size (at least ``MIN_MAP_SIZE``)."""
    floor = max(_file_size(data_file), MIN_MAP_SIZE)
    while size > floor:
        size = max(size // 2, floor)
        yield size


def _address_space_error(path: Path) -> StoreOpenError:
    return StoreOpenError(
        f"the store's log in {path} cannot be mapped into memory: this process's address-space limit (ulimit -v) "
        "leaves too little room; raise the limit and run the command again"
    )


def read_only_mount(path: Path) -> bool:
    """Whether ``path`` is on a file system, or a bind mount, mounted read-only."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _refused_by_disk(exc: lmdb.Error) -> bool:
    """Whether LMDB's error is a write the disk refused: ENOSPC/EDQUOT/EFBIG, or EIO (LMDB's word for a short write)."""
    return isinstance(exc, lmdb.DiskError) or any(
        words in str(exc) for words in ("No space left", "Disk quota exceeded", "File too large", "Input/output error"))


def fsync_dir(path: Path) -> None:
    """fsync a directory so a rename inside it is durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

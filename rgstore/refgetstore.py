"""The store's gtars RefgetStore (``STORE/refget/``): Raw-mode handles, checked ingest, FASTA export.

gtars 0.10.0 traps this module exists to contain (measured, docs in ../shared/notes):
Encoded mode corrupts IUPAC codes, so every store is created Raw (``disable_encoding`` before
the first import) and any other mode is refused; on-disk imports trust a ``<stem>.rgsi`` sidecar
next to the FASTA without checking it, so imports read a private hardlink or copy in a fresh
temp directory; gtars accepts garbage, so the FASTA is validated first and the digests gtars
reports are checked against an independent hashlib pass; handles print to stdout unless quiet.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import fcntl
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import msgspec

from .diskspace import WRITE_ERRNOS, file_size_limit, no_room, short_of_space
from .errors import (
    ConflictError,
    DiskWriteError,
    IntegrityError,
    InvalidInputError,
    NotFoundError,
    RgstoreError,
    StorePermissionError,
    TooManyOpenFilesError,
)
from .files import current_umask, flock_held, open_lock
from .interrupts import deferred
from .pathtext import user_path
from .progress import Progress, ProgressFactory, null_progress
from .refgetgate import refget_gate
from .sharing import SHARED_DOC, access_hint

if TYPE_CHECKING:
    from .fasta import FastaSummary
    from .gtarsimport import GtarsImport
    from .store import Store

__all__ = [
    "CHILD_IMPORT_MIN_BYTES",
    "DEFAULT_SEQ_TEMPLATE",
    "SCRATCH_PREFIXES",
    "STALE_SCRATCH_S",
    "Ingested",
    "SequenceFiles",
    "collection_removed",
    "discard_import",
    "fetch_lock",
    "import_running",
    "imports_paused",
    "gtars_path",
    "ingest_fasta",
    "removed_meanwhile",
    "sequence_removed",
    "open_refget",
    "scratch_dir",
    "sequence_readable",
    "strip_sq",
    "sweep_scratch",
    "write_fasta",
]

_EXPORT_CHUNK = 1 << 22
DEFAULT_SEQ_TEMPLATE = "sequences/%s2/%s.seq"
"""gtars 0.10.0's data-file layout, used when ``rgstore.json`` names none."""
_DISCARD_LOCK_TIMEOUT_S = 120
_IN_USE = ".in-use"
SCRATCH_PREFIXES = (".ingest-", ".remote-")
STALE_SCRATCH_S = 300.0
"""Scratch directories younger than this are never swept, whoever made them."""
# gtars 0.10.0's words for a collection whose files are gone from the store: a handle that knew it
# (or an import that found it already there) reading its .rgsi, and a fresh handle asking for it.
_GONE = (
    re.compile(r"File not found locally and no remote source configured: collections/(?P<d>[A-Za-z0-9_-]{32})\.rgsi"),
    re.compile(r"Collection not found: (?P<d>[A-Za-z0-9_-]{32})"),
)
# gtars 0.10.0's refusal to commit an import that skipped a sequence the store already held, because
# another writer (`rgstore gc` after `genome remove`) deleted it meanwhile; its text spans lines.
_SEQUENCE_GONE = re.compile(
    r"Error importing FASTA: cannot commit collection [A-Za-z0-9_-]{32}: its sequence (?P<s>[A-Za-z0-9_.-]+) "
    r"is no longer in the\s+store index\..*", re.DOTALL)


class Ingested(msgspec.Struct, frozen=True, kw_only=True):
    """A FASTA now in the RefgetStore: its seqcol digests, level-2 arrays and checked source."""

    digest: str
    names: list[str]
    lengths: list[int]
    sequences: list[str]
    """Level-2 form: ``SQ.``-prefixed sha512t24u digests."""
    md5s: list[str]
    level1: dict[str, str]
    descriptions: list[str]
    source_size: int
    source_md5: str
    """md5 of the FASTA file's bytes as given (compressed or not)."""
    compression: str
    was_new: bool


def strip_sq(digest: str) -> str:
    """A sequence digest without its ``SQ.`` prefix (gtars' file names and some calls want it bare)."""
    return digest.removeprefix("SQ.")


def gtars_path(path: Path) -> str:
    """``path`` as gtars must be handed it: its bytes on disk decoded as UTF-8, whatever the locale.

    gtars takes a path as a Rust String and encodes it as UTF-8; ``str(path)`` holds the name as this
    locale decoded it, so under a Latin-1 locale (``LANG=de_DE.ISO-8859-1``) a store named ``störe`` in
    UTF-8 on disk would reach gtars as another directory, which gtars then creates beside it.
    """
    return os.fsencode(path).decode("utf-8", "surrogateescape")  # Store.open refuses names that are not UTF-8


def open_refget(store: Store, *, write: bool) -> Any:
    """A quiet gtars handle on ``store.refget_path``: ``write`` creates it (Raw mode) if missing.

    Read handles are ``open_local`` (lazy, 0.3 ms) and raise NotFoundError when no RefgetStore
    exists yet. Handles never see later commits by other handles: reopen to refresh.
    """
    from gtars.refget import RefgetStore, StorageMode  # type: ignore[import-untyped]

    path = store.refget_path
    exists = (path / "rgstore.json").exists()
    if not write and not exists:
        raise NotFoundError(f"no sequences stored yet in {path}; add a genome with `rgstore genome init`")
    try:
        handle = (RefgetStore.on_disk if write else RefgetStore.open_local)(gtars_path(path))
    except OSError:
        # gtars says only "Failed to read rgstore.json" when it could not open it: out of descriptors
        # (`ulimit -n`) the limit is the cause, not the RefgetStore.
        if _few_files_left():
            raise TooManyOpenFilesError() from None
        raise
    handle.set_quiet(True)
    if write and not exists:
        handle.disable_encoding()  # the mode is fixed at creation; Encoded corrupts IUPAC in 0.10.0
    if exists and handle.storage_mode != StorageMode.Raw:
        raise IntegrityError(
            f"the RefgetStore at {path} is in {handle.storage_mode} mode; rgstore reads and writes Raw stores only"
        )
    return handle


_FILES_HEADROOM = 16
"""Descriptors a gtars call may need at once: with fewer free after it failed, the open-file limit is the cause."""


def _few_files_left(headroom: int = _FILES_HEADROOM) -> bool:
    """Whether this process could open fewer than ``headroom`` more files now (``ulimit -n`` nearly reached).

    gtars' OSErrors often carry no errno ("creating temp file in ..."): a failure with this little
    room left is the limit's, not the FASTA's or the store's. Probes by opening /dev/null, then closes them.
    """
    opened: list[int] = []
    try:
        while len(opened) < headroom:
            opened.append(os.open(os.devnull, os.O_RDONLY))
    except OSError as exc:
        return exc.errno in (errno.EMFILE, errno.ENFILE)
    finally:
        for fd in opened:
            os.close(fd)
    return False


def create_refget(path: Path) -> None:
    """Create an empty Raw-mode RefgetStore at ``path`` (with its ``rgstore.json``) if there is none."""
    if (path / "rgstore.json").exists():
        return
    from gtars.refget import RefgetStore

    from .refgetlock import LOCK_NAME

    lock = path / LOCK_NAME
    locked_before = lock.exists()
    try:
        handle = RefgetStore.on_disk(gtars_path(path))
        handle.set_quiet(True)
        handle.disable_encoding()  # the mode is fixed at creation; Encoded corrupts IUPAC in 0.10.0
        handle.write()
    except OSError as exc:
        # gtars creates its lock empty, then writes its owner: a write the disk refused left it empty, and an
        # empty lock kept the next `rgstore init` waiting for STALE_AFTER_S. No RefgetStore exists here yet,
        # so nobody else can be holding it for long (a concurrent creator fills its lock within microseconds).
        with contextlib.suppress(OSError):
            if not locked_before and lock.stat().st_size == 0:
                lock.unlink()
        code = _GTARS_ERRNO.search(str(exc))
        if code is not None and int(code[1]) in WRITE_ERRNOS:
            raise DiskWriteError(
                f"creating the store's RefgetStore in {path} failed ({exc}); the disk refused a write (full, a quota "
                "or a file size limit, ulimit -f): free space or raise the limit and run the command again"
            ) from None
        raise


def collection_removed(digest: str) -> ConflictError:
    """The error for an import whose RefgetStore collection another process removed while it ran."""
    return ConflictError(f"the RefgetStore collection {digest} was removed while this import ran (by `rgstore gc` "
                         "or an interrupted import of the same FASTA); run the command again")


def sequence_removed(exc: BaseException, source: Path) -> ConflictError | None:
    """The ConflictError for gtars' refusal of an import whose shared sequence another process removed, else None."""
    if not isinstance(exc, OSError) or len(exc.args) != 1 or not isinstance(exc.args[0], str):
        return None
    match = _SEQUENCE_GONE.fullmatch(exc.args[0])
    if match is None:
        return None
    return ConflictError(f"{source}: sequence SQ.{strip_sq(match['s'])} was removed from the RefgetStore while this import ran "
                         "(by `rgstore gc` after a `genome remove`); run the command again")


def removed_meanwhile(store: Store, exc: BaseException, digest: str | None = None) -> str | None:
    """The collection digest if ``exc`` is gtars' error for a collection whose files are gone now, else None.

    Both the message (for ``digest``, when given) and the store must agree: the collection's
    ``.rgsi`` is absent, so any other gtars failure keeps its own message.
    """
    if not isinstance(exc, OSError) or len(exc.args) != 1 or not isinstance(exc.args[0], str):
        return None
    for pattern in _GONE:
        match = pattern.fullmatch(exc.args[0])
        if match and digest in (None, match["d"]):
            gone = match["d"]
            return None if (store.refget_path / "collections" / f"{gone}.rgsi").exists() else gone
    return None


def _link_or_copy(source: Path, dest: Path) -> None:
    try:
        # Linux link() does not follow a symlink: linking one would copy its (maybe relative) target text.
        os.link(source.resolve(), dest)
    except OSError:  # another filesystem, or links not allowed: a private copy does as well
        import shutil  # lazily in each writer: this module loads with every read (getseq), ~2 ms

        shutil.copyfile(source, dest)


CHILD_IMPORT_MIN_BYTES = 64 << 20
"""Imports of at least this much work (FASTA bytes plus residues) run gtars in a child process with a
moving bar; smaller ones in this process, sparing the child's start-up (~0.1 s of a 0.3 s lazy fetch)."""


class _InProcess:
    """gtars' import in this process: its bar jumps to the end when gtars returns (it holds the GIL)."""

    def __init__(self, store: Store, link: Path, *, batch: bool) -> None:
        self.digest: str | None = None
        self.was_new = False
        self._handle = open_refget(store, write=True)  # the import starts from the store as it is now
        self._store = store
        self._fasta = gtars_path(link)
        self._batch = batch
        self._locked = False
        self._gate = refget_gate(store.refget_path)
        self._gated = False

    def run(self, bar: Progress, work: int) -> None:
        # gtars waits for its writer lock holding the GIL: no other thread of this process may hold it (refgetgate).
        self._gate.acquire()
        self._gated = True
        if self._batch:
            # Each gtars commit ends by joining its lock's heartbeat thread (~0.1 s, whatever the size):
            # one batch lock over the import and the carrier's removal pays that once, not twice.
            self._handle.lock_for_batch("rgstore-fetch")
            self._locked = True
        else:
            self._gated = False  # its own commit below takes and releases gtars' lock
        try:
            meta, was_new = self._handle.add_sequence_collection_from_fasta(self._fasta)
        finally:
            if not self._batch:
                self._gate.release()
        self.digest, self.was_new = str(meta.digest), bool(was_new)
        bar.update(work)

    def remove_collection(self, digest: str) -> None:
        """Remove the collection (not its sequences), inside this import's batch lock when it holds one."""
        with self._gate:
            self._handle.remove_collection(digest, remove_orphan_sequences=False)

    def reindex(self) -> None:
        """Import the FASTA again with gtars' ``force``, rewriting its collection index (see ``_reindex``)."""
        assert self.digest is not None
        # Handles never refresh: unless this one's batch lock kept every other writer out, a fresh one
        # sees a collection removed since the import (and gtars refuses a stale handle's commit).
        with self._gate:
            _reindex(self._handle if self._locked else open_refget(self._store, write=True), self._fasta, self.digest)

    def release(self) -> None:
        """Release the batch lock if this import holds it (idempotent; before anything else takes gtars' lock)."""
        try:
            if self._locked:
                self._locked = False
                try:
                    self._handle.release_batch_lock()
                except OSError:
                    pass  # broken by another process as stale: nothing of ours is left to release
        finally:
            if self._gated:
                self._gated = False
                self._gate.release()

    def wait(self) -> None:
        """Nothing runs on after ``run``: gtars returned before any interrupt could unwind (``deferred``)."""


class _InChild:
    """gtars' import in a child process (``gtarsimport``) while this one moves the bar by its I/O."""

    def __init__(self, store: Store, link: Path, source: Path) -> None:
        open_refget(store, write=True)  # refuses a store that is not Raw before the child writes to it
        from .gtarsimport import GtarsImport  # here: it loads subprocess and json, for an import only

        self._child = GtarsImport(gtars_path(store.refget_path), gtars_path(link))
        self._source = source
        self._store = store
        self._link = link

    @property
    def digest(self) -> str | None:
        return self._child.digest

    @property
    def was_new(self) -> bool:
        return self._child.was_new

    def reindex(self) -> None:
        """Import the FASTA again, in this process (a rare repair), rewriting its collection index (``_reindex``)."""
        assert self.digest is not None
        with refget_gate(self._store.refget_path):
            _reindex(open_refget(self._store, write=True), gtars_path(self._link), self.digest)

    def run(self, bar: Progress, work: int) -> None:
        try:
            self._child.start()
            self._child.follow(bar, work)
        finally:
            self._child.wait()
        _raise_failure(self._child, self._source)

    def remove_collection(self, digest: str) -> None:
        """Remove the collection (not its sequences): a commit of its own."""
        with refget_gate(self._store.refget_path):
            open_refget(self._store, write=True).remove_collection(digest, remove_orphan_sequences=False)

    def release(self) -> None:
        """Nothing to release: the child's commits took and released gtars' lock themselves."""

    def wait(self) -> None:
        """Let the child end (one the bar's start kept from importing ends without importing)."""
        self._child.wait()


def _index_agrees(store: Store, digest: str, independent: FastaSummary) -> bool:
    """Whether the collection index ``collections/<digest>.rgsi`` is there and lists the FASTA's names, lengths, digests."""
    try:
        level2 = open_refget(store, write=True).get_collection_level2(digest)
        theirs = (list(level2["names"]), list(level2["lengths"]), list(level2["sequences"]))
    except Exception:  # noqa: BLE001  # missing (OSError) or damaged: gtars refuses it with its own exception types
        return False
    return theirs == (independent.names, independent.lengths, ["SQ." + r.digest for r in independent.records])


def _reindex(handle: Any, fasta: str, digest: str) -> None:
    """Re-import ``fasta`` with gtars' ``force``: it rewrites the collection's index file and its sequences.

    gtars skips a collection its ``collections.rgci`` lists, so a missing or damaged
    ``collections/<digest>.rgsi`` stays so through a plain re-import (verify names this repair).
    A collection no longer listed was removed meanwhile (``gc``, ``discard_import``): left so, for
    the read-back to refuse as ``collection_removed`` (forced, gtars says ``was_new`` either way).
    """
    if handle.get_collection_metadata(digest) is None:
        return
    meta, _ = handle.add_sequence_collection_from_fasta(fasta, force=True)
    if str(meta.digest) != digest:  # the same file as the import before: gtars cannot differ, but never record it so
        raise IntegrityError(f"the forced re-import gave collection {meta.digest}, the import {digest}")


def ingest_fasta(
    store: Store, path: Path | str, *, progress: ProgressFactory = null_progress,
    before_import: Callable[[FastaSummary], None] | None = None,
    then: Callable[[Ingested], None] | None = None, keep_collection: bool = True,
) -> Ingested:
    """Validate a FASTA and import it into the RefgetStore; digests are checked before returning.

    Steps: an independent digest pass starts in a child process; the file is validated (nothing
    is imported if it fails) and ``before_import`` may still refuse it; gtars imports a private link to it (named by its real compression,
    so no sidecar or extension trap applies), from ``CHILD_IMPORT_MIN_BYTES`` of work on in a child
    process while ``progress`` shows the bytes it has read and written (``gtarsimport``), below it
    in this process; then gtars' names, lengths and sequence digests must equal the validator's and
    the digest pass's, and the collection digest must equal rgstore's own seqcol computation. On a
    mismatch (IntegrityError), any other failure or an interrupt, a collection this import added
    is removed again (``discard_import``). ``then`` (recording the import) runs inside that guard,
    so an interrupt between the import and the record leaks nothing.
    A collection another process removed while this ran is a ConflictError (``collection_removed``).
    ``keep_collection=False`` imports only the sequences: the collection was a carrier, removed
    after ``then`` (an in-process import and its removal share one gtars batch lock).
    """
    from .fasta import start_digest, validate_fasta  # not needed by readers: keep `rgstore getseq` lean

    source = user_path(path)
    job = start_digest(source)
    importer: _InProcess | _InChild | None = None
    importing = -1
    try:
        summary = validate_fasta(source, progress=progress)
        if before_import is not None:
            before_import(summary)
        with scratch_dir(store, ".ingest-") as scratch:
            link = scratch / ("input.fa.gz" if summary.compression != "none" else "input.fa")
            with no_room(store.path, f"a copy of the FASTA {source}"):  # one from another filesystem: a full disk
                _link_or_copy(source, link)
            # gtars reads the file once and writes each residue once (Raw): the bar counts both.
            work = summary.size + sum(summary.lengths)
            # Before gtars looks at the store, until the genome is recorded: gc removes no collection
            # meanwhile (one this import reuses looks unreferenced and, by its files' age, old to it).
            importing = _mark_import(store)
            # gtars holds the GIL throughout: only from a child process can this one drive the bar.
            importer = (_InChild(store, link, source) if work >= CHILD_IMPORT_MIN_BYTES
                        else _InProcess(store, link, batch=not keep_collection))
            bar = progress(f"import {source.name} into the RefgetStore", total=work, unit="B")
            try:
                with deferred():  # the import's outcome is known before an interrupt can unwind past it
                    importer.run(bar, work)
            except OSError as exc:
                raise _import_failed(store, exc, source, summary) from None
            finally:
                bar.close()
            independent = job.result()
            assert importer.digest is not None  # ``run`` raised otherwise
            if not importer.was_new and not _index_agrees(store, importer.digest, independent):
                try:
                    with deferred():  # as the import: its outcome is known before an interrupt unwinds
                        importer.reindex()  # a collection index deleted or damaged since: the repair verify names
                except OSError as exc:  # the forced re-import writes as much as the import: it fails the same ways
                    raise _import_failed(store, exc, source, summary) from None
        assert importer is not None and importer.digest is not None
        digest, was_new = importer.digest, importer.was_new
        try:
            handle = open_refget(store, write=True)  # a handle opened before a child's commit would not see it
            ingested = _checked(handle, digest, was_new, summary, independent, source)
        except OSError as exc:
            # gc or an interrupted import of the same FASTA (``discard_import``) took the collection
            # back between gtars' import and this read-back.
            if removed_meanwhile(store, exc, digest) is None:
                raise
            raise collection_removed(digest) from None
        from .seqrestore import restore_sequence_files

        # gtars skips sequences its index lists: a data file deleted or damaged since stays so unless
        # rewritten here (re-adding the FASTA is the repair verify names). A collection already
        # stored is most likely such a repair, so its files are re-hashed; a new one's only sized.
        restore_sequence_files(SequenceFiles(store.refget_path), source, summary.compression, ingested,
                               rehash=not was_new)
        if then is not None:
            then(ingested)
        if not keep_collection and was_new:
            importer.remove_collection(digest)
        importer.release()
        return ingested
    except BaseException:
        # A failed check, an error or an interrupt (SIGTERM raises SystemExit in the CLI): take
        # back what this import added. The CLI's handler goes through ``interrupts.interrupt``,
        # so the import's outcome is known even when the signal arrived during it.
        job.cancel()
        if importer is not None:
            importer.release()  # before ``discard_import`` asks for gtars' lock: this process would wait on itself
            importer.wait()
        if importer is not None and importer.digest is not None:
            discard_import(store, importer.digest, importer.was_new)
        raise
    finally:
        if importing >= 0:
            os.close(importing)


_GTARS_ERRNO = re.compile(r"\(os error (\d+)\)")
"""How gtars' messages carry the errno of a failed system call (its OSErrors have none of their own)."""


def _import_failed(store: Store, exc: OSError, source: Path, summary: FastaSummary) -> RgstoreError:
    """The one-line error for a gtars import (or forced re-import) of ``source`` that failed with ``exc``.

    gtars' OSErrors carry no errno, so the cause is found: another process removed the collection or
    a sequence meanwhile, the disk is full or refused a write, this user may not write the RefgetStore,
    or else the input.
    """
    gone = removed_meanwhile(store, exc)
    if gone is not None:
        return collection_removed(gone)
    conflict = sequence_removed(exc, source)
    if conflict is not None:
        return conflict
    residues = sum(summary.lengths)  # a Raw RefgetStore keeps one byte per residue
    free = short_of_space(store.refget_path, residues)
    if free is not None:  # gtars names no errno: say what the disk has, not that the FASTA is bad
        return DiskWriteError(
            f"{source}: the RefgetStore import failed ({exc}); its {residues:,} residues need about as "
            f"many bytes and the store's disk has {free:,} free: free space and run the command again"
        )
    code = _GTARS_ERRNO.search(str(exc))
    if code is not None and int(code[1]) == errno.EMFILE:  # `ulimit -n`, not the FASTA
        return TooManyOpenFilesError()
    if code is None and _few_files_left():  # gtars gave no reason, and this process is at its limit: not the FASTA
        return TooManyOpenFilesError()
    limit = file_size_limit()
    if code is None and limit is not None and limit < max(summary.lengths, default=0):
        # gtars says "Inserter stopped receiving": its writer hit EFBIG on a sequence file (one byte per residue).
        return DiskWriteError(
            f"{source}: the RefgetStore import failed ({exc}); a sequence of {max(summary.lengths):,} residues "
            f"needs a file larger than this process's file size limit ({limit:,} bytes, ulimit -f): "
            "raise the limit and run the command again"
        )
    if code is not None and int(code[1]) in WRITE_ERRNOS:  # gtars keeps the errno only in its text
        return DiskWriteError(
            f"{source}: the RefgetStore import failed ({exc}); the disk refused a write into {store.refget_path} "
            "(full, a quota or a file size limit, ulimit -f): free space or raise the limit and run the command again"
        )
    refused = refget_access_hint(store.refget_path)
    if refused:  # gtars names no errno either: say which of the store's files this user may not write
        return StorePermissionError(
            f"{source}: the RefgetStore import failed ({exc}): {refused}; this user may not write the "
            f"store's RefgetStore (ask the store's owner; a store shared by a group: {SHARED_DOC})"
        )
    return InvalidInputError(f"{source}: the RefgetStore import failed: {exc}")


def _raise_failure(child: GtarsImport, source: Path) -> None:
    """Raise what the child import raised (a builtin exception type, as gtars raises in-process), if it failed."""
    if child.error is not None:
        name, args = child.error
        kind = getattr(builtins, name, None)
        if isinstance(kind, type) and issubclass(kind, Exception):
            try:
                exc = kind(*args)
            except TypeError:  # a type whose constructor wants other arguments (UnicodeDecodeError)
                pass
            else:
                raise exc
        raise IntegrityError(f"{source}: the RefgetStore import failed: {name}: {' '.join(map(str, args))}")
    if child.digest is None:
        raise IntegrityError(f"{source}: {child.failure}")


def refget_access_hint(refget: Path) -> str:
    """The first of the RefgetStore's shared files and directories this user may not write, with mode and owner ('' if none)."""
    return access_hint([(refget / name, True) for name in (
        "", "collections", "sequences", "collections.rgci", "sequences.rgsi", "rgstore.json")])


@contextmanager
def scratch_dir(store: Store, prefix: str) -> Iterator[Path]:
    """A scratch directory ``STORE/<prefix>*``, marked in use (flock) while the block runs, then removed.

    An exception or SystemExit (the CLI turns SIGTERM into one) removes it; a process killed
    outright (SIGKILL, or a signal this process does not handle) leaves it for ``sweep_scratch``.
    """
    import shutil  # lazily, as in _link_or_copy
    import tempfile

    store.environment.check_in_place()  # a store deleted or moved under an open handle: say so, not ENOENT
    path: Path | None = None
    fd = -1
    try:
        # A SIGTERM handled the moment the directory exists (inside mkdtemp, or right after it returns)
        # waits until its name is bound here, so the cleanup below removes it.
        with deferred():
            path = Path(tempfile.mkdtemp(prefix=prefix, dir=store.path))
        # An ordinary directory's mode (keeping a setgid bit), not mkdtemp's 0700: another user's gc may sweep it.
        os.chmod(path, (path.stat().st_mode & 0o2000) | (0o777 & ~current_umask()))
        fd = open_lock(path / _IN_USE)
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield path
    finally:
        if path is not None:
            shutil.rmtree(path, ignore_errors=True)
        if fd >= 0:
            os.close(fd)


_IMPORTING = ".import.lock"
"""Imports hold a shared flock on ``STORE/.import.lock`` from before gtars runs until they recorded; gc an exclusive one."""


def _mark_import(store: Store) -> int:
    """Mark an import running (a shared flock, waiting out a gc removing collections): the descriptor to close."""
    fd = open_lock(store.path / _IMPORTING)  # shared by every user of the store
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextmanager
def imports_paused(store: Store) -> Iterator[bool]:
    """Whether no import is running (then none starts until the block ends), without waiting for one.

    gc removes RefgetStore collections only inside this (``True``): an import that reuses a
    collection (its files as old as its first import, unreferenced since `genome remove`) holds
    the mark from before gtars finds it until the genome is recorded, which a collection's age
    cannot tell. The import's digest is known only once gtars has read the whole FASTA.
    """
    fd = open_lock(store.path / _IMPORTING)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
        else:
            yield True
    finally:
        os.close(fd)


def import_running(store: Store) -> bool:
    """Whether an import holds its mark now (a look, creating nothing: for `gc --dry-run`)."""
    # No mark file: no import ever marked one (or none this user could open: it cannot tell).
    return flock_held(store.path / _IMPORTING, shared=True)


@contextmanager
def fetch_lock(store: Store) -> Iterator[None]:
    """Serialise caching fetched sequences across processes (an flock on ``STORE/.fetch.lock``).

    Every fetch of one sequence imports the same one-record carrier collection and removes it
    afterwards; two processes doing that at once would remove it under each other's import.
    """
    fd = open_lock(store.path / ".fetch.lock")  # shared by every user of the store
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def sequence_readable(handle: Any, files: SequenceFiles, bare: str, length: int) -> bool:
    """Whether the RefgetStore behind ``handle`` indexes sequence ``bare`` and holds its whole data file.

    The file is checked on disk (the index outlives a deleted data file): asking gtars to read a
    residue instead costs 100-200 us per sequence once thousands are loaded.
    """
    return handle.get_sequence_metadata(bare) is not None and files.readable(bare, length)


class SequenceFiles:
    """Residues of a Raw RefgetStore read straight from its data files (``rgstore.json``'s template).

    gtars 0.10.0 keeps each sequence in Raw mode as exactly its upper-cased residues, one file per
    sequence; reading them directly streams an export at disk speed, where gtars' per-call cost
    grows with the number of sequences a handle has loaded.
    """

    def __init__(self, root: Path) -> None:
        try:
            manifest = msgspec.json.decode((root / "rgstore.json").read_bytes())
        except FileNotFoundError:
            raise NotFoundError(f"no sequences stored yet in {root}; add a genome with `rgstore genome init`") from None
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE):  # `ulimit -n` (or the system's table), not the store
                raise TooManyOpenFilesError() from None
            raise IntegrityError(f"{root / 'rgstore.json'} is unreadable: {exc}") from None
        except msgspec.DecodeError as exc:
            raise IntegrityError(f"{root / 'rgstore.json'} is unreadable: {exc}") from None
        if not isinstance(manifest, dict) or manifest.get("mode") != "Raw":
            mode = manifest.get("mode") if isinstance(manifest, dict) else None
            raise IntegrityError(f"the RefgetStore at {root} is in {mode} mode; rgstore reads and writes Raw stores only")
        template = manifest.get("seqdata_path_template") or DEFAULT_SEQ_TEMPLATE
        if not isinstance(template, str) or "%s" not in template or ".." in template or template.startswith("/"):
            raise IntegrityError(f"{root / 'rgstore.json'} has an unusable seqdata_path_template {template!r}")
        self.root = root
        self._prefix = os.path.join(root, "")  # str paths: pathlib costs ~20 us a sequence here
        self._template = template

    def path(self, bare: str) -> Path:
        """The data file of sequence ``bare`` (a bare sha512t24u digest)."""
        return Path(self.file(bare))

    def file(self, bare: str) -> str:
        """``path`` as a str (what the hot paths open)."""
        return self._prefix + self._template.replace("%s2", bare[:2]).replace("%s", bare)

    def readable(self, bare: str, length: int) -> bool:
        """Whether the data file of ``bare`` exists and holds ``length`` residues."""
        try:
            return os.stat(self.file(bare)).st_size == length
        except OSError:
            return False

    def read(self, bare: str, start: int, end: int) -> str | None:
        """Residues ``[start, end)`` of ``bare``; None if its file is missing or too short (not fetched, or gone).

        IntegrityError if the file holds bytes that are not ASCII (no Raw sequence does).
        """
        try:
            fd = os.open(self.file(bare), os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            data = os.pread(fd, end - start, start)
        finally:
            os.close(fd)
        if len(data) != end - start:
            return None
        if not data.isascii():
            raise IntegrityError(f"{self.file(bare)}: sequence {bare} holds bytes that are not residues; "
                                 "run `rgstore verify`")
        return data.decode("ascii")

    def chunks(self, bare: str, length: int, step: int) -> Iterator[bytes]:
        """The residues of ``bare`` in pieces of ``step`` bytes; NotFoundError if its file is gone or short."""
        try:
            with open(self.file(bare), "rb") as fh:
                done = 0
                while done < length:
                    chunk = fh.read(min(step, length - done))
                    if not chunk:
                        break
                    done += len(chunk)
                    yield chunk
        except FileNotFoundError:
            done = -1
        if done != length:
            raise NotFoundError(f"sequence {bare} cannot be read from {self.root}: its data file is gone or cut short")


def sweep_scratch(store: Store, *, older_than: float = STALE_SCRATCH_S) -> list[Path]:
    """Remove scratch directories left by killed processes; returns those removed.

    A directory goes only when it is older than ``older_than`` seconds and no live process holds
    its in-use lock (flock locks die with their process, whatever killed it).
    """
    import shutil  # lazily, as in _link_or_copy

    removed = []
    now = time.time()
    for path in sorted(p for prefix in SCRATCH_PREFIXES for p in store.path.glob(prefix + "*")):
        try:
            if not path.is_dir() or now - path.stat().st_mtime < older_than:
                continue
            fd: int | None = open_lock(path / _IN_USE, create=False)
        except FileNotFoundError:
            fd = None  # killed before it was marked: its age alone decides
        except OSError:
            continue
        try:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # a live import is using it
        finally:
            if fd is not None:
                os.close(fd)
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def discard_import(store: Store, digest: str, was_new: bool) -> None:
    """Take back an import whose command was refused or interrupted: remove the collection it added.

    Only a collection this import added (``was_new``) and no recorded genome is goes, under
    the RefgetStore's writer lock (gtars' batch lock: its own commits must run inside it). Its
    orphaned sequences go too, unless a recorded genome lists one of them (a remote genome's
    fetched sequence has no collection of its own: gtars would count it as an orphan).
    Best effort: a RefgetStore that stays locked keeps the collection rather than mask the refusal.
    The check and the removal run inside one LMDB write transaction (writer lock first, then
    gtars', as `rgstore gc` takes them): another process importing the same FASTA either recorded
    it before (it stays) or finds it gone in its own transaction and is refused, never recording a
    genome without sequences.
    """
    if not was_new:
        return
    from .views.genomes import genome_record, genomes_with_sequence

    env = store.environment

    def remove(txn: Any) -> None:
        with refget_gate(store.refget_path):  # gtars waits for its lock holding the GIL (rgstore.refgetgate)
            remove_locked(txn)

    def remove_locked(txn: Any) -> None:
        try:
            handle = open_refget(store, write=True)
            handle.set_lock_timeout(_DISCARD_LOCK_TIMEOUT_S)
            handle.lock_for_batch("rgstore-discard-refused-import")
        except (OSError, RgstoreError):
            return
        try:
            if genome_record(txn, env, digest) is not None:
                return  # another process recorded this very collection meanwhile: it stays
            orphans = handle.plan_orphan_removal(digest)
            needed = any(genomes_with_sequence(txn, env, strip_sq(str(s))) for s in orphans)
            handle.remove_collection(digest, remove_orphan_sequences=not needed)
        except OSError:
            pass
        finally:
            handle.release_batch_lock()

    try:
        store.environment.write(remove)
    except RgstoreError:
        pass  # e.g. a read-only handle: keep the collection rather than mask the refusal


def _checked(
    handle: Any, digest: str, was_new: bool, summary: FastaSummary, independent: FastaSummary, source: Path
) -> Ingested:
    from . import seqcol

    level2 = handle.get_collection_level2(digest)
    names, lengths, sequences = list(level2["names"]), list(level2["lengths"]), list(level2["sequences"])
    expected = ["SQ." + r.digest for r in independent.records]
    problems = []
    if names != summary.names or names != independent.names:
        problems.append("sequence names differ")
    if lengths != summary.lengths or lengths != independent.lengths:
        problems.append("sequence lengths differ")
    if sequences != expected:
        bad = next(n for n, got, want in zip(names, sequences, expected) if got != want) if len(sequences) == len(
            expected) else "(count)"
        problems.append(f"sequence digests differ (first: {bad})")
    level1 = seqcol.level1(names, lengths, sequences)
    if seqcol.top_level_digest(level1) != digest:
        problems.append(f"collection digest {digest} is not the seqcol digest of its level-2 arrays")
    theirs = handle.get_collection_level1(digest)
    if any(theirs.get(k) != v for k, v in level1.items()):
        problems.append("level-1 digests differ")
    if problems:
        raise IntegrityError(f"{source}: gtars import disagrees with rgstore's own reading: {'; '.join(problems)}")
    md5s = [str(handle.get_sequence_metadata(strip_sq(s)).md5) for s in sequences]
    return Ingested(
        digest=digest, names=names, lengths=lengths, sequences=sequences, md5s=md5s, level1=level1,
        descriptions=[r.description for r in summary.records], source_size=summary.size,
        source_md5=independent.md5, compression=summary.compression, was_new=was_new,
    )


def write_fasta(
    files: SequenceFiles, records: Sequence[tuple[str, str, int]], out: BinaryIO, *, width: int = 80,
    progress: ProgressFactory = null_progress,
) -> None:
    """Write ``(name, sequence digest, length)`` records as FASTA lines of ``width`` residues.

    Streams each sequence from its data file in chunks (bounded memory), unlike gtars'
    ``export_fasta``, which needs every sequence loaded into RAM first.
    """
    if width < 1:
        raise InvalidInputError(f"line width must be at least 1, not {width}")
    step = max(width, _EXPORT_CHUNK // width * width)
    bar = progress("export", total=sum(length for _, _, length in records), unit="bp")
    try:
        for name, digest, length in records:
            out.write(b">" + name.encode() + b"\n")
            try:
                for chunk in files.chunks(strip_sq(digest), length, step):
                    out.write(b"\n".join(chunk[i:i + width] for i in range(0, len(chunk), width)))
                    out.write(b"\n")
                    bar.update(len(chunk))
            except NotFoundError:
                raise NotFoundError(f"sequence {name} ({strip_sq(digest)}) cannot be read from the RefgetStore") from None
    finally:
        bar.close()

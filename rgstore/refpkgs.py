"""The Refpkgs service: taxtastic reference packages as event streams (``refpkg:<name>``).

Commands follow ``taxit``: create, update (files or metadata), rollback, rollforward, strip,
check, import and export; ``remove`` drops a package with its whole history (taxit has none). Each command is one ``Store.transact``: one undo step for create
and update, N ``Undone``/``Redone`` events for ``-n N``, one ``HistoryStripped`` for strip.
Files are blobs stored before the transaction (``rgstore.refpkg_blobs``): if the command then
fails, the blobs it newly created are deleted again, so a failed command leaves no event and
no orphan file. State comes from ``rgstore.views.refpkgs``.

A command returns a ``RefpkgState``: the current step and its newest log entry, read in O(1)
whatever the package's depth. Only ``info``, ``log`` and ``export`` read every step a rollback
reaches (and ``strip``, whose fold gathers the log into one step); ``check`` and
``resource_path`` read the current step alone.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import IO, TYPE_CHECKING

import msgspec
from msgspec import UNSET, UnsetType

from .blobnames import named_path
from .blobs import BlobInfo
from .environment import Txn
from .errors import (
    ConflictError,
    IntegrityError,
    InvalidInputError,
    NotFoundError,
    NothingToRedoError,
    NothingToUndoError,
    refuse_negative,
)
from .events import FileRef, HistoryStripped, Redone, RefpkgCreated, RefpkgRemoved, RefpkgUpdated, Undone
from .log import NewEvent
from .pathtext import given_path
from .progress import ProgressFactory, null_progress
from .refpkg_blobs import staged_blobs
from .refpkg_check import check_package
from .refpkg_manifest import FORMAT_VERSION, PRE_1_1_KEYS, with_format_version
from .refpkg_names import check_key, check_refpkg_name, choose_filename, split_assignments
from .refpkg_pages import HeadPages
from .refpkg_phylo import with_derived_phylo_model
from .suggest import SCAN_LIMIT, did_you_mean
from .views.refpkgs import (
    Head,
    Step,
    list_heads,
    name_owner,
    refpkg_head,
    refpkg_log,
    refpkg_step,
    refpkg_stream,
)
from .views.refpkgstate import refpkg_log_chain

if TYPE_CHECKING:
    from .refpkg_io import ExportReport
    from .store import Store

__all__ = [
    "Refpkgs", "RefpkgInfo", "RefpkgState", "RefpkgSummary", "RefpkgRemoval", "LogEntry", "CREATE_FILE_KEYS",
    "CREATE_LOG",
]

CREATE_FILE_KEYS = (
    "phylo_model", "aln_fasta", "aln_sto", "mask", "profile", "seq_info", "taxonomy", "tree",
    "tree_stats", "readme", "model",
)
"""File keys ``create`` accepts, in the order taxtastic adds them."""

CREATE_LOG = ["Stripped refpkg (removed 0 files)", "Loaded initial files into empty refpkg"]
"""The log of a fresh package: taxtastic's create is a load step followed by a strip."""

_SKIP_COPY_BYTES = 1 << 20
"""From this size, a file an update names again is hashed in place first and not copied if unchanged
(re-reading a smaller one costs more than copying it)."""


def _export_format_version(step: Step) -> str | None:
    """The ``format_version`` export writes for ``step``: its own, else "1.1", else None (pre-1.1 file keys)."""
    return with_format_version(step.metadata, step.files).get("format_version")


class RefpkgInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A package's current state and how far it can be rolled back and forward."""

    name: str
    seq: int
    time: datetime
    files: dict[str, FileRef]
    metadata: dict[str, str]
    log: list[str]
    rollbacks: int
    rollforwards: int
    export_format_version: str | None = None
    """The ``format_version`` ``export`` writes for the current state: ``metadata``'s if it records one
    (``metadata`` is only what the package records), else "1.1", or None (export writes none) if a
    file key is a pre-1.1 one."""


class RefpkgState(msgspec.Struct, frozen=True, kw_only=True):
    """What a command leaves: the current step, with the newest log entry rather than the whole log.

    Reading it costs O(1) whatever the package's depth (``RefpkgInfo`` walks every step a
    rollback reaches to build the log). Fields are ``RefpkgInfo``'s, ``entry`` in place of ``log``.
    """

    name: str
    seq: int
    time: datetime
    files: dict[str, FileRef]
    metadata: dict[str, str]
    entry: str | None
    """The newest log entry (``info(name).log[0]``); None if the log is empty."""
    rollbacks: int
    rollforwards: int
    export_format_version: str | None = None
    """As ``RefpkgInfo``'s: the ``format_version`` export writes (None: none, the package being pre-1.1)."""
    dropped_keys: list[str] | UnsetType = UNSET
    """Set by ``import_package`` when CONTENTS.json has keys the refpkg format has not (taxit keeps
    them; rgstore does not): their names, first seen first, from every state imported."""
    unnamed_files: list[str] | UnsetType = UNSET
    """Set by ``import_package`` when the package's folder holds entries no state of its CONTENTS.json
    names (taxit strip would delete them; rgstore never stores them): their names, sorted."""


class RefpkgSummary(msgspec.Struct, frozen=True, kw_only=True):
    """One line of ``refpkg list``."""

    name: str
    seq: int
    time: datetime
    locus: str
    files: int
    rollbacks: int
    rollforwards: int


class RefpkgRemoval(msgspec.Struct, frozen=True, kw_only=True):
    """What ``remove`` dropped: the package's files in its current state and every retained step."""

    name: str
    seq: int
    """The removal's seq in the log."""
    files: int
    steps: int
    """Retained states dropped: the current one, those a rollback reached and those a rollforward did."""


class LogEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One log entry with the step (seq, time, actor) that wrote it; newest first."""

    message: str
    seq: int
    time: datetime
    actor: str


class Refpkgs:
    """Reference packages of one store (obtain as ``store.refpkgs``)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.environment = store.environment
        self._pages = HeadPages(store.environment)

    # -- commands -----------------------------------------------------------------------------

    def create(
        self, name: str, *, locus: str, files: Sequence[tuple[str, str | Path]] | Mapping[str, str | Path] = (),
        description: str | None = None, author: str | None = None,
        package_version: str | None = None, progress: ProgressFactory = null_progress,
    ) -> RefpkgState:
        """Create package ``name`` (ConflictError if it exists) as taxtastic's ``create`` does.

        Metadata gets create_date, format_version and locus (then description, author and
        package_version if given); ``files`` are (key, path) pairs. A tree_stats file also
        gives the package its phylo_model, derived as taxtastic does (unless phylo_model is
        given too). The log starts with taxtastic's two entries, and a fresh package cannot be
        rolled back. ``files`` may also be a ``{key: path}`` mapping.
        """
        check_refpkg_name(name)
        if not locus:
            raise InvalidInputError("a refpkg needs a locus (-l LOCUS)")
        metadata = {"create_date": time.strftime("%Y-%m-%d %H:%M:%S"),
                    "format_version": FORMAT_VERSION, "locus": locus}
        for key, value in (("description", description), ("author", author),
                           ("package_version", package_version)):
            if value is not None:
                metadata[key] = value
        pairs = self._checked_files(list(files.items()) if isinstance(files, Mapping) else files)

        def command(txn: Txn, refs: dict[str, FileRef]) -> list[NewEvent]:
            head = refpkg_head(txn, self.environment, name)
            if head is not None and head.current:
                raise ConflictError(f"refpkg {name!r} already exists; see `rgstore refpkg info {name}`")
            event = RefpkgCreated(name=name, files=refs, metadata=metadata, log=list(CREATE_LOG))
            return [NewEvent(stream=refpkg_stream(name), event=event)]

        with with_derived_phylo_model(pairs) as pairs:
            self._commit(name, pairs, command, progress)
        return self.current(name)

    def update_files(
        self, name: str, changes: Sequence[str | tuple[str, str]] | Mapping[str, str] | str, *,
        progress: ProgressFactory = null_progress,
    ) -> RefpkgState:
        """Set file keys from ``key=path`` items in one step (a later duplicate key wins).

        Every path is checked before anything is stored. Setting tree_stats also sets
        phylo_model, derived from it in the same step (as ``taxit update`` does), unless
        phylo_model is named after tree_stats (taxit's order: the later one wins). The log
        entry is taxtastic's ``Updates files: k1=p1, k2=p2`` with the paths as given.
        """
        pairs = split_assignments(changes, "path")
        checked = self._checked_files(pairs)
        message = "Updates files: " + ", ".join(f"{key}={path}" for key, path in pairs)
        # taxit copies a file per pair, plus a phylo_model per tree_stats pair; its strip counts
        # each copy a later pair in the same update replaced.
        copies = len(pairs) + sum(1 for key, _path in pairs if key == "tree_stats")

        def command(txn: Txn, refs: dict[str, FileRef]) -> list[NewEvent]:
            self._current(txn, name)
            event = RefpkgUpdated(name=name, files=dict(refs), message=message,
                                  superseded=max(copies - len(refs), 0))
            return [NewEvent(stream=refpkg_stream(name), event=event)]

        with with_derived_phylo_model(checked, in_order=True) as checked:
            self._commit(name, checked, command, progress)
        return self.current(name)

    def update_metadata(
        self, name: str, changes: Sequence[str | tuple[str, str]] | Mapping[str, str] | str
    ) -> RefpkgState:
        """Set metadata keys from ``key=value`` items in one step (``Updated metadata: ...``)."""
        pairs = split_assignments(changes, "value")
        for key, _value in pairs:
            check_key(key, "metadata")
        message = "Updated metadata: " + ", ".join(f"{key}={value}" for key, value in pairs)
        values: dict[str, str | None] = dict(pairs)

        def command(txn: Txn) -> list[NewEvent]:
            self._current(txn, name)
            event = RefpkgUpdated(name=name, metadata=values, message=message)
            return [NewEvent(stream=refpkg_stream(name), event=event)]

        self.store.transact(command)
        return self.current(name)

    def rollback(self, name: str, n: int = 1) -> RefpkgState:
        """Undo the last ``n`` steps in one command, or none with taxtastic's error text."""
        self._check_count(n)

        def command(txn: Txn) -> list[NewEvent]:
            _head, step = self._current(txn, name)
            if step.depth < n:
                raise NothingToUndoError(
                    f"Cannot rollback {n} changes; refpkg only records {step.depth} changes."
                )
            return [NewEvent(stream=refpkg_stream(name), event=Undone()) for _ in range(n)]

        try:
            self.store.transact(command)
        except NothingToUndoError as exc:
            raise NothingToUndoError(self._zipper_text(name, n, str(exc), "rollback")) from None
        return self.current(name)

    def rollforward(self, name: str, n: int = 1) -> RefpkgState:
        """Redo the last ``n`` rolled-back steps in one command, or none with taxtastic's error text."""
        self._check_count(n)

        def command(txn: Txn) -> list[NewEvent]:
            head, _step = self._current(txn, name)
            if len(head.redo) < n:
                raise NothingToRedoError(
                    f"Cannot rollforward {n} changes; "
                    f"refpkg only records {len(head.redo)} rolled back changes."
                )
            return [NewEvent(stream=refpkg_stream(name), event=Redone()) for _ in range(n)]

        try:
            self.store.transact(command)
        except NothingToRedoError as exc:
            raise NothingToRedoError(self._zipper_text(name, n, str(exc), "rollforward")) from None
        return self.current(name)

    def strip(self, name: str) -> RefpkgState:
        """Drop the package's undo and redo history; ``rgstore gc`` may then free files only it held."""

        def command(txn: Txn) -> list[NewEvent]:
            self._current(txn, name)
            return [NewEvent(stream=refpkg_stream(name), event=HistoryStripped())]

        self.store.transact(command)
        return self.current(name)

    def remove(self, name: str) -> RefpkgRemoval:
        """Remove package ``name`` with its whole undo/redo history (NotFoundError if there is none).

        Nothing can roll it back: every file only this package held is free for ``rgstore gc``
        (as after ``genome remove``), and ``create`` or ``import`` may reuse the name. The
        package's events stay in the log (``rgstore log --stream refpkg:NAME``).
        """
        dropped: dict[str, int] = {}

        def command(txn: Txn) -> list[NewEvent]:
            head, step = self._current(txn, name)
            dropped.update(files=len(step.files), steps=step.depth + 1 + len(head.redo))
            return [NewEvent(stream=refpkg_stream(name), event=RefpkgRemoved(name=name))]

        [seq] = self.store.transact(command)
        return RefpkgRemoval(name=name, seq=seq, files=dropped["files"], steps=dropped["steps"])

    def import_package(
        self, source: Path | str, *, name: str | None = None, history: bool = True,
        progress: ProgressFactory = null_progress,
    ) -> RefpkgState:
        """Import a taxtastic directory, .tar.gz or .zip (see ``rgstore.refpkg_io.import_package``)."""
        from .refpkg_io import import_package

        return import_package(self, given_path(source, "refpkg directory or archive"), name=name, history=history, progress=progress)

    def export(
        self, name: str, dest: Path | str | IO[bytes], *, fmt: str | None = None, history: bool = True,
        progress: ProgressFactory = null_progress,
    ) -> ExportReport:
        """Write the package as a taxtastic directory, .tar.gz or .zip (see ``rgstore.refpkg_io``).

        ``fmt`` is ``dir``, ``tar`` or ``zip``; left out, it follows ``dest``'s name (``.zip``: zip,
        ``.tar.gz``, ``.tgz``, ``.tar``: tar, else a directory). The parent directory must exist
        (like `genome export` and `log export`): a mistyped path is an error, not a new directory tree.
        ``dest`` may be a binary stream (``sys.stdout.buffer``) with ``fmt`` ``tar`` or ``zip``: written
        front to back, never seeking, its blobs verified as they go (a failure leaves it cut short).
        """
        from .refpkg_io import export_package

        if not isinstance(dest, (str, os.PathLike)):
            if fmt not in ("tar", "zip"):
                raise InvalidInputError(f"a stream takes a tar or zip archive: give fmt='tar' or 'zip', not {fmt!r}")
            return export_package(self, name, dest, fmt=fmt, history=history, progress=progress)
        dest = given_path(dest, "refpkg export")
        if fmt is None:  # "pkg.tar.gz" meant an archive, not a directory of that name
            lowered = dest.name.lower()
            fmt = "zip" if lowered.endswith(".zip") else "tar" if lowered.endswith((".tar.gz", ".tgz", ".tar")) else "dir"
        if not dest.absolute().parent.is_dir():
            raise NotFoundError(f"cannot write {dest}: directory {dest.parent} does not exist")
        return export_package(self, name, dest, fmt=fmt, history=history, progress=progress)

    # -- queries ------------------------------------------------------------------------------

    def info(self, name: str) -> RefpkgInfo:
        """The package's current state with its whole log (O(depth)); NotFoundError if there is no such package."""
        with self.store.read() as txn:
            head, step = self._current(txn, name)
            log = refpkg_log(txn, self.environment, name, step.seq)
        return RefpkgInfo(name=name, seq=step.seq, time=step.time, files=step.files,
                          metadata=step.metadata, log=log, rollbacks=step.depth,
                          rollforwards=len(head.redo),
                          export_format_version=_export_format_version(step))

    def current(self, name: str) -> RefpkgState:
        """The package's current state in O(1) steps read; NotFoundError if there is no such package."""
        with self.store.read() as txn:
            head, step = self._current(txn, name)
            entry = self._newest_entry(txn, name, step)
        return RefpkgState(name=name, seq=step.seq, time=step.time, files=step.files, metadata=step.metadata,
                           entry=entry, rollbacks=step.depth, rollforwards=len(head.redo),
                           export_format_version=_export_format_version(step))

    def list_all(self) -> list[RefpkgSummary]:
        """Every package that currently exists, by name."""
        out: list[RefpkgSummary] = []
        with self.store.read() as txn:
            for name, head in list_heads(txn, self.environment):
                if not head.current:
                    continue
                step = refpkg_step(txn, self.environment, name, head.current)
                out.append(RefpkgSummary(
                    name=name, seq=step.seq, time=step.time, locus=step.metadata.get("locus", ""),
                    files=len(step.files), rollbacks=step.depth, rollforwards=len(head.redo),
                ))
        return out

    def page(
        self, txn: Txn, offset: int, limit: int, *, after: str | None = None,
    ) -> tuple[int, list[tuple[str, Head]]]:
        """(existing packages, those from the ``offset``-th by name, ``limit`` at most) in read txn ``txn``.

        ``after``: instead, those whose name sorts above it (it need not exist: keyset paging).
        Costs O(limit) head reads once the snapshot's index is built (one pass of the heads per
        commit; see ``rgstore.refpkg_pages``). A negative ``offset`` or ``limit`` is InvalidInputError.
        """
        refuse_negative("offset", offset)
        refuse_negative("limit", limit)
        return self._pages.page(txn, offset, limit, after=after)

    def names(self) -> list[str]:
        """The name of every package that currently exists, sorted; reads heads alone, no step (for TAB completion)."""
        with self.store.read() as txn:
            return [name for name, head in list_heads(txn, self.environment) if head.current]

    def log(self, name: str) -> list[LogEntry]:
        """The package's log, newest first, each entry with the step that wrote it."""
        out: list[LogEntry] = []
        with self.store.read() as txn:
            _head, current = self._current(txn, name)
            for step in refpkg_log_chain(txn, self.environment, name, current.seq):
                out += [LogEntry(message=m, seq=c.seq, time=c.time, actor=c.actor) for m, c in step.credited()]
        return out

    def resource_path(self, name: str, key: str) -> Path:
        """Path of file ``key`` under its own name, after verifying its content (IntegrityError if corrupt).

        The path is ``STORE/names/<sha256>/<filename>``, a symlink to the blob (``rgstore.blobnames``), so a
        tool that reads the format from the extension sees it; on a store this process cannot write, the
        blob's own path (no extension).
        """
        ref = self._files(name).get(key)
        if ref is None:
            raise NotFoundError(
                f"No such resource {key!r} in refpkg {name!r}; see `rgstore refpkg info {name}`"
            )
        self.store.blobs.ensure(ref.sha256, ref.size)  # a mirror's blob not fetched yet comes from its upstream
        found = self.store.blobs.verify(ref.sha256)
        if found.md5 != ref.md5:
            raise IntegrityError(f"File {ref.name} referred to by key {key} did not match its MD5 sum "
                                 f"(found: {found.md5}, expected {ref.md5})")
        return named_path(self.store.path, ref.sha256, ref.name, self.store.blobs.path(ref.sha256))

    def check(self, name: str, *, progress: ProgressFactory = null_progress) -> list[str]:
        """Every problem that makes the package unusable by pplacer (taxtastic's rules); [] if none."""
        with self.store.read() as txn:
            step = self._current(txn, name)[1]
        problems = check_package(step.files, self.store.blobs, progress)
        # taxit check never looks at metadata, but pplacer refuses any format_version but "1.1"
        # (one set by `update --metadata` is exported as it is), and an absent one: export
        # writes "1.1" where it is absent except in a pre-1.1 package (tree_file, ...), which so
        # stays one pplacer refuses, as it should (check judges what export writes).
        version = with_format_version(step.metadata, step.files).get("format_version")
        if version is None:
            old = ", ".join(sorted(PRE_1_1_KEYS.intersection(step.files)))
            problems.append(f"format_version is missing and the package has pre-1.1 file keys ({old}): "
                            f"pplacer refuses it as an older, incompatible format; it reads only {FORMAT_VERSION}.")
        elif version != FORMAT_VERSION:
            problems.append(f"format_version is {version!r}; pplacer reads only {FORMAT_VERSION}.")
        return problems

    def state(self, txn: Txn, name: str) -> tuple[Head, Step]:
        """(head, current step) of an existing package inside ``txn``; NotFoundError otherwise."""
        return self._current(txn, name)

    # -- internals ----------------------------------------------------------------------------

    def _current(self, txn: Txn, name: str) -> tuple[Head, Step]:
        head = refpkg_head(txn, self.environment, name)
        if head is None or not head.current:
            names = (other for other, other_head in islice(list_heads(txn, self.environment), SCAN_LIMIT)
                     if other_head.current)
            raise NotFoundError(f"no refpkg {name!r}; {did_you_mean(name, names) or 'see `rgstore refpkg list`'}")
        return head, refpkg_step(txn, self.environment, name, head.current)

    def _files(self, name: str) -> dict[str, FileRef]:
        with self.store.read() as txn:
            return self._current(txn, name)[1].files

    def _newest_entry(self, txn: Txn, name: str, step: Step) -> str | None:
        # Every step the fold makes above depth 0 holds exactly its own entry, so this reads no
        # further step; walking on past an empty one keeps it right for any Step the view holds.
        if step.log:
            return step.log[0]
        parent = step.parent if step.depth else 0
        return next((s.log[0] for s in refpkg_log_chain(txn, self.environment, name, parent) if s.log), None)

    @staticmethod
    def _check_count(n: int) -> None:
        if n < 1:
            raise InvalidInputError(f"-n must be at least 1, got {n}")

    def _zipper_text(self, name: str, n: int, text: str, verb: str) -> str:
        if text.startswith("Cannot"):
            return text
        # The engine's own zipper refused: say it in taxtastic's words, with the view's count.
        info = self.current(name)
        if verb == "rollback":
            return f"Cannot rollback {n} changes; refpkg only records {info.rollbacks} changes."
        return f"Cannot rollforward {n} changes; refpkg only records {info.rollforwards} rolled back changes."

    @staticmethod
    def _checked_files(files: Sequence[tuple[str, str | Path]]) -> list[tuple[str, Path]]:
        """(key, path) pairs with valid keys and existing regular files; the last pair per key wins,
        at its own place (``taxit update``'s derived phylo_model depends on that order)."""
        by_key: dict[str, Path] = {}
        for key, raw in files:
            check_key(key, "file")
            path = given_path(raw, f"{key} file")
            if not path.is_file():
                if path.exists():  # a folder, or a pipe such as bash's tree=<(rppr reroot ...)
                    raise InvalidInputError(f"Not a regular file: {raw} (write it to a file first)")
                raise NotFoundError(f"No such file: {raw}")
            by_key.pop(key, None)
            by_key[key] = path
        return list(by_key.items())

    def refs_for(
        self, txn: Txn, name: str, pairs: Sequence[tuple[str, str, BlobInfo]]
    ) -> dict[str, FileRef]:
        """FileRefs for (key, basename, blob) triples, naming each file so no name holds two contents."""
        chosen: dict[str, str] = {}

        def owner(filename: str) -> str | None:
            return chosen.get(filename) or name_owner(txn, self.environment, name, filename)

        refs: dict[str, FileRef] = {}
        for key, basename, info in pairs:
            filename = choose_filename(basename, info.sha256, owner)
            chosen[filename] = info.sha256
            refs[key] = FileRef(name=filename, sha256=info.sha256, md5=info.md5, size=info.size)
        return refs

    def _commit(
        self, name: str, pairs: Sequence[tuple[str, Path]],
        build: Callable[[Txn, dict[str, FileRef]], list[NewEvent]], progress: ProgressFactory,
    ) -> list[int]:
        stored: dict[str, FileRef] = {}
        if any(path.stat().st_size >= _SKIP_COPY_BYTES for _key, path in pairs):
            with self.store.read() as txn:  # the files these replace: a large one named again unchanged is not copied
                head = refpkg_head(txn, self.environment, name)
                stored = refpkg_step(txn, self.environment, name, head.current).files if head and head.current else {}
        with staged_blobs(self.store) as staged:
            bar = progress("store files", total=sum(p.stat().st_size for _k, p in pairs), unit="B")
            infos: list[BlobInfo] = []
            try:
                for key, path in pairs:
                    infos.append(staged.put(path, likely=stored.get(key)))
                    bar.update(infos[-1].size)
            finally:
                bar.close()
            triples = [(key, os.path.basename(path), info)
                       for (key, path), info in zip(pairs, infos, strict=True)]
            return staged.commit(lambda txn: build(txn, self.refs_for(txn, name, triples)))

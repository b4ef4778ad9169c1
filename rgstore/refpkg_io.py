"""Interchange with taxtastic: import and export packages as directories, .tar.gz and .zip.

Import reads CONTENTS.json and the files it names without ever extracting anything: archive
members are streamed into private temp files, directory members must be regular files (not
symlinks), and every file name must be a bare name. Every MD5 is verified (history files
too: a rollback must never reach a state whose files are missing). The history chain becomes
events: the oldest state, one update per later state, then one ``Undone`` per rolled-back
state, so rollback and rollforward after import behave as ``taxit`` would.

Export writes into a temp sibling and renames it into place, so a failed export leaves
nothing behind; every blob is verified against its sha256 while it is copied.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator
from contextlib import ExitStack
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import IO, TYPE_CHECKING

import msgspec

from .blobs import BlobInfo
from .environment import Txn
from .errors import ConflictError, IntegrityError, InvalidInputError, NotFoundError, RgstoreError
from .events import FileRef, RefpkgImported, RefpkgUpdated, Undone
from .log import NewEvent
from .pathtext import path_text
from .progress import Progress, ProgressFactory
from .refpkg_archive import PackageSource, open_package, package_kind, strip_archive_suffix
from .refpkg_blobs import StagedBlobs, staged_blobs
from .refpkg_export import stream_package, write_package
from .refpkg_manifest import Manifest, ManifestState, check_nesting, parse_manifest, render_manifest
from .refpkg_names import check_filename, check_key, check_refpkg_name, is_safe_filename
from .refpkg_tar import read_tar_once
from .views.refpkgs import refpkg_chain, refpkg_head, refpkg_log, refpkg_step, refpkg_stream

if TYPE_CHECKING:
    from .refpkgs import Refpkgs, RefpkgState

__all__ = ["ExportReport", "import_package", "export_package", "default_name", "FORMATS"]

FORMATS = ("dir", "tar", "zip")
_HISTORY_ONLY_HINT = ("; only the package's rollback/rollforward history names it: "
                     "import with --no-history to keep just the current state")


class ExportReport(msgspec.Struct, frozen=True, kw_only=True):
    """What an export wrote: where, how many files (CONTENTS.json aside) and their bytes."""

    name: str
    path: str
    format: str
    files: int
    bytes: int
    history: bool


def default_name(source: Path) -> str:
    """A package name from its path: the basename without archive suffixes and ``.refpkg``."""
    # abspath, not resolve: "." and "dir/.." name their folder, and a symlink keeps its own name
    return strip_archive_suffix(Path(os.path.abspath(source)).name).removesuffix(".refpkg")


# --- import -----------------------------------------------------------------------------------


def _states(manifest: Manifest, history: bool) -> list[ManifestState]:
    """The states to replay, oldest first: rollback states, the current one, then rollforwards."""
    if not history:
        return [manifest.current]
    return [*reversed(manifest.rollbacks), manifest.current, *manifest.rollforwards]


def _state_label(manifest: Manifest, index: int) -> str:
    """Which state ``_states(manifest, True)[index]`` is, as a person finds it in CONTENTS.json."""
    back = len(manifest.rollbacks)
    if index < back:
        return f"rollback state {back - index}"
    return "the current state" if index == back else f"rollforward state {index - back}"


def _needed(manifest: Manifest, history: bool) -> dict[str, tuple[str, str]]:
    """file name -> (md5, a key naming it), refusing unsafe names and one name with two contents."""
    needed: dict[str, tuple[str, str]] = {}
    where: dict[str, int] = {}
    for index, state in enumerate(_states(manifest, history)):
        for key, (filename, md5) in state.files.items():
            check_key(key, "file")
            check_filename(filename, key)
            seen = needed.setdefault(filename, (md5, key))
            first = where.setdefault(filename, index)
            if seen[0] != md5:
                raise _two_md5s(manifest, history, filename, (seen[1], seen[0], first), (key, md5, index))
    return needed


def _two_md5s(manifest: Manifest, history: bool, filename: str, one: tuple[str, str, int],
              other: tuple[str, str, int]) -> InvalidInputError:
    """The error for ``filename`` recorded with two MD5 sums: (key, md5, index in ``_states``) of each.

    It names the states, so the user can find the wrong one. When the current state itself
    disagrees, those are its two keys, and --no-history (keeping just that state) is no way out.
    """
    current = [(key, md5) for key, (name, md5) in manifest.current.files.items() if name == filename]
    if len({md5 for _, md5 in current}) > 1:
        (key1, md5_1), (key2, md5_2) = current[0], next(kv for kv in current if kv[1] != current[0][1])
        return InvalidInputError(f"file {filename} is recorded with two MD5 sums ({md5_1} for key {key1}, {md5_2} "
                                 f"for key {key2}, both in the current state); correct CONTENTS.json")
    (key1, md5_1, at1), (key2, md5_2, at2) = one, other
    return InvalidInputError(
        f"file {filename} is recorded with two MD5 sums ({md5_1} for key {key1} in {_state_label(manifest, at1)}, "
        f"{md5_2} for key {key2} in {_state_label(manifest, at2)}); correct CONTENTS.json"
        + (", or import with --no-history to keep just the current state" if history else "")
    )


def _check_metadata(states: list[ManifestState]) -> None:
    """Refuse metadata keys that ``update --metadata`` would refuse (control characters, '=', ...)."""
    for state in states:
        for key in state.metadata:
            check_key(key, "metadata")


def _diff(name: str, old: ManifestState, new: ManifestState, refs: dict[str, FileRef]) -> RefpkgUpdated:
    """The update event turning state ``old`` into ``new``."""
    files: dict[str, FileRef | None] = {k: None for k in old.files if k not in new.files}
    files.update({k: refs[fn] for k, (fn, md5) in new.files.items() if old.files.get(k) != (fn, md5)})
    metadata: dict[str, str | None] = {k: None for k in old.metadata if k not in new.metadata}
    metadata.update({k: v for k, v in new.metadata.items() if old.metadata.get(k) != v})
    return RefpkgUpdated(name=name, files=files, metadata=metadata, message=new.message)


def _counted(src: PackageSource, filename: str, bar: Progress, counted: list[bool]) -> Iterator[bytes]:
    """Member ``filename``'s bytes from the start (it was found present), the first read moving ``bar``.

    The blob store may read a member again (its stored copy vanished before the commit): that read
    is not progress.
    """
    first = not counted[0]
    counted[0] = True
    for chunk in src.member_chunks(filename) or ():
        if first:
            bar.update(len(chunk))
        yield chunk


def _missing(filename: str, key: str, source: Path, hint: str) -> NotFoundError:
    return NotFoundError(f"File {filename} referred to by key {key} is missing from {source} "
                         f"or is not a regular file (symlinks and folders are refused){hint}")


def _mismatch(filename: str, key: str, found: str, md5: str, hint: str) -> IntegrityError:
    return IntegrityError(f"File {filename} referred to by key {key} did not match its MD5 sum "
                          f"(found: {found}, expected {md5}){hint}")


def _hint(manifest: Manifest, filename: str) -> str:
    """What to say of a bad file: taxit itself only reads history files on rollback, so a package whose
    old files were deleted or edited by hand still works there: say which state needs it and the way out."""
    current = {fn for fn, _md5 in manifest.current.files.values()}
    return "" if filename in current else _HISTORY_ONLY_HINT


def _import_files(stack: ExitStack, staged: StagedBlobs, source: Path, history: bool,
                  progress: ProgressFactory) -> tuple[Manifest, dict[str, BlobInfo], list[str]]:
    """Stage the files of a package directory or .zip, each once its manifest has been checked to name it
    (and the names of the folder's entries, as ``PackageSource.member_names``)."""
    src = stack.enter_context(open_package(source))
    manifest = parse_manifest(src.manifest)
    states = _states(manifest, history)
    _check_metadata(states)
    needed = _needed(manifest, history)
    blobs: dict[str, BlobInfo] = {}
    order = src.read_order(needed)
    # In bytes, as declared by the source: a package is a few files, one of them often a GB alignment.
    bar = progress("import files", total=sum(src.member_size(filename) for filename in order), unit="B")
    try:  # closed on an error too: its line would otherwise be glued to the bar
        for filename in order:
            md5, key = needed[filename]
            if src.member_chunks(filename) is None:
                raise _missing(filename, key, source, _hint(manifest, filename))
            # Streamed straight into the blob store: a temp copy would write every byte twice.
            info = staged.put_stream(partial(_counted, src, filename, bar, [False]))
            if info.md5 != md5:
                raise _mismatch(filename, key, info.md5, md5, _hint(manifest, filename))
            blobs[filename] = info
    finally:
        bar.close()
    return manifest, blobs, src.member_names()


def _import_tar(staged: StagedBlobs, source: Path, history: bool,
                progress: ProgressFactory) -> tuple[Manifest, dict[str, BlobInfo], list[str]]:
    """Stage the files of a tar (a file or a pipe) in one pass over it, then check them as the other containers'.

    The manifest is often the archive's last member: until it is met, every member that may be a
    file of the package is staged, and what it does not name is dropped again once checked.
    """
    parsed: list[tuple[bytes, Collection[str] | None]] = []

    def wanted(raw: bytes) -> Collection[str] | None:
        if not parsed or parsed[0][0] is not raw:
            try:
                names: Collection[str] | None = _needed(parse_manifest(raw), history)
            except RgstoreError:  # refused again below, once the archive's own checks have run
                names = None
            parsed[:] = [(raw, names)]
        return parsed[0][1]

    # In bytes of the archive as it is read (a pipe's size is not known): one pass, so no file's size is known ahead.
    bar = progress("import files", total=source.stat().st_size if source.is_file() else None, unit="B")
    try:
        pkg = read_tar_once(source, stage=staged.put_stream, wanted=wanted, advance=bar.update,
                            room=staged.store.blobs.root)
    finally:
        bar.close()
    manifest = parse_manifest(pkg.manifest)
    states = _states(manifest, history)
    _check_metadata(states)
    needed = _needed(manifest, history)
    blobs: dict[str, BlobInfo] = {}
    for filename in [*(fn for fn in pkg.files if fn in needed), *(fn for fn in needed if fn not in pkg.files)]:
        md5, key = needed[filename]
        info = pkg.files.get(filename)
        if info is None:
            raise _missing(filename, key, source, _hint(manifest, filename))
        if info.md5 != md5:
            raise _mismatch(filename, key, info.md5, md5, _hint(manifest, filename))
        blobs[filename] = info
    staged.release({info.sha256 for info in blobs.values()})
    return manifest, blobs, list(pkg.names)


STDIN = "-"
"""The source that means standard input, as for ``genome init --fasta -``: recorded as given, read as /dev/stdin."""
_STDIN_PATH = "/dev/stdin"


def import_package(
    service: Refpkgs, source: Path, *, name: str | None, history: bool, progress: ProgressFactory
) -> RefpkgState:
    """Import a taxtastic package (directory, .tar.gz, .tgz, .tar or .zip; a tar may come through a pipe) as a new refpkg.

    A tar is read once, front to back. Every MD5 is verified; with ``history`` the rollback/rollforward chain is replayed as
    events, else only the current state (with its full log) is imported. A failed import
    leaves no event and no new blob. ``source`` ``-`` is standard input (a tar, named by ``name``),
    recorded as ``-``; errors name /dev/stdin ``standard input``.
    """
    recorded = path_text(source)
    if recorded == STDIN:
        if name is None:  # "-" would name it "-"; a redirected file's name is not known
            raise InvalidInputError("standard input has no name to give the package; name it with --name NAME")
        source = Path(_STDIN_PATH)
    if os.fspath(source) != _STDIN_PATH:
        return _import_package(service, source, recorded, name=name, history=history, progress=progress)
    try:
        return _import_package(service, source, recorded, name=name, history=history, progress=progress)
    except RgstoreError as exc:
        renamed = _stdin_named(exc)
        if renamed is None:
            raise
        raise renamed.with_traceback(exc.__traceback__) from None


def _stdin_named(exc: RgstoreError) -> RgstoreError | None:
    """``exc`` again saying ``standard input`` for /dev/stdin (what `refpkg import -` reads, a name the user never
    gave); None when it does not name it or cannot be rebuilt (as ``fastaspool`` renames its scratch copy)."""
    if len(exc.args) != 1 or not isinstance(exc.args[0], str) or _STDIN_PATH not in exc.args[0]:
        return None
    try:
        return type(exc)(exc.args[0].replace(_STDIN_PATH, "standard input"))
    except TypeError:  # an error type whose constructor wants other arguments
        return None


def _import_package(
    service: Refpkgs, source: Path, recorded: str, *, name: str | None, history: bool, progress: ProgressFactory
) -> RefpkgState:
    """``import_package`` of ``source`` (a path to read), recording ``recorded`` as the package's source."""
    if name is None:
        if source.exists() and not source.is_file() and not source.is_dir():
            package_kind(source)  # a device (/dev/null) is refused as that: what passes is a pipe or socket
            raise InvalidInputError(f"{path_text(source)} is a pipe, whose name is not the package's; "
                                    "name the package with --name NAME")
        try:
            name = check_refpkg_name(default_name(source))
        except InvalidInputError as exc:
            raise InvalidInputError(f"{exc}; name the package with --name NAME") from None
    check_refpkg_name(name)
    with service.store.read() as txn:
        head = refpkg_head(txn, service.environment, name)
    if head is not None and head.current:  # checked again when committing; this saves the copying
        raise ConflictError(f"refpkg {name!r} already exists; import with --name NEW")
    with ExitStack() as stack:
        staged = stack.enter_context(staged_blobs(service.store))
        if package_kind(source) == "tar":
            manifest, blobs, members = _import_tar(staged, source, history, progress)
        else:
            manifest, blobs, members = _import_files(stack, staged, source, history, progress)
        states = _states(manifest, history)
        refs = {fn: FileRef(name=fn, sha256=i.sha256, md5=i.md5, size=i.size) for fn, i in blobs.items()}
        stream = refpkg_stream(name)
        floor, later = states[0], states[1:]
        depth = len(manifest.rollbacks) if history else 0
        first = RefpkgImported(
            name=name, files={k: refs[fn] for k, (fn, _md5) in floor.files.items()},
            metadata=floor.metadata, log=manifest.log[depth:], source=recorded,
        )
        events: list[NewEvent] = [NewEvent(stream=stream, event=first)]
        for old, new in zip(states, later, strict=False):
            events.append(NewEvent(stream=stream, event=_diff(name, old, new, refs)))
        undo = len(manifest.rollforwards) if history else 0
        events += [NewEvent(stream=stream, event=Undone()) for _ in range(undo)]

        def command(txn: Txn) -> list[NewEvent]:
            head = refpkg_head(txn, service.environment, name)
            if head is not None and head.current:
                raise ConflictError(f"refpkg {name!r} already exists; import with --name NEW")
            return events

        staged.commit(command)
    state = service.current(name)
    # Not an event field: the format has no such keys, so the import names them once and drops them.
    dropped = list(dict.fromkeys(key for s in states for key in s.unknown))
    if dropped:
        state = msgspec.structs.replace(state, dropped_keys=dropped)
    # Files no state names (taxit strip would delete them) are never stored: say so here, as a later
    # `refpkg strip` counts only the files the package's history held and cannot name these.
    named = {filename for s in _states(manifest, True) for filename, _md5 in s.files.values()}
    unnamed = [member for member in members if member not in named]
    return msgspec.structs.replace(state, unnamed_files=unnamed) if unnamed else state


# --- export -----------------------------------------------------------------------------------


class _Plan(msgspec.Struct, kw_only=True):
    manifest: Manifest
    files: dict[str, FileRef]
    time: datetime


def _state_of(files: dict[str, FileRef], metadata: dict[str, str], message: str) -> ManifestState:
    return ManifestState(files={k: (r.name, r.md5) for k, r in files.items()}, metadata=dict(metadata),
                         message=message)


def _plan(service: Refpkgs, name: str, history: bool) -> _Plan:
    env = service.environment
    with service.store.read() as txn:
        head, current = service.state(txn, name)
        if history:  # refuse before reading every state (a step's depth is its rollback count)
            check_nesting(name, current.depth, len(head.redo))
        log = refpkg_log(txn, env, name, current.seq)
        files = {r.name: r for r in current.files.values()}
        rollbacks: list[ManifestState] = []
        rollforwards: list[ManifestState] = []
        if history:
            for step in list(refpkg_chain(txn, env, name, current.seq))[1:]:
                rollbacks.append(_state_of(step.files, step.metadata, ""))
                files.update((r.name, r) for r in step.files.values())
            for seq in reversed(head.redo):
                step = refpkg_step(txn, env, name, seq)
                rollforwards.append(_state_of(step.files, step.metadata, step.log[0] if step.log else ""))
                files.update((r.name, r) for r in step.files.values())
    manifest = Manifest(current=_state_of(current.files, current.metadata, ""), log=log,
                        rollbacks=rollbacks, rollforwards=rollforwards)
    check_nesting(name, len(rollbacks), len(rollforwards))
    for filename in files:
        if not is_safe_filename(filename):
            raise InvalidInputError(f"refusing to export unsafe file name {filename!r}")
    return _Plan(manifest=manifest, files=files, time=current.time)


def _open_blob(service: Refpkgs, ref: FileRef) -> IO[bytes]:
    try:  # a mirror's blob not fetched yet comes from its upstream
        path = service.store.blobs.ensure(ref.sha256, ref.size)
    except NotFoundError as exc:
        if not str(exc).endswith(f"is missing from {service.store.blobs.root}"):
            raise  # the upstream's own reason (and what to do) says more
        raise NotFoundError(f"blob {ref.sha256} of file {ref.name} is missing from the store") from None
    return open(path, "rb")


def export_package(
    service: Refpkgs, name: str, dest: Path | IO[bytes], *, fmt: str, history: bool, progress: ProgressFactory
) -> ExportReport:
    """Write package ``name`` to ``dest`` (a new directory, a .tar.gz / .zip file, or a binary stream
    given a tar or zip ``fmt``: its report's path is then ``-``) for taxtastic.

    With ``history`` the rollback and rollforward states and all their files go along, so
    ``taxit rollback`` works on the result; histories nesting deeper than taxtastic can read
    are refused (strip, or export without history). A stream's archive folder is named ``name``.
    """
    if fmt not in FORMATS:
        raise InvalidInputError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    if not isinstance(dest, Path):
        if fmt == "dir":
            raise InvalidInputError("a directory cannot be written to a stream; export a tar or zip archive")
        return _export_to_stream(service, name, dest, fmt=fmt, history=history, progress=progress)
    if dest.exists() or dest.is_symlink():
        raise ConflictError(f"{dest} already exists; export to a new path")
    plan = _plan(service, name, history)
    total = sum(r.size for r in plan.files.values())
    dest.parent.mkdir(parents=True, exist_ok=True)
    bar = progress("export", total=total, unit="B")
    try:
        write_package(dest, fmt, render_manifest(plan.manifest).encode(), plan.files,
                      lambda ref: _open_blob(service, ref), plan.time, bar.update)
    finally:
        bar.close()
    return ExportReport(name=name, path=str(dest), format=fmt, files=len(plan.files), bytes=total,
                        history=history)


def _export_to_stream(
    service: Refpkgs, name: str, out: IO[bytes], *, fmt: str, history: bool, progress: ProgressFactory
) -> ExportReport:
    """``export_package`` to a binary stream (stdout): a file export named ``name``.tar.gz's bytes, or
    ``name``.zip's members, order and times (a zip streamed carries data descriptors)."""
    plan = _plan(service, name, history)
    total = sum(r.size for r in plan.files.values())
    bar = progress("export", total=total, unit="B")
    try:
        stream_package(out, fmt, name, render_manifest(plan.manifest).encode(), plan.files,
                       lambda ref: _open_blob(service, ref), plan.time, bar.update)
    finally:
        bar.close()
    return ExportReport(name=name, path="-", format=fmt, files=len(plan.files), bytes=total, history=history)

"""Moving stored records between copies of one log: export to a file, replay into a store.

Replay verifies the hash chain record by record, refuses a different log id, and appends only
what the target lacks, so replaying onto a store that holds a prefix of the same log is safe.
"""

from __future__ import annotations

import gc as _gc
import os
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import BinaryIO

from .asof import bounded, check_bounds, check_growth, running_max
from .codec import chain_of, genesis_hash
from .environment import Txn
from .errors import ChainError, ConflictError, InvalidInputError, LogMismatchError, NotFoundError, ReadOnlyError
from .logfile import LogHeader, read_log_file, read_log_stream, write_log_file, write_log_stream
from .outputs import output_path
from .pathtext import given_path, user_path
from .pendingsync import PendingSync
from .progress import ProgressFactory, null_progress
from .store import REBUILD_BATCH, Store

__all__ = ["export_log", "open_export", "replay_export", "replay_file", "replay_new_store", "apply_records", "BatchHook"]


def export_log(
    store: Store, path: Path | str | BinaryIO, *, from_seq: int = 1, to_seq: int | None = None,
    progress: ProgressFactory = null_progress,
) -> LogHeader:
    """Write the records from ``from_seq`` to ``to_seq`` (default: the head) into a self-describing export file (or open binary stream).

    With ``to_seq`` the header's range and head hash describe that prefix: its head hash is the chain
    hash at ``to_seq``, so a replay or mirror pull of the file checks it like any other export.
    """
    # A str is a file name too (the Python caller's habit); checked before the log is read.
    target = output_path(path, "log export file") if isinstance(path, (str, os.PathLike)) else path
    # A file inside the store could be the log's own data.mdb (or a blob): the rename would destroy it.
    if isinstance(target, Path) and target.resolve().is_relative_to(store.path.resolve()):
        raise InvalidInputError(f"{target} is inside the store {store.path}; export to a file outside it")
    from_seq = max(from_seq, 1)
    if to_seq is not None and to_seq < 1:
        raise InvalidInputError(f"--to {to_seq}: seqs start at 1")
    if to_seq is not None and to_seq < from_seq - 1:
        raise InvalidInputError(f"--to {to_seq} is before --from {from_seq}")
    with store.read() as txn:
        head, head_hash = store.log.head(txn)
        log_id = store.log.log_id(txn)
        if from_seq > head + 1:
            raise NotFoundError(f"--from {from_seq} is past the head ({head})")
        if to_seq is not None and to_seq > head:
            raise NotFoundError(f"--to {to_seq} is past the head ({head})")
        if from_seq == 1:
            prev = genesis_hash(log_id)
        else:
            record = store.log.record(txn, from_seq - 1)
            if record is None:
                raise ChainError(from_seq - 1, "missing from the log (run `rgstore verify`)")
            prev = chain_of(record)
        if to_seq is not None and to_seq < head:
            head = to_seq
            head_hash = prev if to_seq == from_seq - 1 else _chain_at(store, txn, to_seq)
        header = LogHeader(
            log_id=log_id, first_seq=from_seq, last_seq=head, prev_hash=prev.hex(), head_hash=head_hash.hex()
        )
        bar = progress("export", total=head - from_seq + 1, unit="ev")

        def records() -> Iterator[tuple[int, bytes]]:
            for seq, raw in store.log.records(txn, after=from_seq - 1, upto=head):
                bar.update()
                yield seq, bytes(raw)

        try:
            if isinstance(target, Path):
                write_log_file(target, header, records())
            else:
                write_log_stream(target, header, records())
        finally:
            bar.close()
    return header


def _chain_at(store: Store, txn: Txn, seq: int) -> bytes:
    record = store.log.record(txn, seq)
    if record is None:
        raise ChainError(seq, "missing from the log (run `rgstore verify`)")
    return chain_of(record)


BatchHook = Callable[[Txn, int, bytes], None]
"""Called inside each batch's write transaction with the new head seq and chain hash."""


def apply_records(
    store: Store, log_id: str, records: Iterable[tuple[int, bytes]], *,
    batch_size: int = REBUILD_BATCH, progress: ProgressFactory = null_progress, total: int | None = None,
    on_batch: BatchHook | None = None,
) -> tuple[int, int]:
    """Append records of log ``log_id`` after the store's head, verifying chain and seqs.

    Records at or below the local head are checked against the local copy (same chain hash)
    and skipped. An empty store adopts ``log_id`` in the transaction of its first batch. Each
    batch is one write transaction, which also runs ``on_batch`` (e.g. to record a mirror's
    upstream position with the records). Returns (applied, head).
    """
    with store.read() as txn:
        local_head, _ = store.log.head(txn)
        local_id = store.log.log_id(txn)
    if local_head and local_id != log_id:
        raise LogMismatchError(
            f"log id {log_id} differs from this store's {local_id}: these are different logs, refusing to mix them"
        )
    bar = progress("replay", total=total, unit="ev")
    applied = 0
    it = iter(records)
    mark: PendingSync | None = None  # outside copies of views stay stale until the refresh at the end
    was_enabled = _gc.isenabled()
    _gc.disable()
    try:
        pending: list[tuple[int, bytes]] = []
        with store.read() as txn:
            head, _ = store.log.head(txn)
            for seq, record in it:
                if seq > head:
                    pending.append((seq, record))
                    break
                local = store.log.record(txn, seq)
                if local is None or chain_of(local) != chain_of(record):
                    raise LogMismatchError(f"record seq {seq} differs from the local copy: the logs have diverged")
        while True:
            pending.extend(islice(it, batch_size - len(pending)))
            if not pending:
                break
            chunk = pending

            def write(txn: Txn, chunk: list[tuple[int, bytes]] = chunk) -> int:
                nonlocal mark
                if mark is None:
                    store.refuse_unwritable_copies()  # the refresh at the end writes refget/: before any commit
                    mark = PendingSync(store.path)  # before the first commit (see rgstore.pendingsync)
                store.log.adopt_identity(txn, log_id)
                new_head = store.log.append_records(txn, chunk, log_id)
                if on_batch is not None:
                    on_batch(txn, new_head, store.log.head(txn)[1])
                return new_head

            head = store.environment.write(write)
            applied += len(chunk)
            bar.update(len(chunk))
            pending = []
        if applied:
            store.generation += 1
            store.sync_external_views()
    except BaseException as exc:
        if mark is not None:
            mark.settle(exc, committed=applied > 0)  # kept: the next writable open refreshes the copies
        raise
    finally:
        if was_enabled:
            _gc.enable()
        bar.close()
    if mark is not None:
        mark.done()
    return applied, head


def open_export(
    source: Path | str | BinaryIO, name: str | None = None, *, to_seq: int | None = None, as_of: datetime | None = None,
) -> tuple[LogHeader, Iterator[tuple[int, bytes]]]:
    """An export's header and frames, its first frame already read: a file that is not a whole export
    (bad magic, damaged header or body, an empty range that is short), or a bound it cannot meet
    (``to_seq`` outside it, ``as_of`` before its first event, both at once: ``rgstore.asof.check_bounds``),
    fails here, before anything is written."""
    if isinstance(source, (str, os.PathLike)):
        path = given_path(source, "log export file")
        if path.is_dir():  # Path("") is "." too: not open()'s bare IsADirectoryError
            raise InvalidInputError(f"{path}: is a directory, not a log export file")
        header, frames = read_log_file(path)
    else:
        header, frames = read_log_stream(source, name or "<stream>")
    try:
        first = next(frames, None)
        check_bounds(header, first, to_seq=to_seq, as_of=as_of)
    except BaseException:
        _close(frames)
        raise
    return header, (_after(first, frames) if first is not None else iter(()))


def _after(first: tuple[int, bytes], rest: Iterator[tuple[int, bytes]]) -> Iterator[tuple[int, bytes]]:
    """``first``, then ``rest``; closing this closes ``rest`` (and so the file), as a bound that stops early does."""
    try:
        yield first
        yield from rest
    finally:
        _close(rest)


def _close(frames: Iterator[tuple[int, bytes]]) -> None:
    close = getattr(frames, "close", None)  # the frames of read_log_stream: a generator holding the file
    if close is not None:
        close()


def replay_export(
    store: Store, header: LogHeader, frames: Iterable[tuple[int, bytes]], *, to_seq: int | None = None,
    as_of: datetime | None = None, progress: ProgressFactory = null_progress,
) -> tuple[int, int]:
    """Replay an opened export (see ``open_export``) into ``store`` (see ``apply_records``), up to a bound.

    ``to_seq`` stops after that seq; ``as_of`` before the first event whose time is after it in the
    running maximum of event times (``rgstore.asof``). A bound below the store's head is refused
    (ConflictError, nothing written): a replayed store only grows, and an unbounded replay of the
    same log later continues it to the head.
    """
    check_bounds(header, None, to_seq=to_seq, as_of=as_of)
    with store.read() as txn:
        head, _ = store.log.head(txn)
        local_id = store.log.log_id(txn)
        upstream = store.log.meta_get(txn, "replica_of")
    if upstream:
        # A replay records no upstream position, and records its upstream never had would make every
        # later pull refuse the upstream as diverged: a mirror takes an export through `mirror pull`.
        raise ReadOnlyError(
            f"this store is a read-only mirror of {upstream.decode()}; continue it from an export with "
            "`rgstore mirror pull FILE`, or run `rgstore mirror promote` first"
        )
    if head and local_id != header.log_id:
        raise LogMismatchError(
            f"the export is of log {header.log_id}, this store holds log {local_id}: different logs, refusing to mix them"
        )
    if header.first_seq > head + 1:
        raise ChainError(header.first_seq, f"export starts at seq {header.first_seq} but the store's head is "
                         f"{head}: replay seqs {head + 1}-{header.first_seq - 1} first")
    seed = None
    if as_of is not None and header.first_seq > 1:  # the running maximum includes the store's earlier events
        with store.read() as txn:
            seed = running_max(store.log, txn, header.first_seq - 1)
    check_growth(head, to_seq=to_seq, as_of=as_of, seed=seed)
    last = header.last_seq if to_seq is None else min(to_seq, header.last_seq)
    records = bounded(frames, head=head, to_seq=to_seq, as_of=as_of, seed=seed)
    return apply_records(store, header.log_id, records, progress=progress,
                         total=max(last - max(head, header.first_seq - 1), 0))


def replay_new_store(
    path: Path | str, header: LogHeader, frames: Iterable[tuple[int, bytes]], *, actor: str | None = None,
    to_seq: int | None = None, as_of: datetime | None = None, progress: ProgressFactory = null_progress,
) -> tuple[int, int]:
    """Replay an opened export into the store at ``path``, creating it; a new store's replay that fails before applying anything leaves none.

    As ``mirror pull`` into a new directory (``rgstore.firstpull.build_new_store``): where ``path``
    is no store and no directory holding anything, the replay runs on a store staged inside it and
    moved into place. A file found damaged part-way after whole batches were applied keeps them
    (a valid store: replaying the file again appends the rest). A ``path`` that is a store, or a
    directory holding anything (an old store's content copied in first), is replayed into in place.
    """
    from .firstpull import build_new_store

    root = user_path(path).absolute()

    def replay(store: Store) -> tuple[int, int]:
        return replay_export(store, header, frames, to_seq=to_seq, as_of=as_of, progress=progress)

    staged = build_new_store(root, replay, actor=actor)
    if staged is None:
        with Store.open(root, actor=actor, progress=progress) as store:
            return replay(store)
    if not staged[1]:  # the frames are read: this replay cannot run again on its own
        raise ConflictError(f"another process created a store at {root} while this replay ran; run the replay "
                            "again (it appends only what that store lacks)")
    return staged[0]


def replay_file(
    store: Store, path: Path | str, *, to_seq: int | None = None, as_of: datetime | None = None,
    progress: ProgressFactory = null_progress,
) -> tuple[int, int]:
    """Replay an exported log file into ``store``, up to a bound (see ``replay_export``)."""
    header, frames = open_export(path, to_seq=to_seq, as_of=as_of)
    return replay_export(store, header, frames, to_seq=to_seq, as_of=as_of, progress=progress)

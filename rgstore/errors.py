"""Every error rgstore raises on purpose: one root, one subclass per kind of failure.

Each class carries ``exit_code`` (the CLI's process status) and ``http_status`` (the API's
response code), so the two shells map errors in one place each and never guess.
Messages are one line: what failed, on which item, and what to do next.
"""

from __future__ import annotations

import re

__all__ = [
    "clip",
    "refuse_negative",
    "RgstoreError",
    "NotFoundError",
    "InvalidInputError",
    "OutOfRangeError",
    "MalformedCollectionError",
    "ConflictError",
    "ConcurrencyConflictError",
    "IdempotencyConflictError",
    "NothingToUndoError",
    "NothingToRedoError",
    "IntegrityError",
    "UpstreamIntegrityError",
    "ChainError",
    "ReadOnlyError",
    "RemoteError",
    "LogMismatchError",
    "ExternalSyncError",
    "StaleViewsError",
    "MissingSubDbError",
    "StoreOpenError",
    "NewerRgstoreError",
    "DiskWriteError",
    "OutOfMemoryError",
    "OUT_OF_MEMORY",
    "TooManyOpenFilesError",
    "too_many_open_files",
    "StoreClosedError",
    "StoreBusyError",
]


MAX_WORD = 240
"""Longest run of non-space characters an error message shows whole (a real path fits)."""
MAX_MESSAGE = 1000
"""Longest error message shown whole."""

_LONG_WORD = re.compile(r"\S{%d,}" % (MAX_WORD + 1))


def _cut(text: str, head: int, tail: int) -> str:
    return f"{text[:head]}…({len(text) - head - tail:,} characters left out)…{text[len(text) - tail:]}"


def clip(text: str) -> str:
    """``text`` as one short line: control characters escaped, over-long words and messages cut in the middle.

    Errors echo what the user gave (a name, a path, a locus); a 10 kB name or a 3 kB path keeps its
    start and end, says how much was left out, and the message stays one readable line.
    """
    if not text.isprintable():
        text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    if len(text) > MAX_WORD:
        text = _LONG_WORD.sub(lambda m: _cut(m.group(), 100, 40), text)
    if len(text) > MAX_MESSAGE:
        text = _cut(text, 700, 250)
    return text


class RgstoreError(Exception):
    """Root of every deliberate rgstore failure; the message is meant for a person (one line, see ``clip``)."""

    exit_code: int = 1
    http_status: int = 400

    def __str__(self) -> str:
        return clip(super().__str__())


class NotFoundError(RgstoreError, LookupError):
    """A named thing (genome, alias, sequence, refpkg, cache entry, event) does not exist."""

    http_status = 404

    def __str__(self) -> str:  # LookupError would repr-quote the message
        return clip(str(self.args[0])) if self.args else "not found"


class InvalidInputError(RgstoreError, ValueError):
    """The caller's input is malformed: a bad FASTA, locus, key, path or option value."""

    http_status = 400


def refuse_negative(name: str, count: int | None) -> None:
    """InvalidInputError naming argument ``name`` if ``count`` (a number of results, or where they start) is below 0.

    The public API's one rule for counts: a negative one is a caller's mistake, never an empty result.
    """
    if count is not None and count < 0:
        raise InvalidInputError(f"{name} must be 0 or more, got {count}")


class OutOfRangeError(InvalidInputError):
    """A region lies outside its sequence."""

    http_status = 416


class MalformedCollectionError(InvalidInputError):
    """A sequence collection given as data (JSON) breaks the seqcol schema: not an object of arrays, or a bad element."""

    http_status = 422


class ConflictError(RgstoreError):
    """The command contradicts the current state (name taken, stream moved on, ...)."""

    http_status = 409


class ConcurrencyConflictError(ConflictError):
    """A stream's version is not the one the command expected."""

    def __init__(self, stream: str, expected: int, actual: int) -> None:
        self.stream, self.expected, self.actual = stream, expected, actual
        super().__init__(
            f"stream {stream!r} is at version {actual}, expected {expected}; "
            "another writer got there first: re-read and retry"
        )


class IdempotencyConflictError(ConflictError):
    """An event id was reused with a different payload, or a command was only partly a retry."""

    def __init__(self, event_id: str, seq: int, message: str | None = None) -> None:
        self.event_id, self.seq = event_id, seq
        super().__init__(message or (
            f"event id {event_id} was already appended at seq {seq} with a different payload; "
            "use a fresh id for a new command"
        ))

    @classmethod
    def partial(cls, repeated: int, total: int, first_seq: int) -> IdempotencyConflictError:
        """A command whose ids are only partly in the log (``repeated`` of ``total``)."""
        return cls("", first_seq, f"{repeated} of this command's {total} event ids are already in the log "
                   f"(from seq {first_seq}); a retry must repeat the whole command with the same ids")


class NothingToUndoError(ConflictError):
    """An undo was asked of a stream with no earlier step."""


class NothingToRedoError(ConflictError):
    """A redo was asked of a stream with nothing undone."""


class IntegrityError(RgstoreError):
    """Stored bytes do not match their recorded checksum, or a view disagrees with the log."""

    http_status = 500


class UpstreamIntegrityError(IntegrityError):
    """Bytes fetched from an upstream (a mirror's, a remote genome's) fail their recorded checksum; nothing was stored.

    Still an IntegrityError for the CLI; a server answers 502: its upstream, not its own store, gave bad content.
    """

    http_status = 502


class ChainError(IntegrityError):
    """The log's hash chain or seq numbering is broken at a given seq."""

    def __init__(self, seq: int, reason: str) -> None:
        self.seq = seq
        super().__init__(f"log record seq {seq}: {reason}")


class LogMismatchError(ConflictError):
    """Two logs that should be one lineage are not (different log id or diverged history)."""


class ReadOnlyError(RgstoreError):
    """A write was attempted on a read-only handle or a replica."""

    http_status = 405


class RemoteError(RgstoreError):
    """A remote source was unreachable or did not speak the expected protocol."""

    http_status = 502


class ExternalSyncError(RgstoreError):
    """A change was committed to the log, but a copy kept outside it (e.g. alias TSVs) was not refreshed."""

    http_status = 500


class StaleViewsError(RgstoreError):
    """A read-only handle found views folded by a different view version (they need a rebuild)."""

    http_status = 503


class MissingSubDbError(RgstoreError, LookupError):
    """A sub-db asked of a read-only environment was never created (open the store writable once)."""


class StoreOpenError(RgstoreError):
    """The store's LMDB files cannot be opened (not a store, damaged, no permission, or already open here)."""

    http_status = 503


class NewerRgstoreError(RgstoreError):
    """Data written by a newer rgstore (an event type, envelope schema or file format this one does not know); nothing was changed.

    Not an IntegrityError: the bytes are authentic, this version just cannot read them. The message
    says "written by a newer rgstore" and "upgrade rgstore"; a server answers 501 (it cannot serve them).
    """

    http_status = 501


class DiskWriteError(RgstoreError):
    """The disk refused a write (full, over a quota or a file size limit, or an I/O error); the message says what was kept."""

    http_status = 507


OUT_OF_MEMORY = ("out of memory: this process reached its memory limit (ulimit -v, the job's) or the "
                 "machine's memory; raise the limit and run the command again")
"""OutOfMemoryError's one line, also the CLI's (after ``error: ``) for a bare MemoryError."""


class OutOfMemoryError(RgstoreError):
    """This process reached its memory limit (``ulimit -v``, a batch job's) or the machine's memory; nothing was committed.

    LMDB's ENOMEM (a put's dirty pages are malloc'd) is this limit, not a broken store. A server answers 503:
    the request itself may be fine once memory is free again.
    """

    http_status = 503

    def __init__(self, message: str = "") -> None:
        super().__init__(message or OUT_OF_MEMORY)


def too_many_open_files() -> str:
    """The one line for this process reaching its limit of open files (EMFILE), naming that limit."""
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    shown = "" if soft == resource.RLIM_INFINITY else f" of {soft:,}"
    return (f"too many open files: this process reached its limit{shown} (ulimit -n); raise the limit "
            "and run the command again")


class TooManyOpenFilesError(RgstoreError):
    """This process reached its limit of open files (``ulimit -n``); nothing was committed. A server answers 503."""

    http_status = 503

    def __init__(self, message: str = "") -> None:
        super().__init__(message or too_many_open_files())


class StorePermissionError(RgstoreError):
    """This user may not write (or read) a file of the store: its owner or group must grant access."""

    http_status = 403


class StoreClosedError(RgstoreError):
    """A Store (or a service taken from it) was used after ``close()``: open the store again."""

    http_status = 503


class StoreBusyError(StoreOpenError):
    """Every LMDB reader slot of the store stayed taken while we waited (too many processes reading it at once)."""

    http_status = 503


class UnfetchableError(ReadOnlyError):
    """A sequence the store lacks cannot be fetched into it here: a read-only mount, or a user who may not write it."""

    http_status = 503

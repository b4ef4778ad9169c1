"""Every fact rgstore records: frozen, tagged msgspec Structs, plus the envelope that wraps them.

Rules (see docs/architecture.md): names are past tense; tags are explicit strings that never
change or get reused; events evolve only by adding fields with defaults; retired classes stay
so old logs decode. No I/O lives here. The wire codec is in ``rgstore.codec``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Union

import msgspec

__all__ = [
    "Event",
    "Envelope",
    "AnyEvent",
    "EVENT_TYPES",
    "FileRef",
    # engine
    "Undone",
    "Redone",
    "HistoryStripped",
    "Noted",
    "CodecDictionaryAdded",
    # aliases
    "AliasSet",
    "AliasRemoved",
    "SequenceAliasSet",
    "SequenceAliasRemoved",
    # genomes
    "GenomeSource",
    "GenomeAdded",
    "GenomeRemoved",
    "FhrSet",
    # refpkgs
    "RefpkgCreated",
    "RefpkgImported",
    "RefpkgUpdated",
    "RefpkgRemoved",
    # cache
    "CacheInserted",
    "CacheTouched",
    "CachePinned",
    "CacheUnpinned",
    "CacheEvicted",
]


# gc=False on events and envelopes: a rebuild or replay holds tens of thousands of decoded envelopes
# at once, and the cycle collector re-scanning them cost ~4 us of the ~5.5 us decode per event
# (tools/bench/log.py). They hold only strings, numbers and msgpack containers, so they form no cycles.
class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", gc=False):
    """Base of every fact in the log. Never edited once released."""

    undoable: ClassVar[bool] = False
    """Whether the event is a step of its stream's undo/redo zipper (a class property, not stored)."""
    ends_history: ClassVar[bool] = False
    """Whether the event empties its stream's undo/redo zipper: nothing before it can be undone or
    redone (a removal that nothing may roll back past; a class property, not stored)."""


class FileRef(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A content-addressed file: the blob's sha256 plus the md5 and size users compare against."""

    name: str
    sha256: str
    md5: str
    size: int


# --- engine: the generic undo/redo zipper -------------------------------------------------------


class Undone(Event, frozen=True, tag="undone"):
    """The latest step of the envelope's stream was undone.

    ``undone_seq`` is the step taken back; ``restored_seq`` the step now current (0: none).
    The engine fills both at append time so that views fold without consulting shared state.
    """

    undone_seq: int = 0
    restored_seq: int = 0


class Redone(Event, frozen=True, tag="redone"):
    """The most recently undone step of the envelope's stream was re-applied (``redone_seq``)."""

    redone_seq: int = 0


class HistoryStripped(Event, frozen=True, tag="history-stripped"):
    """The stream's undo and redo history was dropped; only the current step (``kept_seq``) remains."""

    kept_seq: int = 0


class Noted(Event, frozen=True, tag="noted"):
    """A free-text note on a stream; carries no state. Used by tests, benchmarks and audits."""

    undoable: ClassVar[bool] = True

    text: str = ""
    data: dict[str, Any] = {}


class CodecDictionaryAdded(Event, frozen=True, tag="codec-dictionary-added"):
    """A zstd dictionary for compressing later small records (id = the dictionary's zstd id).

    Records compressed with it always come after this event, so any replay meets it first.
    """

    dict_id: int
    data: bytes
    trained_on: int = 0


# --- aliases ------------------------------------------------------------------------------------


class AliasSet(Event, frozen=True, tag="alias-set"):
    """A collection alias ``namespace:name`` now points at a genome (seqcol) digest."""

    undoable: ClassVar[bool] = True

    namespace: str
    name: str
    digest: str


class AliasRemoved(Event, frozen=True, tag="alias-removed"):
    """A collection alias no longer exists."""

    undoable: ClassVar[bool] = True

    namespace: str
    name: str


class SequenceAliasSet(Event, frozen=True, tag="sequence-alias-set"):
    """A sequence alias (e.g. ``insdc:BK006935.2``) now points at a sequence digest."""

    undoable: ClassVar[bool] = True

    namespace: str
    name: str
    digest: str


class SequenceAliasRemoved(Event, frozen=True, tag="sequence-alias-removed"):
    """A sequence alias no longer exists."""

    undoable: ClassVar[bool] = True

    namespace: str
    name: str


# --- genomes ------------------------------------------------------------------------------------


class GenomeSource(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Where a genome's content came from: a local FASTA (path, size, md5) or a remote URL."""

    path: str = ""
    size: int = 0
    md5: str = ""
    remote_url: str = ""


class GenomeAdded(Event, frozen=True, tag="genome-added"):
    """A sequence collection was stored: its seqcol digests, level-2 arrays and description.

    It starts the genome stream's undo zipper afresh (``ends_history``): an init after a removal is a
    new genome, so neither that removal nor the FHR steps before it can be undone past it.
    """

    ends_history: ClassVar[bool] = True

    digest: str
    names: list[str]
    lengths: list[int]
    sequences: list[str]
    level1: dict[str, str] = {}
    md5s: list[str] = []
    description: str = ""
    species: str = ""
    circular: list[str] = []
    source: GenomeSource = GenomeSource()


class GenomeRemoved(Event, frozen=True, tag="genome-removed"):
    """A genome was removed from the catalogue (its aliases were removed in the same command).

    A step of the genome stream's zipper: ``genome undo`` brings the genome back with the aliases
    whose ``AliasRemoved`` events follow it in that command (``rgstore.genomeundo``).
    """

    undoable: ClassVar[bool] = True

    digest: str


class FhrSet(Event, frozen=True, tag="fhr-set"):
    """A genome's FHR 1.0 provenance document was replaced (unknown keys kept verbatim)."""

    undoable: ClassVar[bool] = True

    digest: str
    fhr: dict[str, Any]


# --- refpkgs ------------------------------------------------------------------------------------


class RefpkgCreated(Event, frozen=True, tag="refpkg-created"):
    """A reference package was created with its first files and metadata (taxtastic ``create``).

    It is the first step of the package's undo zipper and cannot itself be rolled back;
    ``log`` holds the log entries it starts with, newest first.
    """

    undoable: ClassVar[bool] = True

    name: str
    files: dict[str, FileRef] = {}
    metadata: dict[str, str] = {}
    log: list[str] = []


class RefpkgImported(Event, frozen=True, tag="refpkg-imported"):
    """A taxtastic package was imported: this is the oldest state its history records.

    Later states of the imported history follow as ``RefpkgUpdated`` events (and ``Undone``
    for states that were rolled back) in the same command. ``log`` holds this state's log,
    newest first; ``source`` is where it was read from.
    """

    undoable: ClassVar[bool] = True

    name: str
    files: dict[str, FileRef] = {}
    metadata: dict[str, str] = {}
    log: list[str] = []
    source: str = ""


class RefpkgUpdated(Event, frozen=True, tag="refpkg-updated"):
    """One update step: files and metadata keys set (a value) or dropped (None), one log entry."""

    undoable: ClassVar[bool] = True

    name: str
    files: dict[str, Union[FileRef, None]] = {}
    metadata: dict[str, Union[str, None]] = {}
    message: str = ""
    superseded: int = 0
    """Files the step stored and replaced within itself: ``taxit update`` copies one file per pair
    it is given, so a key named twice (or a derived phylo_model that an explicit one replaces) leaves
    a copy that its ``strip`` removes and counts. 0 in events written before this field existed."""


class RefpkgRemoved(Event, frozen=True, tag="refpkg-removed"):
    """A reference package was removed with its whole undo/redo history; the name is free again.

    It ends the stream's history: no rollback or rollforward reaches past it, so ``rgstore gc``
    may free every file only the package held. A later creation or import of the same name
    continues the stream as a new package.
    """

    ends_history: ClassVar[bool] = True

    name: str


# --- cache --------------------------------------------------------------------------------------


class CacheInserted(Event, frozen=True, tag="cache-inserted"):
    """A cache entry (level 1 region FASTAs or level 2 raw assets) landed, with file checksums."""

    key: str
    level: int
    path: str
    files: dict[str, FileRef] = {}
    request: dict[str, Any] = {}
    annotation_release: str = ""
    """The NCBI annotation release the entry's GTF names in its ``#!annotation-source`` header
    (level 1: its level-2 inputs'); "" when it names none, for Ensembl, and before rgstore read it."""


class CacheTouched(Event, frozen=True, tag="cache-touched"):
    """A cache entry was read (coalesced: at most one per entry per hour)."""

    key: str


class CachePinned(Event, frozen=True, tag="cache-pinned"):
    """A cache entry is exempt from eviction."""

    key: str


class CacheUnpinned(Event, frozen=True, tag="cache-unpinned"):
    """A cache entry may be evicted again."""

    key: str


class CacheEvicted(Event, frozen=True, tag="cache-evicted"):
    """A cache entry was evicted; its files are deleted only after this commits."""

    key: str
    reason: str = ""


AnyEvent = Union[
    Undone,
    Redone,
    HistoryStripped,
    CodecDictionaryAdded,
    Noted,
    AliasSet,
    AliasRemoved,
    SequenceAliasSet,
    SequenceAliasRemoved,
    GenomeAdded,
    GenomeRemoved,
    FhrSet,
    RefpkgCreated,
    RefpkgImported,
    RefpkgUpdated,
    RefpkgRemoved,
    CacheInserted,
    CacheTouched,
    CachePinned,
    CacheUnpinned,
    CacheEvicted,
]

EVENT_TYPES: dict[str, type[Event]] = {
    cls.__struct_config__.tag: cls
    for cls in AnyEvent.__args__  # type: ignore[attr-defined]
}
"""Tag -> class, for ``rgstore log --type`` filters and the golden-bytes test."""

SCHEMA_VERSION = 1
"""Bumped when an envelope or event change needs an upcaster; new optional fields do not."""


class Envelope(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One stored record: an event plus where and when it happened and who did it."""

    seq: int
    id: str
    stream: str
    stream_version: int
    time: datetime
    actor: str
    event: AnyEvent
    # Bounded so that decoding a newer writer's envelope fails inside msgspec, at no cost per event
    # to the hot decode loops; rgstore.log.decode_failure turns that into "written by a newer rgstore".
    schema: Annotated[int, msgspec.Meta(le=SCHEMA_VERSION)] = SCHEMA_VERSION

"""Genome-level undo and redo: take back (or re-apply) the latest change to a genome's own record.

The steps are those of the genome stream's zipper (``genome:<digest>``): ``FhrSet`` (``fhr set``, or
``init --fhr``) and ``GenomeRemoved``. A removal took every alias naming the genome in the same
command (its ``AliasRemoved`` events follow the ``GenomeRemoved`` in the log), so undoing it appends
one ``Undone`` on the genome stream and one on each of those alias streams, in one write transaction;
redo appends the matching ``Redone`` events. An alias changed since (re-pointed, removed, undone on
its own) makes the command refuse rather than clobber it: nothing is written. ``GenomeAdded`` ends the
stream's history, so an init is not undone here (``genome remove`` takes it back), and names that an
init added are alias steps (``alias undo``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
from msgspec import UNSET, UnsetType

from .aliases import normalise_digest, shadowed_by, split_alias
from .environment import Txn
from .errors import ConflictError, NotFoundError, NothingToRedoError, NothingToUndoError
from .events import AliasRemoved, Event, GenomeAdded, GenomeRemoved, Redone, Undone
from .log import NewEvent
from .views.aliases import (
    COLLECTION,
    DEFAULT_NAMESPACE,
    alias_snapshots,
    alias_stream,
    collection_alias,
    collection_aliases_of,
    target_at,
)
from .views.genomes import genome_exists, genome_stream, removed_genome_added_seq
from .views.history import HistoryView

if TYPE_CHECKING:
    from .store import Store

__all__ = ["GenomeMove", "move_genome"]


class GenomeMove(msgspec.Struct, frozen=True, kw_only=True):
    """What ``genome undo``/``redo`` did: the genome, the step it moved, the aliases that moved with it."""

    digest: str
    action: str
    """``undo`` or ``redo``."""
    step: str
    """The event type of the step taken back or re-applied: ``genome-removed`` or ``fhr-set``."""
    step_seq: int
    present: bool
    """Whether the genome is in the catalogue afterwards (False after redoing a removal)."""
    aliases: list[str]
    """``ns:name`` of the aliases brought back (undo of a removal) or removed again (its redo)."""
    seqs: list[int]
    shadows: dict[str, str] | UnsetType = UNSET
    """As ``alias undo`` reports it: bare names a restored refgenie alias took from other namespaces."""


def move_genome(store: Store, name: str, *, by_digest: bool = False, redo: bool = False) -> GenomeMove:
    """Undo (or ``redo``) the latest change to a genome in one command; see the module docstring.

    A removed genome has no names left: give its digest with ``by_digest``. NothingToUndoError /
    NothingToRedoError when there is no step; ConflictError when an alias the step moves changed since;
    NotFoundError when the genome is unknown or, for an undone removal, its sequences were collected.
    """
    env = store.environment
    history = env.db("history")
    verb = "redo" if redo else "undo"
    result: list[GenomeMove] = []

    def command(txn: Txn) -> list[NewEvent]:
        digest = _subject(store, txn, name, by_digest)
        stream = genome_stream(digest)
        at = HistoryView.next_redo(txn, history, stream) if redo else HistoryView.top(txn, history, stream)[0]
        if not at:
            why = "" if redo else " (an init is not undone: `rgstore genome remove` takes it back)"
            error = NothingToRedoError if redo else NothingToUndoError
            raise error(f"genome {_shown(name, digest, by_digest)} has nothing to {verb}{why}")
        envelope = store.log.get(txn, at)
        assert envelope is not None
        step = envelope.event
        events = [NewEvent(stream=stream, event=Redone() if redo else Undone())]
        aliases: list[tuple[str, str]] = []
        shadows: dict[str, str] = {}
        present = genome_exists(txn, env, digest)
        if isinstance(step, GenomeRemoved):
            removed = _removed_with(store, txn, at, digest)
            check = _check_redo if redo else _check_undo
            check(store, txn, digest, removed, present)
            for ns, local, _seq in removed:
                aliases.append((ns, local))
                events.append(NewEvent(stream=alias_stream(COLLECTION, ns, local), event=Redone() if redo else Undone()))
                if not redo and ns == DEFAULT_NAMESPACE:
                    shadows.update(shadowed_by(txn, env, local, digest))
            present = not redo
        result[:] = [GenomeMove(
            digest=digest, action=verb, step=_tag(step), step_seq=at, present=present,
            aliases=[f"{ns}:{local}" for ns, local in aliases], seqs=[], shadows=shadows or UNSET,
        )]
        return events

    seqs = store.transact(command)
    return msgspec.structs.replace(result[0], seqs=seqs)


def _subject(store: Store, txn: Txn, name: str, by_digest: bool) -> str:
    """The digest of the genome ``name`` names: a stored one, or with ``by_digest`` a removed one too."""
    env = store.environment
    if by_digest:
        digest = normalise_digest(name)
        if not genome_exists(txn, env, digest) and not removed_genome_added_seq(txn, env, digest):
            raise NotFoundError(f"no genome with digest {digest}, stored or removed; see `rgstore genome list`")
        return digest
    ns, local = split_alias(name)
    if collection_alias(txn, env, ns, local) is None:
        # Its names went with a removal: point at the digest that brings it back. Checked before resolving:
        # a bare name would fall through to the genome another namespace gives it, and `genome undo hg38`
        # right after `genome remove hg38` must not take back that other genome's FHR document.
        once = [t for _seq, t in alias_snapshots(txn, env, COLLECTION, ns, local) if t is not None]
        if once and removed_genome_added_seq(txn, env, once[-1]):
            raise NotFoundError(
                f"no genome named {name!r}: genome {once[-1]}, once named {ns}:{local}, was removed; "
                f"a removed genome is addressed by digest: `rgstore genome undo --digest {once[-1]}`"
                + ("" if ":" in name else "; another namespace's genome of that name is given as ns:name")
            )
    return store.genomes.resolve_in(txn, name)


def _removed_with(store: Store, txn: Txn, seq: int, digest: str) -> list[tuple[str, str, int]]:
    """(namespace, name, seq) of the ``AliasRemoved`` events the removal at ``seq`` appended with it.

    ``Genomes.remove`` appends them right after the ``GenomeRemoved``, one per alias naming the genome;
    the run ends at the first event that is not one of them. No later command can continue it: once
    the genome is gone no alias can point at it, so an alias removal naming its digest is that command's.
    """
    env = store.environment
    head = store.log.head(txn)[0]
    out = []
    at = seq + 1
    while at <= head:
        envelope = store.log.get(txn, at)
        event = envelope.event if envelope is not None else None
        if not isinstance(event, AliasRemoved) or envelope is None:
            break
        if envelope.stream != alias_stream(COLLECTION, event.namespace, event.name):
            break
        if target_at(txn, env, COLLECTION, event.namespace, event.name, at - 1) != digest:
            break
        out.append((event.namespace, event.name, at))
        at += 1
    return out


def _check_undo(store: Store, txn: Txn, digest: str, removed: list[tuple[str, str, int]], present: bool) -> None:
    """Refuse to bring a removed genome back if that cannot restore it and its aliases as they were."""
    env = store.environment
    history = env.db("history")
    added_seq = removed_genome_added_seq(txn, env, digest)
    added = store.log.get(txn, added_seq) if added_seq else None
    if present or added is None or not isinstance(added.event, GenomeAdded):
        raise ConflictError(f"genome {digest}: the view keeps no removed record to restore; run `rgstore rebuild`")
    if not added.event.source.remote_url and not (
            store.refget_path / "collections" / f"{digest}.rgsi").is_file():
        raise NotFoundError(
            f"genome {digest}'s {_what_gc_deleted(store, added.event)}; add it again with `rgstore genome init`"
        )
    for ns, local, seq in removed:
        if HistoryView.top(txn, history, alias_stream(COLLECTION, ns, local))[0] != seq:
            now = collection_alias(txn, env, ns, local)
            raise ConflictError(
                f"alias {ns}:{local} changed since genome {digest} was removed "
                f"({f'it now names {now}' if now else 'see `rgstore alias history`'}); undo refused, nothing changed"
            )


def _what_gc_deleted(store: Store, added: GenomeAdded) -> str:
    """What `rgstore gc` deleted of a removed genome: its collection index, and which of its sequences.

    gc removes a removed genome's index, but its sequences only where no other genome shares them: the
    refusal must not say the sequences were deleted while they are still stored.
    """
    from .refgetstore import SequenceFiles, strip_sq

    try:
        files: SequenceFiles | None = SequenceFiles(store.refget_path)
    except NotFoundError:
        files = None
    total = len(added.sequences)
    gone = sum(1 for sequence, length in zip(added.sequences, added.lengths)
               if files is None or not files.readable(strip_sq(sequence), length))
    since = "deleted from the RefgetStore since its removal (`rgstore gc`)"
    if gone == 0:
        kept = f"all {total:,} of its sequences are" if total != 1 else "its sequence is"
        return f"collection index was {since}; {kept} still stored (another genome shares them)"
    if gone == total:
        return f"collection index and {f'all {total:,} of its sequences' if total != 1 else 'its sequence'} were {since}"
    return f"collection index and {gone:,} of its {total:,} sequences were {since}"


def _check_redo(store: Store, txn: Txn, digest: str, removed: list[tuple[str, str, int]], present: bool) -> None:
    """Refuse to remove a genome again unless exactly the aliases its removal took still name it, unchanged."""
    env = store.environment
    history = env.db("history")
    if not present:
        raise ConflictError(f"genome {digest} is not in the catalogue: there is no removal to redo")
    naming = set(collection_aliases_of(txn, env, digest))
    for ns, local, seq in removed:
        if HistoryView.next_redo(txn, history, alias_stream(COLLECTION, ns, local)) != seq:
            raise ConflictError(
                f"alias {ns}:{local} changed since the removal of genome {digest} was undone; "
                "redo refused, nothing changed (`rgstore genome remove` removes it)"
            )
        naming.discard((ns, local))
    if naming:
        ns, local = sorted(naming)[0]
        raise ConflictError(
            f"alias {ns}:{local} has named genome {digest} since its removal was undone; "
            "redo refused, nothing changed (`rgstore genome remove` removes it with every alias)"
        )


def _tag(event: Event) -> str:
    return str(type(event).__struct_config__.tag)


def _shown(name: str, digest: str, by_digest: bool) -> str:
    return digest if by_digest else f"{name} ({digest})"

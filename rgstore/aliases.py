"""The Aliases service: set, resolve, remove, list, audit and undo/redo genome and sequence aliases.

A collection alias ``ns:name`` names a genome (seqcol top-level digest); a sequence alias names
one sequence digest (refget CURIEs such as ``insdc:BK006935.2``). A sequence digest is taken with
or without ``SQ.`` (or as ``ga4gh:SQ.…``), stored bare in ``digest`` fields, and shown as
``genome show`` and refget v2 name it, ``SQ.…`` (the ``ga4gh`` fields). Each alias is one stream of
the log (see ``rgstore.views.aliases``). Aliases never move silently: pointing an existing alias
elsewhere needs ``force=True``, and the old target stays in the alias's history.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Iterator
from datetime import datetime
from itertools import islice
from typing import TYPE_CHECKING

import msgspec
from msgspec import UNSET, UnsetType

from .environment import Environment, Txn
from .errors import ConflictError, InvalidInputError, NotFoundError, NothingToRedoError, NothingToUndoError
from .events import AliasRemoved, AliasSet, Redone, SequenceAliasRemoved, SequenceAliasSet, Undone
from .log import NewEvent
from .suggest import SCAN_LIMIT, did_you_mean
from .views.aliases import (
    COLLECTION,
    DEFAULT_NAMESPACE,
    SEQUENCE,
    Kind,
    alias_entry,
    alias_names,
    alias_namespaces,
    alias_snapshots,
    alias_stream,
    alias_target,
    aliases_of,
    check_name,
    check_namespace,
    list_aliases,
    target_at,
)
from .views.aliasnames import DIGEST_RE, check_new_name, check_sequence_namespace
from .views.genomes import genome_record, genomes_with_sequence
from .views.history import HistoryView, done_stack, undone_stack

if TYPE_CHECKING:
    from .store import Store

__all__ = [
    "AliasChange", "AliasEntry", "AliasStep", "Aliases", "normalise_digest", "sequence_id", "shadowed_by", "split_alias",
]

LIST_CHUNK = 4096
"""Aliases read per read transaction by ``Aliases.stream``: a reader slow to print pins no pages for long."""

class AliasEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One alias as it stands: where it points and the seq of the event that made it so."""

    kind: str
    namespace: str
    name: str
    digest: str
    seq: int
    ga4gh: str | UnsetType = UNSET
    """A sequence alias's target as refget v2 and ``genome show`` name it (``SQ.…``); absent for genome aliases."""


class AliasChange(msgspec.Struct, frozen=True, kw_only=True):
    """What a command did to one alias (``seq`` 0: nothing needed doing)."""

    kind: str
    namespace: str
    name: str
    digest: str | None
    previous: str | None
    seq: int
    ga4gh: str | None | UnsetType = UNSET
    """``digest`` of a sequence alias as ``SQ.…`` (None when removed); absent for genome aliases."""
    previous_ga4gh: str | None | UnsetType = UNSET
    """``previous`` of a sequence alias as ``SQ.…``; absent for genome aliases."""
    shadows: dict[str, str] | UnsetType = UNSET
    """Set when a new ``refgenie`` alias (or one an undo/redo brought back) took a bare name other
    namespaces give other genomes: ``{"ncbi:hg38": digest}`` of each (they still hold; the bare
    name now means this one)."""


class AliasStep(msgspec.Struct, frozen=True, kw_only=True):
    """One event on an alias's stream and the target it left behind.

    ``state`` is ``current`` (the step in effect), ``done`` (an earlier step undo can return to),
    ``undone`` (a step redo can re-apply), ``discarded`` (undone, then superseded) or ``""`` for
    the undo/redo marks themselves.
    """

    seq: int
    time: datetime
    actor: str
    action: str
    digest: str | None
    state: str
    ga4gh: str | None | UnsetType = UNSET
    """``digest`` of a sequence alias's step as ``SQ.…``; absent for genome aliases."""


def split_alias(name: str, namespace: str | None = None) -> tuple[str, str]:
    """(namespace, name) from ``ns:name`` or a bare name (namespace ``namespace`` or refgenie).

    InvalidInputError for an invalid ``namespace``, the empty one too: only None means the default.
    """
    if namespace is not None:
        check_namespace(namespace)  # "" (an unset shell variable) must not quietly mean refgenie
    ns, sep, local = name.partition(":")
    if sep:
        if namespace is not None and namespace != ns:
            raise InvalidInputError(f"alias {name!r} names namespace {ns!r} but --namespace is {namespace!r}")
        return check_namespace(ns), check_name(local)
    return check_namespace(DEFAULT_NAMESPACE if namespace is None else namespace), check_name(name)


def find_genome_alias(txn: Txn, environment: Environment, namespace: str, name: str, *, bare: bool) -> tuple[str, str | None]:
    """(namespace it was found in, digest or None) of the genome alias ``namespace:name``.

    A ``bare`` name (typed without ``ns:``) that its namespace lacks resolves in the other
    namespaces, the refgenie server's order (its own aliases first, then ncbi, ucsc, ...), so
    ``getseq hg38`` and ``/v4/aliases/hg38`` agree. ConflictError when those namespaces point the
    name at different genomes: a silent pick would serve the wrong genome.
    """
    digest = alias_target(txn, environment, COLLECTION, namespace, name)
    if digest is not None or not bare:
        return namespace, digest
    hits = {other: target for other in alias_namespaces(txn, environment, COLLECTION)
            if other != namespace and (target := alias_target(txn, environment, COLLECTION, other, name)) is not None}
    if len(set(hits.values())) > 1:
        raise ConflictError(f"genome name {name!r} is ambiguous: " + ", ".join(
            f"{other}:{name} -> {target}" for other, target in sorted(hits.items())) + "; name one of them as ns:name")
    if not hits:
        return namespace, None
    found = min(hits)
    return found, hits[found]


def shadowed_by(txn: Txn, environment: Environment, name: str, digest: str) -> dict[str, str]:
    """``{"ns:name": target}`` of the other namespaces' genome aliases ``name`` that a new
    ``refgenie:name`` pointing at ``digest`` takes the bare name from (same target: not listed).

    Call it only when ``refgenie:name`` does not exist yet: a bare name is the refgenie one first
    (``find_genome_alias``), so until then it meant theirs.
    """
    return {f"{other}:{name}": target for other in alias_namespaces(txn, environment, COLLECTION)
            if other != DEFAULT_NAMESPACE
            and (target := alias_target(txn, environment, COLLECTION, other, name)) not in (None, digest)}


def sequence_id(digest: str) -> str:
    """A bare sha512t24u sequence digest as refget v2 and ``genome show`` name it: ``SQ.<digest>``."""
    return "SQ." + digest


def normalise_digest(digest: str) -> str:
    """A sha512t24u digest without its ``SQ.``/``SQ:``/``ga4gh:SQ.`` prefix; InvalidInputError if malformed."""
    # ``ga4gh:`` case-insensitively, as the refget route takes it.
    stripped = digest[6:] if digest[:6].lower() == "ga4gh:" and digest[6:9] == "SQ." else digest
    bare = stripped[3:] if stripped[:3] in ("SQ.", "SQ:") else stripped
    if not DIGEST_RE.fullmatch(bare):
        raise InvalidInputError(
            f"invalid digest {digest!r}: expected a 32-character GA4GH sha512t24u digest"
        )
    return bare


def _shown(kind: Kind, digest: str | None) -> str:
    """A digest as messages name it: a sequence's as ``SQ.…`` (``genome show``'s form), a genome's bare."""
    return sequence_id(digest) if kind == SEQUENCE and digest is not None else str(digest)


def _label(kind: Kind, namespace: str, name: str) -> str:
    return f"{'sequence alias' if kind == SEQUENCE else 'alias'} {namespace}:{name}"


def _no_alias(txn: Txn, environment: Environment, kind: Kind, namespace: str, name: str) -> NotFoundError:
    """The not-found error for an alias: the other namespaces holding the same name, else a close
    name in its namespace when there is one."""
    # Alias commands take a name exactly (unlike getseq's bare-name fallback); say where it does exist.
    elsewhere = [f"{other}:{name}" for other in alias_namespaces(txn, environment, kind)
                 if other != namespace and alias_target(txn, environment, kind, other, name) is not None]
    if elsewhere:
        shown = ", ".join(elsewhere[:5]) + (f" and {len(elsewhere) - 5} more" if len(elsewhere) > 5 else "")
        return NotFoundError(f"no {_label(kind, namespace, name)}; other namespaces have it: {shown} "
                             f"(alias commands take ns:NAME exactly)")
    names = (other for _ns, other in islice(alias_names(txn, environment, kind, namespace), SCAN_LIMIT))
    return NotFoundError(f"no {_label(kind, namespace, name)}; {did_you_mean(name, names) or 'see ' + _listing(kind)}")


def _listing(kind: Kind) -> str:
    """The command that lists aliases of this kind."""
    return "`rgstore alias list --sequence`" if kind == SEQUENCE else "`rgstore alias list`"


class Aliases:
    """Commands and queries over the store's collection and sequence aliases."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._history = store.environment.db("history")

    # -- commands -----------------------------------------------------------------------------

    def set(
        self, name: str, digest: str, *, namespace: str | None = None, force: bool = False,
        sequence: bool = False,
    ) -> AliasChange:
        """Point an alias at a genome (or, with ``sequence``, a sequence) digest that exists.

        Setting an alias to where it already points changes nothing (``seq`` 0). Moving an
        existing alias needs ``force``; otherwise ConflictError.
        """
        kind: Kind = SEQUENCE if sequence else COLLECTION
        ns, local = split_alias(name, namespace)
        check_new_name(local)
        target = normalise_digest(digest)
        if kind == SEQUENCE:
            check_sequence_namespace(ns)
            target = self._existing_sequence(target)
        result: list[AliasChange] = []

        def command(txn: Txn) -> list[NewEvent]:
            current = alias_target(txn, self.store.environment, kind, ns, local)
            result[:] = [_change(kind, ns, local, target, current)]
            if current == target:
                return []
            if current is not None and not force:
                raise ConflictError(
                    f"{_label(kind, ns, local)} already points at {_shown(kind, current)}; "
                    f"use --force to repoint it to {_shown(kind, target)} (the old target stays in its history)"
                )
            if kind == COLLECTION:
                self._require_genome(txn, target)
                if ns == DEFAULT_NAMESPACE and current is None:
                    shadows = shadowed_by(txn, self.store.environment, local, target)
                    if shadows:
                        result[:] = [msgspec.structs.replace(result[0], shadows=shadows)]
            event = (
                AliasSet(namespace=ns, name=local, digest=target)
                if kind == COLLECTION
                else SequenceAliasSet(namespace=ns, name=local, digest=target)
            )
            return [NewEvent(stream=alias_stream(kind, ns, local), event=event)]

        seqs = self.store.transact(command)
        return _with_seq(result[0], seqs)

    def remove(self, name: str, *, namespace: str | None = None, sequence: bool = False) -> AliasChange:
        """Delete an alias (NotFoundError if it does not exist); its history keeps the old target."""
        kind: Kind = SEQUENCE if sequence else COLLECTION
        ns, local = split_alias(name, namespace)
        result: list[AliasChange] = []

        def command(txn: Txn) -> list[NewEvent]:
            current = alias_target(txn, self.store.environment, kind, ns, local)
            if current is None:
                raise _no_alias(txn, self.store.environment, kind, ns, local)
            result[:] = [_change(kind, ns, local, None, current)]
            event = (
                AliasRemoved(namespace=ns, name=local)
                if kind == COLLECTION
                else SequenceAliasRemoved(namespace=ns, name=local)
            )
            return [NewEvent(stream=alias_stream(kind, ns, local), event=event)]

        seqs = self.store.transact(command)
        return _with_seq(result[0], seqs)

    def undo(self, name: str, *, namespace: str | None = None, sequence: bool = False) -> AliasChange:
        """Take back the alias's latest step (NothingToUndoError if there is none)."""
        return self._move(name, namespace, sequence, redo=False)

    def redo(self, name: str, *, namespace: str | None = None, sequence: bool = False) -> AliasChange:
        """Re-apply the alias's most recently undone step (NothingToRedoError if there is none)."""
        return self._move(name, namespace, sequence, redo=True)

    def _move(self, name: str, namespace: str | None, sequence: bool, *, redo: bool) -> AliasChange:
        kind: Kind = SEQUENCE if sequence else COLLECTION
        ns, local = split_alias(name, namespace)
        stream = alias_stream(kind, ns, local)
        env = self.store.environment
        result: list[AliasChange] = []

        def command(txn: Txn) -> list[NewEvent]:
            current = alias_target(txn, env, kind, ns, local)
            step = HistoryView.next_redo(txn, self._history, stream) if redo else HistoryView.top(
                txn, self._history, stream
            )[1]
            target = target_at(txn, env, kind, ns, local, step)
            if kind == COLLECTION and target is not None and target != current:
                self._require_genome(txn, target, why=f"{'redo' if redo else 'undo'} of {ns}:{local}")
            if kind == SEQUENCE and target is not None and target != current and not _sequence_held(
                    self.store, txn, target):
                # `gc` may have deleted it since: gtars and /sequence would resolve the alias to nothing.
                raise NotFoundError(
                    f"no sequence with digest {sequence_id(target)} in this store's RefgetStore "
                    f"({'redo' if redo else 'undo'} of {ns}:{local}); add a genome holding it first"
                )
            result[:] = [_change(kind, ns, local, target, current)]
            if kind == COLLECTION and ns == DEFAULT_NAMESPACE and current is None and target is not None:
                # Bringing a refgenie alias back takes the bare name as a new one does: never silently.
                shadows = shadowed_by(txn, env, local, target)
                if shadows:
                    result[:] = [msgspec.structs.replace(result[0], shadows=shadows)]
            # The engine fills the zipper seqs and refuses when there is nothing to undo/redo.
            return [NewEvent(stream=stream, event=Redone() if redo else Undone())]

        try:
            seqs = self.store.transact(command)
        except (NothingToUndoError, NothingToRedoError) as exc:
            # The engine names the stream (alias:refgenie/base); say it the way the user wrote it.
            raise type(exc)(f"{_label(kind, ns, local)} has nothing to {'redo' if redo else 'undo'}") from None
        return _with_seq(result[0], seqs)

    # -- queries ------------------------------------------------------------------------------

    def get(self, name: str, *, namespace: str | None = None, sequence: bool = False) -> str:
        """The digest an alias points at; NotFoundError if it does not exist."""
        return self.entry(name, namespace=namespace, sequence=sequence).digest

    def entry(self, name: str, *, namespace: str | None = None, sequence: bool = False) -> AliasEntry:
        """The alias as ``list`` gives it (with ``ga4gh`` for a sequence alias); NotFoundError if it does not exist."""
        kind: Kind = SEQUENCE if sequence else COLLECTION
        ns, local = split_alias(name, namespace)
        with self.store.read() as txn:
            found = alias_entry(txn, self.store.environment, kind, ns, local)
            if found is None:
                raise _no_alias(txn, self.store.environment, kind, ns, local)
        return _entry(kind, ns, local, *found)

    def names(self, *, namespace: str | None = None, sequence: bool = False) -> builtins.list[tuple[str, str]]:
        """(namespace, name) of every alias of one kind (in one namespace), sorted; keys only, so cheap at any size."""
        kind: Kind = SEQUENCE if sequence else COLLECTION
        if namespace is not None:
            check_namespace(namespace)
        with self.store.read() as txn:
            return builtins.list(alias_names(txn, self.store.environment, kind, namespace))

    def list(
        self, *, namespace: str | None = None, digest: str | None = None, sequence: bool = False
    ) -> builtins.list[AliasEntry]:
        """Every alias of one kind, optionally only one namespace's or one digest's, sorted.

        A sequence ``digest`` may be given in any form ``set`` takes, an MD5 included.
        """
        kind: Kind = SEQUENCE if sequence else COLLECTION
        if namespace is not None:
            check_namespace(namespace)
        target = None if digest is None else normalise_digest(digest)
        if target is not None and kind == SEQUENCE:
            # As ``set`` resolves it: an MD5 names the sha512t24u its aliases point at. A digest no
            # sequence here has (gc deleted it) may still be pointed at: it is listed as given.
            target = sequence_known(self.store, target) or target
        env = self.store.environment
        with self.store.read() as txn:
            if target is not None:
                return self._by_digest(txn, kind, target, namespace)
            return [_entry(kind, ns, name, d, seq) for ns, name, d, seq in list_aliases(txn, env, kind, namespace)]

    def stream(
        self, *, namespace: str | None = None, digest: str | None = None, sequence: bool = False,
        chunk: int = LIST_CHUNK,
    ) -> Iterator[AliasEntry]:
        """``list``, yielded as read: ``chunk`` aliases per short read transaction, never the whole listing.

        Each chunk is read in its own transaction (a consumer slow to take them, such as a paged
        terminal, holds no transaction open), so a listing taken while the aliases change shows
        each alias as one of its states, not the whole store at one instant.
        """
        if chunk < 1:  # else an empty chunk would never end the listing
            raise InvalidInputError(f"chunk must be a positive number of aliases, got {chunk}")
        kind: Kind = SEQUENCE if sequence else COLLECTION
        if namespace is not None:
            check_namespace(namespace)
        if digest is not None:
            yield from self.list(namespace=namespace, digest=digest, sequence=sequence)  # one digest's: few
            return
        env = self.store.environment
        after: tuple[str, str] | None = None
        while True:
            with self.store.read() as txn:
                rows = builtins.list(islice(list_aliases(txn, env, kind, namespace, after=after), chunk))
            yield from (_entry(kind, ns, name, d, seq) for ns, name, d, seq in rows)
            if len(rows) < chunk:
                return
            after = rows[-1][0], rows[-1][1]

    def _by_digest(
        self, txn: Txn, kind: Kind, digest: str, namespace: str | None
    ) -> builtins.list[AliasEntry]:
        env = self.store.environment
        out: builtins.list[AliasEntry] = []
        for ns, name in aliases_of(txn, env, kind, digest):
            entry = alias_entry(txn, env, kind, ns, name)
            if entry is not None and namespace in (None, ns):
                out.append(_entry(kind, ns, name, *entry))
        return out

    def history(
        self, name: str, *, namespace: str | None = None, sequence: bool = False
    ) -> builtins.list[AliasStep]:
        """Every event on the alias's stream, oldest first, with the target each one left."""
        kind: Kind = SEQUENCE if sequence else COLLECTION
        ns, local = split_alias(name, namespace)
        stream = alias_stream(kind, ns, local)
        env = self.store.environment
        steps: builtins.list[AliasStep] = []
        with self.store.read() as txn:
            done = done_stack(txn, self._history, stream)
            undone = set(undone_stack(txn, self._history, stream))
            for seq, target in alias_snapshots(txn, env, kind, ns, local):
                envelope = self.store.log.get(txn, seq)
                assert envelope is not None
                event = envelope.event
                if isinstance(event, (Undone, Redone)):
                    state = ""
                elif done and seq == done[-1]:
                    state = "current"
                elif seq in done:
                    state = "done"
                elif seq in undone:
                    state = "undone"
                else:
                    state = "discarded"
                tag = str(event.__struct_config__.tag)
                steps.append(AliasStep(
                    seq=seq, time=envelope.time, actor=envelope.actor, action=tag, digest=target, state=state,
                    ga4gh=_ga4gh(kind, target),
                ))
        if not steps:
            raise NotFoundError(f"{_label(kind, ns, local)} has no history; see {_listing(kind)}")
        return steps

    # -- existence checks -----------------------------------------------------------------------

    def _require_genome(self, txn: Txn, digest: str, *, why: str = "") -> None:
        if not genome_known(self.store, txn, digest):
            reason = f" ({why})" if why else ""
            raise NotFoundError(
                f"no genome with digest {digest} in this store{reason}; "
                "add it first with `rgstore genome init`"
            )

    def _existing_sequence(self, digest: str) -> str:
        """The canonical sha512t24u of a stored sequence (md5 accepted); NotFoundError otherwise."""
        canonical = sequence_known(self.store, digest)
        if canonical is None:
            raise NotFoundError(f"no sequence with digest {_shown_input(digest)} in this store's RefgetStore")
        return canonical


def _ga4gh(kind: Kind, digest: str | None) -> str | None | UnsetType:
    """The ``ga4gh`` field of a result: ``SQ.…`` (or None) for a sequence alias, absent for a genome alias."""
    if kind != SEQUENCE:
        return UNSET
    return sequence_id(digest) if digest is not None else None


def _entry(kind: Kind, namespace: str, name: str, digest: str, seq: int) -> AliasEntry:
    return AliasEntry(kind=kind, namespace=namespace, name=name, digest=digest, seq=seq,
                      ga4gh=UNSET if kind != SEQUENCE else sequence_id(digest))


def _change(kind: Kind, namespace: str, name: str, digest: str | None, previous: str | None) -> AliasChange:
    return AliasChange(kind=kind, namespace=namespace, name=name, digest=digest, previous=previous, seq=0,
                       ga4gh=_ga4gh(kind, digest), previous_ga4gh=_ga4gh(kind, previous))


def _with_seq(change: AliasChange, seqs: list[int]) -> AliasChange:
    return msgspec.structs.replace(change, seq=seqs[-1]) if seqs else change


def _shown_input(digest: str) -> str:
    """A sequence digest the user gave, for a message: ``SQ.…`` unless it is an MD5 (32 hex)."""
    return digest if all(c in "0123456789abcdefABCDEF" for c in digest) else sequence_id(digest)


def genome_known(store: Store, txn: Txn, digest: str) -> bool:
    """Whether ``digest`` is a genome of this store (recorded in the genome view)."""
    return genome_record(txn, store.environment, digest) is not None


def _sequence_held(store: Store, txn: Txn, digest: str) -> bool:
    """Whether a canonical sequence digest is some genome's (inside ``txn``) or in the RefgetStore."""
    if genomes_with_sequence(txn, store.environment, digest):
        return True
    if not (store.refget_path / "rgstore.json").exists():
        return False
    from .refgetstore import open_refget

    try:
        open_refget(store, write=False).get_sequence(digest)
    except KeyError:
        return False
    return True


_HEX32 = re.compile(r"[0-9A-Fa-f]{32}")


def sequence_known(store: Store, digest: str) -> str | None:
    """The canonical sha512t24u of a sequence of some genome of this store, or None.

    A digest any genome lists is known (remote genomes' sequences included, fetched or not); an
    md5 or a sequence only the RefgetStore holds is resolved through gtars.
    """
    with store.read() as txn:
        if genomes_with_sequence(txn, store.environment, digest):
            return digest
    if not (store.refget_path / "rgstore.json").exists():
        return None
    from .refgetstore import open_refget

    refget = open_refget(store, write=False)
    # An MD5 pasted in capitals: tried as given first, since 32 capitals and digits may also be a sha512t24u.
    for candidate in dict.fromkeys((digest, digest.lower() if _HEX32.fullmatch(digest) else digest)):
        try:
            return str(refget.get_sequence(candidate).metadata.sha512t24u)
        except KeyError:
            continue
    return None

"""The reads behind refget's seqcol-server extensions: alias lookups by kind and namespace, and FHR documents.

refget's server (``refgenie/refget``, ``refget/router.py`` and ``refget/backend.py``) adds to the
seqcol API ``/alias/{kind}/{ns}/{alias}``, ``/list/alias/{kind}[/{ns}]``, ``/aliases/{kind}/{digest}``,
``/collection/{d}/fhr`` and ``/list/fhr``; ``kind`` is ``collection`` or ``sequence``. These
functions answer them from the alias and genome views. Where refget answers an empty list for a
namespace or digest it does not hold, these raise NotFoundError instead (a typo is told apart from
an empty answer); a digest this store holds that has no aliases is an empty list.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from .aliases import normalise_digest, sequence_known
from .errors import InvalidInputError, NotFoundError
from .suggest import did_you_mean
from .views.aliases import (
    COLLECTION,
    SEQUENCE,
    Kind,
    alias_entry,
    alias_names,
    alias_namespaces,
    aliases_of,
    check_name,
    check_namespace,
)
from .views.aliasnames import DIGEST_RE
from .views.genomes import all_fhr, genome_exists, genome_fhr

if TYPE_CHECKING:
    from .store import Store

__all__ = ["SeqcolFeatures", "alias_kind", "aliases_for", "collection_fhr", "fhr_collections", "kind_namespaces",
           "namespace_aliases", "resolve_alias", "seqcol_features"]


class SeqcolFeatures(msgspec.Struct, frozen=True, kw_only=True):
    """What refget's service-info flags say: whether any alias, and any FHR document, is stored."""

    aliases: bool
    fhr_metadata: bool


def alias_kind(kind: str) -> Kind:
    """``collection`` or ``sequence``; InvalidInputError (400, as refget answers) for anything else."""
    if kind == COLLECTION or kind == SEQUENCE:
        return kind
    raise InvalidInputError(f"kind must be 'collection' or 'sequence', not {kind!r}")


def resolve_alias(store: Store, kind: str, namespace: str, name: str) -> str:
    """The digest alias ``namespace:name`` of this kind points at (a sequence's bare, as gtars gives it);
    NotFoundError when there is no such alias (a malformed name or namespace cannot be one either)."""
    checked = alias_kind(kind)
    found = None
    if _well_formed(namespace, name):  # else it cannot be stored (nor be an LMDB key)
        with store.read() as txn:
            found = alias_entry(txn, store.environment, checked, namespace, name)
    if found is None:
        raise NotFoundError(f"no {checked} alias {namespace}:{name} in this store; "
                            f"see /seqcol/list/alias/{checked} for its namespaces")
    return found[0]


def kind_namespaces(store: Store, kind: str) -> list[str]:
    """The namespaces holding aliases of this kind, sorted."""
    checked = alias_kind(kind)
    with store.read() as txn:
        return alias_namespaces(txn, store.environment, checked)


def namespace_aliases(store: Store, kind: str, namespace: str) -> list[str]:
    """The names of one namespace's aliases of this kind, sorted (keys only); NotFoundError when it holds none."""
    checked = alias_kind(kind)
    with store.read() as txn:
        names = [name for _ns, name in alias_names(txn, store.environment, checked, namespace)] \
            if _well_formed(namespace) else []
        if not names:
            known = alias_namespaces(txn, store.environment, checked)
    if not names:
        hint = did_you_mean(namespace, known) or (f"known: {', '.join(known)}" if known else "there are none")
        raise NotFoundError(f"no {checked} alias namespace {namespace!r} in this store; {hint}")
    return names


def aliases_for(store: Store, kind: str, digest: str) -> list[tuple[str, str]]:
    """(namespace, name) of every alias of this kind pointing at ``digest``, sorted; NotFoundError when no
    genome (or, for ``sequence``, no sequence) of this store has that digest.

    A sequence digest may be given as ``SQ.…``, bare or as an MD5, as ``rgstore alias list`` takes it.
    """
    checked = alias_kind(kind)
    if checked == SEQUENCE:
        try:
            bare = normalise_digest(digest) if not _is_md5(digest) else digest
        except InvalidInputError:
            raise NotFoundError(f"no sequence with digest {digest!r} in this store") from None
        target = sequence_known(store, bare)
        with store.read() as txn:
            found = aliases_of(txn, store.environment, SEQUENCE, target or bare)
        if not found and target is None:
            raise NotFoundError(f"no sequence with digest {digest!r} in this store")
        return found
    if not DIGEST_RE.fullmatch(digest):
        raise NotFoundError(f"no sequence collection {digest!r} in this store")
    with store.read() as txn:
        found = aliases_of(txn, store.environment, COLLECTION, digest)
        if not found and not genome_exists(txn, store.environment, digest):
            raise NotFoundError(f"no sequence collection {digest!r} in this store")
    return found


def _is_md5(digest: str) -> bool:
    return len(digest) == 32 and all(c in "0123456789abcdefABCDEF" for c in digest)


def _well_formed(namespace: str, name: str | None = None) -> bool:
    """Whether ``namespace`` (and ``name``) could name a stored alias at all."""
    try:
        check_namespace(namespace)
        if name is not None:
            check_name(name)
    except InvalidInputError:
        return False
    return True


def collection_fhr(store: Store, digest: str) -> dict[str, Any]:
    """The FHR document of genome ``digest``, as stored; NotFoundError for an unknown genome or one without."""
    if not DIGEST_RE.fullmatch(digest):
        raise NotFoundError(f"no sequence collection {digest!r} in this store")
    with store.read() as txn:
        doc = genome_fhr(txn, store.environment, digest)
        known = doc is not None or genome_exists(txn, store.environment, digest)
    if doc is None:
        raise NotFoundError(f"sequence collection {digest!r} has no FHR metadata" if known
                            else f"no sequence collection {digest!r} in this store")
    return doc


def fhr_collections(store: Store) -> list[str]:
    """The digests of the genomes that have an FHR document, sorted."""
    with store.read() as txn:
        return [digest for digest, _doc in all_fhr(txn, store.environment)]


def seqcol_features(store: Store) -> SeqcolFeatures:
    """Whether any alias (of either kind) and any FHR document is stored: refget's service-info flags."""
    env = store.environment
    with store.read() as txn:
        aliases = any(alias_namespaces(txn, env, kind) for kind in (COLLECTION, SEQUENCE))
        fhr = next(all_fhr(txn, env), None) is not None
    return SeqcolFeatures(aliases=aliases, fhr_metadata=fhr)

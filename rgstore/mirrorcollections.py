"""A mirror's RefgetStore collections: copied from its upstream's RefgetStore once every sequence is local.

A mirror replays genomes as events and caches their sequences one at a time (each through a
carrier collection removed again), so its RefgetStore alone would hold no collection, and gtars
clients could resolve none of its genomes by digest or alias. Once all of a genome's sequences are
local, the three index files that describe the collection on the upstream (``rgstore.json``,
``collections.rgci``, ``collections/<digest>.rgsi``) are fetched into a scratch store, and gtars'
``import_collection`` copies the collection from there: the bytes the primary's gtars wrote,
per-sequence FASTA descriptions included (the log does not carry those), and no residues (the
mirror has them all, so none is read or rewritten). The scratch store has no alias or FHR files:
those stay the ones the mirror's own views write. The result is checked against the genome record.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote_to_bytes

from . import upstream
from .errors import IntegrityError, NotFoundError, RemoteError
from .remote import DOC_LIMIT
from .views.genomes import GenomeRecord, genome_digests, genome_record

if TYPE_CHECKING:
    import httpx

    from .store import Store

__all__ = ["complete_collections"]


RETRY_AFTER_S = 600.0
"""How long a follower waits before asking an upstream again for a collection it did not have."""

_missed: dict[tuple[str, str], float] = {}  # (upstream, digest) -> when the upstream last lacked it


def _lacking(store: Store) -> list[GenomeRecord]:
    """The genomes whose collection the RefgetStore lacks while it holds every one of their sequences."""
    from .refgetstore import SequenceFiles, open_refget, sequence_readable, strip_sq

    collections = store.refget_path / "collections"
    with store.read() as txn:  # records decoded only for genomes without a collection (big assemblies are MBs)
        env = store.environment
        todo = [record for digest in genome_digests(txn, env) if not (collections / f"{digest}.rgsi").exists()
                if (record := genome_record(txn, env, digest)) is not None]
    if not todo:
        return []
    handle, files = open_refget(store, write=False), SequenceFiles(store.refget_path)  # one gtars open for all
    return [g for g in todo if all(sequence_readable(handle, files, strip_sq(seq), length)
                                   for seq, length in zip(g.sequences, g.lengths, strict=True))]


def _fetch_index(client: httpx.Client | None, base: str, relative: str, dest: Path) -> None:
    """Copy ``relative`` of the upstream RefgetStore at ``base`` (a URL or ``file://`` path) to ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if client is None:
        # Path.as_uri() quoted the bytes on disk: unquoted as text, a Latin-1 locale re-encodes them as other bytes.
        dest.write_bytes((Path(os.fsdecode(unquote_to_bytes(base.removeprefix("file://")))) / relative).read_bytes())
    else:
        dest.write_bytes(upstream.get(client, f"{base}/{relative}", limit=DOC_LIMIT))


def _import_one(store: Store, client: httpx.Client | None, base: str, genome: GenomeRecord) -> bool:
    """Copy one genome's collection from the upstream into the mirror's RefgetStore; False if the upstream lacks it."""
    from gtars.refget import RefgetStore  # type: ignore[import-untyped]

    from .refgetstore import gtars_path, open_refget, scratch_dir

    digest = genome.digest
    with scratch_dir(store, ".remote-") as scratch:
        try:
            for relative in ("rgstore.json", "collections.rgci", f"collections/{digest}.rgsi"):
                _fetch_index(client, base, relative, scratch / "source" / relative)
        except (OSError, NotFoundError, RemoteError):
            return False  # a lazy upstream (or one from before this) has no collection to copy: maybe later
        source = RefgetStore.open_local(gtars_path(scratch / "source"))
        source.set_quiet(True)
        try:
            open_refget(store, write=True).import_collection(source, digest)
        except OSError:
            return False
    level2 = open_refget(store, write=False).get_collection_level2(digest)
    if (list(level2["names"]), list(level2["lengths"]), list(level2["sequences"])) != (
            genome.names, genome.lengths, genome.sequences):
        open_refget(store, write=True).remove_collection(digest, remove_orphan_sequences=False)
        raise IntegrityError(f"the upstream's RefgetStore collection {digest} disagrees with the genome "
                             "recorded in the log; it was not kept")
    return True


def complete_collections(store: Store, source: str) -> list[str]:
    """Copy into the mirror's RefgetStore the collection of every genome whose sequences are all local now.

    Returns the digests copied. A genome still missing a sequence, or whose collection the upstream
    does not publish (a lazy mirror upstream), is left for a later call. IntegrityError if the
    upstream's collection disagrees with the recorded genome (nothing of it is kept).
    """
    from .mirror import upstream_refget_base

    if not (store.refget_path / "rgstore.json").exists():
        return []
    now = time.monotonic()
    # A follower pulls every few seconds: an upstream that lacked a collection (a lazy mirror) is
    # asked again only after RETRY_AFTER_S, not once per genome per pull.
    wanted = [g for g in _lacking(store) if now - _missed.get((source, g.digest), -RETRY_AFTER_S) >= RETRY_AFTER_S]
    if not wanted:
        return []
    base = upstream_refget_base(source)
    if base is None:
        return []
    client = None if base.startswith("file://") else upstream.client()
    copied: list[str] = []
    try:
        for genome in wanted:
            if _import_one(store, client, base, genome):
                copied.append(genome.digest)
                _missed.pop((source, genome.digest), None)
            else:
                _missed[(source, genome.digest)] = now
        return copied
    finally:
        if client is not None:
            client.close()

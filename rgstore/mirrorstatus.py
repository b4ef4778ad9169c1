"""Where a mirror stands: its upstream, local head, lag, last pull, and whether the upstream still holds its history.

Read-only: it asks the upstream (a server, published segments or an export file) for its head and, when
that head is past the mirror's, for the record at the mirror's head, so a rolled-back, diverged or
replaced upstream is reported rather than shown as lag.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec

from . import upstream
from .codec import chain_of
from .diskspace import os_error_text
from .errors import LogMismatchError, NotFoundError, RgstoreError
from .logfile import read_log_file
from .mirror import PULL_ERROR, PullError, lagging_copy, manifest_hashes, no_source, upstream_head
from .segments import MANIFEST, read_manifest
from .store import Store

__all__ = ["MirrorStatus", "status"]


class MirrorStatus(msgspec.Struct, kw_only=True):
    """Where a mirror stands relative to its upstream (``head_seq`` and ``local_head``: the same local head)."""

    upstream: str | None
    promoted: bool
    local_head: int
    head_seq: int  # ``local_head`` in the word ``rgstore status`` and ``mirror pull`` use (both kept: scripts read either)
    upstream_head: int | None = None
    lag: int | None = None
    last_pull: str | None = None
    error: str | None = None
    error_kind: str | None = None
    """What ``error`` is about: ``"upstream"`` (the upstream, or pulls from it, fail) or ``"promoted"`` (the store
    was promoted to a primary and a ``serve --follow`` follower stopped pulling: nothing is wrong upstream)."""


def status(store: Store, *, check_upstream: bool = True) -> MirrorStatus:
    """The mirror's upstream, local head, lag and last pull time (lag needs the upstream reachable).

    An unreachable, unreadable, rolled-back or diverged upstream is reported in ``error``, never raised;
    without that check (or when it finds nothing), ``error`` says why a follower's pulls have been failing.
    A status answers now: an upstream's 503 is reported as it is, not waited out as a pull waits it out.
    """
    from .retries import scope

    with scope(seconds=0):
        return _status(store, check_upstream=check_upstream)


def _status(store: Store, *, check_upstream: bool) -> MirrorStatus:
    with store.read() as txn:
        upstream = store.log.meta_get(txn, "replica_of")
        promoted = store.log.meta_get(txn, "promoted_from")
        last = store.log.meta_get(txn, "last_pull")
        failing = store.log.meta_get(txn, PULL_ERROR)
        head, head_hash = store.log.head(txn)
        log_id = store.log.log_id(txn)
    from .httpclient import redact  # a store from before credentials in URLs were refused may hold some

    recorded = upstream or promoted
    result = MirrorStatus(
        upstream=redact(recorded.decode()) if recorded else None,
        promoted=promoted is not None and upstream is None, local_head=head, head_seq=head,
        last_pull=last.decode().replace("+00:00", "Z") if last else None,  # Z like every other time rgstore prints
    )
    if upstream and failing:
        try:
            why = msgspec.json.decode(failing, type=PullError)
            result.error = f"pulls have failed since {why.since} (the last at {why.last}): {why.error}"
        except (msgspec.DecodeError, msgspec.ValidationError):
            result.error = "pulls have failed (the record of why is unreadable)"
    elif result.promoted and failing:  # promote clears the record: this one is a follower's stop at the promotion
        try:
            why = msgspec.json.decode(failing, type=PullError)
            result.error = f"the follower stopped at {why.last}: {why.error}"
        except (msgspec.DecodeError, msgspec.ValidationError):
            result.error = "the follower stopped (the record of why is unreadable)"
    if result.error is not None:
        result.error_kind = "promoted" if result.promoted else "upstream"
    if check_upstream and upstream:
        source = raw = upstream.decode()
        try:
            up_log, up_seq, up_hash = upstream_head(source)
        except (RgstoreError, OSError) as exc:
            # A bare OSError printed as "[Errno 2] No such file or directory: '.../manifest.json'": say it as pull does.
            text = (no_source(source) if isinstance(exc, FileNotFoundError)
                    else os_error_text(exc) if isinstance(exc, OSError) else str(exc))
            result.error, result.error_kind = redact(text), "upstream"
            return result
        source = redact(source)
        result.upstream_head = up_seq
        result.lag = max(up_seq - head, 0)
        if head and up_log != log_id:  # first, as pull refuses it: seqs of another log say nothing of this one
            result.error = f"{source} serves log {up_log}, not this mirror's {log_id}: it was replaced by another log"
        elif up_seq < head:
            try:
                lagging_copy(store, source, up_seq, {up_seq: up_hash})  # same history: only behind, no error
            except LogMismatchError:
                result.error = f"{source} is at seq {up_seq}, behind this mirror's {head}: it was rolled back or replaced"
        elif head and up_seq == head and up_hash != head_hash.hex():
            result.error = f"{source} has a different record at seq {head}: the upstream diverged"
        elif head and up_seq > head:  # restored from a backup, then written past this mirror: not mere lag
            try:
                theirs = _upstream_hash_at(raw, head)
            except (RgstoreError, OSError):
                theirs = None  # unreadable there now: the next pull says why
            if theirs is not None and theirs != head_hash.hex():
                result.error = f"{source} has a different record at seq {head}: the upstream diverged"
        if result.error is not None:
            result.error_kind = "upstream"
    return result


def _upstream_hash_at(source: str, seq: int) -> str | None:
    """The chain hash (hex) of the upstream's record at ``seq`` (at most its head); None if it names none there."""
    if upstream.is_url(source):
        with upstream.client() as client:
            try:
                manifest = read_manifest(upstream.get(client, f"{source}/{MANIFEST}"), source)
            except NotFoundError:  # a server: one page from just before seq
                page = next(upstream.server_pages(client, source, seq - 1, seq), [])
                return chain_of(page[0][1]).hex() if page and page[0][0] == seq else None
            if seq in (known := manifest_hashes(manifest)):
                return known[seq]
            sizes = {seg.file: seg.size for seg in manifest.segments}
            return _hash_at(upstream.segment_records(
                seq - 1, manifest, lambda f: upstream.get(client, f"{source}/{f}", limit=sizes[f]), source), seq)
    path = Path(source)
    if path.is_file():
        return _hash_at(read_log_file(path)[1], seq)
    manifest = read_manifest((path / MANIFEST).read_bytes(), source)
    if seq in (known := manifest_hashes(manifest)):
        return known[seq]
    return _hash_at(upstream.segment_records(seq - 1, manifest, lambda f: (path / f).read_bytes(), source), seq)


def _hash_at(records: Iterator[tuple[int, bytes]], seq: int) -> str | None:
    """The chain hash (hex) of the record at ``seq`` among ``records`` (in seq order); None if it is not there."""
    try:
        for at, record in records:
            if at >= seq:
                return chain_of(record).hex() if at == seq else None
        return None
    finally:  # a generator left open would go on prefetching segments, through a client about to close
        close = getattr(records, "close", None)
        if close is not None:
            close()

"""Which views are out of step with the log, and whether that is an upgrade or damage.

Every commit moves every view's checkpoint to the new head in its own transaction, so only two
kinds of gap are expected: an upgrade (a view version changed) and a view new to this store (never
folded, holding nothing). A third comes with mixed versions: an older rgstore that lacks a view added
since appends without folding it, leaving that view's checkpoint behind the head. Anything else (a
missing checkpoint on a view with data, a malformed record, a seq other than the head) is damage, and
is named so that `rgstore verify` can report it.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import TYPE_CHECKING

from .environment import Txn
from .errors import StaleViewsError
from .views import View

if TYPE_CHECKING:
    from .log import EventLog
    from .store import Store

__all__ = ["FIRST_RELEASE_VIEWS", "read_checkpoint", "out_of_step", "stale_views_error", "rebuild_count", "count_rebuild"]


FIRST_RELEASE_VIEWS = frozenset({"ids", "streams", "history", "aliases", "cache", "genomes", "refpkgs"})
"""Views every rgstore release folds: one behind the head is damage. Every other view was added later, so a
release without it may have appended since it was last folded (a store used by mixed versions)."""


def read_checkpoint(log: EventLog, txn: Txn, view: View) -> tuple[int, int] | None:
    """(version, seq) ``view`` was last folded to, (0, 0) if never, None if the record is malformed."""
    try:
        return log.checkpoint(txn, view)
    except struct.error:
        return None


def out_of_step(store: Store) -> list[tuple[View, str]]:
    """Views not folded to (their version, the head), each with what is wrong if that is damage ('' if not)."""
    out: list[tuple[View, str]] = []
    with store.read() as txn:
        head, _ = store.log.head(txn)
        for view in store.views:
            checkpoint = read_checkpoint(store.log, txn, view)
            if checkpoint == (view.version, head):
                continue
            if checkpoint is None:
                why = "its checkpoint record is malformed"
            elif checkpoint[1] == 0:
                held = next(iter(view.contents(txn, store.environment)), None) is not None
                why = "its checkpoint is missing though the view holds data" if held else ""
            elif checkpoint[1] < head and view.name not in FIRST_RELEASE_VIEWS:
                why = ""  # an older rgstore, which lacks this view, appended since: caught up like an upgrade
            elif checkpoint[1] != head:
                why = f"its checkpoint is at seq {checkpoint[1]} but the log's head is {head}"
            else:
                why = ""
            out.append((view, why))
    return out


def stale_views_error(path: Path, stale: list[tuple[View, str]]) -> StaleViewsError:
    """The refusal of a read-only open that cannot rebuild ``stale`` views itself."""
    damage = next((f"view {view.name!r}: {why}" for view, why in stale if why), None)
    return StaleViewsError(
        f"views {', '.join(view.name for view, _ in stale)} of {path} "
        f"{f'are out of step with the log ({damage})' if damage else 'were built by another rgstore version'}; "
        "open the store writable once (e.g. `rgstore rebuild`) to rebuild them"
    )


_REBUILDS = "rebuilds"


def rebuild_count(log: EventLog, txn: Txn) -> int:
    """How many rebuilds this copy of the log has committed: views may change under an unchanged head."""
    raw = log.meta_get(txn, _REBUILDS)
    return int.from_bytes(raw, "big") if raw else 0


def count_rebuild(log: EventLog, txn: Txn) -> None:
    """Record one more rebuild, in the rebuild's own write transaction (readers caching views key on it)."""
    log.meta_put(txn, _REBUILDS, (rebuild_count(log, txn) + 1).to_bytes(8, "big"))

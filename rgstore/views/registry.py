"""The ordered list of views every store folds; add a domain view here (and nowhere else)."""

from __future__ import annotations

from . import View
from .aliases import AliasView
from .cache import CacheView
from .genomes import GenomesView
from .history import HistoryView
from .ids import IdsView
from .refpkgs import RefpkgsView
from .streamindex import StreamIndexView
from .streams import StreamsView
from .timeindex import TimeIndexView

__all__ = ["all_views"]


def all_views() -> list[View]:
    """Fresh instances of every view, core first, in fold order."""
    views: list[View] = [IdsView(), StreamsView(), HistoryView()]
    # Domain views register below, one line each.
    views.append(AliasView())
    views.append(CacheView())
    views.append(GenomesView())
    views.append(RefpkgsView())
    views.append(StreamIndexView())
    views.append(TimeIndexView())
    return views

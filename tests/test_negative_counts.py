"""Claims about counts in the Python API: a negative count, limit, last, offset, page or chunk is
InvalidInputError with one line naming the argument, never a quietly empty result."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from rgstore.errors import InvalidInputError
from rgstore.store import Store


def _refused(call: Callable[[], object], argument: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        result = call()
        if not isinstance(result, list):
            list(result)  # type: ignore[call-overload]  # an iterator checks when first asked
    message = str(caught.value)
    assert message.startswith(f"{argument} must be ") and message.endswith(", got -1") and "\n" not in message


def test_negative_event_limits_are_refused_and_zero_still_lists_none(store: Store) -> None:
    _refused(lambda: store.events(limit=-1), "limit")
    _refused(lambda: store.events(last=-1), "last")
    _refused(lambda: store.events(stream="alias:*", last=-1), "last")
    _refused(lambda: store.iter_events(page=-1), "page")
    assert store.events(limit=0) == [] and store.events(last=0) == []


def test_negative_counts_are_refused_by_every_service_that_takes_one(store: Store) -> None:
    _refused(lambda: store.cache.show("0123456789abcdef", last=-1), "last")
    _refused(lambda: store.genomes.stream(chunk=-1), "chunk")
    _refused(lambda: store.aliases.stream(chunk=-1), "chunk")
    with store.read() as txn:
        _refused(lambda: store.refpkgs.page(txn, -1, 10), "offset")
        _refused(lambda: store.refpkgs.page(txn, 0, -1), "limit")
        assert store.refpkgs.page(txn, 0, 0) == (0, [])

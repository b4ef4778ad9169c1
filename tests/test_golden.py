"""Claims about old logs: every checked-in golden log decodes and verifies, forever."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from rgstore.codec import CODEC_ZSTD_DICT
from rgstore.events import EVENT_TYPES
from rgstore.logfile import read_log_file
from rgstore.replay import replay_file
from rgstore.store import Store

GOLDEN = sorted((Path(__file__).parent / "golden").glob("log-v*.rglog"))


def _subset(expected: Any, actual: Any) -> bool:
    """Fields added since the fixture was written may appear in ``actual`` only."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and _subset(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, list):
        return isinstance(actual, list) and len(expected) == len(actual) and all(
            _subset(e, a) for e, a in zip(expected, actual))
    return bool(expected == actual)


def test_there_is_a_golden_log() -> None:
    assert GOLDEN, "tests/golden/log-v1.rglog is missing"


@pytest.mark.parametrize("path", GOLDEN, ids=[p.name for p in GOLDEN])
def test_a_golden_log_replays_verifies_and_decodes_to_its_recorded_events(path: Path, tmp_path: Path) -> None:
    expected = msgspec.json.decode(path.with_suffix(".json").read_bytes())
    with Store.open(tmp_path / "s") as store:
        replay_file(store, path)
        assert store.verify().ok
        actual = [msgspec.to_builtins(e) for e in store.events()]
    assert len(actual) == len(expected)
    for e, a in zip(expected, actual):
        assert _subset(e, a), (e, a)


@pytest.mark.parametrize("path", GOLDEN, ids=[p.name for p in GOLDEN])
def test_a_golden_log_holds_dictionary_compressed_records(path: Path) -> None:
    _, frames = read_log_file(path)
    assert any(record[0] == CODEC_ZSTD_DICT for _, record in frames)


def test_every_event_type_has_a_golden_record() -> None:
    """A new event type needs a new golden file (python -m tests.golden.make_golden log-vN.rglog)."""
    seen = {
        event["event"]["type"]
        for path in GOLDEN
        for event in msgspec.json.decode(path.with_suffix(".json").read_bytes())
    }
    assert set(EVENT_TYPES) - seen == set()

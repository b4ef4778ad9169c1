"""Event ids: UUIDv7 strings, time-ordered so the ids index stays append-friendly."""

from __future__ import annotations

import os
import time as _time
from collections.abc import Iterator

__all__ = ["new_event_id", "id_source"]

_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def _now_ms() -> int:
    """Milliseconds since 1970, never negative (a clock set before 1970 must not stop every write)."""
    return max(_time.time_ns() // 1_000_000, 0)


def new_event_id() -> str:
    """A UUIDv7: 48-bit millisecond timestamp then random bits, so ids sort by time."""
    raw = bytearray(_now_ms().to_bytes(6, "big") + os.urandom(10))
    raw[6] = 0x70 | (raw[6] & 0x0F)  # version 7
    raw[8] = 0x80 | (raw[8] & 0x3F)  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def id_source(n: int) -> Iterator[str]:
    """Fresh UUIDv7s for up to ``n`` events (one urandom call per batch: appends draw ids in bulk)."""
    ms = _now_ms().to_bytes(6, "big").hex()
    rand = os.urandom(10 * n).hex()
    for i in range(0, 20 * n, 20):
        r = rand[i : i + 20]
        yield (f"{ms[:8]}-{ms[8:12]}-7{r[1:4]}-{_VARIANT[r[4]]}{r[5:8]}-{r[8:20]}")

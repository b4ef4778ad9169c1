"""Domain type aliases shared across rgstore; names document what a str or int means."""

from __future__ import annotations

from typing import NewType

__all__ = ["Seq", "Digest", "Namespace", "AliasName", "StreamName", "EventId", "Sha256", "Md5"]

Seq = NewType("Seq", int)
"""A position in the log: gapless, starting at 1."""

Digest = NewType("Digest", str)
"""A GA4GH sha512t24u digest (seqcol top-level or sequence), without the ``SQ.`` prefix."""

Namespace = NewType("Namespace", str)
AliasName = NewType("AliasName", str)
StreamName = NewType("StreamName", str)
"""An aggregate's stream, e.g. ``alias:refgenie/hg38`` or ``refpkg:mypkg``."""

EventId = NewType("EventId", str)
"""A time-ordered UUIDv7 in canonical text form; the idempotency key of one event."""

Sha256 = NewType("Sha256", str)
Md5 = NewType("Md5", str)

"""A wall clock for the log that a test sets by hand, so it can step back as real clocks do."""

from __future__ import annotations

from datetime import datetime, timezone


class LogClock:
    """Stands in for ``rgstore.log.datetime``: ``now()`` reads ``current`` (subclass to give another start)."""

    current = datetime(2026, 11, 1, tzinfo=timezone.utc)

    @classmethod
    def now(cls, tz: object = None) -> datetime:
        """The time the test set last."""
        return cls.current

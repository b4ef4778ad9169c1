"""Following: a loop that keeps a mirror current by pulling from its upstream every few seconds.

``rgstore serve --follow SOURCE`` runs this in one background process (the only writer), while the
API workers open the store read-only and see new events on their next request.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from types import FrameType

from .errors import RgstoreError
from .mirror import pull
from .store import Store

__all__ = ["follow", "parse_interval"]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_interval(text: str) -> float:
    """Seconds in an interval such as ``5s``, ``500ms``, ``2m`` or ``10`` (seconds)."""
    text = text.strip().lower()
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit) and text[: -len(unit)].replace(".", "", 1).isdigit():
            return float(text[: -len(unit)]) * _UNITS[unit]
    if text.replace(".", "", 1).isdigit():
        return float(text)
    from .errors import InvalidInputError

    raise InvalidInputError(f"invalid interval {text!r}: use e.g. 5s, 500ms, 2m")


def follow(store_path: Path, source: str, interval: float, *, max_rounds: int | None = None) -> int:
    """Pull from ``source`` into the store every ``interval`` seconds until SIGTERM/SIGINT.

    Errors of one round (upstream down, transient HTTP failures) are reported on stderr and
    retried next round; a refused upstream (foreign log, tampering) stops the loop with exit 1.
    """
    stopping = False

    def stop(_sig: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    rounds = 0
    with Store.open(store_path, actor="rgstore-follower") as store:
        while not stopping:
            try:
                pull(store, source)
            except RgstoreError as exc:
                print(f"follow: {exc}", file=sys.stderr, flush=True)
                from .errors import ChainError, IntegrityError, LogMismatchError

                if isinstance(exc, (LogMismatchError, ChainError, IntegrityError)):
                    return 1
            rounds += 1
            if max_rounds is not None and rounds >= max_rounds:
                break
            deadline = time.monotonic() + interval
            while not stopping and time.monotonic() < deadline:
                time.sleep(min(0.1, interval))
    return 0

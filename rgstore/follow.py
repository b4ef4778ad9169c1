"""Following: a loop that keeps a mirror current by pulling from its upstream every few seconds.

``rgstore serve --follow SOURCE`` runs this in one background process (the only writer), while the
API workers open the store read-only and see new events on their next request.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from .errors import ChainError, IntegrityError, LogMismatchError, RgstoreError
from .mirror import pull
from .store import Store

__all__ = ["follow", "parse_interval", "main"]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_interval(text: str) -> float:
    """Seconds in an interval such as ``5s``, ``500ms``, ``2m`` or ``10`` (seconds)."""
    text = text.strip().lower()
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit) and text[: -len(unit)].replace(".", "", 1).isdigit():
            return _positive(float(text[: -len(unit)]) * _UNITS[unit], text)
    if text.replace(".", "", 1).isdigit():
        return _positive(float(text), text)
    from .errors import InvalidInputError

    raise InvalidInputError(f"invalid interval {text!r}: use e.g. 5s, 500ms, 2m")


def _positive(seconds: float, text: str) -> float:
    if seconds < 0.1:
        from .errors import InvalidInputError

        raise InvalidInputError(f"interval {text!r} is too short: at least 100ms, so the follower does not spin")
    return seconds


def follow(store_path: Path, source: str, interval: float, *, max_rounds: int | None = None,
           parent: int | None = None) -> int:
    """Pull from ``source`` into the store every ``interval`` seconds until SIGTERM/SIGINT.

    Errors of one round (upstream down, transient HTTP failures) are reported on stderr and
    retried next round; a refused upstream (foreign log, tampering) stops the loop with exit 1.
    With ``parent``, the loop also ends when that process is gone (the server was killed).
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
            if parent is not None and os.getppid() != parent:
                break
            try:
                pull(store, source, with_blobs=True)
            except (LogMismatchError, ChainError, IntegrityError) as exc:
                print(f"follow: refusing {source}: {exc}", file=sys.stderr, flush=True)
                return 1
            except (RgstoreError, OSError) as exc:
                print(f"follow: {exc}; retrying in {interval:g}s", file=sys.stderr, flush=True)
            rounds += 1
            if max_rounds is not None and rounds >= max_rounds:
                break
            deadline = time.monotonic() + interval
            while not stopping and time.monotonic() < deadline:
                time.sleep(min(0.1, interval))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m rgstore.follow STORE SOURCE INTERVAL [--parent PID]``: the follower process."""
    parser = argparse.ArgumentParser(prog="rgstore-follow")
    parser.add_argument("store", type=Path)
    parser.add_argument("source")
    parser.add_argument("interval")
    parser.add_argument("--parent", type=int)
    args = parser.parse_args(argv)
    return follow(args.store, args.source, parse_interval(args.interval), parent=args.parent)


if __name__ == "__main__":
    sys.exit(main())

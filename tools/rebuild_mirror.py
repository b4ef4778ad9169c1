"""Rebuild (or bring up to date) a mirror store from an exported rgstore log.

Usage: python -m tools.rebuild_mirror EXPORT.rglog MIRROR_DIR [--verify]
Replays the export into MIRROR_DIR, verifying the hash chain; a mirror that already holds a
prefix of the same log gets only the missing records. With --verify, runs a full verify after.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rgstore.errors import RgstoreError
from rgstore.progress import terminal_progress
from rgstore.replay import replay_file
from rgstore.store import Store


def main(argv: list[str] | None = None) -> int:
    """Replay an export into a mirror directory; 0 on success, 1 on any rgstore error."""
    parser = argparse.ArgumentParser(prog="rebuild_mirror", description=__doc__.splitlines()[0])
    parser.add_argument("export", type=Path)
    parser.add_argument("mirror", type=Path)
    parser.add_argument("--verify", action="store_true", help="run a full verify afterwards")
    args = parser.parse_args(argv)
    try:
        with Store.open(args.mirror) as store:
            applied, head = replay_file(store, args.export, progress=terminal_progress)
            print(f"{args.mirror}: applied {applied} events, head {head}")
            if args.verify:
                report = store.verify(progress=terminal_progress)
                for problem in report.problems:
                    print(f"FAIL {problem}", file=sys.stderr)
                if not report.ok:
                    return 1
    except RgstoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

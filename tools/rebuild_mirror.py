"""Rebuild (or bring up to date) a mirror store from an exported log or published segments.

Usage: python -m tools.rebuild_mirror SOURCE MIRROR_DIR [--verify]
SOURCE is an export file (`rgstore log export`) or a segment directory/URL (`rgstore log publish`).
Replays it into MIRROR_DIR, verifying the hash chain, and marks MIRROR_DIR as a read-only mirror
of SOURCE; a mirror that already holds a prefix of the same log gets only the missing records.
With --verify, runs a full verify after.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rgstore.errors import RgstoreError
from rgstore.firstpull import pull_new_store
from rgstore.progress import terminal_progress
from rgstore.store import Store


def main(argv: list[str] | None = None) -> int:
    """Replay an export into a mirror directory; 0 on success, 1 on any rgstore error."""
    parser = argparse.ArgumentParser(prog="rebuild_mirror", description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("mirror", type=Path)
    parser.add_argument("--verify", action="store_true", help="run a full verify afterwards")
    args = parser.parse_args(argv)
    try:
        # As `mirror pull` does: a new MIRROR_DIR appears only once it holds the pulled log, so a bad
        # SOURCE leaves no empty store there for later commands to take for a real one.
        result = pull_new_store(args.mirror, args.source, progress=terminal_progress)
        print(f"{args.mirror}: applied {result.applied} events, head {result.head_seq}")
        if args.verify:
            with Store.open(args.mirror) as store:
                report = store.verify(progress=terminal_progress)
            for problem in report.problems:
                print(f"FAIL {problem}", file=sys.stderr)
            if not report.ok:
                return 1
            # Said on success too: a silent --verify reads as one that did not run.
            print(f"{args.mirror}: verify ok ({report.events} events, {report.blobs} blobs, "
                  f"{report.cache_files} cache files, {report.sequences} sequences checked)")
    except (RgstoreError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

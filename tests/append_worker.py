"""A subprocess that appends numbered batches with deterministic ids (for crash and concurrency tests).

Usage: python -m tests.append_worker STORE FIRST LAST BATCH STREAM [EXPECT]
Batch k gets ids derived from (STREAM, k, i), so re-running appends nothing twice.
FIRST and LAST given as "-" are read from stdin ("FIRST LAST" on one line; EOF: exit 0 without opening the
store), so a caller can start the worker, and pay its imports, before it knows them.
Prints "k seq..." after each committed batch. With EXPECT=1 each batch states the stream's
expected version and retries on conflict (printing "conflict k").
"""

from __future__ import annotations

import hashlib
import sys
import uuid

from rgstore.errors import ConcurrencyConflictError
from rgstore.events import Noted
from rgstore.log import NewEvent
from rgstore.store import Store


def event_id(stream: str, k: int, i: int) -> str:
    """A stable UUID for the i-th event of batch k on a stream."""
    return str(uuid.UUID(bytes=hashlib.sha256(f"{stream}:{k}:{i}".encode()).digest()[:16]))


def main(argv: list[str]) -> int:
    if argv[1:3] == ["-", "-"]:
        line = sys.stdin.readline()
        if not line:
            return 0
        argv = [argv[0], *line.split(), *argv[3:]]
    path, first, last, size, stream = argv[0], int(argv[1]), int(argv[2]), int(argv[3]), argv[4]
    expect = len(argv) > 5 and argv[5] == "1"
    with Store.open(path, actor=f"worker-{stream}") as store:
        for k in range(first, last):
            while True:
                version = store.stream_version(stream) if expect else None
                batch = [
                    NewEvent(stream=stream, event=Noted(text=f"{k}:{i}", data={"k": k}),
                             id=event_id(stream, k, i),
                             expected_version=None if version is None else version + i)
                    for i in range(size)
                ]
                try:
                    seqs = store.append(batch)
                    break
                except ConcurrencyConflictError:
                    print(f"conflict {k}", flush=True)
            print(k, *seqs, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

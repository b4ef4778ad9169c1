"""Benchmark the event log against a bare py-lmdb append of the same payloads, in one run.

Usage: python -m tools.bench.log [--events N] [--durable N] [--json]
Prints events/s for each case and the ratios the engine issue sets targets for:
durable one-command-one-event appends, batched appends with chain + ids (>= 200k ev/s,
<= 2.5x the bare baseline's time), a rebuild of every view (>= 200k ev/s), bytes per event.
Each append case also reports CPU microseconds per event (this process's CPU time, which a
busy machine and slow fsyncs disturb far less than the wall clock) and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import lmdb
import zstandard

from rgstore.codec import encode_envelope
from rgstore.events import AliasSet, CacheTouched, Envelope, Noted, RefpkgUpdated
from rgstore.log import NewEvent
from rgstore.store import Store
from rgstore.views import View
from rgstore.views.history import HistoryView
from rgstore.views.ids import IdsView
from rgstore.views.streams import StreamsView

BATCH = 1000


def workload(n: int) -> list[NewEvent]:
    """A mix shaped like real use: alias moves, refpkg metadata steps, cache touches, notes."""
    out: list[NewEvent] = []
    for i in range(n):
        k = i % 4
        if k == 0:
            out.append(NewEvent(stream=f"alias:refgenie/g{i % 5000}",
                                event=AliasSet(namespace="refgenie", name=f"g{i % 5000}", digest=f"{i:032d}")))
        elif k == 1:
            out.append(NewEvent(stream=f"refpkg:p{i % 100}",
                                event=RefpkgUpdated(name=f"p{i % 100}", metadata={"step": str(i)}, message=f"step {i}")))
        elif k == 2:
            out.append(NewEvent(stream=f"cache:{i % 20000:064x}", event=CacheTouched(key=f"{i % 20000:064x}")))
        else:
            out.append(NewEvent(stream=f"audit:{i % 50}", event=Noted(text=f"note {i}")))
    return out


def _payloads(events: list[NewEvent]) -> list[bytes]:
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc)
    return [encode_envelope(Envelope(seq=i + 1, id=f"{i:036d}", stream=e.stream, stream_version=1, time=now,
                                     actor="bench@host", event=e.event)) for i, e in enumerate(events)]


def bare_lmdb(root: Path, payloads: list[bytes], batch: int) -> tuple[float, float]:
    """(wall, CPU) seconds for py-lmdb alone to append the payloads, ``batch`` per durable txn."""
    env = lmdb.open(str(root), map_size=1 << 36, max_dbs=4)
    db = env.open_db(b"log")
    t, cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(payloads), batch):
        with env.begin(write=True) as txn:
            for j, p in enumerate(payloads[i:i + batch], start=i + 1):
                txn.put(j.to_bytes(8, "big"), p, db=db, append=True)
    took, cpu = time.perf_counter() - t, time.process_time() - cpu
    env.close()
    return took, cpu


def rgstore_append(root: Path, events: list[NewEvent], batch: int, core_only: bool) -> tuple[float, float, Store]:
    """(wall, CPU) seconds for Store.append of the events, ``batch`` per command (one durable txn each)."""
    store = Store.open(root, actor="bench@host")
    if core_only:
        core: list[View] = [v for v in store.views if isinstance(v, (IdsView, StreamsView, HistoryView))]
        store.views[:] = core
        store.log.views[:] = core
    t, cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(events), batch):
        store.append(events[i:i + batch])
    return time.perf_counter() - t, time.process_time() - cpu, store


def python_floor(events: list[NewEvent]) -> float:
    """Seconds for only the per-event Python steps an append cannot skip, with no LMDB and no views.

    Envelope, fresh id, msgpack, chain hash, uncompressed record header: the least any append in
    CPython does per event, so ``floor / bare`` bounds the best ratio a pure-Python log can reach.
    """
    from datetime import datetime, timezone
    from hashlib import sha256

    from rgstore.codec import chain_hash, frame
    from rgstore.eventids import id_source

    now, prev = datetime.now(timezone.utc), b"\x00" * 32
    ids = id_source(len(events))
    t = time.perf_counter()
    for seq, e in enumerate(events, start=1):
        payload = encode_envelope(Envelope(seq=seq, id=next(ids), stream=e.stream, stream_version=1, time=now,
                                           actor="bench@host", event=e.event))
        prev = chain_hash(prev, seq, payload, sha256)  # bound, as the append loop binds it
        frame(payload, prev, compress=False)
    return time.perf_counter() - t


def disk_bytes(path: Path) -> int:
    """Pages LMDB actually uses (not the sparse file size)."""
    env = lmdb.open(str(path), readonly=True, max_dbs=64)
    info = env.info()
    env.close()
    return (info["last_pgno"] + 1) * 4096


def zstd_dictionary_gain(payloads: list[bytes]) -> dict[str, float]:
    """Average stored bytes per payload: raw, zstd, zstd with a 16 KiB trained dictionary."""
    sample = payloads[: min(len(payloads), 20000)]
    d = zstandard.train_dictionary(16384, list[bytes | bytearray | memoryview](sample))
    plain, with_dict = zstandard.ZstdCompressor(level=3), zstandard.ZstdCompressor(level=3, dict_data=d)
    test = payloads[-5000:]
    return {
        "raw": sum(map(len, test)) / len(test),
        "zstd": sum(len(plain.compress(p)) for p in test) / len(test),
        "zstd+dict": sum(len(with_dict.compress(p)) for p in test) / len(test),
    }


def main(argv: list[str] | None = None) -> int:
    """Run every case once and print a table with ratios (or JSON)."""
    parser = argparse.ArgumentParser(prog="bench-log", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events for batched and rebuild cases")
    parser.add_argument("--durable", type=int, default=2000, help="events for the one-event-per-command case")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="rgstore-bench-log-"))
    res: dict[str, float] = {}
    try:
        events = workload(args.events)
        payloads = _payloads(events)
        os.sync()
        res["bare_batched_s"], res["bare_batched_cpu_s"] = bare_lmdb(tmp / "bare", payloads, BATCH)
        os.sync()
        res["bare_durable_s"], res["bare_durable_cpu_s"] = bare_lmdb(tmp / "bare1", payloads[: args.durable], 1)
        res["python_floor_s"] = python_floor(events)
        os.sync()
        took, cpu, store = rgstore_append(tmp / "durable", events[: args.durable], 1, core_only=False)
        store.close()
        res["rgstore_durable_s"], res["rgstore_durable_cpu_s"] = took, cpu
        os.sync()
        took, cpu, store = rgstore_append(tmp / "core", events, BATCH, core_only=True)
        store.close()
        res["rgstore_batched_core_s"], res["rgstore_batched_core_cpu_s"] = took, cpu
        os.sync()
        took, cpu, store = rgstore_append(tmp / "full", events, BATCH, core_only=False)
        res["rgstore_batched_all_views_s"], res["rgstore_batched_all_views_cpu_s"] = took, cpu
        t = time.perf_counter()
        store.rebuild()
        res["rebuild_all_views_s"] = time.perf_counter() - t
        core_views = [v for v in store.views if isinstance(v, (IdsView, StreamsView, HistoryView))]
        t = time.perf_counter()
        store.rebuild(core_views)
        res["rebuild_core_views_s"] = time.perf_counter() - t
        t = time.perf_counter()
        store.rebuild([])
        res["rebuild_read_decode_only_s"] = time.perf_counter() - t
        for view in store.views:
            t = time.perf_counter()
            store.rebuild([view])
            res[f"rebuild_view_{view.name}_s"] = time.perf_counter() - t - res["rebuild_read_decode_only_s"]
        store.close()
        res["bytes_per_event_rgstore"] = disk_bytes(tmp / "full" / "log") / args.events
        res["bytes_per_event_bare"] = disk_bytes(tmp / "bare") / args.events
        gain = zstd_dictionary_gain(payloads)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    n, d = args.events, args.durable
    rows = [
        ("durable 1-event commands/s", d / res["rgstore_durable_s"], d / res["bare_durable_s"]),
        ("batched appends/s, chain+ids (core views)", n / res["rgstore_batched_core_s"], n / res["bare_batched_s"]),
        ("batched appends/s, every view", n / res["rgstore_batched_all_views_s"], n / res["bare_batched_s"]),
        ("floor: envelope+id+msgpack+chain, no LMDB", n / res["python_floor_s"], n / res["bare_batched_s"]),
        ("rebuild of every view, events/s", n / res["rebuild_all_views_s"], float("nan")),
        ("rebuild of the core views (ids, streams, zipper)", n / res["rebuild_core_views_s"], float("nan")),
    ]
    if args.json:
        print(json.dumps({"results": res, "zstd_bytes": gain,
                          "rows": [{"case": c, "rgstore": r, "bare": b} for c, r, b in rows]}))
        return 0
    print(f"{'case':<44}{'rgstore':>12}{'bare lmdb':>12}{'time ratio':>12}")
    for case, ours, bare in rows:
        ratio = "" if bare != bare else f"{bare / ours:.2f}x"
        bare_s = "" if bare != bare else f"{bare:,.0f}"
        print(f"{case:<44}{ours:>12,.0f}{bare_s:>12}{ratio:>12}")
    cpu_rows = [("durable 1-event commands", "rgstore_durable", "bare_durable", d),
                ("batched appends, chain+ids (core views)", "rgstore_batched_core", "bare_batched", n),
                ("batched appends, every view", "rgstore_batched_all_views", "bare_batched", n)]
    print(f"{'CPU us/event':<44}{'rgstore':>12}{'bare lmdb':>12}{'cpu ratio':>12}")
    for case, ours_key, bare_key, count in cpu_rows:
        ours_us, bare_us = res[f"{ours_key}_cpu_s"] / count * 1e6, res[f"{bare_key}_cpu_s"] / count * 1e6
        print(f"{case:<44}{ours_us:>12.1f}{bare_us:>12.1f}{ours_us / bare_us:>11.2f}x")
    per_view = ", ".join(f"{k[len('rebuild_view_'):-2]} {v / n * 1e6:.1f}" for k, v in res.items()
                         if k.startswith("rebuild_view_"))
    print(f"rebuild cost per event, us: read+decode {res['rebuild_read_decode_only_s'] / n * 1e6:.1f}; "
          f"each view adds: {per_view}")
    print(f"bytes per event on disk: rgstore {res['bytes_per_event_rgstore']:.0f} "
          f"(log + every view), bare payloads {res['bytes_per_event_bare']:.0f}")
    print("payload bytes (small records): " + ", ".join(f"{k} {v:.0f}" for k, v in gain.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())


"""Write a golden log fixture: one record of every event type, exported with its hash chain.

Run once per released event-schema version and commit the output next to the old ones:
    python -m tests.golden.make_golden tests/golden/log-v1.rglog
Old fixtures are never regenerated: tests/test_golden.py decodes every one of them forever.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import msgspec

from rgstore.events import EVENT_TYPES, AnyEvent, FileRef, GenomeSource, HistoryStripped, Redone, Undone
from rgstore.log import NewEvent
from rgstore.replay import export_log
from rgstore.store import Store

__all__ = ["sample_events", "main"]


def _value(tp: object, name: str) -> object:
    import typing

    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is str:
        return f"golden-{name}"
    if tp is int:
        return 7
    if tp is bool:
        return True
    if tp is bytes:
        return b"golden-bytes"
    if tp is typing.Any:
        return {"k": [1, "v", None]}
    if origin is list:
        return [_value(args[0], name)]
    if origin is dict:
        return {f"{name}-key": _value(args[1], name)}
    if origin is typing.Union or str(origin) == "types.UnionType":
        return _value(args[0], name)
    if tp is FileRef:
        return FileRef(name="golden.fa", sha256="0" * 64, md5="0" * 32, size=7)
    if tp is GenomeSource:
        return GenomeSource(path="/golden.fa", size=7, md5="0" * 32)
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        hints = typing.get_type_hints(tp)
        return tp(**{f: _value(hints[f], f) for f in tp.__struct_fields__})
    raise TypeError(f"no golden value for {tp!r}")


def sample_events() -> list[tuple[str, AnyEvent]]:
    """One event of every registered type with every field set, on streams that make undo valid."""
    import typing

    out: list[tuple[str, AnyEvent]] = []
    for tag, cls in EVENT_TYPES.items():
        if cls in (Undone, Redone, HistoryStripped):
            continue
        hints = typing.get_type_hints(cls)
        if cls.__name__ == "CodecDictionaryAdded":
            continue  # appended by main() with a real trained dictionary
        out.append((f"golden:{tag}", cls(**{f: _value(hints[f], f) for f in cls.__struct_fields__})))
    out += [("golden:noted", Undone()), ("golden:noted", Redone()), ("golden:noted", HistoryStripped())]
    return out


def main(argv: list[str] | None = None) -> int:
    """Build a store from ``sample_events`` and export its log to the given path."""
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0])
    from rgstore.codec import encode_event, register_dictionary, train_dictionary
    from rgstore.events import CodecDictionaryAdded

    events = sample_events()
    with tempfile.TemporaryDirectory() as tmp, Store.open(Path(tmp) / "s", actor="golden@rgstore") as store:
        for stream, event in events:
            store.append([NewEvent(stream=stream, event=event)])
        # A real dictionary, then every event again: those records are stored dictionary-compressed.
        samples = [encode_event(e) + i.to_bytes(4, "big") for i in range(300) for _, e in events]
        data = train_dictionary(samples, size=4096)
        store.append([NewEvent(stream="engine:codec", event=CodecDictionaryAdded(
            dict_id=register_dictionary(data), data=data, trained_on=len(samples)))])
        for stream, event in events:
            store.append([NewEvent(stream=stream, event=event)])
        export_log(store, target)
        decoded = [msgspec.to_builtins(e) for e in store.events()]
    target.with_suffix(".json").write_bytes(msgspec.json.format(msgspec.json.encode(decoded)))
    print(f"wrote {target} and {target.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

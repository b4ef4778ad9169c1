"""taxtastic's CONTENTS.json: render a package's states into it, and parse one back into states.

Shape (taxtastic 1.0.1): the current state has ``metadata, files, md5, log, rollback,
rollforward``; a rollback state has ``metadata, files, md5, rollback`` (no log); a
rollforward entry is ``[log entry, state]`` whose state has ``metadata, files, md5, log,
rollforward`` (its full log, no rollback). Text is ``json.dump(indent=4)`` plus a newline.

Histories nest one JSON level per step, so both directions are iterative: rendering builds
the text from the innermost state outwards, and parsing walks the chains in loops.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from .errors import InvalidInputError

__all__ = [
    "FORMAT_VERSION",
    "MAX_NESTING",
    "ManifestState",
    "Manifest",
    "render_manifest",
    "parse_manifest",
    "nesting",
]

FORMAT_VERSION = "1.1"
MAX_NESTING = 900
"""Deepest JSON nesting an export writes: taxtastic's json.load (and dump) fail near Python's
recursion limit of 1000, so deeper histories could not be read back by ``taxit``."""


class ManifestState(msgspec.Struct, kw_only=True):
    """One state of a package: file key -> (file name, md5), metadata, and the log entry that made it."""

    files: dict[str, tuple[str, str]]
    metadata: dict[str, str]
    message: str = ""


class Manifest(msgspec.Struct, kw_only=True):
    """A package's states as CONTENTS.json records them.

    ``rollbacks`` are the states a rollback reaches, newest first; ``rollforwards`` the states
    a rollforward reaches, next first (each with the log entry it re-adds as ``message``).
    """

    current: ManifestState
    log: list[str]
    rollbacks: list[ManifestState] = []
    rollforwards: list[ManifestState] = []


def nesting(manifest: Manifest) -> int:
    """How deep the JSON of this manifest nests (containers inside containers)."""
    return 2 + max(len(manifest.rollbacks), 2 * len(manifest.rollforwards))


def _value(value: Any, level: int) -> str:
    return json.dumps(value, indent=4).replace("\n", "\n" + "    " * level)


def _obj(items: list[tuple[str, str]], level: int) -> str:
    pad = "    " * (level + 1)
    body = ",\n".join(f"{pad}{json.dumps(key)}: {text}" for key, text in items)
    return "{\n" + body + "\n" + "    " * level + "}"


def _plain(state: ManifestState, level: int) -> list[tuple[str, str]]:
    return [
        ("metadata", _value(state.metadata, level + 1)),
        ("files", _value({k: name for k, (name, _md5) in state.files.items()}, level + 1)),
        ("md5", _value({k: md5 for k, (_name, md5) in state.files.items()}, level + 1)),
    ]


def render_manifest(manifest: Manifest) -> str:
    """CONTENTS.json text, byte-identical to taxtastic's ``json.dump(contents, indent=4)`` + newline."""
    rollback = "null"
    for depth in range(len(manifest.rollbacks), 0, -1):
        state = manifest.rollbacks[depth - 1]
        rollback = _obj([*_plain(state, depth), ("rollback", rollback)], depth)
    rollforward = "null"
    logs, log = [], list(manifest.log)
    for state in manifest.rollforwards:
        log = [state.message, *log]
        logs.append(log)
    for index in range(len(manifest.rollforwards), 0, -1):
        state, level = manifest.rollforwards[index - 1], 2 * index
        inner = _obj([*_plain(state, level), ("log", _value(logs[index - 1], level + 1)),
                      ("rollforward", rollforward)], level)
        pad = "    " * level
        rollforward = f"[\n{pad}{json.dumps(state.message)},\n{pad}{inner}\n{'    ' * (level - 1)}]"
    top = [*_plain(manifest.current, 0), ("log", _value(manifest.log, 1)),
           ("rollback", rollback), ("rollforward", rollforward)]
    return _obj(top, 0) + "\n"


# --- parsing --------------------------------------------------------------------------------


def _bad(why: str) -> InvalidInputError:
    return InvalidInputError(f"CONTENTS.json is not a valid refpkg manifest: {why}")


def _state(doc: Any, where: str, message: str = "") -> ManifestState:
    if not isinstance(doc, dict):
        raise _bad(f"{where} is not an object")
    for key in ("metadata", "files", "md5"):
        if key not in doc:
            raise _bad(f"{where} has no key {key!r}")
        if not isinstance(doc[key], dict):
            raise _bad(f"{where}: key {key!r} is not an object")
    files, md5 = doc["files"], doc["md5"]
    if files.keys() != md5.keys():
        raise _bad(f"{where}: files and md5 have different keys ({sorted(files)} vs {sorted(md5)})")
    for table in ("metadata", "files", "md5"):
        for key, value in doc[table].items():
            if not isinstance(value, str):
                raise _bad(f"{where}: {table}[{key!r}] is not a string")
    for key, digest in md5.items():
        if len(digest) != 32 or any(c not in "0123456789abcdef" for c in digest.lower()):
            raise _bad(f"{where}: md5[{key!r}] = {digest!r} is not an MD5 hex digest")
    return ManifestState(
        files={key: (files[key], md5[key].lower()) for key in files},
        metadata=dict(doc["metadata"]),
        message=message,
    )


def parse_manifest(data: bytes) -> Manifest:
    """Parse CONTENTS.json; accepts minimal manifests (only files, md5 and metadata).

    InvalidInputError on anything taxtastic would reject, and on a history that records more
    rollback states than log entries (each rollback pops one entry).
    """
    try:
        doc = json.loads(data)
    except RecursionError:
        raise _bad("its history nests too deeply to parse") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bad(f"not JSON ({exc})") from None
    current = _state(doc, "the top level")
    log = doc.get("log", [])
    if not isinstance(log, list) or not all(isinstance(e, str) for e in log):
        raise _bad("'log' is not a list of strings")
    rollbacks: list[ManifestState] = []
    node = doc.get("rollback")
    while node is not None:
        state = _state(node, f"rollback state {len(rollbacks) + 1}")
        rollbacks.append(state)
        node = node.get("rollback")
    rollforwards: list[ManifestState] = []
    entry = doc.get("rollforward")
    while entry is not None:
        where = f"rollforward entry {len(rollforwards) + 1}"
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)):
            raise _bad(f"{where} is not a [log entry, state] pair")
        rollforwards.append(_state(entry[1], where, message=entry[0]))
        entry = entry[1].get("rollforward")
    if len(log) < len(rollbacks):
        raise _bad(f"it records {len(rollbacks)} rollback states but only {len(log)} log entries")
    for depth, state in enumerate(rollbacks):
        state.message = log[depth + 1] if depth + 1 < len(log) else ""
    current.message = log[0] if log else ""
    return Manifest(current=current, log=log, rollbacks=rollbacks, rollforwards=rollforwards)

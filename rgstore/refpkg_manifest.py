"""taxtastic's CONTENTS.json: render a package's states into it, and parse one back into states.

Shape (taxtastic 1.0.1): the current state has ``metadata, files, md5, log, rollback,
rollforward``; a rollback state has ``metadata, files, md5, rollback`` (no log); a
rollforward entry is ``[log entry, state]`` whose state has ``metadata, files, md5, log,
rollforward`` (its full log, no rollback). Text is ``json.dump(indent=4)`` plus a newline.
A state written without ``metadata.format_version`` gets "1.1" unless its files name a pre-1.1
key: pplacer rejects a package without a version as an "older, incompatible format", and
minimal manifests of 1.1 packages (``tree``, ``phylo_model``) lack it. A state naming a pre-1.1
key (``tree_file``, ``phylo_model_file``: pplacer 1.0's layout) keeps its absence, so pplacer
says the package is of the older format instead of reading it as 1.1 and failing on a missing
``tree``. An existing value is always kept.

Histories nest one JSON level per step, so both directions are iterative: rendering builds
the text from the innermost state outwards, and parsing walks the chains in loops.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

import msgspec

from .errors import InvalidInputError

__all__ = [
    "FORMAT_VERSION",
    "KNOWN_KEYS",
    "MAX_NESTING",
    "PRE_1_1_KEYS",
    "ManifestState",
    "Manifest",
    "render_manifest",
    "iter_manifest",
    "parse_manifest",
    "nesting",
    "check_nesting",
    "nesting_of",
    "too_deep",
    "with_format_version",
]

FORMAT_VERSION = "1.1"
KNOWN_KEYS = frozenset({"metadata", "files", "md5", "log", "rollback", "rollforward"})
"""Every key a state of CONTENTS.json may have (the current state all six; history states a subset)."""
MAX_NESTING = 450
"""Deepest JSON nesting an export writes. taxtastic recurses over the whole manifest on every
command (``json.load``, ``json.dump`` and, on rollback, ``copy.deepcopy`` at two frames per
level) under Python's recursion limit of 1000; measured with taxit 1.0.1: one ``taxit
rollback`` works on a manifest nesting 482 containers deep and fails at 522."""


class ManifestState(msgspec.Struct, kw_only=True):
    """One state of a package: file key -> (file name, md5), metadata, and the log entry that made it."""

    files: dict[str, tuple[str, str]]
    metadata: dict[str, str]
    message: str = ""
    unknown: list[str] = []
    """Keys of this state's object in CONTENTS.json that the format has not (``KNOWN_KEYS``): parsed, not kept."""


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
    return nesting_of(len(manifest.rollbacks), len(manifest.rollforwards))


def nesting_of(rollbacks: int, rollforwards: int) -> int:
    """How deep CONTENTS.json nests with this many rollback and rollforward states (``nesting`` from counts)."""
    return 2 + max(rollbacks, 2 * rollforwards)


def too_deep(name: str, rollbacks: int, rollforwards: int) -> str | None:
    """Why package ``name``'s CONTENTS.json with these states is more than taxtastic reads; None if it is not.

    Takes counts, so a caller can refuse before it reads (or renders) any state.
    """
    if nesting_of(rollbacks, rollforwards) <= MAX_NESTING:
        return None
    return (f"refpkg {name!r} keeps {rollbacks} rollback and {rollforwards} rollforward states; "
            f"taxtastic cannot read CONTENTS.json nested more than {MAX_NESTING} deep")


def check_nesting(name: str, rollbacks: int, rollforwards: int) -> None:
    """InvalidInputError (with the CLI's remedy) if ``too_deep`` says why."""
    why = too_deep(name, rollbacks, rollforwards)
    if why is not None:
        raise InvalidInputError(f"{why}: export with --no-history, or `rgstore refpkg strip` first")


PRE_1_1_KEYS = frozenset({"tree_file", "phylo_model_file"})
"""File keys of the layout before format 1.1 (pplacer 1.0 read ``tree_file``; 1.1 reads ``tree``)."""


def with_format_version(metadata: dict[str, str], files: Iterable[str] = ()) -> dict[str, str]:
    """``metadata`` with ``format_version`` "1.1" if it has none and no file key in ``files`` is a pre-1.1 one.

    Stamping 1.1 on a pre-1.1 package would make pplacer read it as 1.1 and fail on a missing ``tree``.
    """
    if "format_version" in metadata or not PRE_1_1_KEYS.isdisjoint(files):
        return metadata
    return {**metadata, "format_version": FORMAT_VERSION}


def _value(value: Any, level: int) -> str:
    return json.dumps(value, indent=4).replace("\n", "\n" + "    " * level)


def _fields(state: ManifestState, level: int, log: list[str] | None) -> str:
    """The opening brace and the plain fields of a state at nesting ``level``, up to the nested key."""
    pad = "    " * (level + 1)
    items: list[tuple[str, Any]] = [
        ("metadata", with_format_version(state.metadata, state.files)),
        ("files", {k: name for k, (name, _md5) in state.files.items()}),
        ("md5", {k: md5 for k, (_name, md5) in state.files.items()}),
    ]
    if log is not None:
        items.append(("log", log))
    return "{\n" + "".join(f"{pad}{json.dumps(k)}: {_value(v, level + 1)},\n" for k, v in items)


def _rollbacks(states: list[ManifestState]) -> Iterator[str]:
    # Emitted top-down; closing braces are queued and written after the innermost null.
    closing: list[str] = []
    for depth, state in enumerate(states, start=1):
        yield from (_fields(state, depth, None), "    " * (depth + 1), '"rollback": ')
        closing.append("\n" + "    " * depth + "}")
    yield "null"
    yield "".join(reversed(closing))


def _rollforwards(states: list[ManifestState], log: list[str]) -> Iterator[str]:
    closing: list[str] = []
    for index, state in enumerate(states, start=1):
        level = 2 * index
        log = [state.message, *log]
        pad = "    " * level
        yield from ("[\n", pad, json.dumps(state.message), ",\n", pad, _fields(state, level, log),
                    "    " * (level + 1), '"rollforward": ')
        closing.append("\n" + pad + "}\n" + "    " * (level - 1) + "]")
    yield "null"
    yield "".join(reversed(closing))


def iter_manifest(manifest: Manifest) -> Iterator[str]:
    """``render_manifest``'s text in pieces of at most one state each, for writing it out without holding it.

    The whole text grows quadratically with history depth (each nested level is indented further,
    and every rollforward state repeats its log); one piece is one state at its own indentation.
    """
    yield from (_fields(manifest.current, 0, manifest.log), '    "rollback": ')
    yield from _rollbacks(manifest.rollbacks)
    yield ',\n    "rollforward": '
    yield from _rollforwards(manifest.rollforwards, manifest.log)
    yield "\n}\n"


def render_manifest(manifest: Manifest) -> str:
    """CONTENTS.json text, byte-identical to taxtastic's ``json.dump(contents, indent=4)`` + newline
    (of the states with ``format_version`` filled in where absent, except in pre-1.1 states).

    Linear in the output size (the output itself grows quadratically with history depth:
    each nested level is indented further, and every rollforward state repeats its log).
    """
    return "".join(iter_manifest(manifest))


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
        unknown=[key for key in doc if key not in KNOWN_KEYS],
    )


class _DuplicateKey(Exception):
    """An object of CONTENTS.json names one key twice."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of a repeated key, other readers the first: with
    # {"files": {"tree": "../x", "tree": "t.nwk"}} the name checked and the MD5 verified
    # would not be the file another tool opens, so an ambiguous manifest is refused.
    doc: dict[str, Any] = {}
    for key, value in pairs:
        if key in doc:
            raise _DuplicateKey(key)
        doc[key] = value
    return doc


def parse_manifest(data: bytes) -> Manifest:
    """Parse CONTENTS.json; accepts minimal manifests (only files, md5 and metadata).

    InvalidInputError on anything taxtastic would reject, on an object naming one key twice
    (readers disagree on which one counts), and on a history that records more rollback states
    than log entries (each rollback pops one entry).
    """
    try:
        doc = json.loads(data, object_pairs_hook=_unique_keys)
    except _DuplicateKey as exc:
        raise _bad(f"key {exc.args[0][:200]!r} appears twice in one object") from None
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

"""Names inside reference packages: package names, file and metadata keys, and file names.

File names end up as paths inside exported directories and archives, so they must be bare
names: never empty, ``.`` or ``..``, never containing ``/``, ``\\`` or control characters, and
never ``CONTENTS.json``. Names derived from user files are sanitised and, on a collision with
different content, renamed the way taxtastic renames them (stem + 8 characters + extension),
but deterministically: the characters are the start of the content's sha256.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence

from .errors import ConflictError, InvalidInputError

__all__ = [
    "MANIFEST",
    "check_refpkg_name",
    "check_key",
    "is_safe_filename",
    "check_filename",
    "sanitise_filename",
    "choose_filename",
    "split_assignments",
]

MANIFEST = "CONTENTS.json"
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+\-]{0,199}")
_MAX_NAME_BYTES = 255


def _has_control(text: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


def _unsafe_char(c: str) -> bool:
    # A lone surrogate is how Python carries a file name byte that is not UTF-8: no UTF-8 name holds it.
    return ord(c) < 32 or ord(c) == 127 or c in "/\\" or "\ud800" <= c <= "\udfff"


def check_refpkg_name(name: str) -> str:
    """``name`` if it is a valid package name, else InvalidInputError."""
    if not _NAME_RE.fullmatch(name):
        raise InvalidInputError(
            f"invalid refpkg name {name!r}: use 1-200 letters, digits, '.', '_', '+' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_key(key: str, kind: str = "file") -> str:
    """``key`` if it is a valid file or metadata key, else InvalidInputError."""
    problem = None
    if not key:
        problem = "it is empty"
    elif _has_control(key):
        problem = "it contains control characters"
    elif "=" in key:
        problem = "it contains '='"
    elif kind == "file" and ("/" in key or "\\" in key or key in (".", "..")):
        problem = "file keys may not contain '/' or '\\' or be '.' or '..'"
    elif len(key) > 200:
        problem = "it is longer than 200 characters"
    if problem:
        raise InvalidInputError(f"invalid {kind} key {key!r}: {problem}")
    return key


def is_safe_filename(name: str) -> bool:
    """Whether ``name`` may be used as a file inside a package directory."""
    return (
        bool(name)
        and name not in (".", "..", MANIFEST)
        and "/" not in name
        and "\\" not in name
        and not any(_unsafe_char(c) for c in name)
        and len(name.encode()) <= _MAX_NAME_BYTES
    )


def check_filename(name: str, key: str) -> str:
    """``name`` if it is a safe file name (see ``is_safe_filename``), else InvalidInputError."""
    if not is_safe_filename(name):
        raise InvalidInputError(
            f"refusing file name {name!r} for key {key!r}: file names must be bare names "
            f"(no '/', '\\', '..', control characters, non-UTF-8 bytes or {MANIFEST})"
        )
    return name


def sanitise_filename(basename: str) -> str:
    """A safe file name close to ``basename`` (unsafe characters become ``_``)."""
    name = "".join("_" if _unsafe_char(c) else c for c in basename)
    if name in ("", ".", ".."):
        name = "file"
    while len(name.encode()) > 200:
        stem, ext = os.path.splitext(name)
        name = stem[:-1] + ext if len(stem) > 1 else name[:-1]
    return name


def choose_filename(basename: str, sha256: str, owner: Callable[[str], str | None]) -> str:
    """The name a file with content ``sha256`` gets in a package.

    ``owner(name)`` tells which content (sha256) already uses a name, if any. The sanitised
    basename is kept if it is free or already holds the same content; otherwise the first
    8 (then 16, 32, 64) hex digits of the sha256 go between stem and extension.
    """
    name = sanitise_filename(basename)
    stem, ext = os.path.splitext(name)
    for width in (0, 8, 16, 32, 64):
        candidate = name if width == 0 else f"{stem}{sha256[:width]}{ext}"
        if candidate == MANIFEST:
            continue
        held = owner(candidate)
        if held is None or held == sha256:
            return candidate
    raise ConflictError(f"no free file name for {basename!r} in this refpkg")


def split_assignments(
    items: Sequence[str | tuple[str, str]] | Mapping[str, str] | str, what: str
) -> list[tuple[str, str]]:
    """``key=value`` strings (or ready pairs, or a mapping) as (key, value) pairs, split at the first ``=``."""
    if isinstance(items, Mapping):  # the Python caller's natural {key: value}
        items = list(items.items())
    elif isinstance(items, str):  # one ``key=value``, not its letters
        items = [items]
    pairs: list[tuple[str, str]] = []
    for item in items:
        if isinstance(item, tuple):
            pairs.append(item)
            continue
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidInputError(f"expected key={what}, got {item!r}")
        pairs.append((key, value))
    if not pairs:
        raise InvalidInputError(f"nothing to update: give at least one key={what}")
    return pairs

"""Alias names, namespaces and streams: what is a valid alias, and which stream holds it.

Namespaces name files (``<ns>.tsv``) and CURIE prefixes; names are TSV fields and CURIE locals,
so both are restricted here, once, for the commands, the fold and the RefgetStore projection.
"""

from __future__ import annotations

import re
from typing import Literal

from ..errors import InvalidInputError

__all__ = [
    "CHECKSUM_NAMESPACES",
    "COLLECTION",
    "DEFAULT_NAMESPACE",
    "DIGEST_RE",
    "NAMESPACE_RE",
    "NAME_RE",
    "SEQUENCE",
    "Kind",
    "alias_stream",
    "check_name",
    "check_namespace",
    "check_new_name",
    "check_sequence_namespace",
    "parse_alias_stream",
]

Kind = Literal["collection", "sequence"]
COLLECTION: Kind = "collection"
SEQUENCE: Kind = "sequence"
DEFAULT_NAMESPACE = "refgenie"

_PREFIX: dict[Kind, str] = {COLLECTION: "alias:", SEQUENCE: "seqalias:"}
NAMESPACE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
NAME_RE = re.compile(r"[A-Za-z0-9_.][^\s:/\x00-\x1f\x7f]{0,254}")
DIGEST_RE = re.compile(r"[A-Za-z0-9_\-]{32}")


def check_namespace(namespace: str) -> str:
    """The namespace if valid (letters, digits, ``_.-``; 1-64 chars), else InvalidInputError."""
    if not NAMESPACE_RE.fullmatch(namespace):
        raise InvalidInputError(
            f"invalid alias namespace {namespace!r}: use 1-64 letters, digits, '_', '.', '-' "
            "(starting with a letter or digit)"
        )
    return namespace


CHECKSUM_NAMESPACES = frozenset({"md5", "ga4gh", "trunc512"})
"""CURIE prefixes refget reads as a sequence's checksum (any case): ``/sequence/md5:…`` never looks up an alias."""


def check_sequence_namespace(namespace: str) -> str:
    """``check_namespace``, also refusing the checksum prefixes (``CHECKSUM_NAMESPACES``) for a new sequence alias."""
    # A sequence alias ga4gh:SQ.X -> Y would be unreachable (/sequence/ga4gh:SQ.X serves X), and Y's
    # refget metadata would list SQ.X as one of Y's own identifiers.
    if check_namespace(namespace).lower() in CHECKSUM_NAMESPACES:
        raise InvalidInputError(
            f"invalid sequence alias namespace {namespace!r}: refget reads {namespace}:… as a checksum of the "
            "sequence itself, never as an alias; use another namespace"
        )
    return namespace


_MAX_NAME_BYTES = 400
"""The by-digest index keys (digest, namespace, name) must fit LMDB's 511-byte keys."""


def _invisible(name: str) -> bool:
    """Whether ``name`` holds a character that does not print (U+200B, a bidi override, a C1 control).

    Refused here, by name, not by the log's stream check, whose message names an internal stream
    (and which aborted a whole genome init). Lone surrogates pass: they stand for bytes an argument
    held that are not UTF-8 and fail when the name is encoded (the CLI then names those bytes and the fix).
    """
    return not name.isprintable() and any(not c.isprintable() and not "\ud800" <= c <= "\udfff" for c in name)


def check_name(name: str) -> str:
    """The alias name if valid (1-255 printable chars, at most 400 UTF-8 bytes, no whitespace, ':' or '/'), else
    InvalidInputError."""
    if not NAME_RE.fullmatch(name) or _invisible(name):
        # The whole name: the error's clip() cuts a long one in the middle and says how much it left out
        # (a bare name[:80] quoted a valid-looking name as if it were the one given).
        length = f" ({len(name):,} characters)" if len(name) > 255 else ""
        raise InvalidInputError(
            f"invalid alias name {name!r}{length}: use 1-255 printable characters without whitespace, "
            "':' or '/', starting with an ASCII letter, digit, '_' or '.'"
        )
    if len(name.encode()) > _MAX_NAME_BYTES:
        raise InvalidInputError(
            f"invalid alias name {name[:40]!r}...: {len(name.encode())} bytes in UTF-8, at most {_MAX_NAME_BYTES}"
        )
    return name


def check_new_name(name: str) -> str:
    """``check_name``, also refusing ``.`` and ``..`` for a new alias (existing ones stay readable and removable)."""
    # HTTP clients drop dot-segments: /v4/aliases/.. asks for /v4 and /v4/aliases/. for the alias listing.
    if check_name(name) in (".", ".."):
        raise InvalidInputError(
            f"invalid alias name {name!r}: '.' and '..' are path segments URLs drop (/v4/aliases/{name}); "
            "use another name"
        )
    return name


def alias_stream(kind: Kind, namespace: str, name: str) -> str:
    """The stream of one alias: ``alias:<ns>/<name>`` or ``seqalias:<ns>/<name>``."""
    return f"{_PREFIX[kind]}{namespace}/{name}"


def parse_alias_stream(stream: str) -> tuple[Kind, str, str] | None:
    """(kind, namespace, name) of a well-formed alias stream; None for any other stream."""
    if stream.startswith("alias:"):
        kind, rest = COLLECTION, stream[6:]
    elif stream.startswith("seqalias:"):
        kind, rest = SEQUENCE, stream[9:]
    else:
        return None
    namespace, sep, name = rest.partition("/")
    if sep and NAMESPACE_RE.fullmatch(namespace) and NAME_RE.fullmatch(name):
        return kind, namespace, name
    return None

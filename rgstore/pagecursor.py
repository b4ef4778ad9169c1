"""Keyset cursors for the API's listings: the last sort key of a page, as an opaque URL-safe token.

An offset page shifts when the primary adds or removes an entry before it between two pages (an
entry comes twice or never). A keyset page starts at the first entry whose sort key is above the
cursor's, so it needs no lookup of the cursor's own entry: one removed or evicted since still
works. A token is the unpadded URL-safe base64 of the key's bytes (``encode_key``); the listing
decides what those bytes hold (a digest, ``namespace NUL name``, a msgpack row).
"""

from __future__ import annotations

import base64
import binascii
import re
from bisect import bisect_right
from collections.abc import Sequence
from typing import Any, TypeVar

import msgspec

from .errors import InvalidInputError

__all__ = [
    "MAX_CURSOR_CHARS",
    "BadCursorError",
    "decode_cursor",
    "decode_pair",
    "decode_row",
    "decode_text",
    "encode_cursor",
    "encode_pair",
    "encode_row",
    "encode_text",
    "window",
]

MAX_CURSOR_CHARS = 4096
"""No sort key of any listing comes near this (a cache path is the longest)."""

_TOKEN = re.compile(r"[A-Za-z0-9_-]*")
T = TypeVar("T")


class BadCursorError(InvalidInputError):
    """An ``after`` token that no page of this listing handed out (422, like any malformed parameter)."""

    http_status = 422


def _bad(what: str) -> str:
    return f"{what}: not a cursor this listing hands out (pass the previous page's X-Rgstore-Next-After)"


def encode_cursor(key: bytes) -> str:
    """The token for sort key ``key``: unpadded URL-safe base64."""
    return base64.urlsafe_b64encode(key).rstrip(b"=").decode("ascii")


def decode_cursor(token: str, what: str = "after") -> bytes:
    """The key bytes of ``token``; BadCursorError for anything ``encode_cursor`` cannot have made."""
    if len(token) > MAX_CURSOR_CHARS or not _TOKEN.fullmatch(token) or len(token) % 4 == 1 or not token:
        raise BadCursorError(_bad(what))
    try:
        key = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise BadCursorError(_bad(what)) from None
    if encode_cursor(key) != token:  # non-canonical trailing bits: not one we made
        raise BadCursorError(_bad(what))
    return key


def encode_text(text: str) -> str:
    """The token for a one-string sort key (a digest, a package name)."""
    return encode_cursor(text.encode("utf-8", "surrogatepass"))


def decode_text(token: str, what: str = "after") -> str:
    """The one-string sort key of ``token``; BadCursorError if it is not one."""
    try:
        return decode_cursor(token, what).decode("utf-8")
    except UnicodeDecodeError:
        raise BadCursorError(_bad(what)) from None


def encode_pair(first: str, second: str) -> str:
    """The token for a (namespace, name) key: the two strings joined by a NUL, which neither holds."""
    return encode_cursor(first.encode() + b"\x00" + second.encode())


def decode_pair(token: str, what: str = "after") -> tuple[str, str]:
    """The (namespace, name) key of ``token``; BadCursorError if it is not one."""
    first, sep, second = decode_cursor(token, what).partition(b"\x00")
    try:
        if sep and b"\x00" not in second:
            return first.decode(), second.decode()
    except UnicodeDecodeError:
        pass
    raise BadCursorError(_bad(what))


def encode_row(row: tuple[Any, ...]) -> str:
    """The token for a composite sort key (msgpack of the tuple)."""
    return encode_cursor(msgspec.msgpack.encode(row))


def decode_row(token: str, shape: type[T], what: str = "after") -> T:
    """The composite sort key of ``token``, of type ``shape`` (e.g. ``tuple[int, str, str]``)."""
    try:
        return msgspec.msgpack.decode(decode_cursor(token, what), type=shape)
    except msgspec.DecodeError:
        raise BadCursorError(_bad(what)) from None


def window(
    keys: Sequence[T], offset: int, limit: int, after: T | None = None, lo: int = 0, hi: int | None = None,
) -> tuple[int, int, bool]:
    """(start, end, more) of one page of sorted ``keys[lo:hi]``: from ``offset`` into it, or from the first key
    above ``after`` (which need not be among them); ``more`` says whether keys follow the page."""
    hi = len(keys) if hi is None else hi
    start = bisect_right(keys, after, lo, hi) if after is not None else min(lo + offset, hi)  # type: ignore[call-overload]
    end = min(start + limit, hi)
    return start, end, end < hi

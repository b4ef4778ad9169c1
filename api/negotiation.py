"""refget request parsing: ``Accept`` negotiation, ``start``/``end`` and the ``Range`` header.

Pure functions over header and query strings; the route module turns their verdicts into
responses. Status rules follow the refget sequences v2.0.0 text, and, where it defers to
RFC 7233 for Range, the RFC and the GA4GH compliance suite's v2 cases (see ``parse_range``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rgstore.errors import InvalidInputError, OutOfRangeError

__all__ = [
    "SEQUENCE_V2",
    "SEQUENCE_V1",
    "JSON_V2",
    "JSON_V1",
    "SEQUENCE_OFFERS",
    "JSON_OFFERS",
    "field_value",
    "negotiate",
    "parse_coordinate",
    "parse_range",
    "MAX_COORDINATE",
]

SEQUENCE_V2 = "text/vnd.ga4gh.refget.v2.0.0+plain; charset=us-ascii"
SEQUENCE_V1 = "text/vnd.ga4gh.refget.v1.0.0+plain; charset=us-ascii"
JSON_V2 = "application/vnd.ga4gh.refget.v2.0.0+json; charset=us-ascii"
JSON_V1 = "application/vnd.ga4gh.refget.v1.0.0+json; charset=us-ascii"

# Accepted media type (lower case, no parameters) -> the fully specified type we answer with.
# The spec's degradation chain (+plain; charset -> +plain -> text/plain) plus v1 clients' types.
SEQUENCE_OFFERS: dict[str, str] = {
    "text/vnd.ga4gh.refget.v2.0.0+plain": SEQUENCE_V2,
    "text/plain": SEQUENCE_V2,
    "text/*": SEQUENCE_V2,
    "*/*": SEQUENCE_V2,
    "text/vnd.ga4gh.refget.v1.0.0+plain": SEQUENCE_V1,
    "text/vnd.ga4gh.seq.v1.0.0+plain": SEQUENCE_V1,
}
JSON_OFFERS: dict[str, str] = {
    "application/vnd.ga4gh.refget.v2.0.0+json": JSON_V2,
    "application/json": JSON_V2,
    "application/*": JSON_V2,
    "*/*": JSON_V2,
    "application/vnd.ga4gh.refget.v1.0.0+json": JSON_V1,
    "application/vnd.ga4gh.seq.v1.0.0+json": JSON_V1,  # refget v1's draft name, as for the text type
}
_CHARSETS = {"us-ascii", "ascii", "utf-8", "utf8"}  # refget bodies are ASCII, a subset of each
MAX_COORDINATE = 2**32 - 1
_DIGITS = re.compile(r"[0-9]{1,10}")
_QVALUE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")  # RFC 9110 12.4.2: 0 to 1, at most 3 decimals
# Any size of number (a huge last byte is clamped, a huge first byte is 416); the cap only keeps
# int() within CPython's limit on digits.
_RANGE = re.compile(r"(?i:bytes)=(?:([0-9]{1,1000})-([0-9]{0,1000})|-([0-9]{1,1000}))")


def field_value(lines: Sequence[str]) -> str | None:
    """The value of a header field sent on these ``lines``, combined with ", " (RFC 9110 5.3); None for none.

    A client (or a proxy adding its own) may send ``Accept`` twice: reading the first line alone
    would refuse with 406 what the second accepts. Blank lines add nothing, as an empty list element adds nothing.
    """
    given = [line for line in lines if line.strip()]
    return ", ".join(given) if given else None


def negotiate(accept: str | None, offers: dict[str, str]) -> str | None:
    """The content type to answer with, or None when nothing acceptable is offered (406).

    No ``Accept`` (or an empty one) gets the first offer, the endpoint's default. Among
    acceptable entries the highest q wins; on ties the v2 type is preferred over v1. A type the
    client refuses with q=0 is never the answer (RFC 9110 12.5.1): ``text/plain`` is then answered
    as ``text/plain`` itself, not as the refused v2 type it otherwise stands for.
    """
    default = next(iter(offers.values()))
    if accept is None or not accept.strip():
        return default
    ranges = _media_ranges(accept)
    best: tuple[float, bool, str] | None = None
    for media, q in ranges:
        answer = offers.get(media)
        if answer is None or q <= 0:
            continue
        for candidate in _candidates(media, answer, offers, default):
            if _refused(candidate, ranges):
                continue
            rank = (q, candidate == default, candidate)
            if best is None or rank[:2] > best[:2]:
                best = rank
            break
    return best[2] if best is not None else None


def _media_ranges(accept: str) -> list[tuple[str, float]]:
    """(media range in lower case, q) of each ``Accept`` entry our ASCII bodies can satisfy, in order."""
    ranges = []
    for item in accept.split(","):
        media, *params = (p.strip() for p in item.split(";"))
        q = 1.0
        acceptable = True
        for param in params:
            key, _, value = param.partition("=")
            key, value = key.strip().lower(), value.strip().strip('"').lower()
            if key == "q":
                # Not float(): "nan", "inf" or "2" would outrank every well-formed entry (nan even q=1).
                if _QVALUE.fullmatch(value):
                    q = float(value)
                else:
                    acceptable = False
            elif key == "charset" and value not in _CHARSETS:
                acceptable = False
        if acceptable and media:
            ranges.append((media.lower(), q))
    return ranges


def _candidates(media: str, answer: str, offers: dict[str, str], default: str) -> list[str]:
    """The types that may answer an accepted ``media``, best first: its usual answer, then (for a name
    that stands for the default type: ``text/plain``, ``*/*``) that name itself, with the default's parameters."""
    if answer != default:
        return [answer]
    params = default[len(default.split(";")[0]):]  # "; charset=us-ascii"
    kind = media.split("/")[0]
    names = [media] if "*" not in media else [
        name for name, to in offers.items()
        if to == default and "*" not in name and (media == "*/*" or name.split("/")[0] == kind)
    ]
    return list(dict.fromkeys([answer, *(name + params for name in names)]))


def _refused(candidate: str, ranges: list[tuple[str, float]]) -> bool:
    """Whether the most specific range matching the ``candidate`` type (exact, ``type/*``, ``*/*``) gives it q=0.

    A type no range names is not refused: ``text/plain`` alone is answered with the v2 type, as the spec says.
    """
    media = candidate.split(";")[0].strip().lower()
    for name in (media, media.split("/")[0] + "/*", "*/*"):
        found = [q for given, q in ranges if given == name]
        if found:
            return max(found) <= 0
    return False


def parse_coordinate(name: str, values: Sequence[str]) -> int | None:
    """The ``start``/``end`` given (``values``: each time it was given): a 32-bit unsigned decimal, else
    InvalidInputError (400); None when not given. Given twice is refused too: neither would be the obvious one."""
    if not values:
        return None
    if len(values) > 1:
        raise InvalidInputError(f"{name} is given {len(values)} times; give it once")
    raw = values[0]
    if not _DIGITS.fullmatch(raw) or int(raw) > MAX_COORDINATE:
        raise InvalidInputError(f"{name}={raw!r} is not a 32-bit unsigned integer")
    return int(raw)


def parse_range(header: str, length: int, unit: str = "bp sequence") -> tuple[int, int]:
    """The half-open ``(start, end)`` of a single ``Range: bytes=...`` header on a sequence (or a file).

    Malformed headers, other units and multiple ranges are 400. A first byte past the last
    byte, or beyond the sequence, is 416 (RFC 7233 section 4.4 and the compliance suite's v2
    cases; the refget text's "out of bounds gives Bad Request" predates both). A last byte
    beyond the end is clamped to it, as RFC 7233 prescribes.
    """
    match = _RANGE.fullmatch(header.strip().replace(" ", ""))
    if match is None:
        raise InvalidInputError(
            f"Range {header!r} is not a single byte range (use 'bytes=first-last', 0-based, inclusive)"
        )
    first, last, suffix = match.groups()
    if suffix is not None:
        size = int(suffix)
        if size == 0 or length == 0:
            raise OutOfRangeError(f"Range {header!r} selects no bytes of a {length} {unit}")
        return max(0, length - size), length
    start = int(first)
    end = int(last) + 1 if last else length
    if start >= length or end <= start:
        raise OutOfRangeError(f"Range {header!r} cannot be satisfied on a {length} {unit}")
    return start, min(end, length)

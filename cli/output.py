"""Rendering shared by all commands: JSON (lines) for machines, aligned text for people."""

from __future__ import annotations

import sys
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timezone
from itertools import islice, zip_longest
from typing import Any

import click
import msgspec

__all__ = [
    "cell", "counted", "emit_json", "emit_json_array", "emit_json_lines", "emit_table", "emit_table_stream",
    "human_size", "json_option", "note_shadows", "when", "width",
]

_JSON = msgspec.json.Encoder()


def _to_builtins(obj: Any) -> Any:
    return msgspec.to_builtins(obj, builtin_types=None, str_keys=True)


def _json_writer() -> Callable[[bytes], Any]:
    # JSON is UTF-8 (RFC 8259) whatever the locale: bytes go to the binary layer, so an alias or file
    # named in Unicode does not crash an ASCII or Latin-1 stdout; text already buffered goes first.
    sys.stdout.flush()
    binary = getattr(sys.stdout, "buffer", None)
    if binary is None:  # a text-only stream (io.StringIO): it takes str, and has no encoding to fail
        return lambda data: sys.stdout.write(data.decode())
    return binary.write  # type: ignore[no-any-return]


def _surrogates_escaped(value: Any) -> Any:
    """``value`` with every string's lone surrogates (bytes of a file name that are not UTF-8) shown as ``\\xNN``."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if isinstance(value, dict):
        return {_surrogates_escaped(k): _surrogates_escaped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_surrogates_escaped(v) for v in value]
    return value


def _encode(obj: Any) -> bytes:
    return _encode_bare(obj) + b"\n"


def _encode_bare(obj: Any) -> bytes:
    builtins = _to_builtins(obj)
    try:
        return _JSON.encode(builtins)
    except UnicodeEncodeError:
        # A path the user gave holds bytes that are not UTF-8 (the command has already done its work):
        # print it escaped rather than fail after the fact.
        return _JSON.encode(_surrogates_escaped(builtins))


def emit_json(obj: Any) -> None:
    """Write one JSON document (Structs, datetimes and bytes handled) and a newline, as UTF-8."""
    _json_writer()(_encode(obj))


def emit_json_array(objs: Iterable[Any]) -> None:
    """``emit_json(list(objs))``'s bytes, written as ``objs`` yields them: the list is never held."""
    write = _json_writer()
    parts = [b"["]
    separator = b""
    for obj in objs:
        parts.append(separator + _encode_bare(obj))
        separator = b","
        if len(parts) >= _ROWS_PER_WRITE:  # one write per block, as emit_table does
            write(b"".join(parts))
            parts.clear()
    parts.append(b"]\n")
    write(b"".join(parts))


def note_shadows(shadows: Any, digest: str) -> None:
    """One stderr line per bare name a new refgenie alias took from other namespaces (``shadows``:
    ``{"ns:name": their digest}``, or msgspec's UNSET when there are none), JSON output or not."""
    if not isinstance(shadows, dict):
        return
    by_name: dict[str, list[str]] = {}
    for qualified, target in sorted(shadows.items()):
        by_name.setdefault(qualified.partition(":")[2], []).append(f"{qualified} still names {target}")
    for name, others in by_name.items():
        click.echo(f"note: {name} now names {digest} in refgenie; {'; '.join(others)}", err=True)


def emit_json_lines(objs: Iterable[Any]) -> None:
    """Write one JSON document per line, as UTF-8."""
    write = _json_writer()
    for obj in objs:
        write(_encode(obj))


def cell(value: Any) -> str:
    """``str(value)`` with newlines, tabs and other control characters shown escaped."""
    # One row per line whatever the data holds: newlines, tabs and other controls are shown escaped.
    text = str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def when(moment: datetime | float | str) -> str:
    """A time as every text table prints it: UTC to the second, ISO 8601 with Z (2024-05-01T12:00:00Z).

    Takes a datetime (naive ones are UTC), a POSIX timestamp or an ISO string.
    """
    global _last_when
    if type(moment) is datetime and moment.tzinfo is timezone.utc and moment.year >= 1000:
        # Every decoded event time: a log lists runs of events sharing one time (one command's batch),
        # and %-formatting is strftime's bytes (years under 1000 aside: glibc does not pad them) at a
        # fifth of the cost.
        last = _last_when
        if moment == last[0]:
            return last[1]
        text = "%04d-%02d-%02dT%02d:%02d:%02dZ" % (
            moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second)
        _last_when = (moment, text)
        return text
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    elif not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, timezone.utc)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


_last_when: tuple[datetime | None, str] = (None, "")


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and the noun in the number it takes: ``1 sequence``, ``2 sequences``, ``1 cache file``."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def human_size(n: int | None) -> str:
    """Bytes in binary units (``1.5 MiB``); "unknown" for None."""
    if n is None:
        return "unknown"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def width(text: str) -> int:
    """The columns ``text`` takes on a terminal: wide (CJK) characters two, combining marks none."""
    if text.isascii():
        return len(text)
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def emit_table(rows: Sequence[Sequence[Any]], headers: Sequence[str] | None = None) -> None:
    """Write rows as left-aligned, two-space-separated columns, one line per row."""
    table: list[Sequence[str]] = [list(map(str, headers))] if headers else []
    for block in _blocks(rows):
        table += block
    if not table:
        return
    widths = [0] * max(map(len, table))
    for at in range(0, len(table), _ROWS_PER_WRITE):
        # Column by column (rows of unequal lengths padded with empty cells, which measure 0).
        for i, column in enumerate(zip_longest(*table[at:at + _ROWS_PER_WRITE], fillvalue="")):
            if (w := _column_width(column)) > widths[i]:
                widths[i] = w
    # One echo per block of rows, not per row: click.echo's per-call checks cost more than the
    # formatting, and a genome of 200k scaffolds lists 200k rows. Widths are measured again per
    # block rather than kept per cell, which would double the table's memory.
    for at in range(0, len(table), _ROWS_PER_WRITE):
        click.echo(_lines(table[at:at + _ROWS_PER_WRITE], widths))


def emit_table_stream(
    rows: Callable[[], Iterable[Sequence[Any]]], headers: Sequence[str], *, if_empty: Callable[[], None] | None = None,
) -> None:
    """``emit_table(list(rows()), headers)``'s bytes without holding the rows: ``rows()`` is read twice,
    once to measure the columns and once to print (``if_empty`` runs between, when there were none)."""
    head = [str(h) for h in headers]
    widths = [width(h) for h in head]
    count = 0
    for block in _blocks(rows()):
        count += len(block)
        # Column by column, a block at a time: a per-cell Python loop would double the listing's time.
        for i, column in enumerate(zip(*block)):
            w = _column_width(column)
            if i == len(widths):
                widths.append(w)
            elif w > widths[i]:
                widths[i] = w
    if count == 0 and if_empty is not None:
        if_empty()
    click.echo(_lines([head], widths))
    for block in _blocks(rows()):
        # A row that grew between the passes (the store changed) keeps its text, only less aligned.
        click.echo(_lines(block, widths))


def _blocks(rows: Iterable[Sequence[Any]]) -> Iterator[list[Sequence[str]]]:
    """Rows as printable cells, ``_ROWS_PER_WRITE`` at a time."""
    iterator = iter(rows)
    while block := _cells(list(islice(iterator, _ROWS_PER_WRITE))):
        yield block


def _cells(rows: Sequence[Sequence[Any]]) -> list[Sequence[str]]:
    """``[[cell(c) for c in row] for row in rows]``'s cells, found column by column when every row has the
    same (non-zero) length: a column printable as a whole needs no cell-by-cell escaping."""
    if not rows or not rows[0] or len(set(map(len, rows))) != 1:
        return [[cell(c) for c in row] for row in rows]
    columns = []
    for column in zip(*rows):
        texts = list(map(str, column))
        columns.append(texts if "".join(texts).isprintable() else list(map(cell, texts)))
    return list(zip(*columns))


def _column_width(column: Sequence[str]) -> int:
    """``max(map(width, column))`` for a non-empty column; an ASCII column's is its longest cell's length."""
    return max(map(len, column)) if "".join(column).isascii() else max(map(width, column))


def _lines(rows: Iterable[Sequence[str]], widths: Sequence[int]) -> str:
    """Rows of cells padded to ``widths`` (a cell past them as it is), two spaces apart, right-stripped, one per line."""
    templates: dict[int, str] = {}
    out = []
    for row in rows:
        n = len(row)
        if (template := templates.get(n)) is None:
            # %-formatting pads by characters: the bytes of padding by terminal columns when the row is
            # ASCII. The last cell is not padded: the line is right-stripped either way.
            template = templates[n] = "  ".join(
                f"%-{widths[i]}s" if i < n - 1 and i < len(widths) and widths[i] else "%s" for i in range(n))
        line = template % tuple(row)
        if not line.isascii():
            # Padded by terminal columns, not characters, so a name in CJK or with accents keeps the rows aligned.
            line = "  ".join(c + " " * (widths[i] - width(c) if i < len(widths) else 0) for i, c in enumerate(row))
        out.append(line.rstrip())
    return "\n".join(out)


_ROWS_PER_WRITE = 2048


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")

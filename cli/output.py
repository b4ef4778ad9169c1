"""Rendering shared by all commands: JSON (lines) for machines, aligned text for people."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any

import click
import msgspec

__all__ = ["cell", "emit_json", "emit_json_lines", "emit_table", "json_option", "when"]

_JSON = msgspec.json.Encoder()


def _to_builtins(obj: Any) -> Any:
    return msgspec.to_builtins(obj, builtin_types=None, str_keys=True)


def emit_json(obj: Any) -> None:
    """Write one JSON document (Structs, datetimes and bytes handled) and a newline."""
    sys.stdout.write(_JSON.encode(_to_builtins(obj)).decode() + "\n")


def emit_json_lines(objs: Iterable[Any]) -> None:
    """Write one JSON document per line."""
    write = sys.stdout.write
    for obj in objs:
        write(_JSON.encode(_to_builtins(obj)).decode() + "\n")


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
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    elif not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, timezone.utc)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def emit_table(rows: Sequence[Sequence[Any]], headers: Sequence[str] | None = None) -> None:
    """Write rows as left-aligned, two-space-separated columns, one line per row."""
    table = [list(map(str, headers))] if headers else []
    table += [[cell(c) for c in row] for row in rows]
    if not table:
        return
    widths = [max(len(r[i]) for r in table if i < len(r)) for i in range(max(map(len, table)))]
    for row in table:
        cells = [c.ljust(widths[i]) for i, c in enumerate(row)]
        click.echo("  ".join(cells).rstrip())


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")

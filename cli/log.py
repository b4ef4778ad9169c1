"""Audit and transport of the log: `rgstore log [show|export]` and `rgstore replay`."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import click
import msgspec

from .main import Context, RgstoreGroup, store_option
from .output import emit_json, emit_json_lines, json_option

__all__ = ["log_group", "replay_cmd", "summary"]

pass_ctx = click.make_pass_decorator(Context)
_REL = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    m = _REL.match(value)
    if m:
        return datetime.now(timezone.utc) - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r}: use an ISO date/time or a span like 2h, 3d") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else msgspec.json.encode(msgspec.to_builtins(value)).decode()
    return text if len(text) <= 40 else text[:37] + "..."


def summary(event: Any) -> str:
    """One line naming an event's fields and (shortened) values."""
    return " ".join(f"{f}={_short(getattr(event, f))}" for f in event.__struct_fields__)


def _row(env: Any) -> dict[str, Any]:
    return {
        "seq": env.seq, "time": env.time.isoformat(), "actor": env.actor,
        "type": env.event.__struct_config__.tag, "stream": env.stream, "summary": summary(env.event),
    }


@click.group("log", cls=RgstoreGroup, invoke_without_command=True)
@store_option
@click.option("--stream", help="Only this stream (a trailing * matches a prefix, e.g. 'refpkg:*').")
@click.option("--type", "type_", help="Only this event type tag, e.g. alias-set.")
@click.option("--since", help="Only events at or after this time (ISO, or a span like 2h, 7d).")
@click.option("--limit", type=click.IntRange(min=1), help="Only the most recent N matching events (in seq order).")
@json_option
@click.pass_context
def log_group(ctx: click.Context, stream: str | None, type_: str | None, since: str | None,
              limit: int | None, as_json: bool) -> None:
    """List events: seq, time, actor, type, stream and a one-line summary.

    \b
    Example:
        rgstore log --stream 'alias:*' --since 7d
        rgstore log show 42
        rgstore log export backup.rglog
    """
    if ctx.invoked_subcommand is not None:
        return
    with ctx.find_object(Context).open(readonly=True) as store:  # type: ignore[union-attr]
        envs = store.events(stream=stream, type=type_, since=_since(since), last=limit)
    rows = [_row(e) for e in envs]
    if as_json:
        emit_json_lines(rows)
        return
    for r in rows:
        click.echo(f"{r['seq']:>8}  {r['time'][:19]}  {r['actor']}  {r['type']:<22} {r['stream']}  {r['summary']}")


@log_group.command("show")
@store_option
@click.argument("seq", type=click.IntRange(min=1))
@pass_ctx
def show_cmd(ctx: Context, seq: int) -> None:
    """Print one event in full, as JSON.

    \b
    Example:
        rgstore log show 42
    """
    from rgstore.codec import chain_of

    with ctx.open(readonly=True) as store:
        env = store.event(seq)
        with store.read() as txn:
            record = store.log.record(txn, seq)
    out = msgspec.to_builtins(env)
    out["chain_hash"] = chain_of(record).hex() if record is not None else ""
    emit_json(out)


@log_group.command("export")
@store_option
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--from", "from_seq", type=click.IntRange(min=1), default=1, show_default=True,
              help="First seq to export.")
@json_option
@pass_ctx
def export_cmd(ctx: Context, file: Path, from_seq: int, as_json: bool) -> None:
    """Write the log (from a seq on) to a self-describing, zstd-compressed file.

    \b
    Example:
        rgstore log export backup.rglog --from 1
    """
    from rgstore.progress import null_progress, terminal_progress
    from rgstore.replay import export_log

    with ctx.open(readonly=True) as store:
        header = export_log(store, file, from_seq=from_seq,
                            progress=null_progress if as_json else terminal_progress)
    if as_json:
        emit_json(header)
    else:
        click.echo(f"exported seqs {header.first_seq}-{header.last_seq} of log {header.log_id} to {file}")


@click.command("replay")
@store_option
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@json_option
@pass_ctx
def replay_cmd(ctx: Context, file: Path, as_json: bool) -> None:
    """Rebuild a store from an exported log, verifying the hash chain; appends only what is missing.

    \b
    Example:
        rgstore replay backup.rglog --store ./restored
    """
    from rgstore.progress import null_progress, terminal_progress
    from rgstore.replay import replay_file

    with ctx.open(create=True) as store:
        applied, head = replay_file(store, file, progress=null_progress if as_json else terminal_progress)
        head_hash = store.head()[1]
    if as_json:
        emit_json({"applied": applied, "head_seq": head, "head_hash": head_hash})
    else:
        click.echo(f"applied {applied} events; head {head} ({head_hash[:16]}…)")


@log_group.command("publish")
@store_option
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option("--segment-size", type=click.IntRange(min=1), default=100_000, show_default=True,
              help="Records per new segment.")
@click.option("--with-blobs", is_flag=True,
              help="Also copy blobs (refpkg files) and cache files into DIRECTORY/blobs/ and DIRECTORY/cache/.")
@click.option("--with-refget", is_flag=True, help="Also copy the RefgetStore into DIRECTORY/refget/ (sequences).")
@json_option
@pass_ctx
def publish_cmd(ctx: Context, directory: Path, segment_size: int, with_blobs: bool, with_refget: bool,
                as_json: bool) -> None:
    """Write immutable zstd log segments and a manifest that any static host can serve to mirrors.

    \b
    Example:
        rgstore log publish /srv/published --with-blobs --with-refget
        rgstore --store ./mirror mirror pull https://cdn.example.org/published
    """
    from rgstore.cachecopy import publish_cache
    from rgstore.progress import null_progress, terminal_progress
    from rgstore.segments import check_publish_target, publish, publish_blobs, publish_refget, published_head

    with ctx.open(readonly=True) as store:
        check_publish_target(store, directory)
        before = published_head(directory)
        # Content first: a mirror that sees an event can always find what it references.
        copied = (publish_blobs(store, directory) + publish_cache(store, directory)) if with_blobs else 0
        refget = publish_refget(store, directory) if with_refget else 0
        manifest = publish(store, directory, segment_size=segment_size,
                           progress=null_progress if as_json else terminal_progress)
    if as_json:
        emit_json({"manifest": manifest, "blobs_copied": copied, "refget_files_written": refget})
    else:
        new = (f"published seqs {before + 1}-{manifest.head_seq}" if manifest.head_seq > before
               else f"nothing new to publish (head {manifest.head_seq})")
        click.echo(f"{new}; {directory} holds {len(manifest.segments)} segments"
                   + (f"; copied {copied} blobs and cache files" if with_blobs else "")
                   + (f"; wrote {refget} RefgetStore files" if with_refget else ""))

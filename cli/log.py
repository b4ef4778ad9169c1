"""Audit and transport of the log: `rgstore log [show|export]` and `rgstore replay`."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from itertools import islice
from operator import attrgetter
from pathlib import Path
from typing import Any

import click
import msgspec

from .main import Context, GivenPath, RgstoreGroup, refuse_beside_files, store_option
from .output import counted, emit_json, emit_json_lines, emit_table, emit_table_stream, json_option, when

__all__ = ["log_group", "replay_cmd", "summary"]

pass_ctx = click.make_pass_decorator(Context)
_REL = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _since(value: str | None, option: str = "--since") -> datetime | None:
    if value is None:
        return None
    m = _REL.match(value)
    if m:
        try:
            return datetime.now(timezone.utc) - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
        except OverflowError:
            return datetime.min.replace(tzinfo=timezone.utc)  # further back than any clock: everything
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r}: use an ISO date/time or a span like 30s, 5m, 2h, 7d, 1w",
                                 param_hint=f"'{option}'") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _short(value: Any) -> str:
    if isinstance(value, str):
        text = value
    elif type(value) is int:  # msgspec's JSON for an int (not a bool), without the encoder's round trip
        text = str(value)
    elif type(value) is dict and not value:
        text = "{}"
    else:
        text = msgspec.json.encode(msgspec.to_builtins(value)).decode()
    return text if len(text) <= 40 else text[:37] + "..."


def summary(event: Any) -> str:
    """One line naming an event's fields and (shortened) values."""
    try:
        return _SUMMARIES[type(event)](event)
    except KeyError:
        return _SUMMARIES.setdefault(type(event), _summarizer(type(event)))(event)


def _summarizer(kind: type) -> Callable[[Any], str]:
    """``kind``'s summary: ``" ".join(f"{f}={_short(getattr(event, f))}" for f in fields)``, its template
    and getter built once per event type rather than per event (a listing is most of its time here)."""
    fields = kind.__struct_fields__  # type: ignore[attr-defined]
    if not fields:
        return lambda event: ""
    template = " ".join(f"{f}={{}}" for f in fields).format  # field names are identifiers: no braces
    get = attrgetter(*fields)
    if len(fields) == 1:
        return lambda event: template(_short(get(event)))
    return lambda event: template(*map(_short, get(event)))


_SUMMARIES: dict[type, Callable[[Any], str]] = {}


def _row(env: Any) -> dict[str, Any]:
    return {
        "seq": env.seq, "time": env.time, "actor": env.actor,
        "type": env.event.__struct_config__.tag, "stream": env.stream, "summary": summary(env.event),
    }


@click.group("log", cls=RgstoreGroup, invoke_without_command=True)
@store_option
@click.option("--stream", help="Only this stream, or streams matching a glob (e.g. 'refpkg:*', 'alias:*/hg38').")
@click.option("--type", "type_", help="Only this event type tag, e.g. alias-set.")
@click.option("--since", help="Only events at or after this time (ISO 8601, UTC unless it has an offset; or a span like 2h, 7d).")
@click.option("--until", help="Only events before this time (same forms as --since: --since 14d --until 7d is the week "
                              "before last).")
@click.option("--actor", help="Only events by this actor, or actors matching a glob (e.g. 'alice@*').")
@click.option("--limit", type=click.IntRange(min=1), help="Only the most recent N matching events (in seq order).")
@json_option
@click.pass_context
def log_group(ctx: click.Context, stream: str | None, type_: str | None, since: str | None, until: str | None,
              actor: str | None, limit: int | None, as_json: bool) -> None:
    """List events: seq, time, actor, type, stream and a one-line summary.

    With --json, JSON lines: one object per event, one per line (nothing at all when no event matches).

    \b
    Example:
        rgstore log --stream 'alias:*' --since 7d
        rgstore log --actor 'alice@*' --since 2026-01-01 --until 2026-02-01
        rgstore log show 42
        rgstore log export backup.rglog
    """
    if ctx.invoked_subcommand is not None:
        return
    since_time = _since(since)  # a malformed --since is a usage error whatever the store
    until_time = _since(until, "--until")
    if since_time is not None and until_time is not None and since_time > until_time:
        raise click.UsageError(f"--since {since} is after --until {until}: no event can match; swap them")
    for value, hint in ((stream, "'--stream'"), (type_, "'--type'"), (actor, "'--actor'")):  # as click quotes hints
        if value is not None and not value.strip():
            raise click.BadParameter("is empty; name one, or leave the option out for every event", param_hint=hint)
    with ctx.find_object(Context).open(readonly=True) as store:  # type: ignore[union-attr]
        # Without --limit, read page by page: a million-event log is not held in memory as envelopes.
        query = {"stream": stream, "type": type_, "since": since_time, "until": until_time, "actor": actor}
        envs = store.events(**query, last=limit) if limit is not None else store.iter_events(**query)
        if as_json:
            emit_json_lines(_row(e) for e in envs)
            return
        if limit is None:
            # Up to _HELD_ROWS rows are held and printed in one pass (~20 MB); a longer listing is measured
            # in one pass and printed in a second instead (~30% more CPU, the log read twice, but 400k held
            # rows took ~175 MB).
            rows = list(islice(map(_table_row, envs), _HELD_ROWS + 1))
            if len(rows) > _HELD_ROWS:
                # The rows made so far are kept (no more than the held listing's peak) and printed
                # rather than read and made again: each pass goes on from the event after them.
                emit_table_stream(_twice(store, query, rows, envs), headers=_HEADERS)
                return
        else:
            rows = [_table_row(e) for e in envs]
    emit_table(rows, headers=_HEADERS)


_HEADERS = ["SEQ", "TIME", "ACTOR", "TYPE", "STREAM", "SUMMARY"]
_HELD_ROWS = 50_000


def _table_row(env: Any) -> tuple[Any, ...]:
    return env.seq, when(env.time), env.actor, env.event.__struct_config__.tag, env.stream, summary(env.event)


def _twice(store: Any, query: dict[str, Any], held: list[tuple[Any, ...]] | None = None,
           rest: Iterator[Any] | None = None) -> Callable[[], Iterator[tuple[Any, ...]]]:
    """Rows of ``store.iter_events(**query)`` for ``emit_table_stream``: the second call yields exactly
    the first's, stopping at the last seq the first saw (events appended in between are not shown).

    The first (measuring) call leaves SUMMARY out, half the cost of a row: as the last column it is
    never padded (lines are right-stripped), and ``emit_table_stream`` prints a cell past the measured
    columns as it is, so the bytes are ``emit_table``'s. Given ``held`` (the first rows, already made)
    and ``rest`` (the envelopes after them), both calls start with ``held`` and read only past it; the
    second empties it.
    """
    last: list[int] = []  # empty until the first call has run to its end
    after = held[-1][0] if held else 0

    def rows() -> Iterator[tuple[Any, ...]]:
        if last:
            if held:
                yield from held
                held.clear()
            for env in store.iter_events(**query, after=after):
                if env.seq > last[0]:
                    return
                yield _table_row(env)
            return
        seq = after
        for row in held or ():
            yield row[:5]
        for env in store.iter_events(**query, after=after) if rest is None else rest:
            seq = env.seq
            yield env.seq, when(env.time), env.actor, env.event.__struct_config__.tag, env.stream
        last.append(seq)

    return rows


@log_group.command("show")
@store_option
@click.argument("seq", type=click.IntRange(min=1))
@json_option
@pass_ctx
def show_cmd(ctx: Context, seq: int, as_json: bool) -> None:
    """Print one event in full, as JSON (--json is accepted for symmetry: the output is always JSON).

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
@click.argument("file", type=GivenPath(path_type=Path, dir_okay=False, readable=False, allow_dash=True))
@click.option("--from", "from_seq", type=click.IntRange(min=1), default=1, show_default=True,
              help="First seq to export.")
@click.option("--to", "to_seq", type=click.IntRange(min=1),
              help="Last seq to export (default: the head); the file's head hash is then the chain hash at that seq.")
@json_option
@pass_ctx
def export_cmd(ctx: Context, file: Path, from_seq: int, to_seq: int | None, as_json: bool) -> None:
    """Write the log (from a seq on, up to a seq) to a self-describing, zstd-compressed file (- for standard output).

    The export holds the log only: blobs and sequence files travel with `rgstore log publish
    --with-blobs --with-refget` and `rgstore mirror pull`.

    \b
    Example:
        rgstore log export backup.rglog --from 1
        rgstore log export first-1000.rglog --to 1000
        rgstore log export - | ssh backup rgstore --store /srv/copy replay -
    """
    from rgstore.progress import ProgressFactory, null_progress, terminal_progress
    from rgstore.replay import export_log

    from .getseq import signals_unwind

    dash = str(file) == "-"
    if dash and sys.stdout.isatty():  # as gzip does (and `refpkg export --tar -`): zstd bytes would garble the terminal
        raise click.UsageError("- writes the binary export to standard output: pipe or redirect it")
    to_stdout = dash or _is_stdout(file)  # then the summary goes to stderr: stdout carries the export
    progress: ProgressFactory = null_progress if as_json else terminal_progress
    with signals_unwind(), ctx.open(readonly=True) as store:  # SIGTERM unwinds: no temp file is left behind
        header = export_log(store, sys.stdout.buffer if dash else file, from_seq=from_seq, to_seq=to_seq,
                            progress=progress)
    if as_json:
        click.echo(msgspec.json.encode(header).decode(), err=to_stdout)
    else:
        what = (f"seqs {header.first_seq}-{header.last_seq}" if header.last_seq >= header.first_seq
                else f"no records (head {header.last_seq})")
        click.echo(f"exported {what} of log {header.log_id} to {'standard output' if to_stdout else file}",
                   err=to_stdout)


def _is_stdout(path: Path) -> bool:
    try:
        st, out = os.stat(path), os.fstat(1)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (out.st_dev, out.st_ino)


@click.command("replay")
@store_option
@click.argument("file", type=GivenPath(path_type=Path, dir_okay=False, exists=True, allow_dash=True))
@click.option("--to", "to_seq", type=click.IntRange(min=1), help="Stop after this seq: the store as it was at that seq.")
@click.option("--as-of", "as_of", help="Stop before the first event after this time (ISO 8601, UTC unless it has an "
                                       "offset, or a span like 7d, as `log --since`; a date is its midnight UTC): "
                                       "the store as it was then.")
@json_option
@pass_ctx
def replay_cmd(ctx: Context, file: Path, to_seq: int | None, as_of: str | None, as_json: bool) -> None:
    """Rebuild a store from an exported log (- for standard input), verifying the hash chain; appends only what is missing.

    The export holds the log only: copy the old store's blobs/, refget/ and cache/ into the
    store before the replay (copied after it, run `rgstore rebuild`); until then `rgstore verify`
    names what is missing. `rgstore backup` copies a store with its content in one step.

    --to SEQ or --as-of TIME replays a prefix: the store as it was at that point, for an audit.
    --as-of T stops before the first event whose time is after T in the running maximum of event
    times (a clock that stepped back cannot pull a later event in: the log order is the truth).
    A time before the first event, a seq outside the file, or a bound below what the store already
    holds is refused (a replayed store only grows); replaying the file again without a bound
    continues the store to the head.

    \b
    Example:
        rgstore replay backup.rglog --store ./restored
        rgstore replay backup.rglog --store /tmp/asof --as-of 2026-11-17
        rgstore --store /tmp/asof alias get hg38
        rgstore replay backup.rglog --store /tmp/at-seq --to 1000
    """
    from rgstore.asof import time_reached
    from rgstore.progress import ProgressFactory, null_progress, terminal_progress
    from rgstore.replay import open_export, replay_export

    from .getseq import signals_unwind

    if to_seq is not None and as_of is not None:
        raise click.UsageError("--to and --as-of both bound the replay: give one of them")
    as_of_time = _since(as_of, "--as-of")
    if str(file) == "-" and sys.stdin.isatty():
        raise click.BadParameter("- reads an export from standard input: pipe one in, e.g. "
                                 "`rgstore log export - | rgstore replay -`", param_hint="FILE")
    # The file is checked before the store is created, so a bad file leaves no empty store behind.
    header, frames = (open_export(sys.stdin.buffer, "<stdin>", to_seq=to_seq, as_of=as_of_time) if str(file) == "-"
                      else open_export(file, to_seq=to_seq, as_of=as_of_time))
    progress: ProgressFactory = null_progress if as_json else terminal_progress
    if header.first_seq > 1:
        from rgstore.errors import NotFoundError

        try:
            store_cm = ctx.open()
        except NotFoundError:
            raise NotFoundError(
                f"this export starts at seq {header.first_seq}: it continues a store that holds seqs "
                f"1-{header.first_seq - 1} of log {header.log_id}; replay an export from seq 1 to start one"
            ) from None
        fresh = False
    elif not ctx.exists():  # as a first `mirror pull`: a replay that applies nothing leaves no store behind
        from rgstore.replay import replay_new_store
        from rgstore.store import default_store_path

        target = ctx.store_path if ctx.store_path is not None else default_store_path()
        refuse_beside_files(target)  # as any first write: not into a directory of other files
        with signals_unwind():  # SIGTERM unwinds too: the staged store is removed (or, with events, kept)
            applied, head = replay_new_store(target, header, frames, actor=ctx.actor, to_seq=to_seq,
                                             as_of=as_of_time, progress=progress)
        store_cm, fresh = ctx.open(), True
    else:
        store_cm, fresh = ctx.open(create=True), False
    # SIGTERM unwinds as Ctrl-C does: the batch being written is not committed, the ones before it stay (a rerun
    # appends the rest), and the process exits 143 without a traceback rather than being killed outright.
    with signals_unwind(), store_cm as store:
        if not fresh:
            applied, head = replay_export(store, header, frames, to_seq=to_seq, as_of=as_of_time, progress=progress)
        head_hash = store.head()[1]
        reached = time_reached(store)
    if as_json:
        emit_json({"applied": applied, "head_seq": head, "head_hash": head_hash,
                   "time_reached": reached})
    else:
        click.echo(f"applied {applied} event{'' if applied == 1 else 's'}; head {head} ({head_hash[:16]}…)"
                   + (f"; latest event time {when(reached)}" if reached is not None else ""))


@log_group.command("publish")
@store_option
@click.argument("directory", type=GivenPath(path_type=Path, file_okay=False))
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

    from .getseq import signals_unwind

    # SIGTERM unwinds: no temp file is left in DIRECTORY for a static host to serve until a later run's sweep.
    with signals_unwind(), ctx.open(readonly=True) as store:
        check_publish_target(store, directory)
        before = published_head(directory)
        # Content first: a mirror that sees an event can always find what it references. Only the
        # events committed before the copy started are published: a writer may commit meanwhile.
        upto = store.head()[0]
        progress = null_progress if as_json else terminal_progress
        copied = (publish_blobs(store, directory, progress=progress) + publish_cache(store, directory)) if with_blobs else 0
        refget = publish_refget(store, directory) if with_refget else 0
        manifest = publish(store, directory, segment_size=segment_size,
                           progress=progress, upto=upto)
    if as_json:
        emit_json({"manifest": manifest, "blobs_copied": copied, "refget_files_written": refget})
    else:
        new = (f"published seqs {before + 1}-{manifest.head_seq}" if manifest.head_seq > before
               else f"nothing new to publish (head {manifest.head_seq})")
        click.echo(f"{new}; {directory} holds {counted(len(manifest.segments), 'segment')}"
                   + (f"; copied {counted(copied, 'blob or cache file', 'blobs and cache files')}" if with_blobs else "")
                   + (f"; wrote {counted(refget, 'RefgetStore file')}" if with_refget else ""))

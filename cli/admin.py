"""Store-wide commands: init, rebuild, verify, gc."""

from __future__ import annotations

import click

from .main import Context, store_option
from .output import cell, counted, emit_json, json_option

__all__ = ["init_cmd", "rebuild_cmd", "verify_cmd", "gc_cmd"]

pass_ctx = click.make_pass_decorator(Context)


@click.command("init")
@store_option
@json_option
@pass_ctx
def init_cmd(ctx: Context, as_json: bool) -> None:
    """Create the store directory (log, refget, blobs, cache) if it does not exist.

    Commands that add content create a store on first write too, but not in a directory that
    already holds other files; init creates it there on purpose.

    \b
    Example:
        rgstore init --store ./store
    """
    with ctx.open(create=True, create_beside_files=True) as store:
        seq, _ = store.head()
        if as_json:  # the keys `status --json` gives the same facts under
            emit_json({"path": str(store.path), "log_id": store.log_id(), "head_seq": seq})
        else:
            click.echo(f"store at {store.path}: log {store.log_id()}, head seq {seq}")


@click.command("rebuild")
@store_option
@json_option
@pass_ctx
def rebuild_cmd(ctx: Context, as_json: bool) -> None:
    """Drop every view and fold the whole log into them again.

    \b
    Example:
        rgstore rebuild --store ./store
    """
    from rgstore.progress import null_progress, terminal_progress

    with ctx.open() as store:
        n = store.rebuild(progress=null_progress if as_json else terminal_progress)
        if as_json:
            emit_json({"events": n, "views": [v.name for v in store.views]})
        else:
            click.echo(f"rebuilt {counted(len(store.views), 'view')} from {counted(n, 'event')}")


@click.command("verify")
@store_option
@json_option
@pass_ctx
def verify_cmd(ctx: Context, as_json: bool) -> None:
    """Check the hash chain, views against a replay, every blob, cache file and sequence; exit 1 on a problem.

    Views an rgstore upgrade left stale are rebuilt from the log first (no event is added).

    \b
    Example:
        rgstore verify --store ./store
    """
    from rgstore.progress import null_progress, terminal_progress

    with ctx.open(readonly=True) as store:
        report = store.verify(progress=null_progress if as_json else terminal_progress)
    if as_json:
        emit_json({"ok": report.ok, **{k: getattr(report, k) for k in report.__struct_fields__}})
    else:
        for problem in report.problems:
            click.echo(f"FAIL {problem}", err=True)
        if report.hint:  # after the FAIL lines, however many: what they mean together and what to do
            click.echo(f"hint: {report.hint}", err=True)
        for sha in report.unreferenced_blobs:
            click.echo(f"note: unreferenced blob {sha} (freed by `rgstore gc`)")
        for path in report.stray_files:
            click.echo(f"note: {cell(path)} is not a blob (not named by its sha256 under blobs/<2 hex>/); ignored")
        if report.unfetched_blobs:
            click.echo(f"note: this mirror has not fetched {counted(len(report.unfetched_blobs), 'referenced blob')} yet "
                       "(`rgstore mirror pull SOURCE --with-blobs` fetches them)")
        if report.unfetched_cache_files:
            click.echo(f"note: this mirror has not fetched {counted(len(report.unfetched_cache_files), 'cache file')} yet "
                       "(`rgstore mirror pull SOURCE --with-blobs` fetches them)")
        if report.lagging_indexes:
            click.echo(f"note: the audit indexes {', '.join(report.lagging_indexes)} are behind the head (an older "
                       "rgstore appended); `log --stream/--since` read the log meanwhile, and a writable open (any "
                       "writing command) catches them up")
        if report.unfetched_sequences:
            click.echo(f"note: {counted(report.unfetched_sequences, 'sequence')} of remote genomes or of this mirror "
                       f"{'is' if report.unfetched_sequences == 1 else 'are'} not "
                       "fetched yet (read on first use, or `rgstore mirror pull SOURCE --with-sequences`)")
        click.echo(f"{'ok' if report.ok else 'FAILED'}: {counted(report.events, 'event')}, "
                   f"{counted(report.blobs, 'blob')}, {counted(report.cache_files, 'cache file')}, "
                   f"{counted(report.sequences, 'sequence')} checked")
    if not report.ok:
        raise SystemExit(1)


@click.command("gc")
@store_option
@click.option("--dry-run", is_flag=True, help="Only report what would be removed.")
@click.option("--grace", default="10m", show_default=True,
              help="Keep unreferenced blobs younger than this (s, m, h, d, w; a bare number is seconds).")
@json_option
@pass_ctx
def gc_cmd(ctx: Context, dry_run: bool, grace: str, as_json: bool) -> None:
    """Delete blobs and RefgetStore collections nothing references any more (and stale temp files).

    \b
    Example:
        rgstore gc --store ./store --dry-run
    """
    from rgstore.cachegc import parse_duration
    from rgstore.errors import InvalidInputError
    from rgstore.gc import collect_garbage

    try:
        seconds = parse_duration(grace)  # the same spans as `cache gc --max-age`
    except InvalidInputError as exc:
        raise click.BadParameter(str(exc), param_hint="--grace") from None
    with ctx.open() as store:
        report = collect_garbage(store, dry_run=dry_run, grace=seconds)
    if as_json:
        emit_json(report)
    else:
        verb = "would remove" if dry_run else "removed"
        click.echo(f"{verb} {counted(len(report.removed), 'blob')} ({counted(report.bytes_freed, 'byte')}), "
                   f"{counted(len(report.collections_removed), 'unreferenced RefgetStore collection')}, "
                   f"{counted(report.temp_files_removed, 'temp file')}, "
                   f"{counted(len(report.scratch_removed), 'scratch directory', 'scratch directories')} of "
                   f"killed imports; kept {counted(len(report.kept_recent), 'recent blob')} and "
                   f"{counted(len(report.collections_kept_recent), 'recent collection')}")

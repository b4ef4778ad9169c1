"""`rgstore backup DEST`: a consistent, verified copy of a live store."""

from __future__ import annotations

from pathlib import Path

import click

from .main import Context, GivenPath, store_option
from .output import counted, emit_json, json_option

__all__ = ["backup_cmd"]

pass_ctx = click.make_pass_decorator(Context)


@click.command("backup")
@click.argument("dest", type=GivenPath(path_type=Path, file_okay=False))
@click.option("--no-link", is_flag=True,
              help="Copy every content file, even on the store's filesystem (default: hard-link blobs, sequence "
                   "and cache files there; they are never rewritten in place).")
@click.option("--no-verify", is_flag=True, help="Skip verifying the copy (log, views, blobs, sequences, cache files).")
@store_option
@json_option
@pass_ctx
def backup_cmd(ctx: Context, dest: Path, no_link: bool, no_verify: bool, as_json: bool) -> None:
    """Copy the store to the new directory DEST as one consistent state, safe while others write; then verify it.

    DEST is a complete store: open it with --store, or move it into place to restore.

    \b
    Example:
        rgstore --store /data/refs backup /backup/refs-$(date +%F)
        rgstore --store /backup/refs-2026-01-31 status
    """
    from rgstore.backup import backup
    from rgstore.progress import null_progress, terminal_progress

    from .getseq import signals_unwind

    with signals_unwind(), ctx.open(readonly=True) as store:  # SIGTERM unwinds: the work directory is removed
        result = backup(store, dest, link=not no_link, verify=not no_verify,
                        progress=null_progress if as_json else terminal_progress)
    if as_json:
        emit_json(result)
    else:
        click.echo(f"backed up seqs 1-{result.head_seq} of log {result.log_id} to {result.path}: "
                   f"{counted(result.blobs, 'blob')}, {counted(result.refget_files, 'RefgetStore file')}, "
                   f"{counted(result.cache_files, 'cache file')} "
                   f"({result.linked} hard-linked); {'verified' if result.verified else 'not verified'}")

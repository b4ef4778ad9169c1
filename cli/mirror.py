"""Replication commands: `rgstore mirror pull | status | promote`."""

from __future__ import annotations

import click

from .main import Context, RgstoreGroup, refuse_beside_files, store_option
from .output import counted, emit_json, json_option, when

__all__ = ["mirror_group"]

pass_ctx = click.make_pass_decorator(Context)


@click.group("mirror", cls=RgstoreGroup)
def mirror_group() -> None:
    """Keep a read-only replica of a primary by replaying its log.

    \b
    Example:
        rgstore --store ./mirror mirror pull http://primary:8000
        rgstore --store ./mirror mirror status
    """


@mirror_group.command("pull")
@store_option
@click.argument("source")
@click.option("--with-blobs", is_flag=True,
              help="Also fetch every referenced blob (refpkg files) and live cache file, each verified by sha256.")
@click.option("--with-sequences", is_flag=True, help="Also fetch every genome's sequences now (else on first use).")
@json_option
@pass_ctx
def pull_cmd(ctx: Context, source: str, with_blobs: bool, with_sequences: bool, as_json: bool) -> None:
    """Apply every event after the local head from SOURCE (server URL, segment dir/URL, or export file).

    \b
    Example:
        rgstore --store ./mirror mirror pull http://127.0.0.1:8000 --with-blobs
        rgstore --store ./mirror mirror pull /srv/published
    """
    from rgstore.firstpull import pull_new_store
    from rgstore.mirror import pull
    from rgstore.progress import null_progress, terminal_progress
    from rgstore.store import default_store_path

    from .getseq import signals_unwind

    progress = null_progress if as_json else terminal_progress
    if not ctx.exists():  # a first pull that fails before applying anything leaves no store behind
        target = ctx.store_path if ctx.store_path is not None else default_store_path()
        refuse_beside_files(target)  # as any first write: not into a directory of other files
        with signals_unwind():  # SIGTERM unwinds too: the staged store is removed (or, with events, kept)
            result = pull_new_store(target, source,
                                    actor=ctx.actor, with_blobs=with_blobs, with_sequences=with_sequences,
                                    progress=progress)
    else:  # SIGTERM unwinds here too: a blob or cache file being fetched leaves no temp file behind
        with signals_unwind(), ctx.open(create=True) as store:
            result = pull(store, source, with_blobs=with_blobs, with_sequences=with_sequences, progress=progress)
    if as_json:
        emit_json(result)
    else:
        click.echo(f"pulled {counted(result.applied, 'event')} from {result.source} ({result.kind}); "
                   f"head {result.head_seq} of {result.upstream_head}"
                   + (f"; fetched {counted(result.blobs_fetched, 'blob')} and "
                      f"{counted(result.cache_files_fetched, 'cache file')}" if with_blobs else "")
                   + (f"; {counted(result.sequences_fetched, 'sequence')}" if with_sequences else ""))
        if result.upstream_head < result.head_seq:
            click.echo(f"note: {result.source} is behind this mirror on the same history (a lagging replica or "
                       "cache); nothing to pull from it until it catches up")


@mirror_group.command("status")
@store_option
@json_option
@pass_ctx
def status_cmd(ctx: Context, as_json: bool) -> None:
    """Show the upstream, local head, lag in events and the last pull time.

    \b
    Example:
        rgstore --store ./mirror mirror status --json
    """
    from rgstore.mirrorstatus import status

    with ctx.open(readonly=True) as store:
        result = status(store)
    if as_json:
        emit_json(result)
        return
    click.echo(f"upstream:      {result.upstream or '(none: not a mirror)'}{' [promoted]' if result.promoted else ''}")
    click.echo(f"local head:    {result.local_head}")
    if result.upstream_head is not None:
        click.echo(f"upstream head: {result.upstream_head} (lag {counted(result.lag, 'event')})")
    if result.error:  # a promoted store's follower stopped at the promotion: nothing is wrong upstream
        click.echo(f"{'promoted:     ' if result.error_kind == 'promoted' else 'upstream problem:'} {result.error}")
    click.echo(f"last pull:     {when(result.last_pull) if result.last_pull else 'never'}")


@mirror_group.command("promote")
@store_option
@click.option("--force", is_flag=True,
              help="Promote even if sequences, blobs or cache files the mirror never fetched cannot be fetched now.")
@json_option
@pass_ctx
def promote_cmd(ctx: Context, force: bool, as_json: bool) -> None:
    """Make this mirror a writable store (it stops following its upstream).

    A mirror that fetched content lazily fetches what it lacks first (a primary has no upstream to
    fetch from); if the upstream cannot supply it, promotion is refused unless --force.

    \b
    Example:
        rgstore --store ./mirror mirror promote
    """
    from rgstore.mirror import promote

    with ctx.open() as store:
        upstream = promote(store, force=force)
    if as_json:
        emit_json({"store": str(store.path), "promoted_from": upstream})
        return
    click.echo(f"promoted: {store.path} no longer follows {upstream} and accepts writes")

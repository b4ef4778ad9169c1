"""``rgstore alias``: name genomes (and, with --sequence, sequences) and audit those names."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from .complete import genome_names
from .main import Context, RgstoreGroup, given_namespace, store_option
from .output import emit_json, emit_json_array, emit_table, emit_table_stream, json_option, note_shadows, when

__all__ = ["alias_group"]

pass_ctx = click.make_pass_decorator(Context)


def _alias_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option(
        "--namespace", "-n", default=None, callback=given_namespace,
        help="Alias namespace when NAME has no 'ns:' prefix [default: refgenie].",
    )(fn)
    fn = click.option(
        "--sequence", is_flag=True,
        help="A sequence alias (e.g. insdc:BK006935.2 -> sequence digest) instead of a genome alias.",
    )(fn)
    return fn


def _shown(digest: str | None, ga4gh: Any) -> str | None:
    """A digest as text shows it: a sequence's ``SQ.…`` form (its ``ga4gh`` field) as `genome show` does."""
    return ga4gh if isinstance(ga4gh, str) else digest


def _show_change(change: Any, as_json: bool) -> None:
    if change.digest is not None:
        note_shadows(change.shadows, change.digest)
    if as_json:
        emit_json(change)
        return
    label = f"{change.namespace}:{change.name}"
    digest, previous = _shown(change.digest, change.ga4gh), _shown(change.previous, change.previous_ga4gh)
    if change.digest is None:
        click.echo(f"{label} removed (was {previous})")
    elif change.seq == 0 and change.previous == change.digest:
        click.echo(f"{label} -> {digest} (unchanged)")
    elif change.previous is not None and change.previous != change.digest:
        click.echo(f"{label} -> {digest} (was {previous})")
    else:
        click.echo(f"{label} -> {digest}")


@click.group("alias", cls=RgstoreGroup)
def alias_group() -> None:
    """Human names for genome digests (and sequence digests), with history and undo.

    \b
    Example:
        rgstore alias set hg38 iJ9EFsXJZZS5sG3ibEtwYhm8KZPp1pqA
        rgstore alias get ucsc:hg38
    """


@alias_group.command("set")
@click.argument("name", shell_complete=genome_names)
@click.argument("digest")
@_alias_options
@click.option("--force", is_flag=True, help="Repoint an alias that already names another digest.")
@store_option
@json_option
@pass_ctx
def set_cmd(
    ctx: Context, name: str, digest: str, namespace: str | None, sequence: bool, force: bool, as_json: bool
) -> None:
    """Point NAME (or ns:NAME) at a genome DIGEST that is in the store.

    An alias that already points elsewhere is refused unless --force; the old target stays in
    `rgstore alias history`. A digest starting with '-' goes after `--`. A sequence DIGEST may
    be given with or without SQ. (or as ga4gh:SQ.…); it is shown as SQ.…, as `genome show` lists it.
    A new refgenie NAME that other namespaces give other genomes is noted on stderr: bare NAME
    now means this genome.

    \b
    Example:
        rgstore alias set hg38 iJ9EFsXJZZS5sG3ibEtwYhm8KZPp1pqA
        rgstore alias set ucsc:hg38 iJ9EFsXJZZS5sG3ibEtwYhm8KZPp1pqA --force
        rgstore alias set --sequence insdc:BK006935.2 \\
            SQ.lZyxiD_ByprhOUzrR1o1bq0ezO_1gkrn
    """
    with ctx.open() as store:
        change = store.aliases.set(name, digest, namespace=namespace, force=force, sequence=sequence)
    _show_change(change, as_json)


@alias_group.command("get")
@click.argument("name", shell_complete=genome_names)
@_alias_options
@store_option
@json_option
@pass_ctx
def get_cmd(ctx: Context, name: str, namespace: str | None, sequence: bool, as_json: bool) -> None:
    """Print the digest NAME (or ns:NAME) points at.

    \b
    Example:
        rgstore alias get hg38
        rgstore alias get --sequence insdc:BK006935.2
    """
    with ctx.open(readonly=True) as store:
        entry = store.aliases.entry(name, namespace=namespace, sequence=sequence)
    if as_json:  # the fields of an `alias list --json` entry
        fields = {"kind": entry.kind, "namespace": entry.namespace, "name": entry.name, "digest": entry.digest}
        emit_json(fields if not sequence else {**fields, "ga4gh": entry.ga4gh})
    else:
        click.echo(_shown(entry.digest, entry.ga4gh))


@alias_group.command("remove")
@click.argument("name", shell_complete=genome_names)
@_alias_options
@store_option
@json_option
@pass_ctx
def remove_cmd(ctx: Context, name: str, namespace: str | None, sequence: bool, as_json: bool) -> None:
    """Delete the alias NAME (or ns:NAME); `rgstore alias undo` brings it back.

    \b
    Example:
        rgstore alias remove ucsc:hg38
    """
    with ctx.open() as store:
        change = store.aliases.remove(name, namespace=namespace, sequence=sequence)
    _show_change(change, as_json)


@alias_group.command("list")
@click.option("--namespace", "-n", default=None, callback=given_namespace, help="Only this namespace.")
@click.option("--digest", default=None, help="Only aliases of this digest (with --sequence: any form `set` takes, an MD5 too).")
@click.option("--sequence", is_flag=True, help="List sequence aliases instead of genome aliases.")
@store_option
@json_option
@pass_ctx
def list_cmd(ctx: Context, namespace: str | None, digest: str | None, sequence: bool, as_json: bool) -> None:
    """List aliases, sorted by namespace then name.

    \b
    Example:
        rgstore alias list
        rgstore alias list --namespace ucsc --json
        rgstore alias list --sequence --namespace insdc
    """
    with ctx.open(readonly=True) as store:
        # Printed as read, a chunk per read transaction: 200k aliases are never all in memory.
        if as_json:
            emit_json_array(store.aliases.stream(namespace=namespace, digest=digest, sequence=sequence))
        else:
            emit_table_stream(
                lambda: ((e.namespace, e.name, _shown(e.digest, e.ga4gh))
                         for e in store.aliases.stream(namespace=namespace, digest=digest, sequence=sequence)),
                headers=("NAMESPACE", "NAME", "DIGEST"),
            )


@alias_group.command("history")
@click.argument("name", shell_complete=genome_names)
@_alias_options
@store_option
@json_option
@pass_ctx
def history_cmd(ctx: Context, name: str, namespace: str | None, sequence: bool, as_json: bool) -> None:
    """Every change to NAME (or ns:NAME): when, by whom, the target it left, and undo state.

    \b
    Example:
        rgstore alias history hg38
    """
    with ctx.open(readonly=True) as store:
        steps = store.aliases.history(name, namespace=namespace, sequence=sequence)
    if as_json:
        emit_json(steps)
        return
    emit_table(
        [
            (s.seq, when(s.time), s.actor, s.action, _shown(s.digest, s.ga4gh) or "-", s.state)
            for s in steps
        ],
        headers=("SEQ", "TIME", "ACTOR", "ACTION", "TARGET", "STATE"),
    )


@alias_group.command("undo")
@click.argument("name", shell_complete=genome_names)
@_alias_options
@store_option
@json_option
@pass_ctx
def undo_cmd(ctx: Context, name: str, namespace: str | None, sequence: bool, as_json: bool) -> None:
    """Take back the latest change to NAME (or ns:NAME).

    \b
    Example:
        rgstore alias undo hg38
    """
    with ctx.open() as store:
        change = store.aliases.undo(name, namespace=namespace, sequence=sequence)
    _show_change(change, as_json)


@alias_group.command("redo")
@click.argument("name", shell_complete=genome_names)
@_alias_options
@store_option
@json_option
@pass_ctx
def redo_cmd(ctx: Context, name: str, namespace: str | None, sequence: bool, as_json: bool) -> None:
    """Re-apply the most recently undone change to NAME (or ns:NAME).

    \b
    Example:
        rgstore alias redo hg38
    """
    with ctx.open() as store:
        change = store.aliases.redo(name, namespace=namespace, sequence=sequence)
    _show_change(change, as_json)

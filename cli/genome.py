"""``rgstore genome``: add FASTA genomes, list, show, compare, export, remove (and undo) them, and their FHR."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from .complete import genome_names
from .getseq import quiet_broken_pipe, signals_unwind
from .main import Context, GivenPath, RgstoreGroup, given_namespace, store_option
from .output import (
    cell,
    counted,
    emit_json,
    emit_json_array,
    emit_table,
    emit_table_stream,
    json_option,
    note_shadows,
    when,
)

__all__ = ["genome_group"]

pass_ctx = click.make_pass_decorator(Context)

_digest_option = click.option(
    "--digest", "by_digest", is_flag=True, help="NAME is a genome digest rather than an alias."
)


@click.group("genome", cls=RgstoreGroup)
def genome_group() -> None:
    """Genomes: sequence collections stored by content digest and named by aliases.

    A NAME typed as ns:name is that alias exactly. A bare NAME is the refgenie namespace's alias,
    else the other namespace's holding it (hg38 -> ncbi:hg38); one that several namespaces point at
    different genomes is refused, naming each. `genome remove` takes a bare NAME from refgenie only.

    \b
    Example:
        rgstore genome init --fasta hg38.fa.gz --name hg38 \\
            --description "Human GRCh38"
        rgstore genome list
    """


@genome_group.command("init")
@click.option("--fasta", type=GivenPath(path_type=Path, dir_okay=False, allow_dash=True),
              help="FASTA file: plain, gzip or BGZF; - reads standard input.")
@click.option("--remote", metavar="URL",
              help="Instead of --fasta: a remote RefgetStore or seqcol/refgenie server holding the genome.")
@click.option("--digest", "remote_digest", metavar="D", help="With --remote: the genome's seqcol digest.")
@click.option("--alias", "remote_alias", metavar="NS:NAME",
              help="With --remote: the remote's alias for it (a bare NAME its refgenie namespace lacks is "
                   "looked up in the remote's other namespaces).")
@click.option("--name", "-n", "names", multiple=True, required=True,
              help="A name (refgenie alias, or NS:NAME) for the genome; repeatable.")
@click.option("--description", "-d", default="", help="Free-text description.")
@click.option("--species", "-s", default="", help="Species, e.g. 'Homo sapiens'.")
@click.option("--fhr", type=GivenPath(path_type=Path, dir_okay=False),
              help="FHR 1.0 JSON provenance document to attach (replaces a different stored one; "
                   "without it, --remote takes the remote's own).")
@click.option("--circular", multiple=True, metavar="SEQ", help="A circular sequence (e.g. chrM); repeatable.")
@click.option("--seq-namespace", metavar="NS", multiple=True, callback=given_namespace,
              help="Record header tokens NS:ID as sequence aliases (e.g. --seq-namespace insdc); "
                   "repeatable.")
@click.option("--force", "-f", is_flag=True, help="Repoint names that already name another genome.")
@store_option
@json_option
@pass_ctx
def init_cmd(
    ctx: Context, fasta: Path | None, remote: str | None, remote_digest: str | None, remote_alias: str | None,
    names: tuple[str, ...], description: str, species: str, fhr: Path | None,
    circular: tuple[str, ...], seq_namespace: tuple[str, ...], force: bool, as_json: bool,
) -> None:
    """Validate a FASTA, store its sequences and record it as a genome named by every --name.

    Re-running with the same content is safe: only new names are added (a --description,
    --species or --circular differing from the stored genome is refused). A different --fhr
    replaces the stored FHR document, as `rgstore genome fhr set` does, and says so; the old
    one stays in `rgstore log`. A name that already names another genome is
    refused unless --force. With --remote URL (and --digest or --alias)
    the genome stays on a remote RefgetStore or seqcol server; each sequence is fetched,
    verified against its digest and cached when first read, and the
    remote's FHR document comes along (never replacing a stored one; one
    unreadable or not FHR 1.0 is skipped with a warning). A genome
    already recorded keeps its source: another --remote URL is not
    recorded, and init says so.

    \b
    Example:
        rgstore genome init --fasta hg38.fa.gz --name hg38 --name GRCh38 \\
            --species "Homo sapiens"
        rgstore genome init --fasta rCRS.fa --name rCRS --circular chrM \\
            --fhr rCRS.fhr.json
        rgstore genome init --remote https://example.org/refget \\
            --alias ucsc:hg38 --name hg38
    """
    from rgstore.progress import null_progress, terminal_progress

    # Checked before the store opens, so a mistaken first command creates no store.
    if (fasta is None) == (remote is None):
        raise click.UsageError("genome init needs --fasta PATH or --remote URL" if fasta is None
                               else "--fasta cannot be combined with --remote")
    if remote is None and (remote_digest is not None or remote_alias is not None):
        raise click.UsageError("--digest and --alias name a genome on a --remote URL; a --fasta genome's "
                               "digest is computed from its sequences")
    if fasta is not None:
        from rgstore.fasta import check_openable

        if str(fasta) == "-" and sys.stdin.isatty():  # else it waits, silent, for a FASTA typed at the terminal
            raise click.BadParameter("- reads the FASTA from standard input: pipe one in, e.g. "
                                     "`zcat hg38.fa.gz | rgstore genome init --fasta - --name hg38`",
                                     param_hint="--fasta")
        # Before the store opens: a missing FASTA on a mistyped --store creates nothing. A stream
        # (-, a pipe) passes unread: the engine saves it into the store's scratch once it is open.
        check_openable(fasta)
    with signals_unwind(), ctx.open(create=True) as store:
        if remote is not None:
            from rgstore.remote import init_remote

            result = init_remote(
                store, remote, names, digest=remote_digest, alias=remote_alias, description=description,
                species=species, circular=circular, force=force, fasta=fasta, fhr=fhr, seq_namespace=seq_namespace,
            )
        else:
            result = store.genomes.init(
                fasta, names, description=description, species=species, fhr=fhr, circular=circular,
                seq_namespace=seq_namespace, force=force, progress=null_progress if as_json else terminal_progress,
            )
    note_shadows(result.shadows, result.genome.digest)
    if result.fhr_not_recorded is not None:  # the remote's provenance was unusable: said, never fatal
        click.echo(f"warning: {cell(result.fhr_not_recorded)}; the genome is recorded without it", err=True)
    if as_json:
        emit_json(result)
        return
    g = result.genome
    state = "added" if result.added else "already stored"
    click.echo(f"{g.digest}  {state}: {counted(g.n_sequences, 'sequence')}, {g.total_length:,} bp")
    moved_from = {m.alias: m.was for m in result.aliases_moved}  # said as `alias set --force` says a repoint
    for alias in result.aliases_added:
        click.echo(f"  alias {alias}" + (f" (was {moved_from[alias]})" if alias in moved_from else ""))
    if result.sequence_aliases_added:
        click.echo(f"  {counted(result.sequence_aliases_added, 'sequence alias', 'sequence aliases')} "
                   f"({', '.join(dict.fromkeys(seq_namespace))})")
    if result.fhr_replaced:  # a re-run with another --fhr: never silent, the old document is only in the log
        click.echo(f"  fhr replaced (earlier documents: rgstore log --type fhr-set --stream genome:{g.digest})")
    elif result.fhr_set:
        click.echo("  fhr set" + (" (the remote's)" if result.fhr_from_remote else ""))
    if result.remote_not_recorded is not None:  # a re-run naming a new upstream: reads would still use the old one
        was = g.source.remote_url or (f"the FASTA {g.source.path}" if g.source.path else "a FASTA")
        click.echo(f"  remote {cell(result.remote_not_recorded)} not recorded: the genome stays recorded from "
                   f"{cell(was)}" + (", where its unfetched sequences come from" if g.source.remote_url else ""))


@genome_group.command("list")
@store_option
@json_option
@pass_ctx
def list_cmd(ctx: Context, as_json: bool) -> None:
    """List every genome: names, digest, sequence count, total length, description.

    \b
    Example:
        rgstore genome list --json
    """
    with ctx.open(readonly=True) as store:
        # Printed as read, a few records per read transaction: big assemblies' records are never all in memory.
        if as_json:
            emit_json_array(_brief(g) for g in store.genomes.stream())
            return
        emit_table_stream(
            lambda: ([",".join(g.aliases) or "-", g.digest, g.n_sequences, f"{g.total_length:,}", g.description]
                     for g in store.genomes.stream()),
            headers=["NAMES", "DIGEST", "SEQS", "BP", "DESCRIPTION"],
            # The hint is a message, not a row: stdout keeps the header alone, like every other empty list.
            if_empty=lambda: click.echo("no genomes; add one with `rgstore genome init --fasta FILE --name NAME`",
                                        err=True),
        )


@genome_group.command("show")
@click.argument("name", shell_complete=genome_names)
@_digest_option
@store_option
@json_option
@pass_ctx
def show_cmd(ctx: Context, name: str, by_digest: bool, as_json: bool) -> None:
    """Show one genome: digests, aliases, source, FHR and its sequences.

    \b
    Example:
        rgstore genome show hg38
        rgstore genome show --digest XZlrcEGi6mlopZ2uD8ObHkQB1d0oDwKk --json
    """
    with ctx.open(readonly=True) as store:
        g = store.genomes.show(name, by_digest=by_digest)
    if as_json:
        emit_json(g)
        return
    click.echo(f"digest       {g.digest}")
    click.echo(f"names        {', '.join(g.aliases) or '-'}")
    click.echo(f"description  {cell(g.description or '-')}")
    click.echo(f"species      {cell(g.species or '-')}")
    click.echo(f"sequences    {g.n_sequences} ({g.total_length:,} bp)")
    if g.source.path:
        click.echo(f"source       {cell(g.source.path)} ({g.source.size:,} bytes, md5 {g.source.md5})")
    elif g.source.remote_url:
        click.echo(f"source       {cell(g.source.remote_url)} (remote; sequences fetched when first read)")
    click.echo(f"added        {when(g.added_at)} by {g.added_by} (seq {g.added_seq})")
    click.echo(f"fhr          {'yes' if g.fhr else 'no'}")
    for key, value in g.level1.items():
        click.echo(f"level1 {key:<25} {value}")
    circular = set(g.circular)
    emit_table(
        [[n, f"{length:,}", s, m, "circular" if n in circular else ""]
         for n, length, s, m in zip(g.names, g.lengths, g.sequences, g.md5s or [""] * len(g.names))],
        headers=["NAME", "LENGTH", "SEQUENCE DIGEST", "MD5", ""],
    )


@genome_group.command("remove")
@click.argument("name", shell_complete=genome_names)
@_digest_option
@store_option
@json_option
@pass_ctx
def remove_cmd(ctx: Context, name: str, by_digest: bool, as_json: bool) -> None:
    """Remove a genome and every alias naming it (its sequences stay in the RefgetStore).

    A bare NAME is taken from the refgenie namespace only (a retried removal never reaches the
    genome another namespace gives that name): remove ncbi:hg38 by that name. `rgstore genome
    undo --digest D` brings the genome back with those aliases.

    \b
    Example:
        rgstore genome remove hg38
    """
    with ctx.open() as store:
        removal = store.genomes.remove_genome(name, by_digest=by_digest)
    seqs = removal.seqs
    if as_json:  # "removed" is the name as typed (kept as it always was); "digest" says which genome that was;
        # "aliases" names them (ns:name) as `genome init`'s aliases_added and `genome undo`'s aliases do
        emit_json({"removed": name, "aliases_removed": len(seqs) - 1, "seqs": seqs, "digest": removal.digest,
                   "aliases": removal.aliases})
        return
    click.echo(f"removed genome {name} and {counted(len(seqs) - 1, 'alias', 'aliases')} naming it")


@genome_group.command("undo")
@click.argument("name", shell_complete=genome_names)
@_digest_option
@store_option
@json_option
@pass_ctx
def undo_cmd(ctx: Context, name: str, by_digest: bool, as_json: bool) -> None:
    """Take back the latest change to a genome: an FHR document set, or its removal.

    Undoing a removal brings back the genome and every alias the removal took, in one
    command; it is refused, changing nothing, if one of those aliases changed since, or
    if `rgstore gc` deleted the genome's sequences. A removed genome has no names left:
    give its digest with --digest. Names added by an init are alias changes (`rgstore
    alias undo`); an init itself is taken back with `rgstore genome remove`.

    \b
    Example:
        rgstore genome remove hg38
        rgstore genome undo --digest iJ9EFsXJZZS5sG3ibEtwYhm8KZPp1pqA
        rgstore genome fhr set hg38 new.fhr.json && rgstore genome undo hg38
    """
    with ctx.open() as store:
        move = store.genomes.undo(name, by_digest=by_digest)
    _show_move(move, as_json)


@genome_group.command("redo")
@click.argument("name", shell_complete=genome_names)
@_digest_option
@store_option
@json_option
@pass_ctx
def redo_cmd(ctx: Context, name: str, by_digest: bool, as_json: bool) -> None:
    """Re-apply the change to a genome that `rgstore genome undo` took back last.

    Redoing a removal removes the genome and its aliases again; it is refused, changing
    nothing, if an alias naming the genome changed since the undo. A new change to the
    genome (an FHR document set) discards what could be redone.

    \b
    Example:
        rgstore genome redo hg38
        rgstore genome redo --digest iJ9EFsXJZZS5sG3ibEtwYhm8KZPp1pqA --json
    """
    with ctx.open() as store:
        move = store.genomes.redo(name, by_digest=by_digest)
    _show_move(move, as_json)


def _show_move(move: Any, as_json: bool) -> None:
    note_shadows(move.shadows, move.digest)
    if as_json:
        emit_json(move)
        return
    done = "undid" if move.action == "undo" else "redid"
    what = "the FHR document set" if move.step == "fhr-set" else "the removal" if move.step == "genome-removed" \
        else move.step
    moved = f" ({counted(len(move.aliases), 'alias', 'aliases')} {'back' if move.present else 'removed'})" \
        if move.aliases else ""
    click.echo(f"{done} {what} of genome {move.digest} (seq {move.step_seq}){moved}")


@genome_group.command("compare")
@click.argument("a", shell_complete=genome_names)
@click.argument("b", shell_complete=genome_names)
@click.option("--digest", "by_digest", is_flag=True, help="A and B are genome digests rather than aliases.")
@store_option
@json_option
@pass_ctx
def compare_cmd(ctx: Context, a: str, b: str, by_digest: bool, as_json: bool) -> None:
    """Compare two genomes with the GA4GH seqcol comparison function.

    \b
    Example:
        rgstore genome compare hg38 hg38-ucsc --json
    """
    with ctx.open(readonly=True) as store:
        result = store.genomes.compare(a, b, by_digest=by_digest)
    if as_json:
        emit_json(result)
        return
    elements = result["array_elements"]
    click.echo(f"a {result['digests']['a']}  b {result['digests']['b']}")
    emit_table(
        [[k, elements["a_count"][k], elements["b_count"][k], elements["a_and_b_count"][k],
          _order(elements["a_and_b_same_order"][k])] for k in result["attributes"]["a_and_b"]],
        headers=["ATTRIBUTE", "A", "B", "SHARED", "SAME ORDER"],
    )


@genome_group.command("export")
@click.argument("name", shell_complete=genome_names)
@click.argument("out", type=GivenPath(path_type=Path, dir_okay=False, readable=False, allow_dash=True))
@click.option("--width", type=click.IntRange(min=1), default=80, show_default=True, help="Residues per line.")
@_digest_option
@store_option
@pass_ctx
def export_cmd(ctx: Context, name: str, out: Path, width: int, by_digest: bool) -> None:
    """Write a genome as FASTA (upper case) to OUT ('-' for stdout).

    Sequences of a remote genome that were never read are fetched and verified first. An OUT
    ending in .gz (or .bgz) is BGZF-compressed: zcat reads it and `samtools faidx` indexes it.

    \b
    Example:
        rgstore genome export hg38 hg38.fa --width 60
        rgstore genome export hg38 hg38.fa.gz && samtools faidx hg38.fa.gz
    """
    from rgstore.progress import ProgressFactory, null_progress, terminal_progress

    target: Any = sys.stdout.buffer if str(out) == "-" else out
    # FASTA streaming to the terminal that shows the bar: the bar's redraws would land amid the residues.
    progress: ProgressFactory = null_progress if str(out) == "-" and sys.stdout.isatty() else terminal_progress
    # A bare errno from a write to OUT is stdout's only for '-': a path's own error names it already.
    with signals_unwind(), quiet_broken_pipe(to_stdout=str(out) == "-"), ctx.open(readonly=True) as store:
        store.genomes.export(name, target, width=width, by_digest=by_digest, progress=progress)


@genome_group.group("fhr", cls=RgstoreGroup)
def fhr_group() -> None:
    """FHR 1.0 provenance metadata of a genome (unknown keys are kept as given).

    \b
    Example:
        rgstore genome fhr set hg38 hg38.fhr.json
        rgstore genome fhr get hg38
    """


@fhr_group.command("set")
@click.argument("name", shell_complete=genome_names)
@click.argument("file", type=GivenPath(path_type=Path, dir_okay=False, allow_dash=True))
@_digest_option
@store_option
@json_option
@pass_ctx
def fhr_set_cmd(ctx: Context, name: str, file: Path, by_digest: bool, as_json: bool) -> None:
    """Replace the genome's FHR document with FILE (JSON; - reads standard input).

    \b
    Example:
        rgstore genome fhr set hg38 hg38.fhr.json
        curl -s https://example.org/hg38.json | rgstore genome fhr set hg38 -
    """
    if str(file) == "-" and sys.stdin.isatty():  # else it waits, silent, for a document typed at the terminal
        raise click.BadParameter("- reads the FHR document from standard input: pipe one in, e.g. "
                                 "`... | rgstore genome fhr set NAME -`", param_hint="FILE")
    with ctx.open() as store:
        seqs = store.genomes.fhr_set(name, file, by_digest=by_digest)
    if as_json:
        emit_json({"name": name, "changed": bool(seqs), "seqs": seqs})
        return
    click.echo(f"fhr of {name} {'set' if seqs else 'unchanged'}")


@fhr_group.command("get")
@click.argument("name", shell_complete=genome_names)
@_digest_option
@store_option
@json_option
@pass_ctx
def fhr_get_cmd(ctx: Context, name: str, by_digest: bool, as_json: bool) -> None:
    """Print the genome's FHR document as JSON (--json is accepted for symmetry: the output is always JSON).

    \b
    Example:
        rgstore genome fhr get hg38 > hg38.fhr.json
    """
    with ctx.open(readonly=True) as store:
        emit_json(store.genomes.fhr_get(name, by_digest=by_digest))


def _brief(g: Any) -> dict[str, Any]:
    return {"digest": g.digest, "aliases": g.aliases, "n_sequences": g.n_sequences,
            "total_length": g.total_length, "description": g.description, "species": g.species,
            "added_at": g.added_at}  # as `genome show --json` and /v4/genomes items give it


def _order(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "no")

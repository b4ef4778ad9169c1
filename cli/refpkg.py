"""``rgstore refpkg``: taxtastic reference packages with undo/redo on the log (names follow ``taxit``)."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Any

import click
import msgspec

from .complete import refpkg_names
from .getseq import quiet_broken_pipe, signals_unwind
from .main import Context, GivenPath, RgstoreGroup, store_option
from .output import counted, emit_json, emit_table, json_option, when

__all__ = ["refpkg_group"]

pass_ctx = click.make_pass_decorator(Context)

_FILE_OPTIONS = (
    # (key, flags, help) in the order taxtastic adds files
    ("phylo_model", ("--phylo-model",), "JSON phylogenetic model (pplacer's phylo_model)."),
    ("aln_fasta", ("-f", "--aln-fasta"), "Multiple alignment in FASTA format."),
    ("aln_sto", ("-S", "--aln-sto"), "Multiple alignment in Stockholm format."),
    ("mask", ("-m", "--mask"), "Text file containing a mask."),
    ("profile", ("-p", "--profile"), "Alignment profile."),
    ("seq_info", ("-i", "--seq-info"), "CSV describing the sequences (at least seqname, tax_id)."),
    ("taxonomy", ("-T", "--taxonomy"), "CSV taxonomy (taxit taxtable)."),
    ("tree", ("-t", "--tree"), "Phylogenetic tree in Newick format."),
    ("tree_stats", ("-s", "--tree-stats"),
     "Tree inference log (RAxML_info.*, FastTree -log, PhyML *_stats.txt); phylo_model is derived from it."),
    ("readme", ("-R", "--readme"), "README describing the package."),
    ("model", ("-M", "--model-file"), "Model information (e.g. a .bestModel file)."),
)


# Commands that copy files (create, update, import, export) run under ``signals_unwind``: SIGTERM
# then unwinds like Ctrl-C, so blob temp files, staged blobs and export temp siblings are removed.


def _progress(as_json: bool) -> Any:
    from rgstore.progress import null_progress, terminal_progress

    return null_progress if as_json else terminal_progress


def _show(info: Any, as_json: bool) -> None:
    if as_json:
        emit_json(info)
        return
    click.echo(f"{info.name}: seq {info.seq}, {counted(len(info.files), 'file')}, "
               f"{counted(len(info.metadata), 'metadata key')}; "
               f"can roll back {info.rollbacks}, forward {info.rollforwards}")


@click.group("refpkg", cls=RgstoreGroup)
def refpkg_group() -> None:
    """Reference packages for pplacer (taxtastic refpkgs), with taxit's undo/redo and safe interchange.

    \b
    Example:
        rgstore refpkg create mypkg -l 16S -f seqs.fasta -t tree.nwk
        rgstore refpkg update mypkg seq_info=seq_info.csv
        rgstore refpkg export mypkg ./mypkg.refpkg
    """


def _file_options(fn: Any) -> Any:
    for key, flags, text in reversed(_FILE_OPTIONS):
        fn = click.option(*flags, key, type=GivenPath(dir_okay=False), help=text)(fn)
    return fn


@refpkg_group.command("create")
@click.argument("name")
@click.option("-l", "--locus", required=True, help="The locus the package describes.")
@_file_options
@click.option("-d", "--description", help="Free-text description.")
@click.option("-a", "--author", help="Who created the package.")
@click.option("-r", "--package-version", help="Release version of the package.")
@store_option
@json_option
@pass_ctx
def create_cmd(ctx: Context, /, name: str, locus: str, description: str | None, author: str | None,
               package_version: str | None, as_json: bool, **paths: str | None) -> None:
    """Create package NAME (like `taxit create`); an existing NAME is refused.

    \b
    Example:
        rgstore refpkg create mypkg -l "16S rRNA" -f seqs.fasta -S seqs.sto \\
            -i seq_info.csv -T taxonomy.csv -t tree.nwk --phylo-model model.json
    """
    files = [(key, paths[key]) for key, _flags, _help in _FILE_OPTIONS if paths.get(key)]
    with signals_unwind(), ctx.open(create=True) as store:
        info = store.refpkgs.create(name, locus=locus, files=files, description=description, author=author,
                                    package_version=package_version, progress=_progress(as_json))
    _show(info, as_json)


@refpkg_group.command("update")
@click.argument("name", shell_complete=refpkg_names)
@click.argument("changes", nargs=-1, required=True)
@click.option("--metadata", is_flag=True, help="CHANGES are key=value metadata, not key=path files.")
@store_option
@json_option
@pass_ctx
def update_cmd(ctx: Context, name: str, changes: tuple[str, ...], metadata: bool, as_json: bool) -> None:
    """Set files (key=PATH) or, with --metadata, metadata (key=value) of NAME in one undo step.

    Every path is checked before anything is stored; a later duplicate key wins.

    \b
    Example:
        rgstore refpkg update mypkg tree=tree_v2.nwk seq_info=seq_info.csv
        rgstore refpkg update mypkg --metadata "author=Jane Doe" \\
            package_version=0.2
    """
    with signals_unwind(), ctx.open() as store:
        if metadata:
            info = store.refpkgs.update_metadata(name, list(changes))
        else:
            info = store.refpkgs.update_files(name, list(changes), progress=_progress(as_json))
    _show(info, as_json)


@refpkg_group.command("rollback")
@click.argument("name", shell_complete=refpkg_names)
@click.option("-n", "count", type=click.IntRange(min=1), default=1, show_default=True, help="Number of steps to undo.")
@store_option
@json_option
@pass_ctx
def rollback_cmd(ctx: Context, name: str, count: int, as_json: bool) -> None:
    """Undo the last N steps of NAME in one command (all or nothing, like `taxit rollback`).

    \b
    Example:
        rgstore refpkg rollback mypkg -n 2
    """
    with ctx.open() as store:
        info = store.refpkgs.rollback(name, count)
    _show(info, as_json)


@refpkg_group.command("rollforward")
@click.argument("name", shell_complete=refpkg_names)
@click.option("-n", "count", type=click.IntRange(min=1), default=1, show_default=True, help="Number of steps to redo.")
@store_option
@json_option
@pass_ctx
def rollforward_cmd(ctx: Context, name: str, count: int, as_json: bool) -> None:
    """Redo the last N rolled-back steps of NAME (a new update discards them).

    \b
    Example:
        rgstore refpkg rollforward mypkg
    """
    with ctx.open() as store:
        info = store.refpkgs.rollforward(name, count)
    _show(info, as_json)


@refpkg_group.command("strip")
@click.argument("name", shell_complete=refpkg_names)
@store_option
@json_option
@pass_ctx
def strip_cmd(ctx: Context, name: str, as_json: bool) -> None:
    """Drop NAME's undo/redo history; `rgstore gc` then frees files only that history held.

    gc keeps files younger than its --grace (10 minutes by default) for a later run.

    \b
    Example:
        rgstore refpkg strip mypkg && rgstore gc
    """
    with ctx.open() as store:
        info = store.refpkgs.strip(name)
    _show(info, as_json)


@refpkg_group.command("remove")
@click.argument("name", shell_complete=refpkg_names)
@store_option
@json_option
@pass_ctx
def remove_cmd(ctx: Context, name: str, as_json: bool) -> None:
    """Remove NAME with its whole history (no rollback); the name is free for create or import again.

    `rgstore gc` then frees files no other package holds, but keeps files younger than its
    --grace (10 minutes by default) for a later run.

    \b
    Example:
        rgstore refpkg remove mypkg && rgstore gc
    """
    with ctx.open() as store:
        removed = store.refpkgs.remove(name)
    if as_json:
        emit_json(removed)
        return
    click.echo(f"removed refpkg {name} ({counted(removed.files, 'file')}, "
               f"{counted(removed.steps, 'retained step')}); "
               "`rgstore gc` frees files no other package holds")


@refpkg_group.command("check")
@click.argument("name", shell_complete=refpkg_names)
@store_option
@json_option
@pass_ctx
def check_cmd(ctx: Context, name: str, as_json: bool) -> None:
    """Print every reason NAME is not a usable pplacer input (taxit check's rules); exit 1 if any.

    \b
    Example:
        rgstore refpkg check mypkg
    """
    with ctx.open(readonly=True) as store:
        problems = store.refpkgs.check(name, progress=_progress(as_json))
    if as_json:
        emit_json({"name": name, "ok": not problems, "problems": problems})
    else:
        for problem in problems:
            click.echo(problem)
    if problems:
        raise SystemExit(1)


@refpkg_group.command("info")
@click.argument("name", shell_complete=refpkg_names)
@store_option
@json_option
@pass_ctx
def info_cmd(ctx: Context, name: str, as_json: bool) -> None:
    """Show NAME's metadata, files (with MD5 and size) and how far it can roll back or forward.

    \b
    Example:
        rgstore refpkg info mypkg
    """
    with ctx.open(readonly=True) as store:
        info = store.refpkgs.info(name)
    if as_json:
        emit_json(info)
        return
    click.echo(f"{info.name}  seq {info.seq}  {when(info.time)}  "
               f"rollbacks {info.rollbacks}  rollforwards {info.rollforwards}")
    if "format_version" not in info.metadata:
        # pplacer reads only a recorded format_version; say what the export will carry.
        wrote = info.export_format_version or "none (pre-1.1 file keys)"
        click.echo(f"format_version: none recorded; refpkg export writes {wrote}")
    emit_table([(k, v) for k, v in info.metadata.items()], ["METADATA", "VALUE"])
    emit_table([(k, r.name, r.md5, f"{r.size:,}") for k, r in info.files.items()],
               ["FILE KEY", "NAME", "MD5", "BYTES"])


@refpkg_group.command("list")
@store_option
@json_option
@pass_ctx
def list_cmd(ctx: Context, as_json: bool) -> None:
    """List every reference package.

    \b
    Example:
        rgstore refpkg list --json
    """
    with ctx.open(readonly=True) as store:
        rows = store.refpkgs.list_all()
    if as_json:
        emit_json(rows)
        return
    emit_table([(r.name, r.locus, r.files, r.seq, r.rollbacks, r.rollforwards) for r in rows],
               ["NAME", "LOCUS", "FILES", "SEQ", "ROLLBACKS", "ROLLFORWARDS"])


@refpkg_group.command("log")
@click.argument("name", shell_complete=refpkg_names)
@store_option
@json_option
@pass_ctx
def log_cmd(ctx: Context, name: str, as_json: bool) -> None:
    """Show NAME's log, newest first, with the step (seq, time, actor) behind each entry.

    \b
    Example:
        rgstore refpkg log mypkg
    """
    with ctx.open(readonly=True) as store:
        entries = store.refpkgs.log(name)
    if as_json:
        emit_json(entries)
        return
    emit_table([(e.seq, when(e.time), e.actor, e.message) for e in entries],
               ["SEQ", "TIME", "ACTOR", "ENTRY"])


@refpkg_group.command("rp")
@click.argument("name", shell_complete=refpkg_names)
@click.argument("key")
@store_option
@pass_ctx
def rp_cmd(ctx: Context, name: str, key: str) -> None:
    """Print the path of NAME's file KEY under its own name, after verifying its checksum (like `taxit rp`).

    The path is STORE/names/<sha256>/<file name>, a link to the stored bytes (never edit them), so tools
    that go by the extension work; on a store you cannot write it is the blob itself (no extension).

    \b
    Example:
        pplacer -t "$(rgstore refpkg rp mypkg tree)" ...
        seqmagick convert "$(rgstore refpkg rp mypkg aln_fasta)" out.sto
    """
    with ctx.open(readonly=True) as store:
        click.echo(store.refpkgs.resource_path(name, key))


@refpkg_group.command("import")
@click.argument("path", type=GivenPath(exists=True, path_type=Path, allow_dash=True))
@click.option("--name", help="Package name [default: PATH's basename without .refpkg/.tar.gz/.zip].")
@click.option("--no-history", is_flag=True, help="Import only the current state, not rollback/rollforward.")
@store_option
@json_option
@pass_ctx
def import_cmd(ctx: Context, path: Path, name: str | None, no_history: bool, as_json: bool) -> None:
    """Import a taxtastic package (directory, .tar.gz, .tar or .zip), verifying every MD5.

    A tar is read once, front to back, so it may come through a pipe: PATH - reads standard input
    (name the package with --name).

    \b
    Example:
        rgstore refpkg import ./mypkg.refpkg
        rgstore refpkg import downloaded.zip --name other
        curl -sL https://x.org/p.tar.gz | rgstore refpkg import - --name p
    """
    if str(path) == "-":
        mode = os.fstat(sys.stdin.fileno()).st_mode
        if not (stat.S_ISFIFO(mode) or stat.S_ISREG(mode) or stat.S_ISSOCK(mode)):  # a terminal, /dev/null
            raise click.BadParameter("- reads a tar archive from standard input: pipe one in, e.g. "
                                     "`curl -sL URL | rgstore refpkg import - --name pkg`", param_hint="PATH")
    with signals_unwind(), ctx.open(create=True) as store:
        info = store.refpkgs.import_package(path, name=name, history=not no_history,
                                            progress=_progress(as_json))
    _note_dropped(info.dropped_keys)
    _note_unnamed(info.unnamed_files)
    _show(info, as_json)


def _note_dropped(keys: Any) -> None:
    """One stderr line naming the CONTENTS.json keys the import did not keep (``keys``: a list, or
    msgspec's UNSET when there were none), JSON output or not (as ``note_shadows``)."""
    if not isinstance(keys, list) or not keys:
        return
    names = ", ".join(repr(key) for key in keys)
    noun, verb, kept = ("keys", "are", "were") if len(keys) > 1 else ("key", "is", "was")
    click.echo(f"note: CONTENTS.json {noun} {names} {verb} not part of the refpkg format and {kept} not kept",
               err=True)


def _note_unnamed(names: Any) -> None:
    """One stderr line naming the package folder's entries that CONTENTS.json does not name (``names``: a list,
    or UNSET when there were none): they were not imported, so a later strip does not count them."""
    if not isinstance(names, list) or not names:
        return
    shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    noun, verb = ("entries", "are") if len(names) > 1 else ("entry", "is")
    click.echo(f"note: {len(names)} {noun} of the package {verb} named by no state of CONTENTS.json "
               f"and not imported (taxit strip would delete them): {shown}", err=True)


@refpkg_group.command("export")
@click.argument("name", shell_complete=refpkg_names)
@click.argument("directory", required=False, type=GivenPath(path_type=Path))
@click.option("--tar", "tar_path", type=GivenPath(path_type=Path, allow_dash=True),
              help="Write one .tar.gz instead (- for standard output).")
@click.option("--zip", "zip_path", type=GivenPath(path_type=Path, allow_dash=True),
              help="Write one .zip instead (- for standard output).")
@click.option("--no-history", is_flag=True, help="Leave out rollback/rollforward states and their files.")
@store_option
@json_option
@pass_ctx
def export_cmd(ctx: Context, name: str, directory: Path | None, tar_path: Path | None, zip_path: Path | None,
               no_history: bool, as_json: bool) -> None:
    """Write NAME as a taxtastic package: a new DIRECTORY, or --tar FILE.tar.gz / --zip FILE.zip.

    A DIRECTORY named *.tar.gz, *.tgz, *.tar or *.zip means that archive, as in the Python API.
    --tar - and --zip - write the archive (its folder named NAME) to standard output; the
    summary then goes to standard error.

    \b
    Example:
        rgstore refpkg export mypkg ./mypkg.refpkg
        rgstore refpkg export mypkg mypkg.tar.gz
        rgstore refpkg export mypkg --zip mypkg.refpkg.zip --no-history
        rgstore refpkg export mypkg --tar - | tar -tz
    """
    # fmt None: the engine goes by the name ("pkg.tar.gz" made a directory of that name, unlike export() in Python).
    targets = [(p, f) for p, f in ((directory, None), (tar_path, "tar"), (zip_path, "zip")) if p is not None]
    if len(targets) != 1:
        raise click.UsageError("give exactly one of DIRECTORY, --tar FILE or --zip FILE")
    dest, fmt = targets[0]
    to_stdout = str(dest) == "-"
    if to_stdout and fmt is None:
        raise click.UsageError("a DIRECTORY cannot go to standard output: use --tar - (or --zip -) to stream "
                               "an archive")
    if to_stdout and sys.stdout.isatty():  # as gzip does: binary bytes would garble the terminal
        raise click.UsageError(f"--{fmt} - writes a binary archive: pipe or redirect standard output")
    target: Any = sys.stdout.buffer if to_stdout else dest
    with signals_unwind(), quiet_broken_pipe(to_stdout=to_stdout), ctx.open(readonly=True) as store:
        report = store.refpkgs.export(name, target, fmt=fmt, history=not no_history,
                                      progress=_progress(as_json))
    if as_json and to_stdout:  # standard output carries the archive: the report goes to stderr, as `log export -`'s
        click.echo(msgspec.json.encode(report).decode(), err=True)
    elif as_json:
        emit_json(report)
    else:
        where = "standard output" if to_stdout else report.path
        click.echo(f"wrote {where} ({counted(report.files, 'file')} holding {counted(report.bytes, 'byte')})",
                   err=to_stdout)

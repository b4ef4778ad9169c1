"""The ``rgstore`` root command: global options, lazy sub-command loading, error mapping.

Sub-commands load on first use (``LAZY_COMMANDS``), so ``rgstore --help`` and
``rgstore getseq`` never import fastapi, uvicorn or unrelated command modules.
"""

from __future__ import annotations

import errno
import importlib
import io
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click
import lmdb

from rgstore.errors import OUT_OF_MEMORY, RgstoreError, clip

__all__ = ["cli", "main", "LAZY_COMMANDS", "SHORT_HELP", "STORE_META", "Context", "GivenPath", "given_namespace"]

STORE_META = "rgstore.store"  # where a per-command --store leaves its path while click completes (no root Context)

LAZY_COMMANDS: dict[str, str] = {
    # name: "module:attribute" -- one line per command or group
    "init": "rgstore_cli.admin:init_cmd",
    "log": "rgstore_cli.log:log_group",
    "replay": "rgstore_cli.log:replay_cmd",
    "rebuild": "rgstore_cli.admin:rebuild_cmd",
    "verify": "rgstore_cli.admin:verify_cmd",
    "gc": "rgstore_cli.admin:gc_cmd",
    "mirror": "rgstore_cli.mirror:mirror_group",
    "demo": "rgstore_cli.demo:demo_cmd",
    "genome": "rgstore_cli.genome:genome_group",
    "getseq": "rgstore_cli.getseq:getseq_cmd",
    "alias": "rgstore_cli.alias:alias_group",
    "refpkg": "rgstore_cli.refpkg:refpkg_group",
    "serve": "rgstore_cli.serve:serve_cmd",
    "cache": "rgstore_cli.cache:cache_group",
    "status": "rgstore_cli.status:status_cmd",
    "backup": "rgstore_cli.backup:backup_cmd",
}

SHORT_HELP: dict[str, str] = {
    # name: the command's one-line help, so `rgstore --help` lists commands without importing them
    # (~50 ms of ~100); a test holds each line equal to the command's own.
    "init": "Create the store directory (log, refget, blobs, cache) if it does not exist.",
    "log": "List events: seq, time, actor, type, stream and a one-line summary.",
    "replay": "Rebuild a store from an exported log (- for standard input), verifying the hash chain; "
              "appends only what is missing.",
    "rebuild": "Drop every view and fold the whole log into them again.",
    "verify": "Check the hash chain, views against a replay, every blob, cache file and sequence; "
              "exit 1 on a problem.",
    "gc": "Delete blobs and RefgetStore collections nothing references any more (and stale temp files).",
    "mirror": "Keep a read-only replica of a primary by replaying its log.",
    "demo": "Add the bundled tiny genome as 'tiny' (idempotent), then read regions of it back.",
    "genome": "Genomes: sequence collections stored by content digest and named by aliases.",
    "getseq": "Print regions of genome NAME (an alias: hg38 or ns:name); LOCUS is seq, seq:start or seq:start-end.",
    "alias": "Human names for genome digests (and sequence digests), with history and undo.",
    "refpkg": "Reference packages for pplacer (taxtastic refpkgs), with taxit's undo/redo and safe interchange.",
    "serve": "Serve the store read-only: refget sequences v2, seqcol, refgenie /v4, refpkgs, caches, /events.",
    "cache": "The two-level FASTA cache: verified raw downloads (level 2) and region FASTAs (level 1).",
    "status": "Summarise the store: log position, counts, disk use, replication and view health.",
    "backup": "Copy the store to the new directory DEST as one consistent state, safe while others write; "
              "then verify it.",
}


class Context:
    """What every command gets: where the store is and who is acting."""

    def __init__(self, store: Path | None, actor: str | None) -> None:
        self.store_path = store
        self.actor = actor

    def exists(self) -> bool:
        """Whether the store this invocation names exists (True behind a directory this user may not enter)."""
        from rgstore.store import default_store_path

        path = self.store_path if self.store_path is not None else default_store_path()
        try:
            return (path / "log" / "data.mdb").exists()
        except PermissionError:
            return True  # Store.open names the directory, its mode and owner

    def open(self, *, readonly: bool = False, create: bool = False, reads_if_unwritable: bool = False,
             allow_stale_views: bool = False, create_beside_files: bool = False) -> Any:
        """Open the store this invocation names (see ``rgstore.Store.open``).

        Only commands that add content pass ``create``: a command that changes or reads existing
        content on a store that does not exist (a mistyped --store) fails instead of creating one.
        Nor does one create a store in a directory that already holds other files (``--store ~`` or
        ``--store .`` in a project): its log, blobs, cache and refget would land among them. Only
        ``rgstore init`` (``create_beside_files``) does that, on purpose.
        ``reads_if_unwritable`` opens an existing store this process may not write (a read-only
        mount, another user's store) read-only, for commands that can answer from what is there.
        """
        from rgstore.errors import NotFoundError
        from rgstore.pathtext import init_command
        from rgstore.progress import null_progress, terminal_progress
        from rgstore.store import Store, check_store_path, default_store_path

        path = self.store_path if self.store_path is not None else default_store_path()
        check_store_path(path.absolute())  # before "no rgstore store ... create one with" a path init cannot use
        present = self.exists()
        if not create and not present:
            raise NotFoundError(f"no rgstore store at {path}; create one with `{init_command(path)}`")
        if create and not present and not create_beside_files:
            refuse_beside_files(path)
        if reads_if_unwritable and present:
            readonly = readonly or not os.access(path / "log" / "data.mdb", os.W_OK)
        # A view rebuild at open is long work too, but --json asks for silence on the terminal as well.
        invocation = click.get_current_context(silent=True)
        as_json = invocation is not None and bool(invocation.params.get("as_json"))
        store = Store.open(path, readonly=readonly, actor=self.actor, allow_stale_views=allow_stale_views,
                           progress=null_progress if as_json else terminal_progress)
        for repair in store.repaired:  # damage the open found and mended: say so once (verify also reports it)
            click.echo(f"note: {repair}", err=True)
        for warning in store.warnings:  # left undone, but this command can go ahead without it
            click.echo(f"warning: {warning}", err=True)
        return store


def refuse_beside_files(path: Path) -> None:
    """StoreOpenError if directory ``path`` holds files a new store there would be mixed with (see ``Context.open``)."""
    if others := _other_files(path):
        from rgstore.errors import StoreOpenError
        from rgstore.pathtext import init_command

        shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        raise StoreOpenError(f"{path} is not an rgstore store and already holds other files ({shown}); name a new "
                             f"or empty directory, or create the store there on purpose with "
                             f"`{init_command(path)}`")


def _other_files(path: Path) -> list[str]:
    """The visible names in directory ``path`` that are not part of a store's layout (none if it is not a directory)."""
    try:
        names = os.listdir(path)
    except OSError:  # missing, a file, or not listable: Store.open says what is wrong with it
        return []
    return sorted(name for name in names if not name.startswith(".") and name not in _STORE_LAYOUT)


# Every top-level name a store makes, ``names/`` too (``refpkg rp``'s links, ``rgstore.blobnames``): a store whose
# log was removed, to replay an export into it, is no directory of other files.
# lost+found: a store on a file system of its own (a fresh mount) shares its root with nothing else.
_STORE_LAYOUT = frozenset({"log", "blobs", "cache", "refget", "names", "lost+found"})


class RgstoreGroup(click.Group):
    """A click group that loads sub-commands lazily and turns RgstoreError into one line."""

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List sub-commands with their one-line help, importing only those without a ``SHORT_HELP`` line."""
        if self.lazy is not LAZY_COMMANDS:
            return super().format_commands(ctx, formatter)
        names = self.list_commands(ctx)
        if not names:
            return None
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            line = SHORT_HELP.get(name)
            if line is None:
                cmd = self.get_command(ctx, name)
                if cmd is None or cmd.hidden:
                    continue
                rows.append((name, cmd.get_short_help_str(limit)))
            else:
                rows.append((name, click.Command(name, help=line).get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)
        return None

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            module, attr = self.lazy[name].split(":")
            cmd: click.Command = getattr(importlib.import_module(module), attr)
            return cmd
        return super().get_command(ctx, name)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        """click's lookup, with "did you mean" drawn from the lazy commands too (click only knows the loaded ones)."""
        name = click.utils.make_str(args[0]) if args else ""
        # Not while completing (resilient parsing): a TAB after a mistyped word must not print a traceback.
        if (self.lazy and args and not name.startswith("-") and not ctx.resilient_parsing
                and self.get_command(ctx, name) is None):
            from rgstore.suggest import close_names

            found = close_names(name, self.list_commands(ctx), limit=2)
            hint = f" Did you mean {' or '.join(repr(f) for f in found)}?" if found else ""
            ctx.fail(f"No such command {name!r}.{hint}")
        cmd_name, cmd, rest = super().resolve_command(ctx, args)
        if cmd is not None and not ctx.resilient_parsing:
            from .dashargs import protect_digests  # a digest starting with "-" is an argument, not an option

            rest = protect_digests(cmd, ctx, rest)
        return cmd_name, cmd, rest

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            _usage_error(exc, " ".join(filter(None, (parent.command_path if parent else None, info_name))))
        except KeyboardInterrupt:
            # While parsing (--version, --help, a slow completion): click's own handler would say "Aborted!"
            # and exit 1. SystemExit passes through click's handlers, so the line is the one a command gives.
            click.echo(f"{chr(10) if sys.stderr.isatty() else ''}error: interrupted", err=True)
            sys.exit(130)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            try:
                return super().invoke(ctx)
            except BaseException:
                # A bar the error unwound past (no close on that path) would have the error line glued to it.
                from rgstore.progress import clear_bars

                clear_bars()
                raise
        except click.UsageError as exc:
            # click's parser raises some mistakes (`--force=1`, `--width` without its value) without a context:
            # they come from the sub-command being parsed, whose help is the one to read.
            sub = ctx.invoked_subcommand
            _usage_error(exc, f"{ctx.command_path} {sub}" if exc.ctx is None and sub else None)
        except RgstoreError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            # Ctrl-C: one line and the shell's 128 + SIGINT (click's own handler says "Aborted!" and exits 1).
            # Every command commits whole or not at all, so the line need not say more.
            click.echo(f"{chr(10) if sys.stderr.isatty() else ''}error: interrupted", err=True)  # after a ^C or bar
            ctx.exit(130)
        except UnicodeEncodeError as exc:
            # An ASCII locale without Python's UTF-8 mode (PYTHONUTF8=0 LC_ALL=C) hands non-ASCII arguments
            # over as lone surrogates, which no lookup can match: say so in one line, not a traceback.
            bad = exc.object[exc.start:exc.end] if isinstance(exc.object, str) else ""
            # Under a UTF-8 locale the argument itself holds bytes that are not UTF-8: no locale would help.
            fix = ("use text that is valid UTF-8" if sys.getfilesystemencoding().lower().replace("-", "") == "utf8"
                   else "run with a UTF-8 locale, e.g. LC_ALL=C.UTF-8")
            try:  # lone surrogates stand for the bytes the argument held: show those bytes
                shown = "bytes " + "".join(f"\\x{b:02x}" for b in bad.encode("utf-8", "surrogateescape"))
            except UnicodeEncodeError:
                shown = ascii(bad)
            click.echo(f"error: an argument holds {shown}, which cannot be encoded as {exc.encoding}; {fix}", err=True)
            ctx.exit(1)
        except (MemoryError, lmdb.MemoryError):
            # A memory limit (`ulimit -v`, a batch job's) reached: one line, not a traceback. Every command
            # commits whole or not at all, so the line need not say what was kept. LMDB's ENOMEM (a put's
            # dirty pages are malloc'd) is the same limit, not a broken store: never the lmdb.Error line below.
            click.echo(_OUT_OF_MEMORY, err=True)
            ctx.exit(1)
        except RuntimeError as exc:
            # A thread's stack cannot be mapped under the same limit (ours, or one a library starts): the same
            # line. Any other RuntimeError is a bug, and its traceback is what a report needs.
            if str(exc) != "can't start new thread":
                raise
            click.echo(_OUT_OF_MEMORY, err=True)
            ctx.exit(1)
        except BrokenPipeError:
            # `rgstore getseq ... | head` closes the pipe early; that is not an error.
            sys.stderr.close()
            ctx.exit(0)
        except OSError as exc:
            # A path the user gave is missing, unreadable or not a directory (or a copy's target disk is full,
            # which names both ends): one line, not a traceback.
            from rgstore.diskspace import os_error_text
            from rgstore.errors import too_many_open_files

            # Out of file descriptors (`ulimit -n`), whatever file was being opened (gtars' OSErrors carry the
            # errno only in their text): the limit is the cause, not the file the message would name.
            emfile = exc.errno == errno.EMFILE or f"(os error {errno.EMFILE})" in str(exc)
            click.echo(f"error: {too_many_open_files() if emfile else clip(os_error_text(exc))}", err=True)
            ctx.exit(1)
        except lmdb.Error as exc:
            click.echo(f"error: the store's LMDB files cannot be used ({clip(str(exc))}); is --store an rgstore store?",
                       err=True)
            ctx.exit(1)
        except BaseException as exc:
            # gtars (Rust, through pyo3) panics when it cannot start a worker thread or allocate: a PanicException,
            # a BaseException. Any other panic is a bug: its traceback stays.
            line = _resource_panic(exc)
            if line is None:
                raise
            click.echo(line, err=True)
            ctx.exit(1)


_OUT_OF_MEMORY = f"error: {OUT_OF_MEMORY}"

_NO_THREAD = ("error: could not start a thread: this process reached its memory limit (ulimit -v) or its limit "
              "of processes and threads (ulimit -u); raise the limit and run the command again")


def _resource_panic(exc: BaseException) -> str | None:
    """The one line for a Rust library's panic (pyo3's PanicException) for want of a thread or memory; None if not one.

    Rust aborts the process on a failed allocation (no panic to catch); "Cannot allocate memory" is an
    OS error a panic carries, and a thread may be refused for memory or for RLIMIT_NPROC.
    """
    if type(exc).__name__ != "PanicException":
        return None
    text = str(exc)
    if "failed to spawn thread" in text:
        return _NO_THREAD
    return _OUT_OF_MEMORY if "Cannot allocate memory" in text else None


def _usage_error(exc: click.UsageError, where: str | None = None) -> NoReturn:
    """A mistyped option or argument: one line on stderr and exit 2, like every other error (not click's 4 lines).

    ``where`` is the command whose help to point at when ``exc`` carries no context.
    """
    if isinstance(exc, getattr(click.exceptions, "NoArgsIsHelpError", ())) and exc.ctx is not None:
        # A bare `rgstore` or `rgstore genome`: the help itself, readable, not squeezed into one error line.
        click.echo(exc.ctx.get_help(), err=True)
        sys.exit(exc.exit_code)
    where = exc.ctx.command_path if exc.ctx is not None else where or "rgstore"
    message = clip(" ".join(exc.format_message().split()).rstrip("."))
    click.echo(f"error: {message} (see `{where} --help`)", err=True)
    sys.exit(exc.exit_code)


@click.group(cls=RgstoreGroup, lazy=LAZY_COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--store", "store", type=click.Path(file_okay=False), envvar="RGSTORE_HOME",
    help="Store directory [default: $RGSTORE_HOME, else the user data directory].",
)
@click.option("--actor", help="Who is acting, recorded on every event [default: user@host].")
@click.version_option(package_name="rgstore")
@click.pass_context
def cli(ctx: click.Context, store: str | None, actor: str | None) -> None:
    """rgstore: reference genomes, refpkgs and FASTA caches on an append-only event log.

    \b
    Example:
        rgstore --store ./store genome init --fasta tiny.fa --name tiny
        rgstore --store ./store getseq tiny chr1:0-60
    """
    ctx.obj = Context(_store_path(store), actor)


def _store_path(value: str | None) -> Path | None:
    # Path("") is ".": an empty --store (an unset shell variable) must not make the working directory a store.
    if value is not None and not value.strip():
        raise click.BadParameter("is empty; name the store directory", param_hint="'--store'")
    if value is None:
        return None
    from rgstore.pathtext import user_path

    try:
        return user_path(value)  # RGSTORE_HOME="~/store" from a unit file
    except RgstoreError as exc:  # an unknown ~user: a mistyped option value like any other
        raise click.BadParameter(str(exc), param_hint="'--store'") from None


class GivenPath(click.Path):
    """``click.Path`` that refuses an empty value (exit 2) instead of reading it as ".", the working directory.

    ``-f "$ALN"`` or ``publish "$DIR"`` with an unset shell variable must not publish into the working
    directory or create a package without the file.
    """

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, (str, bytes)) and not value:
            self.fail("is empty; name a path" + (" (or leave the option out)" if isinstance(param, click.Option) else ""),
                      param, ctx)
        return super().convert(value, param, ctx)


def given_namespace(_ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """A namespace option's callback: an empty value (``-n "$NS"`` with NS unset) is a usage error, not the default.

    ``value`` is a str or None, or a tuple of them for a repeatable (``multiple``) option.
    """
    for one in value if isinstance(value, tuple) else (value,):
        if one is not None and not one.strip():
            raise click.BadParameter("is empty; name a namespace (or leave the option out)", param=param)
    return value


def store_option(fn: Any) -> Any:
    """Per-command ``--store`` (same meaning as the global option, for `cmd --store X` order)."""

    def set_store(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
        if value is None:
            return
        obj = ctx.find_object(Context)
        if obj is None:  # shell completion parses without running the root command (rgstore_cli.complete)
            ctx.meta[STORE_META] = _store_path(value)
        else:
            obj.store_path = _store_path(value)

    return click.option(
        "--store", type=click.Path(file_okay=False), expose_value=False,
        callback=set_store, help="Store directory (overrides the global --store).",
    )(fn)


def _fill_closed_std_streams() -> None:
    """Put /dev/null behind a closed stdin, stdout or stderr (`rgstore ... >&-`, a daemon's job), as `>/dev/null` would.

    Python leaves ``sys.stdout`` None then (the first print is a traceback), and the descriptor number
    free: the next file opened (the store's data.mdb) would take it, and any write to fd 1 would land there.
    """
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        if getattr(sys, name) is not None:
            continue
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            setattr(sys, name, open(fd, mode, encoding="utf-8", closefd=False))
        else:  # the number went to a file opened since start-up: leave that file alone
            setattr(sys, name, open(os.devnull, mode, encoding="utf-8"))


def main() -> None:
    """Console-script entry point."""
    _fill_closed_std_streams()
    if sys.stdout.errors == "strict" and isinstance(sys.stdout, io.TextIOWrapper):
        # A Latin-1 (or other non-UTF-8) locale cannot print every name a store holds: a table row shows
        # the rest escaped (\\u30b2) rather than the command dying mid-table. JSON is written as UTF-8 anyway.
        sys.stdout.reconfigure(errors="backslashreplace")
    cli(prog_name="rgstore")


if __name__ == "__main__":
    main()

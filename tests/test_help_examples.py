"""Every `rgstore ...` command line a help text shows parses with today's options and arguments.

Users copy the ``Example:`` block of ``rgstore CMD --help``; an example naming a renamed or removed
option, a sub-command that moved, or one argument too many must fail here, not on their terminal.
Each line is split as a shell would (continuations joined, ``$(...)`` taken out and checked on its
own, pipes, ``&&`` and redirections cut off) and handed to click's parser through the same chain of
contexts the real invocation builds -- nothing is invoked, so no store is opened and no network used.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from typing import Any

import click
import pytest
from rgstore_cli.main import LAZY_COMMANDS, cli

_SUBST = re.compile(r"\$\(([^()]*)\)")
_FD_REDIRECT = re.compile(r"(?<=\s)\d+(?=[<>])")  # the 2 of `2>&1`, which shlex would leave as a word
_CONTROL = {"|", "||", "&&", ";", "&"}
_PROSE = re.compile(r"`(rgstore [^`]+)`")


def _commands() -> Iterator[tuple[str, click.Command]]:
    """Every command and group under the root, with its path (`genome fhr set`), the root first."""
    ctx = click.Context(cli)

    def walk(cmd: click.Command, path: str) -> Iterator[tuple[str, click.Command]]:
        yield path, cmd
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                assert sub is not None, f"{path} {name}"
                yield from walk(sub, f"{path} {name}".strip())

    yield "rgstore", cli
    for name in sorted(LAZY_COMMANDS):
        cmd = cli.get_command(ctx, name)
        assert cmd is not None, name
        yield from walk(cmd, f"rgstore {name}")


def _example_lines(help_text: str) -> list[str]:
    """The lines of the ``Example:`` block, continuations (trailing backslash) joined."""
    block = help_text.split("Example:", 1)[1] if "Example:" in help_text else ""
    lines: list[str] = []
    pending = ""
    for raw in block.splitlines():
        line = raw.strip()
        if line.startswith("#"):  # a commented command (a crontab line) is still a command to copy
            line = line.lstrip("#").strip()
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        if pending or line:
            lines.append(pending + line)
        pending = ""
    return lines


def _rgstore_argvs(line: str) -> list[list[str]]:
    """The argument lists (after the word `rgstore`) of every rgstore command in one shell line."""
    found: list[list[str]] = []
    for inner in _SUBST.findall(line):  # `pplacer -t "$(rgstore refpkg rp mypkg tree)"`
        found.extend(_rgstore_argvs(inner))
    lexer = shlex.shlex(_FD_REDIRECT.sub("", _SUBST.sub("SUBST", line)), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    segment: list[str] = []
    redirected = needs_target = False
    for token in [*lexer, ";"]:
        if needs_target and (token in _CONTROL or set(token) <= set("<>&")):
            # `cached_genomic_<key>` is `<key` and a bare `>` to a shell: a syntax error, not a placeholder
            raise ValueError(f"`{line}` is a shell syntax error: a redirection has no target")
        if token in _CONTROL:
            if "rgstore" in segment:  # `ssh host rgstore ...`, `0 3 * * * rgstore ...`: from the word on
                found.append(segment[segment.index("rgstore") + 1:])
            segment, redirected = [], False
        elif set(token) <= set("<>&"):
            redirected = needs_target = True  # `> file`: the rest of this segment is the shell's
        elif not redirected:
            segment.append(token)
        else:
            needs_target = False
    return found


def _parse(argv: list[str]) -> click.Context:
    """Parse ``rgstore ARGV`` as the real invocation would, sub-command by sub-command, invoking nothing.

    ``click.Command.make_context`` is called unbound so a usage error is raised (RgstoreGroup's own
    override prints it and exits, which is the CLI's business, not this test's).
    """
    ctx = click.Command.make_context(cli, "rgstore", list(argv))
    cmd: click.Command = cli
    while isinstance(cmd, click.Group):
        rest = [*ctx._protected_args, *ctx.args]  # what Group.invoke resolves (click >= 8.2 names it so)
        if not rest:
            assert cmd.invoke_without_command, f"`rgstore {shlex.join(argv)}` names no sub-command"
            break
        name, sub, rest = cmd.resolve_command(ctx, rest)
        assert sub is not None and name is not None
        ctx = click.Command.make_context(sub, name, rest, parent=ctx)
        cmd = sub
    return ctx


def _as_written(_self: click.Path, value: Any, _param: Any, _ctx: Any) -> Any:
    return value  # an example's FILE is the user's file: whether it exists here is not the example's syntax


@pytest.fixture
def paths_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(click.Path, "convert", _as_written)


def test_example_extraction_finds_commands_in_pipes_substitutions_and_comments() -> None:
    lines = _example_lines("Run it.\n\n\b\nExample:\n    rgstore a --x 1 \\\n        --y 2\n"
                           "    # 0 3 * * * rgstore b >> log 2>&1\n")
    assert lines == ["rgstore a --x 1 --y 2", "0 3 * * * rgstore b >> log 2>&1"]
    assert _rgstore_argvs(lines[1]) == [["b"]]
    assert _rgstore_argvs('pplacer -t "$(rgstore refpkg rp p tree)" x') == [["refpkg", "rp", "p", "tree"]]
    assert _rgstore_argvs("bedtools merge -i p.bed | rgstore getseq g --bed - && rgstore gc") == [
        ["getseq", "g", "--bed", "-"], ["gc"]]
    assert _rgstore_argvs("rgstore --store /b/refs-$(date +%F) status") == [["--store", "/b/refs-SUBST", "status"]]
    assert _rgstore_argvs("rgstore genome fhr get g > g.json") == [["genome", "fhr", "get", "g"]]
    with pytest.raises(ValueError, match="redirection has no target"):
        _rgstore_argvs("rgstore cache pin cached_genomic_<key>")


def test_every_command_help_shows_at_least_one_rgstore_command_line() -> None:
    bare = [path for path, cmd in _commands()
            if not any(_rgstore_argvs(line) for line in _example_lines(cmd.help or ""))]
    assert bare == []


def test_every_help_example_parses_with_the_current_options(paths_as_written: None) -> None:
    parsed, failures = 0, []
    for path, cmd in _commands():
        for line in _example_lines(cmd.help or ""):
            try:
                for argv in _rgstore_argvs(line):
                    _parse(argv)
                    parsed += 1
            except (ValueError, click.UsageError, AssertionError) as exc:
                failures.append(f"{path}: `{line}`: {exc}")
    assert failures == []
    assert parsed > 80  # the walk reached every group's commands


def test_a_renamed_option_in_an_example_is_caught(paths_as_written: None) -> None:
    with pytest.raises(click.NoSuchOption):
        _parse(["genome", "init", "--fasta", "x.fa", "--name", "x", "--organism", "Homo sapiens"])
    with pytest.raises(click.UsageError, match="unexpected extra argument"):
        _parse(["refpkg", "rollback", "mypkg", "2"])
    with pytest.raises(click.UsageError, match="No such command"):
        _parse(["cache", "list"])


def test_every_rgstore_command_quoted_in_help_prose_names_real_options(paths_as_written: None) -> None:
    # Prose such as "`rgstore mirror pull SOURCE --with-sequences`" may leave out required arguments,
    # but every option and sub-command it names must exist.
    quoted: list[tuple[str, str]] = []
    for path, cmd in _commands():
        texts = [cmd.help or "", *(getattr(p, "help", None) or "" for p in cmd.params)]
        quoted.extend((path, ref) for text in texts for ref in _PROSE.findall(" ".join(text.split())))
    assert quoted
    failures = []
    for path, ref in quoted:
        for argv in _rgstore_argvs(ref):
            try:
                _parse(argv)
            except (click.MissingParameter, click.exceptions.NoArgsIsHelpError):
                pass  # "`rgstore alias undo` brings it back", "see `rgstore cache`"
            except (click.UsageError, AssertionError) as exc:
                failures.append(f"{path}: `{ref}`: {exc}")
    assert failures == []


def _doc_shell_lines(text: str) -> list[str]:
    """Command lines of a Markdown page's non-Python fenced blocks (unindented, continuations joined).

    Indented lines are left out: they are diagrams and config files (nginx), not commands to paste.
    """
    lines: list[str] = []
    fence: str | None = None
    pending = ""
    for raw in text.splitlines():
        if raw.startswith("```"):
            fence = None if fence is not None else raw[3:].strip()
            continue
        if fence is None or fence == "python" or (raw[:1].isspace() and not pending):
            continue
        line = raw.strip()
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        lines.append(pending + line)
        pending = ""
    return lines


def test_every_rgstore_command_in_the_readme_and_docs_parses_with_the_current_options(paths_as_written: None) -> None:
    # README's CLI tour and docs/*.md are what a new user pastes first: a block's line must parse whole,
    # and a command quoted in prose must name only real sub-commands and options.
    from tests.conftest import REPO

    failures, parsed = [], 0
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        quoted = [(ref, True) for ref in _PROSE.findall(" ".join(re.sub(r"```.*?```", "", text, flags=re.S).split()))]
        for line, prose in [*((line, False) for line in _doc_shell_lines(text)), *quoted]:
            if "_RGSTORE_COMPLETE=" in line:
                continue  # the completion hook (`eval "$(_RGSTORE_COMPLETE=bash_source rgstore)"`) runs no command
            try:
                for argv in _rgstore_argvs(line):
                    _parse(argv)
                    parsed += 1
            except click.exceptions.Exit:
                pass  # `rgstore --help`: click prints the help while parsing
            except (click.MissingParameter, click.exceptions.NoArgsIsHelpError, click.BadOptionUsage,
                    click.BadParameter) as exc:
                if not prose:  # prose may say "`rgstore log --stream` takes a glob", "`serve --workers N`"
                    failures.append(f"{page.name}: `{line}`: {exc}")
            except (ValueError, click.UsageError, AssertionError) as exc:
                failures.append(f"{page.name}: `{line}`: {exc}")
    assert failures == []
    assert parsed > 40


def test_doc_command_extraction_joins_continuations_and_skips_python_diagrams_and_configs() -> None:
    page = ("Text `rgstore x`.\n```sh\nrgstore a \\\n    --b 1\nrgstore c | wc\n```\n```\n  rgstore serve (diagram)\n"
            "```\n```python\nstore.getseq('g', 'chr1')\n```\n")
    assert _doc_shell_lines(page) == ["rgstore a --b 1", "rgstore c | wc"]

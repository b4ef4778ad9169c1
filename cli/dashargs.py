"""Digests that start with ``-`` given as arguments: read as arguments, never as unknown options.

GA4GH digests are 32 base64url characters, so about one in 64 starts with ``-``
(``rgstore alias set z11 -vfov...``); click took it for a cluster of short options and
refused it ("No such option: -v") unless ``--`` came first. ``protect_digests`` moves every
argument that is not an option or an option's value after a ``--`` (in their order, so click
assigns them as before), but only when a digest-shaped one would otherwise be read as an
option: every other command line reaches click unchanged, and a real unknown option keeps
click's own error. An option's value (``--digest -abc...``) is click's already: it takes the
word after an option that wants a value whatever it starts with.
"""

from __future__ import annotations

import re
from typing import NoReturn

import click

__all__ = ["looks_like_digest", "protect_digests"]

# A bare digest, or one with a locus range after it (`getseq NAME DIGEST:0-10`).
_DIGEST = re.compile(r"-[A-Za-z0-9_-]{31}(?::.*)?", re.DOTALL)
# A long option as rgstore names them (lower case and dashes): never taken for a digest.
_LONG_OPTION = re.compile(r"--[a-z0-9-]*(?:=.*)?", re.DOTALL)


def looks_like_digest(arg: str) -> bool:
    """Whether ``arg`` is shaped like a GA4GH digest that starts with ``-`` (and not like an rgstore option)."""
    return bool(_DIGEST.fullmatch(arg)) and not _LONG_OPTION.fullmatch(arg)


def protect_digests(cmd: click.Command, ctx: click.Context, args: list[str]) -> list[str]:
    """``args`` for ``cmd`` with its arguments after a ``--`` when one is a digest starting with ``-``; else as given."""
    if isinstance(cmd, click.Group) or "--" in args:
        return args
    values: dict[str, int] = {}  # option word -> how many words of value follow it
    known: set[str] = set()
    for param in cmd.get_params(ctx):
        if isinstance(param, click.Option):
            known.update((*param.opts, *param.secondary_opts))
            if not param.is_flag and not param.count:
                values.update((opt, param.nargs) for opt in param.opts)
    if not any(looks_like_digest(arg) and arg not in known for arg in args):
        return args
    options: list[str] = []
    arguments: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg in values:
            if i + values[arg] > len(args):  # the `--` added would be taken for its missing value
                _missing_value(cmd, ctx, arg, values[arg])
            options += args[i - 1:i + values[arg]]
            i += values[arg]
        elif arg.startswith("-") and arg != "-" and (arg in known or not looks_like_digest(arg)):
            options.append(arg)
            if not arg.startswith("--") and "=" not in arg:
                # A cluster of short options (`-qn5`, `-qn 5`): one that wants a value takes the rest, or the next word.
                for at, char in enumerate(arg[1:], start=2):
                    wants = values.get(f"-{char}")
                    if wants is not None:
                        if at == len(arg):
                            if i + wants > len(args):
                                _missing_value(cmd, ctx, f"-{char}", wants)
                            options += args[i:i + wants]
                            i += wants
                        break
        else:
            arguments.append(arg)
    return [*options, "--", *arguments]


def _missing_value(cmd: click.Command, ctx: click.Context, option: str, nargs: int) -> NoReturn:
    """Refuse an option given last without its value, as click would (the digest before it is no option)."""
    message = (f"Option {option!r} requires an argument." if nargs == 1
               else f"Option {option!r} requires {nargs} arguments.")
    raise click.BadOptionUsage(option, message, ctx=click.Context(cmd, info_name=cmd.name, parent=ctx))

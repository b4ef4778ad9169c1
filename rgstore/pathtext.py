"""File names as users type them and events record them: ``~`` expanded, the bytes on disk read as UTF-8."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import InvalidInputError

__all__ = ["given_path", "init_command", "path_text", "user_path"]


def path_text(path: Path | str) -> str:
    r"""``path``'s bytes decoded as UTF-8, a byte that is not UTF-8 shown as ``\xNN``: valid text under any locale.

    ``str(path)`` is the name as this process's locale decoded it: a lone surrogate for a byte that is
    not UTF-8 (which no event may hold: recording ``bad\xff.fa`` as a genome's source would refuse the
    whole import), and under a Latin-1 locale another text for the same file than under UTF-8.
    """
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def init_command(root: str | os.PathLike[str]) -> str:
    """The ``rgstore init --store ROOT`` command line that creates a store at ``root``, the path quoted for a shell.

    Error messages suggest it to paste: ``/data/my refs`` or ``refs;old`` unquoted would create another
    directory, or run another command.
    """
    import shlex

    return f"rgstore init --store {shlex.quote(os.fspath(root))}"


def given_path(path: str | os.PathLike[str], what: str) -> Path:
    """``path`` as a Path; InvalidInputError naming ``what`` (``"FASTA file"``) when it is empty.

    ``Path("")`` is ``Path(".")``, the working directory: an unset variable (``os.environ.get("OUT", "")``)
    would otherwise write into, read or publish the working directory, or fail obscurely (renaming a temp
    file onto ``.``: "Device or resource busy"). Once a Path, ``""`` and ``"."`` are the same; a Path of
    the working directory stays valid where a directory may be (a file's callers refuse a directory).
    """
    if not os.fspath(path):
        raise InvalidInputError(f"empty path for the {what}; name one")
    return Path(path)


def user_path(path: str | os.PathLike[str]) -> Path:
    """``path`` with a leading ``~`` or ``~user`` expanded; InvalidInputError (not RuntimeError) for a home not found.

    ``Path.expanduser`` raises RuntimeError for an unknown ``~user`` (a typo in ``--store ~alcie/refs`` or
    ``$RGSTORE_HOME``), which would reach the user as a traceback.
    """
    try:
        return Path(path).expanduser()
    except RuntimeError:
        head = os.fspath(path).split(os.sep, 1)[0]
        raise InvalidInputError(f"{os.fspath(path)}: cannot expand {head!r}: no such user, or no home directory "
                                "known for it; give the path without ~") from None

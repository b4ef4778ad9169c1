"""Shell completion of the names a store holds: genomes, sequences of a genome, refpkgs.

Each callback opens the store the command line names (``--store``, else ``$RGSTORE_HOME``, else
the default) read-only, and answers nothing rather than fail: a TAB press must never print an
error into the user's prompt. Enable with ``eval "$(_RGSTORE_COMPLETE=bash_source rgstore)"``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .main import STORE_META

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

__all__ = ["genome_names", "refpkg_names", "sequence_names"]


def _store_path(ctx: click.Context) -> Path:
    """The store this partial command line names."""
    for level in _chain(ctx):
        if STORE_META in level.meta:
            return Path(level.meta[STORE_META])
    value = ctx.find_root().params.get("store")
    if value:
        return Path(value).expanduser()
    from rgstore.store import default_store_path

    return default_store_path()


def _chain(ctx: click.Context) -> Iterator[click.Context]:
    level: click.Context | None = ctx
    while level is not None:
        yield level
        level = level.parent


@contextlib.contextmanager
def _store(ctx: click.Context) -> Iterator[Any]:
    """The named store opened read-only, or None when there is none to read."""
    path = _store_path(ctx)
    if not (path / "log" / "data.mdb").is_file():
        yield None
        return
    from rgstore.store import Store

    store = Store.open(path, readonly=True, allow_stale_views=True)
    try:
        yield store
    finally:
        store.close()


def _matching(names: list[str], incomplete: str) -> list[CompletionItem]:
    from click.shell_completion import CompletionItem  # only a TAB press pays for it

    return [CompletionItem(name) for name in sorted(set(names)) if name.startswith(incomplete)]


def genome_names(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Every genome alias (``hg38`` in the default namespace, ``ns:name`` in the others) starting with ``incomplete``."""
    try:
        with _store(ctx) as store:
            if store is None:
                return []
            from rgstore.views.aliases import DEFAULT_NAMESPACE

            names = [name if namespace == DEFAULT_NAMESPACE else f"{namespace}:{name}"
                     for namespace, name in store.aliases.names()]
    except Exception:  # noqa: BLE001 - completion answers nothing rather than print a traceback at the prompt
        return []
    return _matching(names, incomplete)


def refpkg_names(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Every existing refpkg whose name starts with ``incomplete``."""
    try:
        with _store(ctx) as store:
            names = [] if store is None else store.refpkgs.names()
    except Exception:  # noqa: BLE001 - see genome_names
        return []
    return _matching(names, incomplete)


def sequence_names(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """The sequence names of the genome already on the command line (``getseq hg38 ch<TAB>``, ``-g hg38 -l ch<TAB>``)."""
    genome = ctx.params.get("name") or ctx.params.get("genome_opt")
    if not genome and ctx.args and ctx.params.get("digest") is None:
        # `getseq hg38 -l ch<TAB>`: click stops at the -l awaiting its value before it binds positionals.
        genome = ctx.args[0]
    if not genome:
        return []
    try:
        with _store(ctx) as store:
            names = [] if store is None else store.genomes.show(genome).names
    except Exception:  # noqa: BLE001 - see genome_names
        return []
    return _matching(names, incomplete)

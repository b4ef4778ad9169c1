"""`rgstore demo`: add the bundled tiny genome to the store and read sequence back from it."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import click

from .main import Context, store_option

__all__ = ["demo_cmd"]

pass_ctx = click.make_pass_decorator(Context)


@click.command("demo")
@store_option
@pass_ctx
def demo_cmd(ctx: Context) -> None:
    """Add the bundled tiny genome as 'tiny' (idempotent), then read regions of it back.

    Uses the default store ($RGSTORE_HOME, else the user data directory) unless --store is given.

    \b
    Example:
        rgstore demo
        rgstore getseq tiny chr1:0-60 --fasta
    """
    fasta = Path(str(resources.files("rgstore").joinpath("data/tiny.fa")))
    from rgstore.errors import ConflictError

    with ctx.open(create=True) as store:
        try:
            store.genomes.init(fasta, ["tiny"], description="rgstore bundled demo genome", circular=["chrM"])
        except ConflictError as exc:
            if "alias refgenie:tiny " not in str(exc):
                raise
            # The generic hint (--force) is not an option of demo: never repoint a user's alias from here.
            raise ConflictError(f"alias 'tiny' already names another genome in {store.path}; run the demo on "
                                "a store of its own, e.g. `rgstore --store ./demo-store demo`") from None
        genome = store.genomes.show("tiny")
        m_len = genome.lengths[genome.names.index("chrM")]
        click.echo(f"store:   {store.path} (log head {store.head()[0]})")
        click.echo(f"genome:  tiny = {genome.digest} ({', '.join(genome.names)})")
        click.echo(f"$ rgstore getseq tiny chr1:0-60\n{store.getseq('tiny', 'chr1', 0, 60)}")
        click.echo(f"$ rgstore getseq tiny chrM:{m_len - 10}-10   # wraps: chrM is circular\n"
                   f"{store.getseq('tiny', 'chrM', m_len - 10, 10)}")
    click.echo("next:    rgstore genome list; rgstore alias list; rgstore log; rgstore verify")

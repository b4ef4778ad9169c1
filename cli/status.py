"""`rgstore status`: what a store holds and whether it is healthy, in one screen."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from .main import Context, store_option
from .output import cell, counted, emit_json, emit_table, human_size, json_option, when

if TYPE_CHECKING:
    from rgstore.status import StoreStatus

__all__ = ["status_cmd"]

pass_ctx = click.make_pass_decorator(Context)


@click.command("status")
@store_option
@json_option
@click.option("--check", is_flag=True, help="Exit 1 when the store is not healthy (for monitoring).")
@pass_ctx
def status_cmd(ctx: Context, as_json: bool, check: bool) -> None:
    """Summarise the store: log position, counts, disk use, replication and view health.

    Reads only what the log and views already know (no file walk, no hashing), so it is quick on
    big stores and works for users who may only read the store. `rgstore verify` checks content.
    With --check the exit status is 1 when any problem is listed (the report is printed either way).

    \b
    Example:
        rgstore --store ./store status
        rgstore --store ./store status --json --check
    """
    from rgstore.status import store_status

    with ctx.open(readonly=True, allow_stale_views=True) as store:  # stale views are reported, not refused
        result = store_status(store)
    if as_json:
        emit_json(result)
    else:
        _print(result)
    if check and not result.healthy:
        click.get_current_context().exit(1)


def _print(st: StoreStatus) -> None:
    c = st.counts
    rows: list[tuple[str, str]] = [
        ("store:", str(st.path)),
        ("log:", f"{st.log_id} (format {st.format_version}), {counted(st.streams, 'stream')}"),
        ("head:", f"seq {st.head_seq}" + (f" at {when(st.head_time)}" if st.head_time
                                         else "" if st.head_seq else " (empty log)")),
    ]
    if st.replica is not None:
        r = st.replica
        if r.promoted:
            rows.append(("replica:", f"promoted; was a mirror of {r.upstream}"))
            if r.error:  # a `serve --follow` server's follower that stopped at the promotion
                rows.append(("", r.error))
        else:
            rows.append(("replica:", f"mirror of {r.upstream}, last pull {when(r.last_pull) if r.last_pull else 'never'}"
                         " (`rgstore mirror status` asks the upstream for the lag)"))
            if r.error:  # a follower's pulls failing since some time: the one line that explains a stale mirror
                rows.append(("", r.error))
    rows += [
        ("genomes:", str(c.genomes)),
        ("aliases:", f"{c.collection_aliases} collection, {c.sequence_aliases} sequence"),
        ("refpkgs:", f"{c.refpkgs} ({counted(c.blobs, 'blob')})"),
        ("cache:", f"{c.cache_level1} level-1, {c.cache_level2} level-2 entries ({c.cache_pinned} pinned)"),
    ]
    for part in st.disk:
        text = human_size(part.bytes)
        if part.file_bytes is not None:
            text += f" used of {human_size(part.file_bytes)} (data.mdb)"
        elif part.basis.startswith("sizes recorded"):  # from the log: a lazy mirror may not hold them locally
            text += " recorded"
        rows.append((f"disk {part.part}:", text))
    current = sum(v.state == "current" for v in st.views)
    behind = ", ".join(f"{v.name} {v.state}" for v in st.views if v.state != "current")  # which, not just how many
    rows.append(("views:", f"{current} of {len(st.views)} current" + (f" ({behind})" if behind else "")))
    health = "ok" if st.healthy else counted(len(st.problems), "problem")
    # Opening the store printed them (`warning:` lines on stderr): counted here, not repeated.
    rows.append(("health:", health + (f", {counted(len(st.warnings), 'warning')}" if st.warnings else "")))
    emit_table([(label, cell(value)) for label, value in rows])
    for problem in st.problems:
        click.echo(f"  {cell(problem)}")

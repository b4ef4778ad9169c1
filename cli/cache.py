"""`rgstore cache ...`: the two-level FASTA cache (keys, raw downloads, region FASTAs, gc, pins)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from rgstore.extractderived import DEFAULT_JUNCTION_BLOCK_SIZE

from .main import Context, RgstoreGroup, store_option
from .output import counted, emit_json, emit_table, human_size, json_option, when

__all__ = ["cache_group"]

pass_ctx = click.make_pass_decorator(Context)


def _not_blank(example: str) -> Callable[[click.Context, click.Parameter, str | None], str | None]:
    """An option callback that makes an empty value (``--taxon "$TAXON"`` with TAXON unset) a usage error.

    An empty ``--taxon`` or ``--assembly`` read as no option at all, so the download went under the
    species, or matched any assembly, without a word; an empty ``--species`` or ``--release`` failed
    later with exit 1 instead of as the usage error it is.
    """

    def check(_ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
        if value is not None and not value.strip():
            hint = "" if param.required else " (or leave the option out)"
            raise click.BadParameter(f"is empty; give one, e.g. {example}{hint}", param=param)
        return value

    return check


def _positive(_ctx: click.Context, param: click.Parameter, value: int) -> int:
    """An option callback refusing a count below 1 (the type already refused a non-integer)."""
    if value < 1:
        raise click.BadParameter(f"must be a positive integer, got {value}", param=param)
    return value


def _source_options(with_regions: bool, with_base_url: bool) -> Callable[[Any], Any]:
    def wrap(fn: Any) -> Any:
        opts = [
            click.option(
                "--source",
                type=click.Choice(["ncbi", "ensembl"], case_sensitive=False),
                required=True,
                help="Upstream: NCBI genomes/all or the Ensembl FTP tree.",
            ),
            click.option(
                "--species",
                required=True,
                callback=_not_blank("homo_sapiens"),
                help="Species, e.g. homo_sapiens. Ensembl: picks the files. NCBI: a label.",
            ),
            click.option(
                "--taxon",
                callback=_not_blank("9606"),
                help="A label: for NCBI, the group a first download is stored under in ncbi_raw/ "
                "(e.g. 9606) [default: the species]; the accession alone identifies the download, so "
                "another taxon reuses it.",
            ),
            click.option(
                "--release",
                required=True,
                callback=_not_blank("110"),
                help="Ensembl: the release number (picks the files). NCBI: the annotation release "
                "(110, 105.20220307 or RS_2023_10); genomes/all/<accession> serves only the "
                "current one, so a release other than the one the GTF header names is refused.",
            ),
            click.option(
                "--assembly",
                callback=_not_blank("GCF_000001405.40"),
                help="NCBI: the assembly accession (required; it picks the download). Ensembl: the "
                "assembly name (optional; picks among the release's genomes).",
            ),
        ]
        if with_regions:
            opts.append(
                click.option(
                    "--regions",
                    default="gene",
                    show_default=True,
                    help="Comma-separated: gene, transcript, exon, intron, CDS, UTR, intergenic, "
                    "exon_exon_junction.",
                )
            )
            opts.append(
                click.option(
                    "--junction-block-size",
                    type=int,
                    callback=_positive,
                    default=DEFAULT_JUNCTION_BLOCK_SIZE,
                    show_default=True,
                    metavar="N",
                    help="exon_exon_junction: bases taken either side of each junction (part of that "
                    "region's key only).",
                )
            )
        if with_base_url:
            opts.append(click.option("--base-url", help="Upstream root URL (a mirror or a test server)."))
        for opt in reversed(opts):
            fn = opt(fn)
        return fn

    return wrap


def _request(
    source: str,
    species: str,
    taxon: str | None,
    release: str,
    assembly: str | None,
    regions: str = "gene",
    junction_block_size: int = DEFAULT_JUNCTION_BLOCK_SIZE,
) -> Any:
    from rgstore.cachekeys import make_request

    return make_request(
        source,
        species=species,
        release=release,
        taxon=taxon,
        assembly=assembly,
        regions=regions,
        junction_block_size=junction_block_size,
    )


def _progress(as_json: bool) -> Any:
    from rgstore.progress import null_progress, terminal_progress

    return null_progress if as_json else terminal_progress


@click.group("cache", cls=RgstoreGroup)
def cache_group() -> None:
    """The two-level FASTA cache: verified raw downloads (level 2) and region FASTAs (level 1).

    \b
    Example:
        rgstore cache regions --source ensembl --species homo_sapiens \\
            --release 110 --regions gene,exon,CDS
        rgstore cache ls --level 2
        rgstore cache gc --max-age 30d
    """


@cache_group.command("key")
@store_option
@_source_options(with_regions=True, with_base_url=False)
@json_option
@pass_ctx
def key_cmd(
    ctx: Context,
    source: str,
    species: str,
    taxon: str | None,
    release: str,
    assembly: str | None,
    regions: str,
    junction_block_size: int,
    as_json: bool,
) -> None:
    """Print the level-1 key of each requested region (after `cache fetch-raw`: keys hold the raw checksums).

    Labels (NCBI species, taxon and release; the Ensembl taxon) are blank in keys, so requests
    for the same download share entries; an NCBI release other than the one the download's GTF
    names is refused.

    \b
    Example:
        rgstore cache key --source ncbi --species homo_sapiens --taxon 9606 \\
            --release RS_2023_10 --assembly GCF_000001405.40 --regions gene,exon
    """
    with ctx.open(readonly=True) as store:
        forms = store.cache.keys(_request(source, species, taxon, release, assembly, regions, junction_block_size))
    if as_json:
        emit_json([{"region": f.region, "key": f.key, "path": f.path, "form": f.form} for f in forms])
        return
    emit_table([(f.region, f.key) for f in forms])


@cache_group.command("fetch-raw")
@store_option
@_source_options(with_regions=False, with_base_url=True)
@json_option
@pass_ctx
def fetch_raw_cmd(
    ctx: Context,
    source: str,
    species: str,
    taxon: str | None,
    release: str,
    assembly: str | None,
    base_url: str | None,
    as_json: bool,
) -> None:
    """Download, verify (md5checksums.txt / CHECKSUMS) and decompress the genome FASTA and GTF into level 2.

    \b
    Example:
        rgstore cache fetch-raw --source ensembl --species homo_sapiens \\
            --release 110
        rgstore cache fetch-raw --source ncbi --species homo_sapiens \\
            --taxon 9606 --release RS_2023_10 --assembly GCF_000001405.40
    """
    from .getseq import signals_unwind

    # SIGTERM unwinds as Ctrl-C does: a download's .part is kept for the next run to resume, with every
    # byte received (a killed process lost what it had buffered), and the exit is 143 without a traceback.
    with signals_unwind(), ctx.open(create=True, reads_if_unwritable=True) as store:
        result = store.cache.fetch_raw(
            _request(source, species, taxon, release, assembly),
            base_url=base_url,
            progress=_progress(as_json),
        )
    if as_json:
        emit_json(result)
        return
    click.echo(f"{'hit' if result.hit else 'fetched'}  {result.path}")
    emit_table([(f"  {rel}", human_size(ref.size), ref.sha256) for rel, ref in sorted(result.files.items())])


@cache_group.command("regions")
@store_option
@_source_options(with_regions=True, with_base_url=True)
@json_option
@pass_ctx
def regions_cmd(
    ctx: Context,
    source: str,
    species: str,
    taxon: str | None,
    release: str,
    assembly: str | None,
    regions: str,
    junction_block_size: int,
    base_url: str | None,
    as_json: bool,
) -> None:
    """Region FASTAs for a request: hits are reused, misses extracted (fetching raw inputs if needed).

    \b
    Example:
        rgstore cache regions --source ensembl --species homo_sapiens \\
            --release 110 --regions gene,exon,CDS
        rgstore cache regions --source ensembl --species homo_sapiens \\
            --release 110 --regions CDS --json
    """
    from .getseq import signals_unwind

    # SIGTERM unwinds as Ctrl-C does (see `cache fetch-raw`): a download's .part is kept whole for the next
    # run to resume, region files being extracted are discarded with their staging directories, exit 143.
    with signals_unwind(), ctx.open(create=True, reads_if_unwritable=True) as store:
        results = store.cache.regions(
            _request(source, species, taxon, release, assembly, regions, junction_block_size),
            base_url=base_url,
            progress=_progress(as_json),
        )
    if as_json:
        emit_json(results)
        return
    emit_table([("hit" if r.hit else "miss", r.region, r.path) for r in results])


@cache_group.command("gc")
@store_option
@click.option(
    "--max-age",
    default="30d",
    show_default=True,
    help="Evict entries not used within this span (s, m, h, d, w); 'none' to skip.",
)
@click.option("--max-size", help="Then evict least recently used entries until the cache fits, e.g. 50G.")
@click.option("--dry-run", is_flag=True, help="Show what would be evicted; change nothing.")
@json_option
@pass_ctx
def gc_cmd(ctx: Context, max_age: str, max_size: str | None, dry_run: bool, as_json: bool) -> None:
    """Evict unused and least recently used entries (never pinned ones); finish any interrupted gc.

    Each eviction is a CacheEvicted event; files are deleted only after it commits.

    "Used" means inserted, or hit by `cache regions` or `cache fetch-raw` (CLI or Python API) on
    a writable store, recorded at most once per entry per hour; a level-1 hit does not count as
    use of its level-2 download. Nothing else records use: reading an entry's files by path,
    `rgstore serve` (its /cache/entries/KEY/files/ downloads too), a read-only mount or a mirror.
    So --max-age can evict an entry that is still read that way: pin what servers and jobs rely
    on (`rgstore cache pin`), or evict by size alone (--max-age none --max-size 200G). `rgstore
    serve --access-log` logs each cache file it serves as GET /cache/entries/KEY/files/....

    \b
    Example:
        rgstore cache gc --max-age 30d --max-size 200G --dry-run
        # crontab line (one line there; cron cannot continue it):
        # 0 3 1 * * rgstore --store /srv/rgstore cache gc --max-age 30d
        #     >> /var/log/rgstore-cache-gc.log 2>&1
    """
    from rgstore.cachegc import parse_duration, parse_size
    from rgstore.errors import InvalidInputError

    try:
        age = None if max_age.lower() == "none" else parse_duration(max_age)
    except InvalidInputError as exc:  # a malformed option is a usage error (exit 2), as for `gc --grace`
        raise click.BadParameter(str(exc), param_hint="--max-age") from None
    try:
        size = parse_size(max_size) if max_size is not None else None  # "" (an unset variable) is no size
    except InvalidInputError as exc:
        raise click.BadParameter(str(exc), param_hint="--max-size") from None
    with ctx.open() as store:
        report = store.cache.gc(max_age=age, max_size=size, dry_run=dry_run)
    if as_json:
        emit_json(_iso_fields(report, evicted=[_iso_fields(i, "last_access") for i in report.evicted]))
        return
    verb = "would evict" if dry_run else "evicted"
    for item in report.evicted:
        click.echo(
            f"{verb}  {item.key[:12]}  L{item.level}  {human_size(item.size):>10}  {item.path}  ({item.reason})"
        )
    for key in report.completed:
        click.echo(f"{'would finish' if dry_run else 'finished'}  {key[:12]}  (evicted by an interrupted gc)")
    click.echo(
        f"{verb} {counted(len(report.evicted), 'entry', 'entries')}, {human_size(report.bytes_freed)}; "
        f"{counted(len(report.completed), 'interrupted eviction')}; {report.pinned_kept} pinned kept; "
        f"{human_size(report.live_bytes)} live"
        # A dry run plans evictions only; lock files are counted by the run that sweeps them.
        + ("" if dry_run else f"; {counted(report.lock_files_removed, 'idle lock file')} removed")
    )
    if report.max_size_unmet:
        click.echo(f"note: pinned entries alone hold {human_size(report.pinned_bytes)}, over --max-size "
                   f"{human_size(report.max_size)}; `rgstore cache unpin` lets gc evict them")


@cache_group.command("evict")
@store_option
@click.argument("refs", nargs=-1, required=True, metavar="REF...")
@click.option("--dry-run", is_flag=True, help="Show what would be evicted; change nothing.")
@json_option
@pass_ctx
def evict_cmd(ctx: Context, refs: tuple[str, ...], dry_run: bool, as_json: bool) -> None:
    """Evict the named cache entries now; a pinned, unknown or evicted one refuses them all.

    REF is a key, its first 8+ hex digits (as `cache ls` prints them) or the entry's directory.
    Each eviction is a CacheEvicted event; files are deleted only after it commits. The next
    request that needs an evicted entry builds it again.

    \b
    Example:
        rgstore cache evict 3f9a1c0b7e2d 81d0e4a2c9f1
        rgstore cache evict --dry-run \\
            ~/.local/share/rgstore/cache/ensembl_raw/homo_sapiens/110
    """
    with ctx.open(readonly=dry_run) as store:
        report = store.cache.evict(refs, dry_run=dry_run)
    if as_json:
        emit_json({"dry_run": dry_run, "evicted": [_iso_fields(i, "last_access") for i in report.evicted],
                   "bytes_freed": report.bytes_freed, "live_bytes": report.live_bytes})
        return
    verb = "would evict" if dry_run else "evicted"
    for item in report.evicted:
        click.echo(f"{verb}  {item.key[:12]}  L{item.level}  {human_size(item.size):>10}  {item.path}")
    click.echo(f"{verb} {counted(len(report.evicted), 'entry', 'entries')}, {human_size(report.bytes_freed)}; "
               f"{human_size(report.live_bytes)} live")


def _pin_command(name: str, pinned: bool) -> click.Command:
    verb = "pinned" if pinned else "unpinned"

    @click.command(name)
    @store_option
    @click.argument("ref")
    @json_option
    @pass_ctx
    def command(ctx: Context, ref: str, as_json: bool) -> None:
        with ctx.open() as store:
            key, changed = store.cache.pin(ref) if pinned else store.cache.unpin(ref)
        if as_json:
            emit_json({"key": key, "pinned": pinned, "changed": changed})
            return
        click.echo(f"{verb} {key}" if changed else f"{key} was already {verb}")

    command.help = (
        (
            "Exempt a cache entry from gc; a rebuild of a damaged entry keeps the pin."
            if pinned
            else "Let gc evict a pinned cache entry again."
        )
        + " REF is a key, its first 8+ hex digits (as `cache ls` prints them) or the entry's directory."
        + f"\n\n\b\nExample:\n    rgstore cache {name} 3f9a1c0b7e2d\n"
        + f"    rgstore cache {name} \\\n        ~/.local/share/rgstore/cache/ensembl_raw/homo_sapiens/110\n"
    )
    return command


cache_group.add_command(_pin_command("pin", True))
cache_group.add_command(_pin_command("unpin", False))


@cache_group.command("ls")
@store_option
@click.option(
    "--level", type=click.IntRange(1, 2), help="Only level 1 (region FASTAs) or level 2 (raw assets)."
)
@json_option
@pass_ctx
def ls_cmd(ctx: Context, level: int | None, as_json: bool) -> None:
    """List live cache entries: key, level, size, last use, pin and directory.

    \b
    Example:
        rgstore cache ls --level 2
        rgstore cache ls --json
    """
    with ctx.open(readonly=True) as store:
        entries = store.cache.ls(level)
    if as_json:
        emit_json([_entry_json(e) for e in entries])
        return
    emit_table(
        [
            (
                e.key[:12],
                f"L{e.level}",
                human_size(e.size),
                when(e.last_access),
                "pinned" if e.pinned else "",
                e.path,
            )
            for e in entries
        ],
        headers=["KEY", "LEVEL", "SIZE", "LAST USED", "PIN", "PATH"],
    )


def _iso_fields(obj: Any, *times: str, **replaced: Any) -> dict[str, Any]:
    """``obj`` as JSON data with its POSIX-time fields ``times`` in ISO 8601 UTC (as every JSON time is)."""
    import msgspec

    from rgstore.views.cache import iso_time

    return {**msgspec.to_builtins(obj), **{t: iso_time(getattr(obj, t)) for t in times}, **replaced}


def _entry_json(e: Any) -> dict[str, Any]:
    import msgspec

    from rgstore.views.cache import iso_time

    return {**msgspec.to_builtins(e), "inserted_at": iso_time(e.inserted_at), "last_access": iso_time(e.last_access),
            "size": e.size}


def _echo_request(request: dict[str, Any]) -> None:
    """Print what an entry was built from: its request's fields, labels and each upstream file with its checksum."""

    # The help promised the request, but only --json printed it: the text said neither which
    # release a cached_genomic_<key> holds nor which upstream URL and md5/sum a download was checked against.
    def pairs(fields: Any) -> list[str]:
        if not isinstance(fields, dict):
            return []
        return [f"{k}={v}" for k, v in fields.items() if isinstance(v, str | int) and not isinstance(v, bool) and v != ""]

    regions = [k for k, v in (request.get("genomic_regions") or {}).items() if v is True]
    what = pairs(request) + pairs(request.get("source_params")) + (["regions=" + ",".join(regions)] if regions else [])
    if what:
        click.echo("request    " + " ".join(what))
    if labels := pairs(request.get("labels")):
        click.echo("labels     " + " ".join(labels))
    upstream = request.get("upstream")
    if isinstance(upstream, dict) and upstream:
        click.echo("upstream")
        emit_table([(f"  {rel}", u.get("checksum", ""), u.get("url", ""))
                    for rel, u in sorted(upstream.items()) if isinstance(u, dict)])


@cache_group.command("show")
@store_option
@click.argument("ref")
@click.option("--limit", type=click.IntRange(min=0), default=20, show_default=True,
              help="Only the newest N events (0: none); one line counts the older ones.")
@json_option
@pass_ctx
def show_cmd(ctx: Context, ref: str, limit: int, as_json: bool) -> None:
    """Show one entry (key, 8+ hex digit key prefix, or directory): state, files, request and newest events.

    An entry gains up to one event per hour of use; `rgstore log --stream cache:KEY` lists them all.
    With --json, `older_events` counts the events --limit left out.

    \b
    Example:
        rgstore cache show ensembl_raw/homo_sapiens/110
        rgstore cache show 3f9a1c0b7e2d --limit 5 --json
    """
    with ctx.open(readonly=True) as store:
        details = store.cache.show(ref, last=limit)
    if as_json:
        emit_json(_iso_fields(
            details, entry=details.entry and _iso_fields(details.entry, "inserted_at", "last_access",
                                                         size=details.entry.size),  # as `cache ls` and the API
            tombstone=details.tombstone and _iso_fields(details.tombstone, "evicted_at")))
        return
    click.echo(f"key        {details.key}\nstate      {details.state}\ndirectory  {details.directory}")
    if details.entry is not None:
        e = details.entry
        click.echo(
            f"level      {e.level}\npinned     {'yes' if e.pinned else 'no'}\n"
            f"inserted   {when(e.inserted_at)}\nlast used  {when(e.last_access)} ({counted(e.touches, 'touch', 'touches')})"
        )
        emit_table([(f"  {rel}", human_size(ref_.size), ref_.sha256) for rel, ref_ in sorted(e.files.items())])
        _echo_request(e.request)
        if e.annotation_release:  # what the GTF's header names, checked against every request
            click.echo(f"holds      NCBI annotation release {e.annotation_release}")
    if details.tombstone is not None:
        click.echo(f"evicted    {when(details.tombstone.evicted_at)} ({details.tombstone.reason})")
    if details.older_events:
        n = details.older_events
        click.echo(f"  ... {n:,} {'older ' if details.events else ''}event{'s' if n != 1 else ''} not shown: "
                   f"rgstore log --stream cache:{details.key}")
    for env in details.events:
        click.echo(f"  {env.seq:>8}  {when(env.time)}  {env.event.__struct_config__.tag}")


@cache_group.command("verify")
@store_option
@click.option("--evict", is_flag=True, help="Evict (and delete) entries with a missing or corrupt file.")
@json_option
@pass_ctx
def verify_cmd(ctx: Context, evict: bool, as_json: bool) -> None:
    """Re-hash every cached file against its recorded sha256; exit 1 if any is missing or corrupt.

    \b
    Example:
        rgstore cache verify
        rgstore cache verify --evict --json
    """
    with ctx.open(readonly=not evict) as store:
        report = store.cache.verify(evict=evict, progress=_progress(as_json))
    if as_json:
        emit_json({**_report_json(report), "ok": report.ok})
    else:
        for p in report.problems:
            click.echo(f"BAD  {p.key[:12]}  L{p.level}  {p.file}: {p.problem}")
        for key in report.evicted:
            click.echo(f"evicted {key}")
        click.echo(
            f"checked {counted(report.entries, 'entry', 'entries')}, {counted(report.files, 'file')}, "
            f"{human_size(report.bytes)}: " + ("ok" if report.ok else counted(len(report.problems), 'problem'))
        )
    if not report.ok:
        ctx_ = click.get_current_context()
        ctx_.exit(1)


def _report_json(report: Any) -> dict[str, Any]:
    import msgspec

    out: dict[str, Any] = msgspec.to_builtins(report)
    return out

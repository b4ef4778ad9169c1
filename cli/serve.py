"""`rgstore serve`: run the read-only HTTP server (uvicorn on ``rgstore_api.app:create_app``)."""

from __future__ import annotations

import os
import sys

import click

from .main import Context, store_option

__all__ = ["serve_cmd"]

pass_ctx = click.make_pass_decorator(Context)


def _bare_host(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    """``value`` with the brackets of an IPv6 literal taken off ([::1] is ::1, as URLs and the start-up line write it)."""
    if not (value.startswith("[") and value.endswith("]")):
        return value
    import ipaddress

    inner = value[1:-1]
    try:
        ipaddress.IPv6Address(inner)  # a scope (fe80::1%eth0) is allowed, as getaddrinfo takes it
    except ValueError:
        raise click.BadParameter(f"{value}: brackets hold an IPv6 address, e.g. [::1]") from None
    return inner


@click.command("serve")
@store_option
@click.option("--host", default="127.0.0.1", show_default=True, callback=_bare_host,
              help="Interface to bind (an IPv6 address with or without brackets).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="TCP port.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Worker processes (each opens the store read-only after the fork).")
@click.option("--root-path", default="", help="URL prefix when served behind a proxy under a sub-path.")
@click.option("--follow", "follow_source", metavar="SOURCE",
              help="Serve a mirror kept current from SOURCE (primary URL, segment dir/URL or export file).")
@click.option("--interval", default=None,  # None: tells an --interval given without --follow apart
              help="How often --follow pulls (e.g. 5s, 500ms; 100ms to 24h).  [default: 5s]")
@click.option("--with-sequences", is_flag=True,
              help="With --follow: also fetch every genome sequence as it arrives (else on first request); "
                   "for a mirror that other mirrors read sequences from.")
@click.option("--public-url", envvar="RGSTORE_PUBLIC_URL",
              help="The URL clients reach this server at (advertised as the RefgetStore and "
                   "service-info organization URLs); "
                   "default: taken from each request's Host header.")
@click.option("--access-log", is_flag=True,
              help="Print a timestamped line per request (client, request, status) on stdout.")
@click.option("--header-timeout", default="30s", show_default=True,
              help="Close a connection that has not sent a whole request head this long after "
                   "connecting or after its last response (idle or trickling clients; 100ms to 24h).")
@pass_ctx
def serve_cmd(ctx: Context, host: str, port: int, workers: int, root_path: str, follow_source: str | None,
              interval: str | None, with_sequences: bool, public_url: str | None, access_log: bool,
              header_timeout: str) -> None:
    """Serve the store read-only: refget sequences v2, seqcol, refgenie /v4, refpkgs, caches, /events.

    The server never adds events: its workers open the log read-only, and only GET, HEAD and
    OPTIONS exist (plus the computing-only seqcol comparison POST). Two things do write: views an
    rgstore upgrade left stale are caught up once at start (after the port is bound: /readyz answers
    503 until then), and sequences of remote genomes or of a mirror are fetched (verified) into the
    RefgetStore on first request. OpenAPI docs are at /docs.

    \b
    Example:
        rgstore --store ./store serve --port 8000 --workers 2
        rgstore --store ./mirror serve --follow http://primary:8000 --interval 5s
        curl http://127.0.0.1:8000/sequence/service-info
    """
    from rgstore_api.lazyfetch import FetchLimits
    from rgstore_api.regionbudget import RegionLimits
    from rgstore_api.server import check_listen, raise_open_file_limit, serve, url_host
    from rgstore_api.storepath import resolve_store_path

    from rgstore.httpclient import low_speed
    from rgstore.store import Store

    path = resolve_store_path(ctx.store_path)
    if public_url:
        from rgstore.errors import InvalidInputError
        from rgstore.httpclient import check_url

        try:  # advertised to clients, which record it: any scheme case, never a password
            public_url = check_url(public_url, "URL")
        except InvalidInputError as exc:
            raise click.BadParameter(str(exc), param_hint="--public-url") from None
        os.environ["RGSTORE_PUBLIC_URL"] = public_url  # workers are fresh interpreters: they read it here
    if interval is not None and follow_source is None:
        raise click.UsageError("--interval needs --follow SOURCE (it is how often a mirror pulls)")
    if with_sequences and follow_source is None:
        raise click.UsageError("--with-sequences needs --follow SOURCE")
    interval = interval or "5s"
    from rgstore.errors import InvalidInputError
    from rgstore.follow import parse_interval

    try:  # a duration as --interval takes; a bad one is a usage error before anything starts
        header_timeout_s = parse_interval(header_timeout)
    except InvalidInputError:
        raise click.BadParameter(f"{header_timeout!r}: use e.g. 30s, 10s, 2m (100ms to 24h)",
                                 param_hint="--header-timeout") from None
    check_listen(host, port)  # a busy port is one line, before anything starts
    raise_open_file_limit()  # so is a soft open-file limit too low to accept with; the follower inherits it
    FetchLimits.from_environment()  # so is a bad $RGSTORE_SERVE_FETCH_*
    RegionLimits.from_environment()  # and $RGSTORE_SERVE_REGIONS_*
    low_speed()  # and a bad $RGSTORE_LOW_SPEED_* (else lazy fetches answer 400 for it, and follower pulls fail)
    follower = None
    if follow_source is not None:
        from rgstore.errors import IntegrityError, InvalidInputError, LogMismatchError, NotFoundError, RemoteError
        from rgstore.firstpull import pull_new_store
        from rgstore.follow import parse_interval
        from rgstore.mirror import pull

        try:
            parse_interval(interval)  # a bad interval is a usage error before anything starts
        except InvalidInputError as exc:
            raise click.BadParameter(str(exc), param_hint="--interval") from None
        try:
            new_store = not (path / "log" / "data.mdb").exists()
        except PermissionError:
            new_store = False  # Store.open names the directory this user may not enter
        from rgstore.progress import terminal_progress

        from .getseq import signals_unwind

        # On a terminal the pulls before serving show their bars (and retries); piped, they stay quiet.
        progress = terminal_progress
        if new_store:  # a first pull that fails before applying anything leaves no empty store behind
            if sys.stderr.isatty():  # a first pull of a big log takes a while: say what the wait is for
                click.echo(f"pulling {follow_source} before serving ...", err=True)
            with signals_unwind():  # SIGTERM (systemd, docker stop) unwinds too: what was pulled is kept
                pull_new_store(path, follow_source, actor=ctx.actor, progress=progress)
        # The first pull lands before serving starts; SIGTERM unwinds it too (a blob being fetched leaves no temp file).
        with signals_unwind(), Store.open(path, actor=ctx.actor) as store:
            try:
                # The log: a diverged or tampered upstream is refused here. Like a follower's round, only the whole
                # pull ends a run of failing pulls (a restart in an outage keeps when it began).
                pull(store, follow_source, clears_pull_error=False, progress=progress)
                try:
                    pull(store, follow_source, with_blobs=True, with_sequences=with_sequences, progress=progress)
                except IntegrityError as exc:  # content failing its digest: never stored, retried
                    raise RemoteError(f"content from {follow_source} failed its check, not stored: {exc}") from None
            except (LogMismatchError, IntegrityError):
                raise  # an upstream to refuse: the follower would stop at once
            except (RemoteError, NotFoundError, OSError) as exc:
                if store.head()[0] == 0:
                    raise  # nothing to serve yet
                # A restart during an upstream outage serves what the mirror has; the follower retries.
                click.echo(f"warning: {exc}; serving the local copy and retrying every {interval}", err=True)
        from rgstore.follow import FollowerProcess

        # One background process is the replica's only writer; the API workers stay read-only.
        follower = FollowerProcess([str(path), follow_source, interval, "--parent", str(os.getpid()),
                                    *(["--with-sequences"] if with_sequences else [])])
    Store.open(path, readonly=True, catch_up_views=False).close()  # a missing store: one line, before the start-up line
    # `/rgstore/` (as nginx's location names it) or `rgstore` mean `/rgstore`: else URLs get `//` or go relative
    root_path = f"/{root_path.strip('/')}" if root_path.strip("/") else ""
    proxied = f", {root_path} behind the proxy" if root_path else ""  # the proxy strips it; direct URLs have none

    def announce(bound: int) -> None:  # after the bind: --port 0's real port, an IPv6 host in brackets
        click.echo(f"rgstore: serving {path} read-only at http://{url_host(host)}:{bound}{proxied} "
                   f"({workers} worker{'s' if workers > 1 else ''}"
                   f"{', following ' + follow_source if follow_source else ''}); Ctrl-C stops", err=True)

    try:
        serve(path, host=host, port=port, workers=workers, root_path=root_path, access_log=access_log,
              follow_interval=interval if follow_source is not None else None, header_timeout=header_timeout_s,
              on_listening=announce)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a server is meant to stop
    finally:
        if follower is not None:
            follower.stop()

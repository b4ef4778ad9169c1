"""Run the app under uvicorn: one process, or a supervisor with N worker processes sharing one socket.

Each worker is a fresh interpreter that imports ``rgstore_api.app:create_app`` as a factory and opens
the store read-only in its lifespan; the store path reaches it through ``$RGSTORE_SERVE_STORE``.
"""

from __future__ import annotations

import asyncio
import copy
import errno
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
import uvicorn.config
from uvicorn.supervisors import Multiprocess

from rgstore.errors import ConflictError, InvalidInputError
from rgstore.httpclient import low_speed
from rgstore.store import Store

from .app import ENV_FOLLOW_INTERVAL
from .headertimeout import HEADER_TIMEOUT_S, HeaderTimeoutProtocol
from .lazyfetch import FetchLimits
from .regionbudget import RegionLimits
from .storepath import ENV_STORE

__all__ = ["serve", "check_listen", "raise_open_file_limit", "url_host", "access_log_config", "NoDelayConfig", "APP"]

APP = "rgstore_api.app:create_app"


class NoDelayConfig(uvicorn.Config):
    """uvicorn's Config, with TCP_NODELAY on the listening socket it shares between workers.

    uvicorn 0.54 creates that socket with protocol 0, so asyncio does not set TCP_NODELAY on
    accepted connections and each response waits out the peer's delayed ACK (~40 ms: measured
    180 req/s with 2 workers against 1,300 with one). Linux copies the option from the listening
    socket to every accepted one.

    It also carries ``header_timeout``, which ``HeaderTimeoutProtocol`` (the default ``http=``
    here) reads in every worker: seconds a connection may take to deliver a request head.
    """

    def __init__(self, app: Any, *, header_timeout: float = HEADER_TIMEOUT_S, **kwargs: Any) -> None:
        """uvicorn's Config with ``http=HeaderTimeoutProtocol`` unless ``http`` is given."""
        kwargs.setdefault("http", HeaderTimeoutProtocol)
        super().__init__(app, **kwargs)
        self.header_timeout = header_timeout

    def bind_socket(self) -> socket.socket:
        """The listening socket, with TCP_NODELAY set for TCP."""
        sock = super().bind_socket()
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


FORCED_STOP = "rgstore: stopped at once (a second stop signal): requests still in flight were cut off"


class _QuietCancelled(logging.Filter):
    """Drops uvicorn's tracebacks of the tasks a forced stop cancels: one line (``FORCED_STOP``) says it all."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a record carrying a CancelledError, or a traceback's text ending in one (the lifespan's)."""
        if record.exc_info and isinstance(record.exc_info[1], asyncio.CancelledError):
            return False
        text = str(record.msg)
        return not (text.startswith("Traceback") and text.rstrip().endswith("CancelledError"))


def _forced_stop() -> None:
    """Say once that the server stops at once, and keep uvicorn from logging each cancelled task's traceback."""
    logging.getLogger("uvicorn.error").addFilter(_QuietCancelled())
    os.write(sys.stderr.fileno(), f"{FORCED_STOP}\n".encode())  # a signal handler: print() could be re-entered


class _Server(uvicorn.Server):
    """uvicorn's Server (one worker), stopping on SIGTERM exactly as on Ctrl-C.

    uvicorn drains, then raises a caught SIGTERM again, which kills the process by the signal:
    ``rgstore serve``'s own cleanup (stopping a ``--follow`` puller) never ran, the status was 143
    (0 with ``--workers 2``), and a second SIGTERM did not stop at once as a second Ctrl-C does.
    Taken as SIGINT, a drained server ends in KeyboardInterrupt, which ``serve`` ends with exit 0.
    """

    on_listening: Callable[[int], None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's start-up, then ``on_listening(port)`` with the port bound (the one ``--port 0`` got)."""
        await super().startup(sockets=sockets)
        if self.started and self.on_listening is not None:
            self.on_listening(_bound_port(self.servers[0].sockets[0]))

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Record SIGTERM as SIGINT: the first drains requests in flight, a second stops at once."""
        sig = signal.SIGINT if sig == signal.SIGTERM else sig
        if sig == signal.SIGINT and self.should_exit and not self.force_exit:
            _forced_stop()  # the tasks still running get cancelled: ~150 lines of tracebacks otherwise
        super().handle_exit(sig, frame)


class _Multiprocess(Multiprocess):
    """uvicorn's worker supervisor, where a second SIGINT or SIGTERM stops the draining workers at once."""

    _stop_signals = 0

    def handle_int(self) -> None:
        """Count the stop, then stop as uvicorn does (the workers drain)."""
        self._stop_signals += 1
        super().handle_int()

    def handle_term(self) -> None:
        """Count the stop, then stop as uvicorn does (the workers drain)."""
        self._stop_signals += 1
        super().handle_term()

    def join_all(self) -> None:
        """Wait for the workers; from a second stop signal on, they get SIGINT (their second: a hard stop)."""
        forced = False
        for process in self.processes:
            while process.exitcode is None:
                process.process.join(0.1)
                # uvicorn only reads its queue before this wait: a signal arriving now would wait for ever.
                stops = [sig for sig in self.signal_queue if sig in (signal.SIGINT, signal.SIGTERM)]
                for sig in stops:
                    self.signal_queue.remove(sig)
                self._stop_signals += len(stops)
                if self._stop_signals > 1 and not forced:
                    forced = True
                    _forced_stop()
                    for worker in self.processes:
                        if worker.exitcode is None and worker.pid is not None:
                            os.kill(worker.pid, signal.SIGINT)


def _bound_port(sock: Any) -> int:
    """The port a listening socket got (IPv4 and IPv6 addresses both start (host, port, ...))."""
    return int(sock.getsockname()[1])


def url_host(host: str) -> str:
    """``host`` as a URL writes it: an IPv6 address in brackets (http://[::1]:8000)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def check_listen(host: str, port: int) -> None:
    """ConflictError unless ``host:port`` can be listened on now (uvicorn would log and exit instead)."""
    try:
        addresses = {info[4][:2]: info[0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
    except OSError as exc:
        raise InvalidInputError(f"--host {host}: cannot resolve it ({exc})") from None
    # asyncio's create_server (one worker) binds every address the name resolves to, so check each.
    for address, family in addresses.items():
        try:
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # as asyncio binds
                sock.bind(address)
        except OSError as exc:
            hint = " (another server is running there? choose another --port)" if exc.errno == errno.EADDRINUSE else ""
            raise ConflictError(f"cannot listen on {host}:{port}: {exc.strerror}{hint}") from None


MIN_OPEN_FILES = 64
"""Open files a server needs at least: the store's LMDB and RefgetStore files, the listening socket, a few clients."""


def raise_open_file_limit(floor: int = MIN_OPEN_FILES) -> int:
    """The soft RLIMIT_NOFILE, raised to the hard limit; ConflictError if it stays below ``floor``.

    uvicorn keeps the soft limit it is given: under ``ulimit -n 16`` accept() fails with EMFILE after
    start-up and every request hangs. Workers and the follower are started after this, and inherit it.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # A hard limit of "unlimited" (macOS) is not a soft one the kernel takes: it caps files at OPEN_MAX there.
    for target in ((hard,) if hard != resource.RLIM_INFINITY else (1 << 20, 10240)):
        if soft == resource.RLIM_INFINITY or soft >= target:
            break
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            continue
        soft = target
        break
    if soft != resource.RLIM_INFINITY and soft < floor:
        raise ConflictError(f"the open-file limit (ulimit -n) is {soft} and its hard limit (ulimit -Hn) allows no "
                            f"more; serving needs at least {floor}: raise them, e.g. `ulimit -n 1024` (the hard "
                            "limit as root) or LimitNOFILE=1024 in a systemd unit")
    return soft


def access_log_config() -> dict[str, Any]:
    """uvicorn's logging config with only the access log at INFO: one timestamped line per request on stdout."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["formatters"]["access"]["fmt"] = '%(asctime)s %(client_addr)s - "%(request_line)s" %(status_code)s'
    config["loggers"]["uvicorn"]["level"] = "WARNING"  # start-up chatter stays off, as without the log
    config["loggers"]["uvicorn.error"]["level"] = "WARNING"
    return config


def serve(store: Path, *, host: str = "127.0.0.1", port: int = 8000, workers: int = 1, root_path: str = "",
          access_log: bool = False, follow_interval: str | None = None,
          header_timeout: float = HEADER_TIMEOUT_S, on_listening: Callable[[int], None] | None = None) -> None:
    """Serve ``store`` until interrupted; NotFoundError first if there is no store there.

    ``access_log``: a line per request (client as X-Forwarded-For gives it from a trusted proxy).
    ``follow_interval``: a puller keeps the store current every so often (``--follow``), which
    ``/readyz`` holds its last successful pull to. ``header_timeout``: a connection that has not
    sent a whole request head this many seconds after connecting (or after its last response) is
    closed, so idle or trickling sockets cannot use up a worker's file descriptors.
    ``on_listening(port)`` is called once the socket is bound, with the port it got (``port`` 0: the kernel's pick).
    """
    Store.open(store, readonly=True, catch_up_views=False).close()  # one line here, not in every worker; views: after binding
    FetchLimits.from_environment()  # likewise for a bad $RGSTORE_SERVE_FETCH_*
    RegionLimits.from_environment()  # and $RGSTORE_SERVE_REGIONS_*
    low_speed()  # and $RGSTORE_LOW_SPEED_*, which lazy fetches would otherwise answer 400 for
    check_listen(host, port)
    raise_open_file_limit()  # the CLI did already, before starting a follower; a Python caller may not have
    os.environ[ENV_STORE] = str(store)
    if follow_interval is not None:
        os.environ[ENV_FOLLOW_INTERVAL] = follow_interval
    else:
        os.environ.pop(ENV_FOLLOW_INTERVAL, None)
    config = NoDelayConfig(
        APP, factory=True, host=host, port=port, workers=workers, root_path=root_path,
        proxy_headers=True, header_timeout=header_timeout,
        **({"log_config": access_log_config(), "log_level": None, "access_log": True} if access_log
           else {"log_level": "warning", "access_log": False}),
    )
    if workers == 1:
        server = _Server(config)
        server.on_listening = on_listening
        server.run()
    else:
        sock = config.bind_socket()
        if on_listening is not None:
            on_listening(_bound_port(sock))
        _Multiprocess(config, sockets=[sock]).run()

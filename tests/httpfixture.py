"""A real loopback HTTP server for a directory, honouring ``Range: bytes=a-b`` with 206 replies.

gtars refuses servers that ignore Range (``python -m http.server`` does), so remote-store tests
need this. Every request is logged (method, path, Range header) for assertions.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = ["RangeServer", "serve_directory"]

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class RangeServer:
    """A running server: ``url`` (no trailing slash) and ``requests`` seen so far."""

    def __init__(self, httpd: ThreadingHTTPServer, requests: list[tuple[str, str, str]]) -> None:
        self.httpd = httpd
        self.requests = requests
        host, port = httpd.server_address[:2]
        self.url = f"http://{host}:{port}"

    def paths(self) -> list[str]:
        """Request paths in arrival order."""
        return [path for _, path, _ in self.requests]


class _Handler(SimpleHTTPRequestHandler):
    log: list[tuple[str, str, str]]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Quiet: tests read ``requests`` instead."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.log.append(("GET", self.path, self.headers.get("Range", "")))
        spec = self.headers.get("Range")
        path = Path(self.translate_path(self.path))
        if not spec or not path.is_file():
            super().do_GET()
            return
        size = path.stat().st_size
        match = _RANGE.match(spec.strip())
        if match is None or (not match.group(1) and not match.group(2)):
            self.send_error(416, "unsupported Range")
            return
        if match.group(1):
            start = int(match.group(1))
            end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
        else:  # suffix range: the last N bytes
            start, end = max(size - int(match.group(2)), 0), size - 1
        if start >= size or start > end:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        with open(path, "rb") as fh:
            fh.seek(start)
            body = fh.read(end - start + 1)
        self.send_response(206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def serve_directory(root: Path | str) -> Iterator[RangeServer]:
    """Serve ``root`` on 127.0.0.1 (a free port) for the duration of the block."""
    requests: list[tuple[str, str, str]] = []
    handler = type("Handler", (_Handler,), {"log": requests})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=os.fspath(root)))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name="range-server", daemon=True)
    thread.start()
    try:
        yield RangeServer(httpd, requests)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)

"""A real loopback HTTP server for a directory, honouring ``Range: bytes=a-b`` with 206 replies.

gtars refuses servers that ignore Range (``python -m http.server`` does), so remote-store tests
need this. The server runs in a child process: gtars calls hold the GIL while they wait on the
network, so a server thread in the test process would deadlock with them. Every request is
logged (method, path, Range header) to a file the test reads back.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = ["RangeServer", "serve_directory"]

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class RangeServer:
    """A running server: ``url`` (no trailing slash) and the requests it has seen."""

    def __init__(self, url: str, log: Path) -> None:
        self.url = url
        self.log = log

    @property
    def requests(self) -> list[tuple[str, str, str]]:
        """(method, path, Range header) of every request so far, in arrival order."""
        if not self.log.exists():
            return []
        return [tuple(json.loads(line)) for line in self.log.read_text().splitlines()]  # type: ignore[misc]

    def paths(self) -> list[str]:
        """Request paths in arrival order."""
        return [path for _, path, _ in self.requests]


class _Handler(SimpleHTTPRequestHandler):
    log_path: str

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read ``requests`` instead."""

    def do_GET(self) -> None:
        with open(self.log_path, "a") as fh:
            fh.write(json.dumps(["GET", self.path, self.headers.get("Range", "")]) + "\n")
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
    """Serve ``root`` on 127.0.0.1 (a free port) from a child process for the block's duration."""
    log = Path(root).parent / f".{Path(root).name}.requests.{os.getpid()}.log"
    log.unlink(missing_ok=True)
    repo = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.httpfixture", os.fspath(root), os.fspath(log)],
        cwd=repo, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        if not url.startswith("http://"):
            raise RuntimeError(f"the test HTTP server did not start (said {url!r})")
        yield RangeServer(url, log)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
        log.unlink(missing_ok=True)


def _main(root: str, log: str) -> None:
    handler = type("Handler", (_Handler,), {"log_path": log})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=root))
    httpd.daemon_threads = True
    host, port = httpd.server_address[:2]
    print(f"http://{host}:{port}", flush=True)
    httpd.serve_forever()


if __name__ == "__main__":
    _main(sys.argv[1], sys.argv[2])

"""A loopback HTTP server posing as NCBI and Ensembl: real layouts, checksum files, Range, fault injection.

``upstream_tree(path)`` writes a small seeded genome and GTF in both layouts (see
``rgstore.cachesynth``): ``<root>/ncbi/genomes/all/GCF/...`` (its GTF header names annotation
release RS_2024_01, as NCBI's ``#!annotation-source`` line does) and ``<root>/ensembl/release-110/...``.
``UpstreamServer(root)`` serves that tree on 127.0.0.1 with strong ETags, Last-Modified,
``Range``/``If-Range`` (206, 416) and HTML directory listings, and records every request. Tests can
tell it to corrupt a file's bytes in transit (the checksum files stay honest), to drop the
connection after N body bytes, to send slowly (so two clients overlap), or to rate-limit a file
(HTTP 429 with ``Retry-After``, as NCBI does).
"""

from __future__ import annotations

import gzip
import hashlib
import html
import re
import socket
import threading
import time
from dataclasses import dataclass
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from rgstore.cachekeys import CacheRequest, make_request
from rgstore.cachesynth import NCBI_RELEASE, SynthGenome, make_genome, write_ensembl_tree, write_ncbi_tree
from rgstore.checksums import bsd_sum
from rgstore.store import Store

__all__ = [
    "UpstreamServer",
    "Logged",
    "upstream_tree",
    "NCBI",
    "ENSEMBL",
    "GENOME",
    "req",
    "base",
    "cache_events",
    "duplicate_first_sequence",
]

NCBI = {
    "source": "ncbi",
    "species": "synthetica_testii",
    "taxon": "9606",
    "release": NCBI_RELEASE,
    "assembly": "GCF_000001405.40",
}
"""Request options that match the NCBI tree ``upstream_tree`` writes (its GTF header names this release)."""
ENSEMBL = {"source": "ensembl", "species": "Synthetica_testii", "release": "110"}
"""Request options that match the Ensembl tree ``upstream_tree`` writes."""
GENOME = {"ncbi": "_genomic.fna.gz", "ensembl": ".dna_sm.toplevel.fa.gz"}
"""Suffix of each layout's genome download (for fault injection and request counts)."""

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


def req(params: dict[str, str], regions: str = "gene,exon,CDS") -> CacheRequest:
    """A validated request from NCBI/ENSEMBL-style options."""
    p = dict(params)
    return make_request(p.pop("source"), regions=regions, **p)


def base(server: UpstreamServer, source: str) -> str:
    """The ``--base-url`` of one layout on a running server."""
    return f"{server.url}/{source}"


def cache_events(store: Store) -> list[str]:
    """Tags of every cache event, in log order."""
    return [str(e.event.__struct_config__.tag) for e in store.events(stream="cache:*")]


def upstream_tree(
    root: Path,
    *,
    total_bp: int = 120_000,
    genes: int = 30,
    seed: int = 5,
    ncbi_release: str | None = NCBI_RELEASE,
) -> SynthGenome:
    """Write both upstream layouts under ``root`` (``ncbi/`` and ``ensembl/``); returns the genome.

    The NCBI GTF's ``#!annotation-source`` header names ``ncbi_release`` (None: no such line).
    """
    genome = make_genome(total_bp=total_bp, contigs=3, genes=genes, seed=seed)
    write_ncbi_tree(root / "ncbi", genome, release=ncbi_release)
    write_ensembl_tree(root / "ensembl", genome, release=110)
    return genome


def duplicate_first_sequence(dna: Path) -> None:
    """Append a second record named like the first to every genome FASTA of an Ensembl ``dna/`` directory.

    ``CHECKSUMS`` is rewritten to match, so the download verifies and only the content is bad.
    """
    for fa in sorted(dna.glob("*.fa.gz")):
        text = gzip.decompress(fa.read_bytes())
        first = text[: text.index(b"\n>") + 1]
        fa.write_bytes(gzip.compress(text + first, mtime=0))
    lines = []
    for f in sorted(p.name for p in dna.iterdir() if p.name != "CHECKSUMS"):
        checksum, blocks = bsd_sum(dna / f)
        lines.append(f"{checksum}\t{blocks}\t{f}")
    (dna / "CHECKSUMS").write_text("\n".join(lines) + "\n")


@dataclass
class Logged:
    """One request the server answered."""

    path: str
    range: str | None
    status: int


class UpstreamServer:
    """Serves a directory tree over HTTP on loopback; see the module docstring."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[Logged] = []
        self._lock = threading.Lock()
        self._corrupt: set[str] = set()
        self._drops: dict[str, list[int]] = {}
        self._delay: dict[str, float] = {}
        self._throttle: dict[str, list[tuple[int, str]]] = {}
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    # -- control --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> UpstreamServer:
        """Start serving in a daemon thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> UpstreamServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def corrupt(self, suffix: str) -> None:
        """Flip one byte of every file whose path ends with ``suffix`` as it is sent."""
        self._corrupt.add(suffix)

    def drop_after(self, suffix: str, nbytes: int, times: int = 1) -> None:
        """Close the connection after ``nbytes`` body bytes, for the next ``times`` responses of that file."""
        self._drops[suffix] = [nbytes] * times

    def slow(self, suffix: str, seconds: float) -> None:
        """Spread each response of that file over about ``seconds``."""
        self._delay[suffix] = seconds

    def throttle(self, suffix: str, times: int = 1, retry_after: str = "0", status: int = 429) -> None:
        """Answer the next ``times`` requests of that file with ``status`` (429 Too Many Requests) and this ``Retry-After``."""
        self._throttle[suffix] = [(status, retry_after)] * times

    def gets(self, suffix: str) -> list[Logged]:
        """Logged requests whose path ends with ``suffix``."""
        with self._lock:
            return [r for r in self.requests if r.path.endswith(suffix)]

    # -- serving --------------------------------------------------------------------------------

    def _match(self, table: dict[str, Any] | set[str], path: str) -> str | None:
        return next((s for s in table if path.endswith(s)), None)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
                pass

            def _log(self, status: int) -> None:
                with server._lock:
                    server.requests.append(Logged(self.path, self.headers.get("Range"), status))

            def do_GET(self) -> None:  # noqa: N802 (stdlib name)
                rel = unquote(self.path.split("?", 1)[0]).lstrip("/")
                target = (server.root / rel).resolve()
                if server.root.resolve() not in (target, *target.parents) or not target.exists():
                    self._log(404)
                    self.send_error(404)
                    return
                if target.is_dir():
                    self._listing(target)
                    return
                throttled = server._match(server._throttle, self.path)
                if throttled is not None and server._throttle[throttled]:
                    status, after = server._throttle[throttled].pop(0)
                    self._log(status)
                    self.send_response(status)
                    self.send_header("Retry-After", after)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = target.read_bytes()
                etag = '"' + hashlib.sha1(data).hexdigest()[:20] + '"'
                modified = formatdate(target.stat().st_mtime, usegmt=True)
                if server._match(server._corrupt, self.path):
                    data = (
                        data[: len(data) // 2]
                        + bytes([data[len(data) // 2] ^ 0xFF])
                        + data[len(data) // 2 + 1 :]
                    )
                start, end, status = 0, len(data), 200
                wanted = self.headers.get("Range")
                if_range = self.headers.get("If-Range")
                if wanted and (if_range is None or if_range in (etag, modified)):
                    m = _RANGE.match(wanted)
                    if m:
                        start = int(m.group(1))
                        end = min(len(data), int(m.group(2)) + 1) if m.group(2) else len(data)
                        if start >= len(data):
                            self._log(416)
                            self.send_response(416)
                            self.send_header("Content-Range", f"bytes */{len(data)}")
                            self.send_header("Content-Length", "0")
                            self.end_headers()
                            return
                        status = 206
                self._log(status)
                self.send_response(status)
                self.send_header("Content-Length", str(end - start))
                self.send_header("ETag", etag)
                self.send_header("Last-Modified", modified)
                self.send_header("Accept-Ranges", "bytes")
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
                self.end_headers()
                body = data[start:end]
                limit = None
                key = server._match(server._drops, self.path)
                if key is not None and server._drops[key]:
                    limit = server._drops[key].pop(0)
                delay = server._delay.get(server._match(server._delay, self.path) or "", 0.0)
                chunk = max(1, len(body) // 20) if delay else len(body) or 1
                sent = 0
                while sent < len(body):
                    piece = body[sent : sent + chunk]
                    if limit is not None and sent + len(piece) > limit:
                        self.wfile.write(piece[: max(0, limit - sent)])
                        self.wfile.flush()
                        self.connection.shutdown(socket.SHUT_RDWR)
                        self.close_connection = True
                        return
                    self.wfile.write(piece)
                    sent += len(piece)
                    if delay:
                        time.sleep(delay / 20)

            def _listing(self, directory: Path) -> None:
                names = sorted(p.name + ("/" if p.is_dir() else "") for p in directory.iterdir())
                body = (
                    "<html><body><pre>\n"
                    + "".join(f'<a href="{html.escape(n)}">{html.escape(n)}</a>\n' for n in names)
                    + "</pre></body></html>\n"
                )
                raw = body.encode()
                self._log(200)
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        return Handler


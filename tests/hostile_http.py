"""A loopback HTTP server that misbehaves on purpose, written on raw sockets so it can break the protocol.

Each route maps a path prefix to a ``Reply``: a function given the connected socket and the
request path that writes whatever it likes (a redirect loop, a body cut short, a stall, an
endless body) and returns whether the connection may serve another request. Requests are
recorded in ``seen`` (the request line). With ``basic_auth`` set to (user, password), a request
without those credentials gets a 401 instead. Used by the network-failure tests of the HTTP clients.
"""

from __future__ import annotations

import base64
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["HostileServer", "Reply", "endless", "fixed", "response", "stall_after", "trickle"]

Reply = Callable[[socket.socket, str], bool]


def response(status: str, body: bytes = b"", headers: tuple[str, ...] = ()) -> bytes:
    """The bytes of one HTTP/1.1 response with a correct Content-Length."""
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def fixed(status: str, body: bytes = b"", headers: tuple[str, ...] = ()) -> Reply:
    """Always answer with this response (keep-alive)."""
    data = response(status, body, headers)

    def reply(conn: socket.socket, path: str) -> bool:
        conn.sendall(data)
        return True

    return reply


def stall_after(prefix: bytes, seconds: float = 30.0) -> Reply:
    """Send ``prefix`` (part of the headers or body), then say nothing for ``seconds`` and hang up."""

    def reply(conn: socket.socket, path: str) -> bool:
        conn.sendall(prefix)
        time.sleep(seconds)
        return False

    return reply


def trickle(body: bytes, every: float = 0.05, headers: tuple[str, ...] = ()) -> Reply:
    """A 200 announcing ``body`` whole, then sending it one byte every ``every`` seconds (until the client hangs up)."""

    def reply(conn: socket.socket, path: str) -> bool:
        head = ["HTTP/1.1 200 OK", f"Content-Length: {len(body)}", 'ETag: "trickle"', *headers]
        conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        for i in range(len(body)):
            conn.sendall(body[i:i + 1])
            time.sleep(every)
        return True

    return reply


def endless(headers: tuple[str, ...] = ("Content-Type: text/plain",)) -> Reply:
    """A chunked 200 whose body never ends (until the client hangs up)."""

    def reply(conn: socket.socket, path: str) -> bool:
        head = ["HTTP/1.1 200 OK", "Transfer-Encoding: chunked", *headers]
        conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        chunk = b"%x\r\n%s\r\n" % (1 << 16, b"a" * (1 << 16))
        while True:
            conn.sendall(chunk)

    return reply


class HostileServer:
    """Serves ``routes`` (longest matching path prefix wins; else 404) on ``host`` in daemon threads."""

    def __init__(self, routes: dict[str, Reply] | None = None, host: str = "127.0.0.1") -> None:
        self.routes: dict[str, Reply] = dict(routes or {})
        self.seen: list[str] = []
        self.basic_auth: tuple[str, str] | None = None
        self._conns: list[socket.socket] = []
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        self._sock.bind((host, 0))
        self._sock.listen(32)
        self.host = host
        self.port = int(self._sock.getsockname()[1])
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` (IPv6 hosts bracketed)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        # close() alone leaves the socket listening inside the blocked accept(), and the kernel may hand
        # its port to a later test's server: that test's first connection would then meet this one
        # (an endless answer filled a disk that way). shutdown() wakes accept() and ends the listener.
        for sock in (self._sock, *self._conns):
            try:
                sock.shutdown(socket.SHUT_RDWR)  # also stops replies still writing (endless, stalls)
            except OSError:
                pass
        self._sock.close()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed by __exit__
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            while True:
                data = b""
                while b"\r\n\r\n" not in data:
                    more = conn.recv(65536)
                    if not more:
                        return
                    data += more
                line = data.split(b"\r\n", 1)[0].decode("latin-1")
                self.seen.append(line)
                path = line.split(" ")[1] if line.count(" ") >= 2 else "/"
                if self.basic_auth is not None:
                    want = b"Basic " + base64.b64encode(":".join(self.basic_auth).encode())
                    heads = dict(h.split(b":", 1) for h in data.split(b"\r\n\r\n")[0].split(b"\r\n")[1:] if b":" in h)
                    if {k.strip().lower(): v.strip() for k, v in heads.items()}.get(b"authorization") != want:
                        conn.sendall(response("401 Unauthorized", headers=('WWW-Authenticate: Basic realm="t"',)))
                        continue
                match = max((p for p in self.routes if path.startswith(p)), key=len, default=None)
                if match is None:
                    conn.sendall(response("404 Not Found"))
                    continue
                if not self.routes[match](conn, path):
                    return
        except OSError:
            pass  # the client hung up: that is what several tests are about
        finally:
            conn.close()

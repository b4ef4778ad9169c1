"""Building httpx clients: proxy settings from the environment that httpx cannot use become one-line errors.

httpx reads ``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY``/``NO_PROXY`` when a client is built and
raises ValueError (``socks4://``, a typo'd scheme) or InvalidURL there, before any request: a
traceback from every network command unless translated here. A SOCKS proxy that breaks its
handshake raises socksio's own error from inside httpcore; clients built here raise httpx.ProxyError
instead, which every caller already reports.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

from .errors import InvalidInputError

if TYPE_CHECKING:
    import httpx

__all__ = ["new_client"]

_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def new_client(**kw: Any) -> httpx.Client:
    """``httpx.Client(**kw)``; InvalidInputError naming the proxy variables when the environment's are unusable."""
    import httpx

    class Client(httpx.Client):
        def send(self, request: httpx.Request, **options: Any) -> httpx.Response:
            try:
                return super().send(request, **options)
            except Exception as exc:
                # httpcore lets a SOCKS proxy's broken handshake escape as socksio's own error.
                if type(exc).__module__.startswith("socksio"):
                    raise httpx.ProxyError(f"the SOCKS proxy failed: {exc}", request=request) from None
                raise

    try:
        return Client(**kw)
    except (ValueError, ImportError, httpx.InvalidURL) as exc:
        # A proxy URL may carry a password: never print it.
        settings = ", ".join(f"{var}={re.sub(r'//[^/@]*@', '//***@', os.environ[var])}"
                             for var in _PROXY_VARS if os.environ.get(var))
        raise InvalidInputError(f"unusable proxy setting ({settings or 'none set'}): {exc}") from None

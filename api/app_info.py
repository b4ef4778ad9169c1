"""Facts every service-info document shares: the package version and who runs the service."""

from __future__ import annotations

import os
from functools import cache
from importlib.metadata import PackageNotFoundError, version

from starlette.requests import Request

__all__ = ["app_version", "organization"]


def organization(request: Request) -> dict[str, str]:
    """service-info's ``organization``: whoever runs this instance, at the URL it is reached by.

    ``serve --public-url`` (``$RGSTORE_PUBLIC_URL``) pins that URL, as it pins the RefgetStore URL: a
    proxy that does not pass the client's Host would otherwise have its upstream address advertised.
    """
    public = os.environ.get("RGSTORE_PUBLIC_URL")
    if public:
        return {"name": "rgstore", "url": f"{public.rstrip('/')}/"}
    return {"name": "rgstore", "url": str(request.base_url)}


@cache
def app_version() -> str:
    """The installed rgstore version (0.0.0 in a never-installed source tree)."""
    try:
        return version("rgstore")
    except PackageNotFoundError:
        return "0.0.0"

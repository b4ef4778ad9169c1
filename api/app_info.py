"""Facts every service-info document shares: the package version and who runs the service."""

from __future__ import annotations

from functools import cache
from importlib.metadata import PackageNotFoundError, version

from starlette.requests import Request

__all__ = ["app_version", "organization"]


def organization(request: Request) -> dict[str, str]:
    """service-info's ``organization``: whoever runs this instance, at the URL it is reached by."""
    return {"name": "rgstore", "url": str(request.base_url)}


@cache
def app_version() -> str:
    """The installed rgstore version (0.0.0 in a never-installed source tree)."""
    try:
        return version("rgstore")
    except PackageNotFoundError:
        return "0.0.0"

"""Which store the server serves: ``resolve_store_path`` and the variable that passes it to workers.

Kept apart from ``api.app`` so that ``rgstore serve``'s supervisor process, which only resolves
the path and starts uvicorn, never imports FastAPI and the routes (~0.4 s); its workers do.
"""

from __future__ import annotations

import os
from pathlib import Path

from rgstore.pathtext import user_path
from rgstore.store import default_store_path

__all__ = ["ENV_STORE", "resolve_store_path"]

ENV_STORE = "RGSTORE_SERVE_STORE"


def resolve_store_path(store_path: str | os.PathLike[str] | None = None) -> Path:
    """The store this app serves: the argument, ``$RGSTORE_SERVE_STORE``, then ``default_store_path()``."""
    if store_path:
        return user_path(store_path)
    env = os.environ.get(ENV_STORE)
    if env:
        return user_path(env)
    return default_store_path()

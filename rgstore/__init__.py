"""rgstore: reference genomes, refpkgs and FASTA caches on an append-only, hash-chained LMDB event log."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if os.name != "posix":
    # Said once here rather than as a missing-fcntl traceback from whichever module loads first.
    raise ImportError(
        "rgstore runs on Linux and macOS only: it needs POSIX file locks (flock) and LMDB's sparse data files"
    )

from .errors import RgstoreError  # noqa: E402

if TYPE_CHECKING:
    from .log import NewEvent
    from .store import Store, default_store_path

__all__ = ["Store", "NewEvent", "RgstoreError", "default_store_path"]

_LAZY = {"Store": "store", "default_store_path": "store", "NewEvent": "log"}


def __getattr__(name: str) -> Any:
    # The engine loads on first use, so `rgstore --help` and `import rgstore.errors` stay light.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rgstore' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value

"""rgstore: reference genomes, refpkgs and FASTA caches on an append-only, hash-chained LMDB event log."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import RgstoreError

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

"""rgstore: reference genomes, refpkgs and FASTA caches on an append-only, hash-chained LMDB event log."""

from __future__ import annotations

from .errors import RgstoreError
from .log import NewEvent
from .store import Store, default_store_path

__all__ = ["Store", "NewEvent", "RgstoreError", "default_store_path"]

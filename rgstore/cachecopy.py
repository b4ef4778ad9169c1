"""Cache files follow their events to mirrors and published directories, verified by sha256.

A cache entry's files are described by its ``CacheInserted`` event (relative path, sha256, size).
A mirror fetches the files of every live entry it lacks from its upstream, checks each against
the recorded sha256 before renaming it into place, and deletes the files of entries the
upstream has evicted (the eviction events arrived with the pull). A mirror pulled without
``--with-blobs`` fetches an entry's files on first read instead (``fetch_missing_entry_files``),
as blobs are (``rgstore.blobfetch``): files outside the LMDB log, so no log write.
"""

from __future__ import annotations

import glob
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from . import upstream
from .cachekeys import is_entry_path
from .diskspace import no_room
from .errors import IntegrityError, InvalidInputError, NotFoundError, RemoteError, UpstreamIntegrityError
from .events import FileRef
from .files import flock_held, read_chunks, temp_target, write_verified
from .pathtext import given_path
from .store import Store
from .views.cache import CacheEntry, CacheView

if TYPE_CHECKING:
    import httpx

__all__ = ["cache_files", "local_cache_file", "install_cache_file", "missing_cache_files", "publish_cache",
           "finish_upstream_evictions", "upstream_cache_chunks", "fetch_missing_entry_files",
           "fetch_missing_cache_file", "leftover_install_temps"]

Fetch = Callable[[CacheEntry, str], Iterable[bytes]]
"""The bytes of one of an entry's files from an upstream, streamed in pieces."""


def local_cache_file(store: Store, entry: CacheEntry, relative: str) -> Path:
    """Where one of an entry's files lives in this store; refuses paths that leave the cache root."""
    root = store.cache_path.resolve()
    directory = root / entry.path
    path = (directory / relative).resolve()
    if not is_entry_path(entry.path) or not path.is_relative_to(directory) or path == directory:
        raise InvalidInputError(f"cache entry {entry.key} names a file outside the cache: {entry.path}/{relative}")
    return path


def cache_files(store: Store) -> Iterator[tuple[CacheEntry, str, FileRef]]:
    """(entry, relative path, recorded checksums) of every file of every live entry.

    Entries whose directory is not an entry's shape (possible only in a hand-made or hostile log)
    are skipped: they have no place in the cache to copy from or to; ``cache verify`` reports them.
    """
    with store.read() as txn:
        entries = [e for e in CacheView.entries(txn, store.environment) if is_entry_path(e.path)]
    for entry in entries:
        for relative, ref in sorted(entry.files.items()):
            yield entry, relative, ref


def missing_cache_files(store: Store) -> list[tuple[CacheEntry, str, FileRef]]:
    """Files of live entries that are absent here or have the wrong size."""
    out = []
    for entry, relative, ref in cache_files(store):
        path = local_cache_file(store, entry, relative)
        if not path.is_file() or path.stat().st_size != ref.size:
            out.append((entry, relative, ref))
    return out


def install_cache_file(store: Store, entry: CacheEntry, relative: str, ref: FileRef, chunks: Iterable[bytes]) -> None:
    """Stream fetched bytes into place if they hash to the recorded sha256; else UpstreamIntegrityError (nothing stored)."""
    dest = local_cache_file(store, entry, relative)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not write_verified(dest, chunks, ref.sha256):
        raise UpstreamIntegrityError(f"cache file {entry.path}/{relative} of entry {entry.key} fails its sha256; "
                                     "not stored")


def leftover_install_temps(store: Store, *, older_than: float) -> list[Path]:
    """Temp files that killed installs of live entries' files left beside them (unlocked, ``older_than`` s old).

    A mirror pull or lazy fetch killed mid-download leaves ``.<file>.<8 chars>.tmp`` inside a live
    entry's directory, which no cache gc reaches (it removes whole stray directories); a live
    install holds its temp file's flock (``write_verified``), and ``older_than`` covers the moment
    before it takes it.
    """
    now = time.time()
    found: list[Path] = []
    for entry, relative, _ref in cache_files(store):
        try:
            dest = local_cache_file(store, entry, relative)
        except InvalidInputError:
            continue  # a hostile log's path: `cache verify` reports it
        for tmp in dest.parent.glob(f".{glob.escape(dest.name)}.*.tmp"):
            try:
                info = tmp.lstat()
            except FileNotFoundError:
                continue  # renamed into place meanwhile
            if (temp_target(tmp.name) == dest.name and stat.S_ISREG(info.st_mode)
                    and now - info.st_mtime >= older_than and not flock_held(tmp)):
                found.append(tmp)
    return found


def fetch_cache_files(store: Store, fetch: Fetch) -> int:
    """Fetch and install every missing cache file; returns how many were fetched."""
    missing = missing_cache_files(store)
    for entry, relative, ref in missing:
        install_cache_file(store, entry, relative, ref, fetch(entry, relative))
    return len(missing)


def upstream_cache_chunks(client: httpx.Client | None, source: str, kind: str, entry: CacheEntry,
                          relative: str) -> Iterator[bytes]:
    """The bytes of one of ``entry``'s files from upstream ``source`` (of ``kind``, as a pull tells it), streamed."""
    size = entry.files[relative].size  # an answer running past it stops there, not when the disk fills
    if client is not None and kind == "server":
        return upstream.stream(client, f"{source}/cache/entries/{entry.key}/files/{quote(relative)}", limit=size)
    if client is not None and upstream.is_url(source):
        return _hinted(upstream.stream(client, f"{source}/cache/{quote(entry.path)}/{quote(relative)}",
                                       limit=size), source)
    path = Path(source) / "cache" / entry.path / relative
    if not path.is_file():
        raise NotFoundError(f"{source} has no cache file {entry.path}/{relative} ({_CACHE_HINT})")
    return read_chunks(path)


# An older rgstore's `log publish --with-blobs` copied blobs only (cache files did not follow their
# events yet): a directory it published is the usual reason, and the remedy is the same command again.
_CACHE_HINT = "publish with --with-blobs; an older rgstore's publish copied no cache files: run it again"


def _hinted(chunks: Iterable[bytes], source: str) -> Iterator[bytes]:
    """``chunks``; a static host's missing file (S3 answers 403) is said with the publish hint."""
    try:
        yield from chunks
    except (NotFoundError, RemoteError) as exc:
        if isinstance(exc, RemoteError) and not str(exc).endswith(": HTTP 403"):
            raise
        raise type(exc)(f"{exc} ({source} lacks it: {_CACHE_HINT})") from None


def fetch_missing_cache_file(store: Store, key: str, relative: str) -> bool:
    """Fetch file ``relative`` of live entry ``key`` from a mirror's upstream unless present; True once it is here.

    False when the log lists no such live entry or file (nothing is fetched for a key or path the
    upstream never recorded), or the store is no mirror. Raises as ``fetch_missing_entry_files``.
    For the API server's fetch workers: a read-only open writes no log, only the cache file.
    """
    with store.read() as txn:
        entries = store.environment.db("cache.entries") if store.environment.has_db("cache.entries") else None
        entry = CacheView.get(txn, entries, key) if entries is not None else None
    if entry is None or relative not in entry.files:
        return False
    fetch_missing_entry_files(store, entry, only=relative)
    return _present(local_cache_file(store, entry, relative), entry.files[relative].size)


def fetch_missing_entry_files(store: Store, entry: CacheEntry, *, only: str | None = None) -> int:
    """Fetch the files of live ``entry`` (all, or just ``only``) a mirror lacks from its upstream; how many.

    A file is lacking when it is absent or the wrong size. 0 when none is missing or the store is no
    mirror (a primary's missing file is a miss it rebuilds). Each file is verified by its recorded
    sha256 before it is renamed into place (UpstreamIntegrityError, nothing stored); NotFoundError when the
    upstream lacks it, RemoteError when it cannot be reached, each one line naming the file and what to do.
    """
    with store.read() as txn:
        replica_of = store.log.meta_get(txn, "replica_of")
    if replica_of is None:
        # First: a primary fetches nothing, so it need not place the files (a raw tree symlinked to
        # another disk resolves outside the cache root, and every fetch-raw hit was refused for it).
        return 0
    missing = [(relative, ref) for relative, ref in sorted(entry.files.items())
               if only in (None, relative) and not _present(local_cache_file(store, entry, relative), ref.size)]
    if not missing:
        return 0
    from .blobfetch import upstream_client

    source = replica_of.decode()
    relative = missing[0][0]
    try:
        with upstream_client(source) as (client, kind):
            if kind == "export":
                raise NotFoundError(f"{source} is an exported log file, which carries no cache files: pull once "
                                    "from a server or published segments that hold them "
                                    "(`rgstore mirror pull SOURCE --with-blobs`)")
            for relative, ref in missing:
                install_cache_file(store, entry, relative, ref,
                                   upstream_cache_chunks(client, source, kind, entry, relative))
    except (NotFoundError, RemoteError) as exc:
        what = "its upstream lacks it" if isinstance(exc, NotFoundError) else "its upstream could not supply it"
        raise type(exc)(f"cache file {entry.path}/{relative} of entry {entry.key} is not in this mirror and "
                        f"{what}: {exc}") from None
    return len(missing)


def _present(path: Path, size: int) -> bool:
    """Whether ``path`` is a file of ``size`` bytes (what ``missing_cache_files`` counts as there)."""
    try:
        return path.stat().st_size == size
    except (FileNotFoundError, NotADirectoryError):  # a file in the entry directory's place: not there either
        return False


def finish_upstream_evictions(store: Store) -> list[str]:
    """Delete local files of entries evicted upstream (their CacheEvicted events arrived by pull)."""
    from .cachegc import finish_evictions

    return finish_evictions(store.cache)


def publish_cache(store: Store, directory: Path | str) -> int:
    """Copy every live entry's files into ``directory/cache/<entry path>/``; returns how many were new.

    A mirror that has not fetched every live entry's files is refused (NotFoundError), as
    ``publish_blobs`` refuses one lacking blobs.
    """
    directory = given_path(directory, "publish directory")
    with store.read() as txn:
        replica = store.log.meta_get(txn, "replica_of") or store.log.meta_get(txn, "promoted_from")
    if replica is not None:
        # A lazy mirror's absent file was a bare FileNotFoundError naming a path in its own cache/.
        missing = missing_cache_files(store)
        if missing:
            entry, relative, _ref = missing[0]
            raise NotFoundError(
                f"{len(missing)} cache files of this mirror are not fetched yet (e.g. {entry.key} {relative}); "
                "run `rgstore mirror pull SOURCE --with-blobs` before publishing --with-blobs"
            )
    copied = 0
    with no_room(directory / "cache", "a published cache file"):
        for entry, relative, ref in cache_files(store):
            src = local_cache_file(store, entry, relative)
            dest = directory / "cache" / entry.path / relative
            if dest.is_file() and dest.stat().st_size == ref.size:
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            _copy_verified(src, dest, ref.sha256)
            copied += 1
    return copied


def _copy_verified(src: Path, dest: Path, sha256: str) -> None:
    """Copy ``src`` to ``dest`` in chunks, renamed into place only if the bytes hash to ``sha256``."""
    if not write_verified(dest, read_chunks(src), sha256):
        raise IntegrityError(f"{src} does not match its recorded sha256; run `rgstore cache verify`")

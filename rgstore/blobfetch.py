"""A mirror's missing blob, fetched from its upstream on first read and verified by sha256 before it is stored.

A mirror pulled without ``--with-blobs`` holds the events naming refpkg files but not their bytes.
``fetch_missing_blob`` fetches one from the upstream its log records (``meta/replica_of``) exactly
as ``mirror pull --with-blobs`` does (``fetch_blob``, shared with the pull): streamed into ``blobs/``
through a temp file and kept only if its sha256 matches. Blobs live outside the LMDB log, so this
is no log write: a read-only open (the API server's fetch workers) fetches too.
``fetch_referenced_blobs`` is the pull's ``--with-blobs`` step: every referenced blob the mirror lacks.
``referenced_blob_sizes`` says which blobs the log references at all (a mirror's server fetches only those).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import IntegrityError, NotFoundError, RemoteError, UpstreamIntegrityError
from .files import read_chunks
from .progress import ProgressFactory, null_progress

if TYPE_CHECKING:
    import httpx

    from .environment import Txn
    from .store import Store

__all__ = ["fetch_blob", "fetch_missing_blob", "fetch_referenced_blobs", "referenced_blob_sizes", "upstream_client"]


def fetch_missing_blob(store: Store, sha256: str, size: int | None = None) -> bool:
    """Fetch blob ``sha256`` (``size`` bytes, if known) from the mirror's upstream unless present; False if no mirror.

    True once the blob is here. NotFoundError when the upstream lacks it (an exported log file
    never has blobs), RemoteError when the upstream cannot be reached, UpstreamIntegrityError (an
    IntegrityError) when its bytes fail the sha256 (nothing is stored); each one line saying what to do.
    """
    if store.blobs.exists(sha256):
        return True
    with store.read() as txn:
        source = store.log.meta_get(txn, "replica_of")
    if source is None:  # a primary (or promoted copy): nothing upstream can supply it
        return False
    upstream = source.decode()
    try:
        fetch_blob(store, upstream, sha256, size)
    except (NotFoundError, RemoteError) as exc:
        if str(exc).startswith(f"blob {sha256} "):  # already says which blob and what to do
            raise
        # A pull would fail the same way: say whether to wait for the upstream or fix what it publishes.
        what = "its upstream lacks it" if isinstance(exc, NotFoundError) else "its upstream could not supply it"
        raise type(exc)(f"blob {sha256} is not in this mirror and {what}: {exc}") from None
    return True


def fetch_referenced_blobs(store: Store, client: httpx.Client | None, source: str, kind: str,
                           progress: ProgressFactory = null_progress) -> int:
    """Fetch every referenced blob the mirror lacks, verified by sha256 (progress in bytes: refpkg
    alignments run to gigabytes)."""
    from .verify import referenced_blobs

    missing = sorted(sha for sha in referenced_blobs(store) if not store.blobs.exists(sha))
    sizes = _blob_sizes(store) if missing else {}
    bar = progress("fetch blobs", total=sum(sizes.get(sha, 0) for sha in missing), unit="B")
    try:
        for sha in missing:
            _fetch_blob(store, client, source, kind, sha, sizes.get(sha), bar.update)
    finally:
        bar.close()
    return len(missing)


def _fetch_blob(store: Store, client: httpx.Client | None, source: str, kind: str, sha: str, size: int | None,
                advance: Callable[[int], object]) -> None:
    """Fetch one blob from the upstream into the store, verified by sha256."""
    from . import upstream  # imported here: it imports rgstore.store, which imports this module

    rel = f"blobs/{sha[:2]}/{sha}"
    if kind == "export":
        raise NotFoundError(f"blob {sha} is not in this mirror and {source} is an exported log file, which carries "
                            "no blobs: pull once from a server or published segments that hold them "
                            "(`rgstore mirror pull SOURCE --with-blobs`)")
    if client is not None and kind == "server":
        chunks = upstream.stream(client, f"{source}/blobs/{sha}", limit=size)
    elif client is not None and upstream.is_url(source):
        chunks = upstream.stream(client, f"{source}/{rel}", limit=size)
    else:
        path = Path(source) / rel
        if not path.is_file():
            raise NotFoundError(f"{source} has no blob {sha} (publish with --with-blobs)")
        chunks = read_chunks(path)
    try:
        store.blobs.put_chunks(_advancing(chunks, advance), expected=sha)
    except IntegrityError:
        hint = "" if kind == "server" else " (or the host answers a missing file with a page: publish with --with-blobs)"
        raise UpstreamIntegrityError(f"blob {sha} from {source} fails its sha256{hint}; not stored") from None
    except (NotFoundError, RemoteError) as exc:
        if kind == "server":
            raise
        # Static hosts such as S3 answer 403, not 404, for a key that is not there.
        raise type(exc)(f"{exc} (was {source} published with --with-blobs?)") from None


def fetch_blob(store: Store, source: str, sha: str, size: int | None = None) -> None:
    """Fetch one blob from ``source`` (the mirror's upstream) into the store, verified by sha256, as a pull does.

    For a blob read before any ``--with-blobs`` pull fetched it (``fetch_missing_blob``). A URL is
    told apart as the pull does: published segments have a manifest, a server does not.
    NotFoundError when the upstream lacks it, RemoteError when it cannot be reached, UpstreamIntegrityError
    (nothing stored) when its bytes fail the sha256.
    """
    with upstream_client(source) as (client, kind):
        _fetch_blob(store, client, source, kind, sha, size, _ignored)


@contextmanager
def upstream_client(source: str) -> Iterator[tuple[httpx.Client | None, str]]:
    """An HTTP client for ``source`` (None for a local path) and its kind: "export", "segments" or "server".

    Told apart as a pull does: a local file is an export; published segments have a manifest, a
    server does not. RemoteError when a URL cannot be reached.
    """
    from . import upstream
    from .segments import MANIFEST

    if not upstream.is_url(source):
        yield None, "export" if Path(source).is_file() else "segments"
        return
    with upstream.client() as client:
        try:
            upstream.get(client, f"{source}/{MANIFEST}")
            kind = "segments"
        except NotFoundError:  # no manifest: an API server
            kind = "server"
        yield client, kind


def _ignored(_count: int) -> None:
    """Progress nobody watches (one blob read on demand)."""


def _advancing(chunks: Iterable[bytes], advance: Callable[[int], object]) -> Iterator[bytes]:
    """``chunks`` passed through, each one's size reported to ``advance``."""
    for chunk in chunks:
        advance(len(chunk))
        yield chunk


def referenced_blob_sizes(store: Store, txn: Txn) -> dict[str, int | None]:
    """sha256 -> size (None if unrecorded) of every blob some view's reachable state needs as of ``txn``.

    What a mirror may fetch from its upstream on request: never an arbitrary sha256 a client names.
    """
    refs = {sha for view in store.views for sha in view.referenced_blobs(txn, store.environment)}
    sizes = _txn_blob_sizes(store, txn)
    return {sha: sizes.get(sha) for sha in refs}


def _blob_sizes(store: Store) -> dict[str, int]:
    """sha256 -> size of every blob a retained refpkg state names (the only views that reference blobs)."""
    with store.read() as txn:
        return _txn_blob_sizes(store, txn)


def _txn_blob_sizes(store: Store, txn: Txn) -> dict[str, int]:
    from .views.refpkgstate import STEP_DECODER, STEPS_DB

    sizes: dict[str, int] = {}
    if not store.environment.has_db(STEPS_DB):
        return sizes
    with txn.cursor(db=store.environment.db(STEPS_DB)) as cur:
        for _key, raw in cur:
            for ref in STEP_DECODER.decode(raw).files.values():
                sizes[ref.sha256] = ref.size
    return sizes

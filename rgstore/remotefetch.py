"""Fetching a remote genome's sequences on first use, verified before anything is cached.

``fetch_sequence`` downloads one sequence from a remote RefgetStore in ranged windows, checks
its sha512t24u, length and md5, and only then caches it in the store's own RefgetStore;
an http(s) store is read with rgstore's own HTTP client (the low-speed guard, netrc credentials):
in Raw mode its ``.seq`` files are the residues (ranged GETs), in Encoded mode the sequence's data
file is downloaded whole and gtars decodes it offline (``encodedfetch``); any other through gtars;
``fetch_missing`` finds where a missing sequence can come from (a remote genome listing it, or
the primary a mirror replays). Anything unreachable or non-conforming raises, and nothing is cached.
A store's ``rgstore.json`` is read once per ``MANIFEST_TTL_S`` per process, not once per sequence.

A request failing as ``rgstore.retries`` calls a blip (5xx, 408, 429, a reset, a timeout, a short
body) makes the sequence be downloaded again from its start, never kept unverified; a digest or
length mismatch is not retried. ``fetch_many`` (a pull's ``--with-sequences``, an export) waits
on retries within the pull's budget (``$RGSTORE_RETRY_BUDGET_S``); ``fetch_missing``, a read
fetching what it lacks (a getseq, a server's request), within ``LAZY_RETRY_BUDGET_S`` at most.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, NamedTuple
from urllib.parse import unquote_to_bytes

from .aliases import normalise_digest
from .environment import read_only_mount
from .errors import IntegrityError, NotFoundError, RemoteError, RgstoreError, UnfetchableError, UpstreamIntegrityError
from .httpclient import failed, is_http_url, iter_body, kept_client, read_capped, redact, status_error, streamed
from .progress import ProgressFactory, note, null_progress
from .retries import Transient, current, pause_or_raise, scope, wait_budget
from .views.genomes import genome_record

if TYPE_CHECKING:
    import httpx

    from .refgetstore import Ingested
    from .store import Store

__all__ = ["fetch_many", "fetch_missing", "fetch_sequence"]

_WINDOW = 4 << 20
"""Residues requested per ranged read when fetching a sequence (bounds memory on big chromosomes)."""
_LINE = 80
API_READ_TIMEOUT_S = 600.0
"""Longest silence accepted from an rgstore server's refget route. A lazy server answers a window
only once it has fetched the whole sequence itself, which its own fetch deadline (600 s by
default) bounds; longer is an upstream that stopped answering, and a request waiting on it."""
_PLAIN = "text/vnd.ga4gh.refget.v2.0.0+plain"
STORE_READ_TIMEOUT_S = 30.0
"""Longest silence accepted from a RefgetStore for its ``rgstore.json`` (a file server answers at once; 5 s to connect).
Its data files may come from an rgstore server's ``/store``, which fetches a sequence it lacks before
answering: those reads wait ``API_READ_TIMEOUT_S``, as ``/sequence`` reads do."""
_TEMPLATE = re.compile(r"(?:[A-Za-z0-9_.-]|%s2?(?![0-9]))+(?:/(?:[A-Za-z0-9_.-]|%s2?(?![0-9]))+)*")
"""The ``seqdata_path_template`` forms read without gtars: relative path segments, ``%s2`` and ``%s``."""
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
MANIFEST_TTL_S = 300.0
"""How long a remote RefgetStore's parsed ``rgstore.json`` is reused for its sequence reads in this process."""
_MANIFESTS_KEPT = 64
"""Remote RefgetStores whose parsed manifest is kept at once (the least recently read goes first)."""
LAZY_RETRY_BUDGET_S = 2.0
"""The most a read fetching a sequence on first use waits on retries in all: a blip is ridden out,
but a server's request (and its client) is not held for an upstream that asks for longer."""


class _Layout(NamedTuple):
    """Where a remote RefgetStore's files are, as its ``rgstore.json`` says, for rgstore's own client to read them."""

    template: str
    """Its ``seqdata_path_template``."""
    seq_index: str | None
    """Its sequence index (``sequence_index``) in Encoded mode, where the alphabet of each sequence is; None: Raw."""


_manifests: OrderedDict[str, tuple[float, _Layout | None]] = OrderedDict()
"""Store URL -> (monotonic time read, where its files are or None: gtars reads it)."""
_manifests_lock = threading.Lock()  # lazy fetches run on a server's threads


def _open_remote(cache: Path, store_url: str) -> Any:
    from gtars.refget import RefgetStore  # type: ignore[import-untyped]

    from .refgetstore import gtars_path

    try:
        if store_url.startswith("file://"):  # a mirror's upstream published on a local filesystem
            # Path.as_uri() made the URL: its path is percent-encoded bytes (a space is %20), not a path.
            local = unquote_to_bytes(store_url[len("file://"):]).decode("utf-8", "surrogateescape")
            handle = RefgetStore.open_local(local)
        else:
            handle = RefgetStore.open_remote(gtars_path(cache), store_url)
    except (OSError, ValueError) as exc:
        raise RemoteError(redact(f"cannot open the RefgetStore at {store_url}: {exc}")) from None
    handle.set_quiet(True)
    return handle


class _FastaWriter:
    """Writes residues as fixed-width FASTA lines while hashing them."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.carry = b""
        self.sha512 = hashlib.sha512()
        self.md5 = hashlib.md5()
        self.length = 0

    def write(self, residues: bytes) -> None:
        self.sha512.update(residues)
        self.md5.update(residues)
        self.length += len(residues)
        data = self.carry + residues
        cut = len(data) - len(data) % _LINE
        for i in range(0, cut, _LINE):
            self.out.write(data[i:i + _LINE] + b"\n")
        self.carry = data[cut:]

    def close(self) -> None:
        if self.carry:
            self.out.write(self.carry + b"\n")
        self.carry = b""

    @property
    def digest(self) -> str:
        return base64.urlsafe_b64encode(self.sha512.digest()[:24]).decode()


def _store_residues(remote_url: str, scratch: Path, bare: str, length: int) -> Iterator[bytes]:
    """The residues of ``bare`` read from the RefgetStore at ``remote_url``, window by window.

    An http(s) store is read with rgstore's own client (the low-speed guard, netrc credentials): in
    Raw mode by ``_ranged_residues``; in Encoded mode its data file is downloaded into ``scratch``
    as a one-sequence local store (``encodedfetch.local_copy``) that gtars decodes without a request.
    Any other (a template or index path not understood here, ``file://``) is read by gtars, whose
    HTTP requests no low-speed guard watches and which sends no netrc credentials.
    """
    handle = None
    if is_http_url(remote_url):
        # One client per server for the process: reads of many sequences share its connections.
        with kept_client(remote_url) as client:
            found = _sequence_file(client, remote_url, bare)
            if found is not None and found[1].seq_index is None:
                yield from _ranged_residues(client, remote_url, found[0], bare, length)
                return
            if found is not None:
                from .encodedfetch import local_copy

                handle = local_copy(client, remote_url, f"{remote_url}/{found[1].seq_index}", found[0], bare, length,
                                    scratch / "encoded", index_timeout=STORE_READ_TIMEOUT_S,
                                    data_timeout=API_READ_TIMEOUT_S)
    local = handle is not None
    if handle is None:
        handle = _open_remote(scratch / "cache", remote_url)
    for start in range(0, length, _WINDOW):
        try:
            for chunk in handle.stream_sequence(bare, start, min(length, start + _WINDOW)):
                yield chunk.encode()
        except (KeyError, OSError) as exc:
            if local:  # the whole data file is here: it is what does not decode (too short, say)
                why = str(exc).strip("'\"").partition(" (")[2].removesuffix(")") or str(exc)
                raise UpstreamIntegrityError(f"sequence {bare} from {redact(remote_url)} is corrupt (its data file does not "
                                     f"decode: {why}); nothing was cached") from None
            raise _fetch_error(remote_url, bare, length, exc) from None
        except ValueError:  # gtars decodes residues as UTF-8: bytes that are not text at all
            raise UpstreamIntegrityError(
                f"sequence {bare} from {redact(remote_url)} is corrupt (bytes that are not residues); nothing was cached"
            ) from None


def _sequence_file(client: httpx.Client, store_url: str, bare: str) -> tuple[str, _Layout] | None:
    """The URL of ``bare``'s data file and the store's layout if its ``rgstore.json`` is read here (``_layout``); else None.

    The manifest is read once per store URL and reused for ``MANIFEST_TTL_S`` (a ``getseq`` over
    hundreds of sequences, a lazy mirror's fetches: one request, not one per sequence); a fetch that
    fails through a reused manifest forgets it (``fetch_sequence`` retries with a fresh one).
    RemoteError when the manifest cannot be fetched (unreachable, an error status, too slow): never kept.
    """
    now = time.monotonic()
    with _manifests_lock:
        kept = _manifests.get(store_url)
        if kept is not None and now - kept[0] < MANIFEST_TTL_S:
            _manifests.move_to_end(store_url)
            layout = kept[1]
        else:
            kept = None
    if kept is None:
        layout = _layout(client, store_url)
        with _manifests_lock:
            _manifests[store_url] = (now, layout)
            _manifests.move_to_end(store_url)
            while len(_manifests) > _MANIFESTS_KEPT:
                _manifests.popitem(last=False)
    if layout is None:
        return None
    return f"{store_url}/{layout.template.replace('%s2', bare[:2]).replace('%s', bare)}", layout


def _manifest_kept(store_url: str) -> bool:
    """Whether a read of ``store_url`` would reuse a manifest read earlier (``_sequence_file``)."""
    with _manifests_lock:
        kept = _manifests.get(store_url)
    return kept is not None and time.monotonic() - kept[0] < MANIFEST_TTL_S


def _forget_manifest(store_url: str) -> None:
    """Drop ``store_url``'s kept manifest: its next read fetches ``rgstore.json`` again."""
    with _manifests_lock:
        _manifests.pop(store_url, None)


def _layout(client: httpx.Client, store_url: str) -> _Layout | None:
    """Where the store's files are if its ``rgstore.json`` says Raw or Encoded mode and paths read here; else None.

    RemoteError when the manifest cannot be fetched (unreachable, an error status, too slow).
    """

    from .remote import DOC_LIMIT

    url = f"{store_url}/rgstore.json"
    with streamed(client, url, timeout=STORE_READ_TIMEOUT_S) as resp:
        if resp.status_code >= 400:
            raise status_error(resp, redact(f"cannot open the RefgetStore at {store_url}: {url} answered HTTP "
                                            f"{resp.status_code}"))
        body = read_capped(resp, DOC_LIMIT, redact(f"{url}: the answer runs past {DOC_LIMIT:,} bytes, far "
                                                   "more than a RefgetStore manifest"))
    try:
        manifest = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
        return None  # gtars reports what is wrong with it
    if not isinstance(manifest, dict) or manifest.get("mode") not in ("Raw", "Encoded"):
        return None  # gtars reports what is wrong with it
    template, index = manifest.get("seqdata_path_template"), manifest.get("sequence_index")
    if not isinstance(template, str) or not _TEMPLATE.fullmatch(template) \
            or "%s" not in template.replace("%s2", "") or ".." in template.split("/"):
        return None  # a template not understood here is gtars' to read
    if manifest["mode"] == "Raw":
        return _Layout(template, None)
    # Encoded residues are bit-packed by an alphabet the index names: gtars decodes the downloaded file.
    if not isinstance(index, str) or not _TEMPLATE.fullmatch(index) or "%" in index or ".." in index.split("/"):
        return None
    return _Layout(template, index)


def _ranged_residues(client: httpx.Client, store_url: str, seq_url: str, bare: str, length: int) -> Iterator[bytes]:
    """The residues of ``bare`` from its Raw data file ``seq_url``: one ranged GET per window, under the low-speed guard.

    Errors as gtars' are mapped (``_fetch_error``): 404/410 NotFoundError, a file shorter than
    ``length`` IntegrityError, another failure RemoteError. A server ignoring Range (200) is read
    whole on the first window, as the sequence (never more than ``length`` bytes); later, refused.
    A 206 carrying less than its window (a CDN capping ranges) is continued from where it stopped.
    """
    start = 0
    while start < length:
        end = min(length, start + _WINDOW)
        # identity: a Range of a gzip-encoded answer would count compressed bytes.
        with streamed(client, seq_url, timeout=API_READ_TIMEOUT_S,
                      headers={"Range": f"bytes={start}-{end - 1}", "Accept-Encoding": "identity"}) as resp:
            whole = resp.status_code == 200 and start == 0
            if resp.status_code in (404, 410):
                raise NotFoundError(f"the RefgetStore at {redact(store_url)} has no sequence {bare}")
            if resp.status_code == 416:
                raise UpstreamIntegrityError(f"{redact(store_url)}: sequence {bare} is shorter than its recorded "
                                     f"{length} residues")
            if resp.status_code == 200 and not whole:
                raise RemoteError(redact(f"fetching sequence {bare} from {seq_url} failed: the server ignored "
                                         f"the Range header (HTTP 200) for bytes {start}-{end - 1}"))
            if resp.status_code != 206 and not whole:
                raise status_error(resp, redact(f"fetching sequence {bare} from {store_url} failed: "
                                                f"http status: {resp.status_code}"))
            want = length if whole else _answered_bytes(resp, seq_url, bare, start, end, length)
            got = 0
            for piece in iter_body(resp):
                got += len(piece)
                if got > want:
                    raise RemoteError(redact(f"{seq_url} answers more than the {want:,} bytes asked for "
                                             f"({start}-{start + want}); nothing was cached"))
                yield piece
            if got < want and whole:
                raise UpstreamIntegrityError(f"{redact(store_url)}: sequence {bare} is shorter than its recorded "
                                     f"{length} residues")
            if got < want:  # the connection cut: the sequence is asked for again
                raise Transient(redact(f"fetching sequence {bare} from {seq_url} failed: the answer ended "
                                       f"after {got:,} of the {want:,} bytes its Content-Range announced"))
        if whole:
            return
        start += got  # a server (a CDN) may answer fewer bytes than asked: the next request starts where it stopped


def _answered_bytes(resp: httpx.Response, seq_url: str, bare: str, start: int, end: int, length: int) -> int:
    """How many bytes a 206 to ``bytes=start-(end-1)`` carries, from its Content-Range; refuses one that does not fit.

    IntegrityError when the file's announced size is under ``length``; RemoteError for a range
    that does not begin at ``start``, runs past ``end``, or cannot be read.
    """
    header = resp.headers.get("content-range", "")
    shown = _CONTENT_RANGE.fullmatch(header.strip())
    if shown is None or int(shown.group(1)) != start or not start <= int(shown.group(2)) < end:
        raise RemoteError(redact(f"fetching sequence {bare} from {seq_url} failed: asked for bytes "
                                 f"{start}-{end - 1}, it answered Content-Range {header!r}"))
    if shown.group(3) != "*" and int(shown.group(3)) < length:
        raise UpstreamIntegrityError(redact(f"{seq_url}: sequence {bare} is shorter than its recorded {length} residues "
                                    f"(the file holds {int(shown.group(3)):,} bytes)"))
    return int(shown.group(2)) + 1 - start


def _api_residues(server: str, bare: str, length: int) -> Iterator[bytes]:
    """The residues of ``bare`` from an rgstore server's refget route, which fetches them itself if it must."""
    import httpx

    url = f"{server}/sequence/SQ.{bare}"
    with kept_client(server) as client:
        for start in range(0, length, _WINDOW):
            end = min(length, start + _WINDOW)
            try:
                with client.stream("GET", url, params={"start": start, "end": end}, headers={"Accept": _PLAIN},
                                   timeout=httpx.Timeout(API_READ_TIMEOUT_S, connect=5.0)) as resp:
                    if resp.status_code == 404:
                        raise NotFoundError(f"{redact(server)} has no sequence {bare}")
                    if resp.status_code != 200:
                        raise status_error(resp, f"fetching sequence {bare} from {redact(url)} failed: "
                                           f"HTTP {resp.status_code}")
                    window = read_capped(resp, end - start, f"{redact(url)} answers more than the {end - start:,} "
                                         f"residues asked for ({start}-{end}); nothing was cached")
            except httpx.HTTPError as exc:
                raise failed(url, exc) from None
            if len(window) < end - start:  # the answer cut short: the sequence is asked for again
                raise Transient(f"fetching sequence {bare} from {redact(url)} failed: the answer ended after "
                                f"{len(window):,} of the {end - start:,} residues asked for")
            yield window


def fetch_sequence(
    store: Store, remote_url: str, digest: str, length: int, *, md5: str = "",
    progress: ProgressFactory = null_progress, via_refget_api: bool = False,
) -> None:
    """Download sequence ``digest`` (``length`` residues) from the RefgetStore at ``remote_url`` into ours.

    With ``via_refget_api``, ``remote_url`` is an rgstore server and the residues come from its
    ``/sequence`` route (a mirror reading through a lazy mirror: that server fetches them first).
    The residues must hash to ``digest``, number ``length`` and match ``md5`` (when given)
    before anything is cached; otherwise IntegrityError and the local store is unchanged.
    A RefgetStore's manifest read in the last ``MANIFEST_TTL_S`` is reused; when a sequence read
    through it is missing or corrupt, the manifest is read again and the sequence once more (a
    store republished meanwhile, its files moved, is picked up at once, not after the lifetime).
    """
    from .fetchgroup import ready_name
    from .fetchonce import fetching
    from .refgetstore import scratch_dir, strip_sq

    bare = normalise_digest(strip_sq(digest))
    _refuse_unwritable(store, bare)
    # Taken before any other lock (see fetchonce): another process fetching this sequence is waited for, not doubled.
    with fetching(store, bare):
        if _cached_file(store, bare, length):
            return  # another process fetched it while this one waited (or just before it asked)
        with scratch_dir(store, ".remote-") as scratch:
            fasta = scratch / "sequence.fa"
            with open(fasta, "wb") as out:
                _fetch_into(out, remote_url, scratch, bare, length, md5, progress, via_refget_api)
            # Verified: from now on whichever fetch holds the fetch lock first may import it along with its own.
            ready = scratch / ready_name(bare, length)
            os.rename(fasta, ready)
            _import_fetched(store, ready, {bare: length}, progress, gather=True)


def _cached_file(store: Store, bare: str, length: int) -> bool:
    """Whether the RefgetStore holds ``bare``'s whole data file: what a read of it reads (``SequenceFiles``)."""
    from .refgetstore import SequenceFiles

    try:
        return SequenceFiles(store.refget_path).readable(bare, length)
    except RgstoreError:
        return False  # no RefgetStore yet: this fetch creates it


def _fetch_into(out: BinaryIO, remote_url: str, scratch: Path, bare: str, length: int, md5: str,
                progress: ProgressFactory, via_refget_api: bool) -> None:
    """Append ``bare``'s verified FASTA record to ``out``; on any failure ``out`` is cut back to where it was.

    A sequence read through a manifest kept from earlier that is missing or corrupt is read once
    more with the manifest as it is now (the store republished meanwhile: its files moved, Raw
    turned Encoded). One that failed as a blip (``Transient``) is downloaded again from its start,
    as ``rgstore.retries`` allows within the scope's budget; the last failure is raised saying so.
    """
    start = out.tell()
    reused = not via_refget_api and _manifest_kept(remote_url)
    budget, failures = current(), 0
    while True:
        began = time.monotonic()
        try:
            _download(out, remote_url, scratch, bare, length, md5, progress, via_refget_api)
            return
        except BaseException as exc:
            out.seek(start)
            out.truncate()
            if not isinstance(exc, RgstoreError):
                raise
            _forget_manifest(remote_url)  # whatever went wrong, the next read looks at the store afresh
            if isinstance(exc, Transient):
                failures += 1
                try:
                    pause_or_raise(exc, failures, began, budget)
                except RemoteError as last:
                    _name_sequence(last, remote_url, bare)
                    raise last from None
                continue
            if not reused or not isinstance(exc, (NotFoundError, IntegrityError)):
                _name_sequence(exc, remote_url, bare)
                raise
            reused = False


def _name_sequence(exc: RgstoreError, remote_url: str, bare: str) -> None:
    """Reword a RemoteError that does not name ``bare`` (an upstream gone: its manifest unreachable) to name it, and the way out."""
    if isinstance(exc, RemoteError) and bare not in str(exc):
        exc.args = (f"cannot fetch sequence {bare} from {redact(remote_url)} ({exc}); it is not cached here: retry "
                    "once that upstream answers (or, in a store that records genomes itself, add the genome's FASTA: "
                    "`rgstore genome init --fasta FILE --name NAME`)",)


def _import_fetched(store: Store, fasta: Path, lengths: dict[str, int], progress: ProgressFactory = null_progress,
                    *, gather: bool = False) -> None:
    """Import the verified records of ``fasta`` (sequences ``lengths``: bare digest -> length) into the RefgetStore.

    They go in as one carrier collection, removed again once imported (the sequences stay): one
    gtars import and removal per call under one gtars batch lock, which is most of a small
    sequence's cost (~0.1 s each: the lock's release). With ``gather``, the ready FASTAs other
    fetches (threads, processes) left while waiting for the lock go into the same import (a group
    commit: theirs then find their sequences cached); should that import fail, ``fasta`` is
    imported alone, so another fetch's file never fails this one (nor its own: it retries alone).
    """
    from .fetchgroup import gathered
    from .refgetstore import SequenceFiles, fetch_lock, ingest_fasta, open_refget, sequence_readable

    with fetch_lock(store):
        cached: Callable[[str, int], bool] | None = None
        try:
            handle, files = open_refget(store, write=False), SequenceFiles(store.refget_path)
            if all(sequence_readable(handle, files, bare, length) for bare, length in lengths.items()):
                return  # another process cached them while this one downloaded
            cached = partial(sequence_readable, handle, files)
        except NotFoundError:
            pass  # no RefgetStore yet: this fetch creates it
        group = gathered(store, fasta, lengths, cached) if gather else None
        if group is not None:
            try:
                ingest_fasta(store, group[0], progress=progress, then=_expecting(group[1]), keep_collection=False)
                return
            except (RgstoreError, OSError):
                # Maybe another fetch's file (``ingest_fasta`` took its import back), or a full disk: this one's
                # alone, below, without the combined copy of it taking the room its import needs.
                group[0].unlink(missing_ok=True)
        ingest_fasta(store, fasta, progress=progress, then=_expecting(lengths), keep_collection=False)


def _expecting(lengths: dict[str, int]) -> Callable[[Ingested], None]:
    """An ``ingest_fasta`` check: IntegrityError unless the import holds exactly the sequences ``lengths``."""
    def check(ingested: Ingested) -> None:
        if sorted(ingested.sequences) != sorted(f"SQ.{bare}" for bare in lengths):
            raise IntegrityError(
                f"caching sequences {', '.join(lengths)} produced {ingested.sequences}; the RefgetStore disagrees"
            )
    return check


def _download(out: BinaryIO, remote_url: str, scratch: Path, bare: str, length: int, md5: str,
              progress: ProgressFactory, via_refget_api: bool) -> None:
    """Write ``bare``'s residues to ``out`` as one FASTA record; IntegrityError unless they are the sequence."""
    bar = progress(f"fetch {bare[:8]}", total=length, unit="bp")
    residues = (_api_residues(remote_url, bare, length) if via_refget_api
                else _store_residues(remote_url, scratch, bare, length))
    try:
        out.write(f">SQ_{bare}\n".encode())
        writer = _FastaWriter(out)
        for chunk in residues:
            writer.write(chunk)
            bar.update(len(chunk))
        writer.close()
    finally:
        bar.close()
    problems = []
    if writer.digest != bare:
        problems.append(f"its residues hash to {writer.digest}")
    if writer.length != length:
        problems.append(f"{writer.length} residues arrived instead of {length}")
    if md5 and writer.md5.hexdigest() != md5:
        problems.append(f"md5 {writer.md5.hexdigest()} instead of {md5}")
    if problems:
        raise UpstreamIntegrityError(
            f"sequence {bare} from {redact(remote_url)} is corrupt ({'; '.join(problems)}); nothing was cached"
        )


def _refuse_unwritable(store: Store, bare: str) -> None:
    """UnfetchableError when this process cannot cache a fetched sequence (a read-only mount, another user's store).

    Said before any download, in words, where the scratch directory would otherwise fail with a bare OSError.
    """
    for where, path in (("its directory", store.path), ("its refget/ directory", store.refget_path)):
        if path.exists() and not os.access(path, os.W_OK | os.X_OK):
            why = "the store is on a read-only mount" if read_only_mount(path) else f"this user may not write {where}"
            raise UnfetchableError(
                f"sequence SQ.{bare} is not in this store yet and cannot be fetched into it: {why}; fetch it where "
                "the store is writable (a read of it there, or `rgstore mirror pull SOURCE --with-sequences`)"
            )


def _fetch_error(url: str, digest: str, length: int, exc: Exception) -> Exception:
    """gtars reports every read failure as KeyError/OSError; tell the caller which one it was."""
    text = str(exc).strip("'\"")
    if "Invalid stream range" in text:
        return UpstreamIntegrityError(f"{redact(url)}: sequence {digest} is shorter than its recorded {length} residues")
    # gtars says "Sequence not found: X (<why>)" for every failed read: a 500, a timeout or a server
    # ignoring Range too. Only an absent file (404/410, or no reason at all) means the remote lacks it.
    _, _, why = text.partition(" (")
    if "Sequence not found" in text and (not why or re.search(r"http status: (404|410)\b", why)):
        return NotFoundError(f"the RefgetStore at {redact(url)} has no sequence {digest}")
    return RemoteError(redact(f"fetching sequence {digest} from {url} failed: {why.removesuffix(')') or text}"))


_Candidate = tuple[str, int, str, bool]  # (url, length, md5, via the refget API)


def _candidates(store: Store, bare: str, bases: dict[str, str | None] | None = None) -> list[_Candidate]:
    """Where sequence ``bare`` can come from: the remotes of genomes listing it, else a mirror's upstream.

    ``bases`` keeps each upstream's RefgetStore URL once found, for a caller asking for many
    sequences (one probe of the upstream per batch, not one per sequence).
    """
    from .views.genomes import genomes_with_sequence

    with store.read() as txn:
        candidates = []
        for genome, _name, length, md5 in genomes_with_sequence(txn, store.environment, bare):
            record = genome_record(txn, store.environment, genome)
            if record is not None and record.source.remote_url:
                candidates.append((record.source.remote_url, length, md5, False))
        upstream = store.log.meta_get(txn, "replica_of") or store.log.meta_get(txn, "promoted_from")
        if upstream and candidates == [] and (found := next(iter(genomes_with_sequence(
                txn, store.environment, bare)), None)) is not None:
            # A mirror fetches content from the primary it replays (its /store or published refget/).
            from .mirror import upstream_refget_base

            source = upstream.decode()
            if bases is not None and source in bases:
                base = bases[source]
            else:
                base = upstream_refget_base(source)
                if bases is not None:
                    bases[source] = base
            if base:
                # A server is read through its refget route: a lazy mirror serves what it lacks too.
                via_api = base == f"{source.rstrip('/')}/store"
                candidates.append((source.rstrip("/") if via_api else base, found[2], found[3], via_api))
    return list(dict.fromkeys(candidates))


def fetch_missing(store: Store, sequence_digest: str, *, progress: ProgressFactory = null_progress) -> bool:
    """Fetch a sequence the RefgetStore lacks from the remote of a genome that lists it.

    Returns False when no remote genome lists the sequence (the caller's "missing" error
    stands); raises what ``fetch_sequence`` raises when the fetch itself fails. Its retries wait
    ``LAZY_RETRY_BUDGET_S`` at most in all (less if ``$RGSTORE_RETRY_BUDGET_S`` says so): a read is
    waiting on it (a getseq, a server's request). Inside a pull's scope too: an explicit budget is its own.
    """
    from .refgetstore import strip_sq

    with scope(lambda text: note(progress, f"note: {text}"), seconds=min(wait_budget(), LAZY_RETRY_BUDGET_S)):
        return _fetch_listed(store, strip_sq(sequence_digest), progress)


def _fetch_listed(store: Store, bare: str, progress: ProgressFactory,
                  bases: dict[str, str | None] | None = None) -> bool:
    """``fetch_missing`` of bare digest ``bare``, an upstream's RefgetStore URL looked up in ``bases`` (see ``_candidates``)."""
    failure: RgstoreError | None = None
    for url, length, md5, via_api in _candidates(store, bare, bases):
        try:
            fetch_sequence(store, url, bare, length, md5=md5, progress=progress, via_refget_api=via_api)
            return True
        except (RemoteError, NotFoundError) as exc:
            failure = exc  # another remote genome may list the same sequence: try it too
    if failure is not None:
        raise failure
    return False


BATCH_SEQUENCES = 2_000
"""Sequences ``fetch_many`` imports into the RefgetStore at once, at most."""
BATCH_RESIDUES = 256 << 20
"""Residues ``fetch_many`` gathers before importing them, at most (a batch is written to scratch first)."""


def _batch_locks() -> int:
    """Fetch locks ``fetch_many`` holds before importing, at most: one descriptor each, a quarter of this process's allowance."""
    import resource

    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return BATCH_SEQUENCES if soft == resource.RLIM_INFINITY else max(16, soft // 4)


def fetch_many(
    store: Store, digests: Sequence[str], *, progress: ProgressFactory = null_progress,
    batch_sequences: int = BATCH_SEQUENCES, batch_residues: int = BATCH_RESIDUES,
) -> list[str]:
    """Fetch many sequences the RefgetStore lacks, as ``fetch_missing`` does each, importing them in batches.

    Returns the digests no remote lists (not fetched). Each sequence is downloaded and verified on
    its own; a batch of up to ``batch_sequences`` sequences or ``batch_residues`` residues is then
    imported in one gtars call, not one per sequence (an import and its removal cost ~0.2 s whatever
    the size: a 200,000-contig assembly took ~17 hours). A failing sequence raises after the ones
    downloaded before it are imported, so a retry fetches only the rest (should that import fail too,
    the download's error is raised, saying so). Progress: a bar over the
    sequences, and one per download in residues.

    Each sequence's fetch lock (``fetchonce``) is held from before its download until it is imported:
    a single fetch of it meanwhile waits, then finds it cached. One another process is fetching is
    not waited for in the batch (no deadlock with another batch) but after it, as a single fetch:
    usually found cached by then. A sequence found cached once its lock is held is not downloaded.
    Retries share one budget (``$RGSTORE_RETRY_BUDGET_S``; a pull's, within one), each a note on a terminal.
    """
    with scope(lambda text: note(progress, f"note: {text}")):
        return _fetch_many(store, digests, progress, batch_sequences, batch_residues)


def _fetch_many(store: Store, digests: Sequence[str], progress: ProgressFactory, batch_sequences: int,
                batch_residues: int) -> list[str]:
    """``fetch_many``'s work, inside its retry scope."""
    from .fetchonce import Claims
    from .refgetstore import scratch_dir, strip_sq

    wanted = list(dict.fromkeys(normalise_digest(strip_sq(digest)) for digest in digests))
    unlisted: list[str] = []
    if not wanted:
        return unlisted
    _refuse_unwritable(store, wanted[0])
    bar = progress("fetch sequences", total=len(wanted), unit="seq")
    claims, busy, most_locks = Claims(store), [], _batch_locks()
    bases: dict[str, str | None] = {}  # a mirror's upstream probed once, not once per sequence
    try:
        with scratch_dir(store, ".remote-") as scratch:
            fasta = scratch / "batch.fa"
            out = open(fasta, "wb")
            pending: dict[str, int] = {}
            residues = 0
            try:
                one = scratch / "one"
                for bare in wanted:
                    # Each download's own scratch (an Encoded store's data file, gtars' cache): not the whole genome at once.
                    shutil.rmtree(one, ignore_errors=True)
                    one.mkdir()
                    candidates = _candidates(store, bare, bases)
                    if not candidates:
                        unlisted.append(bare)
                        bar.update(1)
                        continue
                    if not claims.claim(bare):
                        busy.append(bare)  # another process is fetching it: looked at once this batch is in
                        continue
                    if _cached_file(store, bare, candidates[0][1]):
                        claims.release(bare)  # another process fetched it just before
                        bar.update(1)
                        continue
                    for i, (url, length, md5, via_api) in enumerate(candidates):
                        try:
                            _fetch_into(out, url, one, bare, length, md5, progress, via_api)
                            break
                        except (RemoteError, NotFoundError):
                            if i == len(candidates) - 1:
                                raise  # another remote genome may list the same sequence: tried them all
                    pending[bare] = length
                    residues += length
                    bar.update(1)
                    if len(pending) >= min(batch_sequences, most_locks) or residues >= batch_residues:
                        out.close()
                        batch, pending, residues = pending, {}, 0
                        _import_fetched(store, fasta, batch, progress)
                        claims.release()  # imported: a single fetch waiting on one finds it cached
                        out = open(fasta, "wb")
            except RgstoreError as exc:
                if pending:  # what arrived before the failure is kept: a retry fetches only the rest
                    out.close()
                    try:
                        _import_fetched(store, fasta, pending, progress)
                    except (RgstoreError, OSError) as late:
                        # The download's error stays the one raised (its kind decides the exit code or status):
                        # it names the sequence that failed, which the import's would hide.
                        count = f"{len(pending)} sequence{'s' if len(pending) != 1 else ''}"
                        exc.args = (f"{exc}; importing the {count} fetched before it failed too: {late}",)
                raise
            finally:
                out.close()
            if pending:
                _import_fetched(store, fasta, pending, progress)
        claims.release()
        for bare in busy:  # its lock waited for holding none: another batch waiting the same way cannot deadlock this one
            if not _fetch_listed(store, bare, progress, bases):
                unlisted.append(bare)
            bar.update(1)
    finally:
        claims.release()  # after the import of what arrived before a failure: see the except above
        bar.close()
    return unlisted

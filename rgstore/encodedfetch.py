"""One sequence of an Encoded-mode RefgetStore over http(s): downloaded by rgstore's client, decoded by gtars offline.

gtars 0.10.0 bit-packs an Encoded store's residues (one alphabet per sequence, named in the
store's sequence index), and its remote handle makes HTTP requests of its own: no low-speed
guard, no netrc credentials. Here rgstore's client (``kept_client``: the guard, netrc Basic auth)
reads the sequence's row of the index and downloads its data file, and both are written out as a
local one-sequence RefgetStore: a manifest of our own (nothing of the remote one but its mode),
an index of that one row, the data file where that manifest's template puts it. gtars opens it
with ``open_local``, which makes no HTTP request, and decodes it; the caller verifies the
residues against the digest as it does for any read.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import NotFoundError, RemoteError
from .httpclient import iter_body, redact, status_error, streamed

if TYPE_CHECKING:
    import httpx

__all__ = ["local_copy"]

_LOCAL_MANIFEST = {
    "version": 1, "seqdata_path_template": "sequences/%s2/%s.seq", "collections_path_template": "collections/%s.rgsi",
    "sequence_index": "sequences.rgsi", "mode": "Encoded", "created_at": "1970-01-01T00:00:00Z",
}
"""The ``rgstore.json`` fields gtars 0.10.0's ``open_local`` requires (measured: without any one it fails to parse)."""
_ALPHABET = re.compile(r"[A-Za-z0-9_]{1,32}")
INDEX_LIMIT = 4 << 30
"""Bytes of a sequence index read at most (millions of rows; an endless answer stops here)."""
ROW_LIMIT = 1 << 20
"""Bytes of one line of a sequence index held at most (a row is a few hundred; one without end stops here)."""


def local_copy(client: httpx.Client, store_url: str, index_url: str, seq_url: str, bare: str, length: int,
               dest: Path, *, index_timeout: float, data_timeout: float) -> Any:
    """A quiet gtars handle on ``dest``, a local store of just ``bare`` (``length`` residues) as ``store_url`` holds it.

    ``index_url`` is the store's sequence index, ``seq_url`` the sequence's data file. gtars makes
    no request. NotFoundError when the index does not list ``bare`` or its data file is absent
    (404/410); RemoteError when either cannot be fetched (unreachable, an error status, too slow,
    a data file larger than ``length`` bytes, which no encoding makes).
    """
    from gtars.refget import RefgetStore  # type: ignore[import-untyped]

    from .refgetstore import gtars_path

    alphabet = _alphabet(client, store_url, index_url, bare, index_timeout)
    shutil.rmtree(dest, ignore_errors=True)  # a retry's (``_fetch_into`` reads once more with a fresh manifest)
    data = dest / "sequences" / bare[:2] / f"{bare}.seq"
    data.parent.mkdir(parents=True)
    _download(client, store_url, seq_url, bare, data, length, data_timeout)
    (dest / "rgstore.json").write_text(json.dumps(_LOCAL_MANIFEST))
    (dest / "sequences.rgsi").write_text("#name\tlength\talphabet\tsha512t24u\tmd5\tdescription\n"
                                         f"{bare}\t{length}\t{alphabet}\t{bare}\t\t\n")
    try:
        handle = RefgetStore.open_local(gtars_path(dest))
    except (OSError, ValueError) as exc:
        raise RemoteError(redact(f"cannot open the RefgetStore at {store_url}: {exc}")) from None
    handle.set_quiet(True)
    return handle


def _alphabet(client: httpx.Client, store_url: str, index_url: str, bare: str, timeout: float) -> str:
    """The alphabet the index at ``index_url`` gives ``bare``, read up to its row; NotFoundError if it has none."""
    columns = {"alphabet": 2, "sha512t24u": 3}  # gtars' order, when the index has no header line
    carry = b""
    with streamed(client, index_url, timeout=timeout) as resp:
        if resp.status_code >= 400:  # a 5xx is a ``Transient``: the caller downloads the sequence again
            raise status_error(resp, redact(f"cannot open the RefgetStore at {store_url}: {index_url} answered "
                                            f"HTTP {resp.status_code}"))
        read = 0
        for piece in iter_body(resp):
            read += len(piece)
            if read > INDEX_LIMIT:
                raise RemoteError(redact(f"{index_url}: the answer runs past {INDEX_LIMIT:,} bytes, more than "
                                         f"a sequence index; no sequence {bare} in it"))
            *lines, carry = (carry + piece).split(b"\n")
            # A line is held whole until its end, and copied once a piece: gigabytes, in quadratic time.
            if len(carry) > ROW_LIMIT or any(len(line) > ROW_LIMIT for line in lines):
                raise RemoteError(redact(f"{index_url}: a line runs past {ROW_LIMIT:,} bytes, more than a row of "
                                         f"a sequence index; no sequence {bare} read from it"))
            for line in lines:
                fields = line.rstrip(b"\r").decode("utf-8", "replace").split("\t")
                if fields[0].startswith("#"):
                    named = {name: i for i, name in enumerate([fields[0][1:], *fields[1:]])}
                    if {"alphabet", "sha512t24u"} <= named.keys():
                        columns = {name: named[name] for name in columns}
                    continue
                if len(fields) > max(columns.values()) and fields[columns["sha512t24u"]] == bare:
                    alphabet = fields[columns["alphabet"]]
                    if not _ALPHABET.fullmatch(alphabet):
                        raise RemoteError(redact(f"cannot read sequence {bare} of the RefgetStore at {store_url}: "
                                                 f"its index gives it the alphabet {alphabet[:40]!r}"))
                    return alphabet  # the rest of the index is not read
    raise NotFoundError(f"the RefgetStore at {redact(store_url)} has no sequence {bare}")


def _download(client: httpx.Client, store_url: str, seq_url: str, bare: str, dest: Path, length: int,
              timeout: float) -> None:
    """Write the data file ``seq_url`` to ``dest``; no encoding packs ``length`` residues into more than ``length`` bytes."""
    with streamed(client, seq_url, timeout=timeout, headers={"Accept-Encoding": "identity"}) as resp, \
            open(dest, "wb") as out:
        if resp.status_code in (404, 410):
            raise NotFoundError(f"the RefgetStore at {redact(store_url)} has no sequence {bare}")
        if resp.status_code != 200:
            raise status_error(resp, redact(f"fetching sequence {bare} from {store_url} failed: "
                                            f"http status: {resp.status_code}"))
        got = 0
        for piece in iter_body(resp):
            got += len(piece)
            if got > length:
                raise RemoteError(redact(f"{seq_url} answers more than the {length:,} bytes sequence {bare} "
                                         "can take in any encoding; nothing was cached"))
            out.write(piece)

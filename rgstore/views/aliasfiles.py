"""The alias view's projection into the RefgetStore: alias TSVs and the manifest's namespace lists.

gtars opened on ``STORE/refget`` resolves aliases from ``aliases/{collections,sequences}/<ns>.tsv``
(``alias<TAB>digest`` lines) and loads only the namespaces ``rgstore.json`` lists, with an
``aliases_digest`` over the files. These helpers make those files match the alias view.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..diskspace import os_error_text
from ..errors import ConflictError, ExternalSyncError
from ..files import atomic_write_bytes
from ..refgetlock import refget_write_lock
from ..sharing import retry_condition
from .aliasnames import COLLECTION, DIGEST_RE, NAME_RE, NAMESPACE_RE, SEQUENCE, Kind

__all__ = ["CannotPatch", "alias_file_drift", "patched_tsv", "render_tsvs", "tsv_path", "write_alias_files"]

_TSV_DIR: dict[Kind, str] = {COLLECTION: "collections", SEQUENCE: "sequences"}
_MANIFEST_KEY: dict[Kind, str] = {
    COLLECTION: "collection_alias_namespaces",
    SEQUENCE: "sequence_alias_namespaces",
}
_SYNC_LOCK_TIMEOUT_S = 120
# A patch costs a binary search per changed alias, a render a pass over every alias of the namespace.
_PATCH_RATIO, _PATCH_MIN = 8, 64


def render_tsvs(rows: Iterator[tuple[str, str, str, int]]) -> dict[str, bytes]:
    out: dict[str, list[str]] = {}
    for namespace, name, digest, _ in rows:
        # Raw appends can put anything on an alias stream; only well-formed aliases become
        # TSV lines, and only safe namespaces become file names.
        if NAMESPACE_RE.fullmatch(namespace) and NAME_RE.fullmatch(name) and DIGEST_RE.fullmatch(digest):
            out.setdefault(namespace, []).append(f"{name}\t{digest}\n")
    return {ns: "".join(lines).encode() for ns, lines in out.items()}


def tsv_path(refget: Path, kind: Kind, namespace: str) -> Path:
    """The alias TSV of one namespace of one kind."""
    return refget / "aliases" / _TSV_DIR[kind] / f"{namespace}.tsv"


class CannotPatch(Exception):
    """``patched_tsv`` cannot edit this file in place: render the namespace from the view instead."""


def patched_tsv(path: Path, targets: Mapping[str, str | None]) -> bytes | None:
    """``path``'s bytes with the lines of ``targets``' aliases set to their digests (None: no line).

    The TSV lists a namespace's aliases sorted by name bytes (``render_tsvs`` order), so each
    line is found by binary search and the result is what rendering the whole namespace gives,
    provided the file matched the view except for these aliases: a command pays for the lines it
    changes and one copy of the file, not a pass over every alias of the namespace. Returns None
    when no line is left (the file goes). Raises CannotPatch when the file is missing or
    malformed, or when so many lines change that rendering the namespace is cheaper.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CannotPatch(f"{path} is missing") from None
    if (data and not data.endswith(b"\n")) or len(targets) * _PATCH_RATIO > data.count(b"\n") + _PATCH_MIN:
        raise CannotPatch(f"{path}: render instead")
    pieces: list[bytes] = []
    done = 0
    for name, encoded in sorted(((n, n.encode()) for n in targets), key=lambda item: item[1]):
        if not NAME_RE.fullmatch(name):
            continue  # never a line (render_tsvs skips it), and not comparable with the file's names
        start, end = _find_line(data, encoded)
        digest = targets[name]
        pieces += (data[done:start], f"{name}\t{digest}\n".encode() if digest and DIGEST_RE.fullmatch(digest) else b"")
        done = end
    pieces.append(data[done:])
    return b"".join(pieces) or None


def _find_line(data: bytes, name: bytes) -> tuple[int, int]:
    """(start, end) of the line of ``name`` in a sorted TSV, or (start, start) where it would go."""
    lo, hi = 0, len(data)  # line starts: names before lo sort below ``name``, from hi on not
    while lo < hi:
        newline = data.rfind(b"\n", lo, (lo + hi) // 2)
        start = newline + 1 if newline >= 0 else lo
        end = data.index(b"\n", start) + 1
        tab = data.find(b"\t", start, end)
        if tab < 0:
            raise CannotPatch("a line without a tab")
        here = data[start:tab]
        if here == name:
            return start, end
        if here < name:
            lo = end
        else:
            hi = start
    return lo, lo


def write_alias_files(
    refget: Path, wanted: Callable[[], tuple[int, dict[Kind, dict[str, bytes | None]]]],
    current_head: Callable[[], int], *, complete: bool = True, reads_files: bool = False,
) -> None:
    """Make the RefgetStore's alias TSVs exactly ``wanted()`` (log head, kind -> namespace -> file bytes).

    Files are replaced atomically (temp file + rename); a namespace without aliases (None, or
    absent when ``complete``) loses its file; with ``complete=False`` namespaces that ``wanted``
    does not name are left as they are. The change happens under the RefgetStore's writer lock
    (the one gtars commits take), and ``wanted`` is re-read under it whenever ``current_head()``
    has moved, before and after writing, so of two processes syncing at once the newer state is
    the one left on disk. When the store has a manifest, its namespace lists and
    ``aliases_digest`` are refreshed too: gtars 0.10.0 loads only the alias namespaces
    ``rgstore.json`` lists.
    Nothing is touched when everything already agrees. ``reads_files``: ``wanted`` builds on the
    files themselves (``patched_tsv``), so it is read again once the lock is held, when no other
    writer can be replacing them.
    """
    manifest = refget / "rgstore.json"
    head, files_now = wanted()
    if _files_agree(refget, files_now, complete) and not (manifest.exists() and _manifest_stale(manifest, refget)):
        return
    refget.mkdir(parents=True, exist_ok=True)
    try:
        with refget_write_lock(refget, "rgstore-alias-sync", timeout=_SYNC_LOCK_TIMEOUT_S):
            fresh = not reads_files
            while True:
                if current_head() != head or not fresh:  # another writer appended since this rendering
                    fresh = True
                    head, files_now = wanted()
                for kind, files in files_now.items():
                    _sync_dir(refget / "aliases" / _TSV_DIR[kind], files, complete)
                if manifest.exists() and _manifest_stale(manifest, refget):
                    _rewrite_manifest(manifest, refget)
                # A writer that committed while we wrote may have found the old files equal to its
                # state and skipped the lock: check again after writing, so the newest state wins.
                if current_head() == head:
                    break
    except ConflictError as exc:
        raise ExternalSyncError(
            f"alias change recorded, but the RefgetStore alias files were not refreshed ({exc}); "
            "run `rgstore rebuild` once the RefgetStore is free"
        ) from None
    except OSError as exc:  # e.g. a full disk: the change is committed, its mark makes the next writable open retry
        raise ExternalSyncError(
            f"alias change recorded, but the RefgetStore alias files were not refreshed ({os_error_text(exc)}); "
            f"the next command that writes the store refreshes them {retry_condition(exc)} (or run `rgstore rebuild`)"
        ) from None


def _files_agree(refget: Path, wanted: dict[Kind, dict[str, bytes | None]], complete: bool = True) -> bool:
    return not alias_file_drift(refget, wanted, complete)


def alias_file_drift(refget: Path, wanted: dict[Kind, dict[str, bytes | None]], complete: bool = True) -> list[Path]:
    """TSV files that differ from ``wanted``: missing, stale, or (when ``complete``) of a namespace without aliases."""
    out: list[Path] = []
    for kind, files in wanted.items():
        directory = refget / "aliases" / _TSV_DIR[kind]
        if complete:
            existing = {p.stem for p in directory.glob("*.tsv")} if directory.exists() else set()
            out.extend(directory / f"{ns}.tsv" for ns in sorted(existing - {n for n, c in files.items() if c is not None}))
        for ns, content in files.items():
            path = directory / f"{ns}.tsv"
            if (path.exists() if content is None else not path.exists() or path.read_bytes() != content):
                out.append(path)
    return out


def _sync_dir(directory: Path, files: dict[str, bytes | None], complete: bool = True) -> None:
    existing = {p.stem: p for p in directory.glob("*.tsv")} if directory.exists() else {}
    for namespace, content in files.items():
        path = directory / f"{namespace}.tsv"
        if content is None:
            path.unlink(missing_ok=True)
            continue
        if namespace in existing and path.read_bytes() == content:
            continue
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, content)
    if complete:
        for namespace, path in existing.items():
            if namespace not in files:
                path.unlink()


def _alias_state(refget: Path) -> tuple[dict[Kind, list[str]], str | None]:
    """Namespaces present per kind, and gtars' aliases_digest (sha256 over sorted TSV paths)."""
    namespaces: dict[Kind, list[str]] = {}
    paths: list[Path] = []
    for kind, sub in _TSV_DIR.items():
        found = sorted((refget / "aliases" / sub).glob("*.tsv"))
        namespaces[kind] = [p.stem for p in found]
        paths += found
    if not paths:
        return namespaces, None
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.read_bytes())
    return namespaces, digest.hexdigest()


def _manifest_data(manifest: Path) -> dict[str, Any] | None:
    """``rgstore.json`` as a JSON object; None if it is damaged (verify names it; the alias sync leaves it be)."""
    try:
        data = json.loads(manifest.read_bytes())
    except ValueError:  # bad JSON or bad UTF-8: hand-edited or cut short
        return None
    return data if isinstance(data, dict) else None


def _manifest_stale(manifest: Path, refget: Path) -> bool:
    data = _manifest_data(manifest)
    if data is None:
        return False  # nothing can be refreshed in it: gtars refuses it, and verify says how to recreate it
    namespaces, digest = _alias_state(refget)
    return data.get("aliases_digest") != digest or any(
        sorted(data.get(_MANIFEST_KEY[kind], [])) != names for kind, names in namespaces.items()
    )


def _rewrite_manifest(manifest: Path, refget: Path) -> None:
    data = _manifest_data(manifest)
    if data is None:
        return
    namespaces, digest = _alias_state(refget)
    for kind, names in namespaces.items():
        if names:
            data[_MANIFEST_KEY[kind]] = names
        else:
            data.pop(_MANIFEST_KEY[kind], None)  # gtars omits empty lists
    if digest is None:
        data.pop("aliases_digest", None)
    else:
        data["aliases_digest"] = digest
    data["modified"] = datetime.now(UTC).isoformat()
    atomic_write_bytes(manifest, json.dumps(data, indent=2).encode())

"""A level-2 entry built in its staging directory: checked downloads in ``raw/``, gunzip in ``decompressed/``.

The staging directory ``cache/.tmp-<key>/`` is deterministic, so an interrupted run leaves its
``.part`` files where the next run (holding the same entry lock) resumes them. Nothing in it is
trusted until checked: a raw file left complete by an earlier run is re-verified against the
upstream checksum, and decompressed files are always rebuilt (temp file, then rename). The
caller renames the whole directory into place and records the entry. ``intact`` checks a
published entry against its recorded files: sizes for a cheap hit test, and the sha256 of the
decompressed inputs before anything is extracted from them.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .blobs import BlobInfo, hash_file
from .cacheupstream import LOCAL_NAMES, UpstreamPlan
from .checksums import verify_file
from .diskspace import refused_write
from .download import DEFAULT_RETRIES, download
from .environment import fsync_dir
from .errors import IntegrityError
from .events import FileRef
from .progress import ProgressFactory, null_progress

if TYPE_CHECKING:
    import httpx

__all__ = ["staging_dir", "build_raw", "gunzip", "intact", "sha256_matches"]

_CHUNK = 1 << 20


def staging_dir(cache_root: Path, key: str) -> Path:
    """Where an entry is assembled before its directory is renamed into place."""
    return cache_root / f".tmp-{key}"


def gunzip(src: Path, dest: Path, *, progress: ProgressFactory = null_progress) -> BlobInfo:
    """Decompress ``src`` (gzip, multi-member, BGZF) into ``dest`` via a temp file; returns its checksums."""
    with open(src, "rb") as probe:
        if probe.read(2) != b"\x1f\x8b":
            raise IntegrityError(f"{src.name} is not gzip-compressed; nothing was cached")
    tmp = dest.with_name(f".tmp-{dest.name}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    sha, md5, size = hashlib.sha256(), hashlib.md5(), 0
    bar = progress(f"gunzip {src.name}", total=src.stat().st_size, unit="B")
    try:
        with open(src, "rb") as raw, gzip.GzipFile(fileobj=raw) as gz, open(tmp, "wb") as out:
            seen = 0
            while chunk := gz.read(_CHUNK):
                out.write(chunk)
                sha.update(chunk)
                md5.update(chunk)
                size += len(chunk)
                pos = raw.tell()
                bar.update(pos - seen)
                seen = pos
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest)
    except (EOFError, OSError, zlib.error) as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, gzip.BadGzipFile):
            # A bare ENOSPC/EDQUOT/EFBIG names no file: say which disk is full (the download stays for a rerun).
            raise refused_write(exc, dest.parent, f"the decompressed {dest.name}") or exc from None
        raise IntegrityError(f"{src.name} does not decompress ({exc}); nothing was cached") from None
    finally:
        bar.close()
    return BlobInfo(sha256=sha.hexdigest(), md5=md5.hexdigest(), size=size)


def intact(
    directory: Path,
    files: dict[str, FileRef],
    *,
    deep: bool = False,
    progress: ProgressFactory = null_progress,
) -> bool:
    """Whether ``directory`` holds every recorded file at its size; with ``deep``, decompressed ones at their sha256.

    The deep check reads the decompressed genome and GTF once (what extraction reads); the raw
    ``.gz`` copies are not re-hashed here (``cache verify`` does that).
    """
    for rel, ref in files.items():
        try:
            if (directory / rel).stat().st_size != ref.size:
                return False
        except (FileNotFoundError, NotADirectoryError):  # a file in a directory's place is damage too
            return False
    if not deep:
        return True
    for rel, ref in sorted(files.items()):
        if not rel.startswith("decompressed/"):
            continue
        if not sha256_matches(directory / rel, ref, progress=progress):
            return False
    return True


def sha256_matches(path: Path, ref: FileRef, *, progress: ProgressFactory = null_progress) -> bool:
    """Whether ``path`` exists and hashes to ``ref``'s sha256 (a ``verify <name>`` bar while it reads)."""
    sha = hashlib.sha256()
    bar = progress(f"verify {path.name}", total=ref.size, unit="B")
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                sha.update(chunk)
                bar.update(len(chunk))
    except (FileNotFoundError, IsADirectoryError):
        return False
    finally:
        bar.close()
    return sha.hexdigest() == ref.sha256


def _ref(name: str, info: BlobInfo) -> FileRef:
    return FileRef(name=name, sha256=info.sha256, md5=info.md5, size=info.size)


def build_raw(
    cache_root: Path,
    key: str,
    plan: UpstreamPlan,
    client: httpx.Client,
    *,
    progress: ProgressFactory = null_progress,
    retries: int = DEFAULT_RETRIES,
    check_annotation: Callable[[Path], None] | None = None,
) -> tuple[Path, dict[str, FileRef]]:
    """Fill the entry's staging directory; returns it and relative path -> FileRef for every file.

    Raises IntegrityError on any checksum mismatch (the caller discards the staging directory)
    and RemoteError when the network gives up (the caller keeps it, so the next run resumes).
    ``check_annotation``, if given, is called with the verified raw GTF before the genome is
    fetched (the GTF then comes first), so a refusal it raises costs no genome download.
    """
    staging = staging_dir(cache_root, key)
    (staging / "raw").mkdir(parents=True, exist_ok=True)
    shutil.rmtree(staging / "decompressed", ignore_errors=True)
    refs: dict[str, FileRef] = {}
    order = sorted(plan.files, key=lambda f: f.role != "annotation") if check_annotation else plan.files
    for remote in order:
        dest = staging / "raw" / f"{LOCAL_NAMES[remote.role]}.gz"
        info: BlobInfo | None = None
        if dest.exists():  # finished by an interrupted earlier run; re-check before trusting it
            info = hash_file(dest)
            try:
                verify_file(dest, remote.expected, md5=info.md5, what=remote.url)
            except IntegrityError:
                dest.unlink()
                info = None
        if info is None:
            info = download(
                client, remote.url, dest, expected=remote.expected, progress=progress, retries=retries
            )
        refs[remote.role] = _ref(remote.name, info)
        if remote.role == "annotation" and check_annotation is not None:
            check_annotation(dest)
    # Recorded in the plan's order, whichever was fetched first.
    files = {f"raw/{LOCAL_NAMES[f.role]}.gz": refs[f.role] for f in plan.files}
    for remote in plan.files:
        name = LOCAL_NAMES[remote.role]
        info = gunzip(staging / "raw" / f"{name}.gz", staging / "decompressed" / name, progress=progress)
        files[f"decompressed/{name}"] = _ref(name, info)
    fsync_dir(staging / "decompressed")
    return staging, files

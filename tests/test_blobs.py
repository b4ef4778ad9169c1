"""Claims about the blob store: content-addressed, verified on every read, no temp file left behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rgstore.blobs import BlobStore
from rgstore.errors import IntegrityError, NotFoundError

DATA = b"ACGT" * 1000


def _corrupt(blobs: BlobStore, sha: str) -> Path:
    path = blobs.path(sha)
    data = bytearray(path.read_bytes())
    data[7] ^= 0x20
    path.write_bytes(bytes(data))
    return path


def test_bytes_not_hashing_to_the_expected_sha256_are_refused_and_leave_nothing(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    wanted = "ab" * 32
    with pytest.raises(IntegrityError, match=f"blob {wanted} fails its sha256"):
        blobs.put_chunks([DATA], expected=wanted)
    assert list(blobs.all()) == [] and blobs.stale_temp_files() == [] and blobs.strays() == []


def test_storing_a_blob_again_keeps_one_file_refreshes_its_mtime_and_leaves_no_temp_file(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    info, new = blobs.put_bytes(DATA)
    assert new and info.size == len(DATA)
    os.utime(blobs.path(info.sha256), (1_000_000, 1_000_000))  # old enough for gc's grace period
    again, new = blobs.put_bytes(DATA)
    assert again == info and not new
    assert blobs.path(info.sha256).stat().st_mtime > 1_000_000  # the running command's blob is young again
    assert list(blobs.all()) == [info.sha256] and blobs.stale_temp_files() == []


def test_storing_a_blob_over_a_cut_short_copy_replaces_it(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    info, _ = blobs.put_bytes(DATA)
    blobs.path(info.sha256).write_bytes(DATA[:100])
    _, new = blobs.put_bytes(DATA)
    assert new and blobs.verify(info.sha256) == info


def test_storing_a_blob_over_a_copy_damaged_at_the_same_size_repairs_it(tmp_path: Path) -> None:
    """Bit rot keeps the size: re-adding the file must not report success over a blob every read refuses."""
    blobs = BlobStore(tmp_path / "blobs")
    info, _ = blobs.put_bytes(DATA)
    _corrupt(blobs, info.sha256)
    with pytest.raises(IntegrityError):
        blobs.verify(info.sha256)
    again, new = blobs.put_bytes(DATA)
    assert again == info and new
    assert blobs.read_bytes(info.sha256) == DATA and blobs.stale_temp_files() == []


def test_reading_or_copying_a_corrupt_blob_raises_and_copies_nothing(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    info, _ = blobs.put_bytes(DATA)
    assert blobs.read_bytes(info.sha256) == DATA
    _corrupt(blobs, info.sha256)
    with pytest.raises(IntegrityError, match="checksum mismatch on read"):
        blobs.read_bytes(info.sha256)
    dest = tmp_path / "out" / "file.txt"
    with pytest.raises(IntegrityError, match="checksum mismatch on copy"):
        blobs.copy_to(info.sha256, dest)
    assert not dest.parent.exists()  # nor the folder made for it
    with pytest.raises(NotFoundError):
        blobs.read_bytes("cd" * 32)


def test_a_blob_read_through_a_handle_whose_store_moved_away_says_the_store_moved_not_blob_missing(
    tmp_path: Path,
) -> None:
    from rgstore.errors import StoreClosedError
    from rgstore.store import Store

    store = Store.open(tmp_path / "s")
    try:
        sha = store.blobs.put_bytes(b"kept")[0].sha256
        (tmp_path / "s").rename(tmp_path / "moved")
        for read in (store.blobs.read_bytes, store.blobs.verify, store.blobs.ensure):
            with pytest.raises(StoreClosedError, match="deleted, moved or replaced"):
                read(sha)
    finally:
        store.close()
    assert not (tmp_path / "s").exists()  # nothing recreated where the store was

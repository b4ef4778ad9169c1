"""Claims about a mirror pulled without ``--with-blobs``: it fetches a refpkg file's blob from its upstream on first
read (CLI, Python API, its own server), verified by sha256, and says in one line what to do when it cannot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from rgstore.errors import IntegrityError, NotFoundError
from rgstore.mirror import pull
from rgstore.replay import export_log
from rgstore.segments import publish, publish_blobs
from rgstore.store import Store
from tests.conftest import REPO
from tests.privileges import modes_bind_prefix
from tests.server_fixture import running_server


def _primary(tmp_path: Path) -> bytes:
    """A primary at tmp_path/primary holding refpkg ``pkg`` with one file, ``tree``; the file's bytes."""
    tree = tmp_path / "tree.nwk"
    tree.write_text("(a:0.1,b:0.2);\n" * 1000)
    with Store.open(tmp_path / "primary") as primary:
        primary.refpkgs.create("pkg", locus="16S", files=[("tree", tree)])
    return tree.read_bytes()


def _rgstore(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rgstore_cli", "--store", str(store), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def _stored_files(store: Path) -> list[Path]:
    return [f for f in (store / "blobs").rglob("*") if f.is_file()]


def test_a_mirror_pulled_without_blobs_fetches_a_refpkg_file_on_first_read_by_cli_and_by_its_own_server(
        tmp_path: Path) -> None:
    want = _primary(tmp_path)
    with running_server(tmp_path / "primary") as upstream:
        for mirror in ("cli", "served"):
            pulled = _rgstore(tmp_path / mirror, "mirror", "pull", upstream.url)
            assert pulled.returncode == 0, pulled.stderr
            assert _stored_files(tmp_path / mirror) == []  # the events only, as the audit found
        rp = _rgstore(tmp_path / "cli", "refpkg", "rp", "pkg", "tree")
        assert rp.returncode == 0, rp.stderr
        assert Path(rp.stdout.strip()).read_bytes() == want
        # Its own plain (not --follow) server fetches from the upstream too, rather than answering 503 forever.
        with running_server(tmp_path / "served") as served:
            got = httpx.get(f"{served.url}/refpkgs/pkg/files/tree", timeout=120)
            assert (got.status_code, got.content) == (200, want), got.text
    for mirror in ("cli", "served"):
        verified = _rgstore(tmp_path / mirror, "verify")
        assert verified.returncode == 0 and verified.stdout.startswith("ok"), verified.stdout + verified.stderr


def test_a_lazy_mirrors_server_fetches_referenced_blobs_for_a_mirror_of_it_and_never_an_unreferenced_one(
        tmp_path: Path) -> None:
    want = _primary(tmp_path)
    [blob] = _stored_files(tmp_path / "primary")
    unreferenced = "0" * 63 + "1"
    with running_server(tmp_path / "primary", extra_args=["--access-log"]) as upstream:
        pulled = _rgstore(tmp_path / "a", "mirror", "pull", upstream.url)
        assert pulled.returncode == 0 and _stored_files(tmp_path / "a") == [], pulled.stderr
        with running_server(tmp_path / "a") as a:  # plain, not --follow
            # B pulls its blobs from A, which has none yet: A fetches each one its log references.
            pulled = _rgstore(tmp_path / "b", "mirror", "pull", a.url, "--with-blobs")
            assert pulled.returncode == 0, pulled.stderr
            got = httpx.get(f"{a.url}/blobs/{unreferenced}", timeout=120)
            assert got.status_code == 404, got.text
    verified = _rgstore(tmp_path / "b", "verify")
    assert verified.returncode == 0 and verified.stdout.startswith("ok"), verified.stdout + verified.stderr
    assert [f.read_bytes() for f in _stored_files(tmp_path / "b")] == [want]
    assert f"GET /blobs/{blob.name} " in upstream.log(), upstream.log()  # A did ask its upstream for that one
    assert unreferenced not in upstream.log()  # a sha256 the log does not name is never asked upstream


def test_a_mirror_of_published_segments_fetches_the_blobs_an_export_reads(tmp_path: Path) -> None:
    want = _primary(tmp_path)
    with Store.open(tmp_path / "primary") as primary:
        publish(primary, tmp_path / "pub")
        publish_blobs(primary, tmp_path / "pub")
    with Store.open(tmp_path / "mirror") as mirror:
        assert pull(mirror, str(tmp_path / "pub")).blobs_fetched == 0
        mirror.refpkgs.export("pkg", tmp_path / "out", fmt="dir")
        assert (tmp_path / "out" / "tree.nwk").read_bytes() == want
        assert mirror.verify().ok


def test_a_mirror_of_an_export_file_says_to_pull_with_blobs_and_its_server_promises_no_retry(tmp_path: Path) -> None:
    _primary(tmp_path)
    with Store.open(tmp_path / "primary") as primary:
        export_log(primary, tmp_path / "log.rglog")
    with Store.open(tmp_path / "mirror") as mirror:
        pull(mirror, str(tmp_path / "log.rglog"))
    rp = _rgstore(tmp_path / "mirror", "refpkg", "rp", "pkg", "tree")
    assert rp.returncode != 0 and rp.stdout == ""
    [line] = rp.stderr.splitlines()
    assert "exported log file" in line and "--with-blobs" in line, line
    with running_server(tmp_path / "mirror") as served:
        got = httpx.get(f"{served.url}/refpkgs/pkg/files/tree", timeout=120)
    assert got.status_code == 502 and "Retry-After" not in got.headers, (got.status_code, got.headers)
    assert "exported log file" in got.json()["detail"] and "--with-blobs" in got.json()["detail"]
    assert _stored_files(tmp_path / "mirror") == []


def test_a_blob_the_upstream_serves_corrupt_is_an_integrity_error_a_502_when_served_and_nothing_is_stored(tmp_path: Path) -> None:
    _primary(tmp_path)
    pub = tmp_path / "pub"
    with Store.open(tmp_path / "primary") as primary:
        publish(primary, pub)
        publish_blobs(primary, pub)
    with Store.open(tmp_path / "mirror") as mirror:
        pull(mirror, str(pub))
        [blob] = _stored_files(pub)
        blob.write_bytes(blob.read_bytes().replace(b"a:0.1", b"a:0.9", 1))
        with pytest.raises(IntegrityError, match=f"blob {blob.name} from {pub} fails its sha256"):
            mirror.refpkgs.resource_path("pkg", "tree")
        assert _stored_files(tmp_path / "mirror") == []  # no blob, no temp file
    with running_server(tmp_path / "mirror") as served:
        got = httpx.get(f"{served.url}/refpkgs/pkg/files/tree", timeout=120)
    # The upstream's bytes are bad, not this store: a bad gateway, and asking again gets the same bytes.
    assert got.status_code == 502 and "Retry-After" not in got.headers, (got.status_code, got.headers)
    assert f"blob {blob.name} from {pub} fails its sha256" in got.json()["detail"], got.text
    assert _stored_files(tmp_path / "mirror") == []


def test_a_primary_missing_a_blob_fetches_nothing_and_says_it_is_missing(tmp_path: Path) -> None:
    _primary(tmp_path)
    [blob] = _stored_files(tmp_path / "primary")
    blob.unlink()
    with Store.open(tmp_path / "primary") as primary, pytest.raises(NotFoundError, match="is missing from"):
        primary.refpkgs.resource_path("pkg", "tree")


def test_a_mirror_that_may_not_write_its_blobs_says_in_one_line_the_blob_cannot_be_fetched_here(
        tmp_path: Path) -> None:
    prefix = modes_bind_prefix()  # as root, chmod binds only with CAP_DAC_OVERRIDE dropped
    _primary(tmp_path)
    with Store.open(tmp_path / "primary") as primary:
        publish(primary, tmp_path / "pub")
        publish_blobs(primary, tmp_path / "pub")
    with Store.open(tmp_path / "mirror") as mirror:
        pull(mirror, str(tmp_path / "pub"))
    blobs = tmp_path / "mirror" / "blobs"
    blobs.mkdir(exist_ok=True)
    blobs.chmod(0o555)
    try:
        rp = subprocess.run([*prefix, sys.executable, "-m", "rgstore_cli", "--store", str(tmp_path / "mirror"),
                             "refpkg", "rp", "pkg", "tree"], cwd=REPO, capture_output=True, text=True, timeout=120)
    finally:
        blobs.chmod(0o755)
    assert rp.returncode != 0 and rp.stdout == ""
    [line] = rp.stderr.splitlines()  # not a bare "Permission denied": which blob, why, and where it can be fetched
    assert "cannot be fetched into it" in line and f"may not write {blobs}" in line and "--with-blobs" in line, line
    assert _stored_files(tmp_path / "mirror") == []

"""Claims about a lazy mirror's server whose upstream (published segments on a real loopback HTTP host) serves
content failing its recorded checksum, or lacks it: every route that fetches on first read answers 502 in one line
naming what failed, with no Retry-After (asking again gets the same bytes), stores nothing, and the CLI says so in
one line with a non-zero exit."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from rgstore.cachecopy import publish_cache
from rgstore.mirror import pull
from rgstore.segments import publish, publish_blobs, publish_refget
from rgstore.store import Store
from tests.conftest import REPO
from tests.httpfixture import serve_directory
from tests.server_fixture import running_server
from tests.upstream_fixture import ENSEMBL, UpstreamServer, base, req

TINY = REPO / "rgstore" / "data" / "tiny.fa"


@dataclass
class Published:
    """A primary's content published under ``pub`` (served over HTTP) and a lazy mirror of that host."""

    pub: Path
    mirror: Path
    blob: Path
    cache_key: str
    cache_relative: str
    cache_file: Path
    sequence: str
    """Bare digest of a sequence the mirror has not fetched."""
    seq_file: Path


def _flip(path: Path) -> None:
    """Change one byte of ``path`` (same length: only the checksum tells)."""
    data = bytearray(path.read_bytes())
    data[1] = ord("C") if data[1] != ord("C") else ord("G")
    path.write_bytes(bytes(data))


def _stored(store: Path) -> list[Path]:
    """Every file the mirror holds under blobs/, cache/ and refget/sequences/ (temp files included)."""
    return [f for sub in ("blobs", "cache", "refget/sequences") for f in (store / sub).rglob("*") if f.is_file()]


@pytest.fixture
def published(server: UpstreamServer, tmp_path: Path) -> Iterator[tuple[Published, str]]:
    """The published directory, a lazy mirror pulled from its HTTP host (events only), and the host's URL."""
    tree = tmp_path / "tree.nwk"
    tree.write_text("(a:0.1,b:0.2);\n" * 1000)
    pub = tmp_path / "pub"
    with Store.open(tmp_path / "primary") as primary:
        primary.refpkgs.create("pkg", locus="16S", files=[("tree", tree)])
        primary.genomes.init(TINY, ["tiny"])
        [built] = primary.cache.regions(req(ENSEMBL, "gene"), base_url=base(server, "ensembl"))
        entry = primary.cache.entry(built.key)
        assert entry is not None
        [relative] = entry.files
        sequence = primary.genomes.show("tiny").sequences[0].removeprefix("SQ.")
        publish(primary, pub)
        publish_blobs(primary, pub)
        publish_cache(primary, pub)
        publish_refget(primary, pub)
    [blob] = [f for f in (pub / "blobs").rglob("*") if f.is_file()]
    [seq_file] = (pub / "refget").rglob(f"{sequence}.seq")
    found = Published(pub=pub, mirror=tmp_path / "mirror", blob=blob, cache_key=built.key, cache_relative=relative,
                      cache_file=pub / "cache" / entry.path / relative, sequence=sequence, seq_file=seq_file)
    with serve_directory(pub) as host:
        with Store.open(found.mirror) as mirror:
            pull(mirror, host.url)  # lazy: events only
        assert _stored(found.mirror) == []
        yield found, host.url


def _assert_bad_gateway(got: httpx.Response, *words: str) -> None:
    assert got.status_code == 502 and "Retry-After" not in got.headers, (got.status_code, got.headers, got.text)
    [line] = got.json()["detail"].splitlines()
    assert all(w in line for w in words), line


def test_a_served_lazy_mirror_answers_502_for_every_fetch_its_upstream_serves_corrupt_and_stores_nothing(
        published: tuple[Published, str]) -> None:
    p, _host = published
    for path in (p.blob, p.cache_file, p.seq_file):
        _flip(path)
    sha = p.blob.name
    with running_server(p.mirror) as served:
        _assert_bad_gateway(httpx.get(f"{served.url}/refpkgs/pkg/files/tree", timeout=120),
                            f"blob {sha} ", "fails its sha256", "not stored")
        _assert_bad_gateway(httpx.get(f"{served.url}/blobs/{sha}", timeout=120),
                            f"blob {sha} ", "fails its sha256", "not stored")
        _assert_bad_gateway(
            httpx.get(f"{served.url}/cache/entries/{p.cache_key}/files/{p.cache_relative}", timeout=120),
            f"{p.cache_relative} of entry {p.cache_key} fails its sha256", "not stored")
        _assert_bad_gateway(httpx.get(f"{served.url}/sequence/SQ.{p.sequence}?start=0&end=10", timeout=120),
                            f"sequence {p.sequence} ", "is corrupt", "nothing was cached")
        # /store/ (what gtars open_remote and a mirror of this mirror read) too: not a 404 hiding the cause.
        _assert_bad_gateway(
            httpx.get(f"{served.url}/store/sequences/{p.sequence[:2]}/{p.sequence}.seq", timeout=120),
            f"sequence {p.sequence} ", "is corrupt")
    assert _stored(p.mirror) == []  # no blob, cache file, sequence or temp file


def _rgstore(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rgstore_cli", "--store", str(store), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_the_cli_on_a_lazy_mirror_whose_upstream_serves_corrupt_content_fails_in_one_line_and_stores_nothing(
        published: tuple[Published, str]) -> None:
    p, _host = published
    for path in (p.blob, p.cache_file, p.seq_file):
        _flip(path)
    chr_name = "chr1"  # the first sequence of tiny.fa: the one flipped
    runs = {
        "fails its sha256": _rgstore(p.mirror, "refpkg", "rp", "pkg", "tree"),
        "is corrupt": _rgstore(p.mirror, "getseq", "tiny", f"{chr_name}:0-10"),
        f"of entry {p.cache_key} fails its sha256": _rgstore(
            p.mirror, "cache", "regions", "--source", "ensembl", "--species", "Synthetica_testii", "--release",
            "110", "--regions", "gene"),
    }
    for words, run in runs.items():
        assert run.returncode != 0 and run.stdout == "", (run.args, run.returncode, run.stdout)
        [line] = run.stderr.splitlines()
        assert words in line, (run.args, line)
    assert _stored(p.mirror) == []


def test_a_served_lazy_mirror_answers_502_through_blobs_when_its_upstream_lacks_a_referenced_blob(
        published: tuple[Published, str]) -> None:
    p, host = published
    p.blob.unlink()
    with running_server(p.mirror) as served:
        _assert_bad_gateway(httpx.get(f"{served.url}/blobs/{p.blob.name}", timeout=120),
                            f"blob {p.blob.name} is not in this mirror", "404")
    assert _stored(p.mirror) == []

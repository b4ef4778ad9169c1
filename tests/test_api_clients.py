"""Third-party clients against a real `rgstore serve` given nothing but its URL: htslib, refget's clients, browsers.

The genome is what labs load: soft-masked (lower-case) stretches, N runs, IUPAC codes, a circular
chrM and one contig larger than the server's inline limit, so its bases are streamed.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from refget.clients import SequenceClient, SequenceCollectionClient

from tests.server_fixture import Server, init_genome, rgstore_cli, running_server

needs_samtools = pytest.mark.skipif(shutil.which("samtools") is None, reason="samtools is not installed")


def _contigs() -> dict[str, str]:
    rng = random.Random(11)

    def bases(n: int) -> str:
        return "".join(rng.choice("ACGT") for _ in range(n))

    return {
        "chr1": bases(3000) + bases(700).lower() + "N" * 400 + bases(1900),
        "chr2": "n" * 60 + bases(2500) + "NNNNNNNNNN" + bases(900).lower(),
        "chrBig": bases(69_857),  # above the server's 64 KiB inline limit: streamed
        "chrM": bases(1657),
        "chrUn_KI270302v1_random": "ACGTRYKMacgtn" * 20,
    }


CONTIGS = _contigs()


def _write_fasta(path: Path, contigs: dict[str, str], width: int = 70) -> None:
    with open(path, "w") as fh:
        for name, seq in contigs.items():
            fh.write(f">{name} assembled by hand\n")
            fh.writelines(seq[i:i + width] + "\n" for i in range(0, len(seq), width))


def _md5(seq: str) -> str:
    return hashlib.md5(seq.upper().encode()).hexdigest()


@dataclass
class Lab:
    """A served store: the server, the genome's digest and a second genome holding a subset of it."""

    server: Server
    digest: str
    subset: str


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("clients")
    store = root / "store"
    _write_fasta(root / "toy.fa", CONTIGS)
    _write_fasta(root / "mito.fa", {"chrM": CONTIGS["chrM"]})
    genome = init_genome(store, root / "toy.fa", "toy", "--name", "toy38", "--circular", "chrM")
    subset = init_genome(store, root / "mito.fa", "mito")
    rgstore_cli(store, "alias", "set", "ucsc:toyU", str(genome["digest"]))
    with running_server(store) as server:
        yield Lab(server, str(genome["digest"]), str(subset["digest"]))


# -- samtools / htslib: CRAM references fetched by MD5 from REF_PATH ---------------------------------


def _sam(path: Path, contigs: dict[str, str]) -> None:
    """Single-end 60 bp reads, one substitution each, sorted by position; no MD5 in the header."""
    rng = random.Random(5)
    lines = ["@HD\tVN:1.6\tSO:coordinate"] + [f"@SQ\tSN:{name}\tLN:{len(seq)}" for name, seq in contigs.items()]
    n = 0
    for name, seq in contigs.items():
        for pos in sorted(rng.randrange(0, len(seq) - 60) for _ in range(25)):
            read = list(seq[pos:pos + 60].upper())
            read[rng.randrange(60)] = rng.choice("ACGT")
            n += 1
            lines.append(f"r{n}\t0\t{name}\t{pos + 1}\t60\t60M\t*\t0\t0\t{''.join(read)}\t{'I' * 60}")
    path.write_text("\n".join(lines) + "\n")


def _samtools(*args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(["samtools", *args], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, f"samtools {' '.join(args)}: {result.stderr}"
    return result.stdout


def _records(sam_text: str) -> list[list[str]]:
    # The eleven mandatory fields: CRAM decoding adds MD/NM tags of its own.
    return [line.split("\t")[:11] for line in sam_text.splitlines() if not line.startswith("@")]


def _htslib_env(tmp_path: Path, lab: Lab, cache: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REF_PATH", "REF_CACHE")}
    # A private HOME keeps htslib away from the user's ~/.cache/hts-ref, where it could find the bases.
    env.update(HOME=str(tmp_path / "home"), XDG_CACHE_HOME=str(tmp_path / "xdg"),
               REF_PATH=f"{lab.server.url}/sequence/%s")
    if cache is not None:
        env["REF_CACHE"] = f"{cache}/%2s/%2s/%s"
    return env


@needs_samtools
@pytest.mark.parametrize("with_cache", [True, False], ids=["REF_CACHE", "no-REF_CACHE"])
def test_samtools_decodes_a_cram_whose_reference_it_fetches_by_md5_from_the_server(
    lab: Lab, tmp_path: Path, with_cache: bool
) -> None:
    ref = tmp_path / "ref.fa"
    _write_fasta(ref, CONTIGS)
    _sam(tmp_path / "reads.sam", CONTIGS)
    _samtools("view", "-C", "-T", str(ref), "-o", str(tmp_path / "reads.cram"), str(tmp_path / "reads.sam"))
    header = _samtools("view", "-H", str(tmp_path / "reads.cram"))
    assert {f"M5:{_md5(seq)}" for seq in CONTIGS.values()} <= set(header.split())
    ref.unlink()  # the header's UR: points here: only the server can supply the bases now
    Path(f"{ref}.fai").unlink()
    cache = tmp_path / "hts-ref" if with_cache else None

    decoded = _samtools("view", str(tmp_path / "reads.cram"), env=_htslib_env(tmp_path, lab, cache))

    assert _records(decoded) == _records((tmp_path / "reads.sam").read_text())
    if cache is not None:
        # htslib checks each download against its MD5 and files it under that name.
        fetched = {"".join(p.relative_to(cache).parts): p.read_bytes() for p in cache.rglob("*") if p.is_file()}
        assert fetched == {_md5(seq): seq.upper().encode() for seq in CONTIGS.values()}


@needs_samtools
def test_samtools_encodes_a_cram_from_a_sam_with_md5_tags_and_no_local_reference(lab: Lab, tmp_path: Path) -> None:
    _sam(tmp_path / "reads.sam", CONTIGS)
    lines = (tmp_path / "reads.sam").read_text().splitlines()
    names = list(CONTIGS)
    tagged = [f"{line}\tM5:{_md5(CONTIGS[names[i - 1]])}" if line.startswith("@SQ") else line
              for i, line in enumerate(lines)]
    (tmp_path / "tagged.sam").write_text("\n".join(tagged) + "\n")
    env = _htslib_env(tmp_path, lab, None)

    _samtools("view", "-C", "-o", str(tmp_path / "out.cram"), str(tmp_path / "tagged.sam"), env=env)

    assert _records(_samtools("view", str(tmp_path / "out.cram"), env=env)) == _records("\n".join(lines))


# -- the refget package's clients, as a notebook would use them --------------------------------------


def test_refget_sequence_client_reads_bases_subsequences_and_metadata(lab: Lab) -> None:
    client = SequenceClient(urls=[lab.server.url])
    assert client.service_info()["type"]["artifact"] == "refget-sequence"
    for name, seq in CONTIGS.items():
        md5 = _md5(seq)
        meta = client.get_metadata(md5)["metadata"]
        assert meta["length"] == len(seq) and meta["md5"] == md5
        assert client.get_sequence(meta["ga4gh"]) == seq.upper()
        assert client.get_sequence(md5, start=5, end=47) == seq.upper()[5:47]
    chrm = CONTIGS["chrM"].upper()
    assert client.get_sequence(_md5(chrm), start=len(chrm) - 4, end=3) == chrm[-4:] + chrm[:3]  # circular


def test_refget_collection_client_lists_reads_levels_attributes_and_compares(lab: Lab) -> None:
    client = SequenceCollectionClient(urls=[f"{lab.server.url}/seqcol"])
    listed = client.list_collections()
    assert set(listed["results"]) == {lab.digest, lab.subset} and listed["pagination"]["total"] == 2
    level1 = client.get_collection(lab.digest, level=1)
    level2 = client.get_collection(lab.digest, level=2)
    assert level2["names"] == list(CONTIGS) and level2["lengths"] == [len(s) for s in CONTIGS.values()]
    assert client.get_attribute("lengths", level1["lengths"]) == level2["lengths"]
    assert client.list_collections(names=level1["names"])["results"] == [lab.digest]
    assert level1["names"] in client.list_attributes("names")["results"]
    assert client.build_chrom_sizes(lab.digest) == "".join(f"{n}\t{len(s)}\n" for n, s in CONTIGS.items())

    stored = client.compare(lab.digest, lab.subset)
    local = client.compare_local(lab.digest, client.get_collection(lab.subset, level=2))
    assert stored["array_elements"]["a_and_b_count"]["sequences"] == 1
    assert local["array_elements"] == stored["array_elements"] and local["digests"]["b"] == lab.subset


def test_refget_collection_client_finds_the_servers_refget_store_and_reads_it(lab: Lab, tmp_path: Path) -> None:
    client = SequenceCollectionClient(urls=[f"{lab.server.url}/seqcol"])
    store = client.get_refget_store(str(tmp_path / "cache"))
    store.set_quiet(True)
    store.load_collection(lab.digest)
    ga4gh = client.get_collection(lab.digest)["sequences"][list(CONTIGS).index("chrBig")]
    assert store.get_substring(ga4gh, 65000, 65060) == CONTIGS["chrBig"][65000:65060]
    store.pull_aliases()
    assert store.get_collection_metadata_by_alias("ucsc", "toyU") is not None


# -- browsers (fetch, IGV.js): CORS preflight, cross-origin ranges, Accept with q-values --------------


@pytest.mark.parametrize(("path", "method", "headers"), [
    ("/sequence/{md5}", "GET", "range,accept"),
    ("/sequence/{md5}/metadata", "GET", "accept"),
    ("/seqcol/collection/{digest}", "GET", "accept"),
    ("/seqcol/comparison/{digest}", "POST", "content-type"),
])
def test_a_browser_preflight_is_allowed_for_the_methods_and_headers_it_asks(
    lab: Lab, path: str, method: str, headers: str
) -> None:
    url = lab.server.url + path.format(md5=_md5(CONTIGS["chr1"]), digest=lab.digest)
    r = httpx.options(url, headers={"Origin": "https://igv.org", "Access-Control-Request-Method": method,
                                    "Access-Control-Request-Headers": headers})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "*"
    assert method in r.headers["access-control-allow-methods"]
    assert set(r.headers["access-control-allow-headers"].split(",")) == set(headers.split(","))


def test_a_cross_origin_range_request_gets_206_and_may_read_content_range(lab: Lab) -> None:
    seq = CONTIGS["chrBig"].upper()
    r = httpx.get(f"{lab.server.url}/sequence/{_md5(seq)}",
                  headers={"Origin": "https://igv.org", "Range": "bytes=65000-65099"})
    assert r.status_code == 206 and r.content == seq[65000:65100].encode()
    assert r.headers["content-range"] == f"bytes 65000-65099/{len(seq)}"
    assert r.headers["access-control-allow-origin"] == "*"
    assert r.headers["access-control-expose-headers"] in ("*", "Content-Range")


@pytest.mark.parametrize("accept", [
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",  # a browser tab
    "text/vnd.ga4gh.refget.v2.0.0+plain;q=0.9, application/json;q=0.1",
    "text/*",
])
def test_browser_accept_headers_get_the_bases(lab: Lab, accept: str) -> None:
    seq = CONTIGS["chr2"].upper()
    r = httpx.get(f"{lab.server.url}/sequence/{_md5(seq)}", headers={"Accept": accept, "Accept-Encoding": "gzip"})
    assert r.status_code == 200 and r.text == seq
    assert r.headers["content-type"].startswith("text/vnd.ga4gh.refget.v2.0.0+plain")

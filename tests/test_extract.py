"""Claims about region extraction, checked against gffread and bedtools on the same inputs."""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from rgstore.cachesynth import make_genome, write_ensembl_tree, write_ncbi_tree
from rgstore.errors import InvalidInputError, OutOfRangeError
from rgstore.extract import extract_regions, plan_region, plan_size, reverse_complement
from rgstore.gtf import Annotation, Gene, Transcript, parse_gtf
from tests.progress_recorder import Bars

REGIONS = ["gene", "transcript", "exon", "intron", "CDS", "UTR"]
needs_gffread = pytest.mark.skipif(shutil.which("gffread") is None, reason="gffread is not installed")
needs_bedtools = pytest.mark.skipif(shutil.which("bedtools") is None, reason="bedtools is not installed")


def read_fasta(path: Path) -> dict[str, str]:
    """Header (up to the first space) -> sequence; asserts headers are unique."""
    out: dict[str, list[str]] = {}
    name = ""
    for line in path.read_text().splitlines():
        if line.startswith(">"):
            name = line[1:].split()[0]
            assert name not in out, f"duplicate header {name}"
            out[name] = []
        else:
            out[name].append(line.strip())
    return {k: "".join(v) for k, v in out.items()}


@pytest.fixture(scope="module", params=["ncbi", "ensembl"])
def extracted(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Decompressed genome and GTF of one style, plus our six region FASTAs."""
    root = tmp_path_factory.mktemp(request.param)
    genome = make_genome(total_bp=250_000, contigs=3, genes=50, seed=11)
    if request.param == "ncbi":
        d = write_ncbi_tree(root / "up", genome)
        fa_gz, gtf_gz = next(d.glob("*_genomic.fna.gz")), next(d.glob("*_genomic.gtf.gz"))
    else:
        dna, gtf = write_ensembl_tree(root / "up", genome)
        fa_gz, gtf_gz = next(dna.glob("*.dna_sm.toplevel.fa.gz")), next(gtf.glob("*.110.gtf.gz"))
    paths = {"fasta": root / "genome.fa", "gtf": root / "annotation.gtf"}
    paths["fasta"].write_bytes(gzip.decompress(fa_gz.read_bytes()))
    paths["gtf"].write_bytes(gzip.decompress(gtf_gz.read_bytes()))
    ann = parse_gtf(paths["gtf"])
    plans = {r: plan_region(ann, r) for r in REGIONS}
    handles = {r: open(root / f"{r}.fna", "wb") for r in REGIONS}
    try:
        extract_regions(paths["fasta"], plans, handles)
    finally:
        for h in handles.values():
            h.close()
    paths.update({r: root / f"{r}.fna" for r in REGIONS})
    return paths


def _by_id(path: Path) -> dict[str, str]:
    return {k.split("|")[0]: v for k, v in read_fasta(path).items()}


def _by_bed_locus(path: Path) -> dict[str, str]:
    """Our ``ID|seq:start-end(strand)`` (1-based) -> bedtools' ``seq:start0-end(strand)``."""
    out = {}
    for header, seq in read_fasta(path).items():
        locus = header.split("|", 1)[1]
        name, rest = locus.rsplit(":", 1)
        span, strand = rest[:-3], rest[-2]
        start, end = span.split("-")
        out[f"{name}:{int(start) - 1}-{end}({strand})"] = seq
    return out


def _gtf_rows(gtf: Path) -> list[list[str]]:
    return [line.split("\t") for line in gtf.read_text().splitlines() if line and not line.startswith("#")]


def _bedtools(fasta: Path, intervals: set[tuple[str, int, int, str]], tmp: Path) -> dict[str, str]:
    bed = tmp / "q.bed"
    bed.write_text("".join(f"{c}\t{s - 1}\t{e}\tx\t0\t{st}\n" for c, s, e, st in sorted(intervals)))
    out = subprocess.run(
        ["bedtools", "getfasta", "-s", "-fi", str(fasta), "-bed", str(bed)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (tmp / "q.fa").write_text(out)
    return read_fasta(tmp / "q.fa")


def _gffread(paths: dict[str, Path], flag: str, tmp: Path) -> dict[str, str]:
    # gffread 0.12 rejects NCBI gene rows (transcript_id ""), and -w/-x only use transcript rows anyway.
    gtf = tmp / "transcripts.gtf"
    gtf.write_text(
        "".join(line for line in paths["gtf"].read_text().splitlines(True) if "\tgene\t" not in line)
    )
    subprocess.run(
        ["gffread", flag, str(tmp / "out.fa"), "-g", str(paths["fasta"]), str(gtf)],
        capture_output=True,
        check=True,
    )
    return read_fasta(tmp / "out.fa")


@needs_gffread
def test_transcripts_equal_gffread_w(extracted: dict[str, Path], tmp_path: Path) -> None:
    ours = _by_id(extracted["transcript"])
    assert ours == _gffread(extracted, "-w", tmp_path)
    assert len(ours) > 50


@needs_gffread
def test_cds_equals_gffread_x_stop_codon_included(extracted: dict[str, Path], tmp_path: Path) -> None:
    ours = _by_id(extracted["CDS"])
    assert ours == _gffread(extracted, "-x", tmp_path)
    assert all(len(seq) % 3 == 0 for seq in ours.values())


@needs_bedtools
def test_genes_equal_bedtools_getfasta_s_on_gene_rows(extracted: dict[str, Path], tmp_path: Path) -> None:
    rows = _gtf_rows(extracted["gtf"])
    genes = {(r[0], int(r[3]), int(r[4]), r[6]) for r in rows if r[2] == "gene"}
    assert _by_bed_locus(extracted["gene"]) == _bedtools(extracted["fasta"], genes, tmp_path)


@needs_bedtools
def test_exons_equal_bedtools_getfasta_s_on_distinct_exon_rows(
    extracted: dict[str, Path], tmp_path: Path
) -> None:
    rows = _gtf_rows(extracted["gtf"])
    exons = {(r[0], int(r[3]), int(r[4]), r[6]) for r in rows if r[2] == "exon"}
    assert _by_bed_locus(extracted["exon"]) == _bedtools(extracted["fasta"], exons, tmp_path)


@needs_bedtools
def test_introns_equal_bedtools_getfasta_s_on_exon_gaps(extracted: dict[str, Path], tmp_path: Path) -> None:
    by_transcript: dict[str, list[tuple[str, int, int, str]]] = {}
    for r in _gtf_rows(extracted["gtf"]):
        if r[2] == "exon":
            tid = r[8].split('transcript_id "')[1].split('"')[0]
            by_transcript.setdefault(tid, []).append((r[0], int(r[3]), int(r[4]), r[6]))
    gaps = set()
    for exons in by_transcript.values():
        exons.sort()
        for a, b in zip(exons, exons[1:]):
            gaps.add((a[0], a[2] + 1, b[1] - 1, a[3]))
    assert _by_bed_locus(extracted["intron"]) == _bedtools(extracted["fasta"], gaps, tmp_path)


@needs_bedtools
def test_utrs_equal_bedtools_on_the_upstream_utr_rows(extracted: dict[str, Path], tmp_path: Path) -> None:
    rows = _gtf_rows(extracted["gtf"])
    utr_rows = {
        (r[0], int(r[3]), int(r[4]), r[6]) for r in rows if r[2] in ("five_prime_utr", "three_prime_utr")
    }
    if not utr_rows:
        pytest.skip("NCBI-style GTFs carry no UTR rows (ours are derived the same way for both)")
    assert _by_bed_locus(extracted["UTR"]) == _bedtools(extracted["fasta"], utr_rows, tmp_path)


def _edge_case_inputs(tmp: Path) -> dict[str, Path]:
    """A soft-masked genome and a GTF of slippage, touching exons and sequence-end features."""
    bases = "ACGGTCATTGCAAGTCCATGGATCCTTAGACGTTGCACAGTACGATcgatgcaTTGACCGATAGCAGTTCAGGCTAACGT"
    fasta, gtf = tmp / "g.fa", tmp / "a.gtf"
    fasta.write_text(f">c desc\n{bases[:40]}\n{bases[40:]}\n")
    rows = [
        ("exon", 1, 36, "+", "T"), ("CDS", 4, 18, "+", "T"), ("CDS", 18, 33, "+", "T"),  # -1 slippage
        ("stop_codon", 34, 36, "+", "T"),
        ("exon", 41, 80, "-", "M"), ("CDS", 45, 62, "-", "M"), ("CDS", 62, 80, "-", "M"),  # ends at the end
        ("stop_codon", 42, 44, "-", "M"),
        ("exon", 37, 50, "+", "N"), ("exon", 51, 70, "+", "N"),  # touching: no intron
    ]
    gtf.write_text(
        "# comment\n"
        + "".join(f'c\tx\t{k}\t{s}\t{e}\t.\t{st}\t.\tgene_id "G{t}"; note "a;b"; transcript_id "{t}";\n'
                  for k, s, e, st, t in rows)
    )
    return {"fasta": fasta, "gtf": gtf}


@needs_gffread
def test_overlapping_cds_rows_repeat_the_shared_base_like_gffread_x(tmp_path: Path) -> None:
    paths = _edge_case_inputs(tmp_path)
    with open(tmp_path / "CDS.fna", "wb") as out:
        extract_regions(paths["fasta"], {"CDS": plan_region(parse_gtf(paths["gtf"]), "CDS")}, {"CDS": out})
    ours = _by_id(tmp_path / "CDS.fna")
    assert ours == _gffread(paths, "-x", tmp_path)
    assert (len(ours["T"]), len(ours["M"])) == (34, 40)  # the shared base twice on either strand


@needs_bedtools
def test_exons_that_only_touch_are_two_records_like_the_gtf_rows(tmp_path: Path) -> None:
    paths = _edge_case_inputs(tmp_path)
    with open(tmp_path / "exon.fna", "wb") as out:
        extract_regions(paths["fasta"], {"exon": plan_region(parse_gtf(paths["gtf"]), "exon")}, {"exon": out})
    exons = {(r[0], int(r[3]), int(r[4]), r[6]) for r in _gtf_rows(paths["gtf"]) if r[2] == "exon"}
    assert _by_bed_locus(tmp_path / "exon.fna") == _bedtools(paths["fasta"], exons, tmp_path)
    assert len(exons) == 4


def test_soft_masking_survives_extraction(extracted: dict[str, Path]) -> None:
    genes = "".join(read_fasta(extracted["gene"]).values())
    assert any(c.islower() for c in genes) and any(c.isupper() for c in genes)


def test_headers_are_id_locus_strand_and_records_are_sorted_by_position(extracted: dict[str, Path]) -> None:
    headers = [line[1:] for line in extracted["exon"].read_text().splitlines() if line.startswith(">")]
    loci = []
    for h in headers:
        ident, locus = h.split("|")
        seq, rest = locus.rsplit(":", 1)
        assert rest[-3:] in ("(+)", "(-)") and ident
        start, end = map(int, rest[:-3].split("-"))
        loci.append((seq, start, end))
    order = {s: i for i, s in enumerate(dict.fromkeys(s for s, _, _ in loci))}
    assert loci == sorted(loci, key=lambda x: (order[x[0]], x[1], x[2]))


def test_extraction_is_deterministic(extracted: dict[str, Path], tmp_path: Path) -> None:
    ann = parse_gtf(extracted["gtf"])
    with open(tmp_path / "again.fna", "wb") as out:
        extract_regions(extracted["fasta"], {"exon": plan_region(ann, "exon")}, {"exon": out})
    assert (tmp_path / "again.fna").read_bytes() == extracted["exon"].read_bytes()


def test_reverse_complement_keeps_case_and_iupac_codes() -> None:
    assert reverse_complement(b"ACGTNacgtnRYKMrykmSW") == b"WSkmryKMRYnacgtNACGT"


def test_a_feature_past_the_sequence_end_is_out_of_range(tmp_path: Path) -> None:
    (tmp_path / "g.fa").write_text(">c\nACGTACGTAC\n")
    (tmp_path / "a.gtf").write_text('c\tx\texon\t5\t12\t.\t+\t.\tgene_id "G"; transcript_id "T";\n')
    with (
        open(tmp_path / "o.fna", "wb") as out,
        pytest.raises(OutOfRangeError, match="past the sequence's length 10"),
    ):
        extract_regions(
            tmp_path / "g.fa", {"exon": plan_region(parse_gtf(tmp_path / "a.gtf"), "exon")}, {"exon": out}
        )


def test_a_sequence_missing_from_the_fasta_is_named(tmp_path: Path) -> None:
    (tmp_path / "g.fa").write_text(">c\nACGTACGTAC\n")
    (tmp_path / "a.gtf").write_text('chr9\tx\texon\t1\t2\t.\t+\t.\tgene_id "G"; transcript_id "T";\n')
    with open(tmp_path / "o.fna", "wb") as out, pytest.raises(InvalidInputError, match="lacks: chr9"):
        extract_regions(
            tmp_path / "g.fa", {"exon": plan_region(parse_gtf(tmp_path / "a.gtf"), "exon")}, {"exon": out}
        )


@pytest.mark.parametrize("wanted", ["c", "d"], ids=["annotated", "not-annotated"])
def test_a_duplicate_sequence_name_is_refused_naming_the_file_and_the_name(tmp_path: Path, wanted: str) -> None:
    (tmp_path / "g.fa").write_text(">c first\nACGTACGTAC\n>d\nGGGG\n>c second\nTTTTTTTTTT\n")
    (tmp_path / "a.gtf").write_text(f'{wanted}\tx\texon\t1\t2\t.\t+\t.\tgene_id "G"; transcript_id "T";\n')
    with (
        open(tmp_path / "o.fna", "wb") as out,
        pytest.raises(InvalidInputError, match=r"g\.fa: duplicate sequence name 'c'") as err,
    ):
        extract_regions(
            tmp_path / "g.fa", {"exon": plan_region(parse_gtf(tmp_path / "a.gtf"), "exon")}, {"exon": out}
        )
    assert "\n" not in str(err.value)


def test_extraction_holds_about_one_sequence_in_memory_not_two_or_three(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import tracemalloc

    from rgstore import extract

    monkeypatch.setattr(extract, "_PIECE", 1 << 16)  # the sequences below are much longer than one piece
    size = 3_000_000
    body = (b"ACGTTGCAAC" * (size // 10))
    lines = b"\n".join(body[i:i + 60] for i in range(0, size, 60)) + b"\n"
    (tmp_path / "g.fa").write_bytes(b">c1\n" + lines + b">c2\n" + lines)
    (tmp_path / "a.gtf").write_text(
        'c1\tx\texon\t1\t10\t.\t-\t.\tgene_id "G1"; transcript_id "T1";\n'
        f'c2\tx\texon\t{size - 9}\t{size}\t.\t+\t.\tgene_id "G2"; transcript_id "T2";\n'
    )
    plans = {"exon": plan_region(parse_gtf(tmp_path / "a.gtf"), "exon")}
    with open(tmp_path / "o.fna", "wb") as out:
        tracemalloc.start()
        try:
            assert extract_regions(tmp_path / "g.fa", plans, {"exon": out}) == {"exon": 2}
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    # One 3 MB sequence (plus a bytearray's headroom); reading the next while the last was still held,
    # and slicing a record before stripping it, peaked at ~9 MB.
    assert peak < 1.6 * size
    assert (tmp_path / "o.fna").read_bytes().splitlines()[1::2] == [reverse_complement(body[:10]), body[-10:]]


def _mapped_kib(path: Path) -> int:
    """KiB of ``path``'s pages resident in this process's mappings (Linux /proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if re.match(r"[0-9a-f]+-[0-9a-f]+ ", line):  # a mapping's first line ends with its file
            inside = line.endswith(" " + str(path))
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="reads Linux /proc/self/smaps")
def test_genome_pages_already_read_leave_the_process_not_the_whole_genome(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rgstore import extract

    # Scaled down: 1 MiB pieces, pages dropped every 1 MiB read (a human genome: 8 and 64 MiB of 3 GB).
    monkeypatch.setattr(extract, "_PIECE", 1 << 20)
    monkeypatch.setattr(extract, "_RELEASE", 1 << 20, raising=False)
    size = 4 << 20
    body = b"ACGTTGCAAC" * (size // 10)
    lines = b"\n".join(body[i:i + 60] for i in range(0, len(body), 60)) + b"\n"
    fasta = tmp_path / "g.fa"
    fasta.write_bytes(b"".join(b">c%d\n" % i + lines for i in range(4)))
    resident = []
    for name, seq in extract.iter_fasta(fasta):
        assert seq == body, name
        resident.append(_mapped_kib(fasta.resolve()))
    # The mapping held all 16 MiB read so far by the last record (RSS = the whole genome at human scale);
    # now about the record being read.
    assert resident[-1] < 6 * 1024, resident


@pytest.mark.parametrize("region", ["gene", "exon", "CDS"])
def test_planning_counts_each_feature_once_in_steps_as_it_goes(region: str) -> None:
    # Not one update at the end: a human GTF's exons take seconds to plan.
    genes = {(f"g{i}", "chr1"): Gene(f"g{i}", "chr1", "+", 10 * i + 1, 10 * i + 5) for i in range(20_000)}
    transcripts = {
        (f"t{i}", "chr1"): Transcript(f"t{i}", f"g{i}", "chr1", "+", [(10 * i + 1, 10 * i + 5)], [(10 * i + 2, 10 * i + 4)])
        for i in range(20_000)
    }
    annotation = Annotation(genes=genes, transcripts=transcripts)
    recorder = Bars()
    plan = plan_region(annotation, region, recorder("plan", total=plan_size(annotation, region), unit="feature"))
    assert len(plan["chr1"]) == 20_000
    assert recorder.bars == [["plan", 20_000, [8192, 8192, 20_000 - 2 * 8192]]]


@pytest.mark.parametrize("eol", [b"\n", b" \r\n"])
def test_records_of_any_length_are_cut_into_60_column_lines_on_both_strands(tmp_path: Path, eol: bytes) -> None:
    # Lengths around a line and around the 256 lines cut per call; features from base 1 and to the last base.
    size = 256 * 60 * 2 + 7
    body = bytes(b"ACGTNacgtnRYKM"[(i * 7 + i // 5) % 14] for i in range(size))
    lines = eol.join(body[i : i + 70] for i in range(0, size, 70)) + eol
    (tmp_path / "g.fa").write_bytes(b">c1 desc" + eol + lines)
    spans = [(1, n) for n in (1, 59, 60, 61, 120, 256 * 60, 256 * 60 + 1, 256 * 60 * 2 + 6)]
    spans += [(size - n + 1, size) for n in (60, 256 * 60 + 61)] + [(1, size)]
    rows = [
        f'c1\tx\texon\t{s}\t{e}\t.\t{strand}\t.\tgene_id "G{i}"; transcript_id "T{i}{strand}";\n'
        for i, (s, e) in enumerate(spans)
        for strand in "+-"
    ]
    (tmp_path / "a.gtf").write_text("".join(rows))
    with open(tmp_path / "o.fna", "wb") as out:
        extract_regions(tmp_path / "g.fa", {"exon": plan_region(parse_gtf(tmp_path / "a.gtf"), "exon")}, {"exon": out})
    expected = []
    for s, e in sorted(spans):
        for strand in "+-":
            seq = body[s - 1 : e] if strand == "+" else reverse_complement(body[s - 1 : e])
            i = spans.index((s, e))
            expected.append(f">G{i}|c1:{s}-{e}({strand})\n".encode())
            expected.append(b"".join(seq[j : j + 60] + b"\n" for j in range(0, len(seq), 60)))
    assert (tmp_path / "o.fna").read_bytes() == b"".join(expected)

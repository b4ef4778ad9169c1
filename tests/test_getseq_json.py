"""`getseq --json`: one array, an object per region, whose sequence and coordinates match the plain output."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from rgstore.genomes import revcomp
from rgstore.seqcol import sha512t24u
from rgstore.store import Store

TINY = Path(str(resources.files("rgstore") / "data" / "tiny.fa"))


def test_json_gives_each_region_its_bounds_strand_sequence_and_sq_digest(cli, store: Store) -> None:  # type: ignore[no-untyped-def]
    genome = store.genomes.init(TINY, ["tiny"], circular=["chrM"]).genome
    chr1, chrm = store.getseq("tiny", "chr1"), store.getseq("tiny", "chrM")
    store.close()
    out = cli("getseq", "tiny", "chr1:0-10", "chrM:995-5", "chr1", "--json")
    assert out.exit_code == 0
    wrap = chrm[995:] + chrm[:5]
    assert json.loads(out.stdout) == [
        {"name": "chr1", "start": 0, "end": 10, "strand": "+", "sequence": chr1[:10],
         "digest": "SQ." + sha512t24u(chr1[:10])},
        {"name": "chrM", "start": 995, "end": 5, "strand": "+", "sequence": wrap, "digest": "SQ." + sha512t24u(wrap)},
        {"name": "chr1", "start": 0, "end": 3000, "strand": "+", "sequence": chr1,
         "digest": genome.sequences[genome.names.index("chr1")]},  # a whole sequence: the genome's own digest
    ]
    # --one-based reads the LOCUS 1-based; the JSON stays 0-based half-open, and --revcomp is the - strand
    out = cli("getseq", "tiny", "--one-based", "chr1:1-10", "--revcomp", "--json")
    assert json.loads(out.stdout) == [{"name": "chr1", "start": 0, "end": 10, "strand": "-",
                                       "sequence": revcomp(chr1[:10]), "digest": "SQ." + sha512t24u(revcomp(chr1[:10]))}]


def test_json_strand_follows_stranded_bed_rows_and_sequence_ids(cli, store: Store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    genome = store.genomes.init(TINY, ["tiny"]).genome
    chr2 = store.getseq("tiny", "chr2")
    store.close()
    bed = tmp_path / "r.bed"
    bed.write_text("chr2\t0\t5\ta\t0\t-\nchr2\t5\t9\tb\t0\t.\n")
    rows = json.loads(cli("getseq", "tiny", "--bed", str(bed), "--strand", "--json").stdout)
    assert [(r["start"], r["end"], r["strand"], r["sequence"]) for r in rows] == [
        (0, 5, "-", revcomp(chr2[:5])), (5, 9, "+", chr2[5:9])]
    ident = genome.sequences[genome.names.index("chr2")]
    rows = json.loads(cli("getseq", "--sequence", ident, "3-8", "--json").stdout)
    assert rows == [{"name": ident, "start": 3, "end": 8, "strand": "+", "sequence": chr2[3:8],
                     "digest": "SQ." + sha512t24u(chr2[3:8])}]


def test_json_errors_leave_stdout_empty_with_one_stderr_line(rgstore_proc, store: Store, store_path: Path) -> None:  # type: ignore[no-untyped-def]
    store.genomes.init(TINY, ["tiny"])
    store.close()
    done = rgstore_proc("--store", str(store_path), "getseq", "tiny", "chr1:0-5", "nope:1-2", "--json")
    assert (done.returncode, done.stdout) == (1, b"")
    assert done.stderr.decode().splitlines() == ["error: genome tiny has no sequence 'nope' (it has chr1, chr2, chrM)"]
    done = rgstore_proc("--store", str(store_path), "getseq", "tiny", "chr1:0-5", "--json", "--fasta")
    assert (done.returncode, done.stdout) == (2, b"")
    assert b"--json and --fasta are two outputs" in done.stderr

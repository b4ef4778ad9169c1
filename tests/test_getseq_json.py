"""`getseq --json`: one array, an object per region, whose sequence and coordinates match the plain output."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from importlib import resources
from pathlib import Path

from rgstore.genomes import revcomp
from rgstore.seqcol import sha512t24u
from rgstore.store import Store
from tests.conftest import REPO

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


def test_a_full_temp_disk_is_a_one_line_error_naming_the_spool_and_leaves_stdout_empty(
    store: Store, store_path: Path, tmp_path: Path,
) -> None:
    """Past 32 MiB the array spools to $TMPDIR: a refusal there named no file, as if standard output's disk were full."""
    (tmp_path / "mb.fa").write_text(">mb\n" + "ACGT" * (1 << 18) + "\n")  # 1 MiB: asked 34 times, past the spool
    store.genomes.init(tmp_path / "mb.fa", ["mb"])
    store.close()

    def limit() -> None:  # a file size limit stands in for a full temp disk (writes past it fail with EFBIG)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, resource.RLIM_INFINITY))

    (tmp_path / "tmp").mkdir()
    proc = subprocess.run([sys.executable, "-m", "rgstore_cli", "--store", str(store_path), "getseq", "mb",
                           *["mb"] * 34, "--json"], cwd=REPO, capture_output=True, timeout=120, preexec_fn=limit,
                          env={**os.environ, "TMPDIR": str(tmp_path / "tmp")})
    assert (proc.returncode, proc.stdout) == (1, b"")
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: no room for getseq --json's spooled output "
                                                    f"(TMPDIR picks another disk) in {tmp_path / 'tmp'} "), lines
    assert list((tmp_path / "tmp").iterdir()) == []  # the spool was an unnamed temp file

"""getseq: equals samtools faidx on random regions of both strands; loci, BED and CLI behave and fail cleanly."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
from importlib import resources
from pathlib import Path

import pytest

from rgstore.errors import IntegrityError, InvalidInputError, NotFoundError, OutOfRangeError
from rgstore.genomes import revcomp
from rgstore.locus import Region, parse_locus, read_bed
from rgstore.store import Store

TINY = Path(str(resources.files("rgstore") / "data" / "tiny.fa"))
NUCLEOTIDES = "ACGTNacgtnRYKMSWBDHVU"


def _random_fasta(path: Path, rng: random.Random) -> dict[str, int]:
    sizes = {f"c{i}": rng.randint(1, 5000) for i in range(6)}
    with open(path, "w") as fh:
        for name, size in sizes.items():
            seq = "".join(rng.choice(NUCLEOTIDES) for _ in range(size))
            width = rng.choice([50, 60, 61, 80])
            fh.write(f">{name} random\n" + "".join(seq[i:i + width] + "\n" for i in range(0, size, width)))
    return sizes


def _samtools(fasta: Path, regions: list[tuple[str, int, int]], *, reverse: bool) -> list[str]:
    region_file = fasta.with_suffix(".regions")
    region_file.write_text("".join(f"{n}:{s + 1}-{e}\n" for n, s, e in regions))  # 1-based, inclusive
    args = ["samtools", "faidx", str(fasta), "-r", str(region_file)] + (["-i"] if reverse else [])
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return ["".join(block.splitlines()[1:]).upper() for block in out.split(">")[1:]]


@pytest.mark.skipif(shutil.which("samtools") is None, reason="samtools is not installed")
@pytest.mark.parametrize("source", ["tiny", "random"])
def test_getseq_equals_samtools_faidx_on_random_regions_of_both_strands(store: Store, tmp_path: Path,
                                                                        source: str) -> None:
    rng = random.Random(11)
    fasta = tmp_path / "g.fa"
    if source == "tiny":
        shutil.copyfile(TINY, fasta)
        genome = store.genomes.init(fasta, ["g"]).genome
        sizes = dict(zip(genome.names, genome.lengths))
    else:
        sizes = _random_fasta(fasta, rng)
        store.genomes.init(fasta, ["g"])
    regions = []
    for _ in range(300):
        name = rng.choice(list(sizes))
        start = rng.randrange(0, sizes[name])
        regions.append((name, start, rng.randint(start + 1, min(sizes[name], start + 2000))))
    for reverse in (False, True):
        ours = store.getseqs("g", regions, revcomp=reverse)
        assert ours == _samtools(fasta, regions, reverse=reverse)


def test_locus_forms_and_defaults(store: Store) -> None:
    store.genomes.init(TINY, ["tiny"], circular=["chrM"])
    chr1 = store.getseq("tiny", "chr1")
    assert len(chr1) == 3000 and chr1 == chr1.upper()
    assert store.getseqs("tiny", [parse_locus("chr1:2990"), parse_locus("chr1:0-5"), parse_locus("chr1:5-5")]) == [
        chr1[2990:], chr1[:5], "",
    ]
    chrm = store.getseq("tiny", "chrM")
    assert store.getseq("tiny", "chrM", 995, 5) == chrm[995:] + chrm[:5]  # circular wrap


@pytest.mark.parametrize(
    ("seq", "start", "end", "error", "message"),
    [
        ("chr9", 0, 5, NotFoundError, "has no sequence 'chr9'"),
        ("chr1", 2990, 3001, OutOfRangeError, "outside chr1 (length 3000)"),
        ("chr1", 3001, None, OutOfRangeError, "outside chr1"),
        ("chr1", 10, 5, OutOfRangeError, "not circular"),
        ("chr1", -1, 5, OutOfRangeError, "negative"),
    ],
    ids=["unknown-seq", "end-past", "start-past", "reversed", "negative"],
)
def test_bad_regions_raise_clear_errors(store: Store, seq: str, start: int, end: int | None,
                                        error: type[Exception], message: str) -> None:
    store.genomes.init(TINY, ["tiny"])
    with pytest.raises(error, match=re.escape(message)):
        store.getseq("tiny", seq, start, end)


def test_genome_names_resolve_by_namespace_and_digest(store: Store) -> None:
    digest = store.genomes.init(TINY, ["tiny"]).genome.digest
    assert store.getseq("refgenie:tiny", "chr2", 0, 8) == store.genomes.getseq(digest, "chr2", 0, 8, by_digest=True)
    with pytest.raises(NotFoundError, match="no genome named 'ucsc:tiny'"):
        store.getseq("ucsc:tiny", "chr2")


def test_a_read_resolves_only_the_sequences_it_reads_so_big_assemblies_stay_cheap(store: Store, tmp_path: Path) -> None:
    # A scaffold-level assembly has 100k+ sequences; resolving all of them for one read cost seconds.
    fasta = tmp_path / "many.fa"
    fasta.write_text("".join(f">s{i}\n{'ACGT' * (i % 7 + 1)}\n" for i in range(2000)))
    store.genomes.init(fasta, ["many"])
    reader = store.genomes.sequences
    assert [r for _, r in store.genomes.read_loci("many", ["s1500:0-4", "s7"])] == ["ACGT", "ACGT" * 1]
    assert sorted(seq for _, seq in reader._meta) == ["s1500", "s7"]
    assert store.genomes.getseq("many", "s1999", 2, 6) == "GTAC"
    assert len(reader._meta) == 3
    with pytest.raises(NotFoundError, match="genome many has no sequence 's2000'"):
        store.genomes.getseq("many", "s2000")
    store.aliases.set("other", store.genomes.resolve("many"), namespace="refgenie")
    assert store.genomes.getseq("many", "s7") == "ACGT" and len(reader._meta) == 1  # a commit drops the cache


def test_reads_keep_a_bounded_number_of_data_files_open(store: Store, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from rgstore import sequences

    monkeypatch.setattr(sequences, "MAX_OPEN_FILES", 3)
    fasta = tmp_path / "five.fa"
    fasta.write_text("".join(f">s{i}\n{'ACGT'[i] * (i + 5)}ACGT\n" for i in range(4)) + ">s4\nTTTTTTTTTACGT\n")
    store.genomes.init(fasta, ["five"])
    refget = str(store.refget_path)

    def open_data_files() -> int:
        fds = Path("/proc/self/fd")
        return sum(1 for fd in fds.iterdir() if os.path.realpath(fd).startswith(refget) and
                   os.path.realpath(fd).endswith(".seq"))

    for _ in range(2):
        assert [store.getseq("five", f"s{i}", 0, 4) for i in range(5)] == ["AAAA", "CCCC", "GGGG", "TTTT", "TTTT"]
    assert open_data_files() <= 3
    store.aliases.set("again", store.genomes.resolve("five"), namespace="refgenie")  # a commit drops the cache
    assert store.getseq("five", "s0", 5, 9) == "ACGT" and open_data_files() <= 1


def test_cached_data_files_close_without_a_resource_warning_when_the_cache_drops_and_the_store_closes(
    tmp_path: Path,
) -> None:
    # They closed only when collected, each with a ResourceWarning: a user whose pytest makes warnings errors
    # (filterwarnings = error) had every test that read a sequence fail.
    import gc
    import warnings

    path = tmp_path / "store"

    def open_data_files() -> int:
        return sum(1 for fd in Path("/proc/self/fd").iterdir() if os.path.realpath(fd).startswith(str(path)))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Store.open(path) as store:
            store.genomes.init(TINY, ["tiny"])
            assert store.getseq("tiny", "chr1", 0, 4) == "ATTT" and len(store.getseq("tiny", "chr2", 0, 4)) == 4
            assert open_data_files() >= 2
            store.aliases.set("again", store.genomes.resolve("tiny"), namespace="refgenie")  # drops the cache
            assert store.getseq("tiny", "chr1", 0, 4) == "ATTT"
        gc.collect()
    assert open_data_files() == 0
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


def test_a_data_file_cut_short_or_altered_is_a_one_line_error_not_wrong_residues(store: Store) -> None:
    digest = store.genomes.init(TINY, ["tiny"], circular=["chrM"]).genome.sequences[0].removeprefix("SQ.")
    data = next(store.refget_path.joinpath("sequences").rglob(f"{digest}.seq"))
    first = store.getseq("tiny", "chr1", 0, 10)
    data.write_bytes(data.read_bytes()[:2990])  # 10 residues short of chr1's 3,000
    assert store.getseq("tiny", "chr1", 0, 10) == first  # still there
    with pytest.raises(NotFoundError, match="sequence chr1 .* is recorded but missing"):
        store.getseq("tiny", "chr1", 2980, 3000)
    data.write_bytes(b"\xff" * 3000)
    store.genomes.sequences.drop_cache()
    with pytest.raises(IntegrityError, match="holds bytes that are not residues"):
        store.getseq("tiny", "chr1", 0, 10)


def test_parse_locus_keeps_colons_in_names_and_rejects_malformed_loci() -> None:
    assert parse_locus("chr1") == Region("chr1")
    assert parse_locus("chr1:1,000-2,000") == Region("chr1", 1000, 2000)
    assert parse_locus("HLA-A*01:01:01:01") == Region("HLA-A*01:01:01", 1)
    assert parse_locus("HLA-A*01:01:01:01:5-9") == Region("HLA-A*01:01:01:01", 5, 9)
    for bad in ("", "chr1:", "chr1:5-", "chr1:-5"):
        with pytest.raises(InvalidInputError):
            parse_locus(bad)


@pytest.mark.parametrize("text", ["chr1:1.5-3", "chr1: 1-3", "chr1:,,1-2", "chr1:1 - 3", "HLA:01:1.5"])
def test_a_mistyped_range_is_a_malformed_locus_unless_it_is_a_sequence_name(text: str) -> None:
    # These were looked up as sequence names: "has no sequence 'chr1:1.5-3'", never saying the range was wrong.
    with pytest.raises(InvalidInputError, match=f"^malformed locus {re.escape(repr(text))}: expected seq"):
        parse_locus(text, {"chr1", "HLA:01"})
    assert parse_locus(text, {text}) == Region(text)  # names may hold ':' and anything after it
    assert parse_locus("chrUn:alt", {"chr1"}) == Region("chrUn:alt")  # not range-like: still a name to look up


def test_read_bed_skips_headers_and_reports_bad_lines(tmp_path: Path) -> None:
    bed = tmp_path / "r.bed"
    bed.write_text("track name=x\n# c\n\nchr1\t0\t10\tname\nchr2 5 7\n")
    assert list(read_bed(bed)) == [Region("chr1", 0, 10), Region("chr2", 5, 7)]
    bed.write_text("chr1\t0\tten\n")
    with pytest.raises(InvalidInputError, match="line 1"):
        list(read_bed(bed))


@pytest.mark.parametrize("start", ["1_0", "+1", "\u0661", "1.0", "-1"])
def test_a_bed_coordinate_that_is_not_plain_ascii_digits_is_refused(tmp_path: Path, start: str) -> None:
    # Python's int() reads '1_0' as 10 and Arabic-Indic digits as numbers: no BED tool does.
    bed = tmp_path / "r.bed"
    bed.write_text(f"chr1\t0\t5\nchr1\t{start}\t30\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=f"^{bed}: line 2: (start and end must be integers|negative)"):
        list(read_bed(bed))


def test_a_coordinate_with_thousands_of_digits_is_a_one_line_error_not_a_valueerror(tmp_path: Path) -> None:
    # int() refuses strings of more than 4,300 digits with a ValueError (CPython's DoS guard).
    huge = "1" * 5000
    with pytest.raises(InvalidInputError, match="5,000 digits is too large"):
        parse_locus(f"chr1:{huge}-{huge}2")
    assert parse_locus("chr1:" + "0" * 5000 + "7-9") == Region("chr1", 7, 9)
    bed = tmp_path / "r.bed"
    bed.write_bytes(b"chr1\t" + huge.encode() + b"\t" + huge.encode() + b"\n")
    with pytest.raises(InvalidInputError, match=f"^{bed}: line 1: a coordinate with 5,000 digits"):
        list(read_bed(bed))


def test_revcomp_complements_iupac_codes() -> None:
    assert revcomp("ACGTURYKMSWBDHVN") == "NBDHVWSKMRYAACGT"


def test_cli_prints_bare_lines_or_fasta_from_loci_and_bed(cli, store: Store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    digest = store.genomes.init(TINY, ["tiny"]).genome.digest
    chr2 = store.getseq("tiny", "chr2")
    store.close()
    out = cli("getseq", "tiny", "chr2:0-7", "chr2:10-12")
    assert out.exit_code == 0 and out.output == f"{chr2[:7]}\n{chr2[10:12]}\n"
    bed = tmp_path / "r.bed"
    bed.write_text("chr2\t0\t7\n")
    out = cli("getseq", "--digest", digest, "chr2:5", "--bed", str(bed), "--fasta", "--width", "5000", "--revcomp")
    assert out.exit_code == 0
    assert out.output == f">chr2:5-2000/rc\n{revcomp(chr2[5:])}\n>chr2:0-7/rc\n{revcomp(chr2[:7])}\n"
    out = cli("getseq", "tiny", "chr2:0-130", "--fasta")
    assert out.output.splitlines()[1:] == [chr2[:60], chr2[60:120], chr2[120:130]]


def test_cli_genome_commands_round_trip(cli, store_path: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fhr = tmp_path / "f.json"
    fhr.write_text(json.dumps({"genome": "Tinyus testus", "custom": [1]}))
    out = cli("genome", "init", "--fasta", str(TINY), "--name", "tiny", "-n", "t2", "--fhr", str(fhr), "--json")
    assert out.exit_code == 0, out.output
    digest = json.loads(out.output)["genome"]["digest"]
    listed = json.loads(cli("genome", "list", "--json").output)
    assert listed[0].pop("added_at").endswith("Z")
    assert listed == [{"digest": digest, "aliases": ["t2", "tiny"], "n_sequences": 3, "total_length": 6000,
                       "description": "", "species": ""}]
    assert json.loads(cli("genome", "fhr", "get", "tiny").output) == {"genome": "Tinyus testus", "custom": [1]}
    assert json.loads(cli("genome", "show", "tiny", "--json").output)["circular"] == []
    compared = json.loads(cli("genome", "compare", "tiny", "t2", "--json").output)
    assert compared["array_elements"]["a_and_b_same_order"]["sequences"] is True
    out_fa = tmp_path / "x.fa"
    assert cli("genome", "export", "tiny", str(out_fa), "--width", "70").exit_code == 0
    assert max(len(line) for line in out_fa.read_text().splitlines()) == 70
    assert cli("genome", "remove", "tiny").exit_code == 0
    assert json.loads(cli("genome", "list", "--json").output) == []


def test_cli_conflicts_and_bad_input_exit_nonzero_with_one_line(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("genome", "init", "--fasta", str(TINY), "--name", "tiny").exit_code == 0
    other = tmp_path / "o.fa"
    other.write_text(">x\nACGT\n")
    taken = cli("genome", "init", "--fasta", str(other), "--name", "tiny")
    assert taken.exit_code == 1 and "--force" in taken.output
    assert cli("genome", "init", "--fasta", str(other), "--name", "tiny", "--force").exit_code == 0
    bad = tmp_path / "bad.fa"
    bad.write_text(">x\nAC GT\n")
    failed = cli("genome", "init", "--fasta", str(bad), "--name", "bad")
    assert failed.exit_code == 1 and f"{bad}: line 2" in failed.output
    assert cli("getseq", "tiny").exit_code == 2  # usage: no locus


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["getseq", "nope", "chr1"], "no genome named 'nope'"),
        (["getseq", "tiny", "chr9:0-5"], "has no sequence 'chr9'"),
        (["getseq", "tiny", "chr1:2990-3005"], "outside chr1"),
        (["getseq", "tiny", "chr1:5-"], "malformed locus"),
        # It was "has no sequence 'chr1:1.5-3' (it has ...)": looked up as a name, the range never read.
        (["getseq", "tiny", "chr1:1.5-3"], "malformed locus 'chr1:1.5-3': expected seq, seq:start or seq:start-end"),
    ],
    ids=["unknown-genome", "unknown-sequence", "out-of-range", "malformed", "malformed-decimal"],
)
def test_getseq_process_failure_is_one_stderr_line_and_exit_1(rgstore_proc, store: Store, store_path: Path,  # type: ignore[no-untyped-def]
                                                              args: list[str], message: str) -> None:
    store.genomes.init(TINY, ["tiny"])
    store.close()
    done = rgstore_proc("--store", str(store_path), *args)
    assert done.returncode == 1
    assert done.stdout == b""
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


def test_getseq_command_never_imports_the_web_stack(store: Store, store_path: Path) -> None:
    store.genomes.init(TINY, ["tiny"])
    store.close()
    code = (
        "import sys\n"
        "from rgstore_cli.main import cli\n"
        f"try:\n    cli(['--store', {str(store_path)!r}, 'getseq', 'tiny', 'chr1:0-4'])\n"
        "except SystemExit:\n    pass\n"
        "print(sorted(m for m in ('fastapi', 'uvicorn', 'starlette', 'pydantic') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.stdout.splitlines()[-1] == "[]"


def test_every_genome_and_getseq_command_documents_an_example() -> None:
    from rgstore_cli.genome import fhr_group, genome_group
    from rgstore_cli.getseq import getseq_cmd

    commands = [genome_group, fhr_group, getseq_cmd, *genome_group.commands.values(), *fhr_group.commands.values()]
    for command in commands:
        assert "\b\nExample:" in (command.help or "").replace("    ", ""), command.name


def test_a_bed_file_with_non_utf8_bytes_is_one_line_naming_file_and_line(  # type: ignore[no-untyped-def]
    rgstore_proc, store: Store, store_path: Path, tmp_path: Path
) -> None:
    store.genomes.init(TINY, ["tiny"])
    store.close()
    bed = tmp_path / "latin1.bed"
    bed.write_bytes(b"chr1\t0\t5\nchr2\t0\t5\tg\xe8ne\n")
    done = rgstore_proc("--store", str(store_path), "getseq", "tiny", "--bed", str(bed))
    assert done.returncode == 1 and done.stdout == b""
    lines = done.stderr.decode().splitlines()
    assert lines == [f"error: {bed}: line 2: not UTF-8 text (byte 0xe8 at column 11)"]


def test_bed_regions_stream_from_standard_input_and_pipes(  # type: ignore[no-untyped-def]
    rgstore_proc, store: Store, store_path: Path, tmp_path: Path
) -> None:
    """Workflows pipe regions in (`bedtools merge ... | rgstore getseq G --bed -`, `--bed <(...)`)."""
    store.genomes.init(TINY, ["tiny"])
    chr2 = store.getseq("tiny", "chr2")
    store.close()
    done = rgstore_proc("--store", str(store_path), "getseq", "tiny", "--bed", "-", input=b"chr2\t0\t7\nchr2 3 5\n")
    assert done.returncode == 0 and done.stdout.decode() == f"{chr2[:7]}\n{chr2[3:5]}\n"
    done = rgstore_proc("--store", str(store_path), "getseq", "tiny", "--bed", "-", input=b"chr2\t0\n")
    assert done.returncode == 1
    assert done.stderr.decode().splitlines() == ["error: <stdin>: line 1: expected chrom, start and end columns"]
    fifo = tmp_path / "regions.fifo"
    os.mkfifo(fifo)
    writer = subprocess.Popen(["sh", "-c", f"printf 'chr2\\t1\\t4\\n' > {fifo}"])
    try:
        assert list(read_bed(fifo)) == [Region("chr2", 1, 4)]
    finally:
        writer.wait(timeout=30)
    with pytest.raises(InvalidInputError, match="is a directory, not a BED file"):
        list(read_bed(tmp_path))


def test_a_locus_past_the_end_is_reported_as_written(store: Store, tmp_path: Path) -> None:
    fasta = tmp_path / "b2.fa"
    fasta.write_text(">chrX\nACGTACGT\n")
    store.genomes.init(fasta, ["b2"])
    with pytest.raises(OutOfRangeError) as start_only:
        store.genomes.read_loci("b2", ["chrX:9"])
    assert str(start_only.value) == "chrX:9 of genome b2 is outside chrX (length 8)"
    with pytest.raises(OutOfRangeError, match=re.escape("chrX:2-9 of genome b2 is outside chrX (length 8)")):
        store.genomes.read_loci("b2", ["chrX:2-9"])


def test_a_sequence_named_like_a_locus_is_read_whole(cli, store: Store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fasta = tmp_path / "hla.fa"
    fasta.write_text(">HLA\nAAAACCCC\n>HLA:01\nGGGGTTTTAC\n")
    store.genomes.init(fasta, ["G"])
    assert store.genomes.read_loci("G", ["HLA:01", "HLA:02", "HLA:01:2-4"]) == [
        (Region("HLA:01"), "GGGGTTTTAC"), (Region("HLA", 2), "AACCCC"), (Region("HLA:01", 2, 4), "GG"),
    ]
    assert parse_locus("HLA:01", frozenset({"HLA:01"})) == Region("HLA:01")
    store.close()
    out = cli("getseq", "G", "HLA:01", "--fasta")
    assert out.exit_code == 0 and out.output == ">HLA:01:0-10\nGGGGTTTTAC\n"


@pytest.mark.parametrize("command", [["genome", "export", "big", "-"], ["getseq", "big", "c1"]],
                         ids=["export", "getseq"])
def test_a_reader_closing_the_pipe_early_ends_the_command_quietly(  # type: ignore[no-untyped-def]
    store: Store, store_path: Path, tmp_path: Path, command: list[str]
) -> None:
    from tests.conftest import REPO

    fasta = tmp_path / "big.fa"
    rng = random.Random(5)
    fasta.write_text(">c1\n" + "".join(rng.choice("ACGT") for _ in range(1_000_000)) + "\n")
    store.genomes.init(fasta, ["big"])
    store.close()
    proc = subprocess.Popen([sys.executable, "-m", "rgstore_cli", "--store", str(store_path), *command], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    head = proc.stdout.read(10)  # `| head -c 10`: read a little, then go away
    proc.stdout.close()
    assert proc.wait(timeout=120) == 0
    assert len(head) == 10 and proc.stderr.read() == b""
    proc.stderr.close()


def test_loci_are_parsed_against_the_names_of_the_genome_an_alias_points_at_after_a_commit(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The genome's names decide whether 'HLA:01' is a whole sequence or HLA from 1: a commit through
    # this Store that moves the alias must not leave the old genome's names in the reader's cache.
    from rgstore import sequences

    monkeypatch.setattr(sequences, "WATCH_INTERVAL_S", 3600.0)  # the head watcher must not mask it
    first, second = tmp_path / "first.fa", tmp_path / "second.fa"
    first.write_text(">HLA\nACGTACGTAC\n")
    second.write_text(">HLA:01\nTTTT\n")
    store.genomes.init(first, ["g"])
    other = store.genomes.init(second, ["h"]).genome.digest
    assert [r for _, r in store.genomes.read_loci("g", ["HLA"])] == ["ACGTACGTAC"]
    store.aliases.set("g", other, namespace="refgenie", force=True)
    assert [r for _, r in store.genomes.read_loci("g", ["HLA:01"])] == ["TTTT"]


def _wait_until_inside(thread: threading.Thread, function: str) -> None:
    """Return once ``thread`` is executing ``function`` (some frame of its stack)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        frame = sys._current_frames().get(thread.ident or -1)
        while frame is not None:
            if frame.f_code.co_name == function:
                return
            frame = frame.f_back
        time.sleep(0.001)
    raise AssertionError(f"{thread.name} never reached {function}")


def test_a_read_after_a_commit_through_the_same_store_sees_it_when_another_thread_resolved_a_genome_meanwhile(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A pipeline thread's first read of another genome, caught between its cache check and its resolution
    # while this thread moves an alias, must not mark the cached resolution of the old target as current.
    from rgstore import sequences

    monkeypatch.setattr(sequences, "WATCH_INTERVAL_S", 3600.0)  # the head watcher must not mask it
    digests = {}
    for name, residues in (("a", "AAAA"), ("b", "CCCC"), ("other", "GGGG")):
        (tmp_path / f"{name}.fa").write_text(f">s\n{residues}\n")
        digests[name] = store.genomes.init(tmp_path / f"{name}.fa", [name]).genome.digest
    store.aliases.set("mv", digests["a"])
    assert store.getseq("mv", "s") == "AAAA"  # resolved and cached
    seen: list[str] = []
    other = threading.Thread(target=lambda: seen.append(store.getseq("other", "s")))
    with store.genomes.sequences._lock:  # holds the other thread inside its resolution, past its cache check
        other.start()
        _wait_until_inside(other, "_index")
        store.aliases.set("mv", digests["b"], force=True)
    other.join()
    assert seen == ["GGGG"]
    assert store.getseq("mv", "s") == "CCCC"


def test_a_name_that_is_not_an_alias_never_reads_through_a_genome_read_by_digest_before(
    store: Store, tmp_path: Path
) -> None:
    digest = store.genomes.init(TINY, ["tiny"]).genome.digest
    assert store.genomes.getseq(digest, "chr1", 0, 4, by_digest=True) == store.getseq("tiny", "chr1", 0, 4)
    with pytest.raises(InvalidInputError, match="invalid alias name"):
        store.genomes.getseq("#" + digest, "chr1", 0, 4)  # once the digest's cache key


def test_streamed_regions_come_in_bounded_lazy_pieces_that_join_to_getseq(store: Store) -> None:
    from collections.abc import Iterator

    store.genomes.init(TINY, ["tiny"], circular=["chrM"])
    chr1, chrm = store.getseq("tiny", "chr1"), store.getseq("tiny", "chrM")
    loci = ["chr1", "chr1:5-100", "chrM:995-5", "chrM:1000-3", "chr1:7-7"]
    for reverse in (False, True):
        streamed = store.genomes.stream_loci("tiny", loci, revcomp=reverse, chunk=7)
        expected = [chr1, chr1[5:100], chrm[995:] + chrm[:5], chrm[:3], ""]
        for (region, size, pieces), want in zip(streamed, expected, strict=True):
            assert isinstance(pieces, Iterator)  # nothing read before it is consumed
            got = list(pieces)
            assert all(1 <= len(p) <= 7 for p in got) and size == len(want)
            assert "".join(got) == (revcomp(want) if reverse else want)


def test_streaming_many_regions_opens_each_data_file_once_not_once_per_region(  # type: ignore[no-untyped-def]
    store: Store, monkeypatch
) -> None:
    """Opening the data file for every region made a 50k-region BED 1.7x slower than before streaming."""
    from rgstore import sequences
    from rgstore.refgetstore import SequenceFiles

    store.genomes.init(TINY, ["tiny"], circular=["chrM"])
    chr1, chr2 = store.getseq("tiny", "chr1"), store.getseq("tiny", "chr2")
    opened: list[str] = []
    read = SequenceFiles.read
    monkeypatch.setattr(SequenceFiles, "read", lambda self, bare, lo, hi: opened.append(bare) or read(self, bare, lo, hi))
    regions = [("chr1" if i % 2 else "chr2", i, i + 50) for i in range(200)]
    for limit in (sequences.MAX_OPEN_FILES, 1):  # past the limit the other sequences open per read, still right
        monkeypatch.setattr(sequences, "MAX_OPEN_FILES", limit)
        opened.clear()
        got = ["".join(p) for _, p in store.genomes.sequences.stream("tiny", regions)]
        assert got == [(chr1 if i % 2 else chr2)[i:i + 50] for i in range(200)]
        assert len(opened) == (2 if limit > 1 else 2 + 100)  # the check read per sequence (+ chr1's reads)
    data = next(store.refget_path.joinpath("sequences").rglob(f"{store.genomes.show('tiny').sequences[0][3:]}.seq"))
    pieces = store.genomes.sequences.stream("tiny", [("chr1", 10, 20), ("chr1", 2980, 3000)])
    data.write_bytes(data.read_bytes()[:2990])  # cut short after the check: an error, not wrong residues
    assert "".join(pieces[0][1]) == chr1[10:20]
    with pytest.raises(NotFoundError, match="is recorded but missing"):
        "".join(pieces[1][1])

def test_streaming_a_region_checks_every_region_before_reading_any(store: Store) -> None:
    store.genomes.init(TINY, ["tiny"])
    with pytest.raises(OutOfRangeError):
        store.genomes.stream_loci("tiny", ["chr1", "chr2:0-999999"], chunk=7)
    with pytest.raises(NotFoundError):
        store.genomes.stream_loci("tiny", ["chr1", "nosuch"], chunk=7)


def test_streaming_a_long_sequence_holds_one_piece_in_memory_not_the_sequence(store: Store, tmp_path: Path) -> None:
    import tracemalloc

    fasta = tmp_path / "long.fa"
    residues = (b"ACGTTGCA" * 1_000_000)[:6_000_000]
    fasta.write_bytes(b">c1\n" + b"\n".join(residues[i:i + 80] for i in range(0, len(residues), 80)) + b"\n")
    store.genomes.init(fasta, ["long"])
    tracemalloc.start()
    try:
        total = 0
        for _region, _size, pieces in store.genomes.stream_loci("long", ["c1"], revcomp=True, chunk=1 << 19):
            for piece in pieces:
                total += len(piece)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total == len(residues)
    assert peak < 3_000_000  # a few 512 KiB pieces; the old read held the 6 MB sequence (and its reverse) at once


def test_cli_fasta_lines_stay_whole_across_pieces_of_a_long_sequence(store: Store, store_path: Path,
                                                                     tmp_path: Path) -> None:
    from rgstore.sequences import STREAM_CHUNK
    from tests.conftest import run_rgstore

    rng = random.Random(3)
    size = STREAM_CHUNK + 12_345  # two pieces, split mid-line for width 70
    seq = "".join(rng.choices("ACGT", k=size))
    fasta = tmp_path / "long.fa"
    fasta.write_text(">c1\n" + "".join(seq[i:i + 60] + "\n" for i in range(0, size, 60)))
    store.genomes.init(fasta, ["long"])
    store.close()
    for flags, want in (([], seq), (["--revcomp"], revcomp(seq))):
        done = run_rgstore("--store", str(store_path), "getseq", "long", "c1", "c1:0-3", "--fasta", "--width", "70",
                           *flags)
        assert done.returncode == 0, done.stderr
        tag = "/rc" if flags else ""
        short = revcomp(seq[:3]) if flags else seq[:3]
        assert done.stdout.decode() == (f">c1:0-{size}{tag}\n" + "".join(want[i:i + 70] + "\n" for i in range(0, size, 70))
                                        + f">c1:0-3{tag}\n{short}\n")
        bare = run_rgstore("--store", str(store_path), "getseq", "long", "c1", *flags)
        assert bare.returncode == 0 and bare.stdout.decode() == want + "\n"


def test_cli_bad_region_after_good_ones_prints_nothing(cli, store: Store) -> None:  # type: ignore[no-untyped-def]
    store.genomes.init(TINY, ["tiny"])
    store.close()
    out = cli("getseq", "tiny", "chr1:0-5", "chr2:0-999999")
    assert out.exit_code != 0 and out.stdout == "" and "outside" in out.stderr


def test_a_non_positive_stream_chunk_is_an_invalid_input_error(store: Store) -> None:
    store.genomes.init(TINY, ["tiny"])
    for chunk in (0, -1):
        with pytest.raises(InvalidInputError, match="chunk must be a positive number of residues"):
            store.genomes.stream_loci("tiny", ["chr1:0-5"], chunk=chunk)


def test_a_locus_string_given_to_getseqs_is_named_not_read_letter_by_letter(store: Store) -> None:
    store.genomes.init(TINY, ["tiny"])
    for call in (lambda: store.getseqs("tiny", ["chr1:0-5"]),
                 lambda: store.genomes.sequences.stream("tiny", ["chr1:0-5"])):
        with pytest.raises(InvalidInputError, match=r"region 'chr1:0-5' is a locus string: .*read_loci"):
            call()
    assert store.getseqs("tiny", [("chr1", 0, 5)]) == [store.getseq("tiny", "chr1", 0, 5)]


def test_a_lone_locus_string_given_to_getseqs_is_named_whole_not_as_its_first_letter(store: Store) -> None:
    # getseqs("tiny", "chr1:0-5") without the list: the error named region 'c' as "a locus string".
    store.genomes.init(TINY, ["tiny"])
    for call in (lambda: store.getseqs("tiny", "chr1:0-5"),  # type: ignore[arg-type]
                 lambda: store.genomes.sequences.stream("tiny", "chr1:0-5")):  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError, match=r"^region 'chr1:0-5' is a locus string: .*read_loci"):
            call()


def test_one_based_loci_count_like_samtools_faidx() -> None:
    assert parse_locus("chr1:1-10", one_based=True) == Region("chr1", 0, 10)
    assert parse_locus("chr1:11,874-14,409", one_based=True) == Region("chr1", 11873, 14409)
    assert parse_locus("chr1:5-5", one_based=True) == Region("chr1", 4, 5)
    assert parse_locus("chr1:5", one_based=True) == Region("chr1", 4)
    assert parse_locus("HLA:01", {"HLA:01"}, one_based=True) == Region("HLA:01")  # a name, not coordinates
    with pytest.raises(InvalidInputError, match="1-based coordinates start at 1"):
        parse_locus("chr1:0-10", one_based=True)


@pytest.mark.skipif(shutil.which("samtools") is None, reason="samtools is not installed")
def test_cli_one_based_fasta_equals_samtools_faidx_on_the_same_loci(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fasta = tmp_path / "g.fa"
    shutil.copyfile(TINY, fasta)
    assert cli("genome", "init", "--fasta", str(fasta), "--name", "g").exit_code == 0
    loci = ["chr1:1-10", "chr1:1,000-1,010", "chr2:1995", "chr1:5-5", "chrM:1-1000"]
    for flags in ([], ["-i"]):
        ours = cli("getseq", "g", "--one-based", "--fasta", *flags, *loci)
        assert ours.exit_code == 0, ours.output
        theirs = subprocess.run(["samtools", "faidx", str(fasta), *loci, *flags], check=True, capture_output=True,
                                text=True).stdout
        # samtools keeps soft-masking and echoes the locus as typed; rgstore writes upper case, plain numbers.
        assert ours.output.upper() == theirs.upper().replace("1,000-1,010", "1000-1010").replace(
            ":1995", ":1995-2000")


def test_out_of_range_one_based_loci_say_which_coordinates_the_error_uses(store: Store) -> None:
    store.genomes.init(TINY, ["g"])
    with pytest.raises(OutOfRangeError, match=r"chr1:9-5 of genome g: start is after end .*0-based"):
        store.genomes.read_loci("g", ["chr1:10-5"], one_based=True)
    assert store.genomes.read_loci("g", ["chr1:1-4"], one_based=True) == [(Region("chr1", 0, 4), "ATTT")]


def test_store_getseq_and_getseqs_take_by_digest_as_the_genomes_service_does(store: Store) -> None:
    digest = store.genomes.init(TINY, ["tiny"]).genome.digest
    assert store.getseq(digest, "chr1", 0, 5, by_digest=True) == store.getseq("tiny", "chr1", 0, 5) == "ATTTG"
    assert store.getseqs(digest, [("chr2", 0, 4)], by_digest=True, revcomp=True) == store.getseqs(
        "tiny", [("chr2", 0, 4)], revcomp=True)
    with pytest.raises(InvalidInputError, match="invalid digest 'tiny'"):
        store.getseq("tiny", "chr1", 0, 5, by_digest=True)  # an alias is not a digest


def test_a_region_tuple_short_of_its_end_is_an_invalid_input_error_naming_it(store: Store) -> None:
    store.genomes.init(TINY, ["tiny"])
    calls = (lambda: store.getseqs("tiny", [("chr1", 0, 5), ("chr1", 0)]),  # type: ignore[list-item]
             lambda: store.getseqs("tiny", (r for r in [("chr1", 0, 5), ("chr1", 0)])),  # type: ignore[arg-type]
             lambda: store.genomes.sequences.stream("tiny", [("chr1", 0)]))  # type: ignore[list-item]
    for call in calls:
        with pytest.raises(InvalidInputError, match=r"^region \('chr1', 0\) is not \(seq, start, end\): give all three"):
            call()


_STRANDED_BED = "chr1\t0\t12\tf\t0\t+\nchr2\t5\t40\tr\t0\t-\nchr1\t100\t130\tu\t0\t.\nchr2\t0\t7\tr2\t0\t-\n"


def test_stranded_bed_reverse_complements_only_the_minus_rows(store: Store, tmp_path: Path) -> None:
    # The 6th column was ignored: a - row came out forward, and only --revcomp (every region) reversed.
    store.genomes.init(TINY, ["tiny"])
    chr1, chr2 = store.getseq("tiny", "chr1"), store.getseq("tiny", "chr2")
    bed = tmp_path / "s.bed"
    bed.write_text(_STRANDED_BED + "chr1\t3\t9\n")  # no 6th column: forward
    want = [chr1[:12], revcomp(chr2[5:40]), chr1[100:130], revcomp(chr2[:7]), chr1[3:9]]
    got = store.genomes.read_loci("tiny", [], bed=bed, strand=True)
    assert [r for _, r in got] == want
    assert [region.strand for region, _ in got] == ["+", "-", ".", "-", ""]
    streamed = store.genomes.stream_loci("tiny", [], bed=bed, strand=True, chunk=4)
    assert ["".join(pieces) for _, _, pieces in streamed] == want
    unstranded = store.genomes.read_loci("tiny", [], bed=bed)  # without strand: as before, column 6 unread
    assert [r for _, r in unstranded] == [chr1[:12], chr2[5:40], chr1[100:130], chr2[:7], chr1[3:9]]
    with pytest.raises(InvalidInputError, match="cannot be combined"):
        store.genomes.read_loci("tiny", [], bed=bed, strand=True, revcomp=True)


def test_a_stranded_bed_row_with_another_strand_is_a_one_line_error_naming_the_line(  # type: ignore[no-untyped-def]
    cli, store: Store, tmp_path: Path
) -> None:
    store.genomes.init(TINY, ["tiny"])
    store.close()
    bed = tmp_path / "bad.bed"
    bed.write_text("chr1\t0\t5\ta\t0\t-\nchr1\t0\t5\tb\t0\tminus\n")
    with pytest.raises(InvalidInputError, match=r"line 2: strand \(6th column\) must be \+, - or \., not 'minus'"):
        list(read_bed(bed, strand=True))
    out = cli("getseq", "tiny", "--bed", str(bed), "--strand")
    assert out.exit_code == 1 and out.output == f"error: {bed}: line 2: strand (6th column) must be +, - or ., not 'minus'\n"
    assert cli("getseq", "tiny", "--bed", str(bed)).exit_code == 0  # column 6 is read only with --strand
    both = cli("getseq", "tiny", "--bed", str(bed), "--strand", "--revcomp")
    assert both.exit_code == 2 and "--strand and --revcomp cannot be combined" in both.output


def test_strand_without_bed_is_a_usage_error_not_silently_ignored(  # type: ignore[no-untyped-def]
    rgstore_proc, store: Store, store_path: Path
) -> None:
    # It printed the loci forward, exit 0: --strand reads only a BED row's 6th column (bedtools getfasta -s).
    store.genomes.init(TINY, ["tiny"])
    store.close()
    for flag in ("--strand", "-s"):
        done = rgstore_proc("--store", str(store_path), "getseq", "tiny", "chr1:0-5", flag)
        assert done.returncode == 2 and done.stdout == b""
        assert done.stderr.decode() == ("error: --strand applies to --bed rows (their 6th column); for a LOCUS use "
                                        "--revcomp (see `rgstore getseq --help`)\n")



def test_refgenies_g_and_l_options_print_what_the_arguments_do(  # type: ignore[no-untyped-def]
    cli, store: Store,
) -> None:
    # `rgstore getseq -g hg38 -l chr1:1-100`, as refgenie users type it, was click's "No such option: -g".
    digest = store.genomes.init(TINY, ["tiny"]).genome.digest
    store.close()
    expected = cli("getseq", "tiny", "chr1:0-10", "chr2:5-9", "--fasta")
    assert expected.exit_code == 0 and expected.stdout.count(">") == 2
    for form in (["-g", "tiny", "-l", "chr1:0-10", "-l", "chr2:5-9"],
                 ["--genome", "tiny", "--locus", "chr1:0-10", "--locus", "chr2:5-9"],
                 ["tiny", "-l", "chr1:0-10", "-l", "chr2:5-9"],
                 ["--digest", digest, "-l", "chr1:0-10", "-l", "chr2:5-9"]):
        out = cli("getseq", *form, "--fasta")
        assert (out.exit_code, out.stdout) == (0, expected.stdout), form


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tiny", "-g", "tiny", "-l", "chr1:0-10"],
         "-g tiny names the genome and -l gives each LOCUS, so the argument 'tiny' is one too many: "
         "`rgstore getseq tiny LOCUS...` or `rgstore getseq -g tiny -l LOCUS`"),
        (["-g", "tiny", "chr1:0-10"],
         "-g tiny names the genome and -l gives each LOCUS, so the argument 'chr1:0-10' is one too many: "
         "`rgstore getseq tiny LOCUS...` or `rgstore getseq -g tiny -l LOCUS`"),
        (["-g", "tiny", "--digest", "D", "-l", "chr1"], "-g/--genome and --digest both name the genome: give one"),
        (["tiny", "chr2", "-l", "chr1"], "give each LOCUS as an argument or with -l/--locus, not both ('chr2' and -l chr1)"),
        (["--sequence", "insdc:X", "-l", "chr1"],
         "--sequence ID names one sequence of any genome: it takes no -g/--genome or -l/--locus (arguments are "
         "REGIONs)"),
    ],
    ids=["genome-twice", "positional-locus-with-g", "g-and-digest", "locus-both-ways", "sequence-and-l"],
)
def test_a_genome_or_locus_given_both_ways_is_a_usage_error_saying_so(  # type: ignore[no-untyped-def]
    rgstore_proc, store_path: Path, args: list[str], message: str,
) -> None:
    done = rgstore_proc("--store", str(store_path), "getseq", *args)
    assert done.returncode == 2 and done.stdout == b""
    assert done.stderr.decode() == f"error: {message} (see `rgstore getseq --help`)\n"
    assert not store_path.exists()  # refused before any store is opened

@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("chr1\t10\t5", "chr1:10-5 of genome tiny: start is after end (chr1 is not circular)"),
        ("chr9\t0\t5", "genome tiny has no sequence 'chr9'"),
        ("chr1\t2990\t3005", "chr1:2990-3005 of genome tiny is outside chr1 (length 3000)"),
    ],
    ids=["start-after-end", "unknown-contig", "past-the-end"],
)
def test_a_bed_row_naming_a_bad_region_is_an_error_naming_file_and_line(  # type: ignore[no-untyped-def]
    cli, store: Store, tmp_path: Path, row: str, message: str
) -> None:
    # These named neither the file nor the line, unlike a short row, a non-integer or a bad strand.
    store.genomes.init(TINY, ["tiny"])
    bed = tmp_path / "r.bed"
    bed.write_text(f"chr1\t0\t5\n# c\n{row}\nchr2\t0\t5\n")
    where = f"^{re.escape(f'{bed}: line 3: {message}')}"
    with pytest.raises((InvalidInputError, NotFoundError), match=where):
        store.genomes.read_loci("tiny", [], bed=bed)
    with pytest.raises((InvalidInputError, NotFoundError), match=where):
        store.genomes.stream_loci("tiny", ["chr1:0-3"], bed=bed, strand=True)
    with pytest.raises((InvalidInputError, NotFoundError), match=f"^{re.escape(message)}"):  # a LOCUS has no line
        store.genomes.read_loci("tiny", [row.replace("\t", ":", 1).replace("\t", "-")], bed=bed)
    store.close()
    out = cli("getseq", "tiny", "--bed", str(bed))
    assert out.exit_code == 1 and out.output.startswith(f"error: {bed}: line 3: {message}") and out.output.count("\n") == 1


@pytest.mark.skipif(shutil.which("bedtools") is None, reason="bedtools is not installed")
def test_cli_strand_fasta_equals_bedtools_getfasta_s(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fasta = tmp_path / "tiny.fa"  # a copy: bedtools writes its .fai next to the FASTA
    shutil.copyfile(TINY, fasta)
    assert cli("genome", "init", "--fasta", str(fasta), "--name", "tiny").exit_code == 0
    bed = tmp_path / "s.bed"
    bed.write_text(_STRANDED_BED)
    ours = cli("getseq", "tiny", "--bed", str(bed), "--strand", "--fasta", "--width", "100000")
    assert ours.exit_code == 0
    theirs = subprocess.run(["bedtools", "getfasta", "-fi", str(fasta), "-bed", str(bed), "-s"],
                            check=True, capture_output=True, text=True).stdout
    assert "(-)" in theirs and ours.output == theirs  # tiny.fa is upper case, as our output always is


_GETSEQ_WITHOUT_DESCRIPTORS = """
import os, resource, sys
from pathlib import Path
from rgstore.store import Store
from rgstore.errors import TooManyOpenFilesError
store = Store.open(Path(sys.argv[1]))
store.genomes.show("tiny")  # loads the modules a read needs (a lazy import takes a descriptor too)
resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
held = []
try:
    while True:
        held.append(os.open(os.devnull, os.O_RDONLY))
except OSError:
    pass
try:
    outcome = store.getseq("tiny", "chr1", 0, 4)
except TooManyOpenFilesError as exc:
    outcome = type(exc).__name__ + ": " + str(exc)
except BaseException as exc:
    outcome = type(exc).__module__ + "." + type(exc).__name__ + ": " + str(exc)
for fd in held:
    os.close(fd)
print(outcome)
print(store.getseq("tiny", "chr1", 0, 4))
"""


def test_a_first_read_out_of_descriptors_for_rgstore_json_is_too_many_open_files_not_a_damaged_store(
    store: Store, store_path: Path
) -> None:
    # SequenceFiles turned every OSError reading rgstore.json into IntegrityError ("... is unreadable"): out
    # of descriptors (`ulimit -n`) the CLI blamed the store and the server answered 500 instead of 503.
    from tests.conftest import REPO

    store.genomes.init(TINY, ["tiny"])
    store.close()
    proc = subprocess.run([sys.executable, "-c", _GETSEQ_WITHOUT_DESCRIPTORS, str(store_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    refused, read = proc.stdout.splitlines()
    assert refused.startswith("TooManyOpenFilesError: too many open files: this process reached its limit of 64"), refused
    assert read == "ATTT"  # descriptors free again: the same read answers

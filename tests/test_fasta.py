"""FASTA validation: sound files summarise correctly in any chunking; unsound ones name file, line and reason."""

from __future__ import annotations

import base64
import bz2
import gzip
import hashlib
import lzma
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rgstore import fasta
from rgstore.errors import InvalidInputError
from rgstore.fasta import detect_compression, digest_fasta, start_digest, validate_fasta

GOOD = b">chr1 first contig\nACGTN\nacgtn\n>chr2\nRYKMSWBDHVU\n\n>prot1 a protein\nMKVLA*\nGH-XBZJO\n"


def _sha512t24u(residues: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha512(residues.upper()).digest()[:24]).decode()


def test_valid_fasta_yields_names_lengths_and_descriptions(tmp_path: Path) -> None:
    path = tmp_path / "good.fa"
    path.write_bytes(GOOD)
    summary = validate_fasta(path)
    assert summary.names == ["chr1", "chr2", "prot1"]
    assert summary.lengths == [10, 11, 14]
    assert [r.description for r in summary.records] == ["first contig", "", "a protein"]
    assert summary.compression == "none" and summary.size == len(GOOD)


def test_crlf_line_ends_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "crlf.fa"
    path.write_bytes(GOOD.replace(b"\n", b"\r\n"))
    assert validate_fasta(path).lengths == [10, 11, 14]


def test_gzip_multi_member_and_bgzf_are_read_by_content_not_name(tmp_path: Path) -> None:
    pysam = pytest.importorskip("pysam")
    plain = tmp_path / "g.fa"
    plain.write_bytes(GOOD)
    multi = tmp_path / "multi.fa"  # gzip bytes under a plain name
    multi.write_bytes(gzip.compress(GOOD[:30]) + gzip.compress(GOOD[30:]))
    bgzf = tmp_path / "g.fa.bgz"
    pysam.tabix_compress(str(plain), str(bgzf))
    expected = validate_fasta(plain)
    for path, kind in ((multi, "gzip"), (bgzf, "bgzf")):
        summary = validate_fasta(path)
        assert summary.compression == kind
        assert summary.records == expected.records


def test_digest_hashes_upper_cased_residues_and_the_file_bytes(tmp_path: Path) -> None:
    path = tmp_path / "good.fa.gz"
    path.write_bytes(gzip.compress(GOOD))
    summary = digest_fasta(path)
    assert summary.md5 == hashlib.md5(path.read_bytes()).hexdigest()
    assert [r.digest for r in summary.records] == [
        _sha512t24u(b"ACGTNACGTN"), _sha512t24u(b"RYKMSWBDHVU"), _sha512t24u(b"MKVLA*GH-XBZJO"),
    ]


@pytest.mark.parametrize("in_child", [True, False], ids=["child", "small-file-in-process"])
def test_digest_job_matches_the_in_process_digest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 in_child: bool) -> None:
    monkeypatch.setattr(fasta, "IN_PROCESS_DIGEST_MAX", -1 if in_child else 1 << 20)
    path = tmp_path / "good.fa"
    path.write_bytes(GOOD.replace(b"\n", b"\r\n"))
    job = start_digest(path)
    assert isinstance(job, fasta.DigestJob) is in_child
    summary = job.result()
    assert summary == digest_fasta(path)
    assert summary.lengths == validate_fasta(path).lengths


@pytest.mark.parametrize("in_child", [True, False], ids=["child", "small-file-in-process"])
def test_digest_job_reports_invalid_input_as_invalid_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           in_child: bool) -> None:
    monkeypatch.setattr(fasta, "IN_PROCESS_DIGEST_MAX", -1 if in_child else 1 << 20)
    path = tmp_path / "bad.fa"
    path.write_bytes(b"ACGT\n>a\nAC\n")
    with pytest.raises(InvalidInputError, match="before the first '>' header"):
        start_digest(path).result()


def test_detect_compression_uses_magic_bytes() -> None:
    assert detect_compression(b">chr1\n") == "none"
    assert detect_compression(gzip.compress(b"x")[:18]) == "gzip"
    assert detect_compression(bytes.fromhex("1f8b08040000000000ff0600424302001b00")) == "bgzf"


_name = st.text(alphabet="abcXYZ019_.|:", min_size=1, max_size=8)
_residues = st.text(alphabet="ACGTNacgtnRYKM*-", min_size=0, max_size=200)


@st.composite
def _fasta(draw: st.DrawFn) -> tuple[bytes, list[str], list[bytes]]:
    names = draw(st.lists(_name, min_size=1, max_size=6, unique=True))
    eol = draw(st.sampled_from([b"\n", b"\r\n"]))
    out, seqs = [], []
    for name in names:
        seq = draw(_residues).encode()
        width = draw(st.integers(1, 70))
        out.append(b">" + name.encode() + draw(st.sampled_from([b"", b" desc", b"\tx y"])) + eol)
        out += [seq[i:i + width] + eol for i in range(0, len(seq), width)]
        if draw(st.booleans()):
            out.append(eol)  # a blank line between records
        seqs.append(seq)
    return b"".join(out), names, seqs


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=_fasta(), chunk=st.sampled_from([1, 2, 3, 5, 17, 64, 4096]))
def test_any_chunking_gives_the_same_summary_and_digests(tmp_path: Path, doc: tuple[bytes, list[str], list[bytes]],
                                                         chunk: int) -> None:
    data, names, seqs = doc
    path = tmp_path / "h.fa"
    path.write_bytes(data)
    summary = digest_fasta(path, chunk_size=chunk)
    assert summary.names == names
    assert summary.lengths == [len(s) for s in seqs]
    assert [r.digest for r in summary.records] == [_sha512t24u(s) for s in seqs]
    assert validate_fasta(path, chunk_size=chunk).lengths == summary.lengths


BAD_CASES = [
    ("empty", b"", None, "empty"),
    ("only-blank", b"\n\n", None, "no FASTA records"),
    ("no-header", b"ACGT\n>chr1\nACGT\n", 1, "before the first '>' header"),
    ("unnamed", b">chr1\nAC\n>\nGT\n", 3, "has no name"),
    ("space-before-name", b">chr1\nAC\n> chr2\nGT\n", 3, "has no name"),
    ("duplicate", b">chr1\nAC\n>chr2\nGG\n>chr1\nGT\n", 5, "duplicate sequence name 'chr1' (first seen on line 1)"),
    ("space-in-sequence", b">chr1\nACGT\nAC GT\n", 3, "whitespace (a space) inside a sequence line"),
    ("tab-in-sequence", b">chr1\nACGT\t\n", 2, "whitespace (a tab) inside a sequence line"),
    # It was "whitespace b' '": Python's bytes repr, not words.
    ("only-spaces", b"  \t \n", 1, "line 1, column 1: whitespace (a space) inside a sequence line"),
    ("form-feed-in-sequence", b">chr1\nAC\fGT\n", 2, "whitespace (a form feed, U+000C)"),
    ("digit", b">chr1\nACGT\nAC1T\n", 3, "invalid residue '1'"),
    ("dot", b">chr1\nAC.T\n", 2, "invalid residue '.'"),
    ("gt-mid-line", b">chr1\nAC>GT\n", 2, "'>' inside a sequence line"),
    ("binary", b">chr1\nAC\xffGT\n", 2, "invalid byte 0xff"),
    ("lone-cr", b">chr1\nAC\rGT\n", 2, "carriage return"),
    ("bad-utf8-header", b">chr\xff1\nACGT\n", 1, "not valid UTF-8"),
    # A Notepad-saved FASTA: it was "line 1, column 1: invalid byte 0xef", not saying what to remove.
    ("utf8-bom", b"\xef\xbb\xbf>chr1\nACGT\n", None, "starts with a UTF-8 byte-order mark (bytes EF BB BF)"),
    # Readers disagree whether these end a name (gtars: U+00A0 does; Python: U+001C does).
    ("nbsp-in-name", ">chr1\nAC\n>chr2\u00a0x\nGT\n".encode(), 3, "'chr2\\xa0x' contains U+00A0"),
    ("file-separator-in-name", b">chr1\x1cx\nGT\n", 1, "contains U+001C, a whitespace or control character"),
    ("nul-in-name", b">chr\x001\nGT\n", 1, "contains U+0000"),
    # gtars' TSV index: a '#' line is a comment and a tab adds a column on reload, so the record
    # would be stored yet unreadable (and `rgstore verify` would fail) in every later process.
    ("hash-starts-name", b">chr1\nAC\n>#chr2\nGT\n", 3, "sequence name '#chr2' starts with '#'"),
    ("tab-in-description", b">chr1\tAC:1\tgi:2\nGT\n", 1, "tab inside the header's description"),
    # A classic Mac OS file (CR line ends only) is one header line: it was stored as one empty record
    # named chr1 whose description held the whole file.
    ("classic-mac-line-ends", b">chr1 x\rACGT\r>chr2\rGG\r", 1, "column 8: carriage return inside a header line"),
    ("cr-inside-header", b">chr1\nAC\n>chr2\rx\nGT\n", 3, "column 6: carriage return inside a header line"),
]


@pytest.mark.parametrize(("label", "data", "line", "reason"), BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_malformed_fasta_error_names_file_line_and_reason(tmp_path: Path, label: str, data: bytes,
                                                          line: int | None, reason: str) -> None:
    path = tmp_path / f"{label}.fa"
    path.write_bytes(data)
    with pytest.raises(InvalidInputError) as info:
        validate_fasta(path)
    message = str(info.value)
    assert message.startswith(str(path))
    assert reason in message
    if line is not None:
        assert f"line {line}," in message
    assert "\n" not in message


@pytest.mark.parametrize(("name", "fix"), [
    ("plain.fa", "e.g. sed -i '1s/^\\xEF\\xBB\\xBF//' FILE"),
    # It offered `sed -i` for a .fa.gz too, which edits the compressed bytes and leaves the mark.
    ("packed.fa.gz", "e.g. zcat FILE | sed '1s/^\\xEF\\xBB\\xBF//' | gzip > NEW.fa.gz"),
])
def test_a_byte_order_mark_error_gives_a_fix_that_works_on_that_kind_of_file(
    tmp_path: Path, name: str, fix: str
) -> None:
    import gzip

    data = b"\xef\xbb\xbf>chr1\nACGT\n"
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    with pytest.raises(InvalidInputError) as info:
        validate_fasta(path)
    assert str(info.value).endswith(fix)


@pytest.mark.parametrize("chunk", [None, 4096], ids=["whole-header-in-one-chunk", "header-across-chunks"])
def test_a_header_over_1_mib_is_refused_wherever_chunks_end(tmp_path: Path, chunk: int | None) -> None:
    # It was refused only when the header crossed a chunk boundary: a file's fate hung on read sizes.
    path = tmp_path / "long.fa"
    path.write_bytes(b">chr1\nAC\n>" + b"n" * (2 << 20) + b"\nGT\n")
    with pytest.raises(InvalidInputError, match=r"line 3, column 1: header line longer than 1 MiB"):
        validate_fasta(path, chunk_size=chunk)


@pytest.mark.parametrize(("kind", "data"), [
    ("bzip2", bz2.compress(b">chr1\nACGT\n")),
    ("xz", lzma.compress(b">chr1\nACGT\n")),
    ("zstd", bytes.fromhex("28b52ffd2409450000") + b">chr1\nACGT\n"),  # magic, then a raw block's bytes
    ("zip", b"PK\x03\x04\x14\x00" + b"\x00" * 24),
], ids=["bzip2", "xz", "zstd", "zip"])
def test_another_compression_is_named_with_a_way_to_decompress(tmp_path: Path, kind: str, data: bytes) -> None:
    # It was "line 1, column 4: invalid residue '9'" (bzip2's "BZh9"), not saying the file is compressed.
    path = tmp_path / f"x.{kind}"
    path.write_bytes(data)
    with pytest.raises(InvalidInputError) as info:
        validate_fasta(path)
    assert str(info.value).startswith(f"{path}: is {kind}-compressed, which is not read (plain, gzip or BGZF")
    assert "| rgstore genome init --fasta -" in str(info.value)


def test_error_column_points_at_the_offending_byte_across_chunks(tmp_path: Path) -> None:
    path = tmp_path / "late.fa"
    path.write_bytes(b">chr1\n" + b"ACGT" * 10 + b"\n" + b"ACGTACG7\n")
    with pytest.raises(InvalidInputError, match=r"line 3, column 8: invalid residue '7'"):
        validate_fasta(path, chunk_size=3)


def test_a_gzip_that_inflates_500_to_1_is_read_in_bounded_memory(tmp_path: Path) -> None:
    # 200 kB of gzip holding 100 MB of N: one read used to inflate whole (peak ~290 MB; a 2 MiB
    # read of such a file would have asked for 2 GB at once).
    import tracemalloc
    import zlib

    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = (b"N" * 999 + b"\n") * 1000
    path = tmp_path / "runs.fa.gz"
    path.write_bytes(packer.compress(b">chr1\n") + b"".join(packer.compress(block) for _ in range(100))
                     + packer.flush())
    for read in (validate_fasta, digest_fasta):
        tracemalloc.start()
        try:
            assert read(path).lengths == [99_900_000]
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 100 << 20, (read.__name__, peak)


def test_inflating_in_small_pieces_gives_the_same_summary_and_digests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rgstore import fasta, fastadigest

    data = b"".join(b">c%d some words\nACGTNacgtn\nRYKM\n" % i for i in range(40))
    path = tmp_path / "multi.fa.gz"
    path.write_bytes(gzip.compress(data[:333]) + gzip.compress(data[333:]))
    whole, digests = validate_fasta(path), digest_fasta(path)
    monkeypatch.setattr(fasta, "_MAX_INFLATE", 7)
    monkeypatch.setattr(fastadigest, "_MAX_INFLATE", 5)
    assert validate_fasta(path, chunk_size=11).records == whole.records
    assert digest_fasta(path, chunk_size=13).records == digests.records


def test_truncated_gzip_is_refused(tmp_path: Path) -> None:
    packed = gzip.compress(GOOD * 50)
    path = tmp_path / "cut.fa.gz"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(InvalidInputError, match="truncated gzip"):
        validate_fasta(path)


def test_bgzf_without_its_eof_block_is_refused(tmp_path: Path) -> None:
    pysam = pytest.importorskip("pysam")
    plain = tmp_path / "g.fa"
    plain.write_bytes(GOOD)
    bgzf = tmp_path / "g.fa.gz"
    pysam.tabix_compress(str(plain), str(bgzf))
    bgzf.write_bytes(bgzf.read_bytes()[:-28])
    with pytest.raises(InvalidInputError, match="BGZF"):
        validate_fasta(bgzf)


def test_missing_file_and_directory_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="no such file"):
        validate_fasta(tmp_path / "absent.fa")
    with pytest.raises(InvalidInputError, match="is a directory"):
        validate_fasta(tmp_path)



def test_validate_fasta_refuses_a_pipe_naming_genome_init_which_saves_one_first() -> None:
    # Validation re-reads and seeks its file; `genome init` spools a stream before validating it
    # (tests/test_fasta_stream.py), a direct call on a pipe is told so rather than read as empty.
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, b">a\nACGT\n")
        os.close(write_end)
        with pytest.raises(InvalidInputError, match="is a pipe, not a file; .* genome init --fasta"):
            validate_fasta(Path(f"/dev/fd/{read_end}"))
        fasta.check_openable(Path(f"/dev/fd/{read_end}"))  # passes it unread: the ingest spools it
        assert os.read(read_end, 100) == b">a\nACGT\n"
    finally:
        os.close(read_end)


@pytest.mark.parametrize(("name", "fix"), [
    ("plain.fa", "convert them: tr '\\r' '\\n' < FILE > NEW.fa)"),
    # It offered `tr ... < FILE` for a .fa.gz too, which rewrites bytes of the compressed stream.
    ("packed.fa.gz", "convert them: zcat FILE | tr '\\r' '\\n' | gzip > NEW.fa.gz)"),
])
def test_the_classic_mac_line_end_fix_suits_the_files_compression(tmp_path: Path, name: str, fix: str) -> None:
    data = b">chr1\rACGT\r>chr2\rGG\r"
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    with pytest.raises(InvalidInputError, match="carriage return inside a header line") as info:
        validate_fasta(path)
    assert str(info.value).endswith(fix), str(info.value)

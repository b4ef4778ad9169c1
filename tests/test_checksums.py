"""Claims about upstream checksum files and the BSD sum algorithm."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from rgstore.checksums import (
    BsdSum,
    Expected,
    bsd_sum,
    bsd_sum_bytes,
    parse_ensembl_checksums,
    parse_md5checksums,
    verify_file,
)
from rgstore.errors import IntegrityError, InvalidInputError


def test_md5checksums_names_lose_only_the_leading_dot_slash() -> None:
    text = (
        "2a2c33ee0a2e5d1b3a4c0d9e8f7a6b5c  ./GCF_000001405.40_GRCh38.p14_genomic.fna.gz\n"
        "\n"
        "0123456789abcdef0123456789ABCDEF  ./.hidden.gz\n"
        "ffffffffffffffffffffffffffffffff  ./Annotation_comparison/sub dir/file.txt\n"
    )
    parsed = parse_md5checksums(text)
    assert parsed["GCF_000001405.40_GRCh38.p14_genomic.fna.gz"] == Expected(
        algorithm="md5", value="2a2c33ee0a2e5d1b3a4c0d9e8f7a6b5c"
    )
    # The seed's .lstrip("./") would have eaten the dot of ".hidden.gz".
    assert parsed[".hidden.gz"].value == "0123456789abcdef0123456789abcdef"
    assert "Annotation_comparison/sub dir/file.txt" in parsed


def test_md5checksums_written_by_md5sum_in_binary_mode_name_the_files_without_the_star() -> None:
    # `md5sum -b` writes "<md5> *<file>"; the star stayed in the name, so the genome was "not listed".
    parsed = parse_md5checksums("2a2c33ee0a2e5d1b3a4c0d9e8f7a6b5c *./a_genomic.fna.gz\n"
                                "0123456789abcdef0123456789abcdef *b.gtf.gz\n")
    assert sorted(parsed) == ["a_genomic.fna.gz", "b.gtf.gz"]
    assert parse_md5checksums("2a2c33ee0a2e5d1b3a4c0d9e8f7a6b5c  ./*star.txt\n").keys() == {"*star.txt"}


def test_md5checksums_rejects_a_malformed_line_naming_it() -> None:
    with pytest.raises(InvalidInputError, match="line 2"):
        parse_md5checksums("2a2c33ee0a2e5d1b3a4c0d9e8f7a6b5c  ./a\nnot a checksum line\n")


def test_a_file_listed_twice_with_different_sums_is_refused_whichever_comes_last() -> None:
    # Last-wins would cache the file when only the later line matched, and blame the wrong line otherwise.
    good, bad = "2a2c33ee0a2e5d1b3a4c0d9e8f7a6b5c", "ffffffffffffffffffffffffffffffff"
    with pytest.raises(InvalidInputError, match="line 2: lists a.gz again"):
        parse_md5checksums(f"{bad}  ./a.gz\n{good}  ./a.gz\n")
    with pytest.raises(InvalidInputError, match="CHECKSUMS line 3: lists a.gz again"):
        parse_ensembl_checksums("1 2 a.gz\n3 4 README\n5 2 a.gz\n")


def test_a_file_listed_twice_with_the_same_sum_is_accepted() -> None:
    assert parse_md5checksums("2A2C33EE0A2E5D1B3A4C0D9E8F7A6B5C  ./a\n2a2c33ee0a2e5d1b3a4c0d9e8f7a6b5c  a\n")["a"].value == (
        "2a2c33ee0a2e5d1b3a4c0d9e8f7a6b5c"
    )
    assert parse_ensembl_checksums("7 1 a\n07 1 a\n")["a"].value == "7/1"


def test_ensembl_checksums_accept_tabs_and_spaces() -> None:
    text = "55610 198719 Homo_sapiens.GRCh38.dna.alt.fa.gz\n00042\t3\tREADME\n"
    parsed = parse_ensembl_checksums(text)
    assert parsed["Homo_sapiens.GRCh38.dna.alt.fa.gz"] == Expected(algorithm="sum", value="55610/198719")
    assert parsed["README"].value == "42/3"


def test_checksum_files_saved_with_a_byte_order_mark_and_crlf_parse_like_plain_ones() -> None:
    # A BOM glued to line 1's md5 or sum made that well-formed line "malformed": nothing could be fetched.
    md5 = parse_md5checksums("\ufeff2A2C33EE0A2E5D1B3A4C0D9E8F7A6B5C \t ./a_genomic.fna.gz  \r\n"
                             "0123456789abcdef0123456789abcdef  ./b.gtf.gz\r\n")
    assert md5 == {"a_genomic.fna.gz": Expected(algorithm="md5", value="2a2c33ee0a2e5d1b3a4c0d9e8f7a6b5c"),
                   "b.gtf.gz": Expected(algorithm="md5", value="0123456789abcdef0123456789abcdef")}
    ensembl = parse_ensembl_checksums("\ufeff55610\t198719\tHomo_sapiens.GRCh38.dna.alt.fa.gz\r\n42 3 README\r\n")
    assert ensembl == {"Homo_sapiens.GRCh38.dna.alt.fa.gz": Expected(algorithm="sum", value="55610/198719"),
                       "README": Expected(algorithm="sum", value="42/3")}


def test_ensembl_checksums_reject_a_line_without_three_fields() -> None:
    with pytest.raises(InvalidInputError, match="CHECKSUMS line 1"):
        parse_ensembl_checksums("55610 Homo_sapiens.fa.gz\n")


@pytest.mark.parametrize("line", ["\u00b2 1 a.fa.gz", "1 \u0661 a.fa.gz", "1 " + "1" * 5000 + " a.fa.gz"])
def test_ensembl_checksums_with_non_ascii_or_huge_numbers_are_a_one_line_error(line: str) -> None:
    # str.isdigit() accepts '²' (int() then raises ValueError) and int() refuses 4,301+ digits.
    with pytest.raises(InvalidInputError, match="CHECKSUMS line 2"):
        parse_ensembl_checksums("1 2 ok.gz\n" + line + "\n")


def test_bsd_sum_of_known_inputs() -> None:
    assert bsd_sum_bytes(b"") == (0, 0)
    assert bsd_sum_bytes(b"a") == (97, 1)
    # rotate right, then add: rotr(97) = 48 + 32768 = 32816; + 98 = 32914 (what `printf ab | sum` prints)
    assert bsd_sum_bytes(b"ab") == (32914, 1)
    assert bsd_sum_bytes(b"x" * 1025)[1] == 2


def test_incremental_bsd_sum_equals_one_shot() -> None:
    data = os.urandom(10_000)
    acc = BsdSum()
    for i in range(0, len(data), 777):
        acc.update(data[i : i + 777])
    assert (acc.checksum, acc.blocks) == bsd_sum_bytes(data)


@pytest.mark.skipif(shutil.which("sum") is None, reason="coreutils sum is not installed")
def test_python_bsd_sum_matches_coreutils_sum(tmp_path: Path) -> None:
    for size in (0, 1, 1023, 1024, 1025, 300_001):
        path = tmp_path / f"f{size}"
        path.write_bytes(os.urandom(size))
        fields = subprocess.run(
            ["sum", "-r", str(path)], capture_output=True, text=True, check=True
        ).stdout.split()
        assert bsd_sum_bytes(path.read_bytes()) == (int(fields[0]), int(fields[1]))
        assert bsd_sum(path) == (int(fields[0]), int(fields[1]))


def test_verify_file_raises_on_md5_and_sum_mismatches(tmp_path: Path) -> None:
    path = tmp_path / "x.gz"
    path.write_bytes(b"hello")
    verify_file(path, Expected(algorithm="md5", value="5d41402abc4b2a76b9719d911017c592"))
    checksum, blocks = bsd_sum_bytes(b"hello")
    verify_file(path, Expected(algorithm="sum", value=f"{checksum}/{blocks}"))
    with pytest.raises(IntegrityError, match="checksum mismatch"):
        verify_file(path, Expected(algorithm="md5", value="0" * 32))
    with pytest.raises(IntegrityError, match="CHECKSUMS says sum"):
        verify_file(path, Expected(algorithm="sum", value=f"{checksum ^ 1}/{blocks}"))


def test_a_sum_promises_at_most_its_blocks_of_1024_bytes_and_an_md5_promises_no_size() -> None:
    assert Expected(algorithm="sum", value="42/3").max_size() == 3 * 1024
    assert Expected(algorithm="md5", value="0" * 32).max_size() is None


def test_ensembl_checksums_reject_a_line_with_more_than_three_fields() -> None:
    with pytest.raises(InvalidInputError, match="CHECKSUMS line 1"):
        parse_ensembl_checksums("55610 198719 Homo sapiens.fa.gz\n")

"""Claims about `seqrestore`: re-adding a genome's FASTA rewrites its missing or damaged sequence files."""

from __future__ import annotations

from pathlib import Path

import pytest

import rgstore.seqrestore as seqrestore
from rgstore.store import Store


def test_a_sequence_several_records_share_is_checked_and_rewritten_once(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Deduplicating by scanning the damaged list made a re-add after `sequences/` was lost quadratic
    # (40k contigs: 31 s before the FASTA was even read), and re-hashed a shared file once per record.
    fasta = tmp_path / "g.fa"
    fasta.write_text(">a\nACGTACGT\n>b\nACGTACGT\n>c\nTTTTGG\n>d\nacgtacgt\n>e\nTTTTGG\n>f\nGA\n")
    store.genomes.init(fasta, ["g"])
    files = sorted((store.refget_path / "sequences").rglob("*.seq"))
    assert len(files) == 3
    want = {path: path.read_bytes() for path in files}
    damaged = next(path for path in files if want[path] == b"TTTTGG")
    damaged.write_bytes(b"CCCCCC")
    (next(path for path in files if want[path] == b"GA")).unlink()
    hashed: list[str] = []
    real = seqrestore.file_digest

    def counting(path: str) -> tuple[str, int] | None:
        hashed.append(path)
        return real(path)

    monkeypatch.setattr(seqrestore, "file_digest", counting)
    assert not store.genomes.init(fasta, ["g"]).added
    assert sorted(hashed) == sorted(str(path) for path in files if want[path] != b"GA")  # a missing file needs none
    assert {path: path.read_bytes() for path in files} == want
    assert store.verify().ok


def test_a_re_add_hashing_on_several_threads_finds_every_altered_file_and_only_those(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The re-hash of a stored genome runs on up to 8 threads sharing one list of files: each file is
    # checked exactly once, and the same-size alterations anywhere in the list are all found.
    monkeypatch.setattr(seqrestore.os, "cpu_count", lambda: 4)
    fasta = tmp_path / "g.fa"
    fasta.write_text("".join(f">s{i}\n{'ACGT'[i % 4] * (i + 1)}GATTACA\n" for i in range(40)))
    store.genomes.init(fasta, ["g"])
    files = sorted((store.refget_path / "sequences").rglob("*.seq"))
    assert len(files) == 40
    want = {path: path.read_bytes() for path in files}
    for path in files[3], files[17], files[39]:
        path.write_bytes(b"N" * len(want[path]))
    hashed: list[str] = []
    real = seqrestore.file_digest

    def counting(path: str) -> tuple[str, int] | None:
        hashed.append(path)
        return real(path)

    monkeypatch.setattr(seqrestore, "file_digest", counting)
    assert not store.genomes.init(fasta, ["g"]).added
    assert sorted(hashed) == sorted(str(path) for path in files)
    assert {path: path.read_bytes() for path in files} == want
    assert store.verify().ok

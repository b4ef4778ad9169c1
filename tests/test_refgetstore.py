"""The RefgetStore handoff: gtars is given the store's real directory whatever the locale."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from rgstore.refgetstore import gtars_path

from .conftest import run_rgstore
from .locales import latin1_env

TINY = Path(str(resources.files("rgstore") / "data" / "tiny.fa"))


def test_gtars_path_is_the_name_on_disk_as_utf8_text() -> None:
    assert gtars_path(Path(os.fsdecode(b"/data/st\xc3\xb6re/refget"))) == "/data/störe/refget"


def test_a_store_named_in_utf8_imports_and_reads_genomes_under_a_latin1_locale(tmp_path: Path) -> None:
    env = latin1_env(tmp_path)
    store = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"st\xc3\xb6re"))  # UTF-8 bytes on disk
    made = run_rgstore("--store", store, "genome", "init", "--fasta", str(TINY), "--name", "tiny", env=env)
    assert made.returncode == 0, made.stderr
    read = run_rgstore("--store", store, "getseq", "tiny", "chr1:0-8", env=env)
    assert read.returncode == 0, read.stderr
    assert read.stdout == TINY.read_bytes().splitlines()[1][:8].upper() + b"\n"
    # gtars once received the Latin-1 reading re-encoded as UTF-8 and made that directory beside the store.
    assert sorted(os.listdir(os.fsencode(tmp_path))) == [b"locales", b"st\xc3\xb6re"]

"""The RefgetStore handoff: gtars is given the store's real directory whatever the locale, and its import shows progress."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import pytest

from rgstore import refgetstore
from rgstore.errors import IntegrityError
from rgstore.refgetstore import gtars_path, ingest_fasta
from rgstore.store import Store

from .conftest import run_rgstore
from .locales import latin1_env
from .progress_recorder import Bars

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


def test_the_import_bar_counts_the_bytes_gtars_read_and_wrote_up_to_the_file_size_plus_its_residues(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    # gtars holds the GIL through its whole import: in-process, its bar (total None) sat at 0 until it ended.
    monkeypatch.setattr(refgetstore, "CHILD_IMPORT_MIN_BYTES", 0)  # tiny.fa's import, as a genome's: in a child
    bars = Bars()
    ingested = ingest_fasta(store, TINY, progress=bars)
    work = TINY.stat().st_size + sum(ingested.lengths)  # gtars read the whole file and wrote each residue (Raw)
    imports = [bar for bar in bars.totals() if str(bar[0]).startswith("import ")]
    assert imports == [["import tiny.fa into the RefgetStore", work, work]]
    assert bars.units[bars.totals().index(imports[0])] == "B"
    assert ingested.was_new and store.genomes.list() == []  # imported (no genome recorded: that is the caller's)


def test_the_import_child_answers_though_gtars_prints_on_its_stdout_before_the_store_opens(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The child's answers shared fd 1 with gtars' (Rust println!) output: a line printed before
    # ``{"ready": true}`` made the parent read it as no answer, and the import failed with "the gtars
    # import process ended with exit status 0 and no reply". Here the real gtars is loaded through a
    # package that first prints a line on fd 1, as a library in the child may.
    import gtars  # type: ignore[import-untyped]

    real = Path(gtars.__file__).parent
    loud = tmp_path / "loud" / "gtars"
    loud.mkdir(parents=True)
    loud.joinpath("__init__.py").write_text(
        "import os\n"
        "os.write(1, b'Processing something...\\n')\n"
        f"__path__ = [{str(real)!r}]\n"
        f"exec(compile(open({str(real / '__init__.py')!r}).read(), __file__, 'exec'))\n"
    )
    monkeypatch.syspath_prepend(str(loud.parent))  # the child imports gtars along this process's sys.path
    monkeypatch.setattr(refgetstore, "CHILD_IMPORT_MIN_BYTES", 0)
    ingested = ingest_fasta(store, TINY)
    assert ingested.was_new and ingested.names == ["chr1", "chr2", "chrM"]
    assert store.refget_path.joinpath("collections", f"{ingested.digest}.rgsi").exists()


@pytest.mark.parametrize("in_child", [False, True], ids=["in-process", "in-child"])
def test_a_carrier_import_keeps_the_sequences_drops_the_collection_and_leaves_gtars_lock_free(
        store: Store, monkeypatch: pytest.MonkeyPatch, in_child: bool) -> None:
    import gtars.refget as gr  # type: ignore[import-untyped]

    monkeypatch.setattr(refgetstore, "CHILD_IMPORT_MIN_BYTES", 0 if in_child else 1 << 62)
    ingested = ingest_fasta(store, TINY, keep_collection=False)
    assert not store.refget_path.joinpath("collections", f"{ingested.digest}.rgsi").exists()
    assert gr.store_lock_status(str(store.refget_path)) is None  # the batch lock was released
    handle = refgetstore.open_refget(store, write=False)
    first = TINY.read_text().splitlines()[1][:8].upper()
    assert handle.get_substring(ingested.sequences[0], 0, 8) == first


@pytest.mark.parametrize("in_child", [False, True], ids=["in-process", "in-child"])
def test_a_refused_carrier_import_is_taken_back_though_it_held_gtars_batch_lock(
        store: Store, monkeypatch: pytest.MonkeyPatch, in_child: bool) -> None:
    # The in-process carrier import holds gtars' batch lock from the import to the removal. Taking a
    # refused import back takes that lock again through another handle: not released first, this
    # process waited on itself until the take-back gave up and kept the collection and its sequences.
    import gtars.refget as gr

    monkeypatch.setattr(refgetstore, "CHILD_IMPORT_MIN_BYTES", 0 if in_child else 1 << 62)
    monkeypatch.setattr(refgetstore, "_DISCARD_LOCK_TIMEOUT_S", 2)
    seen: list[str] = []

    def refuse(ingested: refgetstore.Ingested) -> None:
        seen.append(ingested.digest)
        raise IntegrityError("refused by the caller")

    with pytest.raises(IntegrityError, match="refused by the caller"):
        ingest_fasta(store, TINY, then=refuse, keep_collection=False)
    assert not store.refget_path.joinpath("collections", f"{seen[0]}.rgsi").exists()
    assert list(store.refget_path.joinpath("sequences").rglob("*.seq")) == []  # no genome lists them: gone too
    assert gr.store_lock_status(str(store.refget_path)) is None

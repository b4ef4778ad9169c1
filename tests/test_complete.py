"""Claims about shell completion: names come from the store the command line names, and a TAB never errors."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from rgstore_cli.main import cli as root

from rgstore.store import Store
from rgstore.views.refpkgstate import STEPS_DB

TINY = Path(str(resources.files("rgstore") / "data" / "tiny.fa"))


def complete(words: str, env: dict[str, str] | None = None) -> list[str]:
    """What `rgstore` offers for the last word of ``words`` (bash protocol), as bare values."""
    parts = words.split(" ")
    result = CliRunner().invoke(root, [], prog_name="rgstore", env={
        "_RGSTORE_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(len(parts) - 1),
        "RGSTORE_HOME": "", **(env or {})})
    assert result.exit_code == 0, result.output
    return [line.split(",", 1)[1] for line in result.output.splitlines() if line]


def make_store(path: Path) -> None:
    with Store.open(path) as store:
        digest = store.genomes.init(TINY, ["tiny"]).genome.digest
        store.aliases.set("ucsc:tinyUCSC", digest)
        store.refpkgs.create("bacteria", locus="16S rRNA")
        store.refpkgs.create("fungi", locus="ITS")


def test_genome_names_complete_from_the_global_store_option(tmp_path: Path) -> None:
    make_store(tmp_path / "s")
    assert complete(f"rgstore --store {tmp_path / 's'} getseq ") == ["tiny", "ucsc:tinyUCSC"]
    assert complete(f"rgstore --store {tmp_path / 's'} genome show u") == ["ucsc:tinyUCSC"]


def test_a_per_command_store_option_is_honoured(tmp_path: Path) -> None:
    make_store(tmp_path / "s")
    assert complete(f"rgstore genome export --store {tmp_path / 's'} t") == ["tiny"]


def test_the_store_from_the_environment_is_used(tmp_path: Path) -> None:
    make_store(tmp_path / "s")
    assert complete("rgstore alias get ", env={"RGSTORE_HOME": str(tmp_path / "s")}) == ["tiny", "ucsc:tinyUCSC"]


def test_sequence_names_complete_after_the_genome(tmp_path: Path) -> None:
    make_store(tmp_path / "s")
    assert complete(f"rgstore --store {tmp_path / 's'} getseq tiny ch") == ["chr1", "chr2", "chrM"]
    assert complete(f"rgstore --store {tmp_path / 's'} getseq tiny chr1:1-5 chrM") == ["chrM"]
    assert complete(f"rgstore --store {tmp_path / 's'} getseq -g tiny -l ch") == ["chr1", "chr2", "chrM"]


def test_sequence_names_complete_after_a_positional_genome_and_l(tmp_path: Path) -> None:
    # `getseq tiny -l chr1` is accepted, but its TAB offered nothing: click stops parsing at the -l awaiting its
    # value before it binds positionals, so NAME is still among the context's leftover arguments.
    make_store(tmp_path / "s")
    assert complete(f"rgstore --store {tmp_path / 's'} getseq tiny -l ch") == ["chr1", "chr2", "chrM"]
    assert complete(f"rgstore --store {tmp_path / 's'} getseq tiny -l chr1 --locus chr") == ["chr1", "chr2", "chrM"]


def test_refpkg_names_complete(tmp_path: Path) -> None:
    make_store(tmp_path / "s")
    assert complete(f"rgstore --store {tmp_path / 's'} refpkg info ") == ["bacteria", "fungi"]
    assert complete(f"rgstore --store {tmp_path / 's'} refpkg export f") == ["fungi"]


def test_no_store_or_an_unknown_genome_completes_nothing_without_error(tmp_path: Path) -> None:
    assert complete(f"rgstore --store {tmp_path / 'absent'} getseq ") == []
    make_store(tmp_path / "s")
    assert complete(f"rgstore --store {tmp_path / 's'} getseq nope ") == []
    (tmp_path / "junk" / "log").mkdir(parents=True)
    (tmp_path / "junk" / "log" / "data.mdb").write_bytes(b"not lmdb")
    assert complete(f"rgstore --store {tmp_path / 'junk'} getseq ") == []



def test_a_tab_after_an_unknown_command_completes_nothing_without_error(tmp_path: Path) -> None:
    make_store(tmp_path / "s")
    # click then offers the root's commands again (its own behaviour); what matters is no traceback (exit 0).
    assert "genome" in complete(f"rgstore --store {tmp_path / 's'} genme ")
    assert "chr1" not in complete(f"rgstore --store {tmp_path / 's'} nosuch tiny ch")


def test_refpkg_names_complete_from_the_heads_alone_without_reading_any_package_step(tmp_path: Path) -> None:
    make_store(tmp_path / "s")
    with Store.open(tmp_path / "s") as store:
        store.refpkgs.create("gone", locus="L")
        store.refpkgs.remove("gone")
        steps = store.environment.db(STEPS_DB)

        def garble(txn: Any) -> None:  # a TAB once decoded every package's current step (its file table)
            for key in [bytes(k) for k, _v in txn.cursor(db=steps)]:
                txn.put(key, b"\xc1 not a step", db=steps)

        store.environment.write(garble)
    assert complete(f"rgstore --store {tmp_path / 's'} refpkg info ") == ["bacteria", "fungi"]

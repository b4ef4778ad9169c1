"""Claims about "did you mean" hints: close names, naming conventions, and the not-found messages that carry them."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from rgstore.errors import NotFoundError
from rgstore.events import RefpkgCreated
from rgstore.log import NewEvent
from rgstore.store import Store
from rgstore.suggest import FUZZY_LIMIT, close_names, did_you_mean
from rgstore.views.refpkgs import refpkg_stream

TINY = Path(str(resources.files("rgstore") / "data" / "tiny.fa"))


def test_a_typo_suggests_the_close_name() -> None:
    assert close_names("tiy", ["tiny", "hg38"]) == ["tiny"]
    assert close_names("hg83", ["hg38", "mm10"]) == ["hg38"]


def test_ucsc_and_ensembl_sequence_names_suggest_each_other() -> None:
    assert close_names("chr1", ["1", "2", "MT"]) == ["1"]
    assert close_names("1", ["chr1", "chr2"]) == ["chr1"]
    assert close_names("chrM", ["1", "MT"]) == ["MT"]
    assert close_names("MT", ["chr1", "chrM"]) == ["chrM"]


def test_another_case_is_suggested() -> None:
    assert close_names("HG38", ["hg38", "hg19"]) == ["hg38"]


def test_nothing_close_gives_no_hint() -> None:
    assert close_names("zzz", ["hg38", "mm10"]) == []
    assert did_you_mean("zzz", ["hg38"]) == ""
    assert did_you_mean("hg38", ["hg38"]) == ""  # the name itself is no suggestion


def test_the_hint_names_at_most_two() -> None:
    assert did_you_mean("hg3", ["hg38", "hg37", "hg36"]).count("'") == 4


def test_convention_checks_cover_more_names_than_fuzzy_matching() -> None:
    names = [f"scaffold_{i}" for i in range(FUZZY_LIMIT * 2)] + ["chrX"]
    assert close_names("X", names) == ["chrX"]


@pytest.fixture
def tiny_store(store: Store) -> Store:
    store.genomes.init(TINY, ["tiny"])
    return store


def test_an_unknown_genome_name_suggests_the_close_alias(tiny_store: Store) -> None:
    with pytest.raises(NotFoundError, match=r"no genome named 'tiy' .*did you mean 'tiny'\?"):
        tiny_store.genomes.resolve("tiy")


def test_a_name_asked_for_in_the_wrong_namespace_is_suggested_with_its_namespace(tiny_store: Store) -> None:
    digest = tiny_store.genomes.resolve("tiny")
    tiny_store.aliases.set("ucsc:hg38", digest)
    assert tiny_store.genomes.resolve("hg38") == digest  # bare: found in the one namespace holding it
    with pytest.raises(NotFoundError, match=r"did you mean 'ucsc:hg38'\?"):
        tiny_store.genomes.resolve("refgenie:hg38")


def test_an_unknown_genome_with_nothing_close_points_to_the_listing(tiny_store: Store) -> None:
    with pytest.raises(NotFoundError, match="see `rgstore genome list`"):
        tiny_store.genomes.resolve("zzz")


def test_an_unknown_sequence_suggests_the_other_naming_convention(tiny_store: Store) -> None:
    with pytest.raises(NotFoundError, match=r"no sequence '1' \(did you mean 'chr1'\?\)"):
        tiny_store.getseq("tiny", "1", 0, 5)


def test_an_unknown_alias_suggests_the_close_one(tiny_store: Store) -> None:
    with pytest.raises(NotFoundError, match=r"no alias refgenie:tinny; did you mean 'tiny'\?"):
        tiny_store.aliases.get("tinny")
    with pytest.raises(NotFoundError, match=r"did you mean 'tiny'\?"):
        tiny_store.aliases.remove("tinny")


def test_an_unknown_refpkg_suggests_the_close_one(store: Store) -> None:
    store.refpkgs.create("bacteria16S", locus="16S rRNA")
    with pytest.raises(NotFoundError, match=r"no refpkg 'bacteria16s'; did you mean 'bacteria16S'\?"):
        store.refpkgs.info("bacteria16s")


def test_a_typo_finds_its_name_wherever_it_sorts_among_many() -> None:
    names = [f"rpoB_taxon{i:05d}" for i in range(FUZZY_LIMIT * 5)]
    # Far past the first FUZZY_LIMIT names: the hint once came from those alone ('rpoB_taxon00321').
    assert close_names("rpoB_taxon04321x", names, limit=1) == ["rpoB_taxon04321"]
    assert close_names("xpoB_taxon04321", names, limit=1) == ["rpoB_taxon04321"]  # a typo in front
    assert close_names("rpoB_taxn04321", names, limit=1) == ["rpoB_taxon04321"]


def test_an_unknown_refpkg_suggests_the_close_one_among_thousands(store: Store) -> None:
    names = [f"{marker}_taxon{i:04d}" for i in range(FUZZY_LIMIT) for marker in ("16S", "rpoB")]
    # Thousands of packages in one command (each create would be its own durable commit).
    store.transact(lambda _txn: [NewEvent(stream=refpkg_stream(n), event=RefpkgCreated(name=n, metadata={"locus": "L"}))
                                 for n in names])
    assert store.refpkgs.info("rpoB_taxon0999").name == "rpoB_taxon0999"
    with pytest.raises(NotFoundError, match=r"no refpkg 'rpoB_taxon0999x'; did you mean 'rpoB_taxon0999'"):
        store.refpkgs.info("rpoB_taxon0999x")


def test_an_alias_missing_in_its_namespace_names_the_namespaces_that_have_it(tiny_store: Store) -> None:
    digest = tiny_store.genomes.resolve("tiny")
    tiny_store.aliases.set("ucsc:hg38", digest)
    tiny_store.aliases.set("ncbi:hg38", digest)
    # Alias commands are exact, so a bare name is refgenie's: the error says where the name does exist.
    for call in (tiny_store.aliases.get, tiny_store.aliases.remove):
        with pytest.raises(NotFoundError, match=r"no alias refgenie:hg38; other namespaces have it: "
                                                r"ncbi:hg38, ucsc:hg38 \(alias commands take ns:NAME exactly\)"):
            call("hg38")
    with pytest.raises(NotFoundError, match=r"no alias ucsc:tiny; other namespaces have it: refgenie:tiny"):
        tiny_store.aliases.get("ucsc:tiny")

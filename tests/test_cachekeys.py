"""Claims about cache requests and keys: canonical JSON, per-region forms, what changes a key."""

from __future__ import annotations

import hashlib
import json

import pytest

from rgstore.cachekeys import (
    RawIdentity,
    canonical_json,
    is_entry_path,
    is_key,
    make_request,
    parse_regions,
    raw_identity,
    region_forms,
    sha256_key,
)
from rgstore.errors import InvalidInputError

INPUTS = {"genome": {"sha256": "a" * 64, "size": 10}, "annotation": {"sha256": "b" * 64, "size": 20}}


def _ensembl(**kw: str) -> object:
    return make_request(
        "ensembl",
        species=kw.get("species", "homo_sapiens"),
        release=kw.get("release", "110"),
        regions=kw.get("regions", "gene,exon"),
    )


def test_canonical_json_sorts_keys_drops_whitespace_and_keeps_booleans() -> None:
    assert canonical_json({"b": True, "a": {"d": False, "c": "x"}}) == b'{"a":{"c":"x","d":false},"b":true}'


def test_a_form_key_is_the_sha256_of_its_canonical_json() -> None:
    form = region_forms(_ensembl(), INPUTS, "x/1")[0]  # type: ignore[arg-type]
    expected = hashlib.sha256(
        json.dumps(form.form, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    assert form.key == expected == sha256_key(form.form)
    assert form.path == f"cached_genomic_{form.key}"


def test_a_request_splits_into_one_form_per_true_region() -> None:
    forms = region_forms(_ensembl(regions="CDS,gene,exon"), INPUTS, "x/1")  # type: ignore[arg-type]
    assert [f.region for f in forms] == ["gene", "exon", "CDS"]
    assert [f.form["genomic_regions"] for f in forms] == [{"gene": True}, {"exon": True}, {"CDS": True}]
    assert len({f.key for f in forms}) == 3


def test_string_booleans_from_web_forms_become_real_booleans() -> None:
    assert parse_regions({"gene": "true", "exon": "false", "cds": True}) == {"gene": True, "CDS": True}
    with pytest.raises(InvalidInputError, match="true or false"):
        parse_regions({"gene": "yes"})
    with pytest.raises(InvalidInputError, match="no genomic region"):
        parse_regions({"gene": False})
    with pytest.raises(InvalidInputError, match="unknown genomic region 'exome'"):
        parse_regions("gene,exome")


def test_keys_change_when_an_input_checksum_changes() -> None:
    request = _ensembl()
    before = [f.key for f in region_forms(request, INPUTS, "x/1")]  # type: ignore[arg-type]
    changed = {**INPUTS, "annotation": {"sha256": "c" * 64, "size": 20}}
    after = [f.key for f in region_forms(request, changed, "x/1")]  # type: ignore[arg-type]
    assert set(before).isdisjoint(after)


def test_keys_change_when_the_extractor_version_changes() -> None:
    request = _ensembl()
    a = [f.key for f in region_forms(request, INPUTS, "rgstore-extract/1")]  # type: ignore[arg-type]
    b = [f.key for f in region_forms(request, INPUTS, "rgstore-extract/2")]  # type: ignore[arg-type]
    assert set(a).isdisjoint(b)


def test_equivalent_spellings_give_the_same_key() -> None:
    a = region_forms(_ensembl(species="Homo_sapiens", regions="CDS"), INPUTS, "x/1")  # type: ignore[arg-type]
    b = region_forms(_ensembl(species="homo_sapiens", regions="cds"), INPUTS, "x/1")  # type: ignore[arg-type]
    assert a[0].key == b[0].key


def test_unresolved_releases_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="not a fixed release"):
        make_request("ensembl", species="homo_sapiens", release="current")


@pytest.mark.parametrize(
    "field,value",
    [("species", "../etc"), ("species", "a/b"), ("taxon", ".."), ("release", "1/2"), ("taxon", "x y")],
)
def test_fields_that_name_directories_must_be_path_safe(field: str, value: str) -> None:
    kw = {"species": "homo_sapiens", "release": "RS_2023_10", "taxon": "9606", "assembly": "GCF_000001405.40"}
    kw[field] = value
    with pytest.raises(InvalidInputError, match=f"invalid {field}"):
        make_request("ncbi", **kw)


@pytest.mark.parametrize(
    "field,value",
    [("species", "homo_sapiens\n"), ("taxon", "9606\n"), ("assembly", "GCF_000001405.40\n"),
     ("assembly", "GCF_\u0660\u0660\u0660\u0660\u0660\u0661\u0664\u0660\u0665.40"), ("release", "110\n")],
)
def test_a_trailing_newline_or_non_ascii_digits_never_reach_a_directory_name(field: str, value: str) -> None:
    kw = {"species": "homo_sapiens", "release": "110", "taxon": "9606", "assembly": "GCF_000001405.40"}
    kw[field] = value
    with pytest.raises(InvalidInputError, match="invalid"):
        make_request("ncbi", **kw)
    assert not is_key("a" * 64 + "\n")


def test_ncbi_needs_an_accession_and_keeps_only_accession_dot_version() -> None:
    with pytest.raises(InvalidInputError, match="needs --assembly"):
        make_request("ncbi", species="homo_sapiens", release="110")
    request = make_request(
        "ncbi", species="homo_sapiens", release="110", assembly="GCF_000001405.40_GRCh38.p14"
    )
    ident = raw_identity(request)
    assert ident.assembly == "GCF_000001405.40"
    assert ident.path == "ncbi_raw/homo_sapiens/GCF_000001405.40"


def test_level2_paths_hold_the_release_or_assembly_so_they_never_collide() -> None:
    a = raw_identity(_ensembl(release="110"))  # type: ignore[arg-type]
    b = raw_identity(_ensembl(release="111"))  # type: ignore[arg-type]
    assert (a.path, b.path) == ("ensembl_raw/homo_sapiens/110", "ensembl_raw/homo_sapiens/111")
    assert a.key != b.key
    n1 = raw_identity(
        make_request("ncbi", species="homo_sapiens", taxon="9606", release="1", assembly="GCF_000001405.39")
    )
    n2 = raw_identity(
        make_request("ncbi", species="homo_sapiens", taxon="9606", release="1", assembly="GCF_000001405.40")
    )
    assert n1.path != n2.path and n1.key != n2.key


def test_a_level2_key_and_its_directory_determine_each_other() -> None:
    a = make_request("ncbi", species="homo_sapiens", taxon="9606", release="1", assembly="GCF_000001405.40")
    b = make_request("ncbi", species="human", taxon="9606", release="2", assembly="GCF_000001405.40")
    assert raw_identity(a) == raw_identity(b)  # same download, same directory, same key
    for ident in (raw_identity(a), raw_identity(_ensembl())):  # type: ignore[arg-type]
        back = RawIdentity.from_path(ident.path)
        assert back == ident and back.key == ident.key
    assert RawIdentity.from_path("cached_genomic_x") is None


def test_ensembl_releases_are_numbers() -> None:
    with pytest.raises(InvalidInputError, match="expected a number"):
        make_request("ensembl", species="homo_sapiens", release="RS_2023_10")


@pytest.mark.parametrize("padded", ["0110", "00110", "01"])
def test_an_ensembl_release_with_leading_zeros_is_refused_not_keyed_apart_from_the_release(padded: str) -> None:
    # "0110" made its own key and ensembl_raw/<species>/0110 path, and upstream has no release-0110 (HTTP 404).
    with pytest.raises(InvalidInputError, match=f"invalid Ensembl release '{padded}': .*without leading zeros"):
        make_request("ensembl", species="homo_sapiens", release=padded)
    assert make_request("ensembl", species="homo_sapiens", release="0").source_params.annotation_release == "0"


def test_every_accepted_ensembl_release_makes_a_usable_entry_path() -> None:
    """A release too long for the entry-path check would make an entry that is refetched forever."""
    from rgstore.cachekeys import is_entry_path, raw_identity

    ok = make_request("ensembl", species="homo_sapiens", release="123456789")
    assert is_entry_path(raw_identity(ok).path)
    with pytest.raises(InvalidInputError, match="1-9 digits"):
        make_request("ensembl", species="homo_sapiens", release="1234567890")


def test_an_unknown_source_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="unknown source"):
        make_request("genbank", species="homo_sapiens", release="1")


def _ncbi(release: str = "110", **kw: str) -> object:
    return make_request(
        "ncbi",
        species=kw.get("species", "homo_sapiens"),
        taxon=kw.get("taxon", "9606"),
        release=release,
        assembly=kw.get("assembly", "GCF_000001405.40"),
        regions="gene,exon",
    )


@pytest.mark.parametrize(
    "given,canonical",
    [
        ("110", "110"),
        ("105.20220307", "105.20220307"),
        ("RS_2023_10", "RS_2023_10"),
        ("rs_2023_10", "RS_2023_10"),
        ("GCF_000001405.40-RS_2023_10", "RS_2023_10"),
    ],
)
def test_ncbi_releases_are_release_numbers_or_names_in_one_spelling(given: str, canonical: str) -> None:
    assert _ncbi(given).source_params.annotation_release == canonical  # type: ignore[attr-defined]


@pytest.mark.parametrize("bad", ["v110", "RS_2023_13", "RS_23_10", "2023-10", "GRCh38", "110.2022"])
def test_other_ncbi_releases_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInputError, match=f"invalid NCBI release '{bad}'"):
        _ncbi(bad)


def test_an_ncbi_release_naming_another_assembly_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="names assembly GCF_000001405.39"):
        _ncbi("GCF_000001405.39-RS_2023_10")


def test_ncbi_labels_change_neither_the_level2_key_nor_region_keys() -> None:
    a = _ncbi("110", species="homo_sapiens", taxon="9606")
    b = _ncbi("RS_2023_10", species="human", taxon="other")
    ra, rb = raw_identity(a), raw_identity(b)  # type: ignore[arg-type]
    assert ra.key == rb.key and ra.path != rb.path  # one download; the taxon only names a first directory
    keys_a = [f.key for f in region_forms(a, INPUTS, "x/1")]  # type: ignore[arg-type]
    keys_b = [f.key for f in region_forms(b, INPUTS, "x/1")]  # type: ignore[arg-type]
    assert keys_a == keys_b
    other = raw_identity(_ncbi("110", assembly="GCF_000001405.39"))  # type: ignore[arg-type]
    assert other.key != ra.key


def test_the_ensembl_taxon_is_a_label_but_species_release_and_assembly_pick_files() -> None:
    def keys(**kw: str) -> list[str]:
        request = make_request("ensembl", regions="gene", **{"species": "homo_sapiens", "release": "110", **kw})
        return [f.key for f in region_forms(request, INPUTS, "x/1")]

    assert keys(taxon="9606") == keys()
    assert len({keys()[0], keys(release="111")[0], keys(species="mus_musculus")[0], keys(assembly="GRCh37")[0]}) == 4


def test_every_directory_a_request_makes_is_an_entry_path() -> None:
    for request in (_ensembl(), make_request("ncbi", species="homo_sapiens", release="110",
                                             assembly="GCF_000001405.40_GRCh38.p14", taxon="9606")):
        assert is_entry_path(raw_identity(request).path)  # type: ignore[arg-type]
        for form in region_forms(request, INPUTS, "x"):  # type: ignore[arg-type]
            assert is_entry_path(form.path)


@pytest.mark.parametrize(
    "path",
    ["../../victim", "ensembl_raw/homo_sapiens/..", "ncbi_raw/../GCF_000001405.40", "cached_genomic_" + "a" * 63,
     "cached_genomic_" + "a" * 64 + "/..", "ncbi_raw/9606/GCF_000001405.40_..", "", "/etc", "ensembl_raw/x/1\n"],
)
def test_paths_that_could_leave_the_cache_are_not_entry_paths(path: str) -> None:
    assert not is_entry_path(path)


GOLDEN_KEYS = {  # made before exon_exon_junction existed: adding it and its option must change none of them
    "gene": "cc3360d432841b82aeef3fca7bc0f0657e3a1626843ffad1f4cc8dfbd71c54c9",
    "transcript": "0489c807633c1a0b4571609209f4aac412fdf9debfa6851bbd01bb0767cd5046",
    "exon": "e9b1abdf2ef99482889e89e13b8ec9809f84abe729c0ef9cc09786371d003899",
    "intron": "b3801e3d24264e244dcf8ac8e8188b7e04486f76717661051cfad134f7ea7b7e",
    "CDS": "0b5a36220411f57b2223c950667d2c600affb6f7f388b7bceb87fc9af535a28a",
    "UTR": "e3c64a436f410b77eed39087aeebe5032c134352bed525c30f43744fe9cb9340",
}


@pytest.mark.parametrize("block_size", [None, 1, 50, 120])
def test_keys_of_regions_other_than_junctions_ignore_the_junction_block_size(block_size: int | None) -> None:
    regions = ",".join([*GOLDEN_KEYS, "intergenic", "exon_exon_junction"])
    extra = {} if block_size is None else {"junction_block_size": block_size}
    request = make_request("ensembl", species="homo_sapiens", release="110", regions=regions, **extra)  # type: ignore[arg-type]
    forms = {f.region: f for f in region_forms(request, INPUTS, "rgstore-extract/2")}
    assert {r: forms[r].key for r in GOLDEN_KEYS} == GOLDEN_KEYS
    assert "exon_exon_junction_block_size" not in forms["intergenic"].form
    assert forms["exon_exon_junction"].form["exon_exon_junction_block_size"] == (block_size or 50)


def test_the_junction_block_size_is_part_of_the_junction_key_so_sizes_never_share_an_entry() -> None:
    def key(size: int) -> str:
        request = make_request("ensembl", species="homo_sapiens", release="110", regions="exon_exon_junction",
                               junction_block_size=size)
        (form,) = region_forms(request, INPUTS, "x/1")
        assert form.block_size == size and form.file == "annotation/exon_exon_junction.fna"
        return form.key

    assert len({key(25), key(50), key(51)}) == 3
    assert key(50) == key(50)


@pytest.mark.parametrize("bad", [0, -5, True, "50"])
def test_a_junction_block_size_that_is_not_a_positive_integer_is_refused(bad: object) -> None:
    with pytest.raises(InvalidInputError, match="block size must be a positive integer"):
        make_request("ensembl", species="homo_sapiens", release="110", regions="gene",
                     junction_block_size=bad)  # type: ignore[arg-type]


def test_the_new_regions_are_matched_case_insensitively_and_listed_in_errors() -> None:
    assert parse_regions("Intergenic,EXON_EXON_JUNCTION") == {"intergenic": True, "exon_exon_junction": True}
    with pytest.raises(InvalidInputError, match="intergenic, exon_exon_junction"):
        parse_regions("junction")

"""Seqcol digests of stored genomes equal the GA4GH vectors shipped in `refget` and a hashlib reimplementation.

`refget` re-exports gtars, so agreeing with it alone would prove nothing: the test also digests
every collection with its own few lines of hashlib + json below (written from the spec, not
imported from rgstore), and compares genome comparisons with refget's comparison fixtures.
"""

from __future__ import annotations

import base64
import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from rgstore import seqcol
from rgstore.store import Store

COMPLIANCE = resources.files("refget") / "compliance_data"
VECTORS: dict[str, Any] = json.loads((COMPLIANCE / "test_fasta_digests.json").read_text())
# The vectors carry digests only; their three residue strings were recovered from the SQ digests.
RESIDUES = ["TTGGGGAA", "GGAA", "GCGC"]


def _t24u(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha512(data).digest()[:24]).decode()


def _jcs(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode()


def independent_level1(names: list[str], lengths: list[int], residues: list[str]) -> dict[str, str]:
    """Seqcol level 1 straight from the spec: digest each attribute's canonical JSON."""
    sequences = ["SQ." + _t24u(r.upper().encode()) for r in residues]
    pairs = [{"length": n_len, "name": n} for n, n_len in zip(names, lengths)]
    return {
        "names": _t24u(_jcs(names)),
        "lengths": _t24u(_jcs(lengths)),
        "sequences": _t24u(_jcs(sequences)),
        "name_length_pairs": _t24u(_jcs(pairs)),
        "sorted_name_length_pairs": _t24u(_jcs(sorted(_t24u(_jcs(p)) for p in pairs))),
        "sorted_sequences": _t24u(_jcs(sorted(sequences))),
    }


def independent_top_level(level1: dict[str, str]) -> str:
    """Level 0: the inherent attributes (names, sequences) only."""
    return _t24u(_jcs({"names": level1["names"], "sequences": level1["sequences"]}))


def _fasta_for(vector: dict[str, Any]) -> tuple[str, list[str]]:
    by_digest = {"SQ." + _t24u(r.encode()): r for r in RESIDUES}
    level2 = vector["level2"]
    residues = [by_digest[d] for d in level2["sequences"]]
    text = "".join(f">{n}\n{r}\n" for n, r in zip(level2["names"], residues))
    return text, residues


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every compliance FASTA initialised into one store (name = file stem)."""
    root = tmp_path_factory.mktemp("seqcol")
    store = Store.open(root / "store", actor="tester@test")
    genomes: dict[str, Any] = {}
    try:
        for fname, vector in VECTORS.items():
            text, residues = _fasta_for(vector)
            path = root / fname
            path.write_text(text)
            info = store.genomes.init(path, [Path(fname).stem]).genome
            genomes[fname] = {"info": info, "residues": residues}
        yield {"store": store, "genomes": genomes}
    finally:
        store.close()


@pytest.mark.parametrize("fname", sorted(VECTORS))
def test_stored_digests_equal_the_ga4gh_vectors(loaded: dict[str, Any], fname: str) -> None:
    vector, info = VECTORS[fname], loaded["genomes"][fname]["info"]
    assert info.digest == vector["top_level_digest"]
    assert info.level1 == vector["level1"]
    assert info.level1["sorted_name_length_pairs"] == vector["sorted_name_length_pairs_digest"]
    for attr in ("names", "lengths", "sequences"):
        assert getattr(info, attr) == vector["level2"][attr]


@pytest.mark.parametrize("fname", sorted(VECTORS))
def test_stored_digests_equal_an_independent_hashlib_implementation(loaded: dict[str, Any], fname: str) -> None:
    info, residues = loaded["genomes"][fname]["info"], loaded["genomes"][fname]["residues"]
    level1 = independent_level1(info.names, info.lengths, residues)
    assert info.level1 == level1
    assert info.digest == independent_top_level(level1)
    # rgstore's own seqcol module (used to check gtars at ingest) agrees as well.
    assert seqcol.level1(info.names, info.lengths, info.sequences) == level1
    assert seqcol.top_level_digest(level1) == info.digest


def test_spec_worked_example_top_level_digest() -> None:
    level1 = seqcol.level1(
        ["chr1", "chr2", "chr3"], [248956422, 242193529, 198295559],
        ["SQ.2YnepKM7OkBoOrKmvHbGqguVfF9amCST", "SQ.lwDyBi432Py-7xnAISyQlnlhWDEaBPv2",
         "SQ.Eqk6_SvMMDCc6C-uEfickOUWTatLMDQZ"],
    )
    assert level1["names"] == "g04lKdxiYtG3dOGeUC5AdKEifw65G0Wp"
    assert level1["lengths"] == "5K4odB173rjao1Cnbk5BnvLt9V7aPAa2"
    assert seqcol.top_level_digest(level1) == "sjNNwm4zov3Dl0FRWbRTcZwzqrTQKIqL"


COMPARISONS = sorted(p.name for p in (COMPLIANCE / "comparison").iterdir() if p.name.count(".fa") == 2)


@pytest.mark.parametrize("fixture", COMPARISONS)
def test_genome_compare_equals_the_refget_comparison_fixture(loaded: dict[str, Any], fixture: str) -> None:
    expected = json.loads((COMPLIANCE / "comparison" / fixture).read_text())
    a, b = fixture.removeprefix("compare_").removesuffix(".json").split(".fa_")
    result = loaded["store"].genomes.compare(a, b.removesuffix(".fa"))
    assert result == expected


def test_comparing_arrays_of_strings_and_ints_canonicalises_no_element(monkeypatch: pytest.MonkeyPatch) -> None:
    # One json.dumps per element made comparing two 50k-sequence collections take over a second.
    a = seqcol.comparable_level2([f"c{i}" for i in range(1000)], list(range(1000)), [f"SQ.{i}" for i in range(1000)])
    b = seqcol.comparable_level2([f"c{i}" for i in range(990)], list(range(990)), [f"SQ.{i}" for i in range(990)])
    calls = []
    real = seqcol.canonical
    monkeypatch.setattr(seqcol, "canonical", lambda value: calls.append(value) or real(value))
    result = seqcol.compare("a", a, "b", b)
    assert calls == []
    assert result["array_elements"]["a_and_b_count"] == {k: 990 for k in a}
    assert result["array_elements"]["a_and_b_same_order"]["name_length_pairs"] is True


def test_comparison_elements_match_exactly_when_their_canonical_json_does() -> None:
    # 1 == True == 1.0 in Python; their canonical forms (1, true, 1.0) differ, and so must the matches.
    left = {"x": [1, "1", {"length": 1, "name": "a"}, {"length": True, "name": "a"}, [1], None]}
    right = {"x": [True, 1.0, {"name": "a", "length": 1}, {"length": 1, "name": "a", "k": 0}, [1], "None"]}
    result = seqcol.compare(None, left, None, right)
    # Matches: the dict with the same pairs (key order is not canonical) and [1].
    assert result["array_elements"]["a_and_b_count"] == {"x": 2}
    with pytest.raises(ValueError):
        seqcol.compare(None, {"x": [float("nan")]}, None, {"x": [1]})


def test_canonical_form_is_jcs_sorted_keys_and_raw_utf8() -> None:
    """RFC 8785: keys sorted, no spaces, non-ASCII written as UTF-8 (not \\u escapes), so digests of such names match."""
    assert seqcol.canonical({"name": "chr\u00c9", "length": 1}) == '{"length":1,"name":"chr\u00c9"}'.encode()
    assert seqcol.level1(["chr\u00c9"], [1], ["SQ.x"])["names"] == _t24u('["chr\u00c9"]'.encode())


def test_compare_tells_a_pair_with_an_extra_key_from_the_pair_without_it() -> None:
    a = {"name_length_pairs": [{"length": 1, "name": "a", "extra": 0}]}
    b = {"name_length_pairs": [{"length": 1, "name": "a"}]}
    assert seqcol.compare("A", a, "B", b)["array_elements"]["a_and_b_count"] == {"name_length_pairs": 0}

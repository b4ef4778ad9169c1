"""/seqcol gives every answer of refget's seqcol compliance fixtures, vendored in tests/data/seqcol_compliance.

The six upstream test FASTAs are loaded with `rgstore genome init` and served by a real uvicorn on loopback.
Each collection, attribute, list and comparison answer upstream ships is asserted, not just the five
comparisons its suite picks. Waived, with the reason asserted as well: the five legacy comparison files
built before seqcol 1.0 (old inherent set, transient attribute compared), and the level-2
`sorted_name_length_pairs` arrays two old collection answers carry (see the data README).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server_fixture import Server, init_genome, running_server

DATA = Path(__file__).resolve().parent / "data" / "seqcol_compliance"
DIGESTS: dict[str, Any] = json.loads((DATA / "test_fasta_digests.json").read_text())
COMPARISONS = sorted(p for p in (DATA / "comparison").glob("*.json") if ".fa_" in p.name)
LEGACY_COMPARISONS = sorted(p for p in (DATA / "comparison").glob("*.json") if ".fa_" not in p.name)
# refget tests/api/conftest.py COLLECTION_TESTS; two of its files are not available upstream, and
# test_fasta_digests.json's level 2 (also upstream's) answers those collections (None here).
COLLECTION_ANSWERS: dict[str, str | None] = {
    "base.fa": "base.fa.json",
    "different_names.fa": "different_names_collection.json",
    "different_order.fa": None,
    "pair_swap.fa": "pair_swap_collection.json",
    "subset.fa": None,
    "swap_wo_coords.fa": "swap_wo_coords.fa.json",
}
# refget tests/api/conftest.py ATTRIBUTE_TESTS @fd4f2017, verbatim.
ATTRIBUTE_TESTS = [
    ("lengths", "7-_HdxYiRf-AJLBKOTaJUdxXrUkIXs6T", [8, 4]),
    ("names", "Fw1r9eRxfOZD98KKrhlYQNEdSRHoVxAG", ["chrX", "chr1", "chr2"]),
]


def load(path: Path) -> Any:
    return json.loads(path.read_text())


def sha512t24u(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha512(data).digest()[:24]).decode()


def canonical(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    store = tmp_path_factory.mktemp("seqcol-compliance") / "store"
    for name, bundle in DIGESTS.items():
        genome = init_genome(store, DATA / "fasta" / name, name.removesuffix(".fa"))
        assert genome["digest"] == bundle["top_level_digest"], name
    with running_server(store) as server:
        yield server


@pytest.mark.parametrize("fasta", sorted(DIGESTS))
def test_collection_answers_match_upstreams_at_both_levels(served: Server, fasta: str) -> None:
    bundle = DIGESTS[fasta]
    url = f"{served.url}/seqcol/collection/{bundle['top_level_digest']}"
    answer_file = COLLECTION_ANSWERS[fasta]
    answer = load(DATA / "collection" / answer_file) if answer_file else bundle["level2"]
    default, level2 = httpx.get(url).json(), httpx.get(url, params={"level": 2}).json()
    assert default == level2 == bundle["level2"]
    assert {k: level2[k] for k in ("names", "lengths", "sequences")} == {
        k: answer[k] for k in ("names", "lengths", "sequences")}
    level1 = httpx.get(url, params={"level": 1}).json()
    assert level1 == bundle["level1"]
    assert level1["sorted_name_length_pairs"] == bundle["sorted_name_length_pairs_digest"]


@pytest.mark.parametrize("answer_file", [f for f in COLLECTION_ANSWERS.values() if f])
def test_vendored_collection_answers_are_full_level2_or_carry_the_pre_1_0_transient_array(answer_file: str) -> None:
    # Waiver: upstream compares only names/lengths/sequences of these files; two of them still hold a
    # level-2 sorted_name_length_pairs array, which seqcol 1.0 (ADR 2024-11-20) leaves out of level 2.
    answer = load(DATA / "collection" / answer_file)
    bundle = next(b for b in DIGESTS.values() if b["level2"]["names"] == answer["names"])
    if "sorted_name_length_pairs" in answer:
        assert set(answer) == {"names", "lengths", "sequences", "sorted_name_length_pairs"}
    else:
        assert answer == bundle["level2"]


@pytest.mark.parametrize(("attribute", "digest", "value"), ATTRIBUTE_TESTS)
def test_upstream_attribute_answers(served: Server, attribute: str, digest: str, value: list[Any]) -> None:
    r = httpx.get(f"{served.url}/seqcol/attribute/collection/{attribute}/{digest}")
    assert r.status_code == 200
    assert r.json() == value


@pytest.mark.parametrize("fasta", sorted(DIGESTS))
def test_every_level2_attribute_is_served_by_its_digest_and_the_transient_one_is_not(served: Server,
                                                                                  fasta: str) -> None:
    bundle = DIGESTS[fasta]
    for attribute, value in bundle["level2"].items():
        r = httpx.get(f"{served.url}/seqcol/attribute/collection/{attribute}/{bundle['level1'][attribute]}")
        assert (r.status_code, r.json()) == (200, value), attribute
    snlp = bundle["level1"]["sorted_name_length_pairs"]
    assert httpx.get(f"{served.url}/seqcol/attribute/collection/sorted_name_length_pairs/{snlp}").status_code == 404


def test_upstream_list_answer_for_a_lengths_digest(served: Server) -> None:
    answer = load(DATA / "attribute" / "cGRM.json")
    body = httpx.get(f"{served.url}/seqcol/list/collection",
                     params={"lengths": "cGRMZIb3AVgkcAfNv39RN7hnT5Chk7RX"}).json()
    # The store holds exactly upstream's six collections, so the answer is exact, not just contained.
    assert sorted(body["results"]) == sorted(answer["results"])
    assert body["pagination"] == answer["pagination"]


@pytest.mark.parametrize("fixture", COMPARISONS, ids=lambda p: p.stem)
def test_comparison_answers_match_upstreams_byte_for_byte_after_jcs(served: Server, fixture: Path) -> None:
    expected = load(fixture)
    a, b = expected["digests"]["a"], expected["digests"]["b"]
    r = httpx.get(f"{served.url}/seqcol/comparison/{a}/{b}")
    assert r.status_code == 200
    assert canonical(r.json()) == canonical(expected)


@pytest.mark.parametrize("fixture", COMPARISONS, ids=lambda p: p.stem)
def test_posted_comparison_answers_match_upstreams(served: Server, fixture: Path) -> None:
    expected = load(fixture)
    a, b = expected["digests"]["a"], expected["digests"]["b"]
    posted = httpx.get(f"{served.url}/seqcol/collection/{b}").json()
    r = httpx.post(f"{served.url}/seqcol/comparison/{a}", json=posted)
    assert r.status_code == 200
    # digests.b: refget answers "POSTed seqcol", the spec (section 3.3) the posted collection's digest.
    assert r.json() == {**expected, "digests": {"a": a, "b": b}}


@pytest.mark.parametrize("fixture", LEGACY_COMPARISONS, ids=lambda p: p.stem)
def test_legacy_comparison_fixtures_predate_seqcol_1_0_so_are_waived(served: Server, fixture: Path) -> None:
    # Waiver: these name collections by digests with `lengths` inherent (dropped by ADR 2024-10-02)
    # and compare the transient sorted_name_length_pairs (ADR 2024-11-20); no upstream suite reads them.
    expected = load(fixture)
    old_digests = {sha512t24u(canonical({k: b["level1"][k] for k in ("lengths", "names", "sequences")}))
                   for b in DIGESTS.values()}
    assert {expected["digests"]["a"], expected["digests"]["b"]} <= old_digests
    assert "sorted_name_length_pairs" in expected["attributes"]["a_and_b"]
    assert httpx.get(f"{served.url}/seqcol/collection/{expected['digests']['a']}").status_code == 404

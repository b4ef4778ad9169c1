"""Claims about `refpkg check`: taxtastic's is_ill_formed rules, every problem reported, exit 1."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rgstore.refpkg_check import NewickError, newick_names
from rgstore.store import Store

from .progress_recorder import Bars
from .refpkg_data import taxit, write_inputs

BROKEN: dict[str, tuple[str, str, str]] = {
    # case: (file key, new content, the problem taxtastic reports)
    "fasta": ("aln_fasta", "s1 ACGT\n", "aln_fasta file is not valid FASTA."),
    "seqname": ("seq_info", "name,tax_id\ns1,1\ns2,1\ns3,1\n", "seq_info is missing seqname"),
    "tax_id": ("seq_info", "seqname,taxon\ns1,1\ns2,1\ns3,1\n", "seq_info is missing tax_id"),
    "stockholm": ("aln_sto", "# STOCKHOLM 1.0\ns1 ACGT\ns2 ACGT\ns3 ACGT\n",
                  "aln_sto file is not valid Stockholm."),
    "newick": ("tree", "((s1,s2),s3;\n", "tree file is not valid Newick."),
    "duplicate leaves": ("tree", "((s1,s2),s3,s3);\n", "tree file is not valid Newick."),
    "sto names": ("aln_sto", "# STOCKHOLM 1.0\ns1 A\ns2 A\ns9 A\n//\n",
                  "Names in aln_fasta did not match aln_sto.  Mismatches: s3, s9"),
    "csv names": ("seq_info", "seqname,tax_id\ns1,1\ns2,1\n",
                  "Names in aln_fasta did not match seq_info.  Mismatches: s3"),
    "tree names": ("tree", "((s1,s2),(s3,s4));\n",
                   "Names in aln_fasta did not match nodes in tree.  Mismatches: s4"),
    "taxonomy": ("taxonomy", "tax_id,parent_id\n1,1\n2,1,extra\n",
                 "Taxonomy is invalid: not all lines had the same number of fields."),
    "json": ("phylo_model", "{not json", "phylo_model is not valid JSON."),
    "fasta text before the first record": ("aln_fasta", "junk\n>s1\nA\n>s2\nA\n>s3\nA\n",
                                           "aln_fasta file is not valid FASTA."),
    "short seq_info row": ("seq_info", "seqname,tax_id\ns1\ns2,1\ns3,1\n",
                           "some lines in seq_info differ in field count"),
}


@pytest.fixture
def make(store: Store, tmp_path: Path) -> Callable[..., list[str]]:
    """Create a package from the valid inputs with some files replaced; returns its check problems."""

    def build(name: str, **replace: str) -> list[str]:
        files = write_inputs(tmp_path / name)
        for key, text in replace.items():
            files[key].write_text(text)
        store.refpkgs.create(name, locus="L", files=list(files.items()))
        return store.refpkgs.check(name)

    return build


def test_a_consistent_package_has_no_problems(make: Callable[..., list[str]]) -> None:
    assert make("ok") == []


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_each_rule_reports_taxtastics_text(make: Callable[..., list[str]], case: str) -> None:
    key, text, problem = BROKEN[case]
    assert make(case.replace(" ", "-"), **{key: text}) == [problem]


def test_every_problem_is_reported_not_only_the_first(store: Store, make: Callable[..., list[str]]) -> None:
    problems = make("many", aln_sto=BROKEN["stockholm"][1], tree=BROKEN["newick"][1],
                    taxonomy=BROKEN["taxonomy"][1], phylo_model=BROKEN["json"][1])
    assert problems == [BROKEN[c][2] for c in ("stockholm", "newick", "taxonomy", "json")]


def test_missing_required_keys_are_each_reported(store: Store) -> None:
    store.refpkgs.create("empty", locus="L")
    assert store.refpkgs.check("empty") == [
        f"RefPkg has no key {k}"
        for k in ("aln_fasta", "aln_sto", "seq_info", "tree", "taxonomy", "phylo_model")
    ]


def test_a_format_version_pplacer_refuses_is_reported_and_taxit_check_misses_it(
    store: Store, make: Callable[..., list[str]], tmp_path: Path
) -> None:
    assert make("v2") == []
    store.refpkgs.update_metadata("v2", {"format_version": "2.0"})
    assert store.refpkgs.check("v2") == ["format_version is '2.0'; pplacer reads only 1.1."]
    store.refpkgs.export("v2", tmp_path / "v2.refpkg")  # exported as set, so pplacer would refuse it
    assert taxit("check", tmp_path / "v2.refpkg", check=False).returncode == 0
    store.refpkgs.rollback("v2")
    assert store.refpkgs.check("v2") == []


def test_uneven_seq_info_rows_are_reported(make: Callable[..., list[str]]) -> None:
    assert make("uneven", seq_info="seqname,tax_id\ns1,1\ns2,1,x\ns3,1\n") == [
        "some lines in seq_info differ in field count"]


def test_real_taxit_check_reports_the_same_first_problem(store: Store, make: Callable[..., list[str]],
                                                         tmp_path: Path) -> None:
    for case in ("fasta", "newick", "duplicate leaves", "tree names", "json"):
        key, text, problem = BROKEN[case]
        name = case.replace(" ", "-")
        assert make(name, **{key: text}) == [problem]
        store.refpkgs.export(name, tmp_path / f"{name}.refpkg")
        proc = taxit("check", tmp_path / f"{name}.refpkg", check=False)
        assert (proc.returncode, proc.stdout) == (1, problem + "\n")


def test_cli_check_prints_each_problem_and_exits_1(  # type: ignore[no-untyped-def]
    cli, store_path: Path, tmp_path: Path
) -> None:
    files = write_inputs(tmp_path / "inputs")
    with Store.open(store_path) as store:
        store.refpkgs.create("good", locus="L", files=list(files.items()))
        files["tree"].write_text(BROKEN["newick"][1])
        files["phylo_model"].write_text(BROKEN["json"][1])
        store.refpkgs.create("bad", locus="L", files=list(files.items()))
    result = cli("refpkg", "check", "bad")
    assert result.exit_code == 1
    assert result.output == "tree file is not valid Newick.\nphylo_model is not valid JSON.\n"
    result = cli("refpkg", "check", "good")
    assert (result.exit_code, result.output) == (0, "")


def test_check_reports_progress_in_bytes_while_it_reads_a_large_alignment(store: Store, tmp_path: Path) -> None:
    # Checking a 100k-sequence package reads ~300 MB twice (checksums, then the rules): 8 s with no
    # sign of life on the terminal. Each pass is a bar in bytes, advanced as the alignment is read.
    files = write_inputs(tmp_path / "inputs")
    names = [f"s{i}" for i in range(1, 4)]
    files["aln_fasta"].write_text("".join(f">{n}\n{'ACGT-' * 2000}\n" for n in names)
                                  + "".join(f">x{i}\n{'A' * 9000}\n" for i in range(400)))
    store.refpkgs.create("pkg", locus="L", files=list(files.items()))
    bars = Bars()
    problems = store.refpkgs.check("pkg", progress=bars)
    assert problems and all("Mismatches: x" in p for p in problems)  # the 400 extra records
    sizes = {key: path.stat().st_size for key, path in files.items()}
    assert bars.units == ["B", "B"]
    (verify, verify_total, verify_steps), (rules, rules_total, rules_steps) = bars.bars
    assert (verify, verify_total, sum(verify_steps)) == ("verify files", sum(sizes.values()), sum(sizes.values()))  # type: ignore[arg-type]
    parsed = sum(sizes[k] for k in ("aln_fasta", "seq_info", "aln_sto", "tree", "taxonomy"))
    assert (rules, rules_total, sum(rules_steps)) == ("check rules", parsed, parsed)  # type: ignore[arg-type]
    assert sizes["aln_fasta"] > 3 << 20 and len(rules_steps) > 3  # type: ignore[arg-type]  # not one jump per file


NEWICK_CASES = [
    "((a,b),c);", "((a,b)x:0.1,c:0.2)root;", "('a b',b_c,'it''s');", "a;", "((a,b),c);((d,e),f);",
    "((a[comment],b),c)[&R];", "(a,,b);", "((A,a),c);", "((a:1e-3,b:2),c:.5);",
    "((a,b),c)", "((a,b),c;", "(a,b));", "", "(a,b),c;", "((a:0.1,b:abc),c);", "(a b,c);", "x(a,b);",
    "(a,b)c d;", "('unterminated,b);", "((a,b),c)[open;",
    "((s1,s2),s3,s3);", "((a,b),c);((a,a),c);", "(((a,b),(c,(a,b))));", "((a,b),c);((a,b),c);",
    "(('a',a),c);", "((a,A),c);", "((a,b)a,c);",
]


@pytest.mark.parametrize("text", NEWICK_CASES)
def test_newick_reading_agrees_with_dendropy(text: str, tmp_path: Path) -> None:
    dendropy = pytest.importorskip("dendropy")
    path = tmp_path / "t.nwk"
    path.write_text(text)
    try:
        tree = dendropy.Tree.get(path=str(path), schema="newick", case_sensitive_taxon_labels=True,
                                 taxon_namespace=dendropy.TaxonNamespace(is_case_sensitive=True),
                                 preserve_underscores=True)
        expected: set[str] | None = set(tree.taxon_namespace.labels())
    except Exception:
        expected = None
    try:
        ours: set[str] | None = newick_names([text])
    except NewickError:
        ours = None
    assert ours == expected


def test_deeply_nested_trees_parse_without_recursion() -> None:
    depth = 20_000
    text = "(" * depth + "a" + "".join(f",t{i})" for i in range(depth)) + ";"
    assert len(newick_names([text])) == depth + 1


def test_seq_info_names_come_from_the_seqname_column_wherever_it_is(make: Callable[..., list[str]]) -> None:
    assert make("swapped", seq_info="tax_id,seqname\n1,s1\n1,s2\n1,s3\n") == []

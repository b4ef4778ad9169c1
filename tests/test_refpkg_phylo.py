"""Claims about phylo_model derived from tree_stats: the same JSON as `taxit create -s` / `taxit update`."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from rgstore.errors import InvalidInputError
from rgstore.refpkg_phylo import phylo_model_from_stats
from rgstore.store import Store

from .refpkg_data import TREE_STATS, contents, taxit, write_inputs, write_tree_stats


@pytest.fixture(scope="module")
def stats(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_tree_stats(tmp_path_factory.mktemp("stats"))


@pytest.fixture(scope="module")
def taxit_empty(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`taxit create -P P -l L --no-reroot` run once; tests copy it instead of paying taxit's start-up each time.

    The package is only CONTENTS.json (locus, create date, log), nothing depends on its path, so a copy is what
    another `taxit create` would write there.
    """
    pkg = tmp_path_factory.mktemp("taxit-empty") / "empty.refpkg"
    taxit("create", "-P", pkg, "-l", "L", "--no-reroot")
    return pkg


@pytest.fixture(scope="module")
def taxit_updates(
    tmp_path_factory: pytest.TempPathFactory, stats: dict[str, Path], taxit_empty: Path
) -> dict[str, tuple[dict[str, Any], str]]:
    """name -> (phylo_model JSON, newest log entry) after `taxit update P tree_stats=F` for each log."""
    pkg = tmp_path_factory.mktemp("taxit") / "p.refpkg"
    shutil.copytree(taxit_empty, pkg)
    out = {}
    for name, path in stats.items():
        taxit("update", pkg, f"tree_stats={path}")
        doc = contents(pkg)
        out[name] = (json.loads((pkg / doc["files"]["phylo_model"]).read_text()), doc["log"][0])
    return out


def _model(store: Store, name: str) -> Any:
    return json.loads(store.refpkgs.resource_path(name, "phylo_model").read_text())


@pytest.mark.parametrize("name", sorted(TREE_STATS))
def test_update_tree_stats_derives_the_phylo_model_taxit_update_derives(
    store: Store, stats: dict[str, Path], taxit_updates: dict[str, tuple[dict[str, Any], str]], name: str
) -> None:
    store.refpkgs.create("pkg", locus="L")
    info = store.refpkgs.update_files("pkg", [f"tree_stats={stats[name]}"])
    theirs, message = taxit_updates[name]
    assert _model(store, "pkg") == theirs
    assert info.entry == message and info.rollbacks == 1
    assert store.refpkgs.rollback("pkg").files == {}  # one step: tree_stats and phylo_model together


@pytest.mark.parametrize("name", ["RAxML_info.dna", "fasttree_gtr.log", "phyml_stats.txt"])
def test_create_with_the_issues_options_matches_taxit_create_and_passes_check(  # type: ignore[no-untyped-def]
    cli, store_path: Path, stats: dict[str, Path], tmp_path: Path, name: str
) -> None:
    f = write_inputs(tmp_path / "inputs")
    options = ["-l", "16S", "-f", f["aln_fasta"], "-S", f["aln_sto"], "-i", f["seq_info"],
               "-T", f["taxonomy"], "-t", f["tree"], "-s", stats[name]]
    taxit("create", "-P", tmp_path / "theirs", "--no-reroot", *options)
    result = cli("refpkg", "create", "pkg", *map(str, options))
    assert result.exit_code == 0, result.output
    check = cli("refpkg", "check", "pkg")
    assert (check.exit_code, check.output) == (0, "")
    theirs = contents(tmp_path / "theirs")
    with Store.open(store_path) as store:
        assert _model(store, "pkg") == json.loads(
            (tmp_path / "theirs" / theirs["files"]["phylo_model"]).read_text())
        info = store.refpkgs.info("pkg")
        assert sorted(info.files) == sorted(theirs["files"]) and info.log == theirs["log"]
        assert info.files["phylo_model"].name == "phylo_model.json"
        store.refpkgs.export("pkg", tmp_path / "ours")
    assert taxit("check", tmp_path / "ours").stdout == ""


def test_an_explicit_phylo_model_wins_over_the_derived_one(store: Store, stats: dict[str, Path],
                                                           tmp_path: Path) -> None:
    f = write_inputs(tmp_path / "inputs")
    store.refpkgs.create("pkg", locus="L", files=[("tree_stats", stats["fasttree_gtr.log"]),
                                                   ("phylo_model", f["phylo_model"])])
    assert _model(store, "pkg") == json.loads(f["phylo_model"].read_text())
    store.refpkgs.update_files("pkg", [f"tree_stats={stats['RAxML_info.dna']}", f"phylo_model={f['phylo_model']}"])
    assert _model(store, "pkg") == json.loads(f["phylo_model"].read_text())


@pytest.mark.parametrize("order", ["phylo_model first", "between two tree_stats", "phylo_model last"])
def test_update_keeps_the_phylo_model_taxit_update_keeps_for_the_order_the_pairs_are_named_in(
    store: Store, stats: dict[str, Path], tmp_path: Path, taxit_empty: Path, order: str,
) -> None:
    # taxit update re-derives phylo_model at each tree_stats pair, so the later of the two wins.
    f = write_inputs(tmp_path / "inputs")
    explicit, first, last = (f"phylo_model={f['phylo_model']}", f"tree_stats={stats['fasttree_gtr.log']}",
                             f"tree_stats={stats['RAxML_info.dna']}")
    items = {"phylo_model first": [explicit, last], "between two tree_stats": [first, explicit, last],
             "phylo_model last": [last, explicit]}[order]
    pkg = tmp_path / "theirs.refpkg"
    shutil.copytree(taxit_empty, pkg)
    taxit("update", pkg, *items)
    theirs = contents(pkg)
    store.refpkgs.create("pkg", locus="L")
    info = store.refpkgs.update_files("pkg", items)
    assert _model(store, "pkg") == json.loads((pkg / theirs["files"]["phylo_model"]).read_text())
    assert sorted(info.files) == sorted(theirs["files"]) and info.entry == theirs["log"][0]
    taxit("strip", pkg)
    assert store.refpkgs.strip("pkg").entry == contents(pkg)["log"][0]


BAD_LOGS = {
    # name: (text, what our refusal says, whether taxit also refuses it)
    "garbage": ("hello world\n", "couldn't guess its log type", True),
    "raxml cat": (TREE_STATS["RAxML_info.dna"].replace("alpha[0]: 0.384677 rates[0] ac ag at cg ct gt: "
                                                       "0.491059 1.225010 0.913008 0.539137 2.673436 1.000000", ""),
                  "no GAMMA alpha parameter", False),
    "raxml no datatype": (TREE_STATS["RAxML_info.dna"].replace("DataType: DNA\n", ""), "names no DataType", True),
    "fasttree jukes-cantor": (re.sub(r"GTR(Freq|Rates).*\n", "", TREE_STATS["fasttree_gtr.log"]),
                              "has no GTRRates line", True),
    "phyml amino acids": (TREE_STATS["phyml_stats.txt"].replace("nucleotides substitution: \tGTR",
                                                                 "amino acids substitution: \tWAG"),
                          "do not say whether frequencies were empirical", True),
    "phyml without gamma": (re.sub(r"Discrete gamma model: \t\tYes\n.*\n.*\n", "Discrete gamma model: \t\tNo\n",
                                   TREE_STATS["phyml_stats.txt"]), "without a discrete gamma model", False),
    "raxml-ng": ("\nRAxML-NG v. 1.0.2 released on 22.02.2021 by The Exelixis Lab.\n", "RAxML-NG logs", False),
}


@pytest.mark.parametrize("case", sorted(BAD_LOGS))
def test_a_log_without_a_usable_model_is_refused_in_one_line_and_stores_nothing(  # type: ignore[no-untyped-def]
    cli, store_path: Path, tmp_path: Path, taxit_empty: Path, case: str
) -> None:
    text, why, taxit_refuses = BAD_LOGS[case]
    log = tmp_path / "stats.txt"
    log.write_text(text)
    with pytest.raises(InvalidInputError, match=re.escape(why)):
        phylo_model_from_stats(log)
    assert cli("refpkg", "create", "pkg", "-l", "L").exit_code == 0
    with Store.open(store_path) as store:
        before = (store.head()[0], list(store.blobs.all()))
    for args in (["update", "pkg", f"tree_stats={log}"], ["create", "other", "-l", "L", "-s", str(log)]):
        result = cli("refpkg", *args)
        assert result.exit_code == 1 and result.stderr.count("\n") == 1
        assert result.stderr.startswith(f"error: tree stats {log}: ") and why in result.stderr
    with Store.open(store_path) as store:
        assert (store.head()[0], list(store.blobs.all())) == before
    if taxit_refuses:
        pkg = tmp_path / "theirs"
        shutil.copytree(taxit_empty, pkg)
        assert taxit("update", pkg, f"tree_stats={log}", check=False).returncode != 0
        shutil.rmtree(pkg)


@pytest.mark.parametrize("case", sorted(BAD_LOGS))
def test_a_log_taxit_cannot_read_is_refused_even_before_an_explicit_phylo_model(  # type: ignore[no-untyped-def]
    cli, store_path: Path, tmp_path: Path, taxit_empty: Path, case: str
) -> None:
    # taxit update reads each tree_stats log though a later phylo_model replaces what it derives.
    text, why, _taxit_refuses = BAD_LOGS[case]
    log = tmp_path / "stats.txt"
    log.write_text(text)
    model = write_inputs(tmp_path / "inputs")["phylo_model"]
    pkg = tmp_path / "theirs"
    shutil.copytree(taxit_empty, pkg)
    refuses = taxit("update", pkg, f"tree_stats={log}", f"phylo_model={model}", check=False).returncode != 0
    assert cli("refpkg", "create", "pkg", "-l", "L").exit_code == 0
    with Store.open(store_path) as store:
        before = (store.head()[0], list(store.blobs.all()))
    for args in (["update", "pkg", f"tree_stats={log}", f"phylo_model={model}"],
                 ["create", "other", "-l", "L", "-s", str(log), "--phylo-model", str(model)]):
        result = cli("refpkg", *args)
        if refuses:
            assert result.exit_code == 1 and result.stderr.count("\n") == 1
            assert result.stderr.startswith(f"error: tree stats {log}: ") and why in result.stderr
        else:
            assert result.exit_code == 0, result.stderr
    if refuses:
        with Store.open(store_path) as store:
            assert (store.head()[0], list(store.blobs.all())) == before


# An alpha value as the program printed it -> the alpha taxit 1.0.1 reads from it: a number, None (it
# finds no alpha and writes a gamma model without one) or "fails" (taxit update exits with a ValueError).
ALPHA_FORMS: dict[str, float | str | None] = {
    "0.38x": 0.38, "0.38e-2": 0.38, "1,5": 1.0, "0.38\t": 0.38,
    "x0.38": None, "nan": None, "-nan": None, "inf": None, "-0.5": None, "+0.5": None,
    ".": "fails", "0.3.8": "fails",
}
PHYML_ALPHA_FORMS: dict[str, float | str | None] = {
    "0.38x": 0.38, "0.38e-2": 0.38, "0.3.8": 0.3, "x0.38": None, "nan": None, "1": None, ".5": None, "5.": None,
    "1e-05": None, "-0.5": None,
}
_ALPHA_LINES = {"RAxML_info.dna": "alpha[0]: 0.384677", "RAxML_info.evaluate": "alpha: 0.463812",
                "phyml_stats.txt": "\t\t0.448"}


def _alpha_cases() -> list[tuple[str, str, float | str | None]]:
    return [(name, form, expected) for name in sorted(_ALPHA_LINES)
            for form, expected in (PHYML_ALPHA_FORMS if name.startswith("phyml") else ALPHA_FORMS).items()]


def _with_alpha(name: str, form: str) -> str:
    line = _ALPHA_LINES[name]
    return TREE_STATS[name].replace(line, line.rsplit(maxsplit=1)[0] + " " + form if ":" in line else f"\t\t{form}")


@pytest.mark.parametrize(("name", "form", "expected"), _alpha_cases())
def test_the_alpha_read_from_a_log_is_the_one_taxit_reads(
    tmp_path: Path, name: str, form: str, expected: float | str | None,
) -> None:
    log = tmp_path / "stats.txt"
    log.write_text(_with_alpha(name, form))
    if expected == "fails":
        with pytest.raises(InvalidInputError, match=re.escape(f"alpha {form!r} is not a number")):
            phylo_model_from_stats(log)
    elif expected is None:  # taxit writes a model without alpha; pplacer cannot use it, so this is refused
        with pytest.raises(InvalidInputError, match="alpha parameter found|shape parameter"):
            phylo_model_from_stats(log)
    else:
        assert phylo_model_from_stats(log)["gamma"]["alpha"] == expected


@pytest.mark.parametrize(("name", "form", "expected"), _alpha_cases())
def test_a_log_with_an_odd_alpha_is_accepted_where_taxit_accepts_it_with_the_same_model(  # type: ignore[no-untyped-def]
    cli, store_path: Path, tmp_path: Path, taxit_empty: Path, name: str, form: str, expected: float | str | None,
) -> None:
    log = tmp_path / "stats.txt"
    log.write_text(_with_alpha(name, form))
    pkg = tmp_path / "theirs"
    shutil.copytree(taxit_empty, pkg)
    theirs = taxit("update", pkg, f"tree_stats={log}", check=False)
    assert (theirs.returncode != 0) == (expected == "fails"), theirs.stderr
    model = write_inputs(tmp_path / "inputs")["phylo_model"]
    assert cli("refpkg", "create", "pkg", "-l", "L").exit_code == 0
    ours = cli("refpkg", "update", "pkg", f"tree_stats={log}")
    if expected == "fails":
        assert ours.exit_code == 1 and ours.stderr.startswith(f"error: tree stats {log}: alpha ")
        # taxit reads the log though an explicit phylo_model follows: refused then too
        assert cli("refpkg", "update", "pkg", f"tree_stats={log}", f"phylo_model={model}").exit_code == 1
        return
    derived = json.loads((pkg / contents(pkg)["files"]["phylo_model"]).read_text())
    assert derived["gamma"].get("alpha") == expected
    if expected is None:  # our one refusal of what taxit accepts: a model without alpha (see the module doc)
        assert ours.exit_code == 1 and ours.stderr.count("\n") == 1
        explicit = cli("refpkg", "update", "pkg", f"tree_stats={log}", f"phylo_model={model}")
        assert explicit.exit_code == 0, explicit.stderr
        return
    assert ours.exit_code == 0, ours.stderr
    with Store.open(store_path) as store:
        assert _model(store, "pkg") == derived

"""Claims about GA4GH digests that start with `-` (base64url: about one in 64) given on the command line: read
as the argument they are, without `--`, while a real unknown option keeps click's one-line error."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from rgstore import seqcol


def _dash_genome(tmp_path: Path) -> tuple[Path, str]:
    """A one-record FASTA whose seqcol digest starts with `-`, and that digest."""
    for n in itertools.count():
        residues = f"ACGT{n:b}".replace("0", "G").replace("1", "T")
        level1 = seqcol.level1(["c1"], [len(residues)], ["SQ." + seqcol.sha512t24u(residues)])
        digest = seqcol.top_level_digest(level1)
        if digest.startswith("-"):
            path = tmp_path / "dash.fa"
            path.write_text(f">c1\n{residues}\n")
            return path, digest
    raise AssertionError("unreachable")


def test_a_digest_starting_with_a_dash_is_an_argument_without_double_dash(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fasta, digest = _dash_genome(tmp_path)
    assert cli("genome", "init", "--fasta", str(fasta), "--name", "g").exit_code == 0
    residues = fasta.read_text().split()[1]
    # Was: "error: No such option '-…'"; positional, between and after options, and as an option's value.
    assert cli("alias", "set", "z11", digest).exit_code == 0
    assert json.loads(cli("alias", "get", "z11", "--json").stdout)["digest"] == digest
    assert cli("alias", "set", "--force", "z12", digest).exit_code == 0
    assert json.loads(cli("alias", "get", "z12", "--json").stdout)["digest"] == digest
    shown = cli("genome", "show", digest, "--digest", "--json")
    assert shown.exit_code == 0 and json.loads(shown.stdout)["digest"] == digest, shown.output
    assert cli("getseq", "--digest", digest, "c1:0-4").stdout.strip() == residues[:4]
    assert cli("getseq", "z11", "c1:0-4").stdout.strip() == residues[:4]
    # `--` before it still works as it always did.
    assert cli("alias", "set", "--force", "z13", "--", digest).exit_code == 0


def test_an_unknown_option_is_still_refused_by_name_beside_a_dash_digest(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fasta, digest = _dash_genome(tmp_path)
    assert cli("genome", "init", "--fasta", str(fasta), "--name", "g").exit_code == 0
    for args in (["alias", "set", "z11", digest, "--bogus"], ["alias", "set", "--bogus", "z11", digest],
                 ["alias", "set", "-x", "z11", digest], ["genome", "show", "-x"]):
        result = cli(*args)
        assert result.exit_code == 2, (args, result.output)
        flag = next(a for a in args if a in ("--bogus", "-x"))
        assert f"No such option '{flag}'" in result.output and "--help`)" in result.output, (args, result.output)
    assert cli("alias", "get", "z11").exit_code != 0  # nothing was set


def test_an_option_left_without_its_value_after_a_dash_digest_is_refused_as_click_says(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # Was "No such option '-v'": the `--` put before the arguments was taken for --namespace's missing value.
    _, digest = _dash_genome(tmp_path)
    for args, flag in ((["alias", "set", "z11", digest, "--namespace"], "--namespace"),
                       (["alias", "set", "z11", digest, "-n"], "-n"),
                       (["getseq", "g", f"{digest}:0-4", "--width"], "--width")):
        result = cli(*args)
        assert result.exit_code == 2, (args, result.output)
        assert f"Option '{flag}' requires an argument" in result.output, (args, result.output)
        assert f"(see `cli {' '.join(args[:2 if args[0] == 'alias' else 1])} --help`)" in result.output, result.output
    assert cli("alias", "get", "z11").exit_code != 0  # nothing was set

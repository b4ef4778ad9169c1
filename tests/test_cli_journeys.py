"""Claims about the CLI as a new user meets it: journeys across domains, errors, and uniform output."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

from rgstore.errors import InvalidInputError, NotFoundError, clip
from tests.conftest import run_rgstore
from tests.refpkg_data import write_inputs
from tests.upstream_fixture import UpstreamServer

TINY = str(resources.files("rgstore").joinpath("data/tiny.fa"))
ENS = ["--source", "ensembl", "--species", "synthetica_testii", "--release", "110"]
ISO_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def _one_line_error(result, code: int = 1) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == code, result.output
    err: str = result.stderr
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


def _seed(cli, tmp_path: Path) -> dict[str, Path]:  # type: ignore[no-untyped-def]
    inputs = write_inputs(tmp_path / "in")
    assert cli("genome", "init", "--fasta", TINY, "--name", "tiny", "--circular", "chrM").exit_code == 0
    digest = cli("alias", "get", "tiny").output.strip()
    assert cli("alias", "set", "grch38", digest).exit_code == 0
    created = cli("refpkg", "create", "pkg", "-l", "16S rRNA", "-f", str(inputs["aln_fasta"]),
                  "-i", str(inputs["seq_info"]), "-T", str(inputs["taxonomy"]), "-t", str(inputs["tree"]))
    assert created.exit_code == 0, created.output
    return inputs


# -- errors --------------------------------------------------------------------------------------------------


def test_clip_keeps_the_start_and_end_of_an_overlong_word_and_says_how_much_is_left_out() -> None:
    name = "a" * 10_000 + "Z"
    text = clip(f"no refpkg {name!r}; see `rgstore refpkg list`")
    assert len(text) < 300 and text.startswith("no refpkg 'aaaa") and text.endswith("aZ'; see `rgstore refpkg list`")
    assert "(9,864 characters left out)" in text
    assert clip("a\nb\tc") == "a\\nb\\tc"  # one line, whatever the input held
    assert clip("x " * 2000).count("characters left out") == 1 and len(clip("x " * 2000)) < 1100
    ordinary = "chr1:10-5 of genome hg38: start is after end (chr1 is not circular)"
    assert clip(ordinary) == ordinary


def test_every_error_echoes_a_10kb_input_cut_to_one_short_line(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("init").exit_code == 0
    long_name, long_path = "q" * 10_000, "/tmp/" + "p" * 3000 + "/x.fa"
    cases = [
        (["refpkg", "info", long_name], 1),  # a NotFoundError
        (["alias", "get", f"{long_name}:x"], 1),  # an InvalidInputError from a view
        (["genome", "init", "--fasta", long_path, "--name", "x"], 1),  # an OSError (name too long)
        (["log", "show", long_name], 2),  # click's own usage message
        (["no-such-" + long_name], 2),
    ]
    for args, code in cases:
        err = _one_line_error(cli(*args), code)
        assert len(err) < 400 and "characters left out" in err, err[:200]
        assert "qqqq" in err or "pppp" in err  # the message still names the input
    assert str(NotFoundError(long_name)).count("q") < 200
    assert len(str(InvalidInputError(f"invalid {long_name!r}"))) < 300


def test_a_path_with_a_newline_is_reported_on_one_line(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    err = _one_line_error(cli("genome", "init", "--fasta", str(tmp_path / "a\nb.fa"), "--name", "x"))
    assert "a\\nb.fa" in err


def test_genome_init_with_fasta_and_a_digest_names_the_real_mistake(cli) -> None:  # type: ignore[no-untyped-def]
    err = _one_line_error(cli("genome", "init", "--fasta", TINY, "--digest", "A" * 32, "--name", "x"), 2)
    assert "--digest and --alias name a genome on a --remote URL" in err


def test_refpkg_rollback_of_fewer_than_one_step_is_a_usage_error(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _seed(cli, tmp_path)
    for command in ("rollback", "rollforward"):
        err = _one_line_error(cli("refpkg", command, "pkg", "-n", "0"), 2)
        assert "0 is not in the range x>=1" in err


def test_refpkg_export_into_a_missing_directory_is_refused_like_genome_and_log_export(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path
) -> None:
    _seed(cli, tmp_path)
    missing = tmp_path / "no" / "such"
    for args in (["refpkg", "export", "pkg", str(missing / "pkg.refpkg")],
                 ["refpkg", "export", "pkg", "--tar", str(missing / "pkg.tar.gz")],
                 ["genome", "export", "tiny", str(missing / "tiny.fa")],
                 ["log", "export", str(missing / "x.rglog")]):
        err = _one_line_error(cli(*args))
        assert f"directory {missing} does not exist" in err
    assert not (tmp_path / "no").exists()


# -- uniform output ------------------------------------------------------------------------------------------


def test_text_tables_print_times_one_way_and_headers_in_capitals(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _seed(cli, tmp_path)
    outputs = {args: cli(*args.split()).output for args in (
        "log", "alias history grch38", "refpkg log pkg", "refpkg info pkg", "genome show tiny",
        "genome list", "refpkg list", "alias list")}
    for args in ("log", "alias history grch38", "refpkg log pkg", "refpkg info pkg", "genome show tiny"):
        assert ISO_Z.search(outputs[args]), args
        assert "+00:00" not in outputs[args] and not re.search(r"\d\d:\d\d:\d\d\.\d", outputs[args]), args
    for args in ("log", "alias history grch38", "refpkg log pkg", "genome list", "refpkg list", "alias list"):
        header = outputs[args].splitlines()[0]
        assert header == header.upper() and header.split()[0] in {"SEQ", "NAMES", "NAME", "NAMESPACE"}, args


def test_log_columns_line_up_under_their_headers(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _seed(cli, tmp_path)
    lines = cli("log").output.splitlines()
    at = lines[0].index("SUMMARY")
    assert len(lines) == 5
    for line in lines[1:]:
        assert line[at - 2:at] == "  " and line[at] != " ", line  # every summary starts in the same column


def _columns(text: str) -> int:
    """Terminal columns: East Asian wide characters take two, combining marks none."""
    import unicodedata

    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def test_log_columns_line_up_on_a_terminal_when_an_actor_writes_in_cjk_or_with_accents(  # type: ignore[no-untyped-def]
    cli,
) -> None:
    assert cli("genome", "init", "--fasta", TINY, "--name", "tiny").exit_code == 0
    digest = cli("alias", "get", "tiny").output.strip()
    for actor, name in (("研究者@実験室", "wide"), ("Jose\u0301", "accented")):
        assert cli("--actor", actor, "alias", "set", name, digest).exit_code == 0
    lines = cli("log").output.splitlines()
    assert any("研究者" in line for line in lines) and len(lines) == 5
    at = _columns(lines[0][:lines[0].index("SUMMARY")])
    for line in lines[1:]:
        last_column = list(re.finditer(r"  (?=\S)", line))[-1]  # the summary: columns are 2+ spaces apart
        assert _columns(line[:last_column.end()]) == at, line


def test_log_json_times_are_written_like_every_other_json_time(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _seed(cli, tmp_path)
    row = json.loads(cli("log", "--json", "--limit", "1").output)
    shown = json.loads(cli("log", "show", str(row["seq"])).output)
    listed = json.loads(cli("refpkg", "list", "--json").output)[0]
    assert row["time"] == shown["time"] == listed["time"] and row["time"].endswith("Z")


def test_alias_get_json_has_the_fields_of_an_alias_list_entry(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _seed(cli, tmp_path)
    listed = {(e["namespace"], e["name"]): e for e in json.loads(cli("alias", "list", "--json").output)}
    for given in ("grch38", "refgenie:grch38"):
        got = json.loads(cli("alias", "get", given, "--json").output)
        entry = listed[("refgenie", "grch38")]
        assert got == {k: entry[k] for k in ("kind", "namespace", "name", "digest")}, given


# -- a journey across domains ----------------------------------------------------------------------------------


def test_a_store_of_every_domain_exported_and_replayed_lists_the_same(  # type: ignore[no-untyped-def]
    cli, store_path: Path, tmp_path: Path, server: UpstreamServer
) -> None:
    _seed(cli, tmp_path)
    digest = cli("alias", "get", "tiny").output.strip()
    by_name = cli("getseq", "tiny", "chr1:0-20").output
    assert by_name == cli("getseq", "grch38", "chr1:0-20").output == cli("getseq", "--digest", digest, "chr1:0-20").output
    assert cli("alias", "set", "grch38", digest, "--force").exit_code == 0  # a no-op repoint, then undo/redo
    assert cli("alias", "undo", "grch38").exit_code == 0 and cli("alias", "redo", "grch38").exit_code == 0
    regions = cli("cache", "regions", *ENS, "--regions", "gene", "--base-url", f"{server.url}/ensembl", "--json")
    assert json.loads(regions.output)[0]["region"] == "gene"
    package = tmp_path / "pkg.refpkg"
    assert cli("refpkg", "export", "pkg", str(package)).exit_code == 0
    assert set(json.loads((package / "CONTENTS.json").read_text())["md5"]) == {"aln_fasta", "seq_info", "taxonomy", "tree"}
    assert cli("refpkg", "import", str(package), "--name", "copy").exit_code == 0
    assert cli("verify").exit_code == 0 and cli("rebuild").exit_code == 0
    backup = tmp_path / "backup.rglog"
    assert cli("log", "export", str(backup)).exit_code == 0
    replayed = run_rgstore("--store", str(tmp_path / "second"), "replay", str(backup), "--json")
    assert replayed.returncode == 0 and replayed.stderr == b""
    for args in (["log"], ["genome", "list"], ["alias", "list"], ["refpkg", "list"], ["cache", "ls"]):
        ours = run_rgstore("--store", str(store_path), *args, "--json")
        theirs = run_rgstore("--store", str(tmp_path / "second"), *args, "--json")
        assert ours.returncode == theirs.returncode == 0 and ours.stderr == b"", args
        assert ours.stdout == theirs.stdout and ours.stdout.strip(), args
        for line in ours.stdout.splitlines():
            json.loads(line)  # a JSON document (list commands) or JSON lines (log)


def test_json_output_is_clean_json_on_stdout_and_nothing_on_stderr(store_path: Path) -> None:
    assert run_rgstore("--store", str(store_path), "genome", "init", "--fasta", TINY, "--name", "tiny").returncode == 0
    for args in (["genome", "show", "tiny"], ["verify"], ["gc", "--dry-run"], ["mirror", "status"]):
        proc = run_rgstore("--store", str(store_path), *args, "--json")
        assert proc.returncode == 0 and proc.stderr == b"", args
        assert isinstance(json.loads(proc.stdout), dict), args


def test_an_empty_log_filter_is_a_usage_error_not_an_empty_listing(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _seed(cli, tmp_path)
    for option in ("--stream", "--type"):
        err = _one_line_error(cli("log", option, ""), 2)
        assert option in err and "is empty" in err


def test_gc_summaries_count_every_kind_of_leftover_they_sweep(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _seed(cli, tmp_path)
    summary = cli("gc", "--dry-run").stdout
    assert "scratch directories of killed imports" in summary and "temp files" in summary
    cached = cli("cache", "gc", "--max-age", "30d").stdout
    assert "idle lock files removed" in cached


def test_a_cache_gc_dry_run_does_not_claim_a_lock_file_count_it_never_took(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # The dry run returns before the lock sweep, so its count is always 0: printing it would say "0 removed"
    # when the real run removes some.
    _seed(cli, tmp_path)
    planned = cli("cache", "gc", "--max-age", "30d", "--dry-run").stdout
    assert planned.startswith("would evict") and "lock files" not in planned


def test_an_unknown_alias_points_to_the_listing_of_its_own_kind(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("init").exit_code == 0
    assert "see `rgstore alias list --sequence`" in _one_line_error(cli("alias", "get", "--sequence", "insdc:nope"))
    assert "see `rgstore alias list`" in _one_line_error(cli("alias", "get", "nope"))


def test_a_missing_fasta_is_a_one_line_error_that_creates_no_store(tmp_path: Path) -> None:
    store = tmp_path / "typo"
    out = run_rgstore("--store", str(store), "genome", "init", "--fasta", str(tmp_path / "missing.fa"), "--name", "x")
    assert out.returncode == 1 and out.stderr.endswith(b"missing.fa: no such file\n") and out.stderr.count(b"\n") == 1
    assert not store.exists()


_EMPTY_PATHS = [
    ["genome", "export", "tiny", ""], ["log", "export", ""], ["genome", "fhr", "set", "tiny", ""],
    ["genome", "init", "--fasta", "", "--name", "x"], ["genome", "init", "--fasta", TINY, "--fhr", "", "--name", "x"],
    ["getseq", "tiny", "--bed", ""], ["replay", ""], ["refpkg", "import", ""], ["refpkg", "export", "pkg", ""],
    ["refpkg", "export", "pkg", "--tar", ""], ["refpkg", "export", "pkg", "--zip", ""], ["backup", ""],
]


def test_an_empty_path_argument_is_a_usage_error_that_leaves_the_working_directory_alone(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, monkeypatch
) -> None:
    # Path("") is ".": `genome export tiny "$OUT"` with OUT unset failed with "Device or resource busy: ..x.tmp -> ."
    _seed(cli, tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for args in _EMPTY_PATHS:
        assert "is empty; name a path" in _one_line_error(cli(*args), 2), args
    assert list(work.iterdir()) == []


def test_an_empty_namespace_is_a_usage_error_not_the_default_namespace(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # `alias get tiny -n "$NS"` with NS unset answered refgenie's alias, exit 0.
    _seed(cli, tmp_path)
    digest = cli("alias", "get", "tiny").output.strip()
    for args in (["alias", "get", "tiny", "-n", ""], ["alias", "set", "other", digest, "-n", ""],
                 ["alias", "remove", "tiny", "-n", ""], ["alias", "history", "tiny", "--namespace", ""],
                 ["alias", "undo", "tiny", "-n", ""], ["alias", "redo", "tiny", "-n", ""], ["alias", "list", "-n", ""],
                 ["genome", "init", "--fasta", TINY, "--name", "again", "--seq-namespace", ""]):
        assert "is empty; name a namespace" in _one_line_error(cli(*args), 2), args
    assert cli("alias", "get", "tiny").output.strip() == digest and "other" not in cli("alias", "list").output


def test_exporting_over_a_file_this_user_may_not_replace_says_so_not_that_it_is_unreadable() -> None:
    """A nobody process: click's readability check said OUT "is not readable", though export only writes it."""
    import os
    import pwd
    import shutil
    import tempfile

    import pytest
    from click.testing import CliRunner
    from rgstore_cli.main import cli as root

    if os.geteuid() != 0:
        pytest.skip("needs root to act as another user")
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user nobody")
    base = Path(tempfile.mkdtemp(dir="/tmp"))  # tmp_path's parents are 0700: nobody could not reach a store there
    try:
        os.chmod(base, 0o755)
        store = base / "store"

        def export(out: Path) -> tuple[int, str]:
            result = CliRunner().invoke(root, ["--store", str(store), "genome", "export", "tiny", str(out)])
            return result.exit_code, result.stderr

        assert CliRunner().invoke(root, ["--store", str(store), "demo"]).exit_code == 0
        assert export(base / "warm.fa")[0] == 0  # loads every module the child needs: it may not read the repo
        for path in store.rglob("*"):
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        os.chmod(store / "log" / "lock.mdb", 0o666)  # every reader of a store writes its lock file
        sticky = base / "sticky"
        sticky.mkdir()
        os.chmod(sticky, 0o1777)  # as /tmp: nobody may create files here, not replace root's
        outs = [base / "out.fa", sticky / "out.fa"]
        for out in outs:
            out.write_text("root's\n")
            os.chmod(out, 0)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports through the pipe
            try:
                os.close(read)
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
                os.write(write, json.dumps([export(out) for out in outs]).encode())
            finally:
                os._exit(0)
        os.close(write)
        with os.fdopen(read, "rb") as fh:
            answers = json.loads(fh.read())
        os.waitpid(pid, 0)
        (code1, err1), (code2, err2) = answers
        assert code1 == 1 and err1 == (f"error: cannot write {outs[0]}: this user may not create files in {base} "
                                      "(Permission denied)\n")
        assert code2 == 1 and err2 == f"error: cannot replace {outs[1]}: Operation not permitted\n"
        assert [out.read_text() for out in outs] == ["root's\n", "root's\n"] and os.listdir(sticky) == ["out.fa"]
    finally:
        shutil.rmtree(base)

"""Claims about the engine's CLI commands: init, log, show, verify, rebuild, gc."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from rgstore.events import AliasSet, Noted, RefpkgUpdated
from rgstore.log import NewEvent
from rgstore.refgetlock import LOCK_NAME
from rgstore.replay import export_log
from rgstore.store import Store
from tests.conftest import REPO, run_rgstore


def _seed(path: Path) -> None:
    with Store.open(path, actor="alice@lab") as s:
        s.append([NewEvent(stream="alias:refgenie/hg38", event=AliasSet(namespace="refgenie", name="hg38", digest="D"))])
        s.append([NewEvent(stream="refpkg:p", event=Noted(text="hello"))])


def test_init_creates_the_store_layout(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("init")
    assert result.exit_code == 0
    for sub in ("log", "blobs", "cache"):
        assert (tmp_path / "store" / sub).is_dir()
    from gtars.refget import RefgetStore, StorageMode

    assert RefgetStore.open_local(str(tmp_path / "store" / "refget")).storage_mode == StorageMode.Raw


def test_init_json_gives_the_log_id_and_head_under_the_keys_status_json_uses(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    # Before: init alone printed only a sentence, so a script creating a store scraped it for the log id.
    created = cli("init", "--json")
    again = cli("init", "--json")  # an existing store: the same facts, nothing added
    assert created.exit_code == 0 and again.exit_code == 0
    status = json.loads(cli("status", "--json").stdout)
    for out in (json.loads(created.stdout), json.loads(again.stdout)):
        assert out == {key: status[key] for key in ("path", "log_id", "head_seq")}
    assert status["head_seq"] == 0


def test_a_first_write_refuses_a_directory_of_other_files_but_init_creates_the_store_there(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "hg38.fa").write_text(">chr1\nACGT\n")
    (project / ".hidden").write_text("")  # dot files (.DS_Store, .git) do not count: they are not shown as content
    proc = run_rgstore("--store", str(project), "demo")
    err = proc.stderr.decode()
    assert proc.returncode == 1 and err.count("\n") == 1 and "holds other files (hg38.fa)" in err, err
    assert f"rgstore init --store {project}" in err
    assert sorted(p.name for p in project.iterdir()) == [".hidden", "hg38.fa"]  # nothing was created
    with Store.open(tmp_path / "primary") as primary:
        primary.append([NewEvent(stream="s", event=Noted(text="x"))])
        export_log(primary, tmp_path / "x.rglog")
    proc = run_rgstore("--store", str(project), "mirror", "pull", str(tmp_path / "x.rglog"))  # a first pull too
    assert proc.returncode == 1 and "holds other files (hg38.fa)" in proc.stderr.decode(), proc.stderr.decode()
    assert sorted(p.name for p in project.iterdir()) == [".hidden", "hg38.fa"]
    assert run_rgstore("--store", str(project), "init").returncode == 0
    proc = run_rgstore("--store", str(project), "demo")
    assert proc.returncode == 0, proc.stderr.decode()
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / ".keep").write_text("")
    (empty / "lost+found").mkdir()  # the root of a file system of its own
    assert run_rgstore("--store", str(empty), "demo").returncode == 0  # an empty directory is a new store's place


def test_every_suggested_init_command_pastes_into_a_shell_as_the_path_given(tmp_path: Path) -> None:
    # Before: `rgstore init --store /x/my refs;old` -- pasted, it made a store at /x/my and ran `old`.
    import re
    import shlex

    import pytest

    from rgstore.errors import NotFoundError

    def suggested(message: str) -> list[str]:
        found = re.search(r"`(rgstore init --store [^`]*)`", message)
        assert found is not None, message
        return shlex.split(found.group(1))

    missing = tmp_path / "my refs;old $HOME"
    proc = run_rgstore("--store", str(missing), "genome", "list")  # cli/main.py: no store, not a creating command
    assert proc.returncode != 0 and suggested(proc.stderr.decode()) == ["rgstore", "init", "--store", str(missing)]
    project = tmp_path / "my project's files"
    project.mkdir()
    (project / "hg38.fa").write_text(">chr1\nACGT\n")
    proc = run_rgstore("--store", str(project), "demo")  # cli/main.py: a first write beside other files
    assert proc.returncode == 1 and suggested(proc.stderr.decode()) == ["rgstore", "init", "--store", str(project)]
    with pytest.raises(NotFoundError) as caught:
        Store.open(missing, readonly=True)  # rgstore/store.py: the Python API's own message
    assert suggested(str(caught.value)) == ["rgstore", "init", "--store", str(missing)]


def test_log_lists_filters_and_prints_json_lines(store_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    _seed(store_path)
    text = cli("log").output
    assert "alias-set" in text and "alice@lab" in text and "refpkg:p" in text
    rows = [json.loads(line) for line in cli("log", "--json", "--stream", "refpkg:*").output.splitlines()]
    assert [(r["seq"], r["type"], r["stream"]) for r in rows] == [(2, "noted", "refpkg:p")]
    rows = [json.loads(line) for line in cli("log", "--json", "--type", "alias-set").output.splitlines()]
    assert [r["seq"] for r in rows] == [1]
    assert cli("log", "--json", "--since", "1h").output.count("\n") == 2
    rows = [json.loads(line) for line in cli("log", "--json", "--limit", "1").output.splitlines()]
    assert [r["seq"] for r in rows] == [2]  # the most recent event


def test_log_show_prints_one_event_in_full(store_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    _seed(store_path)
    event = json.loads(cli("log", "show", "1").output)
    assert event["event"] == {"type": "alias-set", "namespace": "refgenie", "name": "hg38", "digest": "D"}
    assert len(event["chain_hash"]) == 64


def test_user_mistakes_get_one_line_and_exit_1_without_traceback(store_path: Path) -> None:
    _seed(store_path)
    for args in (["log", "show", "99"], ["log", "--type", "nope"]):
        proc = run_rgstore("--store", str(store_path), *args)
        assert proc.returncode == 1
        err = proc.stderr.decode()
        assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    proc = run_rgstore("--store", str(store_path / "missing"), "log")
    assert proc.returncode == 1 and "rgstore init" in proc.stderr.decode()


def test_verify_exits_1_and_names_the_bad_seq(store_path: Path) -> None:
    import lmdb

    _seed(store_path)
    assert run_rgstore("--store", str(store_path), "verify").returncode == 0
    env = lmdb.open(str(store_path / "log"), max_dbs=64)
    db = env.open_db(b"log")
    with env.begin(write=True) as txn:
        key = (2).to_bytes(8, "big")
        rec = bytearray(txn.get(key, db=db))
        rec[-1] ^= 1
        txn.put(key, bytes(rec), db=db)
    env.close()
    proc = run_rgstore("--store", str(store_path), "verify")
    assert proc.returncode == 1
    assert "seq 2" in proc.stderr.decode()


def test_rebuild_and_gc_report_in_json(store_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    _seed(store_path)
    assert json.loads(cli("rebuild", "--json").output)["events"] == 2
    assert json.loads(cli("gc", "--json", "--dry-run").output)["dry_run"] is True


def test_gc_grace_takes_the_same_spans_as_cache_gc(store_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    _seed(store_path)
    for span in ("600", "10m", "1.5h", "2d"):
        assert json.loads(cli("gc", "--grace", span, "--json", "--dry-run").output)["dry_run"] is True
    proc = run_rgstore("--store", str(store_path), "gc", "--grace", "soon")
    assert proc.returncode == 2 and "invalid duration 'soon'" in proc.stderr.decode()


def test_long_work_shows_progress_on_a_terminal_and_is_silent_when_piped(tmp_path: Path) -> None:
    from rgstore.replay import export_log

    with Store.open(tmp_path / "p") as s:
        s.append([NewEvent(stream=f"s{i % 5}", event=Noted(text=str(i))) for i in range(3000)])
        export_log(s, tmp_path / "x.rglog")
    # Piped: nothing but the result line.
    piped = run_rgstore("replay", str(tmp_path / "x.rglog"), "--store", str(tmp_path / "m1"))
    assert piped.returncode == 0 and piped.stderr == b""
    # On a terminal: a progress bar on stderr.
    returncode, _, seen = _on_a_terminal("replay", str(tmp_path / "x.rglog"), "--store", str(tmp_path / "m2"))
    assert returncode == 0
    assert b"replay" in seen and b"ev" in seen


def test_a_command_on_a_mistyped_store_fails_without_creating_one(tmp_path: Path) -> None:
    typo = tmp_path / "stroe"
    for args in (["alias", "set", "a", "A" * 32], ["refpkg", "rollback", "p"], ["gc"], ["rebuild"]):
        proc = run_rgstore("--store", str(typo), *args)
        assert proc.returncode == 1, args
        assert proc.stderr.decode().startswith(f"error: no rgstore store at {typo}"), proc.stderr
        assert not typo.exists(), args
    # Commands that add content create the store on first write.
    assert run_rgstore("--store", str(typo), "init").returncode == 0
    assert (typo / "log" / "data.mdb").exists()


def test_a_table_row_stays_one_line_whatever_its_cells_hold(tmp_path: Path) -> None:
    """A description with a newline or tab is shown escaped, so `genome list` keeps one row per genome."""
    from tests.server_fixture import rgstore_cli

    (tmp_path / "g.fa").write_text(">chr1\nACGT\n")
    rgstore_cli(tmp_path / "s", "genome", "init", "--fasta", str(tmp_path / "g.fa"), "--name", "g",
                "--description", "two\nlines\tand ü")
    lines = rgstore_cli(tmp_path / "s", "genome", "list").splitlines()
    assert len(lines) == 2 and lines[1].endswith("two\\nlines\\tand ü")


def test_odd_store_and_actor_values_get_one_line_errors_and_create_nothing(tmp_path: Path) -> None:
    import os

    (tmp_path / "afile").write_text("x")
    cases = [
        (["--store", "", "init"], 2, "--store"),  # an unset shell variable must not make the cwd a store
        (["init", "--store", " "], 2, "--store"),
        (["--store", str(tmp_path / "afile" / "sub"), "init"], 1, "afile is a file, not a directory"),
        (["--store", str(tmp_path / "s"), "--actor", "a\nb", "init"], 1, "invalid actor"),
        (["--store", str(tmp_path / "s"), "--actor", "", "init"], 1, "invalid actor"),
        (["--store", str(tmp_path / "s"), "--actor", "x" * 10_000, "init"], 1, "invalid actor"),
    ]
    for args, code, needle in cases:
        proc = subprocess_in(tmp_path, *args)
        err = proc.stderr.decode()
        assert proc.returncode == code and needle in err and "Traceback" not in err, (args, err)
    assert sorted(os.listdir(tmp_path)) == ["afile"]
    odd = tmp_path / "with space" / "ünï"
    assert run_rgstore("--store", str(odd), "--actor", "ünï cødé 🧬@lab", "init").returncode == 0
    assert (odd / "log" / "data.mdb").exists()


def subprocess_in(cwd: Path, *args: str):  # type: ignore[no-untyped-def]
    """`rgstore ARGS` run with ``cwd`` as the working directory."""
    import subprocess
    import sys

    from tests.conftest import REPO

    env = {**__import__("os").environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "rgstore_cli", *args], cwd=cwd, env=env, capture_output=True, timeout=120)


def test_log_since_takes_every_documented_form(store_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    _seed(store_path)
    day = Store.open(store_path, readonly=True)
    try:
        first = day.events()[0].time
    finally:
        day.close()
    iso = first.strftime("%Y-%m-%dT%H:%M:%S")
    forms = ["30s", "5m", "2h", "7d", "1w", first.date().isoformat(), iso, iso + "Z", iso + "+00:00",
             first.strftime("%Y-%m-%d %H:%M"), "99999999999d"]
    for since in forms:
        result = cli("log", "--json", "--since", since)
        assert result.exit_code == 0 and result.output.count("\n") == 2, (since, result.output)
    assert cli("log", "--json", "--since", "2999-01-01").output == ""
    for bad in ("1y", "-1d", "1.5h", "yesterday", ""):
        assert cli("log", "--since", bad).exit_code == 2, bad


def test_log_rows_stay_one_line_whatever_events_hold(store_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    with Store.open(store_path, actor="alice@lab") as s:
        s.append([NewEvent(stream="note:x", event=Noted(text="two\nlines\tand\x1b[31m red"))])
    header, *rows = cli("log").output.splitlines()
    assert header.split()[0] == "SEQ"
    assert len(rows) == 1 and "two\\nlines\\tand\\x1b[31m red" in rows[0]


def test_log_show_and_filters_refuse_odd_values_in_one_line(store_path: Path) -> None:
    _seed(store_path)
    for args in (["log", "show", str(10**30)], ["log", "--type", "nope"]):
        proc = run_rgstore("--store", str(store_path), *args)
        err = proc.stderr.decode()
        assert proc.returncode == 1 and err.startswith("error: ") and err.count("\n") == 1, (args, err)
    proc = run_rgstore("--store", str(store_path), "log", "--json", "--stream", "*/hg38")
    assert [json.loads(line)["seq"] for line in proc.stdout.decode().splitlines()] == [1]
    shown = run_rgstore("--store", str(store_path), "log", "show", "2", "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["event"]["type"] == "noted"


def test_a_newer_rgstore_event_in_the_log_is_one_line_naming_its_seq_and_upgrade(store_path: Path) -> None:
    from tests.test_newer_writer import NEWER_PAYLOADS, append_as_newer_writer

    _seed(store_path)
    with Store.open(store_path) as s:
        seq = append_as_newer_writer(s, NEWER_PAYLOADS["unknown event tag"])
    for args in (["log"], ["rebuild"], ["log", "show", str(seq)]):
        proc = run_rgstore("--store", str(store_path), *args)
        err = proc.stderr.decode()
        assert proc.returncode == 1 and err.count("\n") == 1 and f"seq {seq}" in err and "upgrade" in err, (args, err)


def test_usage_mistakes_are_one_line_naming_the_help_to_read_and_exit_2(tmp_path: Path) -> None:
    cases = {
        ("nonsense",): "`rgstore --help`",
        ("gnome", "list"): "No such command 'gnome'. Did you mean 'genome'? (see `rgstore --help`)",
        ("--bogus", "log"): "`rgstore --help`",
        ("log", "--since", "1y"): "'--since'",
        ("log", "show", "abc"): "`rgstore log show --help`",
        ("replay", str(tmp_path / "nope.rglog")): "does not exist",
        ("log", "--limit", "0"): "'--limit'",
        # click's parser gives these no context: the hint must still name the command mistyped, not the root.
        ("genome", "init", "--force=1"): "does not take a value (see `rgstore genome init --help`)",
        ("getseq", "tiny", "--width"): "requires an argument (see `rgstore getseq --help`)",
        ("log", "--limit"): "requires an argument (see `rgstore log --help`)",
        ("alias", "set", "--force=1", "a", "b"): "does not take a value (see `rgstore alias set --help`)",
        ("refpkg", "info", "--json=1", "p"): "does not take a value (see `rgstore refpkg info --help`)",
    }
    for args, needle in cases.items():
        proc = run_rgstore("--store", str(tmp_path / "s"), *args)
        err = proc.stderr.decode()
        assert proc.returncode == 2 and err.startswith("error: ") and err.count("\n") == 1 and needle in err, (args, err)
    assert not (tmp_path / "s").exists()
    assert run_rgstore("--help").stdout.decode().startswith("Usage: rgstore")


def test_demo_is_idempotent_and_never_repoints_a_users_tiny(tmp_path: Path) -> None:
    first = run_rgstore("--store", str(tmp_path / "d"), "demo")
    again = run_rgstore("--store", str(tmp_path / "d"), "demo")
    assert first.returncode == again.returncode == 0
    assert "(log head 2)" in again.stdout.decode() and "ATTTGCTGCTTAGTGGACGC" in again.stdout.decode()
    (tmp_path / "o.fa").write_text(">c1\nACGTACGT\n")
    assert run_rgstore("--store", str(tmp_path / "u"), "genome", "init", "--fasta", str(tmp_path / "o.fa"),
                       "--name", "tiny").returncode == 0
    proc = run_rgstore("--store", str(tmp_path / "u"), "demo")
    err = proc.stderr.decode()
    assert proc.returncode == 1 and err.count("\n") == 1 and "store of its own" in err and "--force" not in err


def test_a_store_path_with_a_quoted_tilde_means_the_home_directory_for_every_command(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "RGSTORE_HOME": "~/st"}
    assert run_rgstore("init", env=env).returncode == 0
    assert (tmp_path / "st" / "log" / "data.mdb").exists()
    for args in (["log"], ["verify"], ["--store", "~/st", "log", "--json"]):
        proc = run_rgstore(*args, env=env)
        assert proc.returncode == 0, (args, proc.stderr)


def test_a_tilde_of_an_unknown_user_in_a_store_path_is_a_one_line_error_for_every_way_to_give_it(tmp_path: Path) -> None:
    # Path.expanduser raises RuntimeError for ~nosuchuser: it was a traceback from --store, $RGSTORE_HOME,
    # a command's own --store, a mirror SOURCE and $RGSTORE_SERVE_STORE.
    odd = "~no-such-user-rgstore/st"
    cases = [
        (["--store", odd, "log"], {}, 2),
        (["log"], {"RGSTORE_HOME": odd}, 2),
        (["log", "--store", odd], {}, 2),
        (["--store", str(tmp_path / "m"), "mirror", "pull", odd], {}, 1),
        (["serve", "--port", "0"], {"RGSTORE_SERVE_STORE": odd}, 1),
    ]
    for args, env, code in cases:
        proc = run_rgstore(*args, env=env, timeout=60)
        err = proc.stderr.decode()
        assert proc.returncode == code, (args, env, err)
        assert err.startswith("error: ") and err.count("\n") == 1 and "cannot expand '~no-such-user-rgstore'" in err, err


def _on_a_terminal(*args: str) -> tuple[int, bytes, bytes]:
    """Run `rgstore ARGS` with stderr on a pseudo-terminal (stdout piped): (exit code, stdout, what the terminal showed)."""
    import fcntl
    import pty
    import struct
    import termios

    from tests.conftest import REPO

    primary, replica = pty.openpty()
    fcntl.ioctl(replica, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a real terminal has a size
    proc = subprocess.Popen([sys.executable, "-m", "rgstore_cli", *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=replica)
    os.close(replica)
    seen = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    out, _ = proc.communicate(timeout=60)
    os.close(primary)
    return proc.returncode, out, seen


def _stderr_on_a_terminal(*args: str) -> bytes:
    """What the terminal showed of a `rgstore ARGS --json` run that succeeded with JSON on stdout."""
    returncode, out, seen = _on_a_terminal(*args)
    assert returncode == 0, seen
    json.loads(out)
    return seen


def test_json_commands_draw_no_progress_bar_even_on_a_terminal(tmp_path: Path) -> None:
    fasta = tmp_path / "g.fa"
    fasta.write_text(">chr1\n" + "ACGT" * 5000 + "\n")
    seen = _stderr_on_a_terminal("--store", str(tmp_path / "s"), "genome", "init", "--fasta", str(fasta),
                                 "--name", "g", "--json")
    assert seen == b""  # not the validate/import bars (nor a "rebuild: 0ev" flash for the new store)
    # A view rebuilt at open (a damaged checkpoint) is long work too, and just as silent under --json.
    from tests.test_verify_checkpoints import _checkpoints

    _checkpoints(tmp_path / "s", {b"streams": None})
    seen = _stderr_on_a_terminal("--store", str(tmp_path / "s"), "genome", "list", "--json")
    assert b"rebuild" not in seen and seen.startswith(b"note: view 'streams' was out of step")


def test_a_bare_group_prints_its_help_not_a_one_line_error() -> None:
    for args in ([], ["genome"], ["genome", "fhr"]):
        proc = run_rgstore(*args)
        err = proc.stderr.decode()
        assert proc.returncode == 2 and proc.stdout == b"", args
        assert err.startswith("Usage: rgstore") and "\nCommands:\n" in err and "Example:" in err, err
        assert not err.startswith("error:")


def test_serve_help_shows_the_interval_default_plainly() -> None:
    out = run_rgstore("serve", "--help").stdout.decode()
    assert "[default: 5s]" in " ".join(out.split()) and "(5s)" not in out


def test_log_answers_an_auditors_who_and_when_window(store_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    for actor, text in (("alice@lab", "one"), ("bob@lab", "two"), ("alice@home", "three")):
        with Store.open(store_path, actor=actor) as s:
            s.append([NewEvent(stream="note:x", event=Noted(text=text))])
    with Store.open(store_path, readonly=True) as s:
        times = [e.time for e in s.events()]

    def seqs(*args: str) -> list[int]:
        result = cli("log", "--json", *args)
        assert result.exit_code == 0, result.output
        return [json.loads(line)["seq"] for line in result.output.splitlines()]

    assert seqs("--actor", "alice@*") == [1, 3] and seqs("--actor", "bob@lab") == [2]
    assert seqs("--actor", "*@lab", "--limit", "1") == [2]
    assert seqs("--until", times[2].isoformat()) == [1, 2]  # before, not at
    assert seqs("--since", times[1].isoformat(), "--until", times[2].isoformat()) == [2]
    assert seqs("--until", "1w") == [] and seqs("--until", "2999-01-01", "--actor", "carol@lab") == []
    for bad in (("--until", "yesterday"), ("--actor", " ")):
        result = cli("log", *bad)
        assert result.exit_code == 2 and f"'{bad[0]}'" in result.output, bad


def test_naive_time_bounds_in_the_python_api_mean_utc(store_path: Path) -> None:
    from datetime import datetime, timedelta

    _seed(store_path)
    with Store.open(store_path, readonly=True) as s:
        first = s.events()[0].time
        naive = first.replace(tzinfo=None)
        assert [e.seq for e in s.events(since=naive)] == [1, 2]
        assert s.events(until=naive) == [] and len(s.events(until=naive + timedelta(days=1))) == 2
        assert [e.seq for e in s.iter_events(since=datetime(2000, 1, 1), until=naive + timedelta(days=1))] == [1, 2]


def _grow_log(path: Path, n: int, start: int) -> None:
    """``n`` notes with streams, actors and summaries of varied widths (one wide CJK actor, control chars)."""
    with Store.open(path, actor="bulk@lab") as s:
        for at in range(start, start + n, 1000):
            s.append([NewEvent(stream=f"note:{'x' * (i % 37)}{i}", event=Noted(text=f"n\t{i} " + "y" * (i % 50)))
                      for i in range(at, min(at + 1000, start + n))])
        s.actor = "ゲノム@lab"
        s.append([NewEvent(stream="s", event=Noted(text="wide actor, late in the log"))])


def _log_table(store_path: Path) -> tuple[str, int]:
    """`rgstore log`'s text (through a real file, not a buffer) and the peak Python heap it took."""
    import tracemalloc

    from rgstore_cli.main import cli as root

    out = store_path.parent / "log.txt"
    argv = ["--store", str(store_path), "log", "--since", "2000-01-01"]
    with open(out, "w", encoding="utf-8") as f:
        real, sys.stdout = sys.stdout, f
        tracemalloc.start()
        try:
            root.main(argv, prog_name="rgstore", standalone_mode=False)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            sys.stdout = real
    return out.read_text(encoding="utf-8"), peak


def test_log_table_is_emit_tables_bytes_and_its_memory_does_not_grow_with_the_log(  # type: ignore[no-untyped-def]
    store_path: Path, monkeypatch
) -> None:
    from click.testing import CliRunner
    from rgstore_cli import log
    from rgstore_cli.log import _HEADERS, _table_row
    from rgstore_cli.output import emit_table

    monkeypatch.setattr(log, "_HELD_ROWS", 5_000)  # held below it (one pass), streamed above (two passes)
    _grow_log(store_path, 4_000, 0)
    few_text, _ = _log_table(store_path)
    with Store.open(store_path, readonly=True) as s:
        few_rows = [_table_row(e) for e in s.events()]
    with CliRunner().isolation() as (held, _err, _):
        emit_table(few_rows, headers=_HEADERS)
    assert few_text == held.getvalue().decode() and len(few_text.splitlines()) == len(few_rows) + 1 > 4_000
    _grow_log(store_path, 16_000, 4_000)  # past the first pages, so that both runs read full pages
    small_text, small_peak = _log_table(store_path)
    _grow_log(store_path, 20_000, 20_000)
    text, peak = _log_table(store_path)
    with Store.open(store_path, readonly=True) as s:
        rows = [_table_row(e) for e in s.events()]
    with CliRunner().isolation() as (held, _err, _):
        emit_table(rows, headers=_HEADERS)  # what `log` printed when it held every row
    assert text == held.getvalue().decode() and len(text.splitlines()) == len(rows) + 1 > 40_000
    assert len(small_text.splitlines()) > 20_000
    # Holding 20k more rows took ~14 MB more; a page of envelopes (10,000 at most) and a block of rows do not grow.
    assert peak - small_peak < 3_000_000, (small_peak, peak)


class _Probe(msgspec.Struct, frozen=True):
    """Field types no event has yet (a bool is an int to isinstance, and JSON's true, not True)."""

    flag: bool
    n: int
    none: None = None
    items: list[Any] = []
    empty: dict[str, Any] = {}
    ratio: float = 0.0


def test_an_events_summary_names_each_field_and_its_shortened_value_as_json_for_what_is_not_text() -> None:
    from rgstore_cli.log import summary

    def field_by_field(event: object) -> str:
        def short(value: object) -> str:
            text = value if isinstance(value, str) else msgspec.json.encode(msgspec.to_builtins(value)).decode()
            return text if len(text) <= 40 else text[:37] + "..."

        return " ".join(f"{f}={short(getattr(event, f))}" for f in event.__struct_fields__)  # type: ignore[attr-defined]

    events = [
        AliasSet(namespace="refgenie", name="名前\t{0}", digest="d" * 41),
        Noted(text="{}", data={}), Noted(text="", data={"n": 1, "big": 2**70, "flag": True, "none": None}),
        RefpkgUpdated(name="p", files={}, metadata={"k": "v" * 50}, message="m", superseded=-(2**63)),
        RefpkgUpdated(name="p", metadata={}, message="%s"),
        _Probe(flag=True, n=0, none=None, items=[1, "a"], empty={}, ratio=0.5), _Probe(flag=False, n=-3),
    ]
    for event in events:
        assert summary(event) == field_by_field(event)
    assert summary(events[3]).endswith("superseded=-9223372036854775808")


def test_log_table_prints_the_events_it_measured_and_none_appended_meanwhile(store_path: Path) -> None:
    from rgstore_cli.log import _twice

    _grow_log(store_path, 30, 0)
    with Store.open(store_path, actor="late@lab") as s:
        rows = _twice(s, {"stream": "note:*"})
        measured = [row[0] for row in rows()]
        s.append([NewEvent(stream="note:late", event=Noted(text="after the measuring pass"))])
        printed = list(rows())
    assert [row[0] for row in printed] == measured == list(range(1, 31))
    assert all(len(row) == 6 for row in printed)


def test_a_store_left_without_its_log_takes_a_replay_with_its_rp_name_links_in_place(tmp_path: Path) -> None:
    from rgstore.replay import export_log
    from tests.refpkg_data import write_inputs

    inputs = write_inputs(tmp_path / "inputs")
    store = tmp_path / "store"
    with Store.open(store) as s:
        s.refpkgs.create("pkg", locus="L", files=[("tree", inputs["tree"])])
        assert s.refpkgs.resource_path("pkg", "tree").is_symlink()  # made store/names/
        export_log(s, tmp_path / "x.rglog")
    import shutil

    shutil.rmtree(store / "log")  # blobs/, refget/, cache/ and names/ stay: the store's own layout
    proc = run_rgstore("replay", str(tmp_path / "x.rglog"), "--store", str(store))
    assert proc.returncode == 0, proc.stderr.decode()
    with Store.open(store, readonly=True) as s:
        assert s.verify().ok


_LOW_MEMORY = """
import resource, sys
import gtars, gtars.refget, multiprocessing, rgstore_cli.main, rgstore_cli.genome, rgstore.fasta  # noqa: F401
import rgstore.genomes, rgstore.refgetstore  # noqa: F401
vm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmSize:")) * 1024
# 48 MiB: the middle of the band where this is the FASTA read's MemoryError (measured: below ~22 MiB the store's
# map does not fit; above ~100 MiB gtars gets to allocate and aborts the process), so other machines' baselines fit
resource.setrlimit(resource.RLIMIT_AS, (vm + (48 << 20), resource.RLIM_INFINITY))
sys.argv = ["rgstore", *sys.argv[1:]]
rgstore_cli.main.main()
"""


def test_a_command_that_runs_out_of_memory_is_one_line_and_records_nothing(tmp_path: Path) -> None:
    # A memory limit (ulimit -v) reached while validating a FASTA ended in a MemoryError traceback.
    fasta = tmp_path / "big.fa"
    fasta.write_text(">c1\n" + ("ACGTTGCAAC" * 6 + "\n") * 300_000)  # 18 MB: its 8 MiB reads outgrow the limit
    store_path = tmp_path / "store"
    proc = subprocess.run([sys.executable, "-c", _LOW_MEMORY, "--store", str(store_path), "genome", "init",
                           "--fasta", str(fasta), "--name", "big"], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1 and proc.stderr.startswith("error: out of memory: "), proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    with Store.open(store_path, readonly=True) as store:
        assert store.head()[0] == 0 and store.verify().ok


_NO_THREAD_STACK = """
import resource, sys, threading
import gtars, gtars.refget, multiprocessing, rgstore_cli.main, rgstore_cli.backup, rgstore.backup  # noqa: F401
vm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmSize:")) * 1024
threading.stack_size(256 << 20)  # a new thread's stack cannot be mapped under the limit; nothing else is starved
resource.setrlimit(resource.RLIMIT_AS, (vm + (64 << 20), resource.RLIM_INFINITY))
sys.argv = ["rgstore", *sys.argv[1:]]
rgstore_cli.main.main()
"""


def test_a_thread_that_cannot_start_under_a_memory_limit_is_the_out_of_memory_line_and_leaves_no_lock(
        tmp_path: Path) -> None:
    # backup's lock heartbeat thread failed to start with "RuntimeError: can't start new thread": a traceback,
    # and the RefgetStore writer lock left behind.
    store_path = tmp_path / "store"
    assert run_rgstore("--store", str(store_path), "demo").returncode == 0
    proc = subprocess.run([sys.executable, "-c", _NO_THREAD_STACK, "--store", str(store_path), "backup",
                           str(tmp_path / "copy")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stderr.startswith("error: out of memory: "), proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    assert not (store_path / "refget" / LOCK_NAME).exists()


_LOW_MEMORY_IMPORT = """
import resource, sys
import gtars, gtars.refget, multiprocessing, rgstore_cli.main, rgstore_cli.genome  # noqa: F401
import rgstore.genomes, rgstore.refgetstore  # noqa: F401
vm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmSize:")) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + (64 << 20), resource.RLIM_INFINITY))
sys.argv = ["rgstore", *sys.argv[1:]]
rgstore_cli.main.main()
"""


def test_a_gtars_thread_that_cannot_start_under_a_memory_limit_ends_in_one_line_naming_both_limits(tmp_path: Path) -> None:
    # gtars' import panics when its worker thread's stack cannot be mapped: pyo3's PanicException (a
    # BaseException) went past every handler as a 40-line traceback. Rust prints its own panic lines first.
    store_path = tmp_path / "store"
    assert run_rgstore("--store", str(store_path), "init").returncode == 0
    env = {**os.environ, "RUST_BACKTRACE": "0", "RUST_MIN_STACK": str(256 << 20)}  # no such stack fits the limit
    proc = subprocess.run([sys.executable, "-c", _LOW_MEMORY_IMPORT, "--store", str(store_path), "genome", "init",
                           "--fasta", str(REPO / "rgstore" / "data" / "tiny.fa"), "--name", "tiny"], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "failed to spawn thread" in proc.stderr  # the limit was reached where this test means it to be
    last = proc.stderr.splitlines()[-1]  # a thread is refused for memory or for RLIMIT_NPROC: both are named
    assert last.startswith("error: could not start a thread: ") and "ulimit -v" in last and "ulimit -u" in last, last
    with Store.open(store_path, readonly=True) as store:
        assert store.head()[0] == 0 and store.verify().ok

def test_a_read_whose_head_watcher_cannot_start_under_a_memory_limit_is_the_out_of_memory_line(tmp_path: Path) -> None:
    # getseq kept a watcher thread that never started; closing the store joined it: "RuntimeError: cannot join
    # thread before it is started", a traceback in place of the out-of-memory line.
    store_path = tmp_path / "store"
    assert run_rgstore("--store", str(store_path), "demo").returncode == 0
    proc = subprocess.run([sys.executable, "-c", _NO_THREAD_STACK, "--store", str(store_path), "getseq", "tiny",
                           "chr1:0-10"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stderr.startswith("error: out of memory: "), proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1 and proc.stdout == ""


_ROOM_MIB = """
import resource, sys
import gtars, gtars.refget, multiprocessing, rgstore_cli.main, rgstore_cli.log, rgstore.replay  # noqa: F401
vm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmSize:")) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + (int(sys.argv[1]) << 20), resource.RLIM_INFINITY))
sys.argv = ["rgstore", *sys.argv[2:]]
rgstore_cli.main.main()
"""


def test_an_lmdb_put_refused_for_memory_under_a_limit_is_the_out_of_memory_line_not_a_broken_store(
    tmp_path: Path,
) -> None:
    # Replaying a 32 MiB event: its put mallocs the value's pages, and a limit that left Python room for the
    # frame but not LMDB for those failed with lmdb.MemoryError ("mdb_cursor_put() ...: Cannot allocate memory"),
    # which the CLI called unusable LMDB files ("is --store an rgstore store?"). Measured here: 136-148 and
    # 164-184 MiB of room ended there; the scan spans the band so that other machines' baselines land in it.
    import base64

    with Store.open(tmp_path / "source") as s:
        s.append([NewEvent(stream="s", event=Noted(text=base64.b64encode(os.urandom(24 << 20)).decode()))])
        export_log(s, tmp_path / "big.rglog")
    lines: set[str] = set()
    for room in range(128, 200, 8):
        proc = subprocess.run([sys.executable, "-c", _ROOM_MIB, str(room), "replay", str(tmp_path / "big.rglog"),
                               "--store", str(tmp_path / f"r{room}")], cwd=REPO, capture_output=True, text=True,
                              timeout=120)
        assert "Traceback" not in proc.stderr and proc.stderr.count("\n") <= 1, proc.stderr
        if proc.returncode:
            lines.add(proc.stderr)
    assert lines and all("LMDB files cannot be used" not in line for line in lines), lines
    assert "error: out of memory: this process reached its memory limit" in "".join(lines)


_FEW_FILES = """
import os, resource, sys
import gtars, gtars.refget, rgstore_cli.main, rgstore_cli.genome, rgstore.genomes  # noqa: F401
# The limit counts from the descriptors this interpreter holds once imported: a few more than those.
resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + int(sys.argv[1]),) * 2)
sys.argv = ["rgstore", *sys.argv[2:]]
rgstore_cli.main.main()
"""


@pytest.mark.parametrize("spare", [0, 1, 2])
def test_a_command_out_of_file_descriptors_is_the_too_many_open_files_line_naming_the_limit(
        tmp_path: Path, spare: int) -> None:
    # `ulimit -n 8`: "Too many open files: STORE/.import.lock" or the store's "LMDB files cannot be used (...);
    # is this an rgstore store?", naming a file or blaming the store where the limit is the cause.
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs Linux /proc/self/fd")
    store_path = tmp_path / "store"
    assert run_rgstore("--store", str(store_path), "init").returncode == 0
    proc = subprocess.run([sys.executable, "-c", _FEW_FILES, str(spare), "--store", str(store_path), "genome", "init",
                           "--fasta", str(REPO / "rgstore" / "data" / "tiny.fa"), "--name", "tiny"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    limit = re.fullmatch(r"error: too many open files: this process reached its limit of (\d+) \(ulimit -n\); "
                         r"raise the limit and run the command again\n", proc.stderr)
    assert proc.returncode == 1 and limit is not None, proc.stderr
    with Store.open(store_path, readonly=True) as store:
        assert store.head()[0] == 0  # nothing recorded


def test_genome_init_under_every_limit_too_low_for_it_blames_the_limit_never_the_fasta_or_the_store(
        tmp_path: Path) -> None:
    # With a few spare descriptors gtars itself fails without a reason: "Failed to read rgstore.json" (the
    # store blamed) or "FASTA: the RefgetStore import failed: Error importing FASTA: creating temp file in ..."
    # (the FASTA blamed). Each limit from none spare up to the first that suffices is the one line.
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs Linux /proc/self/fd")
    store_path = tmp_path / "store"
    assert run_rgstore("--store", str(store_path), "init").returncode == 0
    refused: list[int] = []
    for spare in range(32):
        proc = subprocess.run([sys.executable, "-c", _FEW_FILES, str(spare), "--store", str(store_path), "genome",
                               "init", "--fasta", str(REPO / "rgstore" / "data" / "tiny.fa"), "--name", "tiny"],
                              cwd=REPO, capture_output=True, text=True, timeout=120)
        if proc.returncode == 0:
            break
        assert re.fullmatch(r"error: too many open files: this process reached its limit of \d+ \(ulimit -n\); "
                            r"raise the limit and run the command again\n", proc.stderr), (spare, proc.stderr)
        refused.append(spare)
    assert proc.returncode == 0 and len(refused) >= 3, (refused, proc.stderr)  # up to gtars, which needs a few
    with Store.open(store_path, readonly=True) as store:
        assert len(store.genomes.list()) == 1  # and the limit that suffices records the genome

"""Claims about the CLI's shared text rendering (rgstore_cli.output)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from rgstore_cli.output import emit_table


def _printed(rows: list[list[object]], headers: list[str] | None = None) -> list[str]:
    @click.command()
    def show() -> None:
        emit_table(rows, headers)

    result = CliRunner().invoke(show)
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def test_a_table_of_many_thousand_rows_prints_each_row_once_in_order_aligned_across_the_whole_table() -> None:
    rows: list[list[object]] = [[f"scaffold_{i}", i, "x"] for i in range(5000)]
    rows[4999][0] = "a-much-longer-name-in-the-last-row"  # the widest cell comes last
    lines = _printed(rows, ["NAME", "N", "C"])
    assert len(lines) == 5001 and lines[0].startswith("NAME")
    assert [line.split()[1] for line in lines[1:]] == [str(i) for i in range(5000)]
    second_column_starts = {len(line) - len(line.split(None, 1)[1]) for line in lines}
    assert second_column_starts == {len("a-much-longer-name-in-the-last-row") + 2}


def test_an_empty_table_prints_nothing_and_headers_alone_print_one_line() -> None:
    assert _printed([]) == []
    assert _printed([], ["NAME", "DIGEST"]) == ["NAME  DIGEST"]


# -- what scripts see: JSON encoding, locales, help width, empty lists ----------------------------------------


def test_json_is_written_as_utf8_after_earlier_text_even_when_stdout_is_ascii(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import io
    import json
    import sys

    from rgstore_cli.output import emit_json, emit_json_lines

    raw = io.BytesIO()
    ascii_stdout = io.TextIOWrapper(raw, encoding="ascii", errors="strict", write_through=False)
    monkeypatch.setattr(sys, "stdout", ascii_stdout)
    ascii_stdout.write("first\n")  # buffered text must not end up after the JSON
    emit_json({"name": "café"})
    emit_json_lines([{"name": "xゲノム"}, {"n": 2}])
    ascii_stdout.flush()
    lines = raw.getvalue().decode("utf-8").splitlines()
    assert lines[0] == "first"
    assert [json.loads(line) for line in lines[1:]] == [{"name": "café"}, {"name": "xゲノム"}, {"n": 2}]


def test_non_ascii_names_print_in_a_latin1_or_ascii_locale_without_a_traceback(tmp_path: Path) -> None:
    import json

    from tests.conftest import run_rgstore

    store = str(tmp_path / "s")
    fasta = tmp_path / "u.fa"
    fasta.write_text(">chré1 ünïcode header\nACGTACGTNN\n")
    assert run_rgstore("--store", store, "genome", "init", "--fasta", str(fasta), "--name", "café").returncode == 0
    assert run_rgstore("--store", store, "alias", "set", "ns:xゲノム", "--",
                       json.loads(run_rgstore("--store", store, "genome", "list", "--json").stdout)[0]["digest"]
                       ).returncode == 0
    latin1 = {"PYTHONIOENCODING": "latin-1"}
    table = run_rgstore("--store", store, "alias", "list", env=latin1)
    assert table.returncode == 0 and table.stderr == b"", table.stderr
    assert b"x\\u30b2\\u30ce\\u30e0" in table.stdout and "café".encode("latin-1") in table.stdout
    listed = run_rgstore("--store", store, "alias", "list", "--json", env=latin1)
    assert listed.returncode == 0 and {a["name"] for a in json.loads(listed.stdout.decode("utf-8"))} == {"café", "xゲノム"}
    events = run_rgstore("--store", store, "log", "--json", env={"PYTHONUTF8": "0", "LC_ALL": "C"})
    assert events.returncode == 0 and "chré1" in events.stdout.decode("utf-8")
    # Without UTF-8 mode an ASCII locale hands `café` over as surrogates: one line and exit 1, not a traceback.
    show = run_rgstore("--store", store, "genome", "show", "café", env={"PYTHONUTF8": "0", "LC_ALL": "C"})
    assert show.returncode == 1 and b"Traceback" not in show.stderr
    assert show.stderr.decode().startswith("error: ") and "UTF-8 locale" in show.stderr.decode()


def test_an_argument_holding_bytes_that_are_not_utf8_names_those_bytes_and_no_locale_fix(tmp_path: Path) -> None:
    # Under a UTF-8 locale no other locale helps: the message said "run with a UTF-8 locale" regardless.
    import os

    from tests.conftest import run_rgstore

    store = str(tmp_path / "s")
    assert run_rgstore("--store", store, "init").returncode == 0
    name = os.fsdecode(b"x\xff")  # the byte as a lone surrogate, as a UTF-8 locale hands it over
    result = run_rgstore("--store", store, "alias", "set", name, "1oW_KyiLfAlkb6jnrBLmsr9ba-v2kxxq",
                         env={"LC_ALL": "C.UTF-8"})
    err = result.stderr.decode()
    assert result.returncode == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert "bytes \\xff" in err and "valid UTF-8" in err and "locale" not in err


def test_json_output_naming_a_path_whose_bytes_are_not_utf8_prints_them_escaped(capfdbinary) -> None:  # type: ignore[no-untyped-def]
    # `refpkg export p DIR --json` wrote the export, then failed printing DIR (`\xff` in its name) with exit 1.
    import json
    import os

    from rgstore_cli.output import emit_json

    emit_json({"path": os.fsdecode(b"/tmp/out\xff"), "files": [os.fsdecode(b"a\xe9.nwk")], "n": 1})
    printed = json.loads(capfdbinary.readouterr().out)
    assert printed == {"path": "/tmp/out\\xff", "files": ["a\\xe9.nwk"], "n": 1}


def test_every_commands_help_has_an_example_and_fits_80_columns() -> None:
    from rgstore_cli.main import cli as root

    ctx = click.Context(root)
    paths: list[list[str]] = []

    def walk(command: click.Command, path: list[str]) -> None:
        paths.append(path)
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None
                walk(sub, [*path, name])

    walk(root, [])
    runner = CliRunner()
    for path in paths:
        result = runner.invoke(root, [*path, "--help"], terminal_width=80)
        assert result.exit_code == 0 and "Example:" in result.output, path
        wide = [line for line in result.output.splitlines() if len(line) > 80]
        assert not wide, (path, wide)


def test_an_empty_genome_list_prints_the_header_on_stdout_and_the_hint_on_stderr(tmp_path: Path) -> None:
    from tests.conftest import run_rgstore

    store = str(tmp_path / "s")
    assert run_rgstore("--store", store, "init").returncode == 0
    listed = run_rgstore("--store", store, "genome", "list")
    assert listed.returncode == 0
    assert listed.stdout.decode().splitlines() == ["NAMES  DIGEST  SEQS  BP  DESCRIPTION"]
    assert b"rgstore genome init" in listed.stderr


def test_a_closed_stdout_is_treated_as_dev_null_not_a_traceback_or_a_reused_descriptor(tmp_path: Path) -> None:
    """`rgstore ... >&-` (a batch job's closed stdout): the output is dropped, errors still reach stderr."""
    import subprocess
    import sys

    from tests.conftest import REPO, run_rgstore

    store = str(tmp_path / "s")

    def closed_stdout(*args: str) -> subprocess.CompletedProcess[bytes]:
        # sh closes fd 1 before exec: Python then starts with no stdout at all.
        return subprocess.run(["sh", "-c", 'exec "$@" >&-', "sh", sys.executable, "-m", "rgstore_cli", *args],
                              cwd=REPO, capture_output=True, timeout=120)

    demo = closed_stdout("--store", store, "demo")  # writes the store and prints while fd 1 is closed
    assert demo.returncode == 0 and b"Traceback" not in demo.stderr, demo.stderr
    listed = closed_stdout("--store", store, "genome", "list")
    assert listed.returncode == 0 and listed.stderr == b""
    missing = closed_stdout("--store", store, "getseq", "tiny", "nosuchseq")
    assert missing.returncode == 1 and missing.stderr.decode().startswith("error: ")
    assert missing.stderr.decode().count("\n") == 1
    verified = run_rgstore("--store", store, "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


# -- streamed listings print what the whole list would --------------------------------------------------------


def _bytes_of(emit: Callable[[], None]) -> bytes:
    @click.command()
    def show() -> None:
        emit()

    result = CliRunner().invoke(show)
    assert result.exit_code == 0, result.output
    return result.stdout_bytes


def test_a_streamed_table_prints_the_bytes_of_the_whole_table_read_twice_never_held() -> None:
    from rgstore_cli.output import emit_table_stream

    rows: list[list[object]] = [[f"scaffold_{i}", i, "x"] for i in range(5000)]
    rows[4999][0] = "名前-wide-and-last"  # the widest cell, in terminal columns, comes last
    rows[7][2] = "tab\there"  # shown escaped, and measured as shown
    reads: list[int] = []

    def read() -> Iterator[list[object]]:
        reads.append(1)
        yield from rows

    for table in (rows, rows[:1], []):
        whole = _bytes_of(lambda t=table: emit_table(t, ["NAME", "N", "C"]))  # type: ignore[misc]
        assert _bytes_of(lambda t=table: emit_table_stream(lambda: iter(t), ["NAME", "N", "C"])) == whole  # type: ignore[misc]
    _bytes_of(lambda: emit_table_stream(read, ["NAME", "N", "C"]))
    assert len(reads) == 2


def _cell_by_cell(rows: list[list[object]], headers: list[str]) -> bytes:
    """The table as rendered one cell at a time: cell() each, width() each, padded by terminal columns."""
    from rgstore_cli.output import cell, width

    table = [list(headers)] + [[cell(c) for c in row] for row in rows]
    widths = [0] * max(map(len, table))
    for row in table:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], width(c))
    return "".join("  ".join(c + " " * (widths[i] - width(c)) for i, c in enumerate(row)).rstrip() + "\n"
                   for row in table).encode()


def test_tables_print_the_bytes_of_cell_by_cell_rendering_on_wide_combining_and_control_characters() -> None:
    # The fast paths (whole-column escaping and measuring, %-padding of ASCII rows) must not move a byte.
    from rgstore_cli.output import emit_table_stream

    tricky: list[list[object]] = [
        ["名前", 1, "a\tb"], ["e\u0301e\u0301", 22, "x\ny"], ["plain", 333, "trailing  "], ["\x1b[31m", -1, ""],
        ["ｶﾀｶﾅ", None, "全角\u3000"], ["%s %d {} {0}", 4.5, "%"], ["\u2028\x7f\u200b", True, "é"],
        ["ascii", 7, "ascii"],
    ]
    ascii_rows: list[list[object]] = [[f"name_{i}", i, "x" * (i % 9)] for i in range(3000)]
    late_wide = ascii_rows[:2500] + [["ゲノム-in-a-later-block", 0, "\t"]] + ascii_rows[2500:]
    for rows in (tricky, ascii_rows, late_wide, [r for r in tricky if r[2] != ""] * 300):
        expected = _cell_by_cell(rows, ["NAME", "N", "TEXT"])
        assert _bytes_of(lambda r=rows: emit_table(r, ["NAME", "N", "TEXT"])) == expected  # type: ignore[misc]
        assert _bytes_of(lambda r=rows: emit_table_stream(lambda: iter(r), ["NAME", "N", "TEXT"])) == expected  # type: ignore[misc]
    ragged: list[list[object]] = [["a"], ["名前", "b\tc", "d"], [], ["e", "f"]]
    assert _bytes_of(lambda: emit_table(ragged, ["X", "Y"])) == _cell_by_cell(ragged, ["X", "Y"])


def test_when_prints_strftimes_bytes_for_every_kind_of_time() -> None:
    from datetime import datetime, timedelta, timezone

    from rgstore_cli.output import when

    def by_strftime(moment: datetime) -> str:
        return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    utc = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)
    moments = [utc, utc, utc.replace(microsecond=0), utc + timedelta(seconds=1), utc, datetime(999, 12, 31, tzinfo=timezone.utc),
               datetime(1000, 1, 1, tzinfo=timezone.utc), datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc),
               utc.astimezone(timezone(timedelta(hours=5, minutes=30))), utc]
    for moment in moments:
        assert when(moment) == by_strftime(moment)
    assert when(utc.replace(tzinfo=None)) == when(utc.timestamp()) == when(utc.isoformat()) == "2026-01-02T03:04:05Z"


def test_a_streamed_json_array_prints_the_bytes_of_the_whole_list() -> None:
    import os

    from rgstore_cli.output import emit_json, emit_json_array

    items = [{"name": f"n{i}", "path": os.fsdecode(b"a\xff") if i == 3 else "ok", "n": i} for i in range(5000)]
    for given in (items, items[:1], []):
        assert _bytes_of(lambda g=given: emit_json_array(iter(g))) == _bytes_of(lambda g=given: emit_json(g))  # type: ignore[misc]


@pytest.mark.parametrize(("total", "unit", "scaled"), [(3_123_783_722, "bp", "/3.12G"), (2_470_000, "feature", "/2.47M"),
                                                    (1_000_000, "ev", "/1.00M")])
def test_a_residue_bar_on_a_terminal_scales_its_counts_as_a_byte_bar_does(
    monkeypatch: pytest.MonkeyPatch, total: int, unit: str, scaled: str,
) -> None:
    # A human genome's export showed "201323520/3123783722 [.., 5828856.35bp/s]": unreadable at a glance;
    # so were a human GTF's planning bar (features) and a million-event replay.
    import io
    import sys

    from rgstore.progress import terminal_progress

    class _Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = _Terminal()
    monkeypatch.setattr(sys, "stderr", screen)
    bar = terminal_progress("export", total=total, unit=unit)
    shown = screen.getvalue()
    bar.close()
    assert scaled in shown and str(total) not in shown


def test_counts_take_the_noun_in_their_number(tmp_path: Path) -> None:
    from rgstore_cli.output import counted

    assert [counted(0, "blob"), counted(1, "cache file"), counted(1234, "sequence")] == [
        "0 blobs", "1 cache file", "1,234 sequences"]
    from rgstore.events import Noted
    from rgstore.log import NewEvent
    from rgstore.store import Store
    from tests.conftest import run_rgstore

    with Store.open(tmp_path / "s") as store:
        store.append([NewEvent(stream="s", event=Noted(text="one"))])
    done = run_rgstore("--store", str(tmp_path / "s"), "verify")
    assert done.stdout.decode() == "ok: 1 event, 0 blobs, 0 cache files, 0 sequences checked\n", done.stdout


def _one_event(root: Path) -> Path:
    """A store whose log holds one event on one stream."""
    from rgstore.events import Noted
    from rgstore.log import NewEvent
    from rgstore.store import Store

    with Store.open(root / "s") as store:
        store.append([NewEvent(stream="s", event=Noted(text="one"))])
    return root / "s"


def _one_file_package(root: Path) -> Path:
    """A store holding one refpkg of one file (its tree): one blob."""
    from tests.server_fixture import rgstore_cli

    (root / "tree.nwk").write_text("(a:0.1,b:0.2);\n")
    rgstore_cli(root / "p", "refpkg", "create", "pkg", "-l", "16S", "-t", str(root / "tree.nwk"))
    return root / "p"


def _one_event_published(root: Path) -> Path:
    """An empty mirror store beside ``root/pub``, a published directory of one event."""
    from tests.server_fixture import rgstore_cli

    rgstore_cli(_one_event(root), "log", "publish", str(root / "pub"))
    return root / "mirror"


@pytest.mark.parametrize(("make", "args", "said"), [
    (_one_event, ["status"], ", 1 stream\n"),
    (_one_event, ["rebuild"], " from 1 event\n"),
    (_one_event_published, ["mirror", "pull", "{root}/pub"], "pulled 1 event from "),
    (_one_file_package, ["status"], " (1 blob)\n"),
    (_one_file_package, ["backup", "{root}/bk"], ": 1 blob, "),
    (_one_file_package, ["refpkg", "export", "pkg", "{root}/ex"], " (1 file holding 15 bytes)\n"),
    (_one_file_package, ["refpkg", "remove", "pkg"], " (1 file, 1 retained step); "),
], ids=["status-streams", "rebuild", "mirror-pull", "status-blobs", "backup", "refpkg-export", "refpkg-remove"])
def test_a_count_of_one_takes_the_singular_in_command_summaries(
        tmp_path: Path, make: Callable[[Path], Path], args: list[str], said: str) -> None:
    from tests.server_fixture import rgstore_cli

    store = make(tmp_path)
    out = rgstore_cli(store, *(a.format(root=tmp_path) for a in args))
    assert said in out, out

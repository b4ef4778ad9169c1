"""Claims about the CLI's shared text rendering (rgstore_cli.output)."""

from __future__ import annotations

import click
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

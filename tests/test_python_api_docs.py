"""Claims about the Python API docs: every ```python block of docs/python-api.md and the README runs as written."""

from __future__ import annotations

import gzip
import random
import re
from pathlib import Path

import pytest

from tests.conftest import REPO

_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(path: Path) -> list[str]:
    """The ```python blocks of a Markdown file, in order."""
    return _BLOCK.findall(path.read_text(encoding="utf-8"))


def run_blocks(path: Path) -> dict[str, object]:
    """Execute a document's blocks in order in one namespace, as a notebook would; returns the namespace."""
    namespace: dict[str, object] = {"__name__": "__docs__"}
    blocks = python_blocks(path)
    assert blocks, f"{path.name} has no python blocks"
    for number, block in enumerate(blocks, 1):
        exec(compile(block, f"{path.name}[block {number}]", "exec"), namespace)  # noqa: S102 - our own docs
    return namespace


def test_every_python_block_of_the_api_reference_runs_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace = run_blocks(REPO / "docs" / "python-api.md")
    store = namespace["store"]
    assert store.environment._closed  # type: ignore[attr-defined]  # the last block closes it
    assert (tmp_path / "pystore-backup" / "log" / "data.mdb").is_file()


def test_the_readme_python_block_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    rng = random.Random(7)  # stands in for hg38.fa.gz: a chr1 past 10,060 and a chrM
    records = {"chr1": 12_000, "chrM": 16_569}
    text = "".join(f">{name}\n" + "".join(rng.choice("ACGT") for _ in range(size)) + "\n"
                   for name, size in records.items())
    (tmp_path / "hg38.fa.gz").write_bytes(gzip.compress(text.encode()))
    run_blocks(REPO / "README.md")
    assert (tmp_path / "pystore" / "log" / "data.mdb").is_file()


def test_the_readme_links_the_api_reference_from_its_python_section() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Python first", 1)[1].split("\n## ", 1)[0]
    assert "docs/python-api.md" in section

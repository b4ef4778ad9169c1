"""Shared fixtures: a fresh store on real LMDB, and a way to run the real CLI."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from rgstore.store import Store

# A test run started in the background (`&` in a script, nohup) inherits SIGINT ignored and would pass
# that on to every CLI it starts, which then rightly keeps ignoring it: the Ctrl-C tests would wait for a
# signal that never lands. A shell starts a foreground command with SIGINT at its default; so do we (a
# handled signal is reset to its default in an exec'd child).
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    """Where a test's store lives (not created until opened)."""
    return tmp_path / "store"


@pytest.fixture(scope="session")
def empty_refget(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty RefgetStore exactly as `Store.open` creates one, made once per session for tests to copy."""
    from rgstore.refgetstore import create_refget

    path = tmp_path_factory.mktemp("empty-refget") / "refget"
    create_refget(path)
    return path


def seeded_store_path(empty_refget: Path, root: Path) -> Path:
    """``root/s`` holding a copy of ``empty_refget``: `Store.open` there creates everything else as usual.

    gtars takes ~0.1 s to write an empty RefgetStore (most of a fresh `Store.open`); copying one takes ~2 ms.
    Only the RefgetStore is copied: each store still gets its own log, log id and views.
    """
    path = root / "s"
    shutil.copytree(empty_refget, path / "refget")
    return path


@pytest.fixture
def store(store_path: Path, empty_refget: Path) -> Iterator[Store]:
    """A fresh, writable store; closed after the test."""
    shutil.copytree(empty_refget, store_path / "refget")  # what Store.open would create, without gtars' ~0.1 s
    s = Store.open(store_path, actor="tester@test")
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def cli(store_path: Path):  # type: ignore[no-untyped-def]
    """Invoke the click CLI in-process against the test's store: cli("log", "--json")."""
    from rgstore_cli.main import cli as root

    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(root, ["--store", str(store_path), "--actor", "tester@test", *args],
                             input=input, catch_exceptions=False)

    return invoke


def run_rgstore(*args: str, env: dict[str, str] | None = None, timeout: float = 120,
                input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run the real `rgstore` entry point in a subprocess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "rgstore_cli", *args], cwd=REPO, env=full_env,
                          capture_output=True, timeout=timeout, input=input)


@pytest.fixture
def rgstore_proc():  # type: ignore[no-untyped-def]
    """The `run_rgstore` helper as a fixture."""
    return run_rgstore


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both upstream cache layouts (NCBI and Ensembl), written once per test module."""
    from tests.upstream_fixture import upstream_tree

    root = tmp_path_factory.mktemp("upstream")
    upstream_tree(root)
    return root


@pytest.fixture
def server(tree: Path):  # type: ignore[no-untyped-def]
    """A loopback upstream server over ``tree`` for one test."""
    from tests.upstream_fixture import UpstreamServer

    with UpstreamServer(tree) as srv:
        yield srv

"""Claims about the layering: the engine never imports the shells, and the CLI starts lean."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print('\\n'.join(sys.modules))"],
                         cwd=REPO, capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_the_engine_never_imports_click_fastapi_or_uvicorn() -> None:
    import pkgutil

    import rgstore

    names = [f"rgstore.{m.name}" for m in pkgutil.walk_packages(rgstore.__path__, "") ]
    code = "\n".join(f"import {n}" for n in names)
    loaded = _modules_after(code)
    assert {"click", "fastapi", "uvicorn", "pydantic", "starlette"}.isdisjoint(loaded)


def test_cli_start_up_does_not_import_the_server_stack() -> None:
    code = "import sys; sys.argv=['rgstore','--help']\nfrom rgstore_cli.main import cli\ntry:\n cli(prog_name='rgstore')\nexcept SystemExit:\n pass"
    loaded = _modules_after(code)
    assert {"fastapi", "uvicorn", "pydantic", "starlette", "httpx"}.isdisjoint(loaded)


def test_every_cli_command_has_help_with_an_example() -> None:
    import click
    from rgstore_cli.main import LAZY_COMMANDS, cli

    ctx = click.Context(cli)
    missing = []

    def walk(cmd: click.Command, path: str) -> None:
        if not cmd.help or "Example:" not in cmd.help:
            missing.append(path)
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                assert sub is not None
                walk(sub, f"{path} {name}")

    for name in LAZY_COMMANDS:
        cmd = cli.get_command(ctx, name)
        assert cmd is not None, name
        walk(cmd, name)
    assert missing == []


def test_every_cli_command_takes_store() -> None:
    import click
    from rgstore_cli.main import LAZY_COMMANDS, cli

    ctx = click.Context(cli)
    missing = []

    def walk(cmd: click.Command, path: str) -> None:
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                assert sub is not None
                walk(sub, f"{path} {name}")
        elif not any("--store" in p.opts for p in cmd.params):
            missing.append(path)

    for name in LAZY_COMMANDS:
        cmd = cli.get_command(ctx, name)
        assert cmd is not None
        walk(cmd, name)
    assert missing == []


def test_rgstore_help_lists_every_command_with_its_own_one_line_help_without_importing_it() -> None:
    import click
    from rgstore_cli.main import LAZY_COMMANDS, SHORT_HELP, cli

    ctx = click.Context(cli)
    assert set(SHORT_HELP) == set(LAZY_COMMANDS)
    for name in LAZY_COMMANDS:
        cmd = cli.get_command(ctx, name)
        assert cmd is not None
        for limit in (45, 60, 10_000):
            assert click.Command(name, help=SHORT_HELP[name]).get_short_help_str(limit) == cmd.get_short_help_str(limit)
    code = "import sys; sys.argv=['rgstore','--help']\nfrom rgstore_cli.main import cli\ntry:\n cli(prog_name='rgstore')\nexcept SystemExit:\n pass"
    loaded = _modules_after(code)
    assert not {f"rgstore_cli.{m.split(':')[0].split('.')[1]}" for m in LAZY_COMMANDS.values()} & loaded


def test_rgstore_getseq_loads_no_other_command_module_and_none_of_the_writers_stdlib(tmp_path: Path) -> None:
    # A read's start-up is its latency (docs/benchmarks.md, session 19): hashing, temp files, host names,
    # child processes and GTF parsing are for writers. Measured against what click, lmdb, msgspec, zstandard
    # and gtars load themselves, so a dependency's own imports do not count against rgstore.
    from rgstore_cli.main import LAZY_COMMANDS

    from rgstore.store import Store

    tiny = REPO / "rgstore" / "data" / "tiny.fa"
    with Store.open(tmp_path / "s", actor="tester@test") as store:
        store.genomes.init(tiny, ["tiny"])
    deps = _modules_after("import click, lmdb, msgspec, zstandard, gtars.refget, platformdirs")
    code = ("import sys; sys.argv = ['rgstore', '--store', sys.argv[1], 'getseq', 'tiny', 'chr1:0-4']\n"
            "from rgstore_cli.main import main\ntry:\n main()\nexcept SystemExit:\n pass")
    out = subprocess.run([sys.executable, "-c", code + "\nprint('\\n'.join(sys.modules))", str(tmp_path / "s")],
                         cwd=REPO, capture_output=True, text=True, check=True)
    lines = out.stdout.split()
    assert lines[0] == "ATTT"  # the read itself ran
    loaded = set(lines[1:]) - deps
    commands = {f"rgstore_cli.{m.split(':')[0].split('.')[1]}" for m in LAZY_COMMANDS.values()} - {"rgstore_cli.getseq"}
    assert not commands & loaded, sorted(commands & loaded)
    writers = {"hashlib", "_hashlib", "hmac", "secrets", "tempfile", "shutil", "socket", "getpass", "subprocess",
               "json", "random", "rgstore.gtf"}
    assert not writers & loaded, sorted(writers & loaded)


def test_the_distribution_installs_only_rgstore_named_top_level_packages() -> None:
    import tomllib

    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = config["tool"]["setuptools"]["packages"]
    assert {p.split(".")[0] for p in packages} == {"rgstore", "rgstore_cli", "rgstore_api"}
    assert config["tool"]["setuptools"]["package-dir"] == {"rgstore_cli": "cli", "rgstore_api": "api"}
    assert config["project"]["scripts"]["rgstore"] == "rgstore_cli.entry:main"
    import rgstore_api.app
    import rgstore_cli.main

    assert {rgstore_cli.main.__file__, rgstore_api.app.__file__} == {str(REPO / "cli" / "main.py"),
                                                                   str(REPO / "api" / "app.py")}


def test_every_package_directory_of_the_repo_is_listed_for_the_wheel() -> None:
    # pyproject names its packages one by one (package-dir renames the shells), so a new sub-package
    # that is not added there would import in the repo and be missing from the installed wheel.
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join((installed, *init.parent.relative_to(REPO / top).parts))
        for top, installed in (("rgstore", "rgstore"), ("cli", "rgstore_cli"), ("api", "rgstore_api"))
        for init in (REPO / top).rglob("__init__.py")
    }
    assert found <= listed, sorted(found - listed)


def test_the_sdist_carries_the_tests_helpers_data_and_the_tools_they_import(tmp_path: Path) -> None:
    # README command (2) run from an unpacked sdist needs conftest, the helper modules, tests/data and
    # tools/ too; without MANIFEST.in setuptools ships only tests/test_*.py and 48 of them fail to import.
    pytest.importorskip("setuptools")
    import shutil
    import tarfile

    caches = shutil.ignore_patterns("__pycache__", "*.py[cod]", ".hypothesis", ".pytest_cache")
    src = tmp_path / "src"
    for top in ("rgstore", "cli", "api", "tests", "tools", "docs", ".ci"):
        shutil.copytree(REPO / top, src / top, ignore=caches)
    for name in ("pyproject.toml", "README.md", "MANIFEST.in"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, src / name)
    build = "import sys; from setuptools import build_meta; print(build_meta.build_sdist(sys.argv[1]))"
    out = subprocess.run([sys.executable, "-c", build, str(tmp_path / "dist")], cwd=src,
                         capture_output=True, text=True, check=True)
    with tarfile.open(tmp_path / "dist" / out.stdout.split()[-1]) as sdist:
        shipped = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    needed = {str(p.relative_to(src)) for top in ("tests", "tools") for p in (src / top).rglob("*") if p.is_file()}
    assert needed <= shipped, sorted(needed - shipped)
    assert {".ci/run", "README.md", "docs/architecture.md"} <= shipped
    assert not [name for name in shipped if "__pycache__" in name or name.endswith(".pyc")]


# Newest releases measured (session 6, fresh venvs at the floors) to break what rgstore documents.
_BROKEN_RELEASES = {
    "lmdb": "1.8.1",  # a second open of one environment in a process succeeds: Store.open's refusal and fork release go
    "click": "8.1.8",  # a bare group exits 0, and CliRunner mixes stderr into stdout
    "uvicorn": "0.50.2",  # Multiprocess still requires `target`: `rgstore serve --workers 2` dies with a TypeError
}


def test_the_dependency_floors_admit_no_release_the_code_is_known_to_break_on() -> None:
    import tomllib

    from packaging.requirements import Requirement

    floors = {(req := Requirement(line)).name: req.specifier
              for line in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]}
    admitted = {name: version for name, version in _BROKEN_RELEASES.items() if floors[name].contains(version)}
    assert not admitted, admitted


def test_importing_rgstore_off_posix_says_why_in_one_line() -> None:
    # Windows has no fcntl: the import names the platforms instead of a missing module deep inside.
    out = subprocess.run([sys.executable, "-c", "import os; os.name = 'nt'; import rgstore"],
                         cwd=REPO, capture_output=True, text=True)
    assert out.returncode != 0
    assert out.stderr.strip().splitlines()[-1] == (
        "ImportError: rgstore runs on Linux and macOS only: it needs POSIX file locks (flock) and LMDB's sparse data files"
    )

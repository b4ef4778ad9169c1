"""Claims about the layering: the engine never imports the shells, and the CLI starts lean."""

from __future__ import annotations

import subprocess
import sys

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


def test_the_distribution_installs_only_rgstore_named_top_level_packages() -> None:
    import tomllib

    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = config["tool"]["setuptools"]["packages"]
    assert {p.split(".")[0] for p in packages} == {"rgstore", "rgstore_cli", "rgstore_api"}
    assert config["tool"]["setuptools"]["package-dir"] == {"rgstore_cli": "cli", "rgstore_api": "api"}
    assert config["project"]["scripts"]["rgstore"] == "rgstore_cli.main:main"
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

"""File names as events record them: UTF-8 text of the bytes on disk, whatever the locale."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rgstore.errors import InvalidInputError
from rgstore.pathtext import given_path, path_text, user_path
from rgstore.store import Store

from .locales import latin1_env


def test_a_utf8_name_reads_as_itself_and_a_byte_that_is_not_utf8_as_an_escape() -> None:
    assert path_text(Path(os.fsdecode(b"/data/g\xc3\xa9nome.fa"))) == "/data/génome.fa"
    assert path_text(os.fsdecode(b"/data/g\xe9nome.fa")) == "/data/g\\xe9nome.fa"
    assert path_text(os.fsdecode(b"/data/g\xe9nome.fa")).encode("utf-8")  # storable: no lone surrogate


def test_the_same_name_gives_the_same_text_under_a_latin1_locale(tmp_path: Path) -> None:
    env = {**os.environ, **latin1_env(tmp_path)}
    code = "import os, sys; from rgstore.pathtext import path_text; sys.stdout.buffer.write(path_text(os.fsdecode(b'/d/g\\xc3\\xa9n\\xff.fa')).encode())"
    shown = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.decode("utf-8") == path_text(os.fsdecode(b"/d/g\xc3\xa9n\xff.fa")) == "/d/gén\\xff.fa"


def test_a_tilde_expands_to_the_home_directory_and_an_unknown_users_is_invalid_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert user_path("~/st") == tmp_path / "st"
    assert user_path("/a/~b") == Path("/a/~b")
    with pytest.raises(InvalidInputError, match=r"^~no-such-user-rgstore/st: cannot expand '~no-such-user-rgstore'"):
        user_path("~no-such-user-rgstore/st")
    with pytest.raises(InvalidInputError, match="cannot expand"):  # not RuntimeError from pathlib
        Store.open("~no-such-user-rgstore/st")


def test_given_path_refuses_an_empty_str_by_name_and_keeps_dot_which_a_path_cannot_tell_from_empty() -> None:
    with pytest.raises(InvalidInputError, match="^empty path for the BED file; name one$"):
        given_path("", "BED file")
    assert Path("") == Path(".")  # why only a str can be caught: an output's caller refuses a directory instead
    assert given_path(Path(""), "publish directory") == Path(".")
    assert given_path("out.fa", "FASTA file") == Path("out.fa")

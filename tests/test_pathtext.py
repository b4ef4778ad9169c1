"""File names as events record them: UTF-8 text of the bytes on disk, whatever the locale."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from rgstore.pathtext import path_text

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

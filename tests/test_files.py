"""Claims about rgstore.files helpers that permissions decide (run as root, they switch to uid nobody)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rgstore.files import remove_tree
from tests.forked import in_forked_child

NOBODY = 65534


@pytest.fixture
def lab() -> Iterator[Path]:
    """A directory uid nobody can reach (pytest's tmp_path is private to the user running the tests)."""
    path = Path(tempfile.mkdtemp(prefix="rgstore-files-"))
    os.chmod(path, 0o711)
    try:
        yield path
    finally:
        for d, _, _ in os.walk(path):
            os.chmod(d, 0o755)
        shutil.rmtree(path, ignore_errors=True)


def as_unprivileged(work: Callable[[], str]) -> str:
    """``work()`` in a forked child that mode bits bind: uid nobody when the tests run as root, else this user."""

    def drop() -> None:
        if os.geteuid() == 0:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)

    return in_forked_child(work, setup=drop)


def test_remove_tree_refused_names_the_full_path_of_the_file_it_could_not_remove(lab: Path) -> None:
    (lab / "entry" / "annotation").mkdir(parents=True)
    (lab / "entry" / "annotation" / "gene.fna").write_bytes(b">g\nACGT\n")
    os.chmod(lab / "entry" / "annotation", 0o555)  # as another account, or a chmod -R a-w, leaves it

    def remove() -> str:
        remove_tree(lab / "entry")
        return "removed"

    said = as_unprivileged(remove)
    # Not "Permission denied: 'gene.fna'": the bare name rmtree reports says nothing of where it is.
    assert said == f"PermissionError: [Errno 13] Permission denied: '{lab}/entry/annotation/gene.fna'"
    assert (lab / "entry" / "annotation" / "gene.fna").exists()
    os.chmod(lab / "entry" / "annotation", 0o755)
    remove_tree(lab / "entry")
    assert not (lab / "entry").exists()


def test_a_file_refused_in_a_directory_this_user_may_not_write_names_the_directory(lab: Path) -> None:
    """``genome export`` or ``log export`` into a read-only directory: not a random temp file's name."""
    from rgstore.outputs import output_file  # imported before the fork: the child may not read the venv

    out = lab / "exports"
    out.mkdir()
    os.chmod(out, 0o555)

    def export() -> str:
        with output_file(out / "hg38.fa.gz") as fh:
            fh.write(b">chr1\nACGT\n")
        return "written"

    assert as_unprivileged(export) == (f"PermissionError: [Errno 13] cannot write {out}/hg38.fa.gz: this user may not "
                                       f"create files in {out} (Permission denied)")
    assert os.listdir(out) == []

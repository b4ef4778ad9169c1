"""A store shared by a lab's Unix users: group-writable stores stay group-writable, refusals name the file."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.forked import in_forked_child
from tests.refpkg_data import write_inputs

TINY = REPO / "rgstore" / "data" / "tiny.fa"

# Writes every kind of file a store holds: LMDB, gtars' RefgetStore files, alias TSVs, FHR files,
# blobs, a cache entry's lock file, the fetch lock and a scratch directory's in-use file.
_WRITE_EVERYTHING = textwrap.dedent("""
    import sys
    from pathlib import Path
    from rgstore.cachelock import entry_lock
    from rgstore.refgetstore import fetch_lock, scratch_dir
    from rgstore.store import Store

    root, tiny, inputs = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    with Store.open(root, actor="alice@lab") as store:
        digest = store.genomes.init(tiny, ["tiny"], fhr={"schema": "1"}).genome.digest
        store.aliases.set("lab:other", digest)
        store.refpkgs.create("p1", locus="16S", files=[("tree", inputs / "tree.nwk")])
        with entry_lock(store.cache_path, "a" * 64), fetch_lock(store), scratch_dir(store, ".ingest-"):
            pass
        with entry_lock(store.cache_path, "b" * 64), scratch_dir(store, ".ingest-") as kept:
            (kept / "x").write_bytes(b"x")
            print(kept.stat().st_mode)
""")


def _write_everything(root: Path, tmp_path: Path, umask: int) -> subprocess.CompletedProcess[str]:
    inputs = tmp_path / "inputs"
    write_inputs(inputs)
    return subprocess.run([sys.executable, "-c", _WRITE_EVERYTHING, str(root), str(TINY), str(inputs)],
                          cwd=REPO, capture_output=True, text=True, timeout=120, umask=umask)


def _modes(root: Path) -> dict[str, int]:
    out = {}
    for path in [root, *root.rglob("*")]:
        out[str(path.relative_to(root))] = path.lstat().st_mode
    return out


def test_every_file_of_a_group_writable_store_is_group_writable_whatever_the_writers_umask(tmp_path: Path) -> None:
    root = tmp_path / "store"
    root.mkdir()
    os.chmod(root, 0o2770)  # the lab's setup: group-writable, setgid
    proc = _write_everything(root, tmp_path, 0o077)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) & 0o070 == 0o070  # a scratch directory too (not mkdtemp's 0700)
    modes = _modes(root)
    assert {"log/data.mdb", "log/lock.mdb", "refget/collections.rgci", "refget/aliases/collections/lab.tsv",
            ".fetch.lock", f"cache/.locks/{'a' * 64}.lock"} <= modes.keys()
    assert any(name.startswith("blobs/") for name in modes) and any(name.startswith("refget/fhr/") for name in modes)
    for name, mode in modes.items():
        wanted = 0o070 if stat.S_ISDIR(mode) else 0o060
        assert mode & 0o070 & wanted == wanted, f"{name} is {stat.filemode(mode)}"
        assert mode & 0o007 == 0, f"{name} is {stat.filemode(mode)}: others keep what the umask gave them"


def test_lmdb_files_take_the_writers_umask_like_every_other_file(tmp_path: Path) -> None:
    root = tmp_path / "store"
    root.mkdir(mode=0o755)
    proc = _write_everything(root, tmp_path, 0o002)
    assert proc.returncode == 0, proc.stderr
    for name in ("log/data.mdb", "log/lock.mdb", "refget/collections.rgci"):
        assert stat.S_IMODE((root / name).stat().st_mode) == 0o664, name


def test_a_store_that_is_not_group_writable_keeps_the_writers_umask(tmp_path: Path) -> None:
    root = tmp_path / "store"
    root.mkdir(mode=0o755)
    proc = _write_everything(root, tmp_path, 0o022)
    assert proc.returncode == 0, proc.stderr
    writable = [name for name, mode in _modes(root).items() if name != "." and mode & 0o020]
    assert writable == []


# -- as other Unix users (root only: a forked child drops to another uid, so it needs no interpreter it may run) --

_GROUP, _MEMBER, _OUTSIDER = 47_411, 47_412, 47_413

needs_root = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to switch users")


@contextmanager
def outsiders_lab(prefix: str) -> Iterator[Path]:
    """A scratch directory other users may enter (pytest's tmp_path is root's private one); umask 022 inside."""
    lab = Path(tempfile.mkdtemp(prefix=prefix))
    old = os.umask(0o022)
    try:
        os.chmod(lab, 0o711)
        yield lab
    finally:
        os.umask(old)
        shutil.rmtree(lab, ignore_errors=True)


def readers_may_lock(store: Path) -> None:
    """Let every user lock ``store``'s LMDB, as every reader must (docs/deployment.md)."""
    os.chmod(store / "log" / "lock.mdb", 0o666)


@pytest.fixture
def lab() -> Iterator[Path]:
    """A directory other users can reach (pytest's tmp_path sits in root's private 0700 directory)."""
    path = Path(tempfile.mkdtemp(prefix="rgstore-lab-"))
    os.chmod(path, 0o711)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _as_user(store: Path, uid: int, groups: list[int], work: Callable[[], str]) -> str:
    """Run ``work`` in a forked child as ``uid`` (umask 077) with cwd ``store``; "ok: " + its result, or its error."""

    def become() -> None:
        os.chdir(store)
        os.setgroups(groups)
        os.setgid(groups[0] if groups else 65534)
        os.setuid(uid)
        os.umask(0o077)

    return in_forked_child(work, setup=become)


def _lab_store(lab: Path, tmp_path: Path, *, mode: int, umask: int) -> Path:
    """A setgid store of the lab group (directory ``mode``) holding every kind of file, written with ``umask``."""
    root = lab / "store"
    root.mkdir()
    os.chown(root, 0, _GROUP)
    os.chmod(root, mode)
    proc = _write_everything(root, tmp_path, umask)
    assert proc.returncode == 0, proc.stderr
    return root


@needs_root
def test_a_group_member_writes_a_store_another_member_made_with_umask_077(tmp_path: Path, lab: Path) -> None:
    from rgstore.cachelock import entry_lock
    from rgstore.refgetstore import fetch_lock
    from rgstore.store import Store

    root = _lab_store(lab, tmp_path, mode=0o2770, umask=0o077)
    (root / ".pull.lock").touch()  # a mirror pull's lock, made by another member
    for lock in (root / "cache" / ".locks" / f"{'a' * 64}.lock", root / ".fetch.lock", root / ".pull.lock"):
        os.chmod(lock, 0o640)  # as an older rgstore made them: no group write
    import rgstore.aliases
    import rgstore.genomes
    import rgstore.refpkgs  # noqa: F401  (imported before the fork: the child may not read the tree they live in)
    from rgstore.mirror import _pull_lock

    def member() -> str:
        with Store.open(".", actor="bob@lab") as store:
            store.aliases.set("lab:bob", store.genomes.resolve("tiny"))
            store.refpkgs.update_metadata("p1", [("author", "bob")])
            store.blobs.put_bytes(b"bob's blob")
            store.rebuild()
            with entry_lock(store.cache_path, "a" * 64), fetch_lock(store), _pull_lock(store):
                pass
        with Store.open(".", readonly=True) as store:
            return store.getseq("tiny", store.genomes.show("tiny").names[0], 0, 4)

    result = _as_user(root, _MEMBER, [_GROUP], member)
    assert result.startswith("ok: "), result
    assert (root / "refget" / "aliases" / "collections" / "lab.tsv").read_text().count("bob") == 1


@needs_root
def test_a_user_without_write_access_to_lock_mdb_is_told_which_file_and_why(tmp_path: Path, lab: Path) -> None:
    from rgstore.store import Store

    root = _lab_store(lab, tmp_path, mode=0o2775, umask=0o022)  # group-writable store: others may read

    def outsider() -> str:
        with Store.open(".", readonly=True) as store:
            return str(store.head())

    result = _as_user(root, _OUTSIDER, [], outsider)
    assert result.startswith("StoreOpenError: "), result
    assert "log/lock.mdb is -rw-rw-r-- root:" in result and "docs/deployment.md" in result


@needs_root
def test_a_user_who_may_not_enter_the_stores_directories_is_told_which_one_and_why(tmp_path: Path, lab: Path) -> None:
    import rgstore_cli.status  # noqa: F401  (imported before the fork: the child may not read the tree they live in)
    from click.testing import CliRunner
    from rgstore_cli.main import cli

    import rgstore.status  # noqa: F401
    from rgstore.store import Store

    root = _lab_store(lab, tmp_path, mode=0o2775, umask=0o077)  # others may list the store, not enter log/ or refget/

    def opens(readonly: bool) -> Callable[[], str]:
        def work() -> str:
            with Store.open(".", readonly=readonly):
                return "opened"
        return work

    def runs_status() -> str:
        done = CliRunner().invoke(cli, ["--store", ".", "status"])
        return f"exit {done.exit_code}: {done.output}"

    read = _as_user(root, _OUTSIDER, [], opens(True))
    assert read.startswith("StoreOpenError: ") and f"{root}/log is drwxrws--- root:" in read, read
    write = _as_user(root, _OUTSIDER, [], opens(False))
    assert write.startswith("StoreOpenError: ") and f"{root} is drwxrwsr-x root:" in write, write
    assert "docs/deployment.md" in read and "docs/deployment.md" in write
    status = _as_user(root, _OUTSIDER, [], runs_status)
    assert status.startswith("ok: exit 1: error: the store at ") and f"{root}/log is drwxrws---" in status, status
    assert status.count("\n") == 1  # one line


@needs_root
def test_a_member_who_may_not_write_the_refget_files_is_told_which_directory_and_why(lab: Path, tmp_path: Path) -> None:
    from rgstore.errors import StorePermissionError
    from rgstore.refgetstore import refget_access_hint
    from rgstore.store import Store

    root = _lab_store(lab, tmp_path, mode=0o2770, umask=0o077)
    os.chmod(root / "refget", 0o2750)  # a store half set up for sharing: the RefgetStore is not group-writable
    import rgstore.aliases
    import rgstore.genomes  # noqa: F401

    def member() -> str:
        hint = refget_access_hint(Path("refget"))
        with Store.open(".", actor="bob@lab") as store:
            head = store.head()
            try:
                store.aliases.set("lab:bob", store.genomes.resolve("tiny"))
            except StorePermissionError as exc:  # refused before it is recorded: no stale alias files left behind
                return f"{hint} | {exc} | recorded: {store.head() != head}"
        return hint

    result = _as_user(root, _MEMBER, [_GROUP], member)
    assert result.startswith("ok: refget is drwxr-s--- root:"), result
    # The store's path is absolute once opened (Store.open("."), then any chdir, names the same store).
    assert f"nothing was recorded: {root}/refget is drwxr-s--- root:" in result and "docs/deployment.md" in result
    assert result.endswith(" | recorded: False"), result


def test_adopting_a_shared_store_never_lets_others_write_even_for_an_instant(tmp_path: Path) -> None:
    # The umask is process-wide: a thread (LMDB, gtars, another request) creating a file while it was
    # 0 would make that file world-writable. Every value set must keep the user's bits for others.
    root = tmp_path / "store"
    root.mkdir()
    root.chmod(0o2775)
    script = textwrap.dedent("""
        import os, sys
        from pathlib import Path
        from rgstore.sharing import adopt_group_sharing
        real, seen = os.umask, []
        def spy(mask):
            seen.append(mask)
            return real(mask)
        os.umask = spy
        assert adopt_group_sharing(Path(sys.argv[1]))
        os.umask = real
        now = real(0o022)
        print(" ".join(oct(m) for m in seen), oct(now))
    """)
    proc = subprocess.run([sys.executable, "-c", script, str(root)], cwd=REPO, capture_output=True, text=True,
                          timeout=60, umask=0o022)
    assert proc.returncode == 0, proc.stderr
    *seen, final = proc.stdout.split()
    assert final == "0o2"  # group bits cleared, others' kept
    assert all(int(mask, 8) & 0o002 for mask in seen), seen

"""Claims about the Refpkgs service: taxtastic's commands, texts and zipper, and the safety it lacks."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rgstore.errors import (
    ConflictError,
    IntegrityError,
    InvalidInputError,
    NotFoundError,
    NothingToRedoError,
    NothingToUndoError,
)
from rgstore.events import Noted, Redone, RefpkgCreated, RefpkgUpdated, Undone
from rgstore.gc import collect_garbage
from rgstore.log import NewEvent
from rgstore.refpkgs import CREATE_LOG
from rgstore.store import REBUILD_BATCH, Store
from rgstore.views.refpkgs import refpkg_step

from .conftest import REPO
from .refpkg_data import write_inputs


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    return write_inputs(tmp_path / "inputs")


def text_file(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def blob_count(store: Store) -> int:
    return len(list(store.blobs.all()))


# -- create -----------------------------------------------------------------------------------


def test_create_records_taxtastic_metadata_files_and_log(store: Store, inputs: dict[str, Path]) -> None:
    info = store.refpkgs.create("pkg", locus="16S rRNA", files=[("aln_fasta", inputs["aln_fasta"])],
                                description="d", author="Ref Author", package_version="1.0")
    assert list(info.metadata) == ["create_date", "format_version", "locus", "description", "author",
                                   "package_version"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", info.metadata["create_date"])
    assert info.metadata["format_version"] == "1.1" and info.metadata["locus"] == "16S rRNA"
    assert info.files["aln_fasta"].name == "seqs.fasta"
    assert info.files["aln_fasta"].md5 == hashlib.md5(inputs["aln_fasta"].read_bytes()).hexdigest()
    assert info.entry == CREATE_LOG[0] and store.refpkgs.info("pkg").log == CREATE_LOG
    assert CREATE_LOG == ["Stripped refpkg (removed 0 files)", "Loaded initial files into empty refpkg"]
    assert (info.rollbacks, info.rollforwards) == (0, 0)


def test_create_refuses_an_existing_name(store: Store) -> None:
    store.refpkgs.create("pkg", locus="L")
    with pytest.raises(ConflictError, match="already exists"):
        store.refpkgs.create("pkg", locus="L")


def test_create_with_a_missing_file_stores_nothing(
    store: Store, inputs: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(NotFoundError, match="No such file: .*nope.nwk"):
        store.refpkgs.create("pkg", locus="L", files=[("aln_fasta", inputs["aln_fasta"]),
                                                       ("tree", tmp_path / "nope.nwk")])
    assert store.head()[0] == 0 and blob_count(store) == 0


def test_create_with_an_empty_file_path_names_the_key_and_stores_nothing(store: Store) -> None:
    with pytest.raises(InvalidInputError, match="^empty path for the tree file; name one$"):
        store.refpkgs.create("pkg", locus="L", files={"tree": ""})
    assert store.head()[0] == 0


@pytest.mark.parametrize("flag", ["-f", "-S", "-i", "-T", "-t", "-s", "--phylo-model", "-R"])
def test_create_with_an_empty_file_option_is_a_usage_error_and_creates_nothing(
    cli, inputs: dict[str, Path], flag: str  # type: ignore[no-untyped-def]
) -> None:
    # `-t "$TREE"` with TREE unset: the package was created without the file, exit 0.
    result = cli("refpkg", "create", "pkg", "-l", "L", "-f", str(inputs["aln_fasta"]), flag, "")
    assert result.exit_code == 2 and "is empty; name a path" in result.stderr and result.stderr.count("\n") == 1
    assert "pkg" not in cli("refpkg", "list").output


def test_fresh_package_cannot_be_rolled_back(store: Store) -> None:
    store.refpkgs.create("pkg", locus="L")
    with pytest.raises(NothingToUndoError,
                       match=r"^Cannot rollback 1 changes; refpkg only records 0 changes\.$"):
        store.refpkgs.rollback("pkg")


@pytest.mark.parametrize("name", ["", "../x", "a/b", "-x", "with space", "x\x00", "é"])
def test_invalid_package_names_are_refused(store: Store, name: str) -> None:
    with pytest.raises(InvalidInputError, match="invalid refpkg name"):
        store.refpkgs.create(name, locus="L")


# -- update -----------------------------------------------------------------------------------


def test_update_files_is_one_step_logged_with_paths_as_typed(store: Store, tmp_path: Path) -> None:
    store.refpkgs.create("pkg", locus="L")
    a = text_file(tmp_path, "a.txt", "A\n")
    b = text_file(tmp_path, "b.txt", "B\n")
    info = store.refpkgs.update_files("pkg", [f"x={a}", f"y={b}", f"x={b}"])
    assert info.entry == f"Updates files: x={a}, y={b}, x={b}"
    assert info.files["x"].md5 == info.files["y"].md5  # the later duplicate key won
    assert info.rollbacks == 1
    assert store.stream_version("refpkg:pkg") == 2


def test_update_with_a_missing_path_changes_nothing(store: Store, tmp_path: Path) -> None:
    store.refpkgs.create("pkg", locus="L")
    a = text_file(tmp_path, "a.txt", "A\n")
    head, blobs = store.head()[0], blob_count(store)
    with pytest.raises(NotFoundError, match="No such file: missing.txt"):
        store.refpkgs.update_files("pkg", [f"x={a}", "y=missing.txt"])
    assert store.head()[0] == head and blob_count(store) == blobs


def test_update_with_a_folder_or_a_pipe_says_it_is_not_a_regular_file_not_that_it_is_missing(
    store: Store, tmp_path: Path
) -> None:
    # `update my tree=<(rppr reroot ...)` hands over /dev/fd/63: it exists, so "No such file" misleads
    store.refpkgs.create("pkg", locus="L")
    head = store.head()[0]
    with pytest.raises(InvalidInputError, match=f"Not a regular file: {re.escape(str(tmp_path))} "):
        store.refpkgs.update_files("pkg", [f"tree={tmp_path}"])
    read_end, write_end = os.pipe()
    try:
        with pytest.raises(InvalidInputError, match=f"Not a regular file: /dev/fd/{read_end} "):
            store.refpkgs.update_files("pkg", [f"tree=/dev/fd/{read_end}"])
    finally:
        os.close(read_end)
        os.close(write_end)
    assert store.head()[0] == head


def test_update_metadata_uses_a_namespace_separate_from_files(store: Store, tmp_path: Path) -> None:
    store.refpkgs.create("pkg", locus="L")
    store.refpkgs.update_files("pkg", [("boris", str(text_file(tmp_path, "b.txt", "B")))])
    info = store.refpkgs.update_metadata("pkg", ["boris=the mad baboon", "eq=a=b"])
    assert info.metadata["boris"] == "the mad baboon" and info.metadata["eq"] == "a=b"
    assert info.files["boris"].name == "b.txt"
    assert info.entry == "Updated metadata: boris=the mad baboon, eq=a=b"


@pytest.mark.parametrize("change", ["novalue", "=v", "a\x01=v"])
def test_malformed_metadata_is_refused_with_one_line(store: Store, change: str) -> None:
    store.refpkgs.create("pkg", locus="L")
    with pytest.raises(InvalidInputError):
        store.refpkgs.update_metadata("pkg", [change])


@pytest.mark.parametrize("key", ["a/b", "..", "x\ny"])
def test_file_keys_with_slashes_dots_or_control_characters_are_refused(
    store: Store, tmp_path: Path, key: str
) -> None:
    store.refpkgs.create("pkg", locus="L")
    with pytest.raises(InvalidInputError, match="invalid file key"):
        store.refpkgs.update_files("pkg", [(key, str(text_file(tmp_path, "a.txt", "A")))])


def test_update_of_a_missing_package_leaves_no_event_and_no_blob(store: Store, tmp_path: Path) -> None:
    a = text_file(tmp_path, "a.txt", "fresh content\n")
    with pytest.raises(NotFoundError, match="no refpkg 'ghost'"):
        store.refpkgs.update_files("ghost", [f"x={a}"])
    assert store.head()[0] == 0 and blob_count(store) == 0


def test_a_failed_command_keeps_blobs_that_another_package_references(store: Store, tmp_path: Path) -> None:
    a = text_file(tmp_path, "a.txt", "shared\n")
    store.refpkgs.create("one", locus="L", files=[("x", a)])
    with pytest.raises(NotFoundError):
        store.refpkgs.update_files("ghost", [f"x={a}"])
    assert blob_count(store) == 1
    assert store.refpkgs.resource_path("one", "x").read_text() == "shared\n"


def test_colliding_file_names_get_a_content_suffix_and_equal_content_keeps_its_name(
    store: Store, tmp_path: Path
) -> None:
    first = text_file(tmp_path, "one/seqs.fasta", ">a\nAC\n")
    second = text_file(tmp_path, "two/seqs.fasta", ">a\nGT\n")
    store.refpkgs.create("pkg", locus="L", files=[("aln_fasta", first)])
    info = store.refpkgs.update_files("pkg", [f"aln_fasta={second}"])
    sha = info.files["aln_fasta"].sha256
    assert info.files["aln_fasta"].name == f"seqs{sha[:8]}.fasta"
    info = store.refpkgs.update_files("pkg", [f"other={first}"])
    assert info.files["other"].name == "seqs.fasta"
    info = store.refpkgs.update_files("pkg", [f"manifest={text_file(tmp_path, 'CONTENTS.json', '{}')}"])
    assert info.files["manifest"].name != "CONTENTS.json"


# -- rollback / rollforward -------------------------------------------------------------------


def test_rollback_and_rollforward_follow_taxtastics_worked_history(store: Store, tmp_path: Path) -> None:
    # S0 create, S1 metadata, S2 readme, S3 tree+seq_info, S4 tree_v2 (shared notes 1.4)
    r = store.refpkgs
    r.create("pkg", locus="locusA", files=[("aln_fasta", text_file(tmp_path, "seqs.fasta", ">a\nAC\n"))])
    r.update_metadata("pkg", ["author=Jane Doe", "package_version=0.2"])
    r.update_files("pkg", [f"readme={text_file(tmp_path, 'README.txt', 'hi')}"])
    r.update_files("pkg", [f"tree={text_file(tmp_path, 'tree.nwk', '(a);')}",
                           f"seq_info={text_file(tmp_path, 'seq_info.csv', 'seqname,tax_id')}"])
    s4 = r.update_files("pkg", [f"tree={text_file(tmp_path, 'tree_v2.nwk', '(a,b);')}"])
    assert len(r.info("pkg").log) == 6 and s4.entry == r.info("pkg").log[0]
    s3 = r.rollback("pkg")
    assert (len(r.info("pkg").log), s3.rollforwards) == (5, 1) and s3.files["tree"].name == "tree.nwk"
    s1 = r.rollback("pkg", 2)
    assert (len(r.info("pkg").log), s1.rollforwards) == (3, 3) and "readme" not in s1.files
    assert s1.entry == "Updated metadata: author=Jane Doe, package_version=0.2"
    with pytest.raises(NothingToRedoError,
                       match=r"^Cannot rollforward 4 changes; refpkg only records 3 rolled back changes\.$"):
        r.rollforward("pkg", 4)
    s2 = r.rollforward("pkg")
    assert s2.entry is not None and s2.entry.startswith("Updates files: readme=") and s2.rollforwards == 2
    with pytest.raises(NothingToUndoError,
                       match=r"^Cannot rollback 9 changes; refpkg only records 2 changes\.$"):
        r.rollback("pkg", 9)
    after = r.update_metadata("pkg", ["x=y"])
    assert after.rollforwards == 0
    with pytest.raises(NothingToRedoError,
                       match=r"^Cannot rollforward 1 changes; refpkg only records 0 rolled back changes\.$"):
        r.rollforward("pkg")


def test_rollback_n_appends_n_undo_events_in_one_command(store: Store) -> None:
    store.refpkgs.create("pkg", locus="L")
    for i in range(3):
        store.refpkgs.update_metadata("pkg", [f"k{i}=v"])
    before = store.head()[0]
    store.refpkgs.rollback("pkg", 3)
    events = store.events(stream="refpkg:pkg", after=before)
    assert [type(e.event) for e in events] == [Undone, Undone, Undone]
    assert len({e.time for e in events}) == 1  # appended by one transaction
    assert store.refpkgs.info("pkg").metadata.keys() == {"create_date", "format_version", "locus"}


def test_rollback_then_rollforward_restores_the_same_state(store: Store, tmp_path: Path) -> None:
    store.refpkgs.create("pkg", locus="L", files=[("a", text_file(tmp_path, "a", "1"))])
    store.refpkgs.update_files("pkg", [f"a={text_file(tmp_path, 'b/a', '2')}"])
    before = store.refpkgs.info("pkg")
    store.refpkgs.rollback("pkg")
    after = store.refpkgs.rollforward("pkg")
    assert (after.files, after.metadata, after.entry) == (before.files, before.metadata, before.log[0])
    assert store.refpkgs.info("pkg") == before
    assert (after.rollbacks, after.rollforwards) == (1, 0)
    assert store.events(stream="refpkg:pkg")[-1].event == Redone(redone_seq=before.seq)


def test_rolling_back_reaches_only_states_whose_blobs_are_kept(store: Store, tmp_path: Path) -> None:
    store.refpkgs.create("pkg", locus="L", files=[("a", text_file(tmp_path, "a", "first"))])
    store.refpkgs.update_files("pkg", [f"a={text_file(tmp_path, 'b/a', 'second')}"])
    store.refpkgs.rollback("pkg")  # "second" is now only on the redo side
    assert collect_garbage(store, grace=0).removed == []
    store.refpkgs.rollforward("pkg")
    assert store.refpkgs.resource_path("pkg", "a").read_text() == "second"
    store.refpkgs.rollback("pkg")
    assert store.refpkgs.resource_path("pkg", "a").read_text() == "first"


# -- strip and gc -----------------------------------------------------------------------------


def test_strip_drops_history_and_lets_gc_free_only_blobs_that_history_held(
    store: Store, tmp_path: Path
) -> None:
    r = store.refpkgs
    r.create("pkg", locus="L", files=[("a", text_file(tmp_path, "a", "v1"))])
    r.create("other", locus="L", files=[("a", text_file(tmp_path, "o/a", "v2"))])
    r.update_files("pkg", [f"a={text_file(tmp_path, 'b/a', 'v2')}"])
    r.update_files("pkg", [f"a={text_file(tmp_path, 'c/a', 'v3')}"])
    r.rollback("pkg")  # v3 is on the redo side, v1 two steps back
    info = r.strip("pkg")
    assert info.entry == "Stripped refpkg (removed 2 files)"
    assert (info.rollbacks, info.rollforwards) == (0, 0)
    with pytest.raises(NothingToUndoError):
        r.rollback("pkg")
    freed = collect_garbage(store, grace=0).removed
    assert len(freed) == 2  # v1 and v3; v2 is current here and in "other"
    assert r.resource_path("pkg", "a").read_text() == "v2"
    assert r.resource_path("other", "a").read_text() == "v2"


STRIP_HISTORIES = {
    # name: taxit operations after `create` (paths relative to the inputs directory)
    "discarded redo side": [("files", "tree=v2/tree.nwk"), ("files", "seq_info=v2/seq_info.csv"),
                            ("files", "readme=v2/README.txt"), ("rollback", "3"), ("metadata", "k=v")],
    "same file again": [("files", "readme=README.txt")],
    "undo, redo, discard": [*(("files", f"readme=v{i}/README.txt") for i in range(2, 6)), ("rollback", "2"),
                            ("rollforward", "1"), ("metadata", "k=v"), ("rollback", "1")],
    "strip, update, strip": [("files", "tree=v2/tree.nwk"), ("strip", ""), ("files", "tree=v3/tree.nwk"),
                             ("files", "tree=v4/tree.nwk"), ("rollback", "1")],
    # taxit copies one file per pair: a key named twice in one update leaves a copy for strip to count
    "one key named twice": [("files", "tree=v2/tree.nwk tree=v3/tree.nwk")],
    "a new key named thrice": [("files", "extra=v2/README.txt extra=v3/README.txt extra=v2/README.txt")],
    "one path twice": [("files", "readme=v2/README.txt readme=v2/README.txt"), ("rollback", "1")],
    "tree_stats twice": [("files", "tree_stats=stats/RAxML_info.dna tree_stats=stats/RAxML_info.evaluate")],
    "tree_stats and phylo_model": [("files", "tree_stats=stats/RAxML_info.dna phylo_model=v2/README.txt")],
}


STRIP_CREATE = [("aln_fasta", "-f"), ("tree", "-t"), ("seq_info", "-i"), ("readme", "-R")]


@pytest.fixture(scope="module")
def taxit_created(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`taxit create` of the valid inputs (STRIP_CREATE's files) run once; tests copy it instead of paying taxit's
    start-up each time. Its CONTENTS.json names files by key and basename only, so a copy is what another
    `taxit create` of the same bytes would write."""
    from .refpkg_data import taxit

    root = tmp_path_factory.mktemp("taxit-created")
    inputs = write_inputs(root / "inputs")
    pkg = root / "created.refpkg"
    taxit("create", "-P", pkg, "-l", "L", "--no-reroot", *(a for k, flag in STRIP_CREATE for a in (flag, inputs[k])))
    return pkg


@pytest.mark.parametrize("history", sorted(STRIP_HISTORIES))
def test_strip_counts_removed_files_as_taxit_strip_does(
    store: Store, inputs: dict[str, Path], tmp_path: Path, taxit_created: Path, history: str
) -> None:
    from .refpkg_data import contents, taxit, write_tree_stats

    base = inputs["tree"].parent
    write_tree_stats(base / "stats")
    for i in range(2, 6):
        for key in ("tree", "seq_info", "readme"):
            text_file(base, f"v{i}/{inputs[key].name}", f"{key} version {i}\n")
    pkg = tmp_path / "theirs.refpkg"
    shutil.copytree(taxit_created, pkg)  # `taxit create -P pkg ...` of the same inputs
    store.refpkgs.create("ours", locus="L", files=[(k, inputs[k]) for k, _flag in STRIP_CREATE])
    r = store.refpkgs
    for verb, arg in [*STRIP_HISTORIES[history], ("strip", "")]:
        items = [f"{item.split('=')[0]}={base / item.split('=')[1]}" if verb == "files" else item
                 for item in arg.split()]
        if verb == "files":
            taxit("update", pkg, *items)
            r.update_files("ours", items)
        elif verb == "metadata":
            taxit("update", "--metadata", pkg, *items)
            r.update_metadata("ours", items)
        elif verb == "strip":
            taxit("strip", pkg)
            r.strip("ours")
        else:
            taxit(verb, "-n", arg, pkg)
            getattr(r, verb)("ours", int(arg))
    assert r.info("ours").log == contents(pkg)["log"]


def test_after_strip_each_log_entry_keeps_the_step_that_wrote_it(  # type: ignore[no-untyped-def]
    cli, store_path: Path, tmp_path: Path
) -> None:
    with Store.open(store_path, actor="alice") as store:
        r = store.refpkgs
        created = r.create("pkg", locus="L").seq
        meta = r.update_metadata("pkg", ["k=v"]).seq
        files = r.update_files("pkg", [f"a={text_file(tmp_path, 'a', 'x')}"]).seq
    with Store.open(store_path, actor="bob") as store:
        store.refpkgs.strip("pkg")
        first_strip = store.head()[0]
        after = store.refpkgs.update_metadata("pkg", ["k=w"]).seq
        store.refpkgs.strip("pkg")
        strip_seq = store.head()[0]
    log = json.loads(cli("refpkg", "log", "pkg", "--json").stdout)
    assert [(e["seq"], e["actor"], e["message"]) for e in log] == [
        (strip_seq, "bob", "Stripped refpkg (removed 0 files)"),
        (after, "bob", "Updated metadata: k=w"),
        (first_strip, "bob", "Stripped refpkg (removed 0 files)"),
        (files, "alice", f"Updates files: a={tmp_path / 'a'}"),
        (meta, "alice", "Updated metadata: k=v"),
        (created, "alice", CREATE_LOG[0]),
        (created, "alice", CREATE_LOG[1]),
    ]


def test_a_new_update_discards_the_redo_side_and_its_blobs(store: Store, tmp_path: Path) -> None:
    r = store.refpkgs
    r.create("pkg", locus="L")
    r.update_files("pkg", [f"a={text_file(tmp_path, 'a', 'undone')}"])
    r.rollback("pkg")
    r.update_metadata("pkg", ["k=v"])
    assert r.info("pkg").rollforwards == 0
    assert len(collect_garbage(store, grace=0).removed) == 1


# -- reads: rp, check, corruption -------------------------------------------------------------


def test_rp_prints_a_verified_path_and_refuses_unknown_keys(store: Store, inputs: dict[str, Path]) -> None:
    store.refpkgs.create("pkg", locus="L", files=[("tree", inputs["tree"])])
    assert store.refpkgs.resource_path("pkg", "tree").read_bytes() == inputs["tree"].read_bytes()
    with pytest.raises(NotFoundError, match="No such resource 'nope' in refpkg 'pkg'"):
        store.refpkgs.resource_path("pkg", "nope")


def test_rp_prints_the_file_under_its_own_name_so_tools_that_read_the_extension_work(
    cli, store_path: Path, inputs: dict[str, Path]  # type: ignore[no-untyped-def]
) -> None:
    # `seqmagick convert $(taxit rp my.refpkg aln_fasta) out.sto` picks the input format from the suffix.
    assert cli("refpkg", "create", "pkg", "-l", "L", "-f", str(inputs["aln_fasta"]),
               "-t", str(inputs["tree"])).exit_code == 0
    done = cli("refpkg", "rp", "pkg", "aln_fasta")
    assert done.exit_code == 0 and done.stderr == ""
    printed = done.stdout
    path = Path(printed.removesuffix("\n"))
    assert printed == f"{path}\n" and path.name == "seqs.fasta" and path.suffix == ".fasta"
    assert path.read_bytes() == inputs["aln_fasta"].read_bytes()
    with Store.open(store_path, readonly=True) as store:
        sha = store.refpkgs.info("pkg").files["aln_fasta"].sha256
        assert path == store_path / "names" / sha / "seqs.fasta"
        assert path.is_symlink() and path.resolve() == store.blobs.path(sha).resolve()  # the blob, not a copy
        assert store.refpkgs.resource_path("pkg", "tree").suffix == ".nwk"
        report = store.verify()
        assert report.ok and report.stray_files == [], report
    assert cli("refpkg", "rp", "pkg", "aln_fasta").stdout == printed  # idempotent
    assert cli("status").exit_code == 0


def test_rp_puts_back_a_name_link_that_was_replaced_and_still_refuses_a_corrupt_blob(
        store: Store, inputs: dict[str, Path]) -> None:
    info = store.refpkgs.create("pkg", locus="L", files=[("tree", inputs["tree"])])
    path = store.refpkgs.resource_path("pkg", "tree")
    path.unlink()
    path.write_text("edited by `sed -i`, which replaces the link with a file\n")
    assert store.refpkgs.resource_path("pkg", "tree") == path and path.is_symlink()
    assert path.read_bytes() == inputs["tree"].read_bytes()
    blob = store.blobs.path(info.files["tree"].sha256)
    blob.chmod(0o644)
    blob.write_text("((s1,s2),s3);\n")  # edited through the link: the blob itself
    with pytest.raises(IntegrityError, match="corrupt"):
        store.refpkgs.resource_path("pkg", "tree")


def test_concurrent_rp_calls_all_print_the_same_named_path(store_path: Path, inputs: dict[str, Path]) -> None:
    with Store.open(store_path) as store:
        store.refpkgs.create("pkg", locus="L", files=[("aln_fasta", inputs["aln_fasta"])])
    argv = [sys.executable, "-m", "rgstore_cli", "--store", str(store_path), "refpkg", "rp", "pkg", "aln_fasta"]
    procs = [subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outs
    assert {out for out, _err in outs} == {outs[0][0]} and all(err == b"" for _out, err in outs)
    path = Path(outs[0][0].decode().strip())
    assert path.name == "seqs.fasta" and path.read_bytes() == inputs["aln_fasta"].read_bytes()
    assert sorted(p.name for p in (store_path / "names").iterdir()) == [path.parent.name]  # no temp links left
    assert [p.name for p in path.parent.iterdir()] == ["seqs.fasta"]


def test_rp_falls_back_to_the_blob_path_where_it_cannot_make_the_name_link(
        cli, store_path: Path, inputs: dict[str, Path]) -> None:  # type: ignore[no-untyped-def]
    # Root ignores file modes, so a `names` file in the way stands in for a store this user may not write.
    assert cli("refpkg", "create", "pkg", "-l", "L", "-t", str(inputs["tree"])).exit_code == 0
    (store_path / "names").write_text("in the way\n")
    done = cli("refpkg", "rp", "pkg", "tree")
    with Store.open(store_path, readonly=True) as store:
        blob = store.blobs.path(store.refpkgs.info("pkg").files["tree"].sha256)
    assert (done.exit_code, done.stdout, done.stderr) == (0, f"{blob}\n", "")


def test_rp_on_a_read_only_mount_prints_the_blob_path_and_writes_nothing(
        store_path: Path, inputs: dict[str, Path]) -> None:
    with Store.open(store_path) as store:
        info = store.refpkgs.create("pkg", locus="L", files=[("tree", inputs["tree"])])
    blob = store_path / "blobs" / info.files["tree"].sha256[:2] / info.files["tree"].sha256
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        pytest.skip("needs unshare and mount for a private read-only bind mount")
    mount = (f"mount --make-rprivate / && mount --bind {store_path} {store_path} && "
             f"mount -o remount,bind,ro {store_path}")
    as_root = [] if os.geteuid() == 0 else ["--map-root-user"]
    rp = shlex.join([sys.executable, "-m", "rgstore_cli", "--store", str(store_path), "refpkg", "rp", "pkg", "tree"])
    done = subprocess.run(["unshare", "--mount", *as_root, "sh", "-c", f"{mount} || exit 77; {rp}"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    if done.returncode == 77 or "unshare failed" in done.stderr:
        pytest.skip(f"no private read-only bind mount here: {done.stderr.strip()[:200]}")
    assert (done.returncode, done.stdout, done.stderr) == (0, f"{blob}\n", "")
    assert not (store_path / "names").exists()


def test_a_corrupted_blob_is_detected_on_read_check_and_export(store: Store, inputs: dict[str, Path],
                                                               tmp_path: Path) -> None:
    info = store.refpkgs.create("pkg", locus="L", files=list(inputs.items()))
    ref = info.files["tree"]
    blob = store.blobs.path(ref.sha256)
    blob.chmod(0o644)
    blob.write_text("((s1,s2),s3);\n")
    with pytest.raises(IntegrityError, match="corrupt"):
        store.refpkgs.resource_path("pkg", "tree")
    found = hashlib.md5(b"((s1,s2),s3);\n").hexdigest()
    assert store.refpkgs.check("pkg") == [
        f"File tree.nwk referred to by key tree did not match its MD5 sum "
        f"(found: {found}, expected {ref.md5})"
    ]
    targets = (("dir", tmp_path / "out"), ("tar", tmp_path / "out.tar.gz"), ("zip", tmp_path / "out.zip"))
    for fmt, dest in targets:
        with pytest.raises(IntegrityError, match="corrupt"):
            store.refpkgs.export("pkg", dest, fmt=fmt)
        assert not dest.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_a_missing_blob_is_reported_by_check_not_raised(store: Store, inputs: dict[str, Path]) -> None:
    info = store.refpkgs.create("pkg", locus="L", files=list(inputs.items()))
    store.blobs.delete(info.files["aln_sto"].sha256)
    problems = store.refpkgs.check("pkg")
    assert problems == [f"File seqs.sto referred to by key aln_sto is missing from the store "
                        f"(blob {info.files['aln_sto'].sha256})"]


def test_a_valid_package_checks_clean(store: Store, inputs: dict[str, Path]) -> None:
    store.refpkgs.create("pkg", locus="L", files=list(inputs.items()))
    assert store.refpkgs.check("pkg") == []


# -- the view ---------------------------------------------------------------------------------


def test_rebuilding_the_view_reproduces_it_byte_for_byte(store: Store, tmp_path: Path) -> None:
    r = store.refpkgs
    r.create("pkg", locus="L", files=[("a", text_file(tmp_path, "a", "1"))])
    for i in range(4):
        r.update_files("pkg", [f"a={text_file(tmp_path, f'{i}/a', str(i))}"])
    r.rollback("pkg", 2)
    r.rollforward("pkg")
    r.update_metadata("pkg", ["k=v"])
    r.rollback("pkg")
    r.strip("pkg")
    r.update_metadata("pkg", ["k=w"])
    view = next(v for v in store.views if v.name == "refpkgs")
    with store.read() as txn:
        before = list(view.contents(txn, store.environment))
    store.rebuild([view])
    with store.read() as txn:
        assert list(view.contents(txn, store.environment)) == before
    # taxit strip counts 4 here: files a, 1..3 stay on disk after the redo side is discarded
    assert r.info("pkg").log[:2] == ["Updated metadata: k=w", "Stripped refpkg (removed 4 files)"]


def test_one_batch_of_create_update_undo_redo_and_strip_folds_to_the_same_bytes_as_one_at_a_time(
    store: Store, tmp_path: Path
) -> None:
    # Every command below is one event, so the store folds one envelope at a time; the rebuild
    # then folds the whole log as one batch, where undo/redo/strip read steps made earlier in it.
    r, files = store.refpkgs, iter(range(100))

    def update(name: str, key: str) -> int:
        i = next(files)
        return r.update_files(name, [f"{key}={text_file(tmp_path, f'{i}/{key}.txt', f'{name} {i}')}"]).seq

    r.create("pkg", locus="L", files=[(k, text_file(tmp_path, f"c/{k}.txt", k)) for k in ("a", "b", "c")])
    r.create("other", locus="L2", files=[("a", text_file(tmp_path, "o/a.txt", "o"))])
    update("pkg", "a")
    update("other", "a")
    update("pkg", "d")
    r.rollback("pkg")
    r.strip("pkg")  # drops the undone step and everything below the current one
    discarded = update("pkg", "b")
    r.rollback("pkg")
    r.rollforward("pkg")
    r.rollback("pkg")
    r.update_metadata("pkg", ["k=v"])  # drops `discarded`, a step made earlier in the batch
    update("pkg", "a")
    r.update_metadata("other", ["k=w"])
    r.rollback("other")
    assert {type(e.event).__name__ for e in store.events(stream="refpkg:pkg")} == {
        "RefpkgCreated", "RefpkgUpdated", "Undone", "Redone", "HistoryStripped"}
    view = next(v for v in store.views if v.name == "refpkgs")
    with store.read() as txn:
        one_at_a_time = list(view.contents(txn, store.environment))
    assert store.rebuild([view]) == store.head()[0] < REBUILD_BATCH  # the whole log is one batch
    with store.read() as txn:
        assert list(view.contents(txn, store.environment)) == one_at_a_time
        with pytest.raises(IntegrityError):
            refpkg_step(txn, store.environment, "pkg", discarded)
    # five files set since creation (a b c, a, the undone d), three named by the kept state
    assert "Stripped refpkg (removed 2 files)" in r.info("pkg").log


def test_list_shows_packages_and_hides_one_whose_creation_was_undone(store: Store) -> None:
    store.refpkgs.create("b", locus="L2")
    store.refpkgs.create("a", locus="L1")
    assert [(s.name, s.locus) for s in store.refpkgs.list_all()] == [("a", "L1"), ("b", "L2")]
    store.append([NewEvent(stream="refpkg:b", event=Undone())])  # the engine's generic undo
    assert [s.name for s in store.refpkgs.list_all()] == ["a"]
    with pytest.raises(NotFoundError):
        store.refpkgs.info("b")


@pytest.mark.parametrize("name", ["", "x" * 600, "\u00e9" * 300])
def test_a_name_no_package_can_have_is_not_found_not_an_lmdb_error(store: Store, name: str) -> None:
    store.refpkgs.create("pkg", locus="L")
    for query in (store.refpkgs.info, store.refpkgs.log, store.refpkgs.strip, store.refpkgs.rollback):
        with pytest.raises(NotFoundError, match="no refpkg"):
            query(name)


def test_notes_on_a_refpkg_stream_are_steps_the_view_follows(store: Store) -> None:
    store.refpkgs.create("pkg", locus="L")
    store.append([NewEvent(stream="refpkg:pkg", event=Noted(text="audited"))])
    info = store.refpkgs.info("pkg")
    assert info.log[0] == "audited" and info.rollbacks == 1
    assert store.refpkgs.rollback("pkg").entry == CREATE_LOG[0] and store.refpkgs.info("pkg").log == CREATE_LOG


def test_events_are_created_then_updated(store: Store) -> None:
    store.refpkgs.create("pkg", locus="L")
    store.refpkgs.update_metadata("pkg", ["a=b"])
    assert [type(e.event) for e in store.events(stream="refpkg:pkg")] == [RefpkgCreated, RefpkgUpdated]


# -- concurrency ------------------------------------------------------------------------------


def _writer(store_path: str, worker: int, count: int, directory: str) -> None:
    with Store.open(store_path, actor=f"w{worker}") as store:
        for i in range(count):
            if i % 5 == 0:
                path = Path(directory) / f"w{worker}_{i}.txt"
                path.write_text(f"{worker}:{i}\n")
                store.refpkgs.update_files("pkg", [f"f{worker}_{i}={path}"])
            else:
                store.refpkgs.update_metadata("pkg", [f"w{worker}_{i}={i}"])


@pytest.mark.slow
def test_four_processes_with_fifty_updates_each_lose_nothing(store_path: Path, tmp_path: Path) -> None:
    with Store.open(store_path) as store:
        store.refpkgs.create("pkg", locus="L")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(store_path), w, 50, str(tmp_path))) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    with Store.open(store_path) as store:
        info = store.refpkgs.info("pkg")
        assert info.rollbacks == 200 and len(info.log) == 202
        assert {k for k in info.metadata if k.startswith("w")} == {
            f"w{w}_{i}" for w in range(4) for i in range(50) if i % 5}
        assert set(info.files) == {f"f{w}_{i}" for w in range(4) for i in range(0, 50, 5)}
        for key, ref in info.files.items():
            w, i = key[1:].split("_")
            assert store.refpkgs.resource_path("pkg", key).read_text() == f"{w}:{i}\n"
            assert ref.name == f"w{w}_{i}.txt"


# -- cost in history depth ---------------------------------------------------------------------


class _StepReads:
    """Counts step snapshots decoded from the view (by ``refpkg_step``, its chain and the fold)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import rgstore.views.refpkgs as view
        import rgstore.views.refpkgstate as state

        self.count, real = 0, state.STEP_DECODER
        reads = self

        class Counting:
            def decode(self, raw: bytes) -> Any:
                reads.count += 1
                return real.decode(raw)

        for module in (state, view):
            monkeypatch.setattr(module, "STEP_DECODER", Counting())

    def of(self, call: Callable[[], object]) -> int:
        before = self.count
        call()
        return self.count - before


def _package_of_depth(store: Store, name: str, depth: int) -> None:
    store.refpkgs.create(name, locus="L")
    store.append([NewEvent(stream=f"refpkg:{name}", event=RefpkgUpdated(
        name=name, metadata={"k": str(i)}, message=f"Updated metadata: k={i}")) for i in range(depth)])


def test_commands_rp_and_check_read_as_few_steps_at_depth_500_as_at_depth_1(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    r, tree = store.refpkgs, text_file(tmp_path, "t.nwk", "(a,b);")
    for name, depth in (("shallow", 1), ("deep", 500)):
        _package_of_depth(store, name, depth)

    def calls(n: str) -> list[Callable[[], object]]:
        return [lambda: r.update_files(n, [f"tree={tree}"]), lambda: r.update_metadata(n, ["k=v"]),
                lambda: r.rollback(n), lambda: r.rollforward(n), lambda: r.resource_path(n, "tree"),
                lambda: r.check(n)]

    reads = _StepReads(monkeypatch)
    steps = {name: [reads.of(call) for call in calls(name)] for name in ("shallow", "deep")}
    assert steps["deep"] == steps["shallow"] and max(steps["deep"]) <= 3, steps
    # The log is still the whole chain's, but walking it decodes no step's files and metadata.
    assert reads.of(lambda: r.info("deep")) == reads.of(lambda: r.log("deep")) == 1
    assert len(r.info("deep").log) > 500 and len(r.log("deep")) > 500
    assert r.update_metadata("deep", ["k=w"]).entry == r.info("deep").log[0] == "Updated metadata: k=w"
    assert r.rollback("deep", 2).entry == r.info("deep").log[0] == f"Updates files: tree={tree}"


# -- the CLI ----------------------------------------------------------------------------------


def test_cli_runs_taxits_workflow_end_to_end(  # type: ignore[no-untyped-def]
    cli, inputs: dict[str, Path], tmp_path: Path
) -> None:
    f = inputs
    result = cli("refpkg", "create", "pkg", "-l", "16S rRNA", "-f", str(f["aln_fasta"]),
                 "-S", str(f["aln_sto"]),
                 "-i", str(f["seq_info"]), "-T", str(f["taxonomy"]), "-t", str(f["tree"]),
                 "--phylo-model", str(f["phylo_model"]), "-a", "Ref Author")
    assert result.exit_code == 0, result.output
    assert cli("refpkg", "update", "pkg", f"readme={f['readme']}").exit_code == 0
    assert cli("refpkg", "update", "pkg", "--metadata", "package_version=0.2").exit_code == 0
    result = cli("refpkg", "rollback", "pkg", "-n", "3")
    assert result.exit_code == 1
    assert result.stderr == "error: Cannot rollback 3 changes; refpkg only records 2 changes.\n"
    assert cli("refpkg", "rollback", "pkg", "-n", "2").exit_code == 0
    assert cli("refpkg", "rollforward", "pkg").exit_code == 0
    log = json.loads(cli("refpkg", "log", "pkg", "--json").stdout)
    assert [e["message"] for e in log] == [f"Updates files: readme={f['readme']}", *CREATE_LOG]
    info = json.loads(cli("refpkg", "info", "pkg", "--json").stdout)
    assert (info["rollbacks"], info["rollforwards"], info["metadata"]["author"]) == (1, 1, "Ref Author")
    assert json.loads(cli("refpkg", "list", "--json").stdout)[0]["name"] == "pkg"
    path = cli("refpkg", "rp", "pkg", "tree").stdout.strip()
    assert Path(path).read_bytes() == f["tree"].read_bytes()
    assert cli("refpkg", "check", "pkg").exit_code == 0
    assert cli("refpkg", "export", "pkg", str(tmp_path / "out.refpkg")).exit_code == 0
    assert cli("refpkg", "export", "pkg", "--zip", str(tmp_path / "out.zip"), "--no-history").exit_code == 0
    assert cli("refpkg", "export", "pkg", str(tmp_path / "named.tar.gz")).exit_code == 0  # an archive by its name
    assert tarfile.is_tarfile(tmp_path / "named.tar.gz")
    result = cli("refpkg", "export", "pkg", str(tmp_path / "x"), "--zip", str(tmp_path / "x.zip"))
    assert result.exit_code == 2 and "exactly one of" in result.output
    result = cli("refpkg", "import", str(tmp_path / "out.refpkg"), "--name", "copy", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["rollforwards"] == 1
    assert cli("refpkg", "strip", "pkg").exit_code == 0
    assert cli("refpkg", "log", "pkg").stdout.splitlines()[1].endswith("Stripped refpkg (removed 0 files)")
    result = cli("refpkg", "update", "pkg", "x=/no/such/file")
    assert (result.exit_code, result.stderr) == (1, "error: No such file: /no/such/file\n")


def test_a_commands_json_is_infos_with_the_newest_entry_in_place_of_the_log(cli) -> None:  # type: ignore[no-untyped-def]
    assert cli("refpkg", "create", "pkg", "-l", "L").exit_code == 0
    shown = json.loads(cli("refpkg", "update", "pkg", "--metadata", "k=v", "--json").stdout)
    info = json.loads(cli("refpkg", "info", "pkg", "--json").stdout)
    assert list(shown) == ["name", "seq", "time", "files", "metadata", "entry", "rollbacks", "rollforwards",
                           "export_format_version"]
    assert shown == {**{k: v for k, v in info.items() if k != "log"}, "entry": "Updated metadata: k=v"}
    assert cli("refpkg", "rollback", "pkg").stdout == (
        "pkg: seq 1, 0 files, 3 metadata keys; can roll back 0, forward 1\n")


def test_cli_in_a_subprocess_maps_errors_to_one_line_and_exit_1(  # type: ignore[no-untyped-def]
    rgstore_proc, store_path: Path
) -> None:
    assert rgstore_proc("--store", str(store_path), "refpkg", "create", "pkg", "-l", "L").returncode == 0
    proc = rgstore_proc("--store", str(store_path), "refpkg", "rollforward", "pkg")
    assert proc.returncode == 1
    assert proc.stderr.decode() == (
        "error: Cannot rollforward 1 changes; refpkg only records 0 rolled back changes.\n")
    proc = rgstore_proc("--store", str(store_path), "refpkg", "info", "nope")
    assert proc.returncode == 1 and proc.stderr.decode().count("\n") == 1


def test_every_refpkg_command_has_an_example_in_its_help(cli) -> None:  # type: ignore[no-untyped-def]
    from rgstore_cli.refpkg import refpkg_group

    for name in refpkg_group.commands:
        result = cli("refpkg", name, "--help")
        assert result.exit_code == 0 and "Example:" in result.output, name


def test_a_blob_removed_between_put_and_commit_is_stored_again(store: Store, tmp_path: Path) -> None:
    from rgstore.events import FileRef
    from rgstore.refpkg_blobs import staged_blobs

    store.refpkgs.create("pkg", locus="L")
    with staged_blobs(store) as staged:
        info = staged.put(text_file(tmp_path, "a.txt", "A\n"))
        store.blobs.delete(info.sha256)  # what a failed concurrent command's cleanup may do
        ref = FileRef(name="a.txt", sha256=info.sha256, md5=info.md5, size=info.size)
        staged.commit(lambda txn: [NewEvent(stream="refpkg:pkg", event=RefpkgUpdated(
            name="pkg", files={"a": ref}, message="Updates files: a=a.txt"))])
    assert store.refpkgs.resource_path("pkg", "a").read_text() == "A\n"


@pytest.mark.slow
def test_benchmark_runs_end_to_end_at_a_tiny_size(capsys) -> None:  # type: ignore[no-untyped-def]
    from tools.bench.refpkg import main

    assert main(["--updates", "3", "--rollbacks", "2", "--export-mb", "1", "--cli-sample", "1",
                 "--budget", "60", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["updates"]["compared_steps"] == 3 and res["rollbacks"]["compared_steps"] == 2
    assert res["cli"]["rgstore"] > 0 and res["export"]["rgstore_export_zip_s"] > 0


# -- Python callers' habits: mappings and single strings ----------------------------------------


def test_create_and_updates_take_a_key_to_path_mapping(store: Store, inputs: dict[str, Path], tmp_path: Path) -> None:
    state = store.refpkgs.create("pkg", locus="16S", files=inputs)
    assert set(state.files) == set(inputs)
    tree = text_file(tmp_path, "new.nwk", "((s1:0.3,s2:0.2):0.05,s3:0.3);\n")
    assert store.refpkgs.update_files("pkg", {"tree": str(tree)}).entry == f"Updates files: tree={tree}"
    assert store.refpkgs.update_metadata("pkg", {"author": "alice"}).metadata["author"] == "alice"
    assert store.refpkgs.update_metadata("pkg", "author=bob").metadata["author"] == "bob"  # one item, not letters


def test_export_without_a_format_follows_the_destination_suffix(store: Store, inputs: dict[str, Path],
                                                                 tmp_path: Path) -> None:
    import tarfile
    import zipfile

    store.refpkgs.create("pkg", locus="16S", files=inputs)
    assert store.refpkgs.export("pkg", tmp_path / "pkg.tar.gz").format == "tar"
    assert tarfile.is_tarfile(tmp_path / "pkg.tar.gz")
    assert store.refpkgs.export("pkg", str(tmp_path / "pkg.zip")).format == "zip"
    assert zipfile.is_zipfile(tmp_path / "pkg.zip")
    assert store.refpkgs.export("pkg", tmp_path / "pkg.refpkg").format == "dir"
    assert (tmp_path / "pkg.refpkg" / "CONTENTS.json").is_file()
    assert store.refpkgs.import_package(tmp_path / "pkg.tar.gz", name="again").files == store.refpkgs.current("pkg").files


# -- strip counts: which steps add files (mutation-testing gaps) ---------------------------------


def test_a_package_created_again_after_its_creation_was_undone_strips_counting_only_its_own_files(
    store: Store, inputs: dict[str, Path]
) -> None:
    """A creation starts the count of files set afresh: the undone package's files are not this one's."""
    store.refpkgs.create("pkg", locus="L", files=inputs)
    store.append([NewEvent(stream="refpkg:pkg", event=Undone())])  # the engine's generic undo
    store.refpkgs.create("pkg", locus="L", files=[("tree", inputs["tree"])])
    assert store.refpkgs.strip("pkg").entry == "Stripped refpkg (removed 0 files)"


def test_a_step_that_drops_a_file_key_adds_no_file_to_the_strip_count(store: Store, inputs: dict[str, Path]) -> None:
    """An imported history's step may drop a key: the file it named is removed at strip, not counted twice."""
    store.refpkgs.create("pkg", locus="L", files=[("tree", inputs["tree"]), ("readme", inputs["readme"])])
    store.append([NewEvent(stream="refpkg:pkg", event=RefpkgUpdated(name="pkg", files={"readme": None},
                                                                    message="drop readme"))])
    assert set(store.refpkgs.current("pkg").files) == {"tree"}
    assert store.refpkgs.strip("pkg").entry == "Stripped refpkg (removed 1 files)"


def test_strip_of_a_package_created_over_a_live_one_keeps_only_the_new_packages_log(store: Store) -> None:
    """A creation starts a log: the strip must not fold in the entries of the package it replaced."""
    store.refpkgs.create("pkg", locus="old")
    store.refpkgs.update_metadata("pkg", ["k=v"])
    store.append([NewEvent(stream="refpkg:pkg", event=RefpkgCreated(name="pkg", metadata={"locus": "new"},
                                                                    log=["fresh"]))])
    store.refpkgs.strip("pkg")
    assert store.refpkgs.info("pkg").log == ["Stripped refpkg (removed 0 files)", "fresh"]
    assert [e.message for e in store.refpkgs.log("pkg")] == ["Stripped refpkg (removed 0 files)", "fresh"]


def test_gc_after_strip_keeps_the_files_only_the_stripped_package_holds(store: Store, tmp_path: Path) -> None:
    r = store.refpkgs
    r.create("pkg", locus="L", files=[("a", text_file(tmp_path, "a", "v1"))])
    r.update_files("pkg", [f"a={text_file(tmp_path, 'b/a', 'v2')}"])
    r.strip("pkg")
    assert len(collect_garbage(store, grace=0).removed) == 1  # v1 only
    assert r.resource_path("pkg", "a").read_text() == "v2"
    assert r.check("pkg") == [f"RefPkg has no key {k}" for k in
                              ("aln_fasta", "aln_sto", "seq_info", "tree", "taxonomy", "phylo_model")]


def test_a_file_name_freed_by_a_discarded_step_and_reused_rebuilds_to_its_new_owner(
    store: Store, tmp_path: Path
) -> None:
    r = store.refpkgs
    r.create("pkg", locus="L", files=[("a", text_file(tmp_path, "a.txt", "1"))])
    r.update_files("pkg", [f"a={text_file(tmp_path, 'x/b.txt', 'X')}"])
    r.rollback("pkg")
    r.update_metadata("pkg", ["k=v"])  # discards the step naming b.txt (content X)
    assert r.update_files("pkg", [f"a={text_file(tmp_path, 'y/b.txt', 'Y')}"]).files["a"].name == "b.txt"
    view = next(v for v in store.views if v.name == "refpkgs")
    with store.read() as txn:
        before = list(view.contents(txn, store.environment))
    store.rebuild([view])  # one batch: b.txt loses its old owner, then gains the new one
    with store.read() as txn:
        assert list(view.contents(txn, store.environment)) == before
    collect_garbage(store, grace=0)
    assert r.resource_path("pkg", "a").read_text() == "Y"


def test_export_of_a_package_created_over_a_live_one_holds_no_rollback_into_the_old_package(
    store: Store, tmp_path: Path
) -> None:
    """``info`` says 0 rollbacks: the exported history must not let taxit roll back into the replaced package."""
    store.refpkgs.create("pkg", locus="old")
    store.refpkgs.update_metadata("pkg", ["k=v"])
    store.append([NewEvent(stream="refpkg:pkg", event=RefpkgCreated(name="pkg", metadata={"locus": "new"},
                                                                    log=["fresh"]))])
    assert store.refpkgs.info("pkg").rollbacks == 0
    store.refpkgs.export("pkg", tmp_path / "out.refpkg")
    contents = json.loads((tmp_path / "out.refpkg" / "CONTENTS.json").read_text())
    assert contents.get("rollback") is None and contents["metadata"]["locus"] == "new"


def test_the_newest_entry_of_a_package_created_over_a_live_one_with_an_empty_log_is_none(store: Store) -> None:
    store.refpkgs.create("pkg", locus="old")
    store.append([NewEvent(stream="refpkg:pkg", event=RefpkgCreated(name="pkg", metadata={"locus": "new"}))])
    assert store.refpkgs.info("pkg").log == [] and store.refpkgs.current("pkg").entry is None


def test_two_files_of_one_command_with_the_same_base_name_get_distinct_names(store: Store, tmp_path: Path) -> None:
    """Else one name would hold two contents and an export would keep only one of them."""
    state = store.refpkgs.create("pkg", locus="L", files=[("tree", text_file(tmp_path, "a/x.txt", "tree")),
                                                         ("readme", text_file(tmp_path, "b/x.txt", "readme"))])
    assert state.files["tree"].name != state.files["readme"].name
    state = store.refpkgs.update_files("pkg", [f"seq_info={text_file(tmp_path, 'c/y.csv', 'one')}",
                                               f"taxonomy={text_file(tmp_path, 'd/y.csv', 'two')}"])
    assert state.files["seq_info"].name != state.files["taxonomy"].name
    store.refpkgs.export("pkg", tmp_path / "out.refpkg")
    assert (tmp_path / "out.refpkg" / state.files["readme"].name).read_text() == "readme"
    assert (tmp_path / "out.refpkg" / state.files["taxonomy"].name).read_text() == "two"


def test_create_without_a_locus_is_refused_and_writes_nothing(store: Store) -> None:
    with pytest.raises(InvalidInputError, match="needs a locus"):
        store.refpkgs.create("pkg", locus="")
    assert store.head()[0] == 0


@pytest.mark.parametrize("verb", ["rollback", "rollforward"])
def test_a_zero_count_rollback_or_rollforward_is_refused(store: Store, verb: str) -> None:
    store.refpkgs.create("pkg", locus="L")
    with pytest.raises(InvalidInputError, match="-n must be at least 1, got 0"):
        getattr(store.refpkgs, verb)("pkg", 0)


# -- large files: what an update writes ------------------------------------------------------------


def _written_by_this_process() -> int:
    """Bytes this process has passed to write() so far (Linux /proc/self/io ``wchar``)."""
    text = Path("/proc/self/io").read_text()
    return int(next(line.split()[1] for line in text.splitlines() if line.startswith("wchar:")))


def test_an_unchanged_file_named_again_in_an_update_is_not_copied_again(store: Store, tmp_path: Path) -> None:
    # `update pkg aln_fasta=aln.fasta tree=new.nwk` after re-running only the tree: the unchanged
    # alignment (gigabytes at scale) was copied into a temp file and fsynced, then dropped as a duplicate.
    if not Path("/proc/self/io").is_file():
        pytest.skip("needs Linux /proc/self/io to count written bytes")
    import os

    aln = tmp_path / "aln.fasta"
    aln.write_bytes(b">s1\n" + os.urandom(2 << 20).hex().encode() + b"\n")
    store.refpkgs.create("pkg", locus="L", files=[("aln_fasta", aln)])
    tree = text_file(tmp_path, "tree.nwk", "(s1:0.1,s2:0.2);\n")
    before = _written_by_this_process()
    state = store.refpkgs.update_files("pkg", [f"aln_fasta={aln}", f"tree={tree}"])
    written = _written_by_this_process() - before
    assert written < aln.stat().st_size // 4, f"{written:,} bytes written"
    assert state.files["aln_fasta"] == store.refpkgs.info("pkg").files["aln_fasta"] and state.rollbacks == 1
    assert store.refpkgs.resource_path("pkg", "aln_fasta").read_bytes() == aln.read_bytes()


def test_an_unchanged_file_named_again_replaces_a_stored_copy_damaged_at_the_same_size(
    store: Store, tmp_path: Path
) -> None:
    good, other = ">s1\n" + "ACGT" * (1 << 18) + "\n", ">s1\n" + "GGGG" * (1 << 18) + "\n"  # 1 MiB: checked in place
    aln = text_file(tmp_path, "aln.fasta", good)
    state = store.refpkgs.create("pkg", locus="L", files=[("aln_fasta", aln)])
    blob = store.blobs.path(state.files["aln_fasta"].sha256)
    blob.chmod(0o644)
    blob.write_text(other)  # damaged in place, same size
    store.refpkgs.update_files("pkg", [f"aln_fasta={aln}"])
    assert store.refpkgs.resource_path("pkg", "aln_fasta").read_text() == good
    aln.write_text(other)  # same size, other bytes: a new blob, not the old one
    changed = store.refpkgs.update_files("pkg", [f"aln_fasta={aln}"]).files["aln_fasta"]
    assert changed.sha256 != state.files["aln_fasta"].sha256
    assert store.refpkgs.resource_path("pkg", "aln_fasta").read_text() == other


# -- remove -----------------------------------------------------------------------------------


def test_a_removed_package_is_gone_from_every_read_with_the_unknown_name_error(
    store: Store, tmp_path: Path
) -> None:
    r = store.refpkgs
    r.create("pkg1", locus="L", files=[("tree", text_file(tmp_path, "t.nwk", "(a:1);"))])
    r.create("pkg2", locus="L")
    removal = r.remove("pkg1")
    assert (removal.name, removal.files, removal.steps) == ("pkg1", 1, 1)
    assert [s.name for s in r.list_all()] == ["pkg2"]
    reads: list[Callable[[], object]] = [
        lambda: r.info("pkg1"), lambda: r.current("pkg1"), lambda: r.log("pkg1"), lambda: r.check("pkg1"),
        lambda: r.resource_path("pkg1", "tree"), lambda: r.export("pkg1", tmp_path / "out.refpkg"),
    ]
    for read in reads:
        with pytest.raises(NotFoundError, match=r"^no refpkg 'pkg1'; did you mean 'pkg2'") as caught:
            read()
        assert "\n" not in str(caught.value)
    assert not (tmp_path / "out.refpkg").exists()
    with store.read() as txn, pytest.raises(NotFoundError):
        r.state(txn, "pkg1")  # what the API reads: a removed package is a 404 like an unknown one


def test_remove_lets_gc_free_every_file_only_the_package_and_its_history_held(
    store: Store, tmp_path: Path
) -> None:
    r = store.refpkgs
    r.create("pkg", locus="L", files=[("a", text_file(tmp_path, "1/a", "v1"))])
    r.create("other", locus="L", files=[("a", text_file(tmp_path, "o/a", "shared"))])
    r.update_files("pkg", [f"a={text_file(tmp_path, '2/a', 'shared')}"])
    r.update_files("pkg", [f"a={text_file(tmp_path, '3/a', 'v3')}"])
    r.rollback("pkg")  # v3 on the redo side, v1 a rollback away, "shared" current and in "other"
    assert r.remove("pkg").steps == 3
    freed = collect_garbage(store, grace=0).removed
    assert sorted(freed) == sorted(hashlib.sha256(v).hexdigest() for v in (b"v1", b"v3"))
    assert r.resource_path("other", "a").read_text() == "shared"
    assert blob_count(store) == 1


def test_a_removed_name_is_created_or_imported_again_as_a_fresh_package(store: Store, tmp_path: Path) -> None:
    r = store.refpkgs
    r.create("pkg", locus="old", files=[("tree", text_file(tmp_path, "old/tree.nwk", "(old:1);"))])
    r.update_metadata("pkg", ["k=v"])
    r.export("pkg", tmp_path / "pkg.refpkg")
    r.remove("pkg")
    fresh = r.create("pkg", locus="new", files=[("tree", text_file(tmp_path, "new/tree.nwk", "(new:1);"))])
    assert fresh.files["tree"].name == "tree.nwk"  # the old package's file names are not taken any more
    info = r.info("pkg")
    assert (info.metadata["locus"], info.log, info.rollbacks, info.rollforwards) == ("new", CREATE_LOG, 0, 0)
    with pytest.raises(NothingToUndoError):
        r.rollback("pkg")
    r.remove("pkg")
    imported = r.import_package(tmp_path / "pkg.refpkg")
    assert (imported.metadata["locus"], imported.metadata["k"], imported.rollbacks) == ("old", "v", 1)
    assert r.rollback("pkg").metadata.get("k") is None
    assert [s.name for s in r.list_all()] == ["pkg"]


def test_commands_on_a_removed_package_are_not_found_and_the_engine_has_nothing_to_undo(
    store: Store, tmp_path: Path
) -> None:
    r = store.refpkgs
    r.create("pkg", locus="L")
    r.update_metadata("pkg", ["k=v"])
    r.rollback("pkg")
    r.remove("pkg")
    head = store.head()
    commands: list[Callable[[], object]] = [
        lambda: r.rollback("pkg"), lambda: r.rollforward("pkg"), lambda: r.strip("pkg"), lambda: r.remove("pkg"),
        lambda: r.update_metadata("pkg", ["k=w"]),
        lambda: r.update_files("pkg", [f"a={text_file(tmp_path, 'a', 'x')}"]),
    ]
    for command in commands:
        with pytest.raises(NotFoundError, match="no refpkg 'pkg'"):
            command()
    # The removal ends the stream's history: even the engine's generic undo and redo have nothing left.
    with pytest.raises(NothingToUndoError):
        store.append([NewEvent(stream="refpkg:pkg", event=Undone())])
    with pytest.raises(NothingToRedoError):
        store.append([NewEvent(stream="refpkg:pkg", event=Redone())])
    assert store.head() == head and blob_count(store) == 0  # the refused update stored no file


def test_a_removal_folds_to_the_same_bytes_in_one_batch_on_rebuild_and_on_a_mirror(
    store: Store, tmp_path: Path
) -> None:
    from rgstore.errors import ReadOnlyError
    from rgstore.mirror import pull
    from rgstore.replay import export_log
    from rgstore.verify import view_digests

    r = store.refpkgs
    r.create("pkg", locus="L", files=[("a", text_file(tmp_path, "1/a", "1"))])
    r.update_files("pkg", [f"a={text_file(tmp_path, '2/a', '2')}"])
    r.update_files("pkg", [f"a={text_file(tmp_path, '3/a', '3')}"])
    r.rollback("pkg")
    r.remove("pkg")  # a step on the redo side, one below: all dropped in the batch that made them
    r.create("pkg", locus="L2", files=[("a", text_file(tmp_path, "4/a", "1"))])
    r.update_metadata("pkg", ["k=v"])
    r.create("gone", locus="L")
    r.remove("gone")
    before = view_digests(store)
    assert store.rebuild() == store.head()[0] < REBUILD_BATCH  # every view, the whole log as one batch
    assert view_digests(store) == before
    assert r.info("pkg").rollbacks == 1 and [s.name for s in r.list_all()] == ["pkg"]
    export_log(store, tmp_path / "x.rglog")
    with Store.open(tmp_path / "mirror") as mirror:
        pull(mirror, str(tmp_path / "x.rglog"))
        assert view_digests(mirror) == before
        with pytest.raises(ReadOnlyError, match="mirror"):
            mirror.refpkgs.remove("pkg")


def test_cli_remove_frees_the_name_and_prints_json_like_its_siblings(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path
) -> None:
    tree = text_file(tmp_path, "tree.nwk", "(a:1);")
    assert cli("refpkg", "create", "my", "-l", "16S", "-t", str(tree)).exit_code == 0
    assert cli("refpkg", "update", "my", "--metadata", "k=v").exit_code == 0
    result = cli("refpkg", "remove", "my", "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert (shown["name"], shown["files"], shown["steps"]) == ("my", 1, 2) and shown["seq"] == 3
    assert json.loads(cli("refpkg", "list", "--json").stdout) == []
    result = cli("refpkg", "info", "my")
    assert (result.exit_code, result.stderr) == (1, "error: no refpkg 'my'; see `rgstore refpkg list`\n")
    assert cli("refpkg", "remove", "my").exit_code == 1
    assert cli("refpkg", "create", "my", "-l", "16S", "-t", str(tree)).exit_code == 0
    result = cli("refpkg", "remove", "my")
    assert result.exit_code == 0 and result.stdout.startswith("removed refpkg my (1 file, 1 retained step)")
    result = cli("gc", "--grace", "0", "--json")
    assert result.exit_code == 0 and len(json.loads(result.stdout)["removed"]) == 1


def test_refpkg_import_dash_reads_a_tar_gz_piped_on_standard_input(tmp_path: Path) -> None:
    from .conftest import run_rgstore

    with Store.open(tmp_path / "a") as store:
        store.refpkgs.create("pkg", locus="L", files=list(write_inputs(tmp_path / "inputs").items()))
        store.refpkgs.export("pkg", tmp_path / "pkg.tar.gz", fmt="tar")
        original = store.refpkgs.current("pkg")
    # input= is a pipe to the child, as after `curl ... |`: it cannot seek, so the tar is read once.
    done = run_rgstore("--store", str(tmp_path / "b"), "refpkg", "import", "-", "--name", "piped", "--json",
                       input=(tmp_path / "pkg.tar.gz").read_bytes())
    assert done.returncode == 0, done.stderr
    with Store.open(tmp_path / "b", readonly=True) as copy:
        assert copy.refpkgs.current("piped").files == original.files
    unnamed = run_rgstore("--store", str(tmp_path / "b"), "refpkg", "import", "-", input=b"")
    assert unnamed.returncode != 0 and len(unnamed.stderr.decode().strip().splitlines()) == 1, unnamed.stderr


def test_refpkg_import_dash_without_a_pipe_or_file_on_standard_input_is_a_usage_error(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "rgstore_cli", "--store", str(tmp_path / "s"), "refpkg", "import",
                           "-", "--name", "p"], stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert done.returncode == 2 and b"pipe one in" in done.stderr, done.stderr
    assert not (tmp_path / "s").exists()

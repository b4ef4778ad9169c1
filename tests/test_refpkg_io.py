"""Claims about interchange with taxtastic: real `taxit` packages in, taxtastic-compatible packages out."""

from __future__ import annotations

import io
import json
import random
import shutil
import tarfile
import zipfile
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rgstore.errors import ConflictError, IntegrityError, InvalidInputError, NotFoundError, NothingToUndoError
from rgstore.refpkg_io import default_name
from rgstore.refpkg_manifest import MAX_NESTING, Manifest, ManifestState, parse_manifest, render_manifest
from rgstore.refpkg_names import sanitise_filename
from rgstore.store import Store

from .refpkg_data import contents, taxit, write_inputs


@pytest.fixture(scope="module")
def taxit_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A package built by the real taxit: create, 3 updates, one rollback (so it has redo history)."""
    root = tmp_path_factory.mktemp("taxit")
    files = write_inputs(root / "inputs")
    pkg = root / "made.refpkg"
    taxit("create", "-P", pkg, "-l", "16S rRNA", "-a", "Ref Author", "-d", "test package", "--no-reroot",
          "-f", files["aln_fasta"], "-S", files["aln_sto"], "-i", files["seq_info"], "-T", files["taxonomy"],
          "-t", files["tree"], "-R", files["readme"])
    taxit("update", pkg, f"phylo_model={files['phylo_model']}")
    taxit("update", "--metadata", pkg, "package_version=0.2")
    tree2 = root / "inputs" / "tree.nwk"
    tree2.write_text("((s1:0.2,s3:0.2):0.05,s2:0.3);\n")
    taxit("update", pkg, f"tree={tree2}")
    taxit("rollback", pkg)
    return pkg


@pytest.fixture
def package(taxit_package: Path, tmp_path: Path) -> Path:
    """A private copy of the taxit-built package."""
    return Path(shutil.copytree(taxit_package, tmp_path / "made.refpkg"))


# -- export -----------------------------------------------------------------------------------


def test_exported_package_passes_taxit_check_and_taxit_update_and_rollback_work_on_it(
    store: Store, tmp_path: Path
) -> None:
    files = write_inputs(tmp_path / "inputs")
    r = store.refpkgs
    r.create("pkg", locus="16S", files=list(files.items()))
    r.update_metadata("pkg", ["author=Jane Doe"])
    before = r.info("pkg")
    r.update_files("pkg", [f"readme={tmp_path / 'inputs' / 'seqs.fasta'}"])
    out = tmp_path / "pkg.refpkg"
    r.export("pkg", out)
    assert taxit("check", out).stdout == ""
    # taxit's own rollback reaches our previous state, file for file
    taxit("rollback", out)
    back = contents(out)
    assert back["log"] == before.log
    assert back["files"] == {k: ref.name for k, ref in before.files.items()}
    assert back["md5"] == {k: ref.md5 for k, ref in before.files.items()}
    taxit("rollforward", out)
    new_readme = tmp_path / "NEWS.txt"
    new_readme.write_text("news\n")
    taxit("update", out, f"readme={new_readme}")
    assert taxit("check", out).stdout == ""
    assert contents(out)["log"][0] == f"Updates files: readme={new_readme}"


def test_export_without_history_writes_only_current_files(store: Store, tmp_path: Path) -> None:
    files = write_inputs(tmp_path / "inputs")
    store.refpkgs.create("pkg", locus="L", files=list(files.items()))
    other = tmp_path / "other.txt"
    other.write_text("x")
    store.refpkgs.update_files("pkg", [f"readme={other}"])
    out = tmp_path / "out"
    store.refpkgs.export("pkg", out, history=False)
    doc = contents(out)
    assert doc["rollback"] is None and doc["rollforward"] is None and len(doc["log"]) == 3
    assert sorted(p.name for p in out.iterdir()) == sorted([*doc["files"].values(), "CONTENTS.json"])
    assert taxit("check", out).stdout == ""


def test_zip_and_tar_exports_hold_one_top_folder_and_import_back_equal(store: Store, tmp_path: Path) -> None:
    files = write_inputs(tmp_path / "inputs")
    store.refpkgs.create("pkg", locus="L", files=list(files.items()))
    store.refpkgs.update_metadata("pkg", ["a=1"])
    store.refpkgs.export("pkg", tmp_path / "dir")
    store.refpkgs.export("pkg", tmp_path / "pkg.refpkg.zip", fmt="zip")
    store.refpkgs.export("pkg", tmp_path / "pkg.refpkg.tar.gz", fmt="tar")
    with zipfile.ZipFile(tmp_path / "pkg.refpkg.zip") as archive:
        assert [i.filename for i in archive.infolist() if i.is_dir()] == ["pkg.refpkg/"]
    with tarfile.open(tmp_path / "pkg.refpkg.tar.gz") as archive:
        assert {m.name.split("/")[0] for m in archive.getmembers()} == {"pkg.refpkg"}
    for name, source in (("z", "pkg.refpkg.zip"), ("t", "pkg.refpkg.tar.gz")):
        store.refpkgs.import_package(tmp_path / source, name=name)
        store.refpkgs.export(name, tmp_path / f"{name}.out")
        assert contents(tmp_path / f"{name}.out") == contents(tmp_path / "dir")


def _io_of_this_process(field: str) -> int:
    """Bytes this process has passed to read() (``rchar``) or write() (``wchar``) so far (Linux /proc/self/io)."""
    text = Path("/proc/self/io").read_text()
    return int(next(line.split()[1] for line in text.splitlines() if line.startswith(f"{field}:")))


@pytest.mark.parametrize("fmt", ["tar", "zip"])
def test_importing_an_archive_streams_members_into_the_store_without_a_temp_copy(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    # A 300 MB package used to be copied member by member into $TMPDIR and then into blobs/: every
    # byte written twice, and a whole second copy in $TMPDIR (often a small tmpfs) until the end.
    if not Path("/proc/self/io").is_file():
        pytest.skip("needs Linux /proc/self/io to count written bytes")
    import os
    import tempfile

    files = write_inputs(tmp_path / "inputs")
    big = tmp_path / "inputs" / "big.fasta"
    big.write_bytes(b">s1\n" + os.urandom(3 << 20).hex().encode() + b"\n")  # 6 MiB, incompressible
    store.refpkgs.create("pkg", locus="L", files=[*files.items(), ("aln_fasta", big)])
    archive = tmp_path / f"pkg.{'zip' if fmt == 'zip' else 'tar.gz'}"
    store.refpkgs.export("pkg", archive, fmt=fmt)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-tmpdir"))  # $TMPDIR gone: nothing may need it
    before = _io_of_this_process("wchar")
    state = store.refpkgs.import_package(archive, name="again")
    written = _io_of_this_process("wchar") - before
    assert state.files == store.refpkgs.current("pkg").files
    size = big.stat().st_size
    assert size <= written < size * 3 // 2, f"{written:,} bytes written to import {size:,}"


def test_importing_a_tar_gz_with_history_reads_its_members_in_archive_order(store: Store, tmp_path: Path) -> None:
    # History files sit in the archive in another order than the manifest's states; reading them in
    # state order sent gzip back to the stream's start for each (5x `tar xzf` on 20 versions).
    if not Path("/proc/self/io").is_file():
        pytest.skip("needs Linux /proc/self/io to count read bytes")
    import os

    files = write_inputs(tmp_path / "inputs")
    store.refpkgs.create("pkg", locus="L", files=list(files.items()))
    for version in range(6):
        aln = tmp_path / f"v{version}.fasta"
        aln.write_bytes(b">s1\n" + os.urandom(1 << 19).hex().encode() + b"\n")
        store.refpkgs.update_files("pkg", [f"aln_fasta={aln}"])
    store.refpkgs.rollback("pkg", 2)
    archive = tmp_path / "pkg.tar.gz"
    store.refpkgs.export("pkg", archive, fmt="tar")
    with Store.open(tmp_path / "other") as other:  # a fresh store: no stored blob to verify on the way
        before = _io_of_this_process("rchar")
        state = other.refpkgs.import_package(archive)
        read = _io_of_this_process("rchar") - before
    assert (state.rollbacks, state.rollforwards) == (4, 2)
    size = archive.stat().st_size  # one pass now (test_a_tar_gz_file_is_read_once); it was three
    assert read < size * 4, f"{read:,} bytes read to import a {size:,}-byte archive"


def test_export_refuses_an_existing_destination(store: Store, tmp_path: Path) -> None:
    store.refpkgs.create("pkg", locus="L")
    (tmp_path / "out").mkdir()
    with pytest.raises(ConflictError, match="already exists"):
        store.refpkgs.export("pkg", tmp_path / "out")


def test_import_and_export_refuse_an_empty_path_in_one_line(store: Store) -> None:
    store.refpkgs.create("pkg", locus="L")
    with pytest.raises(InvalidInputError, match="^empty path for the refpkg directory or archive; name one$"):
        store.refpkgs.import_package("")
    with pytest.raises(InvalidInputError, match="^empty path for the refpkg export; name one$"):
        store.refpkgs.export("pkg", "")


def test_export_refuses_a_history_too_deep_for_taxtastic(store: Store, tmp_path: Path) -> None:
    store.refpkgs.create("pkg", locus="L", files=list(write_inputs(tmp_path / "inputs").items()))
    depth = (MAX_NESTING - 2) // 2 + 1
    for i in range(depth):
        store.refpkgs.update_metadata("pkg", [f"k={i}"])
    store.refpkgs.rollback("pkg", depth)
    with pytest.raises(InvalidInputError, match="--no-history"):
        store.refpkgs.export("pkg", tmp_path / "deep")
    store.refpkgs.export("pkg", tmp_path / "flat", history=False)
    assert taxit("check", tmp_path / "flat").stdout == ""


def test_exported_file_names_are_sanitised(store: Store, tmp_path: Path) -> None:
    weird = tmp_path / "we\x01ird\tname.txt"
    weird.write_text("x")
    info = store.refpkgs.create("pkg", locus="L", files=[("readme", weird)])
    assert info.files["readme"].name == "we_ird_name.txt"
    store.refpkgs.export("pkg", tmp_path / "out")
    assert (tmp_path / "out" / "we_ird_name.txt").read_text() == "x"
    assert sanitise_filename("..") == "file" and sanitise_filename("a/b\\c") == "a_b_c"


# -- import -----------------------------------------------------------------------------------


def test_import_of_a_taxit_package_then_export_round_trips(
    store: Store, package: Path, tmp_path: Path
) -> None:
    info = store.refpkgs.import_package(package)
    assert info.name == "made"
    assert (info.rollbacks, info.rollforwards) == (2, 1)
    store.refpkgs.export("made", tmp_path / "again")
    assert contents(tmp_path / "again") == contents(package)
    for name in contents(package)["files"].values():
        assert (tmp_path / "again" / name).read_bytes() == (package / name).read_bytes()


@pytest.mark.parametrize("steps", [("rollback", "2"), ("rollforward", "1"), ("rollback", "1")])
def test_rollback_after_import_behaves_as_taxit_rollback(
    store: Store, package: Path, tmp_path: Path, steps: tuple[str, str]
) -> None:
    verb, n = steps
    theirs = Path(shutil.copytree(package, tmp_path / "theirs"))
    taxit(verb, "-n", n, theirs)
    store.refpkgs.import_package(package, name="ours")
    getattr(store.refpkgs, verb)("ours", int(n))
    store.refpkgs.export("ours", tmp_path / "ours")
    assert contents(tmp_path / "ours") == contents(theirs)


def test_rollback_errors_after_import_match_taxit(store: Store, package: Path) -> None:
    proc = taxit("rollback", "-n", "9", package, check=False)
    assert proc.returncode == 1
    store.refpkgs.import_package(package, name="ours")
    with pytest.raises(NothingToUndoError) as err:
        store.refpkgs.rollback("ours", 9)
    assert str(err.value) in proc.stderr


def test_import_accepts_a_minimal_old_style_manifest(store: Store, tmp_path: Path) -> None:
    files = write_inputs(tmp_path / "old.refpkg")
    import hashlib

    manifest = {
        "metadata": {"format_version": "1.1", "locus": "16S"},
        "files": {k: p.name for k, p in files.items()},
        "md5": {k: hashlib.md5(p.read_bytes()).hexdigest().upper() for k, p in files.items()},
    }
    (tmp_path / "old.refpkg" / "CONTENTS.json").write_text(json.dumps(manifest))
    info = store.refpkgs.import_package(tmp_path / "old.refpkg")
    assert (info.name, info.entry, info.rollbacks) == ("old", None, 0) and store.refpkgs.info("old").log == []
    store.refpkgs.export("old", tmp_path / "new")
    doc = contents(tmp_path / "new")
    assert doc["log"] == [] and doc["rollback"] is None and doc["rollforward"] is None
    assert doc["md5"] == {k: v.lower() for k, v in manifest["md5"].items()}
    assert taxit("check", tmp_path / "new").stdout == ""


def test_import_verifies_every_md5_and_a_mismatch_leaves_no_trace(store: Store, package: Path) -> None:
    # a file only the rollback history names is checked too
    history_only = contents(package)["rollforward"][1]["files"]["tree"]
    (package / history_only).write_text("((s1,s2),s3);\n")
    with pytest.raises(IntegrityError, match=f"File {history_only} referred to by key tree did not match"):
        store.refpkgs.import_package(package)
    assert store.head()[0] == 0 and list(store.blobs.all()) == []
    info = store.refpkgs.import_package(package, history=False)
    assert (info.rollbacks, info.rollforwards) == (0, 0)
    assert store.refpkgs.info(info.name).log == contents(package)["log"] and info.entry == contents(package)["log"][0]


def test_a_file_recorded_with_two_md5s_names_both_states_and_the_way_out(store: Store, tmp_path: Path) -> None:
    # It was "(<md5> for key a, <md5> for key a)": the same key twice, not saying which state of CONTENTS.json to fix.
    import hashlib

    pkg = tmp_path / "two.refpkg"
    pkg.mkdir()
    (pkg / "a.txt").write_bytes(b"fine")
    good = hashlib.md5(b"fine").hexdigest()
    old = {"metadata": {}, "files": {"a": "a.txt"}, "md5": {"a": "0" * 32}, "rollback": None, "rollforward": None}
    (pkg / "CONTENTS.json").write_text(json.dumps({"metadata": {}, "files": {"a": "a.txt"}, "md5": {"a": good},
                                                   "log": ["Updated a", "Loaded"], "rollback": old,
                                                   "rollforward": None}))
    with pytest.raises(InvalidInputError) as caught:
        store.refpkgs.import_package(pkg)
    assert str(caught.value) == (
        f"file a.txt is recorded with two MD5 sums ({'0' * 32} for key a in rollback state 1, {good} for key a in "
        "the current state); correct CONTENTS.json, or import with --no-history to keep just the current state")
    assert store.head()[0] == 0 and list(store.blobs.all()) == []
    assert store.refpkgs.import_package(pkg, history=False).rollbacks == 0


@pytest.mark.parametrize("history", [True, False])
def test_two_keys_of_the_current_state_with_two_md5s_name_the_current_state_and_offer_no_history_way_out(
    store: Store, tmp_path: Path, history: bool
) -> None:
    # It offered --no-history (which cannot help: the current state disagrees with itself), and without history
    # it called the current state "rollback state 1" (indexing the states history would have replayed).
    import hashlib

    pkg = tmp_path / "two.refpkg"
    pkg.mkdir()
    (pkg / "a.txt").write_bytes(b"fine")
    good = hashlib.md5(b"fine").hexdigest()
    old = {"metadata": {}, "files": {"a": "a.txt"}, "md5": {"a": good}, "rollback": None, "rollforward": None}
    (pkg / "CONTENTS.json").write_text(json.dumps({"metadata": {}, "files": {"a": "a.txt", "b": "a.txt"},
                                                   "md5": {"a": good, "b": "0" * 32}, "log": ["Updated", "Loaded"],
                                                   "rollback": old, "rollforward": None}))
    with pytest.raises(InvalidInputError) as caught:
        store.refpkgs.import_package(pkg, history=history)
    assert str(caught.value) == (
        f"file a.txt is recorded with two MD5 sums ({good} for key a, {'0' * 32} for key b, both in the current "
        "state); correct CONTENTS.json")
    assert store.head()[0] == 0


@pytest.mark.parametrize("name", [None, "pkg"])
def test_importing_dev_null_names_it_a_character_device_not_a_pipe_or_a_missing_package(
    store: Store, name: str | None
) -> None:
    # It was "/dev/null is a pipe, whose name is not the package's" (no --name), else "does not exist".
    with pytest.raises(InvalidInputError, match="^/dev/null is a character device, not a package$"):
        store.refpkgs.import_package(Path("/dev/null"), name=name)
    assert store.head()[0] == 0


def test_import_of_a_missing_history_file_is_refused(store: Store, package: Path) -> None:
    name = contents(package)["rollforward"][1]["files"]["tree"]
    (package / name).unlink()
    with pytest.raises(NotFoundError, match=f"File {name} referred to by key tree is missing"):
        store.refpkgs.import_package(package)
    assert store.head()[0] == 0 and list(store.blobs.all()) == []


def test_a_bad_history_only_file_error_points_at_no_history_and_a_bad_current_file_does_not(
    store: Store, package: Path
) -> None:
    # taxit only reads old files on rollback, so a user who deleted or edited them still has a working
    # package: the refusal must say it is the history and how to import the current state alone
    old = contents(package)["rollforward"][1]["files"]["tree"]
    (package / old).unlink()
    with pytest.raises(NotFoundError, match="rollback/rollforward history names it: import with --no-history"):
        store.refpkgs.import_package(package)
    (package / old).write_text("((s1,s2),s3);\n")
    with pytest.raises(IntegrityError, match="history names it: import with --no-history"):
        store.refpkgs.import_package(package)
    assert store.refpkgs.import_package(package, history=False).rollbacks == 0
    current = contents(package)["files"]["aln_fasta"]
    (package / current).write_text(">s1\nA\n")
    with pytest.raises(IntegrityError, match=f"File {current} referred to by key aln_fasta") as caught:
        store.refpkgs.import_package(package, name="other")
    assert "--no-history" not in str(caught.value)


@pytest.mark.parametrize("bad", ["../outside.txt", "/etc/passwd", "sub/dir.txt", "a\nb", "..",
                                 "CONTENTS.json", "\ud800.txt"])
def test_import_refuses_file_names_that_could_escape_the_package(
    store: Store, tmp_path: Path, bad: str
) -> None:
    pkg = tmp_path / "evil"
    pkg.mkdir()
    (tmp_path / "outside.txt").write_text("secret")
    doc = {"metadata": {}, "files": {"x": bad}, "md5": {"x": "0" * 32}}
    (pkg / "CONTENTS.json").write_text(json.dumps(doc))
    with pytest.raises(InvalidInputError, match="refusing file name"):
        store.refpkgs.import_package(pkg)
    assert store.head()[0] == 0 and list(store.blobs.all()) == []


@pytest.mark.parametrize("table", ["metadata", "log"])
def test_a_lone_surrogate_escape_in_the_manifest_is_a_one_line_error_and_leaves_no_trace(
    store: Store, tmp_path: Path, table: str
) -> None:
    # json.loads turns "\udcff" into a str no UTF-8 log can hold; the encoder used to raise UnicodeEncodeError.
    pkg = tmp_path / "odd"
    pkg.mkdir()
    (pkg / "a.txt").write_bytes(b"x")
    doc: dict[str, object] = {"metadata": {}, "files": {"tree": "a.txt"}, "md5": {"tree": "9dd4e461268c8034f5c8564e155c67a6"}}
    if table == "metadata":
        doc["metadata"] = {"locus": "16S\udcff"}
    else:
        doc["log"] = ["made by \udcff"]
    (pkg / "CONTENTS.json").write_bytes(json.dumps(doc).encode())
    with pytest.raises(InvalidInputError, match="is not valid Unicode"):
        store.refpkgs.import_package(pkg)
    assert store.head()[0] == 0 and list(store.blobs.all()) == [] and store.verify().ok


def test_a_file_name_with_bytes_that_are_not_utf8_is_sanitised() -> None:
    # os.listdir and sys.argv carry such bytes as lone surrogates; len(name.encode()) used to raise.
    assert sanitise_filename("seqs\udcff.fasta") == "seqs_.fasta"


def test_import_does_not_follow_symlinks_out_of_the_package(store: Store, tmp_path: Path) -> None:
    import hashlib

    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    pkg = tmp_path / "linky"
    pkg.mkdir()
    (pkg / "a.txt").symlink_to(secret)
    doc = {"metadata": {}, "files": {"x": "a.txt"}, "md5": {"x": hashlib.md5(b"secret").hexdigest()}}
    (pkg / "CONTENTS.json").write_text(json.dumps(doc))
    with pytest.raises(NotFoundError, match="is not a regular file .symlinks and folders are refused"):
        store.refpkgs.import_package(pkg)
    assert list(store.blobs.all()) == []


def test_import_refuses_a_symlinked_manifest_as_it_refuses_a_symlinked_file(
    store: Store, package: Path, tmp_path: Path
) -> None:
    # Every file a package names is refused when it is a symlink, but a symlinked CONTENTS.json was followed.
    elsewhere = tmp_path / "elsewhere.json"
    (package / "CONTENTS.json").rename(elsewhere)
    (package / "CONTENTS.json").symlink_to(elsewhere)
    with pytest.raises(NotFoundError) as refused:
        store.refpkgs.import_package(package)
    assert str(refused.value) == (f"manifest file CONTENTS.json in {package} is not a regular file "
                                  "(symlinks and folders are refused)")
    assert list(store.blobs.all()) == [] and store.refpkgs.list_all() == []


def test_importing_a_hostile_tar_writes_nothing_outside_the_store(store: Store, tmp_path: Path) -> None:
    import hashlib

    work = tmp_path / "work"
    work.mkdir()
    archive = tmp_path / "hostile.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in (("../../escaped.txt", b"boom"), ("/tmp/abs-escape.txt", b"boom"),
                           ("pkg/a.txt", b"fine")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("pkg/link.txt")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
        doc = json.dumps({"metadata": {}, "files": {"a": "a.txt"},
                          "md5": {"a": hashlib.md5(b"fine").hexdigest()}}).encode()
        info = tarfile.TarInfo("pkg/CONTENTS.json")
        info.size = len(doc)
        tar.addfile(info, io.BytesIO(doc))
    imported = store.refpkgs.import_package(archive, name="ok")
    assert list(imported.files) == ["a"]
    assert not (tmp_path / "escaped.txt").exists() and not Path("/tmp/abs-escape.txt").exists()
    assert list(work.iterdir()) == []
    # a manifest naming the symlink member finds no regular file there
    with tarfile.open(archive) as tar:
        members = [(m, tar.extractfile(m).read() if m.isreg() else None)  # type: ignore[union-attr]
                   for m in tar.getmembers()]
    doc2 = json.dumps({"metadata": {}, "files": {"a": "link.txt"}, "md5": {"a": "0" * 32}}).encode()
    with tarfile.open(tmp_path / "linked.tar.gz", "w:gz") as tar:
        for member, data in members:
            if member.name.endswith("CONTENTS.json"):
                member.size, data = len(doc2), doc2
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    with pytest.raises(NotFoundError, match="link.txt referred to by key a is missing"):
        store.refpkgs.import_package(tmp_path / "linked.tar.gz", name="linked")


def test_import_refuses_an_existing_name_and_accepts_a_new_one(store: Store, package: Path) -> None:
    store.refpkgs.import_package(package)
    with pytest.raises(ConflictError, match="already exists"):
        store.refpkgs.import_package(package)
    assert store.refpkgs.import_package(package, name="copy").name == "copy"


@pytest.mark.parametrize("text, why", [
    (b"{not json", "not JSON"),
    (b'{"files": {"a": "a"}, "md5": {}, "metadata": {}}', "different keys"),
    (b'{"files": {}, "md5": {}}', "no key 'metadata'"),
    (b'{"files": {}, "md5": {}, "metadata": {}, "rollforward": [1, {}]}', "pair"),
    (b'{"files": {}, "md5": {}, "metadata": {}, "log": [], "rollback": '
     b'{"files": {}, "md5": {}, "metadata": {}}}', "1 rollback states but only 0 log entries"),
    # json.loads keeps the last "tree", a first-wins reader the first: the checked name is not the one used
    (b'{"files": {"tree": "../../etc/passwd", "tree": "t.nwk"}, "md5": {"tree": "' + b"0" * 32 + b'"}, '
     b'"metadata": {}}', "key 'tree' appears twice in one object"),
])
def test_malformed_manifests_are_refused_with_the_reason(text: bytes, why: str) -> None:
    with pytest.raises(InvalidInputError, match=why):
        parse_manifest(text)


def test_default_import_names_drop_archive_and_refpkg_suffixes() -> None:
    assert [default_name(Path(p)) for p in ("a.refpkg", "a.refpkg.tar.gz", "a.zip", "dir/b.tgz", "c")] == [
        "a", "a", "a", "b", "c"]


def test_default_import_names_drop_the_bzip2_and_xz_tar_suffixes_import_reads_too() -> None:
    # `rgstore refpkg import p.refpkg.tar.xz` named the package "p.refpkg.tar.xz"
    assert [default_name(Path(p)) for p in ("a.refpkg.tar.bz2", "b.tbz2", "c.refpkg.TAR.XZ", "d.txz")] == [
        "a", "b", "c", "d"]


def test_importing_dot_names_the_package_after_its_folder(
    store: Store, package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(package)
    assert store.refpkgs.import_package(Path(".")).name == default_name(package) != ""
    weird = package.parent / "has space.refpkg"
    package.rename(weird)
    with pytest.raises(InvalidInputError, match="invalid refpkg name 'has space'.*--name NAME"):
        store.refpkgs.import_package(weird)


# -- the manifest text ------------------------------------------------------------------------

_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8)
_states = st.builds(
    ManifestState,
    files=st.dictionaries(
        _text, st.tuples(_text, st.text("0123456789abcdef", min_size=32, max_size=32)), max_size=3
    ),
    metadata=st.dictionaries(_text, _text, max_size=3),
    message=_text,
)


# No deadline: a CI VM descheduled for 200 ms mid-example must not fail a claim about bytes.
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(current=_states, rollbacks=st.lists(_states, max_size=4), rollforwards=st.lists(_states, max_size=4),
       extra_log=st.lists(_text, max_size=3))
def test_rendered_manifest_is_byte_identical_to_taxtastics_json_dump(
    current: ManifestState, rollbacks: list[ManifestState], rollforwards: list[ManifestState],
    extra_log: list[str],
) -> None:
    log = [f"entry {i}" for i in range(len(rollbacks))] + extra_log
    manifest = Manifest(current=current, log=log, rollbacks=rollbacks, rollforwards=rollforwards)

    def plain(s: ManifestState) -> dict:  # type: ignore[type-arg]
        metadata = {**s.metadata}
        metadata.setdefault("format_version", "1.1")  # pplacer's requirement, filled in where absent
        return {"metadata": metadata, "files": {k: n for k, (n, _) in s.files.items()},
                "md5": {k: d for k, (_, d) in s.files.items()}}

    rollback = None
    for s in reversed(rollbacks):
        rollback = {**plain(s), "rollback": rollback}
    logs, running = [], log
    for s in rollforwards:
        running = [s.message, *running]
        logs.append(running)
    rollforward = None
    for s, state_log in reversed(list(zip(rollforwards, logs, strict=True))):
        rollforward = [s.message, {**plain(s), "log": state_log, "rollforward": rollforward}]
    doc = {**plain(current), "log": log, "rollback": rollback, "rollforward": rollforward}
    assert render_manifest(manifest) == json.dumps(doc, indent=4) + "\n"
    parsed = parse_manifest(render_manifest(manifest).encode())
    assert (len(parsed.rollbacks), len(parsed.rollforwards)) == (len(rollbacks), len(rollforwards))
    assert parsed.log == log


def test_a_zip_symlink_entry_is_never_read_through(store: Store, tmp_path: Path) -> None:
    import hashlib

    archive = tmp_path / "linky.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(zipfile.ZipInfo("pkg/"), b"")
        link = zipfile.ZipInfo("pkg/a.txt")
        link.external_attr = 0o120777 << 16  # a symlink entry whose target is /etc/passwd
        zf.writestr(link, b"/etc/passwd")
        zf.writestr("../escape.txt", b"boom")
        doc = {"metadata": {}, "files": {"a": "a.txt"}, "md5": {"a": hashlib.md5(b"/etc/passwd").hexdigest()}}
        zf.writestr("pkg/CONTENTS.json", json.dumps(doc))
    with pytest.raises(NotFoundError, match="a.txt referred to by key a is missing"):
        store.refpkgs.import_package(archive)
    assert not (tmp_path.parent / "escape.txt").exists() and list(store.blobs.all()) == []


# -- metadata keys and format_version ---------------------------------------------------------


def _edit_manifest(package: Path, edit) -> None:  # type: ignore[no-untyped-def]
    doc = contents(package)
    edit(doc)
    (package / "CONTENTS.json").write_text(json.dumps(doc, indent=4) + "\n")


@pytest.mark.parametrize("where", ["current", "rollback", "rollforward"])
@pytest.mark.parametrize("key", ["bad\x1bkey", "two\nlines", "", "a=b"])
def test_import_refuses_metadata_keys_that_update_metadata_refuses(  # type: ignore[no-untyped-def]
    cli, store_path: Path, package: Path, where: str, key: str
) -> None:
    def edit(doc: dict) -> None:  # type: ignore[type-arg]
        state = {"current": doc, "rollback": doc["rollback"], "rollforward": doc["rollforward"][1]}[where]
        state["metadata"][key] = "v"

    _edit_manifest(package, edit)
    with Store.open(store_path) as store:
        with pytest.raises(InvalidInputError) as refused:
            store.refpkgs.update_metadata("nope", [(key, "v")])
        assert store.head()[0] == 0
    result = cli("refpkg", "import", str(package))
    assert result.exit_code == 1
    assert result.stderr == f"error: {refused.value}\n"
    with Store.open(store_path) as store:
        assert store.head()[0] == 0 and list(store.blobs.all()) == []


def test_import_names_the_contents_keys_the_format_has_not_and_keeps_none_of_them(  # type: ignore[no-untyped-def]
    cli, store_path: Path, package: Path, tmp_path: Path
) -> None:
    def edit(doc: dict) -> None:  # type: ignore[type-arg]
        doc["x"] = {"tool": "other"}
        doc["y"] = 1
        doc["rollback"]["x"] = "copied by taxit's transactions"
        doc["rollforward"][1]["z"] = []

    _edit_manifest(package, edit)
    result = cli("refpkg", "import", str(package), "--json")
    assert result.exit_code == 0, result.output
    assert result.stderr == ("note: CONTENTS.json keys 'x', 'y', 'z' are not part of the refpkg format "
                             "and were not kept\n")
    shown = json.loads(result.stdout)
    assert shown["dropped_keys"] == ["x", "y", "z"] and shown["name"] == "made"
    text = cli("refpkg", "import", str(package), "--name", "again")
    assert text.exit_code == 0 and text.stderr.startswith("note: CONTENTS.json keys 'x', 'y', 'z' are not")
    with Store.open(store_path) as store:
        assert store.refpkgs.current("made").dropped_keys is msgspec.UNSET  # reported once, never stored
        store.refpkgs.export("made", tmp_path / "out.refpkg")
    doc = contents(tmp_path / "out.refpkg")
    assert "x" not in doc and "x" not in doc["rollback"] and "z" not in doc["rollforward"][1]
    _edit_manifest(package, lambda doc: [doc.pop("x"), doc.pop("y"), doc["rollback"].pop("x"),
                                         doc["rollforward"][1].pop("z")])
    plain = cli("refpkg", "import", str(package), "--name", "clean", "--json")
    assert plain.stderr == "" and "dropped_keys" not in json.loads(plain.stdout)


def test_import_names_one_unknown_key_in_the_singular(cli, package: Path) -> None:  # type: ignore[no-untyped-def]
    _edit_manifest(package, lambda doc: doc.update(notes="kept by taxit"))
    result = cli("refpkg", "import", str(package))
    assert result.exit_code == 0
    assert result.stderr == "note: CONTENTS.json key 'notes' is not part of the refpkg format and was not kept\n"
    assert result.stdout.startswith("made: seq ")


def test_import_names_the_files_no_state_names_and_strip_then_counts_only_history_files(
    store: Store, package: Path, tmp_path: Path
) -> None:
    # taxit strip deletes every entry CONTENTS.json does not name, foreign files included; import never
    # stores those, so `refpkg strip` counts fewer: the import says which it left, for every container.
    (package / "notes.txt").write_text("mine\n")
    (package / ".hidden").write_text("x\n")
    shutil.make_archive(str(tmp_path / "made"), "zip", package.parent, package.name)
    shutil.make_archive(str(tmp_path / "made"), "gztar", package.parent, package.name)
    for source, name in ((package, "d"), (tmp_path / "made.zip", "z"), (tmp_path / "made.tar.gz", "t")):
        assert store.refpkgs.import_package(source, name=name).unnamed_files == [".hidden", "notes.txt"]
    assert store.refpkgs.strip("d").entry == "Stripped refpkg (removed 1 files)"  # tree.nwk of the undone update
    taxit("strip", package)
    assert contents(package)["log"][0] == "Stripped refpkg (removed 3 files)"


def test_import_notes_the_files_it_left_on_stderr(cli, package: Path) -> None:  # type: ignore[no-untyped-def]
    (package / "notes.txt").write_text("mine\n")
    (package / ".hidden").write_text("x\n")
    result = cli("refpkg", "import", str(package))
    assert result.exit_code == 0, result.output
    assert result.stderr == ("note: 2 entries of the package are named by no state of CONTENTS.json and not "
                             "imported (taxit strip would delete them): .hidden, notes.txt\n")


def test_import_of_a_package_holding_only_named_files_names_none(store: Store, package: Path) -> None:
    assert store.refpkgs.import_package(package).unnamed_files is msgspec.UNSET


def test_a_minimal_manifest_without_format_version_exports_one_that_pplacer_accepts(
    store: Store, taxit_package: Path, tmp_path: Path
) -> None:
    old = tmp_path / "old.refpkg"
    old.mkdir()
    current = contents(taxit_package)
    for name in current["files"].values():
        shutil.copy(taxit_package / name, old / name)
    manifest = {"files": current["files"], "md5": current["md5"], "metadata": {"locus": "16S rRNA"}}
    (old / "CONTENTS.json").write_text(json.dumps(manifest))
    store.refpkgs.import_package(old)
    for fmt, dest in (("dir", tmp_path / "new.refpkg"), ("zip", tmp_path / "new.zip")):
        store.refpkgs.export("old", dest, fmt=fmt)
    doc = contents(tmp_path / "new.refpkg")
    assert doc["metadata"] == {"locus": "16S rRNA", "format_version": "1.1"}
    assert taxit("check", tmp_path / "new.refpkg").stdout == ""
    with zipfile.ZipFile(tmp_path / "new.zip") as archive:
        assert json.loads(archive.read("new/CONTENTS.json"))["metadata"]["format_version"] == "1.1"


def test_a_pre_1_1_package_without_format_version_exports_without_one(
    store: Store, taxit_package: Path, tmp_path: Path
) -> None:
    # pplacer 1.0's layout (tree_file, phylo_model_file: pplacer's tests/data/COG0003.refpkg) had no
    # format_version; export stamped "1.1" on it, so pplacer read it as 1.1 and failed on a missing `tree`
    # instead of saying the package is of the older format.
    old = tmp_path / "cog.refpkg"
    old.mkdir()
    current = contents(taxit_package)
    renamed = {"tree": "tree_file", "phylo_model": "phylo_model_file"}
    for name in current["files"].values():
        shutil.copy(taxit_package / name, old / name)
    files = {renamed.get(k, k): v for k, v in current["files"].items()}
    md5 = {renamed.get(k, k): v for k, v in current["md5"].items()}
    (old / "CONTENTS.json").write_text(json.dumps({"files": files, "md5": md5, "metadata": {"locus": "COG0003"}}))
    store.refpkgs.import_package(old)
    for fmt, dest in (("dir", tmp_path / "back.refpkg"), ("zip", tmp_path / "back.zip")):
        store.refpkgs.export("cog", dest, fmt=fmt)
    doc = contents(tmp_path / "back.refpkg")
    assert doc["metadata"] == {"locus": "COG0003"} and doc["files"] == files  # as it came in
    with zipfile.ZipFile(tmp_path / "back.zip") as archive:
        assert "format_version" not in json.loads(archive.read("back/CONTENTS.json"))["metadata"]


def _minimal_package(source: Path, dest: Path, renamed: dict[str, str]) -> Path:
    """A copy of ``source``'s current state under a manifest of files, md5 and a locus only (no format_version)."""
    dest.mkdir()
    current = contents(source)
    for name in current["files"].values():
        shutil.copy(source / name, dest / name)
    files = {renamed.get(k, k): v for k, v in current["files"].items()}
    md5 = {renamed.get(k, k): v for k, v in current["md5"].items()}
    (dest / "CONTENTS.json").write_text(json.dumps({"files": files, "md5": md5, "metadata": {"locus": "16S"}}))
    return dest


def test_info_shows_the_recorded_format_version_and_says_what_export_writes_when_none_is_recorded(  # type: ignore[no-untyped-def]
    cli, taxit_package: Path, tmp_path: Path
) -> None:
    # info showed no format_version for a package recorded without one, though export writes "1.1".
    renamed = {"tree": "tree_file", "phylo_model": "phylo_model_file"}
    for name, source, keys in (("min", _minimal_package(taxit_package, tmp_path / "min.refpkg", {}), {}),
                               ("cog", _minimal_package(taxit_package, tmp_path / "cog.refpkg", renamed), renamed),
                               ("made", taxit_package, {})):
        assert cli("refpkg", "import", str(source), "--name", name).exit_code == 0
    expected = {"min": ("1.1", "format_version: none recorded; refpkg export writes 1.1\n"),
                "cog": (None, "format_version: none recorded; refpkg export writes none (pre-1.1 file keys)\n"),
                "made": ("1.1", None)}
    for name, (version, line) in expected.items():
        doc = json.loads(cli("refpkg", "info", name, "--json").stdout)
        assert doc["export_format_version"] == version
        assert json.loads(cli("refpkg", "strip", name, "--json").stdout)["export_format_version"] == version
        assert ("format_version" in doc["metadata"]) == (name == "made")  # metadata stays what was recorded
        text = cli("refpkg", "info", name).stdout.splitlines(keepends=True)
        assert [t for t in text if "none recorded" in t] == ([line] if line else [])
        assert any(t.split() == ["format_version", "1.1"] for t in text) == (name == "made")


def test_check_accepts_a_1_1_package_without_format_version_as_export_writes_one(
    store: Store, taxit_package: Path, tmp_path: Path
) -> None:
    store.refpkgs.import_package(_minimal_package(taxit_package, tmp_path / "min.refpkg", {}))
    assert store.refpkgs.check("min") == []


def test_check_says_pplacer_refuses_a_pre_1_1_package_without_format_version(
    store: Store, taxit_package: Path, tmp_path: Path
) -> None:
    # pplacer refuses a package without format_version as "an older, incompatible format"; export keeps a
    # pre-1.1 package's absence (it stamps none), so check, which treated an absent version as 1.1, missed it.
    renamed = {"tree": "tree_file", "phylo_model": "phylo_model_file"}
    store.refpkgs.import_package(_minimal_package(taxit_package, tmp_path / "cog.refpkg", renamed))
    assert store.refpkgs.check("cog") == [
        "RefPkg has no key tree",
        "RefPkg has no key phylo_model",
        "format_version is missing and the package has pre-1.1 file keys (phylo_model_file, tree_file): "
        "pplacer refuses it as an older, incompatible format; it reads only 1.1.",
    ]


def test_format_version_is_filled_in_per_state_only_where_the_state_uses_the_1_1_keys() -> None:
    old = ManifestState(files={"tree_file": ("t.nwk", "0" * 32)}, metadata={"locus": "x"})
    new = ManifestState(files={"tree": ("t.nwk", "0" * 32)}, metadata={"locus": "x"})
    kept = ManifestState(files={"tree_file": ("t.nwk", "0" * 32)}, metadata={"format_version": "1.0"})
    doc = json.loads(render_manifest(Manifest(current=new, log=["moved"], rollbacks=[old, kept])))
    assert doc["metadata"] == {"locus": "x", "format_version": "1.1"}
    assert doc["rollback"]["metadata"] == {"locus": "x"}
    assert doc["rollback"]["rollback"]["metadata"] == {"format_version": "1.0"}


def test_every_exported_history_state_carries_format_version(
    store: Store, package: Path, tmp_path: Path
) -> None:
    def drop(doc: dict) -> None:  # type: ignore[type-arg]
        state: dict | None = doc  # type: ignore[type-arg]
        while state is not None:
            state["metadata"].pop("format_version")
            state = state["rollback"]
        doc["rollforward"][1]["metadata"].pop("format_version")

    _edit_manifest(package, drop)
    store.refpkgs.import_package(package, name="ours")
    store.refpkgs.export("ours", tmp_path / "ours")
    doc = contents(tmp_path / "ours")
    assert doc["metadata"]["format_version"] == doc["rollforward"][1]["metadata"]["format_version"] == "1.1"
    assert doc["rollback"]["metadata"]["format_version"] == "1.1"
    taxit("rollback", "-n", "2", tmp_path / "ours")
    assert contents(tmp_path / "ours")["metadata"]["format_version"] == "1.1"


@pytest.mark.parametrize("fmt", ["dir", "tar", "zip"])
def test_import_progress_counts_bytes_so_a_big_alignment_moves_the_bar(store: Store, tmp_path: Path, fmt: str) -> None:
    # A package is a few files, one often a GB alignment: a bar counting files sat still for minutes.
    from tests.progress_recorder import Bars

    files = write_inputs(tmp_path / "inputs")
    big = tmp_path / "inputs" / "big.fasta"
    big.write_text(">s1\n" + "".join(random.Random(1).choices("ACGT", k=3 << 20)) + "\n")  # 3 MiB: several chunks
    store.refpkgs.create("pkg", locus="L", files=[*files.items(), ("aln_fasta", big)])
    target = tmp_path / {"dir": "pkg.refpkg", "tar": "pkg.tar.gz", "zip": "pkg.zip"}[fmt]
    store.refpkgs.export("pkg", target, fmt=None if fmt == "dir" else fmt)
    bars = Bars()
    state = store.refpkgs.import_package(target, name="again", progress=bars)
    # A tar is read once, its manifest often last: no file's size is known ahead, the archive's is.
    total = target.stat().st_size if fmt == "tar" else sum(ref.size for ref in state.files.values())
    assert bars.units == ["B"] and bars.totals() == [["import files", total, total]]
    assert len(bars.bars[0][2]) > 3  # type: ignore[arg-type]  # moved as the alignment streamed, not once per file


def test_a_package_in_a_directory_whose_name_is_not_utf8_imports_with_that_byte_escaped(
    store: Store, tmp_path: Path
) -> None:
    import os

    files = write_inputs(tmp_path / "inputs")
    store.refpkgs.create("pkg", locus="L", files=list(files.items()))
    out = Path(os.fsdecode(bytes(tmp_path) + b"/p\xe9.refpkg"))  # a Latin-1 name: a lone surrogate in Python
    store.refpkgs.export("pkg", out)
    store.refpkgs.import_package(out, name="again")
    with store.read() as txn:
        imported = [e.event for e in store.log.envelopes(txn) if e.stream == "refpkg:again"][0]
    assert imported.source == os.fsdecode(bytes(tmp_path)) + "/p\\xe9.refpkg"

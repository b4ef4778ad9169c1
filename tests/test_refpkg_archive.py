"""Claims about package containers: damaged archives fail in one line, exports get ordinary modes."""

from __future__ import annotations

import json
import os
import stat
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

from rgstore.errors import IntegrityError, InvalidInputError, NotFoundError
from rgstore.files import FILE_MODE
from rgstore.store import Store

from .refpkg_data import taxit, write_inputs


@pytest.fixture(scope="module")
def taxit_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A package made by the real taxit, with one update so it carries a history file."""
    root = tmp_path_factory.mktemp("taxit")
    files = write_inputs(root / "inputs")
    pkg = root / "made.refpkg"
    taxit("create", "-P", pkg, "-l", "16S rRNA", "--no-reroot", "-f", files["aln_fasta"],
          "-S", files["aln_sto"], "-i", files["seq_info"], "-T", files["taxonomy"], "-t", files["tree"])
    taxit("update", pkg, f"phylo_model={files['phylo_model']}")
    return pkg


def _tar(pkg: Path, dest: Path) -> Path:
    with tarfile.open(dest, "w:gz") as tar:
        tar.add(pkg, arcname=pkg.name)
    return dest


def _zip(pkg: Path, dest: Path, compression: int) -> Path:
    with zipfile.ZipFile(dest, "w", compression) as archive:
        for path in sorted(pkg.iterdir()):
            archive.write(path, f"{pkg.name}/{path.name}")
    return dest


def _untouched(store: Store) -> bool:
    return store.head()[0] == 0 and list(store.blobs.all()) == []


# -- 1. truncated tar.gz ----------------------------------------------------------------------


@pytest.mark.parametrize("keep", [0.25, 0.5, 0.75, 0.97])
def test_a_truncated_tar_gz_is_refused_in_one_line_and_leaves_nothing(  # type: ignore[no-untyped-def]
    cli, store_path: Path, taxit_dir: Path, tmp_path: Path, keep: float
) -> None:
    whole = _tar(taxit_dir, tmp_path / "whole.tar.gz").read_bytes()
    cut = tmp_path / "made.refpkg.tar.gz"
    cut.write_bytes(whole[: int(len(whole) * keep)])
    result = cli("refpkg", "import", str(cut))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {cut} is damaged (truncated or corrupt): ")
    assert result.stderr.count("\n") == 1 and "Aborted" not in result.output
    with Store.open(store_path) as store:
        assert _untouched(store)
        assert store.refpkgs.list_all() == []


def test_a_whole_tar_gz_of_a_taxit_package_still_imports(store: Store, taxit_dir: Path, tmp_path: Path) -> None:
    info = store.refpkgs.import_package(_tar(taxit_dir, tmp_path / "made.refpkg.tar.gz"))
    assert (info.name, info.rollbacks) == ("made", 1)


def test_a_truncated_member_read_after_others_were_stored_leaves_no_blob(
    store: Store, taxit_dir: Path, tmp_path: Path
) -> None:
    # an uncompressed tar whose last member is cut short: the listing succeeds, reading fails
    plain = tmp_path / "made.tar"
    with tarfile.open(plain, "w") as tar:
        tar.add(taxit_dir / "CONTENTS.json", arcname="made.refpkg/CONTENTS.json")
        for path in sorted(taxit_dir.iterdir()):
            if path.name != "CONTENTS.json" and path.name != "seqs.fasta":
                tar.add(path, arcname=f"made.refpkg/{path.name}")
        tar.add(taxit_dir / "seqs.fasta", arcname="made.refpkg/seqs.fasta")
    data = plain.read_bytes()
    member_end = data.rfind(b">s3 sample s3")
    plain.write_bytes(data[:member_end])
    with pytest.raises(InvalidInputError, match="is damaged"):
        store.refpkgs.import_package(plain)
    assert _untouched(store)


# -- 2. zip with a bad CRC --------------------------------------------------------------------


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_a_zip_member_with_a_bad_crc_is_refused_in_one_line(  # type: ignore[no-untyped-def]
    cli, store_path: Path, taxit_dir: Path, tmp_path: Path, compression: int
) -> None:
    archive = _zip(taxit_dir, tmp_path / "made.refpkg.zip", compression)
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo("made.refpkg/tree.nwk")
    # the member's data starts after its 30-byte local header, name and extra field
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + info.compress_size // 2] ^= 0x01
    archive.write_bytes(bytes(data))
    result = cli("refpkg", "import", str(archive))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {archive} is damaged (truncated or corrupt): ")
    assert result.stderr.count("\n") == 1
    with Store.open(store_path) as store:
        assert _untouched(store)


@pytest.mark.parametrize("keep", [0.25, 0.5, 0.97])
def test_a_truncated_zip_file_is_called_damaged_not_a_pipe(  # type: ignore[no-untyped-def]
    cli, store_path: Path, taxit_dir: Path, tmp_path: Path, keep: float
) -> None:
    # Cut short, a zip has no central directory, so it is not recognised as one and is read as a tar.
    whole = _zip(taxit_dir, tmp_path / "whole.zip", zipfile.ZIP_DEFLATED).read_bytes()
    cut = tmp_path / "made.refpkg.zip"
    cut.write_bytes(whole[: int(len(whole) * keep)])
    result = cli("refpkg", "import", str(cut))
    assert result.exit_code == 1
    assert result.stderr == f"error: {cut} is damaged (truncated or corrupt): a zip without its central directory\n"
    with Store.open(store_path) as store:
        assert _untouched(store)


def test_a_zip_whose_manifest_has_a_bad_crc_is_refused(store: Store, taxit_dir: Path, tmp_path: Path) -> None:
    archive = _zip(taxit_dir, tmp_path / "made.refpkg.zip", zipfile.ZIP_STORED)
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo("made.refpkg/CONTENTS.json")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + 10] ^= 0x01
    archive.write_bytes(bytes(data))
    with pytest.raises(InvalidInputError, match="Bad CRC-32"):
        store.refpkgs.import_package(archive)
    assert _untouched(store)


@pytest.mark.parametrize("container", ["dir", "tar.gz", "zip"])
def test_a_manifest_over_the_size_limit_is_refused_before_it_is_read(  # type: ignore[no-untyped-def]
    store: Store, taxit_dir: Path, tmp_path: Path, monkeypatch, container: str
) -> None:
    from rgstore import refpkg_archive, refpkg_tar

    # An archive can inflate CONTENTS.json to gigabytes; the limit is checked from the declared size.
    size = (taxit_dir / "CONTENTS.json").stat().st_size
    for module in (refpkg_archive, refpkg_tar):
        monkeypatch.setattr(module, "MAX_MANIFEST_BYTES", size - 1)
    source = {"dir": lambda: taxit_dir, "tar.gz": lambda: _tar(taxit_dir, tmp_path / "made.refpkg.tar.gz"),
              "zip": lambda: _zip(taxit_dir, tmp_path / "made.refpkg.zip", zipfile.ZIP_DEFLATED)}[container]()
    with pytest.raises(InvalidInputError, match=f"CONTENTS.json is {size:,} bytes, over the {size - 1:,}-byte limit"):
        store.refpkgs.import_package(source)
    assert _untouched(store)
    for module in (refpkg_archive, refpkg_tar):
        monkeypatch.setattr(module, "MAX_MANIFEST_BYTES", size)
    store.refpkgs.import_package(source)


# -- 3. exported modes ------------------------------------------------------------------------


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_an_exported_directory_gets_the_modes_of_an_ordinary_mkdir_and_open(
    store: Store, tmp_path: Path
) -> None:
    store.refpkgs.create("pkg", locus="L", files=list(write_inputs(tmp_path / "inputs").items()))
    store.refpkgs.export("pkg", tmp_path / "out.refpkg")
    (tmp_path / "plain").mkdir()
    mode = stat.S_IMODE((tmp_path / "out.refpkg").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain").stat().st_mode) == 0o777 & ~_umask()
    files = list((tmp_path / "out.refpkg").iterdir())
    assert len(files) == 8
    assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {FILE_MODE}
    taxit("check", tmp_path / "out.refpkg")


def test_exported_archives_get_an_ordinary_files_mode(store: Store, tmp_path: Path) -> None:
    store.refpkgs.create("pkg", locus="L", files=list(write_inputs(tmp_path / "inputs").items()))
    for fmt, name in (("tar", "out.tar.gz"), ("zip", "out.zip")):
        store.refpkgs.export("pkg", tmp_path / name, fmt=fmt)
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == FILE_MODE


def test_a_zip_of_a_package_dated_before_1980_exports_west_of_utc(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # A clock still at 1970 (no RTC, before NTP) dated the package; in New York 1980-01-01 UTC is 1979 locally.
    import hashlib
    import time
    from datetime import datetime, timezone

    from rgstore.events import FileRef
    from rgstore.refpkg_export import write_package

    monkeypatch.setenv("TZ", "XST5")  # 5 h west of UTC; needs no zoneinfo files
    time.tzset()
    try:
        data = b">a\nACGT\n"
        (tmp_path / "a").write_bytes(data)
        ref = FileRef(name="a.fa", sha256=hashlib.sha256(data).hexdigest(), md5=hashlib.md5(data).hexdigest(),
                      size=len(data))
        write_package(tmp_path / "p.zip", "zip", b"{}", {"a.fa": ref}, lambda _ref: open(tmp_path / "a", "rb"),
                      datetime(1975, 1, 1, tzinfo=timezone.utc), lambda _n: None)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    with zipfile.ZipFile(tmp_path / "p.zip") as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def _export_bytes(store_path: Path, fmt: str, dest: Path, tz: str, seed: str, umask: int) -> bytes:
    """Export package "pkg" with the real CLI in a fresh process with this TZ, hash seed and umask."""
    import subprocess
    import sys

    from .conftest import REPO

    dest.parent.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "rgstore_cli", "--store", str(store_path), "refpkg", "export", "pkg", f"--{fmt}",
         str(dest)],
        cwd=REPO, env={**os.environ, "TZ": tz, "PYTHONHASHSEED": seed}, umask=umask, capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return dest.read_bytes()


@pytest.mark.parametrize(("fmt", "name"), [("tar", "pkg.tar.gz"), ("zip", "pkg.zip")])
def test_exporting_a_package_twice_gives_identical_archive_bytes_in_any_time_zone_seed_and_umask(
    tmp_path: Path, fmt: str, name: str
) -> None:
    # A pipeline (Snakemake, Nextflow) hashes its inputs: the gzip header must not carry the temp
    # file's random name or the clock, nor zip entry times the exporting machine's time zone.
    with Store.open(tmp_path / "store") as store:
        store.refpkgs.create("pkg", locus="L", files=list(write_inputs(tmp_path / "inputs").items()))
    first = _export_bytes(tmp_path / "store", fmt, tmp_path / "a" / name, "UTC0", "1", 0o022)
    second = _export_bytes(tmp_path / "store", fmt, tmp_path / "b" / name, "XST-13", "2", 0o077)
    assert first == second
    if fmt == "tar":
        assert first[3] & 0x08 == 0  # FLG.FNAME: no file name in the gzip header
    (tmp_path / "x").mkdir()
    if fmt == "tar":
        with tarfile.open(tmp_path / "a" / name) as tar:
            # Our own export; `filter` arrived in 3.11.4 (Debian 12's python3 is 3.11.2, which requires-python admits).
            tar.extractall(tmp_path / "x", **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    else:
        with zipfile.ZipFile(tmp_path / "a" / name) as archive:
            archive.extractall(tmp_path / "x")
    taxit("check", tmp_path / "x" / "pkg")


@pytest.mark.parametrize(("fmt", "name", "maker"), [("dir", "pkg.refpkg", "_mkdir_temp"),
                                                     ("tar", "pkg.refpkg.tar.gz", "mkstemp"),
                                                     ("zip", "pkg.refpkg.zip", "mkstemp")])
def test_a_sigterm_handled_the_moment_the_export_temp_exists_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str, name: str, maker: str
) -> None:
    # CPython runs a signal handler right after the call that made the temp returns, before write_package had
    # bound its name: the CLI's SIGTERM left a hidden .pkg.refpkg.tmp-* beside the export (seen under load).
    from datetime import datetime, timezone

    from rgstore import refpkg_export
    from rgstore.interrupts import interrupt

    make = getattr(refpkg_export, maker)

    def made_then_signalled(*args: object, **kwargs: object) -> object:
        made = make(*args, **kwargs)
        interrupt(SystemExit(143))  # what the CLI's SIGTERM handler does
        return made

    monkeypatch.setattr(refpkg_export, maker, made_then_signalled)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(SystemExit):
        refpkg_export.write_package(out / name, fmt, b"{}", {}, lambda ref: open(os.devnull, "rb"),
                                    datetime.now(timezone.utc), lambda n: None)
    assert list(out.iterdir()) == []


# -- 4. tar bombs in the headers ----------------------------------------------------------------


def _tar_gz_of_header_claiming(dest: Path, kind: str, size: int) -> Path:
    """A .tar.gz whose first member is metadata (GNU long name, pax record, sparse map) of ``size`` bytes.

    The zeros compress ~1000:1, so the file stays tiny whatever the claim; tarfile held it all in memory.
    """
    import zlib

    blocks = size // 512
    if kind == "sparse":
        info = tarfile.TarInfo("p/x")
        info.type = tarfile.GNUTYPE_SPARSE
        header = bytearray(info.tobuf(format=tarfile.GNU_FORMAT))
        header[482] = 1  # "isextended": a chain of 512-byte blocks of 21 (offset, size) pairs follows
        header[148:156] = b" " * 8
        header[148:156] = b"%06o\0 " % sum(header)
        ext = bytearray(b"00000000001\0" * 42 + bytes(8))
        ext[504] = 1
        body = bytes(ext) * (blocks - 1) + bytes(ext[:504]) + bytes(8)
    else:
        info = tarfile.TarInfo("././@LongLink")
        info.type, info.size = {"gnu-longname": tarfile.GNUTYPE_LONGNAME, "pax": tarfile.XHDTYPE}[kind], size
        header = bytearray(info._create_header(info.get_info(), tarfile.GNU_FORMAT, "utf-8",  # type: ignore[attr-defined]
                                               "surrogateescape"))
        body = bytes(blocks * 512)
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    dest.write_bytes(packer.compress(bytes(header) + body + bytes(1024)) + packer.flush())
    return dest


@pytest.mark.parametrize("kind", ["gnu-longname", "pax", "sparse"])
@pytest.mark.parametrize("first", [True, False], ids=["first-member", "after-the-manifest"])
def test_a_tar_gz_whose_header_metadata_claims_megabytes_is_refused_before_it_is_held(  # type: ignore[no-untyped-def]
    cli, store_path: Path, taxit_dir: Path, tmp_path: Path, kind: str, first: bool
) -> None:
    from rgstore.refpkg_tar import MAX_HEADER_BYTES

    bomb = _tar_gz_of_header_claiming(tmp_path / "bomb.tar.gz", kind, 4 * MAX_HEADER_BYTES)
    pkg = tmp_path / "made.refpkg.tar.gz"
    if first:
        pkg.write_bytes(bomb.read_bytes())
    else:  # a real package's members, then the bomb (a gzip file may hold several members)
        import gzip

        with tarfile.open(tmp_path / "plain.tar", "w", format=tarfile.GNU_FORMAT) as tar:
            tar.add(taxit_dir, arcname=taxit_dir.name)
        plain = (tmp_path / "plain.tar").read_bytes().rstrip(b"\0")  # drop the end-of-archive blocks
        plain += bytes(-len(plain) % 512)
        pkg.write_bytes(gzip.compress(plain) + bomb.read_bytes())
    assert pkg.stat().st_size < MAX_HEADER_BYTES
    result = cli("refpkg", "import", str(pkg))
    assert result.exit_code == 1
    assert result.stderr == (f"error: {pkg}: a tar member's metadata is over the {MAX_HEADER_BYTES:,}-byte limit, "
                             "which no refpkg needs\n")
    with Store.open(store_path) as store:
        assert _untouched(store)


def test_a_tar_gz_listing_more_members_than_any_package_is_refused(  # type: ignore[no-untyped-def]
    store: Store, taxit_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    from rgstore import refpkg_tar

    pkg = _tar(taxit_dir, tmp_path / "made.refpkg.tar.gz")
    with tarfile.open(pkg) as tar:
        count = len(tar.getmembers())
    monkeypatch.setattr(refpkg_tar, "MAX_MEMBERS", count - 1)
    with pytest.raises(InvalidInputError, match=f"^{pkg} lists over {count - 1:,} members, which no refpkg has$"):
        store.refpkgs.import_package(pkg)
    assert _untouched(store)
    monkeypatch.setattr(refpkg_tar, "MAX_MEMBERS", count)
    store.refpkgs.import_package(pkg)


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_a_tar_gz_whose_folder_name_needs_a_long_name_header_still_imports(
    store: Store, taxit_dir: Path, tmp_path: Path, fmt: int
) -> None:
    folder = "p" * 180 + ".refpkg"  # member paths over 100 bytes need a GNU long name or a pax record
    pkg = tmp_path / "long.tar.gz"
    with tarfile.open(pkg, "w:gz", format=fmt) as tar:
        tar.add(taxit_dir, arcname=folder)
    assert store.refpkgs.import_package(pkg, name="long").files == store.refpkgs.import_package(taxit_dir).files


def test_a_zip_made_by_info_zip_with_a_non_ascii_file_name_imports(store: Store, tmp_path: Path) -> None:
    # `zip -r pkg.zip pkg.refpkg` on Linux stores a name's UTF-8 bytes without the zip UTF-8 flag;
    # zipfile then reads them as cp437 ('caf├⌐.nwk'), and the package's café.nwk looked missing.
    import hashlib
    import json

    tree = b"(a,b);\n"
    manifest = {"metadata": {"format_version": "1.1"}, "files": {"tree": "café.nwk"},
                "md5": {"tree": hashlib.md5(tree).hexdigest()}}
    placeholder = b"cafXX.nwk"  # as long as the UTF-8 bytes of café.nwk, swapped in below
    assert len(placeholder) == len("café.nwk".encode())
    pkg = tmp_path / "p.refpkg.zip"
    with zipfile.ZipFile(pkg, "w") as archive:
        archive.writestr("p.refpkg/CONTENTS.json", json.dumps(manifest))
        archive.writestr(f"p.refpkg/{placeholder.decode()}", tree)
    pkg.write_bytes(pkg.read_bytes().replace(placeholder, "café.nwk".encode()))
    with zipfile.ZipFile(pkg) as archive:  # what Info-ZIP writes: no flag, so zipfile decodes cp437
        assert not archive.getinfo("p.refpkg/caf├⌐.nwk").flag_bits & 0x800
    state = store.refpkgs.import_package(pkg)
    assert state.files["tree"].name == "café.nwk"
    assert store.blobs.read_bytes(state.files["tree"].sha256) == tree


# -- 5. a tar is read once, front to back (a file or a pipe) ----------------------------------


def _history_tar_gz(store: Store, tmp_path: Path) -> Path:
    """An exported .tar.gz with a rollback and a rollforward state (its CONTENTS.json is its last member)."""
    files = write_inputs(tmp_path / "inputs")
    store.refpkgs.create("pkg", locus="L", files=list(files.items()))
    for version in range(3):
        aln = tmp_path / f"v{version}.fasta"
        aln.write_text(f">s1 v{version}\n" + "ACGT" * (version + 1) + "\n")
        store.refpkgs.update_files("pkg", [f"aln_fasta={aln}"])
    store.refpkgs.rollback("pkg")
    archive = tmp_path / "pkg.tar.gz"
    store.refpkgs.export("pkg", archive, fmt="tar")
    return archive


class _Feeder:
    """Writes a file into a FIFO from a thread, as `cat pkg.tar.gz |` would, counting the bytes taken."""

    def __init__(self, source: Path, fifo: Path) -> None:
        import threading

        self.source, self.fifo, self.written, self.error = source, fifo, 0, None  # type: ignore[var-annotated]
        os.mkfifo(fifo)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            with open(self.fifo, "wb") as out, open(self.source, "rb") as src:
                while chunk := src.read(4096):
                    out.write(chunk)
                    self.written += len(chunk)
        except BrokenPipeError as exc:  # the reader closed early
            self.error = exc  # type: ignore[assignment]

    def join(self) -> None:
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()


def test_a_tar_gz_through_a_pipe_imports_with_its_history(store: Store, tmp_path: Path) -> None:
    # `curl .../pkg.tar.gz | rgstore refpkg import /dev/stdin --name pkg`: a pipe cannot seek, so this
    # only works when the archive is read once, front to back (it was listed, then rewound twice).
    archive = _history_tar_gz(store, tmp_path)
    feeder = _Feeder(archive, tmp_path / "pipe")
    state = store.refpkgs.import_package(feeder.fifo, name="piped")
    feeder.join()
    assert feeder.error is None and feeder.written == archive.stat().st_size
    original = store.refpkgs.current("pkg")
    assert (state.files, state.metadata, state.rollbacks, state.rollforwards) == (
        original.files, original.metadata, original.rollbacks, original.rollforwards)


@pytest.mark.parametrize(("piped", "said"), [
    (b"<html><body>404 Not Found</body></html>\n",  # `curl -sL URL` of a moved package: an error page
     "standard input is not a tar archive (plain, gzip, bzip2 or xz), the one form a package can come through a pipe in"),
    (b"PK\x03\x04" + bytes(60), "standard input is a zip, which cannot be read from a pipe: import it from a file"),
])
def test_import_dash_of_a_pipe_that_holds_no_tar_names_standard_input_not_dev_stdin(
        tmp_path: Path, rgstore_proc: Any, piped: bytes, said: str) -> None:
    proc = rgstore_proc("--store", str(tmp_path / "s"), "refpkg", "import", "-", "--name", "p", input=piped)
    assert (proc.returncode, proc.stderr.decode()) == (1, f"error: {said}\n")


@pytest.mark.parametrize("damage", ["truncated", "member missing"])
def test_every_refusal_of_a_package_piped_to_import_dash_names_standard_input(
        tmp_path: Path, rgstore_proc: Any, taxit_dir: Path, damage: str) -> None:
    whole = _tar(taxit_dir, tmp_path / "whole.tar.gz").read_bytes()
    if damage == "truncated":
        piped, said = whole[: len(whole) // 2], "error: standard input is damaged (truncated or corrupt): "
    else:
        left_out = tmp_path / "lacking.tar.gz"
        tree = json.loads((taxit_dir / "CONTENTS.json").read_text())["files"]["tree"]
        with tarfile.open(left_out, "w:gz") as tar:
            for path in sorted(taxit_dir.iterdir()):
                if path.name != tree:
                    tar.add(path, f"{taxit_dir.name}/{path.name}")
        piped, said = left_out.read_bytes(), "error: File "
    proc = rgstore_proc("--store", str(tmp_path / "s"), "refpkg", "import", "-", "--name", "p", input=piped)
    err = proc.stderr.decode()
    assert proc.returncode == 1 and err.startswith(said) and err.count("\n") == 1, err
    assert "/dev/stdin" not in err and (damage == "truncated" or " is missing from standard input " in err), err


def test_a_package_piped_to_import_dash_records_its_source_as_dash_as_genome_init_does(
        tmp_path: Path, rgstore_proc: Any, taxit_dir: Path) -> None:
    piped = _tar(taxit_dir, tmp_path / "whole.tar.gz").read_bytes()
    proc = rgstore_proc("--store", str(tmp_path / "s"), "refpkg", "import", "-", "--name", "p", input=piped)
    assert proc.returncode == 0, proc.stderr.decode()
    unnamed = rgstore_proc("--store", str(tmp_path / "s"), "refpkg", "import", "-", input=piped)
    assert (unnamed.returncode, unnamed.stderr.decode()) == (
        1, "error: standard input has no name to give the package; name it with --name NAME\n")
    with Store.open(tmp_path / "s", readonly=True) as store:
        [imported] = store.events(type="refpkg-imported")
    assert imported.event.source == "-"  # type: ignore[attr-defined]


def test_a_tar_gz_file_is_read_once(store: Store, tmp_path: Path) -> None:
    # Listing, then the manifest (its last member), then the members: a .tar.gz was inflated three times.
    if not Path("/proc/self/io").is_file():
        pytest.skip("needs Linux /proc/self/io to count read bytes")
    files = write_inputs(tmp_path / "inputs")
    big = tmp_path / "big.fasta"
    big.write_bytes(b">s1\n" + os.urandom(2 << 20).hex().encode() + b"\n")  # 4 MiB, barely compressible
    store.refpkgs.create("pkg", locus="L", files=[*files.items(), ("aln_fasta", big)])
    archive = tmp_path / "pkg.tar.gz"
    store.refpkgs.export("pkg", archive, fmt="tar")

    def rchar() -> int:
        text = Path("/proc/self/io").read_text()
        return int(next(line.split()[1] for line in text.splitlines() if line.startswith("rchar:")))

    with Store.open(tmp_path / "other") as other:  # a fresh store: no stored blob to compare on the way
        before = rchar()
        other.refpkgs.import_package(archive)
        read = rchar() - before
    size = archive.stat().st_size
    assert size <= read < size * 5 // 4, f"{read:,} bytes read to import a {size:,}-byte archive"


def test_a_pipe_needs_a_name_and_cannot_carry_a_zip(store: Store, taxit_dir: Path, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "unnamed")
    with pytest.raises(InvalidInputError, match="unnamed is a pipe, whose name is not the package's; name the package"):
        store.refpkgs.import_package(tmp_path / "unnamed")  # refused before the pipe is opened: nothing blocks
    feeder = _Feeder(_zip(taxit_dir, tmp_path / "made.refpkg.zip", zipfile.ZIP_DEFLATED), tmp_path / "pipe")
    with pytest.raises(InvalidInputError, match="pipe is a zip, which cannot be read from a pipe: import it from a file"):
        store.refpkgs.import_package(feeder.fifo, name="z")
    feeder.join()
    assert _untouched(store)


def test_a_tar_gz_imported_without_history_keeps_no_blob_of_the_files_it_skipped(
    store: Store, tmp_path: Path
) -> None:
    # The manifest comes last, so every member was stored before it was known which the import needs.
    archive = _history_tar_gz(store, tmp_path)
    with Store.open(tmp_path / "other") as other:
        state = other.refpkgs.import_package(archive, history=False)
        assert sorted(other.blobs.all()) == sorted({ref.sha256 for ref in state.files.values()})
        assert (state.rollbacks, state.rollforwards) == (0, 0)


def test_a_tar_gz_whose_manifest_comes_first_imports_through_a_pipe_storing_only_the_files_it_names(
    store: Store, tmp_path: Path
) -> None:
    archive = _history_tar_gz(store, tmp_path)
    first = tmp_path / "first.tar.gz"
    with tarfile.open(archive) as src, tarfile.open(first, "w:gz") as dest:
        members = sorted(src.getmembers(), key=lambda m: not m.name.endswith("/CONTENTS.json"))
        for member in members:
            dest.addfile(member, src.extractfile(member) if member.isreg() else None)
    feeder = _Feeder(first, tmp_path / "pipe")
    with Store.open(tmp_path / "other") as other:
        state = other.refpkgs.import_package(feeder.fifo, name="first", history=False)
        feeder.join()
        assert state.files == store.refpkgs.current("pkg").files
        assert sorted(other.blobs.all()) == sorted({ref.sha256 for ref in state.files.values()})


@pytest.mark.parametrize("through", ["file", "pipe"])
def test_a_contents_json_met_twice_counts_as_its_last_even_for_files_the_first_did_not_name(
    store: Store, tmp_path: Path, through: str
) -> None:
    import hashlib
    import io
    import json

    def manifest(name: str, data: bytes) -> bytes:
        return json.dumps({"metadata": {"format_version": "1.1"}, "files": {"tree": name},
                           "md5": {"tree": hashlib.md5(data).hexdigest()}}).encode()

    pkg = tmp_path / "twice.tar.gz"
    with tarfile.open(pkg, "w:gz") as tar:
        for name, data in (("CONTENTS.json", manifest("a.nwk", b"(a);\n")), ("a.nwk", b"(a);\n"),
                           ("b.nwk", b"(b);\n"), ("CONTENTS.json", manifest("b.nwk", b"(b);\n"))):
            info = tarfile.TarInfo(f"twice/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    if through == "file":  # the member the first manifest did not name is read in a second pass
        state = store.refpkgs.import_package(pkg)
        assert store.blobs.read_bytes(state.files["tree"].sha256) == b"(b);\n"
        assert sorted(store.blobs.all()) == [state.files["tree"].sha256]
        return
    feeder = _Feeder(pkg, tmp_path / "pipe")
    with pytest.raises(InvalidInputError, match="CONTENTS.json is met twice, naming files the first one did not"):
        store.refpkgs.import_package(feeder.fifo, name="twice")
    feeder.join()
    assert _untouched(store)


# -- 6. a tar read once, against hostile or odd archives ----------------------------------------


def _small_tar(dest: Path, entries: list[tuple[str, bytes]], mode: str = "w:gz") -> Path:
    """A tar of these (member name, bytes) regular files, in this order."""
    import io

    with tarfile.open(dest, mode) as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return dest


def _tree_manifest(name: str, data: bytes) -> bytes:
    import hashlib
    import json

    return json.dumps({"metadata": {"format_version": "1.1"}, "files": {"tree": name},
                       "md5": {"tree": hashlib.md5(data).hexdigest()}}).encode()


_TREE = b"(a,b);\n"


@pytest.mark.parametrize("through", ["file", "pipe"])
@pytest.mark.parametrize("mode", ["w:bz2", "w:xz"])
def test_a_tar_bz2_or_tar_xz_imports_from_a_file_or_a_pipe(store: Store, tmp_path: Path, mode: str,
                                                            through: str) -> None:
    # read_tar_once's stream said it could not seek, and bz2/lzma then called that attribute: a TypeError traceback.
    pkg = _small_tar(tmp_path / "p.tar", [("p/a.nwk", _TREE), ("p/CONTENTS.json", _tree_manifest("a.nwk", _TREE))], mode)
    feeder = _Feeder(pkg, tmp_path / "pipe") if through == "pipe" else None
    state = store.refpkgs.import_package(pkg if feeder is None else feeder.fifo, name="p")
    assert store.blobs.read_bytes(state.files["tree"].sha256) == _TREE
    if feeder is not None:
        feeder.join()


@pytest.mark.parametrize("through", ["file", "pipe"])
def test_a_plain_tar_whose_folder_name_starts_like_a_bzip2_stream_imports(store: Store, tmp_path: Path,
                                                                           through: str) -> None:
    # A plain tar starts with its first member's name: "BZh9..." is also bzip2's magic (tarfile's "r:*" falls back).
    pkg = _small_tar(tmp_path / "BZh9.refpkg.tar", [("BZh9.refpkg/a.nwk", _TREE),
                                                     ("BZh9.refpkg/CONTENTS.json", _tree_manifest("a.nwk", _TREE))], "w")
    feeder = _Feeder(pkg, tmp_path / "pipe") if through == "pipe" else None
    assert store.refpkgs.import_package(pkg if feeder is None else feeder.fifo, name="p").files["tree"].size == len(_TREE)
    if feeder is not None:
        feeder.join()


def test_a_stray_member_ahead_of_the_manifest_is_not_written_when_it_would_leave_the_disk_short(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A few-MB .tar.gz inflates a 50 GB member its CONTENTS.json (last) never names: storing it in case it is
    # named filled the disk the old import never wrote to. A disk "short" here: every free byte is reserved.
    from rgstore import refpkg_tar
    from rgstore.diskspace import free_bytes

    if not Path("/proc/self/io").is_file():
        pytest.skip("needs Linux /proc/self/io to count written bytes")
    stray = 32 << 20
    pkg = _small_tar(tmp_path / "p.tar.gz", [("p/a.nwk", _TREE), ("p/stray.bin", bytes(stray)),
                                             ("p/CONTENTS.json", _tree_manifest("a.nwk", _TREE))])
    monkeypatch.setattr(refpkg_tar, "AHEAD_RESERVE", (free_bytes(tmp_path) or 0) + (1 << 40), raising=False)

    def wchar() -> int:
        text = Path("/proc/self/io").read_text()
        return int(next(line.split()[1] for line in text.splitlines() if line.startswith("wchar:")))

    before = wchar()
    state = store.refpkgs.import_package(pkg)  # a.nwk, held back too, is read again from the file
    written = wchar() - before
    assert written < stray // 4, f"{written:,} bytes written to import a package of {len(_TREE)} bytes"
    assert sorted(store.blobs.all()) == [state.files["tree"].sha256]
    assert store.blobs.read_bytes(state.files["tree"].sha256) == _TREE


def test_a_named_file_held_back_for_want_of_disk_space_through_a_pipe_is_a_one_line_error(  # type: ignore[no-untyped-def]
    cli, store_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rgstore import refpkg_tar
    from rgstore.diskspace import free_bytes

    monkeypatch.setattr(refpkg_tar, "AHEAD_RESERVE", (free_bytes(tmp_path) or 0) + (1 << 40), raising=False)
    last = _small_tar(tmp_path / "last.tar.gz", [("p/a.nwk", _TREE), ("p/CONTENTS.json", _tree_manifest("a.nwk", _TREE))])
    feeder = _Feeder(last, tmp_path / "pipe")
    result = cli("refpkg", "import", str(feeder.fifo), "--name", "p")
    feeder.join()
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {feeder.fifo}: a.nwk ({len(_TREE)} bytes) comes ahead of its CONTENTS.json")
    assert result.stderr.endswith("; a pipe cannot be read again: import it from a file\n")
    assert result.stderr.count("\n") == 1
    with Store.open(store_path) as store:
        assert _untouched(store) and store.blobs.stale_temp_files() == []
    # Once the manifest has named it, a file is stored whatever the disk holds (as it always was).
    first = _small_tar(tmp_path / "first.tar.gz", [("p/CONTENTS.json", _tree_manifest("a.nwk", _TREE)), ("p/a.nwk", _TREE)])
    feeder = _Feeder(first, tmp_path / "pipe2")
    assert cli("refpkg", "import", str(feeder.fifo), "--name", "p").exit_code == 0
    feeder.join()


@pytest.mark.parametrize("through", ["file", "pipe"])
def test_members_past_the_limit_stored_ahead_of_the_manifest_are_read_again_only_if_named(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, through: str
) -> None:
    # 5,000 tiny members in a 100 KB .tar.gz, each a blob written, fsynced and deleted: 0.7 s -> 11.6 s (100k: minutes).
    from rgstore import refpkg_tar

    monkeypatch.setattr(refpkg_tar, "MAX_AHEAD", 3, raising=False)
    strays = [(f"p/stray{i}", b"%d" % i) for i in range(5)]
    pkg = _small_tar(tmp_path / "p.tar.gz", [*strays, ("p/a.nwk", _TREE), ("p/CONTENTS.json", _tree_manifest("a.nwk", _TREE))])
    if through == "pipe":
        feeder = _Feeder(pkg, tmp_path / "pipe")
        with pytest.raises(InvalidInputError, match=r"pipe: a.nwk comes after 3 files ahead of its CONTENTS.json, more "
                                                    r"than are stored unread; a pipe cannot be read again: import it from a file$"):
            store.refpkgs.import_package(feeder.fifo, name="p")
        feeder.join()
        assert _untouched(store) and store.blobs.stale_temp_files() == []
        return
    state = store.refpkgs.import_package(pkg)
    assert sorted(store.blobs.all()) == [state.files["tree"].sha256]
    assert store.blobs.read_bytes(state.files["tree"].sha256) == _TREE


def test_a_piped_tar_whose_manifest_does_not_parse_says_so(store: Store, tmp_path: Path) -> None:
    # A member no manifest could name (a backslash) was "read again", and a pipe blamed a CONTENTS.json met twice.
    pkg = _small_tar(tmp_path / "p.tar.gz", [("p/a\\b.nwk", _TREE), ("p/CONTENTS.json", b"{not json")])
    feeder = _Feeder(pkg, tmp_path / "pipe")
    with pytest.raises(InvalidInputError, match="^CONTENTS.json is not a valid refpkg manifest: not JSON"):
        store.refpkgs.import_package(feeder.fifo, name="p")
    feeder.join()
    assert _untouched(store)


def test_a_ctrl_c_while_the_unnamed_members_are_dropped_leaves_none_of_them(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The unnamed blobs were forgotten before they were deleted: interrupted then, they stayed as garbage.
    strays = [(f"p/stray{i}", b"%d" % i) for i in range(3)]
    pkg = _small_tar(tmp_path / "p.tar.gz", [*strays, ("p/a.nwk", _TREE), ("p/CONTENTS.json", _tree_manifest("a.nwk", _TREE))])
    delete = store.blobs.delete
    calls: list[str] = []

    def deleted_then_interrupted(sha256: str) -> None:
        delete(sha256)
        calls.append(sha256)
        if len(calls) == 1:
            raise KeyboardInterrupt  # Ctrl-C landing right after the first unlink

    monkeypatch.setattr(store.blobs, "delete", deleted_then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        store.refpkgs.import_package(pkg)
    assert _untouched(store) and store.blobs.stale_temp_files() == []


def _sparse_member(name: str, realsize: int) -> bytes:
    """A GNU sparse member (header and its one 512-byte block of data) that reads as ``realsize`` bytes."""
    info = tarfile.TarInfo(name)
    info.type, info.size = tarfile.GNUTYPE_SPARSE, 512
    header = bytearray(info.tobuf(format=tarfile.GNU_FORMAT))
    header[386:410] = b"%011o\0%011o\0" % (0, 512)  # its data at offset 0; the rest, up to realsize, a hole
    header[483:495] = b"%011o\0" % realsize
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header) + b"x" * 512


@pytest.mark.parametrize("through", ["file", "pipe"])
def test_a_sparse_member_ahead_of_the_manifest_is_not_filled_in_unless_named(
    store: Store, tmp_path: Path, through: str
) -> None:
    # Two KB of tar declared 8 GB of holes; stored in case the manifest named it, it was written out as zeros.
    if not Path("/proc/self/io").is_file():
        pytest.skip("needs Linux /proc/self/io to count written bytes")
    listing = _small_tar(tmp_path / "a.tar", [("p/a.nwk", _TREE)], "w").read_bytes()[:1024]
    tail = _small_tar(tmp_path / "c.tar", [("p/CONTENTS.json", _tree_manifest("a.nwk", _TREE))], "w").read_bytes()
    pkg = tmp_path / "p.tar"
    pkg.write_bytes(listing + _sparse_member("p/holes.bin", 0o77777777777) + tail)
    with tarfile.open(pkg) as tar:
        assert [(m.name, m.size) for m in tar] == [("p/a.nwk", len(_TREE)), ("p/holes.bin", 0o77777777777),
                                                  ("p/CONTENTS.json", len(_tree_manifest("a.nwk", _TREE)))]

    def wchar() -> int:
        text = Path("/proc/self/io").read_text()
        return int(next(line.split()[1] for line in text.splitlines() if line.startswith("wchar:")))

    feeder = _Feeder(pkg, tmp_path / "pipe") if through == "pipe" else None
    before = wchar()
    state = store.refpkgs.import_package(pkg if feeder is None else feeder.fifo, name="p")
    written = wchar() - before
    if feeder is not None:
        feeder.join()
    assert written < 1 << 20, f"{written:,} bytes written to import a package of {len(_TREE)} bytes"
    assert sorted(store.blobs.all()) == [state.files["tree"].sha256]
    # Named, it is read as it always was (a pipe: it was not kept as it passed, and cannot be read again).
    pkg.write_bytes(listing + _sparse_member("p/a.nwk", 4096) + tail)
    with pytest.raises(InvalidInputError if through == "pipe" else IntegrityError,
                       match=("a.nwk is a sparse file .4,096 bytes with its holes. ahead of its CONTENTS.json, which is not "
                              "stored unread; a pipe cannot be read again: import it from a file$") if through == "pipe"
                       else "File a.nwk referred to by key tree did not match its MD5 sum"):
        feeder = _Feeder(pkg, tmp_path / "pipe2") if through == "pipe" else None
        store.refpkgs.import_package(pkg if feeder is None else feeder.fifo, name="q")
    if feeder is not None:
        feeder.join()


@pytest.mark.parametrize("through", ["file", "pipe"])
def test_a_tar_gz_of_a_package_whose_files_share_an_inode_imports_like_its_directory(
    store: Store, taxit_dir: Path, tmp_path: Path, through: str
) -> None:
    # A taxit package with one file under two keys, deduplicated on disk (`hardlink`, `cp -al`): tar
    # stores the second name as a hard link member, which was refused as "not a regular file".
    import shutil

    pkg = tmp_path / "linked.refpkg"
    shutil.copytree(taxit_dir, pkg)
    taxit("update", pkg, f"tree_copy={pkg / 'tree.nwk'}")
    copy = pkg / json.loads((pkg / "CONTENTS.json").read_text())["files"]["tree_copy"]
    copy.unlink()
    os.link(pkg / "tree.nwk", copy)
    archive = _tar(pkg, tmp_path / "linked.tar.gz")
    assert any(member.islnk() for member in tarfile.open(archive).getmembers())
    from_dir = store.refpkgs.import_package(pkg, name="from-dir")
    feeder = _Feeder(archive, tmp_path / "pipe") if through == "pipe" else None
    state = store.refpkgs.import_package(archive if feeder is None else feeder.fifo, name="from-tar")
    if feeder is not None:
        feeder.join()
    assert (state.files, state.rollbacks) == (from_dir.files, from_dir.rollbacks)
    assert state.files["tree_copy"].sha256 == state.files["tree"].sha256


def test_a_hard_link_member_to_a_name_the_tar_replaces_later_is_refused(store: Store, tmp_path: Path) -> None:
    # tar resolves a hard link to the member before it; the name's later member is other bytes
    import io

    archive = tmp_path / "p.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in (("p/a.nwk", _TREE), ("p/b.nwk", None), ("p/a.nwk", b"(c);\n"),
                           ("p/CONTENTS.json", _tree_manifest("b.nwk", _TREE))):
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.linkname = tarfile.LNKTYPE, "p/a.nwk"
            else:
                info.size = len(data)
            tar.addfile(info, None if data is None else io.BytesIO(data))
    with pytest.raises(NotFoundError, match="b.nwk referred to by key tree is missing"):
        store.refpkgs.import_package(archive)
    assert _untouched(store)


@pytest.mark.parametrize("fmt", ["tar.gz", "zip"])
def test_an_archive_made_from_above_the_package_folder_says_where_its_manifest_is(
    store: Store, taxit_dir: Path, tmp_path: Path, fmt: str
) -> None:
    # `tar czf p.tar.gz /abs/made.refpkg` or `zip -r p.zip refs/made.refpkg` nests the folder: "found 0" alone
    # read as if the archive had no CONTENTS.json at all
    archive = tmp_path / f"p.{fmt}"
    if fmt == "zip":
        with zipfile.ZipFile(archive, "w") as out:
            for path in sorted(taxit_dir.iterdir()):
                out.write(path, f"refs/{taxit_dir.name}/{path.name}")
    else:
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(taxit_dir, arcname=f"refs/{taxit_dir.name}")
    with pytest.raises(InvalidInputError) as caught:
        store.refpkgs.import_package(archive, name="p")
    assert str(caught.value) == (
        f"{archive}: expected one CONTENTS.json at the top or in one top-level folder, found 0 (one is deeper, "
        f"at refs/{taxit_dir.name}/CONTENTS.json: archive the package's folder from the folder holding it)")
    assert _untouched(store)

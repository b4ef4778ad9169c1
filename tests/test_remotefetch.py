"""Fetching a mirror's sequences on first read from its upstream's RefgetStore."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from rgstore import remotefetch
from rgstore.errors import IntegrityError, NotFoundError, RemoteError
from rgstore.mirror import pull
from rgstore.progress import null_progress
from rgstore.refgetstore import open_refget
from rgstore.segments import publish, publish_refget
from rgstore.store import Store
from tests.httpfixture import RangeServer


def _published_primary(tmp_path: Path, fasta: str, name: str) -> Path:
    """A primary at ``tmp_path/p`` holding genome ``tiny`` (``fasta``), its log and RefgetStore published to ``tmp_path/name``."""
    (tmp_path / "g.fa").write_text(fasta)
    published = tmp_path / name
    with Store.open(tmp_path / "p") as primary:
        primary.genomes.init(tmp_path / "g.fa", ["tiny"])
        publish(primary, published)
        publish_refget(primary, published)
    return published


def test_a_lazy_mirror_of_a_directory_with_a_space_and_non_ascii_in_its_path_reads_its_sequences(
    tmp_path: Path,
) -> None:
    # The upstream's RefgetStore is recorded as a file:// URL (Path.as_uri: "pub%20d%C3%AFr"),
    # which gtars must be handed decoded, not as the directory "pub%20d%C3%AFr".
    published = _published_primary(tmp_path, ">chr1\nACGTACGTAAAACCCC\n>chrM\nGGGGCCCC\n", "pub dïr")
    with Store.open(tmp_path / "m") as mirror:
        pull(mirror, str(published))  # lazy: no sequence copied yet
        assert mirror.getseq("tiny", "chr1", 4, 12) == "ACGTAAAA"
        assert mirror.getseq("tiny", "chrM") == "GGGGCCCC"


# -- a remote RefgetStore over http(s): read by rgstore's guarded client (Encoded files decoded by gtars) --

CHRM = "TTTTGGGGCCCCAAAA"

_SERVER = """
import os
import sys
import time
from functools import partial
from http.server import ThreadingHTTPServer
from tests.httpfixture import _Handler


class Trickled:
    def __init__(self, raw, every):
        self.raw, self.every = raw, every

    def write(self, data):
        for i in range(len(data)):
            self.raw.write(data[i:i + 1])
            self.raw.flush()
            time.sleep(self.every)
        return len(data)

    def flush(self):
        self.raw.flush()


class Served(_Handler):
    log_path = sys.argv[2]
    protocol_version = "HTTP/1.1" if sys.argv[3] == "keep-alive" else "HTTP/1.0"  # 1.0: one connection per request

    def do_GET(self):
        if sys.argv[3] == "keep-alive":
            with open(self.log_path + ".ports", "a") as fh:
                fh.write(f"{self.client_address[1]}\\n")  # the client's port: which connection each request came on
        if sys.argv[3] == "auth" and self.headers.get("Authorization") != "Basic cmVhZGVyOnMzY3JldA==":
            self.send_error(401)  # reader:s3cret only
            return
        if self.path.endswith(".seq") and sys.argv[3] == "ignore-range":
            del self.headers["Range"]  # as python -m http.server does
        if self.path.endswith(".seq") and sys.argv[3] == "cap-range":
            first, _, last = self.headers["Range"].removeprefix("bytes=").partition("-")
            del self.headers["Range"]
            self.headers["Range"] = f"bytes={first}-{min(int(last), int(first) + 3)}"  # 4 bytes at most, as some CDNs cap
        if self.path.endswith(".seq") and sys.argv[3] == "fetch-first":
            time.sleep(3)  # a lazy rgstore server's /store fetches the sequence before it answers
        if self.path.endswith(".seq") and sys.argv[3] in ("gate", "gate-fail"):
            try:  # the first data-file GET is held (unlogged) until the test makes <log>.open, then served or failed
                os.close(os.open(self.log_path + ".held", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                held = True
            except FileExistsError:
                held = False
            while held and not os.path.exists(self.log_path + ".open"):
                time.sleep(0.01)
            if held and sys.argv[3] == "gate-fail":  # a failure no retry helps (a 503 is retried: rgstore.retries)
                self.send_error(403)
                return
        plain = self.wfile
        try:
            super().do_GET()
        finally:
            self.wfile = plain

    def end_headers(self):
        super().end_headers()
        if self.path.endswith(".seq") and sys.argv[3] == "trickle":
            self.wfile = Trickled(self.wfile, 0.05)  # the body of each data file, one byte every 50 ms


httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Served, directory=sys.argv[1]))
httpd.daemon_threads = True
print(f"http://127.0.0.1:{httpd.server_address[1]}", flush=True)
httpd.serve_forever()
"""


@contextmanager
def _serving(root: Path, how: str = "range") -> Iterator[RangeServer]:
    """``root`` served from a child process (gtars holds the GIL on the network) with Range, ``how`` it misbehaves."""
    log = root.parent / f"{root.name}.requests.log"
    proc = subprocess.Popen([sys.executable, "-c", _SERVER, str(root), str(log), how],
                            cwd=Path(__file__).resolve().parent.parent, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield RangeServer(proc.stdout.readline().strip(), log)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def _chrm(tmp_path: Path, *, encoded: bool = False) -> tuple[Path, str]:
    """A RefgetStore holding the test genome (Raw unless ``encoded``) and chrM's bare digest."""
    from gtars.refget import sha512t24u_digest  # type: ignore[import-untyped]

    from tests.test_remote import FASTA, build_refget

    root = tmp_path / "served" / "store"
    build_refget(root, FASTA, encoded=encoded)
    return root, sha512t24u_digest(CHRM)


def _cached(store: Store, bare: str) -> bool:
    return (store.refget_path / "sequences" / bare[:2] / f"{bare}.seq").exists()


@pytest.fixture(autouse=True)
def _no_kept_manifests() -> Iterator[None]:
    """Each test reads its server's manifest afresh (a loopback port may be reused by an earlier test's server)."""
    remotefetch._manifests.clear()
    yield
    remotefetch._manifests.clear()


def test_a_raw_remote_store_trickling_a_sequence_is_given_up_in_one_line_and_nothing_is_cached(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # gtars made its own requests, unguarded: it waited out any trickle (here 16 bytes at 20 bytes/s).
    monkeypatch.setenv("RGSTORE_LOW_SPEED_LIMIT", "100")
    monkeypatch.setenv("RGSTORE_LOW_SPEED_TIME_S", "0.3")
    root, bare = _chrm(tmp_path)
    with _serving(root, "trickle") as server:
        secret = server.url.replace("http://", "http://u:s3cret@")
        with pytest.raises(RemoteError) as caught:
            remotefetch.fetch_sequence(store, secret, bare, len(CHRM), md5=hashlib.md5(CHRM.encode()).hexdigest())
    shown = server.url.replace("http://", "http://***@")
    assert re.fullmatch(rf"gave up on {re.escape(shown)}/sequences/{bare[:2]}/{bare}\.seq: the transfer averaged "
                        r"\d+ bytes/s over 0\.\d s, under the 100 bytes/s \$RGSTORE_LOW_SPEED_LIMIT asks for over "
                        r"\$RGSTORE_LOW_SPEED_TIME_S \(0\.3 s\) \(tried 4 times\)", str(caught.value))  # a blip's retries
    assert not _cached(store, bare) and not list(store.path.glob(".remote-*"))


def test_a_raw_remote_store_is_read_in_ranged_windows_by_rgstore_and_verified(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(remotefetch, "_WINDOW", 6)
    root, bare = _chrm(tmp_path)
    with _serving(root) as server:
        remotefetch.fetch_sequence(store, server.url, bare, len(CHRM), md5=hashlib.md5(CHRM.encode()).hexdigest())
        # The manifest, then the data file in windows: none of gtars' index downloads (collections.rgci ...).
        assert server.requests == [
            ("GET", "/rgstore.json", ""),
            *[("GET", f"/sequences/{bare[:2]}/{bare}.seq", f"bytes={s}-{min(s + 6, 16) - 1}") for s in (0, 6, 12)]]
        with Store.open(tmp_path / "other") as other, pytest.raises(
                IntegrityError, match=rf"^sequence {bare} from .* is corrupt \(md5 [0-9a-f]+ instead of 0{{32}}\); "
                "nothing was cached$"):
            remotefetch.fetch_sequence(other, server.url, bare, len(CHRM), md5="0" * 32)
        assert not _cached(other, bare)
    assert open_refget(store, write=False).get_substring(bare, 0, 16) == CHRM


def test_a_raw_remote_store_on_a_server_ignoring_range_is_read_whole_and_verified(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # gtars refused it ("did not honor Range header"); the whole file is the sequence, capped and hashed.
    monkeypatch.setattr(remotefetch, "_WINDOW", 6)
    root, bare = _chrm(tmp_path)
    with _serving(root, "ignore-range") as server:
        remotefetch.fetch_sequence(store, server.url, bare, len(CHRM))
        assert [path for path in server.paths() if path.endswith(".seq")] == [f"/sequences/{bare[:2]}/{bare}.seq"]
    assert open_refget(store, write=False).get_substring(bare, 0, 16) == CHRM


def test_a_raw_remote_store_answering_less_than_each_range_asks_is_read_on_from_where_it_stopped(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each 206 carries 4 of the 6 bytes asked for: it was refused as "shorter than its recorded 16 residues".
    monkeypatch.setattr(remotefetch, "_WINDOW", 6)
    root, bare = _chrm(tmp_path)
    with _serving(root, "cap-range") as server:
        remotefetch.fetch_sequence(store, server.url, bare, len(CHRM), md5=hashlib.md5(CHRM.encode()).hexdigest())
        # (the log shows each range as the server capped it: the client asked for 0-5, 4-9, 8-13, 12-15)
        assert [rng for _, path, rng in server.requests if path.endswith(".seq")] == [
            "bytes=0-3", "bytes=4-7", "bytes=8-11", "bytes=12-15"]
    assert open_refget(store, write=False).get_substring(bare, 0, 16) == CHRM


def test_a_raw_remote_store_whose_file_is_shorter_than_recorded_is_refused_from_its_content_range(
    tmp_path: Path, store: Store
) -> None:
    root, bare = _chrm(tmp_path)
    data = root / "sequences" / bare[:2] / f"{bare}.seq"
    data.write_bytes(data.read_bytes()[:10])
    with _serving(root) as server, pytest.raises(
            IntegrityError, match=rf"sequence {bare} is shorter than its recorded 16 residues \(the file holds 10 bytes\)"):
        remotefetch.fetch_sequence(store, server.url, bare, len(CHRM))
    assert not _cached(store, bare)


def test_a_sequence_a_raw_remote_store_lacks_is_the_same_not_found_error_as_through_gtars(
    tmp_path: Path, store: Store
) -> None:
    root, bare = _chrm(tmp_path)
    (root / "sequences" / bare[:2] / f"{bare}.seq").unlink()
    with _serving(root) as server:
        with pytest.raises(NotFoundError, match=rf"^the RefgetStore at {re.escape(server.url)} has no sequence "
                           rf"{bare}$"):
            remotefetch.fetch_sequence(store, server.url, bare, len(CHRM))
        assert "/collections.rgci" not in server.paths()  # asked by rgstore's client, not gtars
    assert not _cached(store, bare) and not list(store.path.glob(".remote-*"))


def test_a_raw_remote_store_behind_basic_auth_is_read_with_netrc_credentials(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # gtars reads no netrc: its requests got 401s.
    root, bare = _chrm(tmp_path)
    (tmp_path / "netrc").write_text("machine 127.0.0.1 login reader password s3cret\n")
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    with _serving(root, "auth") as server:
        remotefetch.fetch_sequence(store, server.url, bare, len(CHRM))
    assert open_refget(store, write=False).get_substring(bare, 0, 16) == CHRM


def test_an_encoded_remote_store_is_read_by_rgstore_and_decoded_by_gtars_as_gtars_reads_it(
    tmp_path: Path, store: Store
) -> None:
    # gtars' remote handle read it (collections.rgci, then ranged reads): its own requests, unguarded, no netrc.
    from gtars.refget import RefgetStore, sha512t24u_digest  # type: ignore[import-untyped]

    from tests.test_remote import LONG

    root, _ = _chrm(tmp_path, encoded=True)
    served = RefgetStore.open_local(str(root))
    served.set_quiet(True)
    with _serving(root) as server:
        for residues in (LONG, "GGGAAATTTCNNRYACGT", CHRM):  # 2-bit and 3-bit (N, R, Y) data files
            bare = sha512t24u_digest(residues)
            remotefetch.fetch_sequence(store, server.url, bare, len(residues))
            assert open_refget(store, write=False).get_substring(bare, 0, len(residues)) \
                == served.get_substring(bare, 0, len(residues)) == residues
        chrm = sha512t24u_digest(CHRM)
        assert server.requests[-2:] == [("GET", "/sequences.rgsi", ""), ("GET", f"/sequences/{chrm[:2]}/{chrm}.seq", "")]
        assert "/collections.rgci" not in server.paths()  # asked by rgstore's client, not gtars


def test_an_encoded_remote_store_behind_basic_auth_is_read_with_netrc_credentials(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # gtars reads no netrc: its requests got 401s ("cannot open the RefgetStore at ...").
    root, bare = _chrm(tmp_path, encoded=True)
    (tmp_path / "netrc").write_text("machine 127.0.0.1 login reader password s3cret\n")
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    with _serving(root, "auth") as server:
        remotefetch.fetch_sequence(store, server.url, bare, len(CHRM))
    assert open_refget(store, write=False).get_substring(bare, 0, 16) == CHRM


def test_an_encoded_remote_store_trickling_a_sequence_is_given_up_in_one_line_and_nothing_is_cached(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # gtars made its own requests, unguarded: it waited out the trickle (1,250 bytes at 20 bytes/s: a minute).
    from gtars.refget import sha512t24u_digest  # type: ignore[import-untyped]

    from tests.test_remote import LONG

    monkeypatch.setenv("RGSTORE_LOW_SPEED_LIMIT", "100")
    monkeypatch.setenv("RGSTORE_LOW_SPEED_TIME_S", "0.3")
    root, _ = _chrm(tmp_path, encoded=True)
    bare = sha512t24u_digest(LONG)
    with _serving(root, "trickle") as server:
        secret = server.url.replace("http://", "http://u:s3cret@")
        with pytest.raises(RemoteError) as caught:
            remotefetch.fetch_sequence(store, secret, bare, len(LONG))
    shown = server.url.replace("http://", "http://***@")
    assert re.fullmatch(rf"gave up on {re.escape(shown)}/sequences/{bare[:2]}/{bare}\.seq: the transfer averaged "
                        r"\d+ bytes/s over 0\.\d s, under the 100 bytes/s \$RGSTORE_LOW_SPEED_LIMIT asks for over "
                        r"\$RGSTORE_LOW_SPEED_TIME_S \(0\.3 s\) \(tried 4 times\)", str(caught.value))  # a blip's retries
    assert not _cached(store, bare) and not list(store.path.glob(".remote-*"))


def test_an_encoded_remote_store_whose_data_file_is_cut_short_is_refused_as_corrupt(
    tmp_path: Path, store: Store
) -> None:
    root, bare = _chrm(tmp_path, encoded=True)
    data = root / "sequences" / bare[:2] / f"{bare}.seq"
    data.write_bytes(data.read_bytes()[:2])
    with _serving(root) as server, pytest.raises(
            IntegrityError, match=rf"^sequence {bare} from .* is corrupt \(its data file does not decode: .*too short"):
        remotefetch.fetch_sequence(store, server.url, bare, len(CHRM))
    assert not _cached(store, bare) and not list(store.path.glob(".remote-*"))


def test_a_sequence_an_encoded_remote_store_does_not_index_is_not_found_not_a_remote_failure(
    tmp_path: Path, store: Store
) -> None:
    # gtars said "fetching sequence ... failed: Sequence not found" (a RemoteError) for it.
    root, bare = _chrm(tmp_path, encoded=True)
    index = root / "sequences.rgsi"
    index.write_text("".join(line for line in index.read_text().splitlines(True) if bare not in line))
    with _serving(root) as server, pytest.raises(
            NotFoundError, match=rf"^the RefgetStore at {re.escape(server.url)} has no sequence {bare}$"):
        remotefetch.fetch_sequence(store, server.url, bare, len(CHRM))
    assert not _cached(store, bare)


def test_an_encoded_remote_store_index_line_without_end_is_a_remote_error_not_held_whole(
    tmp_path: Path, store: Store
) -> None:
    # A line of the index was held whole in memory (up to the 4 GiB the index may take), copied once per piece.
    root, bare = _chrm(tmp_path, encoded=True)
    index = root / "sequences.rgsi"
    header, rows = index.read_text().split("\n", 1)
    index.write_text(f"{header}\n{'N' * ((1 << 20) + 1)}\n{rows}")  # one byte past encodedfetch.ROW_LIMIT
    with _serving(root) as server, pytest.raises(
            RemoteError, match=rf"^{re.escape(server.url)}/sequences\.rgsi: a line runs past 1,048,576 bytes"):
        remotefetch.fetch_sequence(store, server.url, bare, len(CHRM))
    assert not _cached(store, bare)


def test_a_remote_store_manifest_nested_thousands_deep_is_a_remote_error_not_a_recursion_error(
    tmp_path: Path, store: Store
) -> None:
    # json.loads raises RecursionError (no ValueError) for it: a traceback from every read of that genome.
    root, bare = _chrm(tmp_path)
    (root / "rgstore.json").write_text("[" * 100_000)
    with _serving(root) as server, pytest.raises(RemoteError, match=rf"^cannot fetch sequence {bare} .*\(cannot open the "
                                                 rf"RefgetStore at {re.escape(server.url)}: "):
        remotefetch.fetch_sequence(store, server.url, bare, len(CHRM))
    assert not _cached(store, bare) and not list(store.path.glob(".remote-*"))


def test_a_remote_store_that_fetches_a_sequence_before_answering_is_waited_for_past_the_manifest_timeout(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An rgstore server's /store (what `genome add-remote http://server` records) answers a data file it
    # has not fetched yet only once it has: silent for as long as its own fetch, well past a file server's.
    monkeypatch.setattr(remotefetch, "STORE_READ_TIMEOUT_S", 1.0)
    root, bare = _chrm(tmp_path)
    with _serving(root, "fetch-first") as server:
        remotefetch.fetch_sequence(store, server.url, bare, len(CHRM))
    assert open_refget(store, write=False).get_substring(bare, 0, 16) == CHRM


# -- a remote RefgetStore's manifest is read once, not once per sequence ------------------------------------


def _remote_genome(store: Store, server: RangeServer, digest: str) -> list[str]:
    """The test genome recorded in ``store`` as a remote genome at ``server``; its sequence names."""
    from rgstore import remote

    remote.init_remote(store, server.url, ["tiny"], digest=digest)
    return ["chr1", "chr2", "chrM"]


def test_reads_of_many_sequences_of_a_raw_remote_store_fetch_its_manifest_once(tmp_path: Path, store: Store) -> None:
    # Each sequence fetch read rgstore.json again first: one extra round trip per sequence.
    from tests.test_remote import FASTA, build_refget

    root = tmp_path / "served" / "store"
    digest = build_refget(root, FASTA)
    with _serving(root) as server:
        names = _remote_genome(store, server, digest)
        before = len(server.requests)
        for name in names:
            assert store.getseq("tiny", name, 0, 4)
        paths = server.paths()[before:]
    assert paths.count("/rgstore.json") == 1 and sum(path.endswith(".seq") for path in paths) == len(names)


def test_a_raw_remote_store_republished_with_its_files_moved_is_read_from_where_they_are_now(
    tmp_path: Path, store: Store
) -> None:
    # The kept manifest names the old place (404 there): the manifest is read again at once, not after its lifetime.
    import json

    from gtars.refget import sha512t24u_digest  # type: ignore[import-untyped]

    from tests.test_remote import FASTA, build_refget

    root = tmp_path / "served" / "store"
    digest = build_refget(root, FASTA)
    chr2 = sha512t24u_digest("GGGAAATTTCNNRYACGT")
    with _serving(root) as server:
        _remote_genome(store, server, digest)
        assert store.getseq("tiny", "chrM") == CHRM
        manifest = json.loads((root / "rgstore.json").read_text())
        (root / "moved").mkdir()
        for data in (root / "sequences").glob("*/*.seq"):
            data.rename(root / "moved" / data.name)
        (root / "rgstore.json").write_text(json.dumps({**manifest, "seqdata_path_template": "moved/%s.seq"}))
        assert store.getseq("tiny", "chr2") == "GGGAAATTTCNNRYACGT"
        paths = server.paths()
    assert paths.count(f"/moved/{chr2}.seq") == 1 and paths[-2:] == ["/rgstore.json", f"/moved/{chr2}.seq"]


def test_a_kept_manifest_is_read_again_once_its_lifetime_is_over(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_remote import FASTA, build_refget

    root = tmp_path / "served" / "store"
    digest = build_refget(root, FASTA)
    with _serving(root) as server:
        _remote_genome(store, server, digest)
        assert store.getseq("tiny", "chrM") == CHRM
        kept = server.paths().count("/rgstore.json")
        monkeypatch.setattr(remotefetch, "MANIFEST_TTL_S", 0.0)  # every manifest kept is past its lifetime now
        assert store.getseq("tiny", "chr2") == "GGGAAATTTCNNRYACGT"
        assert server.paths().count("/rgstore.json") == kept + 1


def _recorded_bars() -> tuple[list[list[object]], object]:
    """A progress factory recording each bar as [description, total, unit, sum of updates]."""
    bars: list[list[object]] = []

    class _Bar:
        def __init__(self, record: list[object]) -> None:
            self.record = record

        def update(self, n: int = 1) -> None:
            self.record[3] = int(str(self.record[3])) + n

        def close(self) -> None:
            pass

    def factory(desc: str, total: int | None = None, unit: str = "it") -> _Bar:
        bars.append([desc, total, unit, 0])
        return _Bar(bars[-1])

    return bars, factory


@pytest.mark.parametrize(("batch", "imports"), [(1000, 1), (2, 2)])
def test_many_sequences_of_a_remote_genome_are_imported_in_batches_not_one_by_one(
    tmp_path: Path, store: Store, batch: int, imports: int,
) -> None:
    # Each fetched sequence was its own RefgetStore import and removal (~0.2 s whatever its size):
    # a mirror of a 200,000-contig assembly would have taken ~17 hours.
    from rgstore.mirror import missing_sequences
    from tests.test_remote import FASTA, build_refget

    root = tmp_path / "served" / "store"
    digest = build_refget(root, FASTA)
    bars, progress = _recorded_bars()
    with _serving(root) as server:
        _remote_genome(store, server, digest)
        missing = missing_sequences(store)
        assert len(missing) == 3
        assert remotefetch.fetch_many(store, missing, progress=progress, batch_sequences=batch) == []  # type: ignore[arg-type]
    assert missing_sequences(store) == [] and store.verify().ok
    assert ["fetch sequences", 3, "seq", 3] in bars
    assert sum(str(desc).startswith("import ") for desc, *_ in bars) == imports
    assert all(store.getseq("tiny", name, 0, 4) for name in ("chr1", "chr2", "chrM"))


def test_a_sequence_failing_among_many_raises_after_the_ones_before_it_are_kept(tmp_path: Path, store: Store) -> None:
    from rgstore.mirror import missing_sequences
    from tests.test_remote import FASTA, build_refget

    root = tmp_path / "served" / "store"
    digest = build_refget(root, FASTA)
    with _serving(root) as server:
        _remote_genome(store, server, digest)
        missing = missing_sequences(store)
        gone = missing[1]
        (root / "sequences" / gone[:2] / f"{gone}.seq").unlink()
        with pytest.raises(NotFoundError):
            remotefetch.fetch_many(store, missing, batch_sequences=1000)
    assert _cached(store, missing[0]) and not _cached(store, gone) and not _cached(store, missing[2])
    assert missing_sequences(store) == [gone, missing[2]] and store.verify().ok


def test_a_sequence_failing_among_many_is_named_when_importing_the_ones_before_it_fails_too(
    tmp_path: Path, store: Store
) -> None:
    # The import's error replaced the download's: which sequence could not be fetched went unsaid.
    import shutil

    from gtars.refget import RefgetStore  # type: ignore[import-untyped]

    from rgstore.mirror import missing_sequences
    from tests.test_remote import FASTA, build_refget

    root = tmp_path / "served" / "store"
    digest = build_refget(root, FASTA)
    (tmp_path / "other.fa").write_text(">x\nACGT\n")

    def progress(desc: str, total: int | None = None, unit: str = "it") -> Any:
        if desc == f"fetch {gone[:8]}":
            # Between the downloads, another tool puts an Encoded RefgetStore where the store's was.
            shutil.rmtree(store.refget_path, ignore_errors=True)
            RefgetStore.on_disk(str(store.refget_path)).add_sequence_collection_from_fasta(str(tmp_path / "other.fa"))
        return null_progress(desc, total, unit)

    with _serving(root) as server:
        _remote_genome(store, server, digest)
        missing = missing_sequences(store)
        gone = missing[1]
        (root / "sequences" / gone[:2] / f"{gone}.seq").unlink()
        with pytest.raises(NotFoundError, match=rf"has no sequence {gone}; importing the 1 sequence fetched before "
                           r"it failed too: the RefgetStore at .* is in .*Encoded mode"):
            remotefetch.fetch_many(store, missing, progress=progress, batch_sequences=1000)


# -- reads of one remote store share one connection, kept for the process -------------------------------------


def _ports(server: RangeServer) -> list[str]:
    """The client port of each request a ``keep-alive`` server has seen: one port per connection."""
    ports = Path(f"{server.log}.ports")
    return ports.read_text().split() if ports.exists() else []


def test_reads_of_many_sequences_of_a_raw_remote_store_go_over_one_connection(tmp_path: Path, store: Store) -> None:
    # A new client per sequence: a new connection (a TCP and TLS handshake, a TLS context built) for each.
    from tests.test_remote import FASTA, build_refget

    root = tmp_path / "served" / "store"
    digest = build_refget(root, FASTA)
    with _serving(root, "keep-alive") as server:
        names = _remote_genome(store, server, digest)
        before = len(_ports(server))
        for name in names:
            assert store.getseq("tiny", name, 0, 4)
        ports = _ports(server)[before:]
    assert len(ports) == 1 + len(names) and len(set(ports)) == 1  # the manifest, then each sequence


def test_a_lazy_mirror_fetching_many_sequences_from_an_http_upstream_asks_over_one_connection(tmp_path: Path) -> None:
    # Where the upstream's RefgetStore lives was asked once per sequence, each time on a new client and connection.
    from rgstore.mirror import missing_sequences

    published = _published_primary(tmp_path, ">chr1\nACGTACGTAAAACCCC\n>chr2\nGGGAAATTTC\n>chrM\nGGGGCCCC\n", "pub")
    with _serving(published, "keep-alive") as server, Store.open(tmp_path / "m") as mirror:
        pull(mirror, server.url)  # lazy: no sequence copied yet
        missing = missing_sequences(mirror)
        before, logged = len(_ports(server)), len(Path(server.log).read_text().splitlines())
        assert len(missing) == 3 and remotefetch.fetch_many(mirror, missing) == []
        ports = _ports(server)[before:]
        requests = Path(server.log).read_text().splitlines()[logged:]
        assert mirror.getseq("tiny", "chr2") == "GGGAAATTTC"
    assert len(ports) >= len(missing) and len(set(ports)) == 1  # a read per sequence, one connection
    # Where the upstream's RefgetStore lives is asked once for the process, not once per sequence.
    assert len([line for line in requests if '"/manifest.json"' in line]) <= 1

@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_reads_a_remote_store_over_its_own_connection_and_the_parent_keeps_its_own(
    tmp_path: Path, store: Store
) -> None:
    # Both using the parent's socket would interleave their requests and answers on one connection.
    from gtars.refget import sha512t24u_digest  # type: ignore[import-untyped]

    from tests.forked import in_forked_child
    from tests.test_remote import FASTA, build_refget

    root = tmp_path / "served" / "store"
    digest = build_refget(root, FASTA)
    chr2 = "GGGAAATTTCNNRYACGT"
    with _serving(root, "keep-alive") as server:
        _remote_genome(store, server, digest)
        assert store.getseq("tiny", "chrM") == CHRM
        parent = _ports(server)[-1]

        def child_reads() -> str:
            # The residues only: the child stays clear of gtars' ingest (its thread pool is not fork-safe).
            bare = sha512t24u_digest(chr2)
            return b"".join(remotefetch._store_residues(server.url, tmp_path, bare, len(chr2))).decode()

        assert in_forked_child(child_reads) == f"ok: {chr2}"
        child = _ports(server)[-1]
        assert store.getseq("tiny", "chr2") == chr2
        assert child != parent and _ports(server)[-1] == parent


# -- two processes reading one unfetched sequence: one download (rgstore.fetchonce) --------------------------

_LOCKS = Path("/proc/locks")


def _waits_on(lock: Path) -> bool:
    """Whether some process waits for ``lock``'s flock (Linux ``/proc/locks`` marks waiters ``->``)."""
    try:
        inode = os.stat(lock).st_ino
    except FileNotFoundError:
        return False
    return any("->" in fields and fields[-3].endswith(f":{inode}")
               for fields in (line.split() for line in _LOCKS.read_text().splitlines()))


def _getseq(store_path: Path, region: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "rgstore_cli", "--store", str(store_path), "getseq", "tiny", region],
                            cwd=Path(__file__).resolve().parent.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _until(claim: Any, procs: list[subprocess.Popen[bytes]], what: str) -> None:
    import time

    deadline = time.monotonic() + 60
    while not claim():
        assert time.monotonic() < deadline, f"never saw {what}"
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.02)


def _first_fetch_held(tmp_path: Path, store: Store, server: RangeServer, digest: str
                      ) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes], Path]:
    """Process A fetching chr1 with its data-file GET held by the upstream, and B reading chr1 after it.

    Returns once B waits on chr1's fetch lock; AssertionError if B's own GET of chr1 reached the upstream instead.
    """
    from gtars.refget import sha512t24u_digest  # type: ignore[import-untyped]

    from rgstore.fetchonce import lock_path
    from tests.test_remote import LONG

    _remote_genome(store, server, digest)
    lock = lock_path(store, sha512t24u_digest(LONG))
    store.close()
    first = _getseq(tmp_path / "store", "chr1:0-100")
    _until(lambda: Path(f"{server.log}.held").exists(), [first], "the first fetch's GET")
    second = _getseq(tmp_path / "store", "chr1:4900-5000")
    _until(lambda: _waits_on(lock) or any(p.endswith(".seq") for p in server.paths()), [first, second],
           "the second read wait for the first's fetch, or fetch itself")
    assert [p for p in server.paths() if p.endswith(".seq")] == []  # B waits: it asked the upstream nothing
    return first, second, lock


@pytest.mark.skipif(not _LOCKS.exists(), reason="needs Linux /proc/locks to see lock waiters")
def test_two_processes_reading_one_unfetched_sequence_download_it_once(tmp_path: Path, store: Store) -> None:
    # Each downloaded the whole sequence: two 30 MB GETs for two `getseq chrBig:1-100` at once.
    from tests.test_remote import FASTA, LONG, build_refget

    root = tmp_path / "served" / "store"
    digest = build_refget(root, FASTA)
    with _serving(root, "gate") as server:
        first, second, lock = _first_fetch_held(tmp_path, store, server, digest)
        Path(f"{server.log}.open").touch()
        outcomes = [(p.wait(timeout=120), *p.communicate()) for p in (first, second)]
        assert outcomes == [(0, f"{LONG[:100]}\n".encode(), b""), (0, f"{LONG[4900:]}\n".encode(), b"")]
        assert sum(p.endswith(".seq") for p in server.paths()) == 1
    assert not lock.exists() and not list((tmp_path / "store").glob(".remote-*"))


@pytest.mark.skipif(not _LOCKS.exists(), reason="needs Linux /proc/locks to see lock waiters")
@pytest.mark.parametrize("end", ["killed", "failed"])
def test_a_reader_waiting_for_another_process_fetch_fetches_itself_when_that_one_is_killed_or_fails(
    tmp_path: Path, store: Store, end: str
) -> None:
    import signal

    from tests.test_remote import FASTA, LONG, build_refget

    root = tmp_path / "served" / "store"
    digest = build_refget(root, FASTA)
    with _serving(root, "gate-fail" if end == "failed" else "gate") as server:
        first, second, lock = _first_fetch_held(tmp_path, store, server, digest)
        if end == "killed":
            first.send_signal(signal.SIGKILL)  # the kernel drops its flock: B never waits forever
        else:
            Path(f"{server.log}.open").touch()  # A's GET is answered 403
        rc, out, err = (second.wait(timeout=120), *second.communicate())
        assert (rc, out, err) == (0, f"{LONG[4900:]}\n".encode(), b"")
        first_rc, _, first_err = (first.wait(timeout=120), *first.communicate())
        if end == "killed":
            assert first_rc == -signal.SIGKILL
        else:
            assert first_rc == 1 and b"403" in first_err and first_err.count(b"\n") == 1
        assert sum(p.endswith(".seq") for p in server.paths()) == 1  # B's own GET (A's held one is not logged)
    with Store.open(tmp_path / "store") as again:
        assert again.getseq("tiny", "chr1") == LONG and again.verify().ok


@pytest.mark.skipif(not _LOCKS.exists(), reason="needs Linux /proc/locks to see lock waiters")
def test_ctrl_c_ends_a_read_waiting_for_another_process_fetch_in_one_line(tmp_path: Path, store: Store) -> None:
    import signal

    from tests.test_remote import FASTA, LONG, build_refget

    root = tmp_path / "served" / "store"
    digest = build_refget(root, FASTA)
    with _serving(root, "gate") as server:
        first, second, _lock = _first_fetch_held(tmp_path, store, server, digest)
        second.send_signal(signal.SIGINT)
        assert (second.wait(timeout=60), *second.communicate()) == (130, b"", b"error: interrupted\n")
        Path(f"{server.log}.open").touch()
        assert (first.wait(timeout=120), *first.communicate()) == (0, f"{LONG[:100]}\n".encode(), b"")


# -- a batch fetch (genome export, mirror pull --with-sequences) and a single one: one download each --------


def _export(store_path: Path, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "rgstore_cli", "--store", str(store_path), "genome", "export", "tiny",
                             str(out)], cwd=Path(__file__).resolve().parent.parent,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _tiny_sequences() -> dict[str, str]:
    """The test genome's sequences by bare digest."""
    from gtars.refget import sha512t24u_digest  # type: ignore[import-untyped]

    from tests.test_remote import LONG

    return {sha512t24u_digest(seq): seq for seq in (LONG, "GGGAAATTTCNNRYACGT", CHRM)}


def _served_seq(server: RangeServer, bare: str) -> int:
    return sum(path.endswith(f"/{bare}.seq") for path in server.paths())


def _all_kept(store_path: Path) -> None:
    from tests.test_remote import LONG

    with Store.open(store_path) as again:
        assert [again.getseq("tiny", name) for name in ("chr1", "chr2", "chrM")] == [LONG, "GGGAAATTTCNNRYACGT", CHRM]
        assert again.verify().ok
    assert not list((store_path / ".fetching").glob("*.lock")) and not list(store_path.glob(".remote-*"))


@pytest.mark.skipif(not _LOCKS.exists(), reason="needs Linux /proc/locks to see lock waiters")
def test_a_batch_fetch_leaves_a_sequence_another_process_is_fetching_to_it_and_downloads_only_the_rest(
    tmp_path: Path, store: Store
) -> None:
    # fetch_many took no fetch lock: an export during a lazy read of chr1 downloaded chr1 a second time.
    from rgstore.fetchonce import lock_path
    from tests.test_remote import FASTA, LONG, build_refget

    root = tmp_path / "served" / "store"
    digest = build_refget(root, FASTA)
    with _serving(root, "gate") as server:
        _remote_genome(store, server, digest)
        store.close()
        lock = lock_path(store, next(iter(_tiny_sequences())))
        single = _getseq(tmp_path / "store", "chr1:0-100")
        _until(lambda: Path(f"{server.log}.held").exists(), [single], "the single read's GET of chr1")
        batch = _export(tmp_path / "store", tmp_path / "tiny.fa")
        # The batch fetches chr2 and chrM, then waits for chr1's fetch (or, the old way, downloads chr1 itself).
        _until(lambda: _waits_on(lock) or _served_seq(server, lock.stem) > 0, [single, batch],
               "the batch wait for chr1's fetch, or fetch chr1 itself")
        assert _served_seq(server, lock.stem) == 0
        Path(f"{server.log}.open").touch()
        assert (single.wait(timeout=120), *single.communicate()) == (0, f"{LONG[:100]}\n".encode(), b"")
        assert (batch.wait(timeout=120), *batch.communicate())[::2] == (0, b"")
        assert [_served_seq(server, bare) for bare in _tiny_sequences()] == [1, 1, 1]  # chr1's: the single read's
    assert (tmp_path / "tiny.fa").read_text().startswith(">chr1\n")
    _all_kept(tmp_path / "store")


@pytest.mark.skipif(not _LOCKS.exists(), reason="needs Linux /proc/locks to see lock waiters")
def test_a_single_fetch_of_a_sequence_a_batch_is_fetching_waits_until_it_is_imported_and_downloads_nothing(
    tmp_path: Path, store: Store
) -> None:
    # A lazy read during an export downloaded again the sequence the export was downloading.
    from tests.test_remote import FASTA, build_refget

    root = tmp_path / "served" / "store"
    digest = build_refget(root, FASTA)
    sequences = _tiny_sequences()
    names = dict(zip(sequences, ("chr1", "chr2", "chrM")))
    with _serving(root, "gate") as server:
        _remote_genome(store, server, digest)
        store.close()
        batch = _export(tmp_path / "store", tmp_path / "tiny.fa")
        _until(lambda: Path(f"{server.log}.held").exists(), [batch], "the batch's first GET")
        locks = tmp_path / "store" / ".fetching"
        _until(lambda: len(list(locks.glob("*.lock"))) == 1, [batch], "the batch hold the fetch lock of what it fetches")
        (lock,) = locks.glob("*.lock")
        held = lock.stem
        single = _getseq(tmp_path / "store", f"{names[held]}:0-4")
        _until(lambda: _waits_on(lock) or _served_seq(server, held) > 0, [batch, single],
               "the single read wait for the batch's fetch, or fetch itself")
        Path(f"{server.log}.open").touch()
        assert (batch.wait(timeout=120), *batch.communicate())[::2] == (0, b"")
        assert (single.wait(timeout=120), *single.communicate()) == (0, f"{sequences[held][:4]}\n".encode(), b"")
        assert [_served_seq(server, bare) for bare in sequences] == [1, 1, 1]  # the batch's; the single read asked nothing
    _all_kept(tmp_path / "store")

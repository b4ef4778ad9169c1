"""Claims about replication with real processes: mirrors killed at random still converge exactly.

A primary, a real server over it, and two mirrors (one pulling from the server, one from
published segments) run while a random workload of genome, alias, refpkg and cache commands
changes the primary and the mirrors' pulls are SIGKILLed at random points.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import lmdb
import pytest

from rgstore.cachecopy import cache_files, missing_cache_files, publish_cache
from rgstore.errors import ChainError
from rgstore.mirror import pull
from rgstore.segments import publish, publish_blobs, publish_refget
from rgstore.store import Store
from rgstore.verify import view_digests
from rgstore.views import seq_key
from tests.conftest import REPO
from tests.server_fixture import running_server
from tests.upstream_fixture import ENSEMBL, UpstreamServer, base, req, upstream_tree


def _fasta(path: Path, rng: random.Random, n: int) -> Path:
    with open(path, "w") as out:
        for c in range(rng.randint(1, 3)):
            out.write(f">chr{c} workload {n}\n")
            seq = "".join(rng.choice("ACGT") for _ in range(rng.randint(50, 400)))
            out.writelines(seq[i:i + 60] + "\n" for i in range(0, len(seq), 60))
    return path


class Workload:
    """Random commands of every domain on the primary, through the Python API."""

    def __init__(self, root: Path, primary: Store, upstream: str, seed: int = 7) -> None:
        self.root, self.primary, self.upstream = root, primary, upstream
        self.rng = random.Random(seed)
        self.n = 0
        self.genomes: list[str] = []
        self.refpkgs: list[str] = []
        self.cache_keys: list[str] = []

    def step(self) -> None:
        self.n += 1
        rng, store = self.rng, self.primary
        choice = rng.choice(["genome", "alias", "alias", "refpkg", "refpkg", "cache"])
        if choice == "genome" or not self.genomes:
            fasta = _fasta(self.root / f"g{self.n}.fa", rng, self.n)
            store.genomes.init(fasta, [f"g{self.n}"])
            self.genomes.append(store.genomes.resolve(f"g{self.n}"))
        elif choice == "alias":
            name = f"a{rng.randint(0, 3)}"
            action = rng.choice(["set", "set", "undo", "redo"])
            try:
                if action == "set":
                    store.aliases.set(name, rng.choice(self.genomes), force=True)
                elif action == "undo":
                    store.aliases.undo(name)
                else:
                    store.aliases.redo(name)
            except Exception:  # noqa: BLE001 - nothing to undo/redo, unknown alias: refused, nothing written
                pass
        elif choice == "refpkg":
            if not self.refpkgs or rng.random() < 0.2:
                name = f"pkg{self.n}"
                (self.root / f"{name}.fa").write_text(f">s1\nACGT{self.n}\n".replace(str(self.n), "A" * (self.n % 7)))
                store.refpkgs.create(name, locus="16S", files=[("aln_fasta", self.root / f"{name}.fa")])
                self.refpkgs.append(name)
                return
            name = rng.choice(self.refpkgs)
            try:
                if rng.random() < 0.6:
                    f = self.root / f"u{self.n}.txt"
                    f.write_text(f"update {self.n}\n")
                    store.refpkgs.update_files(name, [("readme", str(f))])
                elif rng.random() < 0.5:
                    store.refpkgs.rollback(name)
                else:
                    store.refpkgs.rollforward(name)
            except Exception:  # noqa: BLE001 - taxtastic-style refusals (nothing to roll back)
                pass
        else:
            if not self.cache_keys:
                results = store.cache.regions(req(ENSEMBL, "gene,CDS"), base_url=self.upstream)
                self.cache_keys = [r.key for r in results]
            key = rng.choice(self.cache_keys)
            (store.cache.pin if rng.random() < 0.5 else store.cache.unpin)(key)


def _pull_proc(mirror: Path, source: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "rgstore_cli", "--store", str(mirror), "mirror", "pull", source,
                             "--with-blobs", "--json"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_two_mirrors_killed_at_random_converge_to_the_primary(tmp_path: Path) -> None:
    primary_path, pub = tmp_path / "primary", tmp_path / "pub"
    mirrors = {"server": tmp_path / "m-server", "segments": tmp_path / "m-segments"}
    rng = random.Random(99)
    upstream_tree(tmp_path / "upstream")
    with UpstreamServer(tmp_path / "upstream") as upstream:
        with Store.open(primary_path, actor="primary@test") as primary:
            work = Workload(tmp_path, primary, base(upstream, "ensembl"))
            for _ in range(3):
                work.step()
            kills = 0
            with running_server(primary_path) as server:
                sources = {"server": server.url, "segments": str(pub)}
                for round_ in range(12):
                    for _ in range(rng.randint(1, 4)):
                        work.step()
                    publish_blobs(primary, pub)
                    publish_cache(primary, pub)
                    publish_refget(primary, pub)
                    publish(primary, pub, segment_size=rng.randint(3, 20))
                    procs = {k: _pull_proc(mirrors[k], sources[k]) for k in mirrors}
                    time.sleep(rng.uniform(0.2, 0.9))
                    for proc in procs.values():
                        if proc.poll() is None:
                            proc.send_signal(signal.SIGKILL)
                            kills += 1
                        proc.communicate()
                # Final pulls run to completion.
                for k in mirrors:
                    proc = _pull_proc(mirrors[k], sources[k])
                    out, err = proc.communicate(timeout=300)
                    assert proc.returncode == 0, err.decode()
            expected_head, expected_views = primary.head(), view_digests(primary)
    assert kills > 0, "the test must actually kill some pulls"
    for kind, path in mirrors.items():
        with Store.open(path) as mirror:
            assert mirror.head() == expected_head, kind
            assert view_digests(mirror) == expected_views, kind
            report = mirror.verify()
            assert report.ok, (kind, report.problems)
            assert report.unfetched_blobs == [], kind
            assert report.sequences + report.unfetched_sequences > 0, kind  # genome sequences were checked
            # Content followed the events: every live cache entry's files are here and intact.
            assert missing_cache_files(mirror) == [], kind
            assert len(list(cache_files(mirror))) >= 2, "the workload must have cached region FASTAs"
            assert mirror.cache.verify().ok, kind


def test_a_tampered_record_served_by_the_primary_is_refused_with_its_seq(tmp_path: Path) -> None:
    from rgstore.events import Noted
    from rgstore.log import NewEvent

    primary_path = tmp_path / "primary"
    with Store.open(primary_path) as primary:
        for i in range(12):
            primary.append([NewEvent(stream="s", event=Noted(text=f"n{i}"))])
    # Flip one payload byte of seq 9 behind the primary's back (disk corruption or an attacker).
    env = lmdb.open(str(primary_path / "log"), max_dbs=64)
    db = env.open_db(b"log")
    with env.begin(write=True) as txn:
        record = bytearray(txn.get(seq_key(9), db=db))
        record[-2] ^= 0x04
        txn.put(seq_key(9), bytes(record), db=db)
    env.close()
    with running_server(primary_path) as server, Store.open(tmp_path / "mirror") as mirror:
        with pytest.raises(ChainError, match="seq 9"):
            pull(mirror, server.url)
        assert mirror.head()[0] < 9
        assert mirror.verify().ok


def test_serve_follow_keeps_a_read_only_mirror_current(tmp_path: Path) -> None:
    import httpx

    from rgstore.events import Noted
    from rgstore.log import NewEvent

    primary_path = tmp_path / "primary"
    with Store.open(primary_path) as primary:
        primary.append([NewEvent(stream="s", event=Noted(text="first"))])
    with running_server(primary_path) as upstream, running_server(
            tmp_path / "mirror", extra_args=["--follow", upstream.url, "--interval", "200ms"]) as follower:
        assert httpx.get(f"{follower.url}/events/head").json()["head_seq"] == 1
        with Store.open(primary_path) as primary:
            primary.append([NewEvent(stream="s", event=Noted(text=str(i))) for i in range(5)])
            expected = primary.head()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            head = httpx.get(f"{follower.url}/events/head").json()
            if head["head_seq"] == expected[0]:
                break
            time.sleep(0.1)
        assert (head["head_seq"], head["head_hash"]) == expected
        # The follower's API is read-only like any server: no write route exists.
        assert httpx.post(f"{follower.url}/events").status_code == 405


TINY = REPO / "rgstore" / "data" / "tiny.fa"


def test_a_mirror_fetches_sequences_lazily_on_getseq_and_eagerly_on_request(tmp_path: Path) -> None:
    from rgstore.segments import publish as publish_log

    with Store.open(tmp_path / "primary") as primary:
        primary.genomes.init(TINY, ["tiny"], circular=["chrM"])
        want = {c: primary.getseq("tiny", c, 0, 200) for c in ("chr1", "chr2", "chrM")}
        publish_log(primary, tmp_path / "pub")
        publish_refget(primary, tmp_path / "pub")
    with running_server(tmp_path / "primary") as server:
        # Lazily, from the server's /store: the first getseq of a mirror fetches and verifies.
        with Store.open(tmp_path / "lazy") as mirror:
            assert pull(mirror, server.url).sequences_fetched == 0
        out = subprocess.run([sys.executable, "-m", "rgstore_cli", "--store", str(tmp_path / "lazy"), "getseq", "tiny",
                              "chr2:0-200"], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert (out.returncode, out.stdout.strip()) == (0, want["chr2"]), out.stderr
    # Eagerly, from published segments and their RefgetStore copy (no server involved).
    with Store.open(tmp_path / "eager") as mirror:
        assert pull(mirror, str(tmp_path / "pub"), with_sequences=True).sequences_fetched == 3
        assert {c: mirror.getseq("tiny", c, 0, 200) for c in want} == want


def test_a_following_server_serves_sequences_it_has_not_fetched_yet(tmp_path: Path) -> None:
    import httpx

    with Store.open(tmp_path / "primary") as primary:
        primary.genomes.init(TINY, ["tiny"])
        digest = primary.genomes.show("tiny").sequences[0]
        want = primary.getseq("tiny", "chr1", 10, 70)
    with running_server(tmp_path / "primary") as upstream, running_server(
            tmp_path / "mirror", extra_args=["--follow", upstream.url, "--interval", "1s"]) as follower:
        resp = httpx.get(f"{follower.url}/sequence/{digest}", params={"start": 10, "end": 70})
        assert (resp.status_code, resp.text) == (200, want)


def test_a_following_server_restarts_while_its_upstream_is_down_and_fetches_blobs(tmp_path: Path) -> None:
    import httpx

    primary_path = tmp_path / "primary"
    with Store.open(primary_path) as primary:
        (tmp_path / "a.fa").write_text(">s1\nACGT\n")
        primary.refpkgs.create("pkg", locus="16S", files=[("aln_fasta", tmp_path / "a.fa")])
    with running_server(primary_path) as upstream:
        with running_server(tmp_path / "mirror", extra_args=["--follow", upstream.url]) as follower:
            # Content followed the events: the refpkg file is served by the mirror.
            resp = httpx.get(f"{follower.url}/refpkgs/pkg/files/aln_fasta")
            assert (resp.status_code, resp.text) == (200, ">s1\nACGT\n")
    # The upstream is gone now; a restarted follower serves what it has and keeps retrying.
    with running_server(tmp_path / "mirror", extra_args=["--follow", upstream.url, "--interval", "200ms"]) as again:
        assert httpx.get(f"{again.url}/refpkgs/pkg").status_code == 200


def test_with_sequences_fetches_a_remote_genomes_sequences_from_its_remote_not_the_primary(tmp_path: Path) -> None:
    from rgstore.remote import init_remote
    from rgstore.segments import publish as publish_log
    from tests.httpfixture import serve_directory

    with Store.open(tmp_path / "elsewhere") as other:
        digest = other.genomes.init(TINY, ["tiny"]).genome.digest
        want = other.getseq("tiny", "chr2", 0, 100)
    with serve_directory(tmp_path / "elsewhere" / "refget") as remote:
        with Store.open(tmp_path / "primary") as primary:
            init_remote(primary, remote.url, ["far"], digest=digest)  # the primary never reads it
            publish_log(primary, tmp_path / "pub")
            publish_refget(primary, tmp_path / "pub")
        with Store.open(tmp_path / "mirror") as mirror:
            assert pull(mirror, str(tmp_path / "pub"), with_sequences=True).sequences_fetched == 3
        with Store.open(tmp_path / "mirror") as mirror:
            assert mirror.getseq("far", "chr2", 0, 100) == want
            assert mirror.verify().ok


def test_a_primary_restored_from_a_backup_and_written_to_is_refused_by_a_server_mirror(tmp_path: Path) -> None:
    import shutil

    from rgstore.errors import LogMismatchError
    from rgstore.events import Noted
    from rgstore.log import NewEvent

    primary_path = tmp_path / "primary"
    with Store.open(primary_path) as primary:
        primary.append([NewEvent(stream="s", event=Noted(text=f"n{i}")) for i in range(4)])
    shutil.copytree(primary_path, tmp_path / "backup")
    with Store.open(primary_path) as primary:
        primary.append([NewEvent(stream="s", event=Noted(text=f"m{i}")) for i in range(2)])
    with running_server(primary_path) as server, Store.open(tmp_path / "mirror") as mirror:
        pull(mirror, server.url)
    shutil.rmtree(primary_path)
    shutil.copytree(tmp_path / "backup", primary_path)
    with Store.open(primary_path) as primary:  # as many events as the mirror has, but different ones
        primary.append([NewEvent(stream="s", event=Noted(text=f"other {i}")) for i in range(2)])
    with running_server(primary_path) as server, Store.open(tmp_path / "mirror") as mirror:
        before = mirror.head(), view_digests(mirror)
        with pytest.raises(LogMismatchError, match="different record at seq 6"):
            pull(mirror, server.url)
        with Store.open(primary_path) as primary:
            primary.append([NewEvent(stream="s", event=Noted(text="one more"))])
        with pytest.raises(ChainError, match="seq 7: hash chain mismatch"):
            pull(mirror, server.url)
        assert (mirror.head(), view_digests(mirror)) == before


def test_pages_of_a_server_written_to_during_a_pull_stop_at_the_head_the_pull_read(tmp_path: Path) -> None:
    """Else a pull reported "head 8 of 5" and a note that the primary was behind the mirror."""
    from rgstore.events import Noted
    from rgstore.log import NewEvent
    from rgstore.upstream import client, server_pages

    with Store.open(tmp_path / "primary") as primary:
        primary.append([NewEvent(stream="s", event=Noted(text=f"n{i}")) for i in range(8)])
    # The pull read head 5 from /events/head; the primary has appended 3 more since.
    with running_server(tmp_path / "primary") as server, client() as http:
        seqs = [seq for page in server_pages(http, server.url, 2, 5) for seq, _ in page]
    assert seqs == [3, 4, 5]


def test_a_server_whose_store_becomes_another_logs_mid_pull_is_refused_and_nothing_is_applied(tmp_path: Path) -> None:
    import socket

    import httpx

    from rgstore.errors import LogMismatchError
    from rgstore.events import Noted
    from rgstore.log import NewEvent
    from rgstore.upstream import FRAMES_MEDIA_TYPE
    from tests.hostile_http import HostileServer, response

    with Store.open(tmp_path / "a") as a:
        a.append([NewEvent(stream="s", event=Noted(text=f"a{i}")) for i in range(3)])
    with Store.open(tmp_path / "b") as b:
        b.append([NewEvent(stream="s", event=Noted(text=f"b{i}")) for i in range(9)])
        other = b.log_id()
    with running_server(tmp_path / "a") as first, Store.open(tmp_path / "mirror") as mirror:
        pull(mirror, first.url)
        ours = mirror.log_id()
    with Store.open(tmp_path / "a") as a:
        a.append([NewEvent(stream="s", event=Noted(text=f"a{i}")) for i in range(3, 6)])
    with running_server(tmp_path / "a") as first, running_server(tmp_path / "b") as second:
        heads: list[str] = []

        def swapped_after_the_head_check(conn: socket.socket, path: str) -> bool:
            """A proxy whose backend becomes the other log's store once the mirror has read /events/head."""
            target = second.url if heads or not path.startswith("/events/head") else first.url
            if path.startswith("/events/head"):
                heads.append(target)
            r = httpx.get(target + path, headers={"Accept": FRAMES_MEDIA_TYPE})
            content_type = r.headers.get("content-type", "text/plain")
            conn.sendall(response(f"{r.status_code} {r.reason_phrase}", r.content, (f"Content-Type: {content_type}",)))
            return True

        with HostileServer({"/": swapped_after_the_head_check}) as proxy, Store.open(tmp_path / "mirror") as mirror:
            before = mirror.head(), view_digests(mirror)
            with pytest.raises(LogMismatchError, match=rf"^{proxy.url} serves log {other}, not this mirror's {ours}: "
                               "refusing to mix different logs$"):
                pull(mirror, proxy.url)
            assert (mirror.head(), view_digests(mirror)) == before
    pages = [line for line in proxy.seen if line.startswith("GET /events?")]
    assert pages and all(f"log_id={ours}" in line for line in pages)

def test_a_409_on_a_page_of_a_server_still_serving_the_log_fails_that_pull_only(tmp_path: Path) -> None:
    import socket

    import httpx

    from rgstore.errors import RemoteError
    from rgstore.events import Noted
    from rgstore.log import NewEvent
    from rgstore.upstream import FRAMES_MEDIA_TYPE
    from tests.hostile_http import HostileServer, response

    with Store.open(tmp_path / "a") as a:
        a.append([NewEvent(stream="s", event=Noted(text=f"a{i}")) for i in range(3)])
    with running_server(tmp_path / "a") as server:
        pages: list[str] = []

        def first_page_conflicts(conn: socket.socket, path: str) -> bool:
            """A proxy answering the first /events page with a 409 of its own; the server behind it never changes."""
            if path.startswith("/events?"):
                pages.append(path)
                if len(pages) == 1:
                    conn.sendall(response("409 Conflict", b"busy", ("Content-Type: text/plain",)))
                    return True
            r = httpx.get(server.url + path, headers={"Accept": FRAMES_MEDIA_TYPE})
            content_type = r.headers.get("content-type", "text/plain")
            conn.sendall(response(f"{r.status_code} {r.reason_phrase}", r.content, (f"Content-Type: {content_type}",)))
            return True

        with HostileServer({"/": first_page_conflicts}) as proxy, Store.open(tmp_path / "mirror") as mirror:
            with pytest.raises(RemoteError, match=rf"^{proxy.url}/events answered 409 for log \w+, but {proxy.url}"
                               r"/events/head names no other log .*; retry$"):
                pull(mirror, proxy.url)  # not a foreign-log refusal, which would stop a follower for good
            assert mirror.head()[0] == 0
            assert pull(mirror, proxy.url).head_seq == 3  # the next pull goes on


def _follower_pids(mirror: Path) -> list[int]:
    """Live `python -m rgstore.follow MIRROR ...` processes (zombies excluded)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if b"rgstore.follow" in argv and str(mirror).encode() in argv and state != "Z":
            pids.append(int(entry.name))
    return pids


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="finds the follower process in /proc")
def test_a_follower_killed_by_a_signal_is_started_again_and_the_mirror_catches_up(tmp_path: Path) -> None:
    import httpx

    from rgstore.events import Noted
    from rgstore.log import NewEvent

    primary_path, mirror = tmp_path / "primary", tmp_path / "mirror"
    with Store.open(primary_path) as primary:
        primary.append([NewEvent(stream="s", event=Noted(text="first"))])
    with running_server(primary_path) as upstream, running_server(
            mirror, extra_args=["--follow", upstream.url, "--interval", "200ms"]) as follower:
        [killed] = _follower_pids(mirror)
        os.kill(killed, signal.SIGKILL)  # the OOM killer, say: the server would serve a mirror frozen from now on
        with Store.open(primary_path) as primary:
            primary.append([NewEvent(stream="s", event=Noted(text=str(i))) for i in range(3)])
            expected = primary.head()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and httpx.get(f"{follower.url}/events/head").json()["head_seq"] != 4:
            time.sleep(0.1)
        head = httpx.get(f"{follower.url}/events/head").json()
        assert (head["head_seq"], head["head_hash"]) == expected
        assert [pid for pid in _follower_pids(mirror) if pid != killed]  # a new follower does the pulling
        assert "follower was killed by signal 9; starting it again" in follower.log()
    assert not _follower_pids(mirror)  # stopping the server stops the restarted follower too


def test_a_follower_of_a_vanished_segment_directory_serves_its_copy_and_picks_up_when_it_returns(tmp_path: Path) -> None:
    import httpx

    from rgstore.events import Noted
    from rgstore.log import NewEvent
    from rgstore.segments import publish as publish_log

    with Store.open(tmp_path / "primary") as primary:
        primary.append([NewEvent(stream="s", event=Noted(text="first"))])
        publish_log(primary, tmp_path / "pub")
    with Store.open(tmp_path / "mirror") as mirror:
        pull(mirror, str(tmp_path / "pub"))
    (tmp_path / "pub").rename(tmp_path / "pub-away")  # an unmounted share, say
    with running_server(tmp_path / "mirror", extra_args=["--follow", str(tmp_path / "pub"), "--interval", "200ms"]) \
            as follower:
        assert httpx.get(f"{follower.url}/events/head").json()["head_seq"] == 1
        assert "serving the local copy" in follower.log()
        with Store.open(tmp_path / "primary") as primary:
            primary.append([NewEvent(stream="s", event=Noted(text="second"))])
            publish_log(primary, tmp_path / "pub-away")
        (tmp_path / "pub-away").rename(tmp_path / "pub")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and httpx.get(f"{follower.url}/events/head").json()["head_seq"] != 2:
            time.sleep(0.1)
        assert httpx.get(f"{follower.url}/events/head").json()["head_seq"] == 2


@pytest.mark.slow
def test_a_mirror_of_a_follower_that_fetches_sequences_reads_them_through_it(tmp_path: Path) -> None:
    from rgstore.errors import RgstoreError

    with Store.open(tmp_path / "primary") as primary:
        primary.genomes.init(TINY, ["tiny"])
    with running_server(tmp_path / "primary") as upstream, running_server(
            tmp_path / "middle", extra_args=["--follow", upstream.url, "--interval", "200ms", "--with-sequences"]) \
            as middle:
        with Store.open(tmp_path / "primary") as primary:  # a genome that arrives while the follower runs
            fasta = _fasta(tmp_path / "late.fa", random.Random(3), 1)
            primary.genomes.init(fasta, ["late"])
            want = primary.getseq("late", "chr0", 0, 40)
        deadline, got = time.monotonic() + 60, None
        while got is None and time.monotonic() < deadline:
            with Store.open(tmp_path / "leaf") as leaf:  # a lazy mirror of the follower, not of the primary
                pull(leaf, middle.url)
                try:
                    got = leaf.getseq("late", "chr0", 0, 40)
                except RgstoreError:
                    time.sleep(0.2)  # the follower has not fetched it yet
        assert got == want


def test_a_mirror_of_a_lazy_mirror_reads_sequences_through_it(tmp_path: Path) -> None:
    """A lazy mirror's /sequence and /store/ routes fetch what it lacks from its primary first, verified."""
    import httpx

    with Store.open(tmp_path / "primary") as primary:
        primary.genomes.init(TINY, ["tiny"])
        want = primary.getseq("tiny", "chr2", 100, 160)
    with running_server(tmp_path / "primary") as upstream:
        with Store.open(tmp_path / "middle") as middle:
            pull(middle, upstream.url)  # lazy: events only
            assert not list((middle.refget_path / "sequences").rglob("*.seq"))
        with running_server(tmp_path / "middle") as served, Store.open(tmp_path / "leaf") as leaf:
            pull(leaf, served.url)
            assert leaf.getseq("tiny", "chr2", 100, 160) == want  # through the middle's /sequence route
            chr1 = leaf.genomes.show("tiny").sequences[0][3:]
            seq_file = httpx.get(f"{served.url}/store/sequences/{chr1[:2]}/{chr1}.seq", timeout=60)
            assert seq_file.status_code == 200 and seq_file.content[:60] == leaf.getseq("tiny", "chr1", 0, 60).encode()
            missing = httpx.get(f"{served.url}/store/sequences/{chr1[:2]}/{chr1[:2]}{'A' * 30}.seq", timeout=60)
            assert missing.status_code == 404
    with Store.open(tmp_path / "middle") as middle:
        report = middle.verify()
        assert report.ok and report.sequences == 2  # both fetched by the middle, both verified


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="finds the follower process in /proc")
def test_sigterm_stops_a_following_server_with_exit_0_and_its_follower_with_it(tmp_path: Path) -> None:
    """A supervisor's SIGTERM runs serve's cleanup: no follower left pulling until its next round."""
    from rgstore.events import Noted
    from rgstore.log import NewEvent

    primary_path, mirror = tmp_path / "primary", tmp_path / "mirror"
    with Store.open(primary_path) as primary:
        primary.append([NewEvent(stream="s", event=Noted(text="first"))])
    with running_server(primary_path) as upstream, running_server(
            mirror, extra_args=["--follow", upstream.url, "--interval", "1h"]) as follower:
        assert _follower_pids(mirror)
        follower.process.send_signal(signal.SIGTERM)
        assert follower.process.wait(timeout=60) == 0, follower.log()  # not killed by the signal it was sent
        assert not _follower_pids(mirror)  # the follower is not orphaned for up to an hour


def _poll(url: str, until: object, timeout: float = 60.0) -> dict[str, object]:
    """GET ``url`` until ``until(status_code, body)`` holds (or the timeout passes): the last (status, body)."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        resp = httpx.get(url, timeout=10)
        answer = {"status": resp.status_code, "body": resp.json()}
        if until(resp.status_code, answer["body"]) or time.monotonic() > deadline:  # type: ignore[operator]
            return answer
        time.sleep(0.1)


def test_a_followers_readiness_fails_while_its_upstream_is_down_and_status_says_why(tmp_path: Path) -> None:
    from rgstore.events import Noted
    from rgstore.log import NewEvent
    from tests.server_fixture import _stop, _wait_healthy

    primary_path = tmp_path / "primary"
    with Store.open(primary_path) as primary:
        primary.append([NewEvent(stream="s", event=Noted(text="first"))])
    with running_server(primary_path) as upstream, running_server(
            tmp_path / "mirror", extra_args=["--follow", upstream.url, "--interval", "200ms"]) as follower:
        ready = f"{follower.url}/readyz?max_age=2s"
        assert _poll(ready, lambda code, _: code == 200)["status"] == 200
        _stop(upstream.process)  # the outage
        # /readyz caches a look for ~1 s: wait for the answer that has seen the follower's recorded failure.
        down = _poll(ready, lambda code, body: code == 503 and "pulls have failed since" in str(body.get("detail")))
        status = _poll(f"{follower.url}/status", lambda _, body: body["replica"]["error"] is not None)["body"]
        assert down["status"] == 503, down
        assert down["body"]["detail"].startswith("this mirror's last successful pull was")  # type: ignore[index]
        assert "pulls have failed since" in down["body"]["detail"]  # type: ignore[index]
        assert "cannot reach" in status["replica"]["error"]  # type: ignore[index]
        assert status["replica"]["last_pull"] == down["body"]["last_pull"]  # type: ignore[index]
        # The upstream is back on its address: the follower catches up and is ready again.
        port = upstream.url.rsplit(":", 1)[1]
        with open(tmp_path / "upstream-again.log", "wb") as log:
            again = subprocess.Popen([sys.executable, "-m", "rgstore_cli", "--store", str(primary_path), "serve",
                                      "--host", "127.0.0.1", "--port", port], cwd=REPO, stdout=log,
                                     stderr=subprocess.STDOUT)
        try:
            _wait_healthy(upstream.url, again, tmp_path / "upstream-again.log")
            back = _poll(ready, lambda code, _: code == 200)
            status = _poll(f"{follower.url}/status", lambda _, body: body["replica"]["error"] is None)["body"]
        finally:
            _stop(again)
        assert back["status"] == 200 and status["replica"]["error"] is None, (back, status)

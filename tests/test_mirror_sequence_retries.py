"""A mirror's sequence fetches ride out upstream blips on the retry policy: eagerly within the pull's budget, lazily briefly.

The upstream is a real loopback file server (``tests.upstream_fixture``) serving a primary's
published segments and RefgetStore, answering chosen files with an error status first.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from rgstore.errors import IntegrityError, RemoteError
from rgstore.mirror import pull
from rgstore.segments import publish, publish_refget
from rgstore.store import Store
from tests.conftest import REPO
from tests.server_fixture import running_server
from tests.upstream_fixture import UpstreamServer

_FASTA = ">chr1\nACGTACGTNNNNACGTRYKMACG\n>chr2\nGGGGCCCCAAAATTTT\n>chrM\nacgtacgtac\n"


def _published(tmp_path: Path) -> tuple[Path, str]:
    """A primary of one genome published with its RefgetStore in ``pub``; (pub, chr1's bare digest)."""
    (tmp_path / "g.fa").write_text(_FASTA)
    with Store.open(tmp_path / "p") as primary:
        genome = primary.genomes.init(tmp_path / "g.fa", ["tiny"]).genome
        publish(primary, tmp_path / "pub")
        publish_refget(primary, tmp_path / "pub")
    return tmp_path / "pub", genome.sequences[0].removeprefix("SQ.")


def test_a_pull_with_sequences_rides_out_a_sequence_answering_503_once(tmp_path: Path) -> None:
    pub, chr1 = _published(tmp_path)
    with UpstreamServer(pub) as server, Store.open(tmp_path / "m") as mirror:
        server.throttle(f"{chr1}.seq", times=1, retry_after="0", status=503)
        assert pull(mirror, server.url, with_sequences=True).sequences_fetched == 3
        assert [r.status for r in server.gets(f"{chr1}.seq")][0] == 503  # answered 503, then asked again
        assert len(server.gets(f"{chr1}.seq")) == 2
        assert mirror.verify().ok
        assert mirror.getseq("tiny", "chr1", 0, 23) == "ACGTACGTNNNNACGTRYKMACG"


def test_a_pull_with_sequences_from_an_upstream_always_answering_503_fails_in_one_line_within_the_budget(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RGSTORE_RETRY_BUDGET_S", "0.5")
    pub, chr1 = _published(tmp_path)
    with UpstreamServer(pub) as server, Store.open(tmp_path / "m") as mirror:
        server.throttle(f"{chr1}.seq", times=100, retry_after="1", status=503)
        with pytest.raises(RemoteError) as caught:
            pull(mirror, server.url, with_sequences=True)
        message = str(caught.value)
        assert "\n" not in message and chr1 in message and "503" in message and "rgstore waits in all" in message
        assert len(server.gets(f"{chr1}.seq")) == 1  # its 1 s Retry-After is past the 0.5 s budget
        server.throttle(f"{chr1}.seq", times=100, retry_after="0", status=500)
        with pytest.raises(RemoteError, match=r"500 \(tried 4 times\)"):
            pull(mirror, server.url, with_sequences=True)
        assert mirror.verify().ok  # nothing unverified was kept


def test_a_sequence_failing_its_digest_is_not_retried_as_a_blip(tmp_path: Path) -> None:
    pub, chr1 = _published(tmp_path)
    with UpstreamServer(pub) as server, Store.open(tmp_path / "m") as mirror:
        server.corrupt(f"{chr1}.seq")
        with pytest.raises(IntegrityError, match="corrupt") as caught:
            pull(mirror, server.url, with_sequences=True)
        assert "tried" not in str(caught.value)
        # At most the one read again with a fresh manifest (a store republished meanwhile), never the retries'.
        assert len(server.gets(f"{chr1}.seq")) <= 2


def test_a_lazy_getseq_rides_out_one_503_with_retry_after_zero(tmp_path: Path) -> None:
    pub, chr1 = _published(tmp_path)
    with UpstreamServer(pub) as server, Store.open(tmp_path / "m") as mirror:
        pull(mirror, server.url)  # the log only: sequences are fetched when first read
        server.throttle(f"{chr1}.seq", times=1, retry_after="0", status=503)
        assert mirror.getseq("tiny", "chr1", 0, 8) == "ACGTACGT"
        assert [r.status for r in server.gets(f"{chr1}.seq")][0] == 503
        assert len(server.gets(f"{chr1}.seq")) == 2


def test_a_lazy_getseq_fails_at_once_when_the_upstream_asks_to_wait_past_its_small_budget(tmp_path: Path) -> None:
    pub, chr1 = _published(tmp_path)
    with UpstreamServer(pub) as server, Store.open(tmp_path / "m") as mirror:
        pull(mirror, server.url)
        # A pull would wait 30 s (within the default 90 s budget); a read a server's client waits on does not.
        server.throttle(f"{chr1}.seq", times=1, retry_after="30", status=503)
        with pytest.raises(RemoteError, match="503.*past the 2 s rgstore waits in all"):
            mirror.getseq("tiny", "chr1", 0, 8)
        assert len(server.gets(f"{chr1}.seq")) == 1
        assert mirror.getseq("tiny", "chr1", 0, 8) == "ACGTACGT"  # the next read fetches it


def _serve_follow_on_a_terminal(store: Path, source: Path) -> bytes:
    """`rgstore serve --follow SOURCE` into ``store`` with stderr on a pseudo-terminal, TERMed once serving; what it showed."""
    primary, replica = pty.openpty()
    fcntl.ioctl(replica, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "rgstore_cli", "--store", str(store), "serve", "--host", "127.0.0.1",
         "--port", "0", "--follow", str(source), "--interval", "1h"],
        cwd=REPO, stdin=subprocess.DEVNULL, stdout=replica, stderr=replica, env={**os.environ, "TERM": "xterm"})
    os.close(replica)
    seen, deadline, termed = b"", time.monotonic() + 60, False
    try:
        while time.monotonic() < deadline:
            if not termed and b"rgstore: serving" in seen:
                proc.send_signal(signal.SIGTERM)
                termed = True
            ready, _, _ = select.select([primary], [], [], 0.2)
            if not ready:
                continue
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # EIO: the child closed its end
                break
            if not chunk:
                break
            seen += chunk
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        os.close(primary)
    assert termed, seen[-500:]
    return seen


def test_serve_follow_into_a_new_store_says_what_it_pulls_first_on_a_terminal_only(tmp_path: Path) -> None:
    pub, _ = _published(tmp_path)
    seen = _serve_follow_on_a_terminal(tmp_path / "shown", pub)
    assert f"pulling {pub} before serving ...".encode() in seen
    assert seen.index(b"pulling") < seen.index(b"rgstore: serving")
    with running_server(tmp_path / "piped", extra_args=["--follow", str(pub), "--interval", "1h"]) as piped:
        assert "rgstore: serving" in piped.log()
        assert "pulling" not in piped.log()


def test_a_lazy_mirrors_server_rides_out_one_503_from_its_upstream_for_a_sequence(tmp_path: Path) -> None:
    import httpx

    pub, chr1 = _published(tmp_path)
    with UpstreamServer(pub) as upstream:
        with Store.open(tmp_path / "m") as mirror:
            pull(mirror, upstream.url)  # the log only: the server fetches sequences when first asked
        upstream.throttle(f"{chr1}.seq", times=1, retry_after="0", status=503)
        with running_server(tmp_path / "m") as server:
            answer = httpx.get(f"{server.url}/sequence/SQ.{chr1}", params={"start": 0, "end": 8}, timeout=60)
        assert (answer.status_code, answer.text) == (200, "ACGTACGT")
        assert [r.status for r in upstream.gets(f"{chr1}.seq")] == [503, 206]

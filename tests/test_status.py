"""Claims about `rgstore status`: one engine call that counts, sizes and checks a store from its views."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import httpx
import msgspec
import pytest

from rgstore.events import AliasSet
from rgstore.log import NewEvent
from rgstore.mirror import promote, pull
from rgstore.pendingsync import PendingSync
from rgstore.segments import publish
from rgstore.status import StoreStatus, store_status
from rgstore.store import Store
from tests.conftest import REPO, run_rgstore
from tests.server_fixture import init_genome, rgstore_cli, running_server
from tests.test_sharing import _OUTSIDER, _as_user, needs_root, outsiders_lab, readers_may_lock
from tests.upstream_fixture import UpstreamServer

ENS = ["--source", "ensembl", "--species", "synthetica_testii", "--release", "110"]
FASTA = ">chr1\nACGTACGTACGTNNNN\n>chrM\nGATTACA\n"


def _populate(root: Path, store: Path, server: UpstreamServer | None = None) -> dict[str, object]:
    """A genome with a collection and a sequence alias, a refpkg, and (given a server) a pinned cache entry."""
    (root / "g.fa").write_text(FASTA)
    genome = init_genome(store, root / "g.fa", "g")
    sequences = genome["sequences"]
    assert isinstance(sequences, list)
    rgstore_cli(store, "alias", "set", "--sequence", "insdc:X1.1", str(sequences[0]))
    (root / "tree.nwk").write_text("(a:0.1,b:0.2);\n")
    rgstore_cli(store, "refpkg", "create", "pkg", "-l", "16S", "-t", str(root / "tree.nwk"))
    if server is not None:
        rows = json.loads(rgstore_cli(store, "cache", "regions", *ENS, "--regions", "gene", "--base-url",
                                      f"{server.url}/ensembl", "--json"))
        rgstore_cli(store, "cache", "pin", rows[0]["key"])
    return genome


def _part(status: StoreStatus, name: str) -> tuple[int | None, int | None]:
    part = next(p for p in status.disk if p.part == name)
    return part.bytes, part.file_bytes


def test_status_counts_and_sizes_a_populated_store_from_its_views(
    tmp_path: Path, server: UpstreamServer
) -> None:
    store_path = tmp_path / "store"
    _populate(tmp_path, store_path, server)
    out = rgstore_cli(store_path, "status", "--json")
    status = msgspec.json.decode(out, type=StoreStatus)  # --json prints the Struct itself
    c = status.counts
    assert (c.genomes, c.collection_aliases, c.sequence_aliases, c.refpkgs) == (1, 1, 1, 1)
    entries = json.loads(rgstore_cli(store_path, "cache", "ls", "--json"))
    assert (c.cache_level1, c.cache_level2) == (sum(e["level"] == 1 for e in entries), sum(e["level"] == 2 for e in entries))
    assert c.cache_level1 >= 1 and c.cache_pinned == 1
    assert _part(status, "cache")[0] == sum(e["size"] for e in entries) > 0
    # The refpkg's blobs: count and bytes as on disk (the test walks; status only read the views).
    blob_files = [p for p in (store_path / "blobs").rglob("*") if p.is_file()]
    assert c.blobs == len(blob_files) >= 1
    assert _part(status, "blobs")[0] == sum(p.stat().st_size for p in blob_files)
    assert _part(status, "refget")[0] == len("ACGTACGTACGTNNNN") + len("GATTACA")  # Raw mode: a byte a residue
    used, file_bytes = _part(status, "log")
    assert used is not None and file_bytes is not None and 0 < used <= file_bytes
    with Store.open(store_path, readonly=True) as store:
        head = store.head()[0]
        assert status.log_id == store.log_id() and status.head_seq == head
        assert status.head_time == store.event(head).time
        assert status.streams == len({e.stream for e in store.events()})
    assert [v.state for v in status.views] == ["current"] * len(status.views) and status.healthy
    assert status.replica is None and status.pending_syncs == [] and status.path == str(store_path)
    text = rgstore_cli(store_path, "status")
    assert "1 collection, 1 sequence" in text and f"{len(status.views)} of {len(status.views)} current" in text
    assert f"seq {head}" in text and "health:" in text and text.rstrip().endswith("ok")


def test_a_fresh_store_and_one_without_refget_report_zeros(tmp_path: Path) -> None:
    Store.open(tmp_path / "s").close()
    with Store.open(tmp_path / "s", readonly=True) as store:
        status = store_status(store)
    assert (status.head_seq, status.head_time, status.streams) == (0, None, 0)
    assert msgspec.structs.asdict(status.counts) == dict.fromkeys(msgspec.structs.asdict(status.counts), 0)
    assert status.healthy and all(v.state == "current" for v in status.views)
    # A store copied without refget/ (or created before it existed): the part says so instead of failing.
    for child in sorted((tmp_path / "s" / "refget").rglob("*"), reverse=True):
        child.rmdir() if child.is_dir() else child.unlink()
    (tmp_path / "s" / "refget").rmdir()
    with Store.open(tmp_path / "s", readonly=True) as store:
        part = next(p for p in store_status(store).disk if p.part == "refget")
    assert (part.bytes, part.basis) == (0, "no RefgetStore yet")
    assert not (tmp_path / "s" / "refget").exists()  # status created nothing


def test_a_read_only_handle_reports_a_pending_sync_mark_as_a_problem(tmp_path: Path) -> None:
    Store.open(tmp_path / "s").close()
    with Store.open(tmp_path / "s", readonly=True) as store:
        PendingSync(store.path).abandon()  # a command killed between its commit and its alias-file refresh
        status = store_status(store)
    assert len(status.pending_syncs) == 1 and status.pending_syncs[0].startswith(".sync-pending-")
    assert not status.healthy and any("pending sync" in p for p in status.problems)


def _store_with_an_alias(path: Path) -> Store:
    """The store at ``path`` (created) holding one collection alias, open for writing."""
    store = Store.open(path)
    store.append([NewEvent(stream="alias:refgenie/a", event=AliasSet(namespace="refgenie", name="a", digest="D" * 32))])
    return store


def _check_as_outsider(store: Path) -> str:
    """``rgstore status --check`` run by a user who may only read ``store``: "ok: EXIT OUTPUT"."""
    from click.testing import CliRunner
    from rgstore_cli.main import cli

    def check() -> str:
        result = CliRunner().invoke(cli, ["--store", ".", "status", "--check"])
        return f"{result.exit_code} {result.output}"

    return _as_user(store, _OUTSIDER, [], check)


@needs_root
def test_a_user_who_may_only_read_the_store_gets_its_status_and_sees_another_users_mark() -> None:
    with outsiders_lab("rgstore-status-") as lab:
        _store_with_an_alias(lab / "s").close()
        mark = PendingSync(lab / "s")
        mark.abandon()
        os.chmod(mark.path, 0o600)  # as made under umask 077: the reader can neither check nor clear it
        readers_may_lock(lab / "s")

        def reader() -> str:
            with Store.open(".", readonly=True) as store:
                return msgspec.json.encode(store_status(store)).decode()

        result = _as_user(lab / "s", _OUTSIDER, [], reader)
        assert result.startswith("ok: "), result
        status = msgspec.json.decode(result[4:], type=StoreStatus)
        assert status.head_seq == 1 and status.counts.collection_aliases == 1
        assert len(status.pending_syncs) == 1 and "another user's mark" in status.problems[0] and not status.healthy


@needs_root
def test_status_check_exits_1_for_a_reader_who_meets_a_problem_and_0_once_it_is_cleared() -> None:
    from click.testing import CliRunner
    from rgstore_cli.main import cli

    with outsiders_lab("rgstore-status-") as lab:
        Store.open(lab / "s").close()
        PendingSync(lab / "s").abandon()  # as a writer killed before its alias-file refresh leaves it
        readers_may_lock(lab / "s")
        # A monitoring user who may only read cannot clear the mark: the report names it and exits 1.
        assert _check_as_outsider(lab / "s").startswith("ok: 1 "), "a problem must fail --check"
        plain = _as_user(lab / "s", _OUTSIDER, [], lambda: str(CliRunner().invoke(
            cli, ["--store", ".", "status"]).exit_code))
        assert plain == "ok: 0"  # without --check the report alone decides nothing
        Store.open(lab / "s").close()  # the owner's next open refreshes and clears the mark
        assert _check_as_outsider(lab / "s").startswith("ok: 0 ")


@needs_root
def test_a_reader_who_cannot_rebuild_a_stale_view_gets_a_status_naming_it_not_a_refusal() -> None:
    from click.testing import CliRunner
    from rgstore_cli.main import cli

    with outsiders_lab("rgstore-status-") as lab:
        with _store_with_an_alias(lab / "s") as store:
            # As an upgrade leaves it: the cache view was folded by an older version of itself.
            store.environment.write(lambda txn: txn.put(b"cache", struct.pack(">IQ", 1, 1),
                                                        db=store.environment.db("checkpoints")))
        readers_may_lock(lab / "s")
        result = _check_as_outsider(lab / "s")
        assert result.startswith("ok: 1 "), result
        assert "view 'cache' is stale: folded by view version 1" in result and "collection" in result
        # Commands that read the stale view still refuse: their answers would come from it.
        refused = _as_user(lab / "s", _OUTSIDER, [],
                           lambda: CliRunner().invoke(cli, ["--store", ".", "cache", "ls"]).output)
        assert "built by another rgstore version" in refused


def test_a_log_that_ends_before_its_recorded_head_is_a_problem_not_an_empty_log(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s") as store:
        for i in range(3):
            store.append([NewEvent(stream=f"alias:refgenie/a{i}", event=AliasSet(namespace="refgenie", name=f"a{i}",
                                                                             digest=f"d{i}"))])
        # As a copy of log/ taken while rgstore wrote can be: the meta names seq 3, the records stop at 2.
        store.environment.write(lambda txn: txn.delete(struct.pack(">Q", 3), db=store.environment.db("log")))
        status = store_status(store)
    assert status.head_seq == 3 and not status.healthy
    assert status.problems[0] == ("the log holds 2 records but its head is seq 3 (a damaged or torn copy of log/); "
                                  "run `rgstore verify`")
    shown = run_rgstore("--store", str(tmp_path / "s"), "status", "--check")
    assert shown.returncode == 1 and b"(empty log)" not in shown.stdout and b"head is seq 3" in shown.stdout


def test_a_lagging_and_a_stale_view_are_named(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s") as store:
        for i in range(3):
            store.append([NewEvent(stream=f"alias:refgenie/a{i}", event=AliasSet(namespace="refgenie", name=f"a{i}",
                                                                             digest=f"d{i}"))])
        views = {v.name: v for v in store.views}

        def rewind(txn: object) -> None:
            # As an older rgstore without the stream index leaves it, and a view folded by another version.
            store.log.set_checkpoint(txn, views["streamindex"], 1)  # type: ignore[arg-type]
            txn.put(b"cache", struct.pack(">IQ", 1, 3), db=store.environment.db("checkpoints"))  # type: ignore[attr-defined]

        store.environment.write(rewind)
        status = store_status(store)
    states = {v.name: (v.state, v.detail) for v in status.views}
    assert states["streamindex"] == ("lagging", "checkpoint at seq 1, 2 events behind the head")
    assert states["cache"][0] == "stale" and "version 1" in states["cache"][1]
    assert states["aliases"] == ("current", "")
    # Both are named; only the stale cache view is a problem: the lagging index's readers read the log instead.
    assert not status.healthy and {p.split("'")[1] for p in status.problems} == {"cache"}


def test_a_mirror_shows_its_upstream_and_last_pull_then_its_promotion(tmp_path: Path) -> None:
    primary = tmp_path / "p"
    _populate(tmp_path, primary)
    (tmp_path / "new.nwk").write_text("((a:0.1,b:0.2):0.05,c:0.3);\n")
    rgstore_cli(primary, "refpkg", "update", "pkg", f"tree={tmp_path / 'new.nwk'}")  # the old tree: an older step's
    blob_files = [p for p in (primary / "blobs").rglob("*") if p.is_file()]
    with Store.open(primary, readonly=True) as store:
        publish(store, tmp_path / "pub")
        at_primary = store_status(store)
    assert at_primary.counts.blobs == len(blob_files) and _part(at_primary, "blobs")[0] == sum(
        p.stat().st_size for p in blob_files)
    with Store.open(tmp_path / "m") as mirror:
        pull(mirror, str(tmp_path / "pub"))  # without --with-blobs: the sizes come from the recorded steps
        assert not [p for p in (tmp_path / "m" / "blobs").rglob("*") if p.is_file()]
        status = store_status(mirror)
        replica = status.replica
        assert replica is not None and (replica.upstream, replica.promoted, replica.local_head) == (
            str(tmp_path / "pub"), False, at_primary.head_seq)
        assert replica.last_pull is not None and replica.upstream_head is None  # the upstream is not contacted
        assert _part(status, "blobs") == _part(at_primary, "blobs") and status.counts == at_primary.counts
    assert "mirror of" in rgstore_cli(tmp_path / "m", "status")
    with Store.open(tmp_path / "m") as mirror:
        promote(mirror, force=True)
        after = store_status(mirror)
    assert after.replica is not None and after.replica.promoted and after.replica.upstream == str(tmp_path / "pub")
    text = rgstore_cli(tmp_path / "m", "status")
    assert f"promoted; was a mirror of {tmp_path / 'pub'}" in text


def test_a_missing_store_is_a_one_line_error_and_creates_nothing(tmp_path: Path) -> None:
    result = run_rgstore("--store", str(tmp_path / "nope"), "status")
    assert result.returncode != 0 and result.stdout == b""
    assert result.stderr.decode().count("\n") == 1 and "no rgstore store at" in result.stderr.decode()
    assert not (tmp_path / "nope").exists()


def test_the_server_answers_status_without_its_store_path(tmp_path: Path) -> None:
    store_path = tmp_path / "store"
    _populate(tmp_path, store_path)
    with running_server(store_path) as server:
        answer = httpx.get(f"{server.url}/status", timeout=10)
        spec = httpx.get(f"{server.url}/openapi.json", timeout=10).json()
    assert answer.status_code == 200
    body = answer.json()
    assert body["path"] is None and str(store_path) not in answer.text
    assert body["counts"]["genomes"] == 1 and body["counts"]["refpkgs"] == 1 and body["healthy"] is True
    with Store.open(store_path, readonly=True) as store:
        assert (body["log_id"], body["head_seq"]) == (store.log_id(), store.head()[0])
    assert "/status" in spec["paths"]


def test_the_server_withholds_a_mirrors_local_upstream_path_too(tmp_path: Path) -> None:
    primary = tmp_path / "p"
    _populate(tmp_path, primary)
    with Store.open(primary, readonly=True) as store:
        publish(store, tmp_path / "pub")
    with Store.open(tmp_path / "m") as mirror:
        pull(mirror, str(tmp_path / "pub"))
    with running_server(tmp_path / "m") as server:
        answer = httpx.get(f"{server.url}/status", timeout=10)
    assert answer.status_code == 200 and str(tmp_path) not in answer.text
    assert answer.json()["replica"]["upstream"] == "(a local path)"


def test_the_text_report_says_blob_and_cache_sizes_are_the_recorded_ones(tmp_path: Path) -> None:
    # A mirror pulled without --with-blobs holds none of them locally: the sizes come from the log.
    Store.open(tmp_path / "s").close()
    shown = run_rgstore("--store", str(tmp_path / "s"), "status")
    lines = {line.split(":")[0]: line for line in shown.stdout.decode().splitlines()}
    assert lines["disk blobs"].endswith("0 B recorded") and lines["disk cache"].endswith("0 B recorded")
    assert "recorded" not in lines["disk log"]


def test_blobs_only_older_refpkg_states_reference_are_sized_from_their_recorded_sizes_not_stat_ed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # At 9,500 packages a stat per such blob cost status half a second; the FileRefs record the
    # size the blob was verified at, which the blobs basis names.
    trees = []
    for i in range(6):
        trees.append(tmp_path / f"tree{i}.nwk")
        trees[-1].write_text(f"(a:0.{i},b:0.2);\n" * (i + 1))
    with Store.open(tmp_path / "s") as store:
        store.refpkgs.create("pkg", locus="16S", files={"tree": trees[0]})
        for tree in trees[1:]:
            store.refpkgs.update_files("pkg", {"tree": str(tree)})
        store.refpkgs.rollback("pkg", 2)  # the two newest trees: only undone states name them
        looked_up: list[str] = []
        path_of = store.blobs.path

        def counting_path(sha256: str) -> Path:
            looked_up.append(sha256)
            return path_of(sha256)

        monkeypatch.setattr(store.blobs, "path", counting_path)
        status = store_status(store)
    part = next(p for p in status.disk if p.part == "blobs")
    assert (status.counts.blobs, part.bytes) == (6, sum(t.stat().st_size for t in trees))
    assert "recorded" in part.basis
    assert looked_up == []


def test_the_text_status_names_the_audit_indexes_a_reader_who_cannot_rebuild_them_finds_lagging(
    tmp_path: Path,
) -> None:
    # After an upgrade, on a copy this user may not write: "8 of 9 current" with "health: ok" did not say which.
    import click.testing  # noqa: F401  (imported before the child leaves root: CI's venv is closed to others)
    from rgstore_cli import status as _status_command  # noqa: F401

    from rgstore.events import Noted
    from tests.test_sharing import outsiders_lab

    with outsiders_lab("rgstore-status-") as lab:
        root = lab / "store"
        with Store.open(root) as store:
            store.append([NewEvent(stream="s", event=Noted(text="x"))])
            store.append([NewEvent(stream="s", event=Noted(text="y"))])

            def older(txn: object) -> None:  # as an older rgstore, which lacks the time index, leaves it
                timeindex = next(view for view in store.views if view.name == "timeindex")
                timeindex.clear(txn, store.environment)  # type: ignore[arg-type]
                store.log.set_checkpoint(txn, timeindex, 0)  # type: ignore[arg-type]

            store.environment.write(older)
            total = len(store.views)
        readers_may_lock(root)
        if os.geteuid() == 0:  # root may write any file: read as a user who may not write the store
            text = _as_user(root, _OUTSIDER, [], lambda: rgstore_cli(root, "status"))
        else:
            os.chmod(root / "log" / "data.mdb", 0o444)
            text = "ok: " + rgstore_cli(root, "status")
            os.chmod(root / "log" / "data.mdb", 0o644)
    assert f"{total - 1} of {total} current (timeindex lagging)" in text and text.rstrip().endswith("ok"), text


def test_a_store_moved_under_an_open_handle_is_a_problem_not_healthy(tmp_path: Path) -> None:
    Store.open(tmp_path / "s").close()
    with Store.open(tmp_path / "s", readonly=True) as store:
        assert store_status(store).healthy
        (tmp_path / "s").rename(tmp_path / "moved")  # a long-lived handle reads on from files nobody updates
        status = store_status(store)
    assert not status.healthy and any("deleted, moved or replaced" in p for p in status.problems)
    assert any("open it again where it is now (run the command again)" in p for p in status.problems)
    assert not any("restart" in p for p in status.problems)  # no server here to restart


def test_a_servers_status_over_a_replacement_that_does_not_open_says_it_serves_one_once_it_opens(
        tmp_path: Path) -> None:
    """A server reopens a store replaced at its path by itself: a restart is no longer the advice."""
    path = tmp_path / "store"
    Store.open(path).close()
    with running_server(path, log_dir=tmp_path) as server:
        path.rename(tmp_path / "store.old")
        (path / "log").mkdir(parents=True)
        (path / "log" / "data.mdb").write_bytes(b"not an LMDB file" * 512)  # a restore gone wrong
        deadline = time.monotonic() + 30  # the worker looks at the path about once a second
        while "does not open" not in (ready := httpx.get(f"{server.url}/readyz")).text \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        status = httpx.get(f"{server.url}/status").json()
    assert ready.status_code == 503, ready.text
    moved = [p for p in status["problems"] if "deleted, moved or replaced" in p]
    assert len(moved) == 1 and "the one there now does not open" in moved[0], status["problems"]
    assert moved[0].endswith("this server serves the store there once it opens"), moved[0]
    assert not any("restart" in p for p in status["problems"]) and str(tmp_path) not in json.dumps(status)


def _mirror_of_a_primary(tmp_path: Path, *, unpublished_blob: bool = False) -> Path:
    """A mirror (``m``) pulled once (the log) from the published segments (``pub``) of a primary (``p``).

    The primary is empty, or with ``unpublished_blob`` holds a refpkg whose blob ``pub`` lacks
    (published without --with-blobs): every pull with blobs from ``pub`` fails, after its log part.
    """
    Store.open(tmp_path / "p").close()
    if unpublished_blob:
        (tmp_path / "tree.nwk").write_text("(a:0.1,b:0.2);\n")
        with Store.open(tmp_path / "p") as primary:
            primary.refpkgs.create("pkg", locus="16S", files=[("tree", tmp_path / "tree.nwk")])
    with Store.open(tmp_path / "p", readonly=True) as primary:
        publish(primary, tmp_path / "pub")
    with Store.open(tmp_path / "m") as mirror:
        pull(mirror, str(tmp_path / "pub"))
    return tmp_path / "m"


def test_a_followers_failing_pulls_are_the_replicas_error_until_a_pull_succeeds(tmp_path: Path) -> None:
    from rgstore.mirror import record_pull_error
    from rgstore.mirrorstatus import status as mirror_status

    with Store.open(_mirror_of_a_primary(tmp_path)) as mirror:
        assert mirror_status(mirror, check_upstream=False).error is None
        record_pull_error(mirror, "cannot reach http://user:pw@up.example/: refused")
        first = mirror_status(mirror, check_upstream=False).error
        record_pull_error(mirror, "cannot reach http://up.example/: refused again")
        replica = store_status(mirror).replica
        pull(mirror, str(tmp_path / "pub"))
        cleared = store_status(mirror).replica
    assert first is not None and first.startswith("pulls have failed since ") and "pw" not in first
    since = first.split()[4]
    assert replica is not None and replica.error is not None and replica.last_pull is not None
    assert replica.error.startswith(f"pulls have failed since {since} (the last at ")  # since the first failure
    assert replica.error.endswith(": cannot reach http://up.example/: refused again")
    assert cleared is not None and cleared.error is None and cleared.last_pull != replica.last_pull


def test_a_followers_pull_error_stays_failing_since_its_first_failed_round_while_the_log_part_succeeds(
        tmp_path: Path) -> None:
    # Each round's log pull succeeded and cleared the record before its blob fetch failed again, so
    # "failing since" restarted every round: a mirror failing for days looked as if it had just begun.
    from rgstore.follow import follow
    from rgstore.mirrorstatus import status as mirror_status
    from rgstore.segments import publish_blobs

    mirror_path = _mirror_of_a_primary(tmp_path, unpublished_blob=True)

    def rounds(n: int) -> str | None:
        handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)  # follow installs its own
        try:
            assert follow(mirror_path, str(tmp_path / "pub"), 0.1, max_rounds=n) == 0  # kept going
        finally:
            signal.signal(signal.SIGINT, handlers[0])
            signal.signal(signal.SIGTERM, handlers[1])
        with Store.open(mirror_path, readonly=True) as mirror:
            return mirror_status(mirror, check_upstream=False).error

    failing = rounds(2)
    assert failing is not None and "has no blob" in failing, failing
    since, last = failing.split()[4], failing.split()[8].rstrip("):")
    assert since < last  # the first failed round, not the last one
    with Store.open(tmp_path / "p", readonly=True) as primary:
        publish_blobs(primary, tmp_path / "pub")
    assert rounds(1) is None  # a round that fully succeeds ends the run


def test_the_server_withholds_local_paths_in_a_mirrors_pull_error(tmp_path: Path) -> None:
    from rgstore.mirror import record_pull_error

    with Store.open(_mirror_of_a_primary(tmp_path)) as mirror:
        record_pull_error(mirror, f"{tmp_path / 'pub'}: no manifest.json; and {tmp_path / 'm' / 'blobs'} is full")
    with running_server(tmp_path / "m") as server:
        answer = httpx.get(f"{server.url}/status", timeout=10)
    error = answer.json()["replica"]["error"]
    assert str(tmp_path) not in answer.text
    assert error.endswith(": (a local path): no manifest.json; and (the store)/blobs is full")


def test_status_text_says_why_a_followers_pulls_fail(tmp_path: Path) -> None:
    # `--json` and `mirror status` carried the error; the text a person reads said only "last pull ...".
    from rgstore.mirror import record_pull_error
    from tests.conftest import run_rgstore

    with Store.open(_mirror_of_a_primary(tmp_path)) as mirror:
        record_pull_error(mirror, "cannot reach http://up.example/: refused")
    shown = run_rgstore("--store", str(tmp_path / "m"), "status")
    assert shown.returncode == 0
    line = next(x for x in shown.stdout.decode().splitlines() if "pulls have failed since" in x)
    assert line.rstrip().endswith("cannot reach http://up.example/: refused")


def test_blobs_the_current_steps_name_are_sized_without_reading_any_older_step(tmp_path: Path) -> None:
    # Every metadata update retains a step (100k in a busy store): status read them all, ~0.15 s.
    from rgstore.views.refpkgstate import STEPS_DB, list_heads

    tax = tmp_path / "taxonomy.csv"
    tax.write_text("tax_id,name\n1,root\n")
    with Store.open(tmp_path / "s") as store:
        for name in ("a", "b"):
            store.refpkgs.create(name, locus="16S", files={"taxonomy": tax})
            for i in range(3):
                store.refpkgs.update_metadata(name, {"step": str(i)})
        before = store_status(store)
        steps = store.environment.db(STEPS_DB)

        def garble(txn: object) -> None:  # every retained step but the current ones
            current = {name.encode() + b"\x00" + struct.pack(">Q", h.current) for name, h in list_heads(txn, store.environment)}  # type: ignore[arg-type]
            for key in [bytes(k) for k, _v in txn.cursor(db=steps) if bytes(k) not in current]:  # type: ignore[attr-defined]
                txn.put(key, b"\xc1 not a step", db=steps)  # type: ignore[attr-defined]

        store.environment.write(garble)
        after = store_status(store)
    assert (after.counts, _part(after, "blobs")) == (before.counts, _part(before, "blobs"))
    assert _part(after, "blobs")[0] == tax.stat().st_size and after.counts.blobs == 1


def test_a_store_replayed_from_a_log_export_alone_is_a_problem_naming_its_empty_content_trees(
    tmp_path: Path, server: UpstreamServer
) -> None:
    # It said `health: ok`: only `rgstore verify`, which reads every file, told the store holds none of its content.
    import shutil

    primary, new = tmp_path / "p", tmp_path / "new"
    _populate(tmp_path, primary, server)
    at_primary = msgspec.json.decode(rgstore_cli(primary, "status", "--json"), type=StoreStatus)
    assert at_primary.healthy and at_primary.missing_content == [] and at_primary.warnings == []
    assert run_rgstore("--store", str(primary), "log", "export", str(tmp_path / "x.rglog")).returncode == 0
    assert run_rgstore("replay", str(tmp_path / "x.rglog"), "--store", str(new)).returncode == 0

    checked = run_rgstore("--store", str(new), "status", "--json", "--check")
    assert checked.returncode == 1
    status = msgspec.json.decode(checked.stdout, type=StoreStatus)
    assert status.missing_content == ["blobs", "cache_files", "sequences"] and not status.healthy
    [problem] = status.problems
    assert "(blobs/, cache/, refget/ sequences empty)" in problem and "`rgstore replay`" in problem
    assert "run `rgstore verify`" in problem
    assert "health:       1 problem" in rgstore_cli(new, "status")
    with running_server(new) as served:
        body = httpx.get(f"{served.url}/status", timeout=10).json()
    assert body["missing_content"] == status.missing_content and body["healthy"] is False
    assert body["problems"] == status.problems and body["warnings"] == []

    # Copying the trees back (what verify's hint says) clears it.
    shutil.rmtree(new / "refget")
    for part in ("blobs", "cache", "refget"):
        shutil.copytree(primary / part, new / part, dirs_exist_ok=True)
    assert run_rgstore("--store", str(new), "rebuild").returncode == 0
    mended = msgspec.json.decode(rgstore_cli(new, "status", "--json"), type=StoreStatus)
    assert mended.healthy and mended.missing_content == []


def test_a_lazy_mirror_holding_no_blobs_or_sequences_and_a_fresh_store_are_not_missing_content(
    tmp_path: Path,
) -> None:
    primary = tmp_path / "p"
    _populate(tmp_path, primary)
    with Store.open(primary, readonly=True) as store:
        publish(store, tmp_path / "pub")
    with Store.open(tmp_path / "m") as mirror:
        pull(mirror, str(tmp_path / "pub"))  # neither --with-blobs nor --with-sequences: both fetched on first read
        assert not [p for p in (tmp_path / "m" / "blobs").rglob("*") if p.is_file()]
        assert not list((tmp_path / "m" / "refget").rglob("*.seq"))
        status = store_status(mirror)
        assert status.counts.blobs and status.counts.genomes
        assert status.healthy and status.missing_content == [], status.problems
    with Store.open(tmp_path / "fresh") as fresh:
        status = store_status(fresh)
        assert status.healthy and status.missing_content == [] and status.warnings == []


def test_status_carries_the_warning_of_alias_files_this_user_may_not_refresh(tmp_path: Path) -> None:
    # `status --json` had only the pending mark, whose advice (any writing command) this user had just followed.
    from tests.privileges import modes_bind_prefix

    store = tmp_path / "store"
    (tmp_path / "g.fa").write_text(FASTA)
    init_genome(store, tmp_path / "g.fa", "g")
    refget = store / "refget"
    (refget / "aliases" / "collections" / "refgenie.tsv").unlink()  # a command killed before its refresh leaves
    (store / ".sync-pending-0123456789ab").touch()  # a stale copy and a mark
    prefix = modes_bind_prefix()
    argv = [*prefix, sys.executable, "-m", "rgstore_cli", "--store", str(store), "status"]
    refget.chmod(0o555)
    try:
        as_json = subprocess.run([*argv, "--json"], cwd=REPO, capture_output=True, text=True, timeout=60)
        text = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60)
    finally:
        refget.chmod(0o755)
    assert as_json.returncode == 0, as_json.stderr
    status = msgspec.json.decode(as_json.stdout, type=StoreStatus)
    [warning] = status.warnings
    assert warning.startswith("an earlier command's alias or FHR change is recorded, but the RefgetStore's alias "
                              "TSVs / FHR files are not refreshed yet: ") and f"{refget} is dr-xr-xr-x " in warning
    assert not status.healthy and status.pending_syncs == [".sync-pending-0123456789ab"]
    [pending] = [p for p in status.problems if p.startswith("pending sync")]  # whose command can finish it
    assert pending.endswith("(any writing command by a user who may write refget/) to finish it"), pending
    assert "health:       1 problem, 1 warning" in text.stdout
    assert text.stderr == f"warning: {warning}\n"  # said once, by the open, not again in the report
    after = msgspec.json.decode(rgstore_cli(store, "status", "--json"), type=StoreStatus)  # a user who may write
    assert after.healthy and after.warnings == [] and after.pending_syncs == []

"""Claims about export and replay: chain-verified, prefix-aware, refusing foreign logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from rgstore.errors import ChainError, LogMismatchError
from rgstore.events import AliasSet, Noted, Undone
from rgstore.log import NewEvent
from rgstore.logfile import read_log_file
from rgstore.replay import export_log, replay_file
from rgstore.store import Store
from rgstore.verify import view_digests


def _primary(path: Path, n: int = 30) -> Store:
    store = Store.open(path)
    for i in range(n):
        store.append([NewEvent(stream=f"alias:refgenie/a{i % 4}",
                               event=AliasSet(namespace="refgenie", name=f"a{i % 4}", digest=f"d{i}"))])
    store.append([NewEvent(stream="alias:refgenie/a0", event=Undone())])
    return store


def test_replay_rebuilds_an_identical_store(tmp_path: Path) -> None:
    with _primary(tmp_path / "p") as primary:
        export_log(primary, tmp_path / "x.rglog")
        with Store.open(tmp_path / "m") as mirror:
            assert replay_file(mirror, tmp_path / "x.rglog") == (31, 31)
            assert mirror.head() == primary.head()
            assert mirror.log_id() == primary.log_id()
            assert view_digests(mirror) == view_digests(primary)
            assert mirror.verify().ok


def test_replay_onto_a_prefix_appends_only_the_rest(tmp_path: Path) -> None:
    with _primary(tmp_path / "p", 10) as primary:
        export_log(primary, tmp_path / "first.rglog")
        with Store.open(tmp_path / "m") as mirror:
            replay_file(mirror, tmp_path / "first.rglog")
        for i in range(5):
            primary.append([NewEvent(stream="s", event=Noted(text=str(i)))])
        export_log(primary, tmp_path / "all.rglog")
        export_log(primary, tmp_path / "tail.rglog", from_seq=12)
        with Store.open(tmp_path / "m") as mirror:
            assert replay_file(mirror, tmp_path / "all.rglog") == (5, 16)
            assert replay_file(mirror, tmp_path / "tail.rglog") == (0, 16)
            assert mirror.head() == primary.head()


def test_a_tail_that_skips_records_is_refused(tmp_path: Path) -> None:
    with _primary(tmp_path / "p", 10) as primary:
        export_log(primary, tmp_path / "tail.rglog", from_seq=5)
    with Store.open(tmp_path / "m") as mirror, pytest.raises(ChainError, match="seq 5"):
        replay_file(mirror, tmp_path / "tail.rglog")


def test_a_different_log_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    with _primary(tmp_path / "p") as primary:
        export_log(primary, tmp_path / "x.rglog")
    with Store.open(tmp_path / "other") as other:
        other.append([NewEvent(stream="s", event=Noted())])
        before = other.head()
        with pytest.raises(LogMismatchError):
            replay_file(other, tmp_path / "x.rglog")
        assert other.head() == before


def test_a_tampered_record_is_rejected_with_its_seq(tmp_path: Path) -> None:
    from rgstore.logfile import write_log_file

    with _primary(tmp_path / "p") as primary:
        export_log(primary, tmp_path / "x.rglog")
    header, frames = read_log_file(tmp_path / "x.rglog")
    records = list(frames)
    seq, rec = records[16]
    tampered = bytearray(rec)
    tampered[-2] ^= 0x20
    records[16] = (seq, bytes(tampered))
    write_log_file(tmp_path / "bad.rglog", header, records)
    with Store.open(tmp_path / "m") as mirror:
        with pytest.raises(ChainError, match=f"seq {seq}"):
            replay_file(mirror, tmp_path / "bad.rglog")
        # Whole batches before the bad record may land; the bad one and later never do.
        assert mirror.head()[0] < seq


def test_cli_export_and_replay_round_trip(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from cli.main import cli as root

    with _primary(tmp_path / "p"):
        pass
    runner = CliRunner()
    out = runner.invoke(root, ["--store", str(tmp_path / "p"), "log", "export", str(tmp_path / "e.rglog")])
    assert out.exit_code == 0, out.output
    out = runner.invoke(root, ["replay", str(tmp_path / "e.rglog"), "--store", str(tmp_path / "r"), "--json"])
    assert out.exit_code == 0, out.output
    assert '"head_seq":31' in out.output

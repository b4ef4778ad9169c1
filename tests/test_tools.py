"""Claims about tools/: scripts with main(argv) -> int over the engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from rgstore.errors import ReadOnlyError
from rgstore.events import Noted
from rgstore.log import NewEvent
from rgstore.replay import export_log
from rgstore.store import Store
from rgstore.verify import view_digests
from tools.rebuild_mirror import main as rebuild_mirror


def test_rebuild_mirror_replays_an_export_and_verifies(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    with Store.open(tmp_path / "p") as primary:
        for i in range(20):
            primary.append([NewEvent(stream=f"s{i % 3}", event=Noted(text=str(i)))])
        export_log(primary, tmp_path / "x.rglog")
        expected = view_digests(primary), primary.head()
    assert rebuild_mirror([str(tmp_path / "x.rglog"), str(tmp_path / "m"), "--verify"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == f"{tmp_path / 'm'}: verify ok (20 events, 0 blobs, 0 cache files, 0 sequences checked)"
    with Store.open(tmp_path / "m") as mirror:
        assert (view_digests(mirror), mirror.head()) == expected
        with pytest.raises(ReadOnlyError):  # it is a mirror now: its own writes are refused
            mirror.append([NewEvent(stream="s", event=Noted())])


def test_rebuild_mirror_reports_a_missing_source_in_one_line_and_leaves_no_store(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert rebuild_mirror([str(tmp_path / "nope.rglog"), str(tmp_path / "m")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert not (tmp_path / "m").exists()  # no empty store left for later commands to take for a real one


def test_rebuild_mirror_refuses_a_foreign_mirror(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    with Store.open(tmp_path / "p") as primary:
        primary.append([NewEvent(stream="s", event=Noted())])
        export_log(primary, tmp_path / "x.rglog")
    with Store.open(tmp_path / "m") as other:
        other.append([NewEvent(stream="s", event=Noted(text="mine"))])
    assert rebuild_mirror([str(tmp_path / "x.rglog"), str(tmp_path / "m")]) == 1
    assert "not a mirror" in capsys.readouterr().err


def test_log_benchmark_runs_at_a_tiny_size(capsys) -> None:  # type: ignore[no-untyped-def]
    from tools.bench.log import main as bench_log

    assert bench_log(["--events", "3000", "--durable", "20", "--json"]) == 0
    import json

    out = json.loads(capsys.readouterr().out)
    assert {r["case"] for r in out["rows"]} >= {"batched appends/s, every view", "rebuild of every view, events/s"}
    assert all(r["rgstore"] > 0 for r in out["rows"])


def test_mirror_benchmark_runs_at_a_tiny_size(capsys) -> None:  # type: ignore[no-untyped-def]
    from tools.bench.mirror import main as bench_mirror

    assert bench_mirror(["--events", "2000", "--json"]) == 0
    import json

    out = json.loads(capsys.readouterr().out)
    assert set(out["results"]) == {"replay_s", "segments_s", "server_s"}


def test_backup_benchmark_runs_at_a_tiny_size(capsys) -> None:  # type: ignore[no-untyped-def]
    from tools.bench.backup import main as bench_backup

    assert bench_backup(["--genome-mb", "1", "--events", "500", "--blobs", "2", "--json"]) == 0
    import json

    out = json.loads(capsys.readouterr().out)
    assert [r["case"] for r in out["rows"]][0] == "cp -a (idle store only)"
    assert len(out["rows"]) == 5 and all(r["seconds"] > 0 for r in out["rows"])

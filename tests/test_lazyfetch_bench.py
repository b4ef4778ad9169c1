"""tools/bench/lazyfetch.py: its phase sizes, and a tiny end-to-end run through a real primary and lazy mirror."""

from __future__ import annotations

import json

import pytest

from tools.bench.lazyfetch import main, phases


def test_phases_at_the_default_size_are_the_session_16_measurement() -> None:
    assert phases(300, 4) == {"one": 50, "concurrent": 200, "late": 20, "hot": 20}


def test_phases_refuse_too_few_contigs_for_the_concurrency() -> None:
    with pytest.raises(ValueError, match="too few"):
        phases(6, 8)


@pytest.mark.slow
def test_smoke_run_times_the_lazy_mirror_the_primary_and_an_eager_pull(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--contigs", "12", "--concurrency", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["phases"] == {"one": 2, "concurrent": 8, "late": 1, "hot": 10}
    for side in ("mirror", "primary"):
        assert set(out[side]) == {"one_s", "concurrent_wall_s", "concurrent_latency_s", "late_s", "fetched_s"}
        assert all(secs > 0 for secs in out[side].values())
    assert out["eager"]["pull_s"] > 0 and out["eager"]["log_pull_s"] > 0
    assert out["ratios"]["one_s_vs_primary"] > 0

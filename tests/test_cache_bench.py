"""A smoke run of tools/bench/cache.py at a tiny size: it runs end to end and prints its ratios."""

from __future__ import annotations

import json
import shutil

import pytest

from tools.bench.cache import main


@pytest.mark.skipif(
    not (shutil.which("gffread") and shutil.which("samtools")), reason="gffread/samtools missing"
)
def test_the_cache_benchmark_runs_at_a_tiny_size(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--mbp", "0.3", "--genes", "40", "--repeat", "1", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["genome_bp"] > 250_000
    assert res["gffread_s"] > 0 and res["ratio_cold_vs_gffread"] > 0
    assert {"fetch_raw_s", "cold_regions_s", "hit_inprocess_s", "hit_cli_s"} <= set(res)

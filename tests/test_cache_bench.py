"""A smoke run of tools/bench/cache.py at a tiny size: it runs end to end and prints its ratios and derived-region rows."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

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
    assert res["intergenic_records"] > 0 and res["intergenic_extract_s"] > 0
    assert res["junction_records"] > 0 and res["junction_records_per_s"] > 0
    if shutil.which("bedtools"):  # it ran only after both wrote the same intergenic sequences
        assert res["intergenic_bedtools_s"] > 0 and res["ratio_intergenic_vs_bedtools"] > 0


@pytest.mark.skipif(
    not (shutil.which("gffread") and shutil.which("samtools")), reason="gffread/samtools missing"
)
def test_without_bedtools_the_intergenic_peer_row_is_printed_as_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bin_dir = tmp_path / "bin"  # a PATH with the gffread peer's tools and no bedtools
    bin_dir.mkdir()
    for tool in ("gffread", "samtools"):
        (bin_dir / tool).symlink_to(shutil.which(tool) or tool)
    monkeypatch.setenv("PATH", str(bin_dir))
    assert main(["--mbp", "0.3", "--genes", "40", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"bedtools complement per strand \+ getfasta -s +skipped .*bedtools", out)
    assert "ratio intergenic / bedtools" not in out
    assert re.search(r"intergenic extraction .* ms", out)
    assert re.search(r"exon_exon_junction extraction .* ms +\([\d,]+ records/s; no standard peer\)", out)

"""tools/bench/server.py: its wrk parsing, and a tiny end-to-end run against every server it compares."""

from __future__ import annotations

import json
import shutil

import pytest

from tools.bench.server import main, parse_wrk

WRK_OUTPUT = """Running 1s test @ http://127.0.0.1:8000
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.10ms  400.00us   9.00ms   90.00%
    Req/Sec     3.80k   100.00     3.90k    80.00%
  Latency Distribution
     50%    2.00ms
     75%    2.20ms
     90%    2.50ms
     99%  850.00us
  3800 requests in 1.00s, 600.00KB read
  Non-2xx or 3xx responses: 12
Requests/sec:   3795.12
Transfer/sec:    599.00KB
"""


def test_parse_wrk_reads_throughput_p99_and_errors() -> None:
    assert parse_wrk(WRK_OUTPUT) == {"rps": 3795.12, "p99_s": 850e-6, "requests": 3800.0, "errors": 12.0}


def test_parse_wrk_refuses_output_it_cannot_read() -> None:
    with pytest.raises(RuntimeError):
        parse_wrk("wrk: connection refused")


@pytest.mark.slow
def test_smoke_run_measures_every_endpoint_on_every_server_and_their_start_up(capsys: pytest.CaptureFixture[str]) -> None:
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed")
    assert main(["--mbp", "0.2", "--genomes", "2", "--duration", "1", "--connections", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    results = out["results"]
    for endpoint in ("sequence", "alias", "collection"):
        for workers in ("rgstore_1w", "rgstore_2w"):
            assert results[endpoint][workers]["rps"] > 0 and results[endpoint][workers]["errors"] == 0
    assert results["collection"]["refget"]["rps"] > 0
    assert results["sequence"]["refget"] == {"status": 404.0}  # `refget store serve` serves no sequences
    # The plain static file servers answer the same slices as Range requests on the .seq files.
    statics = ["starlette_static", *(["nginx"] if shutil.which("nginx") else [])]
    for server in statics:
        assert results["sequence"][server]["rps"] > 0 and results["sequence"][server]["errors"] == 0
        assert server not in results["alias"]
    assert set(out["startup_s"]) == {"rgstore_1w", "rgstore_2w", "refget", *statics}
    assert all(took > 0 for took in out["startup_s"].values())

"""The official GA4GH refget compliance suite (PyPI ``refget-compliance``) passes every check against a real server.

The suite's own dataset (``compliance_suite/sequences/{I,VI,NC}.faa``: yeast chromosomes I and VI
and the circular phiX genome NC_001422.1) is loaded with `rgstore genome init --circular`, served by
a real `rgstore serve` on loopback, and the suite's ``TestRunner`` runs its whole test graph over HTTP.
PyPI's 1.2.6 is the refget v1 suite (v1 media types, the ``service`` section of service-info); the
v2 cases (``refget`` section, ``ga4gh:``/``insdc:`` ids, degraded media types) are replayed by hand
in tests/test_api_refget.py.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import compliance_suite.test_runner as suite_runner
import pytest
from compliance_suite.utils import SEQUENCE_FILES

from tests.server_fixture import Server, init_genome, running_server

SEQUENCES = Path(SEQUENCE_FILES)
NAMES = ("I", "VI", "NC")  # the suite's data() order; each file holds one sequence

WAIVED = {
    # Only for servers that advertise circular_supported: false (it expects 501 for start > end).
    # Ours advertises true, so the suite itself skips it; its circular_support_true twin runs and passes.
    "test_sequence_circular_support_false_errors",
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("refget-compliance")
    fasta = root / "compliance.fa"
    fasta.write_bytes(b"".join((SEQUENCES / f"{name}.faa").read_bytes() for name in NAMES))
    checksums = json.loads((SEQUENCES / "checksums.json").read_text())
    circular: list[str] = []
    for name in NAMES:
        if checksums[name]["is_circular"]:
            header = (SEQUENCES / f"{name}.faa").read_text().split("\n", 1)[0]
            circular += ["--circular", header[1:].split()[0]]
    assert circular == ["--circular", "NC_001422.1"]  # the suite's circular cases need phiX recorded as circular
    init_genome(root / "store", fasta, "compliance", *circular)
    with running_server(root / "store") as server:
        yield server


@pytest.fixture(scope="module")
def report(served: Server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    # The suite uses requests, which sends even loopback through an HTTP(S)_PROXY from the environment.
    # Its requests carry no timeout, so urllib3 falls back on the socket default: a hung server fails, not hangs.
    before = socket.getdefaulttimeout()
    socket.setdefaulttimeout(60)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("NO_PROXY", "127.0.0.1")
            runner = suite_runner.TestRunner(f"{served.url}/")  # it concatenates paths onto a base ending in '/'
            runner.run_tests()
    finally:
        socket.setdefaulttimeout(before)
    result: dict[str, Any] = runner.generate_final_json()
    return result


def test_every_check_of_the_suite_passes_except_the_waived(report: dict[str, Any]) -> None:
    outcomes = {t["name"]: t["result"] for t in report["test_results"]}  # 1 pass, -1 fail, 0 skip, 2 not run
    failing = {name: (t["text"], [c for c in t["edge_cases"] if c["result"] != 1])
               for t in report["test_results"] if (name := t["name"]) not in WAIVED and t["result"] != 1}
    assert failing == {}
    assert WAIVED <= outcomes.keys()  # a waiver names a check the suite still has
    assert report["total_tests_failed"] == 0
    assert report["total_tests_passed"] == len(outcomes) - len(WAIVED) == report["total_tests"] - len(WAIVED)


def test_the_edge_case_checks_ran_every_case(report: dict[str, Any]) -> None:
    # The range, start/end and circular checks each loop over a list of cases: all of them ran and passed.
    cases = {t["name"]: [c["result"] for c in t["edge_cases"]] for t in report["test_results"]}
    assert cases["test_sequence_start_end_success_cases"] == [1] * 12
    assert cases["test_sequence_range_success_cases"] == [1] * 7
    assert cases["test_sequence_circular"] == [1] * 3
    assert cases["test_sequence_start_end_errors"] == [1] * 7
    assert cases["test_sequence_range_errors"] == [1] * 12
    assert cases["test_sequence_circular_support_true_errors"] == [1]

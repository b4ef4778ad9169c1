"""FHR files under refget/fhr/: a command rewrites only its own genomes' files, and ends where a full sync ends."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from rgstore.errors import ConflictError, NotFoundError
from rgstore.store import Store
from rgstore.views.genomes import GenomesView


def _fhr(label: str) -> dict[str, object]:
    return {"schema": "https://example.org/fhr.json", "schemaVersion": 1.0, "genome": label,
            "taxon": {"name": "Tinyus testus", "uri": "https://identifiers.org/taxonomy:0"}, "version": label}


def _init(store: Store, tmp_path: Path, count: int) -> list[str]:
    """``count`` one-sequence genomes g0, g1, ... each with an FHR document; their digests."""
    rng = random.Random(count)
    digests = []
    for i in range(count):
        fasta = tmp_path / f"g{i}.fa"
        fasta.write_text(">chr1\n" + "".join(rng.choice("ACGT") for _ in range(40)) + "\n")
        digests.append(store.genomes.init(fasta, [f"g{i}"], fhr=_fhr(f"g{i} v0")).genome.digest)
    return digests


def _files(store: Store) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((store.refget_path / "fhr").iterdir())}


def _stats(store: Store) -> dict[str, tuple[int, int]]:
    return {p.name: (os.stat(p).st_ino, os.stat(p).st_mtime_ns) for p in (store.refget_path / "fhr").iterdir()}


def test_an_fhr_command_touches_only_its_own_genomes_file_not_the_others(store: Store, tmp_path: Path) -> None:
    a, b, c = _init(store, tmp_path, 3)
    fhr_dir = store.refget_path / "fhr"
    before = _stats(store)
    (fhr_dir / f"{b}.fhr.json").write_bytes(b'{"genome": "tampered"}')  # damage outside rgstore
    stray = fhr_dir / f"{'A' * 32}.fhr.json"
    stray.write_bytes(b"{}")  # no such genome
    for command in (lambda: store.genomes.fhr_set("g0", _fhr("g0 v1")), lambda: store.genomes.undo("g0"),
                    lambda: store.genomes.remove("g0"), lambda: store.genomes.undo(a, by_digest=True)):
        command()
        # Only g0's own file is compared and rewritten: a full pass over every genome (which would
        # repair b and drop the stray) costs every genome with FHR per command.
        assert _stats(store)[f"{c}.fhr.json"] == before[f"{c}.fhr.json"]
        assert (fhr_dir / f"{b}.fhr.json").read_bytes() == b'{"genome": "tampered"}' and stray.exists()
    assert _stats(store)[f"{a}.fhr.json"] != before[f"{a}.fhr.json"]  # rewritten (removed, then restored)
    assert sorted(GenomesView().external_drift(store)) == [f"refget/fhr/{d}.fhr.json" for d in sorted([b, "A" * 32])]
    store.rebuild()  # a full sync: every file as the view has it, strays gone
    assert GenomesView().external_drift(store) == [] and not stray.exists()
    assert sorted(_files(store)) == sorted(f"{d}.fhr.json" for d in (a, b, c))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_random_mix_of_fhr_commands_leaves_exactly_the_files_a_full_sync_writes(
    store: Store, tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    digests = _init(store, tmp_path, 4)
    genomes = store.genomes
    done: set[str] = set()
    for step in range(40):
        digest = rng.choice(digests)
        op = rng.choice(["fhr", "fhr", "remove", "undo", "undo", "redo"])
        if op == "remove" and digest == digests[0]:
            op = "fhr"  # one genome stays, so the end state has files to compare
        try:
            if op == "fhr":
                genomes.fhr_set(digest, _fhr(f"{digest[:6]} s{step} {rng.randrange(3)}"), by_digest=True)
            elif op == "remove":
                genomes.remove(digest, by_digest=True)
            elif op == "undo":
                genomes.undo(digest, by_digest=True)
            else:
                genomes.redo(digest, by_digest=True)
        except (ConflictError, NotFoundError):  # nothing to undo/redo, a removed genome: nothing recorded
            continue
        done.add(op)
        assert GenomesView().external_drift(store) == [], (step, op)
    assert done == {"fhr", "remove", "undo", "redo"}
    genomes.fhr_set(digests[0], _fhr("last"), by_digest=True)
    incremental, stats = _files(store), _stats(store)
    store.sync_external_views()  # the full re-sync finds nothing to do: same names, same bytes, same files
    assert _files(store) == incremental and _stats(store) == stats
    (store.refget_path / "fhr").joinpath(next(iter(incremental))).unlink()
    store.sync_external_views()
    assert _files(store) == incremental  # and it does write what is missing


def test_concurrent_fhr_commands_in_separate_processes_leave_the_files_the_view_holds(
    store: Store, store_path: Path, tmp_path: Path
) -> None:
    import json
    import subprocess
    import sys

    from tests.conftest import REPO

    _init(store, tmp_path, 2)
    docs = []
    for i in range(6):
        docs.append(tmp_path / f"doc{i}.json")
        docs[-1].write_text(json.dumps(_fhr(f"process {i}")))
    # Three writers per genome: whichever commits last, its document is the file left behind.
    procs = [
        subprocess.Popen([sys.executable, "-m", "rgstore_cli", "--store", str(store_path), "genome", "fhr", "set",
                          f"g{i % 2}", str(doc)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for i, doc in enumerate(docs)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    assert GenomesView().external_drift(store) == []
    assert {store.genomes.fhr_get(f"g{i}")["genome"] for i in (0, 1)} <= {f"process {i}" for i in range(6)}

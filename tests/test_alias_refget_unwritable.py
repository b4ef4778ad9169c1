"""Claims: a user who may write the log but not ``refget/`` is refused an alias change before it is recorded,
and an earlier command's unrefreshed alias TSVs warn, not block, that user's unrelated writes.

An alias change refreshes the RefgetStore's alias TSVs after its commit; a process that cannot write
``refget/`` used to commit, fail the refresh, and leave a mark that then failed every later writable
open with "alias change recorded, but ...". Root writes through any mode, so as root the commands
run with CAP_DAC_OVERRIDE dropped (``tests.privileges``): the modes bind it as anyone else.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO
from tests.privileges import modes_bind_prefix


def _rgstore(store: Path, *args: str | Path, prefix: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    argv = [*(prefix or []), sys.executable, "-m", "rgstore_cli", "--store", str(store), *map(str, args)]
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60)


def _store_with_genome(tmp_path: Path) -> tuple[Path, str]:
    store = tmp_path / "store"
    fasta = tmp_path / "g.fa"
    fasta.write_text(">chr1\nACGTACGT\n")
    assert _rgstore(store, "genome", "init", "--fasta", fasta, "--name", "g1").returncode == 0
    digest = _rgstore(store, "alias", "get", "g1").stdout.strip()
    return store, digest


def test_an_alias_change_into_an_unwritable_refget_is_refused_before_anything_is_recorded(tmp_path: Path) -> None:
    # It committed the AliasSet, then failed "alias change recorded, but ... (Permission denied: .rgstore.lock.N.new)".
    store, digest = _store_with_genome(tmp_path)
    refget = store / "refget"
    head = _rgstore(store, "log", "--json").stdout
    prefix = modes_bind_prefix()
    refget.chmod(0o555)
    try:
        proc = _rgstore(store, "alias", "set", "g2", digest, prefix=prefix)
        assert proc.returncode != 0 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.startswith(f"error: nothing was recorded: {refget} is dr-xr-xr-x "), proc.stderr
        assert "may not write the store's RefgetStore" in proc.stderr
        assert not list(store.glob(".sync-pending-*"))
    finally:
        refget.chmod(0o755)
    assert _rgstore(store, "log", "--json").stdout == head
    assert _rgstore(store, "alias", "get", "g2").returncode != 0
    assert _rgstore(store, "verify").returncode == 0


def test_an_earlier_commands_stale_alias_files_warn_an_unrelated_write_by_a_user_who_may_not_refresh_them(
    tmp_path: Path,
) -> None:
    # Every writable open failed "alias change recorded, but ..." though the command changed no alias.
    store, digest = _store_with_genome(tmp_path)
    refget = store / "refget"
    tsv = refget / "aliases" / "collections" / "refgenie.tsv"
    wanted = tsv.read_bytes()
    tsv.unlink()  # what a command killed between its commit and its refresh leaves: a stale copy and a mark
    (store / ".sync-pending-0123456789ab").touch()
    prefix = modes_bind_prefix()
    refget.chmod(0o555)
    try:
        proc = _rgstore(store, "cache", "gc", prefix=prefix)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr.startswith("warning: an earlier command's alias or FHR change is recorded, but the "
                                      "RefgetStore's alias TSVs / FHR files are not refreshed yet: "), proc.stderr
        assert f"{refget} is dr-xr-xr-x " in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
        assert "run any command that writes the store (e.g. `rgstore rebuild`) as a user who may write there" in proc.stderr
        failed = _rgstore(store, "verify", prefix=prefix)
        assert failed.returncode == 1
        assert f"run by a user who may write there ({refget} is dr-xr-xr-x " in failed.stdout + failed.stderr
    finally:
        refget.chmod(0o755)
    assert _rgstore(store, "cache", "gc").stderr == ""  # a user who may write refget/ finishes the refresh
    assert tsv.read_bytes() == wanted and not list(store.glob(".sync-pending-*"))
    assert _rgstore(store, "verify").returncode == 0

"""Claims about `rgstore cache ...`: thin commands, JSON for machines, one-line errors, exit codes."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from rgstore.events import CacheInserted
from rgstore.log import NewEvent
from rgstore.store import Store
from tests.conftest import REPO
from tests.upstream_fixture import UpstreamServer

ENS = ["--source", "ensembl", "--species", "synthetica_testii", "--release", "110"]
NCBI = [
    "--source",
    "ncbi",
    "--species",
    "synthetica_testii",
    "--taxon",
    "9606",
    "--release",
    "RS_2024_01",
    "--assembly",
    "GCF_000001405.40",
]




def test_regions_json_reports_misses_then_hits(cli, server: UpstreamServer) -> None:  # type: ignore[no-untyped-def]
    args = [
        "cache",
        "regions",
        *ENS,
        "--regions",
        "gene,CDS",
        "--base-url",
        f"{server.url}/ensembl",
        "--json",
    ]
    first = cli(*args)
    assert first.exit_code == 0, first.output
    rows = json.loads(first.stdout)
    assert [(r["region"], r["hit"]) for r in rows] == [("gene", False), ("CDS", False)]
    assert all(Path(r["path"]).is_file() for r in rows)
    again = json.loads(cli(*args).stdout)
    assert [r["hit"] for r in again] == [True, True]
    keys = json.loads(cli("cache", "key", *ENS, "--regions", "gene,CDS", "--json").stdout)
    assert [k["key"] for k in keys] == [r["key"] for r in rows]


def test_fetch_raw_then_ls_and_show(cli, server: UpstreamServer) -> None:  # type: ignore[no-untyped-def]
    out = cli("cache", "fetch-raw", *NCBI, "--base-url", f"{server.url}/ncbi")
    assert out.exit_code == 0, out.output
    assert out.stdout.startswith("fetched  ") and "raw/genome.fna.gz" in out.stdout
    listed = json.loads(cli("cache", "ls", "--level", "2", "--json").stdout)
    assert [e["path"] for e in listed] == ["ncbi_raw/9606/GCF_000001405.40"]
    assert all(e[t].endswith("Z") and "T" in e[t] for e in listed for t in ("inserted_at", "last_access"))
    shown = json.loads(cli("cache", "show", listed[0]["key"], "--json").stdout)
    assert shown["state"] == "live" and shown["entry"]["request"]["assembly_name"] == "SYN1"
    assert shown["entry"]["request"]["upstream"]["raw/genome.fna.gz"]["checksum"].startswith("md5:")
    assert "cache-inserted" in cli("cache", "show", listed[0]["key"]).stdout


def test_show_text_names_what_an_entry_was_built_from_and_the_upstream_checksums_it_was_verified_against(
    cli, server: UpstreamServer  # type: ignore[no-untyped-def]
) -> None:
    out = cli("cache", "regions", *NCBI, "--regions", "exon", "--base-url", f"{server.url}/ncbi", "--json")
    assert out.exit_code == 0, out.output
    [region] = json.loads(out.stdout)
    [raw] = json.loads(cli("cache", "ls", "--level", "2", "--json").stdout)
    upstream = json.loads(cli("cache", "show", raw["key"], "--json").stdout)["entry"]["request"]["upstream"]
    shown = cli("cache", "show", raw["path"]).stdout.splitlines()
    for rel, source in upstream.items():
        assert source["checksum"].startswith("md5:")
        assert [rel, source["checksum"], source["url"]] in [line.split() for line in shown]
    assert "request    source=ncbi taxon=9606 assembly=GCF_000001405.40 assembly_name=SYN1" in "\n".join(shown)
    level1 = cli("cache", "show", region["key"]).stdout.splitlines()
    assert any(line.startswith("request    source=ncbi") and "regions=exon" in line for line in level1)
    assert "labels     species=synthetica_testii taxon=9606 annotation_release=RS_2024_01" in level1
    assert "holds      NCBI annotation release RS_2024_01" in level1 and "holds      NCBI annotation release RS_2024_01" in shown


def test_show_and_gc_json_print_times_as_iso_utc_like_ls(cli, server: UpstreamServer) -> None:  # type: ignore[no-untyped-def]
    assert cli("cache", "fetch-raw", *ENS, "--base-url", f"{server.url}/ensembl").exit_code == 0
    [listed] = json.loads(cli("cache", "ls", "--json").stdout)
    shown = json.loads(cli("cache", "show", listed["key"], "--json").stdout)
    assert {t: shown["entry"][t] for t in ("inserted_at", "last_access")} == {
        t: listed[t] for t in ("inserted_at", "last_access")}
    dry = json.loads(cli("cache", "gc", "--max-age", "0s", "--dry-run", "--json").stdout)
    assert [i["last_access"] for i in dry["evicted"]] == [listed["last_access"]]
    done = json.loads(cli("cache", "gc", "--max-age", "0s", "--json").stdout)
    assert [i["last_access"] for i in done["evicted"]] == [listed["last_access"]]
    evicted_at = json.loads(cli("cache", "show", listed["key"], "--json").stdout)["tombstone"]["evicted_at"]
    assert datetime.fromisoformat(evicted_at).tzinfo is not None and evicted_at.endswith("Z")


def test_a_checksum_mismatch_is_a_one_line_error_and_nonzero_exit(cli, server: UpstreamServer) -> None:  # type: ignore[no-untyped-def]
    server.corrupt(".dna_sm.toplevel.fa.gz")
    out = cli("cache", "regions", *ENS, "--base-url", f"{server.url}/ensembl")
    assert out.exit_code == 1
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("error: checksum mismatch")
    assert json.loads(cli("cache", "ls", "--json").stdout) == []


def test_bad_options_are_one_line_errors(cli) -> None:  # type: ignore[no-untyped-def]
    out = cli("cache", "regions", "--source", "ensembl", "--species", "x", "--release", "current")
    assert out.exit_code == 1 and out.stderr.startswith("error: release 'current' is not a fixed release")
    out = cli("cache", "regions", "--source", "ensembl", "--species", "x", "--release", "0110")  # not its own key
    assert out.exit_code == 1 and out.stderr.startswith("error: invalid Ensembl release '0110'")
    assert out.stderr.count("\n") == 1
    out = cli("cache", "gc", "--max-age", "soon")  # a malformed option is a usage error, as for `gc --grace`
    assert out.exit_code == 2 and "invalid duration" in out.stderr and out.stderr.count("\n") == 1
    out = cli("cache", "gc", "--max-size", "lots")
    assert out.exit_code == 2 and "--max-size" in out.stderr and out.stderr.count("\n") == 1
    out = cli("cache", "gc", "--max-size", "")  # an unset variable: not "no size limit" and exit 0
    assert out.exit_code == 2 and "invalid size ''" in out.stderr and out.stderr.count("\n") == 1
    for command in ("key", "regions", "fetch-raw"):  # `--taxon "$TAXON"`, TAXON unset: not the species by default
        out = cli("cache", command, *NCBI[:5], "", *NCBI[6:])
        assert out.exit_code == 2 and "--taxon" in out.stderr and "is empty" in out.stderr, (command, out.stderr)
        assert out.stderr.startswith("error: ") and out.stderr.count("\n") == 1, out.stderr
    for option in ("--species", "--release", "--assembly"):  # empty: a usage error, never "any" or exit 1
        for base in (ENS + ["--assembly", "GRCh38"], NCBI):
            args = list(base)
            args[args.index(option) + 1] = ""
            out = cli("cache", "key", *args)
            assert out.exit_code == 2 and option in out.stderr and "is empty" in out.stderr, (option, out.stderr)
            assert out.stderr.startswith("error: ") and out.stderr.count("\n") == 1, out.stderr
    out = cli("cache", "pin", "no-such-entry")
    assert out.exit_code == 1 and "no cache entry" in out.stderr
    out = cli("cache", "key", *NCBI[:7], "v110", *NCBI[8:])
    assert out.exit_code == 1 and out.stderr.startswith("error: invalid NCBI release 'v110'")
    assert out.stderr.count("\n") == 1


def test_show_pin_and_unpin_take_the_key_prefixes_ls_prints(cli, server: UpstreamServer) -> None:  # type: ignore[no-untyped-def]
    rows = json.loads(
        cli("cache", "regions", *ENS, "--base-url", f"{server.url}/ensembl", "--json").stdout
    )
    key = rows[0]["key"]
    listed = cli("cache", "ls", "--level", "1").stdout.splitlines()
    shown = next(line.split()[0] for line in listed[1:] if line.strip())
    assert key.startswith(shown) and len(shown) == 12
    assert json.loads(cli("cache", "show", shown, "--json").stdout)["key"] == key
    assert cli("cache", "pin", shown).stdout.startswith(f"pinned {key}")
    assert cli("cache", "unpin", key[:8].upper()).stdout.startswith(f"unpinned {key}")
    out = cli("cache", "show", key[:7])
    assert out.exit_code == 1 and "no cache entry" in out.stderr and "8+ hex digits" in out.stderr


def test_an_ambiguous_key_prefix_is_a_one_line_error_listing_the_candidates(cli, store_path: Path) -> None:  # type: ignore[no-untyped-def]
    keys = ["abcdef01" + "0" * 56, "abcdef01" + "1" * 56, "abcdef02" + "2" * 56]
    with Store.open(store_path) as store:
        store.append(
            [
                NewEvent(
                    stream=f"cache:{k}",
                    event=CacheInserted(key=k, level=1, path=f"cached_genomic_{k}", files={}),
                )
                for k in keys
            ]
        )
    for command in ("show", "pin", "unpin"):
        out = cli("cache", command, "abcdef01")
        assert out.exit_code == 1 and out.stderr.count("\n") == 1, out.output
        assert out.stderr == (
            "error: key prefix 'abcdef01' is ambiguous: it matches abcdef010000, abcdef011111; "
            "give more digits\n"
        )
    assert cli("cache", "pin", "abcdef02").stdout.startswith(f"pinned {keys[2]}")


def test_pin_gc_and_verify_through_the_cli(cli, server: UpstreamServer, store_path: Path) -> None:  # type: ignore[no-untyped-def]
    rows = json.loads(
        cli(
            "cache",
            "regions",
            *ENS,
            "--regions",
            "gene,exon",
            "--base-url",
            f"{server.url}/ensembl",
            "--json",
        ).stdout
    )
    gene_dir = str(Path(rows[0]["path"]).parent.parent)
    assert cli("cache", "pin", gene_dir).stdout.startswith(f"pinned {rows[0]['key']}")
    dry = json.loads(cli("cache", "gc", "--max-age", "0s", "--dry-run", "--json").stdout)
    assert {i["key"] for i in dry["evicted"]} >= {rows[1]["key"]} and rows[0]["key"] not in {
        i["key"] for i in dry["evicted"]
    }
    Path(rows[0]["path"]).write_text(">tampered\nACGT\n")
    bad = cli("cache", "verify")
    assert bad.exit_code == 1 and "BAD" in bad.stdout and rows[0]["path"] in bad.stdout
    fixed = json.loads(cli("cache", "verify", "--evict", "--json").stdout)
    assert fixed["evicted"] == [rows[0]["key"]] and not fixed["ok"]
    assert cli("cache", "verify").exit_code == 0
    done = cli("cache", "gc", "--max-age", "0s")
    assert done.exit_code == 0 and "evicted" in done.stdout
    assert json.loads(cli("cache", "ls", "--json").stdout) == []


def test_the_real_entry_point_runs_a_cache_command(
    rgstore_proc, server: UpstreamServer, store_path: Path
) -> None:  # type: ignore[no-untyped-def]
    out = rgstore_proc(
        "--store",
        str(store_path),
        "cache",
        "regions",
        *NCBI,
        "--regions",
        "exon",
        "--base-url",
        f"{server.url}/ncbi",
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode().startswith("miss  exon  ")
    assert out.stderr == b""  # progress bars only on a terminal


def test_pin_and_unpin_take_json_like_the_rest_of_the_group(cli, server: UpstreamServer) -> None:  # type: ignore[no-untyped-def]
    key = json.loads(cli("cache", "regions", *ENS, "--base-url", f"{server.url}/ensembl", "--json").stdout)[0]["key"]
    assert json.loads(cli("cache", "pin", key, "--json").stdout) == {"key": key, "pinned": True, "changed": True}
    assert json.loads(cli("cache", "pin", key, "--json").stdout)["changed"] is False
    assert json.loads(cli("cache", "unpin", key[:8], "--json").stdout) == {"key": key, "pinned": False, "changed": True}


def test_fetch_raw_refuses_a_base_url_with_a_password_and_records_nothing(cli, server: UpstreamServer) -> None:  # type: ignore[no-untyped-def]
    """The URLs built from --base-url are recorded with the entry, in a log that is replicated and served."""
    secret = server.url.replace("http://", "http://reader:s3cret@")
    out = cli("cache", "fetch-raw", *NCBI, "--base-url", f"{secret}/ncbi")
    assert out.exit_code == 1 and "s3cret" not in out.output
    assert out.output.strip().splitlines() == [
        f"error: --base-url '{server.url.replace('http://', 'http://***@')}/ncbi' carries credentials, which would "
        "be printed and recorded; put credentials in ~/.netrc (or the file $NETRC names) instead"]
    assert json.loads(cli("cache", "ls", "--json").stdout) == []


def test_fetch_raw_refuses_a_base_url_with_a_query_string_instead_of_building_broken_urls(cli, server: UpstreamServer) -> None:  # type: ignore[no-untyped-def]
    out = cli("cache", "fetch-raw", *ENS, "--base-url", f"{server.url}/ensembl?token=abc")
    assert out.exit_code == 1
    assert out.output.strip().splitlines() == [
        f"error: --base-url '{server.url}/ensembl?token=abc' has a query string or fragment; give the base URL "
        "that paths are appended to"]


@pytest.mark.parametrize("bad", ["file:///etc", "not a url", "http://reader:s3cret@127.0.0.1/x"])
def test_a_bad_base_url_is_a_one_line_error_even_when_everything_is_cached(cli, server: UpstreamServer, bad: str) -> None:  # type: ignore[no-untyped-def]
    # A hit never read --base-url, so a typo (or a password) passed silently until the first miss.
    good = ("--base-url", f"{server.url}/ensembl")
    assert cli("cache", "regions", *ENS, *good).exit_code == 0
    for command in ("fetch-raw", "regions"):
        out = cli("cache", command, *ENS, "--base-url", bad)
        assert out.exit_code == 1, out.output
        [line] = out.output.strip().splitlines()
        assert line.startswith("error: --base-url ") and "s3cret" not in line


def test_fetch_raw_takes_an_uppercase_scheme(cli, server: UpstreamServer) -> None:  # type: ignore[no-untyped-def]
    out = cli("cache", "fetch-raw", *ENS, "--base-url", f"{server.url.replace('http://', 'HTTP://')}/ensembl", "--json")
    assert out.exit_code == 0, out.output
    [entry] = json.loads(cli("cache", "ls", "--json").stdout)
    shown = json.loads(cli("cache", "show", entry["key"], "--json").stdout)
    assert shown["entry"]["request"]["directory"].startswith(f"{server.url}/ensembl/")


def _on_a_read_only_mount(store_path: Path, script: str) -> subprocess.CompletedProcess[str]:
    """Run the shell ``script`` with ``store_path`` bind-mounted read-only in a private mount namespace (or skip)."""
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        pytest.skip("needs unshare and mount for a private read-only bind mount")
    mount = (f"mount --make-rprivate / && mount --bind {store_path} {store_path} && "
             f"mount -o remount,bind,ro {store_path}")
    as_root = [] if os.geteuid() == 0 else ["--map-root-user"]
    done = subprocess.run(["unshare", "--mount", *as_root, "sh", "-c", f"{mount} || exit 77; {script}"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    if done.returncode == 77 or "unshare failed" in done.stderr:
        pytest.skip(f"no private read-only bind mount here: {done.stderr.strip()[:200]}")
    return done


def test_a_store_on_a_read_only_mount_serves_cache_hits_and_refuses_misses_in_one_line(
    cli, store_path: Path, server: UpstreamServer  # type: ignore[no-untyped-def]
) -> None:
    # A lab fills the cache, then exports the store read-only to compute nodes, whose jobs ask for regions.
    regions = ["cache", "regions", *ENS, "--base-url", f"{server.url}/ensembl", "--regions"]
    filled = json.loads(cli(*regions, "gene", "--json").stdout)
    with Store.open(store_path, readonly=True) as store:
        head = store.head()
    rgstore = shlex.join([sys.executable, "-m", "rgstore_cli", "--store", str(store_path), *regions])
    done = _on_a_read_only_mount(store_path, f"{rgstore} gene --json; echo rc=$?; {rgstore} gene,CDS 2>&1; echo rc=$?")
    hits, rc_hits, miss, rc_miss = done.stdout.rstrip("\n").rsplit("\n", 3)
    assert rc_hits == "rc=0", done.stdout + done.stderr
    assert [(r["key"], r["path"], r["hit"]) for r in json.loads(hits)] == [
        (r["key"], r["path"], True) for r in filled
    ]
    assert rc_miss == "rc=1"
    assert miss == ("error: the store is open read-only (a read-only mount, or a user who may not write it): "
                    "extracting CDS would add cache entries; run the request where the store is writable")
    with Store.open(store_path, readonly=True) as store:
        assert store.head() == head  # nothing recorded, not even the hit's use


def test_on_a_read_only_mount_a_request_whose_download_is_not_cached_is_refused_in_words_and_fetches_nothing(
    cli, store_path: Path, server: UpstreamServer  # type: ignore[no-untyped-def]
) -> None:
    # A store baked into an image with level 1 evicted or never filled: the download would need a lock
    # file and an entry; say the store is read-only (not "Read-only file system: .../x.lock").
    cli("init")
    base = [sys.executable, "-m", "rgstore_cli", "--store", str(store_path), "cache"]
    fetch = shlex.join([*base, "fetch-raw", *ENS, "--base-url", f"{server.url}/ensembl"])
    regions = shlex.join([*base, "regions", *ENS, "--base-url", f"{server.url}/ensembl", "--regions", "gene"])
    done = _on_a_read_only_mount(store_path, f"{fetch} 2>&1; echo rc=$?; {regions} 2>&1; echo rc=$?")
    refused = ("error: the store is open read-only (a read-only mount, or a user who may not write it): fetching "
               "level 2 would add cache entries; run the request where the store is writable")
    assert done.stdout == f"{refused}\nrc=1\n{refused}\nrc=1\n", done.stdout + done.stderr
    assert server.requests == []  # refused before any request, not after a download


def test_cache_key_help_and_error_both_send_users_to_fetch_raw_first(cli) -> None:  # type: ignore[no-untyped-def]
    # `cache key` never downloads (it opens the store read-only); its one-line help once read as if it did.
    cli("init")
    out = cli("cache", "key", *NCBI)
    assert out.exit_code == 1 and "`rgstore cache fetch-raw`" in out.stderr
    summary = " ".join(cli("cache", "key", "--help").stdout.split("\n\n")[1].split())
    assert "after `cache fetch-raw`" in summary and "fetched once" not in summary


def _touched_for_months(store_path: Path, keys: list[str], touches: int = 3089) -> None:
    """``touches`` recorded uses of each key's entry (inserting any that is not cached): ~4 months hourly."""
    from rgstore.events import CacheTouched

    with Store.open(store_path) as store:
        new = [k for k in keys if store.cache.entry(k) is None]
        store.append([NewEvent(stream=f"cache:{k}", event=CacheInserted(key=k, level=1, path=f"cached_genomic_{k}"))
                      for k in new])
        for start in range(0, touches, 1000):
            store.append([NewEvent(stream=f"cache:{k}", event=CacheTouched(key=k))
                          for _ in range(min(1000, touches - start)) for k in keys])


def test_show_lists_the_newest_events_and_says_in_one_line_how_many_older_ones_it_left_out(
    cli, store_path: Path  # type: ignore[no-untyped-def]
) -> None:
    key = "ab" * 32
    _touched_for_months(store_path, [key])
    out = cli("cache", "show", key[:12])
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    events = [line for line in lines if line.endswith(("cache-touched", "cache-inserted"))]
    assert len(events) == 20 and all(e.endswith("cache-touched") for e in events)
    assert len(lines) < 40
    assert f"  ... 3,070 older events not shown: rgstore log --stream cache:{key}" in lines
    assert lines.index(f"  ... 3,070 older events not shown: rgstore log --stream cache:{key}") < lines.index(events[0])
    # --json: the same keys whether or not --limit left events out; older_events counts those it did.
    limited = json.loads(cli("cache", "show", key, "--limit", "3", "--json").stdout)
    whole = json.loads(cli("cache", "show", key, "--limit", "5000", "--json").stdout)
    assert set(limited) == set(whole) and "older_events" in whole
    assert (len(limited["events"]), limited["older_events"]) == (3, 3087)
    assert (len(whole["events"]), whole["older_events"]) == (3090, 0)
    assert [e["seq"] for e in limited["events"]] == [e["seq"] for e in whole["events"][-3:]]
    bare = cli("cache", "show", key, "--limit", "0").stdout.splitlines()
    assert bare[-1] == f"  ... 3,090 events not shown: rgstore log --stream cache:{key}"
    full_history = cli("log", "--stream", f"cache:{key}", "--json").stdout.splitlines()
    assert len(full_history) == 3090  # where the hint sends the reader: every event is still there
    out = cli("cache", "show", key, "--limit", "-1")
    assert out.exit_code == 2 and out.stderr.count("\n") == 1


def test_ls_regions_and_gc_dry_run_stay_one_line_per_entry_for_entries_touched_thousands_of_times(
    cli, server: UpstreamServer, store_path: Path  # type: ignore[no-untyped-def]
) -> None:
    args = ["cache", "regions", *ENS, "--regions", "gene,CDS", "--base-url", f"{server.url}/ensembl"]
    rows = json.loads(cli(*args, "--json").stdout)
    with Store.open(store_path) as store:
        raw = store.cache.ls(level=2)[0].key
    _touched_for_months(store_path, [r["key"] for r in rows] + [raw])
    hits = cli(*args).stdout.splitlines()
    assert [line.split()[:2] for line in hits] == [["hit", "gene"], ["hit", "CDS"]]
    listed = cli("cache", "ls").stdout.splitlines()
    assert len(listed) == 1 + 3 and listed[0].startswith("KEY")
    assert json.loads(cli("cache", "show", rows[0]["key"], "--json").stdout)["entry"]["touches"] == 3089
    planned = cli("cache", "gc", "--max-age", "0s", "--dry-run").stdout.splitlines()
    assert len(planned) == 3 + 1 and all(line.startswith("would evict  ") for line in planned[:3])


def test_gc_help_says_what_counts_as_use_and_how_to_keep_what_a_server_serves(cli) -> None:  # type: ignore[no-untyped-def]
    from rgstore.cache import TOUCH_INTERVAL

    text = " ".join(cli("cache", "gc", "--help").stdout.split())
    assert TOUCH_INTERVAL == 3600.0 and "at most once per entry per hour" in text
    assert "`rgstore serve`" in text and "read-only mount" in text and "reading an entry's files by path" in text
    assert "`rgstore cache pin`" in text and "--max-age none --max-size" in text


def test_a_cache_file_this_user_may_not_read_is_reported_by_both_verifies_and_is_not_evicted(
    cli, server: UpstreamServer, store_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from tests.privileges import modes_bind_prefix

    prefix = modes_bind_prefix()
    rows = json.loads(cli("cache", "regions", *ENS, "--regions", "gene", "--base-url", f"{server.url}/ensembl",
                          "--json").stdout)
    locked = Path(rows[0]["path"])
    before = json.loads(cli("cache", "ls", "--json").stdout)
    locked.chmod(0)
    try:
        for args in (["cache", "verify"], ["verify"], ["cache", "verify", "--evict"]):
            out = subprocess.run([*prefix, sys.executable, "-m", "rgstore_cli", "--store", str(store_path), *args],
                                 capture_output=True, text=True, cwd=REPO)
            assert out.returncode == 1, (args, out.stdout, out.stderr)
            assert "Traceback" not in out.stderr and str(locked) in out.stdout + out.stderr, (args, out)
            assert "unreadable (Permission denied)" in out.stdout + out.stderr, (args, out)
    finally:
        locked.chmod(0o644)
    assert json.loads(cli("cache", "ls", "--json").stdout) == before  # nothing evicted
    assert cli("cache", "verify").exit_code == 0


def test_evict_through_the_cli_prints_each_entry_and_refuses_a_pinned_one_in_one_line(cli, server: UpstreamServer) -> None:  # type: ignore[no-untyped-def]
    rows = json.loads(cli("cache", "regions", *ENS, "--regions", "gene,exon", "--base-url", f"{server.url}/ensembl",
                          "--json").stdout)
    gene, exon = rows[0]["key"], rows[1]["key"]
    assert cli("cache", "pin", gene[:12]).exit_code == 0
    refused = cli("cache", "evict", exon[:12], gene[:12])
    assert refused.exit_code == 1 and refused.stderr.count("\n") == 1, refused.stderr
    assert f"cache entry {gene} is pinned" in refused.stderr and "Traceback" not in refused.stderr
    dry = json.loads(cli("cache", "evict", exon[:12], "--dry-run", "--json").stdout)
    assert dry["dry_run"] and [i["key"] for i in dry["evicted"]] == [exon]
    done = cli("cache", "evict", exon[:12])
    assert done.exit_code == 0 and done.stdout.startswith(f"evicted  {exon[:12]}  L1"), done.stdout
    assert "evicted 1 entry," in done.stdout
    assert json.loads(cli("cache", "show", exon, "--json").stdout)["state"] == "evicted"
    assert cli("cache", "evict").exit_code == 2  # REF is required: a usage error


def test_gc_says_when_pinned_entries_alone_exceed_max_size_in_text_and_json(cli, server: UpstreamServer) -> None:  # type: ignore[no-untyped-def]
    # Everything pinned and over --max-size: gc printed "would evict 0 entries ... live" and nothing said the
    # limit could not be met.
    from rgstore_cli.output import human_size

    assert cli("cache", "regions", *ENS, "--regions", "gene,exon", "--base-url", f"{server.url}/ensembl").exit_code == 0
    entries = json.loads(cli("cache", "ls", "--json").stdout)
    assert len(entries) == 3
    for e in entries:
        assert cli("cache", "pin", e["key"]).exit_code == 0
    pinned = sum(e["size"] for e in entries)
    limit = pinned // 2
    dry = json.loads(cli("cache", "gc", "--max-age", "none", "--max-size", str(limit), "--dry-run", "--json").stdout)
    assert dry["evicted"] == [] and (dry["pinned_bytes"], dry["max_size"], dry["max_size_unmet"]) == (
        pinned, limit, True)
    assert dry["live_bytes"] == pinned and dry["pinned_kept"] == 3  # the fields it had are all still there
    done = cli("cache", "gc", "--max-age", "none", "--max-size", str(limit))
    lines = done.stdout.splitlines()
    assert done.exit_code == 0 and lines[0].startswith("evicted 0 entries, "), done.stdout
    assert lines[1:] == [f"note: pinned entries alone hold {human_size(pinned)}, over --max-size {human_size(limit)}; "
                         "`rgstore cache unpin` lets gc evict them"], done.stdout
    assert len(json.loads(cli("cache", "ls", "--json").stdout)) == 3
    met = cli("cache", "gc", "--max-age", "none", "--max-size", str(pinned), "--json")
    assert json.loads(met.stdout)["max_size_unmet"] is False
    assert "note:" not in cli("cache", "gc", "--max-age", "none", "--max-size", str(pinned)).stdout
    assert json.loads(cli("cache", "gc", "--max-age", "none", "--json").stdout)["max_size"] is None


def test_junction_block_size_keys_only_the_junction_region_end_to_end(cli, server: UpstreamServer) -> None:  # type: ignore[no-untyped-def]
    args = ["cache", "regions", *ENS, "--regions", "gene,intergenic,exon_exon_junction",
            "--base-url", f"{server.url}/ensembl", "--json"]
    first = json.loads(cli(*args).stdout)
    assert [(r["region"], r["hit"]) for r in first] == [("gene", False), ("intergenic", False),
                                                         ("exon_exon_junction", False)]
    for r in first:
        text = Path(r["path"]).read_text()
        assert text.startswith(">") and text.count(">") > 5, r["region"]
    other = json.loads(cli(*args, "--junction-block-size", "20").stdout)
    assert [(r["region"], r["hit"]) for r in other] == [("gene", True), ("intergenic", True),
                                                         ("exon_exon_junction", False)]
    assert other[2]["key"] != first[2]["key"] and [r["key"] for r in other[:2]] == [r["key"] for r in first[:2]]
    shorter = Path(other[2]["path"]).read_text()
    assert len(shorter) < len(Path(first[2]["path"]).read_text())
    for bad in ("0", "-2", "many"):
        out = cli(*args, "--junction-block-size", bad)
        assert out.exit_code == 2 and "--junction-block-size" in out.stderr, out.stderr
        assert out.stderr.startswith("error: ") and out.stderr.count("\n") == 1, out.stderr

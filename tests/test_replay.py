"""Claims about export and replay: chain-verified, prefix-aware, refusing foreign logs."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import rgstore.log
from rgstore.asof import time_reached
from rgstore.errors import ChainError, ConflictError, InvalidInputError, LogMismatchError, NotFoundError
from rgstore.events import AliasSet, Noted, Undone
from rgstore.log import NewEvent
from rgstore.logfile import read_log_file
from rgstore.replay import export_log, replay_file
from rgstore.store import Store
from rgstore.verify import view_digests
from tests.conftest import seeded_store_path
from tests.log_clock import LogClock
from tests.signalled import signal_when


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


@pytest.mark.parametrize("empty", ["", Path("")], ids=["str", "Path"])
def test_export_and_replay_refuse_an_empty_path_in_one_line_and_write_nothing(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty: str | Path,
) -> None:
    monkeypatch.chdir(tmp_path)  # Path("") is the working directory: renaming onto it was "Device or resource busy"
    before = sorted(tmp_path.iterdir())
    with pytest.raises(InvalidInputError, match=r"^(empty path for the log export file; name one|cannot write \.: it "
                                                r"is a directory \(the working directory\); name the log export file)$"):
        export_log(store, empty)
    with pytest.raises(InvalidInputError, match=r"^(empty path for the log export file; name one|"
                                                r"\.: is a directory, not a log export file)$"):
        replay_file(store, empty)
    assert sorted(tmp_path.iterdir()) == before


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
    from rgstore_cli.main import cli as root

    with _primary(tmp_path / "p"):
        pass
    runner = CliRunner()
    out = runner.invoke(root, ["--store", str(tmp_path / "p"), "log", "export", str(tmp_path / "e.rglog")])
    assert out.exit_code == 0, out.output
    out = runner.invoke(root, ["replay", str(tmp_path / "e.rglog"), "--store", str(tmp_path / "r"), "--json"])
    assert out.exit_code == 0, out.output
    assert '"head_seq":31' in out.output


def _run(*args: str, input: bytes | None = None):  # type: ignore[no-untyped-def]
    from tests.conftest import run_rgstore

    return run_rgstore(*args, input=input)


def test_a_file_that_is_not_a_whole_export_is_refused_before_a_store_is_created(tmp_path: Path) -> None:
    with _primary(tmp_path / "p") as primary:
        export_log(primary, tmp_path / "x.rglog")
        export_log(primary, tmp_path / "tail.rglog", from_seq=5)
    data = (tmp_path / "x.rglog").read_bytes()
    bad = {"empty": b"", "magic": data[:5], "header": data[:30], "short": data[:-1], "appended": data + b"junk",
           "twice": data + data}
    for name, content in bad.items():
        (tmp_path / f"{name}.rglog").write_bytes(content)
    for name in [*bad, "tail"]:
        target = tmp_path / f"new-{name}"
        proc = _run("replay", str(tmp_path / f"{name}.rglog"), "--store", str(target))
        err = proc.stderr.decode()
        assert proc.returncode == 1 and err.startswith("error: ") and err.count("\n") == 1, (name, err)
        assert not target.exists(), name
        if name == "tail":  # says what the export needs, not just that there is no store
            assert "starts at seq 5: it continues a store that holds seqs 1-4" in err


@pytest.mark.parametrize("field, value, why", [
    ("prev_hash", "zz", "prev_hash 'zz' is not a 64-digit hex hash"),  # bytes.fromhex raised ValueError
    ("head_hash", "", "head_hash '' is not a 64-digit hex hash"),
    ("first_seq", 0, "seq range 0-31"),
    ("format", 0, "format 0; this rgstore reads format 1"),  # format 2 is a newer writer's: tests/test_newer_writer.py
])
def test_an_export_header_with_a_malformed_field_is_refused_in_one_line(
    tmp_path: Path, field: str, value: object, why: str
) -> None:
    import struct

    import msgspec

    from rgstore.logfile import MAGIC
    from rgstore.replay import open_export

    with _primary(tmp_path / "p") as primary:
        export_log(primary, tmp_path / "x.rglog")
    data = (tmp_path / "x.rglog").read_bytes()
    (n,) = struct.unpack_from(">I", data, len(MAGIC))
    start = len(MAGIC) + 4
    header = msgspec.msgpack.decode(data[start:start + n])
    raw = msgspec.msgpack.encode({**header, field: value})
    bad = tmp_path / "bad.rglog"
    bad.write_bytes(MAGIC + struct.pack(">I", len(raw)) + raw + data[start + n:])
    with pytest.raises(InvalidInputError, match=f"^{bad}: damaged export header \\({re.escape(why)}\\)$"):
        open_export(bad)


def test_a_chained_record_holding_bytes_that_are_not_utf8_is_a_chain_error_naming_its_seq(tmp_path: Path) -> None:
    # msgspec raises UnicodeDecodeError (not DecodeError) for such a string; a buggy or hostile
    # publisher can chain the record correctly, so the hash check alone does not stop it.
    import msgspec

    from rgstore.codec import chain_hash, chain_of, frame, unframe
    from rgstore.logfile import write_log_file

    with _primary(tmp_path / "p", n=3) as primary:
        export_log(primary, tmp_path / "x.rglog")
    header, frames = read_log_file(tmp_path / "x.rglog")
    records = list(frames)
    seq, record = records[-1]
    payload = unframe(record, seq)[1].replace(b"refgenie", b"refg\xf5nie", 1)
    chain = chain_hash(chain_of(records[-2][1]), seq, payload)
    records[-1] = (seq, frame(payload, chain, compress=False))
    write_log_file(tmp_path / "bad.rglog", msgspec.structs.replace(header, head_hash=chain.hex()), records)
    with Store.open(tmp_path / "m") as mirror:
        with pytest.raises(ChainError, match=f"seq {seq}: payload does not decode"):
            replay_file(mirror, tmp_path / "bad.rglog")
        assert mirror.head()[0] < seq and mirror.verify().ok


def test_export_follows_symlinks_writes_fifos_in_place_and_leaves_no_temp_file(tmp_path: Path) -> None:
    import os
    import threading

    from rgstore.logfile import LogHeader, write_log_file

    with _primary(tmp_path / "p") as primary:
        (tmp_path / "link.rglog").symlink_to(tmp_path / "real.rglog")
        export_log(primary, tmp_path / "link.rglog")
        assert (tmp_path / "link.rglog").is_symlink() and read_log_file(tmp_path / "real.rglog")[0].last_seq == 31
        os.mkfifo(tmp_path / "fifo")
        got: list[bytes] = []
        reader = threading.Thread(target=lambda: got.append((tmp_path / "fifo").read_bytes()))
        reader.start()
        export_log(primary, tmp_path / "fifo")
        reader.join(timeout=30)
        assert got == [(tmp_path / "real.rglog").read_bytes()]

    def failing() -> Iterator[tuple[int, bytes]]:
        yield 1, b"x" * 40
        raise KeyboardInterrupt

    header = LogHeader(log_id="x", first_seq=1, last_seq=2, prev_hash="00" * 32, head_hash="00" * 32)
    with pytest.raises(KeyboardInterrupt):
        write_log_file(tmp_path / "real.rglog", header, failing())
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["link.rglog", "real.rglog"]
    assert read_log_file(tmp_path / "real.rglog")[0].last_seq == 31  # the old export is untouched


def test_export_and_replay_stream_through_a_pipe_with_dash(tmp_path: Path) -> None:
    with _primary(tmp_path / "p"):
        pass
    out = _run("--store", str(tmp_path / "p"), "log", "export", "-", "--from", "1")
    assert out.returncode == 0 and out.stdout.startswith(b"RGSTORE-LOG 1\n") and b"standard output" in out.stderr
    back = _run("--store", str(tmp_path / "r"), "replay", "-", "--json", input=out.stdout)
    assert back.returncode == 0 and b'"head_seq":31' in back.stdout, back.stderr
    again = _run("--store", str(tmp_path / "r"), "replay", "-", input=out.stdout)
    assert again.stdout.decode().startswith("applied 0 events; head 31")


def test_export_to_a_terminals_stdout_is_refused_as_binary(tmp_path: Path) -> None:
    # It wrote zstd frames over the terminal, as gzip and `refpkg export --tar -` refuse to.
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    with _primary(tmp_path / "p"):
        pass
    leader, terminal = os.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "rgstore_cli", "--store", str(tmp_path / "p"), "log", "export",
                               "-"], cwd=REPO, stdout=terminal, stderr=subprocess.PIPE, timeout=120)
    finally:
        os.close(terminal)
        os.close(leader)
    lines = proc.stderr.decode().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "pipe or redirect it" in lines[0], lines


def test_sigterm_during_export_leaves_neither_a_partial_file_nor_a_temp_file(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import REPO

    with Store.open(tmp_path / "p") as primary:
        for b in range(4):
            primary.append([NewEvent(stream=f"note:{i % 50}", event=Noted(text=f"{b}-{i}" * 8)) for i in range(10_000)])
    for _attempt in range(5):
        proc = subprocess.Popen([sys.executable, "-m", "rgstore_cli", "--store", str(tmp_path / "p"), "log", "export",
                                 str(tmp_path / "x.rglog")], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while proc.poll() is None and not list(tmp_path.glob(".x.rglog.*.tmp")) and time.monotonic() < deadline:
            time.sleep(0.002)
        if proc.poll() is not None:
            continue  # finished before the temp file was seen: try again
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 143
        assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]
        return
    pytest.skip("export always finished before its temp file could be seen")


def test_sigterm_mid_replay_into_an_existing_store_unwinds_whole_batches_and_a_rerun_completes(tmp_path: Path) -> None:
    # Only a replay creating its store ran under signals_unwind: one appending to an existing store (the rest of
    # a log) was killed outright by a SIGTERM (status -15) instead of unwinding as Ctrl-C does.
    import signal
    import subprocess
    import sys

    from rgstore.store import REBUILD_BATCH
    from tests.conftest import REPO

    with Store.open(tmp_path / "p") as primary:
        primary.append([NewEvent(stream="note:first", event=Noted(text="first"))])
        export_log(primary, tmp_path / "first.rglog")
        for b in range(6):  # six batches of the replay: a run long enough to stop midway
            primary.append([NewEvent(stream=f"note:{i % 50}", event=Noted(text=f"{b}-{i}" * 8))
                            for i in range(REBUILD_BATCH)])
        export_log(primary, tmp_path / "all.rglog")
        last, digests = primary.head()[0], view_digests(primary)
    replica = tmp_path / "r"
    with Store.open(replica) as store:
        assert replay_file(store, tmp_path / "first.rglog") == (1, 1)

    def head() -> int:
        with Store.open(replica, readonly=True, allow_stale_views=True, catch_up_views=False) as store:
            return store.head()[0]

    args = [sys.executable, "-m", "rgstore_cli", "--store", str(replica), "replay", str(tmp_path / "all.rglog")]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = signal_when(proc, lambda: head() > 1, signal.SIGTERM, poll=0.002)  # once a batch is in
    assert proc.returncode == 128 + signal.SIGTERM and b"Traceback" not in err, err.decode()
    stopped = head()
    assert 1 < stopped < last and (stopped - 1) % REBUILD_BATCH == 0  # whole batches only
    with Store.open(replica) as store:
        assert store.verify().ok
    again = subprocess.run(args, cwd=REPO, capture_output=True, timeout=300)
    assert again.returncode == 0, again.stderr.decode()
    assert again.stdout.decode().startswith(f"applied {last - stopped} events; head {last} ")
    with Store.open(replica) as store:
        assert store.head()[0] == last and store.verify().ok and view_digests(store) == digests

def test_empty_exports_replay_as_nothing_and_a_from_past_the_head_is_refused(tmp_path: Path) -> None:
    from rgstore.errors import NotFoundError

    with Store.open(tmp_path / "empty") as empty:
        header = export_log(empty, tmp_path / "empty.rglog")
        assert (header.first_seq, header.last_seq) == (1, 0)
    with _primary(tmp_path / "p") as primary:
        export_log(primary, tmp_path / "none-new.rglog", from_seq=32)  # head + 1: an empty tail
        with pytest.raises(NotFoundError, match="past the head"):
            export_log(primary, tmp_path / "x.rglog", from_seq=33)
        export_log(primary, tmp_path / "all.rglog")
    assert not (tmp_path / "x.rglog").exists()
    with Store.open(tmp_path / "m") as mirror:
        assert replay_file(mirror, tmp_path / "empty.rglog") == (0, 0)
        assert replay_file(mirror, tmp_path / "all.rglog") == (31, 31)
        assert replay_file(mirror, tmp_path / "none-new.rglog") == (0, 31)
        assert mirror.verify().ok


def test_an_export_into_the_store_is_refused_and_the_logs_own_file_survives(tmp_path: Path) -> None:
    # Exporting onto STORE/log/data.mdb used to rename the export over the LMDB file: the store was gone.
    with _primary(tmp_path / "p", n=3) as primary:
        data = primary.path / "log" / "data.mdb"
        before = data.read_bytes()
        (tmp_path / "link.rglog").symlink_to(data)
        for target in (data, primary.path / "x.rglog", tmp_path / "link.rglog"):
            with pytest.raises(InvalidInputError, match=r"is inside the store .*; export to a file outside it$"):
                export_log(primary, target)
        assert data.read_bytes() == before
        assert not (primary.path / "x.rglog").exists()
    with Store.open(tmp_path / "p") as reopened:
        assert reopened.head()[0] == 4
        assert reopened.verify().ok


def test_a_frame_with_a_damaged_seq_is_named_by_the_seq_expected_there(tmp_path: Path) -> None:
    from rgstore.logfile import write_log_file

    with _primary(tmp_path / "p", n=3) as primary:
        export_log(primary, tmp_path / "x.rglog")
    header, frames = read_log_file(tmp_path / "x.rglog")
    records = list(frames)
    records[1] = (120263379255299, records[1][1])  # a flipped byte in the frame header's seq
    write_log_file(tmp_path / "bad.rglog", header, records)
    with Store.open(tmp_path / "m") as mirror:
        with pytest.raises(ChainError, match=r"^log record seq 2: .*bad\.rglog: the frame there says seq "
                                             r"120263379255299 \(damaged, or frames out of order\)$") as caught:
            replay_file(mirror, tmp_path / "bad.rglog")
        assert caught.value.seq == 2
        assert mirror.head()[0] == 0


def test_export_and_replay_take_str_paths(tmp_path: Path) -> None:
    with _primary(tmp_path / "p", n=3) as primary:
        export_log(primary, str(tmp_path / "x.rglog"))
        with Store.open(tmp_path / "m") as mirror:
            assert replay_file(mirror, str(tmp_path / "x.rglog")) == (4, 4)
            assert mirror.head() == primary.head()


@pytest.mark.parametrize("hostile", ["nested past the recursion limit", "zstd frame claiming a terabyte"])
def test_a_hostile_chained_record_is_a_chain_error_naming_its_seq_and_nothing_is_replayed(
    tmp_path: Path, cli, store_path: Path, hostile: str  # type: ignore[no-untyped-def]
) -> None:
    # Anyone can chain a record correctly: the export's hashes say nothing about who made it.
    import msgspec

    from rgstore.codec import (
        _HEADER,
        CODEC_ZSTD,
        chain_hash,
        chain_of,
        decode_envelope,
        encode_envelope,
        frame,
        unframe,
    )
    from rgstore.logfile import write_log_file

    with _primary(tmp_path / "p", n=3) as primary:
        primary.append([NewEvent(stream="note:x", event=Noted(text="x", data={"k": "PLACEHOLDER"}))])
        export_log(primary, tmp_path / "x.rglog")
    header, frames = read_log_file(tmp_path / "x.rglog")
    records = list(frames)
    seq, record = records[-1]
    if hostile.startswith("nested"):
        payload = encode_envelope(decode_envelope(unframe(record, seq)[1]))
        payload = payload.replace(b"\xabPLACEHOLDER", b"\x91" * 5000 + b"\xc0")
        chain = chain_hash(chain_of(records[-2][1]), seq, payload)
        records[-1] = (seq, frame(payload, chain, compress=False))
        why = "payload does not decode (payload nests too deeply to decode)"
    else:
        chain = b"\x11" * 32
        claim = bytes.fromhex("28b52ffd") + bytes([0xE0]) + (1 << 40).to_bytes(8, "little") + b"\x01\x00\x00"
        records[-1] = (seq, _HEADER.pack(CODEC_ZSTD, 0, chain) + claim)
        why = "zstd payload claims 1,099,511,627,776 bytes, over the 1,073,741,824-byte limit of a record"
    write_log_file(tmp_path / "bad.rglog", msgspec.structs.replace(header, head_hash=chain.hex()), records)
    result = cli("replay", str(tmp_path / "bad.rglog"))
    assert result.exit_code == 1
    assert result.stderr == f"error: log record seq {seq}: {why}\n"
    with Store.open(store_path) as mirror:
        assert mirror.head()[0] < seq and mirror.verify().ok


def test_a_replayed_store_gets_its_content_back_the_way_replay_help_says(tmp_path: Path) -> None:
    # The help once sent users to `mirror pull SOURCE --with-sequences`, which refuses a replayed store
    # (it has events of its own and is not a mirror); copying refget/ in and rebuilding works.
    import shutil

    from click.testing import CliRunner
    from rgstore_cli.main import cli as root

    runner = CliRunner()
    primary, restored, export = tmp_path / "p", tmp_path / "r", tmp_path / "e.rglog"
    assert runner.invoke(root, ["demo", "--store", str(primary)]).exit_code == 0
    assert runner.invoke(root, ["--store", str(primary), "log", "export", str(export)]).exit_code == 0
    assert runner.invoke(root, ["replay", str(export), "--store", str(restored)]).exit_code == 0
    assert runner.invoke(root, ["verify", "--store", str(restored)]).exit_code == 1  # no sequences yet
    pulled = runner.invoke(root, ["--store", str(restored), "mirror", "pull", str(export), "--with-sequences"])
    assert pulled.exit_code == 1 and "not a mirror" in pulled.output
    advice = " ".join(runner.invoke(root, ["replay", "--help"]).output.split())
    assert "mirror pull" not in advice and "refget/" in advice and "`rgstore rebuild`" in advice
    shutil.copytree(primary / "refget", restored / "refget", dirs_exist_ok=True)
    assert runner.invoke(root, ["rebuild", "--store", str(restored)]).exit_code == 0
    verified = runner.invoke(root, ["verify", "--store", str(restored)])
    assert verified.exit_code == 0, verified.output


def test_log_export_to_dev_stdout_appends_to_the_shells_file(store: Store, tmp_path: Path) -> None:
    import subprocess
    import sys

    from rgstore.logfile import read_log_file
    from tests.conftest import REPO

    store.append([NewEvent(stream="note:a", event=Noted(text="x"))])
    store.close()
    out = tmp_path / "both.bin"
    out.write_bytes(b"KEEP")
    with open(out, "ab") as fh:  # the shell's `>> both.bin`
        done = subprocess.run([sys.executable, "-m", "rgstore_cli", "--store", str(tmp_path / "store"), "log", "export",
                               "/dev/stdout"], stdout=fh, stderr=subprocess.PIPE, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes().startswith(b"KEEP") and not out.is_symlink()
    (tmp_path / "alone.rglog").write_bytes(out.read_bytes()[4:])
    header, frames = read_log_file(tmp_path / "alone.rglog")
    assert header.last_seq == 1 and [seq for seq, _ in frames] == [1]


# Point in time: `replay --to SEQ` / `--as-of TIME` and `log export --to SEQ` (rgstore.asof).

_T0 = datetime(2026, 11, 15, tzinfo=timezone.utc)


class _Clock(LogClock):
    current = _T0


def _digest(label: str) -> str:
    """A well-formed genome digest (32 characters) spelling ``label``."""
    return label.ljust(32, "0")


def _history(store: Store, minutes: list[int]) -> list[tuple[int, datetime, dict[str, str]]]:
    """One command per entry (its clock at ``minutes`` past T0); after each: (head, clock, view digests)."""
    states = []
    for k, minute in enumerate(minutes):
        _Clock.current = _T0 + timedelta(minutes=minute)
        name = f"a{k % 3}"
        store.append([NewEvent(stream=f"alias:refgenie/{name}",
                               event=AliasSet(namespace="refgenie", name=name, digest=_digest(f"d{k}-{j}")))
                      for j in range(k % 4 + 1)]
                     + [NewEvent(stream=f"note:{k}", event=Noted(text=str(k)))])
        if k % 5 == 4:
            store.append([NewEvent(stream=f"alias:refgenie/{name}", event=Undone())])
        states.append((store.head()[0], _Clock.current, view_digests(store)))
    return states


def test_a_replay_to_a_seq_or_as_of_a_time_equals_a_store_that_only_ever_had_those_events_however_the_clock_steps_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_refget: Path,
) -> None:
    monkeypatch.setattr(rgstore.log, "datetime", _Clock)
    minutes = [0, 10, 20, 5, 30, 30, 25, 40, 35, 50]  # steps back at 5, 25 and 35
    with Store.open(tmp_path / "p") as primary:
        states = _history(primary, minutes)
        export_log(primary, tmp_path / "x.rglog")
    for k, (head, _clock, digests) in enumerate(states):
        with Store.open(seeded_store_path(empty_refget, tmp_path / f"to{k}")) as copy:
            assert replay_file(copy, tmp_path / "x.rglog", to_seq=head) == (head, head)
            assert view_digests(copy) == digests and copy.verify().ok
    # As of T: every command up to the last one before the running maximum of times first passes T.
    running = [max(minutes[:k + 1]) for k in range(len(minutes))]
    for minute in sorted({*minutes, *(m + 1 for m in minutes), *(m - 1 for m in minutes[1:])}):
        k = max(i for i, r in enumerate(running) if r <= minute)
        head, _clock, digests = states[k]
        with Store.open(seeded_store_path(empty_refget, tmp_path / f"at{minute}")) as copy:
            assert replay_file(copy, tmp_path / "x.rglog", as_of=_T0 + timedelta(minutes=minute))[1] == head
            assert view_digests(copy) == digests and copy.verify().ok, minute
            assert time_reached(copy) == _T0 + timedelta(minutes=running[k])


def test_a_point_in_time_store_continues_to_the_head_with_a_later_replay_of_the_same_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rgstore.log, "datetime", _Clock)
    with Store.open(tmp_path / "p") as primary:
        states = _history(primary, [0, 10, 20, 5, 30, 40])
        export_log(primary, tmp_path / "x.rglog")
        final = view_digests(primary), primary.head()
    with Store.open(tmp_path / "c") as copy:
        replay_file(copy, tmp_path / "x.rglog", as_of=_T0 + timedelta(minutes=15))
        assert copy.head()[0] == states[1][0]
        assert replay_file(copy, tmp_path / "x.rglog", to_seq=states[4][0])[1] == states[4][0]  # grows by a bound
        assert view_digests(copy) == states[4][2]
        assert replay_file(copy, tmp_path / "x.rglog", to_seq=states[4][0]) == (0, states[4][0])  # the same point: a no-op
        replay_file(copy, tmp_path / "x.rglog")
        assert (view_digests(copy), copy.head()) == final and copy.verify().ok


def test_a_bound_below_what_the_store_holds_is_refused_and_nothing_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rgstore.log, "datetime", _Clock)
    with Store.open(tmp_path / "p") as primary:
        states = _history(primary, [0, 10, 20, 30])
        export_log(primary, tmp_path / "x.rglog")
    with Store.open(tmp_path / "c") as copy:
        replay_file(copy, tmp_path / "x.rglog", to_seq=states[2][0])
        before = copy.head(), view_digests(copy)
        with pytest.raises(ConflictError, match=rf"holds seqs 1-{states[2][0]}, past --to {states[1][0]}: a replayed store only grows"):
            replay_file(copy, tmp_path / "x.rglog", to_seq=states[1][0])
        with pytest.raises(ConflictError, match="only grows"):
            replay_file(copy, tmp_path / "x.rglog", as_of=_T0 + timedelta(minutes=15))
        with pytest.raises(InvalidInputError, match="before the log's first event"):
            replay_file(copy, tmp_path / "x.rglog", as_of=_T0 - timedelta(seconds=1))
        assert (copy.head(), view_digests(copy)) == before


def test_as_of_on_an_export_that_continues_the_store_counts_the_stores_earlier_times(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import rgstore.views.timeindex as timeindex

    monkeypatch.setattr(rgstore.log, "datetime", _Clock)
    monkeypatch.setattr(timeindex, "BLOCK", 2)  # the store's earlier times come from whole index blocks and a scan
    with Store.open(tmp_path / "p") as primary:
        states = _history(primary, [0, 30, 10, 40])
        export_log(primary, tmp_path / "x.rglog", to_seq=states[1][0])
        export_log(primary, tmp_path / "tail.rglog", from_seq=states[1][0] + 1)
    with Store.open(tmp_path / "c") as copy:
        replay_file(copy, tmp_path / "x.rglog")
        # The tail's first event is at minute 10, but the store already reached minute 30.
        with pytest.raises(ConflictError, match="its events reach 2026-11-15T00:30:00Z"):
            replay_file(copy, tmp_path / "tail.rglog", as_of=_T0 + timedelta(minutes=20))
        assert replay_file(copy, tmp_path / "tail.rglog", as_of=_T0 + timedelta(minutes=35))[1] == states[2][0]
        assert view_digests(copy) == states[2][2]
        assert time_reached(copy) == _T0 + timedelta(minutes=30)


def test_an_export_to_a_seq_describes_that_prefix_and_replays_and_mirror_pulls_as_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rgstore.codec import chain_of
    from rgstore.mirror import pull

    monkeypatch.setattr(rgstore.log, "datetime", _Clock)
    with Store.open(tmp_path / "p") as primary:
        states = _history(primary, [0, 10, 20, 30])
        cut = states[1][0]
        with primary.read() as txn:
            chain_at_cut = chain_of(primary.log.record(txn, cut)).hex()  # type: ignore[arg-type]
        header = export_log(primary, tmp_path / "first.rglog", to_seq=cut)
        export_log(primary, tmp_path / "middle.rglog", from_seq=cut + 1, to_seq=states[2][0])
        export_log(primary, tmp_path / "all.rglog")
        with pytest.raises(NotFoundError, match=rf"--to {states[3][0] + 1} is past the head \({states[3][0]}\)"):
            export_log(primary, tmp_path / "no.rglog", to_seq=states[3][0] + 1)
        with pytest.raises(InvalidInputError, match="--to 2 is before --from 4"):
            export_log(primary, tmp_path / "no.rglog", from_seq=4, to_seq=2)
        assert not (tmp_path / "no.rglog").exists()
    assert (header.first_seq, header.last_seq, header.head_hash) == (1, cut, chain_at_cut)
    assert read_log_file(tmp_path / "first.rglog")[0] == header and len(list(read_log_file(tmp_path / "first.rglog")[1])) == cut
    with Store.open(tmp_path / "r") as replayed, Store.open(tmp_path / "m") as mirror:
        assert replay_file(replayed, tmp_path / "first.rglog") == (cut, cut)
        assert replayed.head() == (cut, chain_at_cut) and view_digests(replayed) == states[1][2]
        assert replay_file(replayed, tmp_path / "middle.rglog")[1] == states[2][0]
        assert view_digests(replayed) == states[2][2]
        result = pull(mirror, str(tmp_path / "first.rglog"))
        assert (result.applied, result.upstream_head, result.head_seq, result.head_hash) == (cut, cut, cut, chain_at_cut)
        assert pull(mirror, str(tmp_path / "all.rglog")).head_seq == states[3][0]  # and it continues from there
        assert mirror.verify().ok


def test_cli_replay_as_of_restores_the_store_of_that_day_and_says_the_seq_and_time_reached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import json

    monkeypatch.setattr(rgstore.log, "datetime", _Clock)
    with Store.open(tmp_path / "p") as primary:
        # One change of hg38 a day at noon; the fourth comes from a host whose clock is a day behind.
        for day, digest in [(0, "d0"), (1, "d1"), (2, "d2"), (1, "late"), (3, "d3")]:
            _Clock.current = _T0 + timedelta(days=day, hours=12)
            primary.append([NewEvent(stream="alias:refgenie/hg38",
                                     event=AliasSet(namespace="refgenie", name="hg38", digest=_digest(digest)))])
        export_log(primary, tmp_path / "backup.rglog")
    store = str(tmp_path / "asof")
    proc = _run("replay", str(tmp_path / "backup.rglog"), "--store", store, "--as-of", "2026-11-17", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"applied": 2, "head_seq": 2, "head_hash": json.loads(proc.stdout)["head_hash"],
                                       "time_reached": "2026-11-16T12:00:00Z"}
    proc = _run("--store", store, "alias", "get", "hg38")
    assert (proc.returncode, proc.stdout.decode().strip()) == (0, _digest("d1")), proc.stderr
    # The clock that stepped back does not pull "late" into the 17th: d2 (the 17th, noon) came first.
    proc = _run("replay", str(tmp_path / "backup.rglog"), "--store", store, "--as-of", "2026-11-18")
    assert proc.returncode == 0 and proc.stdout.decode().startswith("applied 2 events; head 4 ("), proc.stderr
    assert proc.stdout.decode().rstrip().endswith("latest event time 2026-11-17T12:00:00Z")
    proc = _run("replay", str(tmp_path / "backup.rglog"), "--store", store)
    assert proc.returncode == 0 and proc.stdout.decode().startswith("applied 1 event; head 5 ("), proc.stderr
    assert _run("--store", store, "alias", "get", "hg38").stdout.decode().strip() == _digest("d3")


@pytest.mark.parametrize("args, code, message", [
    (["--to", "0"], 2, "'--to': 0 is not in the range x>=1"),
    (["--to", "99"], 1, "--to 99 is outside the export: this export holds seqs 1-31 of log "),
    (["--as-of", "2000-01-01"], 1, "--as-of 2000-01-01T00:00:00Z is before the log's first event (seq 1 at "),
    (["--to", "3", "--as-of", "2d"], 2, "--to and --as-of both bound the replay: give one of them"),
    (["--as-of", "yesterday"], 2, "'--as-of': 'yesterday': use an ISO date/time or a span like"),
])
def test_a_bound_the_export_cannot_meet_is_refused_in_one_line_before_a_store_is_created(
    tmp_path: Path, args: list[str], code: int, message: str,
) -> None:
    with _primary(tmp_path / "p") as primary:
        export_log(primary, tmp_path / "x.rglog")
    proc = _run("replay", str(tmp_path / "x.rglog"), "--store", str(tmp_path / "new"), *args)
    err = proc.stderr.decode()
    assert proc.returncode == code and err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "new").exists()


def test_cli_export_to_a_seq_writes_that_prefix(tmp_path: Path) -> None:
    with _primary(tmp_path / "p"):
        pass
    proc = _run("--store", str(tmp_path / "p"), "log", "export", str(tmp_path / "x.rglog"), "--from", "3", "--to", "7")
    assert proc.returncode == 0 and "exported seqs 3-7 of log" in proc.stdout.decode(), proc.stderr
    header, frames = read_log_file(tmp_path / "x.rglog")
    assert (header.first_seq, header.last_seq, [seq for seq, _ in frames]) == (3, 7, [3, 4, 5, 6, 7])
    proc = _run("--store", str(tmp_path / "p"), "log", "export", str(tmp_path / "y.rglog"), "--to", "32")
    assert proc.returncode == 1 and proc.stderr.decode() == "error: --to 32 is past the head (31)\n"
    assert not (tmp_path / "y.rglog").exists()


def test_as_of_reads_records_compressed_with_a_dictionary_announced_in_the_same_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import subprocess
    import sys

    from rgstore.store import DICTIONARY_AFTER
    from tests.conftest import REPO

    monkeypatch.setattr(rgstore.log, "datetime", _Clock)
    commands = DICTIONARY_AFTER // 1000 + 3
    with Store.open(tmp_path / "p") as primary:
        for k in range(commands):
            _Clock.current = _T0 + timedelta(minutes=k)
            primary.append([NewEvent(stream=f"alias:refgenie/g{i % 50}",
                                     event=AliasSet(namespace="refgenie", name=f"g{i % 50}", digest=f"{k}-{i:030d}"))
                            for i in range(1000)])
            if k == commands - 2:
                want = primary.head(), view_digests(primary)
        assert primary.events(type="codec-dictionary-added")[0].seq < want[0][0]
        export_log(primary, tmp_path / "x.rglog")
    # A fresh process has never seen the dictionary: the bound must learn it from the file as it reads.
    code = ("import json\nfrom datetime import datetime\nfrom rgstore.store import Store\n"
            "from rgstore.replay import replay_file\nfrom rgstore.verify import view_digests\n"
            f"m = Store.open({str(tmp_path / 'm')!r})\n"
            f"replay_file(m, {str(tmp_path / 'x.rglog')!r}, as_of=datetime.fromisoformat("
            f"{(_T0 + timedelta(minutes=commands - 2, seconds=30)).isoformat()!r}))\n"
            "print(json.dumps([m.head(), view_digests(m)]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    (head, digests) = json.loads(out.stdout)
    assert (tuple(head), digests) == want


def test_replaying_a_log_file_that_does_not_exist_is_a_not_found_error_naming_it(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s") as store:
        with pytest.raises(NotFoundError, match="nope.rglog: no such log export file"):
            replay_file(store, tmp_path / "nope.rglog")
        assert store.head()[0] == 0 and store.verify().ok


def _damaged_at(tmp_path: Path, source: Path, at: int) -> Path:
    """A copy of export ``source`` whose frame ``at`` (1-based) has a flipped byte in its seq: found part-way."""
    from rgstore.logfile import write_log_file

    header, frames = read_log_file(source)
    records = list(frames)
    records[at - 1] = (records[at - 1][0] ^ (1 << 40), records[at - 1][1])
    write_log_file(tmp_path / "bad.rglog", header, records)
    return tmp_path / "bad.rglog"


def test_a_replay_into_a_new_store_that_fails_part_way_before_applying_anything_leaves_no_store(
    tmp_path: Path,
) -> None:
    with _primary(tmp_path / "p") as primary:
        export_log(primary, tmp_path / "x.rglog")
    bad = _damaged_at(tmp_path, tmp_path / "x.rglog", 16)
    (tmp_path / "prepared").mkdir()  # an administrator's empty directory stays, empty
    for target in (tmp_path / "new" / "deeper", tmp_path / "prepared"):
        proc = _run("replay", str(bad), "--store", str(target))
        err = proc.stderr.decode()
        assert proc.returncode == 1 and err.startswith("error: log record seq 16: ") and err.count("\n") == 1, err
        assert not (tmp_path / "new").exists()
        assert list((tmp_path / "prepared").iterdir()) == []
    proc = _run("replay", str(tmp_path / "x.rglog"), "--store", str(tmp_path / "prepared"), "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["head_seq"] == 31, proc.stderr


def test_a_replay_into_a_new_store_keeps_the_batches_it_applied_before_a_damaged_frame_and_resumes(
    tmp_path: Path,
) -> None:
    from rgstore.replay import open_export, replay_new_store
    from rgstore.store import REBUILD_BATCH

    with Store.open(tmp_path / "p") as primary:
        primary.append([NewEvent(stream="note", event=Noted(text=f"n{i}")) for i in range(REBUILD_BATCH + 10)])
        total = export_log(primary, tmp_path / "x.rglog").last_seq
    bad = _damaged_at(tmp_path, tmp_path / "x.rglog", REBUILD_BATCH + 5)
    header, frames = open_export(bad)
    with pytest.raises(ChainError, match=rf"^log record seq {REBUILD_BATCH + 5}: "):
        replay_new_store(tmp_path / "new", header, frames)
    with Store.open(tmp_path / "new") as kept:  # the first whole batch: a valid store, as a first mirror pull's
        assert kept.head()[0] == REBUILD_BATCH
        assert [p.name for p in (tmp_path / "new").iterdir() if p.name.startswith(".")] == []
    header, frames = open_export(tmp_path / "x.rglog")
    assert replay_new_store(tmp_path / "new", header, frames) == (total - REBUILD_BATCH, total)

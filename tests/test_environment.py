"""Claims about the LMDB environment wrapper: map growth is safe with several threads reading."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from rgstore.environment import Environment
from tests.conftest import REPO

_SMALL = 256 * 1024

_GROW = """
import sys
from pathlib import Path
from rgstore.environment import Environment
env = Environment(Path(sys.argv[1]), readonly=False, map_size=%d)
env.open_dbs(["t"])
db = env.db("t")
for i in range(40):
    env.write(lambda txn, i=i: txn.put(b"k%%04d" %% i, b"x" * 30000, db=db))
print(env.env.info()["map_size"])
""" % _SMALL


def test_a_map_grown_by_another_process_is_adopted_only_once_no_other_thread_reads(tmp_path: Path) -> None:
    """LMDB forbids a resize while any transaction of the process is open: the resize waits for them."""
    env = Environment(tmp_path / "log", readonly=False, map_size=_SMALL)
    env.open_dbs(["t"])
    db = env.db("t")
    env.write(lambda txn: txn.put(b"first", b"1", db=db))
    holding, release = threading.Event(), threading.Event()

    def reader() -> None:
        with env.read() as txn:
            assert txn.get(b"first", db=db) == b"1"
            holding.set()
            release.wait(60)

    held = threading.Thread(target=reader)
    held.start()
    assert holding.wait(30)
    grown = subprocess.run([sys.executable, "-c", _GROW, str(tmp_path / "log")], cwd=REPO,
                           capture_output=True, text=True, timeout=120, check=True)
    assert int(grown.stdout) > _SMALL  # the other process grew the map past ours

    seen: list[bytes | None] = []
    late = threading.Thread(target=lambda: seen.append(_read(env, db)))
    late.start()
    late.join(1.0)
    assert late.is_alive() and not seen  # waiting at the gate, not resizing under the open reader
    release.set()
    held.join(30)
    late.join(30)
    assert seen == [b"x" * 30000]  # adopted the new size and reads what the other process wrote
    assert env.env.info()["map_size"] >= int(grown.stdout)
    env.close()


def _read(env: Environment, db: object) -> bytes | None:
    with env.read() as txn:
        value = txn.get(b"k0039", db=db)  # type: ignore[arg-type]
    return value if value is None else bytes(value)


def test_a_write_that_must_grow_the_map_inside_an_open_read_is_refused_not_hung(tmp_path: Path) -> None:
    """Growing the map would invalidate the caller's own read (and waiting for it would never end)."""
    import pytest

    from rgstore.errors import RgstoreError

    env = Environment(tmp_path / "log", readonly=False, map_size=_SMALL)
    env.open_dbs(["t"])
    db = env.db("t")
    env.write(lambda txn: txn.put(b"first", b"1", db=db))
    with env.read() as outer:
        with pytest.raises(RgstoreError, match="cannot happen inside an open transaction"):
            for i in range(40):
                env.write(lambda txn, i=i: txn.put(b"k%04d" % i, b"x" * 30000, db=db))
        assert outer.get(b"first", db=db) == b"1"  # the outer read is still valid
    for i in range(40):  # outside any read the map grows as usual
        env.write(lambda txn, i=i: txn.put(b"k%04d" % i, b"x" * 30000, db=db))
    assert env.env.info()["map_size"] > _SMALL
    env.close()


_KILLED_READER = """
import os, signal, sys
from pathlib import Path
from rgstore.environment import Environment
env = Environment(Path(sys.argv[1]), readonly=True)
txn = env.env.begin()  # a server worker or CLI reader killed mid-request
print(os.getpid(), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_long_lived_writer_reclaims_the_slot_of_a_reader_killed_mid_transaction(tmp_path: Path) -> None:
    """The stale slot would pin its snapshot: no freed page reused, the file growing with every commit."""
    env = Environment(tmp_path / "log", readonly=False)  # opened before the reader dies, as the follower is
    env.open_dbs(["t"])
    db = env.db("t")
    env.write(lambda txn: txn.put(b"k", b"0" * 3000, db=db))
    killed = subprocess.run([sys.executable, "-c", _KILLED_READER, str(tmp_path / "log")], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    pid = killed.stdout.strip()
    assert pid and pid in _reader_pids(env)  # the dead process still holds its slot
    baseline = (tmp_path / "log" / "data.mdb").stat().st_size
    for i in range(300):
        env.write(lambda txn, i=i: txn.put(b"k", str(i).encode() * 1000, db=db))
    assert pid not in _reader_pids(env)
    # Rewriting one key frees its pages each commit; reused, the file stays within a few pages.
    assert (tmp_path / "log" / "data.mdb").stat().st_size <= baseline + 64 * 4096
    env.close()


def _reader_pids(env: Environment) -> set[str]:
    """The pids in LMDB's reader table (``readers()`` lists ``pid thread txnid`` under a header)."""
    return {line.split()[0] for line in env.env.readers().splitlines()[1:] if line.split()}


def test_a_read_only_open_reclaims_the_slots_of_readers_killed_mid_transaction(tmp_path: Path) -> None:
    """A restarted server worker frees its killed predecessor's slots on a store nobody writes to."""
    Environment(tmp_path / "log", readonly=False).close()
    # The other worker keeps the store open throughout (alone, LMDB would reset the whole table at open).
    other = subprocess.Popen([sys.executable, "-c", _HOLDER, str(tmp_path / "log")], cwd=REPO,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "open"
        killed = subprocess.run([sys.executable, "-c", _KILLED_READER, str(tmp_path / "log")], cwd=REPO,
                                capture_output=True, text=True, timeout=60)
        pid = killed.stdout.strip()
        env = Environment(tmp_path / "log", readonly=True)
        assert pid and pid not in _reader_pids(env)
        env.close()
    finally:
        other.communicate("", timeout=60)


_HOLDER = """
import sys
from pathlib import Path
from rgstore.environment import Environment
env = Environment(Path(sys.argv[1]), readonly=True)
print("open", flush=True)
sys.stdin.read()
"""


def test_a_read_only_open_of_a_log_a_first_open_left_empty_finishes_it(tmp_path: Path) -> None:
    # A full disk or Ctrl-C during `rgstore init` left a 0-byte data.mdb: every reading command then
    # failed with "Bad file descriptor; is this an rgstore store?" until some command wrote to it.
    log = tmp_path / "log"
    log.mkdir()
    (log / "data.mdb").touch()
    env = Environment(log, readonly=True)
    try:
        with env.read() as txn:
            assert txn.get(b"meta") is None
    finally:
        env.close()
    assert (log / "data.mdb").stat().st_size > 0


def test_a_data_mdb_cut_short_is_a_one_line_error_for_readers_and_writers_not_a_sigbus(tmp_path: Path) -> None:
    """LMDB maps data.mdb: a page past a truncated file's end would kill the process with SIGBUS and no message."""
    from rgstore.events import Noted
    from rgstore.log import NewEvent
    from rgstore.store import Store
    from tests.conftest import run_rgstore

    store_path = tmp_path / "s"
    with Store.open(store_path) as store:
        for i in range(300):
            store.append([NewEvent(stream=f"s{i % 7}", event=Noted(text=f"event {i} " + "x" * 200))])
    data = store_path / "log" / "data.mdb"
    full = data.stat().st_size
    for size in (8192, full // 2):
        with open(data, "r+b") as fh:
            fh.truncate(size)
        for args in (("log", "--limit", "3"), ("verify",), ("status",)):
            out = run_rgstore("--store", str(store_path), *args)
            assert out.returncode == 1, (size, args, out.returncode, out.stderr)
            assert out.stderr.decode().startswith(f"error: {data} is cut short"), out.stderr
        assert data.stat().st_size == size  # nothing wrote into the hole either


def test_a_healthy_data_mdb_ending_before_its_last_page_number_still_opens(tmp_path: Path) -> None:
    """A page a transaction allocates at the file's end and frees again is never written (LMDB's loose pages).

    The meta still counts it, so "file shorter than last_pgno pages" refused healthy stores as cut short.
    """
    import os
    import random
    import shutil

    import pytest

    log = tmp_path / "log"
    for seed in (71, 103, 136, 196, 223):
        shutil.rmtree(log, ignore_errors=True)
        env = Environment(log, readonly=False)
        env.open_dbs(["x"])
        db = env.db("x")
        rng = random.Random(seed)
        kept: dict[bytes, bytes] = {}

        def churn(txn: object) -> None:
            keys = [rng.randbytes(8) for _ in range(1500)]
            for k in keys:
                kept[k] = rng.randbytes(rng.randint(10, 600))
                txn.put(k, kept[k], db=db)  # type: ignore[attr-defined]
            rng.shuffle(keys)
            for k in keys[: rng.randint(0, len(keys))]:
                txn.delete(k, db=db)  # type: ignore[attr-defined]
                del kept[k]

        for _ in range(3):
            env.write(churn)
        need = (env.env.info()["last_pgno"] + 1) * env.env.stat()["psize"]
        env.close()
        if (log / "data.mdb").stat().st_size < need:
            break
    else:
        pytest.skip("this LMDB build left no unwritten page at the end of the file")
    for readonly in (True, False):
        env = Environment(log, readonly=readonly)
        try:
            env.open_dbs(["x"])
            with env.env.begin(db=env.db("x")) as txn:
                assert dict(txn.cursor()) == kept
        finally:
            env.close()
    assert os.path.getsize(log / "data.mdb") < need


_SLOT_HOLDER = """
import sys, lmdb
env = lmdb.open(sys.argv[1], max_readers=1, max_dbs=64, readonly=True, max_spare_txns=0)
txn = env.begin()  # the one reader slot of the table this process sized
print("holding", flush=True)
sys.stdin.readline()
txn.abort()
env.close()
"""


def _hold_the_only_reader_slot(log: Path) -> subprocess.Popen[str]:
    """A process that re-creates ``log``'s lock table with one slot (as a tool run first would) and holds it."""
    (log / "lock.mdb").unlink()
    holder = subprocess.Popen([sys.executable, "-c", _SLOT_HOLDER, str(log)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
    return holder


def test_a_full_reader_table_makes_an_open_wait_for_a_slot_then_succeed(tmp_path: Path) -> None:
    """A burst of batch jobs past the slot count: later ones wait for earlier ones to finish, not fail."""
    log = tmp_path / "log"
    Environment(log, readonly=False).close()
    holder = _hold_the_only_reader_slot(log)
    try:
        threading.Timer(0.3, lambda: holder.communicate("go\n", timeout=60)).start()
        env = Environment(log, readonly=True)  # waits until the holder ends
        with env.read() as txn:
            assert txn.get(b"absent") is None
        env.close()
    finally:
        holder.kill()
        holder.wait(60)


def test_a_reader_table_that_stays_full_is_one_busy_error_naming_the_store(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import rgstore.environment as environment
    from rgstore.errors import StoreBusyError

    monkeypatch.setattr(environment, "READER_SLOT_WAIT_S", 0.2)
    log = tmp_path / "log"
    Environment(log, readonly=False).close()
    holder = _hold_the_only_reader_slot(log)
    try:
        with pytest.raises(StoreBusyError, match=f"^every LMDB reader slot of {log} stayed taken for 0.2 s: too many"):
            Environment(log, readonly=True)
    finally:
        holder.communicate("go\n", timeout=60)


_READ_ONLY_MOUNT = """
import sys
from pathlib import Path
from rgstore.environment import Environment
from rgstore.errors import ReadOnlyError
log = Path(sys.argv[1]) / "log"
Environment(log, readonly=True).close()  # LMDB reads a read-only file system without its lock file
try:
    Environment(log, readonly=False)
except ReadOnlyError as exc:
    print(exc)
"""


def test_a_writable_open_on_a_read_only_file_system_says_so_and_reads_still_work(tmp_path: Path) -> None:
    """A reference store exported read-only to compute nodes: a write command is told why, in one line."""
    store = tmp_path / "store"
    Environment(store / "log", readonly=False).close()
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        pytest.skip("needs unshare and mount for a private read-only bind mount")
    setup = f"mount --make-rprivate / && mount --bind {store} {store} && mount -o remount,bind,ro {store}"
    as_root = [] if os.geteuid() == 0 else ["--map-root-user"]
    done = subprocess.run(
        ["unshare", "--mount", *as_root, "sh", "-c", f'{setup} || exit 77; exec "$0" -c "$1" "$2"',
         sys.executable, _READ_ONLY_MOUNT, str(store)],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )
    if done.returncode == 77 or "unshare failed" in done.stderr:
        pytest.skip(f"no private read-only bind mount here: {done.stderr.strip()[:200]}")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (f"{store} is on a read-only file system: commands that only read the store (getseq, "
                           "genome list, log, verify, serve, ...) work there; run this one where it is mounted writable\n")


_READ_ONLY_MOUNT_AS_ANOTHER_USER = """
import os, sys
from pathlib import Path
import tempfile
import rgstore.sharing  # noqa: F401  (loaded as root: the interpreter's own tree may be closed to the reader)
from rgstore.environment import Environment
from rgstore.errors import StoreOpenError
log = Path(sys.argv[1]) / "log"
# One open as root loads whatever py-lmdb imports lazily on open (lmdb 3 imports lmdb._envid there), since
# the interpreter's own tree may be closed to the reader.
with tempfile.TemporaryDirectory() as warm:
    Environment(Path(warm) / "log", readonly=False).close()
os.setgroups([])
os.setgid(65534)
os.setuid(65534)
try:
    Environment(log, readonly=True).close()
    print("read")
except StoreOpenError as exc:
    print(exc)
"""


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to switch users")
def test_another_user_on_a_read_only_bind_mount_is_told_to_make_lock_mdb_writable_and_then_reads() -> None:
    """A container's :ro volume read as a service uid: the kernel checks lock.mdb's mode before the mount."""
    import tempfile

    lab = Path(tempfile.mkdtemp(prefix="rgstore-romount-"))
    try:
        os.chmod(lab, 0o711)  # the reader (nobody) may reach the store
        store = lab / "store"
        Environment(store / "log", readonly=False).close()
        os.chmod(store / "log" / "lock.mdb", 0o644)  # as a writer with umask 022 leaves it
        if shutil.which("unshare") is None or shutil.which("mount") is None:
            pytest.skip("needs unshare and mount for a private read-only bind mount")
        setup = f"mount --make-rprivate / && mount --bind {store} {store} && mount -o remount,bind,ro {store}"

        def read_as_nobody() -> str:
            done = subprocess.run(
                ["unshare", "--mount", "sh", "-c", f'{setup} || exit 77; exec "$0" -c "$1" "$2"',
                 sys.executable, _READ_ONLY_MOUNT_AS_ANOTHER_USER, str(store)],
                capture_output=True, text=True, cwd=REPO, timeout=120,
            )
            if done.returncode == 77 or "unshare failed" in done.stderr:
                pytest.skip(f"no private read-only bind mount here: {done.stderr.strip()[:200]}")
            assert done.returncode == 0, done.stderr
            return done.stdout

        refused = read_as_nobody()
        assert refused.startswith(f"{store} is on a read-only mount, and {store}/log/lock.mdb is -rw-r--r-- root:"), refused
        assert "`chmod a+rw log/lock.mdb`" in refused and refused.count("\n") == 1
        os.chmod(store / "log" / "lock.mdb", 0o666)  # what the message says, done where the store is writable
        assert read_as_nobody() == "read\n"
    finally:
        shutil.rmtree(lab, ignore_errors=True)


def test_a_second_threads_write_waits_for_the_first_to_commit_then_commits_too(tmp_path: Path) -> None:
    """Threads sharing one store take turns to write (py-lmdb 2.0 refused the second with EBUSY instead)."""
    env = Environment(tmp_path / "log", readonly=False, map_size=_SMALL)
    env.open_dbs(["t"])
    db = env.db("t")
    holding, release = threading.Event(), threading.Event()

    def hold(txn: object) -> None:
        txn.put(b"first", b"1", db=db)  # type: ignore[attr-defined]
        holding.set()
        release.wait(60)

    failures: list[BaseException] = []

    def second() -> None:
        try:
            env.write(lambda txn: txn.put(b"second", b"2", db=db))
        except BaseException as exc:  # recorded for the main thread: a thread's exception is otherwise lost
            failures.append(exc)

    first = threading.Thread(target=env.write, args=(hold,))
    first.start()
    assert holding.wait(30)
    waiting = threading.Thread(target=second)
    waiting.start()
    waiting.join(0.5)  # gives it time to reach LMDB's writer lock while the first write is open
    release.set()
    first.join(30)
    waiting.join(30)
    assert failures == []
    with env.read() as txn:
        assert (txn.get(b"first", db=db), txn.get(b"second", db=db)) == (b"1", b"2")
    env.close()


def test_a_read_in_flight_when_another_thread_closes_the_store_raises_store_closed_error(tmp_path: Path) -> None:
    from rgstore.errors import StoreClosedError

    env = Environment(tmp_path / "log", readonly=False)
    env.open_dbs(["t"])
    db = env.db("t")
    env.write(lambda txn: txn.put(b"k", b"v", db=db))
    inside, closed = threading.Event(), threading.Event()
    outcome: list[BaseException | bytes | None] = []

    def reader() -> None:
        try:
            with env.read() as txn:
                inside.set()
                closed.wait()
                outcome.append(txn.get(b"k", db=db))  # a pipeline thread's read when the main thread closes
        except BaseException as exc:  # recorded for the main thread: a thread's exception is otherwise lost
            outcome.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    inside.wait()
    env.close()
    closed.set()
    thread.join()
    assert len(outcome) == 1 and isinstance(outcome[0], StoreClosedError), outcome
    assert "it was closed; open the store again" in str(outcome[0])


def test_a_store_opens_reads_and_writes_under_an_address_space_limit_below_its_map(tmp_path: Path) -> None:
    # `ulimit -v` (usual on cluster nodes) refused the sparse 64 GiB map: every command, even status, failed with
    # "the store's LMDB files cannot be used (...: Cannot allocate memory); is this an rgstore store?".
    import resource

    from rgstore.store import Store

    store_path = tmp_path / "store"
    fasta = tmp_path / "t.fa"
    fasta.write_text(">c1\n" + "ACGT" * 50 + "\n")
    with Store.open(store_path, actor="t@x") as store:
        digest = store.genomes.init(fasta, ["t"]).genome.digest

    def limit() -> None:
        # Each thread reserves its stack (ulimit -s) out of the 2 GiB: pinned, so a CI shell's `ulimit -s 1g`
        # (no room left for getseq's head-watcher thread) cannot decide this test, whose claim is the map.
        _soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
        stack = 8 << 20 if hard == resource.RLIM_INFINITY else min(8 << 20, hard)
        resource.setrlimit(resource.RLIMIT_STACK, (stack, hard))
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, resource.RLIM_INFINITY))

    def rgstore(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "rgstore_cli", "--store", str(store_path), *args], cwd=REPO,
                              capture_output=True, text=True, timeout=120, preexec_fn=limit)

    assert rgstore("getseq", "t", "c1:0-8").stdout == "ACGTACGT\n"
    assert rgstore("alias", "set", "other", digest).returncode == 0
    checked = rgstore("verify")
    assert checked.returncode == 0, checked.stderr
    with Store.open(store_path, readonly=True) as store:
        assert store.aliases.get("other") == digest


_GROW_UNDER_A_LIMIT = """
import resource, sys
from pathlib import Path
from rgstore.environment import Environment
from rgstore.errors import RgstoreError
map_mib, room_mib, puts = (int(arg) for arg in sys.argv[2:])
env = Environment(Path(sys.argv[1]), readonly=False, map_size=map_mib << 20)
env.open_dbs(["t"])
db = env.db("t")
vm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmSize:")) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + (room_mib << 20), resource.RLIM_INFINITY))
try:
    for i in range(puts):
        env.write(lambda txn, i=i: txn.put(b"k%04d" % i, b"x" * (1 << 20), db=db))
except RgstoreError as exc:
    print(exc)
with env.read() as txn:
    print(sum(len(txn.get(b"k%04d" % i, db=db) or b"") for i in range(puts)) >> 20, env.env.info()["map_size"] >> 20)
"""


def _grow_under_a_limit(tmp_path: Path, map_mib: int, room_mib: int, puts: int) -> list[str]:
    """Output lines of 1 MiB puts into a ``map_mib`` map with ``room_mib`` of address space left (ulimit -v)."""
    proc = subprocess.run([sys.executable, "-c", _GROW_UNDER_A_LIMIT, str(tmp_path / "log"), str(map_mib),
                           str(room_mib), str(puts)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_a_map_growth_an_address_space_limit_refuses_is_an_error_and_the_store_stays_readable(tmp_path: Path) -> None:
    # py-lmdb dropped the environment when the doubled map could not be mapped: the next use raised
    # "Attempt to operate on closed/deleted/dropped object" (an lmdb.Error the CLI blamed on the store).
    refused, read = _grow_under_a_limit(tmp_path, 1, 96, 200)
    assert "needs a map larger than" in refused and "address-space limit (ulimit -v)" in refused
    assert "nothing was committed" in refused and int(read.split()[0]) > 0


def test_a_map_growth_the_address_space_limit_has_room_for_once_the_old_map_is_unmapped_succeeds(
    tmp_path: Path,
) -> None:
    # LMDB unmaps the old map before mapping the new one, so doubling 64 MiB needs 64 MiB more room, not 128:
    # the probe asked for the whole new map beside the old one and refused a growth that fits in 100 MiB.
    assert _grow_under_a_limit(tmp_path, 64, 100, 72) == ["72 128"]


def test_a_map_growth_that_would_leave_the_heap_no_room_under_the_limit_is_the_one_line_refusal(tmp_path: Path) -> None:
    # Doubling 64 MiB with 65 MiB of room left 1 MiB for the heap: the next put failed with a bare
    # "lmdb.MemoryError: mdb_put: Cannot allocate memory" (the CLI blamed the store's LMDB files).
    refused, read = _grow_under_a_limit(tmp_path, 64, 65, 72)
    kept, map_mib = read.split()  # kept: what fit in 64 MiB (63 puts with 4 KiB pages)
    assert "needs a map larger than 67,108,864 bytes" in refused and int(kept) > 0 and map_mib == "64"


_PUT_UNDER_A_LIMIT = """
import resource, sys
from pathlib import Path
from rgstore.environment import Environment
from rgstore.errors import OutOfMemoryError
env = Environment(Path(sys.argv[1]), readonly=False, map_size=256 << 20)  # room for the value: no map growth
env.open_dbs(["t"])
db = env.db("t")
value = b"x" * (32 << 20)
vm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmSize:")) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + (16 << 20), resource.RLIM_INFINITY))
try:
    env.write(lambda txn: txn.put(b"big", value, db=db))
except OutOfMemoryError as exc:
    print(type(exc).__name__, exc.http_status, exc)
with env.read() as txn:
    print(txn.get(b"big", db=db) is None)
"""


def test_an_lmdb_put_refused_for_memory_is_the_typed_out_of_memory_error_and_commits_nothing(tmp_path: Path) -> None:
    # A 32 MiB put mallocs its dirty pages; with 16 MiB of address space left LMDB fails with ENOMEM, which
    # Environment.write re-raised as a bare lmdb.MemoryError: Python callers (and the API) got no rgstore error.
    proc = subprocess.run([sys.executable, "-c", _PUT_UNDER_A_LIMIT, str(tmp_path / "log")], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    refused, absent = proc.stdout.splitlines()
    assert refused.startswith("OutOfMemoryError 503 out of memory: this process reached its memory limit"), refused
    assert absent == "True"


_BEGIN_WITHOUT_MEMORY = """
import ctypes, resource, sys
from pathlib import Path
from rgstore.environment import Environment
from rgstore.errors import OutOfMemoryError
env = Environment(Path(sys.argv[1]), readonly=False, map_size=16 << 20)
env.open_dbs(["t"])
db = env.db("t")
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
held = (ctypes.c_void_p * (1 << 20))()  # room for the pointers, allocated before the limit
# Python's own small objects (the loop's ints, the exceptions) come from pymalloc's arenas: free every other
# block of each size class, so they find room there while malloc has none (no arena empties to the OS).
spare = [bytes(n) for n in range(0, 470, 8) for _ in range(400)]
del spare[::2]
vm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmSize:")) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + (8 << 20), resource.RLIM_INFINITY))
count = 0
for size in (1 << 20, 1 << 16, 1 << 12, 1 << 8, 64, 16):  # malloc refuses even the reader check's few bytes
    while count < len(held):
        held[count] = libc.malloc(size)
        if not held[count]:
            break
        count += 1
outcome = "committed"
try:
    env.write(lambda txn: txn.put(b"k", b"v", db=db))
except OutOfMemoryError:
    outcome = "OutOfMemoryError"
except BaseException as exc:
    outcome = type(exc).__module__ + "." + type(exc).__name__
for i in range(count):
    libc.free(held[i])
print(outcome)
with env.read() as txn:
    print(txn.get(b"k", db=db))
env.write(lambda txn: txn.put(b"k", b"v", db=db))  # memory free again: the same write commits
with env.read() as txn:
    print(txn.get(b"k", db=db))
"""


_READ_WITHOUT_MEMORY = _BEGIN_WITHOUT_MEMORY.split("outcome = ")[0] + """outcome = "read"
try:
    with env.read() as txn:
        txn.get(b"k", db=db)
except OutOfMemoryError:
    outcome = "OutOfMemoryError"
except BaseException as exc:
    outcome = type(exc).__module__ + "." + type(exc).__name__
for i in range(count):
    libc.free(held[i])
print(outcome)
env.write(lambda txn: txn.put(b"k", b"v", db=db))  # memory free again: the store reads and writes as before
with env.read() as txn:
    print(txn.get(b"k", db=db))
"""


@pytest.mark.parametrize(("script", "expected"), [
    # Before its transaction, a write checks LMDB's reader table, which mallocs: with no memory left that
    # raised a bare lmdb.MemoryError ("mdb_reader_check: Cannot allocate memory"), not OutOfMemoryError.
    (_BEGIN_WITHOUT_MEMORY, ["OutOfMemoryError", "None", "b'v'"]),
    # LMDB mallocs every read transaction (no spare ones are kept): env.begin() raised a bare lmdb.MemoryError.
    (_READ_WITHOUT_MEMORY, ["OutOfMemoryError", "b'v'"]),
], ids=["write", "read"])
def test_a_transaction_refused_memory_as_it_begins_is_the_typed_out_of_memory_error(
        tmp_path: Path, script: str, expected: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "log")], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == expected, proc.stdout

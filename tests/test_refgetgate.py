"""Threads sharing one Store write its RefgetStore one at a time (rgstore.refgetgate)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import REPO

_SCRIPT = textwrap.dedent("""
    import sys, threading, time
    from importlib import resources
    from pathlib import Path
    from rgstore import Store
    from rgstore.progress import null_progress
    from rgstore.refgetlock import refget_write_lock

    tiny = Path(str(resources.files("rgstore") / "data" / "tiny.fa"))
    store = Store.open(sys.argv[1], actor="t@lab")
    importing = threading.Event()

    def progress(desc, total=None, unit="it"):
        if desc.startswith("import "):
            importing.set()  # right before gtars imports: it takes the RefgetStore's writer lock
        return null_progress(desc, total, unit)

    def holder():
        # What an alias change's refresh of the alias files does in another thread: hold the writer lock a while.
        with refget_write_lock(store.refget_path, "test-holder"):
            importing.wait()
            time.sleep(0.3)  # let the import reach gtars, which waits for this lock holding the GIL

    thread = threading.Thread(target=holder)
    thread.start()
    result = store.genomes.init(tiny, ["tiny"], progress=progress)
    thread.join()
    print(result.added, store.getseq("tiny", "chr1", 0, 10))
    store.close()
""")


def test_a_genome_init_in_one_thread_waits_for_another_thread_holding_the_refget_lock_instead_of_hanging(
    tmp_path: Path,
) -> None:
    # Run apart: on a deadlock gtars holds the GIL for good, and only a process can be stopped.
    done = subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path / "store")], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "ATTTGCTGCT"]


def test_a_child_forked_while_another_thread_holds_the_gate_can_take_it(tmp_path: Path) -> None:
    # The held RLock was copied into the child with an owner that does not exist there: it waited forever.
    import os
    import threading

    from rgstore.refgetgate import refget_gate

    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with refget_gate(tmp_path):
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(30)
        pid = os.fork()
        if pid == 0:  # the child: exit 0 only if the gate can be taken
            os._exit(0 if refget_gate(tmp_path).acquire(timeout=10) else 3)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        release.set()
        holder.join(30)

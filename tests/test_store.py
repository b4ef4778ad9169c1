"""Claims about Store's read API beyond the log module: paged event iteration; a handle's lifetime (close, fork)."""

from __future__ import annotations

import gc
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import pytest

from rgstore.errors import InvalidInputError, StoreClosedError
from rgstore.events import Noted
from rgstore.log import NewEvent
from rgstore.store import Store
from tests.forked import in_forked_child


def test_iter_events_yields_what_events_returns_page_by_page_for_every_filter(store: Store) -> None:
    store.append([NewEvent(stream=f"audit:{i % 3}", event=Noted(text=f"n{i}")) for i in range(25)])
    for stream in (None, "audit:1", "audit:*", "nothing:*"):
        for page in (1, 4, 7, 25, 26, 100):
            got = [e.seq for e in store.iter_events(stream=stream, page=page)]
            assert got == [e.seq for e in store.events(stream=stream)], (stream, page)
    assert [e.seq for e in store.iter_events(after=20, page=2)] == [21, 22, 23, 24, 25]


def test_iter_events_reads_one_page_at_a_time(store: Store) -> None:
    store.append([NewEvent(stream="audit:x", event=Noted(text=f"n{i}")) for i in range(10)])
    pages = store.iter_events(page=4)
    first = [next(pages).seq for _ in range(4)]
    # Appended after the first page was read: a later page sees it (no snapshot of the whole log is held).
    store.append([NewEvent(stream="audit:x", event=Noted(text="late"))])
    assert first + [e.seq for e in pages] == list(range(1, 12))


def test_a_closed_store_says_so_with_an_rgstore_error_on_every_read_and_write(store_path: Path) -> None:
    store = Store.open(store_path)
    store.append([NewEvent(stream="audit:x", event=Noted(text="n"))])
    store.close()
    uses: list[Callable[[], object]] = [
        store.head, store.events, lambda: store.event(1), lambda: store.aliases.list(),
        lambda: store.getseq("hg38", "chr1", 0, 5), lambda: store.append([NewEvent(stream="audit:x", event=Noted(text="m"))]),
    ]
    for use in uses:
        with pytest.raises(StoreClosedError, match=r"it was closed; open the store again"):
            use()


def test_pickling_a_store_or_a_service_of_it_is_a_type_error_saying_to_open_it_in_each_worker(
        store_path: Path) -> None:
    with Store.open(store_path) as store:
        for what in (store, store.aliases):  # a Pool.map argument, or a service that holds the store
            with pytest.raises(TypeError, match=r"Store .* does not pickle: .*open the store in each worker"):
                pickle.dumps(what)
        assert store.aliases.list() == []  # the refusal leaves the handle working


def test_a_store_dropped_without_close_does_not_keep_its_path_from_opening_again(store_path: Path) -> None:
    Store.open(store_path).append([NewEvent(stream="audit:x", event=Noted(text="n"))])
    was_enabled = gc.isenabled()
    gc.disable()  # the collector must not happen to run in between: the open itself has to make room
    try:
        assert Store.open(store_path).aliases.list() == []  # a notebook one-liner: no handle is left to close
        with Store.open(store_path) as again:
            assert again.head()[0] == 1
    finally:
        if was_enabled:
            gc.enable()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_worker_opens_the_store_its_parent_holds_open_and_the_parent_keeps_working(store_path: Path) -> None:
    parent = Store.open(store_path, actor="parent@test")
    try:
        parent.append([NewEvent(stream="audit:x", event=Noted(text="before"))])

        def worker() -> str:
            # What a multiprocessing pool initializer does under the fork start method.
            with Store.open(store_path, actor="worker@test") as mine:
                mine.append([NewEvent(stream="audit:x", event=Noted(text="from the worker"))])
                seq = mine.head()[0]
            try:
                parent.head()  # the handle inherited from the parent must not be used here (LMDB)
            except StoreClosedError as exc:
                return f"{seq} {exc}"
            return f"{seq} the inherited handle was still used"

        out = in_forked_child(worker)
        assert out.startswith("ok: 2 the store handle on ") and "opened before this process forked" in out, out
        parent.append([NewEvent(stream="audit:x", event=Noted(text="after"))])
        assert [e.event.text for e in parent.events(stream="audit:x")] == ["before", "from the worker", "after"]  # type: ignore[attr-defined]
    finally:
        parent.close()


_pool_worker: dict[str, Store | str] = {}
"""What a fork-pool worker's initializer opened (or the error it got), for the task run after it."""


def _open_in_pool_worker(path: str) -> None:
    try:
        _pool_worker["store"] = Store.open(path, readonly=True)
    except Exception as exc:  # a failing initializer makes a pool re-fork its worker forever: report it instead
        _pool_worker["store"] = f"{type(exc).__name__}: {exc}"


def _head_in_pool_worker() -> int | str:
    opened = _pool_worker["store"]
    return opened if isinstance(opened, str) else opened.head()[0]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_fork_pool_worker_opens_the_store_while_a_parent_thread_is_inside_a_read_at_the_fork(store_path: Path) -> None:
    import multiprocessing
    import threading

    parent = Store.open(store_path, actor="parent@test")
    environment = parent.environment
    inside, pool_started = threading.Event(), threading.Event()

    def reader() -> None:
        with environment.read():
            inside.set()
            # Stay inside the read until the fork is under way (old code: until the pool has forked).
            with environment._gate:
                environment._gate.wait_for(lambda: getattr(environment, "_forking", False) or pool_started.is_set())

    def release() -> None:
        with environment._gate:
            pool_started.set()
            environment._gate.notify_all()

    try:
        parent.append([NewEvent(stream="audit:x", event=Noted(text="before"))])
        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        inside.wait()
        with multiprocessing.get_context("fork").Pool(1, initializer=_open_in_pool_worker, initargs=(str(store_path),)) as pool:
            release()
            thread.join()
            assert pool.apply(_head_in_pool_worker) == 1
        parent.append([NewEvent(stream="audit:x", event=Noted(text="after"))])
        assert parent.head()[0] == 2
    finally:
        release()
        parent.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_child_forked_inside_a_read_is_told_why_it_cannot_open_the_store_and_what_to_do(store_path: Path) -> None:
    parent = Store.open(store_path, actor="parent@test")
    try:
        parent.append([NewEvent(stream="audit:x", event=Noted(text="before"))])
        with parent.environment.read():  # the forking thread's own read cannot end before the fork
            out = in_forked_child(lambda: str(Store.open(store_path, readonly=True).head()[0]))
        assert out.startswith("StoreOpenError: ") and "forked while a thread of its parent was inside a read (or a write)" in out, out
        assert "'spawn' or 'forkserver' multiprocessing start method" in out and "\n" not in out
        assert parent.head()[0] == 1
    finally:
        parent.close()


def test_a_relative_store_path_still_names_the_same_store_after_the_process_changes_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from importlib import resources

    tiny = Path(str(resources.files("rgstore") / "data" / "tiny.fa"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    with Store.open("pystore") as store:
        store.genomes.init(tiny, ["tiny"])
        os.chdir(tmp_path / "elsewhere")  # a notebook's %cd
        assert store.getseq("tiny", "chr2", 0, 4) == "CCGT"  # not "recorded but missing"
        store.genomes.init(tiny, ["tiny2"])
        info, _ = store.blobs.put_bytes(b"x")
        assert store.path == tmp_path / "pystore" and store.blobs.exists(info.sha256)
        assert store.verify().ok
    assert os.listdir(tmp_path / "elsewhere") == []  # nothing of the store was written beside the new cwd


@pytest.mark.parametrize("how", ["deleted", "moved"])
def test_a_store_whose_directory_was_deleted_or_moved_refuses_writes_instead_of_losing_them(
    tmp_path: Path, how: str
) -> None:
    import shutil

    root = tmp_path / "s"
    store = Store.open(root)
    try:
        store.append([NewEvent(stream="audit:x", event=Noted(text="kept"))])
        if how == "deleted":
            shutil.rmtree(root)
        else:
            root.rename(tmp_path / "moved")
        with pytest.raises(StoreClosedError, match="deleted, moved or replaced since it was opened"):
            store.append([NewEvent(stream="audit:x", event=Noted(text="would be lost"))])
    finally:
        store.close()
    if how == "moved":
        with Store.open(tmp_path / "moved") as moved:
            assert [e.event.text for e in moved.events(stream="audit:x")] == ["kept"]  # type: ignore[attr-defined]


def test_a_store_shows_its_path_and_state_in_a_notebook(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    assert repr(store) == f"<rgstore.Store {str(tmp_path / 's')!r} writable>"
    store.close()
    assert repr(store) == f"<rgstore.Store {str(tmp_path / 's')!r} closed>"
    with Store.open(tmp_path / "s", readonly=True) as reader:
        assert repr(reader).endswith(" read-only>")


@pytest.mark.parametrize("where", ["store", "parent", "log"])
def test_a_file_where_the_store_directory_belongs_is_a_store_open_error_naming_it(tmp_path: Path, where: str) -> None:
    from rgstore.errors import StoreOpenError

    # `Store.open("hg38.fa")` in a notebook: the FASTA path given where the store's belongs.
    blocker = {"store": tmp_path / "hg38.fa", "parent": tmp_path / "hg38.fa", "log": tmp_path / "s" / "log"}[where]
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text(">chr1\nACGT\n")
    path = {"store": blocker, "parent": blocker / "store", "log": blocker.parent}[where]
    with pytest.raises(StoreOpenError, match=f"{blocker} is a file, not a directory"):
        Store.open(path)
    assert blocker.read_text() == ">chr1\nACGT\n"


def test_a_store_path_that_is_not_utf8_is_refused_in_words_before_anything_is_created(tmp_path: Path) -> None:
    from rgstore.errors import InvalidInputError

    path = Path(os.fsdecode(bytes(tmp_path) + b"/st\xe9re"))  # a Latin-1 directory name
    with pytest.raises(InvalidInputError, match=r"st\\xe9re is not valid UTF-8"):
        Store.open(path)
    assert list(tmp_path.iterdir()) == []


def test_a_store_path_that_is_not_utf8_is_refused_under_a_latin1_locale_too(tmp_path: Path) -> None:
    from tests.conftest import run_rgstore
    from tests.locales import latin1_env

    env = latin1_env(tmp_path)
    store = os.fsdecode(bytes(tmp_path) + b"/st\xe9re")  # `störe` as a Latin-1 user types it: decodes without error
    made = run_rgstore("--store", store, "init", env=env)
    assert made.returncode == 1 and b"st\\xe9re is not valid UTF-8" in made.stderr, made.stderr
    # Once, LMDB made the store there and gtars a second `refget/` in the UTF-8 spelling beside it.
    assert sorted(os.listdir(bytes(tmp_path))) == [b"locales"]


def test_a_utf8_store_path_under_an_ascii_locale_is_refused_naming_the_locale_not_the_path(tmp_path: Path) -> None:
    from tests.conftest import run_rgstore
    from tests.locales import ascii_env

    store = os.fsdecode(bytes(tmp_path) + b"/st\xc3\xb6re")
    made = run_rgstore("--store", store, "init", env=ascii_env())
    assert made.returncode == 1, made.stderr
    assert made.stderr.startswith(b"error: the store path ") and b"run with a UTF-8 locale" in made.stderr, made.stderr
    assert b"not valid UTF-8" not in made.stderr  # it is: only this locale cannot name it
    assert list(tmp_path.iterdir()) == []


def test_a_store_path_with_a_nul_character_is_an_invalid_input_error_not_a_bare_value_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="contains a NUL character"):
        Store.open(f"{tmp_path}/a\0b")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("page", [0, -1])
def test_iter_events_with_a_page_below_one_is_an_invalid_input_error_not_an_index_error(store: Store, page: int) -> None:
    store.append([NewEvent(stream="audit:x", event=Noted(text="one"))])
    with pytest.raises(InvalidInputError, match="page must be a positive number of events"):
        list(store.iter_events(page=page))


def test_verify_of_a_store_moved_under_its_handle_says_it_moved_instead_of_reporting_damage(tmp_path: Path) -> None:
    root = tmp_path / "s"
    store = Store.open(root)
    try:
        store.blobs.put_bytes(b"kept")
        root.rename(tmp_path / "moved")
        with pytest.raises(StoreClosedError, match="deleted, moved or replaced since it was opened"):
            store.verify()
    finally:
        store.close()
    with Store.open(tmp_path / "moved") as moved:
        assert moved.verify().ok

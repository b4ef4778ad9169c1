"""/refpkgs against a real server: CONTENTS.json identical to an export, verified downloads, history."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from rgstore.events import FileRef, RefpkgCreated, RefpkgRemoved, Undone
from rgstore.log import NewEvent
from rgstore.pagecursor import encode_cursor, encode_row
from rgstore.refpkg_manifest import MAX_NESTING
from rgstore.refpkgs import CREATE_LOG
from rgstore.store import Store
from rgstore.views.refpkgs import refpkg_stream
from tests.server_fixture import Server, rgstore_cli, running_server


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("refpkgs")
    store = root / "store"
    (root / "seqs.fasta").write_text(">a\nACGU\n>b\nACGA\n")
    (root / "tree.nwk").write_text("(a:0.1,b:0.2);\n")
    (root / "tree2.nwk").write_text("(a:0.3,b:0.4);\n")
    (root / "tree3.nwk").write_text("(b:0.5,a:0.6);\n")
    rgstore_cli(store, "refpkg", "create", "pkg", "-l", "16S", "-f", str(root / "seqs.fasta"),
                "-t", str(root / "tree.nwk"))
    rgstore_cli(store, "refpkg", "update", "pkg", f"tree={root / 'tree2.nwk'}")
    rgstore_cli(store, "refpkg", "update", "pkg", f"tree={root / 'tree3.nwk'}")
    rgstore_cli(store, "refpkg", "rollback", "pkg")  # current: tree2; tree3 can be rolled forward
    return store


@pytest.fixture(scope="module")
def served(package: Path) -> Iterator[Server]:
    with running_server(package) as server:
        yield server


def test_list_shows_the_package_and_its_undo_depths(served: Server) -> None:
    body = httpx.get(f"{served.url}/refpkgs").json()
    assert body["pagination"]["total"] == 1
    item = body["items"][0]
    assert (item["name"], item["locus"], item["files"], item["rollbacks"], item["rollforwards"]) == (
        "pkg", "16S", 2, 1, 1)


def test_contents_json_is_byte_identical_to_an_export(served: Server, package: Path, tmp_path: Path) -> None:
    rgstore_cli(package, "refpkg", "export", "pkg", str(tmp_path / "pkg.refpkg"))
    r = httpx.get(f"{served.url}/refpkgs/pkg")
    assert r.status_code == 200
    assert r.content == (tmp_path / "pkg.refpkg" / "CONTENTS.json").read_bytes()
    contents = r.json()
    assert contents["rollback"] is not None and contents["rollforward"] is not None


def test_file_download_is_the_current_version_with_its_checksums(served: Server, package: Path) -> None:
    r = httpx.get(f"{served.url}/refpkgs/pkg/files/tree")
    assert r.status_code == 200
    assert r.content == b"(a:0.3,b:0.4);\n"
    assert r.headers["x-checksum-md5"] == hashlib.md5(r.content).hexdigest()
    assert r.headers["x-checksum-sha256"] == hashlib.sha256(r.content).hexdigest()
    assert "attachment" in r.headers["content-disposition"]


def test_file_download_answers_range_and_if_none_match_by_its_sha256(served: Server) -> None:
    url = f"{served.url}/refpkgs/pkg/files/tree"
    sha = hashlib.sha256(b"(a:0.3,b:0.4);\n").hexdigest()
    r = httpx.get(url, headers={"Range": "bytes=1-3"})
    assert r.status_code == 206 and r.content == b"a:0" and r.headers["x-checksum-sha256"] == sha
    r = httpx.get(url, headers={"If-None-Match": f'"{sha}"'})
    assert r.status_code == 304 and r.content == b"" and r.headers["etag"] == f'"{sha}"'


def test_history_lists_current_done_and_undone_steps(served: Server) -> None:
    steps = httpx.get(f"{served.url}/refpkgs/pkg/history").json()["steps"]
    assert [s["state"] for s in steps] == ["current", "done", "undone"]
    assert steps[0]["seq"] > steps[1]["seq"]
    assert steps[2]["seq"] > steps[0]["seq"]


def test_history_pages_across_done_and_undone_steps(served: Server) -> None:
    everything = httpx.get(f"{served.url}/refpkgs/pkg/history").json()
    assert everything["pagination"] == {"offset": 0, "limit": 100, "total": 3}
    pages = [httpx.get(f"{served.url}/refpkgs/pkg/history", params={"offset": i, "limit": 1}).json()
             for i in range(4)]
    assert [page["steps"] for page in pages] == [[s] for s in everything["steps"]] + [[]]
    assert all(page["pagination"]["total"] == 3 for page in pages)
    two = httpx.get(f"{served.url}/refpkgs/pkg/history", params={"offset": 1, "limit": 2}).json()["steps"]
    assert [s["state"] for s in two] == ["done", "undone"]


def _zip(root: Path) -> Path:
    """A store under ``root`` whose package z has 7 retained steps: the current one, 3 a rollback reaches and 3
    a rollforward re-applies."""
    (root / "tree.nwk").write_text("(a:0.1,b:0.2);\n")
    with Store.open(root / "store") as store:
        store.refpkgs.create("z", locus="16S", files=[("tree", root / "tree.nwk")])
        for i in range(6):
            store.refpkgs.update_metadata("z", [f"k={i}"])
        store.refpkgs.rollback("z", 3)
    return root / "store"


@pytest.fixture
def zipped(tmp_path: Path) -> Path:
    """`_zip`'s store, for one test to write to."""
    return _zip(tmp_path)


@pytest.fixture(scope="module")
def zipped_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server on `_zip`'s store, shared by the tests that only read it."""
    with running_server(_zip(tmp_path_factory.mktemp("zipped"))) as server:
        yield server


def _history_seqs(server: Server) -> list[int]:
    return [s["seq"] for s in httpx.get(f"{server.url}/refpkgs/z/history", params={"limit": 1000}).json()["steps"]]


def _history_walk(server: Server, limit: int, between: Any = None) -> list[dict[str, Any]]:
    """Every page of z's history by cursor (the first by offset); ``between(page)`` runs after each page but the last."""
    pages: list[dict[str, Any]] = []
    params: dict[str, Any] = {"offset": 0, "limit": limit}
    for page in range(100):
        answer = httpx.get(f"{server.url}/refpkgs/z/history", params=params)
        assert answer.status_code == 200, answer.text
        pages.append(answer.json())
        token = answer.headers.get("x-rgstore-next-after")
        if token is None:
            return pages
        if between is not None:
            between(page)
        params = {"after": token, "limit": limit}
    raise AssertionError("the walk did not end")


@pytest.mark.parametrize("limit", [1, 2, 3, 6, 7])
def test_history_walked_by_cursor_is_exactly_the_full_listing(zipped_served: Server, limit: int) -> None:
    full = httpx.get(f"{zipped_served.url}/refpkgs/z/history", params={"limit": 1000})
    pages = _history_walk(zipped_served, limit)
    assert "x-rgstore-next-after" not in full.headers
    assert [s["state"] for s in full.json()["steps"]] == ["current"] + ["done"] * 3 + ["undone"] * 3
    assert [s for p in pages for s in p["steps"]] == full.json()["steps"]
    assert len(pages) == -(-7 // limit)
    assert all(p["pagination"] == {"offset": 0, "limit": limit, "total": 7} for p in pages)


WRITES = {
    "rollback": lambda store: store.refpkgs.rollback("z"),
    "rollforward": lambda store: store.refpkgs.rollforward("z"),
    "update": lambda store: store.refpkgs.update_metadata("z", ["k=new"]),
}


@pytest.mark.parametrize("writes", [
    ["rollback", "rollback", "rollforward"], ["rollforward", "rollforward", "rollback"],
    ["update", "rollback", "update"], ["rollback", "update", "rollback"],
])
def test_writes_between_history_pages_neither_repeat_nor_skip_a_step_retained_throughout(
    zipped: Path, writes: list[str],
) -> None:
    # An offset walk repeats the current step after a rollback (it moves to the undone end) and
    # skips one after an update (a new step in front); the cursor keeps the first page's order.
    seen: set[int] = set()
    with running_server(zipped) as server, Store.open(zipped) as store:
        before = _history_seqs(server)

        def between(page: int) -> None:
            if page < len(writes):
                WRITES[writes[page]](store)
                seen.update(_history_seqs(server))

        listed = [s["seq"] for p in _history_walk(server, 2, between) for s in p["steps"]]
        after = _history_seqs(server)
    fold = before[0]
    assert len(listed) == len(set(listed)), "a step came twice"
    assert set(before) & set(after) <= set(listed), "a step retained throughout was skipped"
    assert set(listed) <= set(before) | seen
    assert listed == sorted(listed, key=lambda seq: (0, -seq) if seq <= fold else (1, seq))


@pytest.mark.parametrize("params", [
    {"after": "not!base64"}, {"after": "A"}, {"after": encode_cursor(b"k")},
    {"after": encode_row(("a", "b"))}, {"after": encode_row((1, 2, 3))},
    {"offset": 0, "after": encode_row((5, 4))},
])
def test_a_malformed_history_cursor_or_one_with_offset_is_a_one_line_422(served: Server, params: dict[str, Any]) -> None:
    answer = httpx.get(f"{served.url}/refpkgs/pkg/history", params=params)
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and "after" in detail


def test_contents_of_a_history_too_deep_for_taxtastic_is_refused_not_rendered(tmp_path: Path) -> None:
    # CONTENTS.json grows with the square of the depth: rendering it whole per request is unbounded.
    store = Store.open(tmp_path / "store")
    (tmp_path / "tree.nwk").write_text("(a:0.1,b:0.2);\n")
    store.refpkgs.create("deep", locus="16S", files=[("tree", tmp_path / "tree.nwk")])
    depth = (MAX_NESTING - 2) // 2 + 1
    for i in range(depth):
        store.refpkgs.update_metadata("deep", [f"k={i}"])
    store.refpkgs.rollback("deep", depth)
    store.close()
    with running_server(tmp_path / "store") as server:
        r = httpx.get(f"{server.url}/refpkgs/deep")
        history = httpx.get(f"{server.url}/refpkgs/deep/history", params={"limit": 5}).json()
    assert r.status_code == 409
    assert "/refpkgs/deep/history" in r.json()["detail"] and str(MAX_NESTING) in r.json()["detail"]
    assert len(history["steps"]) == 5 and history["pagination"]["total"] == depth + 1


@pytest.mark.parametrize("path", ["/refpkgs/nope", "/refpkgs/nope/history", "/refpkgs/nope/files/tree",
                                  "/refpkgs/pkg/files/nokey", "/refpkgs/" + "x" * 600, "/refpkgs/%00"])
def test_unknown_packages_and_keys_are_404(served: Server, path: str) -> None:
    r = httpx.get(f"{served.url}{path}")
    assert r.status_code == 404 and r.json()["detail"]


def test_a_removed_package_is_404_like_an_unknown_one(tmp_path: Path) -> None:
    store = tmp_path / "store"
    (tmp_path / "tree.nwk").write_text("(a:0.1,b:0.2);\n")
    rgstore_cli(store, "refpkg", "create", "gone", "-l", "16S", "-t", str(tmp_path / "tree.nwk"))
    rgstore_cli(store, "refpkg", "remove", "gone")
    with running_server(store) as server:
        listed = httpx.get(f"{server.url}/refpkgs").json()
        answers = {path: httpx.get(f"{server.url}{path}")
                   for path in ("/refpkgs/gone", "/refpkgs/gone/history", "/refpkgs/gone/files/tree")}
    assert (listed["items"], listed["pagination"]["total"]) == ([], 0)
    for path, r in answers.items():
        assert r.status_code == 404 and r.json()["detail"] == "no refpkg 'gone'; see `rgstore refpkg list`", path


def test_a_corrupted_file_is_refused_not_served(tmp_path: Path) -> None:
    store = tmp_path / "store"
    (tmp_path / "tree.nwk").write_text("(a:0.1,b:0.2);\n")
    rgstore_cli(store, "refpkg", "create", "p", "-l", "16S", "-t", str(tmp_path / "tree.nwk"))
    sha = hashlib.sha256(b"(a:0.1,b:0.2);\n").hexdigest()
    blob = next(p for p in (store / "blobs").rglob(f"{sha}*") if p.is_file())
    blob.chmod(0o644)
    blob.write_bytes(b"(a:9.9,b:0.2);\n")
    with running_server(store) as server:
        r = httpx.get(f"{server.url}/refpkgs/p/files/tree")
        ranged = httpx.get(f"{server.url}/refpkgs/p/files/tree", headers={"Range": "bytes=0-3"})
        head = httpx.head(f"{server.url}/refpkgs/p/files/tree")
        blob_get = httpx.get(f"{server.url}/blobs/{sha}")
    assert r.status_code == 500
    assert "corrupt" in r.json()["detail"]
    assert ranged.status_code == head.status_code == blob_get.status_code == 500  # not even a piece of it


def test_a_mirror_that_has_not_fetched_a_blob_fetches_it_and_names_the_fix_when_its_upstream_lacks_it(
        package: Path, tmp_path: Path) -> None:
    # A mirror holding the events but not the blob (pulled without --with-blobs, or a `serve --follow`
    # between its two steps) fetches it from its upstream on request: neither "damaged" (500) nor a
    # 503 whose retry can never succeed when the upstream has not published the blob.
    from rgstore.mirror import pull
    from rgstore.segments import publish, publish_blobs

    with Store.open(package, readonly=True) as primary:
        publish(primary, tmp_path / "pub")
    with Store.open(tmp_path / "mirror") as mirror:
        pull(mirror, str(tmp_path / "pub"))  # events only
    with running_server(tmp_path / "mirror") as server:
        r = httpx.get(f"{server.url}/refpkgs/pkg/files/tree", timeout=120)
        listed = httpx.get(f"{server.url}/refpkgs/pkg")
        assert r.status_code == 502 and "retry-after" not in r.headers
        assert "publish with --with-blobs" in r.json()["detail"]
        assert listed.status_code == 200  # the package itself is readable meanwhile
        with Store.open(package, readonly=True) as primary:
            publish_blobs(primary, tmp_path / "pub")
            want = primary.refpkgs.resource_path("pkg", "tree").read_bytes()
        again = httpx.get(f"{server.url}/refpkgs/pkg/files/tree", timeout=120)
    assert (again.status_code, again.content) == (200, want)


def _many_packages(path: Path, n: int) -> list[str]:
    """A store of ``n`` one-file packages, every 7th removed and every 11th creation undone; the existing names."""
    with Store.open(path) as store:
        info, _ = store.blobs.put_bytes(b"(a:1,b:2);\n")
        ref = FileRef(name="tree.nwk", sha256=info.sha256, md5=info.md5, size=info.size)
        names = [f"pkg{i:04d}" for i in range(n)]
        creations = [NewEvent(stream=refpkg_stream(name), event=RefpkgCreated(
            name=name, files={"tree": ref}, metadata={"locus": "16S"}, log=list(CREATE_LOG))) for name in names]
        store.transact(lambda txn: creations)
        gone = [NewEvent(stream=refpkg_stream(name), event=RefpkgRemoved(name=name)) for name in names[::7]]
        undone = [NewEvent(stream=refpkg_stream(name), event=Undone()) for name in names[3::11] if name not in names[::7]]
        store.transact(lambda txn: gone + undone)
        return [name for name in names if name not in names[::7] and name not in names[3::11]]


class _CountingCursor:
    """A cursor over the heads sub-db that counts every entry it hands out."""

    def __init__(self, cursor: Any, counts: list[int]) -> None:
        self._cursor, self._counts = cursor, counts

    def __enter__(self) -> _CountingCursor:
        self._cursor.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._cursor.__exit__(*exc)

    def __iter__(self) -> Iterator[Any]:
        return self.iternext()

    def iternext(self, keys: bool = True, values: bool = True) -> Iterator[Any]:
        for entry in self._cursor.iternext(keys=keys, values=values):
            self._counts[0] += 1
            yield entry

    def value(self) -> Any:
        self._counts[0] += 1
        return self._cursor.value()

    def item(self) -> Any:
        self._counts[0] += 1
        return self._cursor.item()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("iter"):  # any other iterator would read uncounted
            raise AttributeError(name)
        return getattr(self._cursor, name)


class _CountingTxn:
    """A real read transaction whose reads of the heads sub-db are counted."""

    def __init__(self, txn: Any, heads: Any, counts: list[int]) -> None:
        self._txn, self._heads, self._counts = txn, heads, counts

    def cursor(self, db: Any = None) -> Any:
        cursor = self._txn.cursor(db=db)
        return _CountingCursor(cursor, self._counts) if db is self._heads else cursor

    def get(self, key: bytes, default: Any = None, db: Any = None) -> Any:
        if db is self._heads:
            self._counts[0] += 1
        return self._txn.get(key, default, db=db)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._txn, name)


def _page_through(store_path: Path, limit: int, until: int) -> list[tuple[int, dict[str, Any]]]:
    """GET /refpkgs page by page (``limit`` each) up to offset ``until``: each answer with the heads it read."""
    from rgstore_api.app import create_app

    app = create_app(str(store_path))
    counts = [0]

    async def pages() -> list[tuple[int, dict[str, Any]]]:
        out = []
        async with app.router.lifespan_context(app):
            env = app.state.store.environment
            heads, read = env.db("refpkgs.heads"), env.read

            @contextmanager
            def counting_read() -> Iterator[Any]:
                with read() as txn:
                    yield _CountingTxn(txn, heads, counts)

            env.read = counting_read
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                for offset in range(0, until + limit, limit):
                    counts[0] = 0
                    body = (await client.get(f"/refpkgs?offset={offset}&limit={limit}")).json()
                    out.append((counts[0], body))
        return out

    return asyncio.run(pages())


def test_a_page_of_refpkgs_reads_the_page_not_every_package_and_pages_through_all_exactly(tmp_path: Path) -> None:
    existing = _many_packages(tmp_path / "store", 1200)
    answers = _page_through(tmp_path / "store", 10, len(existing))
    listed = [item["name"] for _reads, body in answers for item in body["items"]]
    assert listed == existing  # every existing package once, by name; no removed or undone one
    assert {body["pagination"]["total"] for _reads, body in answers} == {len(existing)}
    assert answers[-1][1]["items"] == []
    # The first page indexes the snapshot (one pass of the heads); every later page reads its own
    # ten heads plus fewer than 128 existing ones (and the removed among them) skipped from the
    # nearest mark, never all 1,200.
    assert answers[0][0] >= 1200
    assert max(reads for reads, _body in answers[1:]) < 200


def test_pages_of_refpkgs_jump_over_long_runs_of_removed_ones_and_list_the_rest_exactly(tmp_path: Path) -> None:
    # 6,900 packages in blocks of 230: 30 of which every 4th is removed, then 200 removed in a row.
    # A page read every removed head between its mark and its end (over 1,000 here, 9,000 for the
    # last of 10 packages left among 10,000 removed); now it jumps over each long run.
    with Store.open(tmp_path / "store") as store:
        info, _ = store.blobs.put_bytes(b"(a:1,b:2);\n")
        ref = FileRef(name="tree.nwk", sha256=info.sha256, md5=info.md5, size=info.size)
        names = [f"pkg{i:05d}" for i in range(6900)]
        store.transact(lambda txn: [NewEvent(stream=refpkg_stream(name), event=RefpkgCreated(
            name=name, files={"tree": ref}, metadata={"locus": "16S"}, log=list(CREATE_LOG))) for name in names])
        removed = {name for i, name in enumerate(names) if i % 230 >= 30 or i % 4 == 3}
        store.transact(lambda txn: [NewEvent(stream=refpkg_stream(name), event=RefpkgRemoved(name=name))
                                    for name in sorted(removed)])
    existing = [name for name in names if name not in removed]
    for limit in (7, 128):  # pages across marks, removed runs and both at once
        answers = _page_through(tmp_path / "store", limit, len(existing))
        assert [item["name"] for _reads, body in answers for item in body["items"]] == existing
        assert {body["pagination"]["total"] for _reads, body in answers} == {len(existing)}
        # fewer than 128 existing heads skipped from the mark, the page's own, a few short runs, one head per long run
        assert max(reads for reads, _body in answers[1:]) < 2 * (128 + limit)

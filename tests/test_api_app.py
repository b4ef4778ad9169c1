"""The app as a whole: health, methods, CORS, `rgstore serve`, and proof that the server cannot write."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rgstore.errors import ReadOnlyError
from rgstore.events import Noted
from rgstore.log import NewEvent
from rgstore.store import Store
from tests.conftest import run_rgstore
from tests.server_fixture import Server, free_port, running_server


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    path = tmp_path_factory.mktemp("app") / "store"
    with Store.open(path, actor="tester@test") as store:
        store.append([NewEvent(stream="note:a", event=Noted(text="x"))])
    with running_server(path) as server:
        yield server, path


def test_healthz_reports_the_log_position(served: tuple[Server, Path]) -> None:
    server, path = served
    with Store.open(path, readonly=True) as store:
        log_id = store.log_id()
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok", "log_id": log_id, "head_seq": 1}


def test_openapi_and_docs_are_served(served: tuple[Server, Path]) -> None:
    server, _ = served
    spec = httpx.get(f"{server.url}/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    assert {"/healthz", "/events", "/events/head", "/store/{path}"} <= set(spec["paths"])
    docs = httpx.get(f"{server.url}/docs")
    assert docs.status_code == 200 and "swagger-ui-bundle.js" in docs.text
    # An offline lab's browser cannot load Swagger UI from the CDN: the page itself points to the spec.
    assert 'cannot reach it. The API is described in <a href="/openapi.json">' in docs.text


def _concrete(path: str) -> str:
    return path.replace("{path}", "rgstore.json").replace("{", "x").replace("}", "")


def _documented_methods(operations: dict[str, object]) -> set[str]:
    """What a route's Allow must say: its documented methods, HEAD with GET, and OPTIONS."""
    methods = {m.upper() for m in operations} | {"OPTIONS"}
    return methods | {"HEAD"} if "GET" in methods else methods


def test_options_allow_names_exactly_each_routes_methods(served: tuple[Server, Path]) -> None:
    server, _ = served
    spec = httpx.get(f"{server.url}/openapi.json").json()
    assert "post" in spec["paths"]["/seqcol/comparison/{digest1}"]  # a POST route, and a GET beside it
    for path, operations in spec["paths"].items():
        r = httpx.options(f"{server.url}{_concrete(path)}")
        assert r.status_code == 204
        assert set(r.headers["allow"].split(", ")) == _documented_methods(operations), path


def test_no_route_accepts_a_writing_method_and_the_log_is_unchanged(served: tuple[Server, Path]) -> None:
    server, _ = served
    before = httpx.get(f"{server.url}/events/head").json()
    spec = httpx.get(f"{server.url}/openapi.json").json()
    for path, operations in spec["paths"].items():
        for method in ("PUT", "PATCH", "DELETE", "POST"):
            if method.lower() in operations:
                continue  # the seqcol comparison and regions POSTs compute; they are checked below
            r = httpx.request(method, f"{server.url}{_concrete(path)}", content=b"{}")
            assert r.status_code == 405, (method, path, r.status_code)
            assert set(r.headers["allow"].split(", ")) == _documented_methods(operations), (method, path)
    writes = [(m, p) for p, ops in spec["paths"].items() for m in ops if m not in ("get", "head")]
    computing = {"/seqcol/comparison/{digest1}", "/seqcol/collection/{digest}/regions"}  # they read, never store
    assert {p for m, p in writes if m == "post"} == computing and all(m == "post" for m, _ in writes), writes
    assert httpx.get(f"{server.url}/events/head").json() == before


def test_server_maps_the_log_read_only(served: tuple[Server, Path]) -> None:
    """The kernel's view of the worker: data.mdb is open O_RDONLY and mapped without write permission."""
    server, path = served
    pid = server.process.pid
    data = str((path / "log" / "data.mdb").resolve())
    maps = [line.split() for line in Path(f"/proc/{pid}/maps").read_text().splitlines() if line.endswith(data)]
    assert maps, "the server has not mapped the log"
    assert all("w" not in fields[1] for fields in maps), maps
    fds = [fd for fd in Path(f"/proc/{pid}/fd").iterdir() if str(fd.resolve()) == data]
    assert fds
    for fd in fds:
        flags = int(Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text().split("flags:")[1].split()[0], 8)
        assert flags & 0o3 == 0, f"data.mdb open with flags {flags:o}"


def test_a_write_through_the_apps_store_handle_fails(tmp_path: Path) -> None:
    from rgstore_api.app import create_app

    path = tmp_path / "store"
    Store.open(path).close()
    app = create_app(str(path))

    async def attempt() -> None:
        async with app.router.lifespan_context(app):
            with pytest.raises(ReadOnlyError):
                app.state.store.append([NewEvent(stream="note:a", event=Noted(text="sneaky"))])

    asyncio.run(attempt())
    with Store.open(path, readonly=True) as store:
        assert store.head()[0] == 0


def test_head_and_plain_options_work_on_every_get_route(served: tuple[Server, Path]) -> None:
    server, _ = served
    r = httpx.head(f"{server.url}/healthz")
    assert r.status_code == 200 and r.content == b"" and int(r.headers["content-length"]) > 0
    r = httpx.options(f"{server.url}/healthz")
    assert r.status_code == 204
    assert r.headers["allow"] == "GET, HEAD, OPTIONS"


def test_cors_allows_any_origin_to_read_but_not_to_delete(served: tuple[Server, Path]) -> None:
    server, _ = served
    r = httpx.get(f"{server.url}/healthz", headers={"Origin": "https://example.org"})
    assert r.headers["access-control-allow-origin"] == "*"
    pre = {"Origin": "https://example.org", "Access-Control-Request-Method": "GET"}
    r = httpx.options(f"{server.url}/events/head", headers=pre)
    assert r.status_code == 200 and "GET" in r.headers["access-control-allow-methods"]
    r = httpx.options(f"{server.url}/events/head", headers={**pre, "Access-Control-Request-Method": "DELETE"})
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/json"  # one line of JSON, as every client error
    assert r.json()["detail"].startswith("Disallowed CORS method")
    assert r.headers["access-control-allow-origin"] == "*"


@pytest.mark.parametrize(("path", "method"), [("/sequence/service-info", "GET"), ("/seqcol/comparison/x", "POST"),
                                             ("/seqcol/collection/x/regions", "POST")])
def test_a_browser_preflight_asking_for_private_network_access_is_granted(
    served: tuple[Server, Path], path: str, method: str
) -> None:
    # What Chrome sends before a public page reads a server on a private address or loopback.
    server, _ = served
    r = httpx.options(f"{server.url}{path}", headers={
        "Origin": "https://tools.example.org", "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "content-type", "Access-Control-Request-Private-Network": "true"})
    assert r.status_code == 200
    assert r.headers["access-control-allow-private-network"] == "true"
    assert r.headers["access-control-allow-origin"] == "*"


def test_unknown_route_is_404_json(served: tuple[Server, Path]) -> None:
    server, _ = served
    r = httpx.get(f"{server.url}/no/such/route")
    assert r.status_code == 404 and r.json() == {"detail": "Not Found"}
    r = httpx.options(f"{server.url}/no/such/route")  # OPTIONS agrees with GET about what exists
    assert r.status_code == 404 and r.json() == {"detail": "Not Found"}


def test_serve_on_a_missing_store_is_a_one_line_error(tmp_path: Path) -> None:
    # A port any user may listen on: serve checks the port first, and below 1024 only root may.
    proc = run_rgstore("--store", str(tmp_path / "nope"), "serve", "--port", str(free_port()), timeout=60)
    assert proc.returncode == 1
    err = proc.stderr.decode().strip()
    assert err.startswith("error: no rgstore store at") and "\n" not in err


def test_serve_help_has_an_example() -> None:
    proc = run_rgstore("serve", "--help", timeout=60)
    assert proc.returncode == 0
    assert "Example:" in proc.stdout.decode() and "--workers" in proc.stdout.decode()


def test_two_workers_serve_the_same_store(tmp_path: Path) -> None:
    path = tmp_path / "store"
    Store.open(path).close()
    with running_server(path, workers=2) as server:
        heads = {httpx.get(f"{server.url}/events/head").json()["head_seq"] for _ in range(10)}
        assert heads == {0}


@pytest.mark.parametrize("root", ["/rg", "/rg/", "rg"])  # as nginx's `location /rg/` is written, or bare
def test_root_path_prefixes_every_advertised_url(tmp_path: Path, root: str) -> None:
    """Behind a proxy that strips /rg, the routes answer at / while advertised URLs carry /rg."""
    path = tmp_path / "store"
    Store.open(path).close()
    with running_server(path, extra_args=["--root-path", root]) as server:
        info = httpx.get(f"{server.url}/service-info").json()
        assert info["seqcol"]["refget_store"]["url"] == f"{server.url}/rg/store"
        assert info["seqcol"]["url"] == "/rg/seqcol" and info["seqcol"]["service_info"] == "/rg/seqcol/service-info"
        assert info["refgenie"]["api_base"] == "/rg/v4"
        links = set(info["refgenie"]["links"].values())
        assert links == {"/rg/openapi.json", "/rg/sequence/service-info", "/rg/events"}
        assert httpx.get(f"{server.url}/openapi.json").json()["servers"] == [{"url": "/rg"}]
        assert httpx.get(f"{server.url}/seqcol/openapi.json").json()["servers"] == [{"url": "/rg/seqcol"}]
        assert httpx.get(f"{server.url}/store").headers["location"] == f"{server.url}/rg/store/"
        assert "url: '/rg/openapi.json'" in httpx.get(f"{server.url}/docs").text


@pytest.mark.parametrize("workers", [1, 2])
def test_access_log_gives_a_timestamped_line_per_request_with_the_forwarded_client(tmp_path: Path, workers: int) -> None:
    import re
    import time

    path = tmp_path / "store"
    Store.open(path).close()
    with running_server(path, workers=workers, extra_args=["--access-log"]) as server:
        assert httpx.get(f"{server.url}/events/head", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 200
        assert httpx.get(f"{server.url}/sequence/nosuchdigest").status_code == 404
        deadline = time.monotonic() + 10
        while server.log().count("GET /") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)  # the worker's stdout reaches the file a moment later
        log = server.log()
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"
    assert re.search(stamp + r' 203\.0\.113\.9:\d+ - "GET /events/head HTTP/1\.1" 200', log), log
    assert re.search(stamp + r' 127\.0\.0\.1:\d+ - "GET /sequence/nosuchdigest HTTP/1\.1" 404', log), log
    assert "Uvicorn running" not in log and "Started server process" not in log  # only the access lines


def test_without_access_log_the_server_prints_nothing_per_request(tmp_path: Path) -> None:
    path = tmp_path / "store"
    Store.open(path).close()
    with running_server(path) as server:
        for _ in range(3):
            httpx.get(f"{server.url}/events/head")
        log = server.log()
    assert "GET /events/head" not in log


def test_serve_on_a_busy_port_is_a_one_line_error(store_path: Path) -> None:
    import socket

    Store.open(store_path).close()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = run_rgstore("--store", str(store_path), "serve", "--port", str(port), timeout=60)
    err = proc.stderr.decode().strip()
    assert proc.returncode != 0 and "\n" not in err
    assert err.startswith(f"error: cannot listen on 127.0.0.1:{port}") and "choose another --port" in err


def test_a_host_name_is_refused_when_any_of_its_addresses_is_busy() -> None:
    """One worker binds every address a name resolves to, so a busy one fails the start-up check."""
    import socket

    from rgstore_api.server import check_listen

    from rgstore.errors import ConflictError

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConflictError, match=f"cannot listen on localhost:{port}"):
            check_listen("localhost", port)
    check_listen("localhost", port)  # free again


def test_an_unexpected_failure_is_a_one_line_json_500_like_every_other_error(tmp_path: Path) -> None:
    """A bug must not change the error shape: {"detail": one line}, no traceback or paths sent to the client."""
    from rgstore_api.app import create_app

    path = tmp_path / "store"
    Store.open(path).close()
    app = create_app(str(path))

    def broken() -> None:
        raise RuntimeError(f"bug reading {path}")

    app.add_api_route("/broken", broken)  # a route with a bug in it, through the real app's handlers

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return await c.get("/broken")

    r = asyncio.run(call())
    assert r.status_code == 500 and r.headers["content-type"] == "application/json"
    assert r.json() == {"detail": "internal server error (RuntimeError); see the server log"}


def test_serve_refuses_a_public_url_with_a_password_and_takes_any_scheme_case_before_starting(
    cli, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
) -> None:
    """The advertised URL is what other rgstores record for a remote genome: never with credentials."""
    monkeypatch.setenv("RGSTORE_PUBLIC_URL", "")  # serve exports it for its workers: undone after the test
    monkeypatch.delenv("RGSTORE_PUBLIC_URL")
    secret = cli("serve", "--public-url", "https://reader:s3cret@refs.example.org/")
    assert secret.exit_code == 2 and "s3cret" not in secret.output
    assert "URL 'https://***@refs.example.org/' carries credentials" in secret.output
    upper = cli("serve", "--public-url", "HTTPS://refs.example.org/")  # accepted: fails later, on the missing store
    assert upper.exit_code == 1 and upper.output.startswith("error: no rgstore store at")


def test_serve_host_brackets_hold_only_an_ipv6_address(cli) -> None:  # type: ignore[no-untyped-def]
    named = cli("serve", "--host", "[localhost]")
    assert named.exit_code == 2 and "[localhost]: brackets hold an IPv6 address, e.g. [::1]" in named.output
    bare = cli("serve", "--host", "[::1]")  # accepted: fails later, on the missing store
    assert bare.exit_code == 1 and bare.output.startswith("error: no rgstore store at")


def test_every_answer_not_fixed_by_digests_tells_shared_caches_to_revalidate(served: tuple[Server, Path]) -> None:
    """A CDN or nginx proxy_cache keeps an answer without Cache-Control for its default lifetime: a stale
    /events/head made a mirror following through it take the primary for rolled back and stop."""
    server, _ = served
    spec = httpx.get(f"{server.url}/openapi.json").json()
    for path, operations in spec["paths"].items():
        if "get" not in operations:
            continue
        r = httpx.get(f"{server.url}{_concrete(path)}")
        cache_control = r.headers.get("cache-control", "")
        assert "immutable" in cache_control or "no-cache" in cache_control, (path, r.status_code, cache_control)
    for path in ("/events/head", "/events?after=0", "/healthz", "/status", "/service-info", "/no/such/route"):
        assert httpx.get(f"{server.url}{path}").headers["cache-control"] == "no-cache", path
    assert httpx.head(f"{server.url}/events/head").headers["cache-control"] == "no-cache"


_NGINX_CONF = """\
{user}worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy; fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;
  proxy_cache_path {dir}/cache keys_zone=rg:1m max_size=10m;
  server {{
    listen 127.0.0.1:{port};
    location /rg/ {{
      proxy_pass {upstream}/;
      proxy_set_header Host $host:$server_port;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_cache rg;
      proxy_cache_valid 200 404 10m;
    }}
  }}
}}
"""


@pytest.mark.skipif(__import__("shutil").which("nginx") is None, reason="nginx is not installed")
def test_a_mirror_following_through_an_nginx_cache_under_a_prefix_catches_up(tmp_path: Path) -> None:
    """nginx with proxy_cache_valid caches whatever does not say otherwise; the mirror must still see new events."""
    import os
    import shutil
    import subprocess

    from rgstore.mirror import pull
    from tests.server_fixture import free_port

    path, mirror = tmp_path / "store", tmp_path / "mirror"
    with Store.open(path, actor="tester@test") as store:
        store.append([NewEvent(stream="note:a", event=Noted(text="one"))])
    conf_dir = tmp_path / "nginx"
    conf_dir.mkdir()
    with running_server(path, extra_args=["--root-path", "/rg"]) as server:
        port = free_port()
        user = "user root root;\n" if os.geteuid() == 0 else ""  # workers otherwise run as nobody: tmp_path is 0700
        (conf_dir / "nginx.conf").write_text(
            _NGINX_CONF.format(user=user, dir=conf_dir, port=port, upstream=server.url))
        nginx = shutil.which("nginx")
        assert nginx is not None
        subprocess.run([nginx, "-p", str(conf_dir), "-e", str(conf_dir / "error.log"), "-c",
                        str(conf_dir / "nginx.conf")], check=True, timeout=30)
        try:
            proxied = f"http://127.0.0.1:{port}/rg"
            info = httpx.get(f"{proxied}/seqcol/service-info", timeout=10).json()
            assert info["seqcol"]["refget_store"]["url"] == f"{proxied}/store"
            with Store.open(mirror, actor="tester@test") as replica:
                assert pull(replica, proxied).head_seq == 1
            with Store.open(path, actor="tester@test") as store:
                store.append([NewEvent(stream="note:a", event=Noted(text="two"))])
            with Store.open(mirror, actor="tester@test") as replica:
                result = pull(replica, proxied)  # a cached /events/head (seq 1) read as "rolled back"
                assert (result.head_seq, result.applied) == (2, 1)
            assert httpx.get(f"{proxied}/healthz", timeout=10).json()["head_seq"] == 2
        finally:
            subprocess.run([nginx, "-p", str(conf_dir), "-e", str(conf_dir / "error.log"), "-c",
                            str(conf_dir / "nginx.conf"), "-s", "stop"], timeout=30)


def test_an_unexpected_500_is_readable_by_a_browser_page_on_another_origin_and_not_cached(tmp_path: Path) -> None:
    """Browsers hide any answer without Access-Control-Allow-Origin: a bug's 500 must carry it like every error."""
    import lmdb

    from tests.server_fixture import init_genome

    store = tmp_path / "store"
    init_genome(store, Path(__file__).resolve().parent.parent / "rgstore" / "data" / "tiny.fa", "tiny")
    env = lmdb.open(str(store / "log"), max_dbs=64)  # a damaged view record: reading it fails undeclared
    with env.begin(write=True) as txn:
        db = env.open_db(b"genomes.records", txn=txn)
        key = next(iter(txn.cursor(db=db).iternext(values=False)))
        txn.put(key, b"\xc1 not msgpack", db=db)
    env.close()
    origin = {"Origin": "https://igv.org"}
    with running_server(store) as server:
        r = httpx.get(f"{server.url}/v4/genomes", headers=origin)
        plain = httpx.get(f"{server.url}/v4/genomes")
    assert r.status_code == 500 and r.json()["detail"].startswith("internal server error")
    assert r.headers["access-control-allow-origin"] == "*"  # what fetch() needs to read the detail
    assert r.headers["cache-control"] == "no-cache"  # like every error: a cache must not keep it after a repair
    assert "access-control-allow-origin" not in plain.headers and plain.status_code == 500


@pytest.fixture(scope="module")
def big_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A store holding one 16 Mbp sequence (far more than socket buffers hold) and its digest; servers only read it."""
    import random

    from tests.server_fixture import init_genome

    root = tmp_path_factory.mktemp("big")
    fasta = root / "big.fa"
    rng = random.Random(7)
    fasta.write_text(">big\n" + "".join(rng.choices("ACGT", k=16_000_000)) + "\n")
    path = root / "store"
    digest = init_genome(path, fasta, "big")["sequences"][0]  # type: ignore[index]
    return path, digest


@pytest.mark.parametrize("workers", [1, 2])
def test_a_second_sigterm_stops_a_server_draining_a_stalled_download_at_once(
    tmp_path: Path, big_store: tuple[Path, str], workers: int
) -> None:
    """The first SIGTERM waits for a download whose client stopped reading; the second ends it, exit 0."""
    import signal
    import socket

    path, digest = big_store
    with running_server(path, workers=workers, log_dir=tmp_path) as server, socket.socket() as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        client.settimeout(60)  # a server that never answers fails the test instead of hanging the suite
        client.connect(("127.0.0.1", int(server.url.rsplit(":", 1)[1])))
        client.sendall(f"GET /sequence/{digest} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert client.recv(4096).startswith(b"HTTP/1.1 200")  # in flight; nothing more is read
        server.process.send_signal(signal.SIGTERM)
        with pytest.raises(subprocess.TimeoutExpired):
            server.process.wait(timeout=2)  # draining: the stalled download holds it
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=60) == 0, server.log()
    # One line says so, not uvicorn's traceback of every cancelled task (~150 lines with one worker).
    from rgstore_api.server import FORCED_STOP

    assert "Traceback" not in server.log() and server.log().count(FORCED_STOP) == 1, server.log()


def test_readyz_is_200_on_a_readable_store_and_refuses_a_malformed_max_age(served: tuple[Server, Path]) -> None:
    server, _ = served
    ready = httpx.get(f"{server.url}/readyz")
    assert (ready.status_code, ready.json()) == (200, {"ready": True, "detail": "ok", "head_seq": 1})
    assert ready.headers["cache-control"] == "no-cache"  # a cache in front must not answer for the server
    bad = httpx.get(f"{server.url}/readyz", params={"max_age": "soon"})
    assert bad.status_code == 400 and bad.json()["detail"].startswith("max_age: invalid interval 'soon'")
    assert "/readyz" in httpx.get(f"{server.url}/openapi.json").json()["paths"]


def test_readyz_is_503_with_one_line_once_the_store_directory_is_moved_while_healthz_stays_live(
        tmp_path: Path) -> None:
    import time

    path = tmp_path / "store"
    with Store.open(path, actor="tester@test") as store:
        store.append([NewEvent(stream="note:a", event=Noted(text="x"))])
    with running_server(path, log_dir=tmp_path) as server:
        assert httpx.get(f"{server.url}/readyz").status_code == 200
        path.rename(tmp_path / "moved")  # unmounted, deleted or moved under the running server
        deadline = time.monotonic() + 30  # the answer is cached for about a second
        while (answer := httpx.get(f"{server.url}/readyz")).status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        status = httpx.get(f"{server.url}/status").json()
        live = httpx.get(f"{server.url}/healthz")
    assert answer.status_code == 503 and answer.text.count("\n") == 0 and str(tmp_path) not in answer.text
    assert answer.json()["ready"] is False and "deleted, moved or replaced" in answer.json()["detail"]
    assert status["healthy"] is False and any("deleted, moved or replaced" in p for p in status["problems"])
    assert live.status_code == 200  # liveness: the process answers; a load balancer asks /readyz


def test_an_ipv6_host_is_bracketed_in_urls_and_other_hosts_are_not() -> None:
    from rgstore_api.server import url_host

    assert [url_host(h) for h in ("::1", "127.0.0.1", "localhost")] == ["[::1]", "127.0.0.1", "localhost"]


def _ipv6_loopback() -> bool:
    import socket

    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.parametrize("host, shown", [
    ("127.0.0.1", "127.0.0.1"),
    pytest.param("::1", "[::1]", marks=pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")),
    # --host as the line prints it: it was refused as "cannot resolve it"
    pytest.param("[::1]", "[::1]", marks=pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")),
])
@pytest.mark.parametrize("workers", [1, 2])
def test_the_start_up_line_gives_a_url_that_reaches_the_server_with_the_port_port_0_got(
    tmp_path: Path, host: str, shown: str, workers: int
) -> None:
    # It said http://::1:0: an IPv6 host without brackets, and the port asked for rather than the one bound.
    import re
    import selectors
    import signal
    import sys
    import time

    from tests.conftest import REPO

    path = tmp_path / "store"
    Store.open(path).close()
    proc = subprocess.Popen([sys.executable, "-m", "rgstore_cli", "--store", str(path), "serve", "--host", host,
                             "--port", "0", "--workers", str(workers)], cwd=REPO, stderr=subprocess.PIPE)
    try:
        assert proc.stderr is not None
        selector = selectors.DefaultSelector()
        selector.register(proc.stderr, selectors.EVENT_READ)
        line, deadline = b"", time.monotonic() + 60
        while not line.endswith(b"\n") and time.monotonic() < deadline and selector.select(deadline - time.monotonic()):
            chunk = proc.stderr.read1(4096)  # type: ignore[attr-defined]
            if not chunk:
                break
            line += chunk
        found = re.search(r"read-only at (http://(\S+):(\d+)) ", line.decode())
        assert found is not None, line
        url, printed_host, port = found.groups()
        assert printed_host == shown and int(port) > 0
        while True:  # with --workers 2 the line comes once the socket is bound, as the workers start
            try:
                assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def test_a_request_that_runs_the_server_out_of_memory_is_a_one_line_503_and_the_server_keeps_serving(
    tmp_path: Path,
) -> None:
    # A memory limit (ulimit -v, a service's MemoryMax) reached while answering was a 500 "internal server error
    # (MemoryError)", as if the server had a bug: the request may well succeed once memory is free again.
    import resource

    path = tmp_path / "store"
    Store.open(path).close()
    with running_server(path) as server:
        url = f"{server.url}/seqcol/comparison/{'A' * 32}"
        warm = httpx.post(url, json={"names": ["a"], "lengths": [1], "sequences": ["x"]}, timeout=60)
        assert warm.status_code == 404  # the parsing thread and its malloc arena exist before the limit
        pid = server.process.pid
        vm = next(int(line.split()[1]) for line in open(f"/proc/{pid}/status") if line.startswith("VmSize:")) << 10
        # 64 MiB of room: the 14 MiB body is read and joined, but parsing its 3.9 million floats (~125 MiB) is not.
        before = resource.prlimit(pid, resource.RLIMIT_AS, (vm + (64 << 20), resource.prlimit(pid, resource.RLIMIT_AS)[1]))
        try:
            body = b'{"lengths": [' + b",".join([b"0.5"] * 3_900_000) + b"]}"
            refused = httpx.post(url, content=body, headers={"content-type": "application/json"}, timeout=120)
        finally:
            resource.prlimit(pid, resource.RLIMIT_AS, before)
        assert refused.status_code == 503, refused.text
        detail = refused.json()["detail"]
        assert detail.startswith("out of memory: the server reached its memory limit") and "\n" not in detail
        assert "Traceback" not in refused.text and "MemoryError" not in refused.text
        assert httpx.get(f"{server.url}/healthz").status_code == 200
    assert "out of memory answering POST /seqcol/comparison/" in server.log() and "Traceback" not in server.log()

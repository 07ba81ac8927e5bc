"""Hostile clients against the real API (uvicorn + Redis; no worker needed: jobs stay queued):
generated requests from the OpenAPI document (schemathesis), path traversal on every route that takes a
name or id, unguessable ids, API keys that cannot reach each other's jobs, oversized bodies cut off while
receiving, and the versions of the request-path dependencies."""
from __future__ import annotations

import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version

import httpx
import psutil
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from packaging.version import Version

from tests.service_harness import ServiceStack, png_bytes, send_chunk, start_chunked_upload

LIMITS = dict(max_upload_bytes=300_000, max_input_pixels=1_000_000, max_output_pixels=4_000_000)
SECRET = "TOP-SECRET-MARKER-7f3a"


@pytest.fixture(scope="module")
def stack(tmp_path_factory, models_dir):
    root = tmp_path_factory.mktemp("hostile")
    # Files a traversal would be after: next to the storage folder and inside it.
    (root / "secret.txt").write_text(SECRET)
    with ServiceStack(root, models_dir, queue="hostile", max_queue_depth=50, **LIMITS) as s:
        s.start_redis()
        s.start_api()
        (s.data_dir / "secret.txt").write_text(SECRET)
        (s.data_dir / "uploads" / "secret.png").write_text(SECRET)
        yield s


@pytest.fixture(scope="module")
def keyed(stack):
    """A second API on the same Redis and storage, with API keys on."""
    other = ServiceStack(stack.root / "keyed", stack.env["ESRGAN_MODELS_DIR"], queue="hostile", **LIMITS,
                         api_keys="alpha,beta", max_jobs_in_flight_per_key=20)
    other.redis_port = stack.redis_port
    other.env.update(REDIS_URL=stack.redis_url, ESRGAN_DATA_DIR=str(stack.data_dir))
    other.start_api()
    yield other
    other.stop_api()


# --- the OpenAPI contract ---------------------------------------------------------------------------

def test_generated_requests_get_no_server_error(stack):
    """Every operation of /openapi.json, with requests generated from its schema (valid and not): no
    5xx, and every error is JSON that says what was wrong. (schemathesis's own pytest plugin does not
    load under pytest 9 yet, so the cases are drawn here with hypothesis.)"""
    schema = schemathesis.openapi.from_url(f"{stack.base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8

    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def no_server_error(case):
            response = case.call(base_url=stack.base_url)
            if case.path == "/readyz":  # 503 is its answer while no worker runs (none does here)
                return
            assert response.status_code < 500, \
                f"{case.method} {case.formatted_path}: {response.status_code} {response.text}"
            if response.status_code >= 400:
                assert response.json()["error"]["message"]

        no_server_error()


# --- path traversal -----------------------------------------------------------------------------------

TRAVERSALS = [
    "..%2Fsecret.txt", "..%2F..%2Fsecret.txt", "%2e%2e%2fsecret.txt", "..%5Csecret.txt", "....%2F%2Fsecret.txt",
    "%2Fetc%2Fpasswd", "secret.txt", "secret.png", "..", "%2e%2e", "%00", "secret.txt%00.png",
    "0123456789abcdef0123456789abcdef%2F..%2F..%2Fsecret.txt", "0123456789ABCDEF0123456789ABCDEF.png",
    "%c0%ae%c0%ae%2fsecret.txt", "..%252Fsecret.txt",
]


def _routes_with_names() -> list[tuple[str, str]]:
    """(method, path template) of every route of the app with a path parameter."""
    from api.app import create_app
    from jobs.settings import Settings

    def walk(routes):
        for route in routes:
            if hasattr(route, "original_router"):  # an included router
                yield from walk(route.original_router.routes)
            elif hasattr(route, "methods"):
                yield route

    app = create_app(Settings(redis_url="redis://127.0.0.1:1/0"))
    found = []
    for route in walk(app.routes):
        for method in sorted(getattr(route, "methods", None) or {"GET"}):
            if "{" in route.path and method != "HEAD":
                found.append((method, route.path))
    return found + [("GET", "/static/{path}")]


ROUTES = _routes_with_names()


def raw_request(port: int, method: str, path: str) -> tuple[int, str]:
    """Send the path byte for byte (an HTTP client would normalise ../ away)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    text = data.decode(errors="replace")
    return int(text.split(" ", 2)[1]), text


def test_every_route_with_a_name_or_id_is_covered():
    paths = {p for _, p in ROUTES}
    assert {"/v1/jobs/{job_id}", "/v1/jobs/{job_id}/result", "/v1/jobs/{job_id}/input",
            "/v1/jobs/{job_id}/cancel", "/uploads/{filename}", "/generated/{filename}", "/result/{job_id}"} <= paths


@pytest.mark.parametrize("method, template", ROUTES)
def test_path_traversal_reaches_nothing(stack, method, template):
    name = re.search(r"\{(\w+)(:\w+)?\}", template).group(0)
    for attempt in TRAVERSALS + ["../secret.txt", "../../secret.txt", "./../secret.txt"]:
        status, text = raw_request(stack.api_port, method, template.replace(name, attempt))
        assert status in (400, 404, 405, 422), (method, template, attempt, status, text[:300])
        assert SECRET not in text and "root:" not in text


# --- ids ------------------------------------------------------------------------------------------------

def test_job_ids_are_unguessable(stack):
    ids = [stack.submit(png_bytes(8, 8, seed=i))["id"] for i in range(20)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)  # 128 bits, hex
    assert len(set(ids)) == len(ids)
    # Random, not a counter or a clock: ids made one after another share no prefix and, position by
    # position, take many different digits (a sequence would change only its last few).
    assert max(len(_common_prefix(a, b)) for a, b in zip(ids, ids[1:])) < 6
    assert min(len({i[pos] for i in ids}) for pos in range(32)) >= 5
    for i in ids:
        stack.http.delete(f"/v1/jobs/{i}")


def _common_prefix(a: str, b: str) -> str:
    n = 0
    while n < len(a) and a[n] == b[n]:
        n += 1
    return a[:n]


# --- API keys -------------------------------------------------------------------------------------------

def test_one_key_cannot_reach_another_keys_jobs(keyed):
    alpha, beta = {"X-API-Key": "alpha"}, {"X-API-Key": "beta"}
    with keyed.client() as c:
        r = c.post("/v1/jobs", files={"image": ("x.png", png_bytes(16, 16))}, headers=alpha)
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        mine = {
            ("GET", f"/v1/jobs/{job_id}"): 200, ("GET", f"/v1/jobs/{job_id}/input"): 200,
            ("GET", f"/v1/jobs/{job_id}/result"): 409,  # exists, not ready: the owner is told so
            ("GET", f"/uploads/{job_id}.png"): 200, ("GET", f"/generated/{job_id}.png"): 409,
            ("GET", f"/result/{job_id}"): 200,
        }
        for (method, path), status in mine.items():
            assert c.request(method, path, headers=alpha).status_code == status, path
            for who in (beta, {}, {"X-API-Key": "alph"}, {"X-API-Key": "ALPHA"}):
                r = c.request(method, path, headers=who)
                assert r.status_code in (401, 404), (path, who, r.status_code)
                assert "x.png" not in r.text
        for method, suffix in (("POST", "/cancel"), ("DELETE", "")):
            assert c.request(method, f"/v1/jobs/{job_id}{suffix}", headers=beta).status_code == 404
        archive = {"job_ids": [job_id]}  # "download all" reaches only the caller's own results
        assert c.post("/v1/archives", json=archive, headers=alpha).status_code == 409  # not finished yet
        assert c.post("/v1/archives", json=archive, headers=beta).status_code == 404
        assert c.get(f"/v1/jobs/{job_id}", headers=alpha).json()["status"] == "queued"  # untouched by beta
        assert c.delete(f"/v1/jobs/{job_id}", headers=alpha).status_code == 204


# --- back-pressure ---------------------------------------------------------------------------------------

def test_burst_over_the_queue_depth_gets_429_and_the_queue_stops_at_the_depth(stack):
    """40 uploads at once against a queue nobody consumes, depth 10: exactly 10 are queued (admission is
    atomic, so a burst cannot overshoot), the rest get 429 with Retry-After."""
    burst = ServiceStack(stack.root / "burst", stack.env["ESRGAN_MODELS_DIR"], queue="burst", max_queue_depth=10,
                         queue_retry_after=7, **LIMITS)
    burst.redis_port = stack.redis_port
    burst.env.update(REDIS_URL=stack.redis_url)
    burst.start_api()
    try:
        image = png_bytes(16, 16)
        with burst.client(limits=httpx.Limits(max_connections=40)) as c, ThreadPoolExecutor(40) as pool:
            answers = list(pool.map(lambda _: c.post("/v1/jobs", files={"image": ("b.png", image)}), range(40)))
        codes = sorted(r.status_code for r in answers)
        assert codes == [202] * 10 + [429] * 30, codes
        for r in answers:
            if r.status_code == 429:
                assert r.headers["retry-after"] == "7" and r.json()["error"]["code"] == "queue_full"
        assert stack.redis.llen("burst") == 10
        assert int(stack.redis.get("esrgan:admitting:burst") or 0) == 0  # every admission given back
    finally:
        burst.stop_api()


# --- bodies over the limit ------------------------------------------------------------------------------

def test_body_over_the_limit_is_cut_off_before_it_is_buffered(stack):
    """Stream up to 40 MB (limit: 300 kB) without a length: the server answers and closes early, and
    neither the API's memory nor any temporary file took the body."""
    api = psutil.Process(stack.api.pid)
    rss_before = api.memory_info().rss
    sent, answer = 0, b""
    chunk = b"\0" * 65536
    with socket.create_connection(("127.0.0.1", stack.api_port), timeout=10) as sock:
        try:
            start_chunked_upload(sock)
            sock.settimeout(0.001)
            while sent < 40_000_000 and not answer:
                try:
                    send_chunk(sock, chunk)
                    sent += len(chunk)
                except (TimeoutError, BlockingIOError):
                    pass  # the server stopped reading: its buffers are full
                try:
                    answer = sock.recv(65536)
                except (TimeoutError, BlockingIOError):
                    pass
            sock.settimeout(5)
            while answer and b"upload_too_large" not in answer and (more := sock.recv(65536)):
                answer += more  # the head and the body may come in separate packets
        except (BrokenPipeError, ConnectionResetError):
            pass
    assert sent < 5_000_000, f"the server kept reading {sent:,} bytes"
    if answer:  # (or the kernel reset the connection, the server having closed with our bytes unread)
        assert answer.startswith(b"HTTP/1.1 413") and b"upload_too_large" in answer, answer[:300]
    grown = api.memory_info().rss - rss_before
    assert grown < 20_000_000, f"API grew by {grown:,} bytes"
    spooled = [f.path for f in api.open_files() if not f.path.endswith(".log")]
    assert not [p for p in spooled if "tmp" in p], spooled
    assert httpx.get(f"{stack.base_url}/healthz").status_code == 200


def test_declared_length_over_the_limit_is_refused_before_reading(stack):
    with socket.create_connection(("127.0.0.1", stack.api_port), timeout=10) as sock:
        sock.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n"
                     b"Content-Type: multipart/form-data; boundary=b\r\n\r\n")
        t = time.monotonic()
        answer = sock.recv(65536)  # no body sent at all: the answer comes from the header alone
        assert time.monotonic() - t < 5
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


# --- dependencies -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("package, fixed", [("python-multipart", "0.0.31"), ("starlette", "1.3.1")])
def test_request_path_dependencies_have_the_security_fixes(package, fixed):
    """Versions with the published multipart/form and request-body fixes (pip-audit needs the network,
    so the floor is asserted here; pyproject.toml asks for the same)."""
    assert Version(version(package)) >= Version(fixed)

"""Signed webhooks end to end: the real service (Redis, a Celery worker, the API) POSTs a finished job to a
real HTTP receiver on this machine; SSRF refusals from an API with the default settings."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench.harness import ServiceStack, full_stack, png_bytes, wait_until
from jobs.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify

SECRET = "webhook-test-secret"


class Receiver:
    """An HTTP server that records every POST and answers from a script (then 200)."""

    def __init__(self, answers: list[int] | None = None):
        self.calls: list[dict] = []
        self.answers = list(answers or [])
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.calls.append({"path": self.path, "headers": dict(self.headers), "body": body})
                status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, models_dir):
    with full_stack(tmp_path_factory.mktemp("hooks"), models_dir, "h1", webhook_secret=SECRET,
                    webhook_allow_private="true", webhook_backoff=0.5, webhook_attempts=3, webhook_timeout=2) as s:
        yield s


@pytest.fixture()
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_finished_job_is_posted_once_signed(stack, receiver):
    job = stack.submit(png_bytes(16, 12), scale=2, callback_url=receiver.url())
    assert job["options"]["callback_url"] == receiver.url()
    stack.wait_for(job["id"])
    wait_until(lambda: stack.job(job["id"])["webhook"], 60, "no webhook recorded")
    time.sleep(1)  # nothing more arrives
    assert len(receiver.calls) == 1
    call = receiver.calls[0]
    assert call["path"] == "/hook" and call["headers"]["Content-Type"] == "application/json"
    assert verify(SECRET, call["body"], call["headers"][SIGNATURE_HEADER])
    assert not verify("another-secret", call["body"], call["headers"][SIGNATURE_HEADER])
    payload = json.loads(call["body"])
    assert payload["type"] == "job.finished"
    assert str(payload["timestamp"]) == call["headers"][TIMESTAMP_HEADER]  # the timestamp is signed
    assert abs(payload["timestamp"] - time.time()) < 120
    assert payload["job"]["id"] == job["id"] and payload["job"]["status"] == "succeeded"
    assert payload["job"]["output"]["width"] == 32
    record = stack.job(job["id"])["webhook"]
    assert record["status"] == "delivered" and record["attempts"] == 1 and record["status_code"] == 200


def test_canceled_job_is_posted_too(stack, receiver):
    job = stack.submit(png_bytes(200, 150), tile=8, callback_url=receiver.url("/canceled"))
    stack.http.post(f"/v1/jobs/{job['id']}/cancel")
    assert stack.wait_for(job["id"])["status"] == "canceled"
    wait_until(lambda: receiver.calls, 60, "no webhook for the canceled job")
    assert json.loads(receiver.calls[0]["body"])["job"]["status"] == "canceled"


@pytest.fixture()
def flaky():
    r = Receiver(answers=[500, 302])
    yield r
    r.close()


def test_retries_with_backoff_and_no_redirects(stack, flaky):
    job = stack.submit(png_bytes(16, 12), callback_url=flaky.url())
    stack.wait_for(job["id"])
    wait_until(lambda: (stack.job(job["id"])["webhook"] or {}).get("status") == "delivered", 60,
               "the webhook was not delivered on the third attempt")
    assert [c["path"] for c in flaky.calls] == ["/hook"] * 3  # /elsewhere never asked
    record = stack.job(job["id"])["webhook"]
    assert record["attempts"] == 3 and record["status_code"] == 200
    bodies = [json.loads(c["body"]) for c in flaky.calls]
    assert all(verify(SECRET, c["body"], c["headers"][SIGNATURE_HEADER]) for c in flaky.calls)
    assert bodies[2]["timestamp"] >= bodies[0]["timestamp"]


def test_receiver_that_never_answers_well_is_given_up(stack):
    down = Receiver(answers=[503] * 10)
    try:
        job = stack.submit(png_bytes(16, 12), callback_url=down.url())
        stack.wait_for(job["id"])
        wait_until(lambda: (stack.job(job["id"])["webhook"] or {}).get("status") == "failed", 60,
                   "the webhook was not given up")
        record = stack.job(job["id"])["webhook"]
        assert record["attempts"] == 3 and record["status_code"] == 503 and "503" in record["error"]
        assert len(down.calls) == 3
    finally:
        down.close()


@pytest.mark.parametrize("url, code", [
    ("http://127.0.0.1:9/hook", "invalid_callback_url"),  # loopback
    ("http://localhost/hook", "invalid_callback_url"),  # a name that resolves to loopback
    ("http://10.1.2.3/hook", "invalid_callback_url"),  # private
    ("http://169.254.169.254/latest/meta-data", "invalid_callback_url"),  # link-local (cloud metadata)
    ("http://[::1]/hook", "invalid_callback_url"),
    ("http://[::ffff:127.0.0.1]/hook", "invalid_callback_url"),  # IPv4-mapped loopback
    ("ftp://example.com/hook", "invalid_callback_url"),
    ("http://user:pw@example.com/hook", "invalid_callback_url"),
])
def test_private_targets_are_refused_by_default(strict, url, code):
    r = strict.http.post("/v1/jobs", files={"image": ("x.png", png_bytes(8, 8))}, data={"callback_url": url})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == code


@pytest.fixture(scope="module")
def strict(stack):
    """A second API on the same Redis with the default webhook settings (private targets refused)."""
    api = ServiceStack(stack.root / "strict", stack.env["ESRGAN_MODELS_DIR"], webhook_secret=SECRET, queue="nobody")
    api.redis_port, api.env["REDIS_URL"] = stack.redis_port, stack.redis_url
    api.start_api()
    yield api
    api.stop_api()


def test_no_secret_no_webhooks(stack):
    api = ServiceStack(stack.root / "nosecret", stack.env["ESRGAN_MODELS_DIR"], webhook_allow_private="true",
                       queue="nobody")
    api.redis_port, api.env["REDIS_URL"] = stack.redis_port, stack.redis_url
    api.start_api()
    try:
        r = api.http.post("/v1/jobs", files={"image": ("x.png", png_bytes(8, 8))},
                          data={"callback_url": "http://127.0.0.1:9/hook"})
        assert r.status_code == 422 and r.json()["error"]["code"] == "webhooks_disabled"
    finally:
        api.stop_api()

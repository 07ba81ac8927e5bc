"""`esrgan serve` on the zero-setup default (embedded Redis) and `esrgan worker`, as a user runs them."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import psutil
import pytest

from api.embedded import free_port
from bench.harness import REPO, png_bytes, wait_until
from tests.helpers import clean_env


def cmdline(p: psutil.Process) -> str:
    try:
        return " ".join(p.cmdline())
    except psutil.Error:  # exited meanwhile (or a zombie until its parent reaps it)
        return ""


def run_job(base: str) -> dict:
    r = httpx.post(f"{base}/v1/jobs", files={"image": ("cat.png", png_bytes(40, 30))}, data={"scale": "2"})
    assert r.status_code == 202, r.text
    job_url = base + r.headers["location"]
    wait_until(lambda: httpx.get(job_url).json()["status"] in ("succeeded", "failed", "canceled"), 180,
               "the job did not finish")
    job = httpx.get(job_url).json()
    assert job["status"] == "succeeded", job
    return job


def test_serve_starts_embedded_redis_and_serves_a_job(tmp_path, models_dir):
    port, data = free_port(), tmp_path / "data"
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "esrgan", "serve", "--port", str(port), "--models-dir",
                             str(models_dir), "--data-dir", str(data)], cwd=tmp_path, env=clean_env(),
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        def ready():
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, 180, "esrgan serve did not become ready")
        children = psutil.Process(proc.pid).children(recursive=True)
        names = " ".join(cmdline(c) for c in children)
        assert "redis-server" in names and "worker" in names

        job = run_job(base)
        result = httpx.get(f"{base}/v1/jobs/{job['id']}/result")
        assert result.status_code == 200 and 'filename="cat_x2.png"' in result.headers["content-disposition"]
        assert (data / "generated" / f"{job['id']}.png").read_bytes() == result.content
        assert (data / "redis").is_dir()  # the embedded Redis keeps its data under the data folder

        # A worker that dies is started again, and serves the next job.
        worker = next(c for c in children if "worker" in cmdline(c))
        os.killpg(worker.pid, signal.SIGKILL)
        wait_until(lambda: any("worker" in cmdline(c) and c.pid != worker.pid
                               for c in psutil.Process(proc.pid).children()), 30, "the worker was not restarted")
        assert run_job(base)["status"] == "succeeded"
        children = psutil.Process(proc.pid).children(recursive=True)

        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(90) == 0
        gone, alive = psutil.wait_procs(children, timeout=30)
        assert not alive, f"left running: {[cmdline(p) for p in alive]}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@pytest.mark.parametrize("argv, message", [
    (["serve", "--workers", "-1"], "--workers"),
    (["serve", "--port", "70000"], "--port"),
    (["worker", "--concurrency", "0"], "--concurrency"),
])
def test_bad_arguments_exit_with_a_message(argv, message):
    r = subprocess.run([sys.executable, "-m", "esrgan", *argv], env=clean_env(), cwd=REPO, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode != 0 and message in r.stderr


def test_the_api_does_not_import_tensorflow():
    code = ("import sys; from api.app import create_app; from api import cli; create_app(); "
            "bad = [m for m in ('tensorflow', 'keras', 'torch') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], env=clean_env(), cwd=REPO, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr

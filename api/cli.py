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
    from worker.cli import apply_overrides

    if args.workers is not None and args.workers < 0:
        raise SystemExit("esrgan serve: --workers must be 0 or more")
    if not 0 < args.port < 65536:
        raise SystemExit(f"esrgan serve: bad --port {args.port}")
    apply_overrides(models_dir=args.models_dir and os.path.abspath(args.models_dir),
                    data_dir=args.data_dir and os.path.abspath(args.data_dir),
                    worker_concurrency=args.workers or None)

    import uvicorn

    from model.settings import get_settings

    from .embedded import EmbeddedRedis

    settings = get_settings()
    embedded = worker = None
    # SIGTERM behaves like Ctrl-C until uvicorn takes over, so a stop during start-up still cleans up.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        if not settings.redis_url:
            embedded = EmbeddedRedis(settings.data_dir.resolve() / "redis").start()
            os.environ["REDIS_URL"] = embedded.url
            get_settings.cache_clear()
            print(f"esrgan serve: embedded Redis on {embedded.url} (data in {embedded.data_dir})", flush=True)
        if args.workers != 0:
            worker = subprocess.Popen([sys.executable, "-m", "esrgan", "worker", "--loglevel", "WARNING"],
                                      start_new_session=True)
        print(f"esrgan serve: http://{args.host}:{args.port}/ (API docs at /docs)", flush=True)
        uvicorn.run("api.app:create_app", factory=True, host=args.host, port=args.port, log_level="info")
    except KeyboardInterrupt:
        pass
    finally:
        if worker is not None:
            _stop(worker)
        if embedded is not None:
            embedded.stop()
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _stop(proc: subprocess.Popen, timeout: float = 60) -> None:
    """Warm shutdown (SIGTERM) of the worker's process group; SIGKILL if it does not end in time."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

"""``esrgan worker``: one Celery worker (a main process and N job processes) consuming the job queue."""
from __future__ import annotations

import argparse
import os


def register(subparsers) -> None:
    p = subparsers.add_parser("worker", help="run a job worker (Celery) for the service",
                              description="Run a worker that takes jobs from Redis (REDIS_URL) and runs the models.")
    p.add_argument("--models-dir", help="folder of model artifacts (default: settings / ESRGAN_MODELS_DIR)")
    p.add_argument("--queue", help="queue to consume, e.g. gpu (default: settings / ESRGAN_QUEUE)")
    p.add_argument("--concurrency", type=int, help="job processes (default: settings / ESRGAN_WORKER_CONCURRENCY)")
    p.add_argument("--name", help="worker name (default: esrgan-PID@host)")
    p.add_argument("--loglevel", default="INFO")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.concurrency is not None and args.concurrency < 1:
        raise SystemExit("esrgan worker: --concurrency must be at least 1")
    from jobs.settings import apply_overrides

    apply_overrides(models_dir=args.models_dir and os.path.abspath(args.models_dir), queue=args.queue,
                    worker_concurrency=args.concurrency)
    from jobs.settings import get_settings
    from worker.tasks import app

    settings = get_settings()
    app.worker_main([
        "worker", f"--loglevel={args.loglevel}", f"--queues={settings.queue}",
        f"--concurrency={settings.worker_concurrency}", "--pool=prefork",
        f"--hostname={args.name or f'esrgan-{os.getpid()}@%h'}", "--without-gossip", "--without-mingle",
    ])
    return 0

"""``esrgan upscale --server URL``: the command's plan run by an ESRGAN service.

Same inputs, flags and output tree as local mode (``esrgan.upscale.plan``); each file (image, animation or
video: the service tells them apart and checks a clip's limits) is one job, at most
``--jobs`` in flight, a tqdm bar over the files fed by the jobs' progress. A result is downloaded, then its
job deleted from the service. Needs only the base install (httpx, Pillow).
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from tqdm import tqdm

from model.errors import ESRGANError, InvalidOption
from model.options import JobOptions

from .client import Client, JobFailed, ServiceError, Unavailable, Unauthorized


class Stopped(Exception):
    """Ctrl-C: the remaining jobs are canceled."""


class Batch:
    """The planned jobs of one command (``.source``, ``.target``, ``.format``) and their progress."""

    def __init__(self, client: Client, options: JobOptions, jobs: list, bar: tqdm):
        self.client, self.jobs, self.bar = client, jobs, bar
        self.options = options.model_dump(exclude_defaults=True, exclude={"format"})  # as sent: set ones only
        self.fractions = [0.0] * len(jobs)
        self.models: set[tuple[str, int]] = set()
        self.lock, self.stop = threading.Lock(), threading.Event()

    def _advance(self, index: int, fraction: float) -> None:
        with self.lock:
            self.fractions[index] = fraction
            self.bar.n = round(sum(self.fractions), 3)
            self.bar.refresh()

    def run_one(self, index: int) -> Path:
        job = self.jobs[index]
        if self.stop.is_set():
            raise Stopped()
        remote = self.client.submit(job.source.read_bytes(), filename=job.source.name, format=job.format,
                                    **self.options)
        try:
            def progress(j) -> None:
                if self.stop.is_set():
                    raise Stopped()
                self._advance(index, 0.99 * j.fraction)  # the last bit is the download

            remote.wait(progress=progress)
            job.target.parent.mkdir(parents=True, exist_ok=True)
            remote.download(job.target)
            self._advance(index, 1.0)
            with self.lock:
                self.models.add((remote.data["model"], remote.data["options"]["scale"]))
            return job.target
        finally:
            try:  # the result is here now (or failed, or Ctrl-C: deleting cancels): leave nothing behind
                remote.delete()
            except ServiceError:
                pass


def run_remote(args, options: JobOptions, jobs: list,
               failures: list[tuple[Path, str]]) -> tuple[list[Path], str, float]:
    """Have the service at ``args.server`` do ``jobs``; returns the files written, which models on which
    service wrote them, and the seconds it took."""
    if args.precision or args.models_dir:
        raise InvalidOption("--precision and --models-dir are the service's settings; they do not apply "
                            "with --server")
    client = Client(args.server, api_key=args.api_key)
    try:
        client.models()  # one clear error for a wrong address or key, instead of one per file
    except (Unavailable, Unauthorized) as exc:
        client.close()
        raise ESRGANError(f"cannot use the service at {args.server}: {exc.message}") from None
    start, written = time.perf_counter(), []
    with client, tqdm(total=len(jobs), unit="image", desc=args.server, disable=None,
                      bar_format="{l_bar}{bar}| {n:.1f}/{total} [{elapsed}<{remaining}]") as bar:
        batch = Batch(client, options, jobs, bar)
        pool = ThreadPoolExecutor(max_workers=args.jobs, thread_name_prefix="esrgan-job")
        futures = {pool.submit(batch.run_one, i): job for i, job in enumerate(jobs)}
        try:
            for future in as_completed(futures):
                try:
                    written.append(future.result())
                except JobFailed as exc:
                    error = exc.job.error or {}
                    failures.append((futures[future].source, error.get("message", exc.job.status)))
                except ServiceError as exc:
                    failures.append((futures[future].source, exc.message))
                except (ESRGANError, OSError) as exc:  # a bad file must not stop the batch
                    failures.append((futures[future].source, str(exc)))
        except KeyboardInterrupt:
            batch.stop.set()  # running jobs cancel themselves at their next poll
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown()
    models = ", ".join(f"{name} (x{scale})" for name, scale in sorted(batch.models)) or "-"
    return written, f"{models} on {args.server}", time.perf_counter() - start

"""Helpers the test files share: the `esrgan` command as a user runs it, and the API's error shape."""
from __future__ import annotations

import os
import subprocess
import sys

import httpx

from bench.harness import REPO

ROOT = REPO


def clean_env() -> dict:
    """The environment without ESRGAN_ settings or REDIS_URL, importing this tree, on the CPU."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESRGAN_") and k != "REDIS_URL"}
    env.update(PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    for name in ("ESRGAN_OFFICIAL_MODELS_DIR", "ESRGAN_COMPILED_CACHE_DIR"):  # conftest's, not the user's caches
        if name in os.environ:
            env[name] = os.environ[name]
    return env


def esrgan_env(env: dict | None = None) -> dict:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO), **(env or {})}


def esrgan(*args, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m esrgan ARGS`` to the end; text output captured."""
    return subprocess.run([sys.executable, "-m", "esrgan", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env=esrgan_env(env))


def start_esrgan(*args, env: dict | None = None, **kw) -> subprocess.Popen:
    """Start ``python -m esrgan ARGS``; stdout and stderr together on a pipe."""
    return subprocess.Popen([sys.executable, "-m", "esrgan", *map(str, args)], cwd=REPO, env=esrgan_env(env),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def assert_error(r: httpx.Response, status: int, code: str | None = None) -> dict:
    """The response is the API's error shape with this status (and code); returns the error object."""
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["message"]
    if code:
        assert error["code"] == code, error
    return error

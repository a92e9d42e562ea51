"""docker-compose.yml and the Dockerfile, checked as far as a machine without a Docker engine can.

What is checked: the file parses and interpolates as compose would; every command of the
project's image is a real entry point whose every option the real command accepts (Celery's
click parser for worker and beat, Tornado's option list for Flower); every queue a workflow
routes to has a worker; cleanup is a dry run unless told otherwise; Flower cannot start without
basic auth; Redis runs with the given options (started here from the same arguments); Prometheus
scrapes the published metrics port; the Dockerfile installs the project with its own
dependencies, and the files it copies build a wheel that declares them.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
import shlex
import shutil
import socket
import subprocess
import time
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from resoto_tasks import runtime
from resoto_tasks.celery_app import CORE_TASK_MODULES, WORKER_TASK_MODULES
from resoto_tasks.routing import QUEUES
from tests.support.redis_server import free_port, redis_binary
from tests.support.workers import ROOT, VENV_BIN

COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PROJECT_SERVICES = {"worker-collect", "worker-cleanup", "worker-metrics", "worker-workflow", "beat", "flower", "web"}
AUTH_ENV = {"FLOWER_BASIC_AUTH": "admin:secret", "RESOTO_WEB_TOKEN": "t0ken"}

pytestmark = pytest.mark.xdist_group("compose")  # one process: each command line is checked once


# ---------------------------------------------------------------------------------------------
# Compose's variable interpolation (the subset the file uses, with compose's semantics)
# ---------------------------------------------------------------------------------------------


class MissingVariable(Exception):
    pass


_VAR = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate_text(text: str, env: dict[str, str]) -> str:
    def one(m: re.Match[str]) -> str:
        if m.group("escaped"):
            return "$"
        name = m.group("name") or m.group("bare")
        op, arg = m.group("op"), m.group("arg") or ""
        value = env.get(name)
        if op is None:
            return value or ""
        empty_counts = op.startswith(":")
        missing = value is None or (empty_counts and value == "")
        kind = op[-1]
        if kind == "-":
            return arg if missing else str(value)
        if kind == "?":
            if missing:
                raise MissingVariable(f"required variable {name} is missing a value: {arg}")
            return str(value)
        return "" if missing else arg  # "+"

    return _VAR.sub(one, text)


def interpolate(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate_text(node, env)
    if isinstance(node, list):
        return [interpolate(v, env) for v in node]
    if isinstance(node, dict):
        return {k: interpolate(v, env) for k, v in node.items()}
    return node


def compose(env: dict[str, str] | None = None) -> dict[str, Any]:
    raw = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(raw, dict)
    return interpolate(raw, env if env is not None else AUTH_ENV)  # type: ignore[no-any-return]


def command_of(service: dict[str, Any]) -> list[str]:
    cmd = service["command"]
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


# ---------------------------------------------------------------------------------------------
# The real commands' own option lists
# ---------------------------------------------------------------------------------------------


@functools.cache
def celery_help(sub: str) -> str:
    if sub == "flower":  # Flower's options are Tornado options, listed by Tornado's own --help
        args = [str(VENV_BIN / "celery"), "-A", "resoto_tasks", "flower", "--", "--help"]
    else:
        args = [str(VENV_BIN / "celery"), "-A", "resoto_tasks", sub, "--help"]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-1000:]
    return done.stdout + done.stderr


def option_names(argv: list[str]) -> list[str]:
    """``--port=5555`` -> ``--port``; short options as they are; values are not options."""
    return [a.split("=", 1)[0] for a in argv if a.startswith("-") and not re.fullmatch(r"-?\d+(\.\d+)?", a)]


def in_help(option: str, text: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text) is not None


def check_real_command(argv: list[str]) -> None:
    """Fail unless ``argv`` is a real entry point of the image whose options all exist.

    Checked once per command line and process: both compose files run the same commands (the
    module's tests share one xdist process for it).
    """
    _check_command_line(tuple(argv))


@functools.cache
def _check_command_line(line: tuple[str, ...]) -> None:
    argv = list(line)
    program = argv[0]
    if program == "celery":
        assert argv[1:3] == ["-A", "resoto_tasks"], argv
        sub, rest = argv[3], argv[4:]
        assert sub in ("worker", "beat", "flower"), argv
        text = celery_help(sub)
        if sub == "flower":
            for option in option_names(rest):
                assert in_help(option.replace("_", "-"), text), f"flower has no option {option}"
            return
        for option in option_names(rest):
            assert in_help(option, text), f"celery {sub} has no option {option}"
        # and Celery's own parser accepts the whole line (unknown options fail before --help acts)
        done = subprocess.run(
            [str(VENV_BIN / "celery"), *argv[1:], "--help"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, f"{argv}: {done.stderr[-800:]}"
    elif program == "resoto-tasks":
        done = subprocess.run(
            [str(VENV_BIN / "resoto-tasks"), *argv[1:], "--help"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, f"{argv}: {done.stderr[-800:]}"
    else:
        pytest.fail(f"{argv[0]} is not an entry point of the resoto-tasks image")


# ---------------------------------------------------------------------------------------------
# docker-compose.yml
# ---------------------------------------------------------------------------------------------


def test_compose_parses_with_every_service_of_the_stack() -> None:
    services = compose()["services"]
    assert set(services) == PROJECT_SERVICES | {"redis", "prometheus"}
    for name in PROJECT_SERVICES:
        assert services[name]["build"]["context"] == "."
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
        assert services[name]["environment"]["RESOTO_REDIS_URL"] == "redis://redis:6379/0"


@pytest.mark.parametrize("name", sorted(PROJECT_SERVICES))
def test_every_service_command_is_a_real_entry_point_with_real_options(name: str) -> None:
    check_real_command(command_of(compose()["services"][name]))


def test_every_queue_a_workflow_routes_to_has_a_worker() -> None:
    consumed: set[str] = set()
    for service in compose()["services"].values():
        argv = command_of(service) if "command" in service else []
        if argv[:4] == ["celery", "-A", "resoto_tasks", "worker"]:
            consumed.update(argv[argv.index("-Q") + 1].split(","))
    assert set(QUEUES) <= consumed, f"no worker for {set(QUEUES) - consumed}"


def test_the_cleanup_worker_is_a_dry_run_unless_told_otherwise() -> None:
    default = command_of(compose()["services"]["worker-cleanup"])
    assert {"--cleanup-expired", "--cleanup", "--cleanup-dry-run"} <= set(default)
    told = {**AUTH_ENV, "RESOTO_CLEANUP_FLAGS": "--cleanup-expired --cleanup --cleanup-max 500"}
    deleting = command_of(compose(told)["services"]["worker-cleanup"])
    assert "--cleanup-dry-run" not in deleting
    assert deleting[-4:] == ["--cleanup-expired", "--cleanup", "--cleanup-max", "500"]
    check_real_command(deleting)


def test_flower_does_not_start_without_basic_auth() -> None:
    with pytest.raises(MissingVariable, match="FLOWER_BASIC_AUTH"):
        compose({})
    flower = compose()["services"]["flower"]
    assert flower["environment"]["FLOWER_BASIC_AUTH"] == "admin:secret"
    assert flower["environment"]["RESOTO_REDIS_URL"] == "redis://redis:6379/0"  # merged, not replaced
    # Flower reads FLOWER_<OPTION> from its environment: the option must exist
    assert in_help("--basic-auth", celery_help("flower"))


def test_the_web_console_does_not_start_without_its_token_and_publishes_8900() -> None:
    with pytest.raises(MissingVariable, match="RESOTO_WEB_TOKEN"):
        compose({"FLOWER_BASIC_AUTH": "admin:secret"})
    web = compose()["services"]["web"]
    assert web["environment"]["RESOTO_WEB_TOKEN"] == "t0ken"
    assert web["environment"]["RESOTO_REDIS_URL"] == "redis://redis:6379/0"  # merged, not replaced
    argv = command_of(web)
    assert argv[argv.index("--host") + 1] == "0.0.0.0"
    assert "8900:8900" in web["ports"]


def test_the_metrics_worker_publishes_9955_and_prometheus_scrapes_it() -> None:
    services = compose()["services"]
    metrics = services["worker-metrics"]
    argv = command_of(metrics)
    assert argv[argv.index("--metrics-port") + 1] == "9955"
    assert "9955:9955" in metrics["ports"]
    prometheus = services["prometheus"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in prometheus["volumes"]}
    config_path = ROOT / mounts["/etc/prometheus/prometheus.yml"]
    assert config_path == ROOT / "deploy" / "prometheus.yml"
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    config = yaml.safe_load(config_path.read_text())
    targets = {t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    assert "worker-metrics:9955" in targets


@pytest.mark.parametrize("password", ["", "s3cret"])
def test_redis_starts_from_the_compose_arguments_with_aof_noeviction_and_optional_password(
    password: str, tmp_path: Path
) -> None:
    service = compose({**AUTH_ENV, "REDIS_PASSWORD": password})["services"]["redis"]
    assert service["image"] == "redis:7"
    assert any(v.endswith(":/data") for v in service["volumes"])
    argv = command_of(service)
    assert argv[0] == "redis-server"
    port = free_port()
    # the image's working directory is /data; here a temp dir, on loopback, logging to a file
    local = [
        redis_binary(),
        *argv[1:],
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(tmp_path),
        "--logfile",
        str(tmp_path / "redis.log"),
    ]
    proc = subprocess.Popen(local, stdin=subprocess.DEVNULL)
    client = redis.Redis(port=port, password=password or None, decode_responses=True, socket_connect_timeout=1)
    try:
        for _ in range(200):
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                assert proc.poll() is None, (tmp_path / "redis.log").read_text()
                time.sleep(0.02)
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:  # a client without a password
            raw.sendall(b"PING\r\n")
            answer = raw.recv(100)
        assert answer.startswith(b"-NOAUTH") if password else answer == b"+PONG\r\n"
    finally:
        client.close()
        proc.terminate()
        proc.wait(10)


# ---------------------------------------------------------------------------------------------
# Dockerfile
# ---------------------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    lines: list[str] = []
    current = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        lines.append(current + line)
        current = ""
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1] if " " in ln else "") for ln in lines]


def copies() -> list[tuple[list[str], str]]:
    found = []
    for instruction, args in dockerfile_instructions():
        if instruction == "COPY":
            parts = shlex.split(args)
            assert not any(p.startswith("--from") for p in parts), "single-stage build expected"
            found.append((parts[:-1], parts[-1]))
    return found


def ignored(relative: str, patterns: list[str]) -> bool:
    parts = relative.split("/")
    for pattern in patterns:
        bare = pattern.removeprefix("**/")
        if fnmatch.fnmatch(relative, pattern) or any(fnmatch.fnmatch(p, bare) for p in parts):
            return True
    return False


def dockerignore() -> list[str]:
    return [ln.strip() for ln in DOCKERIGNORE.read_text().splitlines() if ln.strip() and not ln.startswith("#")]


def test_the_dockerfile_installs_the_project_with_its_own_dependencies() -> None:
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    copied = {src.rstrip("/") for sources, _ in copies() for src in sources}
    assert "pyproject.toml" in copied
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages <= copied, f"packages not copied into the image: {packages - copied}"
    readme = pyproject["project"].get("readme")
    if isinstance(readme, str):
        assert readme in copied, "pyproject names a readme the image does not have"
    for src in copied:
        assert (ROOT / src).exists(), f"COPY {src}: no such file"
        assert not ignored(src, dockerignore()), f"COPY {src} is excluded by .dockerignore"
    installs = [args for ins, args in instructions if ins == "RUN" and "pip install" in args]
    assert installs, "no pip install"
    assert re.search(r"pip install \"?\.(\[[a-z,]*flower[a-z,]*\])?\"?(\s|$)", installs[0]), installs[0]
    assert "-e " not in installs[0], "the image installs the project, not an editable link"
    cmd = next(args for ins, args in instructions if ins == "CMD")
    check_real_command(yaml.safe_load(cmd))


@pytest.mark.slow
def test_what_the_dockerfile_copies_builds_a_wheel_declaring_every_dependency(tmp_path: Path) -> None:
    """Build exactly the image's source tree (COPY + .dockerignore) into a wheel, as pip install does."""
    context = tmp_path / "app"
    context.mkdir()
    patterns = dockerignore()
    for sources, dest in copies():  # relative to WORKDIR; a directory's contents go into dest
        for src in sources:
            origin = ROOT / src.rstrip("/")
            if origin.is_dir():
                for path in origin.rglob("*"):
                    if path.is_file() and not ignored(path.relative_to(ROOT).as_posix(), patterns):
                        out = context / dest / path.relative_to(origin)
                        out.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(path, out)
            else:
                out = context / dest / origin.name if dest.endswith("/") else context / dest
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, out)
    done = subprocess.run(
        [str(VENV_BIN / "pip"), "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(context)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={**os.environ, "PIP_NO_INPUT": "1"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("resoto_tasks-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = zf.read(meta_name).decode()
        entry_points = zf.read(meta_name.replace("METADATA", "entry_points.txt")).decode()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def norm(req: str) -> str:
        return re.sub(r"\s+", "", req.split(";", maxsplit=1)[0]).lower().replace("_", "-")

    declared = {
        norm(line.removeprefix("Requires-Dist:"))
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:") and "extra ==" not in line
    }
    assert {norm(d) for d in pyproject["dependencies"]} <= declared
    flower = {
        norm(line.removeprefix("Requires-Dist:"))
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:") and 'extra == "flower"' in line
    }
    assert {norm(d) for d in pyproject["optional-dependencies"]["flower"]} <= flower
    assert "resoto-tasks = resoto_tasks.cli.main:main" in entry_points
    modules = [
        *CORE_TASK_MODULES,
        *WORKER_TASK_MODULES,
        str(runtime.app().conf.beat_scheduler).split(":")[0],
        "resoto_tasks.celery_app",
        "resoto_tasks.cli.main",
    ]
    for module in modules:
        stem = module.replace(".", "/")
        assert f"{stem}.py" in names or f"{stem}/__init__.py" in names, f"{module} is not in the image"


# ---------------------------------------------------------------------------------------------
# deploy/docker-compose.sentinel.yml: the same stack on Redis Sentinel
# ---------------------------------------------------------------------------------------------

SENTINEL_COMPOSE = ROOT / "deploy" / "docker-compose.sentinel.yml"


def sentinel_compose() -> dict[str, Any]:
    raw = yaml.safe_load(SENTINEL_COMPOSE.read_text())
    assert isinstance(raw, dict)
    return interpolate(raw, AUTH_ENV)  # type: ignore[no-any-return]


def test_the_sentinel_compose_has_a_primary_a_replica_three_sentinels_and_every_service() -> None:
    services = sentinel_compose()["services"]
    assert set(services) == PROJECT_SERVICES | {"redis", "redis-replica", "prometheus"} | {
        f"sentinel-{i}" for i in (1, 2, 3)
    }
    replica = command_of(services["redis-replica"])
    assert replica[replica.index("--replicaof") + 1 :][:2] == ["redis", "6379"]
    for i in (1, 2, 3):
        argv = command_of(services[f"sentinel-{i}"])
        assert argv[:2] == ["sh", "-c"] and "sentinel monitor resoto redis 6379 2" in argv[2]
        assert argv[2].rstrip().endswith("redis-server /tmp/sentinel.conf --sentinel")
    for name in PROJECT_SERVICES:
        env = services[name]["environment"]
        assert env["RESOTO_REDIS_SENTINELS"] == "sentinel-1:26379,sentinel-2:26379,sentinel-3:26379"
        assert env["RESOTO_REDIS_SENTINEL_MASTER"] == "resoto"
        check_real_command(command_of(services[name]))


def test_the_sentinel_compose_settings_are_valid_and_every_queue_has_a_worker() -> None:
    from resoto_tasks.settings import Settings

    services = sentinel_compose()["services"]
    env = services["worker-workflow"]["environment"]
    settings = Settings(**{k.removeprefix("RESOTO_").lower(): v for k, v in env.items() if v != ""})
    assert settings.redis_sentinel_master == "resoto" and settings.redis_min_replicas_ack == 1
    consumed: set[str] = set()
    for service in services.values():
        argv = command_of(service) if "command" in service else []
        if argv[:4] == ["celery", "-A", "resoto_tasks", "worker"]:
            consumed.update(argv[argv.index("-Q") + 1].split(","))
    assert set(QUEUES) <= consumed, f"no worker for {set(QUEUES) - consumed}"

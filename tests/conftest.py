"""Test session set-up: a private redis-server on a free port for the whole session.

Every test talks to this server (never the shared one on 6379). Importing ``resoto_tasks`` reads
no settings (they are read on first use), so the server is started and its URL exported when
pytest configures the session, before any test runs; worker subprocesses inherit it.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator

import pytest
import redis

from tests.support.redis_server import RedisServer
from tests.support.workers import WorkerProcess


def _start_session_server() -> RedisServer:
    """Start the private server and export its URL and the test settings."""
    server = RedisServer(appendonly=True).start()
    os.environ["RESOTO_REDIS_URL"] = server.url
    os.environ.setdefault("RESOTO_KEY_PREFIX", "rt")
    os.environ["RESOTO_SUBSCRIBER_TTL_S"] = "6"
    os.environ["RESOTO_SUPERVISOR_INTERVAL_S"] = "1"
    os.environ["RESOTO_HOOK_MODULES"] = "tests.support.hooks"
    os.environ["RESOTO_METRICS_PORT"] = "0"  # tests that serve metrics pick free ports
    for name in ("WORKFLOWS_DIR", "BROKER_URL", "RESULT_BACKEND_URL", "REDBEAT_URL", "STORE_URL"):
        os.environ.pop(f"RESOTO_{name}", None)
    return server


_SERVER: RedisServer | None = None


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    global _SERVER
    _SERVER = _start_session_server()
    # A session ended by SIGTERM (`timeout`, CI cancelling) ends as Ctrl-C does: fixtures tear down
    # and pytest_unconfigure stops the private server, which would otherwise outlive the session.
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupted)


def pytest_unconfigure(config: pytest.Config) -> None:
    global _SERVER
    if _SERVER is not None:
        _SERVER.cleanup()
        _SERVER = None


@pytest.fixture(scope="session")
def redis_server() -> RedisServer:
    assert _SERVER is not None, "the session redis-server did not start"
    return _SERVER


@pytest.fixture
def r(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture(scope="session")
def session_worker(redis_server: RedisServer) -> Iterator[WorkerProcess]:
    """One worker on every queue (prefork, as in production), shared by the session."""
    worker = WorkerProcess("collect,cleanup,metrics,workflow", concurrency=4).start()
    yield worker
    worker.stop()


@pytest.fixture
def start_worker(redis_server: RedisServer) -> Iterator[Callable[..., WorkerProcess]]:
    """Factory: start extra workers for one test; all are stopped after it."""
    started: list[WorkerProcess] = []

    def factory(queues: str, *extra: str, wait: bool = True, **kwargs: object) -> WorkerProcess:
        worker = WorkerProcess(queues, *extra, **kwargs)  # type: ignore[arg-type]
        started.append(worker)
        return worker.start(wait=wait)

    yield factory
    for worker in started:
        worker.kill()

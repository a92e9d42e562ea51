"""An isolated resoto-tasks stack on its own Redis database, driven as users drive it.

Worker options (``--cleanup``, ``--cleanup-dry-run``, caps) belong to the workers of a queue, so a
test that needs its own flags gets its own broker and store: a separate database of the session's
redis-server, its own ``celery worker`` processes, and the real ``resoto-tasks`` command. The test
reads the store and the example cloud with clients on that database.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import redis

from tests.support.cli import resoto
from tests.support.redis_server import RedisServer
from tests.support.workers import WorkerProcess

_databases = itertools.cycle(range(1, 15))  # 15 is left to in-process property tests


@dataclass
class Stack:
    url: str
    env: dict[str, str]
    client: redis.Redis
    workers: list[WorkerProcess] = field(default_factory=list)

    def worker(self, queues: str, *args: str, **env: str) -> WorkerProcess:
        w = WorkerProcess(queues, *args, env={**self.env, **env}).start()
        self.workers.append(w)
        return w

    def cli(self, *args: str) -> Any:
        return resoto(*args, env=self.env)

    def run(self, workflow: str = "collect_and_cleanup", timeout_s: float = 120) -> dict[str, Any]:
        """``resoto-tasks run WORKFLOW --wait --json --timeout TIMEOUT_S``: the final run record."""
        proc = self.cli("run", workflow, "--wait", "--json", "--timeout", str(timeout_s))
        assert proc.stdout, proc.stderr
        record: dict[str, Any] = json.loads(proc.stdout)
        record["_exit"] = proc.returncode
        return record

    def store(self) -> Any:
        from resoto_tasks.store import ResourceStore

        return ResourceStore(self.client)

    def cloud(self, **settings: Any) -> Any:
        from worker.providers.example import ExampleProvider, ExampleSettings

        values = {
            k.removeprefix("RESOTO_EXAMPLE_").lower(): v for k, v in self.env.items() if k.startswith("RESOTO_EXAMPLE_")
        }
        return ExampleProvider(ExampleSettings(**{**values, **settings}), r=self.client)


@contextmanager
def isolated_stack(server: RedisServer, **env: str) -> Iterator[Stack]:
    db = next(_databases)
    url = server.url.rsplit("/", 1)[0] + f"/{db}"
    client = redis.Redis.from_url(url, decode_responses=True)
    client.flushdb()
    stack = Stack(url=url, env={"RESOTO_REDIS_URL": url, **env}, client=client)
    try:
        yield stack
    finally:
        for w in stack.workers:
            w.stop()
        client.flushdb()
        client.close()

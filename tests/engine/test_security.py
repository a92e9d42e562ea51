"""JSON only (pickle refused), passwords in Redis URLs work and never show up in output."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from resoto_tasks import runtime
from resoto_tasks.redis_conn import client, mask_url
from resoto_tasks.routing import QUEUES
from tests.support.cli import resoto, resoto_process
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.usefixtures("session_worker")


@pytest.mark.parametrize("queue", QUEUES)
def test_a_pickle_serialized_message_is_refused_and_not_executed(queue: str) -> None:
    pickled, control = f"test:pickle:{uuid.uuid4().hex}", f"test:json:{uuid.uuid4().hex}"
    runtime.app().send_task("tests.marker", args=(pickled,), queue=queue, serializer="pickle")
    runtime.app().send_task("tests.marker", args=(control,), queue=queue, serializer="json")
    r = client()
    deadline = time.monotonic() + 15
    while not r.exists(control) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert r.exists(control), "the JSON control message was not executed"
    time.sleep(0.5)
    assert not r.exists(pickled)


def test_the_app_accepts_json_only() -> None:
    assert runtime.app().conf.accept_content == ["json"]
    assert runtime.app().conf.result_accept_content == ["json"]
    assert runtime.app().conf.task_serializer == runtime.app().conf.result_serializer == "json"


@pytest.fixture
def password_redis() -> Iterator[RedisServer]:
    server = RedisServer(password="s3cr3t-pw").start()
    yield server
    server.cleanup()


def test_a_redis_url_with_the_password_works(password_redis: RedisServer) -> None:
    proc = resoto("runs", "list", "--json", env={"RESOTO_REDIS_URL": password_redis.url})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_a_wrong_password_is_one_line_with_the_password_masked(password_redis: RedisServer) -> None:
    url = password_redis.url.replace("s3cr3t-pw", "wrong-pw")
    proc = resoto("runs", "list", env={"RESOTO_REDIS_URL": url})
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "authentication failed" in proc.stderr
    assert "wrong-pw" not in proc.stderr and "s3cr3t" not in proc.stderr
    assert "***" in proc.stderr


def test_an_unreachable_redis_is_one_line_naming_the_url() -> None:
    proc = resoto_process("run", "collect", env={"RESOTO_REDIS_URL": "redis://:hunter2@127.0.0.1:1/0"})
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "cannot reach Redis at redis://:***@127.0.0.1:1/0" in proc.stderr
    assert "hunter2" not in proc.stderr + proc.stdout


def test_mask_url_hides_passwords_only() -> None:
    assert mask_url("redis://:pw@h:1/0") == "redis://:***@h:1/0"
    assert mask_url("rediss://user:pw@h:6380/2?ssl_cert_reqs=required") == (
        "rediss://user:***@h:6380/2?ssl_cert_reqs=required"
    )
    assert mask_url("redis://h:1/0") == "redis://h:1/0"

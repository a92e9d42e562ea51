"""Bad ``RESOTO_*`` settings: one line per problem naming the variable, exit 2, no secret printed."""

from __future__ import annotations

import pytest

from resoto_tasks.urls import check_redis_url, mask_url
from tests.support.workers import resoto

BAD_SETTINGS = [
    ({"RESOTO_REDIS_URL": "http://:hunter2@localhost"}, "RESOTO_REDIS_URL: http://:***@localhost is not a Redis URL"),
    ({"RESOTO_REDIS_URL": "redis://[bad"}, "RESOTO_REDIS_URL: not a URL"),
    ({"RESOTO_REDIS_URL": "redis://:hunter2@localhost:99999/1"}, "redis://:***@localhost:99999/1: the port must be"),
    ({"RESOTO_REDIS_URL": "redis://localhost:6379/abc"}, "the database 'abc' is not a number"),
    ({"RESOTO_BROKER_URL": "redis://:hunter2@/1"}, "RESOTO_BROKER_URL: redis://:***@/1: no host"),
    ({"RESOTO_SUBSCRIBER_TTL_S": "abc"}, "RESOTO_SUBSCRIBER_TTL_S: Input should be a valid number"),
    ({"RESOTO_TIMEZONE": "Mars/Base"}, "RESOTO_TIMEZONE: unknown time zone 'Mars/Base'"),
    ({"RESOTO_SCHEDULE_OVERRIDES": "notjson"}, "RESOTO_SCHEDULE_OVERRIDES: not JSON"),
    ({"RESOTO_SCHEDULE_OVERRIDES": '["x"]'}, "RESOTO_SCHEDULE_OVERRIDES: expected a JSON object"),
    (
        {"RESOTO_SCHEDULE_OVERRIDES": '{"collect_and_cleanup": "bad cron"}'},
        "collect_and_cleanup: 'bad cron' is neither a 5-field cron expression nor an interval",
    ),
    (
        {"RESOTO_SCHEDULE_OVERRIDES": '{"nightly": "1h"}'},
        "RESOTO_SCHEDULE_OVERRIDES: 'nightly' is not a built-in workflow",
    ),
]


@pytest.mark.parametrize(("env", "expected"), BAD_SETTINGS, ids=[next(iter(e)) for e, _ in BAD_SETTINGS])
def test_a_bad_setting_is_one_line_naming_the_variable(env: dict[str, str], expected: str) -> None:
    proc = resoto("workflows", "list", env=env)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("error: ") and expected in proc.stderr, proc.stderr
    assert "hunter2" not in proc.stderr + proc.stdout


@pytest.mark.parametrize("command", [("run", "collect"), ("up", "--once"), ("runs", "list", "--json")])
def test_every_kind_of_command_reports_a_bad_setting_the_same_way(command: tuple[str, ...]) -> None:
    proc = resoto(*command, env={"RESOTO_REDIS_URL": "redis://:hunter2@localhost:6379/abc"})
    assert proc.returncode == 2, proc.stderr
    expected = "RESOTO_REDIS_URL: redis://:***@localhost:6379/abc: the database 'abc' is not a number"
    assert proc.stderr == f"error: {expected}\n"
    assert proc.stdout == ""


def test_redis_urls_that_redis_py_accepts_pass() -> None:
    for url in (
        "redis://localhost",
        "redis://localhost:6379/0",
        "redis://:pw@h:1/15",
        "rediss://user:pw@h:6380/2?ssl_cert_reqs=required",
        "unix:///run/redis.sock?db=1",
    ):
        assert check_redis_url(url) == url


def test_a_bad_port_still_has_its_password_masked() -> None:
    assert mask_url("redis://:pw@h:99999/0") == "redis://:***@h:99999/0"

"""Bad ``RESOTO_*`` settings: one line per problem naming the variable, exit 2, no secret printed."""

from __future__ import annotations

import pytest

from resoto_tasks.urls import check_redis_url, mask_url
from tests.support.cli import resoto

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
        {"RESOTO_REDIS_SENTINELS": "127.0.0.1:26379,nohost", "RESOTO_REDIS_SENTINEL_MASTER": "m"},
        "RESOTO_REDIS_SENTINELS: 'nohost' is not host:port",
    ),
    (
        {"RESOTO_REDIS_SENTINELS": "127.0.0.1:26379"},
        "RESOTO_REDIS_SENTINEL_MASTER: required with RESOTO_REDIS_SENTINELS",
    ),
    (
        {"RESOTO_REDIS_URL": "amqp://guest:hunter2@localhost:5672/"},
        "RESOTO_REDIS_URL: amqp://guest:***@localhost:5672/: amqp:// and amqps:// are accepted for RESOTO_BROKER_URL",
    ),
    ({"RESOTO_BROKER_URL": "http://:hunter2@h/"}, "RESOTO_BROKER_URL: http://:***@h/ is not a broker URL"),
    ({"RESOTO_BROKER_QUORUM_QUEUES": "1"}, "RESOTO_BROKER_QUORUM_QUEUES: only for a RabbitMQ broker"),
    ({"RESOTO_REDIS_MIN_REPLICAS_TIMEOUT_S": "0.0001"}, "RESOTO_REDIS_MIN_REPLICAS_TIMEOUT_S: Input should be greater"),
    (
        {"RESOTO_REDIS_MIN_REPLICAS_TIMEOUT_S": "30"},
        "RESOTO_REDIS_MIN_REPLICAS_TIMEOUT_S: Input should be less than 30",
    ),
    (
        {
            "RESOTO_REDIS_URL": "rediss://:hunter2@primary:6380/0",
            "RESOTO_REDIS_SENTINELS": "127.0.0.1:26379",
            "RESOTO_REDIS_SENTINEL_MASTER": "m",
        },
        "RESOTO_REDIS_URL: TLS (rediss://) through RESOTO_REDIS_SENTINELS is not supported yet",
    ),
    (
        {"RESOTO_REDIS_MIN_REPLICAS_ACK": "-1"},
        "RESOTO_REDIS_MIN_REPLICAS_ACK: Input should be greater than or equal to 0",
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


def test_sentinel_settings_map_every_role_to_its_library_and_mask_the_passwords() -> None:
    from resoto_tasks.celery_app import make_config
    from resoto_tasks.sentinel import SentinelTarget
    from resoto_tasks.settings import Settings

    settings = Settings(
        redis_url="redis://:hunter2@ignored:6379/3",
        redis_sentinels=["10.0.0.1:26379", "10.0.0.2:26380"],
        redis_sentinel_master="prod",
        redis_sentinel_password="s3cret",
    )
    config = make_config(settings)
    assert config["broker_url"] == "sentinel://:hunter2@10.0.0.1:26379/3;sentinel://:hunter2@10.0.0.2:26380/3"
    assert config["broker_transport_options"]["master_name"] == "prod"
    assert config["broker_transport_options"]["sentinel_kwargs"]["password"] == "s3cret"
    assert config["result_backend"].startswith("resoto_tasks.result_backend:SentinelResultBackend+sentinel://")
    assert config["result_backend_transport_options"]["master_name"] == "prod"
    assert config["redbeat_redis_url"].startswith("redis-sentinel://")
    options = config["redbeat_redis_options"]
    assert options["service_name"] == "prod" and options["db"] == 3 and options["password"] == "hunter2"
    assert options["sentinels"] == [["10.0.0.1", 26379], ["10.0.0.2", 26380]]
    assert config["task_publish_retry_policy"]["max_retries"] >= settings.redis_failover_wait_s
    target = SentinelTarget.of(settings)
    assert target is not None
    assert "hunter2" not in target.where() and "s3cret" not in target.where()
    assert "s3cret" not in repr(settings)


def test_a_worker_that_moves_to_the_next_sentinel_url_keeps_the_guarded_transport() -> None:
    """kombu switches to the next URL of the failover list with the transport its scheme names;
    with kombu's own, the next failover ended the worker (the ``hostname`` error)."""
    from kombu import Connection

    from resoto_tasks.broker_transport import SentinelTransport
    from resoto_tasks.celery_app import make_config
    from resoto_tasks.settings import Settings

    settings = Settings(redis_sentinels=["127.0.0.1:1", "127.0.0.1:2"], redis_sentinel_master="prod")
    config = make_config(settings)
    conn = Connection(config["broker_url"], transport=config["broker_transport"])
    assert isinstance(conn.transport, SentinelTransport)
    conn.switch(conn.alt[1])
    assert isinstance(conn.transport, SentinelTransport)


def test_a_rabbitmq_broker_gets_durable_queues_and_publisher_confirms() -> None:
    from resoto_tasks.celery_app import make_config
    from resoto_tasks.routing import QUEUES
    from resoto_tasks.settings import Settings

    config = make_config(Settings(broker_url="amqps://u:pw@mq:5671/prod", broker_quorum_queues=True))
    assert config["broker_url"] == "amqps://u:pw@mq:5671/prod"
    assert config["broker_transport_options"] == {"confirm_publish": True}
    assert [q.name for q in config["task_queues"]] == list(QUEUES)
    assert all(q.durable and q.queue_arguments == {"x-queue-type": "quorum"} for q in config["task_queues"])
    assert config["task_create_missing_queue_type"] == "quorum"  # a hook's own queue too
    assert config["result_backend"].startswith("resoto_tasks.result_backend:ResultBackend+redis://")

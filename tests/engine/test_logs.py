"""Log lines for operators: run and step on the line, JSON for shippers, no passwords."""

from __future__ import annotations

import json
import logging
import sys

from resoto_tasks.logs import JsonFormatter, PlainFormatter


def _record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("resoto_tasks.engine", logging.INFO, __file__, 1, message, args, None)


def test_json_lines_lift_run_and_step_into_fields() -> None:
    line = JsonFormatter().format(_record("run=%s step=%s done (%s)", "20261126T-abc", "collect", "callback"))
    doc = json.loads(line)
    assert doc["run"] == "20261126T-abc"
    assert doc["step"] == "collect"
    assert doc["level"] == "info"
    assert doc["message"] == "run=20261126T-abc step=collect done (callback)"


def test_urls_in_log_lines_are_masked_in_both_formats() -> None:
    record = _record("cannot reach %s", "redis://:hunter2@db.internal:6379/0")
    for formatter in (JsonFormatter(), PlainFormatter()):
        line = formatter.format(record)
        assert "hunter2" not in line
        assert "redis://:***@db.internal:6379/0" in line


def test_sentinel_lists_amqp_urls_and_tracebacks_are_masked_too() -> None:
    sentinels = "sentinel://:hunter2@s1:26379/0;sentinel://:hunter2@s2:26379/0"
    record = _record("broker %s, results %s", sentinels, "amqp://guest:hunter2@mq:5672/prod")
    try:
        raise ConnectionError("cannot reach redis-sentinel://:hunter2@s3:26379/0")
    except ConnectionError:
        record.exc_info = sys.exc_info()
    for formatter in (JsonFormatter(), PlainFormatter()):
        line = formatter.format(record)
        assert "hunter2" not in line, line
        assert "sentinel://:***@s1:26379/0;sentinel://:***@s2:26379/0" in line
        assert "amqp://guest:***@mq:5672/prod" in line
        assert "redis-sentinel://:***@s3:26379/0" in line


def test_plain_lines_stay_on_one_line() -> None:
    assert "\n" not in PlainFormatter().format(_record("a\nb"))

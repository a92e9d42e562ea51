"""Log lines for operators: run and step on the line, JSON for shippers, no passwords."""

from __future__ import annotations

import json
import logging

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


def test_plain_lines_stay_on_one_line() -> None:
    assert "\n" not in PlainFormatter().format(_record("a\nb"))

"""Log format for operators: one line per event, plain or JSON (``RESOTO_LOG_JSON=1``).

Our own lines carry ``run=<id> step=<name>`` in the message; the JSON form lifts those into
fields so a log shipper can index them. Connected to Celery's logging signals, so workers and
beat use it too; URLs in messages are masked.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from celery.signals import after_setup_logger, after_setup_task_logger

from resoto_tasks.redis_conn import mask_url
from resoto_tasks.settings import get_settings

_PAIR = re.compile(r"\b(run|step|workflow|subscriber)=(\S+)")
_URL = re.compile(r"\b(?:rediss?|redis-sentinel|sentinel|amqps?)://[^\s;'\"]+")
"""Every URL that may carry a password: Redis, Sentinel (kombu's and redbeat's forms) and AMQP.
A ``;``-joined failover list is masked URL by URL."""


def _clean(message: str) -> str:
    return _URL.sub(lambda m: mask_url(m.group(0)), message)


class PlainFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return _clean(super().format(record)).replace("\n", " | ")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and run/step/workflow if present."""

    def format(self, record: logging.LogRecord) -> str:
        message = _clean(record.getMessage())
        doc: dict[str, Any] = {
            "at": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "process": record.processName,
            "message": message,
        }
        doc.update(dict(_PAIR.findall(message)))
        if record.exc_info:
            doc["exception"] = _clean(self.formatException(record.exc_info))
        return json.dumps(doc, default=str)


def formatter() -> logging.Formatter:
    return JsonFormatter() if get_settings().log_json else PlainFormatter()


def _apply(logger: logging.Logger, **_: Any) -> None:
    for handler in logger.handlers:
        handler.setFormatter(formatter())


def configure_cli(level: int = logging.WARNING) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(formatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)


after_setup_logger.connect(_apply, weak=False)
after_setup_task_logger.connect(_apply, weak=False)

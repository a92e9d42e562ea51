"""The Celery app factory: JSON only, one queue per concern, acks late.

Nothing here builds an app at import: :mod:`resoto_tasks.runtime` calls :func:`create_app` when a
process first needs one (``celery -A resoto_tasks worker`` finds it as ``resoto_tasks.app``). The
core never imports ``worker/`` or ``beat/``: their task modules are named here by string and
imported by the worker at start-up, together with the user's hook modules
(``RESOTO_HOOK_MODULES``).
"""

from __future__ import annotations

import ssl
from typing import Any

from celery import Celery
from kombu import Queue

from resoto_tasks import logs  # noqa: F401 - connects the log format to Celery's logging signals
from resoto_tasks.broker_transport import SENTINEL_TRANSPORT, TRANSPORT, cover_failover_urls
from resoto_tasks.failover import publish_retry_policy
from resoto_tasks.result_backend import backend_url
from resoto_tasks.routing import QUEUES, WORKFLOW
from resoto_tasks.sentinel import SentinelTarget
from resoto_tasks.settings import Settings, get_settings
from resoto_tasks.urls import is_amqp
from resoto_tasks.worker_boot import WORKER_CLI_OPTIONS, ResotoWorkerStep

BROKER_HEALTH_CHECK_S = 5
BROKER_SOCKET_TIMEOUT_S = 30.0
CORE_TASK_MODULES = ["resoto_tasks.tasks"]
WORKER_TASK_MODULES = ["worker.collect", "worker.cleanup", "worker.metrics"]


def _ssl_options(url: str) -> dict[str, Any] | None:
    """TLS for ``rediss://`` URLs; certificates are verified unless the URL says otherwise."""
    if not url.startswith("rediss://"):
        return None
    return {"ssl_cert_reqs": ssl.CERT_REQUIRED}


def make_config(settings: Settings) -> dict[str, Any]:
    """The whole Celery configuration of ``settings``; each broker and Redis role as its library wants it."""
    sentinel = SentinelTarget.of(settings)
    config = _base_config(settings)
    config.update(_broker_config(settings, sentinel))
    config.update(_backend_config(settings, sentinel))
    config.update(_redbeat_config(settings, sentinel))
    if sentinel is not None or is_amqp(settings.broker):
        # A producer (CLI, beat, a callback) waits out a failover instead of failing its publish.
        config["task_publish_retry_policy"] = publish_retry_policy(settings.redis_failover_wait_s)
    return config


def _redis_transport(settings: Settings) -> dict[str, Any]:
    return {
        "visibility_timeout": settings.visibility_timeout_s,
        "socket_connect_timeout": 5,
        "retry_on_timeout": True,
        # A consumer whose BRPOP connection went dead without noticing (seen after a Redis
        # restart) recovers within brpop_timeout + 2 * health_check_interval: 11 s instead of
        # kombu's default 51 s; a publish on a dead connection fails after socket_timeout
        # instead of waiting forever (kombu's redis transport documents both).
        "health_check_interval": BROKER_HEALTH_CHECK_S,
        "socket_timeout": BROKER_SOCKET_TIMEOUT_S,
        "socket_keepalive": True,
    }


def _broker_config(settings: Settings, sentinel: SentinelTarget | None) -> dict[str, Any]:
    """kombu's Redis transport (plain or sentinel), or RabbitMQ with durable queues and confirms."""
    if is_amqp(settings.broker):
        arguments = {"x-queue-type": "quorum"} if settings.broker_quorum_queues else None
        return {
            "broker_url": settings.broker,
            # A publish returns only once RabbitMQ has the message (publisher confirms).
            "broker_transport_options": {"confirm_publish": True},
            "task_queues": [Queue(q, routing_key=q, durable=True, queue_arguments=arguments) for q in QUEUES],
            # Quorum queues refuse the global QoS Celery uses for prefetch; Celery detects them.
            "worker_detect_quorum_queues": True,
            # Queues declared on demand (a hook's queue of its own) get the same type as the four.
            "task_create_missing_queue_type": "quorum" if settings.broker_quorum_queues else "classic",
        }
    transport = _redis_transport(settings)
    url, kind = settings.broker, TRANSPORT
    if sentinel is not None and settings.uses_sentinel(settings.broker_url):
        url, kind = sentinel.kombu_url(), SENTINEL_TRANSPORT
        transport.update(sentinel.transport_options())
        cover_failover_urls()  # kombu's switch to the next sentinel URL keeps our transport
    return {
        "broker_url": url,
        # kombu's Redis transports with a worker that survives a dropped connection (see the module)
        "broker_transport": kind,
        "broker_transport_options": transport,
        "task_queues": [Queue(q, routing_key=q) for q in QUEUES],
    }


def _backend_config(settings: Settings, sentinel: SentinelTarget | None) -> dict[str, Any]:
    options: dict[str, Any] = {"visibility_timeout": settings.visibility_timeout_s}
    url = settings.result_backend
    if sentinel is not None and settings.uses_sentinel(settings.result_backend_url):
        url = sentinel.kombu_url()
        options.update(sentinel.transport_options())
    config: dict[str, Any] = {"result_backend": backend_url(url), "result_backend_transport_options": options}
    backend_ssl = _ssl_options(url)
    if backend_ssl:
        config["redis_backend_use_ssl"] = backend_ssl
    return config


def _redbeat_config(settings: Settings, sentinel: SentinelTarget | None) -> dict[str, Any]:
    if sentinel is not None and settings.uses_sentinel(settings.redbeat_url):
        return {
            "redbeat_redis_url": sentinel.redbeat_url(),
            "redbeat_redis_options": sentinel.redbeat_options(BROKER_SOCKET_TIMEOUT_S),
        }
    config: dict[str, Any] = {
        "redbeat_redis_url": settings.redbeat,
        "redbeat_redis_options": {"socket_connect_timeout": 5, "retry_on_timeout": True},
    }
    redbeat_ssl = _ssl_options(settings.redbeat)
    if redbeat_ssl:
        config["redbeat_redis_use_ssl"] = redbeat_ssl
    return config


def _base_config(settings: Settings) -> dict[str, Any]:
    config: dict[str, Any] = {
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "event_serializer": "json",
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "broker_connection_retry_on_startup": True,
        "result_expires": 86400,
        # A stored answer must survive a short Redis outage: the backend retries (bounded)
        # instead of failing the task, whose answer would then read as lost.
        "result_backend_always_retry": True,
        "result_backend_max_retries": 30,
        "result_backend_max_sleep_between_retries_ms": 2000,
        "result_extended": False,
        "task_track_started": False,
        "task_default_queue": WORKFLOW,
        "task_create_missing_queues": True,
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "worker_hijack_root_logger": False,
        "timezone": settings.timezone,
        "enable_utc": True,
        "include": CORE_TASK_MODULES + WORKER_TASK_MODULES + list(settings.hook_modules),
        "beat_scheduler": "beat.scheduler:ResotoScheduler",
        "beat_max_loop_interval": settings.beat_max_loop_interval_s,
        "redbeat_key_prefix": _redbeat_prefix(settings),
        "redbeat_lock_timeout": int(settings.beat_lock_timeout_s),
    }
    broker_ssl = _ssl_options(settings.broker)
    if broker_ssl:
        config["broker_use_ssl"] = broker_ssl
    return config


def _redbeat_prefix(settings: Settings) -> str:
    return f"{settings.key_prefix}:beat:"


def create_app(settings: Settings | None = None) -> Celery:
    """The app; without ``settings`` its configuration is read from ``RESOTO_*`` on first use.

    Lazily (Celery's ``add_defaults`` with a callable) so that importing ``resoto_tasks`` never
    fails: a bad ``RESOTO_*`` variable is reported where it is used, by the CLI as one line per
    problem (``ConfigurationError``), not as a traceback from an import.
    """
    celery_app = Celery("resoto_tasks")
    if settings is None:
        celery_app.add_defaults(lambda: make_config(get_settings()))
    else:
        celery_app.conf.update(make_config(settings))
    for option in WORKER_CLI_OPTIONS:
        celery_app.user_options["worker"].add(option)
    celery_app.steps["worker"].add(ResotoWorkerStep)
    return celery_app

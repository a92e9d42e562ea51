"""``/metrics`` and ``/health`` over HTTP, served by a metrics worker beside its pool.

Exposition is ``prometheus_client``'s (its WSGI app: content negotiation, OpenMetrics, gzip, the
``name[]`` filter) over a registry of our own holding one collector: the live set from Redis plus
the orchestrator's metrics, read on every scrape. The global default registry is not used, so no
per-process metrics make two workers' answers differ. ``wsgiref`` with a thread per request keeps
a slow scrape from blocking ``/health``; the server runs in a daemon thread of the worker's main
process, started by the ``on_worker_start`` hook below.

A worker serves when started with ``--metrics-port PORT``, or when it consumes the ``metrics``
queue on ``RESOTO_METRICS_PORT`` (default 9955, Resoto's); port 0 turns serving off. An explicit
port that cannot be bound stops the worker (the operator asked for it); a busy default port is
logged and the worker runs on without serving (another metrics worker on the host serves the same
values).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import redis
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from resoto_tasks import redis_conn
from resoto_tasks.routing import METRICS
from resoto_tasks.store import ResourceStore
from resoto_tasks.worker_options import WorkerOptions
from worker.metrics import live, names, orchestrator
from worker.metrics.definitions import MetricsSettings, MetricType

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def to_prometheus(family: live.Family) -> Metric:
    """A stored family as a prometheus_client family."""
    labels = list(family.labels)
    metric: GaugeMetricFamily | CounterMetricFamily
    if family.type == MetricType.counter:
        metric = CounterMetricFamily(family.name, family.help, labels=labels)
    else:
        metric = GaugeMetricFamily(family.name, family.help, labels=labels)
    for values, value in family.samples.items():  # sorted when stored
        metric.add_metric(list(values), value)
    return metric


def generation_families(generation: live.Generation | None) -> Iterator[Metric]:
    """When the live set was made, how long it took and which definitions it lacks."""
    if generation is None:
        return
    yield GaugeMetricFamily(names.GENERATED_AT, "When the served metric set was generated.", generation.generated_at)
    yield GaugeMetricFamily(
        names.GENERATE_DURATION, "How long generating the served metric set took.", generation.duration_s
    )
    failed = GaugeMetricFamily(
        names.DEFINITION_FAILED, "1 for each definition that failed (and has no samples) in the served set.",
        labels=["metric"],
    )  # fmt: skip
    for name in sorted(generation.errors):
        failed.add_metric([name], 1)
    yield failed


class ResotoCollector(Collector):
    """Yields the live set and the orchestrator's metrics, read from Redis on every scrape.

    The live set is kept in memory with the stamp it was read under (its ``_meta``, new on every
    swap): a scrape asks Redis for the stamp and reads the whole set only when it changed, which
    at thousands of accounts saves megabytes per scrape; the values are still Redis'.
    """

    def __init__(self, r: redis.Redis | None = None) -> None:
        self._r = r
        self._kept: tuple[str, list[Metric]] | None = None

    def _live(self, client: redis.Redis) -> list[Metric]:
        kept = self._kept
        if kept is not None and live.read_stamp(client) == kept[0]:
            return kept[1]
        families, generation, stamp = live.read(client)
        found = [to_prometheus(f) for f in families]
        found += generation_families(generation)
        if stamp is not None:
            self._kept = (stamp, found)
        return found

    def collect(self) -> Iterable[Metric]:
        client = self._r if self._r is not None else redis_conn.client()
        found = list(self._live(client))
        found += orchestrator.families(ResourceStore(client))
        return found  # built in full first: a Redis error fails the scrape, never truncates it


def make_registry(r: redis.Redis | None = None) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ResotoCollector(r))
    return registry


def make_app(registry: CollectorRegistry, r: redis.Redis | None = None) -> WsgiApp:
    """``/metrics`` (prometheus_client's app), ``/health`` (Redis reachable?), else 404."""
    metrics_app = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        try:
            if path == "/metrics":
                return metrics_app(environ, start_response)  # type: ignore[no-any-return]
            if path == "/health":
                (r if r is not None else redis_conn.client()).ping()
                start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
                return [b"ok\n"]
        except redis.RedisError as exc:
            log.warning("%s failed: Redis unavailable: %s", path, redis_conn.describe(exc))
            start_response("503 Service Unavailable", [("Content-Type", "text/plain; charset=utf-8")])
            return [f"redis unavailable: {redis_conn.describe(exc)}\n".encode()]
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"not found: try /metrics or /health\n"]

    return app


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Every scrape would log a line; Prometheus scrapes every 15 s."""


class MetricsServer:
    """The HTTP server and the thread it answers in."""

    def __init__(self, server: _Server, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def shutdown(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def serve(port: int, addr: str = "0.0.0.0", r: redis.Redis | None = None) -> MetricsServer:
    """Serve ``/metrics`` and ``/health`` on ``addr:port`` from a daemon thread.

    Raises:
        OSError: the port cannot be bound.
    """
    server = make_server(addr, port, make_app(make_registry(r), r), _Server, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="resoto-metrics-http", daemon=True)
    thread.start()
    return MetricsServer(server, thread)


_serving: MetricsServer | None = None


def start_for_worker(options: WorkerOptions) -> None:
    """The ``on_worker_start`` hook: serve if the options ask for it (see :func:`serve_for`)."""
    serve_for(options)


def serve_for(options: WorkerOptions) -> MetricsServer | None:
    """Serve as ``options`` ask (see the module docstring); the server, or None if not serving.

    Raises:
        OSError: an explicitly given port cannot be bound (the worker does not start).
    """
    global _serving
    settings = MetricsSettings()
    explicit = options.metrics_port is not None
    port = options.metrics_port if options.metrics_port is not None else settings.port
    if port == 0 or (not explicit and METRICS not in options.queues) or _serving is not None:
        return _serving
    addr = settings.addr
    try:
        _serving = serve(port, addr)
    except OSError as exc:
        if explicit:
            raise OSError(exc.errno, f"cannot serve metrics on {addr}:{port} (--metrics-port): {exc.strerror}") from exc
        log.warning("cannot serve metrics on the default port %s:%d, not serving: %s", addr, port, exc.strerror)
        return None
    log.info("serving /metrics and /health on %s:%d", addr, port)
    return _serving

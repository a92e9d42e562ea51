"""The metrics service: ``generate_metrics`` and the Prometheus endpoint (Resoto's resotometrics).

Importing this package (Celery's ``include`` names it: ``worker.metrics``) registers the
``resoto.generate_metrics`` task, its subscription for workers on the ``metrics`` queue, and the
worker start hook that serves ``/metrics`` and ``/health``.

* :mod:`.definitions` the built-in and user metric definitions (``RESOTO_METRICS_FILE``);
* :mod:`.generate` computes them from the store's per-account stats;
* :mod:`.live` the staging/live sets in Redis and the swap;
* :mod:`.orchestrator` the orchestrator's own metrics, computed at scrape time;
* :mod:`.server` the HTTP endpoint; :mod:`.task` the subscriber; :mod:`.keys` the Redis keys.
"""

from __future__ import annotations

from resoto_tasks.worker_options import on_worker_start
from worker.metrics import server, task

on_worker_start(server.start_for_worker)

__all__ = ["server", "task"]

"""The ``generate_metrics`` subscriber: a task on the ``metrics`` queue and its subscription.

Every worker that consumes the ``metrics`` queue holds the subscription ``generate_metrics/metrics``
(``subscriptions_for`` keeps only the queues a worker consumes); the engine sends one task per
subscription, so one of them generates and all of them serve the result (it lives in Redis).
"""

from __future__ import annotations

from typing import Final

from resoto_tasks.models import Subscription
from resoto_tasks.routing import METRICS
from resoto_tasks.subscribers import ActionContext, action_task, subscription_source
from resoto_tasks.worker_options import WorkerOptions
from worker.metrics.generate import MetricsGenerationFailed, generate

ACTION: Final = "generate_metrics"
TASK_NAME: Final = "resoto.generate_metrics"
SUBSCRIBER_ID: Final = "metrics"
TIMEOUT_S: Final = 300.0
"""Resoto's ``resotometrics.timeout``; a run takes milliseconds, the margin is for a slow Redis."""


@action_task(TASK_NAME, queue=METRICS)
def generate_metrics(ctx: ActionContext) -> dict[str, object]:
    """Compute and publish every metric for this run.

    Raises:
        MetricsGenerationFailed: some definitions failed; the others were published (the step's
            outcome is an error naming them, so the run shows it).
    """
    report = generate(run_id=ctx.run_id)
    if report.generation.errors:
        raise MetricsGenerationFailed(report.generation.errors)
    return report.summary()


@subscription_source
def metrics_subscriptions(options: WorkerOptions) -> list[Subscription]:
    """The one subscription of a metrics worker (dropped for workers not on the metrics queue)."""
    return [
        Subscription(
            action=ACTION,
            subscriber_id=SUBSCRIBER_ID,
            task=TASK_NAME,
            queue=METRICS,
            timeout_s=TIMEOUT_S,
        )
    ]

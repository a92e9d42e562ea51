"""Names of every metric resoto-tasks serves itself, so user definitions cannot collide with them.

Prometheus conventions (https://prometheus.io/docs/practices/naming/): the ``resoto_`` prefix,
base units (seconds, bytes), ``_total`` on counters. A user definition named ``x`` is served as
``resoto_x``; :mod:`worker.metrics.definitions` refuses the names below.
"""

from __future__ import annotations

from typing import Final

PREFIX: Final = "resoto_"

# The orchestrator (computed at scrape time by worker.metrics.orchestrator).
RUNS_TOTAL: Final = "resoto_runs_total"
RUN_DURATION: Final = "resoto_run_duration_seconds"
STEP_DURATION: Final = "resoto_step_duration_seconds"
SCHEDULE_DELAY: Final = "resoto_schedule_delay_seconds"
RUNS_NOT_STARTED: Final = "resoto_runs_not_started_total"
LAST_SUCCESS: Final = "resoto_last_success_timestamp_seconds"
CLEANUP_RESOURCES: Final = "resoto_cleanup_resources_total"
RESOURCES_COLLECTED: Final = "resoto_resources_collected"
COLLECT_DURATION: Final = "resoto_collect_duration_seconds"
LAST_COLLECT: Final = "resoto_last_collect_timestamp_seconds"
SUBSCRIBERS: Final = "resoto_subscribers"

# The metrics generator itself (from the live set's metadata).
GENERATED_AT: Final = "resoto_metrics_generated_timestamp_seconds"
GENERATE_DURATION: Final = "resoto_metrics_generate_duration_seconds"
DEFINITION_FAILED: Final = "resoto_metrics_definition_failed"

RESERVED: Final = frozenset(
    {
        RUNS_TOTAL,
        RUN_DURATION,
        STEP_DURATION,
        SCHEDULE_DELAY,
        RUNS_NOT_STARTED,
        LAST_SUCCESS,
        CLEANUP_RESOURCES,
        RESOURCES_COLLECTED,
        COLLECT_DURATION,
        LAST_COLLECT,
        SUBSCRIBERS,
        GENERATED_AT,
        GENERATE_DURATION,
        DEFINITION_FAILED,
    }
)
"""Exposed names (counters with their ``_total``) that definitions may not take."""


def reserved(exposed: str) -> bool:
    """True if ``exposed`` (or the family a summary/counter sample of it belongs to) is taken."""
    if exposed in RESERVED:
        return True
    for suffix in ("_sum", "_count", "_created", "_total"):
        if exposed.endswith(suffix) and exposed.removesuffix(suffix) in _FAMILIES:
            return True
    return exposed in _FAMILIES


_FAMILIES: Final = frozenset(n.removesuffix("_total") for n in RESERVED)

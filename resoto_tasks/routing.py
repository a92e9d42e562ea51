"""Which queue an action's tasks go to: one queue per concern, as Resoto's actors were split."""

from __future__ import annotations

from typing import Final

COLLECT: Final = "collect"
CLEANUP: Final = "cleanup"
METRICS: Final = "metrics"
WORKFLOW: Final = "workflow"
QUEUES: Final = (COLLECT, CLEANUP, METRICS, WORKFLOW)


def queue_for_action(action: str) -> str:
    """``*generate_metrics*`` -> metrics, ``*cleanup*`` -> cleanup, ``*collect*`` -> collect.

    Any other action (a user's own) goes to the ``workflow`` queue unless its hook names a queue.
    """
    if "generate_metrics" in action:
        return METRICS
    if "cleanup" in action:
        return CLEANUP
    if "collect" in action:
        return COLLECT
    return WORKFLOW

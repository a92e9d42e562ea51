"""Helpers for the beat tests: real ``celery -A resoto_tasks beat`` processes, runs by slot.

Beats run with a 5 s lock timeout and a 1 s loop, and with the built-in hourly schedule switched
off, so a test that happens to cross a full hour starts nothing it did not ask for.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from datetime import datetime, timedelta

from resoto_tasks import runs
from resoto_tasks.models import Run, TriggerKind
from tests.support import workers

LOCK_TIMEOUT_S = 5.0
BEAT_ENV = {
    "RESOTO_BEAT_LOCK_TIMEOUT_S": str(LOCK_TIMEOUT_S),
    "RESOTO_BEAT_MAX_LOOP_INTERVAL_S": "1",
    "RESOTO_SCHEDULE_OVERRIDES": json.dumps({"collect_and_cleanup": ""}),
}
_SENT = re.compile(r"beat: workflow=(\S+) slot=(\S+) sent")


class BeatProcess(workers.BeatProcess):
    """A beat with the test settings (:data:`BEAT_ENV`), what is given in ``env`` over them."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        super().__init__(env={**BEAT_ENV, **(env or {})})

    @property
    def holds_lock(self) -> bool:
        return "beat: Acquired lock" in self.log()

    def sent(self, workflow: str) -> list[str]:
        """The slots this beat sent for ``workflow``, from its log."""
        return [slot for name, slot in _SENT.findall(self.log()) if name == workflow]


def time_runs(workflow: str) -> list[Run]:
    """The workflow's runs, by slot; every one must have been started by a time trigger."""
    found = runs.list_runs(workflow, limit=1000)
    assert all(r.trigger.kind == TriggerKind.time for r in found), [r.trigger for r in found]
    return sorted(found, key=lambda r: str(r.trigger.details["slot"]))


def slots_of(found: list[Run]) -> list[datetime]:
    return [parse_iso(str(r.trigger.details["slot"])) for r in found]


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def wait_for_runs(workflow: str, count: int, timeout_s: float = 15, after: datetime | None = None) -> list[Run]:
    """Wait until ``count`` runs (with a slot after ``after``, if given) exist; returns all runs."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = time_runs(workflow)
        relevant = [s for s in slots_of(found) if after is None or s > after]
        if len(relevant) >= count:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(relevant)} of {count} runs of {workflow} after {timeout_s}s")
        time.sleep(0.1)


def evenly_spaced(slots: list[datetime], period: timedelta) -> bool:
    """Consecutive slots one period apart: none missing, none doubled, no burst."""
    return all(b - a == period for a, b in itertools.pairwise(slots))

"""A run as a timeline: where each step's and each answer's bar sits on the run's time axis.

Pure: (run, now) in, percentages out; the template only places the bars. The axis runs from
the run's start to its end (or to ``now`` while it runs); a step that has not started has an
empty bar at the axis' end, so every step has exactly one bar, in run order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from resoto_tasks.models import Outcome, Run, StepRun

MIN_WIDTH_PCT = 0.4
"""A step that passed in no time still shows as a sliver."""


@dataclass(frozen=True)
class Bar:
    left_pct: float
    width_pct: float
    duration_s: float | None
    """``None`` while it has not started."""


@dataclass(frozen=True)
class AnswerRow:
    subscriber_id: str
    outcome: Outcome
    bar: Bar


@dataclass(frozen=True)
class StepRow:
    index: int
    step: StepRun
    bar: Bar
    answers: list[AnswerRow]
    current: bool


@dataclass(frozen=True)
class Timeline:
    start: datetime
    end: datetime
    span_s: float
    steps: list[StepRow]


def _bar(start: datetime | None, end: datetime | None, axis_start: datetime, span_s: float, now: datetime) -> Bar:
    if start is None:
        return Bar(left_pct=100.0, width_pct=0.0, duration_s=None)
    stop = end or now
    left = max(0.0, (start - axis_start).total_seconds() / span_s * 100)
    width = max(MIN_WIDTH_PCT, (stop - start).total_seconds() / span_s * 100)
    left = min(left, 100.0 - MIN_WIDTH_PCT)
    return Bar(
        left_pct=round(left, 3), width_pct=round(min(width, 100.0 - left), 3), duration_s=(stop - start).total_seconds()
    )


def timeline(run: Run, now: datetime) -> Timeline:
    start = run.started_at or run.created_at
    end = run.finished_at or max(now, start)
    span_s = max((end - start).total_seconds(), 0.001)
    rows: list[StepRow] = []
    for index, step in enumerate(run.steps):
        answers = [
            AnswerRow(
                sub, outcome, _bar(outcome.started_at or step.started_at, outcome.finished_at, start, span_s, end)
            )
            for sub, outcome in sorted(step.outcomes.items())
        ]
        bar = _bar(step.started_at, step.finished_at, start, span_s, end)
        rows.append(StepRow(index, step, bar, answers, current=index == run.step_index and not run.status.finished))
    return Timeline(start=start, end=end, span_s=span_s, steps=rows)

"""What a finished run did, in numbers a newcomer can check: collected, marked, deleted.

Only what the system recorded is shown, never a guess:

* per main action (``collect``, ``cleanup_plan``, ``cleanup``, ``generate_metrics``): how many
  subscribers answered and how, and the numbers in their results (summed over subscribers);
* the run's cleanup ledger totals, when the cleaner wrote one;
* the resource store's counts, when ``resoto-tasks resources count --json`` exists.

The headline figures are taken from those sources by the names in :data:`HEADLINE_KEYS`; a figure
with no source is shown as unknown, with the reason (say, no worker subscribed to ``collect``).
The table people see is :func:`resoto_tasks.cli.render.run_summary`: the CLI imports the local
stack, never the other way round.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from resoto_tasks.models import OutcomeStatus, Run, StepRun
from resoto_tasks.timeutil import seconds_between

MAIN_ACTIONS = ("collect", "cleanup_plan", "cleanup", "generate_metrics")

HEADLINE_KEYS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    # figure: where to look, in order: (source, keys). Sources: an action's summed results, or
    # "ledger" (the run's cleanup ledger totals).
    "collected": (("collect", ("resources", "collected", "count", "total")),),
    "marked": (("cleanup_plan", ("marked", "planned")), ("ledger", ("planned", "marked"))),
    "deleted": (("ledger", ("deleted",)), ("cleanup", ("deleted",))),
}


@dataclass(frozen=True)
class ActionSummary:
    """How one main action's step went: answers by status and the numbers in the results."""

    action: str
    step_status: str
    subscribers: int
    answers: dict[str, int]
    numbers: dict[str, float]
    errors: list[str]


@dataclass(frozen=True)
class Figure:
    value: float | None
    source: str
    """Where the value came from, or why there is none."""


@dataclass
class RunSummary:
    run: Run
    actions: dict[str, ActionSummary]
    ledger_totals: dict[str, Any]
    store: dict[str, Any] | None
    store_note: str | None
    figures: dict[str, Figure] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run.id,
            "workflow": self.run.workflow,
            "status": self.run.status.value,
            "duration_s": seconds_between(self.run.started_at, self.run.finished_at),
            "figures": {k: {"value": f.value, "source": f.source} for k, f in self.figures.items()},
            "actions": {
                a.action: {
                    "step_status": a.step_status,
                    "subscribers": a.subscribers,
                    "answers": a.answers,
                    "numbers": a.numbers,
                    "errors": a.errors,
                }
                for a in self.actions.values()
            },
            "ledger_totals": self.ledger_totals,
            "store": self.store,
            "store_note": self.store_note,
        }


def _numbers(result: Any) -> dict[str, float]:
    """The top-level numbers of a subscriber's result (booleans are not numbers here)."""
    if not isinstance(result, Mapping):
        return {}
    return {str(k): float(v) for k, v in result.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def summarize_action(step: StepRun) -> ActionSummary:
    answers: dict[str, int] = {}
    numbers: dict[str, float] = {}
    errors: list[str] = []
    for sub in step.blocking + step.nonblocking:
        outcome = step.outcomes.get(sub)
        status = outcome.status.value if outcome is not None else "no answer"
        answers[status] = answers.get(status, 0) + 1
        if outcome is None:
            continue
        if outcome.status == OutcomeStatus.done:
            for key, value in _numbers(outcome.result).items():
                numbers[key] = numbers.get(key, 0.0) + value
        elif outcome.error:
            errors.append(f"{sub}: {outcome.error}")
    return ActionSummary(
        action=step.action,
        step_status=step.status.value,
        subscribers=len(step.blocking) + len(step.nonblocking),
        answers=answers,
        numbers=numbers,
        errors=errors,
    )


def _figure(name: str, actions: Mapping[str, ActionSummary], ledger: Mapping[str, Any]) -> Figure:
    for source, keys in HEADLINE_KEYS[name]:
        if source == "ledger":
            for key in keys:
                value = ledger.get(key)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    return Figure(float(value), f"cleanup ledger: {key}")
            continue
        found = actions.get(source)
        if found is None:
            continue
        for key in keys:
            if key in found.numbers:
                return Figure(found.numbers[key], f"{source} step: {key}")
    first = next(source for source, _ in HEADLINE_KEYS[name] if source != "ledger")
    action = actions.get(first)
    if action is None:
        return Figure(None, f"the workflow has no {first} step")
    if action.subscribers == 0:
        return Figure(None, f"no worker subscribed to {first}")
    return Figure(None, f"{first} answered without a count")


def summarize(
    run: Run,
    store: dict[str, Any] | None = None,
    store_note: str | None = None,
    ledger_totals: Mapping[str, Any] | None = None,
) -> RunSummary:
    actions = {s.action: summarize_action(s) for s in run.steps if s.action in MAIN_ACTIONS}
    totals = dict(ledger_totals or {})
    summary = RunSummary(run=run, actions=actions, ledger_totals=totals, store=store, store_note=store_note)
    summary.figures = {name: _figure(name, actions, totals) for name in HEADLINE_KEYS}
    return summary

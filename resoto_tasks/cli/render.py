"""Rich renderings of workflows and runs for people (``--json`` bypasses all of this)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Column, Table
from rich.text import Text

from resoto_tasks.local_stack.summary import ActionSummary, RunSummary
from resoto_tasks.models import OutcomeStatus, Run, RunStatus, StepRun, StepStatus, Workflow
from resoto_tasks.timeutil import human_duration, iso, seconds_between

STATUS_STYLE = {
    RunStatus.queued: "yellow",
    RunStatus.running: "cyan",
    RunStatus.succeeded: "green",
    RunStatus.failed: "red",
    RunStatus.cancelled: "magenta",
    StepStatus.pending: "dim",
    StepStatus.running: "cyan",
    StepStatus.done: "green",
    StepStatus.failed: "red",
    StepStatus.timed_out: "red",
    StepStatus.skipped: "dim",
    StepStatus.cancelled: "magenta",
}


def duration_s(start: datetime | None, end: datetime | None) -> float | None:
    return seconds_between(start, end)


def clock_time(at: datetime | None) -> str:
    """``HH:MM:SS.mmm`` in UTC, or nothing."""
    return at.astimezone(UTC).strftime("%H:%M:%S.%f")[:12] if at else ""


def styled(status: RunStatus | StepStatus) -> Text:
    return Text(status.value, style=STATUS_STYLE.get(status, ""))


def workflows_table(workflows: list[Workflow]) -> Table:
    table = Table("workflow", "steps", "triggers", "on_surpass", "kind", box=None)
    for wf in sorted(workflows, key=lambda w: w.name):
        triggers = ", ".join(
            next(f"{k}: {v}" for k, v in t.model_dump(mode="json").items() if k in ("cron", "interval", "event"))
            for t in wf.triggers
        )
        table.add_row(wf.name, str(len(wf.steps)), triggers, wf.on_surpass.value, "built-in" if wf.builtin else "user")
    return table


def runs_table(found: list[Run]) -> Table:
    table = Table(
        Column("run", no_wrap=True, min_width=22),  # the id is what `runs show` needs: never cut
        "workflow",
        "status",
        "trigger",
        "started",
        "duration",
        "errors",
        box=None,
    )
    for run in found:
        bad = [s.name for s in run.steps if s.status in (StepStatus.failed, StepStatus.timed_out)]
        slot = run.trigger.details.get("slot", "")
        table.add_row(
            run.id,
            run.workflow,
            styled(run.status),
            f"{run.trigger.kind.value} {slot}".strip(),
            iso(run.started_at or run.created_at),
            human_duration(duration_s(run.started_at, run.finished_at)),
            ", ".join(bad),
        )
    return table


def _progress(step: StepRun) -> str:
    parts = []
    for sub, outcome in step.outcomes.items():
        if outcome.status == OutcomeStatus.running and outcome.progress:
            p = outcome.progress
            parts.append(f"{sub} {p.current}/{p.total}" if p.total else f"{sub} {p.current}")
    return ", ".join(parts)


def run_timeline(run: Run, ledger: dict[str, Any] | None = None) -> RenderableType:
    """The run as a step timeline with durations, answers and the cleanup ledger's totals."""
    title = Text.assemble(
        (run.id, "bold"),
        "  ",
        run.workflow,
        "  ",
        styled(run.status),
        "  ",
        f"trigger: {run.trigger.kind.value}",
        f"  duration: {human_duration(duration_s(run.started_at, run.finished_at))}" if run.finished_at else "",
    )
    table = Table("#", "step", "status", "started", "duration", "subscribers", "detail", box=None)
    for i, step in enumerate(run.steps):
        answered = sum(
            1 for s in step.blocking if s in step.outcomes and step.outcomes[s].status != OutcomeStatus.running
        )
        subs = f"{answered}/{len(step.blocking)}" if step.blocking else ""
        if step.nonblocking:
            subs += f" +{len(step.nonblocking)} nb"
        detail = step.error or _progress(step)
        table.add_row(
            str(i + 1),
            step.name,
            styled(step.status),
            clock_time(step.started_at),
            human_duration(duration_s(step.started_at, step.finished_at)),
            subs,
            Text(detail[:120]),  # error text is not markup
        )
    parts: list[RenderableType] = [title, table]
    if run.reason:
        parts.append(Text(f"reason: {run.reason}", style="yellow" if run.has_errors else ""))
    if ledger:
        totals = ledger.get("totals", {})
        parts.append(Text("cleanup ledger: " + ", ".join(f"{k} {v}" for k, v in sorted(totals.items()))))
    return Group(*parts)


def _fmt_number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _answers_text(a: ActionSummary) -> str:
    if a.subscribers == 0:
        return f"{a.step_status}, no subscribers"
    answers = ", ".join(f"{n} {status}" for status, n in sorted(a.answers.items()))
    numbers = ", ".join(f"{k} {_fmt_number(v)}" for k, v in sorted(a.numbers.items()))
    return f"{a.step_status}: {a.subscribers} subscriber(s), {answers}" + (f"; {numbers}" if numbers else "")


def run_summary(summary: RunSummary, links: Mapping[str, str]) -> RenderableType:
    """What ``up``'s first run did (:mod:`resoto_tasks.local_stack.summary`), as a table for people;
    ``links`` are extra rows (metrics, Flower, logs, Redis) in markup."""
    run = summary.run
    table = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
    table.add_column(style="bold")
    table.add_column()
    table.add_row(
        "run",
        Text.assemble(
            f"{run.id}  {run.workflow}  ",
            styled(run.status),
            f" in {human_duration(duration_s(run.started_at, run.finished_at))}" if run.finished_at else "",
        ),
    )
    for name, figure in summary.figures.items():
        if figure.value is None:
            table.add_row(name, Text(f"unknown ({figure.source})", style="dim"))
        else:
            table.add_row(name, f"{_fmt_number(figure.value)}  [dim]({escape(figure.source)})[/]")
    for action in summary.actions.values():
        table.add_row(f"  {action.action}", Text(_answers_text(action), style="dim"))
        for error in action.errors[:3]:
            table.add_row("", Text(error[:160], style="red"))
    if summary.ledger_totals:
        table.add_row("ledger", Text(", ".join(f"{k} {v}" for k, v in sorted(summary.ledger_totals.items()))))
    if summary.store is not None:
        parts = [f"{k} {v}" for k, v in summary.store.items() if isinstance(v, int | float)]
        table.add_row("store", Text(", ".join(parts)))
    elif summary.store_note:
        table.add_row("store", Text(summary.store_note, style="dim"))
    for label, value in links.items():
        table.add_row(label, value)
    return Group(Text("summary", style="bold underline"), table)

"""Workflow definitions and run records: frozen pydantic models, JSON the one encoding."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from croniter import croniter
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from resoto_tasks.timeutil import parse_interval_s

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_\-]{0,99}$"


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OnSurpass(StrEnum):
    """What starting a workflow does while a run of it is still going (Resoto's on_surpass)."""

    skip = "skip"
    """Start nothing and name the run in the way."""
    wait = "wait"
    """Queue exactly one run (kept in Redis) that starts when the running one ends."""
    replace_ = "replace"
    """Cancel the running run and start a new one."""
    parallel = "parallel"
    """Start another run beside it."""


class OnError(StrEnum):
    """What a step's error or timeout does to the run."""

    continue_ = "continue"
    """An error counts as an answer; a timeout moves on to the next step."""
    stop = "stop"
    """The run ends as failed; the remaining steps are skipped."""


class TriggerKind(StrEnum):
    time = "time"
    event = "event"
    manual = "manual"


class CronTrigger(Frozen):
    cron: str

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        fields = value.split()
        if len(fields) != 5:
            raise ValueError(f"cron expression {value!r} must have 5 fields (minute hour day month weekday)")
        if not croniter.is_valid(value):
            raise ValueError(f"cron expression {value!r} is not valid")
        return value


class IntervalTrigger(Frozen):
    interval: str | float

    @field_validator("interval", mode="before")
    @classmethod
    def _valid_interval(cls, value: Any) -> str | float:
        parse_interval_s(value)
        return value  # type: ignore[no-any-return]  # checked just above

    @property
    def interval_s(self) -> float:
        return parse_interval_s(self.interval)


class EventTrigger(Frozen):
    event: Annotated[str, Field(min_length=1, max_length=200)]
    filter: dict[str, Any] = Field(default_factory=dict)

    def matches(self, name: str, data: dict[str, Any]) -> bool:
        """The event has this name and its data contains every key/value of the filter."""
        return name == self.event and all(k in data and data[k] == v for k, v in self.filter.items())


def _trigger_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        present = [k for k in ("cron", "interval", "event") if k in value]
        return present[0] if len(present) == 1 else None
    if isinstance(value, CronTrigger):
        return "cron"
    if isinstance(value, IntervalTrigger):
        return "interval"
    if isinstance(value, EventTrigger):
        return "event"
    return None


Trigger = Annotated[
    Annotated[CronTrigger, Tag("cron")]
    | Annotated[IntervalTrigger, Tag("interval")]
    | Annotated[EventTrigger, Tag("event")],
    Discriminator(
        _trigger_tag,
        custom_error_type="trigger_kind",
        custom_error_message="a trigger has exactly one of the keys cron, interval or event",
    ),
]


class Step(Frozen):
    """One action of a workflow, as it runs (already expanded from a step definition)."""

    name: str
    action: str
    timeout_s: float = Field(default=300.0, gt=0)
    on_error: OnError = OnError.continue_


class StepDefinition(Frozen):
    """A step as users write it; expands to ``pre_<action>``, ``<action>``, ``post_<action>``.

    ``timeout`` is the user's word and takes a duration with its unit (``30s``, ``5m``) or seconds;
    the expanded :class:`Step` names it ``timeout_s``.
    """

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    action: Annotated[str | None, Field(pattern=NAME_PATTERN)] = None
    timeout: float | str = 300.0
    on_error: OnError = OnError.continue_

    @field_validator("timeout", mode="before")
    @classmethod
    def _valid_timeout(cls, value: Any) -> float:
        return parse_interval_s(value)  # before pydantic coerces: `timeout: true` is not 1 s

    def expand(self) -> list[Step]:
        action = self.action or self.name
        timeout_s = float(self.timeout)
        names = [f"pre_{self.name}", self.name, f"post_{self.name}"]
        actions = [f"pre_{action}", action, f"post_{action}"]
        return [
            Step(name=n, action=a, timeout_s=timeout_s, on_error=self.on_error)
            for n, a in zip(names, actions, strict=True)
        ]


class WorkflowDefinition(Frozen):
    """A workflow as users write it in YAML."""

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    steps: Annotated[list[StepDefinition], Field(min_length=1)]
    triggers: list[Trigger] = Field(default_factory=list)
    on_surpass: OnSurpass = OnSurpass.wait

    @model_validator(mode="after")
    def _unique_step_names(self) -> WorkflowDefinition:
        seen: set[str] = set()
        for step in self.steps:
            if step.name in seen:
                raise ValueError(f"step name {step.name!r} is used twice")
            seen.add(step.name)
        return self

    def build(self, builtin: bool = False) -> Workflow:
        steps = [s for d in self.steps for s in d.expand()]
        return Workflow(
            name=self.name, steps=steps, triggers=self.triggers, on_surpass=self.on_surpass, builtin=builtin
        )


class Workflow(Frozen):
    """A workflow ready to run: its steps expanded, in run order."""

    name: str
    steps: list[Step]
    triggers: list[Trigger] = Field(default_factory=list)
    on_surpass: OnSurpass = OnSurpass.wait
    builtin: bool = False


# ---------------------------------------------------------------------------------------------
# Run records
# ---------------------------------------------------------------------------------------------


class RunStatus(StrEnum):
    queued = "queued"
    """Waiting (``on_surpass: wait``) for the running run of the same workflow to end."""
    running = "running"
    """Steps are being dispatched."""
    succeeded = "succeeded"
    """Ended; every step ran (steps that failed under ``on_error: continue`` set ``has_errors``)."""
    failed = "failed"
    """Ended early: a step failed or timed out under ``on_error: stop``."""
    cancelled = "cancelled"
    """Ended by a cancel, or replaced by a newer run."""

    @property
    def finished(self) -> bool:
        return self in (RunStatus.succeeded, RunStatus.failed, RunStatus.cancelled)


class RunEndCause(StrEnum):
    """Why a run ended: the closed vocabulary behind ``reason``'s text."""

    completed = "completed"
    """Every step ran."""
    stopped = "stopped"
    """A step failed or timed out under ``on_error: stop``; the rest were skipped."""
    cancelled = "cancelled"
    """Someone cancelled it."""
    replaced = "replaced"
    """A newer run of the workflow replaced it (``on_surpass: replace``)."""


class StepStatus(StrEnum):
    pending = "pending"
    """Not started yet."""
    running = "running"
    """Sent; waiting for its blocking subscribers."""
    done = "done"
    """Every blocking subscriber answered done."""
    failed = "failed"
    """At least one blocking subscriber answered with an error (or was lost)."""
    timed_out = "timed_out"
    """The deadline passed before every blocking subscriber answered, or a subscriber overran its own
    timeout."""
    skipped = "skipped"
    """Never ran: an earlier step stopped the run."""
    cancelled = "cancelled"
    """The run was cancelled while this step ran or before it."""

    @property
    def finished(self) -> bool:
        return self not in (StepStatus.pending, StepStatus.running)

    @property
    def bad(self) -> bool:
        return self in (StepStatus.failed, StepStatus.timed_out)


class StepCause(StrEnum):
    """What ended a step: the input that made its completion transition."""

    answered = "answered"
    """The step callback: every blocking subscriber answered."""
    lost = "lost"
    """The step errback: a subscriber task died without answering."""
    timeout = "timeout"
    """The supervisor: the deadline passed."""
    no_subscriber = "no_subscriber"
    """Nobody subscribes to the action: the step passed at once."""
    no_blocking_subscriber = "no_blocking_subscriber"
    """Only non-blocking subscribers: they were sent and the step passed at once."""


class OutcomeStatus(StrEnum):
    done = "done"
    error = "error"
    timed_out = "timed_out"
    """No answer before the step's deadline, or the subscriber overran its own timeout."""
    lost = "lost"
    """The task died without answering (worker lost, hard time limit, revoked)."""
    running = "running"
    """Still working (only in live views)."""


class Progress(Frozen):
    current: int = 0
    total: int | None = None
    message: str | None = None
    at: AwareDatetime | None = None


class Outcome(Frozen):
    """One subscriber's answer to one step."""

    subscriber_id: str
    status: OutcomeStatus
    error: str | None = None
    result: Any = None
    progress: Progress | None = None
    started_at: AwareDatetime | None = None
    finished_at: AwareDatetime | None = None
    late: bool = False
    blocking: bool = True


class TriggerInfo(Frozen):
    kind: TriggerKind
    details: dict[str, Any] = Field(default_factory=dict)


class StepRun(Frozen):
    """One step of a run. ``epoch`` counts its dispatches: an answer or callback of an older
    dispatch is recognised and ignored; ``dispatcher`` is the workflow task that owns sending it."""

    name: str
    action: str
    on_error: OnError
    timeout_s: float
    status: StepStatus = StepStatus.pending
    started_at: AwareDatetime | None = None
    finished_at: AwareDatetime | None = None
    deadline_ms: int | None = None
    epoch: int = 0
    dispatcher: str | None = None
    cause: StepCause | None = None
    blocking: list[str] = Field(default_factory=list)
    nonblocking: list[str] = Field(default_factory=list)
    task_ids: dict[str, str] = Field(default_factory=dict)
    """Subscriber id -> the Celery task id of its task in this epoch."""
    outcomes: dict[str, Outcome] = Field(default_factory=dict)
    late_answers: dict[str, Outcome] = Field(default_factory=dict)
    """Answers that came after the step timed out or lost them: shown, not counted."""
    error: str | None = None


class Run(Frozen):
    """The record of one run: the truth, stored as one JSON document in Redis."""

    id: str
    workflow: str
    trigger: TriggerInfo
    status: RunStatus
    created_at: AwareDatetime
    started_at: AwareDatetime | None = None
    finished_at: AwareDatetime | None = None
    updated_ms: int = 0
    """When a transition last changed the record (the supervisor resumes runs idle past a grace)."""
    step_index: int = 0
    steps: list[StepRun]
    cause: RunEndCause | None = None
    reason: str | None = None
    has_errors: bool = False
    """A step failed or timed out, whether or not the run went on (``on_error: continue``)."""

    @property
    def current(self) -> StepRun | None:
        if 0 <= self.step_index < len(self.steps):
            return self.steps[self.step_index]
        return None

    def with_step(self, index: int, step: StepRun) -> Run:
        steps = list(self.steps)
        steps[index] = step
        return self.model_copy(update={"steps": steps})


class StartStatus(StrEnum):
    started = "started"
    queued = "queued"
    skipped = "skipped"
    duplicate = "duplicate"
    """A schedule slot that already has its run."""


class StartResult(Frozen):
    """What starting a workflow did; ``run_id`` names the new, queued or blocking run."""

    status: StartStatus
    workflow: str
    run_id: str | None = None
    blocking_run_id: str | None = None
    replaced: list[str] = Field(default_factory=list)
    message: str = ""


class Subscription(Frozen):
    """A subscriber of one action (Resoto's actor subscription)."""

    action: str
    subscriber_id: str
    task: str
    queue: str
    timeout_s: float = 300.0
    wait_for_completion: bool = True
    kwargs: dict[str, Any] = Field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.action}/{self.subscriber_id}"


class ActionMessage(Frozen):
    """What a subscriber task receives: which run, step and subscription it answers for."""

    run_id: str
    workflow: str
    step_index: int
    step: str
    action: str
    subscriber_id: str
    blocking: bool
    deadline_ms: int
    timeout_s: float = 300.0
    epoch: int = 0
    sent_ms: int = 0
    """When the step was sent (the abort flag is checked only on a message that waited)."""
    kwargs: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def for_step(cls, run: Run, index: int, sub: Subscription) -> ActionMessage:
        """The message of ``sub``'s task in step ``index`` of the run as committed."""
        step = run.steps[index]
        return cls(
            run_id=run.id,
            workflow=run.workflow,
            step_index=index,
            step=step.name,
            action=step.action,
            subscriber_id=sub.subscriber_id,
            blocking=sub.subscriber_id in step.blocking,
            deadline_ms=step.deadline_ms or 0,
            timeout_s=sub.timeout_s,
            epoch=step.epoch,
            sent_ms=run.updated_ms,
            kwargs=sub.kwargs,
        )


JsonDict = dict[str, Any]
LiteralKind = Literal["cron", "interval", "event"]

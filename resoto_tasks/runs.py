"""The run store: run records in Redis and the one way to change them.

A run record is one JSON document (``{p}:run:{id}``). Every change goes through
:func:`transition`, an optimistic transaction (WATCH/MULTI): the change function sees the
current record and returns the new one, or ``None`` for "nothing to do". A duplicated callback
or a callback racing the supervisor therefore advances a run exactly once: the loser's
transaction is retried, sees the step already finished and changes nothing.

Subscriber answers do not touch the record: they land in their own hashes (outcomes,
progress), so subscribers never contend with transitions, and an answer that arrives after
its step timed out is kept (marked late when shown) without changing the outcome.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import redis

from resoto_tasks import keys
from resoto_tasks.errors import UnknownRun
from resoto_tasks.models import (
    ActionMessage,
    Outcome,
    OutcomeStatus,
    Progress,
    Run,
    RunStatus,
    StepRun,
    StepStatus,
    TriggerInfo,
    Workflow,
)
from resoto_tasks.redis_conn import client
from resoto_tasks.settings import get_settings
from resoto_tasks.timeutil import iso, now_ms, utcnow

log = logging.getLogger(__name__)


def new_run_id() -> str:
    """Sortable and readable: ``20261126T224700-3fa2c1``."""
    return f"{utcnow().strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"


def retention_s() -> int:
    return int(get_settings().run_retention_days * 86400)


def new_run(workflow: Workflow, trigger: TriggerInfo, status: RunStatus, run_id: str | None = None) -> Run:
    now = iso(utcnow())
    assert now is not None
    return Run(
        id=run_id or new_run_id(),
        workflow=workflow.name,
        trigger=trigger,
        status=status,
        created_at=now,
        started_at=now if status == RunStatus.running else None,
        steps=[StepRun(name=s.name, action=s.action, on_error=s.on_error, timeout=s.timeout) for s in workflow.steps],
    )


def load(run_id: str, r: redis.Redis | None = None) -> Run | None:
    raw = (r or client()).get(keys.run(run_id))
    return Run.model_validate_json(raw) if raw else None


def get(run_id: str) -> Run:
    """Raises: UnknownRun."""
    found = load(run_id)
    if found is None:
        raise UnknownRun(run_id)
    return found


def write(pipe: Any, run: Run) -> None:
    """Queue the write of ``run`` (and its indexes) on a MULTI pipeline."""
    pipe.set(keys.run(run.id), run.model_dump_json(exclude_defaults=False), ex=retention_s())


def index(pipe: Any, run: Run) -> None:
    score = now_ms()
    pipe.zadd(keys.runs_index(), {run.id: score})
    pipe.zadd(keys.runs_of_workflow(run.workflow), {run.id: score})


def event(pipe: Any, kind: str, **data: Any) -> None:
    """Append a transition to the bounded event stream (inside the caller's MULTI)."""
    fields = {"kind": kind, "at": iso(utcnow()) or "", "data": json.dumps(data, default=str)}
    pipe.xadd(keys.events(), fields, maxlen=get_settings().events_maxlen, approximate=True)


@dataclass
class Change:
    """What a transition function decided: the new record and what to write alongside it."""

    run: Run
    extra: list[Callable[[Any], None]] = field(default_factory=list)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def transition(
    run_id: str,
    decide: Callable[[Run], Change | None],
    watch: Iterable[str] = (),
) -> Change | None:
    """Apply ``decide`` to the current record atomically; retry on a concurrent change.

    ``decide`` must be pure (it may run more than once). Returns the committed change, or
    ``None`` if the run does not exist or ``decide`` found nothing to do.
    """
    r = client()
    key = keys.run(run_id)
    with r.pipeline(transaction=True) as pipe:
        while True:
            try:
                pipe.watch(key, *watch)
                raw = pipe.get(key)
                if raw is None:
                    pipe.unwatch()
                    return None
                change = decide(Run.model_validate_json(raw))
                if change is None:
                    pipe.unwatch()
                    return None
                pipe.multi()
                write(pipe, change.run)
                for extra in change.extra:
                    extra(pipe)
                for kind, data in change.events:
                    event(pipe, kind, run_id=run_id, workflow=change.run.workflow, **data)
                pipe.execute()
                return change
            except redis.WatchError:
                continue


# ---------------------------------------------------------------------------------------------
# Answers from subscribers
# ---------------------------------------------------------------------------------------------


def record_outcome(message: ActionMessage, outcome: Outcome) -> None:
    """Store a subscriber's answer; the step's completion is decided elsewhere."""
    field_name = keys.outcome_field(message.step_index, message.subscriber_id)
    pipe = client().pipeline(transaction=False)
    pipe.hset(keys.run_outcomes(message.run_id), field_name, outcome.model_dump_json())
    pipe.expire(keys.run_outcomes(message.run_id), retention_s())
    pipe.execute()


def record_progress(message: ActionMessage, current: int, total: int | None, text: str | None) -> None:
    progress = Progress(current=current, total=total, message=text, at=iso(utcnow()))
    field_name = keys.outcome_field(message.step_index, message.subscriber_id)
    pipe = client().pipeline(transaction=False)
    pipe.hset(keys.run_progress(message.run_id), field_name, progress.model_dump_json())
    pipe.expire(keys.run_progress(message.run_id), retention_s())
    pipe.execute()


def outcomes_of(run_id: str, step_index: int, r: Any = None) -> dict[str, Outcome]:
    """Subscriber id -> answer for one step (the hash is small: a few entries per step)."""
    return parse_outcomes((r or client()).hgetall(keys.run_outcomes(run_id)), step_index)


def parse_outcomes(raw: dict[str, str], step_index: int) -> dict[str, Outcome]:
    """The answers of one step from the run's whole outcomes hash."""
    prefix = f"{step_index}/"
    return {
        name.removeprefix(prefix): Outcome.model_validate_json(value)
        for name, value in raw.items()
        if name.startswith(prefix)
    }


def is_aborted(run_id: str) -> bool:
    return bool(client().exists(keys.run_abort(run_id)))


def set_abort(pipe: Any, run_id: str) -> None:
    pipe.set(keys.run_abort(run_id), "1", ex=retention_s())


# ---------------------------------------------------------------------------------------------
# Reading runs for people and scripts
# ---------------------------------------------------------------------------------------------


def view(run_id: str) -> Run:
    """The record as people and scripts read it: live answers and progress merged into the
    running step, answers that came after their step was decided kept apart as ``late_answers``
    (recorded, and ignored by the outcome), and the cleanup ledger.

    Raises: UnknownRun.
    """
    run = get(run_id)
    pipe = client().pipeline(transaction=False)
    pipe.hgetall(keys.run_outcomes(run_id))
    pipe.hgetall(keys.run_progress(run_id))
    raw_outcomes, raw_progress = pipe.execute()
    steps = [
        _merge_live(step, parse_outcomes(raw_outcomes, i), _parse_progress(raw_progress, i))
        for i, step in enumerate(run.steps)
    ]
    from resoto_tasks import ledger

    return run.model_copy(update={"steps": steps, "ledger": ledger.summary(run_id)})


def _parse_progress(raw: dict[str, str], step_index: int) -> dict[str, Progress]:
    prefix = f"{step_index}/"
    return {k.removeprefix(prefix): Progress.model_validate_json(v) for k, v in raw.items() if k.startswith(prefix)}


def _merge_live(step: StepRun, answers: dict[str, Outcome], progress: dict[str, Progress]) -> StepRun:
    if step.status == StepStatus.running:
        outcomes = {
            sub: answers.get(sub)
            or Outcome(subscriber_id=sub, status=OutcomeStatus.running, blocking=sub in step.blocking)
            for sub in step.blocking + step.nonblocking
        }
        late: dict[str, Outcome] = {}
    else:
        outcomes = dict(step.outcomes)
        late = {}
        for sub, answer in answers.items():
            decided = outcomes.get(sub)
            if decided is None:
                outcomes[sub] = answer  # a non-blocking answer that came after the step ended
            elif decided.status in (OutcomeStatus.timed_out, OutcomeStatus.lost) and answer != decided:
                late[sub] = answer.model_copy(update={"late": True})
    for sub, p in progress.items():
        if sub in outcomes:
            outcomes[sub] = outcomes[sub].model_copy(update={"progress": p})
    return step.model_copy(update={"outcomes": outcomes, "late_answers": late})


def has_errors(run: Run) -> bool:
    return run.status == RunStatus.failed or any(
        s.status in (StepStatus.failed, StepStatus.timed_out) for s in run.steps
    )


def list_runs(workflow: str | None = None, limit: int = 20, errors_only: bool = False) -> list[Run]:
    """Newest first."""
    r = client()
    index_key = keys.runs_of_workflow(workflow) if workflow else keys.runs_index()
    found: list[Run] = []
    start = 0
    batch = max(limit, 50)
    while len(found) < limit:
        ids = r.zrevrange(index_key, start, start + batch - 1)
        if not ids:
            break
        start += batch
        raws = r.mget([keys.run(i) for i in ids])
        for run_id, raw in zip(ids, raws, strict=True):
            if raw is None:
                continue
            try:
                run = Run.model_validate_json(raw)
            except ValueError:  # a record this version cannot read must not hide the others
                log.warning("run=%s record cannot be read; left out of the listing", run_id)
                continue
            if errors_only and not has_errors(run):
                continue
            found.append(run)
            if len(found) >= limit:
                break
    return found


def prune(older_than: timedelta | None = None) -> int:
    """Drop index entries of runs past retention (their records expire by TTL)."""
    r = client()
    cutoff = now_ms() - int((older_than or timedelta(seconds=retention_s())).total_seconds() * 1000)
    old = r.zrangebyscore(keys.runs_index(), "-inf", cutoff, start=0, num=1000)
    if not old:
        return 0
    pipe = r.pipeline(transaction=False)
    pipe.zrem(keys.runs_index(), *old)
    for raw in r.mget([keys.run(i) for i in old]):
        if raw:
            run = Run.model_validate_json(raw)
            pipe.zrem(keys.runs_of_workflow(run.workflow), run.id)
    for run_id in old:
        pipe.delete(keys.run(run_id), keys.run_outcomes(run_id), keys.run_progress(run_id))
    pipe.execute()
    return len(old)

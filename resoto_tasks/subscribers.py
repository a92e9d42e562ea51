"""Subscribers: who answers an action, and the task wrapper every subscriber runs in.

A subscription is ``(action, subscriber id, task, queue, timeout, wait_for_completion)``.
Workers register theirs in Redis when they start and renew them by heartbeat; a subscription
lives while at least one worker (a *holder*) renews it, so a dead worker's subscriptions expire
within the TTL while the same subscription held by a live worker stays.

Two ways to become a subscriber:

* :func:`subscriber` turns a function into a Celery task *and* a static subscription of one
  action (this is how users hook into ``post_collect`` and the like);
* :func:`action_task` makes only the task, and :func:`subscription_source` registers a function
  that computes subscriptions from the worker's options (one per provider account, say).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

import redis
from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded

from resoto_tasks import keys
from resoto_tasks.models import ActionMessage, Outcome, OutcomeStatus, Progress, Subscription
from resoto_tasks.redis_conn import client
from resoto_tasks.routing import queue_for_action
from resoto_tasks.settings import get_settings
from resoto_tasks.timeutil import now_ms, utcnow
from resoto_tasks.worker_options import WorkerOptions

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")
ActionFn = Callable[["ActionContext"], Any]
SubscriptionSource = Callable[[WorkerOptions], list[Subscription]]

_static: list[Subscription] = []
_sources: list[SubscriptionSource] = []


class Aborted(Exception):
    """Raised by :meth:`ActionContext.check_abort` when the run was cancelled."""


@dataclass
class ActionContext:
    """What a subscriber function gets: the run and step it serves, progress and abort."""

    message: ActionMessage
    task: Task | None = None
    _last_progress_ms: int = field(default=0, repr=False)

    @property
    def run_id(self) -> str:
        return self.message.run_id

    @property
    def workflow(self) -> str:
        return self.message.workflow

    @property
    def action(self) -> str:
        return self.message.action

    @property
    def step(self) -> str:
        return self.message.step

    @property
    def kwargs(self) -> dict[str, Any]:
        return self.message.kwargs

    @property
    def aborted(self) -> bool:
        """True once the run was cancelled; long subscribers check it between batches."""
        return is_aborted(self.message.run_id)

    def check_abort(self) -> None:
        """Raise :class:`Aborted` if the run was cancelled."""
        if self.aborted:
            raise Aborted(f"run {self.run_id} was cancelled")

    def progress(self, current: int, total: int | None = None, message: str | None = None) -> None:
        """Report progress: into the run record and as Celery task state (Flower shows it).

        Throttled to one write per 200 ms except the final one (``current == total``).
        """
        now = now_ms()
        if now - self._last_progress_ms < 200 and (total is None or current < total):
            return
        self._last_progress_ms = now
        try:
            self._report(current, total, message)
        except (redis.RedisError, OSError) as exc:  # progress is best effort: never fail the work for it
            log.debug("run=%s step=%s progress not recorded: %s", self.run_id, self.step, exc)

    def _report(self, current: int, total: int | None, message: str | None) -> None:
        record_progress(self.message, current, total, message)
        if self.task is not None and self.task.request.id:
            self.task.update_state(
                state="PROGRESS",
                meta={
                    "run_id": self.run_id,
                    "step": self.step,
                    "subscriber": self.message.subscriber_id,
                    "current": current,
                    "total": total,
                },
            )


def _json_safe(value: Any) -> tuple[Any, str | None]:
    """``value`` if it encodes as JSON (cut to 4 KB), else ``None`` and why not."""
    try:
        encoded = json.dumps(value)
    except (TypeError, ValueError) as exc:
        return None, f"returned a value that is not JSON ({type(value).__name__}): {exc}"
    if len(encoded) > 4096:
        return {"truncated": encoded[:4000]}, None
    return value, None


def execute(fn: ActionFn, task: Task | None, raw: dict[str, Any]) -> dict[str, Any]:
    """Run ``fn`` for one action message; its answer is the task's result. Never raises.

    The answer (an :class:`Outcome` as JSON) travels as the task's result: the chord counts it (or
    the link passes it on) to the step callback, and the result backend keeps it for views and the
    supervisor. Exceptions become an ``error`` outcome, so a failing subscriber never fails the
    step (a failed task would skip the step callback and call its errback); a subscriber that
    overruns its own timeout answers ``timed_out``.
    """
    message = ActionMessage.model_validate(raw)
    started = utcnow()
    ctx = ActionContext(message=message, task=task)
    status, error, result = OutcomeStatus.done, None, None
    t0 = time.monotonic()
    try:
        if now_ms() > message.deadline_ms:
            # Redelivered (or queued) past its step's deadline: the step was decided without it.
            # Running it now could act on a later state (a cleanup deleting newer marks).
            raise Aborted("the task arrived after its step's deadline; not run")
        if _may_be_cancelled(message, task) and is_aborted(message.run_id):
            raise Aborted(f"run {message.run_id} was cancelled before the task started")
        result, error = _json_safe(fn(ctx))
        if error is not None:
            status = OutcomeStatus.error
    except SoftTimeLimitExceeded:
        status, error = OutcomeStatus.timed_out, f"overran its timeout of {message.timeout_s:g} s"
    except Aborted as exc:
        status, error = OutcomeStatus.error, f"aborted: {exc}"
    except Exception as exc:
        status, error = OutcomeStatus.error, f"{type(exc).__name__}: {exc}"[:2000]
        log.warning(
            "run=%s step=%s subscriber=%s raised %s",
            message.run_id,
            message.step,
            message.subscriber_id,
            error,
        )
    outcome = Outcome(
        subscriber_id=message.subscriber_id,
        status=status,
        error=error,
        result=result,
        started_at=started,
        finished_at=utcnow(),
        blocking=message.blocking,
    )
    log.info(
        "run=%s step=%s subscriber=%s %s in %.3fs",
        message.run_id,
        message.step,
        message.subscriber_id,
        status.value,
        time.monotonic() - t0,
    )
    return outcome.model_dump(mode="json")


FRESH_MS = 2_000
"""A message started this soon after its step was sent needs no abort check before it starts."""


def _may_be_cancelled(message: ActionMessage, task: Task | None) -> bool:
    """Whether the run may have been cancelled without this worker being told.

    A cancel revokes the step's tasks: every live worker drops them on receipt. So a message
    taken fresh from the queue by a worker that was up at the time needs no Redis read; one that
    waited in the queue (a worker may have started since, not knowing the revoke) or was
    redelivered is checked. A running hook still sees a cancel through ``ctx.check_abort()``.
    """
    redelivered = bool(task is not None and (task.request.delivery_info or {}).get("redelivered"))
    return redelivered or not message.sent_ms or now_ms() - message.sent_ms > FRESH_MS


def is_aborted(run_id: str) -> bool:
    """The run's abort flag (raised by a cancel or a replace)."""
    return bool(client().exists(keys.run_abort(run_id)))


def record_progress(message: ActionMessage, current: int, total: int | None, text: str | None) -> None:
    """Progress beside the run (``{p}:run:{id}:progress``), shown by ``runs show`` while it runs."""
    progress = Progress(current=current, total=total, message=text, at=utcnow())
    client().hset(
        keys.run_progress(message.run_id),
        keys.outcome_field(message.step_index, message.subscriber_id),
        progress.model_dump_json(),
    )


def action_task(name: str, queue: str) -> Callable[[ActionFn], Task]:
    """Make ``fn(ctx)`` a Celery task that answers action messages (see :func:`execute`)."""

    def decorate(fn: ActionFn) -> Task:
        def body(self: Task, message: dict[str, Any]) -> dict[str, Any]:
            return execute(fn, self, message)

        body.__name__ = fn.__name__
        body.__doc__ = fn.__doc__
        body.__module__ = fn.__module__
        # A shared task: registered with the app the process composes, whenever that happens,
        # so defining a hook builds no app and reads no settings.
        task: Task = shared_task(name=name, bind=True, queue=queue, resoto_action=True)(body)
        return task

    return decorate


def subscriber(
    action: str,
    *,
    name: str | None = None,
    queue: str | None = None,
    timeout_s: float = 300.0,
    blocking: bool = True,
) -> Callable[[ActionFn], Task]:
    """Subscribe ``fn(ctx)`` to ``action``; a worker that imports the module registers it.

    ``blocking=False`` sends the task alongside the step without waiting for it.
    The task goes to ``queue``, by default the action's queue (see :mod:`resoto_tasks.routing`).
    """
    target = queue or queue_for_action(action)

    def decorate(fn: ActionFn) -> Task:
        task_name = name or f"resoto.hook.{fn.__module__}.{fn.__name__}"
        task = action_task(task_name, target)(fn)
        _static.append(
            Subscription(
                action=action,
                subscriber_id=task_name,
                task=task_name,
                queue=target,
                timeout_s=timeout_s,
                wait_for_completion=blocking,
            )
        )
        return task

    return decorate


def subscription_source(fn: SubscriptionSource) -> SubscriptionSource:
    """Register ``fn(options) -> [Subscription]``, asked when a worker starts."""
    _sources.append(fn)
    return fn


def subscriptions_for(options: WorkerOptions) -> list[Subscription]:
    """Every subscription this worker holds: static hooks and sources, on the queues it consumes."""
    found = list(_static)
    for source in _sources:
        found.extend(source(options))
    queues = set(options.queues)
    return [s for s in found if not queues or s.queue in queues]


# ---------------------------------------------------------------------------------------------
# The registry in Redis
# ---------------------------------------------------------------------------------------------
#
# One sorted set: a member per (holder, subscription), ``{holder}|{subscription JSON}``, scored by
# when the holder's promise expires. A step reads every live subscription with one
# ZRANGEBYSCORE (no second lookup of definitions); expired members are pruned by the heartbeat.

_SEP = "|"


def _member(holder: str, sub: Subscription) -> str:
    return f"{holder}{_SEP}{sub.model_dump_json()}"


def register(subs: list[Subscription], holder: str, ttl_s: float | None = None, r: redis.Redis | None = None) -> None:
    """Mark ``holder`` as keeping ``subs`` alive for ``ttl_s`` (also the heartbeat), on ``r``
    (default: the store's Redis).

    A subscription that was not there before changes the registry's version (after it is added:
    a reader that sees the new version finds the new member), so cached reads see it at once; a
    renewal does not (see :mod:`resoto_tasks.live_cache`).
    """
    if not subs:
        return
    ttl = ttl_s if ttl_s is not None else get_settings().subscriber_ttl_s
    now = now_ms()
    r = r or client()
    pipe = r.pipeline(transaction=False)
    pipe.zremrangebyscore(keys.subscriptions_live(), "-inf", now)
    pipe.zadd(keys.subscriptions_live(), {_member(holder, s): now + int(ttl * 1000) for s in subs})
    _, added = pipe.execute()
    if added:
        bump_version(r)


def unregister(holder: str, r: redis.Redis | None = None) -> None:
    """Drop every liveness entry of ``holder`` (a worker shutting down cleanly), on ``r``
    (default: the store's Redis)."""
    r = r or client()
    prefix = f"{holder}{_SEP}"
    members = [m for m in r.zrange(keys.subscriptions_live(), 0, -1) if m.startswith(prefix)]
    if members:
        r.zrem(keys.subscriptions_live(), *members)
        bump_version(r)


def bump_version(r: redis.Redis) -> None:
    """A new version of the registry (a random token: never equal to another server's)."""
    r.set(keys.subscriptions_version(), uuid.uuid4().hex)


def queue_live_read(pipe: Any, at_ms: int) -> None:
    """Queue the one read of the live subscriptions on the caller's pipeline."""
    pipe.zrangebyscore(keys.subscriptions_live(), at_ms, "+inf", withscores=True)


def parse_live(members: list[tuple[str, float]]) -> list[Subscription]:
    """The live subscriptions from the read: one per key, the definition renewed last wins."""
    return newest_live(parse_members(members), at_ms=0)


Entry = tuple[float, Subscription]
"""A member of the registry as read: when its holder's promise expires, and the subscription."""


def parse_members(members: list[tuple[str, float]]) -> list[Entry]:
    """The members of the read that this version can dispatch to."""
    found: list[Entry] = []
    for member, score in members:
        _, _, raw = member.partition(_SEP)
        try:
            found.append((score, Subscription.model_validate_json(raw)))
        except ValueError:  # written by another version: not ours to dispatch
            continue
    return found


def newest_live(entries: list[Entry], at_ms: int) -> list[Subscription]:
    """The subscriptions live at ``at_ms``: one per key, the definition renewed last wins."""
    newest: dict[str, Entry] = {}
    for score, sub in entries:
        if score >= at_ms and (sub.key not in newest or score >= newest[sub.key][0]):
            newest[sub.key] = (score, sub)
    return [newest[k][1] for k in sorted(newest)]


def by_action(subs: list[Subscription]) -> dict[str, list[Subscription]]:
    found: dict[str, list[Subscription]] = {}
    for sub in subs:
        found.setdefault(sub.action, []).append(sub)
    return found


def live_by_action(at_ms: int | None = None) -> dict[str, list[Subscription]]:
    """Every live subscription, by action: one snapshot for all the steps a dispatch passes."""
    return by_action(live(at_ms=at_ms))


def live(action: str | None = None, at_ms: int | None = None) -> list[Subscription]:
    """Subscriptions with at least one live holder, optionally only those of ``action``."""
    pipe = client().pipeline(transaction=False)
    queue_live_read(pipe, at_ms if at_ms is not None else now_ms())
    (members,) = pipe.execute()
    found = parse_live(members)
    return [s for s in found if action is None or s.action == action]


def holders() -> dict[str, list[str]]:
    """Subscription key -> the holders keeping it alive (for ``subscribers list``)."""
    found: dict[str, list[str]] = {}
    for member in client().zrangebyscore(keys.subscriptions_live(), now_ms(), "+inf"):
        holder, _, raw = member.partition(_SEP)
        try:
            sub = Subscription.model_validate_json(raw)
        except ValueError:
            continue
        found.setdefault(sub.key, []).append(holder)
    return found

"""The engine in memory: a store and a task queue without Redis or Celery, for tests.

As dramatiq's stub broker and huey's ``MemoryHuey`` do for theirs, this lets every rule of the
engine (overlap policies, step outcomes, timeouts, cancel, supervision) be tested in one process
at a chosen time, with no server and no worker. :class:`MemoryStore` keeps the same keys as Redis
and runs the very commands :mod:`resoto_tasks.runs` hands its Lua script (guards first), so the
two stores cannot drift apart; :class:`MemoryTasks` records what the engine sends and
:meth:`MemoryTasks.drain` delivers it, answering each subscriber with the function a test gives.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from resoto_tasks import keys, runs, stats, subscribers
from resoto_tasks.engine import Engine
from resoto_tasks.models import ActionMessage, Outcome, OutcomeStatus, Run, StepRun, Subscription, TriggerInfo, Workflow
from resoto_tasks.runs import Applied, Guard, Versioned
from resoto_tasks.timeutil import from_ms
from resoto_tasks.transitions import Admission, Decision


@dataclass
class Clock:
    """A clock the test moves: ``clock.now_ms += 5_000``."""

    now_ms: int = 1_800_000_000_000

    def __call__(self) -> int:
        return self.now_ms


@dataclass
class MemoryStore:
    """Redis as the run store uses it: strings, sets, sorted sets, hashes and a stream, in dicts."""

    strings: dict[str, str] = field(default_factory=dict)
    sets: dict[str, set[str]] = field(default_factory=dict)
    zsets: dict[str, dict[str, float]] = field(default_factory=dict)
    hashes: dict[str, dict[str, str]] = field(default_factory=dict)
    stream: list[dict[str, str]] = field(default_factory=list)
    subscriptions: list[Subscription] = field(default_factory=list)
    """The live subscriptions (as workers' heartbeats would keep them)."""
    version: str = "0"
    conflicts: int = 0
    """How many applies a guard refused (a concurrent change the engine then re-read)."""

    # -- the Store protocol ----------------------------------------------------------------------

    def load(self, run_id: str) -> Versioned | None:
        raw = self.strings.get(keys.run(run_id))
        return Versioned(Run.model_validate_json(raw), runs.sha(raw)) if raw else None

    def load_with_live(self, run_id: str, at_ms: int) -> tuple[Versioned | None, dict[str, list[Subscription]], str]:
        version = self.strings.get(keys.workflows_version()) or "0"
        return self.load(run_id), subscribers.by_action(list(self.subscriptions)), version

    def admission(
        self, workflow: str, slot: str | None, live_at_ms: int | None = None
    ) -> tuple[Admission, list[Guard], str, dict[str, list[Subscription]]]:
        active = tuple(sorted(self.sets.get(keys.workflow_active(workflow), set())))
        queued = self.strings.get(keys.workflow_queued(workflow))
        guards: list[Guard] = [
            ("members", keys.workflow_active(workflow), ",".join(active)),
            ("value", keys.workflow_queued(workflow), queued or ""),
        ]
        taken = self.strings.get(keys.slot(workflow, slot)) if slot else None
        if slot:
            guards.append(("value", keys.slot(workflow, slot), taken or ""))
        version = self.strings.get(keys.workflows_version()) or "0"
        live = subscribers.by_action(list(self.subscriptions)) if live_at_ms is not None else {}
        return Admission(active=active, queued=queued, slot_taken=taken), guards, version, live

    def with_active_runs(self, state: Admission, guards: list[Guard]) -> tuple[Admission, list[Guard]]:
        found: dict[str, Run] = {}
        more = list(guards)
        for run_id in state.active:
            versioned = self.load(run_id)
            if versioned is not None:
                found[run_id] = versioned.run
                more.append(("sha", keys.run(run_id), versioned.sha))
        return dataclasses.replace(state, active_runs=found), more

    def apply(self, decision: Decision, guards: Sequence[Guard], reads: Sequence[str] = ()) -> Applied:
        guarded = {key for _, key, _ in guards}
        every = [*guards, *(("sha", keys.run(r.id), "") for r in decision.runs if keys.run(r.id) not in guarded)]
        for kind, key, expected in every:
            if self._actual(kind, key) != expected:
                self.conflicts += 1
                return Applied(False, {})
        commands = [["SET", keys.run(r.id), r.model_dump_json()] for r in decision.runs]
        at = "1970-01-01T00:00:00.000Z"
        for write in decision.writes:
            commands.extend(runs.commands_of(write, at))
        for command in commands:
            self._run(command)
        self.strings[keys.workflows_version()] = self.version
        return Applied(True, {key: self.strings.get(key, "") for key in reads})

    # -- helpers for tests -----------------------------------------------------------------------

    def subscribe(self, *subs: Subscription) -> None:
        self.subscriptions.extend(subs)

    def unsubscribe(self, *subscriber_ids: str) -> None:
        self.subscriptions = [s for s in self.subscriptions if s.subscriber_id not in subscriber_ids]

    def run(self, run_id: str) -> Run:
        found = self.load(run_id)
        assert found is not None, f"no run {run_id}"
        return found.run

    def records(self, kind: str) -> list[dict[str, Any]]:
        """The data of the stream entries of ``kind``, oldest first."""
        return [json.loads(e["data"]) for e in self.stream if e["kind"] == kind]

    def stat(self, name: str, *labels: str) -> float:
        return float(self.hashes.get(keys.stats(name), {}).get(stats.field(*labels), 0))

    # -- the commands the Lua script runs ----------------------------------------------------------

    def _actual(self, kind: str, key: str) -> str:
        if kind == "sha":
            return runs.sha(self.strings.get(key))
        if kind == "members":
            return ",".join(sorted(self.sets.get(key, set())))
        return self.strings.get(key, "")

    def _run(self, command: list[str]) -> None:
        name, key, *args = command
        match name:
            case "SET":
                self.strings[key] = args[0]
            case "DELIFEQ":
                if self.strings.get(key) == args[0]:
                    del self.strings[key]
            case "SADD":
                self.sets.setdefault(key, set()).update(args)
            case "SREM":
                self.sets.setdefault(key, set()).difference_update(args)
            case "ZADD":
                self.zsets.setdefault(key, {})[args[1]] = float(args[0])
            case "HINCRBYFLOAT":
                values = self.hashes.setdefault(key, {})
                values[args[0]] = repr(float(values.get(args[0], "0")) + float(args[1]))
            case "HSET":
                self.hashes.setdefault(key, {})[args[0]] = args[1]
            case "XADD":
                fields = args[args.index("*") + 1 :]
                self.stream.append(dict(zip(fields[::2], fields[1::2], strict=True)))
            case "EXPIRE":
                pass
            case _:
                raise ValueError(f"the memory store does not know {name}")


Answer = Callable[[ActionMessage], Outcome | None]
"""How a subscriber answers in memory; ``None`` means it never answers (it hangs, or its worker died)."""


def done(message: ActionMessage) -> Outcome:
    """The default answer: done at once."""
    return Outcome(subscriber_id=message.subscriber_id, status=OutcomeStatus.done, blocking=message.blocking)


def failing(text: str) -> Answer:
    def answer(message: ActionMessage) -> Outcome:
        return Outcome(subscriber_id=message.subscriber_id, status=OutcomeStatus.error, error=text)

    return answer


def silent(message: ActionMessage) -> None:
    """Never answers."""
    return


@dataclass
class MemoryTasks:
    """The task queue in memory: what the engine sends waits in :attr:`queue` until :meth:`drain`."""

    answers_by_subscriber: dict[str, Answer] = field(default_factory=dict)
    queue: deque[tuple[str, Any]] = field(default_factory=deque)
    results: dict[str, Outcome] = field(default_factory=dict)
    """Task id -> answer: the result backend."""
    sent: list[tuple[str, int, int, tuple[str, ...]]] = field(default_factory=list)
    """(run id, step index, epoch, subscriber ids) of every step sent."""
    revoked: list[tuple[tuple[str, ...], bool]] = field(default_factory=list)
    terminated_later: list[tuple[str, ...]] = field(default_factory=list)
    started: list[tuple[str, TriggerInfo]] = field(default_factory=list)
    _ids: Iterator[int] = field(default_factory=itertools.count)

    # -- the Tasks protocol ------------------------------------------------------------------------

    def send_step(self, run: Run, index: int, subs: Mapping[str, Subscription]) -> None:
        step = run.steps[index]
        self.sent.append((run.id, index, step.epoch, tuple(step.blocking + step.nonblocking)))
        self.queue.append(("step", (run, index, dict(subs))))

    def send_advance(self, run_id: str) -> None:
        self.queue.append(("advance", run_id))

    def send_start(self, workflow: str, trigger: TriggerInfo) -> None:
        self.started.append((workflow, trigger))
        self.queue.append(("start", (workflow, trigger)))

    def revoke(self, task_ids: Sequence[str], terminate: bool) -> None:
        self.revoked.append((tuple(task_ids), terminate))

    def terminate_later(self, task_ids: Sequence[str]) -> None:
        self.terminated_later.append(tuple(task_ids))

    def answers(self, step: StepRun, subscriber_ids: Iterable[str]) -> dict[str, Outcome]:
        return {
            sid: self.results[tid]
            for sid in subscriber_ids
            if (tid := step.task_ids.get(sid)) is not None and tid in self.results
        }

    # -- delivery ------------------------------------------------------------------------------------

    def task_id(self) -> str:
        return f"memory-task-{next(self._ids)}"

    def drain(self, engine: Engine, limit: int = 10_000) -> int:
        """Deliver everything queued (and what that queues) as workers would; returns how many."""
        delivered = 0
        while self.queue and delivered < limit:
            kind, payload = self.queue.popleft()
            delivered += 1
            if kind == "advance":
                engine.advance(payload, self.task_id())
            elif kind == "start":
                engine.start(payload[0], payload[1], dispatcher=self.task_id())
            else:
                self._deliver_step(engine, *payload)
        return delivered

    def _deliver_step(self, engine: Engine, run: Run, index: int, subs: Mapping[str, Subscription]) -> None:
        step = run.steps[index]
        answered: list[Outcome] = []
        for sid in step.blocking + step.nonblocking:
            message = ActionMessage.for_step(run, index, subs[sid])
            outcome = self.answers_by_subscriber.get(sid, done)(message)
            if outcome is None:
                continue
            outcome = outcome.model_copy(update={"finished_at": outcome.finished_at or from_ms(engine.clock())})
            self.results[step.task_ids[sid]] = outcome
            if sid in step.blocking:
                answered.append(outcome)
        if step.blocking and len(answered) == len(step.blocking):
            results = [o.model_dump(mode="json") for o in answered]
            engine.step_done(run.id, index, step.epoch, results, self.task_id())


def memory_engine(
    workflows: Mapping[str, Workflow],
    store: MemoryStore | None = None,
    tasks: MemoryTasks | None = None,
    clock: Clock | None = None,
) -> tuple[Engine, MemoryStore, MemoryTasks, Clock]:
    """An engine over memory: ``engine.start(...)`` then ``tasks.drain(engine)``."""
    store = store or MemoryStore()
    tasks = tasks or MemoryTasks()
    clock = clock or Clock()
    ids = itertools.count(1)
    engine = Engine(
        store=store,
        tasks=tasks,
        workflows=lambda _version: workflows,
        clock=clock,
        new_run_id=lambda: f"run-{next(ids)}",
    )
    return engine, store, tasks, clock

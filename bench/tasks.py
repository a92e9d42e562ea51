"""Tasks the benchmark workers run, loaded through ``RESOTO_HOOK_MODULES=bench.tasks``.

* ``bench.noop``: a resoto-tasks action task that does nothing (subscriptions point at it);
* ``bench.sleep``: one that sleeps ``sleep_s`` (the failover benchmark's slow subscriber);
* ``bench.plain_noop`` and ``bench.plain_step_done``: plain Celery no-op tasks (shared tasks,
  like resoto's own: defining them builds no app), the header and body of the baseline's chords.

With ``BENCH_PROBE=<base>`` set (only the profiling phase sets it), the worker measures itself
while the file ``<base>.on`` exists: ``BENCH_PROBE_MODE=rtt`` counts every Redis round trip
(every ``send_packed_command`` of redis-py, which kombu and Celery's backend use too) by the
task it ran in and the chain of ``resoto_tasks`` functions that caused it; ``time`` runs cProfile
around each task. The figures are written to ``<base>.<pid>.json``/``.pstats`` at exit.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import time
from collections import Counter
from types import FrameType
from typing import Any

from celery import current_task, shared_task

from resoto_tasks.subscribers import ActionContext, action_task

NOOP_TASK = "bench.noop"
SLEEP_TASK = "bench.sleep"
PLAIN_NOOP_TASK = "bench.plain_noop"
PLAIN_STEP_DONE_TASK = "bench.plain_step_done"


@action_task(NOOP_TASK, queue="workflow")
def noop(ctx: ActionContext) -> None:
    """A subscriber that answers at once: what is left is the orchestration."""


@action_task(SLEEP_TASK, queue="workflow")
def sleep(ctx: ActionContext) -> None:
    """A subscriber that works ``sleep_s`` seconds (its subscription's kwargs): the failover
    benchmark's slow collect, so the primary dies while a step is in flight."""
    time.sleep(float(ctx.kwargs.get("sleep_s", 0)))


@shared_task(name=PLAIN_NOOP_TASK)
def plain_noop() -> None:
    """The baseline's chord header task."""


@shared_task(name=PLAIN_STEP_DONE_TASK)
def plain_step_done() -> None:
    """The baseline's chord body (its step callback)."""


# ---------------------------------------------------------------------------------------------
# Round-trip counting (profiling phase only)
# ---------------------------------------------------------------------------------------------

_rtt: Counter[str] = Counter()
_LIBS = (
    ("kombu.transport.redis", "kombu broker"),
    ("celery.backends", "celery result backend"),
    ("celery.canvas", "celery canvas"),
    ("kombu", "kombu"),
    ("celery", "celery"),
    ("bench", "bench harness"),
)


def _lib(module: str) -> str:
    return next((label for prefix, label in _LIBS if module.startswith(prefix)), "")


def _origin() -> str:
    """``task | outer resoto fn > ... > inner resoto fn [library]`` of this round trip.

    The library is the innermost Celery/kombu layer between the resoto code and redis-py (a
    chord's ``apply_async`` inside ``dispatch.CeleryDispatcher.send_step`` shows as
    ``[kombu broker]`` for the messages and ``[celery result backend]`` for the chord's
    bookkeeping).
    """
    frame: FrameType | None = sys._getframe(2)
    chain: list[str] = []
    lib = ""
    while frame is not None:
        module = str(frame.f_globals.get("__name__", ""))
        if module == "resoto_tasks.result_backend":
            # resoto's subclass of Celery's result backend: it stores results, as Celery's does
            lib = lib or ("" if chain else "celery result backend")
        elif module.startswith("resoto_tasks"):
            name = f"{module.removeprefix('resoto_tasks.')}.{frame.f_code.co_name}"
            if not chain or chain[-1] != name:
                chain.append(name)
        elif not chain and not lib:
            lib = _lib(module)
        frame = frame.f_back
    task = current_task.name if current_task else "-"
    where = " > ".join(reversed(chain))
    if where and lib:
        return f"{task} | {where} [{lib}]"
    return f"{task} | {where or lib or 'redis-py direct'}"


_installed: list[bool] = []
_gate: list[str] = []
"""The path of a flag file: when set, round trips are counted only while the file exists."""


def _counting_now() -> bool:
    return not _gate or os.path.exists(_gate[0])


def install_counter() -> Counter[str]:
    """Patch redis-py in this process (once) to count round trips into the returned counter."""
    if not _installed:
        from redis.connection import AbstractConnection

        original = AbstractConnection.send_packed_command

        def counting(self: Any, command: Any, check_health: bool = True) -> Any:
            if _counting_now():
                _rtt[_origin()] += 1
            return original(self, command, check_health)

        AbstractConnection.send_packed_command = counting
        _installed.append(True)
    return _rtt


def _probe_worker(base: str, mode: str) -> None:
    """Measure this worker process while ``<base>.on`` exists; write ``<base>.<pid>.*`` at exit.

    ``mode="rtt"`` counts round trips; ``mode="time"`` runs cProfile around each task (from
    ``task_prerun`` to ``task_postrun``), so start-up, idle polling and message fetching stay out.
    """
    import cProfile

    from celery.signals import task_postrun, task_prerun

    flag = f"{base}.on"
    if mode == "rtt":
        _gate.append(flag)
        install_counter()

        def dump() -> None:
            with open(f"{base}.{os.getpid()}.json", "w", encoding="utf-8") as fh:
                json.dump(dict(_rtt), fh)

    else:
        profile = cProfile.Profile()

        def start(**_: Any) -> None:
            if os.path.exists(flag):
                profile.enable()

        def stop(**_: Any) -> None:
            profile.disable()

        task_prerun.connect(start, weak=False)
        task_postrun.connect(stop, weak=False)

        def dump() -> None:
            profile.dump_stats(f"{base}.{os.getpid()}.pstats")

    atexit.register(dump)


if os.environ.get("BENCH_PROBE"):
    _probe_worker(os.environ["BENCH_PROBE"], os.environ.get("BENCH_PROBE_MODE", "time"))

"""Subscriber tasks the tests point subscriptions at; loaded by workers via RESOTO_HOOK_MODULES.

``tests.behave`` does what its subscription's kwargs say (sleep, raise, return garbage, hang
past its limits) and records when it ran, so tests can check ordering from Redis.
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis
from celery import shared_task

from resoto_tasks.redis_conn import client
from resoto_tasks.subscribers import ActionContext, action_task, subscriber


class NotJson:
    """Something a subscriber may return that JSON cannot encode."""


@action_task("tests.behave", queue="workflow")
def behave(ctx: ActionContext) -> Any:
    started = time.time()
    kwargs = ctx.kwargs
    sleep_s = float(kwargs.get("sleep", 0))
    steps = max(1, int(sleep_s / 0.05))
    for i in range(steps if sleep_s else 0):
        if kwargs.get("honour_abort") and ctx.aborted:
            break
        time.sleep(sleep_s / steps)
        ctx.progress(i + 1, steps)
    gate = kwargs.get("until_key")
    while gate and not _open(str(gate)):  # held until the test opens the gate (through a Redis restart too)
        time.sleep(0.02)
    if kwargs.get("hang"):
        while True:  # ignores the soft time limit: only the hard limit ends it
            try:
                time.sleep(0.1)
            except BaseException:
                continue
    record = {"step": ctx.step, "sub": ctx.message.subscriber_id, "start": started, "end": time.time()}
    client().rpush(f"test:calls:{ctx.run_id}", json.dumps(record))
    if kwargs.get("raise"):
        raise RuntimeError(str(kwargs["raise"]))
    if kwargs.get("garbage"):
        return NotJson()
    return {"ok": True}


def _open(gate: str) -> bool:
    try:
        return bool(client().exists(gate))
    except redis.exceptions.RedisError:
        return False


@subscriber("probe_action", queue="probe", timeout_s=5)
def probe(ctx: ActionContext) -> None:
    """A static hook: registered by any worker that consumes the ``probe`` queue."""


@shared_task(name="tests.marker", queue="workflow")
def marker(key: str) -> None:
    """Proves a message was executed: sets ``key``."""
    client().set(key, "executed", ex=600)

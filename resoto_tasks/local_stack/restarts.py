"""When ``up`` restarts a child that exited on its own: at once the first time, slower if it keeps dying.

Why ``up`` restarts at all: a Celery worker can exit when its Redis connection drops (Celery 5.7.0,
see the README's known limits) and a beat that lost its lock exits by design; in production a
process supervisor (systemd, Kubernetes, compose ``restart:``) brings them back, and ``up`` is
the local stack's supervisor. The backoff is the usual one: a child that crashes right after
starting is not restarted in a tight loop, and one that ran for a while before it died starts
afresh at the shortest delay.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

BACKOFF_S: Final = (1.0, 2.0, 5.0, 10.0, 30.0)
"""Delays before the 1st, 2nd, ... restart in a row; the last one repeats."""
STABLE_AFTER_S: Final = 60.0
"""A child that ran at least this long before exiting has its backoff reset."""


@dataclass
class RestartPolicy:
    """Remembers, per child name, how often it died in a row and when it is due to start again."""

    backoff_s: tuple[float, ...] = BACKOFF_S
    stable_after_s: float = STABLE_AFTER_S
    _in_a_row: dict[str, int] = field(default_factory=dict)
    _due_at: dict[str, float] = field(default_factory=dict)

    def exited(self, name: str, ran_for_s: float, now: float) -> float:
        """Record that ``name`` exited after running ``ran_for_s``; returns the delay before its restart."""
        if ran_for_s >= self.stable_after_s:
            self._in_a_row[name] = 0
        count = self._in_a_row.get(name, 0)
        delay = self.backoff_s[min(count, len(self.backoff_s) - 1)]
        self._in_a_row[name] = count + 1
        self._due_at[name] = now + delay
        return delay

    def due(self, now: float) -> list[str]:
        """The children whose delay has passed, each returned once (in the order they exited)."""
        ready = [name for name, at in self._due_at.items() if at <= now]
        for name in ready:
            del self._due_at[name]
        return ready

    def restarts_in_a_row(self, name: str) -> int:
        return self._in_a_row.get(name, 0)

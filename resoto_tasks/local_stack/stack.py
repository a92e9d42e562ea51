"""The running stack: start every planned process, wait until the workers serve, watch, stop.

Ready means: each worker's bootstep has written its heartbeat ``keys.worker_alive(hostname)``,
which it does after registering its subscriptions. So when every worker is ready, every
subscription is in Redis and a run started now sees all of them (the set of subscribers is taken
when a step starts). Flower is ready when ``/healthcheck`` answers; it is optional, so it is
waited for only briefly. Beat has no readiness signal; it is only watched for an early exit.

A child that exits on its own is reported by :meth:`exits`; ``up`` restarts it with
:meth:`restart` after the delay :mod:`resoto_tasks.local_stack.restarts` gives.

Stop order: Flower and beat first (no new runs), then the workers together (each finishes the
task it runs, within the timeout), Redis last, and only if the stack started it.
"""

from __future__ import annotations

import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from resoto_tasks import keys
from resoto_tasks.local_stack.errors import NotReady, ProcessFailed
from resoto_tasks.local_stack.paths import StackPaths
from resoto_tasks.local_stack.plan import ProcessSpec, Role
from resoto_tasks.local_stack.processes import ManagedProcess, stop_all
from resoto_tasks.local_stack.redis_local import StackRedis
from resoto_tasks.redis_conn import client

STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
"""The signals ``up`` stops on (see ``cli.up_cmd.SignalGuard``)."""
FLOWER_GRACE_S = 10.0
"""How long Flower may take after the workers are ready before ``up`` goes on without it."""


def http_ok(url: str, timeout_s: float = 0.5) -> bool:
    """True if ``url`` answers 2xx (any HTTP answer counts as "up" only when it is a success)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return 200 <= int(response.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


@dataclass
class LocalStack:
    """Redis (maybe ours) plus the planned processes; owns every process it started."""

    paths: StackPaths
    redis: StackRedis
    specs: list[ProcessSpec]
    env: Mapping[str, str]
    processes: dict[str, ManagedProcess] = field(default_factory=dict)
    ready_after_s: dict[str, float] = field(default_factory=dict)
    _reported: set[str] = field(default_factory=set)
    _force: bool = False
    _stopped: bool = False

    def start(self) -> None:
        """Start every planned process (they come up in parallel).

        Raises:
            ProcessFailed: a command could not be executed at all.
        """
        for spec in self.specs:
            process = ManagedProcess(spec.name, spec.argv, self.paths.log(spec.name), env=self.env)
            self.processes[spec.name] = process
            try:
                process.start()
            except OSError as exc:
                raise ProcessFailed(spec.name, None, process.log_path, str(exc)) from None

    def wait_ready(
        self,
        timeout_s: float,
        on_ready: Callable[[ProcessSpec, float], None] = lambda spec, elapsed: None,
        poll_s: float = 0.1,
    ) -> None:
        """Block until every worker is ready; Flower gets a short grace period after that.

        Raises:
            ProcessFailed: a worker, beat or Flower exited while starting.
            NotReady: a worker was not ready within ``timeout_s``.
        """
        started = time.monotonic()
        deadline = started + timeout_s
        waiting = {s.name: s for s in self.specs if s.role in (Role.worker, Role.flower, Role.web)}
        workers_done_at: float | None = None
        while waiting:
            for spec in self.specs:
                process = self.processes[spec.name]
                if not process.alive and spec.name not in self._reported:
                    if spec.role == Role.worker:
                        raise ProcessFailed(spec.name, process.returncode, process.log_path, process.tail())
                    waiting.pop(spec.name, None)  # beat or Flower died: reported by exits(), not fatal
            for name, spec in list(waiting.items()):
                if self._is_ready(spec):
                    elapsed = time.monotonic() - started
                    self.ready_after_s[name] = elapsed
                    on_ready(spec, elapsed)
                    del waiting[name]
            now = time.monotonic()
            pending_workers = [s for s in waiting.values() if s.role == Role.worker]
            if not pending_workers:
                workers_done_at = workers_done_at or now
                if now - workers_done_at > FLOWER_GRACE_S:
                    return
            elif now > deadline:
                raise NotReady(
                    [s.name for s in pending_workers], timeout_s, [self.paths.log(s.name) for s in pending_workers]
                )
            if waiting:
                time.sleep(poll_s)

    def _is_ready(self, spec: ProcessSpec) -> bool:
        if spec.role == Role.worker and spec.hostname:
            return bool(client().exists(keys.worker_alive(spec.hostname)))
        if spec.role == Role.flower and spec.url:
            return http_ok(f"{spec.url}/healthcheck")
        if spec.role == Role.web and spec.url:
            return http_ok(f"{spec.url}/health")
        return True

    def exits(self) -> list[tuple[ProcessSpec, int | None]]:
        """Children that exited since the last call (each reported once)."""
        found: list[tuple[ProcessSpec, int | None]] = []
        for spec in self.specs:
            process = self.processes.get(spec.name)
            if (
                process is not None
                and process.proc is not None
                and not process.alive
                and spec.name not in self._reported
            ):
                self._reported.add(spec.name)
                found.append((spec, process.returncode))
        if self.redis.process is not None and not self.redis.process.alive and "redis" not in self._reported:
            self._reported.add("redis")
            found.append(
                (
                    ProcessSpec(name="redis", role=Role.worker, argv=tuple(self.redis.process.argv)),
                    self.redis.process.returncode,
                )
            )
        return found

    def restart(self, name: str) -> ManagedProcess:
        """Start a fresh process for a child that exited (what is left of its group is killed first).

        The new process has the same command, environment and log (appended to), so a restarted
        worker has the same node name and queues; it is watched by :meth:`exits` again.

        Raises:
            OSError: the command could not be executed.
        """
        spec = next(s for s in self.specs if s.name == name)
        old = self.processes[name]
        if old.group_alive():  # pool children of a worker whose parent was killed
            old.kill_group()
        process = ManagedProcess(spec.name, spec.argv, self.paths.log(spec.name), env=self.env)
        # A Ctrl-C now would raise between starting the child and recording it, and stop() would
        # not know it: the signal waits until the child is in ``processes`` (the child itself
        # starts with no signal blocked, see processes._child_setup).
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            process.start()
            self.processes[name] = process
            self._reported.discard(name)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        return process

    def force(self) -> None:
        """Cut any stop wait short (a second Ctrl-C): remaining processes are killed at once."""
        self._force = True

    def pids(self) -> dict[str, int]:
        found = {name: p.pid for name, p in self.processes.items() if p.pid is not None}
        if self.redis.process is not None and self.redis.process.pid is not None:
            found["redis"] = self.redis.process.pid
        return found

    def stop(self, timeout_s: float) -> dict[str, str]:
        """Stop everything this stack started, in order; returns how each process ended."""
        if self._stopped:
            return {}
        self._stopped = True
        front = [p for n, p in self.processes.items() if self._role(n) in (Role.flower, Role.web, Role.beat)]
        workers = [p for n, p in self.processes.items() if self._role(n) == Role.worker]
        how = stop_all(front, timeout_s=min(timeout_s, 5.0), force=lambda: self._force)
        how.update(stop_all(workers, timeout_s=timeout_s, force=lambda: self._force))
        if self.redis.process is not None:
            how.update(stop_all([self.redis.process], timeout_s=timeout_s, force=lambda: self._force))
            self.redis.release()
        return how

    def _role(self, name: str) -> Role:
        return next(s.role for s in self.specs if s.name == name)

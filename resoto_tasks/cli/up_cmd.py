"""``resoto-tasks up``: the whole stack in the foreground, one run at once, then the schedule.

Order of events, each printed as it happens:

1. a Redis: ``RESOTO_REDIS_URL`` if it answers, else one started here (see
   :mod:`resoto_tasks.local_stack.redis_local`);
2. a worker per queue, beat, Flower and the web console as child processes, logs in the run directory;
3. once every worker is ready, the workflow (``collect_and_cleanup``) starts; its progress is
   shown live (a step timeline on a terminal, one line per step otherwise);
4. a summary: what was collected, marked and deleted, and where metrics, Flower, the web console
   and logs are;
5. with ``--once``: stop everything and exit with the run's status; else keep running (beat
   fires the schedule) until Ctrl-C or SIGTERM, which stop every process this command started.
   While it runs, a worker, beat or Flower that exits on its own is restarted (with a backoff,
   :mod:`resoto_tasks.local_stack.restarts`), as a process supervisor would in production.

A second Ctrl-C while stopping kills what is left at once instead of waiting.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import redis
import typer
from rich.markup import escape

from resoto_tasks import runs, runtime, supervisor, views, workflows
from resoto_tasks.cli.common import (
    EXIT_FAILED,
    EXIT_NOT_STARTED,
    EXIT_OK,
    EXIT_USAGE,
    console,
    err_console,
    print_json,
)
from resoto_tasks.cli.render import STATUS_STYLE, duration_s, run_summary
from resoto_tasks.cli.runs_cmd import wait_for
from resoto_tasks.errors import ConfigurationError, ResotoError, UnknownWorkflow
from resoto_tasks.local_stack import environment, leftovers, redis_local, summary
from resoto_tasks.local_stack.paths import StackPaths, make_paths
from resoto_tasks.local_stack.plan import (
    DEFAULT_CONCURRENCY,
    DEFAULT_FLOWER_PORT,
    DEFAULT_METRICS_PORT,
    DEFAULT_WEB_PORT,
    ProcessSpec,
    Role,
    StackOptions,
    flower_installed,
    plan,
    web_installed,
)
from resoto_tasks.local_stack.processes import require_psutil, stop_all
from resoto_tasks.local_stack.redis_local import RedisSource, StackRedis
from resoto_tasks.local_stack.restarts import RestartPolicy
from resoto_tasks.local_stack.stack import STOP_SIGNALS, LocalStack, http_ok
from resoto_tasks.models import (
    CronTrigger,
    IntervalTrigger,
    Run,
    RunStatus,
    StartStatus,
    StepStatus,
    TriggerInfo,
    TriggerKind,
)
from resoto_tasks.redis_conn import describe, mask_url
from resoto_tasks.settings import get_settings
from resoto_tasks.timeutil import human_duration
from worker import ledger

EXIT_INTERRUPTED = 130
"""``--once`` was interrupted (Ctrl-C / SIGTERM) before its run ended."""

WATCH_INTERVAL_S = 1.0
RUNS_POLL_S = 2.0


class Interrupted(Exception):
    """Ctrl-C or SIGTERM arrived; raised from the signal handler in the main thread."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class SignalGuard:
    """SIGINT, SIGTERM and SIGHUP stop the stack: the first raises :class:`Interrupted`, later ones force.

    Once stopping has begun, a signal must not raise inside the stop sequence (that would leave
    processes running), so it only asks the stack to kill what is left at once.
    """

    def __init__(self) -> None:
        self.stack: LocalStack | None = None
        self.stopping = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> SignalGuard:
        for signum in sorted(STOP_SIGNALS):  # SIGHUP: the terminal closed
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping:
            if self.stack is not None:
                self.stack.force()
            return
        self.stopping = True
        raise Interrupted(signum)


class Reporter:
    """Lines for people: on stdout normally, on stderr with ``--json`` (stdout is the document)."""

    def __init__(self, json_: bool) -> None:
        self.json = json_
        self.out = err_console if json_ else console

    def say(self, text: str) -> None:
        """``text`` is rich markup: escape what comes from outside (paths, URLs, messages)."""
        self.out.print(text, soft_wrap=True, highlight=False)

    def warn(self, text: str) -> None:
        """``text`` is plain: brackets in paths or messages are not markup."""
        self.out.print(f"[yellow]warning:[/] {escape(text)}", soft_wrap=True, highlight=False)

    def error(self, text: str) -> None:
        """``text`` is plain, as in :meth:`warn`."""
        err_console.print(f"[bold red]error:[/] {escape(text)}", soft_wrap=True, highlight=False)


def up(
    once: Annotated[
        bool,
        typer.Option("--once", help="Run the workflow once, stop everything, exit with its status (0 = succeeded)."),
    ] = False,
    workflow: Annotated[str, typer.Option("--workflow", help="The workflow to run at once.")] = "collect_and_cleanup",
    json_: Annotated[
        bool,
        typer.Option(
            "--json", help="Print one JSON document (processes, run, summary) on stdout; progress goes to stderr."
        ),
    ] = False,
    metrics_port: Annotated[
        int, typer.Option(min=1, max=65535, help="Port of the metrics worker's /metrics.")
    ] = DEFAULT_METRICS_PORT,
    flower_port: Annotated[int, typer.Option(min=1, max=65535, help="Port of Flower.")] = DEFAULT_FLOWER_PORT,
    flower: Annotated[bool, typer.Option("--flower/--no-flower", help="Start Flower (if installed).")] = True,
    web_port: Annotated[int, typer.Option(min=1, max=65535, help="Port of the web console.")] = DEFAULT_WEB_PORT,
    web: Annotated[
        bool, typer.Option("--web/--no-web", help="Start the web console (if the web extra is installed).")
    ] = True,
    beat: Annotated[bool, typer.Option("--beat/--no-beat", help="Start beat (the schedule).")] = True,
    restart: Annotated[
        bool,
        typer.Option("--restart/--no-restart", help="Restart a worker, beat or Flower that exits on its own."),
    ] = True,
    concurrency: Annotated[int, typer.Option(min=1, help="Pool processes per worker.")] = DEFAULT_CONCURRENCY,
    cleanup_dry_run: Annotated[
        bool, typer.Option("--cleanup-dry-run", help="The cleaner records but deletes nothing.")
    ] = False,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Logs and Redis data.", show_default="~/.local/share/resoto-tasks"),
    ] = None,
    ready_timeout: Annotated[float, typer.Option(help="Seconds the workers may take to come up.")] = 60.0,
    run_timeout: Annotated[float, typer.Option(help="Seconds to wait for the first run.")] = 1800.0,
    stop_timeout: Annotated[float, typer.Option(help="Seconds a process may take to stop before it is killed.")] = 15.0,
) -> None:
    """Bring up the whole stack (Redis, a worker per queue, beat, Flower, the web console) and run a workflow at once.

    Without --once it keeps running, with the schedule, until Ctrl-C; --once exits with the run's status.

    Child logs go to a run directory, printed at start.
    """
    options = StackOptions(
        concurrency=concurrency,
        metrics_port=metrics_port,
        flower_port=flower_port,
        beat=beat and not once,
        flower=flower and not once,
        web=web and not once,
        web_port=web_port,
        cleanup_dry_run=cleanup_dry_run,
    )
    session = UpSession(options, Reporter(json_), workflow, once, restart=restart)
    code = session.run(data_dir, ready_timeout, run_timeout, stop_timeout)
    raise typer.Exit(code)


class UpSession:
    """One ``up``: owns the stack from the first process it starts to the last it stops."""

    def __init__(self, options: StackOptions, report: Reporter, workflow: str, once: bool, *, restart: bool) -> None:
        self.options = options
        self.restarts = RestartPolicy() if restart else None
        self._supervise_at = 0.0
        self.report = report
        self.workflow = workflow
        self.once = once
        self.redis: StackRedis | None = None
        self.stack: LocalStack | None = None
        self.paths: StackPaths | None = None
        self.document: dict[str, Any] = {}
        self.configured_url = ""

    def run(self, data_dir: Path | None, ready_timeout: float, run_timeout: float, stop_timeout: float) -> int:
        guard = SignalGuard()
        code = EXIT_FAILED
        with guard:
            try:
                self._bring_up(data_dir, guard, ready_timeout)
                code = self._first_run(run_timeout)
                self._emit_document(code)
                if not self.once:
                    self._serve()
            except Interrupted as exc:
                code = EXIT_INTERRUPTED if self.once else EXIT_OK
                self.report.say(f"\n{exc.args[0]}: stopping the stack")
            except (ResotoError, redis.exceptions.RedisError) as exc:
                for line in str(exc).splitlines():
                    self.report.error(line)
                code = EXIT_USAGE if isinstance(exc, ConfigurationError | UnknownWorkflow) else EXIT_FAILED
            finally:
                guard.stopping = True
                self._stop(stop_timeout)
        return code

    def _emit_document(self, code: int) -> None:
        """With ``--json``: the document, as soon as the first run ended (the stack may keep running)."""
        if self.report.json and self.document:
            self.document["run_exit_code"] = code
            print_json(self.document)
            sys.stdout.flush()

    # -- bringing it up -------------------------------------------------------------------------

    def _bring_up(self, data_dir: Path | None, guard: SignalGuard, ready_timeout: float) -> None:
        require_psutil()
        self.paths = paths = make_paths(data_dir)
        self.report.say(
            f"[bold]resoto-tasks up[/]  logs: {escape(str(paths.run_dir))}"
            + ("  [yellow](data dir not writable: using a temporary one)[/]" if paths.temporary else "")
        )
        self.configured_url = get_settings().redis_url
        self.redis = chosen = redis_local.choose(self.configured_url, paths)
        self._say_redis(chosen)
        env = environment.child_env(chosen)
        environment.use_in_this_process(env)
        for name in environment.ignored_split_urls(chosen):
            self.report.warn(f"{name} is ignored: every role uses the Redis started here")
        workflows.catalogue.get(self.workflow)  # an unknown name fails before any worker starts
        if chosen.started:
            for run_id in leftovers.cancel_leftover_runs():
                self.report.warn(f"cancelled run {run_id}: {leftovers.REASON}")
        self._warn_busy_ports()
        specs = plan(
            self.options, token=paths.run_dir.name.rsplit("-", 1)[-1], host=socket.gethostname(), run_dir=paths.run_dir
        )
        self.stack = stack = LocalStack(paths=paths, redis=chosen, specs=specs, env=env)
        guard.stack = stack
        stack.start()
        self._write_stack_file()
        self._say_plan(specs)
        stack.wait_ready(ready_timeout, on_ready=self._say_ready)
        self._watch_children()  # beat or Flower may have died while the workers came up

    def _say_redis(self, chosen: StackRedis) -> None:
        url = escape(mask_url(chosen.url))
        if chosen.source == RedisSource.configured:
            self.report.say(f"redis     {url} (Redis {chosen.version}, already running)")
            return
        where = f"data in {escape(str(chosen.data_dir))}" if chosen.data_dir else ""
        self.report.say(
            f"redis     {url}: started {chosen.source.value} {chosen.version}, {where} "
            f"[dim]({escape(chosen.fallback_reason or '')})[/]"
        )

    def _warn_busy_ports(self) -> None:
        for label, port, wanted in (
            ("metrics", self.options.metrics_port, True),
            ("flower", self.options.flower_port, self.options.flower),
            ("web", self.options.web_port, self.options.web),
        ):
            if wanted and not redis_local.port_free(port):
                self.report.warn(f"port {port} ({label}) is already in use; pass --{label}-port to choose another")

    def _say_plan(self, specs: list[ProcessSpec]) -> None:
        assert self.stack is not None
        for spec in specs:
            pid = self.stack.processes[spec.name].pid
            self.report.say(
                f"{spec.role.value:<9} {spec.name:<16} pid {pid}  [dim]{escape(' '.join(spec.argv[3:]))}[/]"
            )
        if not self.options.flower and not self.once:
            self.report.say("[dim]flower    disabled (--no-flower)[/]")
        elif self.options.flower and not flower_installed():
            self.report.say("[dim]flower    not installed: pip install 'resoto-tasks\\[flower]'[/]")

    def _say_ready(self, spec: ProcessSpec, elapsed_s: float) -> None:
        where = f" at {escape(spec.url)}" if spec.url else ""
        self.report.say(f"ready     {spec.name}{where} [dim]after {elapsed_s:.1f} s[/]")

    def _write_stack_file(self) -> None:
        assert self.stack is not None and self.paths is not None and self.redis is not None
        doc = {
            "redis": {
                "url": mask_url(self.redis.url),
                "source": self.redis.source.value,
                "version": self.redis.version,
                "pid": self.stack.pids().get("redis"),
            },
            "processes": [
                {
                    "name": s.name,
                    "pid": self.stack.processes[s.name].pid,
                    "argv": list(s.argv),
                    "log": str(self.paths.log(s.name)),
                }
                for s in self.stack.specs
            ],
        }
        (self.paths.run_dir / "stack.json").write_text(json.dumps(doc, indent=2))

    # -- the first run --------------------------------------------------------------------------

    def _first_run(self, run_timeout: float) -> int:
        result = runtime.engine().start(self.workflow, TriggerInfo(kind=TriggerKind.manual, details={"by": "up"}))
        if result.status in (StartStatus.skipped, StartStatus.duplicate) or result.run_id is None:
            self.report.warn(f"{self.workflow} not started: {result.message}")
            self.document = self._document(None)
            return EXIT_NOT_STARTED
        note = f": {escape(result.message)}" if result.status == StartStatus.queued else ""
        self.report.say(f"run       {result.run_id} {self.workflow} {result.status.value}{note}")
        live = not self.report.json and console.is_terminal
        if live:
            run = wait_for(result.run_id, run_timeout, live=True, tick=self._tick)
        else:
            run = follow_lines(result.run_id, run_timeout, self.report.say, tick=self._tick)
        if run is None:
            self.report.error(
                f"run {result.run_id} did not end within {run_timeout:g} s (resoto-tasks runs show {result.run_id})"
            )
            self.document = self._document(runtime.engine().view(result.run_id))
            return EXIT_FAILED
        self._summarize(run)
        return EXIT_OK if run.status == RunStatus.succeeded else EXIT_FAILED

    def _summarize(self, run: Run) -> None:
        assert self.stack is not None
        store, note = _store_counts()
        totals = (ledger.summary(run.id, with_entries=False) or {}).get("totals", {})
        found = summary.summarize(run, store, note, totals)
        self.document = self._document(run, found)
        if not self.report.json:
            console.print(run_summary(found, self._links()))
        if self.redis is not None and self.redis.started and self.configured_url != self.redis.url:
            self.report.say(f"[dim]other terminals: export RESOTO_REDIS_URL={escape(self.redis.url)}[/]")

    def _links(self) -> dict[str, str]:
        assert self.paths is not None and self.redis is not None
        metrics = f"http://127.0.0.1:{self.options.metrics_port}/metrics"
        return {
            "metrics": f"{metrics}  "
            + (
                "[green](answering)[/]"
                if http_ok(metrics)
                else "[yellow](not answering: no metrics worker serves it)[/]"
            ),
            "flower": self._flower_text(),
            "web": self._web_text(),
            "logs": escape(str(self.paths.run_dir)),
            "redis": escape(f"{mask_url(self.redis.url)} ({self.redis.source.value} {self.redis.version})"),
        }

    def _flower_text(self) -> str:
        if self.once:
            return "not started with --once"
        if not self.options.flower:
            return "disabled (--no-flower)"
        if not flower_installed():
            return "not installed: pip install 'resoto-tasks\\[flower]'"
        url = f"http://127.0.0.1:{self.options.flower_port}"
        return f"{url}  " + (
            "[green](answering)[/]" if http_ok(f"{url}/healthcheck") else "[yellow](not answering: see its log)[/]"
        )

    def _web_text(self) -> str:
        if self.once:
            return "not started with --once"
        if not self.options.web:
            return "disabled (--no-web)"
        if not web_installed():
            return "not installed: pip install 'resoto-tasks\\[web]'"
        url = f"http://127.0.0.1:{self.options.web_port}"
        return f"{url}  " + (
            "[green](answering)[/]" if http_ok(f"{url}/health") else "[yellow](not answering: see its log)[/]"
        )

    def _document(self, run: Run | None, found: summary.RunSummary | None = None) -> dict[str, Any]:
        assert self.stack is not None and self.paths is not None and self.redis is not None
        flower_url = next((s.url for s in self.stack.specs if s.role == Role.flower), None)
        web_url = next((s.url for s in self.stack.specs if s.role == Role.web), None)
        return {
            "run_dir": str(self.paths.run_dir),
            "redis": {
                "url": mask_url(self.redis.url),
                "source": self.redis.source.value,
                "version": self.redis.version,
                "started": self.redis.started,
                "pid": self.redis.process.pid if self.redis.process is not None else None,
                "fallback_reason": self.redis.fallback_reason,
            },
            "processes": [
                {
                    "name": s.name,
                    "role": s.role.value,
                    "pid": self.stack.processes[s.name].pid,
                    "log": str(self.paths.log(s.name)),
                    "ready_after_s": self.stack.ready_after_s.get(s.name),
                }
                for s in self.stack.specs
            ],
            "urls": {
                "metrics": f"http://127.0.0.1:{self.options.metrics_port}/metrics",
                "flower": flower_url,
                "web": web_url,
            },
            "summary": found.to_json() if found is not None else None,
            "run": run.model_dump(mode="json") if run is not None else None,
        }

    # -- keeping it running ---------------------------------------------------------------------

    def _serve(self) -> None:
        assert self.stack is not None
        schedules = scheduled_workflows()
        if schedules and self.options.beat:
            self.report.say("schedule  " + escape(", ".join(f"{n}: {s}" for n, s in schedules.items())))
        self.report.say("[bold]stack running[/]: Ctrl-C stops every process it started")
        seen = {r.id for r in runs.list_runs(limit=50) if r.status.finished}
        last_poll = 0.0
        redis_warned = False
        while True:
            time.sleep(WATCH_INTERVAL_S)
            self._tick()
            if time.monotonic() - last_poll < RUNS_POLL_S:
                continue
            last_poll = time.monotonic()
            try:
                recent = runs.list_runs(limit=20)
                redis_warned = False
            except redis.exceptions.RedisError as exc:
                if not redis_warned:
                    self.report.warn(f"cannot read runs from Redis: {exc}")
                    redis_warned = True
                continue
            for run in reversed(recent):
                if run.status.finished and run.id not in seen:
                    seen.add(run.id)
                    self.report.say(run_line(run))

    def _tick(self) -> None:
        """Watch the children; without beat, also be the supervisor (it is beat that schedules it)."""
        self._watch_children()
        now = time.monotonic()
        if not self.options.beat and now >= self._supervise_at:  # --once or --no-beat: nobody else would
            self._supervise_at = now + get_settings().supervisor_interval_s
            with contextlib.suppress(redis.exceptions.RedisError):  # Redis trouble is reported elsewhere
                supervisor.tick_if_due(runtime.engine())

    def _watch_children(self) -> None:
        """Report children that exited; restart workers, beat and Flower when their delay is up."""
        assert self.stack is not None and self.paths is not None
        now = time.monotonic()
        for spec, code in self.stack.exits():
            log = self.paths.log(spec.name)
            if self.restarts is None or spec.name not in self.stack.processes:  # Redis is not restarted
                self.report.warn(f"{spec.name} exited with code {code} (log: {log})")
                continue
            ran_for_s = now - self.stack.processes[spec.name].started_at
            delay = self.restarts.exited(spec.name, ran_for_s, now)
            self.report.warn(f"{spec.name} exited with code {code} (log: {log}); restarting in {delay:g} s")
        if self.restarts is None:
            return
        for name in self.restarts.due(now):
            try:
                process = self.stack.restart(name)
            except OSError as exc:
                delay = self.restarts.exited(name, 0.0, now)
                self.report.warn(f"{name} could not be restarted ({exc}); trying again in {delay:g} s")
                continue
            times = self.restarts.restarts_in_a_row(name)
            self.report.say(f"restarted {name} pid {process.pid} [dim](restart {times} in a row)[/]")
            self._write_stack_file()

    def _stop(self, stop_timeout: float) -> None:
        started = time.monotonic()
        if self.stack is not None:
            how = self.stack.stop(stop_timeout)
        elif self.redis is not None and self.redis.process is not None:  # failed before the stack existed
            how = stop_all([self.redis.process], timeout_s=stop_timeout)
            self.redis.release()
        else:
            how = {}
        if how:
            parts = escape(", ".join(f"{name} {ended}" for name, ended in how.items()))
            self.report.say(f"stopped   in {time.monotonic() - started:.1f} s: [dim]{parts}[/]")


def follow_lines(
    run_id: str, timeout_s: float | None, say: Callable[[str], None], tick: Callable[[], None] = lambda: None
) -> Run | None:
    """Progress for logs and pipes: one line per step as it finishes; None if ``timeout_s`` passed.

    ``tick`` is called on every poll (``up`` watches its children there)."""
    deadline = time.monotonic() + timeout_s if timeout_s else None
    printed = 0
    engine = runtime.engine()
    while True:
        run = engine.view(run_id)
        while printed < len(run.steps) and run.steps[printed].status.finished:
            step = run.steps[printed]
            took = human_duration(duration_s(step.started_at, step.finished_at))
            subs = f", {len(step.blocking)} subscriber(s)" if step.blocking else ""
            mark = (
                "✓"
                if step.status == StepStatus.done
                else "✗"
                if step.status in (StepStatus.failed, StepStatus.timed_out)
                else "·"
            )
            say(f"  {mark} {step.name:<24} {step.status.value:<9} {took}{subs}")
            printed += 1
        if run.status.finished:
            return run
        if deadline is not None and time.monotonic() > deadline:
            return None
        tick()
        time.sleep(0.1)


def run_line(run: Run) -> str:
    took = human_duration(duration_s(run.started_at, run.finished_at))
    style = STATUS_STYLE.get(run.status, "")
    return (
        f"run       {run.id} {run.workflow} [{style}]{run.status.value}[/] in {took} [dim]({run.trigger.kind.value})[/]"
    )


def scheduled_workflows() -> dict[str, str]:
    """Workflow -> its time triggers, as beat will fire them."""
    found: dict[str, str] = {}
    for wf in workflows.catalogue.all().values():
        times = [
            t.cron if isinstance(t, CronTrigger) else f"every {t.interval}"
            for t in wf.triggers
            if isinstance(t, CronTrigger | IntervalTrigger)
        ]
        if times:
            found[wf.name] = ", ".join(times)
    return found


def _store_counts() -> tuple[dict[str, Any] | None, str | None]:
    """What ``resources count --json`` prints, read from the stack's Redis (this process is
    composed on it), or why it could not be read: the summary shows the note instead."""
    try:
        return views.resource_counts().model_dump(mode="json"), None
    except (redis.exceptions.RedisError, OSError) as exc:
        return None, f"resources count failed: {describe(exc)}"

"""The stack's plan: a worker for every queue, with the flags each concern needs."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from resoto_tasks.local_stack.plan import Role, StackOptions, plan
from resoto_tasks.local_stack.summary import summarize
from resoto_tasks.models import Outcome, OutcomeStatus, Run, RunStatus, StepRun, StepStatus, TriggerInfo, TriggerKind
from resoto_tasks.routing import QUEUES


def test_every_queue_gets_exactly_one_worker_with_a_unique_node_name(tmp_path: Path) -> None:
    specs = plan(StackOptions(), token="t1", host="h", run_dir=tmp_path)
    workers = [s for s in specs if s.role == Role.worker]
    assert sorted(s.queue for s in workers if s.queue) == sorted(QUEUES)
    assert len({s.hostname for s in workers}) == len(workers)
    for spec in workers:
        argv = list(spec.argv)
        assert argv[argv.index("-Q") + 1] == spec.queue
        assert argv[argv.index("-n") + 1] == spec.hostname


def test_cleanup_worker_plans_and_deletes_and_the_metrics_worker_serves_the_chosen_port(tmp_path: Path) -> None:
    specs = {s.name: s for s in plan(StackOptions(metrics_port=19955), token="t", host="h", run_dir=tmp_path)}
    assert {"--cleanup-expired", "--cleanup"} <= set(specs["worker-cleanup"].argv)
    assert "--cleanup-dry-run" not in specs["worker-cleanup"].argv
    metrics = list(specs["worker-metrics"].argv)
    assert metrics[metrics.index("--metrics-port") + 1] == "19955"
    dry = {s.name: s for s in plan(StackOptions(cleanup_dry_run=True), token="t", host="h", run_dir=tmp_path)}
    assert "--cleanup-dry-run" in dry["worker-cleanup"].argv


def test_once_style_options_leave_out_beat_flower_and_the_web_console(tmp_path: Path) -> None:
    specs = plan(StackOptions(beat=False, flower=False, web=False), token="t", host="h", run_dir=tmp_path)
    assert {s.role for s in specs} == {Role.worker}


def test_the_web_console_serves_loopback_on_the_chosen_port(tmp_path: Path) -> None:
    (web,) = [
        s for s in plan(StackOptions(web_port=18900), token="t", host="h", run_dir=tmp_path) if s.role == Role.web
    ]
    assert web.argv[-5:] == ("web", "--host", "127.0.0.1", "--port", "18900")
    assert web.url == "http://127.0.0.1:18900"


def test_every_planned_command_accepts_its_options(tmp_path: Path) -> None:
    """Each argv with ``--help`` appended parses: no option the real command does not have."""
    specs = [s for s in plan(StackOptions(), token="t", host="h", run_dir=tmp_path) if s.role != Role.flower]
    # (Flower's options are Tornado's; checked in test_compose.) The commands are independent:
    # they run side by side.

    def parse(argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*argv, "--help"], capture_output=True, text=True, timeout=60, check=False)

    with ThreadPoolExecutor(len(specs)) as pool:
        answers = list(pool.map(parse, [list(s.argv) for s in specs]))
    for spec, done in zip(specs, answers, strict=True):
        assert done.returncode == 0, f"{spec.name}: {done.stderr[-500:]}"


def _step(action: str, outcomes: dict[str, Outcome], status: StepStatus = StepStatus.done) -> StepRun:
    return StepRun(
        name=action,
        action=action,
        on_error="continue",
        timeout_s=10,
        status=status,
        blocking=list(outcomes),
        outcomes=outcomes,
    )


def test_the_summary_shows_recorded_numbers_and_says_why_a_figure_is_unknown() -> None:
    done = OutcomeStatus.done
    run = Run(
        id="r1",
        workflow="collect_and_cleanup",
        trigger=TriggerInfo(kind=TriggerKind.manual),
        status=RunStatus.succeeded,
        created_at="2026-01-01T00:00:00Z",
        steps=[
            _step(
                "collect",
                {
                    "example/a": Outcome(subscriber_id="example/a", status=done, result={"resources": 10, "ok": True}),
                    "example/b": Outcome(subscriber_id="example/b", status=done, result={"resources": 5}),
                },
            ),
            _step("cleanup_plan", {}),
            _step("cleanup", {}),
        ],
    )
    summary = summarize(run, ledger_totals={"deleted": 4, "skipped_protected": 1})
    assert summary.figures["collected"].value == 15
    assert summary.figures["deleted"].value == 4
    assert summary.figures["deleted"].source == "cleanup ledger: deleted"
    assert summary.figures["marked"].value is None
    assert summary.figures["marked"].source == "no worker subscribed to cleanup_plan"
    assert summary.actions["collect"].numbers == {"resources": 15.0}  # booleans are not counts

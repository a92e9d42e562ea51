"""The Redis key schema of the orchestrator: every key is built here and nowhere else.

All keys start with ``RESOTO_KEY_PREFIX`` (default ``resoto``).

=================================  ======  =====================  ==========================================
key                                type    TTL                    written by
=================================  ======  =====================  ==========================================
``{p}:run:{id}``                   string  retention              runs.RunStore.apply (JSON run record, guarded Lua)
``{p}:run:{id}:progress``          hash    retention (at end)     subscriber tasks (``{step}/{sub}`` -> JSON)
``{p}:run:{id}:abort``             string  retention              a cancel or replace (the abort flag)
``{p}:runs``                       zset    -                      index of all runs, score = created ms
``{p}:runs:wf:{name}``             zset    -                      index of one workflow's runs
``{p}:runs:active``                set     -                      ids of runs in status running
``{p}:wf:{name}:active``           set     -                      ids of running runs of one workflow
``{p}:wf:{name}:queued``           string  -                      id of the one queued (``wait``) run
``{p}:wf:queued``                  set     -                      workflows that have a queued run (supervisor)
``{p}:slot:{name}:{due}``          string  retention              run id that took a schedule slot
``{p}:subs:live``                  zset    -                      ``{holder}|{subscription JSON}``, score = expiry ms
``{p}:subs:version``               string  -                      changed when a subscription is added or dropped
``{p}:events``                     stream  MAXLEN ~               every event and run/step transition
``{p}:workflows``                  hash    -                      user workflows added at runtime (YAML)
``{p}:workflows:version``          string  -                      a new random token on every workflow change
``{p}:schedule:paused``            hash    -                      workflow -> JSON {note, at}
``{p}:supervisor:lock``            string  one period             the process running a supervisor tick
``{p}:worker:{hostname}``          string  subscriber TTL         a worker's heartbeat (JSON: queues, pid, tasks held)
``{p}:workers``                    set     -                      hostnames that ever heartbeat (pruned when dead)
``{p}:run:{id}:ledger``            hash    retention              the cleaner: every cleanup decision of a run
``{p}:stats:{name}``               hash    -                      stats: counters and sums for /metrics
=================================  ======  =====================  ==========================================

A subscriber's answer is not a key of ours: it is its Celery task's result (the result backend's
``celery-task-meta-<task id>``), handed to the step callback by the chord. A step's chord of
two or more joins in the result backend's keys too: ``celery-task-meta-resoto-step:<run>:<step>:
<epoch>:<size>.j`` (the answers so far, dropped at the join) and ``.d`` (the task ids that
answered, kept for the result expiry so a late duplicate is not counted).
"""

from __future__ import annotations

from resoto_tasks.settings import get_settings


def _p() -> str:
    return get_settings().key_prefix


def run(run_id: str) -> str:
    return f"{_p()}:run:{run_id}"


def run_progress(run_id: str) -> str:
    return f"{_p()}:run:{run_id}:progress"


def run_abort(run_id: str) -> str:
    return f"{_p()}:run:{run_id}:abort"


def outcome_field(step_index: int, subscriber_id: str) -> str:
    return f"{step_index}/{subscriber_id}"


def runs_index() -> str:
    return f"{_p()}:runs"


def runs_of_workflow(name: str) -> str:
    return f"{_p()}:runs:wf:{name}"


def runs_active() -> str:
    return f"{_p()}:runs:active"


def workflow_active(name: str) -> str:
    return f"{_p()}:wf:{name}:active"


def workflow_queued(name: str) -> str:
    return f"{_p()}:wf:{name}:queued"


def workflows_with_queued() -> str:
    """``{p}:wf:queued`` (set): the workflows whose queued run the supervisor may have to start."""
    return f"{_p()}:wf:queued"


def slot(name: str, due_iso: str) -> str:
    return f"{_p()}:slot:{name}:{due_iso}"


def subscriptions_live() -> str:
    return f"{_p()}:subs:live"


def subscriptions_version() -> str:
    """``{p}:subs:version`` (string): changed whenever a subscription is added or dropped, so a
    process may keep the live subscriptions it read until it changes (or ages out)."""
    return f"{_p()}:subs:version"


def events() -> str:
    return f"{_p()}:events"


def workflows() -> str:
    return f"{_p()}:workflows"


def workflows_version() -> str:
    return f"{_p()}:workflows:version"


def schedule_paused() -> str:
    return f"{_p()}:schedule:paused"


def supervisor_lock() -> str:
    return f"{_p()}:supervisor:lock"


def redbeat_prefix() -> str:
    return f"{_p()}:beat:"


def worker_alive(hostname: str) -> str:
    """``{p}:worker:{hostname}`` (string, TTL = subscriber TTL): a worker's heartbeat."""
    return f"{_p()}:worker:{hostname}"


def workers() -> str:
    """``{p}:workers`` (set): hostnames of workers that heartbeat; dead ones are pruned by the supervisor."""
    return f"{_p()}:workers"


def run_ledger(run_id: str) -> str:
    """``{p}:run:{id}:ledger`` (hash, retention): ``{provider}/{account}/{id}`` -> JSON decision."""
    return f"{_p()}:run:{run_id}:ledger"


def stats(name: str) -> str:
    """``{p}:stats:{name}`` (hash, no TTL): monotonic counters and sums for the metrics endpoint."""
    return f"{_p()}:stats:{name}"

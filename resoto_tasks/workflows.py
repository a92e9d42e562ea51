"""Where workflows come from: Resoto's built-ins, YAML files, and workflows added at runtime.

Built-ins are exactly Resoto's compositions; user workflows come from ``RESOTO_WORKFLOWS_DIR``
(``*.yaml``/``*.yml``) and from ``resoto-tasks workflows add`` (stored in Redis, so every
process sees them at once). Validation turns every problem into one line naming the file, the
field and what is wrong.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from resoto_tasks import keys
from resoto_tasks.errors import (
    BuiltinWorkflowError,
    ConfigurationError,
    UnknownWorkflow,
    WorkflowFileError,
    WorkflowFileErrors,
)
from resoto_tasks.models import (
    CronTrigger,
    EventTrigger,
    IntervalTrigger,
    OnError,
    OnSurpass,
    Step,
    StepDefinition,
    Workflow,
    WorkflowDefinition,
)
from resoto_tasks.redis_conn import client
from resoto_tasks.settings import get_settings, schedule_trigger
from resoto_tasks.validation import field_path, load_yaml

# Resoto's default step timeout was 10 s per step; the real bound is the subscribers' timeouts
# (max(step, subscribers)), so a short step timeout only matters for steps nobody answers.
BUILTIN_STEP_TIMEOUT_S = 10.0
STEP_GROUPS: dict[str, list[str]] = {
    "collect": ["pre_collect", "collect", "post_collect"],
    "cleanup": [
        "pre_cleanup_plan",
        "cleanup_plan",
        "post_cleanup_plan",
        "pre_cleanup",
        "cleanup",
        "post_cleanup",
    ],
    "metrics": ["pre_generate_metrics", "generate_metrics", "post_generate_metrics"],
}
BUILTIN_COMPOSITION: dict[str, list[str]] = {
    "collect": ["collect", "metrics"],
    "cleanup": ["cleanup", "metrics"],
    "metrics": ["metrics"],
    "collect_and_cleanup": ["collect", "cleanup", "metrics"],
}
BUILTIN_SCHEDULES: dict[str, str] = {"collect_and_cleanup": "0 * * * *"}


def builtin_workflows() -> dict[str, Workflow]:
    """Resoto's four workflows; schedules can be changed with ``RESOTO_SCHEDULE_OVERRIDES``.

    ``RESOTO_SCHEDULE_OVERRIDES='{"collect_and_cleanup": "*/30 * * * *", "metrics": "5m"}'``
    sets a cron expression or an interval; an empty string removes the schedule.
    """
    overrides = get_settings().schedule_overrides
    unknown = sorted(set(overrides) - set(BUILTIN_COMPOSITION))
    if unknown:
        raise ConfigurationError(
            [
                f"RESOTO_SCHEDULE_OVERRIDES: {name!r} is not a built-in workflow ({', '.join(BUILTIN_COMPOSITION)}); "
                "give a user workflow its schedule in its own file"
                for name in unknown
            ]
        )
    found: dict[str, Workflow] = {}
    for name, groups in BUILTIN_COMPOSITION.items():
        steps = [
            Step(name=a, action=a, timeout_s=BUILTIN_STEP_TIMEOUT_S, on_error=OnError.continue_)
            for g in groups
            for a in STEP_GROUPS[g]
        ]
        triggers: list[Any] = [EventTrigger(event=f"start_{name}_workflow")]
        schedule = overrides.get(name, BUILTIN_SCHEDULES.get(name, ""))
        if schedule:
            triggers.append(schedule_trigger(schedule))
        found[name] = Workflow(name=name, steps=steps, triggers=triggers, on_surpass=OnSurpass.wait, builtin=True)
    return found


# ---------------------------------------------------------------------------------------------
# Parsing and validation
# ---------------------------------------------------------------------------------------------


_TRIGGER_MODELS: dict[str, type[BaseModel]] = {"cron": CronTrigger, "interval": IntervalTrigger, "event": EventTrigger}


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed where an unknown key was found (``loc`` ends with the unknown key)."""
    model: type[BaseModel] = WorkflowDefinition
    if loc[:1] == ("steps",):
        model = StepDefinition
    elif loc[:1] == ("triggers",):
        model = _TRIGGER_MODELS.get(str(loc[2]) if len(loc) > 3 else "", EventTrigger)
    return list(model.model_fields)


def _problem(err: Any) -> str:
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return f"unknown key (allowed: {', '.join(_allowed_keys(tuple(err.get('loc', ()))))})"
    if kind == "missing":
        return "required but missing"
    msg = str(err.get("msg", "invalid"))
    return msg.removeprefix("Value error, ")


def parse_workflow_text(text: str, source: str) -> WorkflowDefinition:
    """One workflow from YAML text; ``source`` names it in errors.

    Raises:
        WorkflowFileErrors: one entry per problem, each naming the source, the field and the problem.
    """
    try:
        doc = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(document)"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise WorkflowFileErrors([WorkflowFileError(source, where, f"not valid YAML: {problem}")]) from None
    if not isinstance(doc, dict):
        kind = "empty" if doc is None else f"a {type(doc).__name__}"
        raise WorkflowFileErrors(
            [WorkflowFileError(source, "(document)", f"must be a mapping with name and steps, got {kind}")]
        )
    try:
        return WorkflowDefinition.model_validate(doc)
    except ValidationError as exc:
        problems = [WorkflowFileError(source, field_path(e["loc"], doc), _problem(e)) for e in exc.errors()]
        raise WorkflowFileErrors(problems) from None


def load_file(path: Path) -> WorkflowDefinition:
    """Raises: WorkflowFileErrors."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkflowFileErrors([WorkflowFileError(path, "(file)", f"cannot be read: {exc}")]) from None
    return parse_workflow_text(text, str(path))


def validate_files(paths: list[Path]) -> tuple[list[WorkflowDefinition], list[WorkflowFileError]]:
    """Every file checked, and duplicate names across them (and against built-ins) reported."""
    found: list[WorkflowDefinition] = []
    problems: list[WorkflowFileError] = []
    seen: dict[str, str] = dict.fromkeys(builtin_workflows(), "built-in")
    for path in paths:
        try:
            definition = load_file(path)
        except WorkflowFileErrors as exc:
            problems.extend(exc.problems)
            continue
        if definition.name in seen:
            where = seen[definition.name]
            problem = f"workflow {definition.name!r} is already defined ({where})"
            problems.append(WorkflowFileError(path, "name", problem))
            continue
        seen[definition.name] = str(path)
        found.append(definition)
    return found, problems


def _dir_files(directory: Path | None) -> list[Path]:
    if directory is None or not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


# ---------------------------------------------------------------------------------------------
# The catalogue every process reads
# ---------------------------------------------------------------------------------------------


class Catalogue:
    """Built-ins + directory files + runtime-added workflows, cached per process.

    The cache is checked against the Redis version token and the files' mtimes, so a change
    made by any process is seen on the next call without a restart.
    """

    def __init__(self) -> None:
        self._stamp: tuple[Any, ...] | None = None
        self._workflows: dict[str, Workflow] = {}
        self._problems: list[WorkflowFileError] = []

    def _current_stamp(self, version: str | None = None) -> tuple[Any, ...]:
        settings = get_settings()
        files = _dir_files(settings.workflows_dir)
        mtimes = tuple((str(p), p.stat().st_mtime_ns) for p in files)
        if version is None:
            version = client().get(keys.workflows_version()) or "0"
        return (version, mtimes, tuple(sorted(settings.schedule_overrides.items())), os.getpid())

    def refresh(self, version: str | None = None) -> None:
        """Reload if anything changed; ``version`` is the Redis version token if already read."""
        stamp = self._current_stamp(version)
        if stamp == self._stamp:
            return
        workflows = builtin_workflows()
        definitions, problems = validate_files(_dir_files(get_settings().workflows_dir))
        for d in definitions:
            workflows[d.name] = d.build()  # validated definitions always build
        for name, text in sorted(client().hgetall(keys.workflows()).items()):
            if name in workflows:
                continue
            try:
                workflows[name] = parse_workflow_text(text, f"redis:{name}").build()
            except WorkflowFileErrors as exc:  # stored by an older version's rules: skipped, reported
                problems.extend(exc.problems)
            except ValidationError as exc:
                problems.append(WorkflowFileError(f"redis:{name}", "(document)", str(exc).splitlines()[0]))
        self._workflows, self._problems, self._stamp = workflows, problems, stamp

    def all(self, version: str | None = None) -> dict[str, Workflow]:
        self.refresh(version)
        return dict(self._workflows)

    def problems(self) -> list[WorkflowFileError]:
        self.refresh()
        return list(self._problems)

    def forget(self) -> None:
        """Read everything again on the next call: the process changed its settings (another
        Redis or key prefix, where the version may be the same: "0" where none was written)."""
        self._stamp = None

    def get(self, name: str) -> Workflow:
        """Raises: UnknownWorkflow (listing the known ones)."""
        found = self.all().get(name)
        if found is None:
            raise UnknownWorkflow(name, list(self._workflows))
        return found


catalogue = Catalogue()


def bump_version(pipe: Any) -> None:
    """Queue a new workflows version on ``pipe``: a random token, never a number a cache has seen.

    A counter would start again at 0 after Redis lost its data, and a process that cached
    version 3 would keep its old definitions once three workflows were added again.
    """
    pipe.set(keys.workflows_version(), uuid.uuid4().hex)


def add(path: Path) -> WorkflowDefinition:
    """Store the workflow in ``path`` in Redis (replacing a runtime one of the same name).

    Raises:
        WorkflowFileErrors: the file cannot be read or is invalid, or it would replace a built-in
            workflow or one of ``RESOTO_WORKFLOWS_DIR`` (naming the file and field).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkflowFileErrors([WorkflowFileError(path, "(file)", f"cannot be read: {exc}")]) from None
    return add_text(text, str(path))


def add_text(text: str, source: str) -> WorkflowDefinition:
    """Store the workflow document ``text`` (YAML, or JSON, which YAML reads too) in Redis;
    ``source`` names it in problems (a path, or ``request`` for the HTTP API).

    Raises:
        WorkflowFileErrors: as :func:`add`.
    """
    definition = parse_workflow_text(text, source)
    if definition.name in builtin_workflows():
        problem = f"{definition.name!r} is a built-in workflow and cannot be replaced; choose another name"
        raise WorkflowFileErrors([WorkflowFileError(source, "name", problem)])
    file_names = {load_file(p).name for p in _dir_files(get_settings().workflows_dir)}
    if definition.name in file_names:
        raise WorkflowFileErrors(
            [WorkflowFileError(source, "name", f"workflow {definition.name!r} is defined in RESOTO_WORKFLOWS_DIR")]
        )
    pipe = client().pipeline(transaction=True)
    pipe.hset(keys.workflows(), definition.name, text)
    bump_version(pipe)
    pipe.execute()
    return definition


def remove(name: str) -> None:
    """Raises: BuiltinWorkflowError, UnknownWorkflow."""
    if name in builtin_workflows():
        raise BuiltinWorkflowError(name)
    pipe = client().pipeline(transaction=True)
    pipe.hdel(keys.workflows(), name)
    bump_version(pipe)
    removed, _ = pipe.execute()
    if not removed:
        raise UnknownWorkflow(name, list(catalogue.all()))

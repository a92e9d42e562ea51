"""Metric definitions: the built-in defaults and the user's YAML file, checked when loaded.

A definition says what to aggregate over the store's per-(account, kind, region) counts and sums
(never over resources: see :mod:`worker.metrics.generate`), by which labels, and how to serve it::

    metrics:
      - name: instance_cores            # served as resoto_instance_cores
        help: CPU cores of instances
        type: gauge                     # gauge (default) or counter
        aggregate: sum                  # count | sum | expired | marked | protected | malformed
        attribute: instance_cores       # the numeric resource attribute to sum (only with sum)
        scale: 1                        # multiply by this (GiB -> bytes: 1073741824)
        labels: [provider, account, region]   # subset of provider, account, region, kind
        kinds: [instance]               # only these kinds (default: every kind)

``expired``, ``marked``, ``protected`` and ``malformed`` count resources per account (the store
keeps those per account only), so they take the labels ``provider`` and ``account`` and no kinds.
A user definition with the name of a built-in replaces it. Every problem becomes one line naming
the file, the field and what is wrong, as workflow files do; names are checked against the rules
``promtool check metrics`` enforces, so whatever loads also passes the format check.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Final

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from resoto_tasks.errors import ResotoError
from resoto_tasks.store.resources import LABEL_PATTERN
from resoto_tasks.validation import field_path, load_yaml
from worker.metrics import names

DEFAULTS_FILE: Final = Path(__file__).with_name("default_metrics.yaml")
DEFAULT_PORT: Final = 9955
"""Resoto's metrics port."""

NAME_PATTERN: Final = r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$"
# promtool's lint (client_golang promlint): abbreviated units, non-base units and unit prefixes.
UNIT_ABBREVIATIONS: Final = frozenset({"s", "ms", "us", "ns", "sec", "b", "kb", "mb", "gb", "tb", "pb", "m", "h", "d"})
NON_BASE_UNITS: Final = {
    "minutes": "seconds",
    "hours": "seconds",
    "days": "seconds",
    "weeks": "seconds",
    "bits": "bytes",
    "kelvins": "kelvin",
    "fahrenheit": "celsius",
    "inches": "meters",
    "miles": "meters",
    "calories": "joules",
    "pounds": "grams",
}
BASE_UNITS: Final = ("bytes", "seconds", "meters", "grams", "joules", "volts", "amperes")
UNIT_PREFIXES: Final = ("kilo", "kibi", "mega", "mebi", "mibi", "giga", "gibi", "tera", "tebi", "peta", "pebi",
                        "milli", "micro", "nano", "pico")  # fmt: skip
TYPE_WORDS: Final = ("counter", "gauge", "histogram", "summary", "untyped")
RESERVED_SUFFIXES: Final = ("_count", "_sum", "_bucket", "_created", "_info")


class MetricsSettings(BaseSettings):
    """Where the user's definitions are and where the endpoint listens (``RESOTO_METRICS_*``).

    Not cached: read when a worker starts and on every run, so a changed file applies at once.
    """

    model_config = SettingsConfigDict(env_prefix="RESOTO_METRICS_", extra="ignore", frozen=True)

    file: Path | None = None
    """``RESOTO_METRICS_FILE``: the user's definitions (YAML); read on every generate_metrics."""
    addr: str = "0.0.0.0"
    """``RESOTO_METRICS_ADDR``: the address the endpoint binds."""
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    """``RESOTO_METRICS_PORT``: the port of a worker on the metrics queue started without
    ``--metrics-port`` (Resoto's 9955); 0: such workers do not serve (test suites, several per host)."""


class MetricType(StrEnum):
    gauge = "gauge"
    """A value that goes up and down: served as computed in the last run."""
    counter = "counter"
    """A running total: every run adds its value (once per run), so it only goes up."""


class Aggregate(StrEnum):
    count_ = "count"
    """Resources (of ``kinds``); named ``count_`` because ``str.count`` exists."""
    sum = "sum"
    """The sum of a numeric attribute of the resources (of ``kinds``) that have it."""
    expired = "expired"
    """Resources whose expiry lies in the past, per account."""
    marked = "marked"
    """Resources marked for cleanup, per account."""
    protected = "protected"
    """Protected resources, per account."""
    malformed = "malformed"
    """Resources whose expiry tag is malformed (ignored), per account."""

    @property
    def per_account(self) -> bool:
        return self not in (Aggregate.count_, Aggregate.sum)


class Label(StrEnum):
    provider = "provider"
    account = "account"
    region = "region"
    kind = "kind"


ALL_LABELS: Final = (Label.provider, Label.account, Label.region, Label.kind)
ACCOUNT_LABELS: Final = (Label.provider, Label.account)

KindName = Annotated[str, Field(pattern=LABEL_PATTERN)]


def _lint_name(name: str) -> str | None:
    """The first naming rule of Prometheus (as promtool checks it) that ``name`` breaks, or None."""
    if name.startswith(names.PREFIX):
        return f"drop the {names.PREFIX!r} prefix: it is added ({name.removeprefix(names.PREFIX)!r})"
    for part in name.split("_"):
        if part in UNIT_ABBREVIATIONS:
            return f"abbreviated unit {part!r}: use base units (bytes, seconds) and 'scale' to convert"
        if part in NON_BASE_UNITS:
            return f"use the base unit {NON_BASE_UNITS[part]!r} instead of {part!r} (with 'scale')"
        for prefix in UNIT_PREFIXES:
            if part.startswith(prefix) and part.removeprefix(prefix) in BASE_UNITS:
                return f"use the base unit {part.removeprefix(prefix)!r} instead of {part!r} (with 'scale')"
        if part in TYPE_WORDS:
            return f"a metric name should not contain its type ({part!r})"
    if name.endswith(RESERVED_SUFFIXES):
        return f"names ending with {', '.join(RESERVED_SUFFIXES)} are reserved for histograms and summaries"
    if names.reserved(names.PREFIX + name):
        return f"{names.PREFIX + name!r} is one of resoto-tasks' own metrics"
    return None


def _lint_suffix(name: str, kind: MetricType) -> str | None:
    """Counters end with ``_total``, nothing else does."""
    if kind == MetricType.counter and not name.endswith("_total"):
        return f"a counter's name ends with '_total' ({name}_total)"
    if kind == MetricType.gauge and name.endswith("_total"):
        return "only counters end with '_total' (use type: counter, or drop the suffix)"
    return None


class MetricDefinition(BaseModel):
    """One metric: what to aggregate, by which labels, served as ``resoto_<name>``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, Field(pattern=NAME_PATTERN, max_length=120)]
    help: Annotated[str, Field(min_length=1, max_length=500)]
    type: MetricType = MetricType.gauge
    aggregate: Aggregate = Aggregate.count_
    attribute: Annotated[str, Field(pattern=LABEL_PATTERN)] | None = None
    scale: float = 1.0
    labels: tuple[Label, ...] | None = None
    """Default: every label the aggregate has (provider, account, region, kind; or provider, account)."""
    kinds: tuple[KindName, ...] = ()
    """Empty: every kind."""

    @field_validator("name")
    @classmethod
    def _prometheus_name(cls, value: str) -> str:
        problem = _lint_name(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("scale")
    @classmethod
    def _finite_positive(cls, value: float) -> float:
        if not math.isfinite(value) or value <= 0:
            raise ValueError("must be a positive finite number")
        return value

    @field_validator("labels")
    @classmethod
    def _unique(cls, value: tuple[Label, ...] | None) -> tuple[Label, ...] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("a label is listed twice")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> MetricDefinition:
        problem = _lint_suffix(self.name, self.type)
        if problem:
            raise _FieldProblem("name", problem)
        if self.aggregate == Aggregate.sum and self.attribute is None:
            raise _FieldProblem("attribute", "required with aggregate: sum (the numeric attribute to add up)")
        if self.aggregate != Aggregate.sum and self.attribute is not None:
            raise _FieldProblem("attribute", f"only used with aggregate: sum, not {self.aggregate.value}")
        if self.aggregate.per_account:
            if self.kinds:
                raise _FieldProblem("kinds", f"{self.aggregate.value} is counted per account, not per kind")
            extra = [label.value for label in self.labels or () if label not in ACCOUNT_LABELS]
            if extra:
                raise _FieldProblem(
                    "labels", f"{self.aggregate.value} is counted per account: only provider and account, not {extra}"
                )
        return self

    @property
    def exposed_name(self) -> str:
        return names.PREFIX + self.name

    @property
    def group_by(self) -> tuple[Label, ...]:
        """The labels samples are grouped by, in the order given."""
        if self.labels is not None:
            return self.labels
        return ACCOUNT_LABELS if self.aggregate.per_account else ALL_LABELS


class _FieldProblem(ValueError):
    """A cross-field problem that belongs to one field (reported under that field's name)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(problem)
        self.field = field
        self.problem = problem


class MetricsFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    metrics: list[MetricDefinition] = Field(default_factory=list)


class MetricsFileError(ResotoError):
    """One problem in a metrics file: which file, which field, what is wrong."""

    def __init__(self, path: Path | str, field: str, problem: str) -> None:
        super().__init__(f"{path}: {field}: {problem}")
        self.path = str(path)
        self.field = field
        self.problem = problem


class MetricsFileErrors(ResotoError):
    """Every problem of one metrics file, one per line."""

    def __init__(self, problems: list[MetricsFileError]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


def _problem(err: Any) -> tuple[tuple[int | str, ...], str]:
    """The location and one-line message of a pydantic error (cross-field problems re-homed)."""
    loc = tuple(err.get("loc", ()))
    kind = err.get("type", "")
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, _FieldProblem):
        return (*loc, cause.field), cause.problem
    if kind == "extra_forbidden":
        allowed = ", ".join(MetricDefinition.model_fields) if len(loc) > 1 else "metrics"
        return loc, f"unknown key (allowed: {allowed})"
    if kind == "missing":
        return loc, "required but missing"
    if kind == "enum":
        expected = (err.get("ctx") or {}).get("expected", "")
        return loc, f"must be one of {expected}"
    if kind == "string_pattern_mismatch" and loc and loc[-1] == "name":
        return loc, "lowercase letters, digits and single underscores, starting with a letter (e.g. volume_bytes)"
    return loc, str(err.get("msg", "invalid")).removeprefix("Value error, ")


def parse_text(text: str, source: str) -> list[MetricDefinition]:
    """Definitions from YAML text; ``source`` names it in errors.

    Raises:
        MetricsFileErrors: one entry per problem (YAML syntax, unknown keys, bad values, duplicates).
    """
    try:
        doc = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(document)"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise MetricsFileErrors([MetricsFileError(source, where, f"not valid YAML: {problem}")]) from None
    if doc is None:
        return []
    if not isinstance(doc, dict):
        problem = f"must be a mapping with the key 'metrics', got a {type(doc).__name__}"
        raise MetricsFileErrors([MetricsFileError(source, "(document)", problem)])
    try:
        parsed = MetricsFile.model_validate(doc)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc, problem = _problem(err)
            problems.append(MetricsFileError(source, field_path(loc, doc), problem))
        raise MetricsFileErrors(problems) from None
    seen: dict[str, int] = {}
    duplicates = []
    for index, definition in enumerate(parsed.metrics):
        if definition.name in seen:
            where = f"metrics[{index}:{definition.name}].name"
            first = f"defined twice (first at metrics[{seen[definition.name]}])"
            duplicates.append(MetricsFileError(source, where, first))
        seen.setdefault(definition.name, index)
    if duplicates:
        raise MetricsFileErrors(duplicates)
    return parsed.metrics


def load_file(path: Path) -> list[MetricDefinition]:
    """Raises: MetricsFileErrors (also when the file cannot be read)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MetricsFileErrors([MetricsFileError(path, "(file)", f"cannot be read: {exc}")]) from None
    return parse_text(text, str(path))


@cache
def builtin_definitions() -> tuple[MetricDefinition, ...]:
    """The shipped defaults (``default_metrics.yaml``); a problem there is a bug, so it raises."""
    return tuple(load_file(DEFAULTS_FILE))


def merge(builtins: Sequence[MetricDefinition], user: list[MetricDefinition]) -> list[MetricDefinition]:
    """Built-ins in their order with user definitions of the same name in their place, then the rest."""
    by_name = {d.name: d for d in user}
    merged = [by_name.pop(d.name, d) for d in builtins]
    return merged + [d for d in user if d.name in by_name]


def load_definitions(settings: MetricsSettings | None = None) -> tuple[list[MetricDefinition], list[MetricsFileError]]:
    """Built-ins merged with ``RESOTO_METRICS_FILE``; problems of that file instead of its definitions.

    A broken user file does not stop the built-ins: its problems are returned for the caller to
    report (the generator fails the step with them after publishing the rest).
    """
    settings = settings or MetricsSettings()
    builtins = builtin_definitions()
    if settings.file is None:
        return list(builtins), []
    try:
        user = load_file(settings.file)
    except MetricsFileErrors as exc:
        return list(builtins), exc.problems
    return merge(builtins, user), []

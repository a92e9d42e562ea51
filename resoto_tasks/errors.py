"""A shallow hierarchy of domain errors that carry the data a message needs."""

from __future__ import annotations

from pathlib import Path


class ResotoError(Exception):
    """Base of every error resoto-tasks raises on purpose."""


class ConfigurationError(ResotoError):
    """``RESOTO_*`` settings that cannot be used; one problem per line, each naming its variable."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class RedisUnavailable(ResotoError):
    """Redis could not be reached; ``url`` is already stripped of its password."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach Redis at {url}: {reason}")
        self.url = url
        self.reason = reason


class WorkflowFileError(ResotoError):
    """A workflow file is invalid; one instance per problem so each can be printed on a line."""

    def __init__(self, path: Path | str, field: str, problem: str) -> None:
        super().__init__(f"{path}: {field}: {problem}")
        self.path = str(path)
        self.field = field
        self.problem = problem


class WorkflowFileErrors(ResotoError):
    """Every problem found in one or more workflow files."""

    def __init__(self, problems: list[WorkflowFileError]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


class UnknownWorkflow(ResotoError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown workflow {name!r}; known workflows: {', '.join(sorted(known))}")
        self.name = name
        self.known = known


class UnknownRun(ResotoError):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"unknown run {run_id!r}")
        self.run_id = run_id


class BuiltinWorkflowError(ResotoError):
    def __init__(self, name: str) -> None:
        super().__init__(f"{name!r} is a built-in workflow and cannot be removed or replaced")
        self.name = name


class NotReplicated(ResotoError):
    """A write the primary applied but fewer replicas than ``RESOTO_REDIS_MIN_REPLICAS_ACK`` confirmed in time.

    It is on the primary, so it may well survive; it is not *acknowledged*: a failover now could lose it.
    """

    def __init__(self, what: str, acked: int, needed: int, timeout_s: float) -> None:
        super().__init__(
            f"{what}: written on the Redis primary, but {acked} of {needed} replicas confirmed it within "
            f"{timeout_s:g}s (RESOTO_REDIS_MIN_REPLICAS_ACK); a failover now could lose it"
        )
        self.what = what
        self.acked = acked
        self.needed = needed

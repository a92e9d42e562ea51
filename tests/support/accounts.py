"""Resources and throwaway accounts of a test provider, on the session's Redis.

The session's server is shared by every test, so each test makes accounts with unique ids and
forgets them after.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from resoto_tasks.store import Resource, ResourceStore


def resource(provider: str, ctime: datetime, account: str, rid: str, **fields: Any) -> Resource:
    """An instance of ``provider`` in us-east-1 named by its id, ``fields`` over these defaults."""
    values: dict[str, Any] = {
        "id": rid,
        "kind": "instance",
        "name": rid,
        "account": account,
        "region": "us-east-1",
        "ctime": ctime,
        "provider": provider,
    }
    values.update(fields)
    return Resource(**values)


@contextmanager
def throwaway_accounts(store: ResourceStore, provider: str, prefix: str) -> Iterator[Callable[[], str]]:
    """A maker of unique account ids (``prefix`` + random); every account made is forgotten after."""
    made: list[str] = []

    def make() -> str:
        made.append(f"{prefix}{uuid.uuid4().hex[:10]}")
        return made[-1]

    yield make
    for account in made:
        store.forget_account(provider, account)

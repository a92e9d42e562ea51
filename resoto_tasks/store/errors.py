"""Errors of the resource store; they carry the account they are about."""

from __future__ import annotations

from resoto_tasks.errors import ResotoError


class StoreError(ResotoError):
    """Base of the resource store's errors."""


class SnapshotClosed(StoreError):
    """A snapshot writer was used after ``commit()`` or ``abort()``."""

    def __init__(self, provider: str, account: str, state: str) -> None:
        super().__init__(f"snapshot writer for {provider}/{account} is already {state}")
        self.provider = provider
        self.account = account
        self.state = state


class WrongAccount(StoreError):
    """A resource was added to the snapshot of another account."""

    def __init__(self, expected: str, got: str, resource_id: str) -> None:
        super().__init__(f"resource {resource_id!r} belongs to {got}, not to the snapshot of {expected}")
        self.expected = expected
        self.got = got
        self.resource_id = resource_id


class StagingLost(StoreError):
    """The staging keys expired or were removed before commit; the live snapshot was left alone."""

    def __init__(self, provider: str, account: str, expected: int) -> None:
        super().__init__(
            f"staging snapshot of {provider}/{account} no longer holds the {expected} resources written "
            f"(staging TTL passed or keys were removed); the previous snapshot is kept"
        )
        self.provider = provider
        self.account = account
        self.expected = expected


class StoreConflict(StoreError):
    """A resource kept changing under a delete (commits racing it); nothing was deleted."""

    def __init__(self, provider: str, account: str, resource_id: str, attempts: int) -> None:
        super().__init__(f"resource {provider}/{account}/{resource_id} changed under {attempts} delete attempts")
        self.provider = provider
        self.account = account
        self.resource_id = resource_id
        self.attempts = attempts

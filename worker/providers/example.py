"""The ``example`` provider: a deterministic synthetic cloud whose only state is in Redis.

Every resource is generated from (seed, account, index), so the cloud costs no memory and a million
resources collect in seconds; Redis holds only what changes, the ids deleted so far, plus the
instant the cloud was first touched (its "epoch", which ctimes and expiry tags are relative to, so a
resource's expiry does not drift between collects). A delete adds the id to the deleted set, and the
next collect no longer yields it.

Layout, in blocks of 40 resources (a trailing partial block just stops early; a dependency that
falls outside the account or was deleted is left out of ``depends_on``)::

    slot 0        vpc
    slots 1-35    5 groups of 7: subnet (-> vpc), instance a (-> subnet, vol a1, vol a2),
                  instance b (-> subnet, vol b1, vol b2), vol a1, vol a2, vol b1, vol b2
    slots 36-37   buckets
    slots 38-39   unattached volumes

Expiry, chosen so that everything expired can be deleted when dependents go first: about 1 % of
blocks (vpc and its groups) and 4 % of groups expire as a whole, 3 % of the independent leaves
(instances, buckets, unattached volumes) expire on their own, each through one of the four tag forms
(``resoto:expires`` ISO time, ``resoto:expiration``/``expiration`` durations, ISO periods). About 3 %
of the rest expire in the future and 1 % carry malformed expiry tags. About 3 % of the resources
outside expired groups and blocks are protected, including some expired leaves.

Configuration: ``RESOTO_EXAMPLE_ACCOUNTS`` (2), ``RESOTO_EXAMPLE_RESOURCES_PER_ACCOUNT`` (500),
``RESOTO_EXAMPLE_SEED`` (0), ``RESOTO_EXAMPLE_ACCOUNT_PREFIX`` (``example-``), and for fault tests
``RESOTO_EXAMPLE_FAIL_COLLECT`` (accounts whose collect fails halfway), ``RESOTO_EXAMPLE_FAIL_DELETE``
(fnmatch patterns of ids whose delete fails), ``RESOTO_EXAMPLE_ENFORCE_DEPENDENCIES`` (refuse to
delete a resource that a live resource depends on, as real clouds do), and
``RESOTO_EXAMPLE_PAGE_LATENCY_MS`` (0: a pause before each page of 40 resources, as API calls take).
"""

from __future__ import annotations

import fnmatch
import hashlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar, Final, NamedTuple

import redis
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from resoto_tasks import redis_conn
from resoto_tasks.store import keys
from resoto_tasks.store.resources import Resource
from worker.providers.base import Provider, ProviderError

BLOCK: Final = 40
GROUP: Final = 7
GROUPS_PER_BLOCK: Final = 5
REGIONS: Final = ("us-east-1", "us-west-2", "eu-central-1", "ap-southeast-1")
OWNERS: Final = ("team-a", "team-b", "data", "platform", "ml")
STAGES: Final = ("prod", "dev", "staging")
_DAY_S: Final = 86_400
_M64: Final = (1 << 64) - 1

# Tag values. Expired durations are shorter than the youngest resource's age (10 days).
EXPIRED_DURATIONS: Final = (
    "2h", "1d", "36h", "3d", "7d4h", "3d4h3min1s", "7 days 4 hours", "1 week", "1.5h",
    "2 days, 3 hours and 5 minutes", "90 minutes",
)  # fmt: skip
EXPIRED_PERIODS: Final = ("PT2H", "P1D", "P1DT2H", "PT90M", "P1W")
FUTURE_DURATIONS: Final = ("1 year", "2y", "60 weeks", "P1Y", "13 months")
MALFORMED_VALUES: Final = ("never", "2 fortnights", "-3d", " ", "99999999999999y", "tomorrow", "P")
MIN_AGE_S: Final = 10 * _DAY_S
AGE_SPAN_S: Final = 80 * _DAY_S


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class ExampleSettings(BaseSettings):
    """The synthetic cloud's size, seed and injected faults, from ``RESOTO_EXAMPLE_*``."""

    model_config = SettingsConfigDict(env_prefix="RESOTO_EXAMPLE_", extra="ignore", frozen=True)

    accounts: int = Field(default=2, ge=0, le=10_000)
    resources_per_account: int = Field(default=500, ge=0, le=100_000_000)
    seed: int = Field(default=0, ge=0)
    account_prefix: str = Field(default="example-", pattern=r"^[^\s/|]{0,100}$")
    fail_collect: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Accounts whose collect raises after yielding half of their resources."""
    fail_delete: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """fnmatch patterns of resource ids whose delete raises."""
    enforce_dependencies: bool = False
    """Refuse to delete a resource while a live resource depends on it."""
    page_latency_ms: float = Field(default=0, ge=0, le=60_000)
    """A pause before each page of 40 resources, as a real cloud's paged list calls take: a
    collect then lasts long enough to be interrupted (fault tests, demos) without burning CPU."""

    @field_validator("fail_collect", "fail_delete", mode="before")
    @classmethod
    def _csv(cls, value: Any) -> Any:
        return _split_csv(value)


def _mix(value: int) -> int:
    """splitmix64: a cheap, well-spread 64-bit hash of an integer."""
    value = (value + 0x9E3779B97F4A7C15) & _M64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _M64
    return value ^ (value >> 31)


def _stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Slot(NamedTuple):
    """What sits at one position of a block; pure arithmetic, precomputed for the 40 positions."""

    kind: str
    group: int
    """0-4 for the positions of a group, -1 elsewhere."""
    offset: int
    """The position inside its group (0 subnet, 1-2 instances, 3-6 volumes), -1 elsewhere."""


def _slot_at(position: int) -> _Slot:
    if position == 0:
        return _Slot("vpc", -1, -1)
    if position <= GROUP * GROUPS_PER_BLOCK:
        group, offset = divmod(position - 1, GROUP)
        kind = ("subnet", "instance", "instance", "volume", "volume", "volume", "volume")[offset]
        return _Slot(kind, group, offset)
    return _Slot("bucket" if position <= 37 else "volume", -1, -1)


_LAYOUT: Final = tuple(_slot_at(position) for position in range(BLOCK))
_PREFIX: Final = {"vpc": "vpc", "subnet": "subnet", "instance": "i", "volume": "vol", "bucket": "bucket"}
_ID_PREFIX: Final = tuple(_PREFIX[slot.kind] for slot in _LAYOUT)


def resource_id(index: int) -> str:
    """The id of the resource at ``index`` (the same in every account and seed)."""
    return f"{_ID_PREFIX[index % BLOCK]}-{index:08x}"


def index_of(rid: str) -> int | None:
    """The index an id was generated from, or ``None`` if no index generates it."""
    _, _, digits = rid.rpartition("-")
    try:
        index = int(digits, 16)
    except ValueError:
        return None
    return index if index >= 0 and resource_id(index) == rid else None


class ExampleProvider(Provider):
    """The built-in synthetic cloud; see the module docstring."""

    name: ClassVar[str] = "example"

    def __init__(
        self,
        settings: ExampleSettings | None = None,
        *,
        r: redis.Redis | None = None,
        epoch: datetime | None = None,
    ) -> None:
        """``epoch`` fixes the cloud's "now" for tests; by default it is the first collect's time,
        remembered in Redis so expiry stays put across collects and processes."""
        self.settings = settings if settings is not None else ExampleSettings()
        self._r = r if r is not None else redis_conn.client()
        self._epoch = epoch.astimezone(UTC) if epoch is not None else None

    # -- Provider -------------------------------------------------------------------------------

    def accounts(self) -> list[str]:
        return [f"{self.settings.account_prefix}{i}" for i in range(1, self.settings.accounts + 1)]

    def collect(self, account: str) -> Iterator[Resource]:
        """Every live resource of one account, generated in index order.

        Raises:
            ProviderError: unknown account, or a collect failure injected by ``fail_collect``.
        """
        self._check_account(account)
        total = self.settings.resources_per_account
        fail_at = total // 2 if account in self.settings.fail_collect else None
        epoch = self.epoch(account)
        deleted = self.deleted_ids(account)
        generator = _Generator(self.settings.seed, account, total, epoch, deleted)
        page_pause_s = self.settings.page_latency_ms / 1000
        for index in range(total):
            if page_pause_s and index % BLOCK == 0:
                time.sleep(page_pause_s)
            if index == fail_at:
                raise ProviderError(self.name, account, "injected collect failure (RESOTO_EXAMPLE_FAIL_COLLECT)")
            rid = resource_id(index)
            if rid in deleted:
                continue
            yield generator.resource(index, rid)
        if fail_at is not None:
            raise ProviderError(self.name, account, "injected collect failure (RESOTO_EXAMPLE_FAIL_COLLECT)")

    def delete(self, resource: Resource) -> None:
        """Delete a resource of this cloud (idempotent).

        Raises:
            ProviderError: not a resource of this cloud, a failure injected by ``fail_delete``, or
                (with ``enforce_dependencies``) a live resource still depends on it.
        """
        if resource.provider != self.name:
            raise ProviderError(self.name, resource.account, f"belongs to provider {resource.provider!r}")
        self._check_account(resource.account)
        index = index_of(resource.id)
        if index is None or index >= self.settings.resources_per_account:
            raise ProviderError(self.name, resource.account, "no such resource", resource.id)
        if any(fnmatch.fnmatchcase(resource.id, pattern) for pattern in self.settings.fail_delete):
            raise ProviderError(
                self.name, resource.account, "injected delete failure (RESOTO_EXAMPLE_FAIL_DELETE)", resource.id
            )
        deleted_key = keys.example_deleted(self.settings.seed, resource.account)
        if self.settings.enforce_dependencies:
            users = [
                resource_id(i)
                for i in _dependents(index, self.settings.resources_per_account)
                if not self._r.sismember(deleted_key, resource_id(i))
            ]
            if users:
                raise ProviderError(
                    self.name, resource.account, f"DependencyViolation: still used by {', '.join(users)}",
                    resource.id,
                )  # fmt: skip
        self._r.sadd(deleted_key, resource.id)

    # -- the cloud's state (for tests and operators) -------------------------------------------

    def epoch(self, account: str) -> datetime:
        """The account's "now" at creation: fixed by the constructor, else stored on first use."""
        if self._epoch is not None:
            return self._epoch
        key = keys.example_epoch(self.settings.seed, account)
        self._r.set(key, str(int(datetime.now(UTC).timestamp())), nx=True)
        stored = self._r.get(key)
        return datetime.fromtimestamp(int(stored or 0), UTC)

    def deleted_ids(self, account: str) -> set[str]:
        """Ids deleted from an account so far (read in batches)."""
        return set(self._r.sscan_iter(keys.example_deleted(self.settings.seed, account), count=5_000))

    def is_deleted(self, account: str, rid: str) -> bool:
        return bool(self._r.sismember(keys.example_deleted(self.settings.seed, account), rid))

    def reset(self) -> None:
        """Forget every deletion and the epoch of this seed's accounts: the cloud starts afresh."""
        for account in self.accounts():
            self._r.unlink(
                keys.example_deleted(self.settings.seed, account), keys.example_epoch(self.settings.seed, account)
            )

    def _check_account(self, account: str) -> None:
        if account not in self.accounts():
            raise ProviderError(self.name, account, f"unknown account; this cloud has {self.accounts()}")


def _dependents(index: int, total: int) -> list[int]:
    """Indexes of the resources whose ``depends_on`` names ``index`` (the inverse of the layout)."""
    block, position = divmod(index, BLOCK)
    slot = _LAYOUT[position]
    base = block * BLOCK
    found: list[int] = []
    if slot.kind == "vpc":
        found = [base + 1 + GROUP * g for g in range(GROUPS_PER_BLOCK)]
    elif slot.group >= 0:
        group_base = base + 1 + GROUP * slot.group
        if slot.offset == 0:
            found = [group_base + 1, group_base + 2]
        elif slot.offset >= 3:
            found = [group_base + 1 + (slot.offset - 3) // 2]
    return [i for i in found if i < total]


class _Generator:
    """Builds the resources of one account; holds only per-account constants."""

    def __init__(self, seed: int, account: str, total: int, epoch: datetime, deleted: set[str]) -> None:
        self.account = account
        self.total = total
        self.epoch = epoch
        self.epoch_s = int(epoch.timestamp())
        self.deleted = deleted
        self.base = _mix(seed ^ _stable_hash(account))
        self._block = -1
        self._block_h = 0

    def _hash(self, salt: int, value: int) -> int:
        return _mix(self.base ^ (salt << 56) ^ value)

    def resource(self, index: int, rid: str) -> Resource:
        block, position = divmod(index, BLOCK)
        slot = _LAYOUT[position]
        h = self._hash(1, index)
        if block != self._block:  # consecutive indexes share a block: hash it once
            self._block, self._block_h = block, self._hash(2, block)
        block_h = self._block_h
        region = REGIONS[block_h % len(REGIONS)]
        block_expired = (block_h >> 8) % 100 < 1 and position <= GROUP * GROUPS_PER_BLOCK
        group_expired = slot.group >= 0 and self._hash(3, block * 8 + slot.group) % 100 < 4
        in_expired_set = block_expired or group_expired
        leaf = slot.kind in ("instance", "bucket") or position >= 38
        age_s = MIN_AGE_S + (h >> 17) % AGE_SPAN_S
        ctime = self.epoch - timedelta(seconds=age_s)
        tags = {"owner": OWNERS[h % len(OWNERS)], "stage": STAGES[(h >> 3) % len(STAGES)]}
        bucket = (h >> 24) % 1000
        if in_expired_set or (leaf and bucket < 30):
            tags.update(self._expired_tags(h))
        elif bucket < 60:
            tags.update(self._future_tags(h))
        elif bucket < 70:
            tags.update(self._malformed_tags(h))
        protected = not in_expired_set and (h >> 40) % 100 < 3
        # Built from this module's constant tables, so already valid: constructed without
        # validation, which would double the cost of a generated resource (tests check that every
        # form the generator produces validates to the same resource and the same stored JSON).
        return Resource.model_construct(
            id=rid,
            kind=slot.kind,
            name=f"{slot.kind}-{index}",
            account=self.account,
            region=region,
            ctime=ctime,
            tags=tags,
            depends_on=self._depends_on(block, slot),
            protected=protected,
            provider=ExampleProvider.name,
            attrs=self._attrs(slot.kind, h),
        )

    def _depends_on(self, block: int, slot: _Slot) -> list[str]:
        base = block * BLOCK
        wanted: list[int] = []
        if slot.kind == "subnet":
            wanted = [base]
        elif slot.kind == "instance":
            group_base = base + 1 + GROUP * slot.group
            first_volume = group_base + 3 + 2 * (slot.offset - 1)
            wanted = [group_base, first_volume, first_volume + 1]
        ids = [resource_id(i) for i in wanted if i < self.total]
        return [rid for rid in ids if rid not in self.deleted]

    def _expired_tags(self, h: int) -> dict[str, str]:
        form = (h >> 34) % 4
        pick = h >> 36
        if form == 0:
            past = self.epoch - timedelta(seconds=3600 + pick % (9 * _DAY_S))
            return {"resoto:expires": _iso(past)}
        if form == 1:
            return {"resoto:expiration": EXPIRED_DURATIONS[pick % len(EXPIRED_DURATIONS)]}
        if form == 2:
            return {"expiration": EXPIRED_DURATIONS[pick % len(EXPIRED_DURATIONS)]}
        return {"resoto:expiration": EXPIRED_PERIODS[pick % len(EXPIRED_PERIODS)]}

    def _future_tags(self, h: int) -> dict[str, str]:
        pick = h >> 36
        if (h >> 34) % 2 == 0:
            future = self.epoch + timedelta(days=400 + pick % 100)
            return {"resoto:expires": _iso(future)}
        return {"expiration": FUTURE_DURATIONS[pick % len(FUTURE_DURATIONS)]}

    def _malformed_tags(self, h: int) -> dict[str, str]:
        value = MALFORMED_VALUES[(h >> 36) % len(MALFORMED_VALUES)]
        name = ("resoto:expires", "resoto:expiration", "expiration")[(h >> 34) % 3]
        if name == "resoto:expires" and value in (" ", "P"):
            value = "not-a-date"
        return {name: value}

    @staticmethod
    def _attrs(kind: str, h: int) -> dict[str, float | int | str]:
        if kind == "instance":
            cores = (1, 2, 4, 8, 16)[(h >> 44) % 5]
            return {"instance_cores": cores, "instance_memory_gb": cores * 4, "hourly_cost": cores * 0.048}
        if kind == "volume":
            size_gb = (8, 20, 50, 100, 500)[(h >> 44) % 5]
            return {"volume_size_gb": size_gb, "hourly_cost": round(size_gb * 0.08 / 730, 6)}
        if kind == "bucket":
            return {"bucket_size_gb": (h >> 44) % 10_000}
        return {}

"""The resource model and the small records the store hands out: frozen pydantic, JSON the one encoding.

A resource is stored as the JSON of :class:`Resource` with default values left out
(``Resource.to_json``), about 300 bytes for an instance with a few tags, so a million of them fit in
a few hundred MB of Redis and serialise at well over 200,000 per second.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

PROVIDER_PATTERN = r"^[a-z][a-z0-9_\-]{0,62}$"
"""Provider names: lowercase identifiers (they appear in keys, metrics and entry points)."""
ACCOUNT_PATTERN = r"^[^\s/|]{1,200}$"
"""Account ids as clouds spell them; no whitespace, ``/`` (used in ``provider/account``) or ``|``."""
LABEL_PATTERN = r"^[\w.:@\-]{1,100}$"
"""Kind, region and attribute names (``aws_ec2_instance``, ``us-east-1``, ``volume_size_gb``): they
are parts of count fields separated by ``|`` and metric labels, so letters, digits and ``_.:@-``."""

ProviderName = Annotated[str, Field(pattern=PROVIDER_PATTERN)]
AccountId = Annotated[str, Field(pattern=ACCOUNT_PATTERN)]
Label = Annotated[str, Field(pattern=LABEL_PATTERN)]
AttrValue = float | int | str


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _encodable(text: str) -> str:
    """``text`` with anything UTF-8 cannot carry (lone surrogates) replaced by U+FFFD."""
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Resource(Frozen):
    """One cloud resource as a provider reports it. ``id`` is unique within (provider, account)."""

    id: Annotated[str, Field(min_length=1, max_length=512)]
    kind: Label
    name: str
    account: AccountId
    region: Label
    ctime: datetime
    """Creation time, UTC (a naive value is taken as UTC)."""
    tags: dict[str, str] = Field(default_factory=dict)
    depends_on: list[str] = Field(default_factory=list)
    """Ids (same provider and account) of the resources this one depends on: an instance on its
    volumes and subnet, a subnet on its VPC. Cleanup deletes a resource before what it depends on."""
    protected: bool = False
    """Never deleted, even when marked."""
    provider: ProviderName
    attrs: dict[Label, AttrValue] = Field(default_factory=dict)
    """Attributes such as ``volume_size_gb``, ``instance_cores``, ``hourly_cost``; numeric ones are
    summed per (kind, account, region) for metrics."""

    @field_validator("ctime")
    @classmethod
    def _ctime_utc(cls, value: datetime) -> datetime:
        return _utc(value)

    @field_validator("name")
    @classmethod
    def _name_encodable(cls, value: str) -> str:
        return value if value.isascii() else _encodable(value)

    @field_validator("tags")
    @classmethod
    def _tags_encodable(cls, value: dict[str, str]) -> dict[str, str]:
        """A lone surrogate (JSON APIs can produce one) cannot be stored as UTF-8: replaced, so
        one odd tag never fails an account's collect. ASCII, the common case, is checked in C."""
        if all(k.isascii() and v.isascii() for k, v in value.items()):
            return value
        return {_encodable(k): _encodable(v) for k, v in value.items()}

    @field_validator("attrs")
    @classmethod
    def _finite_attrs(cls, value: dict[str, Any]) -> dict[str, Any]:
        """NaN and infinity have no JSON form (they would be stored as null and break every read
        of the resource) and no meaning in a sum: such attributes are dropped."""
        if all(not isinstance(v, float) or math.isfinite(v) for v in value.values()):
            return value
        return {k: v for k, v in value.items() if not isinstance(v, float) or math.isfinite(v)}

    @property
    def ref(self) -> ResourceRef:
        return ResourceRef(provider=self.provider, account=self.account, id=self.id)

    def to_json(self) -> str:
        """The stored form: compact JSON without default values."""
        return serialize(self).decode()

    @classmethod
    def from_json(cls, doc: str | bytes) -> Resource:
        """Parse the stored form.

        Raises:
            pydantic.ValidationError: the document is not a resource.
        """
        return cls.model_validate_json(doc)


_SERIALIZER = Resource.__pydantic_serializer__


def serialize(resource: Resource) -> bytes:
    """The stored form as UTF-8 bytes, straight from pydantic-core (the writer's hot path)."""
    return _SERIALIZER.to_json(resource, exclude_defaults=True)


class ResourceRef(Frozen):
    """Names one resource across providers and accounts; hashable, so usable in sets."""

    provider: ProviderName
    account: AccountId
    id: Annotated[str, Field(min_length=1, max_length=512)]

    def __str__(self) -> str:
        return f"{self.provider}/{self.account}/{self.id}"


class Mark(Frozen):
    """A resource marked for cleanup: by whom (run) and why."""

    provider: str
    account: str
    id: str
    reason: str
    run_id: str
    marked_at: datetime

    @property
    def ref(self) -> ResourceRef:
        return ResourceRef(provider=self.provider, account=self.account, id=self.id)


class AccountSnapshot(Frozen):
    """What the last successful collect of one account left in the store."""

    provider: str
    account: str
    run_id: str
    collected_at: datetime
    """When the snapshot was committed (UTC)."""
    started_at: datetime
    """When the collect that wrote it started; a commit never replaces a snapshot started later."""
    resource_count: int
    malformed_count: int
    """Resources whose deciding expiry tag was malformed (ignored, so they do not expire)."""
    duration_s: float


class ExpiredEntry(Frozen):
    """A resource whose expiry is before the time asked about."""

    ref: ResourceRef
    expires_at: datetime
    protected: bool


class GroupStats(Frozen):
    """Count and numeric attribute sums of one (kind, region) in one account, for metrics."""

    kind: str
    region: str
    count: int
    sums: dict[str, float] = Field(default_factory=dict)


class AccountStats(Frozen):
    """Everything metrics need about one account, read without touching a single resource."""

    provider: str
    account: str
    total: int
    protected: int
    malformed: int
    marked: int
    expired: int
    """Expired at the time asked about."""
    groups: list[GroupStats] = Field(default_factory=list)


class StoreCounts(Frozen):
    """The summary behind ``resoto-tasks resources count --json``."""

    total: int
    by_kind: dict[str, int]
    by_account: dict[str, int]
    """Key ``provider/account``."""
    expired: int
    marked: int
    protected: int
    malformed: int


class ResourceView(Frozen):
    """A resource with what the store knows about it (for ``resoto-tasks resources list``)."""

    resource: Resource
    expires_at: datetime | None = None
    mark: Mark | None = None

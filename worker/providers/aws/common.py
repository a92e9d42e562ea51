"""What every AWS service module shares: kinds, tags, protection, and the record a collector yields."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from resoto_tasks.store.resources import AttrValue, Resource

PROVIDER: Final = "aws"
PROTECT_TAG: Final = "resoto:protected"

# Kinds share the names of the example provider's where they mean the same thing (instance,
# volume, bucket, vpc, subnet), so the built-in metrics (instances, cores, volume sizes) count
# AWS resources without a single new definition; the provider label tells the clouds apart.
INSTANCE: Final = "instance"
VOLUME: Final = "volume"
SNAPSHOT: Final = "snapshot"
VPC: Final = "vpc"
SUBNET: Final = "subnet"
SECURITY_GROUP: Final = "security_group"
INTERNET_GATEWAY: Final = "internet_gateway"
ELASTIC_IP: Final = "elastic_ip"
LOAD_BALANCER: Final = "load_balancer"
BUCKET: Final = "bucket"
KINDS: Final = (
    INSTANCE, VOLUME, SNAPSHOT, VPC, SUBNET, SECURITY_GROUP, INTERNET_GATEWAY, ELASTIC_IP, LOAD_BALANCER, BUCKET,
)  # fmt: skip


@dataclass(frozen=True)
class Found:
    """A collected resource; ``ctime_known`` is false where AWS gives no creation time (the
    provider then uses the time the store first saw it)."""

    resource: Resource
    ctime_known: bool


def tags_of(raw: list[dict[str, Any]] | None) -> dict[str, str]:
    """AWS's ``[{"Key": k, "Value": v}]`` as a dict (S3 and ELBv2 spell them the same way)."""
    return {str(t.get("Key", "")): str(t.get("Value", "")) for t in raw or () if t.get("Key")}


def tag_protected(tags: dict[str, str]) -> bool:
    """The tag ``resoto:protected=true`` (any case, spaces ignored) protects any resource."""
    return tags.get(PROTECT_TAG, "").strip().lower() == "true"


def utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def make(
    *,
    kind: str,
    rid: str,
    account: str,
    region: str,
    tags: dict[str, str],
    ctime: datetime | None,
    now: datetime,
    depends_on: list[str] | None = None,
    protected: bool = False,
    attrs: dict[str, AttrValue] | None = None,
    name: str | None = None,
) -> Found:
    """A :class:`Found` with the conventions of every kind: name from the ``Name`` tag, protection
    from the tag or the kind's own rule, ``now`` standing in for an unknown creation time."""
    resource = Resource(
        id=rid,
        kind=kind,
        name=name or tags.get("Name") or rid,
        account=account,
        region=region,
        ctime=utc(ctime) if ctime is not None else now,
        tags=tags,
        depends_on=sorted({d for d in depends_on or () if d and d != rid}),
        protected=protected or tag_protected(tags),
        provider=PROVIDER,
        attrs={k: v for k, v in (attrs or {}).items() if v is not None},
    )
    return Found(resource, ctime is not None)

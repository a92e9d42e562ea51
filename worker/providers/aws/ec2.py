"""EC2 and VPC kinds of one region: collect (paginated, streamed) and delete.

Kinds are collected in an order that lets later ones use what earlier ones learnt, keeping only
small id sets in memory: VPCs first (which are default VPCs, protecting their subnets, default
security group and gateway), instances before addresses (an address belongs to the VPC of the
instance it is associated with).

Dependencies (``depends_on``: what must outlive the resource; the cleaner deletes the resource
first): an instance on its volumes, subnet and security groups; a subnet, a security group, an
internet gateway and an address on their VPC; a security group on the groups its rules reference.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, Final

from botocore.exceptions import ClientError

from worker.expiry import EXPIRATION_TAGS, EXPIRES_TAG
from worker.providers.aws.common import (
    ELASTIC_IP,
    INSTANCE,
    INTERNET_GATEWAY,
    SECURITY_GROUP,
    SNAPSHOT,
    SUBNET,
    VOLUME,
    VPC,
    Found,
    make,
    tags_of,
)
from worker.providers.aws.session import error_code

LIVE_INSTANCE_STATES: Final = ["pending", "running", "shutting-down", "stopping", "stopped"]
GONE_VOLUME_STATES: Final = {"deleting", "deleted"}
MIB_PER_GIB: Final = 1024


class Ec2Region:
    """Collects the EC2/VPC kinds of one (account, region) with one client."""

    def __init__(
        self, ec2: Any, account: str, region: str, now: datetime, *, check_all: bool = True, concurrency: int = 8
    ) -> None:
        """``check_all``: read termination protection of every instance, else only of instances with
        an expiry tag; ``concurrency``: those calls made at once (each is a round trip)."""
        self.ec2 = ec2
        self.check_all = check_all
        self.concurrency = concurrency
        self.account = account
        self.region = region
        self.now = now
        self.default_vpcs: set[str] = set()
        self.instance_vpc: dict[str, str] = {}
        self._types: dict[str, dict[str, float | int]] = {}

    def collect(self) -> Iterator[Found]:
        yield from self.vpcs()
        yield from self.subnets()
        yield from self.security_groups()
        yield from self.internet_gateways()
        yield from self.instances()
        yield from self.volumes()
        yield from self.snapshots()
        yield from self.addresses()

    def _make(self, **kwargs: Any) -> Found:
        return make(account=self.account, region=self.region, now=self.now, **kwargs)

    def _pages(self, operation: str, key: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        for page in self.ec2.get_paginator(operation).paginate(**kwargs):
            yield from page.get(key, ())

    # -- kinds ----------------------------------------------------------------------------------

    def vpcs(self) -> Iterator[Found]:
        for vpc in self._pages("describe_vpcs", "Vpcs"):
            default = bool(vpc.get("IsDefault"))
            if default:
                self.default_vpcs.add(vpc["VpcId"])
            yield self._make(
                kind=VPC, rid=vpc["VpcId"], tags=tags_of(vpc.get("Tags")), ctime=None, protected=default,
                attrs={"cidr_block": vpc.get("CidrBlock"), "vpc_state": vpc.get("State"), "is_default": int(default)},
            )  # fmt: skip

    def subnets(self) -> Iterator[Found]:
        for subnet in self._pages("describe_subnets", "Subnets"):
            default = bool(subnet.get("DefaultForAz")) and subnet.get("VpcId") in self.default_vpcs
            yield self._make(
                kind=SUBNET, rid=subnet["SubnetId"], tags=tags_of(subnet.get("Tags")), ctime=None,
                depends_on=[subnet.get("VpcId", "")], protected=default,
                attrs={"cidr_block": subnet.get("CidrBlock"), "availability_zone": subnet.get("AvailabilityZone")},
            )  # fmt: skip

    def security_groups(self) -> Iterator[Found]:
        for group in self._pages("describe_security_groups", "SecurityGroups"):
            # A VPC's "default" group cannot be deleted on its own: AWS deletes it with its VPC.
            # Protected, and without dependencies so that marking it never holds its VPC back.
            default = group.get("GroupName") == "default"
            referenced = [
                pair.get("GroupId", "")
                for rule in (*group.get("IpPermissions", ()), *group.get("IpPermissionsEgress", ()))
                for pair in rule.get("UserIdGroupPairs", ())
            ]
            yield self._make(
                kind=SECURITY_GROUP, rid=group["GroupId"], tags=tags_of(group.get("Tags")), ctime=None,
                depends_on=[] if default else [group.get("VpcId", ""), *referenced], protected=default,
                name=None if group.get("Tags") else group.get("GroupName"),
            )  # fmt: skip

    def internet_gateways(self) -> Iterator[Found]:
        for gateway in self._pages("describe_internet_gateways", "InternetGateways"):
            vpcs = [a["VpcId"] for a in gateway.get("Attachments", ()) if a.get("VpcId")]
            yield self._make(
                kind=INTERNET_GATEWAY, rid=gateway["InternetGatewayId"], tags=tags_of(gateway.get("Tags")),
                ctime=None, depends_on=vpcs, protected=any(v in self.default_vpcs for v in vpcs),
            )  # fmt: skip

    def instances(self) -> Iterator[Found]:
        """Page by page: the termination protection of a page's instances is read in parallel."""
        filters = [{"Name": "instance-state-name", "Values": LIVE_INSTANCE_STATES}]
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="aws-attr") as pool:
            for page in self.ec2.get_paginator("describe_instances").paginate(Filters=filters):
                live = [
                    i
                    for r in page.get("Reservations", ())
                    for i in r.get("Instances", ())
                    if i.get("State", {}).get("Name") in LIVE_INSTANCE_STATES  # also if a filter is ignored
                ]
                checked = [i["InstanceId"] for i in live if self.check_all or _expiring(tags_of(i.get("Tags")))]
                protected = dict(zip(checked, pool.map(self._termination_protected, checked), strict=True))
                for instance in live:
                    yield self._instance(
                        instance, instance["State"]["Name"], protected.get(instance["InstanceId"], False)
                    )

    def _instance(self, instance: dict[str, Any], state: str, protected: bool) -> Found:
        iid = instance["InstanceId"]
        if instance.get("VpcId"):
            self.instance_vpc[iid] = instance["VpcId"]
        mappings = instance.get("BlockDeviceMappings", ())
        volumes = [m["Ebs"]["VolumeId"] for m in mappings if m.get("Ebs", {}).get("VolumeId")]
        # LaunchTime moves on every stop/start; the first attach time of a volume does not.
        attached = [m["Ebs"]["AttachTime"] for m in mappings if m.get("Ebs", {}).get("AttachTime")]
        ctime = min([*attached, instance["LaunchTime"]]) if instance.get("LaunchTime") else min(attached, default=None)
        groups = [g["GroupId"] for g in instance.get("SecurityGroups", ()) if g.get("GroupId")]
        instance_type = str(instance.get("InstanceType", ""))
        return self._make(
            kind=INSTANCE, rid=iid, tags=tags_of(instance.get("Tags")), ctime=ctime,
            depends_on=[*volumes, instance.get("SubnetId", ""), *groups],
            protected=protected,
            attrs={"instance_type": instance_type, "instance_state": state, **self._type_info(instance_type)},
        )  # fmt: skip

    def _termination_protected(self, iid: str) -> bool:
        """EC2 termination protection; describe_instances does not return it."""
        try:
            found = self.ec2.describe_instance_attribute(InstanceId=iid, Attribute="disableApiTermination")
        except ClientError as exc:
            if error_code(exc).endswith(".NotFound"):  # terminated meanwhile
                return False
            raise
        return bool(found.get("DisableApiTermination", {}).get("Value"))

    def _type_info(self, instance_type: str) -> dict[str, float | int]:
        """Cores and memory of an instance type, asked once per type and region."""
        if not instance_type:
            return {}
        if instance_type not in self._types:
            info: dict[str, float | int] = {}
            try:
                found = self.ec2.describe_instance_types(InstanceTypes=[instance_type]).get("InstanceTypes", ())
            except ClientError as exc:  # an unknown type loses its sizes, not the account's collect
                if error_code(exc) not in ("InvalidInstanceType", "InvalidParameterValue"):
                    raise
                found = ()
            for described in found:
                info = {
                    "instance_cores": int(described.get("VCpuInfo", {}).get("DefaultVCpus", 0)),
                    "instance_memory_gb": round(described.get("MemoryInfo", {}).get("SizeInMiB", 0) / MIB_PER_GIB, 3),
                }
            self._types[instance_type] = info
        return self._types[instance_type]

    def volumes(self) -> Iterator[Found]:
        for volume in self._pages("describe_volumes", "Volumes"):
            state = volume.get("State")
            if state in GONE_VOLUME_STATES:
                continue
            yield self._make(
                kind=VOLUME, rid=volume["VolumeId"], tags=tags_of(volume.get("Tags")), ctime=volume.get("CreateTime"),
                attrs={
                    "volume_size_gb": volume.get("Size"), "volume_type": volume.get("VolumeType"),
                    "volume_state": state, "volume_iops": volume.get("Iops"),
                },
            )  # fmt: skip

    def snapshots(self) -> Iterator[Found]:
        # OwnerIds=self is not enough: some endpoints (moto) also return public snapshots.
        owner = {"OwnerIds": ["self"], "Filters": [{"Name": "owner-id", "Values": [self.account]}]}
        for snapshot in self._pages("describe_snapshots", "Snapshots", **owner):
            if snapshot.get("OwnerId") != self.account:
                continue
            yield self._make(
                kind=SNAPSHOT, rid=snapshot["SnapshotId"], tags=tags_of(snapshot.get("Tags")),
                ctime=snapshot.get("StartTime"),
                attrs={"snapshot_size_gb": snapshot.get("VolumeSize"), "snapshot_state": snapshot.get("State")},
            )  # fmt: skip

    def addresses(self) -> Iterator[Found]:
        for address in self.ec2.describe_addresses().get("Addresses", ()):  # not paginated by AWS
            rid = address.get("AllocationId") or address.get("PublicIp")
            if not rid:
                continue
            vpc = self.instance_vpc.get(address.get("InstanceId", ""), "")
            yield self._make(
                kind=ELASTIC_IP, rid=rid, tags=tags_of(address.get("Tags")), ctime=None, depends_on=[vpc],
                name=None if address.get("Tags") else address.get("PublicIp"),
                attrs={"public_ip": address.get("PublicIp"), "domain": address.get("Domain")},
            )  # fmt: skip


def _expiring(tags: dict[str, str]) -> bool:
    return EXPIRES_TAG in tags or any(t in tags for t in EXPIRATION_TAGS)


# -- deletion ---------------------------------------------------------------------------------


def wait_until(done: Callable[[], bool], timeout_s: float, poll_s: float) -> bool:
    """Poll ``done`` until it holds or ``timeout_s`` passed; whether it held."""
    deadline = time.monotonic() + timeout_s
    while True:
        if done():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))


class Timeout(Exception):
    """A bounded wait for AWS to finish a deletion ran out."""


def terminate_instance(ec2: Any, iid: str, wait_s: float, poll_s: float) -> None:
    """Terminate, then wait (bounded) until terminated, so its volumes can be deleted next.

    Raises:
        ClientError: AWS refused (``OperationNotPermitted`` when termination protection was turned on
            after the collect).
        Timeout: still not terminated after ``wait_s``.
    """
    ec2.terminate_instances(InstanceIds=[iid])

    def terminated() -> bool:
        try:
            reservations = ec2.describe_instances(InstanceIds=[iid]).get("Reservations", ())
        except ClientError as exc:
            if error_code(exc) == "InvalidInstanceID.NotFound":
                return True
            raise
        states = {i.get("State", {}).get("Name") for r in reservations for i in r.get("Instances", ())}
        return states <= {"terminated"}

    if not wait_until(terminated, wait_s, poll_s):
        raise Timeout(f"instance {iid} not terminated within {wait_s:g} s")


def delete_internet_gateway(ec2: Any, gid: str) -> None:
    """Detach from every VPC first: AWS refuses to delete an attached gateway."""
    found = ec2.describe_internet_gateways(InternetGatewayIds=[gid]).get("InternetGateways", ())
    for gateway in found:
        for attachment in gateway.get("Attachments", ()):
            if attachment.get("VpcId"):
                _tolerating(("Gateway.NotAttached",), ec2.detach_internet_gateway, InternetGatewayId=gid,
                            VpcId=attachment["VpcId"])  # fmt: skip
    ec2.delete_internet_gateway(InternetGatewayId=gid)


def release_address(ec2: Any, allocation_id: str) -> None:
    """Disassociate first (AWS refuses to release an address in use), then release."""
    if not allocation_id.startswith("eipalloc-"):  # an EC2-Classic address is named by its IP
        ec2.release_address(PublicIp=allocation_id)
        return
    for address in ec2.describe_addresses(AllocationIds=[allocation_id]).get("Addresses", ()):
        if address.get("AssociationId"):
            association = address["AssociationId"]
            _tolerating(("InvalidAssociationID.NotFound",), ec2.disassociate_address, AssociationId=association)
    ec2.release_address(AllocationId=allocation_id)


def _tolerating(codes: tuple[str, ...], call: Callable[..., Any], **kwargs: Any) -> None:
    """``call`` where the listed error codes mean "already done" (a cleanup may run twice)."""
    try:
        call(**kwargs)
    except ClientError as exc:
        if error_code(exc) not in codes:
            raise


def deleter(kind: str) -> Callable[[Any, str, float, float], None] | None:
    """The delete function of an EC2 kind: (client, id, wait_s, poll_s)."""
    simple: dict[str, Callable[[Any, str], Any]] = {
        VOLUME: lambda c, i: c.delete_volume(VolumeId=i),
        SNAPSHOT: lambda c, i: c.delete_snapshot(SnapshotId=i),
        SECURITY_GROUP: lambda c, i: c.delete_security_group(GroupId=i),
        SUBNET: lambda c, i: c.delete_subnet(SubnetId=i),
        VPC: lambda c, i: c.delete_vpc(VpcId=i),
        INTERNET_GATEWAY: delete_internet_gateway,
        ELASTIC_IP: release_address,
    }
    if kind == INSTANCE:
        return terminate_instance
    if kind in simple:
        fn = simple[kind]
        return lambda c, i, _w, _p: fn(c, i)
    return None

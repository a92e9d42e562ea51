"""A small AWS estate for the demo and the tests: every kind, every expiry tag form, protected
resources, default VPCs and hostile tags, created through boto3 against any endpoint (moto).

:func:`seed` returns a :class:`Manifest` of what it made and what a cleanup of expired resources
must do with each (delete or keep), with the dependencies the cleaner must respect, so a test can
check the outcome against AWS itself rather than against the provider's own view.

Per (account, region)::

    default VPC (moto makes it): VPC, a default subnet and an attached gateway tagged expired: kept
    VPC "doomed" (expired): 2 subnets, a security group, an attached gateway, an instance with a
        data volume and an associated Elastic IP, an application load balancer: all deleted
    VPC "kept": a subnet, an instance with hostile tags; an expired instance protected by tag and
        one by termination protection: kept
    volumes: one expired and unattached (deleted), one with a malformed expiry (kept)
    snapshots: one expired (deleted), one kept; buckets: one expired with versions and delete
        markers (deleted), one kept
"""

from __future__ import annotations

import functools
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import boto3
from botocore.config import Config

from worker.providers.aws.common import (
    BUCKET,
    ELASTIC_IP,
    INSTANCE,
    INTERNET_GATEWAY,
    LOAD_BALANCER,
    SECURITY_GROUP,
    SNAPSHOT,
    SUBNET,
    VOLUME,
    VPC,
)

ACCOUNTS: Final = ("111111111111", "222222222222")
REGIONS: Final = ("us-east-1", "eu-west-1")
ROLE_NAME: Final = "resoto-collect"
AMI: Final = "ami-12c6146b"
PAST: Final = (datetime.now(UTC) - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
FUTURE: Final = (datetime.now(UTC) + timedelta(days=400)).strftime("%Y-%m-%dT%H:%M:%SZ")
HOSTILE_TAGS: Final = {
    "Name": "kept & <b>bold</b> \"quoted\" 'single'",
    "owner": "<script>alert('x')</script>",
    "unicode": "ünïcødé 🚀 中文 العربية",
    "huge": "x" * 255 + "…",
    "newline": "line1\nline2\ttab",
    "{{template}}": "${jndi:ldap://example.invalid/a} %s %n",
}


@dataclass
class Seeded:
    """One resource made by :func:`seed` and what an expired-resources cleanup must do with it."""

    account: str
    region: str
    kind: str
    id: str
    expected_deleted: bool
    protected: bool = False
    """Expired, and kept because it is protected (default VPC, tag, termination protection)."""
    depends_on: list[str] = field(default_factory=list)
    """Seeded ids that must still exist when this one is deleted."""


@dataclass
class Manifest:
    resources: list[Seeded] = field(default_factory=list)

    def add(self, account: str, region: str, kind: str, rid: str, deleted: bool, *deps: str) -> str:
        self.resources.append(Seeded(account, region, kind, rid, deleted, depends_on=list(deps)))
        return rid

    def protect(self, rid: str) -> str:
        """Note that the last resource added is expired but protected."""
        self.resources[-1].protected = True
        return rid

    def ids(self, deleted: bool | None = None, account: str | None = None) -> set[tuple[str, str]]:
        """(account, id) of the seeded resources, optionally only those to be deleted (or kept)."""
        return {
            (r.account, r.id)
            for r in self.resources
            if (deleted is None or r.expected_deleted == deleted) and (account is None or r.account == account)
        }


def account_session(endpoint_url: str, account: str, role_name: str = ROLE_NAME) -> boto3.Session:
    """A session in ``account`` through the role, as the provider gets one."""
    sts = boto3.client(
        "sts", endpoint_url=endpoint_url, region_name="us-east-1",
        aws_access_key_id="seed", aws_secret_access_key="seed",
    )  # fmt: skip
    creds = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/{role_name}", RoleSessionName="resoto-seed")
    c = creds["Credentials"]
    return boto3.Session(
        aws_access_key_id=c["AccessKeyId"],
        aws_secret_access_key=c["SecretAccessKey"],
        aws_session_token=c["SessionToken"],
    )


@functools.cache
def _session(endpoint_url: str, account: str) -> boto3.Session:
    return account_session(endpoint_url, account)


def forget_sessions() -> None:
    """Drop the cached sessions (their assumed-role keys no longer exist after a moto reset)."""
    _session.cache_clear()


_CLIENTS_LOCK = threading.Lock()


def clients(endpoint_url: str, account: str, region: str) -> dict[str, Any]:
    """EC2, ELBv2 and S3 clients in one account and region (the session is made once per account;
    clients are made under a lock, as boto3 sessions are not thread-safe)."""
    with _CLIENTS_LOCK:
        return _clients(endpoint_url, account, region)


def _clients(endpoint_url: str, account: str, region: str) -> dict[str, Any]:
    session = _session(endpoint_url, account)
    config = Config(region_name=region, retries={"mode": "standard", "max_attempts": 3})
    return {s: session.client(s, endpoint_url=endpoint_url, config=config) for s in ("ec2", "elbv2", "s3")}


def _tags(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def _spec(kind: str, tags: dict[str, str]) -> list[dict[str, Any]]:
    return [{"ResourceType": kind, "Tags": _tags(tags)}]


def seed(endpoint_url: str, accounts: tuple[str, ...] = ACCOUNTS, regions: tuple[str, ...] = REGIONS) -> Manifest:
    """Create the estate of the module docstring in every (account, region), two cells at a time."""

    def one(cell: tuple[str, str]) -> Manifest:
        found = Manifest()
        _seed_cell(found, clients(endpoint_url, *cell), *cell)
        return found

    for account in accounts:  # sessions first: a boto3 session is not safe to create from threads
        _session(endpoint_url, account)
    with ThreadPoolExecutor(max_workers=2) as pool:
        cells = list(pool.map(one, [(a, r) for a in accounts for r in regions]))
    return Manifest([r for cell in cells for r in cell.resources])


def _seed_cell(m: Manifest, c: dict[str, Any], account: str, region: str) -> None:
    ec2, elb, s3 = c["ec2"], c["elbv2"], c["s3"]
    expired_iso = {"resoto:expires": PAST}

    def add(kind: str, rid: str, deleted: bool, *deps: str) -> str:
        return m.add(account, region, kind, rid, deleted, *deps)

    # The default VPC, one of its subnets and its gateway: expired, yet never deleted.
    default_vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    ec2.create_tags(Resources=[default_vpc], Tags=_tags(expired_iso))
    m.protect(add(VPC, default_vpc, False))
    default_subnet = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [default_vpc]}])["Subnets"][0]
    ec2.create_tags(Resources=[default_subnet["SubnetId"]], Tags=_tags(expired_iso))
    m.protect(add(SUBNET, default_subnet["SubnetId"], False))
    default_igw = ec2.create_internet_gateway(TagSpecifications=_spec("internet-gateway", expired_iso))
    default_igw_id = default_igw["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=default_igw_id, VpcId=default_vpc)
    m.protect(add(INTERNET_GATEWAY, default_igw_id, False))

    # The doomed VPC: everything in it expired, through every tag form.
    azs = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]][:2]
    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16", TagSpecifications=_spec("vpc", {**expired_iso, "Name": "doomed"}))
    vpc_id = add(VPC, vpc["Vpc"]["VpcId"], True)
    subnets = [
        add(SUBNET, ec2.create_subnet(
            VpcId=vpc_id, CidrBlock=f"10.1.{i + 1}.0/24", AvailabilityZone=az,
            TagSpecifications=_spec("subnet", expired_iso),
        )["Subnet"]["SubnetId"], True, vpc_id)
        for i, az in enumerate(azs)
    ]  # fmt: skip
    sg_id = ec2.create_security_group(
        GroupName="doomed-sg",
        Description="doomed",
        VpcId=vpc_id,
        TagSpecifications=_spec("security-group", expired_iso),
    )["GroupId"]
    add(SECURITY_GROUP, sg_id, True, vpc_id)
    igw = ec2.create_internet_gateway(TagSpecifications=_spec("internet-gateway", expired_iso))
    igw_id = igw["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw_id, VpcId=vpc_id)
    add(INTERNET_GATEWAY, igw_id, True, vpc_id)
    instance = ec2.run_instances(
        ImageId=AMI, MinCount=1, MaxCount=1, InstanceType="t3.medium", SubnetId=subnets[0], SecurityGroupIds=[sg_id],
        TagSpecifications=_spec("instance", {"resoto:expiration": "1s", "Name": "doomed-instance"}),
    )["Instances"][0]  # fmt: skip
    instance_id = instance["InstanceId"]
    data = ec2.create_volume(
        AvailabilityZone=instance["Placement"]["AvailabilityZone"], Size=20, VolumeType="gp3",
        TagSpecifications=_spec("volume", {"expiration": "PT1S"}),
    )["VolumeId"]  # fmt: skip
    ec2.attach_volume(VolumeId=data, InstanceId=instance_id, Device="/dev/sdf")
    add(VOLUME, data, True)
    add(INSTANCE, instance_id, True, data, subnets[0], sg_id)
    eip = ec2.allocate_address(Domain="vpc", TagSpecifications=_spec("elastic-ip", expired_iso))["AllocationId"]
    ec2.associate_address(AllocationId=eip, InstanceId=instance_id)
    add(ELASTIC_IP, eip, True, vpc_id)
    lb = elb.create_load_balancer(
        Name=f"doomed-{region}", Subnets=subnets, SecurityGroups=[sg_id], Type="application",
        Tags=[{"Key": "resoto:expiration", "Value": "PT1S"}],
    )["LoadBalancers"][0]["LoadBalancerArn"]  # fmt: skip
    add(LOAD_BALANCER, lb, True, *subnets, sg_id, vpc_id)

    # The kept VPC: a live instance with hostile tags, two expired but protected instances.
    kept_vpc = add(VPC, ec2.create_vpc(CidrBlock="10.2.0.0/16")["Vpc"]["VpcId"], False)
    kept_subnet = add(SUBNET, ec2.create_subnet(VpcId=kept_vpc, CidrBlock="10.2.1.0/24")["Subnet"]["SubnetId"], False)
    for tags in (
        {**HOSTILE_TAGS, "resoto:expires": FUTURE},
        {"resoto:expiration": "1s", "resoto:protected": "True", "Name": "protected-by-tag"},
        {"resoto:expiration": "1s", "Name": "termination-protected"},
    ):
        kept = ec2.run_instances(
            ImageId=AMI, MinCount=1, MaxCount=1, InstanceType="m5.large", SubnetId=kept_subnet,
            TagSpecifications=_spec("instance", tags),
        )["Instances"][0]["InstanceId"]  # fmt: skip
        if tags.get("Name") == "termination-protected":  # run_instances(DisableApiTermination) is ignored by moto
            ec2.modify_instance_attribute(InstanceId=kept, DisableApiTermination={"Value": True})
        add(INSTANCE, kept, False)
        if "resoto:protected" in tags or tags.get("Name") == "termination-protected":
            m.protect(kept)

    # Loose volumes, snapshots and buckets.
    az = azs[0]
    add(VOLUME, ec2.create_volume(
        AvailabilityZone=az, Size=8, TagSpecifications=_spec("volume", {"resoto:expiration": "1s", **HOSTILE_TAGS}),
    )["VolumeId"], True)  # fmt: skip
    kept_volume = ec2.create_volume(
        AvailabilityZone=az, Size=100, VolumeType="io2", Iops=1000,
        TagSpecifications=_spec("volume", {"resoto:expiration": "tomorrow"}),
    )["VolumeId"]  # fmt: skip
    add(VOLUME, kept_volume, False)
    for tags, deleted in (({"expiration": "1s"}, True), ({"owner": "backup"}, False)):
        snapshot = ec2.create_snapshot(VolumeId=kept_volume, TagSpecifications=_spec("snapshot", tags))["SnapshotId"]
        add(SNAPSHOT, snapshot, deleted)
    location = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    for suffix, tags, deleted in (("old", {"resoto:expiration": "1s"}, True), ("kept", {"owner": "data"}, False)):
        name = f"rt-{account}-{region}-{suffix}"
        s3.create_bucket(Bucket=name, **location)
        s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": _tags(tags)})
        if deleted:  # versions and a delete marker: deleting the bucket must empty all of them
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
            for body in (b"one", b"two"):
                s3.put_object(Bucket=name, Key="report.csv", Body=body)
            s3.put_object(Bucket=name, Key="other.txt", Body=b"x")
            s3.delete_object(Bucket=name, Key="other.txt")
        else:
            s3.put_object(Bucket=name, Key="keep.txt", Body=b"keep")
        add(BUCKET, name, deleted)

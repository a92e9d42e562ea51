"""The ``aws`` provider in this process against the moto server: settings, what is collected and
what is not, creation times kept across collects, deletion, assumed-role credentials."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.aws.support import MotoServer
from tests.support.redis_server import RedisServer
from tests.support.stack import isolated_stack

pytestmark = pytest.mark.xdist_group("aws")

ACCOUNT = "444444444444"
REGION = "us-east-1"


@pytest.fixture(scope="module")
def endpoint(moto: MotoServer) -> str:
    moto.reset()
    return moto.url


@pytest.fixture
def store(redis_server: RedisServer) -> Iterator[Any]:
    from resoto_tasks.store import ResourceStore

    with isolated_stack(redis_server) as stack:
        yield ResourceStore(stack.client)


@pytest.fixture(autouse=True)
def _dummy_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


def provider(endpoint: str, store: Any, **settings: Any) -> Any:
    from worker.providers.aws.provider import AwsProvider
    from worker.providers.aws.settings import AwsSettings

    values: dict[str, Any] = {"accounts": [ACCOUNT], "role_name": "resoto-collect", "regions": [REGION]}
    return AwsProvider(AwsSettings(endpoint_url=endpoint, delete_poll_s=0.1, **{**values, **settings}), store=store)


def ec2_client(endpoint: str, account: str = ACCOUNT) -> Any:
    from worker.providers.aws import estate

    return estate.clients(endpoint, account, REGION)["ec2"]


# -- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "line"),
    [
        (
            {"RESOTO_AWS_REGION_CONCURRENCY": "0"},
            "RESOTO_AWS_REGION_CONCURRENCY: Input should be greater than or equal to 1",
        ),
        ({"RESOTO_AWS_ACCOUNTS": "12345,abc"}, "RESOTO_AWS_ACCOUNTS: account ids are 12 digits; not: '12345', 'abc'"),
        ({"RESOTO_AWS_REGIONS": "us-east-1,Mars"}, "RESOTO_AWS_REGIONS: not region names such as us-east-1: 'Mars'"),
        ({"RESOTO_AWS_ENDPOINT_URL": "localhost:5000"}, "RESOTO_AWS_ENDPOINT_URL: an endpoint is a URL"),
        (
            {"RESOTO_AWS_ACCOUNTS": "111111111111,222222222222"},
            "RESOTO_AWS_ACCOUNTS lists several accounts: set RESOTO_AWS_ROLE_NAME to assume in each",
        ),
    ],
)
def test_a_bad_setting_is_one_line_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], line: str
) -> None:
    from resoto_tasks.errors import ConfigurationError
    from worker.providers.base import ProviderLoadError, load_provider

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ProviderLoadError) as caught:
        load_provider("aws")
    assert isinstance(caught.value.__cause__, ConfigurationError)
    assert len(caught.value.__cause__.problems) == 1
    assert caught.value.__cause__.problems[0].startswith(line)
    assert "\n" not in str(caught.value)


def test_empty_variables_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.providers.aws.settings import load_settings

    for name in ("ACCOUNTS", "ROLE_NAME", "REGIONS", "ENDPOINT_URL", "CALL_LOG"):
        monkeypatch.setenv(f"RESOTO_AWS_{name}", "")
    settings = load_settings()
    assert (settings.accounts, settings.role_name, settings.regions, settings.endpoint_url) == ([], None, [], None)


# -- accounts and credentials -----------------------------------------------------------------


def test_without_an_account_list_the_credentials_own_account_is_collected(endpoint: str, store: Any) -> None:
    found = provider(endpoint, store, accounts=[], role_name=None)
    assert found.accounts() == ["123456789012"]  # moto's account for plain credentials
    kinds = {r.kind for r in found.collect("123456789012")}
    assert {"vpc", "subnet", "security_group"} <= kinds
    listed = provider(endpoint, store, accounts=["123456789012"], role_name=None)  # its own, listed: no role
    assert listed.role_arn("123456789012") is None
    assert {r.kind for r in listed.collect("123456789012")} == kinds


def test_without_a_region_list_every_region_enabled_for_the_account_is_collected(endpoint: str, store: Any) -> None:
    aws = provider(endpoint, store, regions=[])
    regions = aws.regions(aws.session(ACCOUNT))
    assert {"us-east-1", "eu-west-1", "ap-southeast-2"} <= set(regions)
    assert regions == sorted(set(regions))


def test_an_account_that_is_not_the_credentials_own_needs_a_role(endpoint: str, store: Any) -> None:
    from worker.providers.base import ProviderError

    with pytest.raises(ProviderError, match="the credentials belong to account 123456789012"):
        list(provider(endpoint, store, accounts=[], role_name=None).collect(ACCOUNT))


def test_every_client_retries_throttling_in_botocores_adaptive_mode_at_the_configured_endpoint(
    endpoint: str, store: Any
) -> None:
    session = provider(endpoint, store, max_attempts=7).session(ACCOUNT)
    for service in ("ec2", "elbv2", "s3"):
        client = session.client(service, REGION)
        assert client.meta.config.retries == {"mode": "adaptive", "total_max_attempts": 7}
        assert client.meta.endpoint_url == endpoint


def test_assumed_role_credentials_are_renewed_before_they_expire(endpoint: str, store: Any) -> None:
    # 900 s is inside botocore's 15-minute refresh window: every call finds them about to expire.
    aws = provider(endpoint, store, role_session_duration_s=900)
    session = aws.session(ACCOUNT)
    ec2 = session.client("ec2", REGION)
    for _ in range(3):
        ec2.describe_vpcs()
    assert session.role is not None and session.role.fetches >= 3
    assert ec2.describe_vpcs()["Vpcs"][0]["OwnerId"] == ACCOUNT


# -- collect ----------------------------------------------------------------------------------


def test_terminated_instances_deleted_volumes_and_other_owners_snapshots_are_not_collected(
    endpoint: str, store: Any
) -> None:
    ec2 = ec2_client(endpoint)
    live = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    gone = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    ec2.terminate_instances(InstanceIds=[gone])
    volume = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=1)["VolumeId"]
    snapshot = ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
    deleted = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=1)["VolumeId"]
    ec2.delete_volume(VolumeId=deleted)
    found = {r.id: r for r in provider(endpoint, store).collect(ACCOUNT)}
    assert live in found and gone not in found
    assert volume in found and deleted not in found
    assert [r.id for r in found.values() if r.kind == "snapshot"] == [snapshot]  # moto lists ~1,300 public ones
    assert found[live].attrs["instance_state"] == "running"
    assert found[volume].attrs == {"volume_size_gb": 1, "volume_type": "gp2", "volume_state": "available"} | {
        k: v for k, v in found[volume].attrs.items() if k == "volume_iops"
    }


def test_a_vpc_keeps_the_time_it_was_first_seen_across_collects(endpoint: str, store: Any) -> None:
    ec2 = ec2_client(endpoint)
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    aws = provider(endpoint, store)
    first = {r.id: r for r in aws.collect(ACCOUNT)}
    with store.snapshot_writer("aws", ACCOUNT, "run-1") as writer:
        writer.add_many(first.values())
        writer.commit()
    second = {r.id: r for r in provider(endpoint, store).collect(ACCOUNT)}
    assert second[vpc].ctime == first[vpc].ctime
    newcomer = ec2.create_vpc(CidrBlock="10.8.0.0/16")["Vpc"]["VpcId"]
    third = {r.id: r for r in provider(endpoint, store).collect(ACCOUNT)}
    assert third[vpc].ctime == first[vpc].ctime
    assert third[newcomer].ctime > first[vpc].ctime


def test_an_endpoint_that_fails_fails_the_account_saying_why(store: Any) -> None:
    from worker.providers.base import ProviderError

    aws = provider("http://127.0.0.1:9", store, max_attempts=1)
    with pytest.raises(ProviderError, match="cannot assume arn:aws:iam::444444444444:role/resoto-collect: "):
        list(aws.collect(ACCOUNT))


def test_a_region_that_fails_fails_the_whole_account(endpoint: str, store: Any) -> None:
    from worker.providers.base import ProviderError

    aws = provider(endpoint, store, regions=[REGION, "xx-nowhere-1"], max_attempts=1)
    with pytest.raises(ProviderError, match=r"^aws/444444444444: xx-nowhere-1: "):
        list(aws.collect(ACCOUNT))


# -- delete -----------------------------------------------------------------------------------


def test_aws_errors_carry_their_code_and_deleting_what_is_gone_succeeds(endpoint: str, store: Any) -> None:
    from resoto_tasks.store.resources import Resource
    from worker.providers.base import ProviderError

    ec2 = ec2_client(endpoint)
    vpc = ec2.create_vpc(CidrBlock="10.7.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.7.1.0/24")["Subnet"]["SubnetId"]
    aws = provider(endpoint, store)
    found = {r.id: r for r in aws.collect(ACCOUNT)}
    with pytest.raises(ProviderError) as refused:
        aws.delete(found[vpc])
    assert refused.value.reason.startswith("DependencyViolation: ")
    aws.delete(found[subnet])
    aws.delete(found[vpc])
    aws.delete(found[vpc])  # a cleanup may run twice
    aws.delete(Resource(**{**found[subnet].model_dump(), "id": "subnet-0123456789abcdef0"}))
    assert vpc not in {v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"]}


def test_a_bucket_is_emptied_of_versions_and_delete_markers_then_deleted(endpoint: str, store: Any) -> None:
    from worker.providers.aws import estate

    s3 = estate.clients(endpoint, ACCOUNT, REGION)["s3"]
    s3.create_bucket(Bucket="rt-provider-versions")
    s3.put_bucket_versioning(Bucket="rt-provider-versions", VersioningConfiguration={"Status": "Enabled"})
    for index in range(3):
        s3.put_object(Bucket="rt-provider-versions", Key=f"k{index % 2}", Body=b"x")
    s3.delete_object(Bucket="rt-provider-versions", Key="k0")
    aws = provider(endpoint, store)
    bucket = next(r for r in aws.collect(ACCOUNT) if r.id == "rt-provider-versions")
    assert bucket.kind == "bucket" and bucket.region == REGION
    aws.delete(bucket)
    assert "rt-provider-versions" not in {b["Name"] for b in s3.list_buckets()["Buckets"]}


def test_termination_protection_is_read_for_instances_that_can_expire_or_for_all_when_asked(
    endpoint: str, store: Any
) -> None:
    from worker.providers.base import ProviderError

    ec2 = ec2_client(endpoint)
    launched = {}
    for name, tags in (("expiring", [{"Key": "expiration", "Value": "30d"}]), ("untagged", [])):
        spec = [{"ResourceType": "instance", "Tags": tags}] if tags else []
        iid = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, TagSpecifications=spec)["Instances"][0]
        ec2.modify_instance_attribute(InstanceId=iid["InstanceId"], DisableApiTermination={"Value": True})
        launched[name] = iid["InstanceId"]
    by_default = {r.id: r for r in provider(endpoint, store).collect(ACCOUNT)}
    assert by_default[launched["expiring"]].protected
    assert not by_default[launched["untagged"]].protected  # not read: the expiry cleanup cannot pick it
    every = {r.id: r for r in provider(endpoint, store, termination_protection="all").collect(ACCOUNT)}
    assert every[launched["untagged"]].protected
    # and should a hook mark it anyway, AWS refuses, and the refusal carries its code
    with pytest.raises(ProviderError, match=r"^aws/444444444444/i-[0-9a-f]+: OperationNotPermitted: "):
        provider(endpoint, store).delete(by_default[launched["untagged"]])

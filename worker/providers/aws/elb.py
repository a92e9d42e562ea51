"""ELBv2 load balancers (application, network, gateway) of one region: collect and delete.

A load balancer depends on its subnets, security groups and VPC: it is deleted first, and its
deletion is awaited (bounded) because AWS keeps its network interfaces, which hold the subnets and
groups, until it is gone.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, Final

from botocore.exceptions import ClientError

from worker.providers.aws.common import LOAD_BALANCER, Found, make, tags_of
from worker.providers.aws.ec2 import Timeout, wait_until
from worker.providers.aws.session import error_code

TAGS_PER_CALL: Final = 20
"""DescribeTags takes at most 20 ARNs."""


def collect(elb: Any, account: str, region: str, now: datetime) -> Iterator[Found]:
    for page in elb.get_paginator("describe_load_balancers").paginate():
        balancers = page.get("LoadBalancers", ())
        tags = _tags(elb, [b["LoadBalancerArn"] for b in balancers])
        for balancer in balancers:
            arn = balancer["LoadBalancerArn"]
            subnets = [z.get("SubnetId", "") for z in balancer.get("AvailabilityZones", ())]
            yield make(
                kind=LOAD_BALANCER, rid=arn, account=account, region=region, now=now, tags=tags.get(arn, {}),
                ctime=balancer.get("CreatedTime"), name=balancer.get("LoadBalancerName"),
                depends_on=[*subnets, *balancer.get("SecurityGroups", ()), balancer.get("VpcId", "")],
                attrs={
                    "lb_type": balancer.get("Type"), "lb_scheme": balancer.get("Scheme"),
                    "lb_state": balancer.get("State", {}).get("Code"),
                },
            )  # fmt: skip


def _tags(elb: Any, arns: list[str]) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for start in range(0, len(arns), TAGS_PER_CALL):
        for described in elb.describe_tags(ResourceArns=arns[start : start + TAGS_PER_CALL]).get("TagDescriptions", ()):
            found[described["ResourceArn"]] = tags_of(described.get("Tags"))
    return found


def delete(elb: Any, arn: str, wait_s: float, poll_s: float) -> None:
    """Delete and wait (bounded) until AWS no longer lists it.

    Raises:
        ClientError: AWS refused (``OperationNotPermitted`` with deletion protection on).
        Timeout: still listed after ``wait_s``.
    """
    elb.delete_load_balancer(LoadBalancerArn=arn)

    def gone() -> bool:
        try:
            elb.describe_load_balancers(LoadBalancerArns=[arn])
        except ClientError as exc:
            if error_code(exc) == "LoadBalancerNotFound":
                return True
            raise
        return False

    if not wait_until(gone, wait_s, poll_s):
        raise Timeout(f"load balancer {arn} still listed {wait_s:g} s after its deletion")

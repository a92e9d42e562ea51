"""S3 buckets of one account: collected once per account (the listing is global), deleted after
they are emptied of every object, version and delete marker (AWS refuses to delete a bucket that
holds any)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from worker.providers.aws.common import BUCKET, Found, make, tags_of
from worker.providers.aws.session import error_code


def bucket_region(s3: Any, name: str) -> str:
    """``LocationConstraint`` is empty for us-east-1 and ``EU`` for the oldest eu-west-1 buckets."""
    location = s3.get_bucket_location(Bucket=name).get("LocationConstraint")
    return {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}.get(location, str(location))


def collect(s3: Any, account: str, regions: set[str] | None, now: datetime) -> Iterator[Found]:
    """Buckets of the account in ``regions`` (every region when ``None``)."""
    for page in s3.get_paginator("list_buckets").paginate():
        for bucket in page.get("Buckets", ()):
            name = bucket["Name"]
            try:
                region = bucket.get("BucketRegion") or bucket_region(s3, name)
                if regions is not None and region not in regions:
                    continue
                tags = _tags(s3, name)
            except ClientError as exc:
                if error_code(exc) == "NoSuchBucket":  # deleted between the listing and now
                    continue
                raise
            yield make(
                kind=BUCKET, rid=name, account=account, region=region, now=now, tags=tags,
                ctime=bucket.get("CreationDate"), name=tags.get("Name") or name,
            )  # fmt: skip


def _tags(s3: Any, name: str) -> dict[str, str]:
    try:
        return tags_of(s3.get_bucket_tagging(Bucket=name).get("TagSet"))
    except ClientError as exc:
        if error_code(exc) == "NoSuchTagSet":
            return {}
        raise


def delete(client_for: Callable[[str], Any], name: str, region: str) -> None:
    """Empty the bucket (every version and delete marker, 1,000 a call), then delete it.

    Raises:
        ClientError: AWS refused; a key that could not be deleted is reported with its code.
    """
    s3 = client_for(region)
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=name):
        objects = [
            {"Key": o["Key"], "VersionId": o["VersionId"]} if o.get("VersionId") else {"Key": o["Key"]}
            for o in (*page.get("Versions", ()), *page.get("DeleteMarkers", ()))
        ]
        if not objects:
            continue
        done = s3.delete_objects(Bucket=name, Delete={"Objects": objects, "Quiet": True})
        errors = done.get("Errors") or ()
        if errors:
            first = errors[0]
            raise ClientError(
                {"Error": {"Code": first.get("Code", "DeleteObjectsFailed"),
                           "Message": f"{len(errors)} objects not deleted, first {first.get('Key')!r}: "
                                      f"{first.get('Message', '')}"}},
                "DeleteObjects",
            )  # fmt: skip
    s3.delete_bucket(Bucket=name)

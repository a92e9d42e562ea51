"""Which IAM actions the provider's API calls need, and an optional log of every call made.

The log (``RESOTO_AWS_CALL_LOG``) is how an operator (and the policy test) learns what a collect
or cleanup really asked AWS for: one IAM action per line, appended by every process that calls.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Final

S3_ACTIONS: Final[dict[str, tuple[str, ...]]] = {
    # S3's IAM actions are not its operation names.
    "ListBuckets": ("s3:ListAllMyBuckets",),
    "ListObjectVersions": ("s3:ListBucketVersions",),
    "ListObjectsV2": ("s3:ListBucket",),
    "HeadBucket": ("s3:ListBucket",),
    "DeleteObjects": ("s3:DeleteObject", "s3:DeleteObjectVersion"),
}


def iam_actions(signing_name: str, operation: str) -> tuple[str, ...]:
    """The IAM actions an operation needs: ``ec2:DescribeInstances``; S3 from its own table.

    ``signing_name`` is the service's SigV4 name, which is its IAM prefix (``elasticloadbalancing``
    for elbv2, not the endpoint prefix).
    """
    if signing_name == "s3" and operation in S3_ACTIONS:
        return S3_ACTIONS[operation]
    return (f"{signing_name}:{operation}",)


class CallLog:
    """Appends the IAM actions of every call of the clients it is attached to (or does nothing)."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._lock = threading.Lock()

    def attach(self, client: Any) -> None:
        if self.path:
            client.meta.events.register("before-call", self._record)

    def _record(self, model: Any = None, **_: Any) -> None:
        if model is None or not self.path:
            return
        signing_name = model.service_model.signing_name or model.service_model.endpoint_prefix
        line = "".join(f"{action}\n" for action in iam_actions(signing_name, model.name))
        with self._lock:  # one O_APPEND write per call: lines of several processes never interleave
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)


def read_actions(path: str) -> list[str]:
    """Every action logged so far, in order (empty if nothing was logged)."""
    try:
        with open(path, encoding="utf-8") as f:
            return [line.strip() for line in f if line.strip()]
    except FileNotFoundError:
        return []

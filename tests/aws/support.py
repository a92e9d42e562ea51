"""Real parts for the AWS tests: a moto server, a fault-injecting proxy in front of it, the estate
as AWS describes it (plain boto3, independent of the provider), and the run's ledger.

Nothing here imports ``resoto_tasks`` at module level: the root conftest exports the session's
Redis URL first.
"""

from __future__ import annotations

import functools
import http.client
import os
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from tests.support.redis_server import free_port
from tests.support.workers import VENV_BIN

REGIONS = ("us-east-1", "eu-west-1")
EMPTY_ACCOUNT = "333333333333"
MUTATING_PREFIXES = ("Delete", "Terminate", "Release", "Detach", "Disassociate")


class MotoServer:
    """``moto_server -H 127.0.0.1 -p PORT`` as a child process, killed by its pid."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(f"/tmp/resoto-test-moto-{self.port}.log")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30) -> MotoServer:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=2):
                    return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto_server did not start: {self.log_path.read_text()[-2000:]}") from None
                time.sleep(0.1)

    def reset(self) -> None:
        """Wipe every account's state (``POST /moto-api/reset``)."""
        from worker.providers.aws import estate

        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=30):
            pass
        # assumed-role keys die with the reset: moto would map them to its default account
        _clients.cache_clear()
        estate.forget_sessions()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None


class FailingProxy:
    """Forwards every request to moto, except ``AssumeRole`` into the accounts in ``fail_accounts``,
    which get AWS's ``AccessDenied`` (a role that can no longer be assumed), and the EC2 actions in
    ``deny_actions``, which get ``UnauthorizedOperation`` (a policy without that action), both
    as AWS reports them."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.removeprefix("http://")
        self.fail_accounts: set[str] = set()
        self.deny_actions: set[str] = set()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                proxy.forward(self)

            def do_POST(self) -> None:
                proxy.forward(self)

            def do_PUT(self) -> None:
                proxy.forward(self)

            def do_DELETE(self) -> None:
                proxy.forward(self)

            def do_HEAD(self) -> None:
                proxy.forward(self)

            def log_message(self, *_: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> FailingProxy:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def forward(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        form = parse_qs(body.decode(errors="replace")) if body.startswith(b"Action=") else {}
        action = (form.get("Action") or [""])[0]
        arn = (form.get("RoleArn") or [""])[0]
        if action == "AssumeRole" and any(f":{account}:" in arn for account in self.fail_accounts):
            self._deny(handler, arn)
            return
        if action in self.deny_actions:
            self._unauthorized(handler, action)
            return
        conn = http.client.HTTPConnection(self.upstream, timeout=60)
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in ("connection", "transfer-encoding")}
        conn.request(handler.command, handler.path, body=body or None, headers=headers)
        response = conn.getresponse()
        data = response.read()
        handler.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in ("connection", "transfer-encoding", "content-length", "server", "date"):
                handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(data)
        conn.close()

    @staticmethod
    def _unauthorized(handler: BaseHTTPRequestHandler, action: str) -> None:
        data = (
            "<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>You are not authorized to "
            f"perform this operation ({action}).</Message></Error></Errors><RequestID>denied</RequestID></Response>"
        ).encode()
        handler.send_response(403)
        handler.send_header("Content-Type", "text/xml")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    @staticmethod
    def _deny(handler: BaseHTTPRequestHandler, arn: str) -> None:
        data = (
            '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
            f"<Code>AccessDenied</Code><Message>Not authorized to perform sts:AssumeRole on {arn}</Message>"
            "</Error><RequestId>denied</RequestId></ErrorResponse>"
        ).encode()
        handler.send_response(403)
        handler.send_header("Content-Type", "text/xml")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)


def worker_env(
    endpoint_url: str, accounts: tuple[str, ...], call_log: Path | None = None, regions: tuple[str, ...] = REGIONS
) -> dict[str, str]:
    """What a worker needs to collect and clean the seeded estate."""
    from worker.providers.aws import estate

    env = {
        "RESOTO_COLLECT_PROVIDERS": "aws",
        "RESOTO_AWS_ENDPOINT_URL": endpoint_url,
        "RESOTO_AWS_ACCOUNTS": ",".join(accounts),
        "RESOTO_AWS_ROLE_NAME": estate.ROLE_NAME,
        "RESOTO_AWS_REGIONS": ",".join(regions),
        "RESOTO_AWS_DELETE_POLL_S": "0.05",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    if call_log is not None:
        env["RESOTO_AWS_CALL_LOG"] = str(call_log)
    return env


@contextmanager
def no_aws_profile() -> Iterator[None]:
    """Test processes must not pick up a developer's AWS profile or real credentials."""
    saved = {k: os.environ.pop(k) for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN") if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


# -- the estate as AWS describes it ------------------------------------------------------------


@functools.cache
def _clients(endpoint_url: str, account: str, region: str) -> dict[str, Any]:
    """Made once per test process: creating boto3 clients costs about 0.1 s each."""
    from worker.providers.aws import estate

    return estate.clients(endpoint_url, account, region)


def describe_estate(endpoint_url: str, account: str, regions: tuple[str, ...] = REGIONS) -> set[tuple[str, str]]:
    """(kind, id) of everything alive in the account, straight from the API (plain boto3)."""
    live: set[tuple[str, str]] = set()
    for region in regions:
        c = _clients(endpoint_url, account, region)
        ec2 = c["ec2"]
        for r in ec2.describe_instances()["Reservations"]:
            live |= {("instance", i["InstanceId"]) for i in r["Instances"] if i["State"]["Name"] != "terminated"}
        live |= {("volume", v["VolumeId"]) for v in ec2.describe_volumes()["Volumes"]}
        own = [{"Name": "owner-id", "Values": [account]}]  # moto adds ~1,300 public snapshots otherwise
        snaps = ec2.describe_snapshots(OwnerIds=["self"], Filters=own)["Snapshots"]
        live |= {("snapshot", s["SnapshotId"]) for s in snaps if s["OwnerId"] == account}
        live |= {("vpc", v["VpcId"]) for v in ec2.describe_vpcs()["Vpcs"]}
        live |= {("subnet", s["SubnetId"]) for s in ec2.describe_subnets()["Subnets"]}
        live |= {("security_group", g["GroupId"]) for g in ec2.describe_security_groups()["SecurityGroups"]}
        gateways = ec2.describe_internet_gateways()["InternetGateways"]
        live |= {("internet_gateway", g["InternetGatewayId"]) for g in gateways}
        live |= {("elastic_ip", a["AllocationId"]) for a in ec2.describe_addresses()["Addresses"]}
        lbs = c["elbv2"].describe_load_balancers()["LoadBalancers"]
        live |= {("load_balancer", b["LoadBalancerArn"]) for b in lbs}
    s3 = _clients(endpoint_url, account, regions[0])["s3"]
    live |= {("bucket", b["Name"]) for b in s3.list_buckets()["Buckets"]}
    return live


def deleted_with(endpoint_url: str, account: str, instance_ids: set[str], vpc_ids: set[str]) -> set[tuple[str, str]]:
    """What AWS deletes by itself with these instances and VPCs: root volumes (``DeleteOnTermination``)
    and each VPC's ``default`` security group. Read before the run, while they exist."""
    found: set[tuple[str, str]] = set()
    for region in REGIONS:
        ec2 = _clients(endpoint_url, account, region)["ec2"]
        for r in ec2.describe_instances()["Reservations"]:
            for i in r["Instances"]:
                if i["InstanceId"] in instance_ids:
                    found |= {
                        ("volume", m["Ebs"]["VolumeId"])
                        for m in i.get("BlockDeviceMappings", ())
                        if m["Ebs"].get("DeleteOnTermination")
                    }
        for g in ec2.describe_security_groups()["SecurityGroups"]:
            if g["GroupName"] == "default" and g.get("VpcId") in vpc_ids:
                found.add(("security_group", g["GroupId"]))
    return found


def bucket_objects(endpoint_url: str, account: str, name: str) -> int:
    s3 = _clients(endpoint_url, account, REGIONS[0])["s3"]
    found = s3.list_object_versions(Bucket=name)
    return len(found.get("Versions", ())) + len(found.get("DeleteMarkers", ()))


# -- the run, through the CLI ------------------------------------------------------------------


def ledger_entries(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The cleanup ledger of a run record as ``resoto-tasks run --wait --json`` and ``runs show
    --json`` print it: the one place that knows its JSON shape (``ledger.entries``, each with
    provider, account, id, kind, decision, reason, at)."""
    ledger = record.get("ledger") or {}
    entries: list[dict[str, Any]] = ledger.get("entries", [])
    return entries


def mutating(actions: list[str]) -> list[str]:
    """The logged IAM actions that change the estate."""
    return [a for a in actions if a.split(":", 1)[1].startswith(MUTATING_PREFIXES)]

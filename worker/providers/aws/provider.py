"""The ``aws`` provider: accounts, a streamed collect of every region in parallel, and deletion.

* **Accounts.** ``RESOTO_AWS_ACCOUNTS`` with ``RESOTO_AWS_ROLE_NAME``: each account is collected
  through ``arn:aws:iam::<id>:role/<name>``, its credentials renewed by botocore before they
  expire. Without a list: the account of boto3's default credentials (``sts:GetCallerIdentity``).
* **Regions** (``RESOTO_AWS_REGIONS``, default every enabled region) are collected by a bounded
  pool of threads (``RESOTO_AWS_REGION_CONCURRENCY``) into one bounded queue, so memory holds a
  few pages, never an account. Buckets are listed once per account, beside the regions.
* **A failure anywhere fails the account** (:class:`ProviderError`): the collect task then drops
  the new snapshot and keeps the previous one, and the cleaner leaves the account alone this run.
* **Creation time.** Where AWS gives none (VPCs, subnets, groups, gateways, addresses), the time
  the store first saw the resource, read back from the store on every collect.
* **Deletion** is idempotent: what AWS no longer knows counts as deleted. AWS errors reach the
  ledger as ``Code: message``; throttling is retried by botocore's adaptive mode, never here.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import ClassVar, Final

from botocore.exceptions import BotoCoreError, ClientError

from resoto_tasks.store import ResourceStore
from resoto_tasks.store.resources import Resource
from worker.providers.aws import ec2, elb, s3
from worker.providers.aws.calls import CallLog
from worker.providers.aws.common import BUCKET, LOAD_BALANCER, PROVIDER, Found
from worker.providers.aws.session import AccountSession, base_client, error_code, error_text
from worker.providers.aws.settings import AwsSettings, ProtectionCheck, load_settings
from worker.providers.base import Provider, ProviderError

log = logging.getLogger(__name__)

QUEUE_SIZE: Final = 2_000
"""Resources waiting between the region threads and the store writer (a few pages)."""
FIRST_SEEN_BATCH: Final = 500
_PUT_POLL_S: Final = 0.2


def is_gone(exc: ClientError) -> bool:
    """AWS's way of saying the resource no longer exists (so deleting it is done)."""
    code = error_code(exc)
    return code.endswith(".NotFound") or code in ("LoadBalancerNotFound", "NoSuchBucket")


_Task = Callable[[], Iterable[Found]]
"""One unit of the pool: a region's EC2 and ELB kinds, or the account's buckets."""


class _Done:
    """A region task finished."""


class _Failed:
    def __init__(self, where: str, exc: BaseException) -> None:
        self.where = where
        self.exc = exc


class AwsProvider(Provider):
    """Amazon Web Services through boto3; see the module docstring."""

    name: ClassVar[str] = PROVIDER

    def __init__(self, settings: AwsSettings | None = None, *, store: ResourceStore | None = None) -> None:
        """Raises: ConfigurationError (one line per bad ``RESOTO_AWS_*`` variable)."""
        self.settings = settings if settings is not None else load_settings()
        self.calls = CallLog(self.settings.call_log)
        self._store = store
        self._sessions: dict[str, AccountSession] = {}
        self._lock = threading.Lock()

    # -- Provider -------------------------------------------------------------------------------

    def accounts(self) -> list[str]:
        """The listed accounts, else the default credentials' own; ``[]`` (logged) when there are
        no usable credentials, so a worker's other subscriptions are not lost with AWS's."""
        if self.settings.accounts:
            return list(self.settings.accounts)
        try:
            return [self.own_account()]
        except (ClientError, BotoCoreError) as exc:
            log.error("aws: no account to collect: cannot identify the credentials (%s)", error_text(exc))
            return []

    def collect(self, account: str) -> Iterator[Resource]:
        """Every live resource of the account, streamed region by region in parallel.

        Raises:
            ProviderError: the role cannot be assumed, or any region or the bucket listing fails.
        """
        session = self.session(account)
        try:
            regions = self.regions(session)
        except (ClientError, BotoCoreError) as exc:
            raise ProviderError(self.name, account, f"cannot list regions: {error_text(exc)}") from None
        now = datetime.now(UTC)
        log.info("aws: collecting account %s in %d regions: %s", account, len(regions), ", ".join(regions))
        yield from self._first_seen(account, self._parallel(session, regions, now))

    def delete(self, resource: Resource) -> None:
        """Delete one resource; one AWS no longer knows is deleted.

        Raises:
            ProviderError: AWS refused (the reason starts with its error code), a bounded wait ran
                out (``Timeout``), or the resource is not one of this provider's accounts and kinds.
        """
        if resource.provider != self.name:
            raise ProviderError(self.name, resource.account, f"belongs to provider {resource.provider!r}")
        if self.settings.accounts and resource.account not in self.settings.accounts:
            raise ProviderError(self.name, resource.account, "not listed in RESOTO_AWS_ACCOUNTS", resource.id)
        session = self.session(resource.account)
        wait_s, poll_s = self.settings.delete_wait_s, self.settings.delete_poll_s
        try:
            if resource.kind == BUCKET:
                s3.delete(lambda region: session.client("s3", region), resource.id, resource.region)
            elif resource.kind == LOAD_BALANCER:
                elb.delete(session.client("elbv2", resource.region), resource.id, wait_s, poll_s)
            else:
                delete = ec2.deleter(resource.kind)
                if delete is None:
                    raise ProviderError(self.name, resource.account, f"unknown kind {resource.kind!r}", resource.id)
                delete(session.client("ec2", resource.region), resource.id, wait_s, poll_s)
        except ClientError as exc:
            if is_gone(exc):
                log.info("aws: %s %s was already gone", resource.kind, resource.id)
                return
            raise ProviderError(self.name, resource.account, error_text(exc), resource.id) from None
        except ec2.Timeout as exc:
            raise ProviderError(self.name, resource.account, f"Timeout: {exc}", resource.id) from None
        except BotoCoreError as exc:
            raise ProviderError(self.name, resource.account, error_text(exc), resource.id) from None

    # -- accounts, sessions, regions ------------------------------------------------------------

    def own_account(self) -> str:
        """The account of boto3's default credentials.

        Raises: ClientError, BotoCoreError (no or bad credentials).
        """
        sts = base_client(self.settings, "sts", self.calls)
        return str(sts.get_caller_identity()["Account"])

    def role_arn(self, account: str) -> str | None:
        """The role assumed for ``account``: every listed account goes through the role."""
        if self.settings.accounts and self.settings.role_name:
            return f"arn:aws:iam::{account}:role/{self.settings.role_name}"
        return None

    def session(self, account: str) -> AccountSession:
        """The account's session, created (and its role assumed) once per provider instance.

        Raises:
            ProviderError: the role cannot be assumed, or without a role the credentials belong
                to another account.
        """
        with self._lock:
            found = self._sessions.get(account)
            if found is not None:
                return found
            arn = self.role_arn(account)
            try:
                if arn is None:
                    own = self.own_account()
                    if own != account:
                        raise ProviderError(
                            self.name, account,
                            f"the credentials belong to account {own}; to collect {account}, list it in "
                            "RESOTO_AWS_ACCOUNTS and set RESOTO_AWS_ROLE_NAME",
                        )  # fmt: skip
                found = AccountSession(self.settings, account, arn, self.calls)
            except (ClientError, BotoCoreError) as exc:
                what = f"cannot assume {arn}" if arn else "cannot use the default credentials"
                raise ProviderError(self.name, account, f"{what}: {error_text(exc)}") from None
            self._sessions[account] = found
            return found

    def regions(self, session: AccountSession) -> list[str]:
        """The configured regions, else every region enabled for the account."""
        if self.settings.regions:
            return list(self.settings.regions)
        described = session.client("ec2").describe_regions().get("Regions", ())
        return sorted(str(r["RegionName"]) for r in described)

    # -- collecting -----------------------------------------------------------------------------

    def _tasks(self, session: AccountSession, regions: list[str], now: datetime) -> list[tuple[str, _Task]]:
        account = session.account

        def region_task(region: str) -> Callable[[], Iterable[Found]]:
            def run() -> Iterator[Found]:
                yield from ec2.Ec2Region(
                    session.client("ec2", region), account, region, now,
                    check_all=self.settings.termination_protection == ProtectionCheck.all,
                    concurrency=self.settings.attribute_concurrency,
                ).collect()  # fmt: skip
                yield from elb.collect(session.client("elbv2", region), account, region, now)

            return run

        wanted = set(self.settings.regions) if self.settings.regions else None
        tasks = [(region, region_task(region)) for region in regions]
        tasks.append(("s3", lambda: s3.collect(session.client("s3"), account, wanted, now)))
        return tasks

    def _parallel(self, session: AccountSession, regions: list[str], now: datetime) -> Iterator[Found]:
        """Run every region (and the bucket listing) on the pool, yield what they find as it comes.

        Raises: ProviderError for the first task that fails (the others are told to stop).
        """
        tasks = self._tasks(session, regions, now)
        found: queue.Queue[Found | _Done | _Failed] = queue.Queue(maxsize=QUEUE_SIZE)
        stop = threading.Event()

        def put(item: Found | _Done | _Failed) -> bool:
            while not stop.is_set():
                try:
                    found.put(item, timeout=_PUT_POLL_S)
                    return True
                except queue.Full:
                    continue
            return False

        def run(where: str, produce: Callable[[], Iterable[Found]]) -> None:
            try:
                for item in produce():
                    if not put(item):
                        return
                put(_Done())
            except Exception as exc:  # reported to the consumer, which fails the account
                put(_Failed(where, exc))

        pool = ThreadPoolExecutor(max_workers=self.settings.region_concurrency, thread_name_prefix="aws-region")
        try:
            for where, produce in tasks:
                pool.submit(run, where, produce)
            remaining = len(tasks)
            while remaining:
                item = found.get()
                if isinstance(item, _Done):
                    remaining -= 1
                elif isinstance(item, _Failed):
                    reason = error_text(item.exc)
                    raise ProviderError(self.name, session.account, f"{item.where}: {reason}") from None
                else:
                    yield item
        finally:
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)

    def _first_seen(self, account: str, stream: Iterator[Found]) -> Iterator[Resource]:
        """Give resources without a creation time the one the store already holds for them."""
        batch: list[Found] = []
        for item in stream:
            batch.append(item)
            if len(batch) >= FIRST_SEEN_BATCH:
                yield from self._with_first_seen(account, batch)
                batch = []
        yield from self._with_first_seen(account, batch)

    def _with_first_seen(self, account: str, batch: list[Found]) -> Iterator[Resource]:
        unknown = [f.resource.id for f in batch if not f.ctime_known]
        seen: dict[str, datetime] = {}
        if unknown:
            if self._store is None:
                self._store = ResourceStore()
            stored = self._store.get_many(self.name, account, unknown)
            seen = {rid: r.ctime for rid, r in zip(unknown, stored, strict=True) if r is not None}
        for item in batch:
            first = None if item.ctime_known else seen.get(item.resource.id)
            yield item.resource if first is None else item.resource.model_copy(update={"ctime": first})

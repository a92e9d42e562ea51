"""Write one account's new snapshot beside the live one, then swap it in at once.

A collect streams resources into staging keys in pipelined batches (memory bounded by two batches and
the per-(kind, region) tally, however large the account), and ``commit()`` renames every staging key
over its live key in one Lua script: readers see the old snapshot or the new one, never a mix, and
indexes and counts always match the data. ``abort()`` (a failed or timed-out collect) drops staging
and leaves the previous snapshot alone; if the writer's process dies, staging expires by itself.

Speed: one batch is in flight while the next is built (its replies are read when the next one is
sent), so Redis stores a batch while Python serialises the next; with hiredis this writes about as
fast as serialising the documents and sending them with plain pipelined ``HSET`` (see the report in
the commit that added it).

Usage::

    with store.snapshot_writer("example", "acct-1", run_id) as writer:
        writer.add_many(provider.collect("acct-1"))
        snapshot = writer.commit()      # leaving the block without commit() aborts
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final

import redis
from redis.connection import AbstractConnection

from resoto_tasks import replication
from resoto_tasks.store import keys
from resoto_tasks.store.errors import SnapshotClosed, StagingLost, WrongAccount
from resoto_tasks.store.expiry import EXPIRATION_TAGS, EXPIRES_TAG, expiry_status
from resoto_tasks.store.resources import AccountSnapshot, Resource, serialize
from resoto_tasks.store.scripts import Scripts
from resoto_tasks.store.tally import Tally

DEFAULT_BATCH_SIZE: Final = 5_000
DEFAULT_STAGING_TTL_S: Final = 6 * 3600
"""Longer than the broker's visibility timeout (4 h), so a live collect never loses its staging."""
MARK_PRUNE_BATCH: Final = 1_000
SCAN_BATCH: Final = 5_000


_EXPIRY_TAGS: Final = frozenset((EXPIRES_TAG, *EXPIRATION_TAGS))


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _Channel:
    """A connection of its own with at most one batch of commands in flight.

    ``send`` writes a batch and returns at once; its replies are read by the next ``send`` or by
    ``drain``, so Redis works on one batch while the caller builds the next. Any error breaks the
    connection (unread replies would desynchronise it), so it is disconnected, not reused.
    """

    def __init__(self, r: redis.Redis) -> None:
        self._pool = r.connection_pool
        self._conn: AbstractConnection | None = None
        self._pending = 0

    def send(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Read the previous batch's replies, then send this batch; returns the previous replies."""
        previous = self.drain()
        conn = self._connection()
        try:
            conn.send_packed_command(conn.pack_commands(commands), check_health=False)
        except BaseException:
            self.close(broken=True)
            raise
        self._pending = len(commands)
        return previous

    def drain(self) -> list[Any]:
        """The replies of the batch in flight (empty if none).

        Raises:
            redis.RedisError: a command failed or the connection broke.
        """
        if not self._pending or self._conn is None:
            return []
        replies: list[Any] = []
        try:
            for _ in range(self._pending):
                replies.append(self._conn.read_response())
        except BaseException:
            self.close(broken=True)
            raise
        self._pending = 0
        return replies

    def close(self, *, broken: bool = False) -> None:
        if self._conn is None:
            return
        conn, self._conn = self._conn, None
        self._pending = 0
        if broken:
            conn.disconnect()
        self._pool.release(conn)

    def _connection(self) -> AbstractConnection:
        if self._conn is None:
            self._conn = self._pool.get_connection()
        return self._conn


class SnapshotWriter:
    """Builds the next snapshot of one (provider, account); see the module docstring.

    Not thread-safe: one writer per collect. ``count`` is the number of resources added so far,
    for progress reports.
    """

    def __init__(
        self,
        r: redis.Redis,
        scripts: Scripts,
        provider: str,
        account: str,
        run_id: str,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        staging_ttl_s: int = DEFAULT_STAGING_TTL_S,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, not {batch_size}")
        self.provider = provider
        self.account = account
        self.run_id = run_id
        self.superseded = False
        """Set by ``commit()`` when a collect of this account that started later had already
        committed: this snapshot was dropped, the newer one stays live."""
        self._r = r
        self._scripts = scripts
        self._batch_size = batch_size
        self._ttl_s = staging_ttl_s
        self._clock = clock
        self._started_at = clock()
        self._started_mono_s = time.monotonic()
        self._token = uuid.uuid4().hex[:16]
        self._stage = keys.staging(provider, account, self._token)
        self._live = keys.live(provider, account)
        self._state = "open"
        self._count = 0
        self._written = 0
        self._duplicates = False
        self._tally = Tally()
        self._channel = _Channel(r)
        self._in_flight = 0
        self._docs: dict[str, bytes] = {}
        self._expiry_s: dict[str, float] = {}
        self._protected: list[str] = []

    @property
    def count(self) -> int:
        """Resources added so far (duplicates of an id counted each time until commit)."""
        return self._count

    def add(self, resource: Resource) -> None:
        """Add one resource to the snapshot (written in the next batch).

        Raises:
            WrongAccount: the resource belongs to another provider or account.
            SnapshotClosed: the writer was already committed or aborted.
            redis.RedisError: a batch could not be written.
        """
        if self._state != "open":
            raise SnapshotClosed(self.provider, self.account, self._state)
        if resource.account != self.account or resource.provider != self.provider:
            raise WrongAccount(
                keys.account_member(self.provider, self.account),
                keys.account_member(resource.provider, resource.account),
                resource.id,
            )
        rid = resource.id
        docs = self._docs
        if rid in docs:
            self._duplicates = True
        docs[rid] = serialize(resource)
        malformed = False
        tags = resource.tags
        # Most resources carry no expiry tag: test for one before parsing (this loop runs 1M times).
        if tags and not _EXPIRY_TAGS.isdisjoint(tags):
            expires, malformed = expiry_status(tags, resource.ctime)
            if expires is not None:
                self._expiry_s[rid] = expires.timestamp()
        if resource.protected:
            self._protected.append(rid)
        self._tally.add(resource, malformed)
        self._count += 1
        if len(docs) >= self._batch_size:
            self._flush()

    def add_many(self, resources: Iterable[Resource]) -> int:
        """Add every resource of an iterable, consuming it lazily; returns how many were added.

        Raises:
            WrongAccount, SnapshotClosed, redis.RedisError: as :meth:`add`; the snapshot stays
            uncommitted (call :meth:`abort`, or let the ``with`` block do it).
        """
        before = self._count
        for resource in resources:
            self.add(resource)
        return self._count - before

    def commit(self) -> AccountSnapshot:
        """Swap this snapshot in for the live one, indexes and counts included, in one step.

        Marks of resources that are no longer in the account are dropped afterwards. Returns the
        snapshot now live (a newer one if this writer was superseded; see ``superseded``).

        Raises:
            SnapshotClosed: already committed or aborted.
            StagingLost: staging expired or was removed; the previous snapshot is kept.
            redis.RedisError: Redis failed; the previous snapshot is kept (staging expires).
        """
        if self._state != "open":
            raise SnapshotClosed(self.provider, self.account, self._state)
        self._flush()
        self._take_replies(self._channel.drain(), self._in_flight)
        self._in_flight = 0
        self._channel.close()
        if self._duplicates:
            self._rebuild_from_staging()
        committed_at = self._clock()
        snapshot = AccountSnapshot(
            provider=self.provider,
            account=self.account,
            run_id=self.run_id,
            collected_at=committed_at,
            started_at=self._started_at,
            resource_count=self._written,
            malformed_count=self._tally.malformed,
            duration_s=round(time.monotonic() - self._started_mono_s, 3),
        )
        counts = self._tally.fields()
        if counts:
            pipe = self._r.pipeline(transaction=False)
            pipe.hset(self._stage.counts, mapping=counts)
            pipe.expire(self._stage.counts, self._ttl_s)
            pipe.execute()
        meta_pairs: list[str] = []
        for name, value in snapshot_fields(snapshot, self._started_at).items():
            meta_pairs += [name, value]
        commit_keys = [*self._live, *self._stage, keys.meta(self.provider, self.account), keys.accounts()]
        commit_args = [
            str(_ms(self._started_at)),
            keys.account_member(self.provider, self.account),
            str(self._written),
            *meta_pairs,
        ]
        if replication.required():  # the swap is acknowledged once replicas have it (WAIT)
            what = f"snapshot of {self.provider}/{self.account}"
            (outcome,) = replication.durably(
                self._r, what, lambda pipe: self._scripts.commit(keys=commit_keys, args=commit_args, client=pipe)
            )
            if isinstance(outcome, Exception):
                raise outcome
        else:
            outcome = self._scripts.commit(keys=commit_keys, args=commit_args, client=self._r)
        self._state = "committed"
        self._release()
        if outcome == -1:
            self._state = "aborted"
            raise StagingLost(self.provider, self.account, self._written)
        if outcome == 0:
            self.superseded = True
            live = read_snapshot(self._r, self.provider, self.account)
            return live if live is not None else snapshot
        self._prune_marks()
        return snapshot

    def abort(self) -> None:
        """Drop the staging keys and keep the live snapshot; safe to call more than once."""
        if self._state != "open":
            return
        self._state = "aborted"
        self._release()
        self._channel.close(broken=True)  # replies of a batch in flight are of no interest now
        self._r.unlink(*self._stage)

    def __enter__(self) -> SnapshotWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.abort()

    # -- internals ------------------------------------------------------------------------------

    def _flush(self) -> None:
        """Send the current batch; check the replies of the one sent before."""
        if not self._docs:
            return
        docs = self._docs
        args: list[str | bytes] = []
        for rid, doc in docs.items():
            args.append(rid)
            args.append(doc)
        commands: list[tuple[Any, ...]] = [("HSET", self._stage.data, *args)]
        if self._expiry_s:
            zargs: list[str | float] = []
            for rid, score in self._expiry_s.items():
                zargs.append(score)
                zargs.append(rid)
            commands.append(("ZADD", self._stage.expiry, *zargs))
        if self._protected:
            commands.append(("SADD", self._stage.protected, *self._protected))
        for key in (self._stage.data, self._stage.expiry, self._stage.protected):
            commands.append(("EXPIRE", key, self._ttl_s))
        self._release()
        replies, sent = self._channel.send(commands), self._in_flight
        self._in_flight = len(docs)
        self._take_replies(replies, sent)

    def _take_replies(self, replies: list[Any], sent: int) -> None:
        if not replies:
            return
        added = int(replies[0])  # HSET: how many of the batch's fields were new
        if added != sent:
            self._duplicates = True  # an id from an earlier batch came again
        self._written += added

    def _release(self) -> None:
        self._docs = {}
        self._expiry_s = {}
        self._protected = []

    def _rebuild_from_staging(self) -> None:
        """Recompute indexes and counts from the staged documents (last one of an id wins).

        Only when a provider yielded an id twice, which the in-memory tally cannot undo without
        remembering every id; bounded memory matters more than this rare path's speed.
        """
        self._r.unlink(self._stage.expiry, self._stage.protected)
        self._tally = Tally()
        self._written = 0
        cursor = 0
        while True:
            cursor, batch = self._r.hscan(self._stage.data, cursor, count=SCAN_BATCH)
            pipe = self._r.pipeline(transaction=False)
            for doc in batch.values():
                resource = Resource.from_json(doc)
                expires, malformed = expiry_status(resource.tags, resource.ctime)
                if expires is not None:
                    pipe.zadd(self._stage.expiry, {resource.id: expires.timestamp()})
                if resource.protected:
                    pipe.sadd(self._stage.protected, resource.id)
                self._tally.add(resource, malformed)
            pipe.expire(self._stage.expiry, self._ttl_s)
            pipe.expire(self._stage.protected, self._ttl_s)
            pipe.execute()
            if cursor == 0:
                break
        self._written = int(self._r.hlen(self._stage.data))

    def _prune_marks(self) -> None:
        marks_key = keys.marks(self.provider, self.account)
        cursor = 0
        while True:
            cursor, batch = self._r.hscan(marks_key, cursor, count=MARK_PRUNE_BATCH)
            if batch:
                self._scripts.prune_marks(keys=[self._live.data, marks_key], args=list(batch), client=self._r)
            if cursor == 0:
                break


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def snapshot_fields(snapshot: AccountSnapshot, started_at: datetime) -> dict[str, str]:
    """The meta hash of a snapshot; ``started_at_ms`` is what the commit script compares."""
    fields = {name: str(value) for name, value in snapshot.model_dump(mode="json").items()}
    fields["started_at_ms"] = str(_ms(started_at))
    return fields


def read_snapshot(r: redis.Redis, provider: str, account: str) -> AccountSnapshot | None:
    """The live snapshot's metadata, or ``None`` if the account was never committed."""
    fields: dict[str, str] = r.hgetall(keys.meta(provider, account))  # a handful of fields
    if not fields:
        return None
    fields.pop("started_at_ms", None)
    return AccountSnapshot.model_validate(fields)

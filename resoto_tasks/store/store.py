"""The resource store: read, index, count, mark and delete resources kept per account in Redis.

One object, :class:`ResourceStore`, is the interface for the collect, cleanup and metrics tasks,
user hooks and the CLI; none of them touches redis-py for resources. Costs, because a million
resources share this Redis with the broker:

* finding what expired is ``O(expired)`` (a sorted set by expiry per account);
* counts and metrics read small per-account hashes, never the resources;
* reading resources goes in ``HSCAN``/``HMGET`` batches of at most 10,000, never ``HGETALL``;
* a delete updates data, indexes, counts and marks in one Lua script.

Every method may raise ``redis.RedisError`` when Redis fails; only other errors are listed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Final

import redis

from resoto_tasks import redis_conn
from resoto_tasks.store import keys
from resoto_tasks.store.errors import StoreConflict
from resoto_tasks.store.expiry import expiry_status
from resoto_tasks.store.resources import (
    AccountSnapshot,
    AccountStats,
    ExpiredEntry,
    Mark,
    Resource,
    ResourceRef,
    ResourceView,
    StoreCounts,
)
from resoto_tasks.store.scripts import Scripts
from resoto_tasks.store.tally import numeric_attrs, parse_fields
from resoto_tasks.store.writer import DEFAULT_BATCH_SIZE, SnapshotWriter, read_snapshot

MAX_BATCH: Final = 10_000
"""The most fields one read asks Redis for (DESIGN: ``HGETALL`` of 1M fields blocks for > 1.5 s)."""
READ_BATCH: Final = 2_000
DELETE_ATTEMPTS: Final = 5


def _moment(when: datetime | None) -> datetime:
    """``when`` in UTC (naive means UTC, as everywhere in the store), default now."""
    if when is None:
        return datetime.now(UTC)
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _before(when: datetime) -> str:
    """A sorted-set bound meaning "strictly before ``when``" (expired = expiry < now)."""
    return f"({when.timestamp()!r}"


def _batches(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class ResourceStore:
    """Resources by (provider, account), with expiry index, counts, marks and snapshot metadata."""

    def __init__(self, r: redis.Redis | None = None) -> None:
        """``r`` must decode responses; default: the shared client for the store URL."""
        self._r = r if r is not None else redis_conn.client()
        self._scripts = Scripts(self._r)

    # -- snapshots ------------------------------------------------------------------------------

    def snapshot_writer(
        self, provider: str, account: str, run_id: str, *, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> SnapshotWriter:
        """A writer for the next snapshot of one account (commit swaps it in, abort drops it)."""
        ResourceRef(provider=provider, account=account, id="-")  # validates both names
        return SnapshotWriter(self._r, self._scripts, provider, account, run_id, batch_size=batch_size)

    def accounts(self, provider: str | None = None, account: str | None = None) -> list[tuple[str, str]]:
        """(provider, account) of every committed account, sorted, optionally filtered."""
        members: set[str] = self._r.smembers(keys.accounts())  # one member per account: small
        found = [keys.split_account_member(m) for m in members]
        return sorted(
            (p, a) for p, a in found if (provider is None or p == provider) and (account is None or a == account)
        )

    def snapshot(self, provider: str, account: str) -> AccountSnapshot | None:
        """Metadata of the live snapshot (last successful collect), or ``None``."""
        return read_snapshot(self._r, provider, account)

    def snapshots(self, provider: str | None = None) -> list[AccountSnapshot]:
        """Metadata of every live snapshot, sorted by provider and account."""
        found = (self.snapshot(p, a) for p, a in self.accounts(provider))
        return [s for s in found if s is not None]

    def forget_account(self, provider: str, account: str) -> None:
        """Remove an account entirely: snapshot, indexes, counts, marks and any staging keys."""
        stale = list(self._r.scan_iter(match=keys.staging_pattern(provider, account), count=1000))
        self._r.unlink(
            *keys.live(provider, account), keys.meta(provider, account), keys.marks(provider, account), *stale
        )
        self._r.srem(keys.accounts(), keys.account_member(provider, account))

    # -- reads ----------------------------------------------------------------------------------

    def get(self, provider: str, account: str, resource_id: str) -> Resource | None:
        """One resource of the live snapshot, or ``None``."""
        doc = self._r.hget(keys.live(provider, account).data, resource_id)
        return None if doc is None else Resource.from_json(doc)

    def get_many(self, provider: str, account: str, ids: Sequence[str]) -> list[Resource | None]:
        """Resources by id, in the order asked (``None`` where absent), read in bounded batches."""
        out: list[Resource | None] = []
        data = keys.live(provider, account).data
        for batch in _batches(ids, MAX_BATCH):
            docs: list[str | None] = self._r.hmget(data, list(batch))
            out += [None if d is None else Resource.from_json(d) for d in docs]
        return out

    def iter_resources(
        self, provider: str, account: str, kind: str | None = None, *, batch_size: int = READ_BATCH
    ) -> Iterator[Resource]:
        """Every resource of one account (optionally of one kind), read with ``HSCAN``.

        ``HSCAN`` guarantees each resource present for the whole iteration is seen at least once;
        if a commit swaps the snapshot meanwhile, the rest comes from the new one.
        """
        needle = f'"kind":{json.dumps(kind, ensure_ascii=False)}' if kind is not None else None
        data = keys.live(provider, account).data
        cursor = 0
        while True:
            cursor, batch = self._r.hscan(data, cursor, count=min(batch_size, MAX_BATCH))
            for doc in batch.values():
                if needle is not None and needle not in doc:
                    continue  # cheap pre-filter on the stored JSON, confirmed below
                resource = Resource.from_json(doc)
                if kind is None or resource.kind == kind:
                    yield resource
            if cursor == 0:
                return

    def count(self, provider: str, account: str) -> int:
        """Resources in the live snapshot of one account (``O(1)``)."""
        return int(self._r.hlen(keys.live(provider, account).data))

    # -- expiry ---------------------------------------------------------------------------------

    def expired(
        self,
        now: datetime | None = None,
        provider: str | None = None,
        account: str | None = None,
        *,
        include_protected: bool = True,
    ) -> Iterator[ExpiredEntry]:
        """Resources whose expiry is strictly before ``now``, soonest first per account.

        Costs ``O(expired)`` per account (sorted-set range), read in batches.
        """
        before = _before(_moment(now))
        for prov, acct in self.accounts(provider, account):
            live = keys.live(prov, acct)
            for entries in self._expired_batches(live.expiry, before):
                flags = self._r.smismember(live.protected, [rid for rid, _ in entries])
                for (rid, score), protected in zip(entries, flags, strict=True):
                    if protected and not include_protected:
                        continue
                    yield ExpiredEntry(
                        ref=ResourceRef(provider=prov, account=acct, id=rid),
                        expires_at=datetime.fromtimestamp(score, UTC),
                        protected=bool(protected),
                    )

    def _expired_batches(self, key: str, before: str) -> Iterator[list[tuple[str, float]]]:
        """Batches of (id, score) below ``before``, soonest first.

        Each page starts right after the last id returned, found by its current rank, so ids
        deleted meanwhile (a cleanup) neither shift nor skip the rest, and many ids sharing one
        expiry (a bulk-tagged fleet) cost no more than distinct ones. Only when the last id itself
        was deleted does the page fall back to its score, skipping the ids already returned there.
        """
        limit = float(before.lstrip("("))
        entries: list[tuple[str, float]] = self._r.zrangebyscore(
            key, "-inf", before, start=0, num=READ_BATCH, withscores=True
        )
        tied: set[str] = set()  # ids already returned with the last score (for the fallback)
        while entries:
            yield entries
            last_id, last_score = entries[-1]
            tied = {rid for rid, score in entries if score == last_score} | (
                tied if entries[0][1] == last_score else set()
            )
            rank = self._r.zrank(key, last_id)
            if rank is not None:
                page: list[tuple[str, float]] = self._r.zrange(key, rank + 1, rank + READ_BATCH, withscores=True)
            else:
                page = self._r.zrangebyscore(
                    key, repr(last_score), before, start=0, num=READ_BATCH + len(tied), withscores=True
                )
                page = [(rid, score) for rid, score in page if not (score == last_score and rid in tied)]
            entries = [(rid, score) for rid, score in page if score < limit]
            if len(entries) < len(page):  # reached the bound: this page is the last
                if entries:
                    yield entries
                return

    def expires_at(self, ref: ResourceRef) -> datetime | None:
        """The indexed expiry of one resource (``None``: no expiry, or not in the store)."""
        score = self._r.zscore(keys.live(ref.provider, ref.account).expiry, ref.id)
        return None if score is None else datetime.fromtimestamp(score, UTC)

    def is_protected(self, ref: ResourceRef) -> bool:
        return bool(self._r.sismember(keys.live(ref.provider, ref.account).protected, ref.id))

    # -- marks ----------------------------------------------------------------------------------

    def mark(self, ref: ResourceRef, reason: str, run_id: str, at: datetime | None = None) -> bool:
        """Mark one resource for cleanup; ``False`` if it is not in the live snapshot.

        Marking again replaces the reason and run. Protected resources can be marked (the cleaner
        records them as skipped); marks survive later snapshots as long as the resource does.
        """
        return self.mark_many([ref], reason, run_id, at) == 1

    def mark_many(self, refs: Iterable[ResourceRef], reason: str, run_id: str, at: datetime | None = None) -> int:
        """Mark many resources with one reason; returns how many were in the store and marked."""
        doc = json.dumps({"reason": reason, "run_id": run_id, "marked_at": _moment(at).isoformat()})
        marked = 0
        for (prov, acct), ids in _group_by_account(refs).items():
            live = keys.live(prov, acct)
            for batch in _batches(ids, READ_BATCH):
                marked += int(
                    self._scripts.mark(keys=[live.data, keys.marks(prov, acct)], args=[doc, *batch], client=self._r)
                )
        return marked

    def unmark(self, ref: ResourceRef) -> bool:
        """Remove a resource's mark; ``False`` if it had none."""
        return bool(self._r.hdel(keys.marks(ref.provider, ref.account), ref.id))

    def mark_of(self, ref: ResourceRef) -> Mark | None:
        doc = self._r.hget(keys.marks(ref.provider, ref.account), ref.id)
        return None if doc is None else _mark(ref.provider, ref.account, ref.id, doc)

    def marks(self, provider: str | None = None, account: str | None = None) -> Iterator[Mark]:
        """Every mark, optionally of one provider and/or account, read with ``HSCAN``."""
        for prov, acct in self.accounts(provider, account):
            cursor = 0
            while True:
                cursor, batch = self._r.hscan(keys.marks(prov, acct), cursor, count=READ_BATCH)
                for rid, doc in batch.items():
                    yield _mark(prov, acct, rid, doc)
                if cursor == 0:
                    break

    # -- delete ---------------------------------------------------------------------------------

    def delete_resource(self, provider: str, account: str, resource_id: str) -> bool:
        """Remove a resource from the live snapshot, its indexes, counts and mark, all at once.

        Call it after the provider deleted the resource. ``False`` if it was not in the store
        (a mark of it is dropped anyway).

        Raises:
            StoreConflict: the resource changed under every attempt (commits racing the delete).
        """
        live = keys.live(provider, account)
        marks_key = keys.marks(provider, account)
        for _ in range(DELETE_ATTEMPTS):
            doc = self._r.hget(live.data, resource_id)
            if doc is None:
                self._r.hdel(marks_key, resource_id)
                return False
            resource = Resource.from_json(doc)
            malformed = bool(resource.tags) and expiry_status(resource.tags, resource.ctime).malformed
            deltas: list[str] = []
            for name, value in numeric_attrs(resource).items():
                deltas += [keys.sum_field(resource.kind, resource.region, name), repr(-value)]
            outcome = self._scripts.delete(
                keys=[*live, marks_key],
                args=[
                    resource_id,
                    doc,
                    "1" if malformed else "0",
                    keys.count_field(resource.kind, resource.region),
                    keys.sum_field(resource.kind, resource.region, ""),
                    *deltas,
                ],
                client=self._r,
            )
            if outcome != -1:
                return int(outcome) == 1
        raise StoreConflict(provider, account, resource_id, DELETE_ATTEMPTS)

    # -- counts ---------------------------------------------------------------------------------

    def account_stats(self, provider: str, account: str, now: datetime | None = None) -> AccountStats:
        """Counts of one account for metrics: read from small hashes and O(1) lengths only."""
        return self._stats([(provider, account)], _moment(now))[0]

    def all_stats(self, now: datetime | None = None) -> list[AccountStats]:
        """:meth:`account_stats` of every account, at one ``now``, in one round trip."""
        return self._stats(self.accounts(), _moment(now))

    def _stats(self, accounts: list[tuple[str, str]], moment: datetime) -> list[AccountStats]:
        before = _before(moment)
        pipe = self._r.pipeline(transaction=False)
        for provider, account in accounts:
            live = keys.live(provider, account)
            pipe.hlen(live.data)
            pipe.scard(live.protected)
            pipe.hlen(keys.marks(provider, account))
            pipe.zcount(live.expiry, "-inf", before)
            pipe.hgetall(live.counts)  # kinds x regions x attrs fields: small by construction
        replies = pipe.execute() if accounts else []
        found = []
        for i, (provider, account) in enumerate(accounts):
            total, protected, marked, expired, fields = replies[5 * i : 5 * i + 5]
            groups, malformed = parse_fields(fields)
            found.append(
                AccountStats(
                    provider=provider,
                    account=account,
                    total=total,
                    protected=protected,
                    malformed=malformed,
                    marked=marked,
                    expired=expired,
                    groups=groups,
                )
            )
        return found

    def counts(self, now: datetime | None = None) -> StoreCounts:
        """Totals over every account (``resoto-tasks resources count``)."""
        by_kind: dict[str, int] = {}
        by_account: dict[str, int] = {}
        expired = marked = protected = malformed = 0
        for stats in self.all_stats(now):
            by_account[keys.account_member(stats.provider, stats.account)] = stats.total
            for group in stats.groups:
                by_kind[group.kind] = by_kind.get(group.kind, 0) + group.count
            expired += stats.expired
            marked += stats.marked
            protected += stats.protected
            malformed += stats.malformed
        return StoreCounts(
            total=sum(by_account.values()),
            by_kind=dict(sorted(by_kind.items())),
            by_account=by_account,
            expired=expired,
            marked=marked,
            protected=protected,
            malformed=malformed,
        )

    # -- listing --------------------------------------------------------------------------------

    def list_resources(
        self,
        *,
        kind: str | None = None,
        provider: str | None = None,
        account: str | None = None,
        marked: bool = False,
        expired: bool = False,
        now: datetime | None = None,
        limit: int | None = 100,
    ) -> list[ResourceView]:
        """Resources with their expiry and mark, filtered (``resoto-tasks resources list``).

        Driven by the smallest source that can answer: the marks when ``marked``, else the expiry
        index when ``expired``, else a scan of the resources; stops at ``limit``.
        """
        moment = _moment(now)
        out: list[ResourceView] = []
        if limit is not None and limit <= 0:
            return out
        for prov, acct in self.accounts(provider, account):
            for view in self._views(prov, acct, marked=marked, expired=expired, now=moment):
                if kind is not None and view.resource.kind != kind:
                    continue
                out.append(view)
                if limit is not None and len(out) >= limit:
                    return out
        return out

    def _views(
        self, provider: str, account: str, *, marked: bool, expired: bool, now: datetime
    ) -> Iterator[ResourceView]:
        live = keys.live(provider, account)
        marks_key = keys.marks(provider, account)
        now_s = now.timestamp()
        for ids, docs in self._id_batches(provider, account, marked=marked, expired=expired, now=now):
            pipe = self._r.pipeline(transaction=False)
            pipe.zmscore(live.expiry, ids)
            pipe.hmget(marks_key, ids)
            scores, mark_docs = pipe.execute()
            for rid, doc, score, mark_doc in zip(ids, docs, scores, mark_docs, strict=True):
                if doc is None or (marked and mark_doc is None):
                    continue
                if expired and (score is None or score >= now_s):
                    continue
                yield ResourceView(
                    resource=Resource.from_json(doc),
                    expires_at=None if score is None else datetime.fromtimestamp(score, UTC),
                    mark=None if mark_doc is None else _mark(provider, account, rid, mark_doc),
                )

    def _id_batches(
        self, provider: str, account: str, *, marked: bool, expired: bool, now: datetime
    ) -> Iterator[tuple[list[str], list[str | None]]]:
        """(ids, docs) in batches from the source that drives a listing."""
        live = keys.live(provider, account)
        if marked or expired:
            source = (
                self._scan_ids(keys.marks(provider, account))
                if marked
                else (e.ref.id for e in self.expired(now, provider, account))
            )
            batch: list[str] = []
            for rid in source:
                batch.append(rid)
                if len(batch) >= READ_BATCH:
                    yield batch, self._r.hmget(live.data, batch)
                    batch = []
            if batch:
                yield batch, self._r.hmget(live.data, batch)
            return
        cursor = 0
        while True:
            cursor, found = self._r.hscan(live.data, cursor, count=READ_BATCH)
            if found:
                yield list(found), list(found.values())
            if cursor == 0:
                return

    def _scan_ids(self, key: str) -> Iterator[str]:
        cursor = 0
        while True:
            cursor, batch = self._r.hscan(key, cursor, count=READ_BATCH)
            yield from batch
            if cursor == 0:
                return


def _group_by_account(refs: Iterable[ResourceRef]) -> dict[tuple[str, str], list[str]]:
    grouped: dict[tuple[str, str], list[str]] = {}
    for ref in refs:
        grouped.setdefault((ref.provider, ref.account), []).append(ref.id)
    return grouped


def _mark(provider: str, account: str, resource_id: str, doc: str) -> Mark:
    fields = json.loads(doc)
    return Mark(provider=provider, account=account, id=resource_id, **fields)

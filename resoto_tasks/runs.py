"""The run store: run records in Redis, and the one way to change them.

A change is a :class:`resoto_tasks.transitions.Decision`, decided in Python on what was read and
applied here by one Lua script (:data:`APPLY_SCRIPT`) in one round trip. The script first checks
its *guards* (the SHA-1 of every record the decision was made on, the members of the workflow's
active set, the queued run, the schedule slot) and applies nothing if any changed since the read:
the caller reads again and decides again. So a callback delivered twice, racing the supervisor
or a cancel, advances a run exactly once.

Why a script and not WATCH/MULTI: WATCH needs the read and the write on one connection and costs
WATCH, MULTI and EXEC round trips per attempt; the script is one ``EVALSHA`` whatever it writes,
and the guard makes the same promise (measured in ``bench/``: the engine's own commands per
subscribed step went from about 10 to 3: the record and the live subscriptions in one pipelined
read, then the script). The keys it writes are all in this module's translation of the typed
writes, so the key schema stays in :mod:`resoto_tasks.keys`.

Subscriber answers do not touch the record: a blocking subscriber's answer is its task's result,
counted by the chord and handed to the callback; the result backend keeps it for views and for
the supervisor.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import redis

from resoto_tasks import keys, live_cache, replication, stats, subscribers
from resoto_tasks.errors import UnknownRun
from resoto_tasks.models import Progress, Run, RunStatus, Subscription
from resoto_tasks.redis_conn import client
from resoto_tasks.settings import get_settings
from resoto_tasks.timeutil import iso, now_ms, utcnow
from resoto_tasks.transitions import (
    AddActive,
    Admission,
    ClearQueued,
    Count,
    Decision,
    IndexRun,
    KeepRunData,
    RaiseAbort,
    Record,
    RemoveActive,
    SetQueued,
    SetStat,
    TakeSlot,
    Write,
)

log = logging.getLogger(__name__)

APPLY_SCRIPT = """
-- ARGV[1]: guards, JSON [[kind, key, expected], ...]; ARGV[2]: commands, JSON [[cmd, args...], ...];
-- ARGV[3]: JSON list of string keys to read after the writes. Returns {1, values...} or {0, failed guard key}.
local guards = cjson.decode(ARGV[1])
for _, g in ipairs(guards) do
  local kind, key, expected = g[1], g[2], g[3]
  local actual
  if kind == 'sha' then
    local v = redis.call('GET', key)
    if v then actual = redis.sha1hex(v) else actual = '' end
  elseif kind == 'members' then
    local m = redis.call('SMEMBERS', key)
    table.sort(m)
    actual = table.concat(m, ',')
  else
    actual = redis.call('GET', key) or ''
  end
  if actual ~= expected then return {0, key} end
end
for _, c in ipairs(cjson.decode(ARGV[2])) do
  if c[1] == 'DELIFEQ' then
    if redis.call('GET', c[2]) == c[3] then redis.call('DEL', c[2]) end
  else
    redis.call(unpack(c))
  end
end
local result = {1}
for _, k in ipairs(cjson.decode(ARGV[3])) do table.insert(result, redis.call('GET', k) or '') end
return result
"""


def new_run_id() -> str:
    """Sortable and readable: ``20261126T224700-3fa2c1``."""
    return f"{utcnow().strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"


def retention_s() -> int:
    return int(get_settings().run_retention_days * 86400)


def sha(raw: str | None) -> str:
    return hashlib.sha1(raw.encode()).hexdigest() if raw else ""


@dataclass(frozen=True)
class Versioned:
    """A record as read, with the SHA-1 of its JSON: the guard its transition is applied under."""

    run: Run
    sha: str


@dataclass(frozen=True)
class Applied:
    """Whether the guards held (and so everything was written), and the keys read after."""

    ok: bool
    values: dict[str, str]


Guard = tuple[str, str, str]
"""(kind, key, expected): ``sha`` of a string key, sorted ``members`` of a set, or its ``value``."""


@dataclass(frozen=True)
class _Read:
    """What :meth:`RunStore._read` read in one round trip."""

    strings: list[str | None]
    members: set[str]
    workflows_version: str
    live: dict[str, list[Subscription]]


class RunStore:
    """Run records and the workflows' admission state in Redis."""

    def __init__(self, r: redis.Redis | None = None) -> None:
        self._r = r

    @property
    def r(self) -> redis.Redis:
        return self._r or client()

    # -- reads ---------------------------------------------------------------------------------

    def load(self, run_id: str) -> Versioned | None:
        raw = self.r.get(keys.run(run_id))
        return _versioned(raw)

    def load_with_live(self, run_id: str, at_ms: int) -> tuple[Versioned | None, dict[str, list[Subscription]], str]:
        """What a step transition needs: the record, the live subscriptions and the workflows
        version (for the events its effects match), with one ``MGET`` while this process's copy of
        the subscription registry holds."""
        read = self._read(keys.run(run_id), at_ms=at_ms)
        return _versioned(read.strings[0]), read.live, read.workflows_version

    def admission(
        self, workflow: str, slot: str | None, live_at_ms: int | None = None
    ) -> tuple[Admission, list[Guard], str, dict[str, list[Subscription]]]:
        """A workflow's admission state, the guards a start decided on it is applied under, the
        workflows version (which definition of ``workflow`` the start decides with) and, given
        ``live_at_ms``, the live subscriptions then (what a dispatching start sends its first step
        to): ``SMEMBERS`` and one ``MGET``, in one round trip."""
        strings = [keys.workflow_queued(workflow), *([keys.slot(workflow, slot)] if slot else [])]
        read = self._read(*strings, members_of=keys.workflow_active(workflow), at_ms=live_at_ms)
        queued, *rest = read.strings
        taken = rest[0] if rest else None
        active = tuple(sorted(read.members))
        guards: list[Guard] = [
            ("members", keys.workflow_active(workflow), ",".join(active)),
            ("value", keys.workflow_queued(workflow), queued or ""),
        ]
        if slot:
            guards.append(("value", keys.slot(workflow, slot), taken or ""))
        state = Admission(active=active, queued=queued, slot_taken=taken if slot else None)
        return state, guards, read.workflows_version, read.live

    def _read(self, *strings: str, members_of: str | None = None, at_ms: int | None = None) -> _Read:
        """``strings``, the members of the set ``members_of``, the workflows version and, given
        ``at_ms``, the live subscriptions then (see :mod:`resoto_tasks.live_cache`), in one round trip.

        The registry's version is read before its members, in the same round trip when the copy
        has aged; only a version that moved since the copy costs a second round trip.
        """
        r = self.r
        cache = live_cache.for_client(r, keys.subscriptions_live(), int(get_settings().subscriber_ttl_s * 250))
        pipe = r.pipeline(transaction=False)
        if members_of is not None:
            pipe.smembers(members_of)
        pipe.mget([*strings, keys.workflows_version(), keys.subscriptions_version()])
        aged = at_ms is not None and cache.aged(at_ms)
        if aged and at_ms is not None:
            subscribers.queue_live_read(pipe, at_ms)
        replies = pipe.execute()
        members = set(replies.pop(0)) if members_of is not None else set()
        (*strings_read, workflows_version, registry_version), *read_live = replies
        live = {} if at_ms is None else self._live(cache, registry_version, at_ms, read_live[0] if aged else None)
        return _Read(strings_read, members, workflows_version or "0", live)

    def _live(
        self, cache: live_cache.LiveCache, version: str | None, at_ms: int, read: Any
    ) -> dict[str, list[Subscription]]:
        """The live subscriptions from this process's copy, or from ``read`` (the registry's members,
        read with the version because the copy aged), or read now (the version moved)."""
        entries = None if read is not None else cache.entries(version, at_ms)
        if entries is None:
            if read is None:
                read = self.r.zrangebyscore(keys.subscriptions_live(), at_ms, "+inf", withscores=True)
            entries = cache.keep(version, at_ms, subscribers.parse_members(read))
        return subscribers.by_action(subscribers.newest_live(list(entries), at_ms))

    def with_active_runs(self, state: Admission, guards: list[Guard]) -> tuple[Admission, list[Guard]]:
        """``state`` with the records of its active runs, guarded too (what ``replace`` decides on)."""
        runs: dict[str, Run] = {}
        more = list(guards)
        if state.active:
            for run_id, raw in zip(state.active, self.r.mget([keys.run(i) for i in state.active]), strict=True):
                found = _versioned(raw)
                if found is not None:
                    runs[run_id] = found.run
                    more.append(("sha", keys.run(run_id), found.sha))
        return dataclasses.replace(state, active_runs=runs), more

    # -- the one write ---------------------------------------------------------------------------

    def apply(self, decision: Decision, guards: Sequence[Guard], reads: Sequence[str] = ()) -> Applied:
        """Apply ``decision`` if every guard still holds, then read ``reads`` (string keys), all in
        one round trip. New records (ids not guarded) are guarded as absent, so an id is never reused.
        """
        guarded = {key for _, key, _ in guards}
        all_guards = list(guards) + [
            ("sha", keys.run(r.id), "") for r in decision.runs if keys.run(r.id) not in guarded
        ]
        commands = [["SET", keys.run(r.id), r.model_dump_json(), "EX", str(retention_s())] for r in decision.runs]
        at = iso(utcnow()) or ""
        for write in decision.writes:
            commands.extend(commands_of(write, at))
        ok, *values = _run_script(self.r, all_guards, commands, list(reads))
        return Applied(bool(ok), dict(zip(reads, values, strict=False)) if ok else {})

    # -- the run's side keys ---------------------------------------------------------------------

    def is_aborted(self, run_id: str) -> bool:
        return bool(self.r.exists(keys.run_abort(run_id)))


def _versioned(raw: str | None) -> Versioned | None:
    if raw is None:
        return None
    return Versioned(Run.model_validate_json(raw), sha(raw))


APPLY_SCRIPT_SHA = hashlib.sha1(APPLY_SCRIPT.encode()).hexdigest()


def _run_script(r: redis.Redis, guards: list[Guard], commands: list[list[str]], reads: list[str]) -> list[Any]:
    """EVALSHA, loading the script on a server that does not know it yet (a new or restarted one).

    With ``RESOTO_REDIS_MIN_REPLICAS_ACK`` the script is followed by ``WAIT`` in the same round
    trip (:mod:`resoto_tasks.replication`): the transition counts as applied only once replicas have it.
    """
    args = [json.dumps(guards), json.dumps(commands), json.dumps(reads)]
    digest = APPLY_SCRIPT_SHA
    if replication.required():
        return _run_script_durably(r, args)
    try:
        result: list[Any] = r.evalsha(digest, 0, *args)
    except redis.exceptions.NoScriptError:
        result = r.eval(APPLY_SCRIPT, 0, *args)
    return result


def _run_script_durably(r: redis.Redis, args: list[str]) -> list[Any]:
    (result,) = replication.durably(r, "run transition", lambda pipe: pipe.evalsha(APPLY_SCRIPT_SHA, 0, *args))
    if isinstance(result, redis.exceptions.NoScriptError):
        (result,) = replication.durably(r, "run transition", lambda pipe: pipe.eval(APPLY_SCRIPT, 0, *args))
    if isinstance(result, Exception):
        raise result
    found: list[Any] = result
    return found


def commands_of(write: Write, at: str) -> list[list[str]]:
    """The Redis commands of one typed write (every key built by :mod:`resoto_tasks.keys`)."""
    match write:
        case AddActive(workflow, run_id):
            return [["SADD", keys.workflow_active(workflow), run_id], ["SADD", keys.runs_active(), run_id]]
        case RemoveActive(workflow, run_id):
            return [["SREM", keys.workflow_active(workflow), run_id], ["SREM", keys.runs_active(), run_id]]
        case SetQueued(workflow, run_id):
            return [["SET", keys.workflow_queued(workflow), run_id], ["SADD", keys.workflows_with_queued(), workflow]]
        case ClearQueued(workflow, run_id):
            return [["DELIFEQ", keys.workflow_queued(workflow), run_id]]
        case TakeSlot(workflow, slot, run_id):
            return [["SET", keys.slot(workflow, slot), run_id, "EX", str(retention_s())]]
        case IndexRun(workflow, run_id, at_ms):
            return [
                ["ZADD", keys.runs_index(), str(at_ms), run_id],
                ["ZADD", keys.runs_of_workflow(workflow), str(at_ms), run_id],
            ]
        case RaiseAbort(run_id):
            return [["SET", keys.run_abort(run_id), "1", "EX", str(retention_s())]]
        case Record(kind, data):
            maxlen = str(get_settings().events_maxlen)
            encoded = json.dumps(dict(data), default=str)
            return [["XADD", keys.events(), "MAXLEN", "~", maxlen, "*", "kind", kind, "at", at, "data", encoded]]
        case Count(stat, labels, by):
            return [["HINCRBYFLOAT", keys.stats(stat), stats.field(*labels), repr(float(by))]]
        case SetStat(stat, labels, value):
            return [["HSET", keys.stats(stat), stats.field(*labels), value]]
        case KeepRunData(run_id):
            return [["EXPIRE", keys.run_progress(run_id), str(retention_s())]]
    raise TypeError(f"unknown write {write!r}")  # pragma: no cover - the match above is exhaustive


# ---------------------------------------------------------------------------------------------
# Module-level conveniences over the default store (the CLI, views, the worker's cleanup)
# ---------------------------------------------------------------------------------------------


def load(run_id: str) -> Run | None:
    found = RunStore().load(run_id)
    return found.run if found else None


def get(run_id: str) -> Run:
    """Raises: UnknownRun."""
    found = load(run_id)
    if found is None:
        raise UnknownRun(run_id)
    return found


def progress_of(run_id: str) -> dict[tuple[int, str], Progress]:
    raw: dict[str, str] = client().hgetall(keys.run_progress(run_id))
    found: dict[tuple[int, str], Progress] = {}
    for name, value in raw.items():
        index, _, sub = name.partition("/")
        if index.isdigit():
            found[(int(index), sub)] = Progress.model_validate_json(value)
    return found


MAX_SCANNED = 2_000
"""Records one page may read while it filters (status, errors): a filter that matches nothing
costs this many reads, not the history; the page then ends early with a cursor to go on from."""


@dataclass(frozen=True)
class RunQuery:
    """Which runs a listing wants, newest first. Times are creation times in ms; ``cursor`` is
    the ``next_cursor`` of the page before (``{created ms}:{run id}``)."""

    workflow: str | None = None
    status: RunStatus | None = None
    errors_only: bool = False
    since_ms: int | None = None
    until_ms: int | None = None
    limit: int = 20
    cursor: str | None = None


@dataclass(frozen=True)
class RunPage:
    runs: list[Run]
    next_cursor: str | None
    """Where the next page starts; ``None`` when the history has no more runs for the query."""


def _parse_cursor(cursor: str | None) -> tuple[int, str] | None:
    """Raises: ValueError for a cursor this module did not make."""
    if not cursor:
        return None
    at, sep, run_id = cursor.partition(":")
    if not sep or not at.isdigit() or not run_id:
        raise ValueError(f"not a cursor: {cursor!r}")
    return int(at), run_id


def page_runs(query: RunQuery) -> RunPage:
    """One page of the run index (a sorted set by creation time), newest first.

    Reads the index from the cursor down in batches and the records of each batch with one MGET,
    so a page costs about ``limit`` records however long the history is; filters that the index
    cannot answer (status, errors) read at most :data:`MAX_SCANNED` records per page.

    Raises:
        ValueError: a malformed cursor.
    """
    r = client()
    index_key = keys.runs_of_workflow(query.workflow) if query.workflow else keys.runs_index()
    anchor = _parse_cursor(query.cursor)
    low: int | str = query.since_ms if query.since_ms is not None else "-inf"
    limit = max(1, query.limit)
    batch = min(max(limit + 1, 50), 500)
    found: list[Run] = []
    scanned = 0
    skip = 0  # ties at the anchor's ms already seen, when a whole batch of them was
    while True:
        # Each batch goes on from the last entry seen (its ms, then ids below it), never from an
        # offset: runs started meanwhile would shift offsets and show a run twice.
        high: int | str = query.until_ms if query.until_ms is not None else "+inf"
        if anchor is not None:
            high = anchor[0] if high == "+inf" else min(int(high), anchor[0])
        raw: list[tuple[str, float]] = r.zrevrangebyscore(index_key, high, low, start=skip, num=batch, withscores=True)
        if not raw:
            return RunPage(found, None)
        entries = raw
        if anchor is not None:  # ties at the anchor's ms come in descending id order: skip those seen
            entries = [(i, s) for i, s in raw if not (int(s) == anchor[0] and i >= anchor[1])]
        if not entries:
            skip += len(raw)
            continue
        skip = 0
        raws = r.mget([keys.run(i) for i, _ in entries])
        for (run_id, score), raw_record in zip(entries, raws, strict=True):
            scanned += 1
            anchor = (int(score), run_id)
            run = _readable(run_id, raw_record)
            if run is None or (query.errors_only and not run.has_errors):
                continue
            if query.status is not None and run.status != query.status:
                continue
            found.append(run)
            if len(found) == limit:
                return RunPage(found, f"{anchor[0]}:{anchor[1]}")
            if scanned >= MAX_SCANNED:
                break
        if scanned >= MAX_SCANNED and anchor is not None:
            return RunPage(found, f"{anchor[0]}:{anchor[1]}")


def _readable(run_id: str, raw: str | None) -> Run | None:
    if raw is None:
        return None
    try:
        return Run.model_validate_json(raw)
    except ValueError:  # a record this version cannot read must not hide the others
        log.warning("run=%s record cannot be read; left out of the listing", run_id)
        return None


def list_runs(
    workflow: str | None = None, limit: int = 20, errors_only: bool = False, status: RunStatus | None = None
) -> list[Run]:
    """Newest first; ``errors_only`` keeps runs with a failed or timed-out step (``has_errors``)."""
    found: list[Run] = []
    cursor: str | None = None
    while len(found) < limit:
        query = RunQuery(workflow, status, errors_only, limit=limit - len(found), cursor=cursor)
        page = page_runs(query)
        found.extend(page.runs)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    return found


def prune(older_than: timedelta | None = None) -> int:
    """Drop index entries of runs past retention (their records expire by TTL)."""
    r = client()
    cutoff = now_ms() - int((older_than or timedelta(seconds=retention_s())).total_seconds() * 1000)
    old = r.zrangebyscore(keys.runs_index(), "-inf", cutoff, start=0, num=1000)
    if not old:
        return 0
    pipe = r.pipeline(transaction=False)
    pipe.zrem(keys.runs_index(), *old)
    for raw in r.mget([keys.run(i) for i in old]):
        if raw:
            try:
                run = Run.model_validate_json(raw)
            except ValueError:
                continue
            pipe.zrem(keys.runs_of_workflow(run.workflow), run.id)
    for run_id in old:
        pipe.delete(keys.run(run_id), keys.run_progress(run_id), keys.run_abort(run_id))
    pipe.execute()
    return len(old)

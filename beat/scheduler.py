"""``ResotoScheduler``: redbeat's scheduler, firing workflow slots exactly once.

``celery -A resoto_tasks beat`` loads it (``beat_scheduler = "beat.scheduler:ResotoScheduler"``).
From redbeat it keeps the entries in Redis and the lock: of several beats only the holder
ticks; when it dies the lock expires (``RESOTO_BEAT_LOCK_TIMEOUT_S``) and a standby takes over.
On top of redbeat, each tick (:meth:`ResotoScheduler.step`, at an injected time):

1. re-syncs the entries when the catalogue or the paused set changed (and every minute anyway),
   so ``workflows add/remove`` and ``schedule pause/resume`` apply within one tick;
2. for each due entry decides (:func:`beat.slots.decide`) which slot to start: only the most
   recent one, none if it is older than ``RESOTO_MISSED_SLOT_GRACE_S``; sends
   ``resoto.workflow.start(name, trigger={kind: time, ...}, slot=ISO)`` on the ``workflow``
   queue, and only then moves the watermark.

Sending before recording makes a start *at least once* (a beat killed in between sends the slot
again after the handover); the engine's slot key makes it *exactly once*. redbeat's own order
(record, then send) would lose the slot instead.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import redis
from celery.utils.log import get_logger
from redbeat import RedBeatScheduler

from beat import pauses
from beat.entries import EntrySpec, EntryStore, StoredEntry, is_managed
from beat.slots import Decision, decide
from beat.sync import desired_entries, reconcile
from resoto_tasks.models import Workflow
from resoto_tasks.redis_conn import describe, mask_url
from resoto_tasks.routing import WORKFLOW
from resoto_tasks.settings import get_settings
from resoto_tasks.timeutil import iso, utcnow
from resoto_tasks.workflows import catalogue

log = get_logger(__name__)

# Full reconcile at least this often, even when nothing seems to change: repairs entries that
# someone deleted or edited by hand.
RESYNC_EVERY_S = 60.0
# After a failed send the entry is tried again this soon (the watermark did not move).
RETRY_AFTER_S = 1.0
# Never sleep less than this: a tight loop would hammer Redis if an entry stays due.
MIN_SLEEP_S = 0.01
# A start message is dropped by the worker once it is older than its slot's period (at least
# this), and never later than the grace: a queue that backed up while no worker ran does not
# become a burst of runs.
MESSAGE_EXPIRY_FLOOR_S = 10.0
# Same slot of the same entry, same task id: a resend after a handover is recognisable.
TASK_ID_NAMESPACE = uuid.UUID("5f0c1d4e-2b7a-4c1e-9a59-6a1f1e0b7c21")


SUPERVISOR_BACKSTOP_S = 300.0
"""Beat's supervisor tick: one every 5 minutes (288 a day), beside the workers' own ticks."""


class ResotoScheduler(RedBeatScheduler):  # type: ignore[misc]
    """Workflow triggers as redbeat entries; one start per slot, at most one catch-up."""

    def __init__(self, app: Any, *args: Any, **kwargs: Any) -> None:
        self.settings = get_settings()
        self.tz = ZoneInfo(self.settings.timezone)
        self.store = EntryStore(app)
        self._desired: dict[str, EntrySpec] = {}
        self._synced_at: datetime | None = None
        super().__init__(app, *args, **kwargs)

    # -- where the entries come from (tests substitute these) ----------------------------------

    def workflows(self) -> Mapping[str, Workflow]:
        return catalogue.all()

    def paused(self) -> Collection[str]:
        return pauses.paused().keys()

    def supervisor_interval_s(self) -> float | None:
        """How often beat sends a supervisor tick: a backstop only, so rarely.

        Every worker on the ``workflow`` queue ticks the supervisor from its heartbeat each
        period already; a tick sent by beat every period would flood Flower's task history
        (8,640 a day at 10 s) and push the runs' own tasks off its first page.
        """
        return max(self.settings.supervisor_interval_s, SUPERVISOR_BACKSTOP_S)

    # -- the loop ------------------------------------------------------------------------------

    def setup_schedule(self) -> None:
        """Only redbeat's static entries here: this runs before the lock is held, so a standby
        beat must not touch the workflow entries. The first tick syncs them."""
        super().setup_schedule()

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """Hold the lock, then step; ride out a Redis outage instead of exiting.

        Celery's beat service does not catch errors from ``tick``: a connection error here would
        end the process and with it every schedule. While Redis is away the beat logs one line
        and retries; when it returns, the beat re-takes the lock if it lapsed, or stands by if
        another beat took it meanwhile.
        """
        retry_s = float(min(self.max_interval, 5))
        try:
            if self.lock_key and not self._hold_lock():
                return float(self.max_interval)
            return self.step(utcnow())
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            log.warning(
                "beat: Redis at %s unreachable (%s); retrying in %.0fs",
                mask_url(str(self.app.conf.redbeat_redis_url)), describe(exc), retry_s,
            )  # fmt: skip
            return retry_s

    def _hold_lock(self) -> bool:
        """True while this beat holds the schedule lock (extending it); False when standing by."""
        if self.lock is None:
            raise RuntimeError("beat: the schedule lock was never acquired (see the error above)")
        try:
            self.lock.extend(int(self.lock_timeout))
            return True
        except redis.exceptions.LockError:
            # the lock lapsed (Redis was away longer than the lock timeout, or restarted empty)
            if self.lock.acquire(blocking=False):
                log.warning("beat: the schedule lock had lapsed; this beat holds it again")
                return True
            log.info("beat: another beat holds the schedule lock; standing by")
            return False

    def step(self, now: datetime) -> float:
        """One pass at ``now``: sync the entries if needed, fire what is due; seconds to sleep."""
        self.refresh(now)
        waits = [float(self.max_interval)]
        for key in self.store.due_keys(now):
            waits.append(self._handle(key, now))
        upcoming = self.store.next_score(now)
        if upcoming is not None:
            waits.append(upcoming - now.timestamp())
        return max(MIN_SLEEP_S, min(waits))

    def refresh(self, now: datetime) -> None:
        """Reconcile the entries with the catalogue and the paused set when either changed."""
        desired = desired_entries(self.workflows(), set(self.paused()), self.supervisor_interval_s())
        fresh = self._synced_at is not None and (now - self._synced_at).total_seconds() < RESYNC_EVERY_S
        if desired == self._desired and fresh:
            return
        first = self._synced_at is None
        report = reconcile(self.store, desired, now, self.tz)
        self._desired, self._synced_at = desired, now
        if report or first:
            log.info(
                "beat: schedule synced (%d entries, %s): added %s changed %s removed %s",
                len(desired),
                report.summary(),
                report.added,
                report.changed,
                report.removed,
            )

    # -- one entry -----------------------------------------------------------------------------

    def _handle(self, key: str, now: datetime) -> float:
        """Fire, drop or reschedule one due entry; seconds until it wants attention again."""
        name = self.store.name_of(key)
        if not is_managed(name):
            return self._redbeat_entry(key)
        spec, stored = self._desired.get(name), self.store.load(key)
        if spec is None or stored is None:
            log.info("beat: entry %s no longer scheduled: removed", name)
            self.store.delete(key)
            return float(self.max_interval)
        if not spec.enabled:
            self.store.park(key)
            return float(self.max_interval)
        grace = self.settings.missed_slot_grace_s if spec.workflow else None
        decision = decide(spec.trigger, stored.handled_through, now, grace, self.tz)
        note: dict[str, Any] | None = None
        if decision.fire is not None:
            if spec.workflow and pauses.is_paused(spec.workflow):  # paused since the last sync
                self.store.park(key)
                return float(self.max_interval)
            try:
                task_id = self.publish(spec, decision, now)
            except Exception as exc:  # broker down: the watermark stays, the slot is retried
                log.error(
                    "beat: entry %s slot %s not sent (%s); retrying in %.0fs",
                    name,
                    iso(decision.fire),
                    exc,
                    RETRY_AFTER_S,
                )
                return RETRY_AFTER_S
            note = {"slot": iso(decision.fire), "at": iso(now), "missed_slots": decision.missed, "task_id": task_id}
            self._log_fired(spec, stored, decision, now)
        elif decision.dropped is not None:
            note = {
                "slot": iso(decision.dropped),
                "at": iso(now),
                "missed_slots": decision.missed,
                "reason": f"older than the grace of {grace:g}s",
            }
            log.warning(
                "beat: workflow=%s slot=%s dropped: %.0fs old, more than the grace of %gs "
                "(%d earlier missed slots not replayed either); next due %s",
                spec.workflow,
                iso(decision.dropped),
                (now - decision.dropped).total_seconds(),
                grace,
                decision.missed,
                iso(decision.next_due),
            )
        self.store.advance(spec, stored, decision, self.tz, note)
        return (decision.next_due - now).total_seconds()

    def _log_fired(self, spec: EntrySpec, stored: StoredEntry, decision: Decision, now: datetime) -> None:
        assert decision.fire is not None
        if spec.workflow is None:
            log.debug("beat: supervisor slot=%s sent", iso(decision.fire))
            return
        late_s = (now - decision.fire).total_seconds()
        catch_up = f", catch-up: {decision.missed} earlier missed slots not replayed" if decision.missed else ""
        log.info(
            "beat: workflow=%s slot=%s sent (%.2fs after due%s); next due %s",
            spec.workflow,
            iso(decision.fire),
            late_s,
            catch_up,
            iso(decision.next_due),
        )

    def publish(self, spec: EntrySpec, decision: Decision, now: datetime) -> str:
        """Send the entry's task for ``decision.fire``; returns the task id."""
        assert decision.fire is not None
        slot = decision.fire
        period = decision.next_due - slot
        horizon = max(period, timedelta(seconds=MESSAGE_EXPIRY_FLOOR_S))
        if spec.workflow is None:
            expires = now + horizon
        else:
            expires = slot + min(horizon, timedelta(seconds=self.settings.missed_slot_grace_s))
        result = self.app.send_task(
            spec.task,
            args=[],
            kwargs=spec.message_kwargs(slot, decision.missed),
            queue=WORKFLOW,
            producer=self.producer,
            expires=expires,
            headers={"celery_beat_task": True},
            task_id=str(uuid.uuid5(TASK_ID_NAMESPACE, f"{spec.name}@{iso(slot)}")),
        )
        return str(result.id)

    def _redbeat_entry(self, key: str) -> float:
        """An entry someone added with redbeat directly: redbeat's own semantics."""
        try:
            entry = self.Entry.from_key(key, app=self.app)
        except KeyError:
            log.warning("beat: entry %s has no definition: removed", key)
            self.store.delete(key)
            return float(self.max_interval)
        return float(self.maybe_due(entry, **self._maybe_due_kwargs) or self.max_interval)

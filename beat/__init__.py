"""The scheduler: workflow triggers -> redbeat entries, fired by ``celery -A resoto_tasks beat``.

* :mod:`beat.slots`: when a trigger is due (pure arithmetic, injected clock).
* :mod:`beat.entries`: the entries and their Redis form (redbeat's).
* :mod:`beat.sync`: catalogue + paused set -> entries, and reconciling Redis with them.
* :mod:`beat.pauses`: the paused-schedules hash.
* :mod:`beat.control`: pause, resume and list, for the CLI.
* :mod:`beat.scheduler`: ``ResotoScheduler``, the redbeat scheduler celery beat runs.

The core (``resoto_tasks``) never imports this package; the CLI imports it inside its commands.
"""

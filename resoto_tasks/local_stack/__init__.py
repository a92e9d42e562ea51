"""The local stack behind ``resoto-tasks up``: Redis, a worker per queue, beat and Flower on one machine.

Each module does one job:

* :mod:`~resoto_tasks.local_stack.paths`: where logs and Redis data go (the run directory);
* :mod:`~resoto_tasks.local_stack.redis_local`: find a Redis that answers, else start one;
* :mod:`~resoto_tasks.local_stack.plan`: which processes the stack consists of, as argv lists;
* :mod:`~resoto_tasks.local_stack.processes`: start, watch and stop child processes (process groups);
* :mod:`~resoto_tasks.local_stack.environment`: the environment children see, and re-pointing this
  process at the Redis that was chosen;
* :mod:`~resoto_tasks.local_stack.summary`: what a finished run did, for people and for ``--json``.

The CLI glue (output, signals, waiting for the run) is :mod:`resoto_tasks.cli.up_cmd`.
"""

"""Benchmarks of resoto-tasks against the raw Celery and Redis floor (issue 7).

``python -m bench`` runs every benchmark that can run; ``python -m bench orchestration`` one.
Each benchmark starts its own ``redis-server`` on a free port and its own Celery workers, prints
a table and writes ``bench/results/<name>.json``. Nothing here is imported by the test suite.

Importing ``resoto_tasks`` builds nothing and reads no settings (issue 13), so these modules
import it at the top like any other code: :mod:`bench.__main__` points ``RESOTO_*`` at the
private Redis and calls ``runtime.reset()``, and the first ``runtime.app()`` or
``runtime.engine()`` after that composes against it.
"""

"""Benchmarks of resoto-tasks against the raw Celery and Redis floor (issue 7).

``python -m bench`` runs every benchmark that can run; ``python -m bench orchestration`` one.
Each benchmark starts its own ``redis-server`` on a free port and its own Celery workers, prints
a table and writes ``bench/results/<name>.json``. Nothing here is imported by the test suite.

This package must not import ``resoto_tasks`` at import time: the settings (Redis URL, key
prefix, hook modules) are read once per process, so :mod:`bench.__main__` exports them first.
"""

"""One Sentinel cluster for the HA tests (each test leaves it healthy: old primary back as a replica).

The tests carry ``xdist_group("sentinel")`` so that, under ``pytest -n 3 --dist loadgroup`` (the
suite's setting), they run one after another on one process and share the cluster.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ha.support import HaStack
from tests.support.sentinel import SentinelCluster


@pytest.fixture(scope="package")
def sentinel_cluster() -> Iterator[SentinelCluster]:
    cluster = SentinelCluster()
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def ha_stack(sentinel_cluster: SentinelCluster, tmp_path: Path) -> Iterator[HaStack]:
    sentinel_cluster.rejoin()  # a test that failed midway may have left a server down
    stack = HaStack(sentinel_cluster, tmp_path)
    try:
        yield stack
    finally:
        stack.close()

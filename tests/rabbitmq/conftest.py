"""RabbitMQ as the broker: a vhost of this test session's own on the local server (guest/guest).

``make test`` makes sure the server runs (``scripts/install-deps.sh rabbitmq``); the vhost is added
when the first test needs it and deleted at the end of the session, so parallel sessions never
share queues.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator

import pytest

AMQP_HOST = "127.0.0.1:5672"


def rabbitmqctl(*args: str) -> None:
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        pytest.fail("rabbitmqctl not found: run `make test` (scripts/install-deps.sh rabbitmq installs and starts it)")
    done = subprocess.run([ctl, *args], capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        pytest.fail(f"rabbitmqctl {' '.join(args)} failed: {done.stderr.strip() or done.stdout.strip()}")


def new_vhost() -> str:
    name = f"resoto-test-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", name)
    rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    return name


@pytest.fixture(scope="session")
def rabbitmq_vhosts() -> Iterator[list[str]]:
    """Every vhost this session added; deleted when it ends."""
    made: list[str] = []
    yield made
    for name in made:
        subprocess.run(["rabbitmqctl", "delete_vhost", name], capture_output=True, timeout=60, check=False)


@pytest.fixture(scope="session")
def amqp_url(rabbitmq_vhosts: list[str]) -> str:
    """``RESOTO_BROKER_URL`` of the session's vhost (classic durable queues)."""
    rabbitmq_vhosts.append(new_vhost())
    return f"amqp://guest:guest@{AMQP_HOST}/{rabbitmq_vhosts[-1]}"


@pytest.fixture(scope="session")
def quorum_amqp_url(rabbitmq_vhosts: list[str]) -> str:
    """A second vhost for quorum queues (a queue's type cannot change once declared)."""
    rabbitmq_vhosts.append(new_vhost())
    return f"amqp://guest:guest@{AMQP_HOST}/{rabbitmq_vhosts[-1]}"

"""A moto server for the session: started on a free loopback port, killed by pid at the end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.aws.support import MotoServer, no_aws_profile


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    with no_aws_profile():
        server = MotoServer().start()
        try:
            yield server
        finally:
            server.stop()

"""A moto server for the session: started on a free loopback port, killed by pid at the end.

Every AWS test module carries ``xdist_group("aws")``: one xdist process runs them all, so the moto
server and each module's seeded estate are set up once (spread over three processes, the 40 s
collect-and-cleanup fixture ran three times, and one module's ``moto.reset()`` could land in the
middle of another's tests).
"""

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

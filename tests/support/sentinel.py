"""A Redis Sentinel deployment a test owns: a primary, a replica and three sentinels, on free ports.

Debian's ``redis-server`` runs as a sentinel with ``--sentinel``. The sentinels agree (quorum 2)
that the primary is down after ``DOWN_AFTER_MS`` without an answer and promote the replica; the
test kills the primary with :meth:`SentinelCluster.kill_primary`, which returns once the sentinels
name the new one, and brings the old one back as a replica (:meth:`rejoin`), so one cluster serves
several failovers in a row.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import redis
from redis.sentinel import Sentinel

from tests.support.redis_server import RedisServer, free_port, redis_binary

MASTER = "resoto-ha"
DOWN_AFTER_MS = 1500
"""Short, so a failover takes seconds; not so short that a loaded machine fakes one."""
FAILOVER_TIMEOUT_MS = 5000


class SentinelProcess:
    """One ``redis-server sentinel.conf --sentinel``."""

    def __init__(self, primary_port: int) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="resoto-sentinel-"))
        self.conf = self.dir / "sentinel.conf"
        self.conf.write_text(
            f"port {self.port}\n"
            "bind 127.0.0.1\n"
            f"dir {self.dir}\n"
            f"logfile {self.dir / 'sentinel.log'}\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {primary_port} 2\n"
            f"sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {MASTER} {FAILOVER_TIMEOUT_MS}\n"
            f"sentinel parallel-syncs {MASTER} 1\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> SentinelProcess:
        self.proc = subprocess.Popen([redis_binary(), str(self.conf), "--sentinel"], stdin=subprocess.DEVNULL)
        return self

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, decode_responses=True, socket_timeout=2)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class SentinelCluster:
    """Primary + replica + three sentinels; the test's view of who is primary comes from the sentinels."""

    def __init__(self) -> None:
        first = RedisServer()
        self.servers: dict[int, RedisServer] = {first.port: first.start()}
        second = RedisServer(extra_args=["--replicaof", "127.0.0.1", str(first.port)])
        self.servers[second.port] = second.start()
        self.sentinels = [SentinelProcess(first.port).start() for _ in range(3)]
        self.wait_healthy(first.port)

    # -- what processes under test are given ---------------------------------------------------

    @property
    def addresses(self) -> str:
        """``RESOTO_REDIS_SENTINELS``."""
        return ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)

    def env(self) -> dict[str, str]:
        """The settings of a process on this cluster (RESOTO_REDIS_URL: database 0, host unused)."""
        return {
            "RESOTO_REDIS_SENTINELS": self.addresses,
            "RESOTO_REDIS_SENTINEL_MASTER": MASTER,
            "RESOTO_REDIS_URL": f"redis://127.0.0.1:{self.primary_port()}/0",
        }

    # -- the test's view -------------------------------------------------------------------------

    def primary_port(self) -> int:
        host_port = self.sentinels[0].client().sentinel_get_master_addr_by_name(MASTER)
        return int(host_port[1])

    def client(self) -> redis.Redis:
        """A client of the current primary that follows a failover (as the processes under test do)."""
        sentinel = Sentinel([("127.0.0.1", s.port) for s in self.sentinels], socket_timeout=2)
        return sentinel.master_for(MASTER, decode_responses=True, socket_timeout=5)

    def replica_client(self) -> redis.Redis:
        port = next(p for p in self.servers if p != self.primary_port())
        return redis.Redis(port=port, decode_responses=True, socket_timeout=5)

    # -- faults ------------------------------------------------------------------------------------

    def kill_primary(self, timeout_s: float = 30) -> tuple[float, float]:
        """SIGKILL the primary; return (when it was killed, when the sentinels named the replica)."""
        old = self.primary_port()
        self.servers[old].kill()
        killed = time.time()
        deadline = time.monotonic() + timeout_s
        while self.primary_port() == old:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no failover within {timeout_s}s of the kill")
            time.sleep(0.05)
        return killed, time.time()

    def rejoin(self, timeout_s: float = 30) -> None:
        """Bring every dead server back as a replica of the current primary, then wait until healthy."""
        primary = self.primary_port()
        for server in self.servers.values():
            if server.proc is None:
                server.extra_args = ["--replicaof", "127.0.0.1", str(primary)]
                server.start()
        self.wait_healthy(primary, timeout_s)

    def wait_healthy(self, primary: int, timeout_s: float = 30) -> None:
        """Every sentinel knows the primary, one replica (linked) and the two other sentinels."""
        deadline = time.monotonic() + timeout_s
        replica = next(p for p in self.servers if p != primary)
        while True:
            try:
                ok = all(self._sentinel_sees(s, primary) for s in self.sentinels)
                link = redis.Redis(port=replica, decode_responses=True).info("replication")
                if ok and link.get("master_link_status") == "up" and int(link.get("master_port", 0)) == primary:
                    return
            except redis.exceptions.RedisError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"sentinel cluster not healthy within {timeout_s}s")
            time.sleep(0.1)

    @staticmethod
    def _sentinel_sees(sentinel: SentinelProcess, primary: int) -> bool:
        state = sentinel.client().sentinel_master(MASTER)
        return (
            int(state["port"]) == primary
            and int(state["num-other-sentinels"]) == 2
            and int(state["num-slaves"]) >= 1
            and "down" not in str(state["flags"])
        )

    def close(self) -> None:
        for s in self.sentinels:
            s.stop()
        for server in self.servers.values():
            server.cleanup()

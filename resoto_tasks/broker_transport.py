"""kombu's Redis transports, except that losing the connection never ends the worker, and
that a channel keeps one redis-py client for its commands.

kombu 5.7.0: when a worker's broker connection drops while it holds an unacknowledged message,
Celery closes the connection, the channel tries to give the message back at once
(``restore_unacked``), and that needs a new connection pool built from the connection's
parameters, which are already gone: ``AttributeError: 'NoneType' object has no attribute
'hostname'`` escapes ``ignore_errors`` and the worker exits ("Unrecoverable error"). Seen on every
Redis restart and on every Sentinel failover that hit a worker in the middle of a task.

The same happens to the late ack of a task that was running meanwhile: it is sent on the old
channel, whose connection is gone.

Here both are skipped with one log line: the message stays in kombu's ``unacked`` hash, where the
supervisor's orphan restorer (:mod:`resoto_tasks.orphans`) or the visibility timeout gives it back
(a subscriber task redelivered after its step was decided does not run again). So the worker
reconnects, as it does when it held nothing, instead of exiting.

kombu builds a new redis-py client for every command it sends outside the event loop (each
publish, ack, fanout event): redis-py's constructor fills a table of about 170 response callbacks,
so each costs about 0.1 ms of CPU (measured: 6 per workflow step, about 7 % of a worker's time in
tasks under cProfile). A client is thread-safe and holds no connection of its own (each command
takes one from the pool), so a channel keeps one per connection pool instead.
"""

from __future__ import annotations

import logging
from typing import Any

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis

log = logging.getLogger(__name__)

TRANSPORT = "resoto_tasks.broker_transport:Transport"
SENTINEL_TRANSPORT = "resoto_tasks.broker_transport:SentinelTransport"


class QoS(kombu_redis.QoS):  # type: ignore[misc]  # kombu is untyped
    def restore_unacked(self, client: Any = None) -> None:
        try:
            super().restore_unacked(client)
        except AttributeError:  # the connection's parameters went with it (see the module docstring)
            log.warning(
                "broker connection lost while holding %d unacknowledged message(s): left for their ack, "
                "the orphan restorer or the visibility timeout",
                len(self._delivered),
            )

    def ack(self, delivery_tag: Any) -> None:
        try:
            super().ack(delivery_tag)
        except AttributeError:  # the channel's connection is gone: the message stays unacknowledged
            log.warning("ack of message %s lost with its broker connection: it stays unacknowledged", delivery_tag)

    def reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        try:
            super().reject(delivery_tag, requeue=requeue)
        except AttributeError:
            log.warning("reject of message %s lost with its broker connection", delivery_tag)


class ReusedClient:
    """A channel's commands outside the event loop share one client per connection pool."""

    _sync_client: Any = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)  # type: ignore[misc]
        client = self._sync_client
        if client is None or client.connection_pool is not self.pool:  # type: ignore[attr-defined]
            client = self._sync_client = super()._create_client(asynchronous=False)  # type: ignore[misc]
        return client


class Channel(ReusedClient, kombu_redis.Channel):  # type: ignore[misc]
    QoS = QoS


class SentinelChannel(ReusedClient, kombu_redis.SentinelChannel):  # type: ignore[misc]
    QoS = QoS


class Transport(kombu_redis.Transport):  # type: ignore[misc]
    Channel = Channel


class SentinelTransport(kombu_redis.SentinelTransport):  # type: ignore[misc]
    Channel = SentinelChannel


def cover_failover_urls() -> None:
    """Make the ``sentinel`` scheme name our transport too.

    kombu moves to the next URL of a failover list (``sentinel://a;sentinel://b;...``) with the
    transport that URL's scheme names, not the configured ``broker_transport``: after the first
    switch a worker ran on kombu's own ``SentinelTransport``, without the QoS above, and the next
    failover ended it with the ``hostname`` error (seen by ``python -m bench failover`` on the
    third failover in a row). Ours is kombu's with the QoS swapped, so it serves every
    ``sentinel://`` broker URL of this process; the result backend does not resolve through
    kombu's transport aliases.
    """
    TRANSPORT_ALIASES["sentinel"] = SENTINEL_TRANSPORT

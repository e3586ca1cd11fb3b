"""The daemon's limits: request bodies, concurrent requests and the queue in front of them.

Theory of operation (spec/walrus-system.md 4.3 and Appendix A; Walrus `client/daemon.rs`, which
stacks tower's `LoadShedLayer`, `BufferLayer(queue)` and `ConcurrencyLimitLayer(n)` on each group
of routes). A group (the publisher's routes, the aggregator's routes) runs at most
`max_concurrent` requests; up to `max_queued` more wait for a slot; any request beyond those is
shed at once with HTTP 429 and a plain-text body, as Walrus's `handle_service_error` answers.
Queued requests have not read their bodies yet, so the memory a burst can pin is bounded by the
running requests only.

Below the routes, the server runs behind `walruspy.node_api.connection_guard` with
`DaemonLimits.connections`: request headers have a deadline, bodies a minimum rate, each address
a cap on its connections. Idle connections and connections still sending headers hold no slot
of a group; a request whose body trickles holds one until the minimum rate cuts it (408).

`DaemonLimits.quotas` are per-client quotas on the publisher's uploads (requests and bytes per
minute, off by default: `walruspy.daemon.quotas`), checked before a request takes a slot.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from walruspy.daemon.quotas import NO_QUOTAS, QuotaLimits
from walruspy.node_api.connection_guard import ConnectionLimits

__all__ = ["DAEMON_CONNECTION_LIMITS", "AdmissionLimit", "DaemonLimits", "overloaded_response"]

KIB: Final = 1 << 10

#: The daemon's connection limits: `ConnectionLimits`' deadlines and rates, and at most 64
#: connections per address. Above what one well-behaved client opens (a browser 6, our client
#: 10 per server, a script with aiohttp's default pool 100 only when it reads 64+ blobs at once)
#: and a quarter of the aggregator's 256 read slots. It does not keep one address from the 16
#: publisher slots (8 running, 8 queued): the minimum body rate frees those, and an operator of
#: a public publisher can lower the cap (`--max-connections-per-address`).
DAEMON_CONNECTION_LIMITS: Final = ConnectionLimits(max_connections_per_address=64)


@dataclass(frozen=True, slots=True)
class DaemonLimits:
    """Every bound of the publisher and aggregator, with Walrus's defaults."""

    #: Largest PUT body (Walrus `--max-body-size 10240` KiB): a store holds the blob and its
    #: ~5x encoding in memory, so eight concurrent stores of 10 MiB stay near half a gigabyte.
    max_body_bytes: int = 10_240 * KIB
    #: Largest `PUT /v1/quilts` body (Walrus `--max-quilt-body-size 102400` KiB): the quilt's
    #: files, then the quilt itself and its encoding, are held in memory while it is stored.
    max_quilt_body_bytes: int = 102_400 * KIB
    #: Stores run at once (Walrus: 8, one per sub-wallet); each is CPU-heavy (encoding).
    publisher_max_concurrent_requests: int = 8
    #: Stores waiting for a slot (Walrus: as many as may run), then 429.
    publisher_max_buffer_size: int = 8
    #: Reads run at once (Walrus: 256); each holds one blob in memory.
    aggregator_max_concurrent_requests: int = 256
    #: Reads waiting for a slot (Walrus: 320 = 256 + 64), then 429.
    aggregator_max_buffer_size: int = 320
    #: Slow and greedy clients: header deadline, minimum body rate, idle timeout, cap per address.
    connections: ConnectionLimits = DAEMON_CONNECTION_LIMITS
    #: Uploads and upload bytes per client per minute (off: Walrus has none); loopback is
    #: exempt unless `connections.limit_loopback`.
    quotas: QuotaLimits = NO_QUOTAS

    def __post_init__(self) -> None:
        counts = {
            "max_body_bytes": self.max_body_bytes,
            "max_quilt_body_bytes": self.max_quilt_body_bytes,
            "publisher_max_concurrent_requests": self.publisher_max_concurrent_requests,
            "aggregator_max_concurrent_requests": self.aggregator_max_concurrent_requests,
        }
        for name, value in counts.items():
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if self.publisher_max_buffer_size < 0 or self.aggregator_max_buffer_size < 0:
            raise ValueError("a buffer size cannot be negative")


class AdmissionLimit:
    """At most `max_concurrent` holders and `max_queued` waiters; `admit` yields False beyond."""

    def __init__(self, name: str, max_concurrent: int, max_queued: int) -> None:
        self.name = name
        self.max_concurrent = max_concurrent
        self.max_queued = max_queued
        self._slots = asyncio.Semaphore(max_concurrent)
        self._admitted = 0

    @property
    def admitted(self) -> int:
        """Requests running or waiting."""
        return self._admitted

    @contextlib.asynccontextmanager
    async def admit(self) -> AsyncIterator[bool]:
        """Yield True once a slot is held, or False at once if the queue is full."""
        if self._admitted >= self.max_concurrent + self.max_queued:
            yield False
            return
        self._admitted += 1
        try:
            async with self._slots:
                yield True
        finally:
            self._admitted -= 1


def overloaded_response(service: str) -> web.Response:
    """Walrus's 429 answer: plain text, no JSON."""
    return web.Response(
        status=429,
        text=f"the {service} is receiving too many requests; please try again later",
    )

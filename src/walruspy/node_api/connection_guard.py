"""Slow and greedy clients: one guard around the aiohttp servers of the node and the daemon.

Theory of operation. aiohttp bounds the size of a request's headers but not the time they take,
bounds neither the time a request body takes nor the connections one client holds, and keeps an
idle connection for an hour. So 16 connections trickling a body one byte every 2 s held every
publisher slot (8 running, 8 queued: every other store answered 429), and 256 did the same to a
node's `max_concurrent_requests`. `GuardedAppRunner` is `aiohttp.web.AppRunner` with one change:
the protocol factory its sites hand to `loop.create_server` wraps each aiohttp `RequestHandler`
in a `_GuardedConnection`, which sees every byte the client sends and, through a wrapper of the
server's public `request_handler`, when each request's handler starts and ends. It enforces
`ConnectionLimits`:

1. Per-address cap. At `connection_made`, a connection beyond `max_connections_per_address` open
   ones from the same address (IPv6: the same /64, which one subscriber holds whole) is answered
   `429 Too Many Requests` with `Connection: close` and closed before aiohttp sees it; the other
   addresses are served as before. Loopback is not capped unless `limit_loopback`: on a devnet
   every node, client and daemon connects from 127.0.0.1, and behind a reverse proxy on the same
   host every client looks local (there the proxy is the place to cap).
2. Header deadline. The first byte of a request starts a clock; if the request line and headers
   are not complete `header_timeout_s` later (the handler has not started), the connection is
   answered `408 Request Timeout` and closed. An answer rather than a silent close because
   RFC 9110 (15.5.9) tells a client that gets a 408 it may repeat the request on a new
   connection. A connection with no byte of a next request is idle, not slow: aiohttp's
   keep-alive timeout (`idle_timeout_s`) closes it.
3. Minimum body rate. While a handler runs and its body is incomplete, reading time is counted
   in windows of `body_rate_window_s`; each window must bring `min_body_bytes_per_s` times its
   length, and the first window is the grace period (no request is cut sooner). Time counts only
   while the server reads the socket (`transport.is_reading()`): a body the application is not
   consuming yet (a request queued for a slot, a full buffer) pauses the socket, which is not
   the client's fault; and a check that runs late because the event loop stalled credits one
   interval only, so a loaded server does not blame its clients for its own pauses. A window
   short of bytes cuts the request: its body stream fails with `BodyTooSlowError`, an
   `HTTPRequestTimeout`, so the handler's pending or next read raises, the handler unwinds
   through its concurrency limit (freeing the slot), aiohttp answers 408 with
   `Connection: close`, and the client's further bytes are dropped.

Concurrency slots: a connection that is idle or still sending headers never holds a request slot,
because aiohttp calls the handler only once the headers are complete and the node
(`max_concurrent_requests`) and the daemon (its admission limits) count requests inside the
handler. A request with a slow body holds a slot until rule 3 frees it.

No task is started: the clocks are event-loop timer callbacks owned by their connection and
cancelled when it is lost, like aiohttp's own keep-alive timer.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, cast

from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

from walruspy.logs import get_logger

__all__ = [
    "BodyTooSlowError",
    "ConnectionGuard",
    "ConnectionLimits",
    "GuardedAppRunner",
    "address_key",
]

log = get_logger("walruspy.connection_guard")

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]

#: Body-rate checks per window: a slow body is cut at most a quarter of a window late, and four
#: timer callbacks per window cost nothing next to the bytes they watch.
TICKS_PER_WINDOW: Final = 4


def _plain_response(status: int, phrase: str, text: str, *extra: str) -> bytes:
    """A complete HTTP/1.1 answer that closes the connection, written without aiohttp."""
    body = text.encode()
    lines = [
        f"HTTP/1.1 {status} {phrase}",
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


#: The answer to a connection beyond its address's cap. A second is long enough for one of the
#: address's requests to finish.
_REFUSED: Final = _plain_response(
    429,
    "Too Many Requests",
    "too many connections from this address; please try again later",
    "Retry-After: 1",
)
_HEADERS_TOO_SLOW: Final = _plain_response(
    408, "Request Timeout", "the request line and headers took too long to arrive"
)


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """The bounds `GuardedAppRunner` puts on each connection (see the module docstring)."""

    #: From a request's first byte to its last header byte. A client writes its request line
    #: and headers (at most 8 KiB lines and 128 headers in aiohttp) at once; 20 s is Apache
    #: mod_reqtimeout's header minimum and rides out several retransmissions on a bad link.
    header_timeout_s: float = 20.0
    #: The window of reading time over which a body's rate is measured; the first window is
    #: the grace period. 10 s (twice Kestrel's 5 s grace) tolerates a sender that stalls for
    #: most of a window (a loaded client encoding a blob, a garbage collection) and catches up.
    body_rate_window_s: float = 10.0
    #: The slowest body accepted, averaged over a window: 1 KiB/s is four times Kestrel's
    #: 240 B/s and twice Apache's 500 B/s minimum yet a seventh of a 56 kbit/s modem, so any
    #: real upload passes, while a sender of one byte every 2 s is cut after one window.
    min_body_bytes_per_s: int = 1024
    #: An idle connection is closed after this (aiohttp's keep-alive timeout, an hour by
    #: default). Longer than the 15 s for which aiohttp clients, ours included, keep an idle
    #: connection, so the client closes first and never sends a request on a connection the
    #: server is closing; short enough that an abandoned connection soon frees its slot.
    idle_timeout_s: float = 75.0
    #: Connections one address may hold open at once. The node's default: above the 100 that
    #: one peer's recovery session may open (aiohttp's pool) plus its shard sync (10) and a
    #: client's 10 per node, and half the node's 256 request slots, so one address cannot
    #: hold them all. The daemon passes its own (`walruspy.daemon.limits`).
    max_connections_per_address: int = 128
    #: Whether loopback addresses are capped too. Off: on a devnet every node, client and
    #: daemon connects from 127.0.0.1, and behind a reverse proxy on the same host every client
    #: does; the proxy is then the place to cap.
    limit_loopback: bool = False

    def __post_init__(self) -> None:
        for name in ("header_timeout_s", "body_rate_window_s", "idle_timeout_s"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value!r}")
        if self.min_body_bytes_per_s < 0:
            raise ValueError(f"min_body_bytes_per_s is negative: {self.min_body_bytes_per_s}")
        if self.max_connections_per_address < 1:
            cap = self.max_connections_per_address
            raise ValueError(f"max_connections_per_address must be at least 1, got {cap}")

    @property
    def min_window_bytes(self) -> float:
        """Bytes each window of reading time must bring."""
        return self.min_body_bytes_per_s * self.body_rate_window_s


class BodyTooSlowError(web.HTTPRequestTimeout):
    """Raised by the reads of a request body that arrived below the minimum rate: 408, closed."""

    def __init__(self, limits: ConnectionLimits) -> None:
        super().__init__(
            text=(
                f"the request body arrived slower than {limits.min_body_bytes_per_s} bytes/s "
                f"over {limits.body_rate_window_s:g} s"
            )
        )
        self.force_close()  # the rest of the body will never be read: no keep-alive


def address_key(peername: Any, limit_loopback: bool) -> str | None:
    """The key under which a peer's connections are counted, or None if it is not capped.

    IPv4 (also when mapped into IPv6) counts per address, IPv6 per /64: a subscriber gets a
    whole /64 and can pick any address in it. Unix sockets and unparsable names are not capped.
    """
    if not isinstance(peername, tuple) or not peername or not isinstance(peername[0], str):
        return None
    try:
        address = ipaddress.ip_address(peername[0].split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback and not limit_loopback:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class ConnectionGuard:
    """One server's connections per address, the open connections, and what was refused or cut.

    The counters (`refused`, `header_timeouts`, `body_timeouts`) are for tests and metrics;
    they are cumulative. Cut and refused connections are logged at debug level only: a flood of
    them must not become a flood of log lines.
    """

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.refused = 0
        self.header_timeouts = 0
        self.body_timeouts = 0
        self._per_address: dict[str, int] = {}
        self._connections: dict[RequestHandler, _GuardedConnection] = {}

    def open_connections(self, key: str) -> int:
        """Connections open from the address (or IPv6 /64) of `address_key`."""
        return self._per_address.get(key, 0)

    def acquire(self, key: str) -> bool:
        """Count one more connection from `key`, or return False if it is at its cap."""
        count = self._per_address.get(key, 0)
        if count >= self.limits.max_connections_per_address:
            return False
        self._per_address[key] = count + 1
        return True

    def release(self, key: str) -> None:
        """Count one connection from `key` less (entries at zero are dropped: bounded map)."""
        count = self._per_address[key] - 1
        assert count >= 0, f"connection count of {key} went negative"
        if count:
            self._per_address[key] = count
        else:
            del self._per_address[key]

    def track(self, handler: Handler) -> Handler:
        """`handler` (the server's request handler), telling each connection its requests."""

        async def tracked(request: web.BaseRequest) -> web.StreamResponse:
            connection = self._connections.get(request.protocol)
            if connection is None:  # lost before its handler started
                return await handler(request)
            connection.request_started(request.content)
            try:
                response = await handler(request)
            except web.HTTPException as answer:
                if connection.cut:
                    answer.force_close()
                raise
            finally:
                connection.request_finished()
            if connection.cut:  # a middleware rendered the 408 its own way
                response.force_close()
            return response

        return tracked

    def protocol_factory(self, server: web.Server) -> Callable[[], asyncio.Protocol]:
        """What `loop.create_server` calls for each connection: `server`'s protocol, guarded."""

        def make() -> asyncio.Protocol:
            return _GuardedConnection(server, self)

        return make

    def _register(self, handler: RequestHandler, connection: _GuardedConnection) -> None:
        self._connections[handler] = connection

    def _unregister(self, handler: RequestHandler) -> None:
        self._connections.pop(handler, None)


class _GuardedConnection(asyncio.Protocol):
    """One client connection: aiohttp's protocol inside, the three rules around it."""

    def __init__(self, make_handler: Callable[[], RequestHandler], guard: ConnectionGuard) -> None:
        self._make_handler = make_handler
        self._guard = guard
        self._limits = guard.limits
        self._loop = asyncio.get_running_loop()
        self._handler: RequestHandler | None = None
        self._transport: asyncio.Transport | None = None
        self._address: str | None = None  # counted against its cap while set
        self._dropping = False  # refused or cut: the client's bytes are discarded
        self._lost = False
        self.cut = False
        # Header deadline: armed by the first byte of a request, disarmed when its handler starts.
        self._header_timer: asyncio.TimerHandle | None = None
        # Body rate: the current (or last) request's body and the window being measured.
        self._in_request = False
        self._body: StreamReader | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._window_bytes = 0
        self._window_ticks = 0

    # --- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        key = address_key(transport.get_extra_info("peername"), self._limits.limit_loopback)
        if key is not None and not self._guard.acquire(key):
            self._guard.refused += 1
            self._dropping = True
            log.debug("connection refused: address at its cap", address=key)
            self._transport.write(_REFUSED)
            self._transport.close()
            return
        self._address = key
        self._handler = self._make_handler()
        self._guard._register(self._handler, self)
        self._handler.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._dropping or self._handler is None:
            return
        if self._in_request:
            self._window_bytes += len(data)
        elif self._header_timer is None and (self._body is None or self._body.is_eof()):
            # The first byte of a next request (not the tail of a body aiohttp drains).
            self._header_timer = self._loop.call_later(
                self._limits.header_timeout_s, self._headers_too_slow
            )
        self._handler.data_received(data)

    def eof_received(self) -> bool | None:
        if self._handler is not None and not self._dropping:
            self._handler.eof_received()
        return None  # as aiohttp: the transport closes once the answer is written

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._cancel_header_timer()
        self._cancel_body_timer()
        if self._address is not None:
            self._guard.release(self._address)
            self._address = None
        if self._handler is not None:
            self._guard._unregister(self._handler)
            self._handler.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._handler is not None:
            self._handler.pause_writing()

    def resume_writing(self) -> None:
        if self._handler is not None:
            self._handler.resume_writing()

    # --- requests (called by ConnectionGuard.track) --------------------------------------------

    def request_started(self, body: StreamReader) -> None:
        """A request's headers are complete and its handler starts."""
        self._cancel_header_timer()
        self._in_request = True
        self._body = body
        if not body.is_eof() and not self._lost:
            self._window_bytes = 0
            self._window_ticks = 0
            self._schedule_tick()

    def request_finished(self) -> None:
        """The handler returned (aiohttp drains any unread body for `lingering_time`)."""
        self._in_request = False
        self._cancel_body_timer()

    # --- the clocks ---------------------------------------------------------------------------

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self._in_request or self._handler is None or self._transport is None:
            return
        self._guard.header_timeouts += 1
        self._dropping = True
        log.debug("request headers too slow: connection closed", address=self._address)
        self._transport.write(_HEADERS_TOO_SLOW)
        self._handler.force_close()  # closes the transport once the 408 is written

    def _schedule_tick(self) -> None:
        interval = self._limits.body_rate_window_s / TICKS_PER_WINDOW
        self._body_timer = self._loop.call_later(interval, self._tick)

    def _tick(self) -> None:
        """One check of the body rate: a quarter window of reading time, if the socket is read."""
        self._body_timer = None
        body, transport = self._body, self._transport
        if not self._in_request or body is None or body.is_eof() or transport is None:
            return
        # One tick credits one interval however late it runs (an event-loop stall is ours, not
        # the client's), and only if the server is reading (a paused socket is not the client's
        # fault either).
        if transport.is_reading():
            self._window_ticks += 1
        if self._window_ticks >= TICKS_PER_WINDOW:
            if self._window_bytes < self._limits.min_window_bytes:
                self._cut(body)
                return
            self._window_bytes = 0
            self._window_ticks = 0
        self._schedule_tick()

    def _cut(self, body: StreamReader) -> None:
        """Fail the body's reads with 408; drop the client's further bytes."""
        self._guard.body_timeouts += 1
        self.cut = True
        self._dropping = True
        log.debug("request body too slow: cut", address=self._address, received=body.total_bytes)
        body.set_exception(BodyTooSlowError(self._limits))
        # At EOF aiohttp neither waits for more nor drains the rest after the answer (and
        # resumes reading, so the dropped bytes do not fill the socket buffer).
        body.feed_eof()

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _cancel_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None


class GuardedAppRunner(web.AppRunner):
    """`web.AppRunner` whose sites serve through a `ConnectionGuard` of `limits`.

    `keepalive_timeout` is `limits.idle_timeout_s`; every other keyword is AppRunner's.
    """

    def __init__(self, app: web.Application, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(app, keepalive_timeout=limits.idle_timeout_s, **kwargs)
        self.guard = ConnectionGuard(limits)
        self._factory: Callable[[], asyncio.Protocol] | None = None

    @property
    def server(self) -> web.Server | None:
        """What the sites pass to `loop.create_server`: the guarded protocol factory.

        Sites only call it; the runner itself keeps aiohttp's `Server` for shutdown.
        """
        if self._server is None or self._factory is None:
            return None
        return cast(web.Server, self._factory)

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.request_handler = self.guard.track(server.request_handler)
        self._factory = self.guard.protocol_factory(server)
        return server

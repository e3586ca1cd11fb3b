"""`SimNetwork`: aiohttp clients and servers of one process joined without sockets.

Theory of operation (issue #16: "a simulated network that delays, reorders, drops and partitions
messages per link"; "one transport seam for node and chain calls"). Hosts are names (a server
sees its client's as the peer name; the connection guard's per-address cap applies only to names
that parse as IP addresses). A server is registered with `await net.serve(host, port,
app_or_runner)`: the network keeps the runner and, per connection, calls its protocol factory
(`runner.server`, a `web.Server` or the guarded factory of
`walruspy.node_api.connection_guard.GuardedAppRunner`), which is what a site would hand to
`loop.create_server`; a runner that was cleaned up frees its address. A client uses
`aiohttp.ClientSession(connector=net.connector(source))`: `SimConnector._create_connection`, the
one method a `BaseConnector` leaves to its subclasses, plays the TCP handshake and returns the
client's `ResponseHandler` joined to a new server protocol by a pair of
`walruspy.sim.transport.SimTransport`s. The HTTP on top is aiohttp's own, on both sides:
requests and responses are real HTTP/1.1 bytes, keep-alive and pooling work, and every header,
body limit and error path is the production one.

Connecting takes a round trip: the SYN travels `source -> host`, the answer `host -> source`,
each with the link's delay. No server at `host:port` is a refusal (`ConnectionRefusedError`,
which aiohttp raises as `ClientConnectorError`) after that round trip. A leg across a partition
waits until the partition heals, so the client's own timeout decides, as with SYNs lost in a
black hole; a connect that waits longer than Linux's SYN retries (`SYN_TIMEOUT_S`) fails with
`ETIMEDOUT`.

Links. Each directed link `(source, destination)` has a `LinkConfig` (the network's default
unless `set_link` gave it one): a latency, a jitter (uniform in `[0, jitter_s]`, added), a loss
probability and a reset probability, both per write. TCP never delivers a stream with a hole,
so a lost write is not dropped: it is retransmitted, arriving one retransmission timeout
later per loss (`rto_s`, doubling each time, the RTO of TCP), and a write lost more than
`max_retransmits` times in a row resets the connection, as TCP gives up after its retries
(`tcp_retries2`); that is where loss becomes an error a client sees. `reset` resets the
connection outright (a middlebox or a peer's RST), for tests that want dropped connections
without the delays. Later writes of a connection never overtake an earlier one, so loss and
jitter reorder only across connections. A partition (`partition`, `heal`) cuts links both ways:
segments due on a cut link are held, and go on with a fresh delay once it heals (TCP
retransmitting into a black hole); `crash(host)` resets every connection of the host (the peers
see the RST after the link's delay) and unregisters its servers, so the node's code can serve
again on the same address when it restarts.

Determinism. Every draw (jitter, loss, reset) comes from one `random.Random(seed)` of the
network, in the order writes happen; times come from the event loop's clock; connections,
servers and stalled links are kept in insertion-ordered dicts and lists, never sets. So a run
whose other parties are deterministic is reproduced exactly by the same seed under a virtual
clock; what the network cannot see (a `to_thread` whose completion time is the wall clock's, a
read of `time.time`, an unseeded random) is for the simulator to keep out. `trace`, if given,
receives a `TraceEvent` for each connection attempt and each write delivered, retransmitted,
held, dropped or reset; tracing draws nothing.

aiohttp's connector expires pooled keep-alive connections by reading `time.monotonic` itself
(`aiohttp.connector.monotonic`), not the loop's clock: under virtual time whether an idle
connection was closed would then depend on how fast the machine ran, a leak the simulator
found (seed 21, `--faults mixed`: traces of one seed differed from run to run). `SimNetwork`
points that name at `walruspy.clock.now`, which is the running loop's `time()`: the same
clock, `time.monotonic`, under a real loop, so the change is harmless outside a simulation.

aiohttp's connector also keeps the connections it lent out in a set (`_acquired`), and closing
it (a node stopping, a session closed) closes them in that set's order, which is their
protocols' addresses: the order of their FINs, and of the jitter they draw, then changed from
run to run (the same leak as a set of tasks, `walruspy.sim.loop`). A `SimConnector` keeps them
in an insertion-ordered set instead. And aiohttp's server dates each response (`Date`) by
`time.time()`, reformatting the header whenever the real second changes: bytes on the wire,
and allocations, that depended on the wall clock. They are dated by `walruspy.clock.wall`,
virtual under the simulation and `time.time()` otherwise.

TLS is not simulated: an `https` URL is carried as plain HTTP, and the server is whatever was
registered at its host and port.
"""

from __future__ import annotations

import asyncio
import email.utils
import errno
import random
from collections.abc import Callable, Iterable, Iterator, MutableSet
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeVar

import aiohttp
import aiohttp.connector
import aiohttp.web_response
from aiohttp import web
from aiohttp.client_proto import ResponseHandler

from walruspy.clock import now as loop_now
from walruspy.clock import wall
from walruspy.sim.transport import (
    Direction,
    Plan,
    SimTransport,
    TraceEvent,
    TraceKind,
    make_pair,
)

if TYPE_CHECKING:
    from aiohttp.client_reqrep import ClientRequest
    from aiohttp.tracing import Trace

__all__ = [
    "DEFAULT_MAX_RETRANSMITS",
    "SYN_TIMEOUT_S",
    "LinkConfig",
    "SimConnector",
    "SimNetwork",
    "TraceEvent",
    "TraceKind",
]

#: Linux gives up a connect after 6 SYN retransmissions (`tcp_syn_retries`), 127 s.
SYN_TIMEOUT_S: Final = 127.0
#: Retries of one lost write before its connection is reset (`LinkConfig` says why 6).
DEFAULT_MAX_RETRANSMITS: Final = 6
#: Linux's minimum retransmission timeout (`TCP_RTO_MIN`).
_MIN_RTO_S: Final = 0.2
#: Ephemeral ports of client ends start here (IANA's dynamic range), one per connection.
_FIRST_EPHEMERAL_PORT: Final = 49152

_P = TypeVar("_P", bound=asyncio.Protocol)
_T = TypeVar("_T")


class _InsertionOrderedSet(MutableSet[_T]):
    """A set that iterates in insertion order, not in its members' (address) hashes' order."""

    def __init__(self) -> None:
        self._members: dict[_T, None] = {}

    def __contains__(self, item: object) -> bool:
        return item in self._members

    def __iter__(self) -> Iterator[_T]:
        return iter(self._members)

    def __len__(self) -> int:
        return len(self._members)

    def add(self, value: _T) -> None:
        """Add `value` (last, if it is new)."""
        self._members[value] = None

    def discard(self, value: _T) -> None:
        """Remove `value` if present."""
        self._members.pop(value, None)

    def clear(self) -> None:
        """Remove every member."""
        self._members.clear()


@dataclass(frozen=True, slots=True)
class LinkConfig:
    """How one directed link treats each write; see the module doc.

    `max_retransmits` bounds the retries of one lost write before the connection is reset:
    6 (12.6 s of backoff at the minimum RTO) rather than Linux's 15 (about 15 min), so that a
    heavily lossy link resets within a simulated minute instead of outliving every timeout.
    """

    latency_s: float = 0.0
    jitter_s: float = 0.0
    loss: float = 0.0
    reset: float = 0.0
    max_retransmits: int = DEFAULT_MAX_RETRANSMITS

    def __post_init__(self) -> None:
        if self.latency_s < 0 or self.jitter_s < 0:
            raise ValueError("latency and jitter cannot be negative")
        if not (0.0 <= self.loss <= 1.0 and 0.0 <= self.reset <= 1.0):
            raise ValueError("loss and reset are probabilities, in [0, 1]")
        if self.max_retransmits < 0:
            raise ValueError("max_retransmits cannot be negative")

    @property
    def rto_s(self) -> float:
        """The first retransmission timeout: TCP's minimum, or two worst-case round trips."""
        return max(_MIN_RTO_S, 4 * (self.latency_s + self.jitter_s))


class SimConnector(aiohttp.BaseConnector):
    """An aiohttp connector whose connections go through a `SimNetwork` from `source`."""

    def __init__(self, network: SimNetwork, source: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Closed in this order when the connector closes (module doc); aiohttp uses only the
        # set operations that `MutableSet` gives (add, remove, discard, clear, len, iteration).
        self._acquired = _InsertionOrderedSet()  # type: ignore[assignment]
        self._network = network
        self._source = source

    async def _create_connection(
        self,
        req: ClientRequest,
        traces: list[Trace],
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109 - aiohttp's signature
    ) -> ResponseHandler:
        """Connect through the network; errors as a `TCPConnector`'s."""
        del traces
        port = req.port if req.port is not None else (443 if req.is_ssl() else 80)
        try:
            async with asyncio.timeout(timeout.sock_connect):
                return await self._network.connect(self._source, req.host, port, self._factory)
        except OSError as exc:
            if exc.errno is None and isinstance(exc, TimeoutError):
                raise  # our own sock_connect timeout: aiohttp makes it ConnectionTimeoutError
            raise aiohttp.ClientConnectorError(req.connection_key, exc) from exc


def _http_date() -> str:
    """The `Date` of a response, from `walruspy.clock.wall` (RFC 9110 5.6.7's IMF-fixdate)."""
    return email.utils.formatdate(wall(), usegmt=True)


def use_loop_clock_in_aiohttp() -> None:
    """Make aiohttp's keep-alive expiry read the loop's clock, and its servers' `Date` header
    the clock's wall time (module doc); idempotent."""
    # Not exported, but aiohttp reads them by these names at every use.
    aiohttp.connector.monotonic = loop_now  # type: ignore[attr-defined]
    aiohttp.web_response.rfc822_formatted_time = _http_date  # type: ignore[attr-defined]


class SimNetwork:
    """Simulated hosts, servers and links; see the module doc."""

    def __init__(
        self,
        seed: int,
        *,
        default_link: LinkConfig | None = None,
        trace: Callable[[TraceEvent], None] | None = None,
    ) -> None:
        self._rng = random.Random(seed)  # noqa: S311 - simulation, seeded for reproducibility
        use_loop_clock_in_aiohttp()
        self._default_link = default_link or LinkConfig()
        self._links: dict[tuple[str, str], LinkConfig] = {}
        self._cut: dict[tuple[str, str], None] = {}
        self._trace = trace
        self._servers: dict[tuple[str, int], web.BaseRunner] = {}
        self._owned_runners: dict[tuple[str, int], web.BaseRunner] = {}
        self._retired_runners: list[web.BaseRunner] = []
        self._connections: dict[int, tuple[SimTransport, SimTransport]] = {}
        self._open_ends: dict[int, int] = {}
        self._stalled: list[Direction] = []
        self._heal_waiters: list[asyncio.Future[None]] = []
        self._next_connection = 0
        self._next_port = _FIRST_EPHEMERAL_PORT

    # -- configuration --

    def set_link(
        self,
        a: str,
        b: str,
        *,
        latency_s: float = 0.0,
        jitter_s: float = 0.0,
        loss: float = 0.0,
        reset: float = 0.0,
        max_retransmits: int = DEFAULT_MAX_RETRANSMITS,
        both_ways: bool = True,
    ) -> None:
        """Configure the link `a -> b` (and `b -> a` unless `both_ways` is False)."""
        config = LinkConfig(latency_s, jitter_s, loss, reset, max_retransmits)
        self._links[(a, b)] = config
        if both_ways:
            self._links[(b, a)] = config

    def link(self, source: str, destination: str) -> LinkConfig:
        """The configuration of the link `source -> destination`."""
        return self._links.get((source, destination), self._default_link)

    def partition(self, a_hosts: Iterable[str], b_hosts: Iterable[str]) -> None:
        """Cut every link between a host of `a_hosts` and one of `b_hosts`, both ways."""
        b_list = list(b_hosts)
        for a in a_hosts:
            for b in b_list:
                self._cut[(a, b)] = None
                self._cut[(b, a)] = None

    def heal(
        self, a_hosts: Iterable[str] | None = None, b_hosts: Iterable[str] | None = None
    ) -> None:
        """Restore the links `partition(a_hosts, b_hosts)` cut, or every link if none given."""
        if a_hosts is None or b_hosts is None:
            self._cut.clear()
        else:
            b_list = list(b_hosts)
            for a in a_hosts:
                for b in b_list:
                    self._cut.pop((a, b), None)
                    self._cut.pop((b, a), None)
        waiters, self._heal_waiters = self._heal_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        stalled, self._stalled = self._stalled, []
        for direction in stalled:
            if self.is_cut(direction.source, direction.destination):
                self._stalled.append(direction)
            else:
                direction.resume()

    # -- servers --

    async def serve(self, host: str, port: int, app: web.Application | web.BaseRunner) -> str:
        """Serve `app` (or a runner, set up here if it is not) at `host:port`; its URL.

        A runner made here from an app is cleaned up by `stop` or `close`; a given runner
        stays the caller's, and once the caller cleans it up (a node that stops) its address
        refuses connections and can be served again. Raises `OSError(EADDRINUSE)` if the
        address is taken.
        """
        if self._server((host, port)) is not None:
            raise OSError(errno.EADDRINUSE, f"{host}:{port} is already served")
        if isinstance(app, web.Application):
            runner: web.BaseRunner = web.AppRunner(app, handle_signals=False, access_log=None)
            self._owned_runners[(host, port)] = runner
        else:
            runner = app
        if runner.server is None:
            await runner.setup()
        self._servers[(host, port)] = runner
        return f"http://{host}:{port}"

    def _server(self, address: tuple[str, int]) -> Callable[[], asyncio.Protocol] | None:
        """The protocol factory serving `address`, if a runner that is not cleaned up does."""
        runner = self._servers.get(address)
        if runner is None:
            return None
        factory: Callable[[], asyncio.Protocol] | None = runner.server
        if factory is None:  # the runner was cleaned up: the address is free
            del self._servers[address]
        return factory

    async def stop(self, host: str, port: int) -> None:
        """Stop serving `host:port` gracefully: new connections are refused."""
        self._servers.pop((host, port), None)
        runner = self._owned_runners.pop((host, port), None)
        if runner is not None:
            await runner.cleanup()

    def crash(self, host: str) -> None:
        """`host` crashed: its connections are reset and its servers unregistered."""
        error = ConnectionResetError(f"host {host} crashed")
        for client_end, server_end in list(self._connections.values()):
            for end in (client_end, server_end):
                if end.host == host:
                    end.crash(error)
        for address in [a for a in self._servers if a[0] == host]:
            del self._servers[address]
            runner = self._owned_runners.pop(address, None)
            if runner is not None:
                self._retired_runners.append(runner)

    async def close(self) -> None:
        """Reset every connection and clean up the runners made here."""
        for client_end, server_end in list(self._connections.values()):
            client_end.reset(ConnectionResetError("the network was closed"))
            server_end.reset(ConnectionResetError("the network was closed"))
        self._servers.clear()
        runners = [*self._owned_runners.values(), *self._retired_runners]
        self._owned_runners.clear()
        self._retired_runners.clear()
        for runner in runners:
            await runner.cleanup()

    # -- clients --

    def connector(self, source: str, **kwargs: Any) -> SimConnector:
        """A connector for `aiohttp.ClientSession` whose connections start at `source`.

        `kwargs` are `aiohttp.BaseConnector`'s (`limit`, `limit_per_host`, `force_close`,
        `keepalive_timeout`). Call it inside the running loop, as any connector.
        """
        return SimConnector(self, source, **kwargs)

    async def connect(self, source: str, host: str, port: int, factory: Callable[[], _P]) -> _P:
        """Open a connection from `source` to `host:port`; the client's protocol, connected."""
        try:
            async with asyncio.timeout(SYN_TIMEOUT_S):
                await self._travel(source, host)
                await self._travel(host, source)  # the SYN-ACK, or the RST of a refusal
        except TimeoutError:
            raise TimeoutError(errno.ETIMEDOUT, f"connect to {host}:{port} timed out") from None
        server = self._server((host, port))
        connection = self._next_connection
        self._next_connection += 1
        if server is None:
            self.record(TraceKind.REFUSE, source, host, connection, 0)
            raise ConnectionRefusedError(errno.ECONNREFUSED, f"connect to {host}:{port} refused")
        self.record(TraceKind.CONNECT, source, host, connection, 0)
        client_address = (source, self._next_port)
        self._next_port += 1
        protocol = factory()
        self._open_ends[connection] = 2
        self._connections[connection] = make_pair(
            self,
            asyncio.get_running_loop(),
            connection,
            client=(protocol, client_address),
            server=(server(), (host, port)),
            on_lost=lambda: self._end_lost(connection),
        )
        return protocol

    async def _travel(self, source: str, destination: str) -> None:
        """One leg of the handshake: wait out a partition, then the link's delay."""
        while self.is_cut(source, destination):
            waiter = asyncio.get_running_loop().create_future()
            self._heal_waiters.append(waiter)
            await waiter
        await asyncio.sleep(self.plan(source, destination).delay_s)

    def _end_lost(self, connection: int) -> None:
        self._open_ends[connection] -= 1
        if self._open_ends[connection] == 0:
            self.forget(connection)

    # -- transport.Links --

    def plan(self, source: str, destination: str) -> Plan:
        """The fate of one write on `source -> destination`, drawn from the network's seed."""
        link = self.link(source, destination)
        delay_s = link.latency_s
        if link.jitter_s:
            delay_s += self._rng.uniform(0.0, link.jitter_s)
        retransmits = 0
        while link.loss and self._rng.random() < link.loss:
            if retransmits == link.max_retransmits:
                return Plan(delay_s, retransmits, reset=True)
            delay_s += link.rto_s * 2**retransmits
            retransmits += 1
        reset = bool(link.reset) and self._rng.random() < link.reset
        return Plan(delay_s, retransmits, reset)

    def is_cut(self, source: str, destination: str) -> bool:
        """Whether `source -> destination` is partitioned."""
        return (source, destination) in self._cut

    def stall(self, direction: Direction) -> None:
        """Hold `direction` until its link heals."""
        self._stalled.append(direction)

    def record(
        self, kind: TraceKind, source: str, destination: str, connection: int, size_bytes: int
    ) -> None:
        """Pass an event to the trace hook, if there is one."""
        if self._trace is not None:
            now = asyncio.get_running_loop().time()
            self._trace(TraceEvent(now, kind, source, destination, connection, size_bytes))

    def forget(self, connection: int) -> None:
        """Both ends of `connection` are closed: it leaves the table."""
        self._connections.pop(connection, None)
        self._open_ends.pop(connection, None)
        self._stalled = [d for d in self._stalled if d.connection != connection]

    @property
    def open_connections(self) -> int:
        """Connections with at least one end not yet closed (for tests and the trace)."""
        return len(self._connections)

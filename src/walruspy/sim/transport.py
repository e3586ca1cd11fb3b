"""In-memory TCP-like streams: two `asyncio.Transport` ends joined by two delayed directions.

Theory of operation. A connection of the simulated network (`walruspy.sim.network`) is a pair of
`SimTransport`s, each the transport of one asyncio protocol (an aiohttp `ResponseHandler` on the
client's side, a `RequestHandler`, possibly guarded, on the server's), and each owning the
`Direction` that carries what its protocol writes to the other end. Protocols see the same
calls as over a socket: `connection_made`, `data_received`, `eof_received`, `pause_writing` and
`resume_writing`, `connection_lost`; aiohttp's client and server therefore write and parse
real HTTP/1.1 bytes, and nothing above the transport knows it is simulated.

A direction is a FIFO of segments (data, FIN, RST, or a reset of both ends) with the times they
arrive. Each write asks the network (`Links.plan`) for its delay on the link `(source,
destination)`; a segment arrives at `max(now + delay, arrival of the segment before it)`, so
jitter never reorders the bytes of one connection (TCP delivers in order), while segments of
different connections interleave by their own times. One timer per direction, for its head
segment, delivers every segment that is due in order: asyncio's timer heap does not keep the
insertion order of timers due at the same instant, so a timer per segment could reorder them.

At delivery a direction asks whether its link is partitioned (`Links.is_cut`). If so it stalls,
holding every segment, and the network resumes it on `heal` with a fresh delay for the head:
this is TCP retransmitting into a black hole and succeeding once the path returns. A segment
planned as a reset (the network's loss model gave up on it) resets both ends when it is due.

Flow control. The bytes a protocol wrote that its peer's protocol has not yet received are its
transport's write buffer. Above the high-water mark plus `WINDOW_BYTES` (the kernel's socket
buffers on both sides, which a socket transport also has beneath its own buffer) the writing
protocol is paused, and resumed below the low-water mark. A receiver that pauses reading keeps
arriving segments back (as a full receive buffer), so backpressure reaches the writer as over
TCP. The acknowledgement is immediate on receipt rather than a round trip later: the window
bounds memory here, it does not model throughput.

Closing. `close` sends a FIN after what was written and reports `connection_lost(None)` at the
next loop iteration; a FIN makes the receiving protocol's `eof_received` decide, and unless it
keeps the connection half-open the receiving end closes too, as asyncio's socket transports do.
`abort` sends an RST instead, which the peer sees as `ConnectionResetError`; whatever arrives at
an end that is closed is dropped.
"""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

__all__ = [
    "WINDOW_BYTES",
    "Direction",
    "Links",
    "Plan",
    "SegmentKind",
    "SimTransport",
    "TraceEvent",
    "TraceKind",
    "make_pair",
]

#: The socket buffers beneath a transport (Linux autotunes send and receive buffers up to 4 MiB
#: and 6 MiB): a writer is paused only once this much is unread by its peer, besides its own
#: write buffer, so a 1 MiB body flows without a pause, as it would over loopback.
WINDOW_BYTES: Final = 4 * 1024 * 1024
#: asyncio's own defaults for a transport's write buffer (selector transports).
_DEFAULT_HIGH_WATER_BYTES: Final = 64 * 1024


class SegmentKind(enum.Enum):
    """What a segment carries."""

    DATA = "data"
    FIN = "fin"  # the sender will write no more (close or write_eof)
    RST = "rst"  # the sender aborted (abort, or its host crashed)
    RESET = "reset"  # the network gave up on the stream: both ends are reset


class TraceKind(enum.Enum):
    """What happened to a write or a connection, in the network's trace."""

    CONNECT = "connect"
    REFUSE = "refuse"
    DELIVER = "deliver"
    RETRANSMIT = "retransmit"  # lost (one or more times) and sent again: arrives later
    HOLD = "hold"  # due while the link is partitioned: held until the partition heals
    RESET = "reset"  # the stream was reset (loss beyond the retransmits, or a reset draw)
    DROP = "drop"  # arrived at an end that was already closed


@dataclass(frozen=True, slots=True)
class TraceEvent:
    """One entry of the network's trace: `kind` at loop time `time_s` on `source -> dest`."""

    time_s: float
    kind: TraceKind
    source: str
    destination: str
    connection: int
    size_bytes: int


@dataclass(frozen=True, slots=True)
class Plan:
    """The fate of one write: its delay, how often it was lost first, whether it resets."""

    delay_s: float
    retransmits: int = 0
    reset: bool = False


class Links(Protocol):
    """What a direction asks of its network (`SimNetwork` implements it)."""

    def plan(self, source: str, destination: str) -> Plan:
        """The fate of the next write on the link `source -> destination`."""
        ...

    def is_cut(self, source: str, destination: str) -> bool:
        """Whether the link is partitioned now."""
        ...

    def stall(self, direction: Direction) -> None:
        """Hold `direction` until its link heals, then call its `resume`."""
        ...

    def record(
        self, kind: TraceKind, source: str, destination: str, connection: int, size_bytes: int
    ) -> None:
        """Add an event to the trace, if one is kept."""
        ...

    def forget(self, connection: int) -> None:
        """Both ends of `connection` are closed."""
        ...


@dataclass(slots=True)
class _Segment:
    at_s: float
    kind: SegmentKind
    data: bytes = b""


class Direction:
    """The segments one end sent that the other has not received yet, in order."""

    def __init__(
        self,
        links: Links,
        loop: asyncio.AbstractEventLoop,
        connection: int,
        sender: SimTransport,
        receiver: SimTransport,
    ) -> None:
        self._links = links
        self._loop = loop
        self.connection = connection
        self.source = sender.host
        self.destination = receiver.host
        self._sender = sender
        self._receiver = receiver
        self._queue: deque[_Segment] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._last_at_s = 0.0
        self.stalled = False

    def send(self, kind: SegmentKind, data: bytes = b"") -> None:
        """Put a segment on the wire; its arrival time comes from the link's plan."""
        plan = self._links.plan(self.source, self.destination)
        if plan.retransmits:
            self._record(TraceKind.RETRANSMIT, len(data))
        if plan.reset:
            kind, data = SegmentKind.RESET, b""
        at_s = max(self._loop.time() + plan.delay_s, self._last_at_s)
        self._last_at_s = at_s
        self._queue.append(_Segment(at_s, kind, data))
        self._schedule()

    def resume(self) -> None:
        """The link healed: the held head goes again, with a fresh delay."""
        self.stalled = False
        if not self._queue:
            return
        at_s = self._loop.time() + self._links.plan(self.source, self.destination).delay_s
        for segment in self._queue:
            segment.at_s = max(segment.at_s, at_s)
        self._last_at_s = max(self._last_at_s, at_s)
        self._schedule()

    def clear(self) -> None:
        """Discard everything not yet delivered (the connection was reset)."""
        self._queue.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _schedule(self) -> None:
        if self._queue and self._timer is None and not self.stalled:
            self._timer = self._loop.call_at(self._queue[0].at_s, self._fire)

    def _fire(self) -> None:
        self._timer = None
        now = self._loop.time()
        while self._queue and self._queue[0].at_s <= now:
            if self._links.is_cut(self.source, self.destination):
                self.stalled = True
                self._record(TraceKind.HOLD, sum(len(s.data) for s in self._queue))
                self._links.stall(self)
                return
            segment = self._queue.popleft()
            if segment.kind is SegmentKind.RESET:
                self._record(TraceKind.RESET, 0)
                error = ConnectionResetError("the simulated network reset the connection")
                self._sender.reset(error)
                self._receiver.reset(error)
                return
            delivered = self._receiver.receive(segment.kind, segment.data)
            kind = TraceKind.DELIVER if delivered else TraceKind.DROP
            self._record(kind, len(segment.data))
        self._schedule()

    def _record(self, kind: TraceKind, size_bytes: int) -> None:
        self._links.record(kind, self.source, self.destination, self.connection, size_bytes)


class SimTransport(asyncio.Transport):
    """One end of a simulated connection; see the module doc."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        protocol: asyncio.Protocol,
        local: tuple[str, int],
        peer: tuple[str, int],
        on_lost: Callable[[], None],
    ) -> None:
        super().__init__({"peername": peer, "sockname": local, "socket": None})
        self._loop = loop
        self._protocol = protocol
        self.host = local[0]
        self._on_lost = on_lost
        self._out: Direction | None = None
        self._peer: SimTransport | None = None
        self._closing = False
        self._lost = False
        self._eof_written = False
        self._reading_paused = False
        self._held: deque[tuple[SegmentKind, bytes]] = deque()
        self._unacked_bytes = 0
        self._writing_paused = False
        self._high_water_bytes = _DEFAULT_HIGH_WATER_BYTES
        self._low_water_bytes = _DEFAULT_HIGH_WATER_BYTES // 4

    def _attach(self, out: Direction, peer: SimTransport) -> None:
        self._out = out
        self._peer = peer

    @property
    def _direction(self) -> Direction:
        assert self._out is not None, "a transport is used before make_pair joined it"
        return self._out

    # -- asyncio.WriteTransport --

    def write(self, data: bytes | bytearray | memoryview[Any]) -> None:
        """Send `data` to the peer, after everything written before."""
        if self._eof_written:
            raise RuntimeError("Cannot call write() after write_eof()")
        if self._closing or not data:
            return  # as a socket transport: writes after close are dropped
        chunk = bytes(data)  # the caller may reuse its buffer
        self._unacked_bytes += len(chunk)
        self._direction.send(SegmentKind.DATA, chunk)
        if not self._writing_paused and self._unacked_bytes > self._pause_above_bytes:
            self._writing_paused = True
            self._protocol.pause_writing()

    def writelines(self, list_of_data: Any) -> None:
        """Send the chunks as one write."""
        self.write(b"".join(bytes(chunk) for chunk in list_of_data))

    def write_eof(self) -> None:
        """Half-close: the peer's protocol gets `eof_received`; this end still reads."""
        if self._closing or self._eof_written:
            return
        self._eof_written = True
        self._direction.send(SegmentKind.FIN)

    def can_write_eof(self) -> bool:
        """Streams can be half-closed, as TCP's."""
        return True

    def get_write_buffer_size(self) -> int:
        """Bytes written that the peer's protocol has not received yet."""
        return self._unacked_bytes

    def get_write_buffer_limits(self) -> tuple[int, int]:
        """(low, high) water marks of the write buffer, as set."""
        return (self._low_water_bytes, self._high_water_bytes)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Water marks as asyncio's: high defaults to 64 KiB, low to a quarter of high."""
        if high is None:
            high = _DEFAULT_HIGH_WATER_BYTES if low is None else 4 * low
        if low is None:
            low = high // 4
        if not 0 <= low <= high:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high_water_bytes, self._low_water_bytes = high, low

    @property
    def _pause_above_bytes(self) -> int:
        return self._high_water_bytes + WINDOW_BYTES

    def abort(self) -> None:
        """Close at once; the peer sees a reset."""
        self.crash(None)

    # -- asyncio.ReadTransport --

    def is_reading(self) -> bool:
        """Whether arriving data is passed to the protocol now."""
        return not self._reading_paused and not self._closing

    def pause_reading(self) -> None:
        """Hold arriving segments (a full receive buffer) until `resume_reading`."""
        self._reading_paused = True

    def resume_reading(self) -> None:
        """Pass held segments on, from the next loop iteration, as a socket would."""
        if not self._reading_paused:
            return
        self._reading_paused = False
        if self._held:
            self._loop.call_soon(self._release_held)

    # -- asyncio.BaseTransport --

    def close(self) -> None:
        """Send a FIN after what was written; `connection_lost(None)` follows."""
        if self._closing:
            return
        self._closing = True
        self._held.clear()
        if not self._eof_written:
            self._eof_written = True
            self._direction.send(SegmentKind.FIN)
        self._loop.call_soon(self._finish, None)

    def is_closing(self) -> bool:
        """Whether this end is closed or closing."""
        return self._closing

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        """Hand the stream to another protocol (an upgraded connection)."""
        assert isinstance(protocol, asyncio.Protocol)
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        """The protocol this end serves."""
        return self._protocol

    # -- the network's side --

    def crash(self, exc: Exception | None) -> None:
        """Abort: an RST follows what is on the wire; the protocol gets `exc` (None: abort)."""
        if self._closing:
            return  # closed already: its FIN is on the wire, the peer closes on it
        self._closing = True
        self._held.clear()
        self._direction.send(SegmentKind.RST)
        self._loop.call_soon(self._finish, exc)

    def reset(self, exc: Exception) -> None:
        """The stream broke: drop what is unsent, tell the protocol at the next iteration."""
        self._direction.clear()
        if not self._closing:
            self._closing = True
            self._loop.call_soon(self._finish, exc)
        self._held.clear()

    def receive(self, kind: SegmentKind, data: bytes) -> bool:
        """A segment arrived from the peer; False if this end was closed and dropped it."""
        if self._closing:
            return False
        if self._reading_paused or self._held:
            self._held.append((kind, data))
        else:
            self._dispatch(kind, data)
        return True

    def _dispatch(self, kind: SegmentKind, data: bytes) -> None:
        if kind is SegmentKind.DATA:
            self._protocol.data_received(data)
            assert self._peer is not None
            self._peer._acknowledge(len(data))
        elif kind is SegmentKind.FIN:
            if not self._protocol.eof_received():
                self.close()
        else:
            self.reset(ConnectionResetError("connection reset by peer"))

    def _release_held(self) -> None:
        while self._held and not self._reading_paused and not self._closing:
            self._dispatch(*self._held.popleft())

    def _acknowledge(self, size_bytes: int) -> None:
        self._unacked_bytes -= size_bytes
        assert self._unacked_bytes >= 0
        if self._writing_paused and self._unacked_bytes <= self._low_water_bytes:
            self._writing_paused = False
            if not self._lost:
                self._protocol.resume_writing()

    def _finish(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost = True
        try:
            self._protocol.connection_lost(exc)
        finally:
            self._on_lost()


def make_pair(
    links: Links,
    loop: asyncio.AbstractEventLoop,
    connection: int,
    *,
    client: tuple[asyncio.Protocol, tuple[str, int]],
    server: tuple[asyncio.Protocol, tuple[str, int]],
    on_lost: Callable[[], None],
) -> tuple[SimTransport, SimTransport]:
    """Join a client and a server protocol (each with its address) by a new connection.

    `connection_made` is called on the server's protocol, then the client's. `on_lost` is
    called each time an end's protocol got `connection_lost`.
    """
    (client_protocol, client_address), (server_protocol, server_address) = client, server
    client_end = SimTransport(loop, client_protocol, client_address, server_address, on_lost)
    server_end = SimTransport(loop, server_protocol, server_address, client_address, on_lost)
    client_end._attach(Direction(links, loop, connection, client_end, server_end), server_end)
    server_end._attach(Direction(links, loop, connection, server_end, client_end), client_end)
    server_protocol.connection_made(server_end)
    client_protocol.connection_made(client_end)
    return client_end, server_end

"""Slow clients for the connection-guard tests: raw sockets that trickle a request.

`trickle` opens a connection (from `local_host` if given: any 127.x.y.z is a distinct loopback
address on Linux, which the per-address tests use as "another client"), writes `head` at once,
then `drip` one byte every `interval_s`, and returns the status of the answer the server sends
(None if it closes without one). `Countdown` lets a test wait until every slow client has sent
its first bytes before it checks that ordinary requests are still served.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

from walruspy.node_api.connection_guard import ConnectionLimits

#: Deadlines for tests: the rules are those of production, the times a fraction of a second.
FAST = ConnectionLimits(
    header_timeout_s=1.0,
    body_rate_window_s=0.5,
    min_body_bytes_per_s=200,
    idle_timeout_s=30.0,
)
#: Generous bound on what should happen within a second or two, on a noisy 2-core machine.
WITHIN_S = 60.0

#: A request line and headers that never end (no blank line): a header slowloris.
ENDLESS_HEADERS = b"GET /v1/health HTTP/1.1\r\nHost: slow\r\nX-Slow: " + b"a" * 4000

#: Largest answer read back; the guard's answers and aiohttp's errors are far smaller.
MAX_ANSWER_BYTES = 64 * 1024


def body_head(method: str, path: str, content_length: int) -> bytes:
    """Request line and headers of a request whose body will trickle."""
    return (
        f"{method} {path} HTTP/1.1\r\nHost: slow\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Length: {content_length}\r\n\r\n"
    ).encode()


class Countdown:
    """Set once `count` parties have called `done`."""

    def __init__(self, count: int) -> None:
        self._left = count
        self.event = asyncio.Event()
        if count <= 0:
            self.event.set()

    def done(self) -> None:
        self._left -= 1
        if self._left <= 0:
            self.event.set()


def loopback_alias_available(host: str = "127.0.0.2") -> bool:
    """Whether a socket can be bound to another loopback address (Linux: all of 127/8)."""
    with socket.socket() as sock:
        try:
            sock.bind((host, 0))
        except OSError:
            return False
    return True


async def open_raw(
    port: int, local_host: str | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A plain TCP connection to 127.0.0.1:`port`."""
    local = (local_host, 0) if local_host is not None else None
    return await asyncio.open_connection("127.0.0.1", port, local_addr=local)


def status_of(answer: bytes) -> int | None:
    """The status code of an HTTP/1.1 answer, None if there is none."""
    line = answer.split(b"\r\n", 1)[0].split()
    if len(line) >= 2 and line[0].startswith(b"HTTP/1.") and line[1].isdigit():
        return int(line[1])
    return None


async def read_answer(reader: asyncio.StreamReader) -> bytes:
    """Whatever the server sends until it closes (bounded), b"" if it resets."""
    chunks: list[bytes] = []
    size = 0
    try:
        while size < MAX_ANSWER_BYTES and (chunk := await reader.read(MAX_ANSWER_BYTES)):
            chunks.append(chunk)
            size += len(chunk)
    except ConnectionError:
        pass
    return b"".join(chunks)


async def trickle(
    port: int,
    head: bytes,
    drip: bytes,
    interval_s: float,
    *,
    started: Countdown | None = None,
    local_host: str | None = None,
) -> int | None:
    """Send `head`, then `drip` byte by byte; the status the server answers (None: none)."""
    reader, writer = await open_raw(port, local_host)

    async def send() -> None:
        signalled = started is None
        try:
            writer.write(head)
            for index in range(len(drip)):
                writer.write(drip[index : index + 1])
                await writer.drain()
                if not signalled and started is not None:
                    signalled = True
                    started.done()
                await asyncio.sleep(interval_s)
        except ConnectionError:
            pass
        finally:
            if not signalled and started is not None:
                started.done()  # refused or cut early: nobody waits for it forever

    try:
        async with asyncio.TaskGroup() as group:
            sender = group.create_task(send())
            answer = await read_answer(reader)
            sender.cancel()
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return status_of(answer)

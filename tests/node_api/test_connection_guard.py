"""`GuardedAppRunner` on a small application: each rule of `connection_guard` on a real socket.

The application has a bounded route (`PUT /upload`, at most `SLOTS` at once, like the node's
request limit and the publisher's admission) that reads its whole body, and `GET /ping`. The
deadlines are small (fractions of a second) so that the tests are quick; no test asserts on a
duration beyond generous bounds, since the machines are noisy.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web

from tests.node_api.slow_clients import (
    ENDLESS_HEADERS,
    Countdown,
    body_head,
    loopback_alias_available,
    open_raw,
    read_answer,
    status_of,
    trickle,
)
from walruspy.node_api.connection_guard import (
    BodyTooSlowError,
    ConnectionLimits,
    GuardedAppRunner,
    address_key,
)

pytestmark = pytest.mark.timeout(60)

SLOTS = 4
#: Small deadlines for tests: half-second header deadline and rate windows, 200 B/s.
FAST = ConnectionLimits(
    header_timeout_s=0.5,
    body_rate_window_s=0.5,
    min_body_bytes_per_s=200,
    idle_timeout_s=30.0,
    max_connections_per_address=1000,
)
#: Generous bound on anything the guard should do within a second.
WITHIN_S = 20.0


@dataclass
class Served:
    """A running guarded server and what its bounded route saw."""

    port: int
    runner: GuardedAppRunner
    in_flight: int = 0
    most_in_flight: int = 0
    refused: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.asynccontextmanager
async def serving(limits: ConnectionLimits, read_delay_s: float = 0.0) -> AsyncIterator[Served]:
    slots = asyncio.Semaphore(SLOTS)
    app = web.Application(client_max_size=64 << 20)
    served: Served

    async def upload(request: web.Request) -> web.Response:
        if slots.locked():
            served.refused += 1
            return web.Response(status=429)
        async with slots:
            served.in_flight += 1
            served.most_in_flight = max(served.most_in_flight, served.in_flight)
            try:
                await asyncio.sleep(read_delay_s)  # a loaded server that reads late
                size = 0
                while chunk := await request.content.read(256 * 1024):
                    size += len(chunk)
                return web.Response(text=str(size))
            finally:
                served.in_flight -= 1

    async def ping(request: web.Request) -> web.Response:
        return web.Response(text="pong")

    app.router.add_put("/upload", upload)
    app.router.add_get("/ping", ping)
    runner = GuardedAppRunner(app, limits, access_log=None, lingering_time=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        served = Served(runner.addresses[0][1], runner)
        yield served
    finally:
        await runner.cleanup()


async def ping(url: str, local_host: str | None = None) -> int:
    connector = aiohttp.TCPConnector(local_addr=(local_host, 0)) if local_host else None
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(f"{url}/ping") as response,
    ):
        return response.status


# --- header deadline --------------------------------------------------------------------------


async def test_slow_headers_are_answered_408_and_closed_while_others_are_served() -> None:
    async with serving(FAST) as served:
        started = Countdown(32)
        async with asyncio.timeout(WITHIN_S), asyncio.TaskGroup() as group:
            slow = [
                group.create_task(trickle(served.port, b"", ENDLESS_HEADERS, 0.05, started=started))
                for _ in range(32)
            ]
            await started.event.wait()
            assert await ping(served.url) == 200
        assert [task.result() for task in slow] == [408] * 32
        assert served.runner.guard.header_timeouts == 32
        assert served.in_flight == 0 and served.most_in_flight == 0  # never held a slot


async def test_an_idle_keep_alive_connection_is_not_a_slow_client() -> None:
    # The header clock starts with a request's first byte, not when the connection goes idle.
    async with serving(FAST) as served:
        reader, writer = await open_raw(served.port)
        try:
            for _ in range(2):
                writer.write(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
                head = await asyncio.wait_for(reader.readuntil(b"pong"), WITHIN_S)
                assert status_of(head) == 200
                await asyncio.sleep(3 * FAST.header_timeout_s)
        finally:
            writer.close()
        assert served.runner.guard.header_timeouts == 0


async def test_idle_connections_are_closed_after_the_idle_timeout() -> None:
    limits = ConnectionLimits(idle_timeout_s=0.5, max_connections_per_address=1000)
    async with serving(limits) as served:
        reader, writer = await open_raw(served.port)
        try:
            assert await asyncio.wait_for(read_answer(reader), WITHIN_S) == b""
        finally:
            writer.close()


# --- minimum body rate ------------------------------------------------------------------------


async def test_trickled_bodies_are_cut_with_408_and_free_their_slots() -> None:
    async with serving(FAST) as served:
        head = body_head("PUT", "/upload", 100_000)
        async with asyncio.timeout(WITHIN_S), asyncio.TaskGroup() as group:
            slow = [
                group.create_task(trickle(served.port, head, b"x" * 10_000, 0.05))
                for _ in range(SLOTS)
            ]
        assert [task.result() for task in slow] == [408] * SLOTS
        assert served.runner.guard.body_timeouts == SLOTS
        assert served.most_in_flight == SLOTS and served.in_flight == 0
        # The slots are free: a real upload is served.
        async with (
            aiohttp.ClientSession() as session,
            session.put(f"{served.url}/upload", data=b"y" * 1000) as response,
        ):
            assert response.status == 200 and await response.text() == "1000"


async def test_a_body_that_stops_after_a_fast_start_is_cut() -> None:
    # Each window must bring its bytes: a fast first window does not buy a stall forever.
    async with serving(FAST) as served:
        head = body_head("PUT", "/upload", 100_000) + b"z" * 5000
        async with asyncio.timeout(WITHIN_S):
            assert await trickle(served.port, head, b"z" * 1000, 0.2) == 408


async def test_large_uploads_pass_even_when_the_server_reads_late() -> None:
    # The handler waits four windows before it reads: the socket is paused meanwhile (a full
    # buffer), which is the server's doing, not the client's, so nothing is cut.
    async with serving(FAST, read_delay_s=4 * FAST.body_rate_window_s) as served:
        data = b"u" * (8 << 20)
        async with aiohttp.ClientSession() as session:
            body = io.BytesIO(data)  # aiohttp warns of a large bytes body
            async with session.put(f"{served.url}/upload", data=body) as response:
                assert response.status == 200 and await response.text() == str(len(data))
        assert served.runner.guard.body_timeouts == 0


async def test_the_body_error_is_a_closing_408() -> None:
    error = BodyTooSlowError(FAST)
    assert error.status == 408 and not error.keep_alive
    assert "200 bytes/s" in (error.text or "")


# --- connections per address ------------------------------------------------------------------


CAPPED = ConnectionLimits(header_timeout_s=30.0, max_connections_per_address=8, limit_loopback=True)


async def test_connection_beyond_the_cap_of_one_address_is_refused_promptly() -> None:
    async with serving(CAPPED) as served, contextlib.AsyncExitStack() as stack:
        for _ in range(8):
            _reader, writer = await open_raw(served.port)
            stack.callback(writer.close)
        await asyncio.sleep(0.1)  # the server has accepted them
        assert served.runner.guard.open_connections("127.0.0.1") == 8
        reader, writer = await open_raw(served.port)
        try:
            answer = await asyncio.wait_for(read_answer(reader), WITHIN_S)
        finally:
            writer.close()
        assert status_of(answer) == 429 and b"Retry-After: 1" in answer
        assert served.runner.guard.refused == 1
        if loopback_alias_available():
            assert await ping(served.url, local_host="127.0.0.2") == 200  # another client


async def test_freed_places_are_reused_and_the_count_returns_to_zero() -> None:
    async with serving(CAPPED) as served:
        writers = [(await open_raw(served.port))[1] for _ in range(8)]
        await asyncio.sleep(0.1)
        for writer in writers:
            writer.close()
        async with asyncio.timeout(WITHIN_S):
            # The server sees the closes when its loop gets to them: poll (no event to wait on).
            while served.runner.guard.open_connections("127.0.0.1"):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        assert await ping(served.url) == 200


async def test_loopback_is_not_capped_by_default() -> None:
    limits = ConnectionLimits(max_connections_per_address=2)
    async with serving(limits) as served, contextlib.AsyncExitStack() as stack:
        for _ in range(5):
            _reader, writer = await open_raw(served.port)
            stack.callback(writer.close)
        assert await ping(served.url) == 200
        assert served.runner.guard.refused == 0


def test_address_keys() -> None:
    assert address_key(("203.0.113.7", 5000), False) == "203.0.113.7"
    assert address_key(("::ffff:203.0.113.7", 5000, 0, 0), False) == "203.0.113.7"
    # One IPv6 subscriber holds a /64: its addresses share one count.
    first = address_key(("2001:db8:1:2::1", 5000, 0, 0), False)
    second = address_key(("2001:db8:1:2:ffff::9", 5000, 0, 0), False)
    assert first == second == str(ipaddress.ip_network("2001:db8:1:2::/64"))
    assert address_key(("2001:db8:1:3::1", 5000, 0, 0), False) != first
    assert address_key(("fe80::1%eth0", 5000, 0, 2), False) == "fe80::/64"
    # Loopback is exempt unless asked; unix sockets and odd names are never capped.
    assert address_key(("127.0.0.1", 5000), False) is None
    assert address_key(("::1", 5000, 0, 0), False) is None
    assert address_key(("127.0.0.1", 5000), True) == "127.0.0.1"
    assert address_key("/run/walrus.sock", True) is None
    assert address_key(None, True) is None
    assert address_key(("not-an-address", 1), True) is None


@pytest.mark.parametrize(
    "change",
    [
        {"header_timeout_s": 0},
        {"body_rate_window_s": -1.0},
        {"idle_timeout_s": 0.0},
        {"min_body_bytes_per_s": -1},
        {"max_connections_per_address": 0},
    ],
)
def test_limits_are_validated(change: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(change))):
        ConnectionLimits(**change)  # type: ignore[arg-type]

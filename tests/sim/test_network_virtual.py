"""`SimNetwork` under a virtual clock: the same seed gives the same trace, to the instant.

The loop here is a minimal stand-in for the simulator's (built elsewhere): its clock moves only
when the loop would sleep, jumping to the next timer, so that latencies, retransmission timeouts
and client timeouts cost no wall time, and the order of every callback is a function of the seed.
It is enough because nothing in these runs uses a socket or a thread.
"""

from __future__ import annotations

import asyncio
import email.utils
import selectors
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp import web

from tests.sim.test_network import _app
from walruspy import sim
from walruspy.sim.loop import DEFAULT_EPOCH_S
from walruspy.sim.network import SimNetwork
from walruspy.sim.transport import SimTransport, TraceEvent, TraceKind

_T = TypeVar("_T")


class _VirtualSelector(selectors.DefaultSelector):
    """Never sleeps on a timeout: it hands the time to the loop's clock instead."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def select(self, timeout: float | None = None) -> list[Any]:
        ready = super().select(0)
        if not ready and timeout is not None and timeout > 0:
            self.now += timeout
        elif not ready and timeout is None:
            ready = super().select(None)  # nothing scheduled: only another thread can wake us
        return ready


class _VirtualLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self._virtual = _VirtualSelector()
        super().__init__(self._virtual)

    def time(self) -> float:
        return self._virtual.now


def run_virtual(main: Callable[[], Awaitable[_T]]) -> _T:
    async def wrapped() -> _T:
        return await main()

    with asyncio.Runner(loop_factory=_VirtualLoop) as runner:
        return runner.run(wrapped())


def _lossy_cluster(seed: int) -> tuple[list[str], list[TraceEvent]]:
    """Three clients fetch concurrently from two servers over jittery, lossy links."""

    async def main() -> tuple[list[str], list[TraceEvent]]:
        events: list[TraceEvent] = []
        net = SimNetwork(seed, trace=events.append)
        for server in ("a", "b"):
            await net.serve(server, 80, _app())
            for client in ("c0", "c1", "c2"):
                net.set_link(client, server, latency_s=0.01, jitter_s=0.02, loss=0.2, reset=0.02)
        outcomes: list[str] = []

        async def fetch(client: str, n: int) -> None:
            timeout = aiohttp.ClientTimeout(total=2.0)
            async with aiohttp.ClientSession(
                connector=net.connector(client), timeout=timeout
            ) as session:
                for i in range(n):
                    server = "ab"[i % 2]
                    loop = asyncio.get_running_loop()
                    try:
                        async with session.get(f"http://{server}/blob/{5000 + i}") as response:
                            body = await response.read()
                        outcomes.append(f"{client} {i} {len(body)} at {loop.time():.6f}")
                    except (aiohttp.ClientError, TimeoutError) as exc:
                        outcomes.append(f"{client} {i} {type(exc).__name__} at {loop.time():.6f}")

        async with asyncio.TaskGroup() as group:
            for client in ("c0", "c1", "c2"):
                group.create_task(fetch(client, 12))
        await net.close()
        return outcomes, events

    return run_virtual(main)


def test_a_seed_reproduces_every_outcome_and_every_event_at_the_same_virtual_time() -> None:
    outcomes, events = _lossy_cluster(11)
    assert (outcomes, events) == _lossy_cluster(11)
    kinds = {e.kind for e in events}
    assert {TraceKind.DELIVER, TraceKind.RETRANSMIT} <= kinds
    assert any(" 50" in o for o in outcomes)  # bodies did arrive
    # Another seed: another run.
    assert _lossy_cluster(12) != (outcomes, events)


def test_a_partition_under_virtual_time_costs_no_wall_time() -> None:
    async def main(heal_after_s: float) -> str:
        net = SimNetwork(1)
        await net.serve("server", 80, _app())
        net.set_link("client", "server", latency_s=0.05)
        loop = asyncio.get_running_loop()
        try:
            async with aiohttp.ClientSession(
                connector=net.connector("client"), timeout=aiohttp.ClientTimeout(total=60)
            ) as session:
                net.partition(["client"], ["server"])
                loop.call_later(heal_after_s, net.heal)
                try:
                    async with session.get("http://server/hello") as response:
                        return f"{response.status} at {loop.time():.2f}"
                except TimeoutError:
                    return f"timeout at {loop.time():.2f}"
        finally:
            await net.close()

    # Healed after 30 s: the handshake and the request go through then (4 x 50 ms later).
    assert run_virtual(lambda: main(30.0)) == "200 at 30.20"
    # Healed after an hour: the client's 60 s timeout fires first.
    assert run_virtual(lambda: main(3600.0)) == "timeout at 60.00"


def _closing_order(monkeypatch: pytest.MonkeyPatch) -> tuple[list[int], list[int]]:
    """Connections in the order opened, and in the order their client ends closed, when a
    session closes with eight requests in flight (each holding a connection)."""
    events: list[TraceEvent] = []
    closed: list[int] = []
    close = SimTransport.close

    def recording_close(transport: SimTransport) -> None:
        if transport.host == "client" and not transport.is_closing():
            closed.append(transport._direction.connection)
        close(transport)

    monkeypatch.setattr(SimTransport, "close", recording_close)

    async def main() -> None:
        net = SimNetwork(5, trace=events.append)

        async def slow(request: web.Request) -> web.Response:
            await asyncio.sleep(3600)
            return web.Response()

        app = web.Application()
        app.router.add_get("/slow", slow)
        await net.serve("server", 80, app)
        session = aiohttp.ClientSession(connector=net.connector("client", limit=0))
        requests = [asyncio.create_task(session.get("http://server/slow")) for _ in range(8)]
        await asyncio.sleep(1)
        await session.close()  # the connector closes the connections it lent out
        for request in requests:
            request.cancel()
        await asyncio.gather(*requests, return_exceptions=True)
        await net.close()

    sim.run(main())
    opened = [e.connection for e in events if e.kind is TraceKind.CONNECT]
    return opened, closed


def test_a_closing_connector_closes_its_connections_in_the_order_it_lent_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # aiohttp keeps them in a set, whose order is their protocols' addresses: each close
    # draws its FIN's jitter, so the order of the draws changed with the allocation history
    # (module doc of walruspy.sim.network).
    opened, closed = _closing_order(monkeypatch)
    # aiohttp retries each GET once on a new connection, which the closed session closes too.
    assert opened[:8] == list(range(8))
    assert closed == opened


def test_responses_are_dated_by_the_virtual_clock() -> None:
    async def main() -> str:
        net = SimNetwork(1)
        await net.serve("server", 80, _app())
        await asyncio.sleep(90)
        async with (
            aiohttp.ClientSession(connector=net.connector("client")) as session,
            session.get("http://server/hello") as response,
        ):
            date = response.headers["Date"]
        await net.close()
        return date

    assert sim.run(main()) == email.utils.formatdate(DEFAULT_EPOCH_S + 90, usegmt=True)

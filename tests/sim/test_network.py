"""`SimNetwork`: real aiohttp clients and servers joined in memory, with delays, loss, partitions.

On the ordinary asyncio loop (wall clock): latencies are small and only lower bounds are
asserted, never upper ones, so a loaded machine cannot fail them.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import random
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from walruspy.sim.network import LinkConfig, SimNetwork
from walruspy.sim.transport import TraceEvent, TraceKind

MiB = 1024 * 1024


def _app() -> web.Application:
    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"peer": request.transport.get_extra_info("peername")[0]})

    async def digest(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response({"size": len(body), "sha256": hashlib.sha256(body).hexdigest()})

    async def blob(request: web.Request) -> web.Response:
        size = int(request.match_info["size"])
        return web.Response(body=random.Random(size).randbytes(size))

    async def slow_digest(request: web.Request) -> web.Response:
        # Reads slowly: aiohttp pauses the transport, the sender's window fills and it pauses.
        hasher, size = hashlib.sha256(), 0
        async for chunk in request.content.iter_chunked(256 * 1024):
            hasher.update(chunk)
            size += len(chunk)
            await asyncio.sleep(0.001)
        return web.json_response({"size": size, "sha256": hasher.hexdigest()})

    app = web.Application(client_max_size=8 * MiB)
    app.router.add_get("/hello", hello)
    app.router.add_put("/slow-digest", slow_digest)
    app.router.add_put("/digest", digest)
    app.router.add_get("/blob/{size}", blob)
    return app


@pytest.fixture
async def net() -> AsyncIterator[SimNetwork]:
    network = SimNetwork(seed=7)
    await network.serve("server", 80, _app())
    yield network
    await network.close()


def _session(net: SimNetwork, source: str = "client", **timeout: float) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=net.connector(source), timeout=aiohttp.ClientTimeout(**timeout)
    )


async def test_a_get_and_a_put_of_a_mebibyte_go_through(net: SimNetwork) -> None:
    body = random.Random(1).randbytes(MiB)
    async with _session(net) as session:
        async with session.get("http://server/hello") as response:
            assert response.status == 200
            assert await response.json() == {"peer": "client"}
        async with session.put("http://server:80/digest", data=body) as response:
            assert await response.json() == {
                "size": MiB,
                "sha256": hashlib.sha256(body).hexdigest(),
            }
        # The connection was kept alive and reused: one connection for both requests.
        assert net.open_connections == 1


async def test_a_body_larger_than_the_window_to_a_slow_reader_arrives_whole(
    net: SimNetwork,
) -> None:
    body = random.Random(2).randbytes(12 * MiB)
    async with (
        _session(net) as session,
        session.put("http://server/slow-digest", data=io.BytesIO(body)) as response,
    ):
        assert await response.json() == {
            "size": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
        }


async def test_an_address_nobody_serves_is_refused(net: SimNetwork) -> None:
    async with _session(net) as session:
        for url in ("http://nowhere/hello", "http://server:81/hello"):
            with pytest.raises(aiohttp.ClientConnectorError) as caught:
                await session.get(url)
            assert isinstance(caught.value.os_error, ConnectionRefusedError)


async def test_a_request_takes_at_least_two_latencies(net: SimNetwork) -> None:
    net.set_link("client", "server", latency_s=0.02)
    loop = asyncio.get_running_loop()
    async with _session(net) as session:
        started = loop.time()
        async with session.get("http://server/hello") as response:
            await response.read()
        # A handshake round trip, then the request and its response.
        assert loop.time() - started >= 4 * 0.02
        started = loop.time()
        async with session.get("http://server/hello") as response:
            await response.read()
        # On the kept-alive connection: the request and the response only.
        assert loop.time() - started >= 2 * 0.02


async def test_a_partition_times_requests_out_and_healing_restores_them(net: SimNetwork) -> None:
    async with _session(net, total=0.2) as session:
        async with session.get("http://server/hello") as response:
            assert response.status == 200
        net.partition(["client"], ["server"])
        # On the pooled connection: the request is held, the response never comes.
        with pytest.raises(asyncio.TimeoutError):
            await session.get("http://server/hello")
        # A new connection: the handshake waits for the partition to heal.
        async with _session(net, "client2", total=0.2) as other:
            net.partition(["client2"], ["server"])
            with pytest.raises(asyncio.TimeoutError):
                await other.get("http://server/hello")
        net.heal()
        async with session.get("http://server/hello") as response:
            assert response.status == 200


async def test_held_segments_are_delivered_after_healing(net: SimNetwork) -> None:
    async with _session(net, total=5) as session:
        async with session.get("http://server/hello") as response:
            assert response.status == 200
        net.partition(["client"], ["server"])
        request = asyncio.create_task(session.get("http://server/hello"))
        await asyncio.sleep(0.05)
        assert not request.done()
        net.heal(["client"], ["server"])
        async with await request as response:
            assert response.status == 200


async def _lossy_run(seed: int) -> list[tuple[str, int]]:
    """Ten requests over a link that loses and resets: each outcome, and the trace's shape."""
    events: list[TraceEvent] = []
    net = SimNetwork(seed, trace=events.append)
    await net.serve("server", 80, _app())
    net.set_link("client", "server", latency_s=0.001, loss=0.1, reset=0.2)
    outcomes: list[tuple[str, int]] = []
    try:
        async with aiohttp.ClientSession(
            connector=net.connector("client", force_close=True),
            timeout=aiohttp.ClientTimeout(total=30),
        ) as session:
            for _ in range(10):
                try:
                    async with session.get("http://server/blob/1000") as response:
                        outcomes.append(("ok", len(await response.read())))
                except aiohttp.ClientError as exc:
                    outcomes.append((type(exc).__name__, 0))
    finally:
        await net.close()
    # Every write's fate, in order (times are the wall clock's here, so they are left out).
    outcomes += [
        (f"{e.kind.value} {e.source}>{e.destination} #{e.connection}", e.size_bytes) for e in events
    ]
    kinds = [e.kind for e in events]
    outcomes.append(("retransmits", kinds.count(TraceKind.RETRANSMIT)))
    outcomes.append(("resets", kinds.count(TraceKind.RESET)))
    return outcomes


async def test_loss_with_a_seed_gives_the_same_outcomes_twice() -> None:
    first = await _lossy_run(3)
    assert first == await _lossy_run(3)
    # The link did lose and reset something, and some requests still went through.
    summary = dict(first[-2:])
    assert summary["retransmits"] > 0 and summary["resets"] > 0
    requests = first[:10]
    assert ("ok", 1000) in requests
    assert any(outcome != "ok" for outcome, _ in requests)


async def test_a_large_body_stays_in_order_under_jitter(net: SimNetwork) -> None:
    net.set_link("client", "server", latency_s=0.001, jitter_s=0.01)
    size = 3 * MiB + 17
    expected = random.Random(size).randbytes(size)
    async with _session(net) as session, session.get(f"http://server/blob/{size}") as response:
        received = bytearray()
        async for chunk in response.content.iter_chunked(4096):
            received += chunk
    assert bytes(received) == expected


async def test_concurrent_connections_interleave_but_each_stays_in_order(net: SimNetwork) -> None:
    net.set_link("client", "server", latency_s=0.001, jitter_s=0.005)
    sizes = [200_000 + i for i in range(8)]
    async with _session(net) as session:

        async def fetch(size: int) -> bytes:
            async with session.get(f"http://server/blob/{size}") as response:
                return await response.read()

        bodies = await asyncio.gather(*(fetch(size) for size in sizes))
    assert [hashlib.sha256(b).digest() for b in bodies] == [
        hashlib.sha256(random.Random(s).randbytes(s)).digest() for s in sizes
    ]


async def test_a_crash_resets_connections_and_the_host_can_serve_again(net: SimNetwork) -> None:
    # The handler outlives the crash (the code of a crashed host is the simulator's to cancel);
    # it is released at the end so that the network's clean-up does not wait for it.
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response()

    app = web.Application()
    app.router.add_get("/slow", slow)
    await net.serve("node", 9000, app)
    async with _session(net, total=5) as session:
        request = asyncio.create_task(session.get("http://node:9000/slow"))
        await asyncio.sleep(0.01)
        net.crash("node")
        with pytest.raises(aiohttp.ClientError):
            await request
        with pytest.raises(aiohttp.ClientConnectorError):
            await session.get("http://node:9000/slow")
        await net.serve("node", 9000, _app())
        async with session.get("http://node:9000/hello") as response:
            assert response.status == 200
    release.set()


async def test_an_address_cannot_be_served_twice(net: SimNetwork) -> None:
    with pytest.raises(OSError, match="already served"):
        await net.serve("server", 80, _app())


async def test_an_address_is_free_again_once_its_runner_is_cleaned_up(net: SimNetwork) -> None:
    # As a storage node does: it sets up its own runner and cleans it up when it stops.
    runner = web.AppRunner(_app())
    assert await net.serve("node", 9000, runner) == "http://node:9000"
    async with _session(net) as session:
        async with session.get("http://node:9000/hello") as response:
            assert response.status == 200
        await runner.cleanup()
        with pytest.raises(aiohttp.ClientConnectorError):
            await session.get("http://node:9000/hello")
        restarted = web.AppRunner(_app())
        await net.serve("node", 9000, restarted)
        async with session.get("http://node:9000/hello") as response:
            assert response.status == 200
        await restarted.cleanup()


def test_link_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="probabilities"):
        LinkConfig(loss=1.5)
    with pytest.raises(ValueError, match="negative"):
        LinkConfig(latency_s=-1)

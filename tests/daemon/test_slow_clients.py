"""Slow and greedy clients against a real daemon server (`walruspy.node_api.connection_guard`).

Before the guard, 16 connections sending a body one byte every 2 s held the publisher's 8 running
and 8 queued slots, and every other store answered 429 for as long as they trickled. Each test
serves the daemon (publisher and aggregator) on a free local port over the in-process network,
with small deadlines, opens slow connections on raw sockets, and checks that stores still
succeed, that the slow connections are answered 408 and closed, and that connection N+1 from
one address is refused while another address stores.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from pathlib import Path

import aiohttp
import pytest

from tests.daemon.test_daemon_app import network_daemon
from tests.node.cluster import blob_data
from tests.node_api.slow_clients import (
    ENDLESS_HEADERS,
    FAST,
    WITHIN_S,
    Countdown,
    body_head,
    loopback_alias_available,
    open_raw,
    read_answer,
    status_of,
    trickle,
)
from walruspy.cli.daemon_cmd import daemon_command
from walruspy.daemon import DaemonLimits
from walruspy.daemon.limits import DAEMON_CONNECTION_LIMITS

pytestmark = pytest.mark.timeout(120)

#: The publisher's defaults: 8 stores running and 8 queued, then 429.
PUBLISHER_SLOTS = (
    DaemonLimits().publisher_max_concurrent_requests + DaemonLimits().publisher_max_buffer_size
)


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def store(url: str, seed: int, local_host: str | None = None) -> int:
    """Status of a store of a small blob over a fresh session."""
    connector = aiohttp.TCPConnector(local_addr=(local_host, 0)) if local_host else None
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.put(f"{url}/v1/blobs?epochs=2", data=blob_data(seed, 2000)) as response,
    ):
        return response.status


async def test_stores_succeed_while_32_connections_trickle_headers(tmp_path: Path) -> None:
    limits = DaemonLimits(connections=FAST)
    async with network_daemon(tmp_path, limits) as (_network, _client, url, _session):
        count = 2 * PUBLISHER_SLOTS
        started = Countdown(count)
        async with asyncio.timeout(WITHIN_S), asyncio.TaskGroup() as group:
            slow = [
                group.create_task(trickle(port_of(url), b"", ENDLESS_HEADERS, 0.1, started=started))
                for _ in range(count)
            ]
            await started.event.wait()
            assert await store(url, 1) == 200  # headers in flight hold no publisher slot
        assert [task.result() for task in slow] == [408] * count


async def test_16_trickled_bodies_are_cut_and_stores_succeed_again(tmp_path: Path) -> None:
    limits = DaemonLimits(connections=FAST)
    async with network_daemon(tmp_path, limits) as (_network, _client, url, _session):
        head = body_head("PUT", "/v1/blobs", 100_000)
        async with asyncio.timeout(WITHIN_S), asyncio.TaskGroup() as group:
            slow = [
                group.create_task(trickle(port_of(url), head, b"x" * 10_000, 0.1))
                for _ in range(PUBLISHER_SLOTS)
            ]
        # All 16 held a slot (8 storing, 8 queued) until the minimum rate cut them.
        assert [task.result() for task in slow] == [408] * PUBLISHER_SLOTS
        assert await store(url, 2) == 200


async def test_connection_beyond_the_per_address_cap_is_refused(tmp_path: Path) -> None:
    cap = 4
    capped = dataclasses.replace(FAST, max_connections_per_address=cap, limit_loopback=True)
    limits = DaemonLimits(connections=capped)
    async with (
        network_daemon(tmp_path, limits) as (_network, _client, url, _session),
        contextlib.AsyncExitStack() as stack,
    ):
        for _ in range(cap):
            _reader, writer = await open_raw(port_of(url))
            stack.callback(writer.close)
        await asyncio.sleep(0.2)  # the daemon has accepted them
        reader, writer = await open_raw(port_of(url))
        stack.callback(writer.close)
        answer = await asyncio.wait_for(read_answer(reader), WITHIN_S)
        assert status_of(answer) == 429
        if loopback_alias_available():
            assert await store(url, 3, local_host="127.0.0.2") == 200  # another address


def test_cli_defaults_are_the_daemon_connection_limits() -> None:
    defaults = {param.name: param.default for param in daemon_command.params}
    assert defaults["header_timeout_s"] == DAEMON_CONNECTION_LIMITS.header_timeout_s
    assert defaults["body_rate_window_s"] == DAEMON_CONNECTION_LIMITS.body_rate_window_s
    assert defaults["min_body_bytes_per_s"] == DAEMON_CONNECTION_LIMITS.min_body_bytes_per_s
    assert defaults["idle_timeout_s"] == DAEMON_CONNECTION_LIMITS.idle_timeout_s
    assert (
        defaults["max_connections_per_address"]
        == DAEMON_CONNECTION_LIMITS.max_connections_per_address
    )
    assert defaults["limit_loopback"] == DAEMON_CONNECTION_LIMITS.limit_loopback
    assert DaemonLimits().connections == DAEMON_CONNECTION_LIMITS

"""Slow and greedy clients against a real started node API (`walruspy.node_api.connection_guard`).

Before the guard, 256 connections trickling a body one byte at a time held every one of the
node's `max_concurrent_requests` slots (its health route answered 429 for as long as they
trickled), and a header slowloris held its connections for an hour. Each test starts one
in-process node on the fake chain with small deadlines, opens slow connections on raw sockets,
and checks that the node still answers its health route, that the slow connections are answered
408 (or 429 by the node's own limit) and closed, and that connection N+1 from one address is
refused while another address is served.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.node.cluster import ClusterNode, open_cluster
from tests.node.test_node_config import MINIMAL
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
from walruspy.node.config import ApiLimits, parse_config
from walruspy.node.errors import ConfigError
from walruspy.node_api.client import NodeClient
from walruspy.node_api.connection_guard import ConnectionLimits

pytestmark = pytest.mark.timeout(120)

#: A syntactically valid blob ID: the route parses it, then reads the body.
BLOB_ID = "A" * 43


@contextlib.asynccontextmanager
async def one_node(tmp_path: Path, connections: ConnectionLimits) -> AsyncIterator[ClusterNode]:
    async with open_cluster(tmp_path, (10,), connections=connections) as cluster:
        yield cluster.nodes[0]


async def health(node: ClusterNode, local_host: str | None = None) -> int:
    """Status of GET /v1/health over a fresh connection (from `local_host` if given)."""
    reader, writer = await open_raw(node.port, local_host)
    try:
        writer.write(b"GET /v1/health HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n")
        status = status_of(await asyncio.wait_for(read_answer(reader), WITHIN_S))
    finally:
        writer.close()
    assert status is not None
    return status


async def test_header_slowloris_of_300_connections_does_not_stop_the_node(tmp_path: Path) -> None:
    async with one_node(tmp_path, FAST) as node:
        count = 300  # more than the 256 request slots
        started = Countdown(count)
        async with asyncio.timeout(WITHIN_S), asyncio.TaskGroup() as group:
            slow = [
                group.create_task(trickle(node.port, b"", ENDLESS_HEADERS, 0.1, started=started))
                for _ in range(count)
            ]
            await started.event.wait()
            assert await health(node) == 200  # served while they trickle
            client = NodeClient(node.url, timeout_s=WITHIN_S)
            async with client:
                assert (await client.health()).node_status
        assert [task.result() for task in slow] == [408] * count
        assert await health(node) == 200


async def test_256_trickled_bodies_are_cut_and_the_node_answers_again(tmp_path: Path) -> None:
    limits = ApiLimits().max_concurrent_requests
    assert limits == 256  # the default the issue locked up
    async with one_node(tmp_path, FAST) as node:
        head = body_head("PUT", f"/v1/blobs/{BLOB_ID}/metadata", 600)
        async with asyncio.timeout(WITHIN_S), asyncio.TaskGroup() as group:
            slow = [
                group.create_task(trickle(node.port, head, b"\x00" * 600, 0.1))
                for _ in range(limits)
            ]
        statuses = [task.result() for task in slow]
        # Each was cut by the minimum rate (408), or shed at once by the node's own limit (429)
        # while the node was still accepting the others: none is left holding a slot.
        assert set(statuses) <= {408, 429} and statuses.count(408) >= limits // 2
        assert await health(node) == 200
        assert node.node is not None and node.node.api is not None
        assert node.node.api.in_flight == 0


async def test_connection_beyond_the_per_address_cap_is_refused(tmp_path: Path) -> None:
    cap = 16
    capped = ConnectionLimits(max_connections_per_address=cap, limit_loopback=True)
    async with one_node(tmp_path, capped) as node, contextlib.AsyncExitStack() as stack:
        started = Countdown(cap)
        async with asyncio.TaskGroup() as group:
            slow = [
                group.create_task(trickle(node.port, b"", ENDLESS_HEADERS, 0.2, started=started))
                for _ in range(cap)
            ]
            await started.event.wait()
            await asyncio.sleep(0.2)  # the node has accepted them all
            # Connection N+1 from the same address: 429, closed at once.
            reader, writer = await open_raw(node.port)
            stack.callback(writer.close)
            answer = await asyncio.wait_for(read_answer(reader), WITHIN_S)
            assert status_of(answer) == 429
            if loopback_alias_available():
                assert await health(node, local_host="127.0.0.2") == 200  # another address
            for task in slow:
                task.cancel()
        # Closed, they free their places.
        async with asyncio.timeout(WITHIN_S):
            while (status := await health(node)) != 200:  # the closes land in turn
                assert status == 429
                await asyncio.sleep(0.05)


def test_the_connection_limits_are_read_from_the_config_file(tmp_path: Path) -> None:
    raw = {
        **MINIMAL,
        "connections": {
            "header_timeout_s": 5,
            "body_rate_window_s": 2.5,
            "min_body_bytes_per_s": 4096,
            "idle_timeout_s": 30,
            "max_connections_per_address": 64,
            "limit_loopback": True,
        },
    }
    assert parse_config(raw, tmp_path).connections == ConnectionLimits(
        header_timeout_s=5.0,
        body_rate_window_s=2.5,
        min_body_bytes_per_s=4096,
        idle_timeout_s=30.0,
        max_connections_per_address=64,
        limit_loopback=True,
    )
    assert parse_config(MINIMAL, tmp_path).connections == ConnectionLimits()
    for change, field in [
        ({"header_timeout_s": 0}, "connections.header_timeout_s"),
        ({"max_connections_per_address": 0}, "connections.max_connections_per_address"),
        ({"limit_loopback": "yes"}, "connections.limit_loopback"),
        ({"header_timeout": 5}, "unknown field connections.header_timeout"),
    ]:
        with pytest.raises(ConfigError, match=field):
            parse_config({**MINIMAL, "connections": change}, tmp_path)

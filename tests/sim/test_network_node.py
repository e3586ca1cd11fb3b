"""Storage nodes and their clients over the simulated network: real `NodeApi`, real `NodeClient`.

Nodes run in process on the fake chain (tests/node/cluster.py's configuration) and serve through
`StorageNode(listen=...)` at `nodeI:9185`; the calls they make to their peers go through the
session they are lent (`StorageNode(session=...)`), made on the network's connector from their own
host. So the recovery below travels node to node over simulated links, and a partition cuts a
client off while the nodes go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import random
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.node.cluster import (
    Cluster,
    ClusterNode,
    blob_data,
    make_members,
    node_config,
    upload_to,
)
from tests.node.fakes import FakeChain
from tests.node.test_node_recovery import assert_holds
from walruspy.core.encoding import encode_blob
from walruspy.node.node import StorageNode
from walruspy.node_api.client import NodeClient
from walruspy.node_api.errors import NodeTimeoutError
from walruspy.sim.network import SimNetwork
from walruspy.sim.transport import TraceEvent, TraceKind

SHARDS = (2, 3, 5)


@contextlib.asynccontextmanager
async def open_sim_cluster(tmp_path: Path, net: SimNetwork) -> AsyncIterator[Cluster]:
    """Three nodes at `node0..2:9185`, not started, and a client session from host `client`."""
    keys, members = make_members(SHARDS, [9185] * len(SHARDS))
    members = [
        dataclasses.replace(m, network_address=f"node{i}:9185") for i, m in enumerate(members)
    ]
    chain = FakeChain(members, sum(SHARDS))
    nodes = [
        ClusterNode(
            index=i,
            key=keys[i],
            member=members[i],
            port=9185,
            storage_path=tmp_path / f"node{i}",
            config=node_config(tmp_path / f"node{i}"),
        )
        for i in range(len(SHARDS))
    ]
    async with aiohttp.ClientSession(connector=net.connector("client")) as session:
        cluster = Cluster(chain, nodes, session)
        try:
            yield cluster
        finally:
            for node in nodes:
                await cluster.stop(node)
            await net.close()


def client_of(cluster: Cluster, node: ClusterNode, timeout_s: float = 5.0) -> NodeClient:
    """A client of `node` from host `client`."""
    url = f"http://{node.member.network_address}"
    return NodeClient(url, cluster.session, timeout_s=timeout_s)


async def start(cluster: Cluster, net: SimNetwork, node: ClusterNode) -> aiohttp.ClientSession:
    """Start `node` on the network; the session it is lent (the caller closes it)."""
    host = f"node{node.index}"
    session = aiohttp.ClientSession(connector=net.connector(host))
    node.node = StorageNode(
        node.config,
        cluster.chain.for_node(node.member.network_address),
        node.key,
        rng=random.Random(node.index),
        listen=functools.partial(net.serve, host, 9185),
        session=session,
    )
    node.task = asyncio.create_task(node.node.run())
    async with asyncio.timeout(30):
        await node.node.wait_ready()
    assert node.node.url == f"http://{host}:9185"
    return session


async def test_nodes_serve_clients_and_recover_from_each_other(tmp_path: Path) -> None:
    events: list[TraceEvent] = []
    net = SimNetwork(seed=5, trace=events.append)
    for a in ("client", "node0", "node1", "node2"):
        for b in ("node0", "node1", "node2"):
            if a != b:
                net.set_link(a, b, latency_s=0.002, jitter_s=0.003)
    # The nodes' sessions close after the cluster stops the nodes.
    async with (
        contextlib.AsyncExitStack() as sessions,
        open_sim_cluster(tmp_path, net) as cluster,
    ):
        up, down = cluster.nodes[:2], cluster.nodes[2]
        for node in up:
            sessions.push_async_callback((await start(cluster, net, node)).close)
        # Stored on nodes 0 and 1 only (a real NodeClient uploads over the network).
        encoded = encode_blob(blob_data(1, 20_000), cluster.n_shards)
        object_id = cluster.chain.register(encoded.metadata.blob_id, 20_000)
        await cluster.wait_for_events()
        for node in up:
            await upload_to(client_of(cluster, node), encoded, node.shards)
        cluster.chain.certify(object_id)
        await cluster.wait_for_events()
        metadata = await client_of(cluster, up[0]).get_metadata(encoded.metadata.blob_id, 10)
        assert metadata.blob_id == encoded.metadata.blob_id
        # Node 2 starts late and recovers its slivers from its peers, over the network.
        sessions.push_async_callback((await start(cluster, net, down)).close)
        await cluster.wait_for_events()
        await cluster.wait_syncs_idle()
        assert_holds(down, encoded)
        # It asked its peers itself: connections from node2 to both, bytes delivered back.
        connects = {(e.source, e.destination) for e in events if e.kind is TraceKind.CONNECT}
        assert {("node2", "node0"), ("node2", "node1")} <= connects
        assert any(
            e.kind is TraceKind.DELIVER and e.destination == "node2" and e.size_bytes
            for e in events
        )

        # A client cut off from node 0 times out; healed, it is answered again.
        impatient = client_of(cluster, cluster.nodes[0], timeout_s=0.3)
        net.partition(["client"], ["node0"])
        with pytest.raises(NodeTimeoutError):
            await impatient.health()
        net.heal()
        assert (await impatient.health()).node_status

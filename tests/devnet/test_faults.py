"""Faults on a real devnet: nodes killed (SIGKILL), paused (SIGSTOP) and restarted.

Four node processes hold 25 of 100 shards each, so f = 33 shards: one node down is within f,
two nodes down are within 2f. Checked: a store certifies and reads succeed with f nodes killed;
a node restarted after missing a blob recovers its slivers byte for byte (self-healing, read
back through its own API); reads of certified blobs succeed with 2f nodes down; a store
certifies while a node is paused, without waiting for it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from tests.devnet.conftest import TEST_EPOCH_S, blob_bytes, shards_of, wait_certified
from walruspy.client import WalrusClient
from walruspy.core.encoding import encode_blob
from walruspy.core.types import ShardIndex, SliverType, pair_of_shard
from walruspy.devnet import Devnet, open_devnet, wait_until
from walruspy.node_api.schemas import Nonexistent, StoredOnNodeStatus

pytestmark = [
    pytest.mark.devnet,
    pytest.mark.slow,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(300),
]

N_SHARDS = 100


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def devnet(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Devnet]:
    directory = tmp_path_factory.mktemp("faults")
    async with open_devnet(
        directory, n_nodes=4, n_shards=N_SHARDS, epoch_duration_s=TEST_EPOCH_S,
        recovery_deferral_s=1.0,
    ) as dn:  # fmt: skip
        yield dn


BEFORE = blob_bytes(1, 400_000)
WHILE_DOWN = blob_bytes(2, 700_000)


async def test_store_and_read_with_f_nodes_killed(devnet: Devnet, client: WalrusClient) -> None:
    first = await client.store(BEFORE, 5, deletable=False)
    await wait_certified(client, first.blob_id)
    down = devnet.nodes[3]
    assert shards_of([down]) <= (N_SHARDS - 1) // 3  # within f
    await down.kill()
    assert down.pid is None
    second = await client.store(WHILE_DOWN, 5, deletable=False)
    assert not second.already_certified and second.blob is not None
    assert second.blob.certified_epoch is not None
    assert "node 3" in second.upload_summary  # the dead node is reported, not waited for
    assert await client.read(first.blob_id) == BEFORE
    assert await client.read(second.blob_id) == WHILE_DOWN


async def test_restarted_node_recovers_what_it_missed(
    devnet: Devnet, http: aiohttp.ClientSession
) -> None:
    node = devnet.nodes[3]
    await node.restart()
    assert node.pid is not None
    encoded = encode_blob(WHILE_DOWN, N_SHARDS)
    metadata = encoded.metadata
    api = node.plan.client(http, 30, direct=False)
    pairs = [pair_of_shard(ShardIndex(s), metadata.blob_id.raw, N_SHARDS) for s in node.shards]

    async def recovered() -> bool:
        for pair in pairs:
            for sliver_type in SliverType:
                status = await api.sliver_status(metadata.blob_id, pair, sliver_type)
                if status is not StoredOnNodeStatus.STORED:
                    return False
        return True

    await wait_until(recovered, 90, "node 3 recovering the slivers it missed")
    for pair in pairs:
        for sliver_type in SliverType:
            served = await api.get_sliver(metadata, pair, sliver_type)
            assert served.sliver == encoded.sliver(pair, sliver_type).sliver


async def test_reads_with_2f_nodes_down(devnet: Devnet, client: WalrusClient) -> None:
    stores = [await client.store(blob_bytes(3, 200_000), 5, deletable=False)]
    await wait_certified(client, stores[0].blob_id)
    down = devnet.nodes[2:]
    assert shards_of(down) <= 2 * ((N_SHARDS - 1) // 3)  # within 2f
    for node in down:
        await node.kill()
    try:
        assert await client.read(stores[0].blob_id) == blob_bytes(3, 200_000)
        blob_id = await client.blob_id_of(BEFORE)
        assert await client.read(blob_id) == BEFORE
        assert await client.read(encode_blob(WHILE_DOWN, N_SHARDS).metadata.blob_id) == WHILE_DOWN
    finally:
        for node in down:
            await node.restart()


async def test_store_with_a_paused_node(devnet: Devnet, client: WalrusClient) -> None:
    paused = devnet.nodes[1]
    paused.pause()
    try:
        data = blob_bytes(4, 100_000)
        result = await client.store(data, 2, deletable=True)
        assert result.blob is not None and result.blob.certified_epoch is not None
    finally:
        paused.resume()
    assert await client.read(result.blob_id) == data


async def test_devnet_state_follows_restarts(devnet: Devnet) -> None:
    state = devnet.state()
    assert [node.process.pid for node in state.nodes] == [node.pid for node in devnet.nodes]
    assert all(pid for pid in (node.pid for node in devnet.nodes))


async def test_nodes_follow_a_chain_that_reverts(
    devnet: Devnet, client: WalrusClient, http: aiohttp.ClientSession
) -> None:
    """evm_snapshot, a store, evm_revert: the nodes stop serving the blob the chain no longer
    knows and apply the events that follow, so later stores certify (last in the module: the
    revert takes the chain back)."""
    kept = await client.store(blob_bytes(5, 50_000), 5, deletable=False)
    snapshot = await devnet.rpc("evm_snapshot")
    lost = await client.store(blob_bytes(6, 60_000), 5, deletable=False)
    await wait_certified(client, lost.blob_id)
    assert await devnet.rpc("evm_revert", snapshot) is True
    apis = [node.plan.client(http, 30, direct=False) for node in devnet.nodes]

    async def forgotten() -> bool:
        statuses = [await api.blob_status(lost.blob_id) for api in apis]
        return all(isinstance(status, Nonexistent) for status in statuses)

    await wait_until(forgotten, 60, "every node taking back the reverted store")
    later = await client.store(blob_bytes(7, 70_000), 5, deletable=False)
    assert later.blob is not None and later.blob.certified_epoch is not None
    assert await client.read(later.blob_id) == blob_bytes(7, 70_000)
    assert await client.read(kept.blob_id) == blob_bytes(5, 50_000)

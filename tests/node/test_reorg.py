"""Nodes follow the chain through reorganisations (walrus-system.md 3.3, node/events.py).

The fake chain's `snapshot`/`revert` act as `evm_snapshot`/`evm_revert`: the blocks mined since
the snapshot disappear and the next blocks get new hashes at the same heights. A node that had
applied events of the lost blocks takes them back (its records and its cursor) and applies the
new chain's events, also across a restart; a reorganisation deeper than its undo window is
counted and logged, and the node keeps going.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from tests.node.cluster import Cluster, blob_data, metric, node_config, open_cluster, runs
from walruspy.core.blob_id import BlobId
from walruspy.core.types import ShardIndex, SliverPairIndex, SliverType, pair_of_shard
from walruspy.node_api import errors
from walruspy.node_api.schemas import Deletable, Nonexistent, Permanent


async def wait_at_chain_tip(cluster: Cluster) -> None:
    """Wait until every running node has applied the chain's last event, of this fork."""
    last = cluster.chain.events_log[-1].event_id
    async with asyncio.timeout(30):
        for node in cluster.nodes:
            if node.task is None:
                continue
            processor = runs(node).processor
            while not (  # noqa: ASYNC110 - the processor's state, polled
                processor.progress is not None
                and processor.progress.position == (last.block_number, last.log_index)
                and processor.block_hash == last.block_hash
            ):
                await asyncio.sleep(0.01)


async def test_registrations_of_lost_blocks_are_taken_back(tmp_path: Path) -> None:
    async with open_cluster(tmp_path, (6, 4)) as cluster:
        kept, _ = await cluster.store_blob(blob_data(1, 2_000))
        before = cluster.chain.snapshot()
        lost, _ = await cluster.store_blob(blob_data(2, 3_000))
        lost_id = lost.metadata.blob_id
        client = cluster.client(cluster.nodes[0])
        assert isinstance(await client.blob_status(lost_id), Permanent)
        # One node is down while the chain reorganises: it takes the blocks back at start.
        await cluster.stop(cluster.nodes[1])
        cluster.chain.revert(before)
        await wait_at_chain_tip(cluster)
        other, _ = await cluster.store_blob(blob_data(3, 1_000), certify=False)
        await cluster.start(cluster.nodes[1])
        await wait_at_chain_tip(cluster)
        for node in cluster.nodes:
            client = cluster.client(node)
            assert isinstance(await client.blob_status(lost_id), Nonexistent)
            with pytest.raises(errors.MetadataNotFoundError):
                await client.get_metadata(lost_id, cluster.n_shards)
            status = await client.blob_status(other.metadata.blob_id)
            assert isinstance(status, Permanent) and not status.is_certified
            status = await client.blob_status(kept.metadata.blob_id)
            assert isinstance(status, Permanent) and status.is_certified
            assert metric(node, "events_undone") >= 2
        # The lost blob registered and certified again on the new chain: the slivers the node
        # kept are served again without a new upload.
        object_id = cluster.chain.register(lost_id, 3_000)
        cluster.chain.certify(object_id)
        await wait_at_chain_tip(cluster)
        node = cluster.nodes[0]
        shard = ShardIndex(node.shards[0])
        pair = SliverPairIndex(pair_of_shard(shard, lost_id.raw, cluster.n_shards))
        got = await cluster.client(node).get_sliver(lost.metadata, pair, SliverType.PRIMARY)
        assert got.sliver == lost.sliver(pair, SliverType.PRIMARY).sliver


async def test_a_deletion_of_lost_blocks_is_taken_back(tmp_path: Path) -> None:
    async with open_cluster(tmp_path, (10,)) as cluster:
        encoded, object_id = await cluster.store_blob(blob_data(4, 1_500), deletable=True)
        blob_id = encoded.metadata.blob_id
        client = cluster.client(cluster.nodes[0])
        before = cluster.chain.snapshot()
        cluster.chain.delete(object_id)
        await wait_at_chain_tip(cluster)
        assert isinstance(await client.blob_status(blob_id), Nonexistent)
        cluster.chain.revert(before)  # no new block: the node notices on its next read
        await wait_at_chain_tip(cluster)
        status = await client.blob_status(blob_id)
        assert (
            isinstance(status, Deletable) and status.deletable_counts.count_deletable_certified == 1
        )
        assert metric(cluster.nodes[0], "events_undone") == 1


async def test_a_reorganisation_deeper_than_the_window_is_counted(tmp_path: Path) -> None:
    chain = replace(node_config(tmp_path).chain, reorg_window_blocks=0)
    async with open_cluster(tmp_path, (10,), chain=chain) as cluster:
        before = cluster.chain.snapshot()
        for seed in range(3):  # three blocks; only the last one's undo record is kept
            await cluster.store_blob(blob_data(10 + seed, 500), certify=False)
        node = cluster.nodes[0]
        cluster.chain.revert(before)
        async with asyncio.timeout(30):
            while metric(node, "reorg_too_deep") < 1:  # noqa: ASYNC110 - a counter
                await asyncio.sleep(0.01)
        assert metric(node, "events_undone") == 1
        # The node reads on from its cursor: events past it are applied (those before it are
        # not: that is what the error log says).
        blob_ids = [blob_data(20 + seed, 32) for seed in range(4)]
        for raw in blob_ids:
            cluster.chain.register(BlobId(raw))
        await wait_at_chain_tip(cluster)
        status = await cluster.client(node).blob_status(BlobId(blob_ids[-1]))
        assert isinstance(status, Permanent)
        assert node.task is not None and not node.task.done()

"""Shards change hands with the committee: in-process nodes over the fake chain.

A new member's gained shards are filled by shard sync from their previous owners (not by
recovery), the lost ones are locked and then deleted, EpochChangeDone follows the new committee's
reports; a sync killed mid-way resumes after its last stored batch; an unreachable source falls
back to recovery; a node away for three epochs catches up and holds exactly what it owns now.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from tests.node.cluster import (
    Cluster,
    ClusterNode,
    blob_data,
    metric,
    open_cluster,
    reassign,
    runs,
)
from walruspy.core.encoding import EncodedBlob
from walruspy.core.types import ShardIndex, SliverPairIndex, SliverType, pair_of_shard
from walruspy.node.config import ShardSyncConfig
from walruspy.node.store import NodeStore
from walruspy.node.store_records import NodeStatusKind, ShardStatus

N_SHARDS = 20


def holds(store: NodeStore, encoded: EncodedBlob, shard: int) -> bool:
    """Whether `store` has both slivers of `encoded` on `shard`, equal to the encoder's."""
    blob_id = encoded.metadata.blob_id
    pair = pair_of_shard(ShardIndex(shard), blob_id.raw, encoded.n_shards)
    for sliver_type in SliverType:
        stored = store.get_sliver(shard, sliver_type, blob_id.raw)
        if stored != encoded.sliver(SliverPairIndex(pair), sliver_type).sliver.to_bcs():
            return False
    return True


async def change_committee(cluster: Cluster, layout: Sequence[Sequence[int]]) -> None:
    """Start the next epoch with `layout` and wait for its EpochChangeDone."""
    cluster.chain.next_epoch(reassign(cluster, layout))
    async with asyncio.timeout(60):
        await cluster.chain.wait_change_done()
    running = [n for n in cluster.nodes if n.task is not None]
    await cluster.wait_for_events(running)
    for node in running:
        await wait_complete(node)


async def wait_complete(node: ClusterNode) -> None:
    """Wait until `node` holds every shard it owns in the current epoch."""
    async with asyncio.timeout(60):
        await runs(node).reporter.shards_complete.wait()


@contextlib.asynccontextmanager
async def five_nodes(tmp_path: Path, config: ShardSyncConfig) -> AsyncIterator[Cluster]:
    """Five running nodes; node 4 is outside the first committee (`FIRST`)."""
    async with open_cluster(tmp_path, (4, 4, 4, 4, 4), start=False, shard_sync=config) as c:
        c.chain.members = tuple(reassign(c, FIRST))
        for node in c.nodes:
            await c.start(node)
        yield c


async def store_blobs(cluster: Cluster, count: int) -> list[EncodedBlob]:
    blobs = []
    for i in range(count):
        encoded, _ = await cluster.store_blob(blob_data(i, 3_000 + 7_000 * i), epochs_ahead=20)
        blobs.append(encoded)
    return blobs


def fast_sync(**overrides: Any) -> ShardSyncConfig:
    settings: dict[str, Any] = {"retry_min_backoff_s": 0.05, "retry_max_backoff_s": 0.2}
    settings.update(overrides)
    return ShardSyncConfig(**settings)


# Four members of five shards; node 4 is not in the first committee.
FIRST = [range(0, 5), range(5, 10), range(10, 15), range(15, 20), ()]


async def test_a_joining_node_syncs_its_shards_and_the_leaver_locks_then_deletes(
    tmp_path: Path,
) -> None:
    async with five_nodes(tmp_path, fast_sync()) as c:
        blobs = await store_blobs(c, 5)
        joiner, leaver = c.nodes[4], c.nodes[3]
        assert runs(joiner).service.state.view.owned_shards == frozenset()
        # Node 4 takes 3 shards of node 0 and 2 of node 1; node 3 leaves, node 2 takes its shards.
        second = [[0, 1], [5, 6, 7], [10, 11, 12, 13, 14, 15, 16, 17, 18, 19], [], [2, 3, 4, 8, 9]]
        await change_committee(c, second)

        store = runs(joiner).store
        for encoded in blobs:
            for shard in second[4]:
                assert holds(store, encoded, shard), (shard, encoded.metadata.blob_id)
            for shard in second[2]:
                assert holds(runs(c.nodes[2]).store, encoded, shard)
        assert {s: store.shard_status(s) for s in second[4]} == dict.fromkeys(
            second[4], ShardStatus.ACTIVE
        )
        # Filled by transfer, not by recovery: 5 shards x 2 axes x 5 blobs slivers moved.
        moved = metric(joiner, "shard_sync_slivers", type="primary") + metric(
            joiner, "shard_sync_slivers", type="secondary"
        )
        assert moved == 5 * 2 * len(blobs)
        assert metric(joiner, "slivers_recovered", type="primary") == 0
        assert metric(joiner, "slivers_recovered", type="secondary") == 0
        assert metric(joiner, "shard_syncs", outcome="synced") == 5
        # The leaver keeps its shards locked (still readable) through this epoch.
        leaver_store = runs(leaver).store
        assert {leaver_store.shard_status(s) for s in FIRST[3]} == {ShardStatus.LOCKED_TO_MOVE}
        assert runs(leaver).store.node_status().kind is NodeStatusKind.STANDBY
        assert runs(joiner).store.node_status().kind is NodeStatusKind.ACTIVE

        # One more epoch with the same committee: no committee of the last two gives node 3 its
        # old shards any more, so they go.
        await change_committee(c, second)
        assert leaver_store.shards() == {}
        assert (
            leaver_store.get_sliver(15, SliverType.PRIMARY, blobs[0].metadata.blob_id.raw) is None
        )


async def test_a_sync_killed_mid_way_resumes_after_its_last_stored_batch(tmp_path: Path) -> None:
    config = fast_sync(batch_size=1)
    async with five_nodes(tmp_path, config) as c:
        blobs = await store_blobs(c, 4)
        joiner = c.nodes[4]
        stored_batches = 0
        crashed = asyncio.Event()
        original = NodeStore.put_synced_slivers

        def crash_after_three(self: NodeStore, *args: Any) -> list[bytes]:
            nonlocal stored_batches
            if self is runs(joiner).store and not crashed.is_set():
                if stored_batches == 3:
                    crashed.set()
                    raise RuntimeError("simulated crash before the fourth batch")
                stored_batches += 1
            return original(self, *args)

        NodeStore.put_synced_slivers = crash_after_three  # type: ignore[method-assign]
        try:
            second = [
                [0, 1, 2, 3, 4],
                [5, 6, 7, 8, 9],
                [10, 11, 12, 13, 14],
                [15, 16, 17, 18],
                [19],
            ]
            c.chain.next_epoch(reassign(c, second))
            async with asyncio.timeout(30):
                await crashed.wait()
            task = joiner.task
            assert task is not None
            await asyncio.wait([task])  # the node stopped on the crash
            assert isinstance(task.exception(), BaseExceptionGroup)
            joiner.task = None
        finally:
            NodeStore.put_synced_slivers = original  # type: ignore[method-assign]
        await c.start(joiner)
        async with asyncio.timeout(60):
            await c.chain.wait_change_done()
        await wait_complete(joiner)
        store = runs(joiner).store
        for encoded in blobs:
            assert holds(store, encoded, 19)
        # The restarted node fetched only what the first run had not stored: 2 axes x 4 blobs
        # slivers in all, 3 of them by the first run.
        moved = metric(joiner, "shard_sync_slivers", type="primary") + metric(
            joiner, "shard_sync_slivers", type="secondary"
        )
        assert moved == 2 * len(blobs) - 3


async def test_an_unreachable_source_falls_back_to_recovery(tmp_path: Path) -> None:
    config = fast_sync(retry_window_s=0.5)
    async with five_nodes(tmp_path, config) as c:
        blobs = await store_blobs(c, 3)
        joiner, source = c.nodes[4], c.nodes[0]
        await c.stop(source)  # node 0 is gone for good
        second = [[0, 1], [5, 6, 7, 8, 9], [10, 11, 12, 13, 14], [15, 16, 17, 18, 19], [2, 3, 4]]
        c.chain.next_epoch(reassign(c, second))
        async with asyncio.timeout(60):
            await c.chain.wait_change_done()
        await wait_complete(joiner)
        store = runs(joiner).store
        for encoded in blobs:
            for shard in second[4]:
                assert holds(store, encoded, shard)
        assert metric(joiner, "shard_syncs", outcome="fell_back") == 3
        assert metric(joiner, "slivers_recovered", type="primary") == 3 * len(blobs)
        assert {store.shard_status(s) for s in second[4]} == {ShardStatus.ACTIVE}


async def test_a_node_away_for_three_epochs_catches_up_to_exactly_its_shards(
    tmp_path: Path,
) -> None:
    config = fast_sync(retry_window_s=0.5)  # node 4 asks the absent node 1 for shards 5..9
    async with five_nodes(tmp_path, config) as c:
        blobs = await store_blobs(c, 3)
        away = c.nodes[1]
        await c.stop(away)
        # Three epochs without node 1: node 4 takes its shards, then node 1 comes back with
        # other ones. Its shards of the first committee are nobody's business of it any more.
        layouts = [
            [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11, 12, 13, 14], [15, 16, 17, 18, 19], []],
            [[0, 1, 2, 3, 4], [], [10, 11, 12, 13, 14], [15, 16, 17, 18, 19], [5, 6, 7, 8, 9]],
            [[0, 1, 2, 3], [], [10, 11, 12, 13], [15, 16, 17, 18, 19], [5, 6, 7, 8, 9, 4, 14]],
            [[0, 1, 2], [3, 13], [10, 11, 12], [15, 16, 17, 18, 19], [4, 5, 6, 7, 8, 9, 14]],
        ]
        for layout in layouts[:3]:
            # Without node 1 the others still hold a quorum of shards to report.
            c.chain.next_epoch(reassign(c, layout))
            async with asyncio.timeout(60):
                await c.chain.wait_change_done()
        c.chain.next_epoch(reassign(c, layouts[3]))
        await asyncio.sleep(0.2)
        await c.start(away)
        async with asyncio.timeout(60):
            await c.chain.wait_change_done()
        await wait_complete(away)
        store = runs(away).store
        assert store.shards() == {3: ShardStatus.ACTIVE, 13: ShardStatus.ACTIVE}
        for encoded in blobs:
            assert holds(store, encoded, 3) and holds(store, encoded, 13)
        health = await c.client(away).health(detailed=True)
        assert health.node_status == "Active"
        assert health.shard_summary.owned == 2

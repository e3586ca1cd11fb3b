"""The node across restarts, chain outages and epoch changes.

Durability: acknowledged slivers survive a restart and still verify; the event cursor neither
skips nor repeats across restarts (counted per event kind by the fresh node's metrics). Chain
outages only delay event processing. The epoch driver advances the epoch once its time has
passed, and losing the race to another node is normal. Garbage collection removes expired data
but keeps what is still paid for.
"""

from __future__ import annotations

import asyncio
import random
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.node.cluster import ClusterNode, blob_data, open_cluster
from tests.node.fakes import FakeChain
from walruspy.chain.api import ChainRevertError
from walruspy.core.blob_id import BlobId
from walruspy.core.slivers import SliverData
from walruspy.core.types import ShardIndex, SliverPairIndex, SliverType, pair_of_shard
from walruspy.node.config import EpochConfig
from walruspy.node.epoch import EpochChangeDriver
from walruspy.node.metrics import NodeMetrics
from walruspy.node.store_records import ValidBlobInfo
from walruspy.node_api import errors
from walruspy.node_api.schemas import Nonexistent, Permanent, StoredOnNodeStatus


def processed(node: ClusterNode) -> float:
    assert node.node is not None and node.node.service is not None
    registry = node.node.service.metrics.registry
    return sum(
        sample.value
        for family in registry.collect()
        if family.name == "walrus_events_processed"
        for sample in family.samples
        if sample.name.endswith("_total")
    )


async def test_acknowledged_slivers_and_the_cursor_survive_restarts(tmp_path: Path) -> None:
    async with open_cluster(tmp_path, (6, 4)) as cluster:
        node = cluster.nodes[0]
        encoded, _ = await cluster.store_blob(blob_data(1, 30_000))
        applied = cluster.chain.event_count
        await cluster.stop(node)
        # Events the node has not seen yet.
        cluster.chain.register(encoded.metadata.blob_id, epochs_ahead=9)
        cluster.chain.invalidate(BlobId(b"\x01" * 32))
        await cluster.start(node)
        await cluster.wait_for_events()
        assert node.node is not None and node.node.processor is not None
        assert node.node.processor.events_applied == cluster.chain.event_count
        assert processed(node) == cluster.chain.event_count - applied  # no event twice
        client = cluster.client(node)
        blob_id = encoded.metadata.blob_id
        for shard in node.shards:
            pair = SliverPairIndex(pair_of_shard(ShardIndex(shard), blob_id.raw, 10))
            for sliver_type in SliverType:
                got = await client.get_sliver(encoded.metadata, pair, sliver_type)
                assert got.sliver == encoded.sliver(pair, sliver_type).sliver
        # The certified object wins the status; the new registration is counted behind it.
        status = await client.blob_status(blob_id)
        assert isinstance(status, Permanent) and status.is_certified and status.end_epoch == 6
        assert node.node.store is not None
        info = node.node.store.get_blob_info(blob_id.raw)
        assert isinstance(info, ValidBlobInfo) and info.permanent_total is not None
        assert (info.permanent_total.count, info.permanent_total.end_epoch) == (2, 10)
        # A second restart without new events applies nothing.
        await cluster.restart(node)
        assert processed(node) == 0
        assert node.node.processor is not None
        assert node.node.processor.events_applied == cluster.chain.event_count


async def test_chain_outage_delays_but_does_not_lose_events(tmp_path: Path) -> None:
    async with open_cluster(tmp_path, (10,)) as cluster:
        cluster.chain.fail_reads = 5
        encoded, _ = await cluster.store_blob(blob_data(2, 500), certify=False)
        await cluster.wait_for_events()
        status = await cluster.client(cluster.nodes[0]).blob_status(encoded.metadata.blob_id)
        assert isinstance(status, Permanent)


async def test_garbage_collection_keeps_live_and_drops_expired(tmp_path: Path) -> None:
    async with open_cluster(tmp_path, (10,)) as cluster:
        client = cluster.client(cluster.nodes[0])
        short, _ = await cluster.store_blob(blob_data(3, 700), epochs_ahead=1)
        long, _ = await cluster.store_blob(blob_data(4, 700), epochs_ahead=3)
        deletable, object_id = await cluster.store_blob(blob_data(5, 700), deletable=True)
        cluster.chain.delete(object_id)
        cluster.chain.next_epoch()
        await cluster.wait_for_events()
        assert await client.metadata_status(short.metadata.blob_id) is (
            StoredOnNodeStatus.NONEXISTENT
        )
        assert await client.metadata_status(deletable.metadata.blob_id) is (
            StoredOnNodeStatus.NONEXISTENT
        )
        assert await client.metadata_status(long.metadata.blob_id) is StoredOnNodeStatus.STORED
        node = cluster.nodes[0].node
        assert node is not None and node.store is not None
        assert node.store.gc_progress().last_completed_epoch == 2
        # The per-object records of the expired and deleted objects are gone too.
        assert len(node.store.list_per_object_blob_infos()) == 1
        assert node.store.get_blob_info(short.metadata.blob_id.raw) is None
        cluster.chain.next_epoch()
        cluster.chain.next_epoch()
        await cluster.wait_for_events()
        assert isinstance(await client.blob_status(long.metadata.blob_id), Nonexistent)
        assert not node.store.list_metadata_blob_ids()


async def test_a_sliver_verified_while_gc_collects_its_blob_is_not_left_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The upload checked the registration, then GC of the expired blob ran during the check."""
    async with open_cluster(tmp_path, (10,)) as cluster:
        node = cluster.nodes[0].node
        assert node is not None and node.store is not None
        client = cluster.client(cluster.nodes[0])
        encoded, _ = await cluster.store_blob(blob_data(7, 900), certify=False, epochs_ahead=1)
        blob_id = encoded.metadata.blob_id
        shard = ShardIndex(4)
        pair = SliverPairIndex(pair_of_shard(shard, blob_id.raw, cluster.n_shards))
        # Take the blob's data away again so that the upload below is a new one.
        node.store.delete_blob_data([blob_id.raw])
        await client.put_metadata(encoded.metadata)
        in_check, go_on = threading.Event(), threading.Event()
        honest_verify = SliverData.verify

        def held_verify(self: SliverData, metadata: Any) -> Any:
            in_check.set()
            go_on.wait(10)
            return honest_verify(self, metadata)

        monkeypatch.setattr(SliverData, "verify", held_verify)
        sliver = encoded.sliver(pair, SliverType.PRIMARY)
        upload = asyncio.create_task(client.put_sliver(blob_id, pair, sliver))
        assert await asyncio.to_thread(in_check.wait, 10)
        cluster.chain.next_epoch()  # the blob expires; GC deletes its data
        await cluster.wait_for_events()
        assert not node.store.has_metadata(blob_id.raw)
        go_on.set()
        with pytest.raises(errors.NotRegisteredError, match="no longer stored here"):
            await upload
        assert not node.store.has_sliver(shard, SliverType.PRIMARY, blob_id.raw)


async def test_immediate_deletion_removes_data_with_the_last_registration(tmp_path: Path) -> None:
    epoch = EpochConfig(drive_epoch_change=False, enable_immediate_data_deletion=True)
    async with open_cluster(tmp_path, (10,), epoch=epoch) as cluster:
        client = cluster.client(cluster.nodes[0])
        encoded, object_id = await cluster.store_blob(blob_data(6, 300), deletable=True)
        assert await client.metadata_status(encoded.metadata.blob_id) is StoredOnNodeStatus.STORED
        cluster.chain.delete(object_id)
        await cluster.wait_for_events()
        status = await client.metadata_status(encoded.metadata.blob_id)
        assert status is StoredOnNodeStatus.NONEXISTENT


# --- the epoch driver ----------------------------------------------------------------------


def driver(chain: FakeChain, jitter_s: float = 0.0) -> tuple[EpochChangeDriver, NodeMetrics]:
    metrics = NodeMetrics()
    config = EpochConfig(check_interval_s=0.01, max_jitter_s=jitter_s)
    return (
        EpochChangeDriver(chain, config, metrics, clock=lambda: 0.0, rng=random.Random(1)),
        metrics,
    )


async def test_driver_advances_once_the_epoch_is_over() -> None:
    chain = FakeChain([], 10, epoch_duration_s=100)
    first, metrics = driver(chain)
    second, other_metrics = driver(chain, jitter_s=0.02)
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(first.run()), group.create_task(second.run())]
        await asyncio.sleep(0.05)
        assert chain.epoch == 1 and chain.advance_calls == 0
        chain.advance_time(100)
        async with asyncio.timeout(5):
            await chain.wait_for_epoch(2)
        await asyncio.sleep(0.05)
        for task in tasks:
            task.cancel()
    assert chain.epoch == 2  # the other node's call found nothing to do
    advanced = [
        m.registry.get_sample_value("walrus_epoch_change_calls_total", {"outcome": "advanced"})
        for m in (metrics, other_metrics)
    ]
    assert sorted(a or 0.0 for a in advanced) == [0.0, 1.0]


class RevertingChain(FakeChain):
    async def advance_epoch(self) -> bool:
        self.advance_calls += 1
        raise ChainRevertError("epoch already advanced", "advance_epoch")


async def test_a_lost_race_is_not_an_error() -> None:
    chain = RevertingChain([], 10, epoch_duration_s=10)
    chain.advance_time(10)
    d, metrics = driver(chain)
    assert not await d.try_advance()
    assert (
        metrics.registry.get_sample_value(
            "walrus_epoch_change_calls_total", {"outcome": "lost_race"}
        )
        == 1.0
    )


async def test_driver_survives_an_unreachable_chain() -> None:
    chain = FakeChain([], 10, epoch_duration_s=10)
    chain.advance_time(10)
    chain.fail_reads = 3
    d, _ = driver(chain)
    d.backoff_s = (0.001, 0.01)
    task = asyncio.create_task(d.run())
    try:
        async with asyncio.timeout(5):
            await chain.wait_for_epoch(2)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert chain.epoch == 2

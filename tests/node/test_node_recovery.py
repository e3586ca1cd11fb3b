"""Blob sync with several in-process nodes: a node that missed a blob recovers it.

Four nodes hold 1, 2, 3 and 4 of 10 shards (f = 3). Scenarios: a node down while a blob is
certified recovers it when it comes back; a node whose data dir was wiped recovers everything by
replaying the chain's events; a node serving corrupted symbols is detected and does not stop the
recovery; a blob encoded inconsistently yields an inconsistency proof, never data; a sync lost
in a crash (queued, not run) is found again by the start-up scan.
"""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

from tests.node.cluster import Cluster, ClusterNode, blob_data, node_config, open_cluster
from walruspy.core.blob_id import BlobId
from walruspy.core.encoding import EncodedBlob
from walruspy.core.symbols import symbols_from_bcs, symbols_to_bcs
from walruspy.core.types import ShardIndex, SliverPairIndex, SliverType, pair_of_shard
from walruspy.node.config import ApiLimits
from walruspy.node.store import NodeStore
from walruspy.node.symbols import SymbolService
from walruspy.node_api.paths import RecoverySymbolsFilter
from walruspy.sim.forgery import tampered_encoding

SHARDS = (1, 2, 3, 4)


def store_of(node: ClusterNode) -> NodeStore:
    assert node.node is not None and node.node.store is not None
    return node.node.store


def assert_holds(node: ClusterNode, encoded: EncodedBlob) -> None:
    """The node stores the metadata and exactly the original slivers of all its shards."""
    store = store_of(node)
    blob_id = encoded.metadata.blob_id
    assert store.has_metadata(blob_id.raw)
    for shard in node.shards:
        pair = SliverPairIndex(pair_of_shard(ShardIndex(shard), blob_id.raw, encoded.n_shards))
        for sliver_type in SliverType:
            stored = store.get_sliver(shard, sliver_type, blob_id.raw)
            assert stored == encoded.sliver(pair, sliver_type).sliver.to_bcs(), (shard, sliver_type)


def metric(node: ClusterNode, name: str, labels: dict[str, str] | None = None) -> float:
    assert node.node is not None and node.node.service is not None
    value = node.node.service.metrics.registry.get_sample_value(name, labels or {})
    return value or 0.0


async def store_while_down(cluster: Cluster, down: ClusterNode, seed: int) -> EncodedBlob:
    await cluster.stop(down)
    up = [n for n in cluster.nodes if n is not down]
    encoded, _ = await cluster.store_blob(blob_data(seed, 20_000), nodes=up)
    return encoded


async def test_a_node_down_during_certification_recovers_the_blob(tmp_path: Path) -> None:
    async with open_cluster(tmp_path, SHARDS) as cluster:
        down = cluster.nodes[2]
        encoded = await store_while_down(cluster, down, 1)
        await cluster.start(down)
        await cluster.wait_for_events()
        await cluster.wait_syncs_idle()
        assert_holds(down, encoded)
        assert metric(down, "walrus_recover_blob_total", {"outcome": "recovered"}) == 1
        # Recovery downloads a fraction of the blob per sliver pair, not the blob.
        downloaded = metric(down, "walrus_recovery_bytes_downloaded_total")
        assert 0 < downloaded < len(down.shards) * 20_000
        # And the node now confirms the blob like the others.
        signed = await cluster.client(down).get_confirmation(encoded.metadata.blob_id)
        assert signed.serialized_message


class _NoShuffle(random.Random):
    """Keeps peers in committee order, so the liar (member 1) is asked first."""

    def shuffle(self, x: object, random: object = None) -> None:
        return None


async def test_a_lying_node_is_detected_and_skipped(tmp_path: Path) -> None:
    async with open_cluster(tmp_path, SHARDS, liars=(1,)) as cluster:
        recovering = cluster.nodes[0]
        recovering.rng = _NoShuffle(0)
        recovering.config = replace(
            recovering.config,
            blob_recovery=replace(recovering.config.blob_recovery, max_concurrent_requests=1),
        )
        encoded = await store_while_down(cluster, recovering, 2)
        await cluster.start(recovering)
        await cluster.wait_for_events()
        await cluster.wait_syncs_idle()
        assert_holds(recovering, encoded)
        assert (
            metric(recovering, "walrus_recovery_faulty_responses_total", {"kind": "invalid"}) >= 1
        )


async def test_a_wiped_node_recovers_everything_from_the_event_stream(tmp_path: Path) -> None:
    async with open_cluster(tmp_path, SHARDS, liars=(0,)) as cluster:
        blobs = [(await cluster.store_blob(blob_data(10 + i, 3000 * (i + 1))))[0] for i in range(3)]
        wiped = cluster.nodes[1]
        await cluster.restart(wiped, wipe=True)
        assert store_of(wiped).event_cursor() is not None  # it replayed the whole stream
        await cluster.wait_for_events()
        await cluster.wait_syncs_idle()
        for encoded in blobs:
            assert_holds(wiped, encoded)


async def test_an_inconsistent_blob_yields_a_proof_not_data(tmp_path: Path) -> None:
    async with open_cluster(tmp_path, SHARDS) as cluster:
        data = blob_data(20, 5000)
        honest, metadata, fake = tampered_encoding(data, 10, 0, b"evil")
        blob_id = metadata.blob_id
        owner = next(
            n
            for n in cluster.nodes
            if any(pair_of_shard(ShardIndex(s), blob_id.raw, 10) == 0 for s in n.shards)
        )
        await cluster.stop(owner)
        object_id = cluster.chain.register(blob_id, len(data))
        await cluster.wait_for_events()
        for node in cluster.nodes:
            if node is owner:
                continue
            client = cluster.client(node)
            await client.put_metadata(metadata)
            for shard in node.shards:
                pair = SliverPairIndex(pair_of_shard(ShardIndex(shard), blob_id.raw, 10))
                for sliver_type in SliverType:
                    sliver = honest.sliver(pair, sliver_type).sliver
                    await client.put_sliver(blob_id, pair, sliver)
        cluster.chain.certify(object_id)
        await cluster.wait_for_events()
        await cluster.start(owner)
        await cluster.wait_for_events()
        await cluster.wait_syncs_idle()
        assert owner.node is not None and owner.node.syncer is not None
        proof = owner.node.syncer.inconsistency_proofs[blob_id.raw]
        proof.verify(metadata)
        shard = next(s for s in owner.shards if pair_of_shard(ShardIndex(s), blob_id.raw, 10) == 0)
        assert store_of(owner).get_sliver(shard, SliverType.PRIMARY, blob_id.raw) is None
        assert metric(owner, "walrus_recover_blob_total", {"outcome": "inconsistent"}) == 1
        # The forged sliver the writer committed to is not what the honest symbols decode to.
        assert proof.target_index == fake.index


async def test_the_start_up_scan_finds_a_sync_lost_in_a_crash(tmp_path: Path) -> None:
    async with open_cluster(tmp_path, SHARDS) as cluster:
        lagging = cluster.nodes[3]
        slow = replace(lagging.config.blob_recovery, live_upload_deferral_s=3600.0)
        lagging.config = replace(lagging.config, blob_recovery=slow)
        await cluster.restart(lagging)
        up = [n for n in cluster.nodes if n is not lagging]
        encoded, _ = await cluster.store_blob(blob_data(30, 8000), nodes=up)
        assert_missing = store_of(lagging).has_metadata(encoded.metadata.blob_id.raw)
        assert not assert_missing  # the sync is queued behind its one-hour deferral
        lagging.config = replace(
            lagging.config, blob_recovery=replace(slow, live_upload_deferral_s=0.0)
        )
        await cluster.restart(lagging)  # the queue is gone; the events are not replayed
        await cluster.wait_syncs_idle()
        assert_holds(lagging, encoded)


async def test_deleting_a_blob_cancels_its_queued_sync(tmp_path: Path) -> None:
    async with open_cluster(tmp_path, SHARDS) as cluster:
        lagging = cluster.nodes[0]
        slow = replace(lagging.config.blob_recovery, live_upload_deferral_s=3600.0)
        lagging.config = replace(lagging.config, blob_recovery=slow)
        await cluster.restart(lagging)
        up = [n for n in cluster.nodes if n is not lagging]
        encoded, object_id = await cluster.store_blob(blob_data(40, 1000), nodes=up, deletable=True)
        assert lagging.node is not None and lagging.node.syncer is not None
        assert lagging.node.syncer.backlog == 1
        cluster.chain.delete(object_id)
        await cluster.wait_for_events()
        assert lagging.node.syncer.backlog == 0
        assert not store_of(lagging).has_metadata(encoded.metadata.blob_id.raw)


async def test_a_sync_that_gives_up_fails_alone_and_the_node_runs_on(tmp_path: Path) -> None:
    """Too few peers hold the blob: the sync gives up after its rounds, is queued again
    `sync_retries` times, then waits for the scan; the node keeps serving."""
    recovery = replace(node_config(tmp_path).blob_recovery, max_attempts=2, sync_retries=2)
    async with open_cluster(tmp_path, SHARDS, blob_recovery=recovery) as cluster:
        # Only the node with 1 shard gets the data: too few symbols for anyone to recover.
        holder, others = cluster.nodes[0], cluster.nodes[1:]
        encoded, _ = await cluster.store_blob(blob_data(9, 5_000), nodes=[holder])
        await cluster.wait_syncs_idle()
        for node in others:
            assert metric(node, "walrus_recover_blob_total", {"outcome": "failed"}) == 1 + 2
            assert node.task is not None and not node.task.done(), "the node stopped"
        # The nodes still serve, and a later store is recovered as usual.
        assert (await cluster.client(others[0]).health()).epoch == 1
        assert not store_of(others[0]).has_sliver(
            others[0].shards[0], SliverType.SECONDARY, encoded.metadata.blob_id.raw
        )


class PartlyRottenSymbols(SymbolService):
    """Answers with the first symbol of each answer corrupted, the others intact."""

    async def recovery_symbols(
        self, blob_id: BlobId, symbols_filter: RecoverySymbolsFilter
    ) -> bytes:
        symbols = symbols_from_bcs(await super().recovery_symbols(blob_id, symbols_filter))
        first = symbols[0]
        symbols[0] = replace(first, data=bytes([first.data[0] ^ 0xFF]) + first.data[1:])
        return symbols_to_bcs(symbols)


async def test_recovery_converges_with_f_rotten_peers_and_the_rest_rate_limiting(
    tmp_path: Path,
) -> None:
    """Node 2 (3 shards = f) serves one bad symbol per answer; every node serves one symbol
    request at a time (503 beyond). Node 0 comes back to twelve blobs and recovers all of them:
    it keeps the good symbols of the bad answers, waits out the 503s, and retries a sync that
    gave up at once rather than at the next scan."""
    limits = ApiLimits(max_concurrent_symbol_requests=1)
    async with open_cluster(tmp_path, SHARDS, limits=limits) as cluster:
        rotten = cluster.nodes[2]
        assert rotten.node is not None and rotten.node.api is not None
        assert rotten.node.service is not None
        rotten.node.api.symbols = PartlyRottenSymbols(rotten.node.service, 1)
        recovering = cluster.nodes[0]
        recovering.config = replace(
            recovering.config,
            blob_recovery=replace(
                recovering.config.blob_recovery, max_attempts=2, rescan_interval_s=3600.0
            ),
        )
        await cluster.stop(recovering)
        up = cluster.nodes[1:]
        blobs = [
            (await cluster.store_blob(blob_data(40 + i, 8_000 * (i + 1)), nodes=up))[0]
            for i in range(12)
        ]
        await cluster.start(recovering)
        await cluster.wait_for_events()
        await cluster.wait_syncs_idle()
        for encoded in blobs:
            assert_holds(recovering, encoded)
        assert (
            metric(recovering, "walrus_recovery_faulty_responses_total", {"kind": "invalid"}) >= 1
        )

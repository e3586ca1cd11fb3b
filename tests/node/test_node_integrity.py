"""Integrity at rest with in-process nodes: rotten records are never served or confirmed, and are
recovered from the peers; a damaged store is refused at start, or rebuilt from the peers.

Four nodes hold 1, 2, 3 and 4 of 10 shards (f = 3), as in test_node_recovery.py. Bytes are
flipped with raw LMDB access while the node is stopped (LMDB forbids a second environment on the
same files in one process), then the node is started again.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import aiohttp
import lmdb
import pytest
import yaml

from tests.node.cluster import Cluster, ClusterNode, blob_data, open_cluster
from tests.node.test_node_recovery import assert_holds, metric, store_of
from walruspy.core.encoding import EncodedBlob
from walruspy.core.types import ShardIndex, SliverPairIndex, SliverType, pair_of_shard
from walruspy.node.config import ScrubConfig
from walruspy.node.node import open_store
from walruspy.node.store import NodeStore, StoreConfig, shard_database_name
from walruspy.node.store_integrity import StoreDamagedError
from walruspy.node_api import errors as api_errors

SHARDS = (1, 2, 3, 4)
REPO = Path(__file__).resolve().parents[2]
#: A scrubber that only repairs what reads find (no background scan).
READS_ONLY = ScrubConfig(bytes_per_second=0)
#: A scrubber that scans the test's few megabytes many times a second.
FAST = ScrubConfig(bytes_per_second=1 << 30, pass_interval_s=0.05, save_interval_s=0.05)


def flip_byte(storage_path: Path, table: bytes, key: bytes, offset: int | None = None) -> None:
    """Flip one byte of the stored value `table[key]` (the node must be stopped)."""
    env = lmdb.open(str(storage_path), max_dbs=64)
    try:
        with env.begin(write=True) as txn:
            db = env.open_db(table, txn=txn, create=False)
            value = bytearray(txn.get(key, db=db))
            where = len(value) // 2 if offset is None else offset
            value[where] ^= 0x40
            txn.put(key, bytes(value), db=db)
    finally:
        env.close()


def sliver_address(encoded: EncodedBlob, shard: int) -> SliverPairIndex:
    pair = pair_of_shard(ShardIndex(shard), encoded.metadata.blob_id.raw, encoded.n_shards)
    return SliverPairIndex(pair)


async def restart_with(cluster: Cluster, node: ClusterNode, scrub: ScrubConfig) -> None:
    node.config = replace(node.config, scrub=scrub)
    await cluster.start(node)


async def wait_repaired(cluster: Cluster, node: ClusterNode, count: int) -> None:
    """Wait until the node counted `count` repairs (polling: a counter has no waiter)."""
    async with asyncio.timeout(60):
        while metric(node, "walrus_scrub_repaired_total") < count:
            await cluster.wait_syncs_idle()
            await asyncio.sleep(0.05)


async def test_a_flipped_sliver_is_not_served_and_is_recovered(tmp_path: Path) -> None:
    async with open_cluster(tmp_path, SHARDS) as cluster:
        encoded, _ = await cluster.store_blob(blob_data(1, 20_000))
        blob_id = encoded.metadata.blob_id
        node = cluster.nodes[2]
        shard = node.shards[0]
        await cluster.stop(node)
        flip_byte(node.storage_path, shard_database_name(shard, SliverType.PRIMARY), blob_id.raw)
        await restart_with(cluster, node, READS_ONLY)

        # Served as missing (404), never the bad bytes and never a 500.
        pair = sliver_address(encoded, shard)
        with pytest.raises(api_errors.SliverNotFoundError):
            await cluster.client(node).get_sliver(encoded.metadata, pair, SliverType.PRIMARY)
        await wait_repaired(cluster, node, 1)
        assert metric(node, "walrus_scrub_corrupt_records_total", {"kind": "primary"}) == 1
        assert_holds(node, encoded)
        sliver = await cluster.client(node).get_sliver(encoded.metadata, pair, SliverType.PRIMARY)
        assert sliver.sliver == encoded.sliver(pair, SliverType.PRIMARY).sliver


async def test_the_scrubber_finds_rot_nobody_reads_and_repairs_it(tmp_path: Path) -> None:
    async with open_cluster(tmp_path, SHARDS) as cluster:
        encoded, _ = await cluster.store_blob(blob_data(2, 20_000))
        blob_id = encoded.metadata.blob_id
        node = cluster.nodes[3]
        await cluster.stop(node)
        flipped = node.shards[:2]
        for shard in flipped:
            table = shard_database_name(shard, SliverType.SECONDARY)
            flip_byte(node.storage_path, table, blob_id.raw, offset=3)
        await restart_with(cluster, node, FAST)
        await wait_repaired(cluster, node, len(flipped))
        assert metric(node, "walrus_scrub_corrupt_records_total", {"kind": "secondary"}) == 2
        assert metric(node, "walrus_scrub_records_scanned_total") > 0
        assert_holds(node, encoded)
        # A later pass finds nothing more.
        assert node.node is not None and node.node.scrubber is not None
        await node.node.scrubber.wait_pass()
        assert metric(node, "walrus_scrub_corrupt_records_total", {"kind": "secondary"}) == 2


async def test_corrupt_metadata_is_no_500_no_confirmation_and_is_recovered(
    tmp_path: Path,
) -> None:
    async with open_cluster(tmp_path, SHARDS) as cluster:
        encoded, _ = await cluster.store_blob(blob_data(3, 20_000))
        blob_id = encoded.metadata.blob_id
        node = cluster.nodes[1]
        await cluster.stop(node)
        flip_byte(node.storage_path, b"metadata", blob_id.raw)
        await restart_with(cluster, node, READS_ONLY)

        with pytest.raises(api_errors.MissingSliversError):
            await cluster.client(node).get_confirmation(blob_id)
        assert metric(node, "walrus_storage_confirmations_issued_total") == 0
        await wait_repaired(cluster, node, 1)
        assert metric(node, "walrus_scrub_corrupt_records_total", {"kind": "metadata"}) == 1
        assert_holds(node, encoded)
        metadata = await cluster.client(node).get_metadata(blob_id, cluster.n_shards)
        assert metadata.metadata == encoded.metadata.metadata
        assert (await cluster.client(node).get_confirmation(blob_id)).serialized_message


async def test_a_corrupt_sliver_is_never_confirmed(tmp_path: Path) -> None:
    async with open_cluster(tmp_path, SHARDS) as cluster:
        encoded, _ = await cluster.store_blob(blob_data(4, 20_000))
        blob_id = encoded.metadata.blob_id
        node = cluster.nodes[0]
        await cluster.stop(node)
        table = shard_database_name(node.shards[0], SliverType.SECONDARY)
        flip_byte(node.storage_path, table, blob_id.raw)
        # Repairs are held back, so the refusal cannot race the recovery.
        node.config = replace(node.config, scrub=READS_ONLY)
        await cluster.start(node)
        runs = node.node
        assert runs is not None and runs.scrubber is not None

        async def no_repair(blob_id: bytes) -> None:
            return None

        runs.scrubber._repair = no_repair
        with pytest.raises(api_errors.MissingSliversError):
            await cluster.client(node).get_confirmation(blob_id)
        assert metric(node, "walrus_storage_confirmations_issued_total") == 0
        assert not store_of(node).has_sliver(node.shards[0], SliverType.SECONDARY, blob_id.raw)


async def test_a_truncated_store_is_refused_and_rebuilt_from_the_peers(tmp_path: Path) -> None:
    async with open_cluster(tmp_path, SHARDS) as cluster:
        blobs = [(await cluster.store_blob(blob_data(10 + i, 30_000)))[0] for i in range(3)]
        node = cluster.nodes[2]
        await cluster.stop(node)
        data_file = node.storage_path / "data.mdb"
        os.truncate(data_file, data_file.stat().st_size // 2)

        with pytest.raises(StoreDamagedError, match=r"data\.mdb is truncated.*--rebuild-store"):
            open_store(StoreConfig(node.storage_path))
        node.rebuild_store = True
        await cluster.start(node)
        await cluster.wait_for_events()
        await cluster.wait_syncs_idle()
        for encoded in blobs:
            assert_holds(node, encoded)
        kept = [name for name in os.listdir(tmp_path) if name.startswith("node2.damaged-")]
        assert len(kept) == 1 and "data.mdb" in os.listdir(tmp_path / kept[0])


def test_a_truncated_store_stops_the_process_with_one_clear_line(tmp_path: Path) -> None:
    storage = tmp_path / "db"
    with NodeStore.open(StoreConfig(storage)) as store:
        store.create_shard(0)
        store.put_metadata(bytes(32), b"m" * 100)
        store.put_slivers(
            0, SliverType.PRIMARY, [(bytes([i]) * 32, b"s" * 50_000) for i in range(8)]
        )
    data_file = storage / "data.mdb"
    os.truncate(data_file, 3 * 4096)
    config = tmp_path / "node.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "storage_path": str(storage),
                "protocol_key_path": "protocol.key",
                "wallet_key_path": "wallet.key",
                "chain": {"rpc_url": "http://127.0.0.1:1", "deployment_file": "deployment.json"},
            }
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "walruspy.node", "run", "--config", str(config)],
        capture_output=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )
    lines = done.stderr.decode().strip().splitlines()
    assert done.returncode == 1, done.stderr  # an error exit, not a signal (-7 or 135)
    assert len(lines) == 1, lines
    assert str(data_file.name) in lines[0] and "truncated" in lines[0], lines[0]
    assert "--rebuild-store" in lines[0]
    assert data_file.exists()  # nothing was moved or deleted without being asked


async def test_health_and_metrics_still_answer_after_repairs(tmp_path: Path) -> None:
    async with open_cluster(tmp_path, (10,)) as cluster:
        node = cluster.nodes[0]
        async with aiohttp.ClientSession() as session, session.get(f"{node.url}/metrics") as r:
            text = await r.text()
        assert "walrus_scrub_records_scanned_total" in text

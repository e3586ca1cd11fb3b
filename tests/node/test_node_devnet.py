"""Real node processes on the devchain: `python -m walruspy.node run --config FILE`.

Four nodes (3, 3, 2 and 2 of 10 shards) run as separate processes against the embedded EVM chain
(`walruspy chain serve`), deployed with their keys and addresses. A client registers blobs with
the EVM chain client, uploads through `NodeClient`, collects and verifies the confirmations,
aggregates them into a certificate and certifies on chain. Checked here: every node reports the
blob certified; a node killed with SIGKILL while a blob is certified recovers that blob's slivers
after it restarts, byte for byte, and its event progress neither skips nor repeats; bad requests
to a real process get their 4xx reasons; SIGTERM stops a node cleanly (exit status 0).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.node.cluster import blob_data
from tests.node.process_target import N_SHARDS, Devnet, open_node_devnet
from walruspy.core.encoding import encode_blob
from walruspy.core.types import ShardIndex, SliverPairIndex, SliverType, pair_of_shard
from walruspy.node_api import errors
from walruspy.node_api.schemas import Permanent, StoredOnNodeStatus

pytestmark = [pytest.mark.devnet, pytest.mark.slow]

SHARD_COUNTS = (3, 3, 2, 2)


@pytest.fixture
async def devnet(tmp_path: Path) -> AsyncIterator[Devnet]:
    async with open_node_devnet(tmp_path, SHARD_COUNTS) as net:
        yield net


async def test_devnet_store_kill_recover_and_stop(devnet: Devnet) -> None:
    first = await devnet.store(blob_data(1, 100_000), devnet.nodes)
    blob_id = first.metadata.blob_id
    async with asyncio.timeout(30):
        for client in devnet.clients:
            # Polling a remote process: there is no event to wait on.
            while not (isinstance(s := await client.blob_status(blob_id), Permanent)  # noqa: ASYNC110
                       and s.is_certified):  # fmt: skip
                await asyncio.sleep(0.05)

    # Bad input to a real process: 4xx with the reason, nothing stored.
    unregistered = encode_blob(b"never registered", N_SHARDS)
    with pytest.raises(errors.NotRegisteredError):
        await devnet.clients[0].put_metadata(unregistered.metadata)
    assert await devnet.clients[0].metadata_status(unregistered.metadata.blob_id) is (
        StoredOnNodeStatus.NONEXISTENT
    )

    # Node 3 is killed; a blob is certified without it; it recovers after a restart.
    down = devnet.nodes[3]
    down.kill()
    second = await devnet.store(blob_data(2, 300_000), devnet.nodes[:3])
    down.start()
    await devnet.wait_serving(down)
    client = devnet.clients[down.index]
    blob_id = second.metadata.blob_id
    async with asyncio.timeout(60):
        for shard in down.shards:
            pair = SliverPairIndex(pair_of_shard(ShardIndex(shard), blob_id.raw, N_SHARDS))
            for sliver_type in SliverType:
                while await client.sliver_status(blob_id, pair, sliver_type) is not (  # noqa: ASYNC110
                    StoredOnNodeStatus.STORED
                ):
                    await asyncio.sleep(0.05)
                got = await client.get_sliver(second.metadata, pair, sliver_type)
                assert got.sliver == second.sliver(pair, sliver_type).sliver
    # Its event progress matches the others': nothing skipped, nothing repeated.
    progress = {(await c.health()).event_progress.persisted for c in devnet.clients}
    assert len(progress) == 1, progress
    await client.get_confirmation(blob_id)

    # SIGTERM: a clean stop.
    assert [node.terminate() for node in devnet.nodes] == [0, 0, 0, 0]

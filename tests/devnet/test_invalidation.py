"""A blob encoded inconsistently is found out by a recovering node and marked invalid on chain.

A malicious writer commits to a forged primary sliver (its hash is in the metadata, so every
sliver verifies on its own, but the slivers are not one codeword), uploads to the three nodes
that do not hold the forged sliver's shard, and certifies with their confirmations. The fourth
node, which got nothing, recovers its slivers from the others' symbols, decodes the forged one
differently, and runs the invalidation flow on the real chain: f+1 attestations, then
`invalidate_blob_id`. Every node then marks the blob invalid and a read says so, never data.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from tests.devnet.conftest import TEST_EPOCH_S, blob_bytes
from walruspy.client import WalrusClient
from walruspy.client.errors import BlobInvalidError
from walruspy.core.certificates import Certificate
from walruspy.core.types import (
    ShardIndex,
    SliverPairIndex,
    SliverType,
    pair_of_shard,
    shard_of_pair,
)
from walruspy.devnet import Devnet, open_devnet, wait_until
from walruspy.node_api.client import NodeClient
from walruspy.node_api.schemas import Invalid
from walruspy.sim.forgery import tampered_encoding

pytestmark = [
    pytest.mark.devnet,
    pytest.mark.slow,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(300),
]

N_SHARDS = 20


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def devnet(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Devnet]:
    directory = tmp_path_factory.mktemp("invalidation")
    async with open_devnet(
        directory, n_nodes=4, n_shards=N_SHARDS, epoch_duration_s=TEST_EPOCH_S,
        recovery_deferral_s=0.5,
    ) as dn:  # fmt: skip
        yield dn


async def test_an_inconsistent_blob_is_invalidated_by_the_network(
    devnet: Devnet, client: WalrusClient, http: aiohttp.ClientSession
) -> None:
    data = blob_bytes(7, 30_000)
    victim = devnet.nodes[3]
    # Forge a primary sliver whose shard the victim holds (the pair's shard depends on the
    # blob ID, which depends on the forgery: try pairs until one lands there).
    for pair in range(N_SHARDS):
        encoded, metadata, _ = tampered_encoding(data, N_SHARDS, pair, b"\x5a")
        if shard_of_pair(SliverPairIndex(pair), metadata.blob_id.raw, N_SHARDS) in victim.shards:
            break
    else:
        pytest.fail("no forged pair lands on the victim's shards")
    blob_id = metadata.blob_id
    registration = await devnet.deployer.reserve_and_register(
        blob_id=blob_id,
        root_hash=metadata.metadata.root_hash(),
        unencoded_size=len(data),
        encoded_size=metadata.params.encoded_length(len(data)),
        epochs_ahead=5,
        deletable=False,
    )
    signed = []
    for index, node in enumerate(devnet.nodes[:3]):
        peer = node.plan.client(http, 30, direct=False)

        async def registered(peer: NodeClient = peer) -> bool:
            try:
                await peer.put_metadata(metadata)
            except Exception:  # NOT_REGISTERED until the node sees the event
                return False
            return True

        await wait_until(registered, 30, f"node {index} accepting the metadata")
        for shard in node.shards:
            at = SliverPairIndex(pair_of_shard(ShardIndex(shard), blob_id.raw, N_SHARDS))
            for sliver_type in SliverType:
                sliver = encoded.sliver(at, sliver_type).sliver
                assert not (at == pair and sliver_type is SliverType.PRIMARY)  # not the forgery
                await peer.put_sliver(blob_id, at, sliver)
        signed.append((index, await peer.get_confirmation(blob_id)))
    await devnet.deployer.certify_blob(
        registration.blob.object_id, Certificate.from_signed_messages(signed)
    )

    async def invalid() -> bool:
        return isinstance((await client.blob_status(blob_id)).status, Invalid)

    await wait_until(invalid, 90, "the blob marked invalid on chain and seen by the nodes")
    with pytest.raises(BlobInvalidError, match="marked invalid"):
        await client.read(blob_id)

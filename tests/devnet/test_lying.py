"""A lying node on a real devnet: node 0 serves corrupted slivers through a proxy process.

The committee names the proxy's address for node 0 (`walruspy.devnet.proxy`), so clients, the
aggregator and the other nodes reach node 0 only through it; every sliver it serves has one
data byte flipped. Its 25 of 100 shards are within f = 33. Checked: the proxy really corrupts
(the same sliver verifies from the node directly and fails through the proxy); stores certify;
reads through the client and the aggregator return the right bytes, with every consistency check.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from tests.devnet.conftest import TEST_EPOCH_S, blob_bytes, wait_certified
from walruspy.client import WalrusClient
from walruspy.core.decoding import ConsistencyCheck
from walruspy.core.encoding import encode_blob
from walruspy.core.errors import InvalidInputError
from walruspy.core.types import ShardIndex, SliverType, pair_of_shard
from walruspy.devnet import Devnet, open_devnet, wait_until
from walruspy.node_api.schemas import StoredOnNodeStatus

pytestmark = [
    pytest.mark.devnet,
    pytest.mark.slow,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(300),
]

N_SHARDS = 100
DATA = blob_bytes(7, 1 << 20)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def devnet(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Devnet]:
    directory = tmp_path_factory.mktemp("lying")
    async with open_devnet(
        directory, n_nodes=4, n_shards=N_SHARDS, epoch_duration_s=TEST_EPOCH_S,
        lying_nodes=(0,),
    ) as dn:  # fmt: skip
        yield dn


async def test_store_certifies_with_a_lying_node(client: WalrusClient) -> None:
    result = await client.store(DATA, 3, deletable=False)
    assert result.blob is not None and result.blob.certified_epoch is not None
    await wait_certified(client, result.blob_id)


async def test_the_proxy_corrupts_slivers(devnet: Devnet, http: aiohttp.ClientSession) -> None:
    liar = devnet.nodes[0]
    assert liar.url != liar.direct_url and liar.proxy is not None
    metadata = encode_blob(DATA, N_SHARDS).metadata
    pair = pair_of_shard(ShardIndex(liar.shards[0]), metadata.blob_id.raw, N_SHARDS)
    honest = liar.plan.client(http, 30, direct=True)
    lying = liar.plan.client(http, 30, direct=False)
    for sliver_type in SliverType:
        await honest.get_sliver(metadata, pair, sliver_type)  # verifies
        with pytest.raises(InvalidInputError):
            await lying.get_sliver(metadata, pair, sliver_type)
    # Everything else passes through unchanged.
    assert (await lying.health()).public_key == (await honest.health()).public_key


@pytest.mark.parametrize("check", list(ConsistencyCheck))
async def test_reads_ignore_the_lies(client: WalrusClient, check: ConsistencyCheck) -> None:
    blob_id = await client.blob_id_of(DATA)
    assert await client.read(blob_id, consistency=check) == DATA


async def test_aggregator_reads_ignore_the_lies(
    devnet: Devnet, client: WalrusClient, http: aiohttp.ClientSession
) -> None:
    blob_id = await client.blob_id_of(DATA)
    async with http.get(f"{devnet.aggregator_url}/v1/blobs/{blob_id}") as response:
        assert response.status == 200
        assert await response.read() == DATA
    small = blob_bytes(8, 3000)
    async with http.put(f"{devnet.publisher_url}/v1/blobs", data=small) as response:
        blob = (await response.json())["newlyCreated"]["blobObject"]
    async with http.get(f"{devnet.aggregator_url}/v1/blobs/{blob['blobId']}") as response:
        assert await response.read() == small


async def test_other_nodes_are_not_fooled_by_the_liar(
    devnet: Devnet, client: WalrusClient, http: aiohttp.ClientSession
) -> None:
    """A node that missed a blob recovers it from its peers, the liar among them, correctly."""
    node = devnet.nodes[3]
    await node.kill()
    data = blob_bytes(9, 300_000)
    await client.store(data, 3, deletable=False)
    await node.restart()
    encoded = encode_blob(data, N_SHARDS)
    metadata = encoded.metadata
    api = node.plan.client(http, 30, direct=False)
    pairs = [pair_of_shard(ShardIndex(s), metadata.blob_id.raw, N_SHARDS) for s in node.shards]

    async def recovered() -> bool:
        statuses = [
            await api.sliver_status(metadata.blob_id, pair, sliver_type)
            for pair in pairs
            for sliver_type in SliverType
        ]
        return all(status is StoredOnNodeStatus.STORED for status in statuses)

    await wait_until(recovered, 90, "node 3 recovering its slivers with a liar among its peers")
    for pair in pairs:
        for sliver_type in SliverType:
            served = await api.get_sliver(metadata, pair, sliver_type)
            assert served.sliver == encoded.sliver(pair, sliver_type).sliver

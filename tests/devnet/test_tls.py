"""TLS on a devnet: every node serves a certificate for its on-chain network key, and a node that
serves another key is refused, by name, by clients and by its peers.

Node 1 is restarted with a fresh network key that the chain does not know (an impostor at its
address). Clients refuse it (`NodeIdentityError` naming the node) and read from the others; node
0, wiped and restarted, recovers every sliver of its shards from its peers while refusing node 1
(counted as `identity` failures and logged).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from tests.devnet.conftest import TEST_EPOCH_S, blob_bytes
from walruspy.client import WalrusClient
from walruspy.core.encoding import encode_blob
from walruspy.core.types import ShardIndex, SliverType, pair_of_shard
from walruspy.devnet import Devnet, DevnetNode, open_devnet
from walruspy.node_api.client import NodeClient
from walruspy.node_api.tls import NodeIdentityError, client_context, generate_network_key

pytestmark = [pytest.mark.devnet, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

N_SHARDS = 20


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def devnet(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Devnet]:
    directory = tmp_path_factory.mktemp("tls")
    async with open_devnet(
        directory,
        n_nodes=4,
        n_shards=N_SHARDS,
        epoch_duration_s=TEST_EPOCH_S,
        recovery_deferral_s=0.5,
    ) as dn:
        yield dn


async def serving_tls(node: DevnetNode, http: aiohttp.ClientSession) -> None:
    """Wait until the node answers its health over TLS, whatever its key."""
    for _ in range(600):
        try:
            async with http.get(
                f"{node.direct_url}/v1/health",
                ssl=client_context(),
                timeout=aiohttp.ClientTimeout(5),
            ) as response:
                if response.status == 200:
                    return
        except (aiohttp.ClientError, TimeoutError):
            pass
        await asyncio.sleep(0.2)
    raise AssertionError(f"node {node.index} does not serve TLS")


async def faulty_responses(node: DevnetNode, http: aiohttp.ClientSession, kind: str) -> float:
    async with http.get(f"{node.direct_url}/metrics", ssl=client_context()) as response:
        text = await response.text()
    prefix = f'walrus_recovery_faulty_responses_total{{kind="{kind}"}} '
    return sum(float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix))


async def test_every_node_serves_tls_pinned_to_its_key_on_chain(
    devnet: Devnet, client: WalrusClient
) -> None:
    assert devnet.deployer is not None
    committee = await devnet.deployer.committee()
    assert all(len(member.network_public_key) == 33 for member in committee.members)
    assert all(node.url.startswith("https://") for node in devnet.nodes)
    data = blob_bytes(1, 60_000)
    stored = await client.store(data, epochs=5, deletable=False)
    assert await client.read(stored.blob_id) == data


async def test_a_node_serving_another_key_is_refused_by_clients_and_peers(
    devnet: Devnet, client: WalrusClient, http: aiohttp.ClientSession
) -> None:
    assert devnet.deployer is not None
    data = blob_bytes(2, 80_000)
    stored = await client.store(data, epochs=5, deletable=False)
    impostor, healer = devnet.nodes[1], devnet.nodes[0]
    await impostor.stop()
    key = impostor.plan.network_key_path
    key.rename(key.with_suffix(".registered"))
    generate_network_key(key)
    impostor.process.start()
    await serving_tls(impostor, http)

    committee = await devnet.deployer.committee()
    member = next(m for m in committee.members if m.public_key == impostor.plan.public_key)
    with pytest.raises(NodeIdentityError, match=rf"node {impostor.url} presented TLS key"):
        await NodeClient.for_member(member, http, timeout_s=10).health()
    assert await client.read(stored.blob_id) == data  # the others suffice

    # A peer: node 0 loses its store and recovers its slivers from the others, refusing node 1.
    await healer.stop()
    shutil.rmtree(healer.plan.directory / "db")
    await healer.restart()
    encoded = encode_blob(data, N_SHARDS)
    api = healer.plan.client(http, 30, direct=True)
    for _ in range(300):
        try:
            for shard in healer.shards:
                pair = pair_of_shard(ShardIndex(shard), stored.blob_id.raw, N_SHARDS)
                served = await api.get_sliver(encoded.metadata, pair, SliverType.PRIMARY)
                assert served.sliver == encoded.sliver(pair, SliverType.PRIMARY).sliver
            break
        except Exception:
            await asyncio.sleep(0.5)
    else:
        raise AssertionError("node 0 did not recover its slivers")
    assert await faulty_responses(healer, http, "identity") > 0
    log = (devnet.directory / "logs" / f"node{healer.index}.log").read_text()
    assert "its TLS key is not its key on chain" in log

    # The impostor gets its own key back and is reachable again.
    await impostor.stop()
    key.unlink()
    key.with_suffix(".registered").rename(key)
    await impostor.restart()
    await NodeClient.for_member(member, http, timeout_s=10).health()

"""Storage challenges on a real devnet over three epochs (node/challenges.py, Challenges.vy).

Seven node processes hold 10 of 70 shards each (f = 23, a quorum 47). Node 5 drops every sliver
it acknowledged (`discard`), node 6 does the same and tries to fetch its sample back when the
challenge starts (`fetch-at-challenge`): 20 faulty shards, within f, so the five honest nodes
(50 shards) still form a quorum of attestations for each other. In each epoch a blob is stored
and every blob read back, the challenge is started, the honest nodes pass and the cheaters do
not, and at the epoch change the cheaters' pools gain nothing while the honest ones are paid.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.devnet.conftest import TEST_EPOCH_S, blob_bytes, wait_certified
from walruspy.chain.evm_staking import EvmStaking
from walruspy.client import WalrusClient
from walruspy.devnet import Devnet, open_devnet
from walruspy.devnet.control import devnet_fault
from walruspy.node.faults import FaultMode

pytestmark = [
    pytest.mark.devnet,
    pytest.mark.slow,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(600),
]

N_NODES, N_SHARDS = 7, 70
DISCARD, FETCH = 5, 6


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def devnet(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Devnet]:
    directory = tmp_path_factory.mktemp("challenges")
    async with open_devnet(
        directory, n_nodes=N_NODES, n_shards=N_SHARDS, epoch_duration_s=TEST_EPOCH_S
    ) as dn:
        yield dn


async def test_cheaters_fail_every_challenge_and_earn_nothing(
    devnet: Devnet, client: WalrusClient
) -> None:
    devnet_fault(devnet.directory, DISCARD, FaultMode.DISCARD)
    devnet_fault(devnet.directory, FETCH, FaultMode.FETCH_AT_CHALLENGE)
    deployer = devnet._need_deployer()
    staking = deployer.staking
    assert isinstance(staking, EvmStaking)
    by_key = {m.public_key: m.node_id for m in (await deployer.committee()).members}
    node_ids = {node.index: by_key[node.plan.public_key] for node in devnet.nodes}
    honest = {node_ids[i] for i in range(N_NODES) if i not in (DISCARD, FETCH)}
    stored: list[tuple[object, bytes]] = []
    for round_ in range(3):
        data = blob_bytes(100 + round_, 200_000)
        result = await client.store(data, 5, deletable=False)
        await wait_certified(client, result.blob_id)
        stored.append((result.blob_id, data))
        for blob_id, expected in stored:  # reads work throughout
            assert await client.read(blob_id) == expected
        epoch = await devnet.start_challenge()
        async with asyncio.timeout(120):
            while set((await deployer.challenge_state(epoch)).passed) != honest:  # noqa: ASYNC110
                await asyncio.sleep(0.5)
        await asyncio.sleep(3)  # the cheaters keep trying; they cannot get a certificate
        state = await deployer.challenge_state(epoch)
        assert set(state.passed) == honest, f"epoch {epoch}: {state.passed}"
        before = {i: (await staking.pool(node_id)).rewards_pool for i, node_id in node_ids.items()}
        await devnet.advance_epoch()
        after = {i: (await staking.pool(node_id)).rewards_pool for i, node_id in node_ids.items()}
        for index in range(N_NODES):
            gained = after[index] - before[index]
            if index in (DISCARD, FETCH):
                assert gained == 0, f"epoch {epoch}: cheater {index} was paid {gained}"
            else:
                assert gained > 0, f"epoch {epoch}: honest node {index} was not paid"
    for blob_id, expected in stored:
        assert await client.read(blob_id) == expected

"""The nodes' own epoch driver advances epochs on the real chain, and every node follows; stores
that an epoch change interrupts gather their confirmations again and certify.

Nobody calls advance_epoch here: with 5-second epochs, the storage nodes' drivers (walrus-system.md
3.5, "epoch-change driver") must start new epochs by themselves, racing each other harmlessly:
under staking, `voting_end` and `initiate_epoch_change`, and each epoch change completes once the
nodes report `epoch_sync_done`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from tests.devnet.conftest import blob_bytes
from walruspy.client import StoreResult, WalrusClient
from walruspy.devnet import Devnet, open_devnet, wait_until

pytestmark = [pytest.mark.devnet, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

EPOCH_S = 5


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def devnet(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Devnet]:
    directory = tmp_path_factory.mktemp("epochs")
    async with open_devnet(directory, n_nodes=4, n_shards=20, epoch_duration_s=EPOCH_S) as dn:
        yield dn


async def test_nodes_advance_epochs_by_themselves(
    devnet: Devnet, http: aiohttp.ClientSession
) -> None:
    start = (await devnet.deployer.system_info()).epoch

    async def two_epochs_later() -> bool:
        return (await devnet.deployer.system_info()).epoch >= start + 2

    # Epochs run on chain time. The devchain stamps each block at least a second after its
    # parent, so the ~40 transactions of a staking devnet's set-up leave the chain clock up to
    # ~40 s ahead of the wall clock, and the first steps wait for the wall clock to catch up.
    await wait_until(two_epochs_later, 24 * EPOCH_S, "two epoch changes by the nodes' drivers")
    target = (await devnet.deployer.system_info()).epoch

    async def every_node_follows() -> bool:
        epochs = [
            (await node.plan.client(http, 10, direct=False).health()).epoch for node in devnet.nodes
        ]
        return all(epoch >= target for epoch in epochs)

    await wait_until(every_node_follows, 6 * EPOCH_S, "every node seeing the new epoch")


async def test_stores_across_epoch_changes_certify_and_read_back(
    devnet: Devnet, client: WalrusClient
) -> None:
    """Stores back to back for three epochs: those an epoch change interrupts still certify."""
    start = (await devnet.deployer.system_info()).epoch
    stored: list[tuple[bytes, StoreResult]] = []
    seed = 0
    while (await devnet.deployer.system_info()).epoch < start + 3:
        seed += 1
        data = blob_bytes(seed, 200_000)
        stored.append((data, await client.store(data, epochs=20, deletable=False)))
    for data, result in stored:
        assert await client.read(result.blob_id) == data
    records = [result.blob for _, result in stored if result.blob is not None]
    straddled = [r for r in records if r.certified_epoch != r.registered_epoch]
    # Stores run back to back, so each epoch change lands inside one; reported, not required.
    print(f"{len(stored)} stores over 3 epoch changes; {len(straddled)} certified an epoch later")

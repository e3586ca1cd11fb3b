"""Churn on a real devnet: members come and go over many epochs, and no blob is lost.

Six node processes hold 32 shards; a client stores blobs of mixed sizes (up to 2 MiB) without
pause while, epoch after epoch, nodes are added and staked, one is killed with SIGKILL while it
syncs the shards it gained and is started again, one leaves by unstaking, and one has its data
directory wiped. Every change is completed by the nodes themselves (shard sync, the recovery
fallback, `epoch_sync_done`). At the end every certified blob reads back byte for byte. The test
prints what moved: blobs, epochs, shard moves, bytes synced, and each epoch change's time from
EpochChangeStart to EpochChangeDone.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from tests.devnet.conftest import TEST_EPOCH_S, blob_bytes, walruspy
from walruspy.client import WalrusClient
from walruspy.core.errors import WalrusError
from walruspy.core.types import ShardIndex
from walruspy.devnet import Devnet, DevnetNode, open_devnet, wait_until
from walruspy.node_api.tls import client_context

pytestmark = [
    pytest.mark.devnet,
    pytest.mark.slow,
    pytest.mark.churn,
    pytest.mark.asyncio(loop_scope="module"),
]

N_SHARDS = 32
WAL = 10**9
SIZES = (1_000, 40_000, 300_000, 2 << 20, 120_000, 9_000)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def devnet(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Devnet]:
    directory = tmp_path_factory.mktemp("churn")
    async with open_devnet(
        directory,
        n_nodes=6,
        n_shards=N_SHARDS,
        epoch_duration_s=TEST_EPOCH_S,
        recovery_deferral_s=0.5,
        shard_sync_retry_window_s=8.0,
        # Small batches: a sync takes many requests, so the kill lands in the middle of one.
        shard_sync_batch_size=2,
    ) as dn:
        yield dn


class Writer:
    """Stores blobs without pause; keeps those that were certified."""

    def __init__(self, client: WalrusClient) -> None:
        self.client = client
        self.stored: list[tuple[bytes, object]] = []
        self.failed = 0
        self._seed = 0

    async def run(self) -> None:
        while True:
            size = SIZES[self._seed % len(SIZES)]
            data = blob_bytes(1000 + self._seed, size)
            self._seed += 1
            try:
                result = await self.client.store(data, epochs=30, deletable=False)
            except WalrusError:
                self.failed += 1  # not certified: nothing was promised
                await asyncio.sleep(0.5)
                continue
            self.stored.append((data, result.blob_id))


async def metric(http: aiohttp.ClientSession, node: DevnetNode, name: str) -> float:
    """The sum of a node's counter `name` over its labels (0 when it cannot be read)."""
    try:
        async with http.get(node.direct_url + "/metrics", ssl=client_context()) as response:
            text = await response.text()
    except aiohttp.ClientError:
        return 0.0
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(f"walrus_{name}") and not line.startswith("#")
    )


async def test_no_blob_is_lost_under_churn(
    devnet: Devnet, client: WalrusClient, http: aiohttp.ClientSession
) -> None:
    deployer = devnet.deployer
    assert deployer is not None
    writer = Writer(client)
    durations: list[float] = []
    moves = 0
    synced_bytes = 0.0

    async def change(during: Callable[[], Awaitable[None]] | None = None) -> int:
        """One epoch change; `during` runs once the new epoch started, before it is done."""
        nonlocal moves
        before = {n.plan.index: set(n.shards) for n in devnet.nodes}
        if during is None:
            begun = time.monotonic()
            new_epoch = await devnet.advance_epoch()
        else:
            new_epoch = await devnet.start_epoch_change()
            begun = time.monotonic()
            await during()
            for node in devnet.nodes:
                if node.process.running:
                    await devnet.wait_node_ready(node, new_epoch)
        await devnet.wait_epoch_change_done()
        durations.append(time.monotonic() - begun)
        after = {n.plan.index: set(n.shards) for n in devnet.nodes}
        moves += sum(len(after[i] - before.get(i, set())) for i in after)
        return new_epoch

    writing = asyncio.create_task(writer.run())
    try:
        await asyncio.sleep(3)
        # 1. A seventh node joins with a large stake.
        joiner = await devnet.add_node(stake_frost=40_000 * WAL)
        await change()
        if not devnet.in_committee(joiner):
            await change()
        assert devnet.in_committee(joiner)

        # 2. An eighth node joins; it is killed while it syncs its gained shards, then restarted.
        victim = await devnet.add_node(stake_frost=40_000 * WAL)

        async def kill_mid_sync() -> None:
            async def syncing() -> bool:
                return devnet.in_committee(victim) and (
                    await metric(http, victim, "shard_sync_slivers_total") > 0
                )

            with contextlib.suppress(Exception):
                await wait_until(syncing, 60, "the new member syncing")
            synced_before = await metric(http, victim, "shard_sync_bytes_total")
            await victim.kill()
            await asyncio.sleep(1)
            await victim.restart()
            nonlocal synced_bytes
            synced_bytes += synced_before

        await change(kill_mid_sync)
        if not devnet.in_committee(victim):
            await change(kill_mid_sync)
        assert devnet.in_committee(victim)

        # 3. An original node loses all its stake and leaves.
        leaver = devnet.nodes[0]
        walruspy(
            "request-withdraw-stake",
            "0x" + leaver.plan.node_id.hex(),
            "--config",
            str(devnet.client_config_path),
            "--json",
        )
        await change()
        if devnet.in_committee(leaver):
            await change()
        assert not devnet.in_committee(leaver)

        # 4. A member's data directory is wiped: it catches up and refills its shards.
        wiped = devnet.nodes[2]
        assert devnet.in_committee(wiped)
        await wiped.kill()
        shutil.rmtree(wiped.plan.directory / "db")
        await wiped.restart()
        await change()
        # 5. Two more epochs: the leaver's locked shards go, and the blobs keep coming.
        await change()
        epoch = await change()
        assert epoch >= 7
    finally:
        writing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writing

    for node in devnet.nodes:
        synced_bytes += await metric(http, node, "shard_sync_bytes_total")
    # Every node comes to hold its shards: the wiped one too. The last epoch change is done
    # once a quorum synced, so under load the wiped node may still be recovering its blobs.
    for node in devnet.nodes:
        if node.shards:
            api = node.plan.client(http, 30, direct=True)

            async def active(api: Any = api) -> bool:
                return (await api.health(detailed=False)).node_status == "Active"

            await wait_until(active, 120, f"node {node.index} active")
    lost = []
    for data, blob_id in writer.stored:
        try:
            if await client.read(blob_id) != data:  # type: ignore[arg-type]
                lost.append(blob_id)
        except WalrusError:
            lost.append(blob_id)
    print(
        f"\nchurn: {len(writer.stored)} blobs certified ({writer.failed} stores refused), "
        f"{len(durations)} epoch changes to epoch {epoch}, {moves} shard moves, "
        f"{synced_bytes / 1e6:.1f} MB synced by shard sync; EpochChangeStart -> "
        f"EpochChangeDone: {', '.join(f'{d:.1f} s' for d in durations)}; lost: {len(lost)}"
    )
    assert not lost
    assert len(writer.stored) >= 10
    assert sorted(ShardIndex(s) for n in devnet.nodes for s in n.shards) == list(range(N_SHARDS))

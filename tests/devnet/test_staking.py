"""A living committee on a real devnet: a node joins by stake, another leaves by unstaking.

Four nodes are elected in epoch 0 by the devnet's own stake. A fifth is added and staked; two
epochs later it holds shards. A sixth is set up by an operator with the CLI alone (`node setup`
from the System address, `node register`, `stake`, `node run`) and joins the same way. One of the
original nodes has all its stake withdrawn and leaves the committee at the next selection. Every
epoch change is completed by the nodes themselves: each reports `epoch_sync_done` once blob
recovery has filled the shards it gained. Blobs stored before any change read back after all of
them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from tests.devnet.conftest import TEST_EPOCH_S, blob_bytes, stop_process, walruspy
from walruspy.chain.evm_staking import EpochState, EvmStaking
from walruspy.client import WalrusClient
from walruspy.core.crypto import BlsPublicKey
from walruspy.core.encoding import encode_blob
from walruspy.core.types import ShardIndex, SliverType, pair_of_shard
from walruspy.devnet import Devnet, open_devnet
from walruspy.devnet.network import wait_until
from walruspy.devnet.setup import free_ports, fund_wallets
from walruspy.node_api.client import NodeClient
from walruspy.node_api.errors import NodeConnectionError, UnavailableError

pytestmark = [pytest.mark.devnet, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

N_SHARDS = 20
WAL = 10**9


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def devnet(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Devnet]:
    directory = tmp_path_factory.mktemp("staking")
    async with open_devnet(
        directory,
        n_nodes=4,
        n_shards=N_SHARDS,
        epoch_duration_s=TEST_EPOCH_S,
        recovery_deferral_s=0.5,
    ) as dn:
        yield dn


def staking(devnet: Devnet) -> EvmStaking:
    assert devnet.deployer is not None and devnet.deployer.staking is not None
    return devnet.deployer.staking


async def test_the_first_committee_is_elected(devnet: Devnet) -> None:
    state = await staking(devnet).state()
    assert (state.epoch, state.state) == (1, EpochState.EPOCH_CHANGE_DONE)
    assert [len(node.shards) for node in devnet.nodes] == [5, 5, 5, 5]
    assert sorted(s for node in devnet.nodes for s in node.shards) == list(range(N_SHARDS))
    status = devnet.state()
    assert all(node.in_committee for node in status.nodes)


async def test_a_node_joins_and_another_leaves(
    devnet: Devnet, client: WalrusClient, http: aiohttp.ClientSession
) -> None:
    stored = [(blob_bytes(i, 30_000 * (i + 1)), i) for i in range(3)]
    results = [await client.store(data, epochs=10, deletable=False) for data, _ in stored]

    newcomer = await devnet.add_node(stake_frost=20_000 * WAL)
    assert not devnet.in_committee(newcomer)
    # Staked before this epoch's voting_end, the stake counts for the next committee.
    epoch = await devnet.advance_epoch()
    if not devnet.in_committee(newcomer):
        epoch = await devnet.advance_epoch()
    assert devnet.in_committee(newcomer) and newcomer.shards
    assert epoch <= 3
    # The epoch change completed only once the newcomer held its shards: it recovered them.
    api = newcomer.plan.client(http, 30, direct=False)
    for (data, _), result in zip(stored, results, strict=True):
        encoded = encode_blob(data, N_SHARDS)
        for shard in newcomer.shards:
            pair = pair_of_shard(ShardIndex(shard), result.blob_id.raw, N_SHARDS)
            for sliver_type in SliverType:
                served = await api.get_sliver(encoded.metadata, pair, sliver_type)
                assert served.sliver == encoded.sliver(pair, sliver_type).sliver

    # The devnet's wallet holds the original nodes' stake: the CLI takes one node's away.
    leaver = devnet.nodes[0]
    node_id = "0x" + leaver.plan.node_id.hex()
    walruspy(
        "request-withdraw-stake", node_id, "--config", str(devnet.client_config_path), "--json"
    )
    await devnet.advance_epoch()
    if devnet.in_committee(leaver):
        await devnet.advance_epoch()
    assert not devnet.in_committee(leaver)
    assert sorted(s for node in devnet.nodes for s in node.shards) == list(range(N_SHARDS))
    state = await staking(devnet).state()
    assert state.state is EpochState.EPOCH_CHANGE_DONE

    for (data, _), result in zip(stored, results, strict=True):
        assert await client.read(result.blob_id) == data
    later = await client.store(blob_bytes(9, 50_000), epochs=3, deletable=False)
    assert await client.read(later.blob_id) == blob_bytes(9, 50_000)


async def test_an_operator_joins_with_the_cli(
    devnet: Devnet, client: WalrusClient, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    data = blob_bytes(21, 40_000)
    stored = await client.store(data, epochs=10, deletable=False)
    assert devnet.deployment is not None
    (port,) = free_ports(1)
    directory = tmp_path / "operator"
    setup = json.loads(
        walruspy(
            "node", "setup", "--dir", str(directory), "--chain-rpc", devnet.chain_rpc,
            "--system", devnet.deployment.system, "--public-address", f"127.0.0.1:{port}",
            "--bind-address", f"127.0.0.1:{port}", "--name", "operator", "--json",
        ).stdout
    )  # fmt: skip
    discovered = json.loads((directory / "deployment.json").read_text())["contracts"]
    assert discovered == devnet.deployment.to_json()["contracts"]
    config = setup["configPath"]
    # The wallet needs gas for its transactions (a faucet's job on a public chain).
    await fund_wallets(
        devnet.chain_rpc,
        devnet.deployment,
        [setup["walletAddress"]],
        funder_key=devnet.settings.funder,
        wal_frost=0,
    )
    registered = json.loads(walruspy("node", "register", "--config", config, "--json").stdout)
    walruspy(
        "stake", "--node-id", registered["nodeId"], "--amount", str(20_000 * WAL),
        "--config", str(devnet.client_config_path), "--json",
    )  # fmt: skip
    log_path = tmp_path / "operator.log"
    log = log_path.open("w")
    process = subprocess.Popen(  # noqa: ASYNC220 (started once, waited for in `finally`)
        [sys.executable, "-m", "walruspy.node", "run", "--config", config],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        key = BlsPublicKey.from_bytes(bytes.fromhex(setup["protocolPublicKey"]))
        for _ in range(3):
            epoch = await devnet.advance_epoch()
            if devnet.shards_of(key):
                break
        shards = devnet.shards_of(key)
        assert shards, "the operator's node never entered the committee"
        await devnet.wait_epoch_change_done()
        # It serves TLS with the network key `node setup` made and `node register` registered.
        api = NodeClient(
            f"https://127.0.0.1:{port}",
            http,
            timeout_s=30,
            network_public_key=bytes.fromhex(setup["networkPublicKey"]),
        )

        # The epoch change completes with 2f+1 shards reported: the newcomer may still sync.
        async def holds_its_shards() -> bool:
            code = process.poll()
            assert code is None, f"the operator's node exited ({code}): {log_path.read_text()}"
            try:
                health = await api.health()
            except (NodeConnectionError, UnavailableError):
                return False  # not serving yet, or still waiting for its chain (503)
            return health.epoch >= epoch and health.node_status == "Active"

        await wait_until(holds_its_shards, 120, "the operator's node holding its shards")
        encoded = encode_blob(data, N_SHARDS)
        for shard in shards:
            pair = pair_of_shard(ShardIndex(shard), stored.blob_id.raw, N_SHARDS)
            served = await api.get_sliver(encoded.metadata, pair, SliverType.PRIMARY)
            assert served.sliver == encoded.sliver(pair, SliverType.PRIMARY).sliver
        assert await client.read(stored.blob_id) == data
    finally:
        stop_process(process)
        log.close()

"""A staking deployment on a devchain process, with node and client files, for the CLI tests.

`open_staking_devchain(directory)` starts `walruspy chain serve`, deploys the staking control
plane (and, beside it, a fixed-committee one) from the devchain's first key, and writes what
the commands read: one node configuration and key pair per node (`walruspy node keygen`'s files,
the wallet funded with ether), a client configuration whose contexts are a funded staker, a
second funded wallet, a wallet-less reader and a context on the fixed-committee deployment.
The nodes never run: the tests register and manage them through the CLI. `epoch_step` drives
the epoch change as nodes and anyone would: it moves the devchain's clock to the next due
step, takes it, and has every node's wallet report its shards when the new committee syncs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import yaml
from eth_account import Account

from tests.chain.backends import ChainProcess, start_devchain
from walruspy.chain.deploy import Deployment, DeployParams, deploy, sign_deployment_pop
from walruspy.chain.deploy_staking import StakingParams, deploy_staking
from walruspy.chain.evm import EvmChain, open_evm_chain
from walruspy.chain.evm_rpc import TransactionSender, open_web3
from walruspy.chain.evm_staking import EpochState
from walruspy.core.committee import CommitteeMember
from walruspy.core.crypto import BlsPrivateKey
from walruspy.node.keys import keygen, load_wallet_key

WAL: Final = 10**9
N_SHARDS: Final = 10
EPOCH_S: Final = 3600
N_NODES: Final = 3
#: Ether for gas of a few hundred transactions at devchain prices.
_FUND_ETH_WEI: Final = 10 * 10**18
_STAKER_WAL: Final = 10_000 * WAL
_ETH_TRANSFER_GAS: Final = 21_000


@dataclass(frozen=True)
class NodeFiles:
    """A storage node that does not run: its configuration and wallet."""

    name: str
    config: Path
    wallet_key: bytes

    @property
    def address(self) -> str:
        return str(Account.from_key(self.wallet_key).address)


@dataclass
class StakingDevchain:
    """The devchain, both deployments and the files the commands read."""

    chain: ChainProcess
    deployment: Deployment
    fixed_deployment: Deployment
    client_config: Path
    nodes: list[NodeFiles]
    #: A node configuration whose wallet never registers (and has no ether).
    stranger: NodeFiles
    #: A node configuration on the fixed-committee deployment.
    fixed_node: NodeFiles
    staker_key: bytes
    other_key: bytes

    @property
    def deployer_key(self) -> bytes:
        return self.chain.keys[0]

    @property
    def staker(self) -> str:
        return str(Account.from_key(self.staker_key).address)

    @contextlib.asynccontextmanager
    async def open(self, key: bytes | None = None) -> AsyncIterator[EvmChain]:
        """The staking deployment's chain client, from `key` (the deployer's by default)."""
        async with open_evm_chain(
            self.chain.url, self.deployment, key or self.deployer_key
        ) as chain:
            yield chain


def _write_yaml(path: Path, content: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(content, sort_keys=False))


def _node_files(
    directory: Path, name: str, port: int, rpc_url: str, deployment_file: Path
) -> NodeFiles:
    keys = keygen(directory / "keys")
    config = directory / "node.yaml"
    _write_yaml(
        config,
        {
            "name": name,
            "storage_path": str(directory / "db"),
            "rest_api_address": f"127.0.0.1:{port}",
            "protocol_key_path": str(keys.protocol_key_path),
            "wallet_key_path": str(keys.wallet_key_path),
            "chain": {"rpc_url": rpc_url, "deployment_file": str(deployment_file)},
        },
    )
    return NodeFiles(name, config, load_wallet_key(keys.wallet_key_path))


def _wallet(path: Path) -> bytes:
    account = Account.create()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(bytes(account.key).hex() + "\n")
    return bytes(account.key)


async def _fixed_deployment(rpc_url: str, deployer_key: bytes) -> Deployment:
    """A two-member fixed committee (its nodes never run)."""
    deployer = str(Account.from_key(deployer_key).address)
    keys = [BlsPrivateKey.from_seed(hashlib.sha256(b"fixed%d" % i).digest()) for i in range(2)]
    members = tuple(
        CommitteeMember(
            hashlib.blake2b(key.public_key().to_bytes(), digest_size=32).digest(),
            key.public_key(),
            f"127.0.0.1:{19_100 + i}",
            tuple(range(i * 5, i * 5 + 5)),
        )
        for i, key in enumerate(keys)
    )
    params = DeployParams(
        members=members,
        proofs_of_possession=tuple(sign_deployment_pop(key, deployer) for key in keys),
        n_shards=N_SHARDS,
        epoch_duration_s=EPOCH_S,
        max_epochs_ahead=10,
        total_capacity_size=1 << 40,
        storage_price_per_unit_size=100_000,
        write_price_per_unit_size=20_000,
    )
    return await deploy(rpc_url, deployer_key, params)


async def _fund(net: StakingDevchain, ether_to: list[str], wal_to: list[str]) -> None:
    w3 = open_web3(net.chain.url)
    try:
        sender = TransactionSender(w3, net.chain.url, net.deployer_key, net.deployment.chain_id)
        for address in ether_to:
            await sender.send(
                "fund with ether", to=address, data=b"", gas=_ETH_TRANSFER_GAS,
                value=_FUND_ETH_WEI,
            )  # fmt: skip
    finally:
        await w3.provider.disconnect()
    async with net.open() as chain:
        for address in wal_to:
            await chain.transfer_wal(address, _STAKER_WAL)


def _setup(directory: Path, chain: ChainProcess) -> StakingDevchain:
    deployer_key = chain.keys[0]
    params = StakingParams(n_shards=N_SHARDS, epoch_duration_s=EPOCH_S)
    deployment = asyncio.run(deploy_staking(chain.url, deployer_key, params))
    fixed = asyncio.run(_fixed_deployment(chain.url, deployer_key))
    deployment_file = directory / "deployment.json"
    fixed_file = directory / "fixed-deployment.json"
    deployment.save(deployment_file)
    fixed.save(fixed_file)
    nodes = [
        _node_files(directory / f"node{i}", f"node{i}", 19_000 + i, chain.url, deployment_file)
        for i in range(N_NODES)
    ]
    stranger = _node_files(directory / "stranger", "stranger", 19_050, chain.url, deployment_file)
    fixed_node = _node_files(directory / "fixed-node", "fixed", 19_060, chain.url, fixed_file)
    wallets = directory / "wallets"
    staker_key = _wallet(wallets / "staker.key")
    other_key = _wallet(wallets / "other.key")

    def context(deployment_path: Path, wallet: str | None) -> dict[str, object]:
        entry: dict[str, object] = {
            "rpc_urls": [chain.url],
            "deployment": str(deployment_path),
            "encoder_workers": 0,
        }
        if wallet is not None:
            entry["wallet_key_path"] = str(wallets / wallet)
        return entry

    client_config = directory / "client_config.yaml"
    _write_yaml(
        client_config,
        {
            "contexts": {
                "staker": context(deployment_file, "staker.key"),
                "other": context(deployment_file, "other.key"),
                "reader": context(deployment_file, None),
                "fixed": context(fixed_file, "staker.key"),
            },
            "default_context": "staker",
        },
    )
    net = StakingDevchain(
        chain, deployment, fixed, client_config, nodes, stranger, fixed_node, staker_key,
        other_key,
    )  # fmt: skip
    staker, other = (str(Account.from_key(k).address) for k in (staker_key, other_key))
    asyncio.run(_fund(net, [n.address for n in nodes] + [staker, other], [staker, other]))
    return net


@contextlib.contextmanager
def open_staking_devchain(directory: Path) -> Iterator[StakingDevchain]:
    """The devchain with both deployments and every file written (module doc)."""
    chain = start_devchain(directory / "chain")
    try:
        yield _setup(directory, chain)
    finally:
        chain.stop()


async def epoch_step(net: StakingDevchain) -> EpochState:
    """Take the next due step of the epoch change (module doc); the state it leads to."""
    async with net.open() as chain:
        staking = chain.staking
        assert staking is not None
        state = await staking.state()
        due = state.next_step_at()
        assert due is not None, "the committee is still syncing"
        if due > await chain.chain_time():
            net.chain.rpc("evm_mine", due)
        assert await staking.take_epoch_step()
        state = await staking.state()
    if state.state is EpochState.EPOCH_CHANGE_SYNC:
        for node in net.nodes:
            async with net.open(node.wallet_key) as node_chain:
                await node_chain.epoch_sync_done(state.epoch)
        async with net.open() as chain:
            assert chain.staking is not None
            state = await chain.staking.state()
        assert state.state is EpochState.EPOCH_CHANGE_DONE
    return state.state

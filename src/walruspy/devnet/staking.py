"""A devnet whose committee is elected: staking deployment, registration, stake, first epoch.

Theory of operation (spec/walrus-system.md 2.2, 2.3; Move `init::initialize_walrus`). A staking
devnet starts as a Walrus network starts: the contracts are deployed in epoch 0 with no
committee (`deploy_staking`, with an epoch 0 that may end at once); every node registers itself
from its own wallet, with a proof of possession of its BLS key for that wallet and the current
epoch, at the address it will serve; the devnet's own wallet (the client configuration's default
context, so that `walruspy request-withdraw-stake NODE_ID` can take a node's stake away again)
stakes the same amount with each, so D'Hondt gives them equal shares; then `voting_end` and
`initiate_epoch_change` select and install the committee of epoch 1 by the same code as every
later one. Nodes started afterwards find themselves in that committee by their key and report
`epoch_sync_done`, which completes the epoch change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Final

from walruspy.chain.deploy import Deployment
from walruspy.chain.deploy_staking import StakingParams, deploy_staking
from walruspy.chain.evm import EvmChain, open_evm_chain
from walruspy.chain.evm_rpc import ConnectorFactory
from walruspy.chain.evm_staking import EvmStaking
from walruspy.core.committee import Committee
from walruspy.core.messages import sign_proof_of_possession_evm
from walruspy.devnet.errors import DevnetError
from walruspy.devnet.setup import (
    LOOPBACK,
    DevnetSettings,
    NodePlan,
    add_node_plan,
    free_ports,
    fund_wallets,
    node_config,
    write_yaml,
)
from walruspy.node.keys import load_protocol_key, load_wallet_key

__all__ = [
    "NODE_STAKE_FROST",
    "STORAGE_PRICE",
    "WRITE_PRICE",
    "arrange_by_committee",
    "deploy_staking_network",
    "elect_first_committee",
    "join_node",
    "register_node",
    "staking_of",
    "update_registration",
]

#: What the devnet's wallet stakes with each node: 10,000 WAL, of the million it holds.
NODE_STAKE_FROST: Final = 10_000 * 10**9
#: The nodes' price votes: Walrus Mainnet's example prices (FROST per MiB), so the quorum
#: price is the same as on a fixed-committee devnet.
STORAGE_PRICE: Final = 100_000
WRITE_PRICE: Final = 20_000
#: Each node's capacity vote: 1 TiB of encoded data per epoch, never the limit here.
NODE_CAPACITY: Final = 1 << 40


def staking_of(chain: EvmChain) -> EvmStaking:
    """The chain's staking client (a staking devnet always has one)."""
    if chain.staking is None:
        raise DevnetError("this devnet's deployment has no staking contracts")
    return chain.staking


async def deploy_staking_network(
    rpc_url: str, settings: DevnetSettings, *, connector: ConnectorFactory | None = None
) -> Deployment:
    """The staking contracts from the devnet's funder; epoch 0 may end at once. `connector`
    makes the JSON-RPC sessions' connectors (the simulator's network)."""
    params = StakingParams(
        n_shards=settings.n_shards,
        epoch_duration_s=settings.epoch_duration_s,
        epoch_zero_duration_s=0,
        max_epochs_ahead=settings.max_epochs_ahead,
        total_capacity_size=NODE_CAPACITY,
        wal_supply=10**9 * 10**9,  # a billion WAL, as the fixed-committee devnet mints
        # A devnet's few nodes make cheap epoch changes: no storage written ahead (it would
        # cost set-up time and, one block a transaction, push the chain clock ahead).
        reserved_members=0,
    )
    return await deploy_staking(rpc_url, settings.funder, params, connector=connector)


async def register_node(
    rpc_url: str,
    deployment: Deployment,
    plan: NodePlan,
    *,
    connector: ConnectorFactory | None = None,
) -> bytes:
    """Register `plan`'s node from its own wallet, at its own port; its node ID. `connector`:
    as `deploy_staking_network`'s.

    A lying node's proxy address is set once committee order tells which nodes lie
    (`arrange_by_committee`, `update_registration`).
    """
    keys = plan.directory / "keys"
    protocol_key = load_protocol_key(keys / "protocol.key")
    wallet_key = load_wallet_key(keys / "wallet.key")
    async with open_evm_chain(rpc_url, deployment, wallet_key, connector=connector) as chain:
        staking = staking_of(chain)
        epoch = (await staking.state()).epoch
        proof = sign_proof_of_possession_evm(protocol_key, epoch, bytes.fromhex(chain.address[2:]))
        node_id, _ = await staking.register_candidate(
            name=plan.directory.name,
            network_address=f"{plan.host}:{plan.port}",
            public_key=protocol_key.public_key(),
            proof_of_possession=proof,
            network_public_key=plan.network_public_key,
            commission_rate=0,
            storage_price=STORAGE_PRICE,
            write_price=WRITE_PRICE,
            node_capacity=NODE_CAPACITY,
        )
    return node_id


async def update_registration(
    rpc_url: str, deployment: Deployment, plan: NodePlan, *, address: bool, name: bool
) -> None:
    """Point the node's on-chain address at `plan`'s (its proxy's, for a lying node), and its
    name at its directory's (`nodeI` of its place in the committee), as asked."""
    wallet_key = load_wallet_key(plan.directory / "keys" / "wallet.key")
    async with open_evm_chain(rpc_url, deployment, wallet_key) as chain:
        staking = staking_of(chain)
        [(cap_id, _)] = await staking.node_caps(chain.address)
        if address:
            await staking.set_network_address(cap_id, plan.network_address)
        if name:
            await staking.set_name(cap_id, plan.directory.name)


async def elect_first_committee(
    rpc_url: str,
    deployment: Deployment,
    plans: Sequence[NodePlan],
    staker_key: bytes,
    funder_key: bytes,
    *,
    connector: ConnectorFactory | None = None,
) -> Committee:
    """Register every planned node, stake with each from `staker_key`, start epoch 1 from the
    funder's account. `connector`: as `deploy_staking_network`'s.

    Returns the committee of epoch 1 (its epoch change completes once the nodes report).
    """
    async with asyncio.TaskGroup() as group:
        registering = [
            group.create_task(register_node(rpc_url, deployment, p, connector=connector))
            for p in plans
        ]
    node_ids = [task.result() for task in registering]
    async with open_evm_chain(rpc_url, deployment, staker_key, connector=connector) as staker:
        for node_id in node_ids:
            await staking_of(staker).stake(node_id, NODE_STAKE_FROST)
    async with open_evm_chain(rpc_url, deployment, funder_key, connector=connector) as chain:
        for step in ("voting_end", "initiate_epoch_change"):
            if not await chain.advance_epoch():
                raise DevnetError(f"the first epoch change: {step} was not taken")
        return await chain.committee()


def arrange_by_committee(
    plans: Sequence[NodePlan], committee: Committee, lying_nodes: Sequence[int]
) -> list[NodePlan]:
    """The plans in committee order, node I in `DIR/nodes/nodeI` holding member I's shards.

    Lying nodes are named by their committee index, which registration could not know: the
    proxies' ports move to the nodes now at those indices (their on-chain address is then set
    with `update_registration`). Directories are renamed to their new index.
    """
    by_key = {plan.public_key: plan for plan in plans}
    proxy_ports = iter(sorted(p.proxy_port for p in plans if p.proxy_port is not None))
    staged = []
    for index, member in enumerate(committee.members):
        plan = by_key.get(member.public_key)
        if plan is None:
            raise DevnetError(f"committee member {member.node_id.hex()} is no node of this devnet")
        staging = plan.directory.with_name(f".staging-{plan.directory.name}")
        plan.directory.rename(staging)
        staged.append((index, member, plan, staging))
    arranged = []
    for index, member, plan, staging in staged:
        directory = plan.directory.with_name(f"node{index}")
        staging.rename(directory)
        proxy_port = next(proxy_ports) if index in lying_nodes else None
        address = f"{plan.host}:{proxy_port if proxy_port is not None else plan.port}"
        arranged.append(
            replace(
                plan,
                index=index,
                directory=directory,
                node_id=member.node_id,
                network_address=address,
                proxy_port=proxy_port,
                shards=member.shards,
            )
        )
    return arranged


async def join_node(
    rpc_url: str,
    deployment: Deployment,
    directory: Path,
    index: int,
    *,
    settings: DevnetSettings,
    stake_frost: int | None,
    host: str = LOOPBACK,
) -> NodePlan:
    """Prepare node `index` of a running staking devnet, listening on `host`: keys, funds (from
    `settings`' funder),
    registration, stake and configuration; the caller starts its process. The devnet's wallet
    stakes, if asked."""
    [port] = free_ports(1)
    plan = await asyncio.to_thread(
        partial(add_node_plan, directory, index, port, tls=settings.uses_tls, host=host)
    )
    await fund_wallets(rpc_url, deployment, [plan.wallet_address], funder_key=settings.funder)
    plan = replace(plan, node_id=await register_node(rpc_url, deployment, plan))
    if stake_frost is not None:
        staker_key = load_wallet_key(directory / "wallets" / "client.key")
        async with open_evm_chain(rpc_url, deployment, staker_key) as staker:
            await staking_of(staker).stake(plan.node_id, stake_frost)
    deployment_file = directory / "deployment.json"
    write_yaml(plan.config_path, node_config(plan, rpc_url, deployment_file, settings))
    return plan

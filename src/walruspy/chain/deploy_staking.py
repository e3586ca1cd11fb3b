"""Deploying the control plane with staking: the committee is elected, not written down.

Theory of operation (spec/walrus-system.md 2.2, 2.3; Move `init::initialize_walrus`). Walrus
creates the System and Staking objects in epoch 0, with no committee; storage nodes register as
candidates, stakers stake with them, and the first `voting_end` + `initiate_epoch_change` select
and install the committee of epoch 1 by the same code as every later one. From one deployer
account, over standard JSON-RPC only:

1. `Wal(supply)`, the whole supply minted to the deployer;
2. `Selection()` (the pure apportionment rules), `Staking(wal, selection, n_shards, epoch
   duration, epoch 0 duration)` and `Pools(wal, staking)`;
3. `Challenges()` (the storage challenges) and `System(wal, 0, epoch duration, max epochs
   ahead, capacity, 0, 0, staking, challenges)`, which starts epoch 0 with prices at the
   maximum: the block of System's transaction is where the event stream of the deployment
   starts; then `Challenges.attach(system)` (as in `walruspy.chain.deploy`);
4. two empty `Committee()`s, each with storage for `reserved_members` members written ahead
   (`Committee.reserve`, in batches: creating a storage slot costs 22,100 gas and rewriting
   one at most 5,000, so the epoch change that first installs a committee there stays well
   inside a block) and handed over to Staking, which installs every epoch's BLS committee in
   them alternately; then `Staking.attach(system, pools, committee_a, committee_b)`.

Nodes then register themselves (`EvmChain.staking.register_candidate`, from their own wallet,
with a proof of possession for that wallet and the current epoch) and anyone stakes with them.
Every transaction has an explicit gas limit, about 1.4x what the devchain measured.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Final

from eth_account import Account

from walruspy.chain.contracts import DEPLOYABLE, load_contract
from walruspy.chain.deploy import (
    MAX_COMMITTEE_MEMBERS,
    MAX_EPOCHS_AHEAD,
    MAX_SHARDS,
    U64,
    Deployment,
    abi_digest,
    attach_annexes,
    check_range,
    constructor_data,
    create_annexes,
    create_contract,
)
from walruspy.chain.evm_rpc import (
    DEFAULT_RECEIPT_TIMEOUT_S,
    ConnectorFactory,
    ContractHandle,
    TransactionSender,
    open_web3,
    rpc_errors,
)

__all__ = ["StakingParams", "deploy_staking"]

_NO_ADDRESS: Final = "0x" + "00" * 20

# Gas limits. Contract creation costs 200 gas per byte of runtime code plus the constructor.
_DEPLOY_GAS: Final = {
    "Wal": 700_000,
    "Selection": 3_600_000,
    "Staking": 6_500_000,
    "Pools": 4_800_000,
    "System": 7_200_000,
    "Committee": 4_900_000,
}
_HAND_OVER_GAS: Final = 120_000
_ATTACH_GAS: Final = 200_000
# Committee.reserve: six fresh slots (133k gas) per placeholder member; batches of 50.
_RESERVE_BATCH: Final = 50
_RESERVE_BASE_GAS: Final = 100_000
_RESERVE_PER_MEMBER_GAS: Final = 190_000


@dataclass(frozen=True, slots=True)
class StakingParams:
    """What a staking deployment fixes for its whole life (Move `initialize_walrus`)."""

    n_shards: int
    epoch_duration_s: int
    #: How long epoch 0 (registration, no committee) lasts at least.
    epoch_zero_duration_s: int = 0
    max_epochs_ahead: int = 53
    #: Capacity for epoch 0; from epoch 1 on, the nodes' capacity votes decide it.
    total_capacity_size: int = 1 << 40
    wal_supply: int = 5 * 10**18
    #: Committee members whose storage is written at deployment (None: as many as a
    #: committee can have, min(150, n_shards)).
    reserved_members: int | None = None

    @property
    def members_to_reserve(self) -> int:
        """How many members' storage `deploy_staking` writes ahead in each committee."""
        if self.reserved_members is not None:
            return self.reserved_members
        return min(MAX_COMMITTEE_MEMBERS, self.n_shards)

    def __post_init__(self) -> None:
        check_range("n_shards", self.n_shards, 1, MAX_SHARDS)
        check_range("epoch_duration_s", self.epoch_duration_s, 1, U64)
        check_range("epoch_zero_duration_s", self.epoch_zero_duration_s, 0, U64)
        check_range("max_epochs_ahead", self.max_epochs_ahead, 1, MAX_EPOCHS_AHEAD)
        check_range("total_capacity_size", self.total_capacity_size, 0, U64)
        check_range("wal_supply", self.wal_supply, 1, (1 << 256) - 1)
        check_range("reserved_members", self.members_to_reserve, 0, MAX_COMMITTEE_MEMBERS)


async def deploy_staking(
    rpc_url: str,
    deployer_key: bytes,
    params: StakingParams,
    *,
    receipt_timeout_s: float = DEFAULT_RECEIPT_TIMEOUT_S,
    connector: ConnectorFactory | None = None,
) -> Deployment:
    """Deploy the staking control plane from `deployer_key`'s account (module doc).

    The deployer holds the whole WAL supply afterwards. `connector` makes the JSON-RPC
    session's connectors (the simulator's network). Raises `ChainUnavailableError`,
    `ChainRejectedError` (e.g. no ether for gas) or `ChainRevertError` (a contract check).
    """
    compiled = dict(await asyncio.to_thread(lambda: [(n, load_contract(n)) for n in DEPLOYABLE]))
    w3 = open_web3(rpc_url, connector=connector)
    try:
        with rpc_errors(rpc_url, "read the chain id"):
            chain_id = await w3.eth.chain_id
        sender = TransactionSender(w3, rpc_url, deployer_key, chain_id, receipt_timeout_s)

        async def create(name: str, *args: object) -> tuple[str, int]:
            abi, code = compiled[name]
            data = constructor_data(abi, code, *args)
            return await create_contract(sender, name, data, _DEPLOY_GAS[name])

        wal, _ = await create("Wal", params.wal_supply)
        selection, _ = await create("Selection")
        staking, _ = await create(
            "Staking", wal, selection, params.n_shards, params.epoch_duration_s,
            params.epoch_zero_duration_s,
        )  # fmt: skip
        pools, _ = await create("Pools", wal, staking)
        annexes = await create_annexes(sender, compiled)
        system, start_block = await create(
            "System", wal, _NO_ADDRESS, params.epoch_duration_s, params.max_epochs_ahead,
            params.total_capacity_size, 0, 0, staking, *annexes.addresses(),
        )  # fmt: skip
        await attach_annexes(
            sender, w3=w3, rpc_url=rpc_url, compiled=compiled, annexes=annexes, system=system
        )
        committees = [(await create("Committee"))[0] for _ in range(2)]
        for address in committees:
            committee = ContractHandle(w3, rpc_url, address, compiled["Committee"][0])
            remaining = params.members_to_reserve
            while remaining > 0:
                batch = min(_RESERVE_BATCH, remaining)
                data = committee.calldata("reserve", batch)
                gas = _RESERVE_BASE_GAS + _RESERVE_PER_MEMBER_GAS * batch
                await sender.send("reserve committee storage", to=address, data=data, gas=gas)
                remaining -= batch
            data = committee.calldata("hand_over", staking)
            await sender.send("hand over a committee", to=address, data=data, gas=_HAND_OVER_GAS)
        handle = ContractHandle(w3, rpc_url, staking, compiled["Staking"][0])
        data = handle.calldata("attach", system, pools, *committees)
        await sender.send("attach staking", to=staking, data=data, gas=_ATTACH_GAS)
    finally:
        await w3.provider.disconnect()
    return Deployment(
        chain_id=chain_id,
        system=system,
        wal=wal,
        committee=committees[0],
        deployer=str(Account.from_key(deployer_key).address),
        start_block=start_block,
        abi_digest=abi_digest([compiled[name][0] for name in DEPLOYABLE]),
        challenges=annexes.challenges,
        attributes=annexes.attributes,
        shared_blobs=annexes.shared_blobs,
        staking=staking,
        pools=pools,
    )

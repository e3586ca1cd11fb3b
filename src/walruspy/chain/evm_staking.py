"""The staking half of the EVM chain client: nodes, pools, staked WAL and the epoch change.

Theory of operation (spec/walrus-system.md 2.2 to 2.6; Staking.vy, Pools.vy). `EvmStaking`
reads and writes the Staking and Pools contracts of a staking deployment for one account (or
only reads, without one). Like the rest of the client it re-implements no rule of the
contracts: it calls them, decodes their answers into the records below, and lets reverts
surface as `ChainRevertError` with the contract's reason. Reads of several views are pinned to
one block. Writes carry explicit gas limits (`StakingGas`); Pools pulls stake with
`transferFrom`, so the account approves Pools once for an unlimited allowance when it first
stakes (`walruspy.chain.evm_wal`), as `EvmChain` does for System.

The epoch change is permissionless and time-gated: `state()` says where the epoch is and
`StakingState.next_step_at` when `voting_end` or `initiate_epoch_change` may be called (None
while the new committee reports its shards); `take_epoch_step` calls whichever is due after a
dry run, so an early or lost call costs no gas and returns False. A node reports its shards with
`epoch_sync_done(epoch)`, which finds the StorageNodeCap this account holds for a member of the
current committee and sends the report unless it was already made.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from web3 import AsyncWeb3
from web3.types import BlockIdentifier, TxReceipt

from walruspy.chain.api import ChainRevertError, ChainUnavailableError
from walruspy.chain.contracts import Abi
from walruspy.chain.evm_events import event_topic
from walruspy.chain.evm_rpc import ContractHandle, TransactionSender, rpc_errors
from walruspy.chain.evm_wal import WalAllowance, wal_transferred
from walruspy.core.apportionment import ShardAssignment
from walruspy.core.crypto import BlsPublicKey, BlsSignature
from walruspy.tasks import gather_reads

__all__ = [
    "EpochState",
    "EvmStaking",
    "PoolInfo",
    "StakedWalRecord",
    "StakingGas",
    "StakingState",
    "StorageNodeInfo",
]

# objects.vy MAX_PAGE: the longest page of IDs one listing view returns.
_ID_PAGE: Final = 256
_REVERTS_OF_A_LOST_RACE: Final = frozenset({"wrong epoch state", "too early", "sync already done"})


class StakingGas:
    """Gas limits of the staking transactions, about 1.4x the devchain's measurements.

    Selection and the epoch change loop over the active set and the committee, so their limits
    grow with the number of nodes; the figures in `bench/chain.py` are for 4 and 100 nodes
    (100 nodes, 1000 shards: voting_end 8.6M, initiate_epoch_change 22.4M when it first fills
    a committee contract, both under the 30M block gas limit of the devchain and anvil). Both
    also write every shard's owner: about 2,000 and 2,400 gas per shard (the first election of
    10 nodes took 1.33M and 3.53M at 100 shards, 3.12M and 5.71M at 1000).
    """

    REGISTER: Final = 1_200_000
    STAKE: Final = 450_000
    REQUEST_WITHDRAW: Final = 350_000
    WITHDRAW: Final = 400_000
    SPLIT: Final = 300_000
    SETTER: Final = 300_000
    # A price vote recomputes the prices over the current committee.
    VOTE_BASE: Final = 400_000
    VOTE_PER_NODE: Final = 30_000
    COLLECT: Final = 150_000
    VOTING_END_BASE: Final = 2_000_000
    VOTING_END_PER_NODE: Final = 100_000
    VOTING_END_PER_SHARD: Final = 2_800
    INITIATE_BASE: Final = 2_500_000
    INITIATE_PER_NODE: Final = 270_000
    INITIATE_PER_SHARD: Final = 3_400
    SYNC_DONE: Final = 600_000
    MAX_TRANSACTION: Final = 30_000_000

    @classmethod
    def scaled(
        cls, base: int, per_node: int, nodes: int, per_shard: int = 0, shards: int = 0
    ) -> int:
        """`base + per_node * nodes + per_shard * shards`, capped at the block gas limit."""
        return min(base + per_node * nodes + per_shard * shards, cls.MAX_TRANSACTION)


class EpochState(enum.IntEnum):
    """Staking.vy's epoch states (Move `EpochState`)."""

    EPOCH_CHANGE_DONE = 0
    NEXT_PARAMS_SELECTED = 1
    EPOCH_CHANGE_SYNC = 2


@dataclass(frozen=True, slots=True)
class StakingState:
    """Where the epoch change is, and the schedule it follows."""

    epoch: int
    state: EpochState
    #: When the last epoch change completed (EpochChangeDone / NextParamsSelected).
    state_time_s: int
    #: Shards of the new committee that reported theirs (EpochChangeSync).
    sync_weight: int
    epoch_duration_s: int
    first_epoch_start_s: int
    n_shards: int

    def next_step_at(self) -> int | None:
        """When `voting_end` or `initiate_epoch_change` may be called; None while syncing."""
        if self.state is EpochState.EPOCH_CHANGE_SYNC:
            return None
        if self.epoch == 0:
            return self.first_epoch_start_s
        if self.state is EpochState.EPOCH_CHANGE_DONE:
            return self.state_time_s + self.epoch_duration_s // 2
        return self.state_time_s + self.epoch_duration_s


@dataclass(frozen=True, slots=True)
class StorageNodeInfo:
    """A registered storage node (Move `StorageNodeInfo` with its votes)."""

    node_id: bytes
    cap_id: bytes
    name: str
    network_address: str
    public_key: BlsPublicKey
    next_public_key: BlsPublicKey | None
    network_public_key: bytes
    storage_price: int
    write_price: int
    node_capacity: int


@dataclass(frozen=True, slots=True)
class PoolInfo:
    """A node's staking pool (amounts in FROST)."""

    node_id: bytes
    commission_rate: int
    activation_epoch: int
    latest_epoch: int
    wal_balance: int
    num_shares: int
    rewards_pool: int
    commission: int
    blocked_commission: int
    commission_receiver: str


@dataclass(frozen=True, slots=True)
class StakedWalRecord:
    """A StakedWal object (Move `StakedWal`)."""

    object_id: bytes
    owner: str
    node_id: bytes
    principal: int
    activation_epoch: int
    withdrawing: bool
    #: The epoch from which a withdrawing stake can be withdrawn (0 while staked).
    withdraw_epoch: int

    @property
    def state(self) -> str:
        """ "Staked" or "Withdrawing", as Walrus's CLI names them."""
        return "Withdrawing" if self.withdrawing else "Staked"


def _staking_committee(view: Sequence[Any]) -> ShardAssignment:
    ids, counts, shards = view
    try:
        return ShardAssignment.from_arrays([bytes(i) for i in ids], list(counts), list(shards))
    except ValueError as exc:
        raise ChainUnavailableError(f"inconsistent staking committee: {exc}") from exc


class EvmStaking:
    """Staking.vy and Pools.vy for one account (module doc); writes need a sender."""

    def __init__(
        self,
        w3: AsyncWeb3[Any],
        url: str,
        staking: str,
        pools: str,
        *,
        wal: ContractHandle,
        abis: dict[str, Abi],
        sender: TransactionSender | None = None,
    ) -> None:
        self._w3 = w3
        self.url = url
        self._staking = ContractHandle(w3, url, staking, abis["Staking"])
        self._pools = ContractHandle(w3, url, pools, abis["Pools"])
        self._wal = wal
        self._sender = sender
        self._allowance = (
            WalAllowance(wal, sender, self._pools.address) if sender is not None else None
        )
        events = {
            e["name"]: e
            for e in abis["Staking"] + abis["Pools"] + abis["Wal"]
            if e["type"] == "event"
        }
        self._registered_topic = event_topic(events["CandidateRegistered"])
        self._transferred_topic = event_topic(events["ObjectTransferred"])
        self._wal_transfer_topic = event_topic(events["Transfer"])

    # --- reads ---------------------------------------------------------------------------------

    async def _head(self) -> int:
        with rpc_errors(self.url, "read the block number"):
            return int(await self._w3.eth.block_number)

    async def state(self) -> StakingState:
        """The epoch, its state and schedule (one block's snapshot)."""
        head = await self._head()
        names = (
            "epoch", "epoch_state", "epoch_state_time_s", "sync_weight", "epoch_duration_s",
            "first_epoch_start_s", "n_shards",
        )  # fmt: skip
        values = await gather_reads(*(self._staking.view(n, block=head) for n in names))
        epoch, state, time_s, weight, duration, first, n_shards = (int(v) for v in values)
        return StakingState(epoch, EpochState(state), time_s, weight, duration, first, n_shards)

    async def epoch_state(self, block: BlockIdentifier = "latest") -> EpochState:
        """The state of the epoch change at `block`."""
        return EpochState(int(await self._staking.view("epoch_state", block=block)))

    async def committees(self) -> tuple[ShardAssignment, ShardAssignment, ShardAssignment]:
        """The previous, current and next (empty before voting_end) committees' shards."""
        head = await self._head()
        views = await gather_reads(
            self._staking.view("previous_committee", block=head),
            self._staking.view("committee", block=head),
            self._staking.view("next_committee", block=head),
        )
        previous, current, upcoming = (_staking_committee(v) for v in views)
        return previous, current, upcoming

    async def node_ids(self) -> list[bytes]:
        """Every registered node, in registration order."""
        count = int(await self._staking.view("node_count"))
        pages = await gather_reads(
            *(self._staking.view("node_ids", s, _ID_PAGE) for s in range(0, count, _ID_PAGE))
        )
        return [bytes(i) for page in pages for i in page]

    async def node_info(self, node_id: bytes) -> StorageNodeInfo:
        """A registered node (`ChainRevertError` "unknown node" otherwise)."""
        info = await self._staking.view("node_info", node_id)
        cap_id, name, address, key, next_key, network_key, storage, write, capacity = info
        return StorageNodeInfo(
            node_id=node_id,
            cap_id=bytes(cap_id),
            name=str(name),
            network_address=str(address),
            public_key=BlsPublicKey.from_eip2537(bytes(key)),
            next_public_key=BlsPublicKey.from_eip2537(bytes(next_key)) if next_key else None,
            network_public_key=bytes(network_key),
            storage_price=int(storage),
            write_price=int(write),
            node_capacity=int(capacity),
        )

    async def pool(self, node_id: bytes) -> PoolInfo:
        """The node's staking pool."""
        record = await self._pools.view("pools", node_id)
        exists, rate, activation, latest, balance, shares, rewards, commission, blocked, to = record
        if not exists:
            raise ChainRevertError("unknown node", "pools")
        return PoolInfo(
            node_id, int(rate), int(activation), int(latest), int(balance), int(shares),
            int(rewards), int(commission), int(blocked), str(to),
        )  # fmt: skip

    async def stake_for_next_vote(self, node_id: bytes) -> int:
        """The pool's stake as of the next committee selection."""
        return int(await self._pools.view("stake_for_next_vote", node_id))

    async def active_set(self) -> list[tuple[bytes, int]]:
        """(node ID, stake for the next selection) of the active set, in its order."""
        ids, stakes = await self._staking.view("active_set")
        return [(bytes(i), int(s)) for i, s in zip(ids, stakes, strict=True)]

    async def staked_wal(self, owner: str) -> list[StakedWalRecord]:
        """Every StakedWal `owner` holds."""
        owner = AsyncWeb3.to_checksum_address(owner)
        head = await self._head()
        count = int(await self._pools.view("staked_wal_count_of", owner, block=head))
        pages = await gather_reads(
            *(
                self._pools.view("staked_wal_ids_of", owner, s, _ID_PAGE, block=head)
                for s in range(0, count, _ID_PAGE)
            )
        )
        ids = [bytes(i) for page in pages for i in page]
        records = await gather_reads(*(self._pools.view("staked_wal", i, block=head) for i in ids))
        return [
            StakedWalRecord(i, owner, bytes(n), int(p), int(a), bool(w), int(e))
            for i, (n, p, a, w, e) in zip(ids, records, strict=True)
        ]

    async def node_caps(self, owner: str) -> list[tuple[bytes, bytes]]:
        """(cap ID, node ID) of every StorageNodeCap `owner` holds."""
        owner = AsyncWeb3.to_checksum_address(owner)
        caps = [bytes(c) for c in await self._staking.view("node_cap_ids_of", owner, 0, _ID_PAGE)]
        nodes = await gather_reads(*(self._staking.view("cap_node_id", c) for c in caps))
        return [(c, bytes(n)) for c, n in zip(caps, nodes, strict=True)]

    # --- writes --------------------------------------------------------------------------------

    @property
    def address(self) -> str:
        """The account's address."""
        return self._need_sender().address

    def _need_sender(self) -> TransactionSender:
        if self._sender is None:
            raise ValueError("this staking client only reads: open the chain with a private key")
        return self._sender

    async def _send(
        self, operation: str, contract: ContractHandle, data: bytes, gas: int
    ) -> TxReceipt:
        sender = self._need_sender()
        return await sender.send(operation, to=contract.address, data=data, gas=gas)

    async def _dry_run(self, contract: ContractHandle, data: bytes) -> bytes:
        """eth_call of a transaction, so a revert costs no gas; its return data."""
        with rpc_errors(self.url, "dry run"):
            return bytes(
                await self._w3.eth.call(
                    {"from": self.address, "to": contract.address, "data": data}
                )
            )

    async def register_candidate(
        self,
        *,
        name: str,
        network_address: str,
        public_key: BlsPublicKey,
        proof_of_possession: BlsSignature,
        network_public_key: bytes,
        commission_rate: int,
        storage_price: int,
        write_price: int,
        node_capacity: int,
    ) -> tuple[bytes, bytes]:
        """Register this account's storage node; its (node ID, StorageNodeCap ID).

        `proof_of_possession` signs the PROOF_OF_POSSESSION message for this account and the
        current epoch (`walruspy.core.messages.sign_proof_of_possession_evm`).
        """
        data = self._staking.calldata(
            "register_candidate", name, network_address, public_key.to_eip2537(),
            network_public_key, proof_of_possession.to_eip2537(), commission_rate,
            storage_price, write_price, node_capacity,
        )  # fmt: skip
        await self._dry_run(self._staking, data)  # a revert reason without spending gas
        receipt = await self._send("register_candidate", self._staking, data, StakingGas.REGISTER)
        [(node_id, cap_id)] = [
            (topics[1], log_data[:32])
            for topics, log_data in self._logs(receipt, self._staking, self._registered_topic)
        ]
        return node_id, cap_id

    async def stake(self, node_id: bytes, amount: int) -> bytes:
        """Stake `amount` FROST with the node's pool; the new StakedWal's ID."""
        if self._allowance is None:
            self._need_sender()
        assert self._allowance is not None
        await self._allowance.ensure()
        data = self._pools.calldata("stake_with_pool", amount, node_id)
        await self._dry_run(self._pools, data)
        receipt = await self._send("stake_with_pool", self._pools, data, StakingGas.STAKE)
        # The new StakedWal's ObjectTransferred: from the zero address to this account.
        [staked_id] = [
            topics[1]
            for topics, _ in self._logs(receipt, self._pools, self._transferred_topic)
            if topics[2] == bytes(32)
        ]
        return staked_id

    async def request_withdraw_stake(self, staked_wal_id: bytes) -> None:
        """Ask to withdraw a StakedWal (it leaves at the end of the epoch Walrus's rules say)."""
        data = self._pools.calldata("request_withdraw_stake", staked_wal_id)
        await self._send("request_withdraw_stake", self._pools, data, StakingGas.REQUEST_WITHDRAW)

    async def withdraw_stake(self, staked_wal_id: bytes) -> int:
        """Withdraw a StakedWal; the FROST paid (principal plus rewards)."""
        data = self._pools.calldata("withdraw_stake", staked_wal_id)
        await self._dry_run(self._pools, data)
        receipt = await self._send("withdraw_stake", self._pools, data, StakingGas.WITHDRAW)
        return self._wal_received(receipt)

    async def can_withdraw_early(self, staked_wal_id: bytes) -> bool:
        """Whether the StakedWal can be withdrawn at once, without a request."""
        return bool(await self._pools.view("can_withdraw_staked_wal_early", staked_wal_id))

    async def set_votes(
        self,
        cap_id: bytes,
        *,
        storage_price: int | None = None,
        write_price: int | None = None,
        node_capacity: int | None = None,
    ) -> None:
        """Change the node's votes (each None is left as it is)."""
        nodes = len(await self.active_set())
        vote_gas = StakingGas.scaled(StakingGas.VOTE_BASE, StakingGas.VOTE_PER_NODE, nodes)
        for function, value, gas in (
            ("set_storage_price_vote", storage_price, vote_gas),
            ("set_write_price_vote", write_price, vote_gas),
            ("set_node_capacity_vote", node_capacity, StakingGas.SETTER),
        ):
            if value is not None:
                data = self._staking.calldata(function, cap_id, value)
                await self._send(function, self._staking, data, gas)

    async def set_next_commission(self, cap_id: bytes, commission_rate: int) -> None:
        """The commission rate (basis points) from two epochs on."""
        data = self._staking.calldata("set_next_commission", cap_id, commission_rate)
        await self._send("set_next_commission", self._staking, data, StakingGas.SETTER)

    async def set_name(self, cap_id: bytes, name: str) -> None:
        """The node's name from now on (what explorers and `health` show)."""
        data = self._staking.calldata("set_name", cap_id, name)
        await self._send("set_name", self._staking, data, StakingGas.SETTER)

    async def set_network_address(self, cap_id: bytes, network_address: str) -> None:
        """Where the node's REST API is from now on."""
        data = self._staking.calldata("set_network_address", cap_id, network_address)
        await self._send("set_network_address", self._staking, data, StakingGas.SETTER)

    async def collect_commission(self, node_id: bytes) -> int:
        """Collect the pool's collectable commission (this account must be its receiver)."""
        data = self._pools.calldata("collect_commission", node_id)
        await self._dry_run(self._pools, data)
        receipt = await self._send("collect_commission", self._pools, data, StakingGas.COLLECT)
        return self._wal_received(receipt)

    async def take_epoch_step(self) -> bool:
        """Call `voting_end` or `initiate_epoch_change` if due; False if nothing was due.

        A dry run first, so an early call costs no gas; losing the race to another caller
        also returns False.
        """
        state = await self.state()
        if state.state is EpochState.EPOCH_CHANGE_SYNC:
            return False
        nodes = len(await self.active_set())
        if state.state is EpochState.EPOCH_CHANGE_DONE:
            function = "voting_end"
            gas = StakingGas.scaled(
                StakingGas.VOTING_END_BASE,
                StakingGas.VOTING_END_PER_NODE,
                nodes,
                StakingGas.VOTING_END_PER_SHARD,
                state.n_shards,
            )
        else:
            function = "initiate_epoch_change"
            gas = StakingGas.scaled(
                StakingGas.INITIATE_BASE,
                StakingGas.INITIATE_PER_NODE,
                nodes,
                StakingGas.INITIATE_PER_SHARD,
                state.n_shards,
            )
        data = self._staking.calldata(function)
        try:
            await self._dry_run(self._staking, data)
            await self._send(function, self._staking, data, gas)
        except ChainRevertError as exc:
            if exc.reason in _REVERTS_OF_A_LOST_RACE:
                return False
            raise
        return True

    async def epoch_sync_done(self, epoch: int) -> bool:
        """Report that this account's node holds all its shards of `epoch`.

        Returns False if the account holds no cap of a member of the current committee, or the
        report was already made (by this call before a restart, say).
        """
        _, current, _ = await self.committees()
        members = set(current.node_ids)
        for cap_id, node_id in await self.node_caps(self.address):
            if node_id not in members:
                continue
            if int(await self._staking.view("cap_last_epoch_sync_done", cap_id)) >= epoch:
                return False
            data = self._staking.calldata("epoch_sync_done", cap_id, epoch)
            try:
                await self._dry_run(self._staking, data)
                await self._send("epoch_sync_done", self._staking, data, StakingGas.SYNC_DONE)
            except ChainRevertError as exc:
                if exc.reason in _REVERTS_OF_A_LOST_RACE:
                    return False
                raise
            return True
        return False

    @staticmethod
    def _logs(
        receipt: TxReceipt, contract: ContractHandle, topic: bytes
    ) -> list[tuple[list[bytes], bytes]]:
        """(topics, data) of the receipt's logs of `contract` whose topic0 is `topic`.

        Results come from logs, not from a dry run before the transaction: concurrent
        transactions of the account would make a dry run's answer stale.
        """
        found = []
        for log in receipt["logs"]:
            topics = [bytes(t) for t in log["topics"]]
            if log["address"] == contract.address and topics and topics[0] == topic:
                found.append((topics, bytes(log["data"])))
        return found

    def _wal_received(self, receipt: TxReceipt) -> int:
        """FROST Pools paid this account in the transaction (its WAL Transfer logs)."""
        return wal_transferred(
            receipt, self._wal.address, self._wal_transfer_topic, self._pools.address, self.address
        )

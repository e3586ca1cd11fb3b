"""A staking deployment in titanoboa: WAL, Selection, Staking, Pools, System, Challenges and two
committees.

`StakingNet` drives it the way nodes, stakers and the epoch driver would: operators register
with a proof of possession for their own address and the current epoch, stakers stake from
their own accounts, and `advance` runs one whole epoch change (voting_end, then
initiate_epoch_change, then every member's epoch_sync_done), travelling in time as needed.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import boa

from tests.chain.conftest import (
    MAX_EPOCHS_AHEAD,
    TOTAL_CAPACITY,
    WAL_SUPPLY,
    ZERO_ADDRESS,
    bitmap,
    pop_for,
)
from walruspy.chain.contracts import CONTRACTS_DIR
from walruspy.core.crypto import BlsPrivateKey, aggregate_signatures

WAL = 10**9
EPOCH_S = 3600
MAX_U64 = 2**64 - 1


@dataclass
class Operator:
    """A storage node's operator: its account, BLS key and StorageNodeCap."""

    account: str
    key: BlsPrivateKey
    node_id: bytes
    cap_id: bytes


def bls_key(seed: str) -> BlsPrivateKey:
    return BlsPrivateKey.from_seed(hashlib.sha256(seed.encode()).digest())


@dataclass
class StakingNet:
    """The contracts and the accounts that use them."""

    wal: Any
    selection: Any
    staking: Any
    pools: Any
    system: Any
    committees: tuple[Any, Any]
    owner: str
    n_shards: int
    challenges: Any = None
    operators: dict[bytes, Operator] = field(default_factory=dict)

    # --- accounts ---

    def fund(self, account: str, amount: int = 10**6 * WAL) -> None:
        with boa.env.prank(self.owner):
            self.wal.transfer(account, amount)
        with boa.env.prank(account):
            self.wal.approve(self.pools.address, 2**256 - 1)
            self.wal.approve(self.system.address, 2**256 - 1)

    # --- nodes ---

    def register(
        self,
        name: str,
        *,
        commission_rate: int = 0,
        storage_price: int = 5,
        write_price: int = 1,
        capacity: int = TOTAL_CAPACITY,
        address: str | None = None,
    ) -> Operator:
        """Register a candidate from a fresh operator account; returns the operator."""
        account = str(boa.env.generate_address(name))
        key = bls_key(name)
        pop = pop_for(key, account, self.staking.epoch())
        with boa.env.prank(account):
            node_id = bytes(
                self.staking.register_candidate(
                    name,
                    address or f"{name}.walrus.test:9185",
                    key.public_key().to_eip2537(),
                    b"\x01" * 32,
                    pop,
                    commission_rate,
                    storage_price,
                    write_price,
                    capacity,
                )
            )
        cap_id = bytes(self.staking.node_info(node_id).cap_id)
        operator = Operator(account, key, node_id, cap_id)
        self.operators[node_id] = operator
        return operator

    def stake(self, staker: str, node_id: bytes, amount: int) -> bytes:
        with boa.env.prank(staker):
            return bytes(self.pools.stake_with_pool(amount, node_id))

    # --- epochs ---

    def committee(self) -> dict[bytes, tuple[int, ...]]:
        return committee_map(self.staking.committee())

    def next_committee(self) -> dict[bytes, tuple[int, ...]]:
        return committee_map(self.staking.next_committee())

    def voting_end(self) -> None:
        if self.staking.epoch() == 0:
            wait = self.staking.first_epoch_start_s() - boa.env.timestamp
        else:
            wait = self.staking.epoch_state_time_s() + EPOCH_S // 2 - boa.env.timestamp
        if wait > 0:
            boa.env.time_travel(seconds=wait)
        self.staking.voting_end()

    def initiate(self) -> None:
        if self.staking.epoch() != 0:
            wait = self.staking.epoch_state_time_s() + EPOCH_S - boa.env.timestamp
            if wait > 0:
                boa.env.time_travel(seconds=wait)
        self.staking.initiate_epoch_change()

    def sync_done(self, node_ids: Iterable[bytes] | None = None) -> None:
        epoch = self.staking.epoch()
        for node_id in self.committee() if node_ids is None else node_ids:
            operator = self.operators[node_id]
            with boa.env.prank(operator.account):
                self.staking.epoch_sync_done(operator.cap_id, epoch)

    def advance(self) -> None:
        """One whole epoch change, every member reporting its shards."""
        self.voting_end()
        self.initiate()
        self.sync_done()

    # --- certificates with the installed committee ---

    def sign(self, message: bytes, signers: Iterable[bytes] | None = None) -> tuple[bytes, bytes]:
        """An aggregate signature of the current committee's `signers` (default: all)."""
        contract = self.committees[self.staking.epoch() % 2]
        members = [bytes(m.node_id) for m in contract.committee_members()]
        chosen = set(members if signers is None else signers)
        keys = {n: self.operators[n].key for n in chosen}
        signature = aggregate_signatures(keys[n].sign(message) for n in members if n in chosen)
        indices = [i for i, n in enumerate(members) if n in chosen]
        return signature.to_eip2537(), bitmap(indices, len(members))


def committee_map(view: Any) -> dict[bytes, tuple[int, ...]]:
    """Staking's (node IDs, counts, concatenated shards) as node ID -> its shards."""
    ids, counts, shards = view
    out, position = {}, 0
    for node_id, count in zip(ids, counts, strict=True):
        out[bytes(node_id)] = tuple(shards[position : position + count])
        position += count
    return out


@functools.cache
def load(name: str) -> Any:
    """The deployer of contract `name`, compiled once per test session."""
    return boa.load_partial(str(CONTRACTS_DIR / f"{name}.vy"))


def deploy_staking_net(
    n_shards: int = 10, *, epoch_zero_s: int = 0, reserve: int = 0
) -> StakingNet:
    """Deploy and link everything from boa's default account, which holds all WAL.

    `reserve` placeholder members are written into each committee first, as `deploy_staking`
    does (Committee.reserve), so that installing a committee rewrites storage.
    """
    owner = str(boa.env.eoa)
    wal = load("Wal").deploy(WAL_SUPPLY)
    selection = load("Selection").deploy()
    staking = load("Staking").deploy(
        wal.address, selection.address, n_shards, EPOCH_S, epoch_zero_s
    )
    pools = load("Pools").deploy(wal.address, staking.address)
    challenges = load("Challenges").deploy()
    attributes = load("Attributes").deploy()
    shared_blobs = load("SharedBlobs").deploy()
    system = load("System").deploy(
        wal.address,
        ZERO_ADDRESS,
        EPOCH_S,
        MAX_EPOCHS_AHEAD,
        TOTAL_CAPACITY,
        0,
        0,
        staking.address,
        challenges.address,
        attributes.address,
        shared_blobs.address,
    )
    for annex in (challenges, attributes, shared_blobs):
        annex.attach(system.address)
    committee_deployer = load("Committee")
    committees = (committee_deployer.deploy(), committee_deployer.deploy())
    for committee in committees:
        if reserve:
            committee.reserve(reserve)
        committee.hand_over(staking.address)
    staking.attach(system.address, pools.address, committees[0].address, committees[1].address)
    return StakingNet(
        wal, selection, staking, pools, system, committees, owner, n_shards, challenges=challenges
    )


__all__ = [
    "EPOCH_S",
    "MAX_U64",
    "WAL",
    "Operator",
    "StakingNet",
    "bls_key",
    "committee_map",
    "deploy_staking_net",
]

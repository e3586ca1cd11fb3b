"""The storage committee of one epoch: who holds which shards, and with which BLS key.

Theory of operation (spec/walrus-system.md sections 2.1, 2.3 and 5). Each epoch has `n_shards`
shards spread over the committee's members; a member's *weight* is the number of shards it holds,
and every threshold is computed on weight, never on the number of members. With
`f = (n_shards - 1) // 3` Byzantine shards tolerated, Walrus's Move contract
(`bls_aggregate.move`) accepts

    a quorum                   when 3w >= 2n + 1  (2f + 1 when n = 3f + 1), and
    validity ("one correct")   when 3w >= n + 1   (f + 1 when n = 3f + 1).

These are the contract's formulas, so what a Python client thinks is a certificate is exactly what
the chain accepts. (Walrus's Rust client tests `w > 2f` and `w > f`, which agree with them when
`n mod 3 = 1`, as for Mainnet's 1000 shards, and are weaker otherwise.)

Members are kept in committee order: a member's position is its index in certificates' signer
lists and bitmaps. The committee also keeps the sum of its members' public keys, so checking a
certificate only subtracts the non-signers' keys (`walruspy.core.certificates`).

The constructor validates everything a later computation relies on: at least one member, unique
node IDs, every member holding at least one shard, the shard sets disjoint and covering
`0..n_shards-1` exactly (so the weights sum to `n_shards`). A committee comes from our own chain
reader, so a violation is a `ValueError`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from walruspy.core import params
from walruspy.core.crypto import BlsPublicKey, aggregate_public_keys

#: Length of a node ID (the staking pool's object ID in Walrus).
NODE_ID_BYTES = 32
#: Longest network address Walrus accepts (`staking_pool.move` MAX_NETWORK_ADDRESS_LENGTH).
MAX_NETWORK_ADDRESS_BYTES = 259
#: Shard counts and weights are u16 on chain.
MAX_SHARDS = (1 << 16) - 1

_MAX_EPOCH = (1 << 32) - 1


@dataclass(frozen=True, slots=True)
class CommitteeMember:
    """One storage node in a committee: its identity, key, address and shards.

    `shards` is stored sorted; the member's weight is the number of its shards.
    """

    node_id: bytes
    public_key: BlsPublicKey
    network_address: str
    shards: tuple[int, ...]
    #: The node's network (TLS) public key as registered on chain, SEC1-compressed P-256
    #: (33 bytes); empty when the node serves plain HTTP (`walruspy.node_api.tls`).
    network_public_key: bytes = b""

    def __post_init__(self) -> None:
        if not isinstance(self.node_id, bytes) or len(self.node_id) != NODE_ID_BYTES:
            raise ValueError(f"a node ID is {NODE_ID_BYTES} bytes, got {self.node_id!r}")
        if not isinstance(self.public_key, BlsPublicKey):
            raise TypeError(f"public_key must be a BlsPublicKey, got {self.public_key!r}")
        if not isinstance(self.network_address, str):
            raise TypeError(f"network_address must be a str, got {self.network_address!r}")
        if not isinstance(self.network_public_key, bytes) or len(self.network_public_key) > 64:
            raise ValueError(
                f"a network public key is at most 64 bytes, got {self.network_public_key!r}"
            )
        address_bytes = len(self.network_address.encode("utf-8"))
        if address_bytes > MAX_NETWORK_ADDRESS_BYTES:
            raise ValueError(
                f"network address of {address_bytes} bytes exceeds {MAX_NETWORK_ADDRESS_BYTES}"
            )
        shards = tuple(sorted(self.shards))
        if not shards:
            raise ValueError(f"member {self.node_id.hex()} holds no shards")
        if any(isinstance(s, bool) or not isinstance(s, int) for s in shards):
            raise TypeError(f"shard indices must be ints, got {self.shards!r}")
        if len(set(shards)) != len(shards):
            raise ValueError(f"member {self.node_id.hex()} lists a shard twice")
        object.__setattr__(self, "shards", shards)

    @property
    def weight(self) -> int:
        """The member's weight: the number of shards it holds."""
        return len(self.shards)


@dataclass(frozen=True, slots=True)
class Committee:
    """The committee of `epoch`: `members` in committee order holding all `n_shards` shards."""

    epoch: int
    n_shards: int
    members: tuple[CommitteeMember, ...]
    total_aggregated_key: BlsPublicKey = field(init=False, repr=False, compare=False)
    _shard_owners: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _index_by_node_id: dict[bytes, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.epoch, bool) or not 0 <= self.epoch <= _MAX_EPOCH:
            raise ValueError(f"an epoch is a u32, got {self.epoch!r}")
        if isinstance(self.n_shards, bool) or not 1 <= self.n_shards <= MAX_SHARDS:
            raise ValueError(f"n_shards must be in [1, {MAX_SHARDS}], got {self.n_shards!r}")
        members = tuple(self.members)
        if not members:
            raise ValueError("a committee needs at least one member")
        object.__setattr__(self, "members", members)
        object.__setattr__(self, "_index_by_node_id", self._index_node_ids(members))
        object.__setattr__(self, "_shard_owners", self._assign_shards(members))
        key = aggregate_public_keys(member.public_key for member in members)
        object.__setattr__(self, "total_aggregated_key", key)

    @staticmethod
    def _index_node_ids(members: tuple[CommitteeMember, ...]) -> dict[bytes, int]:
        index: dict[bytes, int] = {}
        for position, member in enumerate(members):
            if member.node_id in index:
                raise ValueError(f"node {member.node_id.hex()} appears twice in the committee")
            index[member.node_id] = position
        return index

    def _assign_shards(self, members: tuple[CommitteeMember, ...]) -> tuple[int, ...]:
        owners = [-1] * self.n_shards
        for position, member in enumerate(members):
            for shard in member.shards:
                if not 0 <= shard < self.n_shards:
                    raise ValueError(f"shard {shard} is outside 0..{self.n_shards - 1}")
                if owners[shard] != -1:
                    raise ValueError(
                        f"shard {shard} is held by members {owners[shard]} and {position}"
                    )
                owners[shard] = position
        unassigned = [shard for shard, owner in enumerate(owners) if owner == -1]
        if unassigned:
            raise ValueError(f"{len(unassigned)} shards have no member, first {unassigned[0]}")
        return tuple(owners)

    @property
    def n_members(self) -> int:
        """How many members the committee has."""
        return len(self.members)

    @property
    def max_n_faulty(self) -> int:
        """f = (n_shards - 1) // 3, the most shards that may be Byzantine."""
        return params.max_n_faulty(self.n_shards)

    @property
    def min_n_correct(self) -> int:
        """n_shards - f, the fewest shards guaranteed correct."""
        return self.n_shards - self.max_n_faulty

    def is_quorum(self, weight: int) -> bool:
        """Whether `weight` shards form a quorum: 3w >= 2n + 1 (Move `is_quorum`)."""
        return 3 * weight >= 2 * self.n_shards + 1

    def is_above_validity(self, weight: int) -> bool:
        """Whether `weight` shards include a correct one: 3w >= n + 1 (Move)."""
        return 3 * weight >= self.n_shards + 1

    @property
    def quorum_weight(self) -> int:
        """The smallest weight that is a quorum."""
        return params.quorum_weight(self.n_shards)

    @property
    def validity_weight(self) -> int:
        """The smallest weight that passes the validity test."""
        return params.validity_weight(self.n_shards)

    def weight_of(self, member_indices: Iterable[int]) -> int:
        """The total weight of the members at `member_indices` (each counted once)."""
        return sum(self.members[index].weight for index in set(member_indices))

    def member_index(self, node_id: bytes) -> int | None:
        """The committee position of `node_id`, or None if it is not a member."""
        return self._index_by_node_id.get(node_id)

    def shard_owner(self, shard: int) -> int:
        """The position of the member holding `shard`."""
        if not 0 <= shard < self.n_shards:
            raise ValueError(f"shard {shard} is outside 0..{self.n_shards - 1}")
        return self._shard_owners[shard]

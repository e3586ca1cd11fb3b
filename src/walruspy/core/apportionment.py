"""Committee selection: how many shards each node gets, and which ones.

Theory of operation (spec/walrus-system.md section 2.3). At `voting_end` Walrus turns the
active set (up to 150 nodes with their stake, in active-set order) into the next committee in
two steps, both ported here rule for rule from Walrus's Move code (`staking_inner.move`
`dhondt`/`max_shards_per_node`/`apportionment`, `committee.move`
`initialize`/`transition`/`diff`, `apportionment_queue.move`). The Selection contract
(`chain/contracts/Selection.vy`) implements the same rules for EVM staking; the contract tests
check it against this module.

1. **Apportionment** (`dhondt`): shards proportional to stake by D'Hondt (Jefferson). Each node
   first gets the Hagenbach-Bischoff floor `stake // (total // (n_shards + 1) + 1)` (a lower
   bound of its D'Hondt seats), capped at `max_shards_per_node`. Then, one shard at a time, the
   node with the highest quotient `stake / (seats + 1)` gets the next shard; a node at the cap
   leaves the race. Equal quotients go to the higher priority, which is `n - i` for the node at
   active-set position `i`, so the earlier node wins. The cap is `n_shards // 10` with 20 nodes
   or more, else `ceil(n_shards * 20 / (nodes * 10))`. Nodes with 0 shards are then dropped
   (`apportionment`).

   Move compares quotients as `uq64_64` fixed point (`floor(stake * 2**64 / (seats + 1))`). We
   compare exact rationals instead; the order is the same: two different quotients `a/p` and
   `b/q` differ by at least `1/(p*q)`, and with `p, q <= 65536` that is more than `2**-64`, so
   their fixed-point values differ too and in the same direction; equal rationals give equal
   fixed-point values. The contract uses Move's fixed point, so the cross-check in the contract
   tests also tests this argument.

2. **Shard assignment** (`initialize`, `transition`). The first committee deals shard indices
   0, 1, 2, ... in node-ID order. Later committees move as few shards as possible: walking the
   current committee in node-ID order, a node that left (or got 0) puts all its shards on a
   stack of free shards; a node that shrank pops its surplus from the back of its own list onto
   the stack; a node that grew is moved to the back of the pending list. The pending list is
   then the new nodes in the order given, followed by the grown nodes in node-ID order (Sui's
   `VecMap` removes entries in place and appends inserts); each pending node takes the shards it
   lacks from the top of the stack, appending them to its list. So a node keeps every shard it
   may keep, and exactly `sum(max(0, old - new))` shards change hands.

A committee (`ShardAssignment`, Move's `Committee`) lists its members in increasing node ID
(node IDs are 32 bytes, ordered as big-endian integers), each with its shards in Move's vector
order, which `transition` depends on. Its shards are always exactly `0..n_shards-1`.

`quorum_above` / `quorum_below` are the stake-weighted vote quantiles of spec section 2.4: the
highest value that a quorum (3w >= 2n + 1) of the weight voted at or above, and the lowest value
that a quorum voted at or below.

Inputs come from our own chain code, so a violated precondition is a `ValueError` (where Move
would abort). Bounds: shard counts and weights are u16 and stakes (and their sum) u64, as in Move;
all the work is O((nodes + shards) log(nodes + shards)).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from itertools import pairwise

from walruspy.core.types import ShardIndex

#: Move `MIN_NODES_FOR_SHARDS_LIMIT`: from this many nodes on, a node holds at most 1/10 of shards.
MIN_NODES_FOR_SHARDS_LIMIT = 20
#: Move `SHARDS_LIMIT_DENOMINATOR`: the 10% cap.
SHARDS_LIMIT_DENOMINATOR = 10
#: Shard counts, shard indices and vote weights are u16 in Move.
MAX_SHARDS = (1 << 16) - 1
#: Stakes and their sum are u64 in Move (the sum aborts on overflow); WAL's supply fits.
MAX_TOTAL_STAKE = (1 << 64) - 1
#: Votes (prices, capacities) are u64 in Move.
MAX_VOTE = (1 << 64) - 1
#: Length of a node ID (a staking pool's object ID).
NODE_ID_BYTES = 32


def max_shards_per_node(n_nodes: int, n_shards: int) -> int:
    """The most shards one node may hold (Move `max_shards_per_node`).

    `n_shards // 10` with at least 20 nodes, else `ceil(n_shards * 20 / (n_nodes * 10))`, which
    lets a small committee (where 10% per node could not hold all shards) reach 2/n each.
    """
    _check_count(n_shards, "n_shards")
    if isinstance(n_nodes, bool) or not isinstance(n_nodes, int) or n_nodes < 1:
        raise ValueError(f"n_nodes must be a positive int, got {n_nodes!r}")
    if n_nodes >= MIN_NODES_FOR_SHARDS_LIMIT:
        return n_shards // SHARDS_LIMIT_DENOMINATOR
    return -(-n_shards * MIN_NODES_FOR_SHARDS_LIMIT // (n_nodes * SHARDS_LIMIT_DENOMINATOR))


def dhondt(n_shards: int, stakes: Sequence[int]) -> list[int]:
    """The shards of each node, by D'Hondt on `stakes` in active-set order (Move `dhondt`).

    See the module doc: Hagenbach-Bischoff floor, per-node cap, highest quotient next, ties to
    the earlier node. Raises `ValueError` if the total stake is 0 (Move `ENoStake`) or exceeds
    u64, or if the cap leaves no room for all shards (fewer than 10 shards over 20 or more nodes,
    where Move aborts popping an empty queue).
    """
    _check_count(n_shards, "n_shards")
    for stake in stakes:
        if isinstance(stake, bool) or not isinstance(stake, int) or stake < 0:
            raise ValueError(f"a stake is a non-negative int, got {stake!r}")
    total_stake = sum(stakes)
    if total_stake > MAX_TOTAL_STAKE:
        raise ValueError(f"total stake {total_stake} exceeds u64")
    if total_stake == 0:
        raise ValueError("no stake: D'Hondt needs a positive total stake")
    n_nodes = len(stakes)
    cap = max_shards_per_node(n_nodes, n_shards)
    if n_nodes * cap < n_shards:
        raise ValueError(f"{n_nodes} nodes of at most {cap} shards cannot hold {n_shards} shards")
    distribution_number = total_stake // (n_shards + 1) + 1
    seats = [min(stake // distribution_number, cap) for stake in stakes]
    # Max-heap by (quotient, priority n - i): negate the quotient, and a lower index is a higher
    # priority. Every key is distinct, so the pop order is that of Move's queue.
    queue = [(-Fraction(stakes[i], seats[i] + 1), i) for i in range(n_nodes) if seats[i] < cap]
    heapq.heapify(queue)
    for _ in range(n_shards - sum(seats)):
        _, index = heapq.heappop(queue)
        seats[index] += 1
        if seats[index] < cap:
            heapq.heappush(queue, (-Fraction(stakes[index], seats[index] + 1), index))
    return seats


def apportionment(
    n_shards: int, active_set: Sequence[tuple[bytes, int]]
) -> list[tuple[bytes, int]]:
    """`(node_id, shards)` of the nodes that get shards, in active-set order (Move `apportionment`).

    `active_set` is `(node_id, stake)` in active-set order, which is also the tie-break order.
    """
    _check_unique_node_ids(node_id for node_id, _ in active_set)
    shards = dhondt(n_shards, [stake for _, stake in active_set])
    return [(node_id, n) for (node_id, _), n in zip(active_set, shards, strict=True) if n > 0]


@dataclass(frozen=True, slots=True)
class NodeShards:
    """One committee member and its shards, in Move's vector order (which `transition` uses)."""

    node_id: bytes
    shards: tuple[ShardIndex, ...]

    def __post_init__(self) -> None:
        _check_node_id(self.node_id)
        shards = tuple(self.shards)
        if not shards:
            raise ValueError(f"member {self.node_id.hex()} holds no shards")
        if any(isinstance(s, bool) or not isinstance(s, int) for s in shards):
            raise ValueError(f"shard indices must be ints, got {shards!r}")
        object.__setattr__(self, "shards", shards)


@dataclass(frozen=True, slots=True)
class ShardAssignment:
    """A committee's shards (Move `Committee`): members in increasing node ID.

    Validated on construction: node IDs strictly increasing, every member holding at least one
    shard, and the shards of all members together exactly `0..n_shards-1`. The empty assignment
    is the committee before the first epoch.
    """

    members: tuple[NodeShards, ...] = ()

    def __post_init__(self) -> None:
        members = tuple(self.members)
        object.__setattr__(self, "members", members)
        for left, right in pairwise(members):
            if _id_key(left.node_id) >= _id_key(right.node_id):
                raise ValueError("node IDs must be strictly increasing")
        shards = sorted(shard for member in members for shard in member.shards)
        if shards != list(range(len(shards))):
            raise ValueError("the members' shards must be exactly 0..n_shards-1, each once")
        if len(shards) > MAX_SHARDS:
            raise ValueError(f"{len(shards)} shards exceed u16")

    @property
    def n_shards(self) -> int:
        """The number of shards the committee holds."""
        return sum(len(member.shards) for member in self.members)

    @property
    def node_ids(self) -> tuple[bytes, ...]:
        """The members' node IDs, in increasing order."""
        return tuple(member.node_id for member in self.members)

    def shards_of(self, node_id: bytes) -> tuple[ShardIndex, ...] | None:
        """The shards of `node_id` in Move's order, or None if it is not a member."""
        for member in self.members:
            if member.node_id == node_id:
                return member.shards
        return None

    def to_arrays(self) -> tuple[list[bytes], list[int], list[int]]:
        """The Selection contract's encoding: node IDs, shard counts, concatenated shard lists."""
        return (
            [member.node_id for member in self.members],
            [len(member.shards) for member in self.members],
            [shard for member in self.members for shard in member.shards],
        )

    @classmethod
    def from_arrays(
        cls, node_ids: Sequence[bytes], counts: Sequence[int], shards: Sequence[int]
    ) -> ShardAssignment:
        """The inverse of `to_arrays`; `ValueError` if the arrays do not describe a committee."""
        if len(node_ids) != len(counts) or sum(counts) != len(shards):
            raise ValueError("node IDs, counts and shards do not line up")
        members, start = [], 0
        for node_id, count in zip(node_ids, counts, strict=True):
            members.append(
                NodeShards(node_id, tuple(ShardIndex(s) for s in shards[start : start + count]))
            )
            start += count
        return cls(tuple(members))


def initialize(assignment: Sequence[tuple[bytes, int]]) -> ShardAssignment:
    """The first committee: shards dealt 0, 1, 2, ... in node-ID order (Move `initialize`).

    `assignment` is `(node_id, shards)` in any order. Move would keep a 0-shard node as a member
    with no shards; `apportionment` never passes one, and here it is dropped.
    """
    _check_assignment(assignment)
    members, next_shard = [], 0
    for node_id, count in sorted(assignment, key=lambda entry: _id_key(entry[0])):
        if count > 0:
            shards = tuple(ShardIndex(s) for s in range(next_shard, next_shard + count))
            members.append(NodeShards(node_id, shards))
            next_shard += count
    return ShardAssignment(tuple(members))


def transition(
    current: ShardAssignment, new_assignment: Sequence[tuple[bytes, int]]
) -> ShardAssignment:
    """The next committee, moving as few shards as possible (Move `transition`).

    `new_assignment` is `(node_id, shards)` in active-set order, as `apportionment` gives it;
    0-shard entries are allowed and dropped. The order in which free shards are stacked and
    handed out is Move's (module doc). Raises `ValueError` if the shard totals differ (Move
    `EInvalidShardAssignment`).
    """
    _check_assignment(new_assignment)
    new_total = sum(count for _, count in new_assignment)
    if new_total != current.n_shards:
        raise ValueError(
            f"the new assignment has {new_total} shards, the committee {current.n_shards}"
        )
    assigned = dict(new_assignment)
    held_by = {member.node_id: member.shards for member in current.members}
    # New nodes keep their given order; grown members follow in node-ID order.
    pending = [(node_id, n) for node_id, n in new_assignment if node_id not in held_by]
    kept: list[NodeShards] = []
    free: list[ShardIndex] = []
    for member in current.members:
        count = assigned.get(member.node_id, 0)
        held = len(member.shards)
        if count == 0:
            free.extend(member.shards)
        elif count <= held:
            free.extend(reversed(member.shards[count:]))
            kept.append(NodeShards(member.node_id, member.shards[:count]))
        else:
            pending.append((member.node_id, count))
    for node_id, count in pending:
        if count == 0:
            continue
        shards = list(held_by.get(node_id, ()))
        while len(shards) < count:
            shards.append(free.pop())
        kept.append(NodeShards(node_id, tuple(shards)))
    assert not free, "every freed shard is handed out when the totals match"
    kept.sort(key=lambda member: _id_key(member.node_id))
    return ShardAssignment(tuple(kept))


def diff(first: ShardAssignment, second: ShardAssignment) -> tuple[list[bytes], list[bytes]]:
    """The node IDs only in `first` and those only in `second`, each in increasing order."""
    first_ids, second_ids = set(first.node_ids), set(second.node_ids)
    return (
        [node_id for node_id in first.node_ids if node_id not in second_ids],
        [node_id for node_id in second.node_ids if node_id not in first_ids],
    )


def is_quorum(weight: int, n_shards: int) -> bool:
    """Whether `weight` shards out of `n_shards` are a quorum: 3w >= 2n + 1."""
    return 3 * weight >= 2 * n_shards + 1


def quorum_above(votes: Sequence[tuple[int, int]], n_shards: int) -> int:
    """The highest value such that a quorum voted for it or more (Move `quorum_above`).

    `votes` are `(value, weight)`; the weights are committee weights and must sum to `n_shards`.
    """
    _check_votes(votes, n_shards)
    weight = 0
    for value, vote_weight in sorted(votes, key=lambda vote: vote[0], reverse=True):
        weight += vote_weight
        if is_quorum(weight, n_shards):
            return value
    raise AssertionError("unreachable: all the weight is a quorum")


def quorum_below(votes: Sequence[tuple[int, int]], n_shards: int) -> int:
    """The lowest value such that a quorum voted for it or less (Move `quorum_below`).

    `votes` are `(value, weight)`; the weights are committee weights and must sum to `n_shards`.
    Like Move, walk down from the highest value, removing weight until no quorum is left.
    """
    _check_votes(votes, n_shards)
    weight = n_shards
    for value, vote_weight in sorted(votes, key=lambda vote: vote[0], reverse=True):
        weight -= vote_weight
        if not is_quorum(weight, n_shards):
            return value
    raise AssertionError("unreachable: no weight is not a quorum")


def _id_key(node_id: bytes) -> int:
    return int.from_bytes(node_id, "big")


def _check_count(value: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SHARDS:
        raise ValueError(f"{what} must be an int in [0, {MAX_SHARDS}], got {value!r}")


def _check_node_id(node_id: bytes) -> None:
    if not isinstance(node_id, bytes) or len(node_id) != NODE_ID_BYTES:
        raise ValueError(f"a node ID is {NODE_ID_BYTES} bytes, got {node_id!r}")


def _check_unique_node_ids(node_ids: Iterable[bytes]) -> None:
    seen: set[bytes] = set()
    for node_id in node_ids:
        _check_node_id(node_id)
        if node_id in seen:
            raise ValueError(f"node {node_id.hex()} appears twice")
        seen.add(node_id)


def _check_assignment(assignment: Sequence[tuple[bytes, int]]) -> None:
    _check_unique_node_ids(node_id for node_id, _ in assignment)
    for _, count in assignment:
        _check_count(count, "a node's shard count")
    _check_count(sum(count for _, count in assignment), "the total shard count")


def _check_votes(votes: Sequence[tuple[int, int]], n_shards: int) -> None:
    _check_count(n_shards, "n_shards")
    for value, weight in votes:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_VOTE:
            raise ValueError(f"a vote is a u64, got {value!r}")
        _check_count(weight, "a vote's weight")
    total = sum(weight for _, weight in votes)
    if n_shards == 0 or total != n_shards:
        raise ValueError(f"vote weights sum to {total}, expected n_shards = {n_shards} > 0")

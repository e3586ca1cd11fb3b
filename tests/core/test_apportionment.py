"""walruspy.core.apportionment: Walrus's Move tests ported, and properties of the rules.

The tables (`DHONDT_CASES`, `QUORUM_*_CASES`, `COMPUTE_CASES`) are the cases of Walrus's
`staking_inner_tests.move`, `staking_inner_compute_tests.move` and `committee_tests.move`; the
contract tests (`tests/chain/test_contracts_selection.py`) run the same tables on chain.
Where a Move test checks only that a node "contains" shards, the exact lists follow by hand
from Move's `transition` (stack order) and are spelled out here.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from walruspy.core.apportionment import (
    MAX_TOTAL_STAKE,
    NodeShards,
    ShardAssignment,
    apportionment,
    dhondt,
    diff,
    initialize,
    is_quorum,
    max_shards_per_node,
    quorum_above,
    quorum_below,
    transition,
)
from walruspy.core.types import ShardIndex


def nid(i: int) -> bytes:
    """Move `address::from_u256(i).to_id()`: the node ID whose big-endian value is `i`."""
    return i.to_bytes(32, "big")


def counts_of(committee: ShardAssignment) -> dict[bytes, int]:
    return {member.node_id: len(member.shards) for member in committee.members}


def owners_of(committee: ShardAssignment) -> dict[int, bytes]:
    return {shard: member.node_id for member in committee.members for shard in member.shards}


# --- Move tables ------------------------------------------------------------------------------

_EVEN = [25_000] * 4
_UNEVEN = [50_000, 30_000, 15_000, 5_000]
_MIXED = [50_000, 50_000, 30_000, 15_000, 15_000, 5_000]

#: (n_shards, stakes, expected): `test_dhondt_*` of staking_inner_tests.move.
DHONDT_CASES: list[tuple[int, list[int], list[int]]] = [
    # test_dhondt_basic
    (4, _EVEN, [1, 1, 1, 1]),
    (778, _EVEN, [195, 195, 194, 194]),
    (1000, _EVEN, [250, 250, 250, 250]),
    (4, _UNEVEN, [2, 2, 0, 0]),
    (777, _UNEVEN, [389, 234, 116, 38]),
    (1000, _UNEVEN, [500, 300, 150, 50]),
    (4, _MIXED, [2, 1, 1, 0, 0, 0]),
    (777, _MIXED, [236, 236, 142, 70, 70, 23]),
    (1000, _MIXED, [303, 303, 182, 91, 91, 30]),
    # test_dhondt_ties
    (7, _EVEN, [2, 2, 2, 1]),
    (6, _EVEN, [2, 2, 1, 1]),
    (7, [200, 200, 200, 100], [2, 2, 2, 1]),
    (9, [200, 200, 200, 100, 100, 100], [2, 2, 2, 1, 1, 1]),
    (18, [780_000, 650_000, 520_000, 390_000, 260_000], [6, 5, 4, 2, 1]),
    # test_dhondt_edge_case
    (0, [100, 90, 80], [0, 0, 0]),
    (5, [1, 0, 0], [4, 1, 0]),
    (3, [1_000_000, 999_999], [2, 1]),
    (500, [1_000_000_000_000, 900_000_000_000, 100_000_000_000], [250, 225, 25]),
    # test_dhondt_without_max_shards / test_dhondt_with_max_shards
    (1000, [600, 100, 200, 100], [500, 125, 250, 125]),
    (1000, [200 if i == 5 else 20 for i in range(21)], [100 if i == 5 else 45 for i in range(21)]),
]

#: Move's larger tests: 10^19 FROST split by basis points; a tenth of the nodes get shards.
_TOTAL_STAKE_LARGE = 10_000_000_000_000_000_000
LARGE_BASIS_POINTS = {
    100: [1250] * 5 + [733] * 4 + [728] + [1] * 90,
    1000: [125] * 50 + [60] * 40 + [45] * 10 + [1] * 900,
}

#: (votes, weights, n_shards, expected): test_quorum_above* / test_quorum_below*.
QUORUM_ABOVE_CASES: list[tuple[list[int], list[int], int, int]] = [
    (list(range(1, 11)), [5, 5, 4, 6, 3, 7, 2, 8, 1, 9], 50, 4),
    (list(range(1, 11)), [17, 1, 1, 1, 3, 7, 2, 8, 1, 9], 50, 1),
    ([1], [50], 50, 1),
]
QUORUM_BELOW_CASES: list[tuple[list[int], list[int], int, int]] = [
    (list(range(1, 11)), [5, 5, 4, 6, 3, 7, 4, 6, 1, 9], 50, 7),
    (list(range(1, 11)), [5, 5, 4, 6, 3, 7, 1, 1, 1, 17], 50, 10),
    ([1], [50], 50, 1),
]

#: (n_shards, stakes, expected shard counts): staking_inner_compute_tests.move (pools are
#: registered in order, which is their active-set order).
COMPUTE_CASES: list[tuple[int, list[int], list[int]]] = [
    (10, [1_000_000], [10]),
    (6, [1_000, 1_000, 1_000], [2, 2, 2]),
    (10, [4_000, 2_000, 1_000], [6, 3, 1]),
    (10, [1_000, 1_000, 1_000], [4, 3, 3]),
]

#: committee_tests.move `default_scenario`, with each list exactly as Move's stack order
#: gives it: (assignment, expected committee by node number).
DEFAULT_SCENARIO: list[tuple[list[tuple[int, int]], dict[int, list[int]]]] = [
    (
        [(1, 2), (2, 2), (3, 2), (4, 2), (5, 2)],
        {1: [0, 1], 2: [2, 3], 3: [4, 5], 4: [6, 7], 5: [8, 9]},
    ),
    ([(1, 4), (2, 3), (3, 3)], {1: [0, 1, 9, 8], 2: [2, 3, 7], 3: [4, 5, 6]}),
    ([(2, 3), (3, 3), (4, 2), (5, 2)], {2: [2, 3, 7], 3: [4, 5, 6], 4: [8, 9], 5: [1, 0]}),
    ([(1, 10)], {1: [0, 1, 9, 8, 6, 5, 4, 7, 3, 2]}),
]


def as_committee(expected: dict[int, list[int]]) -> ShardAssignment:
    return ShardAssignment(
        tuple(
            NodeShards(nid(node), tuple(ShardIndex(s) for s in shards))
            for node, shards in sorted(expected.items())
        )
    )


def large_stakes(basis_points: Sequence[int]) -> list[int]:
    return [bp * _TOTAL_STAKE_LARGE // 10_000 for bp in basis_points]


# --- D'Hondt --------------------------------------------------------------------------------


@pytest.mark.parametrize(("n_shards", "stakes", "expected"), DHONDT_CASES)
def test_dhondt_matches_move(n_shards: int, stakes: list[int], expected: list[int]) -> None:
    assert dhondt(n_shards, stakes) == expected
    assert sum(expected) == n_shards


@pytest.mark.parametrize("n_nodes", sorted(LARGE_BASIS_POINTS))
def test_larger_dhondt_inputs_fixed_stake(n_nodes: int) -> None:
    allocation = dhondt(1000, large_stakes(LARGE_BASIS_POINTS[n_nodes]))
    assert sum(1 for n in allocation if n > 0) == n_nodes // 10
    assert sum(allocation) == 1000


@pytest.mark.parametrize(("n_shards", "stakes", "expected"), COMPUTE_CASES)
def test_compute_next_committee_matches_move(
    n_shards: int, stakes: list[int], expected: list[int]
) -> None:
    active_set = [(nid(i + 1), stake) for i, stake in enumerate(stakes)]
    committee = initialize(apportionment(n_shards, active_set))
    assert [len(member.shards) for member in committee.members] == expected


def test_compute_large_committee() -> None:
    """20 nodes of stake 1000 + i over 100 shards: all 20 are in the committee."""
    active_set = [(nid(i + 1), 1_000 + i) for i in range(20)]
    committee = initialize(apportionment(100, active_set))
    assert len(committee.members) == 20


def test_dhondt_no_stake() -> None:
    with pytest.raises(ValueError, match="no stake"):
        dhondt(0, [0, 0, 0])
    with pytest.raises(ValueError, match="no stake"):
        dhondt(10, [])


@pytest.mark.parametrize(
    ("n_shards", "stakes", "match"),
    [
        (10, [MAX_TOTAL_STAKE, 1], "exceeds u64"),
        (10, [-1, 5], "non-negative"),
        (10, [True, 5], "non-negative"),
        (1 << 16, [1], r"n_shards must be an int in \[0, 65535\]"),
        (5, [1] * 20, "cannot hold 5 shards"),  # cap 0 with 20 nodes: Move pops an empty queue
    ],
)
def test_dhondt_rejects(n_shards: int, stakes: list[int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        dhondt(n_shards, stakes)


@pytest.mark.parametrize(
    ("n_nodes", "n_shards", "expected"),
    [
        (1, 1000, 2000),
        (3, 5, 4),
        (4, 1000, 500),
        (19, 1000, 106),
        (20, 1000, 100),
        (150, 1000, 100),
    ],
)
def test_max_shards_per_node(n_nodes: int, n_shards: int, expected: int) -> None:
    assert max_shards_per_node(n_nodes, n_shards) == expected


def test_max_shards_per_node_needs_a_node() -> None:
    with pytest.raises(ValueError, match="n_nodes"):
        max_shards_per_node(0, 10)


def test_apportionment_drops_empty_nodes_and_keeps_order() -> None:
    active_set = [(nid(9), 50_000), (nid(3), 30_000), (nid(7), 15_000), (nid(1), 5_000)]
    assert apportionment(4, active_set) == [(nid(9), 2), (nid(3), 2)]


def test_apportionment_rejects_duplicate_nodes() -> None:
    with pytest.raises(ValueError, match="appears twice"):
        apportionment(10, [(nid(1), 5), (nid(1), 6)])


def naive_dhondt(n_shards: int, stakes: Sequence[int]) -> list[int]:
    """Move's loop without the floor: one shard at a time, by Move's uq64_64 quotients."""
    cap = max_shards_per_node(len(stakes), n_shards)
    seats = [0] * len(stakes)
    for _ in range(n_shards):
        open_nodes = [i for i in range(len(stakes)) if seats[i] < cap]
        best = max(open_nodes, key=lambda i: ((stakes[i] << 64) // (seats[i] + 1), -i))
        seats[best] += 1
    return seats


stake_lists = st.one_of(
    st.lists(st.integers(0, 10**15), min_size=1, max_size=40),
    # near ties: equal stakes give the tie-break its work
    st.integers(1, 10**6).flatmap(
        lambda base: st.lists(st.integers(base, base + 2), min_size=1, max_size=40)
    ),
    # whales over dust: the per-node cap binds
    st.tuples(
        st.lists(st.integers(10**14, 10**16), min_size=1, max_size=5),
        st.lists(st.integers(0, 1000), min_size=0, max_size=35),
    ).map(lambda parts: parts[0] + parts[1]),
).filter(lambda stakes: sum(stakes) > 0)


def shard_count_for(n_nodes: int) -> st.SearchStrategy[int]:
    """Shard counts the cap can hold (from 20 nodes on, the cap is 0 below 10 shards)."""
    low = 10 if n_nodes >= 20 else 0
    return st.one_of(st.integers(low, 300), st.sampled_from([max(low, 1), 1000]))


@given(st.data())
def test_dhondt_equals_the_plain_loop(data: st.DataObject) -> None:
    """The Hagenbach-Bischoff floor is a shortcut: the plain one-at-a-time loop agrees."""
    stakes = data.draw(stake_lists)
    n_shards = data.draw(st.integers(10 if len(stakes) >= 20 else 0, 300))
    assert dhondt(n_shards, stakes) == naive_dhondt(n_shards, stakes)


@given(st.data())
def test_dhondt_assigns_every_shard_within_the_cap(data: st.DataObject) -> None:
    stakes = data.draw(stake_lists)
    n_shards = data.draw(shard_count_for(len(stakes)))
    shards = dhondt(n_shards, stakes)
    assert sum(shards) == n_shards
    assert max(shards) <= max_shards_per_node(len(stakes), n_shards)
    # More stake never means fewer shards: a node at the cap has the most, and otherwise its
    # next quotient would beat the smaller node's last one.
    for i in range(len(stakes)):
        for j in range(len(stakes)):
            if stakes[i] > stakes[j]:
                assert shards[i] >= shards[j]


def test_dhondt_of_moves_random_setup() -> None:
    """Move `random_dhondt_setup` shape, 100 nodes: each takes 1..99 per mille of what is left,
    node 0 also takes the rest."""
    left = _TOTAL_STAKE_LARGE
    stakes = []
    for i in range(100):
        stake = ((7 * i) % 99 + 1) * (left // 1000)
        left -= stake
        stakes.append(stake)
    stakes[0] += left
    assert sum(stakes) == _TOTAL_STAKE_LARGE
    assert sum(dhondt(1000, stakes)) == 1000


# --- Committees -------------------------------------------------------------------------------


def test_empty_committee() -> None:
    assert ShardAssignment().members == ()
    assert ShardAssignment().n_shards == 0
    assert initialize([]) == ShardAssignment()


def test_sort_and_preserve_shards_correctly() -> None:
    """committee_tests `sort_and_preserve_shards_correctly`: unsorted input, reverse order."""
    nodes = [nid(3 - i) for i in range(4)]
    committee = initialize([(node, 2) for node in nodes])
    assert [member.shards for member in committee.members] == [(0, 1), (2, 3), (4, 5), (6, 7)]
    assert committee.node_ids == tuple(nid(i) for i in range(4))
    after = transition(committee, [(nid(3), 4), (nid(2), 4)])
    # Node 0 and 1 leave: free = [0, 1, 2, 3]; node 2 (first by ID) pops 3 and 2.
    assert after == as_committee({2: [4, 5, 3, 2], 3: [6, 7, 1, 0]})


def test_default_scenario() -> None:
    committee = ShardAssignment()
    for step, (assignment, expected) in enumerate(DEFAULT_SCENARIO):
        new = [(nid(node), count) for node, count in assignment]
        committee = initialize(new) if step == 0 else transition(committee, new)
        assert committee == as_committee(expected)


def test_ignore_empty_assignments() -> None:
    nodes = [nid(i) for i in range(1, 6)]
    committee = initialize(list(zip(nodes, [2, 2, 2, 0, 0], strict=True)))
    assert committee.node_ids == tuple(nodes[:3])
    after = transition(committee, list(zip(nodes, [0, 2, 2, 2, 0], strict=True)))
    assert after.node_ids == tuple(nodes[1:4])
    assert after.shards_of(nid(2)) == committee.shards_of(nid(2))
    assert after.shards_of(nid(3)) == committee.shards_of(nid(3))
    assert after.shards_of(nid(4)) == (1, 0)


def test_reject_invalid_shard_assignment() -> None:
    committee = initialize([(nid(1), 2), (nid(2), 2), (nid(3), 2)])
    after = transition(committee, [(nid(1), 1), (nid(2), 3), (nid(3), 2)])
    assert after == as_committee({1: [0], 2: [2, 3, 1], 3: [4, 5]})
    with pytest.raises(ValueError, match="8 shards, the committee 6"):
        transition(after, [(nid(1), 3), (nid(2), 3), (nid(3), 2)])


def test_large_set_assignments() -> None:
    """committee_tests `large_set_assignments_1/2` (not run by Move: they need a gas limit)."""
    nodes = [nid(i) for i in range(1000)]
    committee = initialize([(node, 1) for node in nodes])
    assert [member.shards for member in committee.members] == [(i,) for i in range(1000)]
    # Move's `_2` assigns i % 3 shards, which sum to 999, not 1000: Move aborts there too.
    with pytest.raises(ValueError, match="999 shards"):
        transition(committee, [(node, i % 3) for i, node in enumerate(nodes)])
    counts = [i % 3 for i in range(1000)]
    counts[1] += 1
    after = transition(committee, list(zip(nodes, counts, strict=True)))
    assert counts_of(after) == {node: n for node, n in zip(nodes, counts, strict=True) if n}


def test_diff_at_different_sizes() -> None:
    """committee_tests `diff_at_different_sizes`.

    Move's helper gives the first node 0 shards, which Move keeps as an empty member and we
    drop; so each node here gets one shard more, which keeps the test's meaning.
    """

    def committee(ids: list[int]) -> ShardAssignment:
        return initialize([(nid(node), i + 1) for i, node in enumerate(ids)])

    assert diff(committee([1, 2, 3]), committee([2, 3, 4])) == ([nid(1)], [nid(4)])
    assert diff(committee([1, 2, 3]), ShardAssignment()) == ([nid(1), nid(2), nid(3)], [])


def test_transition_order_follows_move() -> None:
    """Hand-derived from Move: shrinkers push surplus back to front, new nodes pop first in
    the given order, then grown nodes in ID order."""
    committee = as_committee({1: [0, 1, 2], 2: [3, 4, 5], 3: [6, 7, 8]})
    # Node 1 shrinks by 2 (pushes 2, then 1), node 2 by 1 (pushes 5): the stack is [2, 1, 5].
    # The new nodes pop first, in the given order (5 takes 5, then 4 takes 1), then node 3.
    after = transition(committee, [(nid(5), 1), (nid(3), 4), (nid(4), 1), (nid(1), 1), (nid(2), 2)])
    assert after == as_committee({1: [0], 2: [3, 4], 3: [6, 7, 8, 2], 4: [1], 5: [5]})
    # A leaver pushes its shards front to back: [0, 1, 2]; node 4 (new) pops 2 and 1 before
    # node 2 (grown) pops 0.
    after = transition(committee, [(nid(4), 2), (nid(2), 4), (nid(3), 3)])
    assert after == as_committee({2: [3, 4, 5, 0], 3: [6, 7, 8], 4: [2, 1]})


@pytest.mark.parametrize(
    ("members", "match"),
    [
        (
            [NodeShards(nid(2), (ShardIndex(0),)), NodeShards(nid(1), (ShardIndex(1),))],
            "increasing",
        ),
        (
            [NodeShards(nid(1), (ShardIndex(0),)), NodeShards(nid(1), (ShardIndex(1),))],
            "increasing",
        ),
        ([NodeShards(nid(1), (ShardIndex(0), ShardIndex(0)))], "exactly"),
        ([NodeShards(nid(1), (ShardIndex(1),))], "exactly"),
    ],
)
def test_shard_assignment_rejects(members: list[NodeShards], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ShardAssignment(tuple(members))


def test_node_shards_rejects() -> None:
    with pytest.raises(ValueError, match="no shards"):
        NodeShards(nid(1), ())
    with pytest.raises(ValueError, match="32 bytes"):
        NodeShards(b"\x01", (ShardIndex(0),))


def test_node_ids_order_as_big_endian_integers() -> None:
    low, high = b"\x00" * 31 + b"\xff", b"\x01" + b"\x00" * 31
    committee = initialize([(high, 1), (low, 1)])
    assert committee.node_ids == (low, high)


def test_assignments_are_checked() -> None:
    with pytest.raises(ValueError, match="appears twice"):
        initialize([(nid(1), 1), (nid(1), 2)])
    with pytest.raises(ValueError, match="shard count"):
        initialize([(nid(1), -1)])
    with pytest.raises(ValueError, match="total shard count"):
        initialize([(nid(1), 40_000), (nid(2), 40_000)])


def test_arrays_round_trip_and_are_checked() -> None:
    committee = DEFAULT_SCENARIO[1][1]
    assigned = as_committee(committee)
    assert ShardAssignment.from_arrays(*assigned.to_arrays()) == assigned
    assert assigned.to_arrays()[1] == [4, 3, 3]
    with pytest.raises(ValueError, match="line up"):
        ShardAssignment.from_arrays([nid(1)], [2], [0])


node_ids = st.binary(min_size=32, max_size=32)


@st.composite
def stake_changes(draw: st.DrawFn) -> tuple[int, list[tuple[bytes, int]], list[tuple[bytes, int]]]:
    """n_shards, an active set, and a later one: some nodes leave, some join, stakes move."""
    first = draw(st.lists(node_ids, min_size=1, max_size=30, unique=True))
    joining = [
        node for node in draw(st.lists(node_ids, max_size=8, unique=True)) if node not in first
    ]
    staying = [node for node in first if draw(st.booleans()) or node == first[0]]
    second = draw(st.permutations(staying + joining))
    stake = st.integers(0, 10**12)
    before = [(node, draw(stake)) for node in first]
    after = [(node, draw(stake)) for node in second]
    assume(sum(s for _, s in before) > 0 and sum(s for _, s in after) > 0)
    low = 10 if max(len(first), len(second)) >= 20 else 1
    return draw(st.integers(low, 1000)), before, after


@given(stake_changes())
def test_transition_moves_only_what_the_apportionment_requires(
    change: tuple[int, list[tuple[bytes, int]], list[tuple[bytes, int]]],
) -> None:
    n_shards, before, after = change
    old = initialize(apportionment(n_shards, before))
    new_assignment = apportionment(n_shards, after)
    new = transition(old, new_assignment)

    # Each shard exactly once (the constructor checks it too), counts as apportioned, capped.
    assert sorted(owners_of(new)) == list(range(n_shards))
    assert counts_of(new) == dict(new_assignment)
    assert max(counts_of(new).values()) <= max_shards_per_node(len(after), n_shards)
    # Exactly the shards that the change in counts forces to move change hands.
    old_counts, new_counts = counts_of(old), counts_of(new)
    moved = sum(1 for shard, owner in owners_of(new).items() if owners_of(old)[shard] != owner)
    required = sum(max(0, n - new_counts.get(node, 0)) for node, n in old_counts.items())
    assert moved == required
    # Kept shards stay with their node, at the front of its list.
    for member in new.members:
        previous = old.shards_of(member.node_id) or ()
        kept = min(len(previous), len(member.shards))
        assert member.shards[:kept] == previous[:kept]


@given(stake_changes())
def test_diff_is_the_set_difference(
    change: tuple[int, list[tuple[bytes, int]], list[tuple[bytes, int]]],
) -> None:
    n_shards, before, after = change
    old = initialize(apportionment(n_shards, before))
    new = transition(old, apportionment(n_shards, after))
    left, right = diff(old, new)
    assert left == [node for node in old.node_ids if node not in set(new.node_ids)]
    assert right == [node for node in new.node_ids if node not in set(old.node_ids)]
    assert set(left).isdisjoint(right)


# --- Quorums -------------------------------------------------------------------------------


@pytest.mark.parametrize(("values", "weights", "n_shards", "expected"), QUORUM_ABOVE_CASES)
def test_quorum_above_matches_move(
    values: list[int], weights: list[int], n_shards: int, expected: int
) -> None:
    assert quorum_above(list(zip(values, weights, strict=True)), n_shards) == expected


@pytest.mark.parametrize(("values", "weights", "n_shards", "expected"), QUORUM_BELOW_CASES)
def test_quorum_below_matches_move(
    values: list[int], weights: list[int], n_shards: int, expected: int
) -> None:
    assert quorum_below(list(zip(values, weights, strict=True)), n_shards) == expected


@st.composite
def committee_votes(draw: st.DrawFn) -> tuple[list[tuple[int, int]], int]:
    """Votes with committee weights (at least 1 each) that sum to n_shards."""
    weights = draw(st.lists(st.integers(1, 100), min_size=1, max_size=40))
    values = st.one_of(st.integers(0, 20), st.integers(0, (1 << 64) - 1))
    return [(draw(values), weight) for weight in weights], sum(weights)


@given(committee_votes())
def test_quorums_are_the_weighted_quantiles(votes_and_n: tuple[list[tuple[int, int]], int]) -> None:
    votes, n_shards = votes_and_n
    values = {value for value, _ in votes}
    weight_at_or_above = {v: sum(w for value, w in votes if value >= v) for v in values}
    weight_at_or_below = {v: sum(w for value, w in votes if value <= v) for v in values}
    above = max(v for v in values if is_quorum(weight_at_or_above[v], n_shards))
    below = min(v for v in values if is_quorum(weight_at_or_below[v], n_shards))
    assert quorum_above(votes, n_shards) == above
    assert quorum_below(votes, n_shards) == below
    # Two quorums overlap, so the value a quorum reaches from below is at least the one a
    # quorum reaches from above.
    assert below >= above


@pytest.mark.parametrize(
    ("votes", "n_shards", "match"),
    [
        ([(1, 5)], 6, "sum to 5"),
        ([], 0, "n_shards = 0"),
        ([(-1, 5)], 5, "u64"),
        ([(1 << 64, 5)], 5, "u64"),
        ([(1, 1 << 16)], 5, "weight"),
    ],
)
def test_quorums_reject(votes: list[tuple[int, int]], n_shards: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        quorum_above(votes, n_shards)
    with pytest.raises(ValueError, match=match):
        quorum_below(votes, n_shards)

"""Selection.vy against walruspy.core.apportionment: Walrus's Move tables and random inputs.

The Python module is the reference (a direct port of Move's loops, with exact rational
quotients); the contract uses Move's uq64_64 quotients and a longer starting floor, so equal
outputs on random stakes, near ties and capped whales also check those two shortcuts.
"""

from __future__ import annotations

from typing import Any

import boa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.core.test_apportionment import (
    COMPUTE_CASES,
    DEFAULT_SCENARIO,
    DHONDT_CASES,
    LARGE_BASIS_POINTS,
    QUORUM_ABOVE_CASES,
    QUORUM_BELOW_CASES,
    as_committee,
    committee_votes,
    large_stakes,
    nid,
    stake_changes,
    stake_lists,
)
from walruspy.chain.contracts import CONTRACTS_DIR
from walruspy.core import apportionment as model
from walruspy.core.apportionment import ShardAssignment

EIP170_MAX_RUNTIME_BYTES = 24_576
#: Hypothesis examples per property: each is a few contract calls of a few milliseconds.
EXAMPLES = 25
#: The gas budget the brief sets for dhondt + transition inside `voting_end`.
SELECTION_GAS_BUDGET = 5_000_000


@pytest.fixture(scope="module")
def selection() -> Any:
    return boa.load_partial(str(CONTRACTS_DIR / "Selection.vy")).deploy()


def on_chain_initialize(selection: Any, assignment: list[tuple[bytes, int]]) -> ShardAssignment:
    ids, counts, shards = selection.initialize(
        [node for node, _ in assignment], [count for _, count in assignment]
    )
    return ShardAssignment.from_arrays([bytes(i) for i in ids], list(counts), list(shards))


def on_chain_transition(
    selection: Any, current: ShardAssignment, assignment: list[tuple[bytes, int]]
) -> ShardAssignment:
    ids, counts, shards = selection.transition(
        *current.to_arrays(), [node for node, _ in assignment], [count for _, count in assignment]
    )
    return ShardAssignment.from_arrays([bytes(i) for i in ids], list(counts), list(shards))


def on_chain_apportionment(
    selection: Any, n_shards: int, active_set: list[tuple[bytes, int]]
) -> list[tuple[bytes, int]]:
    shards = selection.dhondt(n_shards, [stake for _, stake in active_set])
    return [(node, n) for (node, _), n in zip(active_set, shards, strict=True) if n > 0]


# --- Move tables ------------------------------------------------------------------------------


@pytest.mark.parametrize(("n_shards", "stakes", "expected"), DHONDT_CASES)
def test_dhondt_matches_move(
    selection: Any, n_shards: int, stakes: list[int], expected: list[int]
) -> None:
    assert list(selection.dhondt(n_shards, stakes)) == expected


def test_larger_dhondt_inputs_fixed_stake(selection: Any) -> None:
    stakes = large_stakes(LARGE_BASIS_POINTS[100])  # Move's 1000-node case exceeds MAX_NODES
    allocation = list(selection.dhondt(1000, stakes))
    assert allocation == model.dhondt(1000, stakes)
    assert sum(1 for n in allocation if n > 0) == 10


@pytest.mark.parametrize(("n_shards", "stakes", "expected"), COMPUTE_CASES)
def test_compute_next_committee_matches_move(
    selection: Any, n_shards: int, stakes: list[int], expected: list[int]
) -> None:
    active_set = [(nid(i + 1), stake) for i, stake in enumerate(stakes)]
    committee = on_chain_initialize(
        selection, on_chain_apportionment(selection, n_shards, active_set)
    )
    assert [len(member.shards) for member in committee.members] == expected


def test_default_scenario(selection: Any) -> None:
    committee = ShardAssignment()
    for step, (assignment, expected) in enumerate(DEFAULT_SCENARIO):
        new = [(nid(node), count) for node, count in assignment]
        if step == 0:
            committee = on_chain_initialize(selection, new)
        else:
            committee = on_chain_transition(selection, committee, new)
        assert committee == as_committee(expected)


def test_sort_preserve_and_ignore_empty(selection: Any) -> None:
    committee = on_chain_initialize(selection, [(nid(3 - i), 2) for i in range(4)])
    assert committee == as_committee({0: [0, 1], 1: [2, 3], 2: [4, 5], 3: [6, 7]})
    after = on_chain_transition(selection, committee, [(nid(3), 4), (nid(2), 4)])
    assert after == as_committee({2: [4, 5, 3, 2], 3: [6, 7, 1, 0]})

    nodes = [nid(i) for i in range(1, 6)]
    committee = on_chain_initialize(selection, list(zip(nodes, [2, 2, 2, 0, 0], strict=True)))
    assert committee.node_ids == tuple(nodes[:3])
    after = on_chain_transition(
        selection, committee, list(zip(nodes, [0, 2, 2, 2, 0], strict=True))
    )
    assert after == as_committee({2: [2, 3], 3: [4, 5], 4: [1, 0]})


def test_transition_order_follows_move(selection: Any) -> None:
    committee = as_committee({1: [0, 1, 2], 2: [3, 4, 5], 3: [6, 7, 8]})
    new = [(nid(5), 1), (nid(3), 4), (nid(4), 1), (nid(1), 1), (nid(2), 2)]
    expected = as_committee({1: [0], 2: [3, 4], 3: [6, 7, 8, 2], 4: [1], 5: [5]})
    assert on_chain_transition(selection, committee, new) == expected
    new = [(nid(4), 2), (nid(2), 4), (nid(3), 3)]
    expected = as_committee({2: [3, 4, 5, 0], 3: [6, 7, 8], 4: [2, 1]})
    assert on_chain_transition(selection, committee, new) == expected


@pytest.mark.parametrize(("values", "weights", "n_shards", "expected"), QUORUM_ABOVE_CASES)
def test_quorum_above_matches_move(
    selection: Any, values: list[int], weights: list[int], n_shards: int, expected: int
) -> None:
    assert selection.quorum_above(values, weights, n_shards) == expected


@pytest.mark.parametrize(("values", "weights", "n_shards", "expected"), QUORUM_BELOW_CASES)
def test_quorum_below_matches_move(
    selection: Any, values: list[int], weights: list[int], n_shards: int, expected: int
) -> None:
    assert selection.quorum_below(values, weights, n_shards) == expected


@pytest.mark.parametrize(
    ("n_nodes", "n_shards"), [(1, 1000), (3, 5), (19, 1000), (20, 1000), (150, 1000), (25, 9)]
)
def test_max_shards_per_node(selection: Any, n_nodes: int, n_shards: int) -> None:
    assert selection.max_shards_per_node(n_nodes, n_shards) == model.max_shards_per_node(
        n_nodes, n_shards
    )


# --- Random inputs: the contract equals the model ----------------------------------------------

#: Active sets up to the contract's 150 nodes, with the core tests' shapes below 40.
wide_stake_lists = st.one_of(
    stake_lists,
    st.lists(st.integers(0, 10**16), min_size=40, max_size=150).filter(lambda s: sum(s) > 0),
)


@settings(max_examples=EXAMPLES)
@given(st.data())
def test_dhondt_equals_the_model(selection: Any, data: st.DataObject) -> None:
    stakes = data.draw(wide_stake_lists)
    low = 10 if len(stakes) >= 20 else 0
    n_shards = data.draw(st.one_of(st.integers(low, 1000), st.sampled_from([low, 1000])))
    assert list(selection.dhondt(n_shards, stakes)) == model.dhondt(n_shards, stakes)


@settings(max_examples=EXAMPLES)
@given(stake_changes())
def test_initialize_and_transition_equal_the_model(
    selection: Any, change: tuple[int, list[tuple[bytes, int]], list[tuple[bytes, int]]]
) -> None:
    n_shards, before, after = change
    first = model.apportionment(n_shards, before)
    assert on_chain_apportionment(selection, n_shards, before) == first
    committee = model.initialize(first)
    assert on_chain_initialize(selection, first) == committee
    second = model.apportionment(n_shards, after)
    assert on_chain_transition(selection, committee, second) == model.transition(committee, second)


@settings(max_examples=EXAMPLES)
@given(committee_votes())
def test_quorums_equal_the_model(
    selection: Any, votes_and_n: tuple[list[tuple[int, int]], int]
) -> None:
    votes, n_shards = votes_and_n
    values, weights = [v for v, _ in votes], [w for _, w in votes]
    assert selection.quorum_above(values, weights, n_shards) == model.quorum_above(votes, n_shards)
    assert selection.quorum_below(values, weights, n_shards) == model.quorum_below(votes, n_shards)


# --- Reverts --------------------------------------------------------------------------------

_COMMITTEE = as_committee({1: [0, 1], 2: [2, 3], 3: [4]})


@pytest.mark.parametrize(
    ("function", "args", "reason"),
    [
        ("dhondt", (10, [0, 0]), "no stake"),
        ("dhondt", (10, []), "no stake"),
        ("dhondt", (10, [2**64 - 1, 1]), "total stake exceeds u64"),
        ("dhondt", (1001, [1]), "too many shards"),
        ("dhondt", (5, [1] * 20), "shard cap too low"),
        ("max_shards_per_node", (0, 10), "no nodes"),
        ("initialize", ([nid(1)], [1, 2]), "ids and counts differ in length"),
        ("initialize", ([nid(1), nid(2)], [600, 401]), "too many shards"),
        ("initialize", ([nid(2), nid(1), nid(2)], [1, 1, 1]), "duplicate node id"),
        ("quorum_above", ([1, 2], [5], 5), "values and weights differ in length"),
        ("quorum_above", ([1, 2], [2, 2], 5), "weights do not sum to n_shards"),
        ("quorum_below", ([], [], 0), "weights do not sum to n_shards"),
    ],
)
def test_reverts(selection: Any, function: str, args: tuple[Any, ...], reason: str) -> None:
    with boa.reverts(reason):
        getattr(selection, function)(*args)


@pytest.mark.parametrize(
    ("current", "new", "reason"),
    [
        (([nid(2), nid(1)], [2, 1], [0, 1, 2]), ([nid(1)], [3]), "committee ids not increasing"),
        (([nid(1), nid(1)], [2, 1], [0, 1, 2]), ([nid(1)], [3]), "committee ids not increasing"),
        (([nid(1), nid(2)], [3, 0], [0, 1, 2]), ([nid(1)], [3]), "committee member without shards"),
        (([nid(1)], [2], [0, 1, 2]), ([nid(1)], [3]), "committee counts do not match its shards"),
        (([nid(1)], [3], [0, 1, 3]), ([nid(1)], [3]), "committee shard out of range"),
        (([nid(1)], [3], [0, 1, 1]), ([nid(1)], [3]), "committee shard listed twice"),
        (_COMMITTEE.to_arrays(), ([nid(1)], [4]), "shard totals differ"),
        (_COMMITTEE.to_arrays(), ([nid(4), nid(4)], [3, 2]), "duplicate node id"),
        (_COMMITTEE.to_arrays(), ([nid(1), nid(2)], [5]), "ids and counts differ in length"),
    ],
)
def test_transition_reverts(
    selection: Any,
    current: tuple[list[bytes], list[int], list[int]],
    new: tuple[list[bytes], list[int]],
    reason: str,
) -> None:
    with boa.reverts(reason):
        selection.transition(*current, *new)


def test_empty_transition(selection: Any) -> None:
    assert selection.transition([], [], [], [], []) == ([], [], [])
    with boa.reverts("shard totals differ"):
        selection.transition([], [], [], [nid(1)], [1])


# --- Size and gas ---------------------------------------------------------------------------


def test_fits_eip170(selection: Any) -> None:
    assert len(boa.env.get_code(selection.address)) <= EIP170_MAX_RUNTIME_BYTES


def gas_of(call: Any, *args: Any) -> int:
    """Execution gas of one call (boa counts calls to pure functions too)."""
    before: int = boa.env.get_gas_used()
    call(*args)
    after: int = boa.env.get_gas_used()
    return after - before


@pytest.mark.parametrize("n_nodes", [100, 150])
@pytest.mark.parametrize("scenario", ["stake moves", "whale capped", "all nodes replaced"])
def test_selection_gas_at_1000_shards(selection: Any, n_nodes: int, scenario: str) -> None:
    """dhondt + transition of a voting_end: 100 or 150 nodes, 1000 shards, within the budget."""
    ids = [nid(1_000 + i) for i in range(n_nodes)]
    stakes = [((i * 37) % 100 + 1) * 10**15 for i in range(n_nodes)]
    committee = model.initialize(model.apportionment(1000, list(zip(ids, stakes, strict=True))))
    if scenario == "stake moves":
        new_stakes = [s * ((i * 13) % 21 + 90) // 100 for i, s in enumerate(stakes)]
    elif scenario == "whale capped":
        new_stakes = [10**18, *stakes[1:]]
    else:
        ids = [nid(5_000 + n_nodes - i) for i in range(n_nodes)]
        new_stakes = stakes[::-1]
    active_set = list(zip(ids, new_stakes, strict=True))
    assignment = model.apportionment(1000, active_set)
    gas = gas_of(selection.dhondt, 1000, new_stakes)
    gas += gas_of(
        selection.transition,
        *committee.to_arrays(),
        [node for node, _ in assignment],
        [n for _, n in assignment],
    )
    assert 0 < gas < SELECTION_GAS_BUDGET

# pragma version ~=0.4.3
# pragma evm-version prague
"""
@title Committee selection: D'Hondt apportionment, shard assignment and vote quorums
@notice Port of Move `staking_inner::{dhondt, max_shards_per_node, quorum_above,
    quorum_below}` and `committee::{initialize, transition}` (spec/walrus-system.md 2.3,
    2.4). Stateless: Staking calls it at `voting_end` to turn the active set into the next
    committee. The rules, and why they are Walrus's, are written out in
    walruspy.core.apportionment; the contract tests check every function against it.

    Apportionment. Move gives each node the Hagenbach-Bischoff floor
    stake // (total // (n_shards + 1) + 1), capped at the per-node limit; then the node
    with the highest quotient stake / (seats + 1) gets the next shard until all are
    given, a node at the cap dropping out. Quotients are uq64_64 fixed point,
    floor(stake * 2**64 / (seats + 1)), ties going to the higher priority n - i (the
    earlier node in active-set order). Here a heap entry is one word,
    quotient << 64 | priority, so comparing two entries is one `>`; every key is
    distinct (one entry per node), so this heap pops in exactly the order of Move's queue.

    The result is the n_shards highest (quotient, priority) pairs over all nodes and seat
    numbers up to the cap, in one strict order; Move's floor is a prefix of that order
    (floor pairs have quotients >= the distribution number d, the others < d), so any
    prefix gives the same result. We start from a longer one, which saves up to ~900
    heap steps (3M gas) when a whale is capped: a node whose floor reaches the cap keeps
    all its cap pairs (they are all >= d, and at most n_shards pairs are), so it is set
    at the cap and the floor is recomputed over the other nodes and the remaining
    shards, until no node reaches the cap. The contract tests check the result equals the
    Python port of Move's loop.

    Committees are three arrays: node IDs in strictly increasing order (as uint256), the
    number of shards of each node (at least 1), and the concatenation of each node's shard
    list in that order, which together hold each of 0..n_shards-1 once. Move keeps a
    node's shards as a vector whose order `transition` uses: a shrinking node gives up
    shards from the back, a growing node appends.

    Transition. Walking the current committee in ID order, a node that left (or got 0
    shards) pushes all its shards on a stack, a shrinking node pushes its surplus from the
    back. Then the new nodes (in the order given) and after them the grown nodes (in ID
    order) each pop what they lack off the stack, as Move's VecMap order gives it. A node
    pops a contiguous run of the stack, so only where each run ends is recorded, and the
    output is written once, in ID order, by merging the current committee with the new
    entries sorted by ID.

    Bounds: at most MAX_NODES nodes and MAX_SHARDS shards; stakes sum to at most 2**64 - 1
    (Move's stakes are u64). Cost is O((nodes + shards) log nodes). Measured execution gas
    of dhondt + transition at 1000 shards (tests/chain/test_contracts_selection.py): about
    1.7M-1.9M with 100 nodes and 2.2M-2.5M with 150, whether stakes move, a whale is capped
    or every node is replaced; most of it is copying, checking and ABI-coding the 1000
    shard indices.
"""

# Move `staking_inner::TEMP_ACTIVE_SET_SIZE_LIMIT`: at most 150 nodes in a committee.
MAX_NODES: constant(uint256) = 150
# The shard count of Walrus Mainnet and Testnet (Committee.vy's bound too).
MAX_SHARDS: constant(uint256) = 1000
# Move `MIN_NODES_FOR_SHARDS_LIMIT` and `SHARDS_LIMIT_DENOMINATOR`: from 20 nodes on, a
# node holds at most 10% of the shards.
MIN_NODES_FOR_SHARDS_LIMIT: constant(uint256) = 20
SHARDS_LIMIT_DENOMINATOR: constant(uint256) = 10
# Move sums u64 stakes in a u64.
MAX_TOTAL_STAKE: constant(uint256) = (1 << 64) - 1
# A heap key's low 64 bits hold the node's priority; the quotient sits above them.
PRIORITY_BITS: constant(uint256) = 64
PRIORITY_MASK: constant(uint256) = (1 << PRIORITY_BITS) - 1
# A vote's low 16 bits hold its weight; its value sits above them.
WEIGHT_BITS: constant(uint256) = 16
WEIGHT_MASK: constant(uint256) = (1 << WEIGHT_BITS) - 1
# Merge sort passes: 2**8 = 256 >= MAX_NODES; heap depth: a heap of 150 has 8 levels.
SORT_PASSES: constant(uint256) = 8
HEAP_LEVELS: constant(uint256) = 8


@external
@pure
def max_shards_per_node(n_nodes: uint256, n_shards: uint16) -> uint256:
    """
    @notice Move `max_shards_per_node`: n_shards // 10 from 20 nodes on, else
        ceil(n_shards * 20 / (n_nodes * 10)).
    """
    assert n_nodes > 0, "no nodes"
    return self._max_shards_per_node(n_nodes, convert(n_shards, uint256))


@external
@pure
def dhondt(n_shards: uint16, stakes: DynArray[uint256, MAX_NODES]) -> DynArray[uint16, MAX_NODES]:
    """
    @notice Move `dhondt`: the shards of each node, proportional to `stakes` (active-set
        order, which is also the tie-break order).
    @dev Reverts: "too many shards" (over MAX_SHARDS), "total stake exceeds u64",
        "no stake" (Move ENoStake), "shard cap too low" (fewer than 10 shards over 20 or
        more nodes, where Move pops an empty queue).
    """
    shards: uint256 = convert(n_shards, uint256)
    assert shards <= MAX_SHARDS, "too many shards"
    n_nodes: uint256 = len(stakes)
    total: uint256 = 0
    for stake: uint256 in stakes:
        total += stake
    assert total <= MAX_TOTAL_STAKE, "total stake exceeds u64"
    assert total > 0, "no stake"
    cap: uint256 = self._max_shards_per_node(n_nodes, shards)
    assert n_nodes * cap >= shards, "shard cap too low"

    capped: bool[MAX_NODES] = empty(bool[MAX_NODES])
    distribution_number: uint256 = 0
    capped, distribution_number = self._cap_rounds(stakes, cap, shards, total)

    # Every node below the cap joins the heap (sift up).
    seats: uint256[MAX_NODES] = empty(uint256[MAX_NODES])
    heap: uint256[MAX_NODES] = empty(uint256[MAX_NODES])
    size: uint256 = 0
    given: uint256 = 0
    for i: uint256 in range(n_nodes, bound=MAX_NODES):
        if capped[i]:
            seats[i] = cap
            given += cap
            continue
        initial: uint256 = stakes[i] // distribution_number
        seats[i] = initial
        given += initial
        item: uint256 = self._key(stakes[i], initial, n_nodes - i)
        pos: uint256 = size
        for _level: uint256 in range(HEAP_LEVELS):
            if pos == 0:
                break
            parent: uint256 = unsafe_div(unsafe_sub(pos, 1), 2)
            above: uint256 = heap[parent]
            if above > item:
                break
            heap[pos] = above
            pos = parent
        heap[pos] = item
        size = unsafe_add(size, 1)

    # One shard at a time to the top of the heap; it re-enters with its next quotient or
    # leaves at the cap (sift down). The heap never runs dry: n_nodes * cap >= shards.
    for _: uint256 in range(shards - given, bound=MAX_SHARDS):
        node: uint256 = n_nodes - (heap[0] & PRIORITY_MASK)
        held: uint256 = seats[node] + 1
        seats[node] = held
        item: uint256 = 0
        if held < cap:
            item = self._key(stakes[node], held, n_nodes - node)
        else:
            size -= 1
            item = heap[size]
        pos: uint256 = 0
        for _level: uint256 in range(HEAP_LEVELS):
            child: uint256 = unsafe_add(unsafe_add(pos, pos), 1)
            if child >= size:
                break
            larger: uint256 = heap[child]
            right: uint256 = unsafe_add(child, 1)
            if right < size:
                other: uint256 = heap[right]
                if other > larger:
                    larger = other
                    child = right
            if item > larger:
                break
            heap[pos] = larger
            pos = child
        heap[pos] = item

    result: DynArray[uint16, MAX_NODES] = []
    for i: uint256 in range(n_nodes, bound=MAX_NODES):
        result.append(convert(seats[i], uint16))
    return result


@external
@pure
def initialize(
    node_ids: DynArray[bytes32, MAX_NODES], counts: DynArray[uint16, MAX_NODES]
) -> (DynArray[bytes32, MAX_NODES], DynArray[uint16, MAX_NODES], DynArray[uint16, MAX_SHARDS]):
    """
    @notice Move `committee::initialize`: the first committee, shards 0, 1, 2, ... dealt
        in node-ID order. Nodes with 0 shards are dropped.
    @dev Reverts: "ids and counts differ in length", "too many shards", "duplicate node id".
    """
    n_nodes: uint256 = len(node_ids)
    assert len(counts) == n_nodes, "ids and counts differ in length"
    total: uint256 = 0
    for count: uint16 in counts:
        total += convert(count, uint256)
    assert total <= MAX_SHARDS, "too many shards"
    order: uint256[MAX_NODES] = self._order_by_id(node_ids)

    out_ids: DynArray[bytes32, MAX_NODES] = []
    out_counts: DynArray[uint16, MAX_NODES] = []
    out_shards: DynArray[uint16, MAX_SHARDS] = []
    next_shard: uint16 = 0
    for k: uint256 in range(n_nodes, bound=MAX_NODES):
        node: uint256 = order[k]
        count: uint16 = counts[node]
        if count == 0:
            continue
        out_ids.append(node_ids[node])
        out_counts.append(count)
        for _: uint256 in range(convert(count, uint256), bound=MAX_SHARDS):
            out_shards.append(next_shard)
            next_shard += 1
    return out_ids, out_counts, out_shards


@external
@pure
def transition(
    cur_ids: DynArray[bytes32, MAX_NODES],
    cur_counts: DynArray[uint16, MAX_NODES],
    cur_shards: DynArray[uint16, MAX_SHARDS],
    new_ids: DynArray[bytes32, MAX_NODES],
    new_counts: DynArray[uint16, MAX_NODES],
) -> (DynArray[bytes32, MAX_NODES], DynArray[uint16, MAX_NODES], DynArray[uint16, MAX_SHARDS]):
    """
    @notice Move `committee::transition`: the next committee, keeping every shard a node
        may keep. `new_ids` / `new_counts` are in active-set order (as apportioned);
        entries with 0 shards are allowed and dropped.
    @dev Reverts: "ids and counts differ in length", "committee ..." (the current
        committee is not one this contract wrote), "duplicate node id", "shard totals
        differ" (Move EInvalidShardAssignment).
    """
    n_cur: uint256 = len(cur_ids)
    n_new: uint256 = len(new_ids)
    assert len(cur_counts) == n_cur and len(new_counts) == n_new, "ids and counts differ in length"

    # The current committee must be one this contract wrote: IDs strictly increasing, no
    # empty member, the shard lists together exactly 0..n_shards-1. (The shards are checked
    # here: an internal function would copy the 32 KB list.)
    n_shards: uint256 = self._check_members(cur_ids, cur_counts)
    assert n_shards == len(cur_shards), "committee counts do not match its shards"
    # `free` (the stack of freed shards below) first holds the seen-marks of this check: the
    # stack only reads what it wrote, and one 32 KB array less saves ~25k gas of memory.
    free: uint256[MAX_SHARDS] = empty(uint256[MAX_SHARDS])
    for shard: uint16 in cur_shards:
        index: uint256 = convert(shard, uint256)
        assert index < n_shards, "committee shard out of range"
        assert free[index] == 0, "committee shard listed twice"
        free[index] = 1

    new_total: uint256 = 0
    for count: uint16 in new_counts:
        new_total += convert(count, uint256)
    assert new_total == n_shards, "shard totals differ"
    order: uint256[MAX_NODES] = self._order_by_id(new_ids)

    assigned: uint256[MAX_NODES] = empty(uint256[MAX_NODES])
    is_new: bool[MAX_NODES] = empty(bool[MAX_NODES])
    assigned, is_new = self._join(cur_ids, new_ids, new_counts, order)

    # Free shards: all of a leaving node's, in order; a shrinking node's surplus, last first.
    top: uint256 = 0
    starts: uint256[MAX_NODES] = empty(uint256[MAX_NODES])
    start: uint256 = 0
    for i: uint256 in range(n_cur, bound=MAX_NODES):
        held: uint256 = convert(cur_counts[i], uint256)
        starts[i] = start
        if assigned[i] == 0:
            for t: uint256 in range(held, bound=MAX_SHARDS):
                free[top] = convert(cur_shards[start + t], uint256)
                top += 1
        elif assigned[i] < held:
            for t: uint256 in range(held - assigned[i], bound=MAX_SHARDS):
                free[top] = convert(cur_shards[start + held - 1 - t], uint256)
                top += 1
        start += held

    new_top: uint256[MAX_NODES] = empty(uint256[MAX_NODES])
    cur_top: uint256[MAX_NODES] = empty(uint256[MAX_NODES])
    new_top, cur_top = self._hand_out(top, cur_counts, assigned, new_counts, is_new)

    # Write the committee in ID order: merge current nodes with the sorted new entries.
    out_ids: DynArray[bytes32, MAX_NODES] = []
    out_counts: DynArray[uint16, MAX_NODES] = []
    out_shards: DynArray[uint16, MAX_SHARDS] = []
    c: uint256 = 0
    k: uint256 = 0
    for _: uint256 in range(n_cur + n_new, bound=2 * MAX_NODES):
        take_current: bool = c < n_cur
        if k < n_new and take_current:
            take_current = convert(cur_ids[c], uint256) < convert(new_ids[order[k]], uint256)
        elif k == n_new and not take_current:
            break
        if take_current:
            count: uint256 = assigned[c]
            if count > 0:
                held: uint256 = convert(cur_counts[c], uint256)
                out_ids.append(cur_ids[c])
                out_counts.append(convert(count, uint16))
                first: uint256 = starts[c]
                for t: uint256 in range(min(count, held), bound=MAX_SHARDS):
                    out_shards.append(cur_shards[unsafe_add(first, t)])
                if count > held:
                    last: uint256 = cur_top[c] - 1
                    for t: uint256 in range(count - held, bound=MAX_SHARDS):
                        out_shards.append(convert(free[last - t], uint16))
            c += 1
        else:
            entry: uint256 = order[k]
            count: uint256 = convert(new_counts[entry], uint256)
            if is_new[entry] and count > 0:
                out_ids.append(new_ids[entry])
                out_counts.append(convert(count, uint16))
                last: uint256 = new_top[entry] - 1
                for t: uint256 in range(count, bound=MAX_SHARDS):
                    out_shards.append(convert(free[last - t], uint16))
            k += 1
    return out_ids, out_counts, out_shards


@external
@pure
def quorum_above(
    values: DynArray[uint64, MAX_NODES], weights: DynArray[uint16, MAX_NODES], n_shards: uint16
) -> uint64:
    """
    @notice Move `quorum_above`: the highest value such that a quorum (3w >= 2n + 1) of
        the weight voted for it or more.
    @dev The weights are committee weights: they must sum to n_shards > 0.
    """
    votes: uint256[MAX_NODES] = self._votes_by_value(values, weights, n_shards)
    n: uint256 = convert(n_shards, uint256)
    weight: uint256 = 0
    for i: uint256 in range(len(values), bound=MAX_NODES):
        vote: uint256 = votes[len(values) - 1 - i]
        weight += vote & WEIGHT_MASK
        if 3 * weight >= 2 * n + 1:
            return convert(vote >> WEIGHT_BITS, uint64)
    raise "unreachable: all the weight is a quorum"


@external
@pure
def quorum_below(
    values: DynArray[uint64, MAX_NODES], weights: DynArray[uint16, MAX_NODES], n_shards: uint16
) -> uint64:
    """
    @notice Move `quorum_below`: the lowest value such that a quorum (3w >= 2n + 1) of
        the weight voted for it or less; like Move, removes weight from the top until no
        quorum is left.
    @dev The weights are committee weights: they must sum to n_shards > 0.
    """
    votes: uint256[MAX_NODES] = self._votes_by_value(values, weights, n_shards)
    n: uint256 = convert(n_shards, uint256)
    weight: uint256 = n
    for i: uint256 in range(len(values), bound=MAX_NODES):
        vote: uint256 = votes[len(values) - 1 - i]
        weight -= vote & WEIGHT_MASK
        if 3 * weight < 2 * n + 1:
            return convert(vote >> WEIGHT_BITS, uint64)
    raise "unreachable: no weight is not a quorum"


@internal
@pure
def _max_shards_per_node(n_nodes: uint256, n_shards: uint256) -> uint256:
    # Callers ensure n_nodes > 0 (dhondt: a positive total stake needs a node).
    if n_nodes >= MIN_NODES_FOR_SHARDS_LIMIT:
        return n_shards // SHARDS_LIMIT_DENOMINATOR
    denominator: uint256 = n_nodes * SHARDS_LIMIT_DENOMINATOR
    return (n_shards * MIN_NODES_FOR_SHARDS_LIMIT + denominator - 1) // denominator


@internal
@pure
def _cap_rounds(
    stakes: DynArray[uint256, MAX_NODES], cap: uint256, shards: uint256, total: uint256
) -> (bool[MAX_NODES], uint256):
    # The nodes that end at the cap, and the distribution number whose Hagenbach-Bischoff
    # floor starts the others (see the notice: a prefix of Move's order). Each round caps
    # the nodes whose floor reaches the cap and recomputes the number over the rest; every
    # round but the last caps a node, and at most n_shards / cap <= 19 nodes fit at the cap.
    capped: bool[MAX_NODES] = empty(bool[MAX_NODES])
    open_shards: uint256 = shards
    open_stake: uint256 = total
    distribution_number: uint256 = 0
    for _round: uint256 in range(MAX_NODES + 1):
        distribution_number = open_stake // (open_shards + 1) + 1
        newly_capped: bool = False
        for i: uint256 in range(len(stakes), bound=MAX_NODES):
            if not capped[i] and stakes[i] // distribution_number >= cap:
                capped[i] = True
                newly_capped = True
                open_shards -= cap
                open_stake -= stakes[i]
        if not newly_capped:
            break
    return capped, distribution_number


@internal
@pure
def _key(stake: uint256, seats: uint256, priority: uint256) -> uint256:
    # Move `uq64_64::from_quotient(stake, seats + 1)` above the priority; stake < 2**64 keeps
    # the quotient below 2**128, priority <= MAX_NODES.
    return ((stake << 64) // (seats + 1)) << PRIORITY_BITS | priority


@internal
@pure
def _check_members(ids: DynArray[bytes32, MAX_NODES], counts: DynArray[uint16, MAX_NODES]) -> uint256:
    # A committee's members: IDs strictly increasing, none without shards; returns n_shards.
    total: uint256 = 0
    for i: uint256 in range(len(ids), bound=MAX_NODES):
        if i > 0:
            assert convert(ids[i - 1], uint256) < convert(ids[i], uint256), "committee ids not increasing"
        assert counts[i] > 0, "committee member without shards"
        total += convert(counts[i], uint256)
    return total


@internal
@pure
def _join(
    cur_ids: DynArray[bytes32, MAX_NODES],
    new_ids: DynArray[bytes32, MAX_NODES],
    new_counts: DynArray[uint16, MAX_NODES],
    order: uint256[MAX_NODES],
) -> (uint256[MAX_NODES], bool[MAX_NODES]):
    # Walks the current IDs and the new ones (in ID `order`) side by side: each current
    # node's new count (0 if it is not in the new assignment), and which new entries are
    # nodes not in the current committee.
    assigned: uint256[MAX_NODES] = empty(uint256[MAX_NODES])
    is_new: bool[MAX_NODES] = empty(bool[MAX_NODES])
    n_cur: uint256 = len(cur_ids)
    n_new: uint256 = len(new_ids)
    c: uint256 = 0
    k: uint256 = 0
    for _: uint256 in range(n_cur + n_new, bound=2 * MAX_NODES):
        if k == n_new:
            break
        entry: uint256 = order[k]
        if c < n_cur:
            cur_key: uint256 = convert(cur_ids[c], uint256)
            new_key: uint256 = convert(new_ids[entry], uint256)
            if cur_key < new_key:
                c += 1
                continue
            if cur_key == new_key:
                assigned[c] = convert(new_counts[entry], uint256)
                c += 1
                k += 1
                continue
        is_new[entry] = True
        k += 1
    return assigned, is_new


@internal
@pure
def _hand_out(
    top: uint256,
    cur_counts: DynArray[uint16, MAX_NODES],
    assigned: uint256[MAX_NODES],
    new_counts: DynArray[uint16, MAX_NODES],
    is_new: bool[MAX_NODES],
) -> (uint256[MAX_NODES], uint256[MAX_NODES]):
    # Move's hand-out order: the new nodes as given, then the grown current nodes by ID;
    # each pops a contiguous run of the free stack, identified by the stack top before its
    # pops (for new entries, then for current nodes).
    new_top: uint256[MAX_NODES] = empty(uint256[MAX_NODES])
    for entry: uint256 in range(len(new_counts), bound=MAX_NODES):
        if is_new[entry]:
            new_top[entry] = top
            top -= convert(new_counts[entry], uint256)
    cur_top: uint256[MAX_NODES] = empty(uint256[MAX_NODES])
    for i: uint256 in range(len(cur_counts), bound=MAX_NODES):
        held: uint256 = convert(cur_counts[i], uint256)
        if assigned[i] > held:
            cur_top[i] = top
            top -= assigned[i] - held
    assert top == 0, "unreachable: equal totals hand out every free shard"
    return new_top, cur_top


@internal
@pure
def _order_by_id(ids: DynArray[bytes32, MAX_NODES]) -> uint256[MAX_NODES]:
    # The positions of `ids` in increasing ID order; reverts on a duplicate.
    keys: uint256[MAX_NODES] = empty(uint256[MAX_NODES])
    for i: uint256 in range(len(ids), bound=MAX_NODES):
        keys[i] = convert(ids[i], uint256)
    order: uint256[MAX_NODES] = empty(uint256[MAX_NODES])
    sorted_keys: uint256[MAX_NODES] = empty(uint256[MAX_NODES])
    sorted_keys, order = self._sort(keys, len(ids))
    for i: uint256 in range(1, MAX_NODES):
        if i >= len(ids):
            break
        assert sorted_keys[i - 1] < sorted_keys[i], "duplicate node id"
    return order


@internal
@pure
def _votes_by_value(
    values: DynArray[uint64, MAX_NODES], weights: DynArray[uint16, MAX_NODES], n_shards: uint16
) -> uint256[MAX_NODES]:
    # The votes as value << 16 | weight, in increasing order, after checking the weights.
    n_votes: uint256 = len(values)
    assert len(weights) == n_votes, "values and weights differ in length"
    votes: uint256[MAX_NODES] = empty(uint256[MAX_NODES])
    total: uint256 = 0
    for i: uint256 in range(n_votes, bound=MAX_NODES):
        votes[i] = convert(values[i], uint256) << WEIGHT_BITS | convert(weights[i], uint256)
        total += convert(weights[i], uint256)
    assert n_shards > 0 and total == convert(n_shards, uint256), "weights do not sum to n_shards"
    order: uint256[MAX_NODES] = empty(uint256[MAX_NODES])
    votes, order = self._sort(votes, n_votes)
    return votes


@internal
@pure
def _sort(keys: uint256[MAX_NODES], n: uint256) -> (uint256[MAX_NODES], uint256[MAX_NODES]):
    # Bottom-up merge sort of keys[0:n], carrying each key's original position along.
    positions: uint256[MAX_NODES] = empty(uint256[MAX_NODES])
    for i: uint256 in range(n, bound=MAX_NODES):
        positions[i] = i
    merged_keys: uint256[MAX_NODES] = empty(uint256[MAX_NODES])
    merged_positions: uint256[MAX_NODES] = empty(uint256[MAX_NODES])
    width: uint256 = 1
    for _pass: uint256 in range(SORT_PASSES):
        if width >= n:
            break
        low: uint256 = 0
        for _run: uint256 in range(MAX_NODES):
            if low >= n:
                break
            middle: uint256 = min(unsafe_add(low, width), n)
            high: uint256 = min(unsafe_add(middle, width), n)
            left: uint256 = low
            right: uint256 = middle
            # The heads of both runs; a run that is used up is never read again.
            left_key: uint256 = keys[left]
            right_key: uint256 = 0
            if right < high:
                right_key = keys[right]
            for out: uint256 in range(low, high, bound=MAX_NODES):
                if right == high or (left < middle and left_key <= right_key):
                    merged_keys[out] = left_key
                    merged_positions[out] = positions[left]
                    left = unsafe_add(left, 1)
                    if left < middle:
                        left_key = keys[left]
                else:
                    merged_keys[out] = right_key
                    merged_positions[out] = positions[right]
                    right = unsafe_add(right, 1)
                    if right < high:
                        right_key = keys[right]
            low = high
        keys = merged_keys
        positions = merged_positions
        width = unsafe_add(width, width)
    return keys, positions

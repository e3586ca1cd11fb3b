"""The churn profile's bookkeeping, without a cluster: who is held faulty, and how much weighs.

`walruspy.sim.churn.Churn` holds a node that gains shards faulty until it says it holds them,
and weighs faulty nodes by shards (f = (n_shards - 1) / 3 shards). The whole profile runs in
`test_simulator.py`; here a stand-in cluster (settings and nodes) is enough.
"""

from __future__ import annotations

import asyncio
import math
from types import SimpleNamespace
from typing import Any, cast

from walruspy.clock import now
from walruspy.core.apportionment import NodeShards, ShardAssignment
from walruspy.core.types import ShardIndex
from walruspy.sim.churn import Churn
from walruspy.sim.cluster import SimCluster, SimSettings
from walruspy.sim.trace import Trace

IDS = [bytes([i + 1]) * 32 for i in range(5)]


def assignment(shares: dict[int, range]) -> ShardAssignment:
    """Node `i` (ID `IDS[i]`) holding each range of shards."""
    return ShardAssignment(
        tuple(
            NodeShards(IDS[i], tuple(ShardIndex(s) for s in r)) for i, r in sorted(shares.items())
        )
    )


def node(index: int, *, reported_epoch: int = 0, complete: bool = False) -> Any:
    shards_complete = asyncio.Event()
    if complete:
        shards_complete.set()
    reporter = SimpleNamespace(reported_epoch=reported_epoch, shards_complete=shards_complete)
    return SimpleNamespace(
        host=f"node{index}",
        plan=SimpleNamespace(node_id=IDS[index]),
        node=SimpleNamespace(reporter=reporter, store=None, shard_syncer=None),
        running=True,
    )


def churn(nodes: list[Any], faulty_until: dict[str, float]) -> Churn:
    cluster = SimpleNamespace(settings=SimSettings(n_nodes=4, n_shards=16), nodes=nodes)
    return Churn(cast(SimCluster, cluster), Trace(), faulty_until)


FOUR = assignment({0: range(4), 1: range(4, 8), 2: range(8, 12), 3: range(12, 16)})
#: Node 3 leaves, node 4 joins and takes its shards, node 0 gains one of node 1's.
NEXT = assignment({0: range(5), 1: range(5, 8), 2: range(8, 12), 4: range(12, 16)})


def test_the_nodes_that_gain_shards_are_held_and_weigh_what_they_gain() -> None:
    nodes = [node(i) for i in range(5)]
    faulty_until: dict[str, float] = {}
    watch = churn(nodes, faulty_until)
    watch.committees = (ShardAssignment(), FOUR, NEXT)
    watch._hold_gainers(2, FOUR, NEXT)
    assert sorted(h for h, until in faulty_until.items() if until > now()) == ["node0", "node4"]
    # 1 + 4 shards gained: within f = 5 shards, though two nodes are faulty.
    assert watch.within_f(["node0", "node4"])
    # A node faulty otherwise weighs every shard it holds in any committee: 4 more is too many.
    faulty_until["node2"] = math.inf
    assert not watch.within_f(["node0", "node4", "node2"])
    assert watch.within_f(["node2"])
    # The leaver keeps its shards of the current committee: it weighs them while faulty.
    faulty_until["node3"] = math.inf
    assert not watch.within_f(["node3", "node2"])


def test_a_gainer_faulty_for_another_reason_weighs_all_its_shards() -> None:
    nodes = [node(i) for i in range(5)]
    faulty_until: dict[str, float] = {"node0": math.inf}  # crashed before the selection
    watch = churn(nodes, faulty_until)
    watch.committees = (ShardAssignment(), FOUR, NEXT)
    watch._hold_gainers(2, FOUR, NEXT)
    assert faulty_until["node0"] == math.inf
    assert not watch.within_f(["node0", "node4"])  # 5 + 4 shards


def test_the_first_committee_holds_nobody() -> None:
    nodes = [node(i) for i in range(4)]
    faulty_until: dict[str, float] = {}
    churn(nodes, faulty_until)._hold_gainers(1, ShardAssignment(), FOUR)
    assert faulty_until == {}


async def test_a_hold_ends_once_the_node_holds_its_shards_and_is_renewed_until_then() -> None:
    nodes = [node(i) for i in range(5)]
    faulty_until: dict[str, float] = {}
    watch = churn(nodes, faulty_until)
    watch._hold_gainers(2, FOUR, NEXT)
    held = dict(faulty_until)
    # Node 0 reported epoch 2 with every shard complete; node 4 still syncs.
    nodes[0].node.reporter.reported_epoch = 2
    nodes[0].node.reporter.shards_complete.set()
    await watch._renew_holds(2)
    assert faulty_until["node0"] <= now() < faulty_until["node4"] == held["node4"]
    # Not before the epoch it gains them in: the report of an older epoch does not count.
    nodes[4].node.reporter.reported_epoch = 1
    nodes[4].node.reporter.shards_complete.set()
    await watch._renew_holds(2)
    assert faulty_until["node4"] > now()
    nodes[4].node.reporter.reported_epoch = 2
    await watch._renew_holds(2)
    assert faulty_until["node4"] <= now()

"""Churn: the committee changes across epochs, through the staking contracts.

Theory of operation (issue #16; spec/walrus-system.md 2.2 and 2.3 for epochs, stake and the
selection of the committee, 3.5 for the epoch change on the nodes and shard sync). Under the
`churn` fault profile, and `mixed`, the cluster is a staking one (`SimSettings.staking`, with
`STANDBY_NODES` planned nodes not started) and the fault schedule draws churn steps among its
faults (`Churn.step`). The staker wallet of the cluster holds every stake; a step only moves
stake, the chain decides the rest:

- `stake-shift`: stake `SHIFT_FROST` more with the drawn member, and ask to withdraw one such
  extra stake of the member that has the most stake otherwise, so that shares keep near equal
  while shards move between existing nodes at the next selection;
- `join`: a candidate (a standby node, registered now from its own wallet and started, or a node
  that left) is staked with `NODE_STAKE_FROST`, as the devnet's `join_node` does; it gains
  shards at the next selection and fetches them by shard sync;
- `leave`: every stake of the drawn member is withdrawn: it loses all its shards at the next
  selection, serves them on until that epoch change completes, then deletes them.

The committee keeps `n_nodes` or `n_nodes + 1` members: `join` is taken as `leave` when
`n_nodes + 1` nodes are staked, and `leave` as `join` when only `n_nodes` are. Stake moved
before `voting_end` counts at that selection, after it at the next (Pools.vy); nothing here
predicts that: the watch sees what the chain selected.

The watch (`Churn.watching`) looks at the staking state every `POLL_S`. Once the next committee
is selected (NextParamsSelected), each node that gains shards in it counts as faulty
(`faulty_until`) from then until the node itself says that it holds its shards of that epoch
(its `EpochSyncReporter` reported and every owned shard is complete); the hold is renewed while
it waits, and bounded by an epoch so that a node that never finishes is owed again. A node
gaining shards lacks only those: `within_f` weighs the faulty nodes by shards, as Walrus's
bound is (at most f = (n_shards - 1) / 3 shards faulty): a node held only for its sync weighs
the shards it gains, any other faulty node every shard it holds in the previous, current or
next committee. At each new epoch the watch withdraws the stakes whose withdrawal is due, so
WAL flows back from Pools to the staker (both are among the WAL supply check's holders).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any, Final

from walruspy.chain.api import ChainRevertError
from walruspy.chain.evm import EvmChain, open_evm_chain
from walruspy.chain.evm_staking import EpochState, EvmStaking, StakedWalRecord
from walruspy.clock import now
from walruspy.core.apportionment import ShardAssignment
from walruspy.devnet.staking import NODE_STAKE_FROST, register_node, staking_of
from walruspy.node.metrics import NAMESPACE
from walruspy.sim.cluster import STAKER_HOST, SimCluster, SimNode, SimSettings
from walruspy.sim.invariants import sliver_inventory
from walruspy.sim.trace import Trace

__all__ = ["CHURN_KINDS", "POLL_S", "SHIFT_FROST", "STANDBY_NODES", "Churn", "churn_settings"]

#: The churn steps a fault schedule may draw.
CHURN_KINDS: Final = ("stake-shift", "join", "leave")
#: Standby nodes planned for a churn run: one, so that the committee grows by one and shrinks.
STANDBY_NODES: Final = 1
#: Stake a shift moves: a quarter of a node's first stake, so that with 4 nodes and 16 shards
#: the node that gains it holds 5 shards, still no more than f = 5.
SHIFT_FROST: Final = NODE_STAKE_FROST // 4
#: Virtual seconds between two looks at the staking state: far less than the half epoch
#: between a selection and the epoch change it decides.
POLL_S: Final = 10.0


def churn_settings(settings: SimSettings) -> SimSettings:
    """`settings` for a churn run: an elected committee and the standby nodes."""
    return replace(settings, staking=True, standby_nodes=STANDBY_NODES)


@dataclass(slots=True)
class _Hold:
    """A node held faulty while it syncs the shards it gains in `epoch`."""

    epoch: int
    gained: frozenset[int]
    #: Until when the hold keeps the node faulty (renewed while it waits).
    until: float


class Churn:
    """The churn steps and the watch of one run (module doc); `faulty_until` is the run's."""

    def __init__(self, cluster: SimCluster, trace: Trace, faulty_until: dict[str, float]) -> None:
        self.cluster = cluster
        self.trace = trace
        self.faulty_until = faulty_until
        self.committees = (ShardAssignment(), ShardAssignment(), ShardAssignment())
        self._holds: dict[str, _Hold] = {}
        self._seen: tuple[int, EpochState] | None = None

    # -- what is faulty --

    def within_f(self, faulty: list[str]) -> bool:
        """Whether the nodes `faulty` weigh at most f shards (module doc)."""
        n_shards = self.cluster.settings.n_shards
        return sum(self._weight(host) for host in faulty) <= (n_shards - 1) // 3

    def _weight(self, host: str) -> int:
        hold = self._holds.get(host)
        if hold is not None and self.faulty_until.get(host) == hold.until:
            return len(hold.gained)
        node = self._node(host)
        if node is None:
            return 0
        held = (c.shards_of(node.plan.node_id) or () for c in self.committees)
        return max(len(shards) for shards in held)

    def _node(self, host: str) -> SimNode | None:
        return next((n for n in self.cluster.nodes if n.host == host), None)

    # -- the watch --

    @contextlib.asynccontextmanager
    async def watching(
        self, guard: Callable[[Awaitable[None]], Coroutine[Any, Any, None]]
    ) -> AsyncIterator[None]:
        """Run the watch (under `guard`, which reports its failures) while the block runs."""
        async with asyncio.TaskGroup() as group:
            task = group.create_task(guard(self._watch()))
            try:
                yield
            finally:
                task.cancel()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(POLL_S)
            await self.look()

    def _reader(self) -> EvmStaking:
        chain = self.cluster.client_chain
        assert chain is not None and chain.staking is not None
        return chain.staking

    async def look(self) -> None:
        """One look at the staking state: hold the nodes that gain shards, release those that
        hold them, withdraw what is due."""
        # One view while nothing changes (every epoch change changes the epoch state); the
        # whole state and the committees when it does.
        epoch_state = await self._reader().epoch_state()
        if self._seen is None or epoch_state is not self._seen[1]:
            state = await self._reader().state()
            new_epoch = self._seen is None or self._seen[0] != state.epoch
            self._seen = (state.epoch, state.state)
            self.committees = await self._reader().committees()
            self.trace.log(f"churn epoch={state.epoch} state={state.state.name} {self._shares()}")
            if state.state is EpochState.NEXT_PARAMS_SELECTED:
                self._hold_gainers(state.epoch + 1, self.committees[1], self.committees[2])
            if new_epoch:
                await self._withdraw_due(state.epoch)
        await self._renew_holds(self._seen[0])

    def _shares(self) -> str:
        current = self.committees[1]
        names = {n.plan.node_id: n.host for n in self.cluster.nodes}
        return "committee=" + ",".join(
            f"{names.get(m.node_id, '?')}:{len(m.shards)}"
            for m in sorted(current.members, key=lambda m: names.get(m.node_id, ""))
        )

    def _hold_gainers(
        self, epoch: int, current: ShardAssignment, upcoming: ShardAssignment
    ) -> None:
        if not current.members:
            return  # the first committee: nothing was stored yet
        gainers = []
        for node in self.cluster.nodes:
            gained = set(upcoming.shards_of(node.plan.node_id) or ()) - set(
                current.shards_of(node.plan.node_id) or ()
            )
            if gained:
                hold = _Hold(epoch, frozenset(gained), now() + self._hold_s())
                self._holds[node.host] = hold
                self._extend(node.host, hold)
                gainers.append(f"{node.host}:+{len(gained)}")
        self.trace.log(f"churn selected epoch={epoch} gainers={','.join(gainers) or '-'}")

    def _hold_s(self) -> float:
        return float(self.cluster.settings.epoch_duration_s)

    def _extend(self, host: str, hold: _Hold) -> None:
        """Hold `host` faulty until `hold.until` at least (another fault may hold it longer,
        and then it weighs all its shards)."""
        self.faulty_until[host] = max(self.faulty_until.get(host, 0.0), hold.until)

    async def _renew_holds(self, epoch: int) -> None:
        for host, hold in sorted(self._holds.items()):
            node = self._node(host)
            if epoch >= hold.epoch and node is not None and _holds_shards(node, hold.epoch):
                del self._holds[host]
                if self.faulty_until.get(host) == hold.until:
                    self.faulty_until[host] = now()
                store = node.node.store if node.node is not None else None
                held = await asyncio.to_thread(sliver_inventory, store) if store else set()
                slivers = sum(1 for shard, _, _ in held if shard in hold.gained)
                synced, recovered = _moved_slivers(node)
                self.trace.log(
                    f"churn synced {host} epoch={hold.epoch} gained shards"
                    f" {sorted(hold.gained)} hold {slivers} slivers; so far {synced} slivers"
                    f" by shard sync, {recovered} recovered"
                )
            else:
                if hold.until - now() < 2 * POLL_S and epoch <= hold.epoch:
                    hold.until = now() + 2 * POLL_S
                # Again at every look: a fault that healed may have written an earlier time.
                self._extend(host, hold)

    # -- the steps --

    async def step(self, kind: str, node: SimNode) -> None:
        """Take the churn step `kind` with `node` as its subject (module doc)."""
        async with self._staker() as chain:
            staking = staking_of(chain)
            stakes = await _active_stakes(staking, chain.address)
            staked = {n.host for n in self.cluster.nodes if n.plan.node_id in stakes}
            n_nodes = self.cluster.settings.n_nodes
            if kind != "stake-shift":
                kind = "join" if len(staked) <= n_nodes else "leave"
            if kind == "stake-shift":
                await self._shift(staking, stakes, node)
            elif kind == "join":
                await self._join(staking, staked)
            else:
                leaver = node if node.host in staked else self._node(min(staked))
                assert leaver is not None
                await self._leave(staking, stakes.get(leaver.plan.node_id, []), leaver)

    @contextlib.asynccontextmanager
    async def _staker(self) -> AsyncIterator[EvmChain]:
        key = self.cluster.staker_key
        assert key is not None, "churn needs a staking cluster (churn_settings)"
        async with open_evm_chain(
            self.cluster.rpc_url,
            self.cluster.deployment,
            key,
            connector=functools.partial(self.cluster.net.connector, STAKER_HOST),
        ) as chain:
            yield chain

    async def _shift(
        self, staking: EvmStaking, stakes: dict[bytes, list[StakedWalRecord]], node: SimNode
    ) -> None:
        if node.plan.node_id not in stakes:
            self.trace.log(f"churn stake-shift {node.host}: not staked, skipped")
            return
        await staking.stake(node.plan.node_id, SHIFT_FROST)
        epoch = (await staking.state()).epoch
        donors = sorted(
            (
                (sum(r.principal for r in records), n.host, extra)
                for n in self.cluster.nodes
                if n is not node and (records := stakes.get(n.plan.node_id))
                for extra in [
                    r for r in records if r.principal == SHIFT_FROST and r.activation_epoch <= epoch
                ][:1]
            ),
            key=lambda entry: (-entry[0], entry[1]),
        )
        moved = "-"
        if donors:
            _, donor, record = donors[0]
            moved = f"{donor} ({await _withdraw(staking, record)})"
        self.trace.log(f"churn stake-shift +{SHIFT_FROST} to {node.host}, - from {moved}")

    async def _join(self, staking: EvmStaking, staked: set[str]) -> None:
        candidates = [n for n in self.cluster.nodes if n.host not in staked]
        candidates = [
            n for n in candidates if not any(c.shards_of(n.plan.node_id) for c in self.committees)
        ]
        if candidates:
            joiner = candidates[0]
        elif self.cluster.standby:
            joiner = self.cluster.standby.pop(0)
            node_id = await register_node(
                self.cluster.rpc_url,
                self.cluster.deployment,
                joiner.plan,
                connector=functools.partial(self.cluster.net.connector, joiner.host),
            )
            joiner.plan = replace(joiner.plan, node_id=node_id)
            self.cluster.nodes.append(joiner)
            await self.cluster.start(joiner)
        else:
            self.trace.log("churn join: no candidate, skipped")
            return
        await staking.stake(joiner.plan.node_id, NODE_STAKE_FROST)
        self.trace.log(f"churn join {joiner.host} staked {NODE_STAKE_FROST}")

    async def _leave(
        self, staking: EvmStaking, records: list[StakedWalRecord], node: SimNode
    ) -> None:
        done = [await _withdraw(staking, record) for record in records]
        self.trace.log(f"churn leave {node.host}: stakes {', '.join(done) or 'none'}")

    async def _withdraw_due(self, epoch: int) -> None:
        async with self._staker() as chain:
            staking = staking_of(chain)
            due = [
                r
                for r in await staking.staked_wal(chain.address)
                if r.withdrawing and r.withdraw_epoch <= epoch
            ]
            paid = 0
            for record in due:
                paid += await staking.withdraw_stake(record.object_id)
        if due:
            self.trace.log(f"churn withdrew {len(due)} stakes: {paid} FROST to the staker")


async def _active_stakes(staking: EvmStaking, owner: str) -> dict[bytes, list[StakedWalRecord]]:
    """The owner's stakes not being withdrawn, by node ID."""
    stakes: dict[bytes, list[StakedWalRecord]] = {}
    for record in await staking.staked_wal(owner):
        if not record.withdrawing:
            stakes.setdefault(record.node_id, []).append(record)
    return stakes


async def _withdraw(staking: EvmStaking, record: StakedWalRecord) -> str:
    """Withdraw `record` at once if Pools allows it, else ask to (Pools.vy's rules); what
    was done."""
    if await staking.can_withdraw_early(record.object_id):
        await staking.withdraw_stake(record.object_id)
        return "withdrawn"
    try:
        await staking.request_withdraw_stake(record.object_id)
    except ChainRevertError as exc:  # e.g. a stake that is not active yet: it stays
        return f"kept ({exc.reason})"
    return "requested"


def _moved_slivers(node: SimNode) -> tuple[int, int]:
    """(slivers fetched by shard sync, slivers recovered) by the node's current run, from its
    metrics."""
    syncer = node.node.shard_syncer if node.node is not None else None
    if syncer is None:
        return 0, 0
    totals: dict[str, float] = {}
    for metric in syncer.metrics.registry.collect():
        for sample in metric.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return (
        int(totals.get(f"{NAMESPACE}_shard_sync_slivers_total", 0.0)),
        int(totals.get(f"{NAMESPACE}_slivers_recovered_total", 0.0)),
    )


def _holds_shards(node: SimNode, epoch: int) -> bool:
    """Whether `node` says it holds its shards of `epoch` (reported, every shard complete)."""
    storage_node = node.node
    if storage_node is None or not node.running or storage_node.reporter is None:
        return False
    reporter = storage_node.reporter
    return reporter.reported_epoch >= epoch and reporter.shards_complete.is_set()

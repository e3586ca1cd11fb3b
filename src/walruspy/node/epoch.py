"""Epoch changes: the driver that ends an epoch on chain, and what the node does when one starts.

Theory of operation (spec/walrus-system.md 2.2, 3.5 and 3.7; Walrus `epoch_change_driver.rs`,
`epoch_change.rs`).

`EpochChangeDriver` is the permissionless half: any node may take the next epoch step once it is
due: with a fixed committee, System's `advance_epoch()` once the epoch's duration has passed;
under staking, `voting_end` half an epoch after the last epoch change completed and
`initiate_epoch_change` a whole epoch after (the chain client's `advance_epoch` takes whichever
is due). Each node looks at the chain clock (the latest block's timestamp, or the wall clock when
no block has been made for a while, since the next block will carry about that time), waits a
random jitter so the nodes do not all send the same transaction, and calls it. Another node
being first is normal: the call then returns False or reverts, and both are counted, not raised.
Chain failures are retried with capped backoff. The schedule is read again only once the time
the driver knows of has passed (another node may have taken the step meanwhile), or, while the
new committee reports its shards and no step is due, every check interval; in between a check
costs one read of the chain clock.

`EpochSyncReporter` is the node's part of the multi-stage epoch change (spec 2.2): once the node
holds every sliver of its shards of the new epoch, it reports `epoch_sync_done(epoch)` on chain,
once; at 2f + 1 shards of reports the epoch change is done. It waits for the shard transfers
(`shard_sync.ShardSyncer`), then scans the certified blobs for data still missing, lets the
blob-sync workers recover it, and once a scan finds nothing missing it marks the shards left to
recovery ACTIVE (rule L6), the node Active, and reports. With a fixed committee the chain has
nothing to report and the call returns False.

`EpochChanges` is the one writer of the node's committee view. `install` runs at start and on each
`EpochChangeStart(e)` the event processor applies, with the current and previous committees read
from the chain at one block: it decides the shard changes (`shard_plan.decide_epoch_change`:
gained shards sync from their previous owner, lost ones are locked, shards no committee of the
last two epochs gives this node are deleted), stops the transfers of shards it locks or deletes,
writes every shard record in one transaction, switches the view, and starts the transfers. The
decision is taken again after a restart and gives the same records, so a crash between the event
and its effects loses nothing, and a sync resumes from its stored progress. Then garbage is
collected for the event's epoch (`gc.GarbageCollector`). A node that was away replays old epoch
events after it has installed the newest committee: they change no view, and GC of each epoch
runs in event order, once.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

from walruspy.backoff import Backoff
from walruspy.chain.api import (
    ChainError,
    ChainReader,
    ChainRevertError,
    ChainWriter,
    EpochCommittees,
)
from walruspy.clock import wall
from walruspy.core.apportionment import NodeShards, ShardAssignment
from walruspy.core.committee import Committee
from walruspy.core.types import ShardIndex
from walruspy.failpoints import failpoint_async
from walruspy.logs import get_logger
from walruspy.node.config import EpochConfig
from walruspy.node.gc import GarbageCollector
from walruspy.node.metrics import NodeMetrics
from walruspy.node.recovery import BlobSyncer
from walruspy.node.shard_plan import (
    DeleteShard,
    EpochShardPlan,
    LockShard,
    ShardSyncProgress,
    StartShardSync,
    decide_epoch_change,
)
from walruspy.node.shard_sync import ShardSyncer
from walruspy.node.storage import NodeStorage
from walruspy.node.store_records import NodeStatus, NodeStatusKind, ShardStatus
from walruspy.node.view import CommitteeView, NodeState

log = get_logger("walruspy.node.epoch")
T = TypeVar("T")

#: The node ID a node in neither committee decides its shard changes with: it owns nothing.
NO_NODE_ID = bytes(32)
#: Chain reads are retried this many times (with backoff) before the failure propagates.
MAX_CHAIN_ATTEMPTS = 8
#: Retrying the chain when no configuration says otherwise: `ChainConfig`'s default bounds.
DEFAULT_CHAIN_BACKOFF = Backoff(1.0, 30.0)


async def retry_chain(
    call: Callable[[], Awaitable[T]],
    backoff: Backoff,
    what: str,
    max_attempts: int | None = MAX_CHAIN_ATTEMPTS,
) -> T:
    """`call()`, retried on `ChainError` with doubling, capped backoff.

    After `max_attempts` the last failure propagates; None retries until the chain answers
    (for reads the node cannot go on without, while cancellation still stops it).
    """
    attempt = 0
    while True:
        try:
            return await call()
        except ChainError as exc:
            attempt += 1
            if max_attempts is not None and attempt >= max_attempts:
                raise
            delay = backoff.delay_s(attempt - 1)
            log.warning("chain call failed; retrying", call=what, error=str(exc), delay_s=delay)
            await asyncio.sleep(delay)


def assignment_of(committee: Committee | None) -> ShardAssignment:
    """The shard assignment of `committee` as `shard_plan` takes it (empty for None)."""
    if committee is None:
        return ShardAssignment()
    members = sorted(committee.members, key=lambda m: int.from_bytes(m.node_id, "big"))
    return ShardAssignment(
        tuple(NodeShards(m.node_id, tuple(ShardIndex(s) for s in m.shards)) for m in members)
    )


class EpochChanges:
    """Applies a new committee to the node: shard records, shard sync, the view, GC.

    The only writer of `NodeState.view` (module docstring).
    """

    def __init__(
        self,
        chain: ChainReader,
        storage: NodeStorage,
        state: NodeState,
        gc: GarbageCollector,
        metrics: NodeMetrics,
        *,
        shard_syncer: ShardSyncer | None = None,
        backoff: Backoff = DEFAULT_CHAIN_BACKOFF,
    ) -> None:
        self.chain = chain
        self.storage = storage
        self.state = state
        self.gc = gc
        self.metrics = metrics
        self.shard_syncer = shard_syncer
        self.backoff = backoff
        #: The plan of the last installed view (for tests and the devnet's figures).
        self.last_plan: EpochShardPlan | None = None

    async def begin_epoch(self, epoch: int) -> None:
        """React to `EpochChangeStart(epoch)`.

        GC runs for the event's epoch, not the view's: a node replaying the events it missed
        has installed the latest committee already, and must not collect what a later event
        (an extension) of the replay still keeps alive.
        """
        if epoch > self.state.epoch:
            await self.refresh_committee()
        await self.gc.collect(epoch)

    async def refresh_committee(self) -> None:
        """Read the current committees and move the view forward to them."""
        # The event that brought us here is persisted: the new view must not be skipped, so
        # this waits for the chain as long as it takes (event reads would wait as well).
        committees: EpochCommittees = await retry_chain(
            self.chain.epoch_committees, self.backoff, what="committee", max_attempts=None
        )
        if committees.current.epoch <= self.state.epoch:
            return
        await self.install(committees)

    async def install(self, committees: EpochCommittees) -> None:
        """Decide the shard changes, stop, write, switch the view, then start the syncs."""
        view = CommitteeView.of(committees.current, self.state.public_key, committees.previous)
        stored = await self.storage.shards()
        saved = await self.storage.sync_progress()
        statuses: Mapping[ShardIndex, ShardStatus | None]
        if view.epoch == 0:
            statuses = {s: ShardStatus.ACTIVE for s in view.owned_shards if s not in stored}
            plan = None
            progress: Mapping[ShardIndex, ShardSyncProgress | None] = {}
        else:
            plan = decide_epoch_change(
                view.epoch,
                assignment_of(committees.previous),
                assignment_of(committees.current),
                view.node_id or NO_NODE_ID,
                stored,
                stored_progress=saved,
            )
            statuses, progress = plan.statuses, plan.progress
            if self.shard_syncer is not None:
                for action in plan.actions:
                    if isinstance(action, LockShard | DeleteShard):
                        await self.shard_syncer.stop(action.shard)
        await self.storage.apply_shard_changes(statuses, progress)
        await failpoint_async("epoch.after_shard_records")
        self.last_plan = plan
        if plan is not None:
            await self._start_syncs(plan, view)
        # Published once the records are written and the transfers queued: a subscriber (the
        # sync reporter) that looks at the new view finds them.
        self.state.views.publish(view)
        self.metrics.current_epoch.set(view.epoch)
        log.info(
            "committee view",
            epoch=view.epoch,
            owned_shards=len(view.owned_shards),
            gained=len(plan.diff.gained) if plan else 0,
            lost=len(plan.diff.lost) if plan else 0,
        )

    async def _start_syncs(self, plan: EpochShardPlan, view: CommitteeView) -> None:
        for action in plan.actions:
            if not isinstance(action, StartShardSync):
                continue
            source = view.previous_owner(action.shard)
            if self.shard_syncer is None or source is None:
                # No one to ask (a node run without a shard syncer): blob sync recovers it.
                changes = {action.shard: ShardStatus.ACTIVE_RECOVER}
                await self.storage.apply_shard_changes(changes, {})
                continue
            self.shard_syncer.start(action.shard, source, action.progress)


class EpochChangeDriver:
    """Calls `advance_epoch()` when the epoch is over (module docstring)."""

    def __init__(
        self,
        chain: ChainWriter,
        config: EpochConfig,
        metrics: NodeMetrics,
        *,
        clock: Callable[[], float] = wall,
        rng: random.Random | None = None,
        backoff_s: tuple[float, float] = (1.0, 30.0),
    ) -> None:
        self.chain = chain
        self.config = config
        self.metrics = metrics
        self.clock = clock
        # Jitter needs no cryptographic randomness.
        self.rng = rng or random.Random()  # noqa: S311
        #: The bounds of the retry pause (`walruspy.backoff.Backoff`), low and high.
        self.backoff_s = backoff_s
        # When the next step we know of is due: read again only once it has passed.
        self._step_at: float | None = None

    async def seconds_until_epoch_end(self) -> float:
        """How long until the next epoch step is due (<= 0: now)."""
        now = max(float(await self.chain.chain_time()), self.clock())
        if self._step_at is None or self._step_at <= now:
            due = await self.chain.epoch_step_due_at()
            if due is None:
                # The new committee is reporting its shards: look again later.
                self._step_at = None
                return self.config.check_interval_s
            self._step_at = float(due)
        return self._step_at - now

    async def run(self) -> None:
        """Advance epochs forever (until cancelled)."""
        failures = 0
        while True:
            try:
                remaining = await self.seconds_until_epoch_end()
                if remaining > 0:
                    await asyncio.sleep(min(self.config.check_interval_s, remaining))
                    continue
                await asyncio.sleep(self.rng.uniform(0, self.config.max_jitter_s))
                await self.try_advance()
                failures = 0
                await asyncio.sleep(self.config.check_interval_s)
            except ChainError as exc:
                failures += 1
                delay = Backoff(*self.backoff_s).delay_s(failures)
                log.warning("epoch driver: chain unavailable", error=str(exc), delay_s=delay)
                await asyncio.sleep(delay)

    async def try_advance(self) -> bool:
        """One `advance_epoch()` call; True if this node started the new epoch."""
        try:
            advanced = await self.chain.advance_epoch()
        except ChainRevertError as exc:
            # Another node (or anyone) was first: the normal outcome of a race.
            self.metrics.epoch_advances.labels("lost_race").inc()
            log.debug("advance_epoch reverted", reason=exc.reason)
            return False
        self.metrics.epoch_advances.labels("advanced" if advanced else "not_due").inc()
        if advanced:
            log.info("advanced the epoch")
        return advanced


class EpochSyncReporter:
    """Reports `epoch_sync_done` once the node holds its shards of the epoch (module doc)."""

    def __init__(
        self,
        chain: ChainWriter,
        state: NodeState,
        storage: NodeStorage,
        syncer: BlobSyncer,
        metrics: NodeMetrics,
        *,
        shard_syncer: ShardSyncer | None = None,
        backoff: Backoff = DEFAULT_CHAIN_BACKOFF,
    ) -> None:
        self.chain = chain
        self.state = state
        self.storage = storage
        self.syncer = syncer
        self.shard_syncer = shard_syncer
        self.metrics = metrics
        self.backoff = backoff
        self.reported_epoch = 0
        self._epoch_started = asyncio.Event()
        #: Set while every owned shard of the current epoch is complete (ACTIVE).
        self.shards_complete = asyncio.Event()

    def epoch_started(self) -> None:
        """A new committee view was installed: look at it."""
        self.shards_complete.clear()
        self._epoch_started.set()

    async def run(self) -> None:
        """Report every epoch this node is a member of, once (until cancelled)."""
        while True:
            self._epoch_started.clear()
            epoch = self.state.epoch
            if epoch <= self.reported_epoch:
                await self._epoch_started.wait()
                continue
            await self.fill_shards()
            if self.state.epoch != epoch:
                continue  # the next epoch began meanwhile: report that one
            await self.activate_shards(epoch)
            await failpoint_async("epoch.before_sync_report")
            if self.state.view.is_member:
                await self.report(epoch)
            else:
                self.reported_epoch = epoch

    async def fill_shards(self) -> None:
        """Wait for the shard transfers, then recover until a scan finds nothing missing."""
        if self.shard_syncer is not None:
            await self.shard_syncer.wait_idle()
        rounds = 0
        while await self.syncer.scan() > 0:
            await self.syncer.wait_idle()
            rounds += 1
            # Syncs that gave up are retried by the next scan, after a pause.
            await asyncio.sleep(self.backoff.delay_s(rounds - 1) if rounds > 1 else 0)

    async def activate_shards(self, epoch: int) -> None:
        """Rule L6: owned shards left to recovery are complete now; the node is Active."""
        owned = self.state.view.owned_shards

        shards = await self.storage.shards()
        done = {s: ShardStatus.ACTIVE for s in owned if shards.get(s) is ShardStatus.ACTIVE_RECOVER}
        if done:
            await self.storage.apply_shard_changes(done, {})
        kind = NodeStatusKind.ACTIVE if owned else NodeStatusKind.STANDBY
        await self.storage.set_node_status(NodeStatus(kind))
        if self.state.epoch == epoch:
            self.shards_complete.set()

    async def report(self, epoch: int) -> None:
        """Send the report for `epoch`; a revert (the epoch moved on) is logged, not raised.

        A chain that does not answer is waited for as long as it takes: the epoch change cannot
        finish without this report, and giving up would stop the node.
        """
        try:
            sent = await retry_chain(
                lambda: self.chain.epoch_sync_done(epoch),
                self.backoff,
                what="epoch_sync_done",
                max_attempts=None,
            )
        except ChainRevertError as exc:
            log.warning("epoch_sync_done refused", epoch=epoch, reason=exc.reason)
            sent = False
        self.reported_epoch = epoch
        self.metrics.epoch_sync_reports.labels("sent" if sent else "not_needed").inc()
        log.info("shards of the epoch held", epoch=epoch, reported=sent)

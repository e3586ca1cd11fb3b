"""The event processor: follows the chain's event stream, in order, exactly once across restarts.

Theory of operation (spec/walrus-system.md 1.5 and 3.3; Walrus `node.rs` `process_events`,
`blob_event_processor.rs`). The store holds the last event applied (`EventProgress`: block, log
index, and how many events came before). The processor polls `ChainReader.events` from the
position just after it, and for each event, strictly in chain order:

1. reads the records the event touches (the blob ID's aggregate record, the object's record);
2. decides (`blob_state.decide`, pure) the new records, the data to delete and the actions;
3. writes the records, the deletions and the advanced progress in ONE store transaction
   (`NodeStore.apply_event`, which refuses progress that does not directly follow the stored one);
4. only then performs the actions: queue or cancel a blob sync, wake confirmation long-polls, run
   the epoch change (committee view and garbage collection) inline.

A crash between 3 and 4 loses only actions, and each is recovered at start: the sync scan queues
every certified blob that misses data, and GC of the current epoch runs if it had not completed.
So no event is skipped or applied twice, and no effect is lost. An event at or before the stored
position (a chain reader that repeats itself) is skipped and logged. Chain failures are retried
with capped exponential backoff; they never stop the node.

Reorganisations (walrus-system.md 3.3). The chain reader hands out events only from blocks
`chain.confirmations` deep (0 on the devchain and anvil, more on a public chain), so a shallow
reorganisation never reaches the node. A deeper one (or `evm_revert` on a test chain) is caught by
block hash: the cursor carries the hash of its event's block, and the reader raises
`ChainReorganizedError` when that block is gone. The processor then takes back the newest block
it applied (`NodeStore.undo_last_block`: the records its events replaced and the cursor before
them, one transaction) and reads again; the read checks the restored cursor's block in turn, so
the loop stops at the last block both chains share, and the new chain's events are applied from
there. Blobs whose records came back are queued for a sync (an undone deletion may have removed
data). Undo records cover the last `chain.reorg_window_blocks` blocks; a reorganisation deeper
than that is logged as an error and the node reads on from its cursor.

Polling. A caught-up processor polls as soon as the chain pushes a new head
(`ChainReader.watch_heads`: `eth_subscribe` newHeads over the endpoint's WebSocket,
chain/new_heads.py), which is the nearest an EVM endpoint comes to the stream of checkpoints
Walrus's nodes follow. Nothing is read from the push but its arrival, so polling stays the one
path by which events arrive, and it goes on beside the push, for an endpoint without one and for
a push that was lost: every `event_polling_interval_s`; sooner when a request starts waiting for
a registration the node has not seen (`RegistrationWaiters.wanted`: a client asks for its
confirmation, or uploads, right after its registration was mined); and every quarter interval
while such requests wait. However fast blocks or requests come, polls start at least
`MIN_POLL_GAP_S` apart. A failure of the push is logged and leaves polling alone.

Lag: `event_lag_seconds` is the time since the processor last reached the end of the stream (0
while caught up); `wait_for_events` lets tests and the devnet wait for a given event count.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

from walruspy import clock
from walruspy.chain.api import ChainError, ChainReader, ChainReorganizedError
from walruspy.chain.events import (
    ChainEvent,
    ChallengeCertified,
    ChallengeScheduled,
    ChallengeStart,
    EventCursor,
)
from walruspy.core.blob_id import BlobId
from walruspy.failpoints import failpoint_async
from walruspy.logs import get_logger
from walruspy.node import blob_state
from walruspy.node.challenges import Challenges, derive_record
from walruspy.node.config import ChainConfig
from walruspy.node.epoch import EpochChanges
from walruspy.node.metrics import NodeMetrics
from walruspy.node.recovery import BlobSyncer
from walruspy.node.storage import NodeStorage
from walruspy.node.store_records import BlobInfo, EventProgress, PerObjectBlobInfo
from walruspy.node.view import NodeState, RegistrationWaiters

log = get_logger("walruspy.node.events")

#: The shortest pause between two polls of a caught-up processor, however many requests wait
#: for registrations it has not seen.
MIN_POLL_GAP_S: Final = 0.01


class EventProcessor:
    """Applies the chain's events to the node's store, then performs their actions."""

    def __init__(
        self,
        chain: ChainReader,
        storage: NodeStorage,
        state: NodeState,
        metrics: NodeMetrics,
        *,
        registrations: RegistrationWaiters,
        syncer: BlobSyncer,
        epochs: EpochChanges,
        config: ChainConfig,
        challenges: Challenges,
        immediate_deletion: bool = False,
        flush_pending: Callable[[BlobId], Awaitable[None]] | None = None,
    ) -> None:
        self.chain = chain
        self.storage = storage
        self.state = state
        self.metrics = metrics
        self.registrations = registrations
        self.syncer = syncer
        self.epochs = epochs
        self.config = config
        self.challenges = challenges
        self.immediate_deletion = immediate_deletion
        #: Persists the uploads a blob got before its registration (`NodeService.flush_pending`).
        self.flush_pending = flush_pending
        # Read once, at start, before the event loop has anything else to do.
        self.progress: EventProgress | None = storage.store.event_cursor()
        self.block_hash = storage.store.event_block_hash()
        self._applied = asyncio.Condition()
        self._caught_up_at = clock.now()
        self.caught_up = asyncio.Event()
        #: Set when the chain pushes a new head (`ChainReader.watch_heads`).
        self._new_head = asyncio.Event()
        #: When the last poll started (`clock.now()`).
        self._polled_at = float("-inf")
        state.events_applied = self.events_applied

    @property
    def events_applied(self) -> int:
        """Events applied since the node's first start."""
        return 0 if self.progress is None else self.progress.events_applied

    @property
    def cursor(self) -> EventCursor:
        """The position of the next event to read."""
        if self.progress is None:
            return EventCursor()
        return EventCursor(self.progress.block_number, self.progress.log_index + 1, self.block_hash)

    async def wait_for_events(self, count: int) -> None:
        """Wait until at least `count` events have been applied."""
        async with self._applied:
            await self._applied.wait_for(lambda: self.events_applied >= count)

    async def run(self) -> None:
        """Poll and apply events until cancelled (and follow the chain's new heads)."""
        async with asyncio.TaskGroup() as group:
            if self.config.subscribe_new_heads:
                group.create_task(self._watch_heads())
            await self._poll()

    async def _watch_heads(self) -> None:
        try:
            await self.chain.watch_heads(self._new_head.set, self.config.ws_url)
        except Exception as exc:  # a defect of the push must not stop the polls
            log.error("following the chain's new heads failed; polling alone", error=repr(exc))

    async def _poll(self) -> None:
        failures = 0
        while True:
            try:
                self._polled_at = clock.now()
                events = await self.chain.events(self.cursor, self.config.events_per_poll)
                failures = 0
            except ChainReorganizedError as exc:
                await self.rewind(exc)
                continue
            except ChainError as exc:
                failures += 1
                delay = self.config.backoff.delay_s(failures)
                log.warning("cannot read events; retrying", error=str(exc), delay_s=delay)
                await asyncio.sleep(delay)
                continue
            await self.apply_all(events)
            if len(events) < self.config.events_per_poll:
                self._caught_up_at = clock.now()
                self.caught_up.set()
                self.metrics.event_lag_seconds.set(0)
                await self.idle()
            else:
                lag = clock.now() - self._caught_up_at
                self.metrics.event_lag_seconds.set(lag)

    async def idle(self) -> None:
        """The pause of a caught-up poller (module doc, "Polling"): until the chain pushes a
        new head; else the polling interval; a quarter of it while requests wait for
        registrations this node has not seen; and only `MIN_POLL_GAP_S` when a request starts
        waiting for a new one (a client asking for its confirmation, or uploading, right after
        registering: the event is likely on chain)."""
        interval = self.config.event_polling_interval_s
        gap = min(MIN_POLL_GAP_S, interval)
        waiters = self.registrations
        if not await _either(self._new_head, None, gap) and not waiters.wanted.is_set():
            pause = max(gap, interval / 4) if waiters.waiting else interval
            await _either(self._new_head, waiters.wanted, pause - gap)
        # However fast blocks come: polls start at least a gap apart.
        await asyncio.sleep(max(0.0, self._polled_at + gap - clock.now()))
        waiters.wanted.clear()
        self._new_head.clear()

    async def apply_all(self, events: Sequence[ChainEvent]) -> None:
        """Apply a batch of events in order."""
        for event in events:
            await self.apply(event)

    async def apply(self, event: ChainEvent) -> None:
        """Apply one event: decide, persist with the progress, then act."""
        position = (event.event_id.block_number, event.event_id.log_index)
        if self.progress is not None and position <= self.progress.position:
            log.warning("skipping an event at or before the stored position", position=position)
            return
        started = time.perf_counter()
        if isinstance(event, ChallengeScheduled | ChallengeStart | ChallengeCertified):
            await self._apply_challenge_event(event, position, started)
            return
        blob_info, per_object = await self._records_of(event)
        transition = blob_state.decide(
            event, blob_info, per_object, self.state.epoch, self.immediate_deletion
        )
        if transition.anomaly is not None:
            log.error("event contradicts the node's records; ignored", anomaly=transition.anomaly)
        progress = EventProgress.after(self.progress, *position)
        await failpoint_async("events.after_decide")
        await self.storage.apply_event(
            progress,
            transition.blob_infos,
            transition.per_object_blob_infos,
            transition.delete_data_of,
            block_hash=event.event_id.block_hash,
            undo_window_blocks=self.config.reorg_window_blocks,
        )
        self._advanced(event, progress, started)
        await failpoint_async("events.after_persist")
        for action in transition.actions:
            await self._perform(action)
        async with self._applied:
            self._applied.notify_all()

    def _advanced(self, event: ChainEvent, progress: EventProgress, started: float) -> None:
        self.progress = progress
        self.block_hash = event.event_id.block_hash
        self._record(event, progress, time.perf_counter() - started)

    async def _apply_challenge_event(
        self,
        event: ChallengeScheduled | ChallengeStart | ChallengeCertified,
        position: tuple[int, int],
        started: float,
    ) -> None:
        """A storage challenge is scheduled (symbols are withheld from now on), starts (its
        samples are derived from the blobs certified now and written with the event) or a
        member passed it (node/challenges.py)."""
        record = None
        if isinstance(event, ChallengeStart):
            epoch = self.state.view.epoch
            if event.epoch == epoch:
                certified = await self.storage.certified_blob_ids(epoch)
                record = derive_record(epoch, event.seed, self.state.view.committee, certified)
            else:
                log.warning("a challenge of another epoch; ignored", epoch=event.epoch)
        progress = EventProgress.after(self.progress, *position)
        await failpoint_async("events.after_decide")
        await self.storage.apply_event(
            progress,
            {},
            {},
            (),
            block_hash=event.event_id.block_hash,
            undo_window_blocks=self.config.reorg_window_blocks,
            challenge=record,
        )
        self._advanced(event, progress, started)
        await failpoint_async("events.after_persist")
        if record is not None:
            own = self.state.view.node_id
            faults = self.syncer.faults
            fetch: list[bytes] = []
            if faults is not None and own is not None:  # fault injection (tests, devnets)
                sample = record.sample_of(own) or ()
                fetch = await faults.challenge_started(self.storage, self.state, sample)
            self.challenges.begin(record)
            for blob_id in fetch:
                await self.syncer.start_sync(blob_id, defer=False)
        if isinstance(event, ChallengeCertified):
            self.challenges.certified_on_chain(event.epoch, event.node_id)
        if isinstance(event, ChallengeScheduled):
            self.challenges.scheduled(event.epoch)
        async with self._applied:
            self._applied.notify_all()

    async def rewind(self, reorganized: ChainReorganizedError) -> None:
        """Take back the newest block applied, after the chain replaced it."""
        undone = await self.storage.undo_last_block()
        if undone is None:
            log.error(
                "the chain reorganised deeper than the node keeps undo records; reading on from"
                " the cursor, records of the replaced blocks may be stale",
                error=str(reorganized),
                window_blocks=self.config.reorg_window_blocks,
            )
            self.metrics.reorg_too_deep.inc()
            self.block_hash = b""
            return
        log.warning(
            "chain reorganisation: took back the events of a replaced block",
            block=undone.block_number,
            events=undone.events,
            error=str(reorganized),
        )
        self.progress = undone.progress
        self.block_hash = undone.block_hash
        self.state.events_applied = self.events_applied
        self.metrics.events_undone.inc(undone.events)
        self.metrics.event_cursor_progress.set(self.events_applied)
        for blob_id in undone.blob_ids:
            info = await self.storage.blob_info(BlobId(blob_id))
            if blob_state.is_certified(info, self.state.epoch):
                await self.syncer.start_sync(blob_id)
            else:
                self.syncer.cancel(blob_id)

    async def _records_of(
        self, event: ChainEvent
    ) -> tuple[BlobInfo | None, PerObjectBlobInfo | None]:
        blob_id = getattr(event, "blob_id", None)
        object_id = getattr(event, "object_id", None)
        info = None if blob_id is None else await self.storage.blob_info(blob_id)
        record = None if object_id is None else await self.storage.object_info(object_id)
        return info, record

    def _record(self, event: ChainEvent, progress: EventProgress, seconds: float) -> None:
        state = self.state
        state.events_applied = progress.events_applied
        state.latest_block = progress.block_number
        metrics = self.metrics
        metrics.events_processed.labels(type(event).__name__).inc()
        metrics.event_process_seconds.observe(seconds)
        metrics.event_cursor_progress.set(progress.events_applied)

    async def _perform(self, action: blob_state.Action) -> None:
        if isinstance(action, blob_state.StartSync):
            await self.syncer.start_sync(action.blob_id)
        elif isinstance(action, blob_state.CancelSync):
            self.syncer.cancel(action.blob_id)
        elif isinstance(action, blob_state.NotifyRegistered):
            if self.flush_pending is not None:
                # Before the waiting confirmation requests wake: they find the slivers stored.
                await self.flush_pending(BlobId(action.blob_id))
            self.registrations.notify(action.blob_id)
        elif isinstance(action, blob_state.BeginEpoch):
            await self.epochs.begin_epoch(action.epoch)
        else:
            log.info("epoch change done", epoch=action.epoch)


async def _either(first: asyncio.Event, second: asyncio.Event | None, timeout_s: float) -> bool:
    """Wait until `first` or `second` is set, at most `timeout_s`; whether one is."""
    waits = [asyncio.ensure_future(event.wait()) for event in (first, second) if event is not None]
    try:
        done, _ = await asyncio.wait(
            waits, timeout=max(0.0, timeout_s), return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        for wait in waits:
            wait.cancel()
    return bool(done)

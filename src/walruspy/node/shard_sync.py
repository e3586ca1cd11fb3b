"""Shard sync, the requesting side: a node fills the shards it gains from their previous owners.

Theory of operation (spec/walrus-system.md 2.2, 3.1 `POST /v1/migrate/sync_shard` and 3.5; Walrus
`node/shard_sync.rs` and `node/storage/shard.rs` `sync_shard_before_epoch_internal`). The rules
are `shard_plan`'s (P1 to P5, F1, F2, L6); this module performs them.

`EpochChanges` decides, at each new committee, which gained shards to sync and from whom, and
calls `start`; `stop` ends a shard's sync when the shard is lost again or deleted. Syncs wait
until `enable()` (the node has replayed the chain's events it missed: a node that catches up
syncs what it owns *now*), and at most `max_concurrent_shard_syncs` run at once. One shard's sync:

1. asks the shard's owner in the previous committee for the next batch (`next_request`): a
   SYNC_SHARD request signed by this node's protocol key, one axis after the other;
2. checks the answer (`SyncBatch`: increasing blob IDs from the start, no more than asked) and
   each sliver: of the asked axis, at the sliver pair this shard holds for its blob, and
   consistent with the blob's metadata (from the store, or from the committee when this node
   lacks it: Walrus's `verify_fetched_slivers`). A sliver that fails is not stored; its blob is
   left to recovery;
3. stores the batch's slivers and the advanced progress in one transaction
   (`NodeStore.put_synced_slivers`), so a crash at any point resumes after the last stored batch
   (rule P4), and a shard locked meanwhile refuses the batch;
4. once both axes are done, sets the shard ACTIVE, or ACTIVE_RECOVER when some blob is left to
   recovery (or the sync resumed after a restart, which forgets what earlier runs skipped): the
   epoch-sync reporter's scan then recovers whatever the shard still lacks, and activates it.

A source that cannot answer yet (unreachable, behind the new epoch, not yet seeing this node as
the owner) is asked again after a doubling backoff; once no batch was stored for
`retry_window_s`, or at once on a refusal or an invalid answer, the shard falls back to recovery
blob by blob (`decide_after_failure`): it goes ACTIVE_RECOVER with its progress kept, so a restart
tries the transfer first again (rule L7).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import aiohttp

from walruspy.clock import now
from walruspy.core.blob_id import BlobId
from walruspy.core.committee import CommitteeMember
from walruspy.core.crypto import BlsPrivateKey
from walruspy.core.errors import DecodeError, InvalidInputError, VerificationError, WalrusError
from walruspy.core.messages import sign_sync_shard_request
from walruspy.core.metadata import VerifiedBlobMetadataWithId
from walruspy.core.slivers import SliverData, VerifiedSliver
from walruspy.core.types import ShardIndex, SliverType, shard_of_pair
from walruspy.failpoints import failpoint_async
from walruspy.logs import get_logger
from walruspy.node.background import BackgroundWorkers
from walruspy.node.config import ShardSyncConfig
from walruspy.node.metrics import NodeMetrics
from walruspy.node.shard_plan import (
    FallBackToRecovery,
    ShardSyncProgress,
    SyncBatch,
    SyncDone,
    SyncFailure,
    SyncRetryPolicy,
    advance,
    decide_after_failure,
    next_request,
    status_after_transfer,
)
from walruspy.node.storage import NodeStorage
from walruspy.node.store import ShardNotSyncingError
from walruspy.node.store_records import ShardStatus
from walruspy.node.view import NodeState
from walruspy.node_api.client import NodeClient
from walruspy.node_api.errors import NodeApiError, NodeConnectionError

log = get_logger("walruspy.node.shard_sync")

#: Fetches verified metadata of a blob from the committee (the blob syncer's `fetch_metadata`).
MetadataFetcher = Callable[[BlobId], Awaitable[VerifiedBlobMetadataWithId]]


def failure_of(error: BaseException) -> SyncFailure:  # noqa: PLR0911 (one return per kind)
    """How a failed sync-shard request counts (Walrus `handle_sync_error`)."""
    if isinstance(error, NodeConnectionError | TimeoutError):
        return SyncFailure.UNREACHABLE
    if isinstance(error, DecodeError | VerificationError | InvalidInputError):
        return SyncFailure.INVALID_RESPONSE
    if isinstance(error, NodeApiError):
        if error.reason == "REQUEST_UNAUTHORIZED":
            return SyncFailure.UNAUTHORIZED
        if error.reason == "INVALID_EPOCH":
            asked, served = error.metadata.get("request_epoch"), error.metadata.get("server_epoch")
            if isinstance(asked, int) and isinstance(served, int) and asked > served:
                return SyncFailure.SOURCE_BEHIND
        if error.http_status >= 500:
            return SyncFailure.UNREACHABLE  # overloaded or restarting: ask again
        return SyncFailure.REFUSED
    return SyncFailure.REFUSED


class ShardSyncOutcome(StrEnum):
    """How one shard's sync ended; the value is its metric label (`walrus_shard_syncs_total`)."""

    #: Both axes transferred: the shard is ACTIVE (or ACTIVE_RECOVER for what was skipped).
    SYNCED = "synced"
    #: The source could not serve it: the shard is left to recovery blob by blob (rule F1/F2).
    FELL_BACK = "fell_back"
    #: Stopped before the end: cancelled (`stop`), or the shard was locked meanwhile.
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class _Job:
    source: CommitteeMember
    progress: ShardSyncProgress
    resumed: bool


class ShardSyncer(BackgroundWorkers):
    """Runs the syncs of gained shards (module docstring)."""

    def __init__(
        self,
        storage: NodeStorage,
        state: NodeState,
        metrics: NodeMetrics,
        protocol_key: BlsPrivateKey,
        config: ShardSyncConfig,
        *,
        fetch_metadata: MetadataFetcher,
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] = now,
    ) -> None:
        super().__init__(metrics.shards_syncing, session)
        self.storage = storage
        self.state = state
        self.metrics = metrics
        self.config = config
        self._key = protocol_key
        self._public_key = protocol_key.public_key()
        self._fetch_metadata = fetch_metadata
        self._clock = clock
        self._policy = SyncRetryPolicy(config.retry_window_s)
        self._slots = asyncio.Semaphore(config.max_concurrent_shard_syncs)
        self._enabled = asyncio.Event()
        self._pending: dict[ShardIndex, _Job] = {}
        self._running: dict[ShardIndex, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()

    # --- control (called by EpochChanges) --------------------------------------------------

    @property
    def syncing(self) -> frozenset[ShardIndex]:
        """Shards with a sync queued or running."""
        return frozenset(self._pending) | frozenset(self._running)

    def enable(self) -> None:
        """The node has replayed the events it missed: syncs may start."""
        self._enabled.set()

    def start(
        self, shard: ShardIndex, source: CommitteeMember, progress: ShardSyncProgress
    ) -> None:
        """Sync `shard` from `source`, from `progress` (a no-op while it already runs)."""
        if shard in self._running:
            return
        resumed = progress.last_synced_blob_id is not None or progress.sliver_type is not (
            SliverType.PRIMARY
        )
        self._pending[shard] = _Job(source, progress, resumed)
        self._changed()
        self._wake.set()

    async def stop(self, shard: ShardIndex) -> None:
        """End the sync of `shard`, if any, and wait until it has stopped."""
        self._pending.pop(shard, None)
        task = self._running.get(shard)
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
        self._changed()

    @property
    def backlog(self) -> int:
        """Syncs queued or running."""
        return len(self._pending) + len(self._running)

    def _changed(self) -> None:
        self.state.syncing_shards = self.syncing
        self._update_backlog()

    # --- running ---------------------------------------------------------------------------

    def tasks(self) -> Iterable[Coroutine[Any, Any, None]]:
        """The dispatcher, which starts queued syncs (`run` runs it until cancelled)."""
        yield self._dispatch()

    async def _dispatch(self) -> None:
        await self._enabled.wait()
        async with asyncio.TaskGroup() as group:
            while True:
                self._wake.clear()
                for shard in list(self._pending):
                    if shard not in self._running:
                        job = self._pending.pop(shard)
                        self._running[shard] = group.create_task(self._run_one(shard, job))
                self._changed()
                await self._wake.wait()

    async def _run_one(self, shard: ShardIndex, job: _Job) -> None:
        # Unless the sync ends: cancelled (`stop`), or locked meanwhile.
        outcome = ShardSyncOutcome.STOPPED
        try:
            async with self._slots:
                outcome = await self.sync(shard, job.source, job.progress, job.resumed)
        except ShardNotSyncingError:
            pass
        finally:
            self._running.pop(shard, None)
            self.metrics.shard_syncs.labels(outcome).inc()
            self._changed()
        log.info("shard sync finished", shard=shard, outcome=outcome.value)

    async def sync(
        self,
        shard: ShardIndex,
        source: CommitteeMember,
        progress: ShardSyncProgress,
        resumed: bool = False,
    ) -> ShardSyncOutcome:
        """Sync one shard to the end; how it ended (SYNCED or FELL_BACK)."""
        client = NodeClient.for_member(source, self._session)
        last_progress_at = self._clock()
        failures = 0
        left_to_recovery = resumed
        log.info("shard sync", shard=shard, source=source.network_address, epoch=progress.epoch)
        while True:
            request = next_request(progress, self.config.batch_size)
            if isinstance(request, SyncDone):
                await self._finish(shard, status_after_transfer(left_to_recovery))
                return ShardSyncOutcome.SYNCED
            signed = await asyncio.to_thread(sign_sync_shard_request, self._key, request)
            try:
                answer = await client.sync_shard(
                    signed, self._public_key, timeout_s=self.config.request_timeout_s
                )
                batch = SyncBatch(request, tuple(blob_id.raw for blob_id, _ in answer))
                items, skipped = await self._check(shard, request.sliver_type, answer)
            except (WalrusError, TimeoutError) as exc:
                failure = failure_of(exc)
                self.metrics.shard_sync_failures.labels(failure.value).inc()
                decision = decide_after_failure(
                    failure, last_progress_s=last_progress_at, now_s=self._clock(),
                    policy=self._policy,
                )  # fmt: skip
                if isinstance(decision, FallBackToRecovery):
                    log.warning(
                        "shard sync falls back to recovery",
                        shard=shard,
                        failure=failure.value,
                        reason=decision.reason.value,
                        error=str(exc)[:200],
                    )
                    await self._finish(shard, ShardStatus.ACTIVE_RECOVER, keep=progress)
                    return ShardSyncOutcome.FELL_BACK
                failures += 1
                await asyncio.sleep(self.config.backoff.delay_s(failures - 1))
                continue
            progress = advance(progress, batch)
            not_stored = await self.storage.put_synced_slivers(
                shard, request.sliver_type, items, progress
            )
            left_to_recovery = left_to_recovery or bool(skipped) or bool(not_stored)
            self._count(request.sliver_type, items)
            last_progress_at, failures = self._clock(), 0
            await failpoint_async("shard_sync.after_page")

    def _count(self, sliver_type: SliverType, items: Sequence[VerifiedSliver]) -> None:
        self.metrics.shard_sync_slivers.labels(sliver_type.value).inc(len(items))
        self.metrics.shard_sync_bytes.inc(sum(len(s.sliver.data) for s in items))

    async def _check(
        self,
        shard: ShardIndex,
        sliver_type: SliverType,
        answer: Sequence[tuple[BlobId, SliverData]],
    ) -> tuple[list[VerifiedSliver], list[bytes]]:
        """The slivers that verify, and the blob IDs whose sliver could not be checked or failed."""
        n = self.state.n_shards
        verified: list[VerifiedSliver] = []
        skipped: list[bytes] = []
        for blob_id, sliver in answer:
            if sliver.sliver_type is not sliver_type:
                raise InvalidInputError(f"a {sliver.sliver_type.value} sliver in a sync answer")
            if shard_of_pair(sliver.pair_index(n), blob_id.raw, n) != shard:
                raise InvalidInputError(
                    f"sliver {sliver.index} of {blob_id} is not of shard {shard}"
                )
            metadata = await self._metadata(blob_id)
            if metadata is None:
                skipped.append(blob_id.raw)
                continue
            try:
                verified.append(await asyncio.to_thread(sliver.verify, metadata))
            except VerificationError as exc:
                log.warning(
                    "synced sliver fails verification", blob_id=str(blob_id), error=str(exc)
                )
                skipped.append(blob_id.raw)
        return verified, skipped

    async def _metadata(self, blob_id: BlobId) -> VerifiedBlobMetadataWithId | None:
        """The blob's metadata, fetched from the committee and stored when missing here."""
        metadata = await self.storage.metadata(blob_id)
        if metadata is not None:
            return metadata
        try:
            metadata = await self._fetch_metadata(blob_id)
        except WalrusError as exc:
            log.warning("no metadata for a synced sliver", blob_id=str(blob_id), error=str(exc))
            return None
        await self.storage.store_metadata(metadata)
        return metadata

    async def _finish(
        self, shard: ShardIndex, status: ShardStatus, keep: ShardSyncProgress | None = None
    ) -> None:
        """Set the shard's status after its transfer; the progress goes unless kept (F2)."""
        await self.storage.finish_sync(shard, status, keep)

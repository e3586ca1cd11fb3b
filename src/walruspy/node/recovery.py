"""Blob sync: a node that lacks data of a certified blob recovers it from its peers.

Theory of operation (spec/walrus-system.md 3.4 and 5; spec/encoding.md 9; Walrus `blob_sync.rs`,
`committee/request_futures.rs`). When the event processor sees a blob certified (or the periodic
scan finds a certified blob with data missing), `start_sync` queues its ID. A fixed set of workers
takes IDs from the bounded queue; each sync

1. waits out the live-upload deferral (the client may still be uploading to us), then checks that
   the blob is still certified and what is missing (metadata, and per owned shard the secondary
   and primary sliver);
2. gets the metadata from its store, or from the other committee members: the first answer that
   verifies against the blob ID and n_shards wins (`NodeClient.get_metadata` verifies);
3. recovers the missing secondary slivers of its shards, then the missing primary slivers: for
   each, it takes the symbols its own stored slivers of the other axis give (no network), then asks
   the other members for their recovery symbols of that target (`targetSliver`/`targetType`,
   proofs on the other axis), verifies every symbol against the metadata, and decodes once it
   holds p (for a secondary target) or s (for a primary target) distinct ones. Symbols are
   verified one by one, each against its own Merkle proof: a node whose answer contains a symbol
   that fails is counted as faulty, and its good symbols are kept (a peer with a few rotten
   slivers still helps). A peer that is busy (503) is asked again after a backoff, a few times,
   instead of counting as failed.
   Recovering secondaries first helps twice: they need fewer helpers, and they then give symbols
   for this node's primaries, so the node tolerates a liar among fewer peers;
4. stores each recovered sliver (it verified against the metadata while decoding), or, if the
   decoded sliver does not match the metadata, keeps the `InconsistencyProof`, hands it to the
   invalidation flow (an `InvalidationQueue`: the node's `invalidation.Invalidator`, f+1
   attestations, then the certificate on chain) and stops: the blob was encoded inconsistently
   and its data must never be served.

Each sync ends with a `SyncOutcome` (its value is the metric label); whether a failed one is
queued again is the pure rule `decide_retry` (R1-R3 below). Peers' failures are counted by kind
(`peer_failures`).

Bounds: `max_concurrent_blob_syncs` workers, a queue of `max_pending_syncs` IDs (the event
processor waits when it is full: backpressure, never a dropped sync), `max_concurrent_requests`
requests in flight per sync, a timeout per request, and `max_attempts` rounds with exponential
backoff per sliver; a sync that gives up is queued again after a capped, doubling backoff up to
`sync_retries` times, then left to the next scan (spec/walrus-system.md 3.4 and 5: recovery
converges as long as at most f shards' nodes are faulty). `cancel` stops a queued or
running sync when the blob is deleted or marked invalid.
"""

from __future__ import annotations

import asyncio
import random
from collections import OrderedDict
from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from http import HTTPStatus
from typing import Any, Protocol

import aiohttp

from walruspy import clock
from walruspy.core.blob_id import BlobId
from walruspy.core.committee import CommitteeMember
from walruspy.core.errors import VerificationError, WalrusError
from walruspy.core.inconsistency import InconsistencyProof, symbols_needed
from walruspy.core.metadata import VerifiedBlobMetadataWithId
from walruspy.core.recovery import recover_sliver
from walruspy.core.slivers import SliverData, VerifiedSliver
from walruspy.core.symbols import RecoverySymbol, SymbolSource, VerifiedRecoverySymbol
from walruspy.core.types import (
    ShardIndex,
    SliverIndex,
    SliverType,
    pair_of_shard,
    sliver_index_of_pair,
)
from walruspy.failpoints import failpoint_async
from walruspy.logs import get_logger
from walruspy.node import blob_state
from walruspy.node.background import BackgroundWorkers
from walruspy.node.config import RecoveryConfig
from walruspy.node.faults import Faults
from walruspy.node.gc import successor
from walruspy.node.metrics import NodeMetrics
from walruspy.node.peer_failures import PEER_FAILURES, PeerFailure, failure_kind
from walruspy.node.storage import NodeStorage
from walruspy.node.store_records import BlobInfo
from walruspy.node.view import NodeState
from walruspy.node_api.client import NodeClient
from walruspy.node_api.errors import NodeApiError
from walruspy.node_api.fanout import NodeFailure, NodeRequest, gather_weight
from walruspy.node_api.paths import RecoverySymbolsForSliver
from walruspy.tasks import first_error

log = get_logger("walruspy.node.recovery")

#: Inconsistency proofs kept in memory (the latest; the invalidation flow holds its own queue).
MAX_KEPT_PROOFS = 1000
#: Times a busy peer (503, its symbol-request slots full) is asked again within one round.
UNAVAILABLE_RETRIES = 3
#: Blob records read per step of the scan for certified blobs that miss data.
SCAN_BATCH = 1000
#: Peer failures that are worth a warning in the log, not only a count.
_WARNED = frozenset({PeerFailure.INVALID, PeerFailure.IDENTITY})


class SyncOutcome(StrEnum):
    """How one blob sync ended; the value is its metric label (`walrus_recover_blob_total`)."""

    #: The blob was recovered: every missing part is stored.
    RECOVERED = "recovered"
    #: Nothing to do: the blob is not certified (any more), or nothing is missing.
    SKIPPED = "skipped"
    #: A decoded sliver does not match the metadata: the proof went to the invalidation flow.
    INCONSISTENT = "inconsistent"
    #: The sync gave up or failed (retried later, then left to the scan).
    FAILED = "failed"
    #: The sync was cancelled (the blob was deleted or marked invalid).
    CANCELLED = "cancelled"


# --- pure: whether a finished sync is queued again ------------------------------------------------
#
# R1. A sync that did not fail forgets the blob's failures.
# R2. A failed sync counts one failure more. Past `sync_retries` failures in a row, or with the
#     queue full (a worker must not wait on its own queue), the failures are forgotten and the
#     blob is left to the periodic scan.
# R3. Otherwise the blob is queued again, after the backoff's pause for its count of failures.


@dataclass(frozen=True, slots=True)
class RequeueSync:
    """Queue the blob again after the pause for `failures` failures in a row (rule R3)."""

    failures: int


@dataclass(frozen=True, slots=True)
class ForgetFailures:
    """Forget the blob's failures (rules R1 and R2): it succeeded, or the scan takes over."""


def decide_retry(
    outcome: SyncOutcome, failures_before: int, sync_retries: int, queue_full: bool
) -> RequeueSync | ForgetFailures:
    """What follows a finished sync of a blob that had failed `failures_before` times in a row."""
    if outcome is not SyncOutcome.FAILED:
        return ForgetFailures()
    failures = failures_before + 1
    if failures > sync_retries or queue_full:
        return ForgetFailures()
    return RequeueSync(failures)


class InvalidationQueue(Protocol):
    """Where blob sync hands an inconsistency proof: the invalidation flow (its `submit`)."""

    async def submit(self, blob_id: BlobId, proof: InconsistencyProof) -> bool:
        """Queue the invalidation of `blob_id`; False if one is queued or running already."""
        ...


class SyncGaveUpError(WalrusError):
    """A blob sync could not gather what it needed within its attempts; the next scan retries."""


@dataclass(frozen=True, slots=True)
class _Queued:
    blob_id: bytes
    not_before: float


class BlobSyncer(BackgroundWorkers):
    """The blob-sync workers of one node, with their queue and the periodic scan."""

    def __init__(
        self,
        storage: NodeStorage,
        state: NodeState,
        metrics: NodeMetrics,
        config: RecoveryConfig,
        invalidator: InvalidationQueue,
        *,
        session: aiohttp.ClientSession | None = None,
        rng: random.Random | None = None,
        faults: Faults | None = None,
    ) -> None:
        self.storage = storage
        self.state = state
        self.metrics = metrics
        self.config = config
        self.invalidator = invalidator
        #: Fault injection (tests and devnets only): blobs this node must not recover.
        self.faults = faults
        super().__init__(metrics.recover_blob_backlog, session)
        self.inconsistency_proofs: OrderedDict[bytes, InconsistencyProof] = OrderedDict()
        # Shuffling peers and jittering backoff need no cryptographic randomness.
        self._rng = rng or random.Random()  # noqa: S311
        self._queue: asyncio.Queue[_Queued] = asyncio.Queue(config.max_pending_syncs)
        self._queued: set[bytes] = set()
        self._running: dict[bytes, asyncio.Task[None]] = {}
        #: Blob ID -> failed syncs in a row (retried by `_retry_if_failed`).
        self._failures: dict[bytes, int] = {}
        #: Blobs asked for while their sync was running: run again once it ends, since the
        #: running sync decided what was missing before (a part discarded as corrupt meanwhile).
        self._again: set[bytes] = set()
        #: Set once the first scan for certified blobs with missing data has queued them.
        self.scanned = asyncio.Event()

    @property
    def backlog(self) -> int:
        """Syncs queued or running."""
        return len(self._queued) + len(self._running)

    def _update_backlog(self) -> None:
        self.state.pending_syncs = self.backlog
        super()._update_backlog()

    async def start_sync(self, blob_id: bytes, defer: bool = True) -> None:
        """Queue a sync of `blob_id` (no-op if queued; once more after it if running); waits
        while the queue is full."""
        if self.faults is not None and self.faults.blocks_sync(blob_id):
            return  # fault injection: this node never recovers what it discarded
        if blob_id in self._running:
            self._again.add(blob_id)
            return
        if blob_id in self._queued:
            return
        delay = self.config.live_upload_deferral_s if defer else 0.0
        self._queued.add(blob_id)
        self._update_backlog()
        await self._queue.put(_Queued(blob_id, clock.now() + delay))

    def cancel(self, blob_id: bytes) -> None:
        """Stop a queued or running sync of `blob_id` (the blob was deleted or is invalid)."""
        self._queued.discard(blob_id)
        self._again.discard(blob_id)
        task = self._running.get(blob_id)
        if task is not None:
            task.cancel()
        self._update_backlog()

    def tasks(self) -> Iterable[Coroutine[Any, Any, None]]:
        """The workers and the periodic scan (`run` runs them until cancelled)."""
        yield from (self._worker() for _ in range(self.config.max_concurrent_blob_syncs))
        yield self._scan_forever()

    async def _scan_forever(self) -> None:
        while True:
            await self.scan()
            self.scanned.set()
            await asyncio.sleep(self.config.rescan_interval_s)

    async def scan(self) -> int:
        """Queue every blob certified now whose data this node lacks; return how many."""
        store, started, start = self.storage.store, 0, None
        while True:
            batch = await asyncio.to_thread(store.list_blob_infos, start, SCAN_BATCH)
            for blob_id, info in batch:
                if blob_state.is_certified(info, self.state.epoch):
                    missing = await self.missing_parts(BlobId(blob_id), info)
                    if missing:
                        await self.start_sync(blob_id, defer=False)
                        started += 1
            if len(batch) < SCAN_BATCH:
                return started
            start = successor(batch[-1][0])
            if start is None:
                return started

    async def _worker(self) -> None:
        while True:
            item = await self._queue.get()
            if item.blob_id not in self._queued:
                continue  # cancelled while queued
            await asyncio.sleep(max(0.0, item.not_before - clock.now()))
            if item.blob_id not in self._queued:
                continue
            self._queued.discard(item.blob_id)
            async with asyncio.TaskGroup() as group:
                task = group.create_task(self._sync_logged(BlobId(item.blob_id)))
                self._running[item.blob_id] = task
                self._update_backlog()
            del self._running[item.blob_id]
            self._update_backlog()
            if task.cancelled():
                self.metrics.blob_syncs.labels(SyncOutcome.CANCELLED).inc()
            elif item.blob_id in self._again:
                self._again.discard(item.blob_id)
                if not self._queue.full():  # a worker must not wait on its own queue
                    await self.start_sync(item.blob_id, defer=False)

    async def _sync_logged(self, blob_id: BlobId) -> None:
        bound = log.bind(blob_id=str(blob_id), epoch=self.state.epoch)
        try:
            outcome = await self.sync(blob_id)
        except WalrusError as exc:
            bound.warning("blob sync failed", error=str(exc))
            outcome = SyncOutcome.FAILED
        self.metrics.blob_syncs.labels(outcome).inc()
        bound.info("blob sync finished", outcome=outcome.value)
        self._retry_if_failed(blob_id.raw, outcome)

    def _retry_if_failed(self, blob_id: bytes, outcome: SyncOutcome) -> None:
        """Queue a failed sync again after a capped, doubling backoff, up to `sync_retries`
        times (`decide_retry`); the periodic scan covers whatever is still missing after that."""
        decision = decide_retry(
            outcome, self._failures.get(blob_id, 0), self.config.sync_retries, self._queue.full()
        )
        if isinstance(decision, ForgetFailures):
            self._failures.pop(blob_id, None)
            return
        failures = self._failures[blob_id] = decision.failures
        delay = self.config.backoff.jittered_s(failures, self._rng)
        self._queued.add(blob_id)
        self._update_backlog()
        self._queue.put_nowait(_Queued(blob_id, clock.now() + delay))

    # --- one sync -----------------------------------------------------------------------------

    async def sync(self, blob_id: BlobId) -> SyncOutcome:
        """Recover what this node lacks of `blob_id`; how it ended."""
        info = await self.storage.blob_info(blob_id)
        if not blob_state.is_certified(info, self.state.epoch):
            return SyncOutcome.SKIPPED
        missing = await self.missing_parts(blob_id, info)
        if not missing:
            return SyncOutcome.SKIPPED
        metadata = await self.storage.metadata(blob_id)
        if metadata is None:
            metadata = await self.fetch_metadata(blob_id)
            await self.storage.store_metadata(metadata)
        # All secondary slivers first: they need only p symbols, and once stored they give
        # symbols for this node's own primary slivers (spec/encoding.md 9).
        for sliver_type in (SliverType.SECONDARY, SliverType.PRIMARY):
            shards = [part[0] for part in missing if part is not None and part[1] is sliver_type]
            proof = await self._recover_all(metadata, shards, sliver_type)
            if proof is not None:
                self._keep_proof(blob_id, proof)
                await self.invalidator.submit(blob_id, proof)
                return SyncOutcome.INCONSISTENT
        return SyncOutcome.RECOVERED

    async def missing_parts(
        self, blob_id: BlobId, info: BlobInfo | None
    ) -> list[tuple[ShardIndex, SliverType] | None]:
        """What blob sync must bring of `blob_id`: all the node lacks, except the slivers that
        a running shard transfer brings (blobs certified before this epoch, on gained shards)."""
        state = self.state
        transferred = blob_state.is_certified_before(info, state.epoch)
        shards = state.view.owned_shards
        if transferred:
            shards -= state.syncing_shards
        return await self.storage.missing_parts(blob_id, shards, check_metadata=True)

    async def _recover_all(
        self,
        metadata: VerifiedBlobMetadataWithId,
        shards: Sequence[ShardIndex],
        sliver_type: SliverType,
    ) -> InconsistencyProof | None:
        """Recover the `sliver_type` slivers of `shards`, a bounded number at a time."""
        slots = asyncio.Semaphore(self.config.max_concurrent_requests)

        async def one(shard: ShardIndex) -> InconsistencyProof | None:
            async with slots:
                result = await self.recover_sliver(metadata, shard, sliver_type)
            if isinstance(result, InconsistencyProof):
                return result
            await failpoint_async("recovery.before_store")
            await self.storage.store_sliver(shard, result)
            self.metrics.slivers_recovered.labels(sliver_type.value).inc()
            return None

        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(one(shard)) for shard in shards]
        except BaseExceptionGroup as failures:
            # One sliver that cannot be recovered fails the sync (the others are cancelled):
            # raised as itself, so the worker counts a failed sync instead of stopping.
            raise first_error(failures) from None
        return next((proof for task in tasks if (proof := task.result()) is not None), None)

    def _keep_proof(self, blob_id: BlobId, proof: InconsistencyProof) -> None:
        self.inconsistency_proofs[blob_id.raw] = proof
        while len(self.inconsistency_proofs) > MAX_KEPT_PROOFS:
            self.inconsistency_proofs.popitem(last=False)
        log.warning(
            "blob is inconsistent; invalidating it with the inconsistency proof",
            blob_id=str(blob_id),
            target_type=proof.target_type.value,
            target_index=proof.target_index,
        )

    def _client(self, member: CommitteeMember) -> NodeClient:
        return NodeClient.for_member(member, self._session)

    def _peers(self) -> list[CommitteeMember]:
        peers = self.state.view.peers()
        self._rng.shuffle(peers)
        return peers

    async def _backoff(self, attempt: int) -> None:
        await asyncio.sleep(self.config.backoff.jittered_s(attempt, self._rng))

    def _fan_out_timeout(self, peers: int, request_timeout_s: float) -> float:
        # In the worst case the peers are asked one after the other.
        return max(peers, 1) * request_timeout_s + 1.0

    async def fetch_metadata(self, blob_id: BlobId) -> VerifiedBlobMetadataWithId:
        """The blob's metadata from other members: the first answer that verifies wins."""
        n = self.state.n_shards
        timeout_s = self.config.metadata_request_timeout_s
        for attempt in range(self.config.max_attempts):
            peers = self._peers()

            async def ask(member: CommitteeMember) -> VerifiedBlobMetadataWithId:
                client = self._client(member)
                return await client.get_metadata(blob_id, n, timeout_s=timeout_s)

            # Two at a time: one answer suffices, a second covers a slow or lying peer.
            outcome = await gather_weight(
                [NodeRequest(member, 1, partial(ask, member)) for member in peers],
                1,
                max_concurrency=min(2, self.config.max_concurrent_requests),
                timeout_s=self._fan_out_timeout(len(peers), timeout_s),
                failures=PEER_FAILURES,
            )
            self._count_failures(outcome.failures)
            if outcome.successes:
                return outcome.successes[0].value
            await self._backoff(attempt)
        raise SyncGaveUpError(f"no peer gave valid metadata of {blob_id}")

    async def recover_sliver(
        self, metadata: VerifiedBlobMetadataWithId, shard: ShardIndex, sliver_type: SliverType
    ) -> VerifiedSliver | InconsistencyProof:
        """Rebuild the `sliver_type` sliver this node's `shard` holds, from peers' symbols."""
        n = metadata.n_shards
        pair = pair_of_shard(shard, metadata.blob_id.raw, n)
        target = sliver_index_of_pair(pair, sliver_type, n)
        needed = symbols_needed(metadata.params, sliver_type)
        for attempt in range(self.config.max_attempts):
            symbols = await self._gather_symbols(metadata, target, sliver_type, needed)
            if symbols is not None:
                return await asyncio.to_thread(
                    recover_sliver, metadata, sliver_type, target, symbols
                )
            await self._backoff(attempt)
        raise SyncGaveUpError(
            f"too few verified symbols for {sliver_type.value} sliver {target} of "
            f"{metadata.blob_id} after {self.config.max_attempts} rounds"
        )

    async def _gather_symbols(
        self,
        metadata: VerifiedBlobMetadataWithId,
        target: SliverIndex,
        sliver_type: SliverType,
        needed: int,
    ) -> list[VerifiedRecoverySymbol] | None:
        """One round: verified symbols of at least `needed` distinct indices, or None."""
        timeout_s = self.config.sliver_request_timeout_s
        request = RecoverySymbolsForSliver(target, sliver_type, sliver_type.orthogonal)
        by_index: dict[int, VerifiedRecoverySymbol] = {}
        for symbol in await self._local_symbols(metadata, target, sliver_type):
            by_index.setdefault(symbol.decoding_index, symbol)
        if len(by_index) >= needed:
            return list(by_index.values())
        peers = self._peers()

        async def ask(member: CommitteeMember) -> int:
            symbols = await self._symbols_from(member, metadata.blob_id, request, timeout_s)
            verified, failed = await asyncio.to_thread(
                _verify_each, symbols, metadata, target, sliver_type
            )
            if failed is not None:
                # Keep the good symbols of a partly bad answer, and count the peer as faulty.
                self._count_failure(member, failed)
            before = len(by_index)
            for symbol in verified:
                if symbol.symbol.target_type is sliver_type:
                    by_index.setdefault(symbol.decoding_index, symbol)
            return len(by_index) - before  # the new distinct symbols: what this answer weighs

        # Each peer answers one symbol per shard it holds: ask peers until their shard weight
        # covers what is missing, and more only when some fail (Walrus's request futures).
        # Success weighs the new symbols it brought, so the threshold is what is still missing
        # and the peers' weights bound what is in flight.
        outcome = await gather_weight(
            [NodeRequest(member, member.weight, partial(ask, member)) for member in peers],
            needed - len(by_index),
            max_concurrency=self.config.max_concurrent_requests,
            timeout_s=self._fan_out_timeout(len(peers), timeout_s),
            weigh=lambda added: added,
            stop_if_unreachable=False,  # a peer may bring more symbols than its weight
            bound_in_flight=True,
            failures=PEER_FAILURES,
        )
        self._count_failures(outcome.failures)
        return list(by_index.values()) if len(by_index) >= needed else None

    async def _symbols_from(
        self,
        member: CommitteeMember,
        blob_id: BlobId,
        request: RecoverySymbolsForSliver,
        timeout_s: float,
    ) -> list[RecoverySymbol]:
        """A peer's recovery symbols; a peer that is busy (503) is asked again after a backoff,
        up to `UNAVAILABLE_RETRIES` times, instead of counting as failed."""
        client = self._client(member)
        try:
            for attempt in range(UNAVAILABLE_RETRIES):
                try:
                    return await client.recovery_symbols(blob_id, request, timeout_s=timeout_s)
                except NodeApiError as exc:
                    if exc.http_status != HTTPStatus.SERVICE_UNAVAILABLE:
                        raise
                    await self._backoff(attempt)
            return await client.recovery_symbols(blob_id, request, timeout_s=timeout_s)
        finally:
            self.metrics.recovery_bytes_downloaded.inc(client.bytes_received)

    async def _local_symbols(
        self, metadata: VerifiedBlobMetadataWithId, target: SliverIndex, sliver_type: SliverType
    ) -> list[VerifiedRecoverySymbol]:
        """Symbols for the target from this node's own stored slivers of the other axis."""
        blob_id, n = metadata.blob_id, metadata.n_shards
        source_type = sliver_type.orthogonal
        stored = []
        for shard in sorted(self.state.view.owned_shards):
            raw = await self.storage.sliver(shard, source_type, blob_id)
            if raw is not None:
                stored.append(raw)

        def cut() -> list[VerifiedRecoverySymbol]:
            symbols = []
            for raw in stored:
                source = SymbolSource(SliverData.from_bcs(raw, source_type), n)
                symbols.append(source.symbol_for(target).verify(metadata, target, sliver_type))
            return symbols

        return await asyncio.to_thread(cut)

    def _count_failures(self, failures: Sequence[NodeFailure[CommitteeMember]]) -> None:
        for failure in failures:
            self._count_failure(failure.key, failure.error)

    def _count_failure(self, member: CommitteeMember, error: BaseException) -> None:
        """Count (and log, for bad data or a wrong identity) one peer's failure."""
        kind = failure_kind(error)
        if kind is None:
            return
        if kind in _WARNED:
            log.warning(
                "peer sent data that fails verification"
                if kind is PeerFailure.INVALID
                else "peer refused: its TLS key is not its key on chain",
                peer=member.network_address,
                error=str(error)[:300],
            )
        self.metrics.faulty_responses.labels(kind).inc()


def _verify_each(
    symbols: Sequence[RecoverySymbol],
    metadata: VerifiedBlobMetadataWithId,
    target: SliverIndex,
    sliver_type: SliverType,
) -> tuple[list[VerifiedRecoverySymbol], VerificationError | None]:
    """The symbols of one answer that verify, one by one, and the first failure if any.

    Each symbol carries its own Merkle proof against the metadata, so a good symbol is good
    whatever its neighbours are: a peer with a few rotten slivers still helps.
    """
    verified: list[VerifiedRecoverySymbol] = []
    failed: VerificationError | None = None
    for symbol in symbols:
        try:
            verified.append(symbol.verify(metadata, target, sliver_type))
        except VerificationError as exc:
            failed = failed or exc
    return verified, failed

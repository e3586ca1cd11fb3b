"""The node's one typed gateway to its store: typed IDs and verified values in, typed outcomes out.

Theory of operation (spec/walrus-system.md 3.2 and 3.4; STYLE.md "Shape of the code" 3 and the
review note on service objects). The store (`store.NodeStore`) speaks bytes and is synchronous;
every part of the node that reads or writes data goes through `NodeStorage` instead, which

- takes `BlobId`, `ShardIndex` and verified values (`VerifiedBlobMetadataWithId`,
  `VerifiedSliver`): nothing unverified is ever written, and the types say so;
- runs each store call in a worker thread, so the event loop keeps serving;
- checks stored metadata again on the way out against the current committee's shard count (it
  was verified before it was written); like a record that fails its checksum (the store checks
  those, `store_integrity.py`), metadata that fails is treated as missing, discarded and reported
  for repair, never served or confirmed. The metadata of the blobs last verified is kept parsed
  with its stored bytes (`RECENT_METADATA`): the same bytes read again are not parsed and
  verified again. Each upload's slivers (one per shard the node holds, two per pair) each ask for
  it, so this spares a parse of kilobytes (n = 100) to hundreds of kilobytes (n = 1000) per
  sliver; any change of the bytes, or of the shard count, verifies them afresh;
- answers writes with a `StoreOutcome`, and refuses a sliver whose blob's data was collected
  meanwhile with `BlobDataCollectedError`. HTTP codes are the API layer's business
  (`service.NodeService` maps outcomes to them);
- batches concurrent sliver writes into one transaction (`group_commit.SliverWriter`) and counts
  what was stored in the node's metrics.

The committee comes from the read-only `NodeState` (its view is published by the epoch code only).
"""

from __future__ import annotations

import asyncio
import enum
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Final

from walruspy.core.blob_id import BlobId
from walruspy.core.errors import InvalidInputError, WalrusError
from walruspy.core.metadata import BlobMetadata, UnverifiedBlobMetadataWithId
from walruspy.core.metadata import VerifiedBlobMetadataWithId as VerifiedMetadata
from walruspy.core.slivers import VerifiedSliver
from walruspy.core.types import ShardIndex, SliverType
from walruspy.node import blob_state
from walruspy.node.group_commit import SliverWriter
from walruspy.node.metrics import NodeMetrics
from walruspy.node.shard_plan import ShardSyncProgress
from walruspy.node.store import (
    NodeStore,
    NoMetadataError,
    ShardNotSyncingError,
    UndoneBlock,
)
from walruspy.node.store_records import (
    BlobInfo,
    ChallengeRecord,
    EventProgress,
    NodeStatus,
    PerObjectBlobInfo,
    ShardStatus,
)
from walruspy.node.view import NodeState

#: Blob-info records read per transaction when listing certified blobs.
_SCAN_PAGE = 1000
#: Verified metadata kept parsed: the blobs being uploaded now, and some more. An entry is about
#: 30 KB at n = 100 and 300 KB at n = 1000 (its bytes and their parse).
RECENT_METADATA: Final = 64

#: What the node lacks of a blob: None for the metadata, else (shard, axis).
MissingPart = tuple[ShardIndex, SliverType] | None


class StoreOutcome(enum.Enum):
    """What a write did."""

    STORED = "stored"
    ALREADY_STORED = "already stored"


class BlobDataCollectedError(WalrusError):
    """A sliver arrived for a blob whose metadata (and data) garbage collection removed."""


class NodeStorage:
    """Typed, async access to the node's store (module docstring)."""

    def __init__(self, store: NodeStore, state: NodeState, metrics: NodeMetrics) -> None:
        self.store = store
        self._state = state
        self._metrics = metrics
        #: Blob ID -> (shard count, stored bytes, the metadata verified from them), oldest first.
        self._recent_metadata: OrderedDict[bytes, tuple[int, bytes, VerifiedMetadata]] = (
            OrderedDict()
        )
        self._writer = SliverWriter(store)

    # --- blob records -------------------------------------------------------------------------

    async def blob_info(self, blob_id: BlobId) -> BlobInfo | None:
        """The node's aggregate record of `blob_id`."""
        return await asyncio.to_thread(self.store.get_blob_info, blob_id.raw)

    async def object_info(self, object_id: bytes) -> PerObjectBlobInfo | None:
        """The record of one blob object."""
        return await asyncio.to_thread(self.store.get_per_object_blob_info, object_id)

    async def event_cursor(self) -> EventProgress | None:
        """The last event applied, if any."""
        return await asyncio.to_thread(self.store.event_cursor)

    async def apply_event(
        self,
        progress: EventProgress,
        blob_infos: Mapping[bytes, BlobInfo | None],
        per_object: Mapping[bytes, PerObjectBlobInfo | None],
        delete_data_of: Sequence[bytes],
        *,
        block_hash: bytes = b"",
        undo_window_blocks: int = 0,
        challenge: ChallengeRecord | None = None,
    ) -> None:
        """An event's record changes and data deletions with the advanced cursor and its undo
        record (and the challenge it starts), in one transaction (`NodeStore.apply_event`)."""
        await asyncio.to_thread(
            partial(
                self.store.apply_event,
                progress,
                blob_infos,
                per_object,
                delete_data_of,
                block_hash=block_hash,
                undo_window_blocks=undo_window_blocks,
                challenge=challenge,
            )
        )

    async def certified_blob_ids(self, epoch: int) -> list[bytes]:
        """The blobs certified and not expired in `epoch`, in blob-ID order (the set a storage
        challenge samples from: node/challenges.py)."""

        def scan() -> list[bytes]:
            found: list[bytes] = []
            start: bytes | None = None
            while True:
                page = self.store.list_blob_infos(start, _SCAN_PAGE)
                fresh = page[1:] if start is not None and page and page[0][0] == start else page
                found.extend(k for k, info in fresh if blob_state.is_certified(info, epoch))
                if len(page) < _SCAN_PAGE:
                    return found
                start = page[-1][0]

        return await asyncio.to_thread(scan)

    async def event_block_hash(self) -> bytes:
        """The hash of the last applied event's block, if known."""
        return await asyncio.to_thread(self.store.event_block_hash)

    async def undo_last_block(self) -> UndoneBlock | None:
        """Take back the events of the newest block applied (`NodeStore.undo_last_block`)."""
        return await asyncio.to_thread(self.store.undo_last_block)

    # --- metadata -----------------------------------------------------------------------------

    async def has_metadata(self, blob_id: BlobId) -> bool:
        """Whether the blob's metadata is stored."""
        return await asyncio.to_thread(self.store.has_metadata, blob_id.raw)

    async def metadata(self, blob_id: BlobId) -> VerifiedMetadata | None:
        """The stored metadata, checked again (it was verified before it was written), or
        found verified among the recent ones if its stored bytes are the same."""
        raw = await asyncio.to_thread(self.store.get_metadata, blob_id.raw)
        if raw is None:
            return None
        n_shards = self._state.n_shards
        recent = self._recent_metadata.get(blob_id.raw)
        if recent is not None and recent[0] == n_shards and recent[1] == raw:
            self._recent_metadata.move_to_end(blob_id.raw)
            return recent[2]
        verified = await asyncio.to_thread(self._verify_stored_metadata, blob_id, raw)
        if verified is not None:
            self._remember_metadata(raw, n_shards, verified)
        return verified

    def _remember_metadata(self, raw: bytes, n_shards: int, verified: VerifiedMetadata) -> None:
        self._recent_metadata[verified.blob_id.raw] = (n_shards, raw, verified)
        self._recent_metadata.move_to_end(verified.blob_id.raw)
        while len(self._recent_metadata) > RECENT_METADATA:
            self._recent_metadata.popitem(last=False)

    def _verify_stored_metadata(self, blob_id: BlobId, raw: bytes) -> VerifiedMetadata | None:
        # It passed its checksum but not its verification (sealed rotten by a migration, or a
        # bug): missing all the same, discarded and reported for repair.
        try:
            unverified = UnverifiedBlobMetadataWithId(blob_id, BlobMetadata.from_bcs(raw))
            return unverified.verify(self._state.n_shards)
        except InvalidInputError:
            self.store.discard_metadata(blob_id.raw)
            return None

    async def store_metadata(self, metadata: VerifiedMetadata) -> StoreOutcome:
        """Persist verified metadata (uploads, blob sync, shard sync)."""
        raw = metadata.metadata.to_bcs()
        if await asyncio.to_thread(self.store.put_metadata, metadata.blob_id.raw, raw):
            self._metrics.metadata_stored.inc()
            # Verified for this shard count on its way in: its slivers find it so.
            self._remember_metadata(raw, self._state.n_shards, metadata)
            return StoreOutcome.STORED
        return StoreOutcome.ALREADY_STORED

    # --- slivers ------------------------------------------------------------------------------

    async def has_sliver(self, shard: ShardIndex, sliver_type: SliverType, blob_id: BlobId) -> bool:
        """Whether `shard` stores that sliver."""
        return (await self.has_slivers(blob_id, [(shard, sliver_type)]))[0]

    async def has_slivers(
        self, blob_id: BlobId, keys: Sequence[tuple[ShardIndex, SliverType]]
    ) -> list[bool]:
        """`has_sliver` of each (shard, type) of `blob_id`, in one read."""
        return await asyncio.to_thread(self.store.has_slivers, blob_id.raw, keys)

    async def sliver(
        self, shard: ShardIndex, sliver_type: SliverType, blob_id: BlobId
    ) -> bytes | None:
        """The stored BCS sliver, or None."""
        return await asyncio.to_thread(self.store.get_sliver, shard, sliver_type, blob_id.raw)

    async def store_sliver(
        self, shard: ShardIndex, sliver: VerifiedSliver, bcs: bytes | None = None
    ) -> StoreOutcome:
        """Persist a verified sliver on `shard`; `bcs`: its BCS if known.

        Only while the blob's metadata is stored (checked in the write): GC of an expired blob,
        which may run while the sliver was verified, must not leave it behind
        (`BlobDataCollectedError`).
        """
        (outcome,) = await self.store_slivers([(shard, sliver, bcs)])
        return outcome

    async def store_slivers(
        self, items: Sequence[tuple[ShardIndex, VerifiedSliver, bytes | None]]
    ) -> list[StoreOutcome]:
        """`store_sliver` of each (shard, sliver, BCS or None) of one blob, written together;
        raises the first refusal once every write has its outcome."""
        writes = [
            (shard, one.sliver.sliver_type, one.blob_id, bcs or one.sliver.to_bcs())
            for shard, one, bcs in items
        ]
        try:
            news = await self._writer.put_many(writes)
        except NoMetadataError as exc:
            raise BlobDataCollectedError(
                f"blob 0x{writes[0][2].hex()} is no longer stored here (its data was "
                f"collected in epoch {self._state.epoch})"
            ) from exc
        outcomes = []
        for (_, one, _), new in zip(items, news, strict=True):
            if not new:
                outcomes.append(StoreOutcome.ALREADY_STORED)
                continue
            label = one.sliver.sliver_type.value
            self._metrics.slivers_stored.labels(label).inc()
            self._metrics.sliver_bytes_stored.labels(label).inc(len(one.sliver.data))
            outcomes.append(StoreOutcome.STORED)
        return outcomes

    async def missing_parts(
        self,
        blob_id: BlobId,
        shards: frozenset[ShardIndex],
        check_metadata: bool = False,
        verify: bool = False,
    ) -> list[MissingPart]:
        """What the node lacks of `blob_id` on `shards`: None for the metadata, else (shard, axis).

        Secondary slivers come before primary ones for each shard (blob sync recovers them first).
        With `verify`, a sliver that fails its checksum is missing too (and discarded): what a
        confirmation needs; without, presence is enough (the scrubber checks the bytes).
        """
        has_sliver = self.store.check_sliver if verify else self.store.has_sliver

        def scan() -> list[MissingPart]:
            missing: list[MissingPart] = []
            if check_metadata and not self.store.has_metadata(blob_id.raw):
                missing.append(None)
            for shard in sorted(shards):
                for sliver_type in (SliverType.SECONDARY, SliverType.PRIMARY):
                    if not has_sliver(shard, sliver_type, blob_id.raw):
                        missing.append((shard, sliver_type))
            return missing

        return await asyncio.to_thread(scan)

    # --- node and shards ----------------------------------------------------------------------

    async def node_status(self) -> NodeStatus | None:
        """The node's persisted mode."""
        return await asyncio.to_thread(self.store.node_status)

    async def set_node_status(self, status: NodeStatus) -> None:
        """Persist the node's mode."""
        await asyncio.to_thread(self.store.set_node_status, status)

    async def shards(self) -> dict[ShardIndex, ShardStatus]:
        """Every shard with storage here, and its status."""
        stored = await asyncio.to_thread(self.store.shards)
        return {ShardIndex(shard): status for shard, status in stored.items()}

    async def shard_status(self, shard: ShardIndex) -> ShardStatus | None:
        """The status of `shard`, or None without storage here."""
        return await asyncio.to_thread(self.store.shard_status, shard)

    async def sync_progress(self) -> dict[ShardIndex, ShardSyncProgress]:
        """The progress record of every shard being synced."""
        saved = await asyncio.to_thread(self.store.sync_progress)
        return {ShardIndex(shard): progress for shard, progress in saved.items()}

    async def apply_shard_changes(
        self,
        statuses: Mapping[ShardIndex, ShardStatus | None],
        progress: Mapping[ShardIndex, ShardSyncProgress | None],
    ) -> None:
        """Write shard records in one transaction (`NodeStore.apply_shard_changes`)."""
        await asyncio.to_thread(self.store.apply_shard_changes, statuses, progress)

    async def put_synced_slivers(
        self,
        shard: ShardIndex,
        sliver_type: SliverType,
        slivers: Sequence[VerifiedSliver],
        progress: ShardSyncProgress,
    ) -> list[bytes]:
        """Store a verified shard-sync batch with its progress in one transaction; the blob IDs
        skipped for want of metadata (`NodeStore.put_synced_slivers`)."""
        items = [(s.blob_id, s.sliver.to_bcs()) for s in slivers]
        return await asyncio.to_thread(
            self.store.put_synced_slivers, shard, sliver_type, items, progress
        )

    async def finish_sync(
        self, shard: ShardIndex, status: ShardStatus, keep: ShardSyncProgress | None
    ) -> None:
        """End the transfer of `shard`: set `status`, keep or drop its progress; only while the
        shard is still ACTIVE_SYNC (else `ShardNotSyncingError`: it was locked meanwhile)."""

        def write() -> None:
            if self.store.shard_status(shard) is not ShardStatus.ACTIVE_SYNC:
                raise ShardNotSyncingError(f"shard {shard} is not being synced")
            self.store.apply_shard_changes({shard: status}, {shard: keep})

        await asyncio.to_thread(write)

"""Garbage collection at each epoch change: expired objects out, then data nobody pays for.

Theory of operation (spec/walrus-system.md 3.7; Walrus `garbage_collector.rs` and
`BlobInfoTable::process_expired_blob_objects`). When epoch e starts, `collect(e)`:

1. phase 1 (records): walks the per-object records in object-ID order, in batches; each deleted or
   expired object (end epoch <= e) is dropped, and an expired one lowers its blob's aggregate
   counts (`blob_state.expire_object`). Each batch is one store transaction;
2. phase 2 (data): walks the blob IDs with stored metadata; the data (metadata and slivers) of each
   blob with no registration live in e goes, in batches of `MAX_DELETE_BATCH`;
3. phase 3 (aggregates): aggregate records that no object refers to any more are deleted (invalid
   ones stay, so the blob keeps answering "invalid").

The event processor runs it inline when it applies `EpochChangeStart`, so no event changes a record
while GC reads it; Walrus also runs phase 1 inline. Progress is persisted (`GcProgress`): a GC
interrupted by a crash is run again at the next start, and each phase is idempotent. Walrus delays
phase 2 by a random part of the epoch to spread the load; a small network does not need that.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from walruspy.logs import get_logger
from walruspy.node import blob_state
from walruspy.node.metrics import NodeMetrics
from walruspy.node.store import MAX_DELETE_BATCH, NodeStore
from walruspy.node.store_records import BlobInfo, GcProgress, PerObjectBlobInfo

log = get_logger("walruspy.node.gc")

#: Per-object records read per batch (Walrus's `blob_objects_batch_size: 5000`).
OBJECT_BATCH = 5000
#: Blob IDs examined per data-deletion batch (Walrus's `data_deletion_batch_size: 2000`).
DATA_BATCH = MAX_DELETE_BATCH


def successor(key: bytes) -> bytes | None:
    """The next key of the same length in byte order, or None after the last one."""
    value = int.from_bytes(key, "big") + 1
    if value >> (8 * len(key)):
        return None
    return value.to_bytes(len(key), "big")


class GarbageCollector:
    """Runs the three phases of the module docstring against one store."""

    def __init__(self, store: NodeStore, metrics: NodeMetrics, enable_data_deletion: bool) -> None:
        self.store = store
        self.metrics = metrics
        self.enable_data_deletion = enable_data_deletion

    def needs(self, epoch: int) -> bool:
        """Whether GC for `epoch` has not completed yet."""
        completed = self.store.gc_progress().last_completed_epoch
        return completed is None or completed < epoch

    async def resume(self) -> None:
        """Complete a collection that a crash interrupted (none: nothing to do)."""
        progress = await asyncio.to_thread(self.store.gc_progress)
        started, completed = progress.last_started_epoch, progress.last_completed_epoch
        if started is not None and (completed is None or completed < started):
            await self.collect(started)

    async def collect(self, epoch: int) -> None:
        """Collect garbage for the start of `epoch` (a no-op if done already)."""
        if not await asyncio.to_thread(self.needs, epoch):
            return
        progress = await asyncio.to_thread(self.store.gc_progress)
        started = GcProgress(epoch, progress.last_completed_epoch)
        await asyncio.to_thread(self.store.set_gc_progress, started)
        expired = await self._each_batch(self._expire_batch, epoch)
        deleted = await self._each_batch(self._delete_data_batch, epoch)
        dropped = await self._each_batch(self._drop_records_batch, epoch)
        await asyncio.to_thread(self.store.set_gc_progress, GcProgress(epoch, epoch))
        log.info(
            "garbage collection done",
            epoch=epoch,
            expired_objects=expired,
            deleted_blobs=deleted,
            dropped_records=dropped,
        )

    async def _each_batch(
        self, step: Callable[[bytes | None, int], tuple[int, bytes | None]], epoch: int
    ) -> int:
        total, start = 0, None
        while True:
            count, start = await asyncio.to_thread(step, start, epoch)
            total += count
            if start is None:
                return total

    def _expire_batch(self, start: bytes | None, epoch: int) -> tuple[int, bytes | None]:
        """Phase 1 on one batch; returns (objects dropped, where the next batch starts)."""
        records = self.store.list_per_object_blob_infos(start, OBJECT_BATCH)
        infos: dict[bytes, BlobInfo | None] = {}
        changed: dict[bytes, BlobInfo | None] = {}
        objects: dict[bytes, PerObjectBlobInfo | None] = {}
        for object_id, record in records:
            if record.blob_id not in infos:
                infos[record.blob_id] = self.store.get_blob_info(record.blob_id)
            expiry = blob_state.expire_object(record, infos[record.blob_id], epoch)
            if expiry.drop_record:
                objects[object_id] = None
            if expiry.blob_info_changed:
                infos[record.blob_id] = changed[record.blob_id] = expiry.blob_info
        if objects:
            self.store.update_blob_infos(changed, objects)
        self.metrics.gc_expired_objects.inc(len(objects))
        return len(objects), _next_start(records, OBJECT_BATCH)

    def _delete_data_batch(self, start: bytes | None, epoch: int) -> tuple[int, bytes | None]:
        """Phase 2 on one batch of blob IDs with metadata."""
        blob_ids = self.store.list_metadata_blob_ids(start, DATA_BATCH)
        doomed = [
            blob_id
            for blob_id in blob_ids
            if blob_state.can_data_be_deleted(self.store.get_blob_info(blob_id), epoch)
        ]
        if doomed and self.enable_data_deletion:
            self.store.delete_blob_data(doomed)
            self.metrics.gc_deleted_blobs.inc(len(doomed))
        else:
            doomed = []
        next_start = successor(blob_ids[-1]) if len(blob_ids) == DATA_BATCH else None
        return len(doomed), next_start

    def _drop_records_batch(self, start: bytes | None, epoch: int) -> tuple[int, bytes | None]:
        """Phase 3 on one batch of aggregate records."""
        records = self.store.list_blob_infos(start, OBJECT_BATCH)
        dropped: dict[bytes, BlobInfo | None] = {
            blob_id: None
            for blob_id, info in records
            if blob_state.can_blob_info_be_deleted(info, epoch)
        }
        if dropped:
            self.store.update_blob_infos(dropped)
        return len(dropped), _next_start(records, OBJECT_BATCH)


def _next_start(records: Sequence[tuple[bytes, object]], batch: int) -> bytes | None:
    return successor(records[-1][0]) if len(records) == batch else None

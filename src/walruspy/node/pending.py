"""Uploads that come before their blob's registration, held verified in memory until it lands.

Theory of operation (Walrus `pending_metadata_cache.rs`, `pending_sliver_cache.rs` and the
`pending=true` flag of its upload routes; spec/walrus-system.md 3.1). A client that uploads while
its registration transaction is still on its way marks the uploads `pending=true`. The node checks
them as it checks any upload (the metadata against the blob ID, each sliver against that metadata
and the node's shards) and, the blob not being registered yet, keeps them here and answers 202
"buffered pending registration" instead of NOT_REGISTERED. When it applies the blob's
registration event, the event processor persists what is held (`NodeService.flush_pending`)
before it wakes the requests waiting for that registration, so a confirmation asked for once the
registration is on chain finds every sliver stored. An upload that finds the blob registered
meanwhile persists what is held itself: nothing is left behind by a race with the event.

Memory is bounded as in Walrus (its defaults): the metadata of at most `max_metadata` blobs, at
most `max_slivers` slivers and `max_bytes` bytes of them, none larger than `max_sliver_bytes`;
a blob whose uploads stopped `ttl_s` ago is dropped. A full cache answers CACHE_SATURATED and a
sliver too large for it SLIVER_TOO_LARGE: the client uploads again once the blob is registered.
Nothing here is durable: a node that restarts forgets it, and the client's confirmation request
then finds the slivers missing and uploads them again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from walruspy.core.blob_id import BlobId
from walruspy.core.metadata import VerifiedBlobMetadataWithId
from walruspy.core.slivers import VerifiedSliver
from walruspy.core.types import SliverPairIndex, SliverType
from walruspy.node_api import errors as api_errors


@dataclass(frozen=True, slots=True)
class PendingLimits:
    """Bounds of the pending uploads (Walrus's `PendingSliverCacheConfig` and
    `PendingMetadataCacheConfig` defaults)."""

    max_metadata: int = 1024
    max_slivers: int = 20_480
    max_bytes: int = 1 << 30
    max_sliver_bytes: int = 4 << 20
    ttl_s: float = 60.0


@dataclass(frozen=True, slots=True)
class PendingSliver:
    """A verified sliver waiting for its blob's registration, with its BCS as it came."""

    pair: SliverPairIndex
    sliver: VerifiedSliver
    bcs: bytes


@dataclass(slots=True)
class _Entry:
    touched_at: float
    metadata: VerifiedBlobMetadataWithId | None = None
    slivers: dict[tuple[SliverPairIndex, SliverType], PendingSliver] = field(default_factory=dict)
    nbytes: int = 0


class PendingUploads:
    """What arrived for blobs not registered yet, by blob ID (module doc)."""

    def __init__(self, limits: PendingLimits, now: Callable[[], float]) -> None:
        self.limits = limits
        self._now = now
        self._entries: dict[BlobId, _Entry] = {}
        self._metadata_count = 0
        self._sliver_count = 0
        self._bytes = 0

    @property
    def sliver_count(self) -> int:
        """Slivers held now."""
        return self._sliver_count

    @property
    def nbytes(self) -> int:
        """Bytes of slivers held now."""
        return self._bytes

    def has(self, blob_id: BlobId) -> bool:
        """Whether anything is held for `blob_id`."""
        self._expire()
        return blob_id in self._entries

    def metadata(self, blob_id: BlobId) -> VerifiedBlobMetadataWithId | None:
        """The held metadata of `blob_id`, if any."""
        self._expire()
        entry = self._entries.get(blob_id)
        return None if entry is None else entry.metadata

    def add_metadata(self, metadata: VerifiedBlobMetadataWithId) -> bool:
        """Hold verified metadata; False if it was held already. CACHE_SATURATED when full."""
        self._expire()
        entry = self._entries.get(metadata.blob_id)
        if entry is not None and entry.metadata is not None:
            entry.touched_at = self._now()
            return False
        if self._metadata_count >= self.limits.max_metadata:
            raise api_errors.CacheSaturatedError(
                f"{self._metadata_count} blobs' metadata wait for their registration"
            )
        if entry is None:
            entry = self._entries[metadata.blob_id] = _Entry(self._now())
        entry.metadata = metadata
        entry.touched_at = self._now()
        self._metadata_count += 1
        return True

    def add_slivers(self, blob_id: BlobId, slivers: list[PendingSliver]) -> int:
        """Hold verified slivers of `blob_id`, all or none; how many were new. The blob's
        metadata must be held (the slivers were verified against it)."""
        self._expire()
        entry = self._entries.get(blob_id)
        if entry is None or entry.metadata is None:
            raise api_errors.MissingMetadataError()
        new = {
            (s.pair, s.sliver.sliver.sliver_type): s
            for s in slivers
            if (s.pair, s.sliver.sliver.sliver_type) not in entry.slivers
        }
        limits = self.limits
        for one in new.values():
            if len(one.bcs) > limits.max_sliver_bytes:
                raise api_errors.SliverTooLargeError(
                    f"a sliver of {len(one.bcs)} bytes is over the pending cache's"
                    f" {limits.max_sliver_bytes}"
                )
        added = sum(len(s.bcs) for s in new.values())
        if (
            self._sliver_count + len(new) > limits.max_slivers
            or self._bytes + added > limits.max_bytes
        ):
            raise api_errors.CacheSaturatedError(
                f"{self._sliver_count} slivers ({self._bytes} bytes) wait for their registration"
            )
        entry.slivers.update(new)
        entry.nbytes += added
        entry.touched_at = self._now()
        self._sliver_count += len(new)
        self._bytes += added
        return len(new)

    def take(
        self, blob_id: BlobId
    ) -> tuple[VerifiedBlobMetadataWithId | None, list[PendingSliver]]:
        """Remove and return what is held for `blob_id` (its registration came)."""
        entry = self._entries.pop(blob_id, None)
        if entry is None:
            return None, []
        self._forget(entry)
        return entry.metadata, list(entry.slivers.values())

    def _forget(self, entry: _Entry) -> None:
        self._metadata_count -= entry.metadata is not None
        self._sliver_count -= len(entry.slivers)
        self._bytes -= entry.nbytes

    def _expire(self) -> None:
        oldest = self._now() - self.limits.ttl_s
        stale = [blob_id for blob_id, e in self._entries.items() if e.touched_at <= oldest]
        for blob_id in stale:
            self._forget(self._entries.pop(blob_id))

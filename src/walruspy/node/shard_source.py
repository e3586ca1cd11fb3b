"""Serving a shard to its new owner: the source side of shard sync (`POST /v1/migrate/sync_shard`).

Theory of operation (spec/walrus-system.md 3.1 and 3.5; Walrus `node.rs` `sync_shard` and
`node/storage.rs` `handle_sync_shard_request`). A node gaining a shard asks the shard's previous
owner for its slivers, batch by batch, with a request signed by its protocol key and its public
key in the `Authorization` header. The source:

1. checks the request with `verify_sync_shard_request`: the key must be a member of the source's
   current committee (else 403 REQUEST_UNAUTHORIZED), the request must be a SYNC_SHARD message
   signed by it (else 400 MESSAGE_VERIFICATION_FAILED), for the source's current epoch (else 400
   INVALID_EPOCH with both epochs), for a shard the requester owns in that committee (else 403
   REQUEST_UNAUTHORIZED), asking for at most `max_sliver_count` slivers (else 400
   SLIVER_COUNT_EXCEEDS_LIMIT: Walrus refuses, it does not cap);
2. needs storage for the shard (else 400 SHARD_NOT_ASSIGNED, as Walrus);
3. answers with the shard's stored slivers of the requested type, in blob-ID order from
   `starting_blob_id` (inclusive), of blobs certified *before* the request's epoch and still
   certified in it (`blob_state.is_certified_before`), at most `sliver_count` of them. A certified
   blob whose sliver the shard lacks is skipped, as Walrus's `multi_get` does.

Bounds: the scan reads blob IDs `SCAN_BATCH` at a time, so each read transaction stays short;
the answer stops at `sliver_count` slivers or once it holds `max_response_bytes` of sliver data
(always at least one sliver if any is due), so one answer stays bounded in memory. A shorter
answer is harmless: Walrus's requester continues after the last blob ID it received.
"""

from __future__ import annotations

import asyncio

from walruspy.core.crypto import BlsPublicKey
from walruspy.core.messages import (
    SignedMessage,
    SyncShardRefusal,
    SyncShardRefused,
    SyncShardRequest,
    verify_sync_shard_request,
)
from walruspy.core.types import ShardIndex
from walruspy.node import blob_state
from walruspy.node.store import NodeStore
from walruspy.node.view import NodeState
from walruspy.node_api import errors as api_errors
from walruspy.node_api.sync_shard import sync_shard_response_to_bcs

#: Blob IDs read per store transaction while scanning a shard.
SCAN_BATCH = 1000
#: Sliver bytes one answer collects before it stops early. A requester asks for 1,000 slivers by
#: default; at n = 1,000 a primary sliver of the largest blob is 43.7 MB, so an answer is cut
#: well before 1,000 of those would be held in memory (64 MiB, a store-sized sliver, beyond).
DEFAULT_MAX_SYNC_RESPONSE_BYTES = 64 << 20
_LAST_BLOB_ID = b"\xff" * 32


class ShardSource:
    """Answers sync-shard requests from the node's store and current committee view."""

    def __init__(
        self,
        store: NodeStore,
        state: NodeState,
        max_sliver_count: int,
        max_response_bytes: int = DEFAULT_MAX_SYNC_RESPONSE_BYTES,
    ) -> None:
        if max_sliver_count < 0 or max_response_bytes <= 0:
            raise ValueError("max_sliver_count must be >= 0 and max_response_bytes positive")
        self._store = store
        self._state = state
        self.max_sliver_count = max_sliver_count
        self.max_response_bytes = max_response_bytes

    async def sync_shard(self, requester: BlsPublicKey, signed: SignedMessage) -> bytes:
        """The BCS `SyncShardResponse` for `signed`; raises the `NodeApiError` of a refusal."""
        view = self._state.view
        member = next((m for m in view.committee.members if m.public_key == requester), None)
        shards = None if member is None else frozenset(ShardIndex(s) for s in member.shards)
        outcome = await asyncio.to_thread(
            verify_sync_shard_request,
            signed,
            requester,
            server_epoch=view.epoch,
            requester_shards=shards,
            max_sliver_count=self.max_sliver_count,
        )
        if isinstance(outcome, SyncShardRefused):
            raise refusal_error(outcome)
        request = outcome.request
        if await asyncio.to_thread(self._store.shard_status, request.shard_index) is None:
            raise api_errors.ShardNotAssignedError(
                f"shard {request.shard_index} is not assigned to this node in epoch {view.epoch}",
                {"shard": request.shard_index, "epoch": view.epoch},
            )
        slivers = await asyncio.to_thread(self._collect, request)
        return sync_shard_response_to_bcs(request.sliver_type, slivers)

    def _collect(self, request: SyncShardRequest) -> list[tuple[bytes, bytes]]:
        """The due `(blob_id, BCS sliver)` pairs, in blob-ID order (runs in a worker thread)."""
        out: list[tuple[bytes, bytes]] = []
        size = 0
        start: bytes | None = request.starting_blob_id
        while start is not None and len(out) < request.sliver_count:
            ids = self._store.list_blob_ids(
                request.shard_index, request.sliver_type, start, SCAN_BATCH
            )
            for blob_id in ids:
                if len(out) >= request.sliver_count or size >= self.max_response_bytes:
                    return out
                info = self._store.get_blob_info(blob_id)
                if not blob_state.is_certified_before(info, request.epoch):
                    continue
                sliver = self._store.get_sliver(request.shard_index, request.sliver_type, blob_id)
                if sliver is not None:  # deleted meanwhile by garbage collection
                    out.append((blob_id, sliver))
                    size += len(sliver)
            start = _next_blob_id(ids[-1]) if len(ids) == SCAN_BATCH else None
        return out


def _next_blob_id(blob_id: bytes) -> bytes | None:
    """The blob ID right after `blob_id` in byte order, None after the last one."""
    if blob_id == _LAST_BLOB_ID:
        return None
    return (int.from_bytes(blob_id, "big") + 1).to_bytes(len(blob_id), "big")


def refusal_error(refused: SyncShardRefused) -> api_errors.NodeApiError:
    """The API error Walrus answers a refused sync-shard request with."""
    reason = refused.reason
    if reason is SyncShardRefusal.UNAUTHORIZED:
        return api_errors.RequestUnauthorizedError(refused.detail)
    if reason is SyncShardRefusal.MESSAGE_VERIFICATION_FAILED:
        return api_errors.MessageVerificationFailedError(
            f"verification of the request to start the sync failed: {refused.detail}"
        )
    if reason is SyncShardRefusal.SLIVER_COUNT_EXCEEDS_LIMIT:
        return api_errors.SliverCountExceedsLimitError(refused.detail)
    assert reason is SyncShardRefusal.INVALID_EPOCH
    assert refused.request_epoch is not None and refused.server_epoch is not None
    return api_errors.InvalidEpochError(
        f"the request's epoch ({refused.request_epoch}) is invalid, "
        f"server epoch {refused.server_epoch}",
        # Walrus serializes `InvalidEpochError`'s fields into the ErrorInfo metadata.
        {"request_epoch": refused.request_epoch, "server_epoch": refused.server_epoch},
    )

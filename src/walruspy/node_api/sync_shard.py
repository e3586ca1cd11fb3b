"""The answer of `POST /v1/migrate/sync_shard`: Walrus's `SyncShardResponse` in BCS.

Theory of operation (spec/walrus-system.md 3.1 and 3.5). Verified against `MystenLabs/walrus` at
3c1cacc1: `walrus-core/src/messages/sync_shard.rs` (`enum SyncShardResponse { V1(Vec<(BlobId,
Sliver)>) }`), `lib.rs` (`BlobId([u8; 32])`, `Sliver = ByAxis<PrimarySliver, SecondarySliver>`)
and `by_axis.rs` (`enum ByAxis { Primary(T), Secondary(U) }`). So the bytes are

    0x00 (V1) ‖ ULEB128(count) ‖ count x (blob_id [32] ‖ axis tag (0 primary, 1 secondary) ‖
                                           SliverData)

with `SliverData` as in `walruspy.core.slivers` (ULEB128(len) ‖ data ‖ symbol_size u16 ‖ index
u16). The source writes the slivers it stores as they are (its store keeps BCS `SliverData`);
the requester parses them strictly here and verifies each against the blob's metadata itself.
"""

from __future__ import annotations

from collections.abc import Sequence

from walruspy.core.bcs import Reader, Writer
from walruspy.core.blob_id import BlobId
from walruspy.core.errors import DecodeError
from walruspy.core.slivers import MAX_SLIVER_BYTES, SliverData
from walruspy.core.types import SliverIndex, SliverType

_SYNC_SHARD_RESPONSE_V1 = 0
_AXIS_TAGS = {SliverType.PRIMARY: 0, SliverType.SECONDARY: 1}
_AXES_BY_TAG = {tag: axis for axis, tag in _AXIS_TAGS.items()}
#: The most entries one answer may announce: Walrus's default server limit,
#: `DEFAULT_MAX_SLIVER_COUNT_PER_SYNC_REQUEST`.
MAX_SYNC_SHARD_ENTRIES = 100_000
BLOB_ID_BYTES = 32


def sync_shard_response_to_bcs(
    sliver_type: SliverType, slivers: Sequence[tuple[bytes, bytes]]
) -> bytes:
    """`SyncShardResponse::V1` of `(blob_id, BCS SliverData)` pairs, all of `sliver_type`."""
    writer = Writer().uleb128(_SYNC_SHARD_RESPONSE_V1).uleb128(len(slivers))
    tag = _AXIS_TAGS[sliver_type]
    for blob_id, sliver in slivers:
        if len(blob_id) != BLOB_ID_BYTES:
            raise ValueError(f"a blob ID is {BLOB_ID_BYTES} bytes, got {len(blob_id)}")
        writer.fixed(blob_id).uleb128(tag).fixed(sliver)
    return writer.finish()


def sync_shard_response_from_bcs(data: bytes) -> list[tuple[BlobId, SliverData]]:
    """Parse a `SyncShardResponse` strictly (`DecodeError`/`VerificationError`), in its order.

    Only the format is checked: the caller verifies each sliver against the blob's metadata.
    """
    reader = Reader(bytes(data))
    version = reader.uleb128("sync shard response version")
    if version != _SYNC_SHARD_RESPONSE_V1:
        raise DecodeError(f"unknown sync shard response version {version}")
    count = reader.uleb128("sync shard response length", MAX_SYNC_SHARD_ENTRIES)
    slivers = []
    for _ in range(count):
        blob_id = BlobId(reader.fixed(BLOB_ID_BYTES, "blob ID"))
        tag = reader.uleb128("sliver axis", 1)
        body = reader.bytes("sliver data", MAX_SLIVER_BYTES)
        symbol_size = reader.u16("symbol size")
        index = reader.u16("sliver index")
        sliver = SliverData(_AXES_BY_TAG[tag], SliverIndex(index), symbol_size, body)
        slivers.append((blob_id, sliver))
    reader.finish("sync shard response")
    return slivers

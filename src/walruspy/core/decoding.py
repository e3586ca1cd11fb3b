"""Decoding a blob from slivers, with Walrus's consistency checks (spec/encoding.md section 10).

Theory of operation: any p = n-2f distinct verified primary slivers give, column by column, the p
source symbols of each of the s columns (primary code, k = p); any s = n-f secondary slivers give,
row by row, the s source symbols of each of the p rows (secondary code, k = s). The rows, read
row-major and cut to the unencoded length, are the blob.

Authentic slivers do not make an authentic blob: a malicious writer can commit to slivers that are
not one codeword. The `DEFAULT` check re-cuts the p systematic primary slivers from the decoded
blob and compares their hashes with the metadata (skipping rows received as verified slivers); the
`STRICT` check re-encodes the blob and compares blob IDs. Either failure raises
`InconsistentBlobError`: an inconsistent blob is never returned as data.

Byte ranges (spec/encoding.md 3; Walrus `byte_range_read_client.rs`): the blob, zero-padded, is
read row-major into the p x s matrix, so primary source sliver r (row r, r < p) is exactly the
bytes [r * s * symbol_size, (r + 1) * s * symbol_size) of the padded blob. A byte range therefore
lies in a contiguous run of source rows (`primary_rows_of_range`), and its bytes are cut from
those verified slivers alone (`slice_of_row`), with no Reed-Solomon work. Rows past the blob's
last byte hold only padding and are never needed.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

import numpy as np

from walruspy.core.encoding import encode_blob
from walruspy.core.errors import InconsistentBlobError, NotEnoughSymbolsError
from walruspy.core.metadata import VerifiedBlobMetadataWithId
from walruspy.core.params import EncodingParams
from walruspy.core.rs import decode_block
from walruspy.core.slivers import SliverData, VerifiedSliver, expanded_roots
from walruspy.core.types import SliverPairIndex, SliverType


class ConsistencyCheck(enum.Enum):
    """How much to check a decoded blob against its metadata (Walrus's `ConsistencyCheckType`)."""

    SKIP = "skip"
    DEFAULT = "default"
    STRICT = "strict"


def decode_blob(
    metadata: VerifiedBlobMetadataWithId,
    slivers: Iterable[VerifiedSliver],
    check: ConsistencyCheck = ConsistencyCheck.DEFAULT,
) -> bytes:
    """Decode the blob from enough verified slivers of one axis.

    Needs p distinct primary slivers or s distinct secondary slivers (extra ones are ignored).
    Raises `NotEnoughSymbolsError` when there are too few, `InconsistentBlobError` when the check
    fails, and `ValueError` for slivers of another blob or of both axes.
    """
    by_index: dict[int, SliverData] = {}
    axes = set()
    for verified in slivers:
        if verified.blob_id != metadata.blob_id.raw:
            raise ValueError("a sliver of another blob was passed to decode_blob")
        by_index[verified.sliver.index] = verified.sliver
        axes.add(verified.sliver.sliver_type)
    if len(axes) > 1:
        raise ValueError("decode_blob takes slivers of one axis")
    axis = axes.pop() if axes else SliverType.PRIMARY
    params, ss = metadata.params, metadata.symbol_size
    p, s, n = params.n_primary_source_symbols, params.n_secondary_source_symbols, params.n_shards
    needed, length = (p, s) if axis is SliverType.PRIMARY else (s, p)
    if len(by_index) < needed:
        raise NotEnoughSymbolsError(
            f"need {needed} distinct {axis.value} slivers to decode, got {len(by_index)}"
        )
    chosen = {i: by_index[i] for i in sorted(by_index)[:needed]}
    if axis is SliverType.PRIMARY and list(chosen) == list(range(needed)):
        # The source rows themselves: the blob is their concatenation (one copy), and every
        # row the DEFAULT check would re-cut was received as a verified sliver.
        return _join_rows([chosen[i].data for i in range(needed)], metadata, check)
    source = _source_slivers(chosen, needed, length, n, ss)
    # Primary source slivers are the rows; secondary ones are the columns.
    rows = source if axis is SliverType.PRIMARY else np.ascontiguousarray(source.transpose(1, 0, 2))
    blob = rows.tobytes()[: metadata.unencoded_length]
    received_rows = set(chosen) if axis is SliverType.PRIMARY else set()
    _check_consistency(metadata, rows, blob, received_rows, check)
    return blob


def primary_rows_of_range(
    params: EncodingParams, symbol_size: int, start: int, length: int
) -> range:
    """The primary source slivers (rows) holding bytes [start, start + length) of a blob.

    Empty for an empty range. `ValueError` for a negative start or length, or a range reaching
    past the p rows (the caller checks the range against the blob's length first).
    """
    if start < 0 or length < 0:
        raise ValueError(f"a byte range has a non-negative start and length, got {start}, {length}")
    if length == 0:
        return range(0)
    row_bytes = params.primary_sliver_length(symbol_size)
    rows = range(start // row_bytes, (start + length - 1) // row_bytes + 1)
    if rows.stop > params.n_primary_source_symbols:
        raise ValueError(
            f"bytes [{start}, {start + length}) reach past the {params.n_primary_source_symbols}"
            f" rows of {row_bytes} bytes"
        )
    return rows


def slice_of_row(
    metadata: VerifiedBlobMetadataWithId, row: VerifiedSliver, start: int, length: int
) -> bytes:
    """The bytes of [start, start + length) of the blob that verified source row `row` holds.

    Empty when the row holds none of them; `ValueError` for a sliver of another blob or axis,
    or a repair sliver (index >= p), which holds no blob bytes.
    """
    sliver = row.sliver
    if row.blob_id != metadata.blob_id.raw:
        raise ValueError("a sliver of another blob was passed to slice_of_row")
    if sliver.sliver_type is not SliverType.PRIMARY:
        raise ValueError("blob bytes are cut from primary slivers only")
    if sliver.index >= metadata.params.n_primary_source_symbols:
        raise ValueError(f"primary sliver {sliver.index} is a repair sliver, not a blob row")
    row_start = sliver.index * len(sliver.data)
    end = min(start + length, metadata.unencoded_length)
    first, last = max(start, row_start), min(end, row_start + len(sliver.data))
    return sliver.data[first - row_start : last - row_start] if first < last else b""


def _join_rows(
    rows: list[bytes], metadata: VerifiedBlobMetadataWithId, check: ConsistencyCheck
) -> bytes:
    """The blob from its p source rows, cut to its length; STRICT still re-encodes it."""
    remaining, parts = metadata.unencoded_length, []
    for row in rows:
        if remaining <= 0:
            break
        parts.append(row if len(row) <= remaining else memoryview(row)[:remaining])
        remaining -= len(row)
    blob = b"".join(parts)
    if check is ConsistencyCheck.STRICT:
        _check_strict(metadata, blob)
    return blob


def _source_slivers(
    chosen: dict[int, SliverData], k: int, length: int, n: int, symbol_size: int
) -> np.ndarray:
    """The k source slivers of one axis (k x length symbols) from any k of its n slivers.

    If `chosen` are not the source slivers themselves, each of the `length` symbol positions is
    a codeword of the code with k source symbols, of which k symbols are known (column by column
    from primary slivers, row by row from secondary ones): all are decoded in one call.
    """
    indices = list(chosen)
    data = np.stack([np.frombuffer(chosen[i].data, dtype=np.uint8) for i in indices])
    data = data.reshape(k, length, symbol_size)
    if indices == list(range(k)):
        return data
    return decode_block(k, n, {i: data[row] for row, i in enumerate(indices)})


def _check_strict(metadata: VerifiedBlobMetadataWithId, blob: bytes) -> None:
    """STRICT: re-encoding the blob gives its blob ID."""
    recomputed = encode_blob(blob, metadata.n_shards).metadata.blob_id
    if recomputed != metadata.blob_id:
        raise InconsistentBlobError(
            f"blob {metadata.blob_id} is inconsistently encoded: re-encoding the decoded data "
            f"gives blob ID {recomputed}"
        )


def _check_consistency(
    metadata: VerifiedBlobMetadataWithId,
    rows: np.ndarray,
    blob: bytes,
    received_rows: set[int],
    check: ConsistencyCheck,
) -> None:
    if check is ConsistencyCheck.SKIP:
        return
    if check is ConsistencyCheck.STRICT:
        _check_strict(metadata, blob)
        return
    decoded = [i for i in range(metadata.params.n_primary_source_symbols) if i not in received_rows]
    if not decoded:
        return
    roots = expanded_roots(rows[decoded], metadata.n_shards)
    for i, root in zip(decoded, roots, strict=True):
        if bytes(root) != metadata.sliver_hash(SliverPairIndex(i), SliverType.PRIMARY):
            raise InconsistentBlobError(
                f"blob {metadata.blob_id} is inconsistently encoded: decoded primary sliver {i} "
                "does not match its metadata hash"
            )

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
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

import numpy as np

from walruspy.core.encoding import encode_blob
from walruspy.core.errors import InconsistentBlobError, NotEnoughSymbolsError
from walruspy.core.metadata import VerifiedBlobMetadataWithId
from walruspy.core.rs import decode_source
from walruspy.core.slivers import SliverData, VerifiedSliver
from walruspy.core.types import SliverIndex, SliverPairIndex, SliverType


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
    decoded on its own: k symbols of the code with k source symbols give its k source symbols
    (column by column from primary slivers, row by row from secondary ones).
    """
    indices = list(chosen)
    data = np.stack([np.frombuffer(chosen[i].data, dtype=np.uint8) for i in indices])
    data = data.reshape(k, length, symbol_size)
    if indices == list(range(k)):
        return data
    source = np.empty((k, length, symbol_size), dtype=np.uint8)
    for position in range(length):
        symbols = {i: data[row, position].tobytes() for row, i in enumerate(indices)}
        decoded = b"".join(decode_source(k, n, symbols))
        source[:, position, :] = np.frombuffer(decoded, dtype=np.uint8).reshape(k, symbol_size)
    return source


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
    ss = metadata.symbol_size
    for i in range(metadata.params.n_primary_source_symbols):
        if i in received_rows:
            continue
        sliver = SliverData(SliverType.PRIMARY, SliverIndex(i), ss, rows[i].tobytes())
        if sliver.merkle_root(metadata.n_shards) != metadata.sliver_hash(
            SliverPairIndex(i), SliverType.PRIMARY
        ):
            raise InconsistentBlobError(
                f"blob {metadata.blob_id} is inconsistently encoded: decoded primary sliver {i} "
                "does not match its metadata hash"
            )

"""RS2 encoding of a blob into sliver pairs and metadata (spec/encoding.md sections 3 to 6).

Theory of operation. The blob, zero-padded, is a p x s matrix of symbols read row-major. Each row
is extended with the secondary code to n symbols, then each of the n columns of that p x n block is
extended with the primary code, giving the n x n matrix M. Primary sliver i = M[i][:s], secondary
sliver j = M[:p][j]. The metadata hash of primary sliver i is the Merkle root over M[i][:] and that
of secondary sliver j the root over M[:][j]; every symbol of M is a leaf of one tree of each axis,
so each leaf is hashed once and used twice.

The work is three phases, each a pure function over numpy arrays and a range of indices, so a
driver can run the ranges on several processes over shared memory (walruspy.workers) or inline:

1. `expand_rows`: rows r -> the secondary slivers' symbols; `secondary` is (n, p, ss), row j is
   secondary sliver j (columns s..n-1 of M's top p rows come from the secondary code).
2. `expand_columns`: columns j -> RS-extend secondary sliver j with the primary code to n symbols,
   write the repair part into the repair primary slivers (for j < s), and hash all n symbols of the
   column as leaves into `leaves[j]` (the leaf hashes are stored column-major, (n, n, 32)).
3. `sliver_roots`: Merkle roots of ranges of secondary slivers (rows of `leaves`) or of primary
   slivers (columns of `leaves`, transposed a chunk at a time).

Only M's slivers are kept; the bottom-right (n-p) x (n-s) block is hashed and dropped. Memory is
the slivers (about 4.5x the blob), the padded source copy and n^2 x 32 bytes of leaf hashes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from walruspy.core.merkle import leaf_hashes, merkle_roots
from walruspy.core.metadata import (
    BlobMetadata,
    SliverPairMetadata,
    VerifiedBlobMetadataWithId,
    trust_computed_metadata,
)
from walruspy.core.params import DIGEST_LEN, RS2_ENCODING_TYPE, EncodingParams
from walruspy.core.rs import repair_block
from walruspy.core.slivers import SliverData, VerifiedSliver, trust_encoded_sliver
from walruspy.core.types import SliverIndex, SliverPairIndex, SliverType

U8Array = npt.NDArray[np.uint8]
#: Bytes of expanded columns hashed per batch in phase 2: large enough to amortise the per-batch
#: numpy calls, small enough to stay in cache (fresh memory is written at only 1-5 GB/s here).
COLUMN_BATCH_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class EncodingLayout:
    """Shapes of one encoding: the parameters, the blob length and its symbol size."""

    params: EncodingParams
    blob_length: int
    symbol_size: int

    @classmethod
    def for_blob(cls, n_shards: int, blob_length: int) -> EncodingLayout:
        """The layout of a blob of `blob_length` bytes over `n_shards` shards."""
        params = EncodingParams(n_shards)
        return cls(params, blob_length, params.symbol_size(blob_length))

    @property
    def n(self) -> int:
        """The number of shards."""
        return self.params.n_shards

    @property
    def p(self) -> int:
        """Rows of the message matrix (primary source symbols)."""
        return self.params.n_primary_source_symbols

    @property
    def s(self) -> int:
        """Columns of the message matrix (secondary source symbols)."""
        return self.params.n_secondary_source_symbols


@dataclass(slots=True)
class EncodingBuffers:
    """The arrays the phases read and write; a driver may place them in shared memory.

    source: (p, s, ss) the padded blob; primary slivers 0..p-1.
    primary_repair: (n-p, s, ss) primary slivers p..n-1.
    secondary: (n, p, ss) secondary slivers 0..n-1.
    leaves: (n, n, 32) leaf hashes, leaves[j][i] = H(0x00 ‖ M[i][j]).
    """

    source: U8Array
    primary_repair: U8Array
    secondary: U8Array
    leaves: U8Array

    @classmethod
    def allocate(
        cls, layout: EncodingLayout, empty: Callable[[tuple[int, ...]], U8Array] | None = None
    ) -> EncodingBuffers:
        """Allocate the buffers of `layout` with `empty(shape)` (np.empty by default)."""
        make = empty or (lambda shape: np.empty(shape, dtype=np.uint8))
        n, p, s, ss = layout.n, layout.p, layout.s, layout.symbol_size
        return cls(
            source=make((p, s, ss)),
            primary_repair=make((n - p, s, ss)),
            secondary=make((n, p, ss)),
            leaves=make((n, n, DIGEST_LEN)),
        )


def fill_source(buffers: EncodingBuffers, blob: bytes | memoryview) -> None:
    """Copy the blob into the source matrix and zero the padding."""
    flat = buffers.source.reshape(-1)
    flat[: len(blob)] = np.frombuffer(blob, dtype=np.uint8)
    flat[len(blob) :] = 0


def expand_rows(layout: EncodingLayout, buffers: EncodingBuffers, rows: range) -> None:
    """Phase 1: for each row r, the n symbols M[r][:] go into column r of the secondary slivers."""
    n, s = layout.n, layout.s
    if not rows:
        return
    # Symbol i of every row is shard i of one call (rs.repair_block); its (n - s, rows, ss)
    # result is already the secondary slivers' layout.
    block = buffers.source[rows.start : rows.stop].transpose(1, 0, 2)
    buffers.secondary[:s, rows.start : rows.stop, :] = block
    buffers.secondary[s:, rows.start : rows.stop, :] = repair_block(block, n)


def expand_columns(layout: EncodingLayout, buffers: EncodingBuffers, columns: range) -> None:
    """Phase 2: extend each column j to n symbols, keep the primary repair part, hash the leaves."""
    n, p, s, ss = layout.n, layout.p, layout.s, layout.symbol_size
    batch = max(1, COLUMN_BATCH_BYTES // (n * ss))
    for start in range(columns.start, columns.stop, batch):
        stop = min(start + batch, columns.stop)
        block = np.empty((stop - start, n, ss), dtype=np.uint8)
        block[:, :p] = buffers.secondary[start:stop]
        block[:, p:] = repair_block(buffers.secondary[start:stop].transpose(1, 0, 2), n).transpose(
            1, 0, 2
        )
        in_source = range(start, min(stop, s))
        if in_source:
            cut = len(in_source)
            buffers.primary_repair[:, in_source.start : in_source.stop, :] = block[
                :cut, p:
            ].transpose(1, 0, 2)
        buffers.leaves[start:stop] = leaf_hashes(block)


#: Trees transposed per chunk when computing primary roots from the column-major leaves.
ROOTS_CHUNK_TREES = 64


def sliver_roots(leaves: U8Array, trees: range, sliver_type: SliverType) -> U8Array:
    """Phase 3: Merkle roots of the slivers `trees` of `sliver_type`; (len(trees), 32).

    `leaves` is column-major: leaves[j] are the leaves of secondary sliver j, and leaves[:, i]
    those of primary sliver i, which are transposed a chunk at a time to bound memory.
    """
    if sliver_type is SliverType.SECONDARY:
        return merkle_roots(np.ascontiguousarray(leaves[trees.start : trees.stop]))
    out = np.empty((len(trees), DIGEST_LEN), dtype=np.uint8)
    for start in range(trees.start, trees.stop, ROOTS_CHUNK_TREES):
        stop = min(start + ROOTS_CHUNK_TREES, trees.stop)
        chunk = np.ascontiguousarray(leaves[:, start:stop].transpose(1, 0, 2))
        out[start - trees.start : stop - trees.start] = merkle_roots(chunk)
    return out


def assemble_metadata(layout: EncodingLayout, primary: U8Array, secondary: U8Array) -> BlobMetadata:
    """Metadata from the primary roots (by primary index) and secondary roots (by sliver index)."""
    n = layout.n
    hashes = tuple(
        SliverPairMetadata(primary[i].tobytes(), secondary[n - 1 - i].tobytes()) for i in range(n)
    )
    return BlobMetadata(RS2_ENCODING_TYPE, layout.blob_length, hashes)


@dataclass(frozen=True, slots=True)
class EncodedBlob:
    """A blob encoded into n sliver pairs, with its verified metadata."""

    metadata: VerifiedBlobMetadataWithId
    layout: EncodingLayout
    buffers: EncodingBuffers = field(repr=False)

    @property
    def n_shards(self) -> int:
        """The number of shards (and sliver pairs)."""
        return self.layout.n

    def primary_sliver(self, index: int) -> SliverData:
        """Primary sliver `index` (row `index` of M, first s symbols)."""
        p = self.layout.p
        rows = self.buffers.source if index < p else self.buffers.primary_repair
        data = rows[index if index < p else index - p].tobytes()
        return SliverData(SliverType.PRIMARY, SliverIndex(index), self.layout.symbol_size, data)

    def secondary_sliver(self, index: int) -> SliverData:
        """Secondary sliver `index` (column `index` of M, first p symbols)."""
        data = self.buffers.secondary[index].tobytes()
        return SliverData(SliverType.SECONDARY, SliverIndex(index), self.layout.symbol_size, data)

    def sliver(self, pair: SliverPairIndex, sliver_type: SliverType) -> VerifiedSliver:
        """The `sliver_type` sliver of pair `pair`, as verified (we computed it)."""
        if sliver_type is SliverType.PRIMARY:
            sliver = self.primary_sliver(pair)
        else:
            sliver = self.secondary_sliver(self.layout.n - 1 - pair)
        return trust_encoded_sliver(sliver, self.metadata.blob_id.raw)

    def sliver_pairs(self) -> Sequence[tuple[VerifiedSliver, VerifiedSliver]]:
        """All n sliver pairs (primary, secondary), by pair index."""
        return [
            (
                self.sliver(SliverPairIndex(i), SliverType.PRIMARY),
                self.sliver(SliverPairIndex(i), SliverType.SECONDARY),
            )
            for i in range(self.layout.n)
        ]


def encode_blob(blob: bytes | memoryview, n_shards: int) -> EncodedBlob:
    """Encode `blob` for `n_shards` shards on this thread (see walruspy.workers for both cores)."""
    layout = EncodingLayout.for_blob(n_shards, len(blob))
    buffers = EncodingBuffers.allocate(layout)
    fill_source(buffers, blob)
    expand_rows(layout, buffers, range(layout.p))
    expand_columns(layout, buffers, range(layout.n))
    secondary_roots = sliver_roots(buffers.leaves, range(layout.n), SliverType.SECONDARY)
    primary_roots = sliver_roots(buffers.leaves, range(layout.n), SliverType.PRIMARY)
    return finish_encoding(layout, buffers, primary_roots, secondary_roots)


def finish_encoding(
    layout: EncodingLayout, buffers: EncodingBuffers, primary: U8Array, secondary: U8Array
) -> EncodedBlob:
    """Build the `EncodedBlob` once the phases have run and the roots are known."""
    metadata = trust_computed_metadata(assemble_metadata(layout, primary, secondary))
    return EncodedBlob(metadata, layout, buffers)

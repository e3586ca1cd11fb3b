"""Slivers: the rows and columns of the encoded blob that shards store (spec/encoding.md 5 and 8).

Theory of operation: primary sliver i is row i of the expanded n x n matrix cut to its first s
symbols; secondary sliver j is column j cut to its first p symbols. Sliver pair i holds primary
sliver i and secondary sliver n-1-i. A sliver is checked by expanding it with the orthogonal code
to n symbols and comparing the Merkle root of those symbols with the metadata entry of its pair.

Wire form (BCS `SliverData`): ULEB128(len) ‖ data ‖ symbol_size u16 ‖ index u16, where index is
the sliver index (not the pair index). The sliver type is not in the bytes: it comes from the URL.
Many slivers travel as BCS `Vec<Sliver>`, Walrus's enum `Sliver` (variant 0 `Primary`, 1
`Secondary`, then the `SliverData`), which carries each sliver's type; `verify_slivers` checks a
batch with one Merkle computation per axis instead of one per sliver.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from walruspy.core.bcs import Reader, Writer
from walruspy.core.errors import DecodeError, VerificationError
from walruspy.core.merkle import leaf_hashes, merkle_roots
from walruspy.core.metadata import VerifiedBlobMetadataWithId
from walruspy.core.params import MAX_N_SHARDS, MAX_SYMBOL_SIZE, EncodingParams
from walruspy.core.rs import expand, repair_block, split_symbols
from walruspy.core.types import SliverIndex, SliverPairIndex, SliverType, pair_index_of_sliver

#: The largest sliver data BCS may announce: a primary sliver at the maximum n and symbol size.
MAX_SLIVER_BYTES = MAX_N_SHARDS * MAX_SYMBOL_SIZE


@dataclass(frozen=True, slots=True)
class SliverData:
    """One sliver: its axis, sliver index, symbol size and data (a whole number of symbols)."""

    sliver_type: SliverType
    index: SliverIndex
    symbol_size: int
    data: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.index <= MAX_N_SHARDS:
            raise VerificationError(f"sliver index {self.index} is not a u16")
        if not 0 < self.symbol_size <= MAX_SYMBOL_SIZE:
            raise VerificationError(f"symbol size {self.symbol_size} out of range")
        if len(self.data) % self.symbol_size:
            raise VerificationError(
                f"sliver of {len(self.data)} bytes is not a whole number of "
                f"{self.symbol_size}-byte symbols"
            )

    @property
    def symbols(self) -> list[bytes]:
        """The sliver's symbols."""
        return split_symbols(self.data, self.symbol_size)

    def pair_index(self, n_shards: int) -> SliverPairIndex:
        """The sliver pair this sliver belongs to."""
        return pair_index_of_sliver(self.index, self.sliver_type, n_shards)

    def to_bcs(self) -> bytes:
        """The BCS bytes of `SliverData`."""
        return Writer().bytes(self.data).u16(self.symbol_size).u16(self.index).finish()

    @classmethod
    def from_bcs(cls, data: bytes, sliver_type: SliverType) -> SliverData:
        """Parse `SliverData` of the given axis, strictly."""
        reader = Reader(data)
        body = reader.bytes("sliver data", MAX_SLIVER_BYTES)
        symbol_size = reader.u16("symbol size")
        index = reader.u16("sliver index")
        reader.finish("sliver")
        if symbol_size == 0:
            raise VerificationError("sliver has symbol size 0")
        return cls(sliver_type, SliverIndex(index), symbol_size, body)

    def expanded_symbols(self, n_shards: int) -> list[bytes]:
        """The n symbols of the sliver's row or column: the sliver extended with the other code."""
        return expand(self.symbols, n_shards)

    def merkle_root(self, n_shards: int) -> bytes:
        """The Merkle root over the expanded sliver, as committed in the metadata."""
        data = np.frombuffer(self.data, dtype=np.uint8).reshape(1, -1, self.symbol_size)
        return bytes(expanded_roots(data, n_shards)[0])

    def verify(self, metadata: VerifiedBlobMetadataWithId) -> VerifiedSliver:
        """Check this sliver against verified metadata (spec/encoding.md section 8)."""
        self.check_shape(metadata)
        if self.merkle_root(metadata.n_shards) != self._committed_root(metadata):
            raise self._mismatch()
        return VerifiedSliver(self, metadata.blob_id.raw, _token=_VERIFIED)

    def check_shape(self, metadata: VerifiedBlobMetadataWithId) -> None:
        """Every check of `verify` but the Merkle root: index, symbol size and length."""
        params = metadata.params
        n = params.n_shards
        if self.index >= n:
            raise VerificationError(f"sliver index {self.index} out of range for {n} shards")
        expected_size = metadata.symbol_size
        if self.symbol_size != expected_size:
            raise VerificationError(
                f"symbol size {self.symbol_size} differs from the blob's {expected_size}"
            )
        expected_len = expected_sliver_length(params, self.sliver_type, expected_size)
        if len(self.data) != expected_len:
            raise VerificationError(
                f"{self.sliver_type.value} sliver has {len(self.data)} bytes, "
                f"expected {expected_len}"
            )

    def _committed_root(self, metadata: VerifiedBlobMetadataWithId) -> bytes:
        return metadata.sliver_hash(self.pair_index(metadata.n_shards), self.sliver_type)

    def _mismatch(self) -> VerificationError:
        return VerificationError(
            f"{self.sliver_type.value} sliver {self.index} does not match the metadata hash"
        )


def expanded_roots(slivers: npt.NDArray[np.uint8], n_shards: int) -> npt.NDArray[np.uint8]:
    """The Merkle roots (C, 32) of C slivers of one axis, (C, length, ss), each expanded to
    `n_shards` symbols: every sliver is a codeword of the same code, extended in one call."""
    count, length, symbol_size = slivers.shape
    symbols = np.empty((count, n_shards, symbol_size), dtype=np.uint8)
    symbols[:, :length] = slivers
    symbols[:, length:] = repair_block(slivers.transpose(1, 0, 2), n_shards).transpose(1, 0, 2)
    return merkle_roots(leaf_hashes(symbols))


def verify_slivers(
    slivers: Sequence[SliverData], metadata: VerifiedBlobMetadataWithId
) -> list[VerifiedSliver]:
    """`SliverData.verify` of many slivers of one blob, with one batched extension and Merkle
    computation per axis (each sliver still expanded and hashed in full). Raises
    `VerificationError` naming the first sliver that fails, in the given order."""
    n = metadata.n_shards
    for sliver in slivers:
        sliver.check_shape(metadata)
    for sliver_type in SliverType:
        group = [sliver for sliver in slivers if sliver.sliver_type is sliver_type]
        if not group:
            continue
        data = np.frombuffer(b"".join(sliver.data for sliver in group), dtype=np.uint8)
        roots = expanded_roots(data.reshape(len(group), -1, metadata.symbol_size), n)
        for sliver, root in zip(group, roots, strict=True):
            if bytes(root) != sliver._committed_root(metadata):
                raise sliver._mismatch()
    return [VerifiedSliver(sliver, metadata.blob_id.raw, _token=_VERIFIED) for sliver in slivers]


#: Walrus's enum `Sliver`: the BCS variant index of each axis.
_SLIVER_VARIANTS = (SliverType.PRIMARY, SliverType.SECONDARY)


def slivers_to_bcs(slivers: Sequence[SliverData]) -> bytes:
    """BCS `Vec<Sliver>`: each sliver as its variant index and its `SliverData`."""
    writer = Writer().uleb128(len(slivers))
    for sliver in slivers:
        writer.u8(_SLIVER_VARIANTS.index(sliver.sliver_type)).fixed(sliver.to_bcs())
    return writer.finish()


def slivers_bcs_from_parts(sliver_type: SliverType, parts: Sequence[bytes]) -> bytes:
    """BCS `Vec<Sliver>` of slivers of one axis given as their `SliverData` BCS (as stored)."""
    variant = bytes([_SLIVER_VARIANTS.index(sliver_type)])
    writer = Writer().uleb128(len(parts))
    for part in parts:
        writer.fixed(variant + part)
    return writer.finish()


def slivers_from_bcs(data: bytes, max_count: int) -> list[tuple[SliverData, bytes]]:
    """Parse BCS `Vec<Sliver>` strictly: each sliver with the bytes of its `SliverData` (what a
    node stores). At most `max_count` slivers; raises `DecodeError` or `VerificationError`."""
    reader = Reader(data)
    count = reader.uleb128("sliver count", max_count)
    parsed = []
    for position in range(count):
        variant = reader.u8("sliver variant")
        if variant >= len(_SLIVER_VARIANTS):
            raise DecodeError(f"sliver {position}: invalid variant {variant} of Sliver")
        start = len(data) - reader.remaining
        body = reader.bytes("sliver data", MAX_SLIVER_BYTES)
        symbol_size = reader.u16("symbol size")
        index = reader.u16("sliver index")
        if symbol_size == 0:
            raise VerificationError(f"sliver {position} has symbol size 0")
        sliver = SliverData(_SLIVER_VARIANTS[variant], SliverIndex(index), symbol_size, body)
        parsed.append((sliver, data[start : len(data) - reader.remaining]))
    reader.finish("slivers")
    return parsed


def expected_sliver_length(
    params: EncodingParams, sliver_type: SliverType, symbol_size: int
) -> int:
    """Bytes of a sliver of `sliver_type` for the given parameters and symbol size."""
    if sliver_type is SliverType.PRIMARY:
        return params.primary_sliver_length(symbol_size)
    return params.secondary_sliver_length(symbol_size)


_VERIFIED = object()


@dataclass(frozen=True, slots=True)
class VerifiedSliver:
    """A sliver checked against the metadata of blob `blob_id`. Made only by `SliverData.verify`."""

    sliver: SliverData
    blob_id: bytes
    _token: object = field(repr=False, compare=False)

    def __post_init__(self) -> None:
        if self._token is not _VERIFIED:
            raise TypeError("VerifiedSliver is made only by SliverData.verify() or the encoder")


def trust_encoded_sliver(sliver: SliverData, blob_id: bytes) -> VerifiedSliver:
    """Wrap a sliver that this process encoded itself as verified."""
    return VerifiedSliver(sliver, blob_id, _token=_VERIFIED)

"""Encoding parameters of RS2 (Red Stuff with Reed-Solomon) for a committee of `n_shards`.

Theory of operation (spec/encoding.md sections 1 and 2): with n shards, at most f = (n-1)//3
may be Byzantine. The blob is laid out as a p x s matrix of symbols, p = n - 2f rows (the
primary source symbols, also the length of a secondary sliver) and s = n - f columns (the
secondary source symbols, the length of a primary sliver). The symbol size is the smallest even
number of bytes that fits the blob into that matrix, capped at 65534; an empty blob is sized as
if it had one byte. Every formula here is mirrored on chain by the System contract.
"""

from __future__ import annotations

from dataclasses import dataclass

from walruspy.core.errors import DataTooLargeError, InvalidParametersError

#: RS2 symbols must have an even length (reed-solomon-simd works on 16-bit field elements).
SYMBOL_ALIGNMENT = 2
#: u16::MAX - 1, the largest even symbol size; Walrus's `max_symbol_size` for RS2.
MAX_SYMBOL_SIZE = 65534
#: The encoding-type byte of RS2 in metadata and blob IDs; 0 was the retired RaptorQ.
RS2_ENCODING_TYPE = 1
#: Walrus reads n_shards from the system object as a u16; the RS library caps shard counts too.
MAX_N_SHARDS = 65535
#: Length of a BLAKE2b-256 digest: sliver hashes, Merkle nodes, blob IDs.
DIGEST_LEN = 32


def max_n_faulty(n_shards: int) -> int:
    """f = (n - 1) // 3, the most shards that may be Byzantine."""
    return (n_shards - 1) // 3


def quorum_weight(n_shards: int) -> int:
    """The smallest shard weight w with 3w >= 2n + 1 (2f + 1 when n = 3f + 1)."""
    return -(-(2 * n_shards + 1) // 3)


def validity_weight(n_shards: int) -> int:
    """The smallest shard weight w with 3w >= n + 1: includes at least one correct shard."""
    return -(-(n_shards + 1) // 3)


@dataclass(frozen=True, slots=True)
class EncodingParams:
    """The RS2 parameters that follow from the number of shards."""

    n_shards: int

    def __post_init__(self) -> None:
        if not 4 <= self.n_shards <= MAX_N_SHARDS:
            raise InvalidParametersError(
                f"n_shards must be between 4 and {MAX_N_SHARDS}, got {self.n_shards}: "
                "with fewer than 4 shards no shard may fail (f = 0) and RS2 has no repair symbols"
            )

    @property
    def f(self) -> int:
        """The maximum number of Byzantine shards, (n - 1) // 3."""
        return max_n_faulty(self.n_shards)

    @property
    def n_primary_source_symbols(self) -> int:
        """p = n - 2f: rows of the message matrix, symbols per secondary sliver."""
        return self.n_shards - 2 * self.f

    @property
    def n_secondary_source_symbols(self) -> int:
        """s = n - f: columns of the message matrix, symbols per primary sliver."""
        return self.n_shards - self.f

    @property
    def n_source_symbols(self) -> int:
        """p * s, the number of symbols of the message matrix."""
        return self.n_primary_source_symbols * self.n_secondary_source_symbols

    @property
    def max_blob_size(self) -> int:
        """The largest blob, in bytes, that RS2 can encode with this many shards."""
        return self.n_source_symbols * MAX_SYMBOL_SIZE

    @property
    def quorum_weight(self) -> int:
        """The smallest shard weight w with 3w >= 2n + 1 (2f + 1 when n = 3f + 1)."""
        return quorum_weight(self.n_shards)

    @property
    def validity_weight(self) -> int:
        """The smallest shard weight w with 3w >= n + 1: includes at least one correct shard."""
        return validity_weight(self.n_shards)

    @property
    def metadata_length(self) -> int:
        """Bytes of metadata charged per shard: two hashes per sliver pair plus the blob ID."""
        return self.n_shards * 2 * DIGEST_LEN + DIGEST_LEN

    def symbol_size(self, blob_length: int) -> int:
        """The symbol size for a blob of `blob_length` bytes.

        Raises `DataTooLargeError` when the blob exceeds `max_blob_size`.
        """
        if blob_length < 0:
            raise ValueError(f"blob length cannot be negative: {blob_length}")
        size = -(-max(blob_length, 1) // self.n_source_symbols)
        size += size % SYMBOL_ALIGNMENT
        if size > MAX_SYMBOL_SIZE:
            raise DataTooLargeError(
                f"the data is too large to be encoded/decoded: {blob_length} bytes exceeds the "
                f"maximum blob size of {self.max_blob_size} bytes for {self.n_shards} shards"
            )
        return size

    def primary_sliver_length(self, symbol_size: int) -> int:
        """Bytes of one primary sliver: s symbols."""
        return self.n_secondary_source_symbols * symbol_size

    def secondary_sliver_length(self, symbol_size: int) -> int:
        """Bytes of one secondary sliver: p symbols."""
        return self.n_primary_source_symbols * symbol_size

    def encoded_slivers_length(self, blob_length: int) -> int:
        """Bytes of all sliver pairs of a blob, without metadata."""
        ss = self.symbol_size(blob_length)
        total_symbols = self.n_primary_source_symbols + self.n_secondary_source_symbols
        return self.n_shards * total_symbols * ss

    def encoded_length(self, blob_length: int) -> int:
        """The encoded length used for storage accounting on chain (Move `encoded_blob_length`).

        n * (n * 64 + 32) for the metadata each shard keeps, plus every sliver pair.
        """
        return self.n_shards * self.metadata_length + self.encoded_slivers_length(blob_length)

"""Inconsistency proofs: evidence, checkable by anyone, that a blob was encoded inconsistently.

Theory of operation (spec/encoding.md section 9, walrus-core `inconsistency.rs`): a node that
recovers a sliver from verified recovery symbols, and finds that the recovered sliver does not
hash to the metadata's entry, publishes the target index with exactly the symbols it used (s for a
primary target, p for a secondary one), each with its Merkle proof. A verifier checks the count,
every index, size and proof, decodes, and confirms that the decoded sliver's hash differs from the
metadata. Nodes then sign an INVALID_BLOB_ID message for the blob.

Wire form (BCS, the body of POST .../inconsistencyProof/{type}): target_sliver_index u16 ‖
Vec<RecoverySymbol{DecodingSymbol{index u16, data Vec<u8>}, MerkleProof}>, where each index is the
symbol's codeword index for the target (its source sliver's index) and the type comes from the URL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from walruspy.core.bcs import Reader, Writer
from walruspy.core.errors import VerificationError
from walruspy.core.merkle import MerkleProof
from walruspy.core.metadata import VerifiedBlobMetadataWithId
from walruspy.core.params import MAX_N_SHARDS, MAX_SYMBOL_SIZE, EncodingParams
from walruspy.core.rs import decode_source
from walruspy.core.slivers import SliverData
from walruspy.core.symbols import RecoverySymbol
from walruspy.core.types import SliverIndex, SliverType, pair_index_of_sliver


def symbols_needed(params: EncodingParams, target_type: SliverType) -> int:
    """Symbols needed to recover a sliver: s for a primary sliver, p for a secondary one."""
    if target_type is SliverType.PRIMARY:
        return params.n_secondary_source_symbols
    return params.n_primary_source_symbols


@dataclass(frozen=True, slots=True)
class InconsistencyProof:
    """The symbols that recover sliver `target_index` of `target_type` to a mismatching sliver."""

    target_type: SliverType
    target_index: SliverIndex
    symbols: tuple[RecoverySymbol, ...]

    def __post_init__(self) -> None:
        for symbol in self.symbols:
            if (
                symbol.target_type is not self.target_type
                or symbol.target_index != self.target_index
            ):
                raise ValueError("every symbol of an inconsistency proof is for its target sliver")

    def to_bcs(self) -> bytes:
        """The axis-specific BCS form."""
        writer = Writer().u16(self.target_index).uleb128(len(self.symbols))
        for symbol in self.symbols:
            writer.u16(symbol.source_index).bytes(symbol.data)
            symbol.proof.write(writer)
        return writer.finish()

    @classmethod
    def from_bcs(cls, data: bytes, target_type: SliverType) -> InconsistencyProof:
        """Parse the axis-specific BCS form, strictly."""
        reader = Reader(data)
        target_index = SliverIndex(reader.u16("target sliver index"))
        count = reader.uleb128("number of symbols", MAX_N_SHARDS)
        symbols = []
        for _ in range(count):
            source_index = SliverIndex(reader.u16("symbol index"))
            symbol_data = reader.bytes("symbol data", MAX_SYMBOL_SIZE)
            proof = MerkleProof.read(reader)
            symbols.append(
                RecoverySymbol(target_type, source_index, target_index, symbol_data, proof)
            )
        reader.finish("inconsistency proof")
        return cls(target_type, target_index, tuple(symbols))

    def verify(self, metadata: VerifiedBlobMetadataWithId) -> None:
        """Check that this proves the blob inconsistent; raise `VerificationError` otherwise."""
        params = metadata.params
        needed = symbols_needed(params, self.target_type)
        if len(self.symbols) != needed:
            raise VerificationError(
                f"an inconsistency proof for a {self.target_type.value} sliver has exactly "
                f"{needed} symbols, this one {len(self.symbols)}"
            )
        if self.target_index >= params.n_shards:
            raise VerificationError(f"target sliver index {self.target_index} out of range")
        indices = {s.source_index for s in self.symbols}
        if len(indices) != needed:
            raise VerificationError("an inconsistency proof repeats a symbol index")
        for symbol in self.symbols:
            symbol.verify(metadata, self.target_index, self.target_type)
        recovered = recover_from_symbols(
            metadata, self.target_type, self.target_index, self.symbols
        )
        committed = metadata.sliver_hash(
            pair_index_of_sliver(self.target_index, self.target_type, params.n_shards),
            self.target_type,
        )
        if recovered.merkle_root(params.n_shards) == committed:
            raise VerificationError(
                "not an inconsistency: the recovered sliver matches the metadata"
            )


def recover_from_symbols(
    metadata: VerifiedBlobMetadataWithId,
    target_type: SliverType,
    target_index: SliverIndex,
    symbols: Sequence[RecoverySymbol],
) -> SliverData:
    """Decode the target sliver from (already verified) symbols; no hash check here."""
    params = metadata.params
    needed = symbols_needed(params, target_type)
    by_index: dict[int, bytes] = {s.decoding_index(target_type): s.data for s in symbols}
    source = decode_source(needed, params.n_shards, by_index)
    return SliverData(target_type, target_index, metadata.symbol_size, b"".join(source))

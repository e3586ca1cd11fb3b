"""Recovery symbols: how a node rebuilds a sliver from its peers (spec/encoding.md section 9).

Theory of operation: symbol M[i][j] belongs to primary sliver i (position j of its expansion) and
to secondary sliver j (position i). A node holding secondary sliver j can therefore give a node
missing primary sliver i the symbol M[i][j], with a Merkle proof from the tree over sliver j's
expansion at leaf i; the receiver checks it against the secondary hash of pair n-1-j. With s = n-f
such symbols (distinct j) the secondary code decodes primary sliver i; with p = n-2f symbols
M[i][j] from holders of primary slivers i, the primary code decodes secondary sliver j.

Wire form (BCS `GeneralRecoverySymbol`): variant (0 = for a primary target, 1 = for a secondary
target) ‖ DecodingSymbol{index u16 = the source sliver's index, data Vec<u8>} ‖ target_index u16
‖ MerkleProof. A symbol can also serve the recovery of its own source sliver (Walrus allows it),
which `decoding_index` accounts for.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from walruspy.core.bcs import Reader, Writer
from walruspy.core.errors import DecodeError, VerificationError
from walruspy.core.merkle import MerkleProof, MerkleTree, leaf_hashes
from walruspy.core.metadata import VerifiedBlobMetadataWithId
from walruspy.core.params import MAX_SYMBOL_SIZE
from walruspy.core.slivers import SliverData
from walruspy.core.types import SliverIndex, SliverType, pair_index_of_sliver

_VARIANTS = (SliverType.PRIMARY, SliverType.SECONDARY)
#: A node answers with at most one symbol per sliver it holds; this bounds a parsed list.
MAX_SYMBOLS_PER_RESPONSE = 65535


@dataclass(frozen=True, slots=True)
class RecoverySymbol:
    """Walrus's `GeneralRecoverySymbol`: one symbol of a source sliver, with its Merkle proof.

    `target_type` is the axis of the sliver the symbol is for; the source sliver is of the other
    axis, with index `source_index`; the symbol is position `target_index` of its expansion.
    """

    target_type: SliverType
    source_index: SliverIndex
    target_index: SliverIndex
    data: bytes = field(repr=False)
    proof: MerkleProof = field(repr=False)

    @property
    def source_type(self) -> SliverType:
        """The axis of the sliver the symbol was cut from."""
        return self.target_type.orthogonal

    def write(self, writer: Writer) -> None:
        """Append the BCS form."""
        writer.uleb128(_VARIANTS.index(self.target_type))
        writer.u16(self.source_index).bytes(self.data).u16(self.target_index)
        self.proof.write(writer)

    @classmethod
    def read(cls, reader: Reader) -> RecoverySymbol:
        """Read the BCS form, strictly."""
        variant = reader.uleb128("recovery symbol variant", 1)
        source_index = reader.u16("symbol index")
        data = reader.bytes("symbol data", MAX_SYMBOL_SIZE)
        target_index = reader.u16("target index")
        proof = MerkleProof.read(reader)
        return cls(
            _VARIANTS[variant], SliverIndex(source_index), SliverIndex(target_index), data, proof
        )

    def decoding_index(self, target_type: SliverType) -> SliverIndex:
        """The codeword index of this symbol when decoding a sliver of `target_type`."""
        return self.source_index if target_type is self.target_type else self.target_index

    def verify(
        self,
        metadata: VerifiedBlobMetadataWithId,
        target_index: SliverIndex,
        target_type: SliverType,
    ) -> VerifiedRecoverySymbol:
        """Check the symbol for recovering sliver `target_index` of `target_type`.

        Raises `VerificationError` naming the failed check.
        """
        n = metadata.n_shards
        if self.source_index >= n or self.target_index >= n:
            raise VerificationError(f"recovery symbol index out of range for {n} shards")
        if len(self.data) != metadata.symbol_size:
            raise VerificationError(
                f"recovery symbol has {len(self.data)} bytes, the blob's symbols "
                f"{metadata.symbol_size}"
            )
        usable = (
            self.source_type is not target_type and self.target_index == target_index
        ) or self.source_index == target_index
        if not usable:
            raise VerificationError(
                f"recovery symbol {self.source_index}/{self.target_index} cannot help recover "
                f"{target_type.value} sliver {target_index}"
            )
        source_pair = pair_index_of_sliver(self.source_index, self.source_type, n)
        root = metadata.sliver_hash(source_pair, self.source_type)
        self.proof.verify(root, n, self.data, self.target_index)
        return VerifiedRecoverySymbol(self, target_type, target_index, _token=_VERIFIED)

    def to_bcs(self) -> bytes:
        """The BCS bytes of one symbol."""
        writer = Writer()
        self.write(writer)
        return writer.finish()


_VERIFIED = object()


@dataclass(frozen=True, slots=True)
class VerifiedRecoverySymbol:
    """A recovery symbol checked for one target sliver. Made only by `RecoverySymbol.verify`."""

    symbol: RecoverySymbol
    target_type: SliverType
    target_index: SliverIndex
    _token: object = field(repr=False, compare=False)

    def __post_init__(self) -> None:
        if self._token is not _VERIFIED:
            raise TypeError("VerifiedRecoverySymbol is made only by RecoverySymbol.verify()")

    @property
    def decoding_index(self) -> SliverIndex:
        """The codeword index of the symbol for its target."""
        return self.symbol.decoding_index(self.target_type)


def symbols_to_bcs(symbols: Sequence[RecoverySymbol]) -> bytes:
    """BCS of `Vec<GeneralRecoverySymbol>`, a node's recoverySymbols answer."""
    writer = Writer().uleb128(len(symbols))
    for symbol in symbols:
        symbol.write(writer)
    return writer.finish()


def symbols_from_bcs(data: bytes) -> list[RecoverySymbol]:
    """Parse `Vec<GeneralRecoverySymbol>` strictly."""
    reader = Reader(data)
    count = reader.uleb128("number of recovery symbols", MAX_SYMBOLS_PER_RESPONSE)
    result = [RecoverySymbol.read(reader) for _ in range(count)]
    reader.finish("recovery symbols")
    return result


class SymbolSource:
    """The recovery symbols a stored sliver can give; its expansion and tree are built once."""

    __slots__ = ("_expanded", "_sliver", "_tree")

    def __init__(self, sliver: SliverData, n_shards: int) -> None:
        self._sliver = sliver
        self._expanded = sliver.expanded_symbols(n_shards)
        symbols = np.frombuffer(b"".join(self._expanded), dtype=np.uint8)
        leaves = leaf_hashes(symbols.reshape(n_shards, sliver.symbol_size))
        self._tree = MerkleTree.from_leaf_array(leaves)

    def symbol_for(self, target_index: int) -> RecoverySymbol:
        """The symbol of this sliver at position `target_index`, for the orthogonal sliver."""
        if not 0 <= target_index < len(self._expanded):
            raise DecodeError(f"target index {target_index} out of range")
        return RecoverySymbol(
            self._sliver.sliver_type.orthogonal,
            self._sliver.index,
            SliverIndex(target_index),
            self._expanded[target_index],
            self._tree.proof(target_index),
        )

    def symbols_for(self, targets: Iterable[int]) -> list[RecoverySymbol]:
        """The symbols for several target indices."""
        return [self.symbol_for(t) for t in targets]

"""The body of `GET /v1/blobs/{blob_id}/decodingSymbols`: symbols without proofs, by target sliver.

Theory of operation (spec/walrus-system.md 3.1; Walrus `node.rs`
`retrieve_multiple_decoding_symbols`, `walrus-core` `EitherDecodingSymbol = ByAxis<DecodingSymbol
<Primary>, DecodingSymbol<Secondary>>`): a node answers, for each requested target sliver index,
the source symbols its stored slivers of the other axis hold for it. Only *source* targets are
served (index < p for primary targets, < s for secondary ones), because a stored sliver holds just
the first p or s symbols of its row or column; no proof is attached, so the caller checks the
decoded sliver against the metadata.

BCS: `BTreeMap<SliverIndex u16, Vec<EitherDecodingSymbol>>` = ULEB128(len) ‖ entries in key
order, each `u16 target ‖ ULEB128(count) ‖ count × (ULEB128(variant: 0 = for a primary target,
1 = for a secondary target) ‖ u16 source sliver index ‖ ULEB128(len) ‖ data)`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from walruspy.core.bcs import Reader, Writer
from walruspy.core.errors import DecodeError
from walruspy.core.params import MAX_SYMBOL_SIZE
from walruspy.core.types import SliverIndex, SliverType

_VARIANTS = (SliverType.PRIMARY, SliverType.SECONDARY)
#: Most target slivers and most symbols per target a parser accepts: a u16's range.
MAX_ENTRIES = 1 << 16


@dataclass(frozen=True, slots=True)
class DecodingSymbol:
    """A source symbol for a `target_type` sliver, cut from sliver `index` of the other axis."""

    target_type: SliverType
    index: SliverIndex
    data: bytes = field(repr=False)


def decoding_symbols_to_bcs(symbols: Mapping[int, Sequence[DecodingSymbol]]) -> bytes:
    """The BCS answer for a map target index -> symbols (keys are written in order)."""
    writer = Writer().uleb128(len(symbols))
    for target in sorted(symbols):
        entries = symbols[target]
        writer.u16(target).uleb128(len(entries))
        for symbol in entries:
            writer.uleb128(_VARIANTS.index(symbol.target_type)).u16(symbol.index).bytes(symbol.data)
    return writer.finish()


def decoding_symbols_from_bcs(data: bytes) -> dict[SliverIndex, list[DecodingSymbol]]:
    """Parse the BCS answer strictly: keys strictly increasing, no bytes left over."""
    reader = Reader(data)
    count = reader.uleb128("number of target slivers", MAX_ENTRIES)
    result: dict[SliverIndex, list[DecodingSymbol]] = {}
    previous = -1
    for _ in range(count):
        target = reader.u16("target sliver index")
        if target <= previous:
            raise DecodeError("decoding symbols: target indices are not strictly increasing")
        previous = target
        n_symbols = reader.uleb128("number of decoding symbols", MAX_ENTRIES)
        symbols = []
        for _ in range(n_symbols):
            variant = reader.uleb128("decoding symbol variant", 1)
            index = reader.u16("symbol index")
            symbols.append(
                DecodingSymbol(
                    _VARIANTS[variant],
                    SliverIndex(index),
                    reader.bytes("symbol data", MAX_SYMBOL_SIZE),
                )
            )
        result[SliverIndex(target)] = symbols
    reader.finish("decoding symbols")
    return result

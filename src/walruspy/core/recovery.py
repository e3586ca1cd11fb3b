"""Recovering a missing sliver from peers' recovery symbols (spec/encoding.md section 9).

Theory of operation: given enough verified symbols for one target sliver (s = n-f for a primary
sliver, p = n-2f for a secondary one), decode with the target's code and check the result against
the metadata. A match is a verified sliver, ready to store; a mismatch means the writer encoded the
blob inconsistently, and the symbols used become an `InconsistencyProof` instead of data.
A node recovering from scratch first rebuilds its secondary sliver (fewer helpers needed).
"""

from __future__ import annotations

from collections.abc import Iterable

from walruspy.core.errors import NotEnoughSymbolsError
from walruspy.core.inconsistency import InconsistencyProof, recover_from_symbols, symbols_needed
from walruspy.core.metadata import VerifiedBlobMetadataWithId
from walruspy.core.slivers import VerifiedSliver, trust_encoded_sliver
from walruspy.core.symbols import RecoverySymbol, VerifiedRecoverySymbol
from walruspy.core.types import SliverIndex, SliverType, pair_index_of_sliver


def recover_sliver(
    metadata: VerifiedBlobMetadataWithId,
    target_type: SliverType,
    target_index: SliverIndex,
    symbols: Iterable[VerifiedRecoverySymbol],
) -> VerifiedSliver | InconsistencyProof:
    """Recover sliver `target_index` of `target_type`, or prove the blob inconsistent.

    Uses exactly the needed number of symbols with the lowest distinct codeword indices; raises
    `NotEnoughSymbolsError` with too few, `ValueError` for a symbol verified for another target.
    Symbols cut from the target sliver itself (which Walrus's check admits) are not used: they
    cannot enter an inconsistency proof, and a node that holds the target does not recover it.
    """
    params = metadata.params
    needed = symbols_needed(params, target_type)
    chosen: dict[int, RecoverySymbol] = {}
    for verified in symbols:
        if verified.target_type is not target_type or verified.target_index != target_index:
            raise ValueError("a recovery symbol verified for another target was passed")
        if verified.symbol.target_type is not target_type:
            continue
        chosen.setdefault(verified.decoding_index, verified.symbol)
    if len(chosen) < needed:
        raise NotEnoughSymbolsError(
            f"need {needed} distinct symbols to recover {target_type.value} sliver "
            f"{target_index}, got {len(chosen)}"
        )
    used = [chosen[i] for i in sorted(chosen)[:needed]]
    sliver = recover_from_symbols(metadata, target_type, target_index, used)
    pair = pair_index_of_sliver(target_index, target_type, params.n_shards)
    if sliver.merkle_root(params.n_shards) == metadata.sliver_hash(pair, target_type):
        return trust_encoded_sliver(sliver, metadata.blob_id.raw)
    return InconsistencyProof(target_type, target_index, tuple(used))

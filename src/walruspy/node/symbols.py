"""Serving recovery and decoding symbols, and checking inconsistency proofs.

Theory of operation (spec/encoding.md 9; spec/walrus-system.md 3.1; Walrus `node.rs`
`retrieve_multiple_recovery_symbols`, `retrieve_recovery_symbol_unchecked`,
`symbol_ids_from_filter`, `retrieve_multiple_decoding_symbols`, `verify_inconsistency_proof`).

A symbol `M[i][j]` (id `"i-j"`) lies on primary sliver i and on secondary sliver j. This node can
give it for a *secondary* target j if it stores primary sliver i (the symbol is position j of that
sliver's expansion), or for a *primary* target i if it stores secondary sliver j (position i).
`plan_symbols` decides, for each requested id, which of the two the node can serve (trying the
secondary target first, as Walrus does; `proofAxis` fixes the source axis instead), from the shards
it owns now and those it held in the previous epoch (kept, locked, through this one: during an epoch
change the new owners may still be syncing them). The form `targetSliver=t&targetType=T` asks for
one symbol per such shard: the one its stored sliver of the other axis holds for target t.

Work is bounded: at most `MAX_SYMBOL_IDS` ids per request, each source sliver is expanded and
hashed once per request (`SymbolSource`), and requests run only while a slot of
`max_concurrent_symbol_requests` is free; a request that finds none is refused with 503
UNAVAILABLE, as Walrus's limiter does, so peers retry elsewhere.

During a storage challenge (node/challenges.py) both kinds of symbols of challenged blobs are
withheld (503): a node that dropped its slivers must not rebuild them from its peers in time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from walruspy.core.blob_id import BlobId
from walruspy.core.errors import DecodeError, InvalidInputError, NotEnoughSymbolsError
from walruspy.core.inconsistency import InconsistencyProof
from walruspy.core.messages import InvalidBlobIdMessage, SignedMessage
from walruspy.core.params import EncodingParams
from walruspy.core.slivers import SliverData
from walruspy.core.symbols import RecoverySymbol, SymbolSource, symbols_to_bcs
from walruspy.core.types import (
    ShardIndex,
    SliverIndex,
    SliverPairIndex,
    SliverType,
    pair_index_of_sliver,
    pair_of_shard,
    shard_of_pair,
    sliver_index_of_pair,
)
from walruspy.node.service import NodeService
from walruspy.node_api import errors as api_errors
from walruspy.node_api.decoding_symbols import DecodingSymbol, decoding_symbols_to_bcs
from walruspy.node_api.paths import (
    DecodingSymbolsQuery,
    RecoverySymbolsByIds,
    RecoverySymbolsFilter,
    SymbolId,
)

#: (source sliver type, source pair, position in the source's expansion) of one candidate.
Candidate = tuple[SliverType, SliverPairIndex, int]


@dataclass(frozen=True, slots=True)
class SymbolPlan:
    """For one requested symbol id, the ways this node can serve it (in preference order)."""

    symbol_id: SymbolId
    candidates: tuple[Candidate, ...]
    error: api_errors.NodeApiError | None


def symbol_ids_for(
    symbols_filter: RecoverySymbolsFilter, blob_id: bytes, owned: Iterable[ShardIndex], n: int
) -> list[SymbolId]:
    """The symbol ids a filter asks for (one per owned shard for the target form)."""
    if isinstance(symbols_filter, RecoverySymbolsByIds):
        return list(symbols_filter.ids)
    target = symbols_filter.target_sliver
    ids = []
    for shard in sorted(owned):
        pair = pair_of_shard(shard, blob_id, n)
        if symbols_filter.target_type is SliverType.PRIMARY:
            ids.append(SymbolId(target, sliver_index_of_pair(pair, SliverType.SECONDARY, n)))
        else:
            ids.append(SymbolId(sliver_index_of_pair(pair, SliverType.PRIMARY, n), target))
    return ids


def plan_symbols(
    ids: Iterable[SymbolId],
    proof_axis: SliverType | None,
    blob_id: bytes,
    owned: frozenset[ShardIndex],
    n: int,
) -> list[SymbolPlan]:
    """Which stored sliver serves each id; ids this node cannot serve carry their error."""
    target_types = [SliverType.SECONDARY, SliverType.PRIMARY]
    if proof_axis is not None:
        target_types = [proof_axis.orthogonal]
    plans = []
    for symbol_id in ids:
        if symbol_id.primary >= n or symbol_id.secondary >= n:
            error: api_errors.NodeApiError = api_errors.IndexOutOfRangeError(
                f"symbol {symbol_id} out of range for {n} shards", {"max": n}
            )
            plans.append(SymbolPlan(symbol_id, (), error))
            continue
        candidates = []
        for target_type in target_types:
            source_type = target_type.orthogonal
            if source_type is SliverType.PRIMARY:
                source_index, position = symbol_id.primary, symbol_id.secondary
            else:
                source_index, position = symbol_id.secondary, symbol_id.primary
            pair = pair_index_of_sliver(SliverIndex(source_index), source_type, n)
            if shard_of_pair(pair, blob_id, n) in owned:
                candidates.append((source_type, pair, position))
        missing = None if candidates else api_errors.SymbolNotPresentAtShardsError()
        plans.append(SymbolPlan(symbol_id, tuple(candidates), missing))
    return plans


class SymbolService:
    """The symbol routes and the inconsistency-proof route of one node."""

    def __init__(
        self,
        service: NodeService,
        max_concurrent: int,
        *,
        withheld: Callable[[bytes], bool] | None = None,
    ) -> None:
        self._service = service
        self._slots = asyncio.Semaphore(max_concurrent)
        #: Whether a blob's symbols are withheld now (a storage challenge: node/challenges.py).
        self._withheld = withheld or (lambda blob_id: False)

    def _check_not_withheld(self, blob_id: BlobId) -> None:
        if self._withheld(blob_id.raw):
            self._service.metrics.challenge_symbols_refused.inc()
            raise api_errors.UnavailableError(
                "a storage challenge is underway: symbols of this blob are served again after it"
            )

    async def recovery_symbols(
        self, blob_id: BlobId, symbols_filter: RecoverySymbolsFilter
    ) -> bytes:
        """BCS `Vec<GeneralRecoverySymbol>` for the filter, or the last error if none."""
        self._check_not_withheld(blob_id)
        if self._slots.locked():
            raise api_errors.UnavailableError("too many recovery-symbol requests; retry later")
        async with self._slots:
            state = self._service.state
            n, owned = state.n_shards, state.view.readable_shards
            if not isinstance(symbols_filter, RecoverySymbolsByIds) and (
                symbols_filter.target_sliver >= n
            ):
                raise api_errors.IndexOutOfRangeError(
                    f"target sliver {symbols_filter.target_sliver} out of range for {n} shards"
                )
            await self._service.require_registered(blob_id, api_errors.SliverNotFoundError)
            ids = symbol_ids_for(symbols_filter, blob_id.raw, owned, n)
            if not ids:
                raise api_errors.NoSymbolsSpecifiedError()
            plans = plan_symbols(ids, symbols_filter.proof_axis, blob_id.raw, owned, n)
            symbols = await asyncio.to_thread(self._extract, blob_id, plans, n)
            self._service.metrics.recovery_symbols_served.inc(len(symbols))
            return symbols_to_bcs(symbols)

    def _extract(self, blob_id: BlobId, plans: list[SymbolPlan], n: int) -> list[RecoverySymbol]:
        """Runs in a worker thread: loads each needed sliver once and cuts the symbols."""
        sources: dict[tuple[SliverType, int], SymbolSource | None] = {}
        symbols: list[RecoverySymbol] = []
        last_error: api_errors.NodeApiError = api_errors.SymbolNotPresentAtShardsError()
        for plan in plans:
            if plan.error is not None:
                last_error = plan.error
            for source_type, pair, position in plan.candidates:
                key = (source_type, pair)
                if key not in sources:
                    sources[key] = self._source(blob_id, source_type, pair, n)
                source = sources[key]
                if source is None:
                    last_error = api_errors.SliverNotFoundError()
                    continue
                symbols.append(source.symbol_for(position))
                break
        if not symbols:
            raise last_error
        return symbols

    def _source(
        self, blob_id: BlobId, source_type: SliverType, pair: SliverPairIndex, n: int
    ) -> SymbolSource | None:
        shard = shard_of_pair(pair, blob_id.raw, n)
        raw = self._service.storage.store.get_sliver(shard, source_type, blob_id.raw)
        if raw is None:
            return None
        return SymbolSource(SliverData.from_bcs(raw, source_type), n)

    async def decoding_symbols(self, blob_id: BlobId, query: DecodingSymbolsQuery) -> bytes:
        """BCS map target index -> source symbols (no proofs) from owned shards' slivers."""
        self._check_not_withheld(blob_id)
        state = self._service.state
        n = state.n_shards
        params = EncodingParams(n)
        limit = (
            params.n_primary_source_symbols
            if query.target_type is SliverType.PRIMARY
            else params.n_secondary_source_symbols
        )
        for target in query.target_slivers:
            if target >= limit:
                raise api_errors.RecoverySymbolOutOfRangeError(
                    f"target sliver index {target} is not a source sliver (< {limit}) of "
                    f"type {query.target_type.value}"
                )
        await self._service.require_registered(blob_id, api_errors.SliverNotFoundError)
        source_type = query.target_type.orthogonal
        owned = sorted(state.view.readable_shards)

        def extract() -> dict[int, list[DecodingSymbol]]:
            output: dict[int, list[DecodingSymbol]] = {}
            for shard in owned:
                raw = self._service.storage.store.get_sliver(shard, source_type, blob_id.raw)
                if raw is None:
                    continue
                sliver = SliverData.from_bcs(raw, source_type)
                symbols = sliver.symbols
                for target in dict.fromkeys(query.target_slivers):
                    output.setdefault(target, []).append(
                        DecodingSymbol(query.target_type, sliver.index, symbols[target])
                    )
            return output

        return decoding_symbols_to_bcs(await asyncio.to_thread(extract))

    async def inconsistency_proof(
        self, blob_id: BlobId, target_type: SliverType, body: bytes
    ) -> SignedMessage:
        """Check a proof that the blob is inconsistent and sign INVALID_BLOB_ID for it."""
        try:
            proof = InconsistencyProof.from_bcs(body, target_type)
        except (DecodeError, ValueError) as exc:
            raise api_errors.InvalidContentTypeError(f"invalid inconsistency proof: {exc}") from exc
        service = self._service
        await service.require_registered(blob_id, api_errors.MissingMetadataError)
        metadata = await service.storage.metadata(blob_id)
        if metadata is None:
            raise api_errors.MissingMetadataError()
        try:
            await asyncio.to_thread(proof.verify, metadata)
        except (InvalidInputError, NotEnoughSymbolsError) as exc:
            raise api_errors.InvalidProofError(str(exc)) from exc
        return await service.sign(InvalidBlobIdMessage(service.state.epoch, blob_id.raw))

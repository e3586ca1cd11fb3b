"""The two systematic 1-D Reed-Solomon codes of RS2 (spec/encoding.md section 4).

Theory of operation: both codes map k source symbols to a codeword of n symbols whose first k
are the sources unchanged and whose last n-k are reed-solomon-simd's recovery shards, in order.
The primary code has k = p (it extends columns and secondary slivers), the secondary code k = s
(it extends rows and primary slivers). Any k distinct codeword symbols give back the k sources.
reed-solomon-leopard 0.2.1 calls exactly reed-solomon-simd's `ReedSolomonEncoder`, which is what
makes our bytes Walrus's bytes; it takes only `bytes` and does not release the GIL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import reed_solomon_leopard

from walruspy.core.errors import NotEnoughSymbolsError


def split_symbols(data: bytes, symbol_size: int) -> list[bytes]:
    """Cut `data` (a whole number of symbols) into symbols."""
    assert len(data) % symbol_size == 0, "data is not a whole number of symbols"
    return [data[k : k + symbol_size] for k in range(0, len(data), symbol_size)]


def repair_symbols(source: Sequence[bytes], n: int) -> list[bytes]:
    """The n - k repair symbols of the codeword of `source` (k = len(source))."""
    result: list[bytes] = reed_solomon_leopard.encode(list(source), n - len(source))
    return result


def expand(source: Sequence[bytes], n: int) -> list[bytes]:
    """The whole codeword of `source`: the sources, then the n - k repair symbols."""
    return [*source, *repair_symbols(source, n)]


def decode_source(k: int, n: int, symbols: Mapping[int, bytes]) -> list[bytes]:
    """The k source symbols of a codeword from at least k of its symbols, by codeword index.

    Only the k lowest indices given are used, so the result does not depend on extra symbols.
    """
    if len(symbols) < k:
        raise NotEnoughSymbolsError(f"need {k} distinct symbols to decode, got {len(symbols)}")
    chosen = sorted(symbols)[:k]
    originals = {i: symbols[i] for i in chosen if i < k}
    if len(originals) == k:
        return [originals[i] for i in range(k)]
    recovery = {i - k: symbols[i] for i in chosen if i >= k}
    restored: dict[int, bytes] = reed_solomon_leopard.decode(k, n - k, originals, recovery)
    return [originals[i] if i in originals else restored[i] for i in range(k)]

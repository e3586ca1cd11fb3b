"""The two systematic 1-D Reed-Solomon codes of RS2 (spec/encoding.md section 4).

Theory of operation: both codes map k source symbols to a codeword of n symbols whose first k
are the sources unchanged and whose last n-k are reed-solomon-simd's recovery shards, in order.
The primary code has k = p (it extends columns and secondary slivers), the secondary code k = s
(it extends rows and primary slivers). Any k distinct codeword symbols give back the k sources.
reed-solomon-leopard 0.2.1 calls exactly reed-solomon-simd's `ReedSolomonEncoder`, which is what
makes our bytes Walrus's bytes; it takes only `bytes` and does not release the GIL.

Many codewords in one call (`repair_block`, `decode_block`). The codes are linear over GF(2^16)
and act on each element position of the shards alike, so C codewords of the same code (the rows
of a blob, a reader's slivers) are one codeword whose shards hold all C symbols. The symbols
must keep their elements, though: reed-solomon-simd reads a shard in 64-byte chunks, the low
bytes of 32 elements then their high bytes, and the t bytes after the last whole chunk as t/2
low bytes then t/2 high bytes. A block's short symbols are therefore cut into their elements
and the elements packed, 32 to a chunk, into the shards; a longer symbol keeps its whole chunks
and its tail is padded to one (a plain concatenation when the symbol size is a multiple of 64);
the results are unpacked the same way. One call instead of C saves C - 1
calls, the C x k small `bytes` objects, and, for symbols shorter than 64 bytes, the padding of
every shard to a whole chunk (a 2-byte symbol is computed as 64): at n = 1000 a 1 KiB blob's
1334 codewords took 0.19 s one by one. Tests check the blocks against the one-by-one calls.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
import reed_solomon_leopard

from walruspy.core.errors import NotEnoughSymbolsError

U8Array = npt.NDArray[np.uint8]
#: reed-solomon-simd's shard chunk: the low bytes of 32 GF(2^16) elements, then their high bytes.
CHUNK_BYTES = 64
_CHUNK_ELEMENTS = CHUNK_BYTES // 2
#: Source bytes per call of `repair_block` and `decode_block` (bounds the packed copies).
BLOCK_CALL_BYTES = 8 << 20


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


def _pack(block: U8Array) -> U8Array:
    """(k, C, ss) symbols -> k shards holding the elements of all C symbols.

    A symbol of whole chunks is its own layout. A short one (under 64 bytes) is its low bytes
    then its high bytes: each half goes to a dense stream, 32 elements to a chunk. A longer one
    keeps its whole chunks and pads its tail to a chunk, low bytes first, high bytes from the
    middle: the padding elements are computed and dropped, which costs less than re-cutting
    every symbol."""
    k, count, symbol_size = block.shape
    whole, tail = divmod(symbol_size, CHUNK_BYTES)
    if tail == 0:
        return np.ascontiguousarray(block).reshape(k, count * symbol_size)
    half = tail // 2
    if whole == 0:
        elements = count * half
        chunks = -(-elements // _CHUNK_ELEMENTS)
        streams = np.zeros((k, 2, chunks * _CHUNK_ELEMENTS), dtype=np.uint8)
        streams[:, 0, :elements] = block[:, :, :half].reshape(k, elements)
        streams[:, 1, :elements] = block[:, :, half:].reshape(k, elements)
        chunked = streams.reshape(k, 2, chunks, _CHUNK_ELEMENTS).transpose(0, 2, 1, 3)
        return chunked.reshape(k, chunks * CHUNK_BYTES)
    body = whole * CHUNK_BYTES
    padded = np.zeros((k, count, body + CHUNK_BYTES), dtype=np.uint8)
    padded[:, :, :body] = block[:, :, :body]
    padded[:, :, body : body + half] = block[:, :, body : body + half]
    padded[:, :, body + _CHUNK_ELEMENTS : body + _CHUNK_ELEMENTS + half] = block[
        :, :, body + half :
    ]
    return padded.reshape(k, -1)


def _unpack(shards: U8Array, count: int, symbol_size: int) -> U8Array:
    """The inverse of `_pack`: (m, shard bytes) -> (m, C, ss)."""
    m = shards.shape[0]
    whole, tail = divmod(symbol_size, CHUNK_BYTES)
    if tail == 0:
        return shards.reshape(m, count, symbol_size)
    half = tail // 2
    block = np.empty((m, count, symbol_size), dtype=np.uint8)
    if whole == 0:
        chunked = shards.reshape(m, -1, 2, _CHUNK_ELEMENTS).transpose(0, 2, 1, 3)
        streams = chunked.reshape(m, 2, -1)[:, :, : count * half]
        block[:, :, :half] = streams[:, 0].reshape(m, count, half)
        block[:, :, half:] = streams[:, 1].reshape(m, count, half)
        return block
    body = whole * CHUNK_BYTES
    padded = shards.reshape(m, count, body + CHUNK_BYTES)
    block[:, :, :body] = padded[:, :, :body]
    block[:, :, body : body + half] = padded[:, :, body : body + half]
    block[:, :, body + half :] = padded[
        :, :, body + _CHUNK_ELEMENTS : body + _CHUNK_ELEMENTS + half
    ]
    return block


def _column_ranges(k: int, count: int, symbol_size: int) -> list[range]:
    step = max(1, BLOCK_CALL_BYTES // max(1, k * symbol_size))
    return [range(start, min(start + step, count)) for start in range(0, count, step)]


def repair_block(source: U8Array, n: int) -> U8Array:
    """The repair symbols of C codewords at once: `source` (k, C, ss), symbol i of codeword c
    at [i, c], gives (n - k, C, ss), as `repair_symbols` gives them codeword by codeword."""
    k, count, symbol_size = source.shape
    repair = np.empty((n - k, count, symbol_size), dtype=np.uint8)
    for columns in _column_ranges(k, count, symbol_size):
        shards = _pack(source[:, columns.start : columns.stop])
        result = reed_solomon_leopard.encode([shard.tobytes() for shard in shards], n - k)
        packed = np.frombuffer(b"".join(result), dtype=np.uint8).reshape(n - k, -1)
        repair[:, columns.start : columns.stop] = _unpack(packed, len(columns), symbol_size)
    return repair


def decode_block(k: int, n: int, symbols: Mapping[int, U8Array]) -> U8Array:
    """The k source symbols of C codewords at once from at least k of their codeword indices,
    each giving its C symbols as a (C, ss) array: (k, C, ss), as `decode_source` gives them.

    Only the k lowest indices given are used."""
    if len(symbols) < k:
        raise NotEnoughSymbolsError(f"need {k} distinct symbols to decode, got {len(symbols)}")
    chosen = sorted(symbols)[:k]
    count, symbol_size = symbols[chosen[0]].shape
    given = np.stack([symbols[i] for i in chosen])
    source = np.empty((k, count, symbol_size), dtype=np.uint8)
    present = [row for row, i in enumerate(chosen) if i < k]
    source[[chosen[row] for row in present]] = given[present]
    missing = [i for i in range(k) if i not in set(chosen)]
    if not missing:
        return source
    for columns in _column_ranges(k, count, symbol_size):
        shards = _pack(given[:, columns.start : columns.stop])
        originals = {i: shards[row].tobytes() for row, i in enumerate(chosen) if i < k}
        recovery = {i - k: shards[row].tobytes() for row, i in enumerate(chosen) if i >= k}
        restored: dict[int, bytes] = reed_solomon_leopard.decode(k, n - k, originals, recovery)
        packed = np.frombuffer(b"".join(restored[i] for i in missing), dtype=np.uint8)
        decoded = _unpack(packed.reshape(len(missing), -1), len(columns), symbol_size)
        source[missing, columns.start : columns.stop] = decoded
    return source

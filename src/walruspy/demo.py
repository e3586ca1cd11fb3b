"""`make demo`: the main job of walruspy on this machine.

For now (until the local network lands) it encodes a sample blob with Red Stuff on every core and
prints its blob ID, sliver sizes and encoding time, then decodes it back from a third of the
slivers and recovers one lost sliver from its peers' symbols, checking both.
"""

from __future__ import annotations

import hashlib
import time

from walruspy.core.decoding import decode_blob
from walruspy.core.encoding import EncodedBlob
from walruspy.core.params import EncodingParams
from walruspy.core.recovery import recover_sliver
from walruspy.core.symbols import SymbolSource
from walruspy.core.types import SliverIndex, SliverType
from walruspy.workers import default_pool

N_SHARDS = 100
BLOB_BYTES = 16 << 20


def sample_blob(size: int) -> bytes:
    """Deterministic, incompressible-looking sample data."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.blake2b(counter.to_bytes(8, "little"), digest_size=64).digest()
        counter += 1
    return bytes(out[:size])


def main() -> None:
    """Encode, decode and recover a sample blob, printing what happens."""
    blob = sample_blob(BLOB_BYTES)
    params = EncodingParams(N_SHARDS)
    pool = default_pool()
    start = time.perf_counter()
    encoded: EncodedBlob = pool.encode(blob, N_SHARDS)
    took = time.perf_counter() - start
    metadata = encoded.metadata
    print(
        f"Encoded {len(blob) / 2**20:.0f} MiB for {N_SHARDS} shards in {took:.2f} s "
        f"({len(blob) / 1e6 / took:.0f} MB/s, {pool.workers + 1} processes)"
    )
    print(f"Blob ID:            {metadata.blob_id}")
    print(f"Symbol size:        {metadata.symbol_size} bytes")
    print(
        f"Primary sliver:     {params.primary_sliver_length(metadata.symbol_size)} bytes "
        f"x {N_SHARDS}"
    )
    print(
        f"Secondary sliver:   {params.secondary_sliver_length(metadata.symbol_size)} bytes "
        f"x {N_SHARDS}"
    )
    print(f"Encoded length:     {params.encoded_length(len(blob))} bytes (charged on chain)")

    p = params.n_primary_source_symbols
    repair = [encoded.primary_sliver(i).verify(metadata) for i in range(N_SHARDS - p, N_SHARDS)]
    start = time.perf_counter()
    assert decode_blob(metadata, repair) == blob
    print(
        f"Decoded from the last {p} primary slivers only in {time.perf_counter() - start:.2f} s: "
        "identical"
    )

    target = SliverIndex(7)
    helpers = range(params.n_secondary_source_symbols)
    symbols = [
        SymbolSource(encoded.secondary_sliver(j), N_SHARDS)
        .symbol_for(target)
        .verify(metadata, target, SliverType.PRIMARY)
        for j in helpers
    ]
    recovered = recover_sliver(metadata, SliverType.PRIMARY, target, symbols)
    assert not hasattr(recovered, "symbols") and recovered.sliver == encoded.primary_sliver(7)
    print(f"Recovered primary sliver 7 from {len(symbols)} peers' symbols: identical")


if __name__ == "__main__":
    main()

"""Encoding, decoding and recovery throughput of RS2, with the Reed-Solomon share alongside.

For each blob size and shard count it prints:
- encode MB/s of input (every core, `walruspy.workers`), and single-core encode for reference;
- the time the same 2-D layout spends inside reed-solomon-leopard alone (p row encodes and n
  column encodes, run in this process in the same run) and encode time / RS time;
- decode MB/s from the last p primary slivers (so real RS decoding happens), with the Default check;
- recovery of one primary sliver from s peers' symbols (proof checks included);
- peak RSS growth during the parallel encode, as a multiple of the blob size.

Targets (issue): 64 MiB at n=1000 >= 25 MB/s, at n=100 >= 100 MB/s; peak memory < 6x the blob.
Usage: python bench/encode.py [--sizes 1,16,64] [--shards 100,1000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from functools import partial
from pathlib import Path

import reed_solomon_leopard

from walruspy.core.decoding import decode_blob
from walruspy.core.encoding import EncodedBlob, EncodingLayout, encode_blob
from walruspy.core.recovery import recover_sliver
from walruspy.core.symbols import SymbolSource
from walruspy.core.types import SliverIndex, SliverType
from walruspy.workers import EncoderPool

MIB = 1 << 20
_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * _PAGE


class PeakRss:
    """Samples this process's RSS every millisecond while active."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(0.001)

    def __enter__(self) -> PeakRss:
        self.base = rss_bytes()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


def rs_only_seconds(blob: bytes, n: int) -> float:
    """The RS calls of the 2-D encoding of `blob`, alone: p row encodes, then n column encodes."""
    layout = EncodingLayout.for_blob(n, len(blob))
    p, s, ss = layout.p, layout.s, layout.symbol_size
    padded = blob + bytes(p * s * ss - len(blob))
    rows = [[padded[(r * s + c) * ss : (r * s + c + 1) * ss] for c in range(s)] for r in range(p)]
    columns = [[rows[r][c] for r in range(p)] for c in range(s)]
    start = time.perf_counter()
    repairs = [reed_solomon_leopard.encode(row, n - s) for row in rows]
    columns += [[repairs[r][c] for r in range(p)] for c in range(n - s)]
    for column in columns:
        reed_solomon_leopard.encode(column, n - p)
    return time.perf_counter() - start


def recover_one(encoded: EncodedBlob, target: SliverIndex) -> object:
    """Recover primary sliver `target` from the symbols of the first s secondary slivers."""
    metadata = encoded.metadata
    n = metadata.n_shards
    symbols = [
        SymbolSource(encoded.secondary_sliver(j), n)
        .symbol_for(target)
        .verify(metadata, target, SliverType.PRIMARY)
        for j in range(metadata.params.n_secondary_source_symbols)
    ]
    return recover_sliver(metadata, SliverType.PRIMARY, target, symbols)


def timed(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        result = None  # free the previous run's output before the next one is measured
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,16,64", help="blob sizes in MiB")
    parser.add_argument("--shards", default="100,1000", help="shard counts")
    parser.add_argument("--repeat", type=int, default=2, help="runs per figure (median)")
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    shard_counts = [int(x) for x in args.shards.split(",")]
    pool = EncoderPool()
    pool.encode(os.urandom(MIB), 100)  # start the workers before timing
    print(f"cores: {os.cpu_count()}  encoder processes: {pool.workers + 1}")
    header = (
        f"{'blob':>6} {'n':>5} | {'encode':>9} {'1-core':>9} | {'RS only':>8} {'enc/RS':>7}"
        f" | {'decode':>9} | {'recover 1':>10} | {'peak mem':>8}"
    )
    print(header)
    print("-" * len(header))
    for n in shard_counts:
        for size_mib in sizes:
            blob = os.urandom(size_mib * MIB)
            mb = len(blob) / 1e6
            with PeakRss() as memory:
                enc_s, encoded = timed(partial(pool.encode, blob, n), args.repeat)
            one_s, _ = timed(partial(encode_blob, blob, n), 1)
            rs_s = min(rs_only_seconds(blob, n) for _ in range(args.repeat))
            metadata = encoded.metadata
            p = metadata.params.n_primary_source_symbols
            repair = [encoded.primary_sliver(i).verify(metadata) for i in range(n - p, n)]
            dec_s, decoded = timed(partial(decode_blob, metadata, repair), args.repeat)
            assert decoded == blob
            # Serving the symbols (expanding each helper's sliver) is the helpers' work; it is
            # timed with the receiver's verification and decoding, as the network spends it.
            rec_s, _ = timed(partial(recover_one, encoded, SliverIndex(n // 2)), 1)
            peak = (memory.peak - memory.base) / len(blob)
            print(
                f"{size_mib:>4}Mi {n:>5} | {mb / enc_s:>6.1f}MB/s {mb / one_s:>6.1f}MB/s |"
                f" {rs_s:>7.2f}s {enc_s / rs_s:>6.1f}x | {mb / dec_s:>6.1f}MB/s |"
                f" {rec_s:>9.2f}s | {peak:>7.2f}x"
            )
            del encoded, repair, decoded
    pool.close()


if __name__ == "__main__":
    main()

"""End-to-end store and read on a real devnet, as the Walrus paper measures them (section 7).

For each devnet (by default 10 nodes and 4 nodes, 100 shards each; every node, the devchain and
the daemon a process of its own on this machine) and each blob size (1 KiB, 1 MiB, 16 MiB,
100 MiB), stores `--reps` fresh blobs of random bytes with the client library and reads each
back, then prints the median latency and the throughput it gives, and the median of each phase
of a store as the client times it (`StoreResult.phase_s`): encode, status (is it already
certified?), register (reserve and register on chain), upload (until a quorum of confirmations)
and certify (the certificate on chain). The store's latency also holds the bounded extra time
the client keeps uploading to slower nodes after the quorum. The baseline, measured in this
process on a blob of the same size, is encoding alone with the client's encoder pool: a store
can be no faster.

Targets of the issue: a 1 KiB store under 1 s, a 1 MiB read under 0.1 s, 100 MiB stored at
25 MB/s or more and read at 70 MB/s or more (MB = 10^6 bytes).

Usage: python bench/e2e.py [--nodes 10,4] [--sizes 1KiB,1MiB,16MiB,100MiB] [--reps 5] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import structlog

from walruspy.client import open_client
from walruspy.devnet import open_devnet
from walruspy.workers import EncoderPool

SIZES = {"1KiB": 1 << 10, "1MiB": 1 << 20, "16MiB": 16 << 20, "100MiB": 100 << 20}
PHASES = ("encode", "status", "register", "upload", "certify")
N_SHARDS = 100
EPOCH_S = 3600  # no epoch ends during a run


@dataclass
class Row:
    """The figures of one blob size on one devnet."""

    nodes: int
    size: str
    size_bytes: int
    store_s: list[float] = field(default_factory=list)
    read_s: list[float] = field(default_factory=list)
    phases_s: dict[str, list[float]] = field(default_factory=dict)
    encode_only_s: float = 0.0

    @property
    def store_p50(self) -> float:
        return statistics.median(self.store_s)

    @property
    def read_p50(self) -> float:
        return statistics.median(self.read_s)

    def mbps(self, seconds: float) -> float:
        return self.size_bytes / seconds / 1e6

    def phase_p50(self, phase: str) -> float:
        values = self.phases_s.get(phase, [])
        return statistics.median(values) if values else float("nan")

    def summary(self) -> dict[str, object]:
        return {
            **asdict(self),
            "store_p50_s": self.store_p50,
            "read_p50_s": self.read_p50,
            "store_mbps": self.mbps(self.store_p50),
            "read_mbps": self.mbps(self.read_p50),
            "phase_p50_s": {phase: self.phase_p50(phase) for phase in PHASES},
        }


def encode_baseline(size: int) -> float:
    """Seconds to encode a blob of `size` with the client's encoder pool, in this process."""
    pool = EncoderPool(None)
    try:
        data = os.urandom(size)
        pool.encode(data, N_SHARDS)  # warm the workers
        start = time.perf_counter()
        pool.encode(data, N_SHARDS)
        return time.perf_counter() - start
    finally:
        pool.close()


async def bench_devnet(n_nodes: int, sizes: list[str], reps: int, work: Path) -> list[Row]:
    started = time.monotonic()
    async with open_devnet(work / f"devnet{n_nodes}", n_nodes, N_SHARDS, EPOCH_S) as devnet:
        print(f"\n{n_nodes} nodes, {N_SHARDS} shards: devnet ready in "
              f"{time.monotonic() - started:.1f} s", flush=True)  # fmt: skip
        rows = []
        async with open_client(devnet.client_config()) as client:
            await client.store(os.urandom(1024), 1)  # warm: encoder workers, connections
            for name in sizes:
                row = Row(n_nodes, name, SIZES[name])
                for _ in range(reps):
                    data = os.urandom(row.size_bytes)
                    start = time.perf_counter()
                    result = await client.store(data, 1, deletable=False, ignore_resources=True)
                    row.store_s.append(time.perf_counter() - start)
                    for phase in PHASES:
                        row.phases_s.setdefault(phase, []).append(result.phase_s.get(phase, 0.0))
                    start = time.perf_counter()
                    back = await client.read(result.blob_id)
                    row.read_s.append(time.perf_counter() - start)
                    assert back == data, "a blob read back differs from the one stored"
                    del data, back
                row.encode_only_s = await asyncio.to_thread(encode_baseline, row.size_bytes)
                print_row(row)
                rows.append(row)
    return rows


def print_header() -> None:
    print(f"{'size':>7} | {'store p50':>9} {'MB/s':>6} | {'encode':>6} {'status':>6} "
          f"{'register':>8} {'upload':>6} {'certify':>7} | {'read p50':>8} {'MB/s':>6} | "
          f"{'encode-only':>11} {'store/enc':>9}")  # fmt: skip


def print_row(row: Row) -> None:
    phases = [row.phase_p50(phase) for phase in PHASES]
    print(f"{row.size:>7} | {row.store_p50:8.3f}s {row.mbps(row.store_p50):6.1f} | "
          f"{phases[0]:6.3f} {phases[1]:6.3f} {phases[2]:8.3f} {phases[3]:6.3f} {phases[4]:7.3f} | "
          f"{row.read_p50:7.3f}s {row.mbps(row.read_p50):6.1f} | {row.encode_only_s:10.3f}s "
          f"{row.store_p50 / row.encode_only_s:8.1f}x", flush=True)  # fmt: skip


def check_targets(rows: list[Row]) -> list[str]:
    lines = []
    for row in rows:
        where = f"{row.nodes} nodes"
        if row.size == "1KiB":
            ok = row.store_p50 < 1.0
            lines.append(f"{where}: store 1 KiB {row.store_p50:.3f} s (< 1 s): {_ok(ok)}")
        if row.size == "1MiB":
            ok = row.read_p50 < 0.1
            lines.append(f"{where}: read 1 MiB {row.read_p50:.3f} s (< 0.1 s): {_ok(ok)}")
        if row.size == "100MiB":
            store, read = row.mbps(row.store_p50), row.mbps(row.read_p50)
            lines.append(f"{where}: store 100 MiB {store:.1f} MB/s (>= 25): {_ok(store >= 25)}")
            lines.append(f"{where}: read 100 MiB {read:.1f} MB/s (>= 70): {_ok(read >= 70)}")
    return lines


def _ok(ok: bool) -> str:
    return "met" if ok else "MISSED"


async def main(args: argparse.Namespace) -> None:
    sizes = args.sizes.split(",")
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        sys.exit(f"unknown sizes {unknown}: choose from {', '.join(SIZES)}")
    print(f"bench/e2e.py: {args.reps} blobs per size, medians; MB = 10^6 bytes; "
          f"{os.cpu_count()} cores", flush=True)  # fmt: skip
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="walruspy-e2e-") as tmp:
        for n_nodes in (int(n) for n in args.nodes.split(",")):
            print_header()
            rows += await bench_devnet(n_nodes, sizes, args.reps, Path(tmp))
    print("\nTargets:")
    for line in check_targets(rows):
        print(f"  {line}")
    if args.json:
        print(json.dumps([row.summary() for row in rows]))


if __name__ == "__main__":
    # The client logs each store at debug level: keep the table readable.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", default="10,4", help="devnet sizes, comma-separated")
    parser.add_argument("--sizes", default=",".join(SIZES), help="blob sizes, comma-separated")
    parser.add_argument("--reps", type=int, default=5, help="blobs per size")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    asyncio.run(main(parser.parse_args()))

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
can be no faster. "node CPU/blob" is the CPU time all node processes spent per blob, its store
and its read together (from /proc: what the nodes cost the machine, whatever the latency).

Targets of the issues: 1 KiB and 1 MiB stores under 0.1 s, a 1 MiB read under 0.1 s, 100 MiB
stored at 25 MB/s or more and read at 70 MB/s or more (MB = 10^6 bytes); at Walrus's real shard
count (1000) a 1 KiB store under 1 s and a 1 MiB read under 0.2 s.

Range reads (`--range-nodes`, default 4; 0 skips them): on a devnet of `RANGE_N_SHARDS` shards
(a 256 MiB blob needs more than 100: at most p * s * 65534 bytes), stores one blob of
`--range-blob` random bytes and reads, `--reps` times each, 1 MiB from its middle
(`WalrusClient.read_range`) and the whole blob, in memory (`read`, the baseline) and streamed
source row by source row (`BlobReader.chunks`, what `read --out` and the aggregator do). For
each it prints the median time and the sliver bytes fetched: the range's rows as the reader
counts them; for the whole read, the n-2f primary slivers it decodes from (a lower bound: it
may fetch a few more in flight).

Quilts (`--quilt-nodes`, default 0: skipped; `bench/e2e_quilt.py`): `--quilt-files` files of
`--quilt-file-size` bytes (600 of 10 KiB, Walrus's measurement) stored as one quilt against as
separate blobs, on a devnet of 1000 shards: time and WAL cost of each, and one patch's read.

Separate hosts (`--hosts`, needs root): each devnet runs twice, first on loopback, then with
every node, the chain, the daemon and this client on hosts of their own (`walruspy devnet up
--hosts`), their links shaped by `--latency` (one way), `--jitter`, `--loss` and `--bandwidth`
(each host's link, each way). The Walrus paper measured a write latency under 25 s and a read
under 15 s on its 105-node testnet; the phases say where the time goes. This process moves
into the client host for that run (and stays there; the loopback runs come first).

Curves (`--plot DIR`, `bench/e2e_plot.py`, needs `pip install -e '.[bench]'`): instead of the
table, sweeps blob size (1 KiB to 1 GiB), shard count, node count and concurrent clients, and
draws latency, throughput and peak memory as PNG files into DIR, with the figures in
DIR/e2e_plot.json; `--plot-from FILE` redraws them from such a file.

Usage: python bench/e2e.py [--nodes 10,4] [--shards 100] [--sizes 1KiB,1MiB,16MiB,100MiB]
       [--reps 5] [--range-nodes 4] [--range-blob 256MiB] [--quilt-nodes 0] [--quilt-files 600]
       [--quilt-file-size 10240] [--quilt-separate 600] [--quilt-shards 1000] [--json]
       [--hosts [--latency 80ms] [--jitter 0ms] [--loss 0%] [--bandwidth 100mbit]]
       python bench/e2e.py --plot DIR [--plot-sizes ...] [--plot-shards 100,300,1000]
       [--plot-nodes 4,10,20] [--plot-clients 1,2,4,8,16,32] [--reps 3]
       python bench/e2e.py --plot-from DIR/e2e_plot.json
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

from e2e_quilt import QuiltRow, bench_quilt
from walruspy.client import WalrusClient, open_client
from walruspy.core.params import EncodingParams
from walruspy.devnet import open_devnet
from walruspy.devnet.hosts import LinkShape, parse_bandwidth, parse_delay_s, parse_loss
from walruspy.workers import EncoderPool

SIZES = {"1KiB": 1 << 10, "1MiB": 1 << 20, "16MiB": 16 << 20, "100MiB": 100 << 20}
RANGE_BLOB_SIZES = {"16MiB": 16 << 20, "64MiB": 64 << 20, "256MiB": 256 << 20}
#: Shards of the range devnet: 200 shards hold blobs up to 597 MB (p = 68, s = 134).
RANGE_N_SHARDS = 200
RANGE_BYTES = 1 << 20
PHASES = ("encode", "status", "register", "upload", "certify")
N_SHARDS = 100
EPOCH_S = 3600  # no epoch ends during a run


@dataclass
class Row:
    """The figures of one blob size on one devnet."""

    nodes: int
    size: str
    size_bytes: int
    shards: int = 100
    #: "loopback", or "hosts" (a `--hosts` devnet).
    where: str = "loopback"
    store_s: list[float] = field(default_factory=list)
    read_s: list[float] = field(default_factory=list)
    #: CPU seconds of all node processes per blob, its store and its read together.
    node_cpu_s: float = 0.0
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


def encode_baseline(size: int, n_shards: int) -> float:
    """Seconds to encode a blob of `size` with the client's encoder pool, in this process."""
    pool = EncoderPool(None)
    try:
        data = os.urandom(size)
        pool.encode(data, n_shards)  # warm the workers
        start = time.perf_counter()
        pool.encode(data, n_shards)
        return time.perf_counter() - start
    finally:
        pool.close()


async def bench_devnet(
    n_nodes: int,
    sizes: list[str],
    reps: int,
    work: Path,
    shape: LinkShape | None = None,
    n_shards: int = N_SHARDS,
) -> list[Row]:
    started = time.monotonic()
    where = "loopback" if shape is None else "hosts"
    async with open_devnet(
        work / f"devnet{n_nodes}x{n_shards}-{where}", n_nodes, n_shards, EPOCH_S, hosts=shape
    ) as devnet:
        links = (
            ""
            if shape is None
            else (
                f" on separate hosts, links {shape.latency_s * 1000:g} ms one way ± "
                f"{shape.jitter_s * 1000:g} ms, {shape.loss:.2%} loss, "
                f"{shape.bandwidth_bps / 1e6:g} Mbit/s"
            )
        )
        print(f"\n{n_nodes} nodes, {n_shards} shards{links or ' on loopback'}: devnet ready in "
              f"{time.monotonic() - started:.1f} s", flush=True)  # fmt: skip
        print_header()
        async with open_client(devnet.client_config()) as client:
            # Warm the connections, and the encoder workers (a 1 KiB blob is encoded inline).
            await client.store(os.urandom(1024), 1, deletable=False)
            await client.store(os.urandom(1 << 20), 1, deletable=False)
            node_pids = [node.pid for node in devnet.nodes if node.pid is not None]
            return await measure_rows(client, node_pids, sizes, reps, n_nodes, n_shards, where)


async def measure_rows(
    client: WalrusClient,
    node_pids: list[int],
    sizes: list[str],
    reps: int,
    n_nodes: int,
    n_shards: int,
    where: str = "loopback",
) -> list[Row]:
    """Store and read `reps` blobs of each size with `client`, printing a row per size."""
    rows = []
    for name in sizes:
        row = Row(n_nodes, name, size_bytes(name), n_shards, where)
        cpu_before = processes_cpu_s(node_pids)
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
        row.node_cpu_s = (processes_cpu_s(node_pids) - cpu_before) / reps
        row.encode_only_s = await asyncio.to_thread(encode_baseline, row.size_bytes, n_shards)
        print_row(row)
        rows.append(row)
    return rows


def size_bytes(name: str) -> int:
    """Bytes of a size written as in `SIZES`: a whole number and B, KiB, MiB or GiB."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10), ("B", 0)):
        if name.endswith(unit) and name.removesuffix(unit).isdigit():
            return int(name.removesuffix(unit)) << shift
    raise ValueError(f"size {name!r}: expected a whole number and B, KiB, MiB or GiB, as 16MiB")


@dataclass
class RangeRow:
    """A part of one blob against all of it: median seconds and sliver bytes fetched."""

    nodes: int
    blob_bytes: int
    range_s: list[float] = field(default_factory=list)
    range_sliver_bytes: int = 0
    whole_s: list[float] = field(default_factory=list)
    whole_sliver_bytes: int = 0
    stream_s: list[float] = field(default_factory=list)
    stream_sliver_bytes: int = 0

    def summary(self) -> dict[str, object]:
        medians = {
            f"{name}_p50_s": statistics.median(getattr(self, f"{name}_s"))
            for name in ("range", "whole", "stream")
        }
        return {**asdict(self), **medians}


async def bench_range(n_nodes: int, blob_name: str, reps: int, work: Path) -> RangeRow:
    size = RANGE_BLOB_SIZES[blob_name]
    params = EncodingParams(RANGE_N_SHARDS)
    row = RangeRow(n_nodes, size)
    async with (
        open_devnet(work / f"range{n_nodes}", n_nodes, RANGE_N_SHARDS, EPOCH_S) as devnet,
        open_client(devnet.client_config()) as client,
    ):
        data = os.urandom(size)
        start = time.perf_counter()
        blob_id = (await client.store(data, 1, deletable=False, ignore_resources=True)).blob_id
        print(f"\nrange reads: {n_nodes} nodes, {RANGE_N_SHARDS} shards, a {blob_name} blob "
              f"stored in {time.perf_counter() - start:.1f} s", flush=True)  # fmt: skip
        middle = size // 2 - RANGE_BYTES // 2
        for _ in range(reps):
            start = time.perf_counter()
            part = await client.read_range(blob_id, (middle, RANGE_BYTES))
            row.range_s.append(time.perf_counter() - start)
            assert part.data == data[middle : middle + RANGE_BYTES], "a range read back differs"
            row.range_sliver_bytes = part.sliver_bytes
            start = time.perf_counter()
            whole = await client.read(blob_id)
            row.whole_s.append(time.perf_counter() - start)
            assert whole == data, "a blob read back differs"
            del whole
            start = time.perf_counter()
            reader = await client.locate(blob_id)
            streamed = 0
            async for chunk in reader.chunks():
                streamed += len(chunk)
            row.stream_s.append(time.perf_counter() - start)
            assert streamed == size
            row.stream_sliver_bytes = reader.sliver_bytes_read
        symbol_size = params.symbol_size(size)
        row.whole_sliver_bytes = params.n_primary_source_symbols * params.primary_sliver_length(
            symbol_size
        )
    print_range_row(row, blob_name)
    return row


def print_range_row(row: RangeRow, blob_name: str) -> None:
    def line(what: str, seconds: list[float], size: int, sliver_bytes: int) -> str:
        p50 = statistics.median(seconds)
        return (f"  {what:<30} {p50:8.3f} s {size / p50 / 1e6:8.1f} MB/s "
                f"{sliver_bytes / 1e6:9.2f} MB of slivers")  # fmt: skip

    print(line("1 MiB from the middle", row.range_s, RANGE_BYTES, row.range_sliver_bytes))
    print(
        line(f"whole {blob_name}, in memory", row.whole_s, row.blob_bytes, row.whole_sliver_bytes)
    )
    print(
        line(f"whole {blob_name}, streamed", row.stream_s, row.blob_bytes, row.stream_sliver_bytes)
    )
    time_ratio = statistics.median(row.range_s) / statistics.median(row.whole_s)
    bytes_ratio = row.range_sliver_bytes / row.whole_sliver_bytes
    print(f"  range / whole read: {time_ratio:.4f} of the time, {bytes_ratio:.4f} of the bytes",
          flush=True)  # fmt: skip


def processes_cpu_s(pids: list[int]) -> float:
    """User and system CPU seconds the processes used so far (Linux /proc; 0 elsewhere)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def print_header() -> None:
    print(f"{'size':>7} | {'store p50':>9} {'MB/s':>6} | {'encode':>6} {'status':>6} "
          f"{'register':>8} {'upload':>6} {'certify':>7} | {'read p50':>8} {'MB/s':>6} | "
          f"{'encode-only':>11} {'store/enc':>9} | {'node CPU/blob':>13}")  # fmt: skip


def print_row(row: Row) -> None:
    phases = [row.phase_p50(phase) for phase in PHASES]
    print(f"{row.size:>7} | {row.store_p50:8.3f}s {row.mbps(row.store_p50):6.1f} | "
          f"{phases[0]:6.3f} {phases[1]:6.3f} {phases[2]:8.3f} {phases[3]:6.3f} {phases[4]:7.3f} | "
          f"{row.read_p50:7.3f}s {row.mbps(row.read_p50):6.1f} | {row.encode_only_s:10.3f}s "
          f"{row.store_p50 / row.encode_only_s:8.1f}x | {row.node_cpu_s * 1000:10.0f} ms",
          flush=True)  # fmt: skip


def check_targets(rows: list[Row]) -> list[str]:
    lines = []
    for row in rows:
        if row.where != "loopback":
            # The Walrus paper's testnet (section 7): under 20 MB, writes under 25 s and reads
            # under 15 s; above 40 MB both grow with the size (a 130 MB read took about 30 s).
            where = f"{row.nodes} nodes on hosts: {row.size} store {row.store_p50:.2f} s, "
            if row.size_bytes < 20_000_000:
                ok = row.store_p50 < 25 and row.read_p50 < 15
                lines.append(
                    f"{where}read {row.read_p50:.2f} s (paper: < 25 s and < 15 s): {_ok(ok)}"
                )
            else:
                lines.append(
                    f"{where}read {row.read_p50:.2f} s (paper: linear in size, 130 MB read in "
                    "about 30 s)"
                )
            continue
        where = f"{row.nodes} nodes, {row.shards} shards"
        real_count = row.shards >= 1000
        store_limit, read_limit = (1.0, 0.2) if real_count else (0.1, 0.1)
        if row.size == "1KiB" or (row.size == "1MiB" and not real_count):
            ok = row.store_p50 < store_limit
            lines.append(
                f"{where}: store {row.size[:-3]} {row.size[-3:]} {row.store_p50:.3f} s"
                f" (< {store_limit:g} s): {_ok(ok)}"
            )
        if row.size == "1MiB":
            ok = row.read_p50 < read_limit
            lines.append(
                f"{where}: read 1 MiB {row.read_p50:.3f} s (< {read_limit:g} s): {_ok(ok)}"
            )
        if row.size == "100MiB":
            store, read = row.mbps(row.store_p50), row.mbps(row.read_p50)
            lines.append(f"{where}: store 100 MiB {store:.1f} MB/s (>= 25): {_ok(store >= 25)}")
            lines.append(f"{where}: read 100 MiB {read:.1f} MB/s (>= 70): {_ok(read >= 70)}")
    return lines


def _ok(ok: bool) -> str:
    return "met" if ok else "MISSED"


async def main(args: argparse.Namespace) -> None:
    if args.plot or args.plot_from:
        import e2e_plot

        await e2e_plot.run(args)
        return
    args.reps = args.reps or 5
    sizes = args.sizes.split(",")
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        sys.exit(f"unknown sizes {unknown}: choose from {', '.join(SIZES)}")
    print(f"bench/e2e.py: {args.reps} blobs per size, medians; MB = 10^6 bytes; "
          f"{os.cpu_count()} cores", flush=True)  # fmt: skip
    if args.range_blob not in RANGE_BLOB_SIZES:
        sys.exit(f"unknown range blob {args.range_blob}: choose from {', '.join(RANGE_BLOB_SIZES)}")
    rows: list[Row] = []
    range_rows: list[RangeRow] = []
    with tempfile.TemporaryDirectory(prefix="walruspy-e2e-") as tmp:
        n_nodes_list = [int(n) for n in args.nodes.split(",") if n]
        shard_counts = [int(n) for n in args.shards.split(",") if n]
        for n_shards in shard_counts:
            for n_nodes in n_nodes_list:
                rows += await bench_devnet(n_nodes, sizes, args.reps, Path(tmp), None, n_shards)
        if args.hosts:
            shape = LinkShape(
                parse_delay_s(args.latency),
                parse_delay_s(args.jitter),
                parse_loss(args.loss),
                parse_bandwidth(args.bandwidth),
            )
            for n_shards in shard_counts:
                for n_nodes in n_nodes_list:
                    rows += await bench_devnet(
                        n_nodes, sizes, args.reps, Path(tmp), shape, n_shards
                    )
        if args.range_nodes:
            range_rows.append(
                await bench_range(args.range_nodes, args.range_blob, args.reps, Path(tmp))
            )
        quilt_rows: list[QuiltRow] = []
        if args.quilt_nodes:
            quilt_rows.append(
                await bench_quilt(
                    args.quilt_nodes,
                    args.quilt_files,
                    args.quilt_file_size,
                    args.quilt_separate or args.quilt_files,
                    8,
                    Path(tmp),
                    args.quilt_shards,
                )
            )
    print("\nTargets:")
    for line in check_targets(rows):
        print(f"  {line}")
    if args.json:
        print(json.dumps([row.summary() for row in rows] + [r.summary() for r in range_rows]
                         + [q.summary() for q in quilt_rows]))  # fmt: skip


if __name__ == "__main__":
    from e2e_plot import add_arguments as add_plot_arguments

    # The client logs each store at debug level: keep the table readable.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", default="10,4", help="devnet sizes, comma-separated")
    parser.add_argument(
        "--shards", default=str(N_SHARDS), help="shard counts of the devnets, comma-separated"
    )
    parser.add_argument("--sizes", default=",".join(SIZES), help="blob sizes, comma-separated")
    parser.add_argument("--reps", type=int, help="blobs per size (5; 3 with --plot)")
    parser.add_argument(
        "--range-nodes", type=int, default=4, help="nodes of the range-read devnet (0: skip)"
    )
    parser.add_argument(
        "--range-blob",
        default="256MiB",
        help=f"blob of the range reads: {', '.join(RANGE_BLOB_SIZES)}",
    )
    parser.add_argument("--quilt-nodes", type=int, default=0, help="nodes of the quilt devnet")
    parser.add_argument("--quilt-files", type=int, default=600, help="files in the quilt")
    parser.add_argument("--quilt-shards", type=int, default=1000, help="quilt devnet's shards")
    parser.add_argument("--quilt-file-size", type=int, default=10240, help="bytes per file")
    parser.add_argument(
        "--quilt-separate", type=int, default=0, help="files stored separately (0: all)"
    )
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument(
        "--hosts", action="store_true", help="also run each devnet on separate hosts (root)"
    )
    parser.add_argument("--latency", default="80ms", help="--hosts: one-way link delay")
    parser.add_argument("--jitter", default="0ms", help="--hosts: delay variation")
    parser.add_argument("--loss", default="0%", help="--hosts: packet loss per link")
    parser.add_argument("--bandwidth", default="100mbit", help="--hosts: each link's rate")
    add_plot_arguments(parser)
    asyncio.run(main(parser.parse_args()))

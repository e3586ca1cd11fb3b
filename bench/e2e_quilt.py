"""Many small files as one quilt against one blob each, on a devnet (`e2e.py --quilt-nodes`).

Walrus's measurement (spec/walrus-system.md 4.5): 600 files of 10 KiB cost 409x less stored as
one quilt than as 600 blobs, because every blob pays for its metadata on every shard (n x 64
bytes per sliver pair, replicated n times) whatever its size. On a devnet of `n_shards` shards
(default `QUILT_N_SHARDS`; a QuiltV1 holds at most s - 1 = n - f - 1 patches, so 600 files fit
one quilt from n = 901 on, and fewer shards need several quilts, which the output counts), this
stores `files` random files of `file_bytes` each as quilts (`WalrusClient.quilts.store`), then as
separate blobs (`--quilt-separate` of them, `concurrency` at a time, as the publisher's eight
sub-wallets would; fewer than all of them are scaled up linearly, and the output says so). It
prints the wall time and the WAL cost (FROST, from the store results: storage for the epochs
plus the write price, gas excluded) of each way, the encoded size paid for, and their ratios;
then the time to read one patch by patch ID and the secondary sliver bytes it fetched, against
reading the one file stored as its own blob.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from walruspy.client import open_client
from walruspy.core.params import EncodingParams
from walruspy.core.quilt import QuiltStoreBlob
from walruspy.devnet import open_devnet

#: Shards of the quilt devnet: s = 667 columns, room for 666 patches (Walrus's mainnet size).
QUILT_N_SHARDS = 1000
EPOCH_S = 3600  # no epoch ends during a run
READ_REPS = 5


@dataclass
class QuiltRow:
    """One quilt of `files` files against the same files as separate blobs."""

    nodes: int
    n_shards: int
    files: int
    file_bytes: int
    separate_stored: int = 0
    quilts: int = 0
    quilt_s: float = 0.0
    quilt_cost: int = 0
    quilt_encoded: int = 0
    separate_s: float = 0.0
    separate_cost: int = 0
    separate_encoded: int = 0
    patch_read_s: list[float] = field(default_factory=list)
    patch_sliver_bytes: int = 0
    blob_read_s: list[float] = field(default_factory=list)

    @property
    def scale(self) -> float:
        """From the separate stores done to all of the files."""
        return self.files / self.separate_stored

    def summary(self) -> dict[str, object]:
        return {
            **asdict(self),
            "separate_s_all": self.separate_s * self.scale,
            "separate_cost_all": round(self.separate_cost * self.scale),
            "cost_ratio": self.separate_cost * self.scale / self.quilt_cost,
            "time_ratio": self.separate_s * self.scale / self.quilt_s,
        }


async def bench_quilt(
    n_nodes: int,
    files: int,
    file_bytes: int,
    separate: int,
    concurrency: int,
    work: Path,
    n_shards: int = QUILT_N_SHARDS,
) -> QuiltRow:
    """Store and read the files both ways on a fresh devnet (module doc)."""
    row = QuiltRow(n_nodes, n_shards, files, file_bytes, separate_stored=min(separate, files))
    blobs = [QuiltStoreBlob(f"file-{i:04d}.bin", os.urandom(file_bytes)) for i in range(files)]
    per_quilt = EncodingParams(n_shards).n_secondary_source_symbols - 1
    started = time.monotonic()
    async with (
        open_devnet(work / f"quilt{n_nodes}", n_nodes, n_shards, EPOCH_S) as devnet,
        open_client(devnet.client_config()) as client,
    ):
        print(f"\nquilt: {n_nodes} nodes, {n_shards} shards: devnet ready in "
              f"{time.monotonic() - started:.1f} s", flush=True)  # fmt: skip
        # Warm the encoder workers and connections.
        await client.store(os.urandom(1024), 1, deletable=False)
        start = time.perf_counter()
        for first in range(0, files, per_quilt):
            quilt = await client.quilts.store(
                blobs[first : first + per_quilt], 1, deletable=False, ignore_resources=True
            )
            row.quilts += 1
            row.quilt_cost += quilt.blob_store_result.cost
            row.quilt_encoded += quilt.blob_store_result.encoded_length
        row.quilt_s = time.perf_counter() - start

        limit = asyncio.Semaphore(concurrency)
        stored: list[tuple[int, int]] = []

        async def store_one(blob: QuiltStoreBlob) -> None:
            async with limit:
                result = await client.store(blob.data, 1, deletable=False, ignore_resources=True)
                stored.append((result.cost, result.encoded_length))

        start = time.perf_counter()
        async with asyncio.TaskGroup() as group:
            for blob in blobs[: row.separate_stored]:
                group.create_task(store_one(blob))
        row.separate_s = time.perf_counter() - start
        row.separate_cost = sum(cost for cost, _ in stored)
        row.separate_encoded = sum(encoded for _, encoded in stored)

        position = len(quilt.patches) // 2  # in the last quilt
        middle = quilt.patches[position]
        data = blobs[first + position].data
        own = await client.blob_id_of(data)
        for _ in range(READ_REPS):
            start = time.perf_counter()
            read = await client.quilts.read_by_ids([middle.patch_id])
            row.patch_read_s.append(time.perf_counter() - start)
            assert read.patches[0].data == data
            row.patch_sliver_bytes = read.sliver_bytes
            start = time.perf_counter()
            await client.read(own)
            row.blob_read_s.append(time.perf_counter() - start)
    print_quilt_row(row)
    return row


def print_quilt_row(row: QuiltRow) -> None:
    summary = row.summary()
    sampled = (f" ({row.separate_stored} stored, scaled x{row.scale:.1f})"
               if row.separate_stored < row.files else "")  # fmt: skip
    quilts = "one quilt" if row.quilts == 1 else f"{row.quilts} quilts"
    print(f"  {row.files} files of {row.file_bytes} B as {quilts}: {row.quilt_s:8.2f} s, "
          f"{row.quilt_cost:>16} FROST, {row.quilt_encoded / 1e6:9.2f} MB encoded")  # fmt: skip
    print(f"  {row.files} files as separate blobs{sampled}: "
          f"{summary['separate_s_all']:8.2f} s, {summary['separate_cost_all']:>16} FROST, "
          f"{row.separate_encoded * row.scale / 1e6:9.2f} MB encoded")  # fmt: skip
    print(f"  separate / quilt: {summary['time_ratio']:.1f}x the time, "
          f"{summary['cost_ratio']:.1f}x the WAL")  # fmt: skip
    print(f"  read one patch by ID: {statistics.median(row.patch_read_s):.3f} s "
          f"({row.patch_sliver_bytes / 1e3:.1f} kB of secondary slivers); the same file as its "
          f"own blob: {statistics.median(row.blob_read_s):.3f} s", flush=True)  # fmt: skip

"""Measure the node store: put/get MB/s for 256 KiB slivers, and the cost of a synced commit.

Prints figures and the ratio against raw py-lmdb without fsync in the same process.
Usage: python bench/store.py [DIR] [MiB]
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import sys
import tempfile
import time

import lmdb

from walruspy.core.types import SliverType
from walruspy.node.store import NodeStore, StoreConfig
from walruspy.node.store_records import EventProgress, ValidBlobInfo

VALUE = 256 * 1024


def evict(path: str) -> None:
    """Drop the file's clean pages from the page cache (no root needed)."""
    for name in ("data.mdb",):
        fd = os.open(os.path.join(path, name), os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def mbps(nbytes: int, seconds: float) -> float:
    return nbytes / seconds / 1e6


def run(root: str, mib: int) -> None:
    os.makedirs(root, exist_ok=True)
    n = mib * 1024 * 1024 // VALUE
    values = [os.urandom(VALUE) for _ in range(64)]
    keys = [os.urandom(32) for _ in range(n)]
    total = n * VALUE
    print(f"{n} values of {VALUE} bytes ({total / 2**20:.0f} MiB), dir {root}")

    # raw py-lmdb, no fsync, one value per transaction: the ceiling
    raw_path = os.path.join(root, "raw")
    env = lmdb.open(raw_path, map_size=4 << 30, sync=False)
    t = time.perf_counter()
    for i, key in enumerate(keys):
        with env.begin(write=True) as txn:
            txn.put(key, values[i % 64])
    raw_put = time.perf_counter() - t
    env.close()

    path = os.path.join(root, "store")
    store = NodeStore.open(StoreConfig(path))
    store.create_shard(0)
    t = time.perf_counter()
    for i, key in enumerate(keys):
        store.put_sliver(0, SliverType.PRIMARY, key, values[i % 64])
    put_one = time.perf_counter() - t

    store.create_shard(1)
    t = time.perf_counter()
    for start in range(0, n, 64):
        batch = [(key, values[j % 64]) for j, key in enumerate(keys[start : start + 64])]
        store.put_slivers(1, SliverType.PRIMARY, batch)
    put_batch = time.perf_counter() - t

    order = keys[:]
    random.Random(1).shuffle(order)
    t = time.perf_counter()
    for key in order:
        assert store.get_sliver(0, SliverType.PRIMARY, key) is not None
    get_warm = time.perf_counter() - t

    store.close()
    evict(path)
    store = NodeStore.open(StoreConfig(path))
    t = time.perf_counter()
    for key in order:
        assert store.get_sliver(0, SliverType.PRIMARY, key) is not None
    get_cold = time.perf_counter() - t

    # small synced writes: one event with one blob-info record per commit
    cursor = None
    info = ValidBlobInfo(is_metadata_stored=True)
    samples = []
    for i in range(300):
        cursor = EventProgress.after(cursor, i, 0)
        t = time.perf_counter()
        store.apply_event(cursor, {keys[i % len(keys)]: info})
        samples.append(time.perf_counter() - t)
    store.close()

    print(f"raw lmdb put, no fsync, 1/txn : {mbps(total, raw_put):8.0f} MB/s")
    print(
        f"put_sliver, fsync, 1/txn      : {mbps(total, put_one):8.0f} MB/s "
        f"({put_one / n * 1e3:.2f} ms/sliver, {raw_put / put_one:.2f}x raw)"
    )
    print(
        f"put_slivers, fsync, 64/txn    : {mbps(total, put_batch):8.0f} MB/s "
        f"({raw_put / put_batch:.2f}x raw)"
    )
    print(f"get_sliver, warm, random      : {mbps(total, get_warm):8.0f} MB/s")
    print(f"get_sliver, cold, random      : {mbps(total, get_cold):8.0f} MB/s")
    print(
        f"apply_event (1 record), fsync : median {statistics.median(samples) * 1e3:.3f} ms, "
        f"p90 {sorted(samples)[270] * 1e3:.3f} ms"
    )


if __name__ == "__main__":
    root = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="bench-store-")
    mib = int(sys.argv[2]) if len(sys.argv) > 2 else 256
    try:
        run(root, mib)
    finally:
        shutil.rmtree(root, ignore_errors=True)

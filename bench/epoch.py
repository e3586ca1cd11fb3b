"""Measure shard migration at an epoch change: shard-sync throughput, change time, recovery cost.

An in-process network of 5 nodes over 50 shards (n = 50, f = 16) over the fake chain
(tests/node/cluster.py). In the first committee node 0 holds shards 0..14 and nodes 1..3 the
other 35; node 4 is not a member. Blobs of 1 to 4 MiB are stored up to each data volume (`--sizes`,
MB); then the next epoch gives node 4 shards 0..9 (one fifth of the shards), all taken from node 0,
which keeps 10..14. Each scenario runs on a fresh cluster in its own temporary directory.

1. Direct sync: node 4 fetches its 10 gained shards from node 0 through
   `POST /v1/migrate/sync_shard` (metric `walrus_shard_sync_bytes_total`: sliver bytes stored).
   Shard-sync throughput = those bytes / the time from the start of the new epoch until node 4's
   shard syncer is idle.
2. Epoch change time vs bytes moved: the wall time from the start of the new epoch (the chain's
   `next_epoch`) until node 4 holds all its shards (its reporter's `shards_complete`), and when
   the chain's EpochChangeDone came, for each volume.
3. Recovery instead of sync: the same change with node 0 stopped first, and `retry_window_s`
   tiny, so node 4's shard syncs fall back to blob-by-blob recovery from the recovery symbols of
   nodes 1..3 (metric `walrus_recovery_bytes_downloaded_total`: symbol answers; metadata not
   counted). Printed per recovered sliver pair, as a fraction of the average blob size, and as the
   ratio recovery bytes / direct-sync bytes. A sliver pair is about (1/(n - 2f) + 1/(n - f)) of
   its blob; Red Stuff's claim is that recovering a pair reads O(|blob|/n), so the ratio should be
   a small constant, not n.

All nodes run in one process on one event loop (as the recovery part of bench/node.py): the
sender, the receiver and their sliver checks share one core, so the figures are a lower bound on
what separate node processes on separate cores give.

4. With `--devnet`: the same kind of move between node *processes* of a real devnet (devchain,
   staking): a fifth node joins four by stake and syncs about half of 40 shards from the others'
   processes; its shard-sync bytes over the time from EpochChangeStart to EpochChangeDone.

Usage: python bench/epoch.py [--sizes 8,32,64] [--no-recovery] [--devnet] [--json]
(from the repository root)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.node.cluster import (  # noqa: E402
    blob_data,
    metric,
    open_cluster,
    reassign,
    runs,
)

from walruspy.node.config import ShardSyncConfig  # noqa: E402

N_SHARDS = 50
# Node 0 holds 15 shards, nodes 1..3 the other 35; node 4 is outside the first committee.
FIRST = [range(0, 15), range(15, 27), range(27, 39), range(39, 50), range(0)]
# Node 4 takes shards 0..9 of node 0, which keeps 10..14.
SECOND = [range(10, 15), range(15, 27), range(27, 39), range(39, 50), range(0, 10)]
GAINED = len(SECOND[4])
BLOB_MIB = (1, 2, 3, 4)  # blob sizes, in turn, up to the volume
TIMEOUT_S = 600.0
MB = 1e6


@dataclass
class Run:
    """One epoch change: what was stored, what moved, how long it took."""

    scenario: str
    volume_mb: int
    blobs: int
    blob_bytes: int
    store_s: float
    sync_bytes: float
    slivers_synced: float
    recovery_bytes: float
    slivers_recovered: float
    syncs_synced: float
    syncs_fell_back: float
    sync_idle_s: float
    complete_s: float
    change_done_s: float

    @property
    def pairs(self) -> int:
        """Sliver pairs the joiner gained: one per gained shard and blob."""
        return GAINED * self.blobs


def blob_sizes(volume_mb: int) -> list[int]:
    """Blob sizes of 1, 2, 3, 4 MiB in turn, the last one cut, adding up to `volume_mb` MB."""
    sizes, left, i = [], volume_mb * 1_000_000, 0
    while left > 0:
        size = min(left, BLOB_MIB[i % len(BLOB_MIB)] << 20)
        sizes.append(size)
        left -= size
        i += 1
    return sizes


async def epoch_change(volume_mb: int, recovery: bool) -> Run:
    """Store `volume_mb` MB, then change the committee (node 0 stopped first if `recovery`)."""
    settings: dict[str, Any] = {"retry_min_backoff_s": 0.05, "retry_max_backoff_s": 0.2}
    if recovery:
        settings["retry_window_s"] = 0.2
    with tempfile.TemporaryDirectory() as tmp:
        async with open_cluster(
            Path(tmp), (10,) * 5, start=False, shard_sync=ShardSyncConfig(**settings)
        ) as c:
            assert c.n_shards == N_SHARDS
            c.chain.members = tuple(reassign(c, FIRST))
            for node in c.nodes:
                await c.start(node)
            sizes = blob_sizes(volume_mb)
            started = time.perf_counter()
            for i, size in enumerate(sizes):
                await c.store_blob(blob_data(i, size), epochs_ahead=20)
            store_s = time.perf_counter() - started
            source, joiner = c.nodes[0], c.nodes[4]
            if recovery:
                await c.stop(source)
            await c.wait_syncs_idle()
            epoch = c.chain.epoch + 1

            async with asyncio.timeout(TIMEOUT_S):
                started = time.perf_counter()
                c.chain.next_epoch(reassign(c, SECOND))
                done = asyncio.create_task(c.chain.wait_change_done())
                # Once node 4 has applied EpochChangeStart, its new view is installed, its shard
                # syncs are queued and its `shards_complete` of the last epoch is cleared.
                await c.wait_for_events([joiner])
                assert runs(joiner).service.state.epoch == epoch
                await runs(joiner).shard_syncer.wait_idle()
                sync_idle_s = time.perf_counter() - started
                await runs(joiner).reporter.shards_complete.wait()
                complete_s = time.perf_counter() - started
                await done
                change_done_s = time.perf_counter() - started

            axes = ("primary", "secondary")
            synced = sum(metric(joiner, "shard_sync_slivers", type=t) for t in axes)
            recovered = sum(metric(joiner, "slivers_recovered", type=t) for t in axes)
            return Run(
                scenario="recovery" if recovery else "sync",
                volume_mb=volume_mb,
                blobs=len(sizes),
                blob_bytes=sum(sizes),
                store_s=store_s,
                sync_bytes=metric(joiner, "shard_sync_bytes"),
                slivers_synced=synced,
                recovery_bytes=metric(joiner, "recovery_bytes_downloaded"),
                slivers_recovered=recovered,
                syncs_synced=metric(joiner, "shard_syncs", outcome="synced"),
                syncs_fell_back=metric(joiner, "shard_syncs", outcome="fell_back"),
                sync_idle_s=sync_idle_s,
                complete_s=complete_s,
                change_done_s=change_done_s,
            )


def print_sync(results: Sequence[Run]) -> None:
    print(
        f"direct shard sync: {GAINED} of {N_SHARDS} shards move from node 0 to node 4 "
        f"(5 nodes, one process); blobs of 1-4 MiB"
    )
    print(
        f"  {'volume':>7} {'blobs':>5} {'store':>7} {'moved':>9} {'slivers':>7} "
        f"{'sync':>7} {'MB/s':>6} {'complete':>8} {'chg done':>8} {'pair/blob':>9}"
    )
    for r in results:
        per_pair = r.sync_bytes / r.pairs if r.pairs else 0.0
        print(
            f"  {r.volume_mb:4d} MB {r.blobs:5d} {r.store_s:6.1f}s {r.sync_bytes / MB:6.1f} MB "
            f"{r.slivers_synced:7.0f} {r.sync_idle_s:6.2f}s "
            f"{r.sync_bytes / MB / r.sync_idle_s:6.1f} {r.complete_s:7.2f}s "
            f"{r.change_done_s:7.2f}s {per_pair / (r.blob_bytes / r.blobs):9.4f}"
        )
    n, f = N_SHARDS, (N_SHARDS - 1) // 3
    print(
        f"  (sync = start of epoch to node 4's shard syncer idle; complete = to its "
        f"shards_complete; pair/blob = bytes per sliver pair / average blob size, "
        f"1/(n-2f) + 1/(n-f) = {1 / (n - 2 * f) + 1 / (n - f):.4f})"
    )


def print_recovery(pairs: Sequence[tuple[Run, Run]]) -> None:
    print(
        f"recovery instead: node 0 stopped before the change, node 4's syncs fall back to "
        f"recovery from nodes 1..3 (1/n = {1 / N_SHARDS:.4f})"
    )
    print(
        f"  {'volume':>7} {'fell back':>9} {'pairs':>5} {'recovered':>9} {'by recovery':>11} "
        f"{'by sync':>9} {'rec/pair':>9} {'sync/pair':>9} {'rec/blob':>8} {'ratio':>6} "
        f"{'rec time':>8} {'sync time':>9}"
    )
    for sync, rec in pairs:
        average_blob = rec.blob_bytes / rec.blobs
        rec_pair = rec.recovery_bytes / rec.pairs
        sync_pair = sync.sync_bytes / sync.pairs
        ratio = rec.recovery_bytes / sync.sync_bytes if sync.sync_bytes else float("nan")
        print(
            f"  {rec.volume_mb:4d} MB {rec.syncs_fell_back:9.0f} {rec.pairs:5d} "
            f"{rec.slivers_recovered:9.0f} {rec.recovery_bytes / MB:8.1f} MB "
            f"{sync.sync_bytes / MB:6.1f} MB {rec_pair / MB:6.3f} MB {sync_pair / MB:6.3f} MB "
            f"{rec_pair / average_blob:8.4f} {ratio:6.2f} {rec.complete_s:7.2f}s "
            f"{sync.complete_s:8.2f}s"
        )
    print(
        "  (ratio = recovery bytes / direct-sync bytes; rec/blob = recovery bytes per pair / "
        "average blob size; times = start of epoch to shards_complete, the recovery one with the "
        "0.2 s retry window before the fall-back)"
    )


async def devnet_epoch_change(volume_mb: int) -> dict[str, float]:
    """Part 4: the same move between node *processes* of a real devnet (devchain, staking).

    Four nodes hold 40 shards; blobs up to `volume_mb` are stored through the client; a fifth
    node joins with the stake of the four together, so the next committee gives it about half
    the shards, each from its previous owner's process. Measured: the bytes its shard sync
    stored (from its /metrics) over the time from EpochChangeStart to EpochChangeDone.
    """
    import aiohttp

    from walruspy.client import open_client
    from walruspy.devnet import open_devnet

    with tempfile.TemporaryDirectory() as directory:
        async with open_devnet(
            directory, n_nodes=4, n_shards=40, epoch_duration_s=3600, recovery_deferral_s=0.5
        ) as devnet:
            stored = 0
            async with open_client(devnet.client_config()) as client:
                for size in blob_sizes(volume_mb):
                    await client.store(blob_data(stored, size), epochs=10, deletable=False)
                    stored += 1
            joiner = await devnet.add_node(stake_frost=40_000 * 10**9)  # 40,000 WAL
            # Staked before voting_end, it joins at the next change, else at the one after.
            while True:
                epoch = await devnet.start_epoch_change()
                started = time.perf_counter()
                await devnet.wait_epoch_change_done()
                elapsed = time.perf_counter() - started
                if devnet.in_committee(joiner):
                    break
            async with (
                aiohttp.ClientSession() as http,
                http.get(joiner.direct_url + "/metrics") as response,
            ):
                text = await response.text()
            moved = sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("walrus_shard_sync_bytes_total")
            )
            return {
                "volume_mb": volume_mb,
                "blobs": stored,
                "epoch": epoch,
                "shards_gained": len(joiner.shards),
                "sync_mb": moved / MB,
                "change_s": elapsed,
                "mb_per_s": moved / MB / elapsed if elapsed > 0 else 0.0,
            }


def print_devnet(results: Sequence[dict[str, float]]) -> None:
    """Part 4's table."""
    print("between node processes (devnet: devchain, 5 node processes, 40 shards, staking)")
    print("   volume blobs gained   synced  change  MB/s")
    for r in results:
        print(
            f"   {r['volume_mb']:>4.0f} MB {r['blobs']:>5.0f} {r['shards_gained']:>6.0f} "
            f"{r['sync_mb']:>6.1f} MB {r['change_s']:>6.1f}s {r['mb_per_s']:>5.1f}"
        )
    print("  (change = EpochChangeStart to EpochChangeDone; synced = the joiner's shard sync)")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="8,32,64", help="data volumes stored, MB")
    parser.add_argument("--no-recovery", action="store_true", help="skip the recovery runs")
    parser.add_argument("--json", action="store_true", help="also print the runs as JSON")
    parser.add_argument(
        "--devnet", action="store_true", help="also move shards between node processes"
    )
    args = parser.parse_args()
    volumes = [int(s) for s in args.sizes.split(",")]
    if args.devnet:
        print_devnet([await devnet_epoch_change(v) for v in volumes])
    synced = [await epoch_change(v, recovery=False) for v in volumes]
    print_sync(synced)
    recovered = [] if args.no_recovery else [await epoch_change(v, recovery=True) for v in volumes]
    if recovered:
        print_recovery(list(zip(synced, recovered, strict=True)))
    if args.json:
        print(json.dumps([asdict(r) | {"pairs": r.pairs} for r in synced + recovered], indent=1))


if __name__ == "__main__":
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    asyncio.run(main())

"""Curves, not points: `bench/e2e.py --plot DIR` sweeps the devnet and draws what it measured.

Like the Walrus paper's figures (section 7), one PNG per figure, written into DIR with matplotlib
(an optional extra: `pip install -e '.[bench]'`; without it `--plot` says so and measures
nothing):

- `size_latency.png`, `size_throughput.png`: store and read latency (log-log) and throughput
  against blob size (`--plot-sizes`, 1 KiB to 1 GiB) on `BASE_NODES` nodes and `BASE_SHARDS`
  shards. A blob larger than those shards hold (at most p * s * 65534 bytes: 149 MB at 100
  shards) is measured on the fewest shards that hold it (270 for 1 GiB), and its point says so.
- `shards_latency.png`, `shards_throughput.png`: against the shard count (`--plot-shards`),
  on `BASE_NODES` nodes, for each blob of `--plot-sweep-sizes` (1 MiB and 16 MiB).
- `nodes_latency.png`, `nodes_throughput.png`: against the node count (`--plot-nodes`), on
  `BASE_SHARDS` shards (divisible by 4, 10 and 20, so every node holds as many shards).
- `clients_throughput.png`: aggregate MB/s of stores and of reads against concurrent clients
  (`--plot-clients`): N asyncio tasks on one client object (one wallet, as one publisher serving
  N uploaders; separate clients of one wallet would race for its nonces) each store a blob of
  `CLIENTS_BLOB` at once, then read them back at once; N * size over the wall time of the round.
- `memory.png`: peak resident memory (VmHWM) against blob size, of each node process (the
  largest and the median of the nodes) and of the client, its store and its read apart.

Theory of operation. The sweeps share devnets: `plan_devnets` gives each (nodes, shards) pair
one devnet and the blob sizes every sweep needs of it, so the base devnet (10 nodes, 100 shards)
serves the size sweep, a point of the shard and node sweeps, and the client sweep. Each devnet
starts once, measures, stops; then the next starts (never two at a time).

The size sweep's client runs in a subprocess of its own (`python bench/e2e_plot.py
client-worker`), one per blob size, so that its peak memory is the client's alone: before each
store and each read it resets its own high-water mark (writing 5 to /proc/self/clear_refs) and
reads VmHWM after; its encoder workers (processes of their own, mapping the same shared-memory
buffers) are reported apart. The nodes' high-water marks are reset before each size's subprocess
and read after it, so a node's peak covers that size's stores and reads. The other sweeps run the
client in this process (`e2e.measure_rows`, which also prints the usual table rows).

Every figure is a median over `--reps` repetitions (default 3), with bars from the fastest to the
slowest. All measurements go to DIR/e2e_plot.json (rewritten after each devnet, so a run cut
short keeps what it measured); `--plot-from FILE` redraws the figures from such a file into
`--plot DIR` (or beside the file) without measuring. MB = 10^6 bytes, MiB = 2^20.

Usage: python bench/e2e.py --plot DIR [--plot-sizes 1KiB,...,1GiB] [--plot-shards 100,300,1000]
       [--plot-nodes 4,10,20] [--plot-clients 1,2,4,8,16,32] [--plot-sweep-sizes 1MiB,16MiB]
       [--reps 3]
       python bench/e2e.py --plot-from DIR/e2e_plot.json [--plot OTHER_DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from e2e import EPOCH_S, measure_rows, print_header, size_bytes
from walruspy.client import ClientConfig, WalrusClient, load_config, open_client
from walruspy.core.params import EncodingParams
from walruspy.devnet import Devnet, open_devnet
from walruspy.workers import EncoderPool

PLOT_SIZES = ("1KiB", "16KiB", "256KiB", "1MiB", "16MiB", "100MiB", "1GiB")
PLOT_SHARDS = (100, 300, 1000)
PLOT_NODES = (4, 10, 20)
PLOT_CLIENTS = (1, 2, 4, 8, 16, 32)
#: Blob sizes of the shard and node sweeps.
SWEEP_SIZES = ("1MiB", "16MiB")
BASE_NODES = 10
BASE_SHARDS = 100
CLIENTS_BLOB = "1MiB"
#: Large enough to be encoded by the workers, not inline (`workers.MIN_PARALLEL_MATRIX_BYTES`).
WARM_BLOB_BYTES = 4 << 20
JSON_NAME = "e2e_plot.json"
FORMAT = "walruspy-e2e-plot/1"
INSTALL_HINT = "pip install -e '.[bench]' (or pip install 'matplotlib>=3.8')"


@dataclass(frozen=True)
class Sweeps:
    """What to measure: each sweep's points (an empty tuple skips the sweep)."""

    sizes: tuple[str, ...] = PLOT_SIZES
    shards: tuple[int, ...] = PLOT_SHARDS
    nodes: tuple[int, ...] = PLOT_NODES
    clients: tuple[int, ...] = PLOT_CLIENTS
    sweep_sizes: tuple[str, ...] = SWEEP_SIZES
    base_nodes: int = BASE_NODES
    base_shards: int = BASE_SHARDS
    clients_blob: str = CLIENTS_BLOB


def shards_for(blob_bytes: int, base_shards: int) -> int:
    """`base_shards`, or the fewest shards above it whose blobs can be `blob_bytes` long."""
    n = base_shards
    while EncodingParams(n).max_blob_size < blob_bytes:
        n += 1
    return n


@dataclass
class DevnetPlan:
    """One devnet of the sweeps and what it measures."""

    nodes: int
    shards: int
    #: Sizes measured by a client subprocess, with memory (the size sweep).
    worker_sizes: list[str] = field(default_factory=list)
    #: Sizes measured by a client in this process (the shard and node sweeps).
    sizes: list[str] = field(default_factory=list)
    clients: tuple[int, ...] = ()
    clients_blob: str = CLIENTS_BLOB


def plan_devnets(sweeps: Sweeps) -> list[DevnetPlan]:
    """The devnets the sweeps need, the base one first, each with all it measures."""
    plans: dict[tuple[int, int], DevnetPlan] = {}

    def plan(nodes: int, shards: int) -> DevnetPlan:
        return plans.setdefault((nodes, shards), DevnetPlan(nodes, shards))

    base = plan(sweeps.base_nodes, sweeps.base_shards)
    base.clients, base.clients_blob = sweeps.clients, sweeps.clients_blob
    for name in sweeps.sizes:
        plan(
            sweeps.base_nodes, shards_for(size_bytes(name), sweeps.base_shards)
        ).worker_sizes.append(name)
    points = [(sweeps.base_nodes, shards) for shards in sweeps.shards]
    points += [(nodes, sweeps.base_shards) for nodes in sweeps.nodes]
    for nodes, shards in points:
        target = plan(nodes, shards)
        for name in sweeps.sweep_sizes:
            if name not in target.worker_sizes and name not in target.sizes:
                target.sizes.append(name)
    return [p for p in plans.values() if p.worker_sizes or p.sizes or p.clients]


# --- memory (Linux /proc) -------------------------------------------------------------------


def peak_rss_bytes(pid: int) -> int:
    """The process's peak resident set size (VmHWM) since it started or was last reset."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise OSError(f"no VmHWM in /proc/{pid}/status")


def reset_peak_rss(pids: Sequence[int]) -> None:
    """Lower each process's VmHWM to its current VmRSS (Linux 4.0 and later, own processes)."""
    for pid in pids:
        Path(f"/proc/{pid}/clear_refs").write_text("5")


def child_pids(pid: int) -> list[int]:
    """The direct children of a process, from every one of its threads."""
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with_children = task / "children"
        if with_children.exists():
            children += [int(c) for c in with_children.read_text().split()]
    return children


@contextlib.asynccontextmanager
async def open_warm_client(config: ClientConfig) -> AsyncIterator[WalrusClient]:
    """A client whose encoder workers run already and whose connections and allowance are made.

    A 1 KiB blob is encoded inline, so without the explicit warm-up the first larger store would
    pay for spawning the encoder workers (seconds on a busy machine).
    """
    pool = EncoderPool(config.context().encoder_workers)
    try:
        await asyncio.to_thread(pool.encode, os.urandom(WARM_BLOB_BYTES), BASE_SHARDS)
        async with open_client(config, encoder=pool) as client:
            await client.store(os.urandom(1024), 1, deletable=False)
            yield client
    finally:
        await asyncio.to_thread(pool.close)


# --- the client subprocess of the size sweep --------------------------------------------------


async def client_worker(config_path: str, blob_bytes: int, reps: int) -> dict[str, list[float]]:
    """Store and read `reps` blobs, timing each and reading this process's peak memory."""
    me = os.getpid()
    out: dict[str, list[float]] = {
        "store_s": [],
        "read_s": [],
        "client_store_peak_bytes": [],
        "client_read_peak_bytes": [],
        "encoder_peak_bytes": [],
    }
    async with open_warm_client(load_config(config_path)) as client:
        for _ in range(reps):
            data = os.urandom(blob_bytes)
            digest = hashlib.blake2b(data).digest()
            reset_peak_rss([me, *child_pids(me)])
            start = time.perf_counter()
            result = await client.store(data, 1, deletable=False, ignore_resources=True)
            out["store_s"].append(time.perf_counter() - start)
            out["client_store_peak_bytes"].append(peak_rss_bytes(me))
            workers = [peak_rss_bytes(pid) for pid in child_pids(me)]
            out["encoder_peak_bytes"].append(max(workers, default=0))
            del data
            reset_peak_rss([me])
            start = time.perf_counter()
            back = await client.read(result.blob_id)
            out["read_s"].append(time.perf_counter() - start)
            out["client_read_peak_bytes"].append(peak_rss_bytes(me))
            assert hashlib.blake2b(back).digest() == digest, "a blob read back differs"
            del back
    return out


async def run_client_worker(devnet: Devnet, blob_bytes: int, reps: int) -> dict[str, Any]:
    """`client_worker` in a subprocess; the nodes' peak memory over its run."""
    node_pids = [node.pid for node in devnet.nodes if node.pid is not None]
    reset_peak_rss(node_pids)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__)),
        "client-worker",
        str(devnet.client_config_path),
        str(blob_bytes),
        str(reps),
        stdout=asyncio.subprocess.PIPE,
    )
    stdout, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"the client subprocess failed with status {process.returncode}")
    figures: dict[str, Any] = json.loads(stdout.decode().splitlines()[-1])
    figures["node_peak_bytes"] = [peak_rss_bytes(pid) for pid in node_pids]
    return figures


# --- measuring --------------------------------------------------------------------------------


async def measure_clients(
    client: WalrusClient, counts: Sequence[int], blob_name: str, reps: int
) -> list[dict[str, Any]]:
    """For each count N, `reps` rounds of N concurrent stores, then N concurrent reads."""
    blob = size_bytes(blob_name)
    points = []
    for n in counts:
        point: dict[str, Any] = {"clients": n, "size": blob_name, "size_bytes": blob}
        point["store_s"], point["read_s"] = [], []
        for _ in range(reps):
            blobs = [os.urandom(blob) for _ in range(n)]
            start = time.perf_counter()
            async with asyncio.TaskGroup() as group:
                stores = [
                    group.create_task(client.store(data, 1, deletable=False, ignore_resources=True))
                    for data in blobs
                ]
            point["store_s"].append(time.perf_counter() - start)
            start = time.perf_counter()
            async with asyncio.TaskGroup() as group:
                reads = [group.create_task(client.read(s.result().blob_id)) for s in stores]
            point["read_s"].append(time.perf_counter() - start)
            assert [r.result() for r in reads] == blobs, "a blob read back differs"
        print(
            f"{n:>3} clients x {blob_name}: stores {n * blob / _p50(point['store_s']) / 1e6:.1f}"
            f" MB/s, reads {n * blob / _p50(point['read_s']) / 1e6:.1f} MB/s",
            flush=True,
        )
        points.append(point)
    return points


async def measure_devnet(plan: DevnetPlan, reps: int, work: Path, data: dict[str, Any]) -> None:
    """Start the plan's devnet, add what it measures to `data`, stop it."""
    started = time.monotonic()
    async with open_devnet(
        work / f"plot{plan.nodes}x{plan.shards}", plan.nodes, plan.shards, EPOCH_S
    ) as devnet:
        print(
            f"\n{plan.nodes} nodes, {plan.shards} shards: devnet ready in "
            f"{time.monotonic() - started:.1f} s",
            flush=True,
        )
        where = {"nodes": plan.nodes, "shards": plan.shards}
        for name in plan.worker_sizes:
            figures = await run_client_worker(devnet, size_bytes(name), reps)
            run = {**where, "size": name, "size_bytes": size_bytes(name)}
            data["runs"].append(
                {**run, "store_s": figures.pop("store_s"), "read_s": figures.pop("read_s")}
            )
            data["memory"].append({**run, **figures})
            print(
                f"{name:>7}: store {_p50(data['runs'][-1]['store_s']):.3f} s, read "
                f"{_p50(data['runs'][-1]['read_s']):.3f} s, node peak "
                f"{max(figures['node_peak_bytes']) / 2**20:.0f} MiB, client peak "
                f"{_p50(figures['client_store_peak_bytes']) / 2**20:.0f} MiB",
                flush=True,
            )
        if not plan.sizes and not plan.clients:
            return
        async with open_warm_client(devnet.client_config()) as client:
            node_pids = [node.pid for node in devnet.nodes if node.pid is not None]
            if plan.sizes:
                print_header()
            rows = await measure_rows(client, node_pids, plan.sizes, reps, plan.nodes, plan.shards)
            for row in rows:
                run = {**where, "size": row.size, "size_bytes": row.size_bytes}
                data["runs"].append({**run, "store_s": row.store_s, "read_s": row.read_s})
            if plan.clients:
                for point in await measure_clients(client, plan.clients, plan.clients_blob, reps):
                    data["clients"].append({**where, **point})


async def run_sweeps(sweeps: Sweeps, reps: int, out_dir: Path) -> Path:
    """Measure every sweep, writing the JSON file after each devnet; its path."""
    path = out_dir / JSON_NAME
    data: dict[str, Any] = {
        "format": FORMAT,
        "reps": reps,
        "cores": os.cpu_count(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "sweeps": asdict(sweeps),
        "runs": [],
        "memory": [],
        "clients": [],
    }
    plans = plan_devnets(sweeps)
    print(
        f"bench/e2e.py --plot: {len(plans)} devnets, {reps} blobs per point, medians; "
        f"MB = 10^6 bytes; {os.cpu_count()} cores",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="walruspy-e2e-plot-") as tmp:
        for plan in plans:
            await measure_devnet(plan, reps, Path(tmp), data)
            write_json(path, data)
    return path


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write the measurements (after each devnet: a run cut short keeps what it measured)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))


def _p50(values: Sequence[float]) -> float:
    return statistics.median(values)


# --- drawing ----------------------------------------------------------------------------------


def require_matplotlib() -> None:
    """Exit with a clear message when matplotlib is missing (before an hour of measuring)."""
    try:
        import matplotlib
    except ImportError:
        sys.exit(
            f"bench/e2e.py --plot draws with matplotlib, which is not installed: {INSTALL_HINT}"
        )
    matplotlib.use("Agg")


def draw(data: dict[str, Any], out_dir: Path) -> list[Path]:
    """Every figure the data holds, as PNG files in `out_dir`; their paths."""
    require_matplotlib()
    if data.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} file (format {data.get('format')!r})")
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = Figures(data, out_dir)
    return [
        *figures.size(),
        *figures.sweep("shards", "shard count"),
        *figures.sweep("nodes", "node count"),
        *figures.clients(),
        *figures.memory(),
    ]


class Figures:
    """The figures of one JSON file of measurements."""

    def __init__(self, data: dict[str, Any], out_dir: Path) -> None:
        self.data = data
        given = data["sweeps"]
        self.sweeps = Sweeps(
            tuple(given["sizes"]),
            tuple(given["shards"]),
            tuple(given["nodes"]),
            tuple(given["clients"]),
            tuple(given["sweep_sizes"]),
            given["base_nodes"],
            given["base_shards"],
            given["clients_blob"],
        )
        self.out_dir = out_dir
        self.footer = (
            f"medians of {data['reps']}, bars min to max; one machine, "
            f"{data['cores']} cores, loopback; {data['date'][:10]}"
        )

    def run(self, nodes: int, shards: int, size: str) -> dict[str, Any] | None:
        for run in self.data["runs"]:
            if (run["nodes"], run["shards"], run["size"]) == (nodes, shards, size):
                return run  # type: ignore[no-any-return]
        return None

    def size(self) -> list[Path]:
        base = self.sweeps
        runs = [
            (name, self.run(base.base_nodes, shards_for(size_bytes(name), base.base_shards), name))
            for name in base.sizes
        ]
        measured = [(name, run) for name, run in runs if run is not None]
        if not measured:
            return []
        more = [
            f"{run['shards']} for {name}"
            for name, run in measured
            if run["shards"] != base.base_shards
        ]
        title = f"{base.base_nodes} nodes, {base.base_shards} shards"
        if more:
            title += f" ({', '.join(more)}: the fewest that hold it)"
        notes = [
            (run["size_bytes"], f"{run['shards']} shards")
            for _, run in measured
            if run["shards"] != base.base_shards
        ]
        found = [run for _, run in measured]
        return [self._size_figure(kind, found, title, notes) for kind in ("latency", "throughput")]

    def sweep(self, what: str, label: str) -> list[Path]:
        base = self.sweeps
        points = getattr(base, what)
        if not points:
            return []
        series: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        for name in base.sweep_sizes:
            found = [
                self.run(p, base.base_shards, name)
                if what == "nodes"
                else self.run(base.base_nodes, p, name)
                for p in points
            ]
            series[name] = [(p, r) for p, r in zip(points, found, strict=True) if r is not None]
        fixed = f"{base.base_shards} shards" if what == "nodes" else f"{base.base_nodes} nodes"
        paths = []
        for kind in ("latency", "throughput"):
            fig, ax = self._axes()
            for i, (name, pairs) in enumerate(series.items()):
                if not pairs:
                    continue
                xs = [p for p, _ in pairs]
                runs = [r for _, r in pairs]
                style = {"linestyle": "-" if i == 0 else "--"}
                for op, marker in (("store", "o"), ("read", "s")):
                    values = [_values(r, op, kind) for r in runs]
                    self._series(ax, xs, values, f"{op}, {name}", marker, style)
            ax.set_xlabel(label)
            ax.set_xscale("log")
            ax.set_xticks(list(points), [str(p) for p in points])
            ax.set_xticks([], minor=True)
            _y_axis(ax, kind)
            ax.set_title(f"{kind.capitalize()} against {label}, {fixed}")
            paths.append(self._save(fig, ax, f"{what}_{kind}.png"))
        return paths

    def clients(self) -> list[Path]:
        points = sorted(self.data["clients"], key=lambda p: p["clients"])
        if not points:
            return []
        fig, ax = self._axes()
        xs = [p["clients"] for p in points]
        for op, marker in (("store", "o"), ("read", "s")):
            values = [
                [p["clients"] * p["size_bytes"] / s / 1e6 for s in p[f"{op}_s"]] for p in points
            ]
            self._series(ax, xs, values, f"{op}s", marker, {})
        ax.set_xscale("log", base=2)
        ax.set_xticks(xs, [str(x) for x in xs])
        ax.set_xticks([], minor=True)
        ax.set_xlabel("concurrent clients (tasks on one client)")
        ax.set_ylabel("aggregate throughput (MB/s)")
        ax.set_ylim(bottom=0)
        first = points[0]
        ax.set_title(
            f"Concurrent clients, {first['size']} blobs each, {first['nodes']} nodes, "
            f"{first['shards']} shards"
        )
        return [self._save(fig, ax, "clients_throughput.png")]

    def memory(self) -> list[Path]:
        points = sorted(self.data["memory"], key=lambda p: p["size_bytes"])
        if not points:
            return []
        fig, ax = self._axes()
        xs = [p["size_bytes"] for p in points]
        mib = 2**20
        series: list[tuple[str, str, Callable[[dict[str, Any]], float]]] = [
            ("node, largest peak", "o", lambda p: max(p["node_peak_bytes"]) / mib),
            ("node, median peak", "v", lambda p: _p50(p["node_peak_bytes"]) / mib),
            ("client, store", "s", lambda p: _p50(p["client_store_peak_bytes"]) / mib),
            ("client, read", "D", lambda p: _p50(p["client_read_peak_bytes"]) / mib),
            ("client's encoder worker", "^", lambda p: _p50(p["encoder_peak_bytes"]) / mib),
        ]
        lowest = float("inf")
        for label, marker, value in series:
            ys = [value(p) for p in points]
            lowest = min(lowest, *ys)
            ax.plot(xs, ys, marker=marker, label=label)
        ax.plot(xs, [x / mib for x in xs], color="grey", linestyle=":", label="blob size")
        self._size_axis(ax, xs)
        ax.set_yscale("log")
        ax.set_ylim(bottom=lowest / 2)  # the blob-size line would stretch the axis to 1 KiB
        ax.set_ylabel("peak resident memory (MiB)")
        shards = sorted({p["shards"] for p in points})
        ax.set_title(
            f"Peak memory against blob size, {points[0]['nodes']} nodes, "
            f"{'/'.join(map(str, shards))} shards"
        )
        return [self._save(fig, ax, "memory.png")]

    # --- shared pieces ----------------------------------------------------------------------

    def _size_figure(
        self, kind: str, runs: list[dict[str, Any]], title: str, notes: list[tuple[int, str]]
    ) -> Path:
        """Store and read latency or throughput of the size sweep."""
        fig, ax = self._axes()
        xs = [run["size_bytes"] for run in runs]
        for op, marker in (("store", "o"), ("read", "s")):
            self._series(ax, xs, [_values(r, op, kind) for r in runs], op, marker, {})
        self._size_axis(ax, xs)
        _y_axis(ax, kind)
        ax.set_title(f"{kind.capitalize()} against blob size, {title}", fontsize=9)
        for x, text in notes:
            run = next(r for r in runs if r["size_bytes"] == x)
            y = _p50(_values(run, "store", kind))
            ax.annotate(
                text, (x, y), textcoords="offset points", xytext=(0, -16), ha="center", fontsize=8
            )
        return self._save(fig, ax, f"size_{kind}.png")

    @staticmethod
    def _series(
        ax: Any,
        xs: Sequence[float],
        values: list[list[float]],
        label: str,
        marker: str,
        style: dict[str, str],
    ) -> None:
        medians = [_p50(v) for v in values]
        below = [m - min(v) for m, v in zip(medians, values, strict=True)]
        above = [max(v) - m for m, v in zip(medians, values, strict=True)]
        ax.errorbar(
            xs, medians, yerr=[below, above], marker=marker, capsize=3, label=label, **style
        )

    @staticmethod
    def _size_axis(ax: Any, xs: Sequence[int]) -> None:
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(xs), [_size_name(x) for x in xs], fontsize=8)
        ax.set_xticks([], minor=True)
        ax.set_xlabel("blob size")

    @staticmethod
    def _axes() -> tuple[Any, Any]:
        from matplotlib import pyplot as plt

        fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
        ax.grid(True, which="major", linestyle=":", alpha=0.6)
        return fig, ax

    def _save(self, fig: Any, ax: Any, name: str) -> Path:
        from matplotlib import pyplot as plt

        ax.legend(fontsize=8)
        fig.text(0.99, 0.01, self.footer, ha="right", va="bottom", fontsize=7, color="grey")
        fig.tight_layout(rect=(0, 0.03, 1, 1))
        path = self.out_dir / name
        fig.savefig(path)
        plt.close(fig)
        return path


def _y_axis(ax: Any, kind: str) -> None:
    """Latency in seconds on a log scale (as the paper's), throughput in MB/s from 0."""
    if kind == "latency":
        ax.set_yscale("log")
        ax.set_ylabel("latency (s)")
    else:
        ax.set_ylabel("throughput (MB/s)")
        ax.set_ylim(bottom=0)


def _values(run: dict[str, Any], op: str, kind: str) -> list[float]:
    """Seconds of each store or read, or the MB/s each gave."""
    seconds: list[float] = run[f"{op}_s"]
    if kind == "latency":
        return seconds
    return [run["size_bytes"] / s / 1e6 for s in seconds]


def _size_name(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} B"


# --- command line -----------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `--plot` options of bench/e2e.py."""
    parser.add_argument("--plot", metavar="DIR", help="run the sweeps and draw PNGs into DIR")
    parser.add_argument(
        "--plot-from", metavar="FILE", help=f"redraw the figures of a {JSON_NAME} (no devnet)"
    )
    parser.add_argument("--plot-sizes", default=",".join(PLOT_SIZES), help="size sweep")
    parser.add_argument(
        "--plot-shards", default=",".join(map(str, PLOT_SHARDS)), help="shard-count sweep"
    )
    parser.add_argument(
        "--plot-nodes", default=",".join(map(str, PLOT_NODES)), help="node-count sweep"
    )
    parser.add_argument(
        "--plot-clients", default=",".join(map(str, PLOT_CLIENTS)), help="concurrent clients"
    )
    parser.add_argument(
        "--plot-sweep-sizes", default=",".join(SWEEP_SIZES), help="blobs of the shard/node sweeps"
    )


def sweeps_from(args: argparse.Namespace) -> Sweeps:
    """The sweeps the options ask for (empty strings skip a sweep)."""

    def ints(text: str) -> tuple[int, ...]:
        return tuple(int(part) for part in text.split(",") if part)

    def sizes(text: str) -> tuple[str, ...]:
        names = tuple(part for part in text.split(",") if part)
        for name in names:
            size_bytes(name)  # raises on a bad name
        return names

    return Sweeps(
        sizes=sizes(args.plot_sizes),
        shards=ints(args.plot_shards),
        nodes=ints(args.plot_nodes),
        clients=ints(args.plot_clients),
        sweep_sizes=sizes(args.plot_sweep_sizes),
    )


async def run(args: argparse.Namespace) -> None:
    """`bench/e2e.py --plot DIR` or `--plot-from FILE`."""
    require_matplotlib()
    if args.plot_from:
        source = Path(args.plot_from)
        out_dir = Path(args.plot) if args.plot else source.parent
    else:
        try:
            sweeps = sweeps_from(args)
        except ValueError as error:
            sys.exit(str(error))
        out_dir = Path(args.plot)
        source = await run_sweeps(sweeps, args.reps or 3, out_dir)
    for path in draw(json.loads(source.read_text()), out_dir):
        print(f"wrote {path}")


if __name__ == "__main__":
    if sys.argv[1:2] != ["client-worker"]:
        sys.exit("usage: python bench/e2e.py --plot DIR (this module runs as its client worker)")
    config, blob, reps = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    import logging

    import structlog

    # Stdout carries the figures (its last line); warnings go to stderr.
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    print(json.dumps(asyncio.run(client_worker(config, blob, reps))))

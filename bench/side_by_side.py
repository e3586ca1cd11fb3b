"""walruspy's publisher and aggregator against Tahoe-LAFS's web API, side by side, with ratios.

The two benchmarks are shell scripts kept outside this repository (each says how it times its
grid): `walruspy_http.sh` times `curl -T` and `curl -o` against a walruspy devnet's daemon,
`tahoe_grid.sh` the same against a Tahoe-LAFS grid of as many storage nodes (its `PROTO=foolscap`
is its fastest configuration). For each node count this script runs the two one after the
other, on the same machine, reads their medians and prints one table:

    nodes  op   size     walruspy s   Tahoe s   walruspy speed

where the speed is Tahoe's time over walruspy's (above 1.0x: walruspy is faster). Tahoe prints
its seconds to 0.01 s, so its time of a row is the size over its median MiB/s (three
significant digits). Tahoe's erasure code per node count: 3-of-10 with happiness 7 on 10 nodes
(its default), 2-of-4 with happiness 4 on 4 nodes; otherwise k = max(2, 3n/10), happiness
max(k, 7n/10), n shares.

Usage: python bench/side_by_side.py --walruspy-script PATH/walruspy_http.sh
           --tahoe-script PATH/tahoe_grid.sh [--nodes 10,4] [--sizes 1,16,100] [--runs 3]
Run it on a quiet machine: the two grids share its cores with nothing else.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

#: Tahoe's shares.needed, shares.happy and shares.total by node count (see the docstring).
TAHOE_ENCODING = {10: (3, 7, 10), 4: (2, 4, 4)}
_WALRUSPY_ROW = re.compile(r"^(put|get)\s+(\d+)MiB\s+([\d.]+) \(")


@dataclass(frozen=True, slots=True)
class Row:
    """One operation at one size: its median in seconds for each system."""

    nodes: int
    op: str
    size_mib: int
    walruspy_s: float
    tahoe_s: float

    @property
    def speed(self) -> float:
        """walruspy's speed as a multiple of Tahoe's."""
        return self.tahoe_s / self.walruspy_s


def tahoe_encoding(nodes: int) -> tuple[int, int, int]:
    """Tahoe's (needed, happy, total) shares for a grid of `nodes` storage nodes."""
    if nodes in TAHOE_ENCODING:
        return TAHOE_ENCODING[nodes]
    needed = max(2, 3 * nodes // 10)
    return needed, max(needed, 7 * nodes // 10), nodes


def parse_walruspy(output: str) -> dict[tuple[str, int], float]:
    """walruspy_http.sh's medians: seconds by (op, size in MiB)."""
    medians = {}
    for line in output.splitlines():
        if match := _WALRUSPY_ROW.match(line.strip()):
            medians[match[1], int(match[2])] = float(match[3])
    return medians


def parse_tahoe(output: str) -> dict[tuple[str, int], float]:
    """tahoe_grid.sh's medians of its curl rows: seconds (size over median MiB/s) by (op, size
    in MiB)."""
    medians = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 8 or cells[1] != "curl" or cells[0] not in ("put", "get"):
            continue
        size = int(cells[2])
        medians[cells[0], size] = size / float(cells[7])
    return medians


def _run(command: list[str], env: dict[str, str], log: Path) -> str:
    print(f"running {' '.join(command)} (log: {log})", file=sys.stderr, flush=True)
    with log.open("w") as out:
        done = subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    text = log.read_text()
    if done.returncode != 0:
        tail = "\n".join(text.splitlines()[-20:])
        raise SystemExit(f"{command[-1]} failed (exit {done.returncode}):\n{tail}")
    return text


def _walruspy_cli(directory: Path) -> Path:
    """A walruspy CLI for the shell script: this interpreter, with this process's PYTHONPATH."""
    cli = directory / "walruspy"
    cli.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m walruspy.cli.main "$@"\n')
    cli.chmod(0o755)
    return cli


def measure(args: argparse.Namespace, nodes: int, work: Path) -> list[Row]:
    """Run both scripts on `nodes` storage nodes; the rows both measured."""
    sizes = " ".join(str(size) for size in args.sizes)
    common = {**os.environ, "N": str(nodes), "SIZES_MIB": sizes, "RUNS": str(args.runs)}
    walruspy_env = {**common, "WALRUSPY": str(_walruspy_cli(work))}
    walruspy = parse_walruspy(
        _run(["bash", str(args.walruspy_script)], walruspy_env, work / f"walruspy-{nodes}.log")
    )
    needed, happy, total = tahoe_encoding(nodes)
    tahoe_env = {
        **common, "PROTO": "foolscap", "CURL": "1",
        "K": str(needed), "HAPPY": str(happy), "TOTAL": str(total),
    }  # fmt: skip
    tahoe = parse_tahoe(
        _run(["bash", str(args.tahoe_script)], tahoe_env, work / f"tahoe-{nodes}.log")
    )
    return [
        Row(nodes, op, size, walruspy[op, size], tahoe[op, size])
        for size in args.sizes
        for op in ("put", "get")
        if (op, size) in walruspy and (op, size) in tahoe
    ]


def print_table(rows: list[Row], file: TextIO = sys.stdout) -> None:
    """The side-by-side table."""
    header = (
        f"{'nodes':>5}  {'op':<4} {'size':>8} {'walruspy s':>11} {'Tahoe s':>9}  walruspy speed"
    )
    print(header, file=file)
    for row in rows:
        print(
            f"{row.nodes:>5}  {row.op:<4} {f'{row.size_mib} MiB':>8} {row.walruspy_s:>11.3f}"
            f" {row.tahoe_s:>9.3f}  {row.speed:.2f}x",
            file=file,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--walruspy-script", type=Path, required=True)
    parser.add_argument("--tahoe-script", type=Path, required=True)
    parser.add_argument("--nodes", default="10,4", help="node counts, comma-separated")
    parser.add_argument("--sizes", default="1,16,100", help="blob sizes in MiB, comma-separated")
    parser.add_argument("--runs", type=int, default=3, help="runs per size and operation")
    args = parser.parse_args()
    args.sizes = [int(size) for size in args.sizes.split(",")]
    for script in (args.walruspy_script, args.tahoe_script):
        if not script.is_file():
            parser.error(f"no such script: {script}")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="side-by-side-") as directory:
        for nodes in (int(n) for n in args.nodes.split(",")):
            rows.extend(measure(args, nodes, Path(directory)))
            print_table(rows, sys.stderr)  # so far: a later failure keeps what was measured
    print(
        f"\nbench/side_by_side.py: medians of {args.runs} runs, one after the other, curl over HTTP"
    )
    print_table(rows)


if __name__ == "__main__":
    main()

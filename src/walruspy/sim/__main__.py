"""`python -m walruspy.sim --seed S --virtual-hours H [--nodes N] [--faults PROFILE]`.

Runs one simulation (`walruspy.sim.workload.Simulation` on `walruspy.sim.cluster.open_cluster`,
under `walruspy.sim.loop.run`), prints what it did (operations, faults, checks, virtual and
real time, the speed-up), and on a violated invariant the invariant, its virtual time and the
command that replays it; exit status 1 then, 0 otherwise. `--trace FILE` writes the trace
(`walruspy.sim.trace`), which is the same, byte for byte, for the same arguments. The store
directories live in a temporary directory, removed afterwards.

`--lanes N` runs N workload tasks at once (default `DEFAULT_LANES`), so that operations overlap.
`--corrupt-reads` plants a bug (every read returns one flipped byte), and `--skip-forged-checks`
another (the malicious writer's reads of its inconsistent blobs skip the consistency check, so
such a blob reads as data), to see that the simulator catches them.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

from walruspy.logs import configure_logging
from walruspy.sim.churn import churn_settings
from walruspy.sim.cluster import SimSettings, open_cluster
from walruspy.sim.loop import run
from walruspy.sim.trace import Trace
from walruspy.sim.workload import PROFILES, FaultProfile, SimResult, Simulation, churns

__all__ = ["DEFAULT_LANES", "main", "simulate"]

#: Workload tasks at once: two, so that operations overlap (a store during a read, a delete
#: during a store) as a daemon's users' do.
DEFAULT_LANES = 2


def simulate(
    seed: int,
    virtual_s: float,
    *,
    settings: SimSettings | None = None,
    profile: FaultProfile = FaultProfile.NONE,
    trace: Trace | None = None,
    corrupt_reads: bool = False,
    skip_forged_checks: bool = False,
    lanes: int = DEFAULT_LANES,
) -> SimResult:
    """Run one simulation to its end or first violation (module docstring)."""
    trace = trace or Trace()
    if churns(profile):
        settings = churn_settings(settings or SimSettings())

    async def main() -> SimResult:
        with tempfile.TemporaryDirectory(prefix="walruspy-sim-") as directory:
            async with open_cluster(
                Path(directory), seed, settings, trace=trace.network
            ) as cluster:
                trace.start()
                simulation = Simulation(
                    cluster,
                    trace,
                    profile,
                    corrupt_reads=corrupt_reads,
                    skip_forged_checks=skip_forged_checks,
                    lanes=lanes,
                )
                return await simulation.run(virtual_s)

    return run(main())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m walruspy.sim",
        description="Run the deterministic simulator (issue #16) for one seed.",
    )
    parser.add_argument("--seed", type=int, required=True, help="the run's seed")
    parser.add_argument(
        "--virtual-hours", type=float, default=1.0, help="virtual time to simulate (default 1)"
    )
    parser.add_argument("--nodes", type=int, default=4, help="storage nodes (default 4)")
    parser.add_argument(
        "--shards", type=int, default=None, help="shards (default 4 per node, at least 16)"
    )
    parser.add_argument("--faults", choices=PROFILES, default="none", help="fault profile")
    parser.add_argument("--trace", type=Path, default=None, help="write the trace to FILE")
    parser.add_argument(
        "--network-detail", action="store_true", help="one trace line per network event"
    )
    parser.add_argument(
        "--corrupt-reads", action="store_true", help="plant a bug: reads flip a byte"
    )
    parser.add_argument(
        "--skip-forged-checks",
        action="store_true",
        help="plant a bug: reads of forged blobs skip the consistency check",
    )
    parser.add_argument(
        "--lanes", type=int, default=DEFAULT_LANES, help="workload tasks at once (default 2)"
    )
    parser.add_argument("--verbose", action="store_true", help="print the trace as it goes")
    return parser


def _replay_command(args: argparse.Namespace) -> str:
    parts = [
        "python -m walruspy.sim",
        f"--seed {args.seed}",
        f"--virtual-hours {args.virtual_hours}",
        f"--nodes {args.nodes}",
    ]
    if args.shards is not None:
        parts.append(f"--shards {args.shards}")
    parts.append(f"--faults {args.faults}")
    if args.lanes != DEFAULT_LANES:
        parts.append(f"--lanes {args.lanes}")
    if args.corrupt_reads:
        parts.append("--corrupt-reads")
    if args.skip_forged_checks:
        parts.append("--skip-forged-checks")
    return " ".join(parts)


def main(argv: list[str] | None = None) -> int:
    """The command line (module docstring); the exit status."""
    args = _parser().parse_args(argv)
    shards = args.shards if args.shards is not None else max(16, 4 * args.nodes)
    settings = SimSettings(n_nodes=args.nodes, n_shards=shards)
    trace = Trace(print if args.verbose else None, network_detail=args.network_detail)
    started = time.perf_counter()  # real time, reported only, never in the trace
    result = simulate(
        args.seed,
        args.virtual_hours * 3600,
        settings=settings,
        profile=FaultProfile(args.faults),
        trace=trace,
        corrupt_reads=args.corrupt_reads,
        skip_forged_checks=args.skip_forged_checks,
        lanes=args.lanes,
    )
    real_s = time.perf_counter() - started
    if args.trace is not None:
        args.trace.write_text(trace.text())
    operations = sum(result.operations.values())
    print(
        f"seed {args.seed}: {operations} operations"
        f" ({', '.join(f'{k} {v}' for k, v in sorted(result.operations.items())) or 'none'}),"
        f" faults {', '.join(f'{k} {v}' for k, v in sorted(result.faults.items())) or 'none'},"
        f" {result.checks} full checks, {trace.network_events} network events"
    )
    print(
        f"virtual {result.virtual_s / 3600:.3f} h in {real_s:.1f} s real:"
        f" {result.virtual_s / max(real_s, 1e-9):.1f}x"
    )
    if result.violation is not None:
        at = result.violation_at_s if result.violation_at_s is not None else 0.0
        print(f"VIOLATION of {result.violation.invariant} at virtual {at:.3f} s:")
        print(f"  {result.violation.detail}")
        print(f"replay: {_replay_command(args)}")
        return 1
    print("no invariant violated")
    return 0


def _cli() -> int:
    # The nodes log a warning for every fault the simulator injects, and an error with its
    # traceback for each fail point hit: the trace says what matters; --verbose shows them.
    verbose = "--verbose" in sys.argv[1:]
    configure_logging(as_json=False, level=logging.WARNING if verbose else logging.CRITICAL)
    return main()


if __name__ == "__main__":
    sys.exit(_cli())

"""The deterministic simulator: chain, storage nodes and clients in one process, one event loop.

Issue #16. Everything runs on one asyncio event loop whose time is virtual
(`walruspy.sim.loop`: it jumps to the next timer whenever every task is waiting); the network
between the parties is `walruspy.sim.network.SimNetwork`, which carries real HTTP/1.1 bytes
between real aiohttp clients and servers over in-memory transports (`walruspy.sim.transport`)
whose links delay, reorder across connections, lose, reset and partition, all drawn from one
seeded random generator, so that a run is reproducible.

On those, `walruspy.sim.cluster` sets up a network (the devchain, storage nodes, a client) the
way the devnet does, `walruspy.sim.workload` drives a seeded workload and fault schedule
against it, checking the invariants of `walruspy.sim.invariants` as it goes (with
`walruspy.sim.churn` changing the committee through the staking contracts), and
`python -m walruspy.sim` runs one seed and prints what it did (`walruspy.sim.trace`: the same
seed gives the same trace, byte for byte).
"""

from __future__ import annotations

from walruspy.sim.loop import SimDeadlockError, SimLoop, run

__all__ = ["SimDeadlockError", "SimLoop", "run"]

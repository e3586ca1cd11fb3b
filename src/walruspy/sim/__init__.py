"""The deterministic simulator: chain, storage nodes and clients in one process, one event loop.

Issue #16. Everything runs on one asyncio event loop whose time is virtual
(`walruspy.sim.loop`: it jumps to the next timer whenever every task is waiting); the network
between the parties is `walruspy.sim.network.SimNetwork`, which carries real HTTP/1.1 bytes
between real aiohttp clients and servers over in-memory transports (`walruspy.sim.transport`)
whose links delay, reorder across connections, lose, reset and partition, all drawn from one
seeded random generator, so that a run is reproducible.
"""

from __future__ import annotations

from walruspy.sim.loop import SimDeadlockError, SimLoop, run

__all__ = ["SimDeadlockError", "SimLoop", "run"]

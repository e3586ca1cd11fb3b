"""Deterministic simulation: the network in one process under a virtual clock (issue #16).

`walruspy.sim.loop` is the seam everything else stands on: an asyncio event loop whose time is
virtual and jumps to the next timer whenever every task is waiting.
"""

from __future__ import annotations

from walruspy.sim.loop import SimDeadlockError, SimLoop, run

__all__ = ["SimDeadlockError", "SimLoop", "run"]

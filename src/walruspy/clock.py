"""The one clock of walruspy: monotonic time, wall time, sleeping and blocking work.

Theory of operation. Code outside `walruspy.core` that needs the time asks this module, never
`time.monotonic()` or `time.time()` directly, so that one seam decides what time it is:

- `now()` is monotonic seconds. Inside a running event loop it is the loop's `time()`, which is
  the clock `asyncio.sleep`, `asyncio.timeout` and `loop.call_later` schedule against, so a
  deadline computed from `now()` and a timer armed for it always agree. With asyncio's own loop
  that is `time.monotonic()`, exactly as before; outside a loop it is `time.monotonic()`.
- `wall()` is Unix time: `time.time()`, except under a simulated loop (`walruspy.sim.loop`),
  where it is the loop's virtual epoch plus its virtual time, so a replayed run sees the same
  dates.
- `sleep(s)` is `asyncio.sleep`, named here so that callers need import only the clock.
- `run_blocking(fn, *args)` runs blocking work off the event loop (`asyncio.to_thread`); under a
  simulated loop it runs inline after one scheduling point, so the simulation stays
  single-threaded and deterministic, and a loop of blocking calls still lets other tasks run.

A loop is simulated iff it is an instance of `SimulatedTime`; the simulator lives in
`walruspy.sim` and depends on this module, never the other way round. The module keeps no state
of its own: the running loop is the clock.

Durations measured only for metrics and logs may keep `time.perf_counter()` (a finer clock, and
what a person reading a latency wants); they never decide anything.
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

__all__ = ["SimulatedTime", "is_simulated", "now", "run_blocking", "sleep", "wall"]

_P = ParamSpec("_P")
_T = TypeVar("_T")


class SimulatedTime(abc.ABC):
    """Mixin of the event loops whose time is virtual (see `walruspy.sim.loop.SimLoop`)."""

    __slots__ = ()

    @abc.abstractmethod
    def wall_time(self) -> float:
        """Unix time at the loop's current virtual time."""


def is_simulated() -> bool:
    """Whether the running event loop, if any, keeps virtual time."""
    return isinstance(asyncio._get_running_loop(), SimulatedTime)


def now() -> float:
    """Monotonic seconds: the running loop's `time()`, else `time.monotonic()`."""
    loop = asyncio._get_running_loop()
    return time.monotonic() if loop is None else loop.time()


def wall() -> float:
    """Unix time in seconds: virtual under a simulated loop, else `time.time()`."""
    loop = asyncio._get_running_loop()
    if isinstance(loop, SimulatedTime):
        return loop.wall_time()
    return time.time()


async def sleep(seconds: float) -> None:
    """Sleep `seconds` on the running loop's clock (virtual under a simulated loop)."""
    await asyncio.sleep(seconds)


async def run_blocking(fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """Run blocking `fn(*args, **kwargs)` in a worker thread, or inline under a simulated loop."""
    if isinstance(asyncio._get_running_loop(), SimulatedTime):
        # One scheduling point, as a thread hop would give: a loop of blocking calls must not
        # starve the other tasks, and cancellation can land here as it would in to_thread.
        await asyncio.sleep(0)
        return fn(*args, **kwargs)
    return await asyncio.to_thread(fn, *args, **kwargs)

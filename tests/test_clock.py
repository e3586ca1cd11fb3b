"""The one clock: real time outside the simulator, the running loop's time inside a loop."""

from __future__ import annotations

import asyncio
import threading
import time

from walruspy import clock, sim


def test_outside_a_loop_the_clock_is_the_system_clock() -> None:
    before_monotonic, before_wall = time.monotonic(), time.time()
    now, wall = clock.now(), clock.wall()
    assert before_monotonic <= now <= time.monotonic()
    assert before_wall <= wall <= time.time()
    assert not clock.is_simulated()


def test_in_an_asyncio_loop_now_is_the_loop_time_and_wall_is_real() -> None:
    async def main() -> tuple[float, float, float, bool]:
        loop = asyncio.get_running_loop()
        before = loop.time()
        now = clock.now()
        return before, now, loop.time(), clock.is_simulated()

    before, now, after, simulated = asyncio.run(main())
    assert before <= now <= after
    assert not simulated
    assert abs(clock.wall() - time.time()) < 60


def test_in_the_simulator_everything_is_virtual() -> None:
    async def main() -> tuple[float, float, bool]:
        await clock.sleep(12.5)
        return clock.now(), clock.wall() - sim.loop.DEFAULT_EPOCH_S, clock.is_simulated()

    assert sim.run(main(), start=100.0) == (112.5, 112.5, True)


def test_run_blocking_passes_arguments_and_uses_a_thread_outside_the_simulator() -> None:
    def work(a: int, *, b: int) -> tuple[int, int]:
        return a + b, threading.get_ident()

    async def main() -> tuple[int, bool]:
        total, thread = await clock.run_blocking(work, 1, b=2)
        return total, thread == threading.get_ident()

    assert asyncio.run(main()) == (3, False)
    assert sim.run(main()) == (3, True)

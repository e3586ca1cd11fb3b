"""The virtual-time event loop: autojump, timer order, determinism, executors, deadlock."""

from __future__ import annotations

import asyncio
import random
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from walruspy import clock, sim
from walruspy.node_api.fanout import NodeRequest, gather_weight
from walruspy.sim.loop import DEFAULT_EPOCH_S, SimLoop, VirtualClock

#: Real seconds an hour of virtual sleeps may take on a loaded two-core machine; it takes
#: milliseconds, so this catches only a loop that really sleeps.
REAL_BOUND_S = 10.0


def test_an_hour_of_sleeps_takes_no_real_time() -> None:
    async def main() -> float:
        for _ in range(3600):
            await asyncio.sleep(1)
        await asyncio.sleep(3600)
        return clock.now()

    started = time.perf_counter()
    assert sim.run(main()) == 7200.0
    assert time.perf_counter() - started < REAL_BOUND_S


def test_run_starts_at_start_and_wall_follows_the_virtual_time() -> None:
    async def main() -> tuple[float, float, float, float]:
        before = (clock.now(), clock.wall())
        await asyncio.sleep(90)
        return (*before, clock.now(), clock.wall())

    assert sim.run(main(), start=1000.0) == (
        1000.0,
        DEFAULT_EPOCH_S + 1000.0,
        1090.0,
        DEFAULT_EPOCH_S + 1090.0,
    )
    assert sim.run(main(), epoch_s=0.0)[1] == 0.0


def test_timers_fire_in_time_order_then_in_order_of_scheduling() -> None:
    fired: list[tuple[str, float]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        for label, delay in [("c", 30.0), ("a", 10.0), ("b1", 20.0), ("b2", 20.0), ("d", 0.5)]:
            loop.call_later(delay, lambda label=label: fired.append((label, loop.time())))
        loop.call_later(31.0, done.set)
        await done.wait()

    sim.run(main())
    assert fired == [("d", 0.5), ("a", 10.0), ("b1", 20.0), ("b2", 20.0), ("c", 30.0)]


def test_timeouts_are_virtual() -> None:
    async def main() -> float:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(10):
                await asyncio.sleep(1000)
        return clock.now()

    assert sim.run(main()) == 10.0


async def _program(seed: int) -> list[tuple[float, str]]:
    """Tasks with seeded random sleeps that pass work through a bounded queue and a lock."""
    rng = random.Random(seed)
    trace: list[tuple[float, str]] = []
    queue: asyncio.Queue[int] = asyncio.Queue(maxsize=2)
    lock = asyncio.Lock()

    async def producer(name: str) -> None:
        for item in range(5):
            await asyncio.sleep(rng.uniform(0, 3))
            await queue.put(item)
            trace.append((clock.now(), f"{name} put {item}"))

    async def consumer(name: str) -> None:
        while True:
            item = await queue.get()
            async with lock:
                await asyncio.sleep(rng.expovariate(1.0))
                trace.append((clock.now(), f"{name} got {item}"))
            queue.task_done()

    async with asyncio.TaskGroup() as group:
        consumers = [group.create_task(consumer(f"c{i}")) for i in range(3)]
        async with asyncio.TaskGroup() as producers:
            for i in range(4):
                producers.create_task(producer(f"p{i}"))
        await queue.join()
        for task in consumers:
            task.cancel()
    return trace


def test_two_runs_with_one_seed_give_one_trace() -> None:
    first = sim.run(_program(7))
    assert len(first) == 40
    assert sim.run(_program(7)) == first
    assert sim.run(_program(8)) != first


def test_to_thread_runs_inline_in_zero_virtual_time_after_a_scheduling_point() -> None:
    order: list[str] = []

    def blocking(x: int) -> int:
        order.append("blocking")
        return x * 2

    async def other() -> None:
        order.append("other")

    async def main() -> tuple[int, int, float]:
        thread = threading.get_ident()
        task = asyncio.create_task(other())
        result = await asyncio.to_thread(blocking, 21)
        await task
        ran_on = await asyncio.to_thread(threading.get_ident)
        return result, ran_on - thread, clock.now()

    assert sim.run(main()) == (42, 0, 0.0)
    assert order == ["other", "blocking"]  # the awaiting task yielded, as to a thread


def test_to_thread_exceptions_reach_the_caller() -> None:
    def fail() -> None:
        raise KeyError("boom")

    async def main() -> None:
        await asyncio.to_thread(fail)

    with pytest.raises(KeyError, match="boom"):
        sim.run(main())


def test_cancelled_executor_work_does_not_run() -> None:
    ran: list[int] = []

    async def main() -> None:
        future = asyncio.get_running_loop().run_in_executor(None, ran.append, 1)
        future.cancel()
        await asyncio.sleep(1)

    sim.run(main())
    assert ran == []


def test_run_blocking_is_inline_in_the_sim_and_a_thread_outside() -> None:
    async def where() -> bool:
        return await clock.run_blocking(threading.get_ident) == threading.get_ident()

    assert sim.run(where()) is True
    assert asyncio.run(where()) is False


def test_a_loop_of_blocking_calls_does_not_starve_other_tasks() -> None:
    async def main() -> int:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_soon(stop.set)
        calls = 0
        while not stop.is_set():
            await clock.run_blocking(lambda: None)
            calls += 1
        return calls

    assert sim.run(main()) >= 1


def test_explicit_executor_work_is_real_and_takes_no_virtual_time() -> None:
    def slow() -> str:
        time.sleep(0.05)  # real work; a sleeper's timer must not fire meanwhile
        return "done"

    async def main() -> tuple[str, float]:
        sleeper = asyncio.create_task(asyncio.sleep(1000))
        with ThreadPoolExecutor(1) as pool:
            result = await asyncio.get_running_loop().run_in_executor(pool, slow)
        sleeper.cancel()
        return result, clock.now()

    assert sim.run(main()) == ("done", 0.0)


def test_ready_real_io_is_still_delivered() -> None:
    async def main() -> bytes:
        left, right = socket.socketpair()
        with left, right:
            left.setblocking(False)
            right.setblocking(False)
            right.send(b"x")
            return await asyncio.get_running_loop().sock_recv(left, 1)

    assert sim.run(main()) == b"x"


def test_a_deadlock_is_reported_with_the_waiting_tasks() -> None:
    async def wait_forever(event: asyncio.Event) -> None:
        await event.wait()

    async def main() -> None:
        await asyncio.sleep(5)
        event = asyncio.Event()
        await asyncio.create_task(wait_forever(event), name="stuck")

    with pytest.raises(sim.SimDeadlockError, match=r"virtual time 5\.0+ s") as raised:
        sim.run(main())
    assert "stuck at wait" in str(raised.value)  # asyncio.Event.wait, where it is suspended


def test_a_deadlock_does_not_leave_the_loop_half_open() -> None:
    loop = SimLoop()
    try:
        with pytest.raises(sim.SimDeadlockError):
            loop.run_until_complete(asyncio.Event().wait())
        assert loop.run_until_complete(asyncio.sleep(3, "after")) == "after"
        assert loop.time() == 3.0
    finally:
        loop.close()


def test_the_virtual_clock_never_goes_back_nor_misses_a_timer() -> None:
    virtual = VirtualClock(1.7e9)  # large times: now + (when - now) may round below when
    when = 1.7e9 + 0.1
    virtual.advance(when - virtual.now_s)
    assert virtual.now_s >= when - 1e-6
    with pytest.raises(AssertionError):
        virtual.advance(-1.0)


def test_the_quorum_fan_out_times_out_on_virtual_time() -> None:
    async def answer(delay_s: float) -> float:
        await asyncio.sleep(delay_s)
        return delay_s

    async def main() -> tuple[list[float], list[str], bool, float]:
        requests = [
            NodeRequest(f"n{i}", 1, lambda d=delay: answer(d))
            for i, delay in enumerate([1.0, 50.0, 2.0, 500.0])
        ]
        outcome = await gather_weight(requests, 4, max_concurrency=4, timeout_s=100.0)
        return (
            sorted(s.elapsed_s for s in outcome.successes),
            sorted(str(f.key) for f in outcome.failures),
            outcome.timed_out,
            clock.now(),
        )

    assert sim.run(main()) == ([1.0, 2.0, 50.0], ["n3"], True, 100.0)


def _cancellation_order(noise_seed: int) -> list[int]:
    """The order a TaskGroup cancels its children in, after allocations that move them around.

    asyncio's TaskGroup cancels the children it keeps in a set; the noise (objects of a task's
    size, kept or freed at random) puts the tasks at other addresses, as another run's
    allocation history would.
    """
    noise_rng = random.Random(noise_seed)
    kept: list[object] = []
    cancelled: list[int] = []

    async def child(i: int) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(i)
            raise

    async def fail() -> None:
        await asyncio.sleep(1)
        raise ValueError("a child fails: the group cancels the others")

    async def main() -> None:
        async with asyncio.TaskGroup() as group:
            for i in range(24):
                kept.extend(bytearray(150) for _ in range(noise_rng.randrange(4)))
                if kept and noise_rng.random() < 0.5:
                    del kept[noise_rng.randrange(len(kept))]
                group.create_task(child(i))
            group.create_task(fail())

    with pytest.raises(ExceptionGroup):
        sim.run(main())
    return cancelled


def test_sets_of_tasks_iterate_in_creation_order_not_in_address_order() -> None:
    # Seed 103 of the simulator (--faults byzantine) gave two traces: a read's sliver batches,
    # kept in a set, were cancelled in the order of their addresses, and so their connections
    # closed and drew their jitter in an order that changed with the machine's load.
    orders = [_cancellation_order(noise) for noise in range(4)]
    assert orders == [list(range(24))] * 4

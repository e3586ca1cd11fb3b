"""A virtual-time asyncio event loop that jumps to the next timer when every task is waiting.

Theory of operation. `SimLoop` is asyncio's own `SelectorEventLoop` with two seams replaced:

1. **Time.** `time()` returns a virtual clock (`VirtualClock`) that starts at `start` and moves
   only when the loop is idle. Everything asyncio schedules, `asyncio.sleep`, `asyncio.timeout`,
   `asyncio.wait(timeout=…)`, `loop.call_later`, reads `time()`, so all of it is virtual, and so
   is `walruspy.clock.now()` (the running loop's `time()`) and `walruspy.clock.wall()`
   (`epoch_s` plus the virtual time).
2. **Waiting.** Each turn asyncio runs the ready callbacks and then calls `selector.select(t)`,
   where `t` is 0 if callbacks are ready, the delay to the earliest timer if there is one, and
   None if there is nothing at all to wait for but I/O. `_AutojumpSelector.select` first polls the
   real selector without blocking (so real file descriptors and the loop's self-pipe still
   work); if nothing is ready the loop is idle, and instead of sleeping `t` it advances the
   virtual clock by `t`, so asyncio then finds that timer due and runs it. This is trio's
   `MockClock` with `autojump_threshold = 0`: an hour of sleeps takes milliseconds.

Idle means "no callback ready and no real event ready on a non-blocking poll". Real I/O is
polled, never waited for: a simulated program must not depend on real sockets. Two exceptions:

- Work on the default executor (`asyncio.to_thread`, `loop.run_in_executor(None, …)`) runs
  inline, on the loop's thread, in a callback of the next turn, and its future resolves there.
  So blocking work takes zero virtual time, is ordered like every other callback, and the loop
  never has a thread to wait for. (`walruspy.clock.run_blocking` does the same by itself.)
- Work on an explicit executor (a process pool, say) is real: while any is in flight virtual
  time stands still and the loop blocks on the real selector, up to `real_wait_limit_s` of real
  time, until the executor posts its result through the self-pipe.

**Deadlock.** `select(None)` with no real work in flight means no task can ever run again:
nothing is ready, no timer is set, and nothing outside can wake the loop. The selector raises
`SimDeadlockError`, naming the virtual time and where each pending task is suspended; it
propagates out of `run_until_complete`, so `run()` reports it instead of hanging. A program that
waits for real I/O with no timer set is, in the simulation, deadlocked too, and is reported the
same way.

**Determinism.** With one thread, virtual time and seeded randomness, a run is a pure function of
its inputs: asyncio runs ready callbacks in FIFO order and timers in (when, insertion) order, and
the selector's answers no longer depend on real timing. Anything that reads the real clock
(`time.monotonic()`), starts threads or uses real sockets breaks this; hence `walruspy.clock`.

One input is less visible: object identity. A set iterates in the order of its members' hashes,
and a task's hash is its address, so whatever iterates a set of tasks, asyncio's own
`TaskGroup` cancelling its children, the `done` set of `asyncio.wait`, a set of running tasks
cancelled on close, acts in an order the memory allocator chose. Addresses are not reproduced
from run to run: the allocation history depends on what the process met outside the simulation
(aiohttp reformatting its `Date` header when the real second changes, among other things; task
addresses of two runs of one seed diverged even with the hash seed fixed), so the order of two
closes at one virtual instant, and with it which connection draws which jitter, changed with the
machine's load (seed 103, `--faults byzantine`: the FINs of a read's cancelled sliver batches).
So every task of a `SimLoop` is a `_SimTask`, hashed by the order the loop created it: a set of
tasks iterates the same way in every run.
"""

from __future__ import annotations

import asyncio
import gc
import selectors
from collections.abc import Callable, Coroutine, Generator, Mapping
from concurrent.futures import Executor
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar, TypeVarTuple

from walruspy.clock import SimulatedTime

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike

__all__ = ["DEFAULT_EPOCH_S", "SimDeadlockError", "SimLoop", "VirtualClock", "run"]

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")

#: Unix time at virtual time 0: 2026-01-01T00:00:00Z, fixed so that `clock.wall()` replays.
DEFAULT_EPOCH_S = 1_767_225_600.0
#: How long, in real seconds, the loop waits for an explicit executor before calling it stuck:
#: long enough for a pool to encode a large blob on a slow machine, short enough to fail a test.
DEFAULT_REAL_WAIT_LIMIT_S = 60.0
#: Turns of the loop between two garbage collections (`run` turns the automatic ones off).
GC_EVERY_TURNS = 20_000
#: Tasks named in a deadlock report; a cluster has hundreds and the first few say enough.
_MAX_TASKS_REPORTED = 20


class SimDeadlockError(RuntimeError):
    """Every task is waiting and nothing (no timer, no real work in flight) can wake any."""


class VirtualClock:
    """Seconds of virtual time; they pass only when `advance` is called."""

    __slots__ = ("now_s",)

    def __init__(self, start: float = 0.0) -> None:
        self.now_s = start

    def advance(self, seconds: float) -> None:
        """Move time forward by `seconds` (never backward)."""
        assert seconds >= 0, seconds
        # max(): now + (when - now) may round below `when`; never let the timer be missed.
        self.now_s = max(self.now_s, self.now_s + seconds)


class _AutojumpSelector(selectors.BaseSelector):
    """The real selector, polled without blocking; an idle wait advances the virtual clock."""

    def __init__(
        self,
        clock: VirtualClock,
        real_work_pending: Callable[[], bool],
        deadlock: Callable[[], SimDeadlockError],
        real_wait_limit_s: float,
    ) -> None:
        self._real = selectors.DefaultSelector()
        self._clock = clock
        self._real_work_pending = real_work_pending
        self._deadlock = deadlock
        self._real_wait_limit_s = real_wait_limit_s
        self._turns = 0

    def register(
        self, fileobj: FileDescriptorLike, events: int, data: Any = None
    ) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: FileDescriptorLike) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(
        self, fileobj: FileDescriptorLike, events: int, data: Any = None
    ) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def get_map(self) -> Mapping[FileDescriptorLike, selectors.SelectorKey]:
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        self._turns += 1
        if self._turns % GC_EVERY_TURNS == 0:
            gc.collect()  # at a turn the run decides, never when allocation says (`run`)
        ready = self._real.select(0)
        if ready or timeout == 0:
            return ready
        if self._real_work_pending():
            # Virtual time stands still while real work runs; its result wakes the self-pipe.
            ready = self._real.select(self._real_wait_limit_s)
            if not ready:
                raise SimDeadlockError(
                    f"executor work still running after {self._real_wait_limit_s} s of real time"
                )
            return ready
        if timeout is None:
            raise self._deadlock()
        self._clock.advance(timeout)
        return []


class _SimTask(asyncio.Task[_T]):
    """A task hashed by its creation order on its loop, never by its address (module doc)."""

    def __init__(
        self,
        coro: Generator[Any, None, _T] | Coroutine[Any, Any, _T],
        *,
        order: int,
        **kwargs: Any,
    ) -> None:
        self._sim_order = order  # first: the constructor adds the task to a weak set
        super().__init__(coro, **kwargs)

    def __hash__(self) -> int:
        return self._sim_order


class SimLoop(asyncio.SelectorEventLoop, SimulatedTime):
    """An asyncio event loop on virtual time that autojumps to the next timer when idle."""

    def __init__(
        self,
        *,
        start: float = 0.0,
        epoch_s: float = DEFAULT_EPOCH_S,
        real_wait_limit_s: float = DEFAULT_REAL_WAIT_LIMIT_S,
    ) -> None:
        self.virtual_clock = VirtualClock(start)
        self.epoch_s = epoch_s
        self._real_jobs = 0
        selector = _AutojumpSelector(
            self.virtual_clock, self._real_work_pending, self._deadlock_error, real_wait_limit_s
        )
        super().__init__(selector)
        self._tasks_created = 0
        self.set_task_factory(self._make_task)

    def _make_task(
        self,
        loop: asyncio.AbstractEventLoop,
        coro: Generator[Any, None, _T] | Coroutine[Any, Any, _T],
        /,
        **kwargs: Any,
    ) -> asyncio.Task[_T]:
        """The task factory: a `_SimTask`, numbered in creation order (module doc)."""
        self._tasks_created += 1
        return _SimTask(coro, loop=loop, order=self._tasks_created, **kwargs)

    def time(self) -> float:
        """Virtual monotonic seconds."""
        return self.virtual_clock.now_s

    def wall_time(self) -> float:
        """Virtual Unix time: `epoch_s` plus the virtual time."""
        return self.epoch_s + self.virtual_clock.now_s

    def run_in_executor(
        self,
        executor: Executor | None,
        func: Callable[[*_Ts], _T],
        *args: *_Ts,
    ) -> asyncio.Future[_T]:
        """Default executor: run `func` inline next turn. An explicit one: real, and waited for."""
        if executor is not None:
            real = super().run_in_executor(executor, func, *args)
            self._real_jobs += 1
            real.add_done_callback(self._real_job_done)
            return real
        self._check_closed()  # type: ignore[attr-defined]
        future: asyncio.Future[_T] = self.create_future()
        self.call_soon(_run_inline, future, func, args)
        return future

    def _real_job_done(self, _future: asyncio.Future[Any]) -> None:
        self._real_jobs -= 1

    def _real_work_pending(self) -> bool:
        return self._real_jobs > 0

    def _deadlock_error(self) -> SimDeadlockError:
        tasks = sorted(asyncio.all_tasks(self), key=lambda task: task.get_name())
        lines = [f"{task.get_name()} at {_suspended_at(task)}" for task in tasks]
        if len(lines) > _MAX_TASKS_REPORTED:
            lines[_MAX_TASKS_REPORTED:] = [f"… and {len(lines) - _MAX_TASKS_REPORTED} more"]
        waiting = "; ".join(lines) or "no tasks"
        return SimDeadlockError(
            f"deadlock at virtual time {self.time():.6f} s: no callback is ready, no timer is "
            f"scheduled and no real work is in flight, so nothing can wake a task ({waiting})"
        )


def _run_inline(future: asyncio.Future[_T], func: Callable[..., _T], args: tuple[Any, ...]) -> None:
    """Run executor work on the loop's thread and settle its future, as the executor would."""
    if future.cancelled():
        return
    try:
        result = func(*args)
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        future.set_exception(exc)
    else:
        future.set_result(result)


def _suspended_at(task: asyncio.Task[Any]) -> str:
    """`function (file:line)` of the innermost coroutine `task` is suspended in."""
    frame: FrameType | None = None
    awaited: Any = task.get_coro()
    while awaited is not None:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None) or frame
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    if frame is None:
        return "?"
    return f"{frame.f_code.co_name} ({frame.f_code.co_filename}:{frame.f_lineno})"


def run(
    coro: Coroutine[Any, Any, _T],
    *,
    start: float = 0.0,
    epoch_s: float = DEFAULT_EPOCH_S,
) -> _T:
    """Run `coro` to completion on a fresh `SimLoop` starting at virtual time `start`.

    Like `asyncio.run`: tasks left over are cancelled and the loop is closed. Raises
    `SimDeadlockError` if every task ends up waiting for something that can never happen.
    """
    # The garbage collector runs when allocations say, which the hash seed and the machine's
    # state change; finalizers it runs (an unclosed response closing its connection, say) then
    # act at different points of two runs of one seed. So it runs at fixed turns of the loop.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        with asyncio.Runner(loop_factory=lambda: SimLoop(start=start, epoch_s=epoch_s)) as runner:
            return runner.run(coro)
    finally:
        if was_enabled:
            gc.enable()

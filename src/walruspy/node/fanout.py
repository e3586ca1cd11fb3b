"""One fan-out helper: ask many peers, stop once the answers suffice (STYLE.md 7).

Theory of operation (spec/walrus-system.md 3.4 and 5; Walrus `committee/request_futures.rs`):
blob sync asks other committee members for metadata (the first valid answer wins) and for
recovery symbols (until enough distinct verified symbols arrived). `fan_out` runs one call per
peer, in the given order, with at most `max_in_flight` calls at once and, when given weights,
only while the weight in flight is below what is still missing; it treats every result and every
expected failure as a value, stops launching calls and cancels the stragglers as soon as
`enough(results)` holds, and gives up after `timeout_s`. Unexpected exceptions (bugs) propagate,
so they are never silently counted as a peer's failure.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from walruspy.core.errors import WalrusError

T = TypeVar("T")
R = TypeVar("R")

#: What a peer's call may fail with and still be "a peer's failure": our errors and timeouts.
EXPECTED_FAILURES: tuple[type[BaseException], ...] = (WalrusError, TimeoutError)


@dataclass(slots=True)
class FanOutResult(Generic[T, R]):
    """Results and failures per peer, and whether `enough` was reached."""

    results: list[tuple[T, R]] = field(default_factory=list)
    failures: list[tuple[T, BaseException]] = field(default_factory=list)
    enough: bool = False
    timed_out: bool = False


async def fan_out(
    items: Sequence[T],
    call: Callable[[T], Awaitable[R]],
    enough: Callable[[list[tuple[T, R]]], bool],
    *,
    max_in_flight: int,
    timeout_s: float,
    weight: Callable[[T], int] | None = None,
    missing: Callable[[], int] | None = None,
) -> FanOutResult[T, R]:
    """Call `call(item)` for items, in order, until `enough(results)` holds.

    At most `max_in_flight` calls run at once. With `weight` and `missing`, a call is started
    only while the weight in flight is below what is still `missing()` (Walrus asks nodes until
    their shard weight covers what it needs, and asks more only when some fail), so a recovery
    does not download every peer's answer when a few suffice.
    """
    if max_in_flight < 1:
        raise ValueError("max_in_flight must be at least 1")
    outcome: FanOutResult[T, R] = FanOutResult()
    if not items:
        return outcome
    finished = asyncio.Event()
    turn = asyncio.Condition()
    in_flight = [0, 0]  # calls, weight
    pending = len(items)

    def may_start() -> bool:
        if finished.is_set():
            return True
        if in_flight[0] >= max_in_flight:
            return False
        return missing is None or in_flight[1] < missing()

    async def one(item: T) -> None:
        nonlocal pending
        item_weight = 1 if weight is None else weight(item)
        started = False
        try:
            async with turn:
                await turn.wait_for(may_start)
                if finished.is_set():
                    return
                in_flight[0] += 1
                in_flight[1] += item_weight
                started = True
            try:
                result = await call(item)
            except EXPECTED_FAILURES as exc:
                outcome.failures.append((item, exc))
                return
            outcome.results.append((item, result))
            if enough(outcome.results):
                outcome.enough = True
                finished.set()
        finally:
            pending -= 1
            if pending == 0:
                finished.set()
            if started:
                in_flight[0] -= 1
                in_flight[1] -= item_weight
            await _notify(turn)

    try:
        async with asyncio.timeout(timeout_s), asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(item)) for item in items]
            await finished.wait()
            for task in tasks:
                task.cancel()
    except TimeoutError:
        outcome.timed_out = True
    return outcome


async def _notify(condition: asyncio.Condition) -> None:
    """Wake the calls waiting for their turn."""
    async with condition:
        condition.notify_all()

"""The fan-out helper: failures are values, enough stops the stragglers, limits hold."""

from __future__ import annotations

import asyncio

import pytest

from walruspy.core.errors import VerificationError
from walruspy.node.fanout import fan_out


async def test_stops_once_enough_and_cancels_stragglers() -> None:
    cancelled: list[int] = []

    async def call(item: int) -> int:
        try:
            await asyncio.sleep(0.001 if item < 3 else 10)
        except asyncio.CancelledError:
            cancelled.append(item)
            raise
        return item * 10

    outcome = await fan_out(
        list(range(6)), call, lambda results: len(results) >= 3, max_in_flight=6, timeout_s=5
    )
    assert outcome.enough and not outcome.timed_out
    assert sorted(r for _, r in outcome.results) == [0, 10, 20]
    assert sorted(cancelled) == [3, 4, 5]


async def test_failures_are_values_and_all_are_tried() -> None:
    async def call(item: int) -> int:
        if item % 2:
            raise VerificationError(f"bad {item}")
        if item == 4:
            raise TimeoutError
        return item

    outcome = await fan_out(list(range(6)), call, lambda r: False, max_in_flight=2, timeout_s=5)
    assert not outcome.enough
    assert sorted(item for item, _ in outcome.results) == [0, 2]
    assert sorted(item for item, _ in outcome.failures) == [1, 3, 4, 5]


async def test_max_in_flight_is_respected() -> None:
    running = peak = 0

    async def call(item: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.002)
        running -= 1
        return item

    await fan_out(list(range(20)), call, lambda r: False, max_in_flight=3, timeout_s=5)
    assert peak == 3


async def test_timeout_returns_what_arrived() -> None:
    async def call(item: int) -> int:
        await asyncio.sleep(0 if item == 0 else 10)
        return item

    outcome = await fan_out([0, 1, 2], call, lambda r: False, max_in_flight=3, timeout_s=0.05)
    assert outcome.timed_out and [r for _, r in outcome.results] == [0]


async def test_a_bug_is_not_a_peer_failure() -> None:
    async def call(item: int) -> int:
        raise KeyError(item)

    with pytest.raises(ExceptionGroup):
        await fan_out([1], call, lambda r: False, max_in_flight=1, timeout_s=1)


async def test_no_items() -> None:
    async def call(item: int) -> int:
        return item

    outcome = await fan_out([], call, bool, max_in_flight=1, timeout_s=1)
    assert not outcome.results and not outcome.enough


async def test_weights_limit_what_is_asked() -> None:
    """Peers are asked only while their weight in flight is below what is missing."""
    collected: list[int] = []
    asked: list[int] = []

    async def call(item: int) -> int:
        asked.append(item)
        await asyncio.sleep(0.001)
        if item == 1:
            raise VerificationError("liar")
        collected.extend([item] * 3)  # each peer brings 3 symbols
        return item

    outcome = await fan_out(
        list(range(10)),
        call,
        lambda r: len(collected) >= 7,
        max_in_flight=10,
        timeout_s=5,
        weight=lambda item: 3,
        missing=lambda: 7 - len(collected),
    )
    assert outcome.enough
    # 3 peers cover 7; the liar's failure brings in exactly one more.
    assert asked == [0, 1, 2, 3]

"""The client's per-node plumbing: retries with backoff, the byte budget, error groups."""

from __future__ import annotations

import asyncio
import random

import pytest

from walruspy.client.config import BackoffConfig
from walruspy.client.nodes import ByteBudget, is_forbidden, is_not_found, retrying
from walruspy.node_api import errors as api_errors
from walruspy.tasks import first_error

FAST = BackoffConfig(min_backoff_s=0.001, max_backoff_s=0.004, max_retries=3)


async def test_retrying_retries_only_passing_refusals_and_only_so_often() -> None:
    attempts: list[int] = []

    async def lagging() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise api_errors.NotRegisteredError()
        return "stored"

    assert await retrying(lagging, FAST, random.Random(1)) == "stored"
    assert len(attempts) == 3

    attempts.clear()

    async def overloaded() -> str:
        attempts.append(1)
        raise api_errors.TooManyRequestsError()

    with pytest.raises(api_errors.TooManyRequestsError):
        await retrying(overloaded, FAST, random.Random(1))
    assert len(attempts) == FAST.max_retries + 1

    attempts.clear()

    async def broken() -> str:
        attempts.append(1)
        raise api_errors.InvalidSliverError()

    with pytest.raises(api_errors.InvalidSliverError):
        await retrying(broken, FAST, random.Random(1))
    assert len(attempts) == 1


async def test_the_byte_budget_bounds_what_is_held_at_once() -> None:
    budget = ByteBudget(100)
    held, peak = 0, 0

    async def use(size: int) -> None:
        nonlocal held, peak
        async with budget.hold(size):
            held += min(size, 100)
            peak = max(peak, held)
            await asyncio.sleep(0.005)
            held -= min(size, 100)

    async with asyncio.TaskGroup() as group:
        for size in (60, 60, 30, 10, 250, 40):
            group.create_task(use(size))
    assert peak <= 100
    assert budget.used == 0
    with pytest.raises(ValueError, match="positive limit"):
        ByteBudget(0)


async def test_a_cancelled_holder_returns_its_bytes() -> None:
    budget = ByteBudget(10)

    async def hold_forever() -> None:
        async with budget.hold(10):
            await asyncio.sleep(10)

    task = asyncio.create_task(hold_forever())
    await asyncio.sleep(0.01)
    assert budget.used == 10
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert budget.used == 0
    async with asyncio.timeout(1), budget.hold(10):
        assert budget.used == 10


def test_first_error_finds_the_cause_in_nested_groups() -> None:
    cause = ValueError("the cause")
    group = BaseExceptionGroup(
        "outer", [asyncio.CancelledError(), ExceptionGroup("inner", [cause])]
    )
    assert first_error(group) is cause
    only_cancelled = BaseExceptionGroup("g", [asyncio.CancelledError()])
    assert first_error(only_cancelled) is only_cancelled


def test_not_found_and_forbidden_answers_are_told_apart() -> None:
    assert is_not_found(api_errors.MetadataNotFoundError())
    assert is_not_found(api_errors.SliverNotFoundError())
    assert not is_not_found(api_errors.NotRegisteredError())
    assert is_forbidden(api_errors.ForbiddenBlobError())
    assert not is_forbidden(api_errors.SliverNotFoundError())

"""Awaiting several things at once: concurrent reads, and the error that matters in a group.

A leaf beside `clock` and `backoff`: the chain client reads many views at once, a store reads
the committee while it asks for the blob's status, and every task group reports the first real
failure of its children, not the cancellations that followed it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any


async def gather_reads(*calls: Awaitable[Any]) -> list[Any]:
    """Await `calls` concurrently, in a task group: the first failure cancels the others.

    Unlike `asyncio.gather`, no call outlives a failed sibling (one that did would go on
    using, and re-open, a connection pool its client has closed); the failure is raised as
    itself, not as an ExceptionGroup.
    """
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(_awaited(call)) for call in calls]
    except BaseExceptionGroup as failures:
        raise failures.exceptions[0] from None
    return [task.result() for task in tasks]


async def _awaited(call: Awaitable[Any]) -> Any:
    return await call


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first error in a (nested) exception group that is not a cancellation."""
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            return first_error(error)
        if not isinstance(error, asyncio.CancelledError):
            return error
    return group

"""What the node's queue-fed background workers share: a backlog, an idle signal, a session.

Theory of operation (STYLE.md 6). Blob sync (`recovery.BlobSyncer`) and invalidation
(`invalidation.Invalidator`) each keep a bounded queue of blob IDs served by a fixed set of
worker tasks that talk to the other members. Both publish their backlog (queued plus running)
as a gauge, let tests and the devnet wait until it is empty, and run their tasks in one task
group with one HTTP session, their own unless the caller lends one; that part is here.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Coroutine, Iterable
from typing import Any

import aiohttp
from prometheus_client import Gauge


class BackgroundWorkers(abc.ABC):
    """Tasks fed by a queue: `backlog` and `tasks` are the subclass's (module docstring)."""

    def __init__(self, backlog_gauge: Gauge, session: aiohttp.ClientSession | None) -> None:
        self._backlog_gauge = backlog_gauge
        self._session = session
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    @abc.abstractmethod
    def backlog(self) -> int:
        """Jobs queued or running."""

    @abc.abstractmethod
    def tasks(self) -> Iterable[Coroutine[Any, Any, None]]:
        """The coroutines that run until cancelled: the workers, and any periodic job."""

    def _update_backlog(self) -> None:
        backlog = self.backlog
        self._backlog_gauge.set(backlog)
        if backlog == 0:
            self._idle.set()
        else:
            self._idle.clear()

    async def wait_idle(self) -> None:
        """Wait until no job is queued or running (for tests and the devnet)."""
        await self._idle.wait()

    async def run(self) -> None:
        """Run `tasks` until cancelled, with an HTTP session of their own if none was lent."""
        own_session = self._session is None
        if own_session:
            self._session = aiohttp.ClientSession()
        try:
            async with asyncio.TaskGroup() as group:
                for task in self.tasks():
                    group.create_task(task)
        finally:
            if own_session and self._session is not None:
                await self._session.close()

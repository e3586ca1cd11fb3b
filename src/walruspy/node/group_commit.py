"""Group commit of sliver writes: concurrent uploads share one transaction and one fsync.

Theory of operation (spec/walrus-system.md 3.2; Walrus writes each sliver in its own RocksDB
batch and leans on RocksDB's group commit of its write-ahead log, which LMDB does not have).
Every sliver a node acknowledges must be durable first, and LMDB makes a write transaction
durable with an fsync; write transactions are serialized. So a client uploading the 20-50
slivers it owes a node at once used to queue 20-50 fsyncs one behind the other, most of a small
store's upload time.

`SliverWriter.put` queues a write and waits for its outcome. While no flush runs, the first
write starts one; a flush takes everything queued (up to `MAX_GROUP_BYTES`) and stores it with
`NodeStore.put_sliver_group` in one transaction on a worker thread. Writes that arrive during a
flush wait for the next one, which starts as soon as it ends, so a lone write waits for nothing
and a burst pays a few commits. Each write gets its own outcome: new, already stored, or the
error that refused it alone (no metadata any more, a shard without storage); a store failure
fails every write of its flush. A caller that gives up waiting (a cancelled request) does not
withdraw its write: it was verified and may still be committed, which is harmless. A crash in
the flush (the fail point `node.after_sliver_write`, which fires once a group is committed and
before its writers are told) is handed to every waiting writer, so none waits forever.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from walruspy.core.types import SliverType
from walruspy.failpoints import failpoint
from walruspy.node.store import NodeStore

#: Sliver bytes of one flush: large slivers (MiBs) are committed a few at a time, so one
#: flush never holds a big upload's data in memory for long.
MAX_GROUP_BYTES = 64 << 20


@dataclass(slots=True)
class _Write:
    shard: int
    sliver_type: SliverType
    blob_id: bytes
    sliver: bytes
    done: asyncio.Future[bool] = field(repr=False)


class SliverWriter:
    """Sliver writes to one store, committed in groups (module docstring)."""

    def __init__(self, store: NodeStore) -> None:
        self.store = store
        self._queue: deque[_Write] = deque()
        self._flusher: asyncio.Task[None] | None = None
        #: Commits made and writes they carried (for tests and metrics).
        self.commits = 0
        self.writes = 0

    async def put(self, shard: int, sliver_type: SliverType, blob_id: bytes, sliver: bytes) -> bool:
        """Store one BCS sliver durably: True if new, False if it was stored already.

        Raises what refused it: `NoMetadataError`, `ValueError` (a shard without storage), or
        the store's error.
        """
        (new,) = await self.put_many([(shard, sliver_type, blob_id, sliver)])
        return new

    async def put_many(self, items: Sequence[tuple[int, SliverType, bytes, bytes]]) -> list[bool]:
        """`put` of each (shard, type, blob ID, BCS sliver), queued together (so they share
        commits) and awaited as futures, with no task each; raises the first error once every
        write has its outcome."""
        loop = asyncio.get_running_loop()
        writes = [_Write(*item, loop.create_future()) for item in items]
        self._queue.extend(writes)
        if writes and (self._flusher is None or self._flusher.done()):
            self._flusher = asyncio.create_task(self._flush_all())
        outcomes = await asyncio.gather(*(write.done for write in writes), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return [bool(outcome) for outcome in outcomes]

    def _next_group(self) -> list[_Write]:
        group = [self._queue.popleft()]
        size = len(group[0].sliver)
        while self._queue and size + len(self._queue[0].sliver) <= MAX_GROUP_BYTES:
            group.append(self._queue.popleft())
            size += len(group[-1].sliver)
        return group

    async def _flush_all(self) -> None:
        while self._queue:
            group = self._next_group()
            items = [(w.shard, w.sliver_type, w.blob_id, w.sliver) for w in group]
            try:
                outcomes = await asyncio.to_thread(self.store.put_sliver_group, items)
                failpoint("node.after_sliver_write")
            except asyncio.CancelledError:  # the node is stopping: nobody waits any more
                for write in [*group, *self._queue]:
                    write.done.cancel()
                self._queue.clear()
                raise
            except Exception as exc:  # the store failed: every write of this group fails
                for write in group:
                    _settle(write.done, exc)
                continue
            except BaseException as exc:  # a crash: every writer learns it, then the flush dies
                for write in [*group, *self._queue]:
                    _settle(write.done, exc)
                self._queue.clear()
                raise
            self.commits += 1
            self.writes += len(group)
            for write, outcome in zip(group, outcomes, strict=True):
                _settle(write.done, outcome)


def _settle(done: asyncio.Future[bool], outcome: bool | BaseException) -> None:
    if done.done():
        return
    if isinstance(outcome, BaseException):
        done.set_exception(outcome)
    else:
        done.set_result(outcome)

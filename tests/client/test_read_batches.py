"""`SliverBatches.close` stops the batch reads still running in the order they started.

The simulator's finding (churn seed 5, `python -m walruspy.sim --seed 5 --virtual-hours 0.2
--faults churn`, run twice with different hash seeds): a read that had two batch reads left
cancelled them in the iteration order of a set of tasks, which follows the tasks' addresses, so
two runs of one seed closed the two connections in different orders and their traces differed.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

from walruspy.client.nodes import Node
from walruspy.client.read import SliverBatches
from walruspy.core.metadata import VerifiedBlobMetadataWithId
from walruspy.core.types import SliverPairIndex, SliverType

N_NODES = 40


async def test_close_cancels_the_running_batch_reads_in_the_order_they_started() -> None:
    started: list[int] = []
    cancelled: list[int] = []
    all_started = asyncio.Event()

    def node(index: int) -> Node:
        async def call(request: Any) -> Any:
            started.append(index)
            if len(started) == N_NODES:
                all_started.set()
            try:
                await asyncio.Event().wait()  # the node never answers
            except asyncio.CancelledError:
                cancelled.append(index)
                raise

        fake = SimpleNamespace(
            member=SimpleNamespace(node_id=bytes([index]) * 32),
            client=SimpleNamespace(batch_read=True),
            call=call,
        )
        return cast(Node, fake)

    metadata = cast(VerifiedBlobMetadataWithId, None)  # only the requests, faked here, read it
    batches = SliverBatches(metadata, SliverType.PRIMARY)
    readers = [
        asyncio.create_task(batches.get(node(i), SliverPairIndex(0))) for i in range(N_NODES)
    ]
    await all_started.wait()
    for reader in readers:  # the waiters give up, as a read that has enough slivers does
        reader.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    await batches.close()
    assert started == list(range(N_NODES))
    assert cancelled == started

"""Crashes at the event processor's fail points lose no event and apply none twice.

The processor writes an event's records with the advanced cursor in one transaction
(node/events.py): a crash before it (`events.after_decide`) leaves the event to be applied after
the restart, a crash after it (`events.after_persist`) leaves it applied, and in both cases the
restarted node has applied every event exactly once.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.node.cluster import ClusterNode, blob_data, open_cluster, runs
from walruspy import failpoints
from walruspy.core.blob_id import BlobId
from walruspy.node_api.schemas import Permanent


async def crashed(node: ClusterNode) -> failpoints.FailPointCrash:
    """Wait for `node` to end with a fail point crash (in its task groups), forget its task."""
    assert node.task is not None
    async with asyncio.timeout(30):
        await asyncio.wait([node.task])
    error = node.task.exception()
    node.task = None
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    assert isinstance(error, failpoints.FailPointCrash), error
    return error


@pytest.mark.parametrize("point", ["events.after_decide", "events.after_persist"])
async def test_a_crash_around_the_event_commit_loses_nothing(tmp_path: Path, point: str) -> None:
    async with open_cluster(tmp_path, (10,)) as cluster:
        node = cluster.nodes[0]
        await cluster.wait_for_events()
        applied_before = runs(node).processor.events_applied
        blob_id = BlobId(blob_data(1, 32))
        with failpoints.armed(point, failpoints.Crash()):
            cluster.chain.register(blob_id)
            error = await crashed(node)
        assert error.name == point
        await cluster.start(node)
        await cluster.wait_for_events()
        processor = runs(node).processor
        assert processor.events_applied == applied_before + 1 == cluster.chain.event_count
        status = await cluster.client(node).blob_status(blob_id)
        assert isinstance(status, Permanent)

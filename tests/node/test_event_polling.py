"""When a caught-up event processor polls again (`EventProcessor.idle`, module doc "Polling" of
walruspy.node.events), on the simulator's virtual clock: exact instants, no real waiting; and a
node whose chain pushes new heads applies an event at once, not at its next poll."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tests.node.cluster import open_cluster
from walruspy.clock import now
from walruspy.core.blob_id import BlobId
from walruspy.node.events import MIN_POLL_GAP_S, EventProcessor
from walruspy.node.view import RegistrationWaiters
from walruspy.sim.loop import run

INTERVAL_S = 60.0


def poller(waiters: RegistrationWaiters, new_head: asyncio.Event | None = None) -> Any:
    """What `idle` reads of its processor: the polling interval, the registration waiters and
    the new-head bell."""
    return SimpleNamespace(
        config=SimpleNamespace(event_polling_interval_s=INTERVAL_S),
        registrations=waiters,
        _new_head=new_head or asyncio.Event(),
        _polled_at=float("-inf"),
    )


def idle_time(scenario: Any, new_head: asyncio.Event | None = None) -> float:
    async def main() -> float:
        waiters = RegistrationWaiters(max_waiters=8)
        background = asyncio.create_task(scenario(waiters))
        start = now()
        await EventProcessor.idle(poller(waiters, new_head))
        background.cancel()
        return now() - start

    return run(main())


def test_with_nobody_waiting_it_polls_at_its_interval() -> None:
    async def nothing(_waiters: RegistrationWaiters) -> None:
        await asyncio.sleep(3600)

    assert idle_time(nothing) == INTERVAL_S


def test_a_request_waiting_for_an_unseen_registration_makes_it_poll_at_once() -> None:
    async def confirmation_request(waiters: RegistrationWaiters) -> None:
        await asyncio.sleep(5)
        await waiters.wait(b"\x01" * 32, 3600)

    assert idle_time(confirmation_request) == 5.0


def test_it_never_polls_twice_within_the_minimum_gap() -> None:
    async def at_once(waiters: RegistrationWaiters) -> None:
        await waiters.wait(b"\x01" * 32, 3600)

    assert idle_time(at_once) == MIN_POLL_GAP_S


def test_while_requests_wait_it_polls_every_quarter_interval() -> None:
    async def still_waiting(waiters: RegistrationWaiters) -> None:
        await waiters.wait(b"\x01" * 32, 3600)

    async def main() -> float:
        waiters = RegistrationWaiters(max_waiters=8)
        waiting = asyncio.create_task(still_waiting(waiters))
        await EventProcessor.idle(poller(waiters))  # the poll the new waiter asked for
        start = now()
        await EventProcessor.idle(poller(waiters))  # it still waits: no new request
        waiting.cancel()
        return now() - start

    assert run(main()) == INTERVAL_S / 4


def test_a_new_head_makes_it_poll_at_once() -> None:
    bell = asyncio.Event()

    async def mined(_waiters: RegistrationWaiters) -> None:
        await asyncio.sleep(7)
        bell.set()

    assert idle_time(mined, bell) == 7.0
    assert not bell.is_set()  # rung once: the next pause waits for the next head

    async def twice() -> tuple[float, float]:
        waiters, head = RegistrationWaiters(max_waiters=8), asyncio.Event()
        head.set()  # a block mined during the last poll
        start = now()
        await EventProcessor.idle(poller(waiters, head))
        middle = now()
        await EventProcessor.idle(poller(waiters, head))
        return middle - start, now() - middle

    assert run(twice()) == (0.0, INTERVAL_S)


async def test_a_node_applies_an_event_when_the_head_is_pushed(tmp_path: Path) -> None:
    """An in-process node on the fake chain, which pushes its heads (as the devchain and anvil
    do over a WebSocket): with a poll interval of a minute, a registration still reaches it at
    once; on a chain without subscriptions it waits for the next poll."""
    for push in (True, False):
        async with open_cluster(tmp_path / str(push), start=False) as cluster:
            node = cluster.nodes[0]
            node.config = replace(
                node.config, chain=replace(node.config.chain, event_polling_interval_s=60.0)
            )
            cluster.chain.push_heads = push
            await cluster.start(node)
            assert node.node is not None and node.node.processor is not None
            processor = node.node.processor
            async with asyncio.timeout(30):
                await processor.caught_up.wait()
            await asyncio.sleep(0.2)  # well into its minute of idling
            applied = processor.events_applied
            cluster.chain.register(BlobId(bytes(32)))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    await processor.wait_for_events(applied + 1)
            assert (processor.events_applied > applied) is push


def test_however_fast_blocks_come_polls_start_a_gap_apart() -> None:
    async def main() -> float:
        waiters, head = RegistrationWaiters(max_waiters=8), asyncio.Event()
        processor = poller(waiters, head)
        processor._polled_at = now()  # a poll just started, and a block came meanwhile
        head.set()
        start = now()
        await EventProcessor.idle(processor)
        return now() - start

    assert run(main()) == MIN_POLL_GAP_S


async def test_a_failing_push_leaves_the_polls_alone(tmp_path: Path) -> None:
    async with open_cluster(tmp_path, start=False) as cluster:

        async def broken(on_head: Any, ws_url: str | None = None) -> None:
            raise RuntimeError("a defect in the push")

        cluster.chain.watch_heads = broken  # type: ignore[method-assign]
        node = cluster.nodes[0]
        await cluster.start(node)
        assert node.node is not None and node.node.processor is not None
        applied = node.node.processor.events_applied
        cluster.chain.register(BlobId(bytes(32)))
        async with asyncio.timeout(30):
            await node.node.processor.wait_for_events(applied + 1)

"""When a caught-up event processor polls again (`EventProcessor.idle`, module doc "Polling" of
walruspy.node.events), on the simulator's virtual clock: exact instants, no real waiting."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from walruspy.clock import now
from walruspy.node.events import MIN_POLL_GAP_S, EventProcessor
from walruspy.node.view import RegistrationWaiters
from walruspy.sim.loop import run

INTERVAL_S = 60.0


def poller(waiters: RegistrationWaiters) -> Any:
    """What `idle` reads of its processor: the polling interval and the registration waiters."""
    return SimpleNamespace(
        config=SimpleNamespace(event_polling_interval_s=INTERVAL_S), registrations=waiters
    )


def idle_time(scenario: Any) -> float:
    async def main() -> float:
        waiters = RegistrationWaiters(max_waiters=8)
        background = asyncio.create_task(scenario(waiters))
        start = now()
        await EventProcessor.idle(poller(waiters))
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

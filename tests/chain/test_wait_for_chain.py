"""A long-running process started before its chain waits for it (a full restart, any order).

The devchain is started, deployed to and stopped; `open_evm_chain_when_up` is entered while
nothing listens on its port, and the chain is started again on the same port and state: the
wait ends and the deployment is read. A URL that never answers is waited on until cancelled.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.chain.backends import start_devchain
from tests.chain.test_evm_chain import COMMITTEE_4, deploy_now
from walruspy.chain.evm import open_evm_chain_when_up

pytestmark = pytest.mark.timeout(180)


async def test_a_process_started_before_its_chain_waits_for_it(tmp_path: Path) -> None:
    chain_process = start_devchain(tmp_path / "state")
    try:
        deployment = await asyncio.to_thread(deploy_now, chain_process, COMMITTEE_4)
    finally:
        chain_process.stop()
    url = chain_process.url
    port = urlparse(url).port
    assert port is not None

    async def read_epoch() -> int:
        async with open_evm_chain_when_up([url], deployment, backoff_s=(0.1, 0.5)) as chain:
            return (await chain.system_info()).epoch

    waiting = asyncio.create_task(read_epoch())
    await asyncio.sleep(1.0)
    assert not waiting.done()  # nothing listens yet: it waits instead of failing
    restarted = await asyncio.to_thread(start_devchain, tmp_path / "state", port)
    try:
        async with asyncio.timeout(60):
            assert await waiting == 1
    finally:
        restarted.stop()


async def test_the_wait_ends_only_when_cancelled(tmp_path: Path) -> None:
    chain_process = start_devchain(tmp_path / "state")
    try:
        deployment = await asyncio.to_thread(deploy_now, chain_process, COMMITTEE_4)
    finally:
        chain_process.stop()
    waiting = asyncio.create_task(
        open_evm_chain_when_up([chain_process.url], deployment, backoff_s=(0.05, 0.1)).__aenter__()
    )
    await asyncio.sleep(0.5)
    assert not waiting.done()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting

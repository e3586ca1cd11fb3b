"""A long-running process started before its chain waits for it (a full restart, any order).

The devchain is started, deployed to and stopped; `open_evm_chain_when_up` is entered while
nothing listens on its port, and the chain is started again on the same port and state: the
wait ends and the deployment is read. A URL that never answers is waited on until cancelled. A
real node process started before its chain answers 503 until the chain is up, then serves.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import aiohttp
import pytest

from tests.chain.backends import start_devchain
from tests.chain.test_evm_chain import COMMITTEE_4, deploy_now
from walruspy.chain.evm import open_evm_chain_when_up
from walruspy.node.keys import keygen

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


async def test_a_node_and_an_aggregator_answer_503_until_their_chain_answers(
    tmp_path: Path,
) -> None:
    """A real node and a real aggregator started before their chain: every route says they are
    waiting (503 UNAVAILABLE naming the chain), and they serve once the chain is up."""
    chain_process = start_devchain(tmp_path / "state")
    try:
        deployment = await asyncio.to_thread(deploy_now, chain_process, COMMITTEE_4)
    finally:
        chain_process.stop()
    chain_port = urlparse(chain_process.url).port
    assert chain_port is not None
    deployment.save(tmp_path / "deployment.json")
    keygen(tmp_path / "keys")
    node_port, daemon_port = free_port(), free_port()
    (tmp_path / "client.yaml").write_text(
        f"rpc_url: {chain_process.url}\ndeployment: {tmp_path / 'deployment.json'}\n"
    )
    daemon = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "walruspy.cli.main", "aggregator", "--config"),
        *(str(tmp_path / "client.yaml"), "--bind-address", f"127.0.0.1:{daemon_port}"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    config = tmp_path / "node.yaml"
    config.write_text(
        f"name: early-node\nstorage_path: {tmp_path / 'db'}\n"
        f"rest_api_address: 127.0.0.1:{node_port}\n"
        f"protocol_key_path: {tmp_path / 'keys' / 'protocol.key'}\n"
        f"wallet_key_path: {tmp_path / 'keys' / 'wallet.key'}\n"
        f"chain:\n  rpc_url: {chain_process.url}\n"
        f"  deployment_file: {tmp_path / 'deployment.json'}\n"
    )
    node = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "walruspy.cli.main", "node", "run", "--config", str(config)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    health = f"http://127.0.0.1:{node_port}/v1/health"
    api_docs = f"http://127.0.0.1:{daemon_port}/v1/api"
    restarted = None
    try:
        async with aiohttp.ClientSession() as http:

            async def answer(url: str) -> tuple[int, dict[str, object]]:
                async with asyncio.timeout(60):
                    while True:
                        try:
                            async with http.get(url) as response:
                                body = await response.read()
                                break
                        except aiohttp.ClientConnectionError:
                            await asyncio.sleep(0.1)
                return response.status, json.loads(body) if body.startswith(b"{") else {}

            for url, waiting in ((health, "storage node early-node"), (api_docs, "aggregator")):
                status, body = await answer(url)
                assert status == 503, url
                error = body["error"]
                assert isinstance(error, dict) and error["status"] == "UNAVAILABLE"
                assert f"{waiting} is waiting for its chain" in str(error["message"])
                # No keep-alive to the stand-in: the next request must reach the real server.
                async with http.get(url) as response:
                    assert response.headers.get("Connection", "").lower() == "close", url
            restarted = await asyncio.to_thread(start_devchain, tmp_path / "state", chain_port)
            for url in (health, api_docs):
                async with asyncio.timeout(90):
                    while (await answer(url))[0] != 200:  # noqa: ASYNC110 - another process
                        await asyncio.sleep(0.2)
    finally:
        for process in (node, daemon):
            process.terminate()
            _, stderr = await process.communicate()
            sys.stderr.write(stderr.decode(errors="replace")[-4000:])  # shown on failure
        if restarted is not None:
            restarted.stop()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])

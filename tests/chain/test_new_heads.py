"""New heads pushed over a WebSocket (chain/new_heads.py, and the devchain's `HeadFeed` in
chain/jsonrpc.py): on the devchain and on anvil as real processes, and the endpoint that has
none."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.chain.backends import ChainProcess
from tests.chain.test_evm_rpc import chain_id_node
from walruspy.chain.devchain import open_devchain
from walruspy.chain.new_heads import follow_new_heads, websocket_url

pytestmark = pytest.mark.timeout(120)


def test_websocket_url_is_the_rpc_url_with_the_ws_scheme() -> None:
    assert websocket_url("http://127.0.0.1:8545") == "ws://127.0.0.1:8545"
    assert websocket_url("https://rpc.example/v1/key") == "wss://rpc.example/v1/key"


async def rings_after(node_url: str, mine: Any, blocks: int) -> int:
    """How often `follow_new_heads` rang for `blocks` blocks mined after it connected."""
    rang = asyncio.Event()
    rings = 0

    def on_head() -> None:
        nonlocal rings
        rings += 1
        rang.set()

    watching = asyncio.create_task(follow_new_heads(websocket_url(node_url), on_head))
    try:
        async with asyncio.timeout(30):
            await rang.wait()  # connected: it rings once for what it may have missed
            for _ in range(blocks):
                rang.clear()
                await asyncio.to_thread(mine)
                await rang.wait()
        return rings - 1
    finally:
        watching.cancel()


async def test_each_block_mined_rings(node: ChainProcess) -> None:
    """The devchain and anvil push every new head to a subscriber."""
    assert await rings_after(node.url, lambda: node.rpc("evm_mine"), 3) >= 3


async def test_an_endpoint_without_websocket_leaves_polling_alone() -> None:
    async with chain_id_node() as w3:  # JSON-RPC over POST only: GET / answers 405
        rings: list[None] = []
        async with asyncio.timeout(10):  # it returns: no retry loop against a plain HTTP server
            await follow_new_heads(
                websocket_url(w3.provider.endpoint_uri), lambda: rings.append(None)
            )
        assert rings == []


async def test_the_devchain_websocket_speaks_json_rpc_and_subscriptions(tmp_path: Path) -> None:
    async with open_devchain(tmp_path, dev_methods=True) as chain, aiohttp.ClientSession() as http:
        async with http.get(chain.url) as plain:
            assert plain.status == 400  # GET without an upgrade
        async with http.ws_connect(websocket_url(chain.url)) as ws:

            async def ask(method: str, *params: Any) -> dict[str, Any]:
                await ws.send_str(
                    json.dumps({"jsonrpc": "2.0", "id": 7, "method": method, "params": params})
                )
                while True:
                    answer = json.loads((await ws.receive(timeout=10)).data)
                    if answer.get("id") == 7:
                        return dict(answer)

            assert (await ask("eth_blockNumber"))["result"] == "0x0"
            refused = await ask("eth_subscribe", "logs")
            assert refused["error"]["code"] == -32602 and "newHeads" in refused["error"]["message"]
            subscription = (await ask("eth_subscribe", "newHeads"))["result"]
            await ask("evm_mine")
            pushed = json.loads((await ws.receive(timeout=10)).data)
            assert pushed["method"] == "eth_subscription"
            assert pushed["params"]["subscription"] == subscription
            assert pushed["params"]["result"]["number"] == "0x1"
            assert "transactions" not in pushed["params"]["result"]
            assert (await ask("eth_unsubscribe", subscription))["result"] is True
            assert (await ask("eth_unsubscribe", subscription))["result"] is False
            await ask("evm_mine")
            with pytest.raises(TimeoutError):
                await ws.receive(timeout=0.5)  # unsubscribed: nothing more


async def test_the_devchain_stops_at_once_with_subscribers_connected(tmp_path: Path) -> None:
    """Open WebSockets are closed at shutdown (going away), not waited for: aiohttp would
    otherwise hold the stop for its whole shutdown timeout, a minute."""
    async with aiohttp.ClientSession() as http:
        chain_context = open_devchain(tmp_path)
        chain = await chain_context.__aenter__()
        ws = await http.ws_connect(websocket_url(chain.url))
        request = {"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]}
        await ws.send_str(json.dumps(request))
        assert "result" in json.loads((await ws.receive(timeout=10)).data)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await chain_context.__aexit__(None, None, None)
        assert loop.time() - started < 10
        closing = await ws.receive(timeout=10)
        assert closing.type in {aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED}
        await ws.close()

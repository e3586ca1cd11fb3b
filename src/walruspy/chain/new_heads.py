"""The chain's new blocks as they are mined: a WebSocket subscription to `newHeads`.

Theory of operation. geth, anvil and the devchain (chain/jsonrpc.py, `HeadFeed`) push each new
head to the subscribers of `eth_subscribe(["newHeads"])`. A node's event processor uses it as a
doorbell (node/events.py): it reads the chain's events as soon as a block is mined instead of at
its next poll, so the registration a client just paid for reaches the nodes while the client is
still reading its receipt. Nothing is taken from a notification but its arrival: the events
still come from `eth_getLogs`, in order and checked by block hash, so a lost, late or repeated
notification costs latency, never correctness, and the poll interval still bounds the lag.

The WebSocket URL is the JSON-RPC URL with `ws` for `http` (`wss` for `https`): anvil and the
devchain serve both on one port; `ws_url` names another (geth's port 8546, a provider's wss
URL). An endpoint that refuses the upgrade or the subscription has none: polling alone follows
the chain, and that is logged once. A connection that drops is made again with backoff.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Final

import aiohttp

from walruspy.backoff import Backoff
from walruspy.chain.evm_rpc import ConnectorFactory
from walruspy.logs import get_logger

log = get_logger("walruspy.chain.new_heads")

#: Handshake answers that mean "no WebSocket here" rather than "try again later".
_NO_WEBSOCKET: Final = frozenset({400, 401, 403, 404, 405, 426, 501})
_SUBSCRIBE_ID: Final = 1
RECONNECT_BACKOFF: Final = Backoff(0.5, 30.0)


def websocket_url(rpc_url: str) -> str:
    """The WebSocket URL served beside a JSON-RPC URL on the same port (anvil, devchain)."""
    for http, ws in (("https://", "wss://"), ("http://", "ws://")):
        if rpc_url.startswith(http):
            return ws + rpc_url[len(http) :]
    return rpc_url


async def follow_new_heads(
    url: str,
    on_head: Callable[[], None],
    *,
    connector: ConnectorFactory | None = None,
    connect_timeout_s: float = 10.0,
    backoff: Backoff = RECONNECT_BACKOFF,
) -> None:
    """Call `on_head` for every new block of the chain at `url` (a ws:// or wss:// URL),
    and once on each (re)connection, until cancelled; return if the endpoint has no
    newHeads subscription."""
    failures = 0

    def subscribed() -> None:
        nonlocal failures
        failures = 0

    timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout_s)
    async with aiohttp.ClientSession(
        connector=connector(force_close=False) if connector else None, timeout=timeout
    ) as session:
        while True:
            try:
                async with session.ws_connect(url, heartbeat=30.0, max_msg_size=1 << 20) as ws:
                    request = {
                        "jsonrpc": "2.0",
                        "id": _SUBSCRIBE_ID,
                        "method": "eth_subscribe",
                        "params": ["newHeads"],
                    }
                    await ws.send_str(json.dumps(request))
                    if not await _ring(ws, url, on_head, subscribed):
                        return
            except aiohttp.WSServerHandshakeError as exc:
                if exc.status in _NO_WEBSOCKET:
                    log.info(
                        "no WebSocket at the chain endpoint: polling alone",
                        url=url,
                        status=exc.status,
                    )
                    return
                error = f"handshake answered {exc.status}"
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                error = str(exc) or type(exc).__name__
            failures += 1
            delay = backoff.delay_s(failures)
            log.debug(
                "newHeads subscription lost; connecting again", url=url, error=error, delay_s=delay
            )
            await asyncio.sleep(delay)


async def _ring(
    ws: aiohttp.ClientWebSocketResponse,
    url: str,
    on_head: Callable[[], None],
    subscribed: Callable[[], None],
) -> bool:
    """`on_head` for each notification, and once when the subscription is answered (for blocks
    mined while not connected), until the connection ends (ConnectionError); False at once if
    the endpoint refuses the subscription. A head may come before the answer (the server's
    tasks race)."""
    async for message in ws:
        answer = _json(message)
        if answer.get("method") == "eth_subscription":
            on_head()
        elif answer.get("id") == _SUBSCRIBE_ID:
            if "error" in answer:
                log.info(
                    "the chain endpoint refuses newHeads subscriptions: polling alone",
                    url=url,
                    error=str(answer["error"])[:200],
                )
                return False
            subscribed()
            on_head()
    raise ConnectionError(f"the connection closed ({ws.close_code})")


def _json(message: aiohttp.WSMessage) -> dict[str, object]:
    if message.type != aiohttp.WSMsgType.TEXT:
        return {}
    try:
        value = json.loads(message.data)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}

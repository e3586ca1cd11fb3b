"""A lying storage node for fault tests: a proxy that corrupts the slivers and symbols it serves.

    python -m walruspy.devnet.proxy --listen 127.0.0.1:PORT --target http://127.0.0.1:NODE_PORT
        [--network-key FILE]

The devnet puts it in front of a node and gives the committee the proxy's address, so clients and
the other nodes reach that node only through it. Every request is forwarded unchanged; the answer
to a successful `GET /v1/blobs/{blob_id}/slivers/{pair}/{type}` comes back with one byte of the
sliver's data flipped (the last data byte, before the BCS `symbol_size` and `index` fields), so
it still parses but fails its Merkle check; so does every symbol of a successful
`GET .../recoverySymbols` (what peers heal themselves with). Everything else passes through: the
node is a Byzantine node that lies about data (spec/walrus-system.md 5, "Reads with faulty
nodes" and "Node misses slivers").
If the node is down, the proxy answers 502, as a dead node's address refuses connections.
With `--network-key` (a node serving TLS) the proxy serves TLS with a certificate for the node's
own network key, so clients pinning the key on chain accept it, as they would a node that lies
itself, and it reaches the node over TLS on the loopback interface.

Prints `proxy listening on URL` once serving; stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import re
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Final

import aiohttp
from aiohttp import web

from walruspy.core.errors import InvalidInputError
from walruspy.core.symbols import symbols_from_bcs, symbols_to_bcs
from walruspy.node_api.tls import client_context, node_server_context

__all__ = ["corrupt_sliver", "corrupt_symbols", "make_proxy_app"]

#: The sliver route of the node API (walruspy.node_api.paths.SLIVER_ROUTE).
_SLIVER_PATH: Final = re.compile(r"^/v1/blobs/[A-Za-z0-9_-]{43}/slivers/\d+/(primary|secondary)$")
#: The recovery-symbol route (walruspy.node_api.paths), which peers use to heal themselves.
_SYMBOLS_PATH: Final = re.compile(r"^/v1/blobs/[A-Za-z0-9_-]{43}/recoverySymbols$")
#: Bytes after a sliver's data in its BCS form: u16 symbol size and u16 index.
_SLIVER_TRAILER_BYTES: Final = 4
#: The largest body forwarded either way: a node's own request limit (64 MiB) and headroom.
MAX_FORWARDED_BYTES: Final = (64 << 20) + 4096
#: One forwarded request may take as long as a client would wait for the node itself.
FORWARD_TIMEOUT_S: Final = 300.0
_HOP_BY_HOP: Final = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "upgrade"}
)


def corrupt_sliver(body: bytes) -> bytes:
    """The BCS sliver with the last byte of its data flipped (parses, fails verification)."""
    if len(body) <= _SLIVER_TRAILER_BYTES + 1:
        return body
    position = len(body) - _SLIVER_TRAILER_BYTES - 1
    return body[:position] + bytes([body[position] ^ 0xFF]) + body[position + 1 :]


def corrupt_symbols(body: bytes) -> bytes:
    """The BCS recovery symbols with the last byte of every symbol's data flipped.

    They still parse, and each fails its Merkle proof: the receiver must drop them.
    """
    try:
        symbols = symbols_from_bcs(body)
    except InvalidInputError:
        return body
    return symbols_to_bcs(
        [
            dataclasses.replace(s, data=s.data[:-1] + bytes([s.data[-1] ^ 0xFF]))
            for s in symbols
            if s.data
        ]
    )


def make_proxy_app(
    target: str, connector: Callable[[], aiohttp.BaseConnector] | None = None
) -> web.Application:
    """The proxy in front of the node at `target` (see the module docstring); `connector`
    makes the connector it reaches the node with (the simulator's network), by default a
    `TCPConnector` accepting the node's self-signed TLS."""
    app = web.Application(client_max_size=MAX_FORWARDED_BYTES)
    session_key = web.AppKey("session", aiohttp.ClientSession)

    async def session_context(app: web.Application) -> AsyncIterator[None]:
        timeout = aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S)
        # The node behind is ours, on the loopback interface: its self-signed TLS is accepted.
        made = aiohttp.TCPConnector(ssl=client_context()) if connector is None else connector()
        async with aiohttp.ClientSession(
            timeout=timeout, auto_decompress=False, connector=made
        ) as session:
            app[session_key] = session
            yield

    async def forward(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        try:
            async with app[session_key].request(
                request.method, target + request.path_qs, data=body, headers=headers
            ) as answer:
                payload = await answer.read()
                status = answer.status
                answer_headers = {
                    k: v for k, v in answer.headers.items() if k.lower() not in _HOP_BY_HOP
                }
        except (aiohttp.ClientError, TimeoutError) as exc:
            return web.Response(status=502, text=f"proxy: the node cannot be reached: {exc}")
        if request.method == "GET" and status == 200 and _SLIVER_PATH.match(request.path):
            payload = corrupt_sliver(payload)
        elif request.method == "GET" and status == 200 and _SYMBOLS_PATH.match(request.path):
            payload = corrupt_symbols(payload)
        return web.Response(status=status, body=payload, headers=answer_headers)

    app.cleanup_ctx.append(session_context)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


async def _serve(host: str, port: int, target: str, network_key: Path | None) -> None:
    context = None if network_key is None else node_server_context(network_key, host)
    runner = web.AppRunner(make_proxy_app(target.rstrip("/")), access_log=None)
    await runner.setup()
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    try:
        await web.TCPSite(runner, host, port, reuse_address=True, ssl_context=context).start()
        bound_host, bound_port = runner.addresses[0][:2]
        scheme = "http" if context is None else "https"
        sys.stdout.write(f"proxy listening on {scheme}://{bound_host}:{bound_port} -> {target}\n")
        sys.stdout.flush()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()  # until a signal cancels this task
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    """Parse `--listen HOST:PORT --target URL` and serve."""
    parser = argparse.ArgumentParser(prog="python -m walruspy.devnet.proxy")
    parser.add_argument("--listen", required=True, help="HOST:PORT to serve on")
    parser.add_argument("--target", required=True, help="base URL of the node")
    parser.add_argument("--network-key", type=Path, help="the node's network key: serve TLS")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    asyncio.run(_serve(host, int(port), args.target, args.network_key))


if __name__ == "__main__":
    main()

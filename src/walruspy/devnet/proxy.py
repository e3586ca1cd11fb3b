"""A lying storage node for fault tests: a proxy that falsifies what the node answers.

    python -m walruspy.devnet.proxy --listen 127.0.0.1:PORT --target http://127.0.0.1:NODE_PORT
        [--network-key FILE] [--lie slivers|signatures|status ...]

The devnet puts it in front of a node and gives the committee the proxy's address, so clients and
the other nodes reach that node only through it. Every request is forwarded unchanged; which
answers come back falsified depends on the lies chosen (`Lie`, by default `slivers` alone):

- `slivers`: the answer to a successful `GET /v1/blobs/{blob_id}/slivers/{pair}/{type}` comes
  back with one byte of the sliver's data flipped (the last data byte, before the BCS
  `symbol_size` and `index` fields), so it still parses but fails its Merkle check; so does
  every symbol of a successful `GET .../recoverySymbols` (what peers heal themselves with). The
  node lies about data (spec/walrus-system.md 5, "Reads with faulty nodes" and "Node misses
  slivers").
- `signatures`: every signed answer (storage confirmations, invalid-blob attestations, storage
  challenge attestations) carries a signature by a key that is not the node's (`resign`): the
  message is the true one and the signature a valid BLS point, so only the check against the
  node's key on chain finds it out. A writer must drop it, or the certificate's aggregate
  signature fails on chain (spec/walrus-system.md 1.2 step 5, 2.8).
- `status`: `GET /v1/blobs/{blob_id}/status` answers the opposite (`lie_about_status`): a blob the
  node knows nothing of is "certified permanent" until the last epoch, under a made-up event,
  and every other blob is "nonexistent". One node's status is never trusted alone
  (spec/walrus-system.md 1.4: the client needs f+1 shards behind a status).
If the node is down, the proxy answers 502, as a dead node's address refuses connections.
With `--network-key` (a node serving TLS) the proxy serves TLS with a certificate for the node's
own network key, so clients pinning the key on chain accept it, as they would a node that lies
itself, and it reaches the node over TLS on the loopback interface.

Prints `proxy listening on URL` once serving; stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import enum
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Callable, Collection
from pathlib import Path
from typing import Any, Final

import aiohttp
from aiohttp import web

from walruspy.core.crypto import BlsPrivateKey
from walruspy.core.errors import InvalidInputError
from walruspy.core.symbols import symbols_from_bcs, symbols_to_bcs
from walruspy.node_api.schemas import (
    DeletableCounts,
    EventId,
    Nonexistent,
    Permanent,
    blob_status_from_json,
    blob_status_to_json,
    success_body,
)
from walruspy.node_api.tls import client_context, node_server_context

__all__ = [
    "Lie",
    "corrupt_sliver",
    "corrupt_symbols",
    "lie_about_status",
    "make_proxy_app",
    "resign",
]


class Lie(enum.Enum):
    """What a lying proxy falsifies (module docstring)."""

    SLIVERS = "slivers"
    SIGNATURES = "signatures"
    STATUS = "status"


#: The sliver route of the node API (walruspy.node_api.paths.SLIVER_ROUTE).
_SLIVER_PATH: Final = re.compile(r"^/v1/blobs/[A-Za-z0-9_-]{43}/slivers/\d+/(primary|secondary)$")
#: The recovery-symbol route (walruspy.node_api.paths), which peers use to heal themselves.
_SYMBOLS_PATH: Final = re.compile(r"^/v1/blobs/[A-Za-z0-9_-]{43}/recoverySymbols$")
#: The routes whose answer is a signed message: confirmations (GET), invalid-blob attestations
#: (POST of an inconsistency proof) and storage-challenge attestations (GET).
_SIGNED_PATH: Final = re.compile(
    r"^/v1/blobs/[A-Za-z0-9_-]{43}/(confirmation/(permanent|deletable/[^/]+)"
    r"|inconsistencyProof/(primary|secondary))$"
    r"|^/v1/challenges/\d+/attestation/[^/]+$"
)
#: The blob-status route.
_STATUS_PATH: Final = re.compile(r"^/v1/blobs/[A-Za-z0-9_-]{43}/status$")
#: The end epoch a made-up certification claims: the last one a u32 holds.
_FOREVER_EPOCH: Final = 2**32 - 1
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


def _success_data(body: bytes) -> Any:
    """The `data` of a JSON success envelope; ValueError (or KeyError, TypeError) if not one."""
    return json.loads(body)["success"]["data"]


def resign(body: bytes, key: BlsPrivateKey) -> bytes:
    """The JSON signed answer `body` (a confirmation `{"signed": {...}}` or a bare signed
    message) with its signature replaced by `key`'s over the same message; anything else is
    returned untouched."""
    try:
        data = _success_data(body)
        signed = data.get("signed", data)
        message = base64.b64decode(signed["serializedMessage"], validate=True)
        signed["signature"] = base64.b64encode(key.sign(message).to_bytes()).decode()
    except (ValueError, KeyError, TypeError, AttributeError):
        return body
    return json.dumps(success_body(data)).encode()


def lie_about_status(body: bytes) -> bytes:
    """The JSON status answer `body` turned around: "nonexistent" becomes certified permanent
    until the last epoch under a made-up event; any other status becomes "nonexistent"."""
    try:
        status = blob_status_from_json(_success_data(body))
    except (ValueError, KeyError, TypeError):
        return body
    lie = (
        Permanent(
            end_epoch=_FOREVER_EPOCH,
            is_certified=True,
            status_event=EventId(bytes(range(32)), 7),
            deletable_counts=DeletableCounts(),
            initial_certified_epoch=0,
        )
        if isinstance(status, Nonexistent)
        else Nonexistent()
    )
    return json.dumps(success_body(blob_status_to_json(lie))).encode()


def _falsify(
    method: str, path: str, payload: bytes, lies: Collection[Lie], key: BlsPrivateKey
) -> bytes:
    """A successful answer to `method path` as the lies chosen make it."""
    if Lie.SLIVERS in lies and method == "GET" and _SLIVER_PATH.match(path):
        return corrupt_sliver(payload)
    if Lie.SLIVERS in lies and method == "GET" and _SYMBOLS_PATH.match(path):
        return corrupt_symbols(payload)
    if Lie.SIGNATURES in lies and _SIGNED_PATH.match(path):
        return resign(payload, key)
    if Lie.STATUS in lies and method == "GET" and _STATUS_PATH.match(path):
        return lie_about_status(payload)
    return payload


def make_proxy_app(
    target: str,
    connector: Callable[[], aiohttp.BaseConnector] | None = None,
    *,
    lies: Collection[Lie] = (Lie.SLIVERS,),
    random_bytes: Callable[[int], bytes] = os.urandom,
) -> web.Application:
    """The proxy in front of the node at `target`, telling `lies` (see the module docstring);
    `connector` makes the connector it reaches the node with (the simulator's network), by
    default a `TCPConnector` accepting the node's self-signed TLS. The key it signs with, for
    `Lie.SIGNATURES`, is drawn from `random_bytes`."""
    app = web.Application(client_max_size=MAX_FORWARDED_BYTES)
    lies = frozenset(lies)
    wrong_key = BlsPrivateKey.generate(random_bytes)
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
        if status == 200:
            payload = _falsify(request.method, request.path, payload, lies, wrong_key)
        return web.Response(status=status, body=payload, headers=answer_headers)

    app.cleanup_ctx.append(session_context)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


async def _serve(
    host: str, port: int, target: str, network_key: Path | None, lies: Collection[Lie]
) -> None:
    context = None if network_key is None else node_server_context(network_key, host)
    runner = web.AppRunner(make_proxy_app(target.rstrip("/"), lies=lies), access_log=None)
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
    """Parse `--listen HOST:PORT --target URL [--lie LIE ...]` and serve."""
    parser = argparse.ArgumentParser(prog="python -m walruspy.devnet.proxy")
    parser.add_argument("--listen", required=True, help="HOST:PORT to serve on")
    parser.add_argument("--target", required=True, help="base URL of the node")
    parser.add_argument("--network-key", type=Path, help="the node's network key: serve TLS")
    parser.add_argument(
        "--lie",
        action="append",
        choices=[lie.value for lie in Lie],
        help="what to falsify (repeatable; default: slivers)",
    )
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    lies = [Lie(value) for value in args.lie or [Lie.SLIVERS.value]]
    asyncio.run(_serve(host, int(port), args.target, args.network_key, lies))


if __name__ == "__main__":
    main()

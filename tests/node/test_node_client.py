"""`NodeClient` against a misbehaving server: every failure is a typed error, never trusted data."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp import web

from walruspy.core.encoding import encode_blob
from walruspy.core.errors import DecodeError, VerificationError
from walruspy.core.types import SliverPairIndex, SliverType
from walruspy.node_api import errors
from walruspy.node_api.client import NodeClient, node_url
from walruspy.node_api.json_fields import dumps

ENCODED = encode_blob(b"the blob a lying node is asked about" * 10, 7)
OTHER = encode_blob(b"another blob" * 10, 7)
BLOB_ID = ENCODED.metadata.blob_id

Handler = Callable[[web.Request], "asyncio.Future[web.StreamResponse] | web.StreamResponse"]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[web.Response], asyncio.Future[NodeClient]]]:
    runners: list[web.AppRunner] = []
    clients: list[NodeClient] = []

    async def start(response: web.Response, delay_s: float = 0.0) -> NodeClient:
        async def handler(request: web.Request) -> web.StreamResponse:
            await asyncio.sleep(delay_s)
            return response

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        host, port = runner.addresses[0][:2]
        client = NodeClient(f"http://{host}:{port}", timeout_s=0.5)
        clients.append(client)
        return client

    yield start  # type: ignore[misc]
    for client in clients:
        await client.close()
    for runner in runners:
        await runner.cleanup()


async def test_metadata_of_another_blob_is_refused(serve) -> None:
    client = await serve(web.Response(body=OTHER.metadata.to_bcs()))
    with pytest.raises(DecodeError, match="asked for the metadata"):
        await client.get_metadata(BLOB_ID, 7)


async def test_metadata_that_does_not_hash_to_its_id_is_refused(serve) -> None:
    forged = bytearray(ENCODED.metadata.to_bcs())
    forged[-1] ^= 1
    client = await serve(web.Response(body=bytes(forged)))
    with pytest.raises(VerificationError):
        await client.get_metadata(BLOB_ID, 7)


async def test_a_corrupted_sliver_is_refused(serve) -> None:
    sliver = bytearray(ENCODED.sliver(SliverPairIndex(2), SliverType.PRIMARY).sliver.to_bcs())
    sliver[3] ^= 0xFF
    client = await serve(web.Response(body=bytes(sliver)))
    with pytest.raises(VerificationError):
        await client.get_sliver(ENCODED.metadata, SliverPairIndex(2), SliverType.PRIMARY)


async def test_a_sliver_of_another_pair_is_refused(serve) -> None:
    sliver = ENCODED.sliver(SliverPairIndex(3), SliverType.PRIMARY).sliver.to_bcs()
    client = await serve(web.Response(body=sliver))
    with pytest.raises(DecodeError, match="asked for pair 2"):
        await client.get_sliver(ENCODED.metadata, SliverPairIndex(2), SliverType.PRIMARY)


async def test_error_answers_become_typed_errors(serve) -> None:
    body = dumps(errors.NotRegisteredError("nope").to_body())
    client = await serve(web.Response(body=body, status=400, content_type="application/json"))
    with pytest.raises(errors.NotRegisteredError, match="nope"):
        await client.get_confirmation(BLOB_ID)


async def test_non_aip193_error_is_unexpected(serve) -> None:
    client = await serve(web.Response(text="<html>bad gateway</html>", status=502))
    with pytest.raises(errors.UnexpectedResponseError) as info:
        await client.blob_status(BLOB_ID)
    assert info.value.http_status == 502


async def test_a_malformed_success_is_a_decode_error(serve) -> None:
    client = await serve(web.Response(body=b'{"success": {"code": 200, "data": 5}}'))
    with pytest.raises(DecodeError):
        await client.blob_status(BLOB_ID)


async def test_an_oversized_answer_is_refused(serve) -> None:
    client = await serve(web.Response(body=b"{" + b" " * (2 << 20) + b"}"))
    with pytest.raises(DecodeError, match="exceeds the limit"):
        await client.health()


async def test_timeouts_and_refused_connections(serve) -> None:
    slow = await serve(web.Response(text="late"), 5.0)
    with pytest.raises(errors.NodeTimeoutError):
        await slow.health()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with NodeClient(f"http://127.0.0.1:{port}") as closed:
        with pytest.raises(errors.NodeConnectionError):
            await closed.health()


def test_node_url() -> None:
    assert node_url("10.0.0.1:9185") == "http://10.0.0.1:9185"
    assert node_url("https://node.example/") == "https://node.example"

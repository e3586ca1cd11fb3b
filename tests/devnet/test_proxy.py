"""The lying proxy's lies, without a devnet: wrong-key signatures and a turned-around status.

Fast: the functions on bytes, then the proxy app in front of a small fake node on the loopback
interface, to see each lie on its route and only with its `Lie` chosen.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from walruspy.core.blob_id import BlobId
from walruspy.core.crypto import BlsPrivateKey, BlsSignature
from walruspy.core.errors import VerificationError
from walruspy.core.messages import ConfirmationMessage, SignedMessage
from walruspy.devnet.proxy import Lie, lie_about_status, make_proxy_app, resign
from walruspy.node_api import schemas
from walruspy.node_api.schemas import (
    DeletableCounts,
    EventId,
    Nonexistent,
    Permanent,
    blob_status_from_json,
    blob_status_to_json,
    success_body,
)

pytestmark = pytest.mark.timeout(60)

BLOB = BlobId(bytes(range(32)))
NODE_KEY = BlsPrivateKey.generate(random.Random(1).randbytes)
WRONG_KEY = BlsPrivateKey.generate(random.Random(2).randbytes)


def confirmation_body() -> tuple[bytes, ConfirmationMessage]:
    expected = ConfirmationMessage(3, BLOB.raw)
    signed = SignedMessage.sign(NODE_KEY, expected)
    wire = schemas.SignedMessage(signed.serialized_message, signed.signature.to_bytes())
    return json.dumps(success_body(schemas.storage_confirmation_to_json(wire))).encode(), expected


def _core(wire: schemas.SignedMessage) -> SignedMessage:
    return SignedMessage(wire.serialized_message, BlsSignature.from_bytes(wire.signature))


def parse_confirmation(body: bytes) -> SignedMessage:
    data = schemas.parse_service_response(200, body)
    return _core(schemas.storage_confirmation_from_json(data))


def test_a_resigned_confirmation_keeps_its_message_and_fails_the_node_key() -> None:
    body, expected = confirmation_body()
    parse_confirmation(body).verify(NODE_KEY.public_key(), expected)
    lie = parse_confirmation(resign(body, WRONG_KEY))
    assert lie.serialized_message == parse_confirmation(body).serialized_message
    with pytest.raises(VerificationError):
        lie.verify(NODE_KEY.public_key(), expected)
    lie.verify(WRONG_KEY.public_key(), expected)  # a well-formed signature, by another key
    assert resign(b"not json", WRONG_KEY) == b"not json"


def test_a_resigned_bare_signed_message_fails_the_node_key() -> None:
    expected = ConfirmationMessage(3, BLOB.raw)
    signed = SignedMessage.sign(NODE_KEY, expected)
    wire = schemas.SignedMessage(signed.serialized_message, signed.signature.to_bytes())
    body = json.dumps(success_body(wire.to_json())).encode()
    answer = schemas.parse_service_response(200, resign(body, WRONG_KEY))
    lie = _core(schemas.SignedMessage.from_json(answer))
    with pytest.raises(VerificationError):
        lie.verify(NODE_KEY.public_key(), expected)


def test_the_status_lie_turns_nonexistent_into_certified_and_back() -> None:
    def answer(status: schemas.BlobStatus) -> bytes:
        return json.dumps(success_body(blob_status_to_json(status))).encode()

    def told(body: bytes) -> schemas.BlobStatus:
        return blob_status_from_json(schemas.parse_service_response(200, body))

    made_up = told(lie_about_status(answer(Nonexistent())))
    assert isinstance(made_up, Permanent) and made_up.is_certified
    real = Permanent(
        end_epoch=5,
        is_certified=True,
        status_event=EventId(b"\x01" * 32, 0),
        deletable_counts=DeletableCounts(),
        initial_certified_epoch=2,
    )
    assert isinstance(told(lie_about_status(answer(real))), Nonexistent)
    assert lie_about_status(b"{}") == b"{}"


@pytest_asyncio.fixture
async def fake_node() -> AsyncIterator[str]:
    """A node answering a confirmation and a status ("nonexistent")."""
    confirmation, _ = confirmation_body()
    status = json.dumps(success_body(blob_status_to_json(Nonexistent()))).encode()
    answers = {
        f"/v1/blobs/{BLOB}/confirmation/permanent": confirmation,
        f"/v1/blobs/{BLOB}/status": status,
    }

    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=answers[request.path], content_type="application/json")

    app = web.Application()
    for path in answers:
        app.router.add_get(path, answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def _through(target: str, lies: list[Lie], path: str) -> bytes:
    proxy = make_proxy_app(target, lies=lies, random_bytes=random.Random(3).randbytes)
    runner = web.AppRunner(proxy, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://{host}:{port}{path}") as answer,
        ):
            assert answer.status == 200
            return await answer.read()
    finally:
        await runner.cleanup()


async def test_the_proxy_tells_each_lie_on_its_route_only_when_chosen(fake_node: str) -> None:
    confirmation = f"/v1/blobs/{BLOB}/confirmation/permanent"
    status = f"/v1/blobs/{BLOB}/status"
    honest, expected = confirmation_body()
    assert await _through(fake_node, [Lie.SLIVERS], confirmation) == honest
    lie = parse_confirmation(await _through(fake_node, [Lie.SIGNATURES], confirmation))
    with pytest.raises(VerificationError):
        lie.verify(NODE_KEY.public_key(), expected)
    told = schemas.parse_service_response(200, await _through(fake_node, [Lie.STATUS], status))
    assert isinstance(blob_status_from_json(told), Permanent)
    told = schemas.parse_service_response(200, await _through(fake_node, [Lie.SIGNATURES], status))
    assert isinstance(blob_status_from_json(told), Nonexistent)

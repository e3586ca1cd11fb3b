"""The publisher and aggregator in process, over the client tests' in-process network.

Four storage nodes (3, 3, 2 and 2 of 10 shards) on the fake chain, one `WalrusClient`, and the
daemon application served on a free port: Walrus's JSON shapes, every error path (400, 404, 413,
416, 429, 451, 501, 503, 504 and 500), the response headers, the modes' route sets, and the
agreement of the OpenAPI document with the routes served.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.client.network import Network, open_network
from tests.node.cluster import blob_data
from walruspy.client import WalrusClient
from walruspy.client import errors as client_errors
from walruspy.core.blob_id import BlobId
from walruspy.daemon import (
    ROUTES,
    DaemonLimits,
    DaemonMode,
    make_app,
    open_daemon,
    openapi_document,
)
from walruspy.daemon.errors import DaemonApiError, read_error, store_error
from walruspy.daemon.explorer import EXPLORER_API, EXPLORER_PAGES, EXPLORER_STATIC
from walruspy.daemon.publisher import PublisherQuery

pytestmark = pytest.mark.timeout(60)

SMALL_LIMITS = DaemonLimits(
    max_body_bytes=64 * 1024,
    publisher_max_concurrent_requests=1,
    publisher_max_buffer_size=1,
    aggregator_max_concurrent_requests=2,
    aggregator_max_buffer_size=0,
)


@contextlib.asynccontextmanager
async def serving(
    client: Any, mode: DaemonMode = DaemonMode.DAEMON, limits: DaemonLimits | None = None, **kw: Any
) -> AsyncIterator[tuple[str, aiohttp.ClientSession]]:
    async with (
        open_daemon(client, mode, "127.0.0.1:0", limits, **kw) as running,
        aiohttp.ClientSession() as session,
    ):
        yield running.url, session


@contextlib.asynccontextmanager
async def network_daemon(
    tmp_path: Path, limits: DaemonLimits | None = None, **kw: Any
) -> AsyncIterator[tuple[Network, WalrusClient, str, aiohttp.ClientSession]]:
    async with (
        open_network(tmp_path) as network,
        network.client() as client,
        serving(client, DaemonMode.DAEMON, limits, **kw) as (url, session),
    ):
        yield network, client, url, session


def error_reason(body: dict[str, Any]) -> str:
    return str(body["error"]["details"][0]["reason"])


async def test_store_then_read_by_blob_id_and_object_id(tmp_path: Path) -> None:
    async with network_daemon(tmp_path) as (network, _client, url, session):
        data = blob_data(7, 5000)
        async with session.put(f"{url}/v1/blobs?epochs=3", data=data) as response:
            assert response.status == 200
            created = (await response.json())["newlyCreated"]
        blob = created["blobObject"]
        assert set(blob) == {
            "id", "registeredEpoch", "blobId", "size", "encodingType", "certifiedEpoch",
            "storage", "deletable",
        }  # fmt: skip
        assert blob["size"] == 5000 and blob["encodingType"] == "RS2" and blob["deletable"]
        assert blob["certifiedEpoch"] == blob["registeredEpoch"]
        assert set(blob["storage"]) == {"id", "startEpoch", "endEpoch", "storageSize"}
        assert blob["storage"]["endEpoch"] == blob["storage"]["startEpoch"] + 3
        operation = created["resourceOperation"]["registerFromScratch"]
        assert operation["epochsAhead"] == 3 and operation["encodedLength"] > 5000
        assert created["cost"] > 0
        await network.settle()

        async with session.get(f"{url}/v1/blobs/{blob['blobId']}") as response:
            assert response.status == 200
            assert await response.read() == data
            assert response.headers["ETag"] == blob["blobId"]  # bare, as Walrus sends it
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert response.headers["Cache-Control"].startswith("public, max-age=86400")
            assert response.headers["Content-Type"] == "application/octet-stream"
        async with session.get(
            f"{url}/v1/blobs/by-object-id/{blob['id']}", headers={"Accept": "image/png"}
        ) as response:
            assert response.status == 200 and await response.read() == data
            assert response.headers["Content-Type"] == "image/png"
        async with session.get(
            f"{url}/v1/blobs/{blob['blobId']}",
            params={"strict_consistency_check": "true"},
            headers={"Range": "bytes=10-19"},
        ) as response:
            assert response.status == 206 and await response.read() == data[10:20]
            assert response.headers["Content-Range"] == "bytes 10-19/5000"


async def test_a_blobs_attribute_gives_its_allowed_headers_by_object_id(tmp_path: Path) -> None:
    async with network_daemon(tmp_path) as (network, client, url, session):
        data = b"<h1>hello</h1>"
        stored = await client.store(data, 2, deletable=True)
        assert stored.object_id is not None
        await client.set_blob_attribute(
            stored.object_id,
            {
                "content-type": "text/html",
                "Content-Disposition": "inline",
                "etag": "forged",  # not an allowed header
                "link": "bad\nvalue",  # not a header value
                "cache-control": "no-store",  # allowed nowhere, and the answer sets its own
            },
        )
        await network.settle()
        page = f"{url}/v1/blobs/by-object-id/{stored.object_id}"
        async with session.get(page) as response:
            assert response.status == 200 and await response.read() == data
            headers = response.headers
        assert headers["Content-Type"] == "text/html"
        assert headers["Content-Disposition"] == "inline"
        assert headers["ETag"] == str(stored.blob_id) and "link" not in headers
        assert headers["Cache-Control"].startswith("public")
        async with session.get(page, headers={"Accept": "text/plain"}) as response:
            assert response.headers["Content-Type"] == "text/plain"  # the caller's Accept wins
        async with session.head(page) as response:
            assert response.headers["Content-Type"] == "text/html"
        async with session.get(f"{url}/v1/blobs/{stored.blob_id}") as response:
            assert response.headers["Content-Type"] == "application/octet-stream"  # by blob ID


async def test_share_true_makes_a_shared_blob_read_by_its_own_id(tmp_path: Path) -> None:
    async with network_daemon(tmp_path) as (network, client, url, session):
        data = blob_data(9, 4000)
        async with session.put(f"{url}/v1/blobs?epochs=2&share=true", data=data) as response:
            assert response.status == 200
            created = (await response.json())["newlyCreated"]
        shared_id = created["sharedBlobObject"]
        record = await client.shared_blob(shared_id)
        assert "0x" + record.blob_object_id.hex() == created["blobObject"]["id"]
        await network.settle()
        async with session.get(f"{url}/v1/blobs/by-object-id/{shared_id}") as response:
            assert response.status == 200 and await response.read() == data


async def test_permanent_store_is_already_certified_the_second_time(tmp_path: Path) -> None:
    async with network_daemon(tmp_path) as (network, _client, url, session):
        data = blob_data(8, 3000)
        async with session.put(f"{url}/v1/blobs?permanent=true&epochs=2", data=data) as response:
            first = await response.json()
        assert first["newlyCreated"]["blobObject"]["deletable"] is False
        await network.settle()
        async with session.put(f"{url}/v1/blobs?permanent=true&epochs=2", data=data) as response:
            assert response.status == 200
            second = await response.json()
        assert list(second) == ["alreadyCertified"]
        already = second["alreadyCertified"]
        assert already["blobId"] == first["newlyCreated"]["blobObject"]["blobId"]
        assert set(already["event"]) == {"txDigest", "eventSeq"}
        assert already["endEpoch"] == first["newlyCreated"]["blobObject"]["storage"]["endEpoch"]
        async with session.put(
            f"{url}/v1/blobs?permanent=true&epochs=2&force=true", data=data
        ) as response:
            assert "newlyCreated" in await response.json()


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("deletable=true&permanent=true", "INVALID_BLOB_PERSISTENCE"),
        ("epochs=0", "MALFORMED_REQUEST"),
        ("epochs=-1", "MALFORMED_REQUEST"),
        ("epochs=01", "MALFORMED_REQUEST"),
        ("epochs=abc", "MALFORMED_REQUEST"),
        ("epochs=1&epochs=2", "MALFORMED_REQUEST"),
        ("force=yes", "MALFORMED_REQUEST"),
        ("encoding_type=RS1", "MALFORMED_REQUEST"),
        ("send_object_to=0x1234", "MALFORMED_REQUEST"),
        ("share=true&send_object_to=0x" + "12" * 20, "MALFORMED_REQUEST"),
        ("share=maybe", "MALFORMED_REQUEST"),
        ("frobnicate=1", "MALFORMED_REQUEST"),
        ("epochs=1000", "MALFORMED_REQUEST"),  # beyond max_epochs_ahead: the client refuses
        ("epochs=%D9%A3", "MALFORMED_REQUEST"),  # an Arabic-Indic 3: ASCII digits only
        ("epochs=" + "9" * 5000, "MALFORMED_REQUEST"),  # past int()'s 4,300-digit limit
    ],
)
async def test_bad_store_queries_are_400(tmp_path: Path, query: str, reason: str) -> None:
    async with (
        network_daemon(tmp_path) as (_network, _client, url, session),
        session.put(f"{url}/v1/blobs?{query}", data=b"x") as response,
    ):
        assert response.status == 400
        assert error_reason(await response.json()) == reason


def test_query_parser_defaults() -> None:
    query = PublisherQuery.parse([])
    assert query == PublisherQuery(epochs=1, deletable=True, force=False, send_object_to=None)
    parsed = PublisherQuery.parse(
        [("permanent", "true"), ("epochs", "5"), ("send_object_to", "0x" + "ab" * 20)]
    )
    assert not parsed.deletable and parsed.epochs == 5
    assert PublisherQuery.parse([("deletable", "true")]).deletable


async def test_oversized_bodies_are_413_declared_or_streamed(tmp_path: Path) -> None:
    async with network_daemon(tmp_path, SMALL_LIMITS) as (_network, _client, url, session):
        too_big = b"\0" * (SMALL_LIMITS.max_body_bytes + 1)
        async with session.put(f"{url}/v1/blobs", data=too_big) as response:
            assert response.status == 413
            body = await response.json()
        assert error_reason(body) == "BODY_TOO_LARGE"
        assert "65536" in body["error"]["message"]

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked encoding
            for _ in range(20):
                yield b"\0" * 8192

        async with session.put(f"{url}/v1/blobs", data=chunks()) as response:
            assert response.status == 413
        exact = blob_data(9, SMALL_LIMITS.max_body_bytes)
        async with session.put(f"{url}/v1/blobs", data=exact) as response:
            assert response.status == 200


async def test_reads_of_missing_or_malformed_ids(tmp_path: Path) -> None:
    async with network_daemon(tmp_path) as (_network, _client, url, session):
        missing = BlobId(bytes(range(32)))
        async with session.get(f"{url}/v1/blobs/{missing}") as response:
            assert response.status == 404
            assert error_reason(await response.json()) == "BLOB_NOT_FOUND"
        async with session.get(f"{url}/v1/blobs/not-a-blob-id") as response:
            assert response.status == 400
        async with session.get(f"{url}/v1/blobs/by-object-id/0x{'11' * 32}") as response:
            assert response.status == 404
            assert error_reason(await response.json()) == "OBJECT_ID_RESOLUTION_FAILED"
        async with session.get(f"{url}/v1/blobs/by-object-id/0x12") as response:
            assert response.status == 400
        flags = {"strict_consistency_check": "true", "skip_consistency_check": "true"}
        async with session.get(f"{url}/v1/blobs/{missing}", params=flags) as response:
            assert error_reason(await response.json()) == "INVALID_CONSISTENCY_CHECK"
        async with session.get(f"{url}/v1/blobs/{missing}?verbose=1") as response:
            assert response.status == 400
        async with session.get(f"{url}/v1/blobs/{missing}", headers={"Range": "x"}) as response:
            assert response.status == 416
        async with session.get(f"{url}/v1/nothing") as response:
            assert response.status == 404
            assert error_reason(await response.json()) == "NOT_FOUND"
        async with session.delete(f"{url}/v1/blobs") as response:
            assert response.status == 405  # there is no HTTP delete, as in Walrus
            assert error_reason(await response.json()) == "METHOD_NOT_ALLOWED"


async def test_range_beyond_the_blob_is_416(tmp_path: Path) -> None:
    async with network_daemon(tmp_path) as (network, _client, url, session):
        async with session.put(f"{url}/v1/blobs", data=b"0123456789") as response:
            blob_id = (await response.json())["newlyCreated"]["blobObject"]["blobId"]
        await network.settle()
        async with session.get(
            f"{url}/v1/blobs/{blob_id}", headers={"Range": "bytes=10-12"}
        ) as response:
            assert response.status == 416
            assert response.headers["Content-Range"] == "bytes */10"
            assert error_reason(await response.json()) == "INVALID_BYTE_RANGE"
        async with session.get(
            f"{url}/v1/blobs/{blob_id}", headers={"Range": "bytes=5-10"}
        ) as response:  # an end past the blob is its end (RFC 9110; Walrus answers 416)
            assert response.status == 206 and await response.read() == b"56789"
            assert response.headers["Content-Range"] == "bytes 5-9/10"
        async with session.get(
            f"{url}/v1/blobs/{blob_id}", headers={"Range": "bytes=5-9"}
        ) as response:
            assert response.status == 206 and await response.read() == b"56789"


async def test_lying_node_and_inconsistency_never_return_bad_data(tmp_path: Path) -> None:
    async with network_daemon(tmp_path) as (network, _client, url, session):
        data = blob_data(11, 20_000)
        async with session.put(f"{url}/v1/blobs?permanent=true", data=data) as response:
            blob_id = (await response.json())["newlyCreated"]["blobObject"]["blobId"]
        await network.settle()
        network.lie_about_slivers(0)
        async with session.get(f"{url}/v1/blobs/{blob_id}") as response:
            assert response.status == 200 and await response.read() == data


class StaticReader:
    """A stand-in `BlobReader` over bytes in memory."""

    def __init__(self, blob_id: Any, data: bytes) -> None:
        self.blob_id = blob_id
        self.data = data
        self.size = len(data)

    def check_range(self, start: int, length: int) -> None:
        assert 0 <= start <= start + length <= self.size

    async def chunks(self, start: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        yield self.data[start : self.size if length is None else start + length]


class SlowClient:
    """A stand-in client whose store and read wait until released (for the admission limits)."""

    def __init__(self, released: bool = False) -> None:
        self.release = asyncio.Event()
        if released:
            self.release.set()
        self.started = 0
        self.all_started = asyncio.Event()
        self.expected = 3

    def _start(self) -> None:
        self.started += 1
        if self.started >= self.expected:
            self.all_started.set()

    async def store(self, data: bytes, epochs: int, **_: Any) -> Any:
        self._start()
        await self.release.wait()
        raise client_errors.NotEnoughConfirmationsError("no quorum in this test")

    async def locate(self, blob_id: Any) -> StaticReader:
        self._start()
        await self.release.wait()
        return StaticReader(blob_id, b"data")


async def test_concurrency_limits_shed_with_429(tmp_path: Path) -> None:
    client = SlowClient()
    async with serving(client, DaemonMode.DAEMON, SMALL_LIMITS) as (url, session):
        blob_id = BlobId(bytes(32))
        puts = [asyncio.create_task(session.put(f"{url}/v1/blobs", data=b"x")) for _ in range(2)]
        gets = [asyncio.create_task(session.get(f"{url}/v1/blobs/{blob_id}")) for _ in range(2)]
        async with asyncio.timeout(10):  # one store runs (one queued), two reads run
            await client.all_started.wait()
        async with session.put(f"{url}/v1/blobs", data=b"x") as response:
            assert response.status == 429
            assert "publisher is receiving too many requests" in await response.text()
        async with session.get(f"{url}/v1/blobs/{blob_id}") as response:
            assert response.status == 429
            assert "aggregator" in await response.text()
        async with session.get(f"{url}/status") as response:  # never limited
            assert await response.text() == "OK"
        client.release.set()
        for task in puts:
            async with await task as response:
                assert response.status == 504
                assert error_reason(await response.json()) == "INSUFFICIENT_CONFIRMATIONS"
        for task in gets:
            async with await task as response:
                assert await response.read() == b"data"


async def test_send_object_to_uses_the_transfer_or_is_501(tmp_path: Path) -> None:
    sent: list[tuple[bytes, str]] = []

    async def transfer(object_id: bytes, address: str) -> None:
        sent.append((object_id, address))

    address = "0x" + "ab" * 20
    async with network_daemon(tmp_path, transfer=transfer) as (_network, _client, url, session):
        async with session.put(f"{url}/v1/blobs?send_object_to={address}", data=b"y") as resp:
            object_id = (await resp.json())["newlyCreated"]["blobObject"]["id"]
        assert sent == [(bytes.fromhex(object_id[2:]), address)]
    async with (
        serving(SlowClient()) as (url, session),
        session.put(f"{url}/v1/blobs?send_object_to={address}", data=b"y") as resp,
    ):
        assert resp.status == 501
        assert error_reason(await resp.json()) == "TRANSFER_UNSUPPORTED"


@pytest.mark.parametrize("mode", list(DaemonMode))
async def test_modes_serve_their_routes_and_document_them(mode: DaemonMode) -> None:
    document = yaml.safe_load(openapi_document(mode))
    served = {route.template for route in ROUTES if mode.serves(route.group)}
    assert set(document["paths"]) == served
    for route in ROUTES:
        if mode.serves(route.group):
            operation = document["paths"][route.template][route.method.lower()]
            assert operation["operationId"] == route.name
    app = make_app(SlowClient(), mode)  # type: ignore[arg-type]
    resources = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
    }
    # Besides the API: the explorer's static files in every mode, its pages with the aggregator.
    explorer = {("GET", EXPLORER_STATIC), ("HEAD", EXPLORER_STATIC)}
    if mode.serves("aggregator"):
        explorer |= {
            (method, path)
            for method in ("GET", "HEAD")
            for path in (*EXPLORER_PAGES, *(f"/explorer/api/{p}" for p in EXPLORER_API))
        }
    assert resources - explorer == {(r.method, r.template) for r in ROUTES if mode.serves(r.group)}
    assert explorer <= resources
    async with serving(SlowClient(released=True), mode) as (url, session):
        async with session.get(f"{url}/v1/api") as response:
            assert yaml.safe_load(await response.read()) == document
        async with session.put(f"{url}/v1/blobs", data=b"z") as response:
            assert (response.status == 404) == (mode is DaemonMode.AGGREGATOR)
        async with session.options(f"{url}/v1/blobs") as response:
            assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_client_errors_translate_to_walrus_statuses() -> None:
    cases: list[tuple[Exception, int | None, str | None]] = [
        (client_errors.BlobBlockedError("x"), 451, "FORBIDDEN_BLOB"),
        (client_errors.BlobNotFoundError("x"), 404, "BLOB_NOT_FOUND"),
        (client_errors.BlobInvalidError("x"), 404, "INVALID_BLOB"),
        (client_errors.InconsistentBlobError("x"), 404, "INCONSISTENT_BLOB"),
        (client_errors.NotEnoughSliversError("x"), 503, "BLOB_UNAVAILABLE"),
        (client_errors.NoMetadataReceivedError("x"), 503, "BLOB_UNAVAILABLE"),
        (client_errors.BlobTooLargeError("x"), 403, "BLOB_TOO_LARGE"),
        (RuntimeError("bug"), None, None),
    ]
    for error, status, reason in cases:
        answer = read_error(error)
        assert (answer.http_status if answer else None, answer.reason if answer else None) == (
            status,
            reason,
        ), error
    stored = store_error(client_errors.BlobTooLargeError("x"))
    assert stored is not None and stored.http_status == 413
    assert store_error(client_errors.InvalidArgumentError("x")).http_status == 400  # type: ignore[union-attr]
    expired = store_error(client_errors.RegistrationExpiredError("ended"))
    assert expired is not None and (expired.http_status, expired.reason) == (
        503,
        "REGISTRATION_EXPIRED",
    )
    assert store_error(KeyError("bug")) is None
    internal = DaemonApiError.internal().to_body()["error"]
    assert internal["code"] == 500 and "bug" not in internal["message"]  # type: ignore[index,operator]
    with pytest.raises(ValueError, match="no error status"):
        DaemonApiError(418, "TEAPOT", "no")


async def test_internal_errors_hide_details(tmp_path: Path) -> None:
    class Broken(SlowClient):
        async def locate(self, blob_id: Any) -> StaticReader:
            raise RuntimeError("secret detail")

    async with (
        serving(Broken()) as (url, session),
        session.get(f"{url}/v1/blobs/{BlobId(bytes(32))}") as response,
    ):
        assert response.status == 500
        assert "secret" not in await response.text()

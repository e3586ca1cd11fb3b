"""The aggregator's reads over real HTTP: ranges, HEAD, ETags, streams, metrics and the access log.

The daemon serves the in-process network of `tests/client/network.py` on a free port (as in
`test_daemon_app.py`); each test stores a blob of several source rows and reads it back with an
aiohttp client, while `SliverLog` records which slivers the nodes were asked for, so the tests
check both the answer and that only the rows holding the bytes were fetched (none for HEAD and
304).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from tests.client.network import Network
from tests.client.test_read_range import SliverLog
from tests.daemon.test_daemon_app import SlowClient, StaticReader, error_reason, network_daemon
from tests.daemon.test_daemon_app import serving as serving_stand_in
from tests.node.cluster import blob_data
from walruspy.client.errors import NotEnoughSliversError
from walruspy.core.decoding import primary_rows_of_range
from walruspy.core.params import EncodingParams
from walruspy.daemon.aggregator import parse_range_header
from walruspy.daemon.errors import DaemonApiError

pytestmark = pytest.mark.timeout(120)

SIZE = 50_000


async def store(network: Network, session: aiohttp.ClientSession, url: str, data: bytes) -> str:
    async with session.put(f"{url}/v1/blobs?epochs=2", data=data) as response:
        assert response.status == 200
        blob_id = str((await response.json())["newlyCreated"]["blobObject"]["blobId"])
    await network.settle()
    return blob_id


def rows_of(network: Network, start: int, length: int) -> set[int]:
    params = EncodingParams(network.cluster.n_shards)
    return set(primary_rows_of_range(params, params.symbol_size(SIZE), start, length))


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=100-199", 100, 199),
        ("bytes=0-", 0, SIZE - 1),  # what browsers send for video
        ("bytes=30000-", 30_000, SIZE - 1),
        ("bytes=-1000", SIZE - 1000, SIZE - 1),
        ("bytes=-999999", 0, SIZE - 1),  # a suffix longer than the blob is all of it
        ("bytes=49999-49999", SIZE - 1, SIZE - 1),
        ("bytes=40000-99999999", 40_000, SIZE - 1),  # RFC 9110: the end is clipped
    ],
)
async def test_the_three_range_forms_fetch_only_their_rows(
    tmp_path: Path, header: str, start: int, end: int
) -> None:
    data = blob_data(31, SIZE)
    async with network_daemon(tmp_path) as (network, _client, url, session):
        blob_id = await store(network, session, url, data)
        log = SliverLog(network)
        async with session.get(f"{url}/v1/blobs/{blob_id}", headers={"Range": header}) as response:
            assert response.status == 206
            assert await response.read() == data[start : end + 1]
            assert response.headers["Content-Range"] == f"bytes {start}-{end}/{SIZE}"
            assert response.headers["Content-Length"] == str(end - start + 1)
            assert response.headers["Accept-Ranges"] == "bytes"
            assert response.headers["ETag"] == blob_id
            assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert log.primary_rows(network.cluster.n_shards) == rows_of(
            network, start, end - start + 1
        )


async def test_unsatisfiable_and_malformed_ranges_are_416(tmp_path: Path) -> None:
    data = blob_data(32, SIZE)
    async with network_daemon(tmp_path) as (network, _client, url, session):
        blob_id = await store(network, session, url, data)
        for header in (f"bytes={SIZE}-", f"bytes={SIZE}-{SIZE + 10}", "bytes=-0"):
            async with session.get(
                f"{url}/v1/blobs/{blob_id}", headers={"Range": header}
            ) as response:
                assert response.status == 416, header
                assert response.headers["Content-Range"] == f"bytes */{SIZE}"
                body = await response.json()
                assert error_reason(body) == "INVALID_BYTE_RANGE"
                assert f"{SIZE} bytes" in body["error"]["message"]
        for header in ("bytes=1-2,5-6", "bytes=9-3", "items=0-1", "bytes=-", "bytes=a-b"):
            async with session.get(
                f"{url}/v1/blobs/{blob_id}", headers={"Range": header}
            ) as response:
                assert response.status == 416, header
                assert "Content-Range" not in response.headers
                assert error_reason(await response.json()) == "INVALID_BYTE_RANGE"


async def test_whole_reads_stream_the_data_rows_and_survive_a_stopped_node(
    tmp_path: Path,
) -> None:
    data = blob_data(33, SIZE)
    async with network_daemon(tmp_path) as (network, _client, url, session):
        blob_id = await store(network, session, url, data)
        log = SliverLog(network)
        async with session.get(f"{url}/v1/blobs/{blob_id}") as response:
            assert response.status == 200 and await response.read() == data
            assert response.headers["Content-Length"] == str(SIZE)
            assert response.headers["Accept-Ranges"] == "bytes"
        assert log.primary_rows(network.cluster.n_shards) == rows_of(network, 0, SIZE)
        await network.stop(0)
        async with session.get(f"{url}/v1alpha/blobs/{blob_id}/stream") as response:
            assert response.status == 200 and await response.read() == data
            assert response.headers["x-walrus-streaming"] == "true"
            assert response.headers["Content-Length"] == str(SIZE)
        async with session.get(
            f"{url}/v1/blobs/{blob_id}", params={"skip_consistency_check": "true"}
        ) as response:
            assert response.status == 200 and await response.read() == data


async def test_head_answers_headers_from_the_metadata_alone(tmp_path: Path) -> None:
    data = blob_data(34, SIZE)
    async with network_daemon(tmp_path) as (network, _client, url, session):
        async with session.put(f"{url}/v1/blobs?epochs=2", data=data) as response:
            blob = (await response.json())["newlyCreated"]["blobObject"]
        await network.settle()
        blob_id = blob["blobId"]
        log = SliverLog(network)
        for path in (f"/v1/blobs/{blob_id}", f"/v1/blobs/by-object-id/{blob['id']}"):
            async with session.head(f"{url}{path}") as response:
                assert response.status == 200
                assert response.headers["Content-Length"] == str(SIZE)
                assert response.headers["ETag"] == blob_id
                assert response.headers["Accept-Ranges"] == "bytes"
                assert await response.read() == b""
        async with session.head(
            f"{url}/v1/blobs/{blob_id}", headers={"Range": "bytes=-10"}
        ) as response:
            assert response.status == 206
            assert response.headers["Content-Range"] == f"bytes {SIZE - 10}-{SIZE - 1}/{SIZE}"
            assert response.headers["Content-Length"] == "10"
        async with session.head(
            f"{url}/v1/blobs/{blob_id}", params={"strict_consistency_check": "true"}
        ) as response:
            assert response.status == 200 and response.headers["Content-Length"] == str(SIZE)
        async with session.head(f"{url}/v1alpha/blobs/{blob_id}/stream") as response:
            assert response.status == 200
            assert response.headers["x-walrus-streaming"] == "true"
        assert log.asked == [], "HEAD fetched slivers"
        missing = "A" * 43
        async with session.head(f"{url}/v1/blobs/{missing}") as response:
            assert response.status == 404


async def test_etag_and_if_none_match(tmp_path: Path) -> None:
    data = blob_data(35, 3000)
    async with network_daemon(tmp_path) as (network, _client, url, session):
        blob_id = await store(network, session, url, data)
        log = SliverLog(network)
        for tag in (f'"{blob_id}"', f'W/"{blob_id}"', f'"other", "{blob_id}"', "*", blob_id):
            async with session.get(
                f"{url}/v1/blobs/{blob_id}", headers={"If-None-Match": tag}
            ) as response:
                assert response.status == 304, tag
                assert await response.read() == b""
                assert response.headers["ETag"] == blob_id
                assert response.headers["Cache-Control"].startswith("public")
        assert log.asked == [], "a 304 fetched slivers"
        async with session.get(
            f"{url}/v1/blobs/{blob_id}", headers={"If-None-Match": '"other"'}
        ) as response:
            assert response.status == 200 and await response.read() == data


async def test_walrus_byte_range_route(tmp_path: Path) -> None:
    data = blob_data(36, SIZE)
    async with network_daemon(tmp_path) as (network, _client, url, session):
        blob_id = await store(network, session, url, data)
        route = f"{url}/v1/blobs/{blob_id}/byte-range"
        log = SliverLog(network)
        async with session.get(route, params={"start": "12345", "length": "20000"}) as response:
            assert response.status == 200  # as Walrus: cacheable by CDNs
            assert await response.read() == data[12_345:32_345]
            assert response.headers["ETag"] == f"{blob_id}-12345-20000"
            assert "Content-Range" not in response.headers
        assert log.primary_rows(network.cluster.n_shards) == rows_of(network, 12_345, 20_000)
        async with session.get(
            route,
            params={"start": "0", "length": "10"},
            headers={"If-None-Match": f'"{blob_id}-0-10"'},
        ) as response:
            assert response.status == 304
        for query, reason in [
            ({"start": "0", "length": "0"}, "INVALID_BYTE_RANGE"),
            ({"start": str(SIZE - 5), "length": "6"}, "INVALID_BYTE_RANGE"),
            ({"start": "0"}, "MALFORMED_REQUEST"),
            ({"start": "0", "length": "5", "x": "1"}, "MALFORMED_REQUEST"),
            ({"start": "-1", "length": "5"}, "MALFORMED_REQUEST"),
        ]:
            async with session.get(route, params=query) as response:
                assert response.status == 400, query
                assert error_reason(await response.json()) == reason


async def test_metrics_and_access_log(tmp_path: Path) -> None:
    data = blob_data(37, SIZE)
    async with network_daemon(tmp_path) as (network, _client, url, session):
        blob_id = await store(network, session, url, data)
        with capture_logs() as logs:
            async with session.get(
                f"{url}/v1/blobs/{blob_id}", headers={"Range": "bytes=0-99"}
            ) as response:
                assert response.status == 206 and len(await response.read()) == 100
            async with session.get(f"{url}/v1/blobs/{blob_id}") as response:
                assert len(await response.read()) == SIZE
            async with session.get(f"{url}/nothing/here") as response:
                assert response.status == 404
        requests = [entry for entry in logs if entry["event"] == "request"]
        assert [(r["method"], r["status"], r["bytes"]) for r in requests] == [
            ("GET", 206, 100),
            ("GET", 200, SIZE),
            ("GET", 404, requests[2]["bytes"]),
        ]
        assert requests[0]["path"] == f"/v1/blobs/{blob_id}"
        assert requests[0]["route"] == "/v1/blobs/{blob_id}" and requests[2]["route"] == "unmatched"
        assert all(r["duration_ms"] >= 0 for r in requests)
        async with session.get(f"{url}/metrics") as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            text = await response.text()
    route = 'route="/v1/blobs/{blob_id}"'
    assert f'walrus_daemon_requests_total{{method="GET",{route},status="206"}} 1.0' in text
    assert f'walrus_daemon_requests_total{{method="GET",{route},status="200"}} 1.0' in text
    assert 'walrus_daemon_requests_total{method="PUT",route="/v1/blobs",status="200"} 1.0' in text
    assert 'route="unmatched",status="404"' in text
    assert f"walrus_daemon_response_body_bytes_total{{{route}}} {float(SIZE + 100)}" in text
    assert "walrus_daemon_request_duration_seconds_bucket" in text


class FailingReader(StaticReader):
    """Sends its first chunk, then fails as a row that can be neither fetched nor rebuilt."""

    async def chunks(self, start: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        yield self.data[:10]
        raise NotEnoughSliversError("row 1 could be neither fetched nor rebuilt")


class FailingClient(SlowClient):
    def __init__(self, reader: StaticReader) -> None:
        super().__init__(released=True)
        self.reader = reader

    async def locate(self, blob_id: Any) -> StaticReader:
        return self.reader


async def test_a_stream_that_fails_midway_is_cut_short() -> None:
    blob_id = "A" * 43
    async with serving_stand_in(FailingClient(FailingReader(blob_id, b"x" * 100))) as (
        url,
        session,
    ):
        with capture_logs() as logs:
            async with session.get(f"{url}/v1alpha/blobs/{blob_id}") as response:
                assert response.status == 404  # no such route: the stream route is v1alpha
            async with session.get(f"{url}/v1alpha/blobs/{blob_id}/stream") as response:
                assert response.status == 200
                assert response.headers["Content-Length"] == "100"
                with pytest.raises(aiohttp.ClientPayloadError):
                    await response.read()
        cut = [entry for entry in logs if entry["event"] == "stream cut short"]
        assert cut and cut[0]["sent"] == 10
        request = [entry for entry in logs if entry["event"] == "request"][-1]
        assert (request["status"], request["bytes"]) == (200, 10)


async def test_a_stream_that_cannot_start_is_an_error_answer() -> None:
    class NoRows(StaticReader):
        async def chunks(self, start: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
            raise NotEnoughSliversError("row 0 could be neither fetched nor rebuilt")
            yield b""  # an async generator

    async with (
        serving_stand_in(FailingClient(NoRows("A" * 43, b"x" * 100))) as (url, session),
        session.get(f"{url}/v1/blobs/{'A' * 43}") as response,
    ):
        assert response.status == 503
        assert error_reason(await response.json()) == "BLOB_UNAVAILABLE"


def test_range_header_parser() -> None:
    assert parse_range_header("bytes=0-0").resolve(10) == (0, 1)
    assert parse_range_header(" bytes=5- ").resolve(10) == (5, 5)
    assert parse_range_header("bytes=-3").resolve(10) == (7, 3)
    for bad in ("bytes=", "bytes=1", "bytes=3-1", "bytes=0-1, 2-3", "bytes=" + "9" * 20 + "-"):
        with pytest.raises(DaemonApiError) as caught:
            parse_range_header(bad)
        assert caught.value.http_status == 416

"""The quilt routes over real HTTP on the in-process network (`network_daemon`).

`PUT /v1/quilts` with a multipart body and `_metadata`, then every patch by quilt patch ID and
by quilt ID and identifier (with Walrus's headers, including tags allowed as headers), and the
listing; the nodes are asked only for the secondary slivers of the index and the patch. Bad
input: malformed multipart, `_metadata` that is not JSON or repeats an identifier, duplicate
files, no files, an oversized body, unknown identifiers and patch IDs, a blob that is not a
quilt.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from tests.client.test_quilts import SliverLog
from tests.daemon.test_daemon_app import error_reason, network_daemon
from tests.node.cluster import blob_data
from walruspy.core.params import EncodingParams
from walruspy.core.quilt import QuiltPatchId, QuiltPatchInternalId
from walruspy.daemon import DaemonLimits

pytestmark = pytest.mark.timeout(120)

FILES = {
    "index.html": (blob_data(41, 1200), {"content-type": "text/html", "site": "a"}),
    "notes/readme.txt": (b"hello quilt", {"site": "a", "rank": "2"}),
    "empty.bin": (b"", {}),
    "data.bin": (blob_data(42, 3000), {}),
}
METADATA = [
    {"identifier": "index.html", "tags": {"content-type": "text/html", "site": "a"}},
    {"identifier": "notes/readme.txt", "tags": {"site": "a", "rank": 2}},
]


def form(files: dict[str, bytes], metadata: Any = None) -> aiohttp.FormData:
    data = aiohttp.FormData(default_to_multipart=True)
    for name, content in files.items():
        data.add_field(name, content, filename=name, content_type="application/octet-stream")
    if metadata is not None:
        text = metadata if isinstance(metadata, str) else json.dumps(metadata)
        data.add_field("_metadata", text)
    return data


async def put_quilt(
    session: aiohttp.ClientSession, url: str, body: Any, query: str = "epochs=2"
) -> tuple[int, Any]:
    async with session.put(f"{url}/v1/quilts?{query}", data=body) as response:
        return response.status, await response.json()


async def test_put_quilt_then_read_every_patch_by_every_route(tmp_path: Path) -> None:
    async with network_daemon(tmp_path) as (network, _client, url, session):
        files = {name: content for name, (content, _) in FILES.items()}
        status, body = await put_quilt(
            session, url, form(files, METADATA), "epochs=2&quilt_version=V1"
        )
        assert status == 200, body
        assert set(body) == {"blobStoreResult", "storedQuiltBlobs"}
        quilt_id = body["blobStoreResult"]["newlyCreated"]["blobObject"]["blobId"]
        stored = {entry["identifier"]: entry for entry in body["storedQuiltBlobs"]}
        assert sorted(stored) == sorted(FILES)
        await network.settle()

        async with session.get(f"{url}/v1/quilts/{quilt_id}/patches") as response:
            assert response.status == 200
            items = await response.json()
        assert [item["identifier"] for item in items] == sorted(FILES)
        for item in items:
            assert item["patch_id"] == stored[item["identifier"]]["quiltPatchId"]
            assert item["tags"] == FILES[item["identifier"]][1]

        log = SliverLog(network)
        for identifier, (content, tags) in FILES.items():
            entry = stored[identifier]
            log.clear()
            patch_url = f"{url}/v1/blobs/by-quilt-patch-id/{entry['quiltPatchId']}"
            async with session.get(patch_url) as response:
                assert response.status == 200
                assert await response.read() == content
                headers = response.headers
            assert log.secondary() == set(range(*entry["range"]))
            assert headers["X-Quilt-Patch-Identifier"] == identifier
            assert headers["ETag"] == f'"{quilt_id}"'
            assert headers["X-Content-Type-Options"] == "nosniff"
            assert headers["Content-Type"] == tags.get("content-type", "application/octet-stream")
            assert "site" not in headers  # only Walrus's allowed headers come from tags

            name_url = f"{url}/v1/blobs/by-quilt-id/{quilt_id}/{quote(identifier, safe='')}"
            async with session.get(name_url, headers={"Accept": "text/plain"}) as response:
                assert response.status == 200, await response.text()
                assert await response.read() == content
                assert response.headers["Content-Type"] == "text/plain"
                assert response.headers["X-Quilt-Patch-Identifier"] == identifier


async def test_quilt_uploads_that_are_refused(tmp_path: Path) -> None:
    limits = DaemonLimits(max_quilt_body_bytes=20_000)
    async with network_daemon(tmp_path, limits) as (_network, _client, url, session):
        cases: list[tuple[Any, str, str]] = [
            (b"not multipart", "", "expected multipart/form-data"),
            (form({"a": b"1"}, "{not json"), "", "_metadata is not JSON"),
            (form({"a": b"1"}, {"identifier": "a"}), "", "JSON array"),
            (
                form({"a": b"1"}, [{"identifier": "a"}, {"identifier": "a"}]),
                "",
                "duplicate identifier 'a' in _metadata",
            ),
            (form({}, []), "", "no files provided"),
            (form({"bad ": b"1"}), "", "ends with white space"),
            (form({"a": b"1"}), "&quilt_version=v2", "unsupported quilt_version"),
            (form({"a": b"1"}), "&permanent=true&deletable=true", "both deletable and permanent"),
        ]
        for body, query, message in cases:
            status, answer = await put_quilt(session, url, body, "epochs=1" + query)
            assert status == 400, (message, answer)
            assert message in answer["error"]["message"], answer
        duplicate = aiohttp.FormData()
        duplicate.add_field("same", b"1", filename="x")
        duplicate.add_field("same", b"2", filename="y")
        status, answer = await put_quilt(session, url, duplicate)
        assert status == 400 and "duplicate identifier 'same'" in answer["error"]["message"]
        assert error_reason(answer) == "MALFORMED_REQUEST"
        status, answer = await put_quilt(session, url, form({"big": bytes(30_000)}))
        assert status == 413 and error_reason(answer) == "BODY_TOO_LARGE"
        broken = b'--XYZ\r\nContent-Disposition: form-data; name="a"\r\n\r\nno end'
        headers = {"Content-Type": "multipart/form-data; boundary=XYZ"}
        async with session.put(f"{url}/v1/quilts", data=broken, headers=headers) as response:
            assert response.status == 400, await response.text()
            assert error_reason(await response.json()) == "MALFORMED_REQUEST"


async def test_unknown_patches_and_non_quilts_are_404(tmp_path: Path) -> None:
    async with network_daemon(tmp_path) as (network, _client, url, session):
        status, body = await put_quilt(session, url, form({"a.txt": b"A", "b.txt": b"BB"}))
        assert status == 200
        quilt_id = body["blobStoreResult"]["newlyCreated"]["blobObject"]["blobId"]
        await network.settle()
        async with session.get(f"{url}/v1/blobs/by-quilt-id/{quilt_id}/c.txt") as response:
            assert response.status == 404
            answer = await response.json()
        assert error_reason(answer) == "QUILT_PATCH_NOT_FOUND"
        assert "no patch with identifier 'c.txt'" in answer["error"]["message"]
        assert quilt_id in answer["error"]["message"]

        s = EncodingParams(network.cluster.n_shards).n_secondary_source_symbols
        from walruspy.core.blob_id import BlobId

        beyond = QuiltPatchId(BlobId.parse(quilt_id), QuiltPatchInternalId(s, s + 2))
        async with session.get(f"{url}/v1/blobs/by-quilt-patch-id/{beyond}") as response:
            assert response.status == 404
            assert error_reason(await response.json()) == "QUILT_PATCH_NOT_FOUND"
        async with session.get(f"{url}/v1/blobs/by-quilt-patch-id/not-base64!") as response:
            assert response.status == 400
            assert error_reason(await response.json()) == "MALFORMED_REQUEST"
        async with session.get(f"{url}/v1/quilts/{'A' * 43}/patches") as response:
            assert response.status == 404
            assert error_reason(await response.json()) == "BLOB_NOT_FOUND"

        async with session.put(f"{url}/v1/blobs?epochs=2", data=blob_data(5, 4000)) as response:
            plain = (await response.json())["newlyCreated"]["blobObject"]["blobId"]
        await network.settle()
        async with session.get(f"{url}/v1/quilts/{plain}/patches") as response:
            assert response.status == 404
            answer = await response.json()
        assert (
            error_reason(answer) == "NOT_A_QUILT" and "is not a quilt" in answer["error"]["message"]
        )


async def test_identifiers_that_are_no_header_value_are_left_out(tmp_path: Path) -> None:
    async with network_daemon(tmp_path) as (network, _client, url, session):
        # "/" and "/a" are names aiohttp's own multipart reader misreads (as "" and "a").
        files = {" leading": b"1", "naïve": b"2", "plain name": b"3", "/": b"4", "/a": b"5"}
        status, body = await put_quilt(session, url, form(files))
        assert status == 200, body
        await network.settle()
        for entry in body["storedQuiltBlobs"]:
            patch_url = f"{url}/v1/blobs/by-quilt-patch-id/{entry['quiltPatchId']}"
            async with session.get(patch_url) as response:
                assert await response.read() == files[entry["identifier"]]
                shown = response.headers.get("X-Quilt-Patch-Identifier")
            visible = ("plain name", "/", "/a")
            assert shown == (entry["identifier"] if entry["identifier"] in visible else None)

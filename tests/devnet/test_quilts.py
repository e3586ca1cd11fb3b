"""Quilts on a real devnet: the CLI, the publisher and the aggregator, as users run them.

Four node processes, 100 shards (p = 34, s = 67: up to 66 patches), the devchain and the daemon.
A quilt stored with `walruspy store-quilt` is listed and read back by every selection of
`read-quilt` and by every aggregator route; a quilt stored through `PUT /v1/quilts` comes back
through the library and the aggregator; random quilts (Hypothesis: identifiers, tags, sizes
from 0 bytes up) make the same round trip through the publisher and the aggregator. Bad input:
duplicate identifiers, unknown identifiers and patch IDs (404 with a clear message), malformed
multipart.

The Hypothesis test is synchronous (Hypothesis cannot drive the module's event loop): each
example runs on a loop of its own and talks to the devnet's processes over HTTP.
"""

from __future__ import annotations

import asyncio
import json
import string
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.devnet.conftest import TEST_EPOCH_S, blob_bytes, error_reason, walruspy
from walruspy.client import WalrusClient, open_client
from walruspy.core.blob_id import BlobId
from walruspy.core.params import EncodingParams
from walruspy.core.quilt import QuiltPatchId, QuiltPatchInternalId
from walruspy.devnet import Devnet, open_devnet

pytestmark = [pytest.mark.devnet, pytest.mark.slow, pytest.mark.timeout(600)]
on_module_loop = pytest.mark.asyncio(loop_scope="module")

N_SHARDS = 100


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def devnet(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Devnet]:
    directory = tmp_path_factory.mktemp("quilts")
    async with open_devnet(
        directory, n_nodes=4, n_shards=N_SHARDS, epoch_duration_s=TEST_EPOCH_S
    ) as dn:
        yield dn


def _form(
    files: dict[str, bytes], tags: dict[str, dict[str, str]] | None = None
) -> aiohttp.FormData:
    data = aiohttp.FormData(default_to_multipart=True)
    for name, content in files.items():
        data.add_field(name, content, filename="f", content_type="application/octet-stream")
    if tags:
        data.add_field(
            "_metadata", json.dumps([{"identifier": k, "tags": v} for k, v in tags.items()])
        )
    return data


async def _put_quilt(http: aiohttp.ClientSession, devnet: Devnet, body: Any) -> tuple[int, Any]:
    async with http.put(f"{devnet.publisher_url}/v1/quilts?epochs=2", data=body) as response:
        return response.status, await response.json()


def _quilt_id(store_result: dict[str, Any]) -> str:
    if "alreadyCertified" in store_result:
        return str(store_result["alreadyCertified"]["blobId"])
    return str(store_result["newlyCreated"]["blobObject"]["blobId"])


async def _check_aggregator(
    http: aiohttp.ClientSession,
    devnet: Devnet,
    quilt_id: str,
    patch_ids: dict[str, str],
    files: dict[str, bytes],
    tags: dict[str, dict[str, str]],
) -> None:
    """Every patch by patch ID and by identifier, and the listing, as the aggregator answers."""
    url = devnet.aggregator_url
    for identifier, content in files.items():
        async with http.get(f"{url}/v1/blobs/by-quilt-patch-id/{patch_ids[identifier]}") as resp:
            assert resp.status == 200, await resp.text()
            assert await resp.read() == content
            if identifier.isascii() and identifier.isprintable() and identifier[0] != " ":
                assert resp.headers["X-Quilt-Patch-Identifier"] == identifier
            else:  # it would not come back as sent
                assert "X-Quilt-Patch-Identifier" not in resp.headers
            assert resp.headers["ETag"] == f'"{quilt_id}"'
        named = f"{url}/v1/blobs/by-quilt-id/{quilt_id}/{quote(identifier, safe='')}"
        async with http.get(named) as resp:
            assert resp.status == 200, (identifier, await resp.text())
            assert await resp.read() == content
    async with http.get(f"{url}/v1/quilts/{quilt_id}/patches") as resp:
        assert resp.status == 200
        items = await resp.json()
    assert {item["identifier"]: item["patch_id"] for item in items} == patch_ids
    assert {item["identifier"]: item["tags"] for item in items} == {
        name: tags.get(name, {}) for name in files
    }


@on_module_loop
async def test_cli_store_quilt_then_every_read(
    devnet: Devnet, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    (site / "img").mkdir(parents=True)
    files = {
        "index.html": b"<h1>quilt</h1>",
        "empty.txt": b"",
        "big.bin": blob_bytes(7, 300_000),
        "logo.png": blob_bytes(8, 10_240),
    }
    for name, content in files.items():
        (site / ("img" if name.endswith(".png") else ".") / name).write_bytes(content)
    config = str(devnet.client_config_path)
    stored = json.loads(
        walruspy(
            "store-quilt", "--paths", str(site), "--epochs", "2", "--config", config, "--json"
        ).stdout
    )
    quilt_id = _quilt_id(stored["blobStoreResult"])
    patch_ids = {p["identifier"]: p["quiltPatchId"] for p in stored["storedQuiltBlobs"]}
    assert sorted(patch_ids) == sorted(files)

    listed = walruspy("list-patches-in-quilt", quilt_id, "--config", config).stdout
    assert all(patch_id in listed for patch_id in patch_ids.values())
    out = tmp_path / "by-id"
    walruspy(
        "read-quilt",
        "--quilt-patch-ids",
        *patch_ids.values(),
        "--out",
        str(out),
        "--config",
        config,
    )
    assert {path.name: path.read_bytes() for path in out.iterdir()} == files
    named = tmp_path / "named"
    walruspy(
        "read-quilt", "--quilt-id", quilt_id, "--identifiers", "big.bin", "empty.txt",
        "--out", str(named), "--config", config,
    )  # fmt: skip
    assert sorted(path.name for path in named.iterdir()) == ["big.bin", "empty.txt"]
    assert (named / "big.bin").read_bytes() == files["big.bin"]
    tagged = json.loads(
        walruspy(
            "read-quilt", "--quilt-id", quilt_id, "--tag", "k", "v", "--config", config, "--json"
        ).stdout
    )
    assert tagged == {}  # files stored with --paths have no tags
    everything = json.loads(
        walruspy("read-quilt", "--quilt-id", quilt_id, "--config", config, "--json").stdout
    )
    assert {b["identifier"]: bytes(b["blob"]) for b in everything["retrievedBlobs"]} == files
    missing = walruspy(
        "read-quilt", "--quilt-id", quilt_id, "--identifiers", "nope.txt", "--config", config,
        check=False,
    )  # fmt: skip
    assert missing.returncode == 1 and "no patch with identifier 'nope.txt'" in missing.stderr
    await _check_aggregator(http, devnet, quilt_id, patch_ids, files, {})


@on_module_loop
async def test_publisher_quilt_through_library_and_aggregator(
    devnet: Devnet, client: WalrusClient, http: aiohttp.ClientSession
) -> None:
    files = {"a": b"first", "b/c.json": b'{"k": 1}', "zero": b"", "d": blob_bytes(9, 70_000)}
    tags = {"a": {"kind": "text", "n": "1"}, "b/c.json": {"kind": "json"}}
    status, body = await _put_quilt(http, devnet, _form(files, tags))
    assert status == 200, body
    quilt_id = _quilt_id(body["blobStoreResult"])
    patch_ids = {p["identifier"]: p["quiltPatchId"] for p in body["storedQuiltBlobs"]}
    await _check_aggregator(http, devnet, quilt_id, patch_ids, files, tags)
    read = await client.quilts.read_by_tag(quilt_id, "kind", "json")
    assert [(p.identifier, p.data) for p in read.patches] == [("b/c.json", b'{"k": 1}')]
    patch = patch_ids["d"]
    one = await client.quilts.read_by_ids([patch])
    assert one.patches[0].data == files["d"]
    # Only the patch's columns were read: a fraction of what a whole read of the quilt takes.
    internal = QuiltPatchId.parse(patch).internal_id
    assert one.slivers[BlobId.parse(quilt_id)] == tuple(internal.sliver_indices)


@on_module_loop
async def test_bad_quilts_and_unknown_patches(devnet: Devnet, http: aiohttp.ClientSession) -> None:
    duplicate = aiohttp.FormData()
    duplicate.add_field("same", b"1", filename="x")
    duplicate.add_field("same", b"2", filename="y")
    status, body = await _put_quilt(http, devnet, duplicate)
    assert status == 400 and "duplicate identifier 'same'" in body["error"]["message"]
    broken = b'--B\r\nContent-Disposition: form-data; name="a"\r\n\r\nunterminated'
    headers = {"Content-Type": "multipart/form-data; boundary=B"}
    async with http.put(f"{devnet.publisher_url}/v1/quilts", data=broken, headers=headers) as r:
        assert r.status == 400 and error_reason(await r.json()) == "MALFORMED_REQUEST"
    status, body = await _put_quilt(http, devnet, b"raw bytes")
    assert status == 400 and "multipart/form-data" in body["error"]["message"]

    status, body = await _put_quilt(http, devnet, _form({"only": b"x"}))
    quilt_id = _quilt_id(body["blobStoreResult"])
    url = devnet.aggregator_url
    async with http.get(f"{url}/v1/blobs/by-quilt-id/{quilt_id}/other") as response:
        assert response.status == 404
        answer = await response.json()
    assert error_reason(answer) == "QUILT_PATCH_NOT_FOUND"
    assert "no patch with identifier 'other'" in answer["error"]["message"]
    s = EncodingParams(N_SHARDS).n_secondary_source_symbols
    empty = QuiltPatchId(BlobId.parse(quilt_id), QuiltPatchInternalId(s - 1, s))  # unused column
    async with http.get(f"{url}/v1/blobs/by-quilt-patch-id/{empty}") as response:
        assert response.status == 404
        answer = await response.json()
    assert error_reason(answer) == "QUILT_PATCH_NOT_FOUND" and "no patch in columns" in str(answer)
    unknown = QuiltPatchId(BlobId(bytes(32)), QuiltPatchInternalId(1, 2))
    async with http.get(f"{url}/v1/blobs/by-quilt-patch-id/{unknown}") as response:
        assert response.status == 404
        assert error_reason(await response.json()) == "BLOB_NOT_FOUND"
    async with http.get(f"{url}/v1/blobs/by-quilt-patch-id/AAAA") as response:
        assert response.status == 400 and error_reason(await response.json()) == "MALFORMED_REQUEST"


# --- random quilts --------------------------------------------------------------------------------

_IDENTIFIER_CHARS = string.ascii_letters + string.digits + "-_.~+ ()/é中"


@st.composite
def quilts(draw: st.DrawFn) -> tuple[dict[str, bytes], dict[str, dict[str, str]]]:
    names = draw(
        st.lists(
            st.text(_IDENTIFIER_CHARS, min_size=1, max_size=16).filter(
                # URLs cannot carry "." and ".." as path segments; trailing white space is refused.
                lambda name: (
                    name not in (".", "..") and not name.endswith(" ") and name != "_metadata"
                )
            ),
            min_size=1,
            max_size=8,
            unique=True,
        )
    )
    sizes = st.one_of(st.integers(0, 16), st.integers(17, 5000), st.integers(5001, 60_000))
    files = {name: blob_bytes(draw(st.integers(0, 1 << 30)), draw(sizes)) for name in names}
    tag_text = st.text(string.printable + "é", max_size=10)
    tags = {
        name: draw(st.dictionaries(tag_text, tag_text, max_size=3))
        for name in names
        if draw(st.booleans())
    }
    return files, tags


@given(quilts())
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_random_quilts_round_trip(
    devnet: Devnet, quilt: tuple[dict[str, bytes], dict[str, dict[str, str]]]
) -> None:
    files, tags = quilt
    asyncio.run(_round_trip(devnet, files, tags))


async def _round_trip(
    devnet: Devnet, files: dict[str, bytes], tags: dict[str, dict[str, str]]
) -> None:
    async with aiohttp.ClientSession() as http:
        status, body = await _put_quilt(http, devnet, _form(files, tags))
        assert status == 200, body
        quilt_id = _quilt_id(body["blobStoreResult"])
        patch_ids = {p["identifier"]: p["quiltPatchId"] for p in body["storedQuiltBlobs"]}
        await _check_aggregator(http, devnet, quilt_id, patch_ids, files, tags)
    async with open_client(devnet.client_config()) as walrus:
        read = await walrus.quilts.read_all(quilt_id)
    assert {p.identifier: (p.data, dict(p.tags)) for p in read.patches} == {
        name: (content, tags.get(name, {})) for name, content in files.items()
    }

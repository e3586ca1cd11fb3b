"""The explorer's pages and JSON endpoints in process, and `/v1/api` for browsers.

Four storage nodes (3, 3, 2 and 2 of 10 shards) on the fake chain, as the daemon's other tests:
the network and health answers (a stopped node shows unhealthy), a blob's view by blob ID and by
object ID (status, objects, type, text, who holds it), recent blobs from the chain's events, the
pages and static files in the modes that serve them, and the HTML/YAML negotiation of the
OpenAPI document.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.client.network import Network, open_network
from walruspy.client import WalrusClient
from walruspy.daemon import DaemonMode, ExplorerConfig, open_daemon, openapi_document
from walruspy.daemon.explorer_views import sniff_content_type
from walruspy.daemon.openapi_html import render_openapi_html, wants_html

pytestmark = pytest.mark.timeout(60)


@contextlib.asynccontextmanager
async def explorer(
    tmp_path: Path, mode: DaemonMode = DaemonMode.DAEMON, **kw: Any
) -> AsyncIterator[tuple[Network, WalrusClient, str, aiohttp.ClientSession]]:
    async with (
        open_network(tmp_path) as network,
        network.client() as client,
        open_daemon(client, mode, "127.0.0.1:0", **kw) as running,
        aiohttp.ClientSession() as session,
    ):
        yield network, client, running.url, session


async def get_json(session: aiohttp.ClientSession, url: str, status: int = 200) -> Any:
    async with session.get(url) as response:
        assert response.status == status, await response.text()
        return await response.json()


async def test_network_shows_epoch_committee_and_prices(tmp_path: Path) -> None:
    async with explorer(tmp_path) as (_network, _client, url, session):
        view = await get_json(session, f"{url}/explorer/api/network")
    assert view["nShards"] == 10 and view["nNodes"] == 4
    assert sorted(node["nShards"] for node in view["nodes"]) == [2, 2, 3, 3]
    assert sum(len(node["shards"]) for node in view["nodes"]) == 10
    assert all(node["url"].startswith("http") for node in view["nodes"])
    assert view["nextEpochAt"] == view["epochStartedAt"] + view["epochDurationS"]
    assert view["info"]["priceInfo"]["storagePricePerUnitSize"] >= 0
    assert view["upload"] == {"url": ""}  # the daemon publishes: same origin
    assert view["staking"] is False and view["healthPollS"] > 0


@pytest.mark.parametrize(
    ("publisher_url", "upload"),
    [(None, None), ("http://publisher:9000", {"url": "http://publisher:9000"})],
)
async def test_an_aggregator_uploads_only_to_a_publisher_it_is_given(
    tmp_path: Path, publisher_url: str | None, upload: Any
) -> None:
    config = ExplorerConfig(publisher_url=publisher_url)
    async with explorer(tmp_path, DaemonMode.AGGREGATOR, explorer=config) as (_, _c, url, session):
        view = await get_json(session, f"{url}/explorer/api/network")
    assert view["upload"] == upload


async def test_health_shows_a_stopped_node_unhealthy(tmp_path: Path) -> None:
    async with explorer(tmp_path) as (network, _client, url, session):
        # A node reports RecoveryInProgress while it catches up at its start, then Active.
        for _ in range(50):
            nodes = (await get_json(session, f"{url}/explorer/api/health"))["nodes"]
            if {node["status"] for node in nodes} == {"Active"}:
                break
            await _wait_for_health_ttl()
        assert len(nodes) == 4 and all(node["healthy"] for node in nodes)
        assert all(node["version"] == "0.1.0" and node["error"] is None for node in nodes)
        assert {node["status"] for node in nodes} == {"Active"}
        await network.stop(1)
        stopped = "0x" + network.nodes[1].member.node_id.hex()
        await _wait_for_health_ttl()
        nodes = (await get_json(session, f"{url}/explorer/api/health"))["nodes"]
    by_id = {node["nodeId"]: node for node in nodes}
    assert by_id[stopped]["healthy"] is False and by_id[stopped]["error"]
    assert sum(node["healthy"] for node in nodes) == 3


async def _wait_for_health_ttl() -> None:
    import asyncio

    from walruspy.daemon.explorer import HEALTH_TTL_S

    await asyncio.sleep(HEALTH_TTL_S + 0.1)


async def test_a_blob_by_blob_id_and_object_id(tmp_path: Path) -> None:
    text = "hello explorer\n" * 20
    async with explorer(tmp_path) as (network, client, url, session):
        stored = await client.store(text.encode(), 2, deletable=True)
        await network.settle()
        view = await get_json(session, f"{url}/explorer/api/blobs/{stored.blob_id}")
        assert stored.object_id is not None
        by_object = await get_json(session, f"{url}/explorer/api/blobs/{stored.object_id}")
    assert view["blobId"] == str(stored.blob_id) == by_object["blobId"]
    assert view["state"] == "certified" and view["size"] == len(text)
    assert view["contentType"] == "text/plain; charset=utf-8" and view["text"] == text
    assert view["certifiedEpoch"] is not None and view["endEpoch"] == stored.end_epoch
    assert "certified" in view["statusText"]
    (obj,) = view["objects"]
    assert obj["objectId"] == stored.object_id and obj["deletable"] is True
    assert obj["owner"].lower() == client.address.lower()  # type: ignore[union-attr]
    assert len(view["holding"]) == 4 and all(node["holds"] for node in view["holding"])
    assert {node["metadata"] for node in view["holding"]} == {"stored"}


async def test_a_blobs_content_type_attribute_wins_over_sniffing(tmp_path: Path) -> None:
    async with explorer(tmp_path) as (network, client, url, session):
        stored = await client.store(b"\x1aE\xdf\xa3not really a video", 2, deletable=True)
        assert stored.object_id is not None
        await client.set_blob_attribute(stored.object_id, {"content-type": "text/plain"})
        await network.settle()
        view = await get_json(session, f"{url}/explorer/api/blobs/{stored.blob_id}")
    assert view["contentType"] == "text/plain"
    assert view["objects"][0]["attribute"] == {"content-type": "text/plain"}


async def test_a_blob_while_a_node_is_down_and_bad_keys(tmp_path: Path) -> None:
    async with explorer(tmp_path) as (network, client, url, session):
        stored = await client.store(b"\x00\x01binary", 2, deletable=False)
        await network.settle()
        await network.stop(0)
        view = await get_json(session, f"{url}/explorer/api/blobs/{stored.blob_id}")
        bad = await get_json(session, f"{url}/explorer/api/blobs/not-a-blob-id", 400)
        missing = await get_json(session, f"{url}/explorer/api/blobs/0x{'ab' * 32}", 404)
        unknown = await get_json(session, f"{url}/explorer/api/blobs/{'A' * 43}")
    assert view["state"] == "certified" and view["contentType"] == "application/octet-stream"
    assert view["text"] is None
    holders = [node["holds"] for node in view["holding"]]
    assert holders.count(True) == 3
    down = next(node for node in view["holding"] if not node["holds"])
    assert down["error"] and down["metadata"] is None
    assert bad["error"]["details"][0]["reason"] == "INVALID_BLOB_ID"
    assert missing["error"]["details"][0]["reason"] == "BLOB_NOT_FOUND"
    assert unknown["state"] == "nonexistent" and unknown["objects"] == []


async def test_recent_blobs_follow_the_chains_events(tmp_path: Path) -> None:
    async with explorer(tmp_path) as (_network, client, url, session):
        assert (await get_json(session, f"{url}/explorer/api/recent"))["blobs"] == []
        first = await client.store(b"first", 2, deletable=True)
        second = await client.store(b"second", 3, deletable=False)
        await _wait_for_recent_ttl()
        blobs = (await get_json(session, f"{url}/explorer/api/recent"))["blobs"]
    assert [b["blobId"] for b in blobs] == [str(second.blob_id), str(first.blob_id)]
    assert [b["state"] for b in blobs] == ["certified", "certified"]
    assert blobs[0]["size"] == 6 and blobs[0]["deletable"] is False
    assert blobs[1]["objectId"] == first.object_id


async def _wait_for_recent_ttl() -> None:
    import asyncio

    from walruspy.daemon.explorer import RECENT_TTL_S

    await asyncio.sleep(RECENT_TTL_S + 0.1)


@pytest.mark.parametrize("mode", list(DaemonMode))
async def test_pages_in_the_aggregator_modes_static_files_in_all(
    tmp_path: Path, mode: DaemonMode
) -> None:
    async with explorer(tmp_path, mode) as (_network, _client, url, session):
        for path in ("/", "/blobs/anything"):
            async with session.get(f"{url}{path}") as response:
                if mode is DaemonMode.PUBLISHER:
                    assert response.status == 404
                    assert (await response.json())["error"]["code"] == 404
                else:
                    assert response.status == 200
                    assert response.content_type == "text/html"
                    assert "/explorer/static/explorer.js" in await response.text()
        for name, content_type in (
            ("explorer.js", "text/javascript"),
            ("explorer.css", "text/css"),
        ):
            async with session.get(f"{url}/explorer/static/{name}") as response:
                assert response.status == 200 and response.content_type == content_type
        async with session.get(f"{url}/explorer/static/secret.py") as response:
            assert response.status == 404


async def test_the_explorer_can_be_turned_off(tmp_path: Path) -> None:
    config = ExplorerConfig(enabled=False)
    async with explorer(tmp_path, DaemonMode.AGGREGATOR, explorer=config) as (_, _c, url, session):
        async with session.get(f"{url}/") as response:
            assert response.status == 404
        async with session.get(f"{url}/explorer/api/network") as response:
            assert response.status == 404


async def test_api_document_is_a_page_for_browsers_and_yaml_otherwise(tmp_path: Path) -> None:
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    async with explorer(tmp_path) as (_network, _client, url, session):
        async with session.get(f"{url}/v1/api", headers={"Accept": browser}) as response:
            assert response.content_type == "text/html"
            page = await response.text()
        for accept in ("application/yaml", "*/*", "application/yaml, text/html"):
            async with session.get(f"{url}/v1/api", headers={"Accept": accept}) as response:
                assert response.content_type == "application/yaml"
                document = yaml.safe_load(await response.read())
    assert document == yaml.safe_load(openapi_document(DaemonMode.DAEMON))
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert f'id="{operation["operationId"]}"' in page
            assert f"{method.upper()}</span> <code>{path}</code>" in page
    assert "<h4>Parameters</h4>" in page and "<h4>Responses</h4>" in page


def test_openapi_page_escapes_the_document() -> None:
    page = render_openapi_html(
        {
            "info": {"title": "<script>x</script>", "version": "1"},
            "paths": {
                "/a/{id}": {
                    "get": {
                        "operationId": "op",
                        "summary": "a & b",
                        "parameters": [
                            {
                                "name": "id",
                                "in": "path",
                                "required": True,
                                "schema": {"type": "string"},
                            },
                            {"$ref": "#/components/parameters/Q"},
                        ],
                        "responses": {"200": {"$ref": "#/components/responses/Ok"}},
                    }
                }
            },
            "components": {
                "parameters": {"Q": {"name": "q", "in": "query", "schema": {"$ref": "#/x/Y"}}},
                "responses": {"Ok": {"description": "fine", "content": {"text/plain": {}}}},
            },
        }
    )
    assert "<script>x" not in page and "&lt;script&gt;" in page and "a &amp; b" in page
    assert "<code>q</code></td><td>query</td><td>Y</td>" in page
    assert "<code>200</code></td><td>text/plain</td><td>fine</td>" in page


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        (None, False),
        ("", False),
        ("*/*", False),
        ("application/yaml", False),
        ("text/html", True),
        ("text/html,application/xhtml+xml,*/*;q=0.8", True),
        ("application/json, text/html", True),
    ],
)
def test_wants_html(accept: str | None, html: bool) -> None:
    assert wants_html(accept) is html


@pytest.mark.parametrize(
    ("head", "content_type"),
    [
        (b"\x89PNG\r\n\x1a\n....", "image/png"),
        (b"\xff\xd8\xff\xe0", "image/jpeg"),
        (b"GIF89a..", "image/gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"\x1aE\xdf\xa3\x9fB\x86", "video/webm"),
        (b"\x00\x00\x00\x18ftypmp42", "video/mp4"),
        (b"hello\nworld\t!", "text/plain; charset=utf-8"),
        ("caf\u00e9".encode()[:-1], "text/plain; charset=utf-8"),  # a character cut at the end
        (b"", "text/plain; charset=utf-8"),
        (b"\x00\x01\x02binary", "application/octet-stream"),
        (b"\xff\xfe\xfd\xfc\xfb\xfa\xf9", "application/octet-stream"),
    ],
)
def test_sniff_content_type(head: bytes, content_type: str) -> None:
    assert sniff_content_type(head) == content_type

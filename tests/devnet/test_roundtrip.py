"""Round trips on a real devnet: four node processes, 100 shards, the devchain and the daemon.

Blobs of 0, 1 and 1000 bytes, 1 MiB and 16 MiB go through the client library and come back
byte for byte; blobs go through the publisher (HTTP PUT) and come back through the aggregator
(HTTP GET), with Walrus's JSON shapes and its 400, 404 and 413 answers; a deletable blob is
deleted and then reads report it gone; a blob stored for one epoch reads as expired once the
epoch is over.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
import yaml

from tests.devnet.conftest import TEST_EPOCH_S, blob_bytes, error_reason, wait_certified
from walruspy.client import WalrusClient
from walruspy.client.errors import BlobNotFoundError, NotEnoughAnswersError
from walruspy.core.blob_id import BlobId
from walruspy.daemon import READY_PREFIX, DaemonMode, openapi_document
from walruspy.devnet import Devnet, open_devnet, wait_until
from walruspy.node_api.schemas import Deletable, Nonexistent, Permanent

pytestmark = [
    pytest.mark.devnet,
    pytest.mark.slow,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(300),
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def devnet(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Devnet]:
    directory = tmp_path_factory.mktemp("roundtrip")
    async with open_devnet(directory, n_nodes=4, n_shards=100, epoch_duration_s=TEST_EPOCH_S) as dn:
        yield dn


@pytest.mark.parametrize("size", [0, 1, 1000, 1 << 20, 16 << 20])
async def test_round_trip(client: WalrusClient, size: int) -> None:
    data = blob_bytes(size, size)
    result = await client.store(data, 2, deletable=False)
    assert not result.already_certified and result.blob is not None
    assert result.blob.certified_epoch is not None
    assert await client.read(result.blob_id) == data
    status = await wait_certified(client, result.blob_id)
    assert isinstance(status, Permanent) and status.end_epoch == result.end_epoch


async def test_publisher_then_aggregator(devnet: Devnet, http: aiohttp.ClientSession) -> None:
    data = blob_bytes(42, 300_000)
    async with http.put(f"{devnet.publisher_url}/v1/blobs?epochs=3", data=data) as response:
        assert response.status == 200, await response.text()
        created = (await response.json())["newlyCreated"]
    blob = created["blobObject"]
    assert blob["size"] == len(data) and blob["deletable"] is True
    assert blob["storage"]["endEpoch"] - blob["storage"]["startEpoch"] == 3
    assert created["resourceOperation"]["registerFromScratch"]["epochsAhead"] == 3
    async with http.get(f"{devnet.aggregator_url}/v1/blobs/{blob['blobId']}") as response:
        assert response.status == 200
        assert await response.read() == data
        assert response.headers["ETag"] == blob["blobId"]
    url = f"{devnet.aggregator_url}/v1/blobs/by-object-id/{blob['id']}"
    async with http.get(url) as response:
        assert response.status == 200 and await response.read() == data


async def test_publisher_permanent_blob_is_then_already_certified(
    devnet: Devnet, client: WalrusClient, http: aiohttp.ClientSession
) -> None:
    data = blob_bytes(43, 5000)
    url = f"{devnet.publisher_url}/v1/blobs?permanent=true&epochs=2"
    async with http.put(url, data=data) as response:
        first = await response.json()
    # The publisher trusts a status that nodes of f+1 shards report: wait until they have all
    # applied the certification (one event poll), as a second writer would find it.
    await wait_certified(client, first["newlyCreated"]["blobObject"]["blobId"])
    async with http.put(url, data=data) as response:
        second = await response.json()
    assert first["newlyCreated"]["blobObject"]["deletable"] is False
    assert second["alreadyCertified"]["blobId"] == first["newlyCreated"]["blobObject"]["blobId"]


async def test_daemon_errors_404_413_400(devnet: Devnet, http: aiohttp.ClientSession) -> None:
    missing = BlobId(bytes(range(32)))
    async with http.get(f"{devnet.aggregator_url}/v1/blobs/{missing}") as response:
        assert response.status == 404
        body = await response.json()
    assert error_reason(body) == "BLOB_NOT_FOUND"
    assert body["error"]["details"][0]["domain"] == "daemon.walrus.space"
    async with http.get(f"{devnet.aggregator_url}/v1/blobs/by-object-id/0x{'ab' * 32}") as resp:
        assert resp.status == 404
    too_big = io.BytesIO(bytes(devnet.settings.max_body_bytes + 1))
    async with http.put(f"{devnet.publisher_url}/v1/blobs", data=too_big) as response:
        assert response.status == 413
        assert error_reason(await response.json()) == "BODY_TOO_LARGE"
    url = f"{devnet.publisher_url}/v1/blobs?deletable=true&permanent=true"
    async with http.put(url, data=b"x") as response:
        assert response.status == 400
        assert error_reason(await response.json()) == "INVALID_BLOB_PERSISTENCE"
    async with http.get(f"{devnet.publisher_url}/v1/api") as response:
        assert yaml.safe_load(await response.read()) == yaml.safe_load(
            openapi_document(DaemonMode.DAEMON)
        )
    async with http.get(f"{devnet.publisher_url}/status") as response:
        assert await response.text() == "OK"


async def test_deleted_blob_reads_as_gone(
    devnet: Devnet, client: WalrusClient, http: aiohttp.ClientSession
) -> None:
    data = blob_bytes(44, 50_000)
    result = await client.store(data, 2, deletable=True)
    assert result.object_id is not None
    assert await client.read(result.blob_id) == data
    status = await wait_certified(client, result.blob_id)
    assert isinstance(status, Deletable) and status.deletable_counts.count_deletable_certified == 1
    deleted = await client.delete(object_id=result.object_id)
    assert result.blob is not None
    assert [record.object_id for record in deleted.deleted] == [result.blob.object_id]

    async def gone() -> bool:
        try:
            await client.read(result.blob_id)
        except BlobNotFoundError:
            return True
        except NotEnoughAnswersError:  # some nodes have seen the deletion, others not yet
            return False
        return False

    await wait_until(gone, 30, "the deleted blob reading as not found")
    assert isinstance((await client.blob_status(result.blob_id)).status, Nonexistent)
    async with http.get(f"{devnet.aggregator_url}/v1/blobs/{result.blob_id}") as response:
        assert response.status == 404
    url = f"{devnet.aggregator_url}/v1/blobs/by-object-id/{result.object_id}"
    async with http.get(url) as response:
        assert response.status == 404
        assert error_reason(await response.json()) == "OBJECT_ID_RESOLUTION_FAILED"


@pytest.mark.parametrize(("mode", "as_json"), [("aggregator", False), ("publisher", True)])
async def test_daemon_commands_as_processes(
    devnet: Devnet, client: WalrusClient, http: aiohttp.ClientSession, mode: str, as_json: bool
) -> None:
    """`walruspy aggregator|publisher`: one ready line, only the mode's routes, SIGTERM exits 0."""
    stored = await client.store(blob_bytes(47, 2000), 2, deletable=False)
    args = ["--bind-address", "127.0.0.1:0", "--config", str(devnet.client_config_path)]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "walruspy.cli.main", mode, *args, *(["--json"] if as_json else []),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        async with asyncio.timeout(60):
            line = (await process.stdout.readline()).decode()
        if as_json:
            ready = json.loads(line)
            assert ready["mode"] == mode
            url = ready["url"]
        else:
            assert line.startswith(READY_PREFIX) and line.rstrip().endswith(f"mode={mode}")
            url = line.split()[4]
        async with http.get(f"{url}/v1/blobs/{stored.blob_id}") as response:
            assert (response.status == 200) == (mode == "aggregator")
        async with http.put(f"{url}/v1/blobs?epochs=1", data=b"publisher only") as response:
            assert (response.status == 200) == (mode == "publisher")
    finally:
        process.terminate()
        async with asyncio.timeout(30):
            assert await process.wait() == 0


async def test_publisher_without_a_wallet_refuses_to_start(devnet: Devnet, tmp_path: Path) -> None:
    config = tmp_path / "read_only.yaml"
    read_only = {"rpc_url": devnet.chain_rpc, "deployment": str(devnet.deployment_file)}
    await asyncio.to_thread(config.write_text, yaml.safe_dump(read_only))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "walruspy.cli.main", "publisher", "--bind-address", "127.0.0.1:0",
        "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(60):
        _, stderr = await process.communicate()
    assert process.returncode == 1
    assert "the publisher sends a transaction" in stderr.decode()


async def test_expired_blob_reads_as_expired(
    devnet: Devnet, client: WalrusClient, http: aiohttp.ClientSession
) -> None:
    """Last in this module: it ends epochs."""
    data = blob_bytes(45, 20_000)
    result = await client.store(data, 1, deletable=False)
    assert await client.read(result.blob_id) == data
    epoch = await devnet.advance_epoch()
    assert epoch == result.end_epoch  # the blob was stored until this epoch, exclusive

    async def expired() -> bool:
        try:
            await client.read(result.blob_id)
        except BlobNotFoundError as exc:
            messages.append(str(exc))
            return True
        except NotEnoughAnswersError:  # some nodes have collected the data, others not yet
            return False
        return False

    messages: list[str] = []
    await wait_until(expired, 30, "the expired blob reading as not found")
    assert "expired" in messages[-1]
    assert isinstance((await client.blob_status(result.blob_id)).status, Nonexistent)
    async with http.get(f"{devnet.aggregator_url}/v1/blobs/{result.blob_id}") as response:
        assert response.status == 404
    # A blob stored for longer is still there after the epoch change.
    longer = await client.store(blob_bytes(46, 1000), 3, deletable=False)
    await devnet.advance_epoch()
    assert await client.read(longer.blob_id) == blob_bytes(46, 1000)


async def test_devnet_files(devnet: Devnet) -> None:
    state = devnet.state()
    assert [node.shards for node in state.nodes] == [
        tuple(range(i * 25, (i + 1) * 25)) for i in range(4)
    ]
    files = [state.client_config, state.deployment_file, *(n.process.log for n in state.nodes)]
    assert all(await asyncio.to_thread(lambda: [Path(name).exists() for name in files]))
    node_ids = [node.node_id for node in state.nodes]
    assert node_ids == sorted(node_ids)
    assert devnet.deployer is not None
    for node in devnet.nodes:  # every node's wallet holds ether and WAL
        address = await asyncio.to_thread(lambda node=node: node.plan.wallet_address)
        assert await devnet.deployer.wal_balance(address) > 0

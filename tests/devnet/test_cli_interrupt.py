"""Ctrl-C during `walruspy store`, as a terminal sends it: SIGINT to a real command's process
group at three phases, against a devnet of real processes.

Phases are made observable from outside: the command is running once its process holds a
socket (before that Python is still importing); it has registered once the wallet owns an
uncertified blob object of the file's blob ID on chain (nodes are paused, so the upload cannot
finish); it is uploading once an unpaused node holds the blob's metadata (two of four nodes are
paused, so no quorum is reached). Each time: exit status 130, one line on stderr, no traceback;
the wallet's blob objects afterwards are none or exactly the one the line names, registered
and not certified; the next store of the file reuses that object instead of buying storage.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from tests.devnet.conftest import TEST_EPOCH_S, blob_bytes, walruspy
from walruspy.client import WalrusClient
from walruspy.core.encoding import encode_blob
from walruspy.devnet import Devnet, open_devnet, wait_until
from walruspy.node_api.tls import client_context

pytestmark = [
    pytest.mark.devnet,
    pytest.mark.slow,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(300),
]

N_SHARDS = 20
#: The longest a command may take to stop after Ctrl-C (a registration being waited for, the
#: lookup of the object, closing connections to paused nodes).
STOP_S = 60


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def devnet(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Devnet]:
    directory = tmp_path_factory.mktemp("interrupt")
    async with open_devnet(
        directory, n_nodes=4, n_shards=N_SHARDS, epoch_duration_s=TEST_EPOCH_S
    ) as dn:
        yield dn


def start_store(devnet: Devnet, path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "walruspy.cli.main", "store", str(path), "--epochs", "3",
         "--config", str(devnet.client_config_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )  # fmt: skip


def holds_a_socket(pid: int) -> bool:
    try:
        links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    except FileNotFoundError:
        return False
    return any(link.startswith("socket:") for link in links)


def ctrl_c(process: subprocess.Popen[str]) -> tuple[str, str]:
    """SIGINT to the command's process group; its stdout and stderr once it exited with 130."""
    os.killpg(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=STOP_S)
    assert process.returncode == 130, (process.returncode, out, err)
    assert "Traceback" not in err and "Traceback" not in out, err
    assert out == "" and err.count("\n") == 1, (out, err)
    return out, err


async def uncertified(client: WalrusClient, blob_id: Any) -> list[Any]:
    owned = await client.list_blobs()
    return [b for b in owned if b.blob_id == blob_id]


def check_named(err: str, records: list[Any]) -> None:
    [record] = records
    assert record.certified_epoch is None
    assert f"in blob object 0x{record.object_id.hex()}" in err
    assert "registered but not certified" in err


def store_again_reuses(devnet: Devnet, path: Path, record: Any) -> None:
    result = walruspy(
        "store", str(path), "--epochs", "3", "--config", str(devnet.client_config_path), "--json"
    )
    created = json.loads(result.stdout)["results"][0]["blobStoreResult"]["newlyCreated"]
    assert created["blobObject"]["id"] == "0x" + record.object_id.hex()
    assert "reuseRegistration" in created["resourceOperation"] and created["cost"] == 0


async def test_ctrl_c_before_registration(
    devnet: Devnet, client: WalrusClient, tmp_path: Path
) -> None:
    data = blob_bytes(61, 3_000_000)
    path = tmp_path / "early.bin"
    path.write_bytes(data)
    blob_id = encode_blob(data, N_SHARDS).metadata.blob_id
    process = start_store(devnet, path)

    async def running() -> bool:
        assert process.poll() is None
        return holds_a_socket(process.pid)

    await wait_until(running, 60, "the command running (past its imports)")
    _, err = ctrl_c(process)
    records = await uncertified(client, blob_id)
    # The command may have reached its registration while the signal travelled: then it must
    # name it. Either way no paid object is unaccounted for.
    if "nothing was registered" in err or not records:
        # Interrupted before the store began (a plain "Interrupted."): nothing registered.
        assert records == [] and "registered but not certified" not in err
    else:
        check_named(err, records)


async def test_ctrl_c_after_registration(
    devnet: Devnet, client: WalrusClient, tmp_path: Path
) -> None:
    data = blob_bytes(62, 200_000)
    path = tmp_path / "registered.bin"
    path.write_bytes(data)
    blob_id = encode_blob(data, N_SHARDS).metadata.blob_id
    for node in devnet.nodes:
        node.pause()
    try:
        process = start_store(devnet, path)

        async def registered() -> bool:
            assert process.poll() is None
            return bool(await uncertified(client, blob_id))

        await wait_until(registered, 60, "the store's registration on chain")
        _, err = ctrl_c(process)
    finally:
        for node in devnet.nodes:
            node.resume()
    records = await uncertified(client, blob_id)
    check_named(err, records)
    store_again_reuses(devnet, path, records[0])


async def test_ctrl_c_during_the_upload(
    devnet: Devnet, client: WalrusClient, tmp_path: Path
) -> None:
    data = blob_bytes(63, 500_000)
    path = tmp_path / "uploading.bin"
    path.write_bytes(data)
    blob_id = encode_blob(data, N_SHARDS).metadata.blob_id
    paused, running = devnet.nodes[:2], devnet.nodes[2:]
    for node in paused:
        node.pause()
    try:
        process = start_store(devnet, path)
        async with aiohttp.ClientSession() as session:

            async def uploading() -> bool:
                assert process.poll() is None
                for node in running:
                    url = f"{node.url}/v1/blobs/{blob_id}/metadata"
                    async with session.get(url, ssl=client_context()) as response:
                        if response.status == 200:
                            return True
                return False

            await wait_until(uploading, 60, "a node holding the blob's metadata")
        _, err = ctrl_c(process)
    finally:
        for node in paused:
            node.resume()
    records = await uncertified(client, blob_id)
    check_named(err, records)
    store_again_reuses(devnet, path, records[0])

"""`walruspy devnet up|status|down`, with and without `--json`, as users run them.

Each command runs in a process of its own. `up` must return with the network still running
(detached processes recorded in `DIR/devnet.json`); the client commands and the publisher work
against it; `status` tells running from stopped; `down` stops every process and leaves none
behind. Two devnets are started: one with text output, one with `--json`.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.devnet.conftest import blob_bytes, walruspy
from walruspy.devnet.processes import pid_alive
from walruspy.devnet.state import DevnetState
from walruspy.node_api.client import NodeClient
from walruspy.node_api.tls import load_network_key, public_key_bytes

pytestmark = [pytest.mark.devnet, pytest.mark.slow, pytest.mark.timeout(300)]


def every_pid(state: DevnetState) -> list[int]:
    return [record.pid for record in state.processes]


@pytest.fixture
def cleanup() -> Iterator[list[Path]]:
    """Directories of devnets to bring down whatever the test's outcome."""
    started: list[Path] = []
    yield started
    for directory in started:
        if (directory / "devnet.json").exists():
            walruspy("devnet", "down", "--dir", str(directory), check=False)


def http(method: str, url: str, data: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_devnet_up_status_down_text(tmp_path: Path, cleanup: list[Path]) -> None:
    directory = tmp_path / "net"
    cleanup.append(directory)
    up = walruspy(
        "devnet", "up", "--dir", str(directory), "--nodes", "4", "--shards", "40",
        "--epoch-duration", "1h",
    )  # fmt: skip
    assert "Publisher:" in up.stdout and "Chain RPC:" in up.stdout
    assert up.stdout.count("running") == 4 and "Node 3:" in up.stdout
    state = DevnetState.load(directory)
    assert all(pid_alive(pid) for pid in every_pid(state))  # up returned, the network runs

    status = walruspy("devnet", "status", "--dir", str(directory))
    assert f"Aggregator:     {state.daemon.url}" in status.stdout
    assert "Chain pid" in status.stdout and "stopped" not in status.stdout

    # The client commands and the daemon work against it.
    config = str(directory / "client_config.yaml")
    source = tmp_path / "blob.bin"
    source.write_bytes(blob_bytes(5, 70_000))
    stored = json.loads(
        walruspy("store", str(source), "--epochs", "2", "--config", config, "--json").stdout
    )
    created = stored["results"][0]["blobStoreResult"]["newlyCreated"]["blobObject"]
    out = tmp_path / "back.bin"
    walruspy("read", created["blobId"], "--out", str(out), "--config", config)
    assert out.read_bytes() == source.read_bytes()
    blob_status = walruspy("blob-status", "--blob-id", created["blobId"], "--config", config)
    assert "deletable" in blob_status.stdout.lower()
    code, body = http("PUT", f"{state.daemon.url}/v1/blobs?epochs=1", b"through the publisher")
    assert code == 200
    blob_id = json.loads(body)["newlyCreated"]["blobObject"]["blobId"]
    assert http("GET", f"{state.daemon.url}/v1/blobs/{blob_id}") == (200, b"through the publisher")

    # A dry run prices what the contract then charges; delete --file, burn-blobs and health.
    other = tmp_path / "other.bin"
    other.write_bytes(blob_bytes(6, 300_000))
    dry = json.loads(
        walruspy(
            "store", str(other), "--epochs", "3", "--dry-run", "--config", config, "--json"
        ).stdout
    )["results"][0]
    paid = json.loads(
        walruspy("store", str(other), "--epochs", "3", "--config", config, "--json").stdout
    )["results"][0]["blobStoreResult"]["newlyCreated"]
    assert (paid["cost"], paid["blobObject"]["blobId"]) == (dry["storageCost"], dry["blobId"])
    object_id = paid["blobObject"]["id"]
    walruspy("set-blob-attribute", object_id, "--attr", "content-type", "text/html", "--config",
             config)  # fmt: skip
    got = json.loads(walruspy("get-blob-attribute", object_id, "--config", config, "--json").stdout)
    assert got["attribute"]["metadata"]["contents"] == [
        {"key": "content-type", "value": "text/html"}
    ]
    request = urllib.request.Request(f"{state.daemon.url}/v1/blobs/by-object-id/{object_id}")
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.headers["Content-Type"] == "text/html"
        assert response.read() == other.read_bytes()
    burnt = json.loads(
        walruspy("burn-blobs", "--object-ids", paid["blobObject"]["id"], "--config", config,
                 "--json").stdout
    )  # fmt: skip
    assert burnt["burnedBlobs"] == [paid["blobObject"]["id"]]
    deleted = json.loads(
        walruspy("delete", "--file", str(source), "--config", config, "--json").stdout
    )
    assert [blob["id"] for blob in deleted["deletedBlobs"]] == [created["id"]]
    listed = json.loads(walruspy("list-blobs", "--config", config, "--json").stdout)["blobs"]
    assert not {created["id"], paid["blobObject"]["id"]} & {blob["id"] for blob in listed}
    for selection in ("--committee", "--active-set"):
        health = json.loads(walruspy("health", selection, "--config", config, "--json").stdout)
        answers = health["healthInfo"]
        assert len(answers) == 4 and all(a["nodeName"] for a in answers), answers
        assert all(a["healthInfo"]["Ok"]["nodeStatus"] == "Active" for a in answers), answers

    # A second `up` on the running devnet is refused, with the reason.
    again = walruspy("devnet", "up", "--dir", str(directory), "--json", check=False)
    assert again.returncode == 1
    assert "is running (every process)" in json.loads(again.stdout)["error"]

    down = json.loads(walruspy("devnet", "down", "--dir", str(directory), "--json").stdout)
    assert sorted(down["stopped"]) == sorted(record.name for record in state.processes)
    assert not any(pid_alive(pid) for pid in every_pid(state))
    after = json.loads(walruspy("devnet", "status", "--dir", str(directory), "--json").stdout)
    assert not any(node["running"] for node in after["nodes"])
    assert not after["chain"]["running"] and not after["daemon"]["running"]
    down_again = walruspy("devnet", "down", "--dir", str(directory))
    assert "No process of this devnet was running" in down_again.stdout


def check_status_json(status: dict[str, Any], n_nodes: int, n_shards: int) -> None:
    assert {"chain_rpc", "publisher", "aggregator", "nodes"} <= set(status)
    assert len(status["nodes"]) == n_nodes
    shards: list[int] = []
    for node in status["nodes"]:
        assert {"pid", "url", "shards"} <= set(node)
        assert node["running"] and pid_alive(node["pid"])
        shards += node["shards"]
    assert sorted(shards) == list(range(n_shards))


async def pinned_health(url: str, network_key: bytes) -> None:
    async with aiohttp.ClientSession() as session:
        await NodeClient(url, session, timeout_s=30, network_public_key=network_key).health()


def test_devnet_up_json_then_down_text(tmp_path: Path, cleanup: list[Path]) -> None:
    directory = tmp_path / "net"
    cleanup.append(directory)
    up = walruspy("devnet", "up", "--dir", str(directory), "--nodes", "5", "--shards", "20",
                  "--epoch-duration", "30m", "--json")  # fmt: skip
    status = json.loads(up.stdout)
    check_status_json(status, 5, 20)
    assert status["epoch_duration_s"] == 1800
    code, body = http("GET", f"{status['aggregator']}/status")
    assert (code, body) == (200, b"OK")
    again = json.loads(walruspy("devnet", "status", "--dir", str(directory), "--json").stdout)
    check_status_json(again, 5, 20)
    assert again["chain_rpc"] == status["chain_rpc"]
    assert all(node["inCommittee"] for node in again["nodes"])

    # One more node: a candidate, staked from the devnet's wallet, outside the committee so far.
    added = json.loads(
        walruspy(
            "devnet", "add-node", "--dir", str(directory), "--stake", str(10**12), "--json"
        ).stdout
    )
    assert set(added) >= {"nodeId", "pid", "url"} and pid_alive(added["pid"])
    # It serves TLS with its own network key, which a client pins.
    assert added["url"].startswith("https://")
    key_file = directory / "nodes" / f"node{added['index']}" / "keys" / "network.key"
    asyncio.run(pinned_health(added["url"], public_key_bytes(load_network_key(key_file))))
    grown = json.loads(walruspy("devnet", "status", "--dir", str(directory), "--json").stdout)
    [new] = [node for node in grown["nodes"] if node["nodeId"] == added["nodeId"]]
    assert (new["inCommittee"], new["shards"], new["running"]) == (False, [], True)
    assert len(grown["nodes"]) == 6

    pids = every_pid(DevnetState.load(directory))
    down = walruspy("devnet", "down", "--dir", str(directory))
    assert "Stopped 8 processes" in down.stdout
    assert not any(pid_alive(pid) for pid in pids)


def test_devnet_errors_without_a_devnet(tmp_path: Path) -> None:
    missing = walruspy("devnet", "status", "--dir", str(tmp_path / "none"), check=False)
    assert missing.returncode == 1 and "no devnet state" in missing.stderr
    as_json = walruspy("devnet", "down", "--dir", str(tmp_path / "none"), "--json", check=False)
    assert as_json.returncode == 1 and "no devnet state" in json.loads(as_json.stdout)["error"]
    add = walruspy("devnet", "add-node", "--dir", str(tmp_path / "none"), check=False)
    assert add.returncode == 1 and "no devnet state" in add.stderr
    bad = walruspy("devnet", "up", "--dir", str(tmp_path), "--nodes", "5", "--shards", "3",
                   check=False)  # fmt: skip
    assert bad.returncode == 2 and "shard per node" in bad.stderr

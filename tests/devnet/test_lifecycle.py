"""A devnet's lifecycle from the shell: `down` then `up` resumes it, `restart-node` revives a node.

One devnet for the module, started with `walruspy devnet up`, tests in order. A blob stored
before `down` is read back after `up` resumed the devnet on the same ports and URLs (the chain's
state and the nodes' stores are durable); a node killed with SIGKILL comes back with
`restart-node` on its data and port, and the blob is still read.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.devnet.conftest import (
    assert_blob_reads_back,
    blob_bytes,
    config,
    status_of,
    walruspy,
)
from walruspy.devnet.processes import pid_alive
from walruspy.devnet.state import DevnetState

pytestmark = [pytest.mark.devnet, pytest.mark.slow, pytest.mark.timeout(600)]

#: A SIGKILLed detached node is reaped by init within moments; this bounds the wait.
REAPED_S = 30.0


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A running devnet's directory, with a blob stored in it (`blob.bin`, its ID in `blob.id`)."""
    directory = tmp_path_factory.mktemp("lifecycle") / "net"
    try:
        walruspy("devnet", "up", "--dir", str(directory), "--nodes", "4", "--shards", "20",
                 "--epoch-duration", "1h", "--json")  # fmt: skip
        source = directory.parent / "blob.bin"
        source.write_bytes(blob_bytes(11, 50_000))
        stored = walruspy("store", str(source), "--epochs", "2", "--config", config(directory),
                          "--json")  # fmt: skip
        result = json.loads(stored.stdout)["results"][0]["blobStoreResult"]
        (directory.parent / "blob.id").write_text(result["newlyCreated"]["blobObject"]["blobId"])
        yield directory
    finally:
        if (directory / "devnet.json").exists():
            walruspy("devnet", "down", "--dir", str(directory), check=False)


def endpoints(status: dict[str, Any]) -> dict[str, Any]:
    """Everything a user or a config file points at: must not change across a resume."""
    return {
        "chain_rpc": status["chain_rpc"],
        "publisher": status["publisher"],
        "nodes": [(n["nodeId"], n["url"], n["directUrl"], n["shards"]) for n in status["nodes"]],
    }


def test_down_then_up_resumes_the_same_devnet(net: Path) -> None:
    before = status_of(net)
    assert all(node["running"] for node in before["nodes"])
    down = json.loads(walruspy("devnet", "down", "--dir", str(net), "--json").stdout)
    assert len(down["stopped"]) == 6  # chain, 4 nodes, daemon
    assert not any(node["running"] for node in status_of(net)["nodes"])

    # Options that differ from the devnet's are refused, and nothing starts.
    other = walruspy("devnet", "up", "--dir", str(net), "--shards", "40", check=False)
    assert other.returncode == 1 and "--shards 40, but it has 20 shards" in other.stderr
    assert not status_of(net)["chain"]["running"]

    # The same options, or none, resume it.
    up = walruspy("devnet", "up", "--dir", str(net), "--nodes", "4")
    assert "Resumed the stopped devnet." in up.stdout
    epoch = "Epoch duration: 1h (a blob stored with --epochs 1 lives until the current epoch"
    assert f"{epoch} ends, at most 1h from now; each further epoch adds 1h)" in up.stdout
    after = status_of(net)
    assert endpoints(after) == endpoints(before)
    assert all(node["running"] and node["inCommittee"] for node in after["nodes"])
    assert after["chain"]["running"] and after["daemon"]["running"]
    assert after["chain"]["pid"] != before["chain"]["pid"]
    state = DevnetState.load(net)
    assert state.tls and all(node.url.startswith("https://") for node in state.nodes)

    # The blob stored before `down` is read back; the publisher stores and serves new ones.
    assert_blob_reads_back(net)
    put = urllib.request.Request(f"{after['publisher']}/v1/blobs?epochs=1", b"after", method="PUT")
    with urllib.request.urlopen(put, timeout=120) as response:
        blob_id = json.loads(response.read())["newlyCreated"]["blobObject"]["blobId"]
    with urllib.request.urlopen(f"{after['aggregator']}/v1/blobs/{blob_id}", timeout=60) as got:
        assert got.read() == b"after"


def wait_reaped(pid: int) -> None:
    deadline = time.monotonic() + REAPED_S
    while pid_alive(pid):
        assert time.monotonic() < deadline, f"pid {pid} still runs {REAPED_S} s after SIGKILL"
        time.sleep(0.1)  # another session's process: only polling tells


def test_restart_node_after_kill_9(net: Path) -> None:
    before = status_of(net)
    victim = before["nodes"][2]
    os.kill(victim["pid"], signal.SIGKILL)
    wait_reaped(victim["pid"])
    assert not status_of(net)["nodes"][2]["running"]

    restarted = json.loads(
        walruspy("devnet", "restart-node", "--dir", str(net), "--node", "2", "--json").stdout
    )
    assert restarted["running"] and pid_alive(restarted["pid"])
    assert restarted["pid"] != victim["pid"]
    assert (restarted["url"], restarted["directUrl"]) == (victim["url"], victim["directUrl"])
    after = status_of(net)
    assert after["nodes"][2]["pid"] == restarted["pid"] and after["nodes"][2]["running"]
    assert endpoints(after) == endpoints(before)

    # A running node restarts too (stopped first), in text.
    running = after["nodes"][0]
    text = walruspy("devnet", "restart-node", "--dir", str(net), "--node", "0")
    assert f"Node 0 ({running['nodeId']}) runs again at {running['url']}" in text.stdout
    assert not pid_alive(running["pid"])
    assert all(node["running"] for node in status_of(net)["nodes"])
    assert_blob_reads_back(net)

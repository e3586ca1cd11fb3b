"""A devnet of separate hosts (`walruspy devnet up --hosts`): network namespaces with shaped links,
reached only from inside, and an operator who joins it from a host of its own with the CLI alone.

The devnet runs 4 nodes on 40 shards, one host each beside the chain, daemon and client hosts,
with 20 ms ± 5 ms one-way latency, 0.1% loss and 200 Mbit/s links (the delaying relay where the
kernel has no netem). The test checks the hosts and their isolation, that a round trip between
two hosts takes at least twice the latency, a store and read from the client host, and then
follows the README's "Run a storage node" steps on a new host `operator`: `node setup`,
`get-wal` for its gas, `node register`, `stake`, `node run`. After epoch changes
(`devnet advance-epoch`) the new node is in the committee, Active, and serves the primary
slivers of its shards, byte-identical to the encoding; reads still return the blob.

Needs root (network namespaces): without it the test is skipped, except on CI, where it fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.devnet.conftest import CLI_TIMEOUT_S, blob_bytes, stop_process

pytestmark = [pytest.mark.devnet, pytest.mark.slow]

N_SHARDS = 40
LATENCY_MS = 20
WAL = 10**9
OPERATOR_PORT = 9185

if os.geteuid() != 0 and not os.environ.get("CI"):
    pytest.skip("network namespaces need root", allow_module_level=True)


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`walruspy ARGS` in a new process (from the machine's own namespace)."""
    done = subprocess.run(
        [sys.executable, "-m", "walruspy.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"walruspy {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


def on_host(directory: Path, host: str, *args: str, check: bool = True) -> Any:
    """`walruspy ARGS --json` run on `host` of the devnet; its JSON output."""
    done = cli(
        "devnet", "exec", "--dir", str(directory), "--host", host, "--",
        sys.executable, "-m", "walruspy.cli.main", *args, "--json",
        check=check,
    )  # fmt: skip
    return json.loads(done.stdout) if check else done


@pytest.fixture(scope="module")
def devnet_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("hosts") / "devnet"
    try:
        cli(
            "devnet", "up", "--hosts", "--dir", str(directory), "--nodes", "4",
            "--shards", str(N_SHARDS), "--epoch-duration", "1h",
            "--latency", f"{LATENCY_MS}ms", "--jitter", "5ms", "--loss", "0.1%",
            "--bandwidth", "200mbit",
        )  # fmt: skip
        yield directory
    finally:
        cli("devnet", "down", "--dir", str(directory), check=False)


@pytest.fixture(scope="module")
def status(devnet_dir: Path) -> dict[str, Any]:
    return json.loads(cli("devnet", "status", "--dir", str(devnet_dir), "--json").stdout)


def test_every_process_has_a_host_of_its_own(status: dict[str, Any]) -> None:
    hosts = {host["name"]: host for host in status["hosts"]}
    assert set(hosts) == {"chain", "client", "daemon", "node0", "node1", "node2", "node3"}
    addresses = [host["address"] for host in hosts.values()]
    assert len(set(addresses)) == len(addresses)
    assert status["chain_rpc"].startswith(f"http://{hosts['chain']['address']}:")
    assert status["publisher"].startswith(f"http://{hosts['daemon']['address']}:")
    for node in status["nodes"]:
        assert node["running"]
        assert node["url"].startswith(f"https://{hosts[node['host']]['address']}:")
    assert status["links"]["latency_ms"] == LATENCY_MS
    assert status["links"]["emulation"] in {"netem", "relay"}


#: Asks the chain at URL for its chain ID over JSON-RPC; prints it, or "unreachable: REASON".
#: A bare TCP connect proves nothing here: some sandboxes' networks accept a connection to any
#: address and answer it themselves, so the test asks for an answer only the devnet's chain gives.
CHAIN_ID_PROBE = """
import json, sys, urllib.request
request = urllib.request.Request(
    sys.argv[1],
    data=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode(),
    headers={"Content-Type": "application/json"},
)
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    with opener.open(request, timeout=5) as response:
        print(int(json.loads(response.read())["result"], 16))
except Exception as error:  # refused, timed out, or an answer that is not the chain's
    print(f"unreachable: {error!r}")
"""


def test_the_hosts_are_unreachable_from_the_machine(
    devnet_dir: Path, status: dict[str, Any]
) -> None:
    inside = cli(
        "devnet", "exec", "--dir", str(devnet_dir), "--",
        sys.executable, "-c", CHAIN_ID_PROBE, status["chain_rpc"],
    ).stdout.strip()  # fmt: skip
    assert inside.isdigit(), f"the chain did not answer from the client host: {inside}"
    outside = subprocess.run(
        [sys.executable, "-c", CHAIN_ID_PROBE, status["chain_rpc"]],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout.strip()  # fmt: skip
    assert outside != inside, f"the chain answered from the machine's namespace: {outside}"
    # Nor has the machine's namespace an address or a route of the devnet's.
    chain = next(host for host in status["hosts"] if host["name"] == "chain")
    prefix = chain["address"].rsplit(".", 2)[0] + "."
    addresses = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, check=True)
    assert prefix not in addresses.stdout, addresses.stdout
    routes = subprocess.run(["ip", "route"], capture_output=True, text=True, check=True)
    assert prefix not in routes.stdout, routes.stdout


def test_a_round_trip_costs_twice_the_latency(devnet_dir: Path, status: dict[str, Any]) -> None:
    node = status["nodes"][0]
    host, port = node["url"].removeprefix("https://").rsplit(":", 1)
    probe = (
        "import socket, time\n"
        "times = []\n"
        "for _ in range(5):\n"
        "    start = time.perf_counter()\n"
        f"    socket.create_connection(({host!r}, {port}), timeout=10).close()\n"
        "    times.append(time.perf_counter() - start)\n"
        "print(min(times))\n"
    )
    done = cli("devnet", "exec", "--dir", str(devnet_dir), "--", sys.executable, "-c", probe)
    connect_s = float(done.stdout)
    # A TCP connect is one round trip: at least 2 x (latency - jitter).
    assert connect_s >= 2 * (LATENCY_MS - 5) / 1000 * 0.95, connect_s


def test_store_and_read_from_the_client_host(
    devnet_dir: Path, status: dict[str, Any], tmp_path: Path
) -> None:
    data = blob_bytes(1, 300_000)
    source = tmp_path / "blob.bin"
    source.write_bytes(data)
    config = status["client_config"]
    [stored] = on_host(
        devnet_dir, "client", "store", str(source), "--epochs", "5", "--config", config
    )["results"]
    blob_id = stored["blobStoreResult"]["newlyCreated"]["blobObject"]["blobId"]
    out = tmp_path / "back.bin"
    on_host(devnet_dir, "client", "read", blob_id, "--out", str(out), "--config", config)
    assert out.read_bytes() == data


#: Run on the client host: fetch every primary sliver of the given shards from the node at URL
#: (pinned to its network key) and compare it with the blob's encoding.
SLIVER_CHECK = """
import asyncio, sys
import aiohttp
from walruspy.core.encoding import encode_blob
from walruspy.core.types import ShardIndex, SliverType, pair_of_shard
from walruspy.node_api.client import NodeClient

async def main(path, url, key, n_shards, shards):
    data = open(path, "rb").read()
    encoded = encode_blob(data, n_shards)
    async with aiohttp.ClientSession() as session:
        api = NodeClient(url, session, timeout_s=60, network_public_key=bytes.fromhex(key))
        for shard in shards:
            pair = pair_of_shard(ShardIndex(shard), encoded.metadata.blob_id.raw, n_shards)
            served = await api.get_sliver(encoded.metadata, pair, SliverType.PRIMARY)
            assert served.sliver == encoded.sliver(pair, SliverType.PRIMARY).sliver, shard
    print(len(shards))

path, url, key, n, shards = sys.argv[1:]
asyncio.run(main(path, url, key, int(n), [int(s) for s in shards.split(",")]))
"""


def test_an_operator_joins_from_a_host_of_its_own(
    devnet_dir: Path, status: dict[str, Any], tmp_path: Path
) -> None:
    config = status["client_config"]
    data = blob_bytes(2, 200_000)
    source = tmp_path / "kept.bin"
    source.write_bytes(data)
    [stored] = on_host(
        devnet_dir, "client", "store", str(source), "--epochs", "10", "--config", config
    )["results"]
    blob_id = stored["blobStoreResult"]["newlyCreated"]["blobObject"]["blobId"]

    added = json.loads(
        cli("devnet", "add-host", "--dir", str(devnet_dir), "--name", "operator", "--json").stdout
    )
    address = f"{added['address']}:{OPERATOR_PORT}"
    system = json.loads(Path(status["deployment_file"]).read_text())["contracts"]["system"]
    # The README's steps, on the operator's host, from its own shell.
    node_dir = tmp_path / "operator"
    setup = on_host(
        devnet_dir, "operator", "node", "setup", "--dir", str(node_dir),
        "--chain-rpc", status["chain_rpc"], "--system", system,
        "--public-address", address, "--bind-address", address, "--name", "operator",
    )  # fmt: skip
    node_config = setup["configPath"]
    on_host(
        devnet_dir, "client", "get-wal", "--address", setup["walletAddress"], "--config", config
    )
    node_id = on_host(devnet_dir, "operator", "node", "register", "--config", node_config)["nodeId"]
    on_host(
        devnet_dir, "client", "stake", "--node-id", node_id, "--amount", str(20_000 * WAL),
        "--config", config,
    )  # fmt: skip
    log_path = tmp_path / "operator.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "walruspy.cli.main",
                "devnet",
                "exec",
                "--dir",
                str(devnet_dir),
                "--host",
                "operator",
                "--",
                sys.executable,
                "-m",
                "walruspy.node",
                "run",
                "--config",
                node_config,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        shards: list[int] = []
        for _ in range(3):
            advanced = json.loads(
                cli("devnet", "advance-epoch", "--dir", str(devnet_dir), "--json").stdout
            )
            shards = advanced["committee"].get(node_id, [])
            if shards:
                break
        assert shards, f"the operator's node never entered the committee: {advanced}"
        url = f"https://{address}"
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, f"the node exited: {log_path.read_text()[-3000:]}"
            health = on_host(
                devnet_dir, "client", "health", "--node-urls", url, "--config", config, check=False
            )
            if health.returncode == 0:
                [report] = json.loads(health.stdout)["healthInfo"]
                info = (report.get("healthInfo") or {}).get("Ok") or {}
                if info.get("nodeStatus") == "Active" and info.get("epoch") == advanced["epoch"]:
                    break
            assert time.monotonic() < deadline, f"not Active in time: {health.stdout}"
            time.sleep(2)
        checked = cli(
            "devnet", "exec", "--dir", str(devnet_dir), "--", sys.executable, "-c",
            SLIVER_CHECK, str(source), url, setup["networkPublicKey"], str(N_SHARDS),
            ",".join(str(shard) for shard in shards),
        )  # fmt: skip
        assert int(checked.stdout) == len(shards)
        out = tmp_path / "kept-back.bin"
        on_host(devnet_dir, "client", "read", blob_id, "--out", str(out), "--config", config)
        assert out.read_bytes() == data
    finally:
        stop_process(process)

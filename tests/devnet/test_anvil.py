"""`walruspy devnet up --chain-rpc URL` on anvil: the devnet without the embedded devchain.

One anvil (Prague fork, its default mnemonic) and one devnet on it for the module, tests in
order, each a step of the same story: the devnet deploys with the anvil account given by
`--chain-key` and starts no chain of its own; a blob stored with the CLI reads back; the epoch
advances on anvil's clock (`Devnet.start_epoch_change` on an attached devnet moves it with
`evm_increaseTime` and `evm_mine`; the nodes take the new epoch from the blocks); `get-wal` pays
from the same account; `down` leaves anvil running and `up` on the same directory reconnects to
it and the blob still reads; once anvil is gone, `up` says which URL does not answer. anvil
comes from npm (tests/chain/backends.py): without npm the module is skipped, except on CI,
which installs it, where that fails.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from eth_account import Account

from tests.chain.backends import ChainProcess, running
from tests.devnet.conftest import (
    assert_blob_reads_back,
    blob_bytes,
    config,
    status_of,
    walruspy,
)
from walruspy.chain.deploy import Deployment
from walruspy.core.errors import WalrusError
from walruspy.devnet import wait_until
from walruspy.devnet.resume import attach_devnet
from walruspy.devnet.state import DevnetState

pytestmark = [pytest.mark.devnet, pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChainProcess]:
    """anvil on a free port, for the whole module."""
    with running("anvil", tmp_path_factory.mktemp("anvil")) as started:
        if isinstance(started, str):
            if os.environ.get("CI"):  # .ci/run installs anvil: its absence there is a failure
                pytest.fail(f"the anvil devnet cannot run on CI: {started}")
            pytest.skip(f"the anvil devnet is skipped: {started}")
        yield started


@pytest.fixture(scope="module")
def net(anvil: ChainProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A devnet on anvil with a blob stored in it (`blob.bin`, its ID in `blob.id`)."""
    base = tmp_path_factory.mktemp("anvil-devnet")
    directory = base / "net"
    key_file = base / "anvil.key"
    key_file.write_text("0x" + anvil.keys[0].hex() + "\n")
    try:
        walruspy("devnet", "up", "--dir", str(directory), "--chain-rpc", anvil.url,
                 "--chain-key", str(key_file), "--nodes", "4", "--shards", "20",
                 "--epoch-duration", "1h", "--json")  # fmt: skip
        source = base / "blob.bin"
        source.write_bytes(blob_bytes(17, 40_000))
        stored = walruspy("store", str(source), "--epochs", "3", "--config", config(directory),
                          "--json")  # fmt: skip
        result = json.loads(stored.stdout)["results"][0]["blobStoreResult"]
        (base / "blob.id").write_text(result["newlyCreated"]["blobObject"]["blobId"])
        yield directory
    finally:
        if (directory / "devnet.json").exists():
            walruspy("devnet", "down", "--dir", str(directory), check=False)


def test_the_devnet_runs_on_anvil(anvil: ChainProcess, net: Path) -> None:
    status = status_of(net)
    assert status["chain_rpc"] == anvil.url
    assert status["chain"] == {
        "pid": None,
        "running": True,
        "url": anvil.url,
        "log": None,
        "external": True,
    }
    assert all(node["running"] and node["inCommittee"] for node in status["nodes"])
    assert not (net / "chain").exists() and not (net / "logs" / "chain.log").exists()
    # The anvil account deployed, and the devnet keeps its key for its later commands.
    funder = str(Account.from_key(anvil.keys[0]).address)
    assert Deployment.load(net / "deployment.json").deployer == funder
    state = DevnetState.load(net)
    assert state.chain_external and state.funder_key() == anvil.keys[0]
    assert_blob_reads_back(net)


async def test_an_epoch_advances_on_anvils_clock(net: Path) -> None:
    async with attach_devnet(net) as devnet, aiohttp.ClientSession() as session:
        new_epoch = await devnet.start_epoch_change()
        clients = [node.plan.client(session, 5.0, direct=True) for node in devnet.nodes]

        async def all_nodes_in_it() -> bool:
            try:
                return all([(await c.health()).epoch >= new_epoch for c in clients])
            except (WalrusError, aiohttp.ClientError, TimeoutError):
                return False

        await wait_until(all_nodes_in_it, 120, f"every node in epoch {new_epoch}")
        await devnet.wait_epoch_change_done()
        assert devnet.deployer is not None
        assert (await devnet.deployer.system_info()).epoch == new_epoch
    assert_blob_reads_back(net)


def test_get_wal_pays_from_the_funder(net: Path) -> None:
    receiver = str(Account.create().address)
    funded = json.loads(
        walruspy("get-wal", "--address", receiver, "--config", config(net), "--json").stdout
    )
    assert funded["walSent"] > 0 and funded["balance"]["walBalance"] == funded["walSent"]


def test_down_leaves_anvil_running_and_up_reconnects(anvil: ChainProcess, net: Path) -> None:
    down = json.loads(walruspy("devnet", "down", "--dir", str(net), "--json").stdout)
    assert sorted(down["stopped"]) == ["daemon", "node0", "node1", "node2", "node3"]
    assert down["externalChain"] == anvil.url
    assert anvil.process.poll() is None and anvil.rpc("eth_chainId")
    stopped = status_of(net)
    assert stopped["chain"]["running"] and not stopped["daemon"]["running"]

    # Another chain is refused on resume, and nothing starts.
    other = walruspy("devnet", "up", "--dir", str(net), "--chain-rpc", "http://127.0.0.1:9",
                     check=False)  # fmt: skip
    assert other.returncode == 1
    assert f"--chain-rpc http://127.0.0.1:9, but it runs on {anvil.url}" in other.stderr

    up = walruspy("devnet", "up", "--dir", str(net))
    assert "Resumed the stopped devnet." in up.stdout and "(external)" in up.stdout
    after = status_of(net)
    assert after["chain"]["external"] and after["chain"]["url"] == anvil.url
    assert all(node["running"] for node in after["nodes"]) and after["daemon"]["running"]
    assert_blob_reads_back(net)


def test_up_names_the_chain_that_does_not_answer(anvil: ChainProcess, net: Path) -> None:
    walruspy("devnet", "down", "--dir", str(net))
    anvil.stop()
    up = walruspy("devnet", "up", "--dir", str(net), check=False)
    assert up.returncode == 1 and f"the chain at {anvil.url} does not answer" in up.stderr
    assert not any(node["running"] for node in status_of(net)["nodes"])

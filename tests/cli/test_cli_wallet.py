"""Wallet commands and funding errors against a devchain process with a fixed committee.

The committee's nodes never run: a store gets as far as paying (the approval of WAL, then
reserve-and-register), which is where a wallet without gas or without WAL fails. Each error
must name the account, what it lacks and how much, and `walruspy get-wal`; `get-wal` then
funds the wallet from the devchain's first account, which deployed the contracts.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml
from click.testing import CliRunner, Result

from tests.chain.backends import ChainProcess, start_devchain
from tests.client.staking_devchain import _fixed_deployment
from walruspy.chain.deploy import Deployment
from walruspy.chain.evm_rpc import TransactionSender, open_web3
from walruspy.cli.main import cli
from walruspy.client.results import storage_units
from walruspy.client.wallet import create_wallet_key
from walruspy.core.params import EncodingParams
from walruspy.devnet.faucet import DEFAULT_WAL_FROST

pytestmark = pytest.mark.timeout(180)

#: _fixed_deployment's shard count and prices (FROST per MiB unit, per epoch and to write).
N_SHARDS = 10
STORAGE_PRICE = 100_000
WRITE_PRICE = 20_000
DATA = b"a blob nobody has paid for yet" * 100


class Net:
    """The devchain, its deployment and a client configuration with an unfunded wallet."""

    def __init__(self, chain: ChainProcess, deployment: Deployment, directory: Path) -> None:
        self.chain = chain
        self.deployment = deployment
        self.directory = directory
        self.wallet_key = directory / "wallet.key"
        self.address = create_wallet_key(self.wallet_key)
        deployment_file = directory / "deployment.json"
        deployment.save(deployment_file)
        foreign = directory / "foreign.json"
        data = deployment.to_json()
        data["deployer"] = "0x" + "12" * 20
        foreign.write_text(json.dumps(data))

        def context(deployment_path: Path) -> dict[str, Any]:
            return {
                "rpc_urls": [chain.url],
                "deployment": str(deployment_path),
                "wallet_key_path": str(self.wallet_key),
                "encoder_workers": 0,
            }

        self.config = directory / "client_config.yaml"
        self.config.write_text(
            yaml.safe_dump(
                {
                    "contexts": {"dev": context(deployment_file), "foreign": context(foreign)},
                    "default_context": "dev",
                }
            )
        )

    def run(self, *args: str, context: str = "dev") -> Result:
        result = CliRunner().invoke(
            cli, [*args, "--config", str(self.config), "--context", context]
        )
        assert "Traceback" not in result.output, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), result.output
        return result

    def json(self, *args: str, context: str = "dev") -> dict[str, Any]:
        result = self.run(*args, "--json", context=context)
        assert result.exit_code == 0, result.output
        payload: dict[str, Any] = json.loads(result.stdout)
        return payload


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    saved = structlog.get_config()
    directory = tmp_path_factory.mktemp("wallet")
    chain = start_devchain(directory / "chain")
    try:
        deployment = asyncio.run(_fixed_deployment(chain.url, chain.keys[0]))
        yield Net(chain, deployment, directory)
    finally:
        chain.stop()
        structlog.configure(**saved)


async def send_gas(net: Net, wei: int) -> None:
    w3 = open_web3(net.chain.url)
    try:
        sender = TransactionSender(w3, net.chain.url, net.chain.keys[0], net.deployment.chain_id)
        await sender.send("fund with ether", to=net.address, data=b"", gas=21_000, value=wei)
    finally:
        await w3.provider.disconnect()


def test_a_new_wallet_holds_nothing(net: Net) -> None:
    assert net.json("wallet", "address")["address"] == net.address
    balance = net.json("wallet", "balance")
    assert balance == {
        "address": net.address,
        "gasBalance": 0,
        "walBalance": 0,
        "walBalanceWal": "0",
    }
    text = net.run("wallet", "balance").stdout
    assert f"Address: {net.address}" in text
    assert "Gas (native coin): 0 wei (0 coins)" in text and "WAL: 0 FROST (0 WAL)" in text


def test_no_gas_names_the_account_and_get_wal(net: Net, tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    path.write_bytes(DATA)
    result = net.run("store", str(path), "--epochs", "1")
    assert result.exit_code == 1 and result.stderr.count("\n") == 1, result.output
    line = result.stderr
    assert f"account {net.address} cannot pay for gas: it holds 0 wei" in line
    assert "the transaction needs up to " in line and "walruspy get-wal" in line
    assert "b'" not in line  # never the raw bytes of an address
    as_json = net.run("store", str(path), "--epochs", "1", "--json")
    payload = json.loads(as_json.stdout)
    assert payload["kind"] == "InsufficientGasError"
    [entry] = payload["results"]
    assert entry["kind"] == "InsufficientGasError" and net.address in entry["error"]


def test_no_wal_names_the_account_the_amount_and_get_wal(net: Net, tmp_path: Path) -> None:
    asyncio.run(send_gas(net, 10**18))
    path = tmp_path / "blob.bin"
    path.write_bytes(DATA)
    epochs = 2
    encoded = EncodingParams(N_SHARDS).encoded_length(len(DATA))
    cost = storage_units(encoded) * (STORAGE_PRICE * epochs + WRITE_PRICE)
    result = net.run("store", str(path), "--epochs", str(epochs))
    assert result.exit_code == 1, result.output
    line = result.stderr
    assert f"account {net.address} cannot pay in WAL: it holds 0 FROST" in line
    assert f"the payment needs {cost} FROST" in line and "walruspy get-wal" in line
    assert "rejected by the contract: unpaid" not in line


def test_get_wal_funds_the_wallet(net: Net) -> None:
    funded = net.json("get-wal")
    assert funded["address"] == net.address and funded["walSent"] == DEFAULT_WAL_FROST
    assert funded["balance"]["walBalance"] == DEFAULT_WAL_FROST
    assert funded["balance"]["gasBalance"] >= 10**18 > 0 < funded["gasSent"]
    text = net.run("get-wal", "--amount", "5").stdout
    assert f"Sent 5 FROST (0.000000005 WAL) to {net.address}." in text
    assert "No gas sent: the wallet has enough." in text
    balance = net.json("wallet", "balance")
    assert balance["walBalance"] == DEFAULT_WAL_FROST + 5
    assert balance["walBalanceWal"] == "10000.000000005"


def test_get_wal_for_another_address(net: Net, tmp_path: Path) -> None:
    other = create_wallet_key(tmp_path / "other.key")
    funded = net.json("get-wal", "--address", other.lower(), "--amount", "7")
    assert funded["address"] == other and funded["balance"]["walBalance"] == 7
    bad = net.run("get-wal", "--address", "0x1234", "--json")
    assert bad.exit_code == 2 and "is not an EVM address" in json.loads(bad.stdout)["error"]


def test_get_wal_refuses_a_network_it_did_not_deploy(net: Net) -> None:
    result = net.run("get-wal", "--json", context="foreign")
    assert result.exit_code == 1
    payload = json.loads(result.stdout)
    assert payload["kind"] == "DevnetError"
    assert "deployed by 0x1212121212121212121212121212121212121212" in payload["error"]
    assert "ask the network's operator" in payload["error"]

"""The staking commands through click against a devchain process with a staking deployment.

`walruspy node register` registers three nodes from their own wallets (`staking_devchain`
writes their files; the nodes never run), a staker stakes with them through `walruspy stake`,
and the test drives the epoch change itself (`epoch_step`) to see the committee form, stake
become active, withdrawals wait for their epoch and commission become collectable. Each command
runs in-process through click's CliRunner, with its own `asyncio.run`, as from a shell; on-chain
effects are read back with the chain client. Error paths check the one-line message and exit
status 1, never a traceback.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml
from click.testing import CliRunner, Result

from tests.client.staking_devchain import (
    N_NODES,
    N_SHARDS,
    WAL,
    StakingDevchain,
    epoch_step,
    open_staking_devchain,
)
from walruspy.chain.evm_staking import EpochState, PoolInfo, StakedWalRecord, StorageNodeInfo
from walruspy.cli.main import cli
from walruspy.cli.node_cmd import network_address
from walruspy.core.blob_id import BlobId
from walruspy.core.params import RS2_ENCODING_TYPE, EncodingParams
from walruspy.node.config import load_config
from walruspy.node.errors import ConfigError as NodeConfigError
from walruspy.node.keys import load_protocol_key

pytestmark = pytest.mark.timeout(120)

UNKNOWN_NODE = "0x" + "ab" * 32
COMMISSION_BP = 5000


# --- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StakingDevchain]:
    saved = structlog.get_config()
    with open_staking_devchain(tmp_path_factory.mktemp("staking")) as devchain:
        yield devchain
    structlog.configure(**saved)


def invoke(*args: str) -> Result:
    result = CliRunner().invoke(cli, list(args))
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def client(net: StakingDevchain, *args: str, context: str = "staker") -> Result:
    return invoke(*args, "--config", str(net.client_config), "--context", context)


def ok(net: StakingDevchain, *args: str, context: str = "staker") -> Result:
    result = client(net, *args, context=context)
    assert result.exit_code == 0, result.output
    return result


def ok_json(net: StakingDevchain, *args: str, context: str = "staker") -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(ok(net, *args, "--json", context=context).stdout)
    return payload


def one_line_error(result: Result) -> str:
    """The message of a failed command: exit status 1 and one line on stderr."""
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert result.stdout == ""
    return lines[0]


def fails(net: StakingDevchain, *args: str, context: str = "staker") -> str:
    return one_line_error(client(net, *args, context=context))


def node_cmd(*args: str) -> Result:
    return invoke("node", *args)


def read(net: StakingDevchain, what: str, *args: Any) -> Any:
    """One read of the staking client (`what` names an EvmStaking method)."""

    async def main() -> Any:
        async with net.open() as chain:
            assert chain.staking is not None
            return await getattr(chain.staking, what)(*args)

    return asyncio.run(main())


def node_info(net: StakingDevchain, node_id: str) -> StorageNodeInfo:
    info: StorageNodeInfo = read(net, "node_info", bytes.fromhex(node_id[2:]))
    return info


def pool(net: StakingDevchain, node_id: str) -> PoolInfo:
    found: PoolInfo = read(net, "pool", bytes.fromhex(node_id[2:]))
    return found


def wal_balance(net: StakingDevchain, address: str) -> int:
    async def main() -> int:
        async with net.open() as chain:
            return await chain.wal_balance(address)

    return asyncio.run(main())


def step(net: StakingDevchain) -> EpochState:
    return asyncio.run(epoch_step(net))


@pytest.fixture(scope="module")
def node_ids(net: StakingDevchain) -> list[str]:
    """The nodes, registered through `walruspy node register` in epoch 0."""
    first = node_cmd(
        "register", "--config", str(net.nodes[0].config), "--commission-rate", str(COMMISSION_BP)
    )
    assert first.exit_code == 0, first.output
    assert first.stdout.startswith("Successfully registered storage node:")
    ids = [first.stdout.split("Node ID: ")[1].split()[0]]
    for node in net.nodes[1:]:
        result = node_cmd("register", "--config", str(node.config), "--json")
        assert result.exit_code == 0, result.output
        payload = json.loads(result.stdout)
        assert payload["epoch"] == 0 and payload["name"] == node.name
        ids.append(payload["nodeId"])
    return ids


@pytest.fixture(scope="module")
def others_stake(net: StakingDevchain, node_ids: list[str]) -> str:
    """A StakedWal of the second wallet (with node 0), staked through the CLI."""
    payload = ok_json(net, "stake", "--node-id", node_ids[0], context="other")
    [staked] = payload["stakedWal"]
    assert staked["principal"] == WAL  # Walrus's default amount, 1 WAL
    return str(staked["id"])


def reserve_blob(net: StakingDevchain) -> None:
    """Buy storage as a user would, so that the epoch pays rewards."""

    async def main() -> None:
        async with net.open(net.staker_key) as chain:
            size = 1 << 20
            root_hash = bytes(range(32))
            await chain.reserve_and_register(
                blob_id=BlobId.from_metadata(RS2_ENCODING_TYPE, size, root_hash),
                root_hash=root_hash,
                unencoded_size=size,
                encoded_size=EncodingParams(N_SHARDS).encoded_length(size),
                epochs_ahead=3,
                deletable=False,
            )

    asyncio.run(main())


# --- node register ----------------------------------------------------------------------------


def test_node_register_records_the_node_as_configured(
    net: StakingDevchain, node_ids: list[str]
) -> None:
    assert len(set(node_ids)) == N_NODES
    for node, node_id in zip(net.nodes, node_ids, strict=True):
        info = node_info(net, node_id)
        config = load_config(node.config)
        assert info.name == node.name
        assert info.network_address == f"127.0.0.1:{config.rest_api_port}"
        assert info.public_key == load_protocol_key(config.protocol_key_path).public_key()
        if node is not net.nodes[2]:  # test_node_set_votes_changes_the_votes changes node 2's
            assert (info.storage_price, info.write_price) == (100_000, 20_000)
            assert info.node_capacity == 1 << 40
        caps = read(net, "node_caps", node.address)
        assert [(c.hex(), n.hex()) for c, n in caps] == [(info.cap_id.hex(), node_id[2:])]
        assert pool(net, node_id).commission_receiver == node.address
    assert pool(net, node_ids[0]).commission_rate == COMMISSION_BP
    assert pool(net, node_ids[1]).commission_rate == 6000  # Walrus's default


def test_node_register_refuses_what_it_cannot_do(net: StakingDevchain, node_ids: list[str]) -> None:
    again = one_line_error(node_cmd("register", "--config", str(net.nodes[1].config)))
    assert "already holds the StorageNodeCap of node " + node_ids[1] in again
    fixed = one_line_error(node_cmd("register", "--config", str(net.fixed_node.config)))
    assert "fixed-committee deployment" in fixed
    rate = one_line_error(
        node_cmd("register", "--config", str(net.stranger.config), "--commission-rate", "10001")
    )
    assert "--commission-rate (basis points) must be in [0, 10000], got 10001" in rate
    result = node_cmd("register", "--config", str(net.stranger.config), "--json")
    assert result.exit_code == 1
    error = json.loads(result.stdout)
    assert "refused by the node" in error["error"] or "funds" in error["error"], error
    assert read(net, "node_caps", net.stranger.address) == []


def test_node_commands_need_the_nodes_cap(net: StakingDevchain, node_ids: list[str]) -> None:
    config = str(net.stranger.config)
    votes = one_line_error(node_cmd("set-votes", "--config", config, "--write-price", "1"))
    assert f"the wallet {net.stranger.address} holds no StorageNodeCap" in votes
    collect = one_line_error(node_cmd("collect-commission", "--config", config))
    assert "register the node first" in collect
    usage = node_cmd("set-votes", "--config", config)
    assert usage.exit_code == 2 and "give at least one of --storage-price" in usage.output


# --- client errors ----------------------------------------------------------------------------


def test_stake_refuses_bad_input_in_one_line(
    net: StakingDevchain, node_ids: list[str], others_stake: str
) -> None:
    before = read(net, "staked_wal", net.staker)
    assert "invalid node ID '0x12': expected 0x and 64 hex digits" in fails(
        net, "stake", "--node-id", "0x12"
    )
    assert f"no storage node {UNKNOWN_NODE} is registered" in fails(
        net, "stake", "--node-id", node_ids[0], "--node-id", UNKNOWN_NODE
    )
    assert "below the minimum stake of 1 WAL (1000000000 FROST)" in fails(
        net, "stake", "--node-id", node_ids[0], "--amount", str(WAL - 1)
    )
    assert "2 amounts for 3 node IDs" in fails(
        net, "stake", *(f"--node-id={i}" for i in node_ids), "--amount", "1", "--amount", "2"
    )
    assert "needs a wallet" in fails(net, "stake", "--node-id", node_ids[0], context="reader")
    assert "fixed committee" in fails(net, "stake", "--node-id", node_ids[0], context="fixed")
    result = client(net, "stake", "--node-id", "zz", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["kind"] == "InvalidInputError"
    assert read(net, "staked_wal", net.staker) == before  # nothing was staked


def test_a_staked_wal_of_another_wallet_is_refused(
    net: StakingDevchain, node_ids: list[str], others_stake: str
) -> None:
    message = f"StakedWal {others_stake} is not held by this wallet ({net.staker})"
    assert message in fails(net, "withdraw-stake", others_stake)
    assert message in fails(net, "request-withdraw-stake", node_ids[0], others_stake)
    assert "invalid StakedWal ID '0xnope'" in fails(net, "withdraw-stake", "0xnope")
    assert "invalid node ID" in fails(net, "request-withdraw-stake", "node0")
    assert f"no storage node {UNKNOWN_NODE}" in fails(net, "request-withdraw-stake", UNKNOWN_NODE)
    listed = ok_json(net, "list-staked-wal", context="other")["stakedWals"]
    assert [s["id"] for s in listed] == [others_stake]


# --- the whole lifecycle ----------------------------------------------------------------------


def staked_by(net: StakingDevchain) -> dict[str, StakedWalRecord]:
    return {"0x" + r.object_id.hex(): r for r in read(net, "staked_wal", net.staker)}


def test_stake_epochs_committee_withdraw_and_commission(
    net: StakingDevchain, node_ids: list[str], others_stake: str
) -> None:
    a, b, c = node_ids
    # Epoch 0: stake 100 WAL with every node, and 3 WAL more with node c.
    payload = ok_json(
        net, "stake", *(f"--node-id={i}" for i in node_ids), "--amount", str(100 * WAL)
    )
    staked = payload["stakedWal"]
    assert [s["nodeId"] for s in staked] == node_ids
    assert all(
        s["principal"] == 100 * WAL and s["principalWal"] == "100" and s["activationEpoch"] == 1
        and s["state"] == "Staked" and s["withdrawEpoch"] is None
        for s in staked
    )  # fmt: skip
    on_chain = staked_by(net)
    assert {s["id"] for s in staked} <= set(on_chain)
    extra = ok(net, "stake", "--node-id", c, "--amount", str(3 * WAL))
    assert extra.stdout.startswith("Success: Staked WAL successfully:\nStakedWal:")
    assert "principal: 3000000000 FROST (3 WAL)" in extra.stdout
    extra_id = extra.stdout.split("object id: ")[1].split()[0]
    listed = ok_json(net, "list-staked-wal")["stakedWals"]
    assert len(listed) == 4 and {s["id"] for s in listed} == set(staked_by(net))

    # Stake not yet counted for a committee is withdrawn at once, and the output says so.
    direct = ok_json(net, "request-withdraw-stake", c, extra_id)
    assert direct["stakedWals"] == []
    assert direct["withdrawnDirectly"] == [
        {"id": extra_id, "nodeId": c, "amount": 3 * WAL, "amountWal": "3"}
    ]
    assert extra_id not in staked_by(net)

    # voting_end of epoch 0 selects the first committee; info committee shows it as next.
    assert step(net) is EpochState.NEXT_PARAMS_SELECTED
    selected = ok_json(net, "info", "committee")
    assert selected["epoch"] == 0 and selected["nShards"] == N_SHARDS
    assert selected["currentStorageNodes"] == []
    assert sorted(n["nodeId"] for n in selected["nextStorageNodes"]) == sorted(node_ids)

    # initiate_epoch_change and every node's epoch_sync_done: epoch 1 with the committee.
    assert step(net) is EpochState.EPOCH_CHANGE_DONE
    check_committee(net, node_ids)
    check_text_committee(net)
    reserve_blob(net)

    # Epoch 1: node b's stake leaves at epoch 2 (b is only in the current committee).
    b_stake = next(r for r in staked_by(net).values() if r.node_id.hex() == b[2:])
    requested = ok_json(net, "request-withdraw-stake", b)
    assert requested["withdrawnDirectly"] == []
    [withdrawing] = requested["stakedWals"]
    assert withdrawing["id"] == "0x" + b_stake.object_id.hex()
    assert (withdrawing["state"], withdrawing["withdrawEpoch"]) == ("Withdrawing", 2)
    assert "no staked StakedWal with node" in fails(net, "request-withdraw-stake", b)
    assert "can be withdrawn from epoch 2; this is epoch 1" in fails(
        net, "withdraw-stake", withdrawing["id"]
    )
    a_stake = next(s["id"] for s in staked if s["nodeId"] == a)
    assert "rejected by the contract: not withdrawing" in fails(net, "withdraw-stake", a_stake)
    assert [
        s["id"] for s in ok_json(net, "list-staked-wal", "--withdrawing-only")["stakedWals"]
    ] == [withdrawing["id"]]
    assert len(ok_json(net, "list-staked-wal", "--staked-only")["stakedWals"]) == 2

    # voting_end of epoch 1: b has no stake left for the next committee.
    assert step(net) is EpochState.NEXT_PARAMS_SELECTED
    upcoming = ok_json(net, "info", "committee")["nextStorageNodes"]
    assert sorted(n["nodeId"] for n in upcoming) == sorted([a, c])
    assert step(net) is EpochState.EPOCH_CHANGE_DONE  # epoch 2

    # Epoch 2: b's stake comes back with its share of epoch 1's rewards.
    before = wal_balance(net, net.staker)
    withdrawn = ok_json(net, "withdraw-stake", withdrawing["id"])
    [paid] = withdrawn["withdrawn"]
    assert paid["id"] == withdrawing["id"] and paid["amount"] > 100 * WAL
    assert withdrawn["totalAmount"] == paid["amount"]
    assert wal_balance(net, net.staker) == before + paid["amount"]
    assert withdrawing["id"] not in staked_by(net)

    # Commission of epoch 1's rewards is blocked until the next voting_end.
    operator = net.nodes[0]
    config = str(operator.config)
    blocked = json.loads(node_cmd("collect-commission", "--config", config, "--json").stdout)
    assert blocked == {"nodeId": a, "amount": 0, "amountWal": "0"}
    assert step(net) is EpochState.NEXT_PARAMS_SELECTED
    before = wal_balance(net, operator.address)
    collected = node_cmd("collect-commission", "--config", config)
    assert collected.exit_code == 0, collected.output
    amount = wal_balance(net, operator.address) - before
    assert amount > 0
    assert collected.stdout.startswith(f"Collected {amount} FROST (")
    assert collected.stdout.rstrip().endswith(f"of commission for node {a}")


def check_committee(net: StakingDevchain, node_ids: list[str]) -> None:
    """info committee --json in epoch 1: every node with shards, stake and votes."""
    info = ok_json(net, "info", "committee")
    assert info["epoch"] == 1 and info["nShards"] == N_SHARDS
    assert info["nextStorageNodes"] is None
    nodes = info["currentStorageNodes"]
    assert [n["name"] for n in nodes] == ["node0", "node1", "node2"]  # Walrus sorts by name
    assert sorted(s for n in nodes for s in n["shardIds"]) == list(range(N_SHARDS))
    for node, node_id in zip(nodes, node_ids, strict=True):
        assert node["nodeId"] == node_id
        assert node["nShards"] == len(node["shardIds"]) > 0
        on_chain = node_info(net, node_id)
        assert base64.b64decode(node["publicKey"]) == on_chain.public_key.to_bytes()
        assert len(base64.b64decode(node["publicKey"])) == 48
        assert node["networkAddress"] == on_chain.network_address
        assert node["networkPublicKey"] is None  # our nodes have no TLS key
        assert node["stake"] == pool(net, node_id).wal_balance
        assert node["votingParams"] == {
            "storagePrice": on_chain.storage_price,
            "writePrice": on_chain.write_price,
            "nodeCapacity": on_chain.node_capacity,
        }
    # The other wallet's 1 WAL is with node 0.
    assert [n["stake"] for n in nodes] == [101 * WAL, 100 * WAL, 100 * WAL]


def check_text_committee(net: StakingDevchain) -> None:
    text = ok(net, "info", "committee").stdout
    assert text.startswith(f"Epoch 1, {N_SHARDS} shards\n\nCurrent committee\n")
    assert "node0" in text and "101" in text and "Next committee: not selected yet" in text
    assert "Votes: storage price " in text and " FROST per MiB and epoch" in text
    # The group's own options still work, and --json on the group holds for the subcommand.
    grouped = invoke(
        "info", "--config", str(net.client_config), "--context", "staker", "--json", "committee"
    )
    assert grouped.exit_code == 0 and json.loads(grouped.stdout)["epoch"] == 1
    # Plain `info` reads the committee installed by the staking epoch change.
    assert ok_json(net, "info")["storageInfo"] == {"nShards": N_SHARDS, "nNodes": N_NODES}


def test_node_set_votes_changes_the_votes(net: StakingDevchain, node_ids: list[str]) -> None:
    node = net.nodes[2]
    result = node_cmd(
        "set-votes", "--config", str(node.config), "--storage-price", "90000",
        "--write-price", "15000", "--node-capacity", str(1 << 39), "--commission-rate", "1000",
        "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["nodeId"] == node_ids[2] and payload["nextCommissionRate"] == 1000
    expected = {"storagePrice": 90_000, "writePrice": 15_000, "nodeCapacity": 1 << 39}
    assert payload["votingParams"] == expected
    info = node_info(net, node_ids[2])
    assert (info.storage_price, info.write_price, info.node_capacity) == (90_000, 15_000, 1 << 39)
    text = node_cmd("set-votes", "--config", str(node.config), "--write-price", "16000")
    assert text.exit_code == 0, text.output
    assert "write price 16000 FROST per MiB" in text.stdout
    assert node_info(net, node_ids[2]).storage_price == 90_000
    assert "must be in [0, 18446744073709551615]" in one_line_error(
        node_cmd("set-votes", "--config", str(node.config), "--storage-price", str(1 << 64))
    )


def test_info_committee_on_a_fixed_committee(net: StakingDevchain) -> None:
    info = ok_json(net, "info", "committee", context="fixed")
    assert info["epoch"] == 1 and info["nShards"] == N_SHARDS
    assert info["nextStorageNodes"] is None
    nodes = info["currentStorageNodes"]
    assert sorted(n["shardIds"] for n in nodes) == [list(range(5)), list(range(5, 10))]
    for node in nodes:
        assert node["name"] is None and node["stake"] is None and node["votingParams"] is None
        assert len(base64.b64decode(node["publicKey"])) == 48
    text = ok(net, "info", "committee", context="fixed").stdout
    assert "Current committee" in text and "127.0.0.1:19100" in text
    assert "Next committee: none (the deployment's committee is fixed)" in text
    # Plain `info` is unchanged.
    assert ok_json(net, "info", context="fixed")["storageInfo"] == {"nShards": 10, "nNodes": 2}


# --- the network address a node registers -----------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"rest_api_address": "127.0.0.1:9185"}, "127.0.0.1:9185"),
        ({"rest_api_address": "0.0.0.0:9185", "public_url": "http://node.test:80"}, "node.test:80"),
        ({"public_url": "https://node.test"}, "https://node.test"),
        ({"rest_api_address": "0.0.0.0:9185"}, None),
        ({"rest_api_address": "[::]:9185"}, None),
    ],
)
def test_the_registered_network_address_is_where_clients_connect(
    tmp_path: Path, fields: dict[str, str], expected: str | None
) -> None:
    config = tmp_path / "node.yaml"
    base = {
        "storage_path": "db",
        "protocol_key_path": "protocol.key",
        "wallet_key_path": "wallet.key",
        "chain": {"rpc_url": "http://127.0.0.1:1", "deployment_file": "deployment.json"},
    }
    config.write_text(yaml.safe_dump(base | fields))
    loaded = load_config(config)
    if expected is None:
        with pytest.raises(NodeConfigError, match="names no host clients can reach"):
            network_address(loaded)
    else:
        assert network_address(loaded) == expected

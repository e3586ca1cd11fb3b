"""Deployment parameters, files and the `walruspy chain deploy` command.

The file formats and the shard-dealing helper are checked in-process; the command deploys to a
devchain process and its deployment file is read back by a chain client.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.chain.backends import ChainProcess, start_devchain
from walruspy.chain.api import DeploymentError
from walruspy.chain.deploy import (
    DEPLOYMENT_FORMAT,
    Deployment,
    DeployParams,
    assign_shards,
    load_committee_file,
)
from walruspy.chain.devchain import dev_account_keys
from walruspy.chain.evm import open_evm_chain
from walruspy.cli.chain_cmd import parse_duration_s, parse_size_bytes, read_private_key
from walruspy.cli.main import cli
from walruspy.core.committee import CommitteeMember
from walruspy.core.crypto import BlsPrivateKey

pytestmark = pytest.mark.timeout(120)

ADDRESS = "0x" + "12" * 20


def key(index: int) -> BlsPrivateKey:
    return BlsPrivateKey.from_seed(hashlib.sha256(b"deploy test %d" % index).digest())


def member(index: int, shards: tuple[int, ...]) -> CommitteeMember:
    node_id = (index + 1).to_bytes(32, "big")
    return CommitteeMember(node_id, key(index).public_key(), f"n{index}:1", shards)


def params(**changes: Any) -> DeployParams:
    values: dict[str, Any] = {
        "members": (member(1, (2, 3)), member(0, (0, 1))),
        "n_shards": 4,
        "epoch_duration_s": 60,
        "max_epochs_ahead": 5,
        "total_capacity_size": 1 << 30,
        "storage_price_per_unit_size": 1,
        "write_price_per_unit_size": 2,
    }
    values.update(changes)
    return DeployParams(**values)


def deployment_json(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "format": DEPLOYMENT_FORMAT,
        "chain_id": 31337,
        "contracts": {"system": ADDRESS, "wal": ADDRESS, "committee": ADDRESS},
        "deployer": ADDRESS,
        "start_block": 7,
        "abi_digest": "ab" * 32,
    }
    data.update(changes)
    return data


# -- shards and parameters ----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["contiguous", "round-robin"])
@pytest.mark.parametrize(("n_members", "n_shards"), [(1, 1), (3, 10), (4, 4), (7, 1000)])
def test_assign_shards_deals_every_shard_once_evenly(
    mode: Any, n_members: int, n_shards: int
) -> None:
    dealt = assign_shards(n_members, n_shards, mode)
    assert sorted(s for shards in dealt for s in shards) == list(range(n_shards))
    sizes = [len(shards) for shards in dealt]
    assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1
    if mode == "contiguous":
        assert all(list(s) == list(range(s[0], s[-1] + 1)) for s in dealt)


def test_assign_shards_refuses_impossible_deals() -> None:
    with pytest.raises(ValueError, match="one at least each"):
        assign_shards(5, 4)
    with pytest.raises(ValueError, match="unknown shard assignment"):
        assign_shards(2, 4, "random")  # type: ignore[arg-type]


def test_deploy_params_sort_members_and_check_ranges() -> None:
    p = params()
    assert [m.node_id[-1] for m in p.members] == [1, 2]
    assert p.shard_owners() == bytes([0, 0, 1, 1])
    assert p.committee().epoch == 1
    with pytest.raises(ValueError, match="epoch_duration_s"):
        params(epoch_duration_s=0)
    with pytest.raises(ValueError, match="max_epochs_ahead"):
        params(max_epochs_ahead=1001)
    with pytest.raises(ValueError, match="held by members"):
        params(members=(member(0, (0, 1)), member(1, (1, 2, 3))))
    with pytest.raises(ValueError, match="no member"):
        params(n_shards=5)


# -- deployment files -----------------------------------------------------------------------


def test_deployment_file_round_trip(tmp_path: Path) -> None:
    deployment = Deployment.from_json(deployment_json())
    path = tmp_path / "d.json"
    deployment.save(path)
    assert Deployment.load(path) == deployment
    assert json.loads(path.read_text()) == deployment.to_json()
    assert deployment.system == "0x1212121212121212121212121212121212121212"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "expected a JSON object"),
        (deployment_json(format="other/1"), "format is 'other/1'"),
        (deployment_json(contracts=None), "'contracts' must be an object"),
        (
            deployment_json(contracts={"system": "0x12", "wal": ADDRESS, "committee": ADDRESS}),
            "'system' must be a hex address",
        ),
        (deployment_json(deployer=None), "'deployer' must be a hex address"),
        (deployment_json(chain_id="1"), "'chain_id' must be a natural number"),
        (deployment_json(start_block=-1), "'start_block' must be a natural number"),
        (deployment_json(abi_digest="abc"), "'abi_digest' must be 64 hex digits"),
    ],
)
def test_bad_deployment_files_name_the_problem(tmp_path: Path, data: Any, message: str) -> None:
    path = tmp_path / "d.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DeploymentError, match=message) as caught:
        Deployment.load(path)
    assert str(path) in str(caught.value)


def test_unreadable_deployment_files(tmp_path: Path) -> None:
    with pytest.raises(DeploymentError, match="cannot read the deployment file"):
        Deployment.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(DeploymentError, match="not a JSON deployment file"):
        Deployment.load(tmp_path / "bad.json")


# -- committee files ------------------------------------------------------------------------


def committee_entry(index: int, shards: list[int] | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "node_id": "0x" + (index + 1).to_bytes(32, "big").hex(),
        "public_key": key(index).public_key().to_bytes().hex(),
        "network_address": f"127.0.0.1:{9000 + index}",
    }
    if shards is not None:
        entry["shards"] = shards
    return entry


def write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_committee_files(tmp_path: Path) -> None:
    listed = write(
        tmp_path / "a.json", {"members": [committee_entry(0, [1]), committee_entry(1, [0])]}
    )
    members, n_shards = load_committee_file(listed)
    assert n_shards == 2 and [m.shards for m in members] == [(1,), (0,)]
    dealt = write(
        tmp_path / "b.json", {"n_shards": 5, "members": [committee_entry(i) for i in range(2)]}
    )
    members, n_shards = load_committee_file(dealt, assignment="round-robin")
    assert n_shards == 5 and [m.shards for m in members] == [(0, 2, 4), (1, 3)]
    members, n_shards = load_committee_file(dealt, n_shards=3)
    assert n_shards == 3 and [m.shards for m in members] == [(0,), (1, 2)]
    assert members[0].public_key == key(0).public_key()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"members": []}, "'members' must be a non-empty list"),
        ({"members": [committee_entry(0, [0]), committee_entry(1)]}, "every member lists"),
        ({"members": [committee_entry(0)]}, "give 'n_shards'"),
        ({"n_shards": 1, "members": [committee_entry(0), committee_entry(1)]}, "cannot deal"),
        ({"members": [{**committee_entry(0, [0]), "public_key": "00" * 48}]}, "member 0"),
        ({"members": [{"node_id": "00" * 32, "shards": [0]}]}, "member 0: missing 'public_key'"),
        ({"members": [{**committee_entry(0, [0]), "node_id": "abc"}]}, "member 0"),
    ],
)
def test_bad_committee_files_name_the_problem(tmp_path: Path, data: Any, message: str) -> None:
    with pytest.raises(DeploymentError, match=message):
        load_committee_file(write(tmp_path / "c.json", data))


# -- the command line -----------------------------------------------------------------------


def test_cli_value_parsers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert [parse_duration_s(t) for t in ("90", "90s", "5m", "2h", "1d")] == [
        90,
        90,
        300,
        7200,
        86400,
    ]
    assert [parse_size_bytes(t) for t in ("10", "1KiB", "2MB", "1TiB")] == [
        10,
        1024,
        2 * 10**6,
        1 << 40,
    ]
    for bad, parse in (("5w", parse_duration_s), ("1 XB", parse_size_bytes)):
        with pytest.raises(ValueError, match="is not a"):
            parse(bad)
    secret = bytes(range(1, 33))
    (tmp_path / "key").write_text("0x" + secret.hex() + "\n")
    monkeypatch.setenv("DEPLOYER_KEY", secret.hex())
    assert read_private_key(str(tmp_path / "key")) == secret
    assert read_private_key("env:DEPLOYER_KEY") == secret
    assert read_private_key("devchain:2") == dev_account_keys(3)[2]
    for source, message in (
        ("env:NOPE_NOT_SET", "not set"),
        ("devchain:10", "from 0 to 9"),
        (str(tmp_path / "none"), "cannot read"),
    ):
        with pytest.raises(ValueError, match=message):
            read_private_key(source)
    (tmp_path / "short").write_text("abcd")
    with pytest.raises(ValueError, match="2 bytes, not 32"):
        read_private_key(str(tmp_path / "short"))


@pytest.fixture(scope="module")
def devchain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChainProcess]:
    node = start_devchain(tmp_path_factory.mktemp("devchain"))
    yield node
    node.stop()


def test_cli_deploy_writes_a_file_the_client_reads(devchain: ChainProcess, tmp_path: Path) -> None:
    committee = write(
        tmp_path / "committee.json",
        {"n_shards": 10, "members": [committee_entry(i) for i in range(4)]},
    )
    out = tmp_path / "deployment.json"
    args = [
        "chain",
        "deploy",
        "--rpc",
        devchain.url,
        "--key",
        "devchain:1",
        "--committee",
        str(committee),
        "--out",
        str(out),
        "--epoch-duration",
        "5m",
        "--shard-assignment",
        "round-robin",
        "--json",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    deployment = Deployment.load(out)
    assert printed == {**deployment.to_json(), "deployment_file": str(out)}

    async def read_back() -> None:
        async with open_evm_chain(devchain.url, deployment) as reader:
            info = await reader.system_info()
            assert (info.epoch_duration_s, info.n_shards) == (300, 10)
            committee_read = await reader.committee()
            assert committee_read.members[0].shards == (0, 4, 8)
            assert [m.public_key for m in committee_read.members] == [
                key(i).public_key() for i in range(4)
            ]

    asyncio.run(read_back())
    failed = CliRunner().invoke(cli, [*args[:3], "http://127.0.0.1:9", *args[4:]])
    assert failed.exit_code == 1
    assert json.loads(failed.output)["kind"] == "ChainUnavailableError"

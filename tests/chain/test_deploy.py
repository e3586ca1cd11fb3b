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
from eth_account import Account

from tests.chain.backends import ChainProcess, start_devchain
from walruspy.chain.api import DeploymentError
from walruspy.chain.deploy import (
    DEPLOYMENT_FORMAT,
    FIRST_EPOCH,
    Deployment,
    DeployParams,
    assign_shards,
    check_deployment_pop,
    deploy,
    load_committee_file,
    sign_deployment_pop,
)
from walruspy.chain.devchain import dev_account_keys
from walruspy.chain.evm import open_evm_chain
from walruspy.cli.chain_cmd import parse_duration_s, parse_size_bytes, read_private_key
from walruspy.cli.main import cli
from walruspy.core.committee import CommitteeMember
from walruspy.core.crypto import BlsPrivateKey, BlsSignature
from walruspy.core.messages import ProofOfPossessionMessage, verify_proof_of_possession

pytestmark = pytest.mark.timeout(120)

ADDRESS = "0x" + "12" * 20
#: The account `devchain:1` deploys from, which the committee files' PoPs name.
DEPLOYER = str(Account.from_key(dev_account_keys(2)[1]).address)


def key(index: int) -> BlsPrivateKey:
    return BlsPrivateKey.from_seed(hashlib.sha256(b"deploy test %d" % index).digest())


def member(index: int, shards: tuple[int, ...]) -> CommitteeMember:
    node_id = (index + 1).to_bytes(32, "big")
    return CommitteeMember(node_id, key(index).public_key(), f"n{index}:1", shards)


def pop(index: int, deployer: str = DEPLOYER) -> BlsSignature:
    return sign_deployment_pop(key(index), deployer)


def params(**changes: Any) -> DeployParams:
    values: dict[str, Any] = {
        "members": (member(1, (2, 3)), member(0, (0, 1))),
        "proofs_of_possession": (pop(1), pop(0)),
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
        "contracts": {
            "system": ADDRESS,
            "wal": ADDRESS,
            "committee": ADDRESS,
            "challenges": ADDRESS,
            "attributes": ADDRESS,
            "shared_blobs": ADDRESS,
        },
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
    assert p.proofs_of_possession == (pop(0), pop(1))  # sorted with their members
    with pytest.raises(ValueError, match="2 members but 1 proofs of possession"):
        params(proofs_of_possession=(pop(0),))
    with pytest.raises(TypeError, match="must be a BlsSignature"):
        params(proofs_of_possession=(pop(1), pop(0).to_bytes()))
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


def test_deploy_params_check_proofs_of_possession_for_the_deployer() -> None:
    params().check_proofs_of_possession(DEPLOYER)
    params().check_proofs_of_possession(DEPLOYER.lower())
    with pytest.raises(DeploymentError, match=f"member {'00' * 31}01 \\(n0:1\\).*{ADDRESS[:6]}"):
        params().check_proofs_of_possession(ADDRESS)
    swapped = params(proofs_of_possession=(pop(0), pop(1)))  # each member with the other's PoP
    with pytest.raises(DeploymentError, match=f"member {'00' * 31}01 .* epoch 1"):
        swapped.check_proofs_of_possession(DEPLOYER)
    assert check_deployment_pop(key(0).public_key(), pop(0), DEPLOYER)
    assert not check_deployment_pop(key(0).public_key(), pop(0, ADDRESS), DEPLOYER)
    assert not check_deployment_pop(key(1).public_key(), pop(0), DEPLOYER)
    # The proof is Walrus's: the key's signature over PROOF_OF_POSSESSION for epoch 1.
    message = ProofOfPossessionMessage.for_evm_address(
        FIRST_EPOCH, bytes.fromhex(DEPLOYER[2:]), key(0).public_key()
    )
    assert verify_proof_of_possession(message, pop(0))
    with pytest.raises(ValueError, match="not an EVM address"):
        sign_deployment_pop(key(0), "0x1234")


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
        (
            deployment_json(contracts={"system": ADDRESS, "wal": ADDRESS, "committee": ADDRESS}),
            "'challenges' must be a hex address",
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
        "proof_of_possession": pop(index).to_bytes().hex(),
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
    members, n_shards, pops = load_committee_file(listed, deployer=DEPLOYER)
    assert n_shards == 2 and [m.shards for m in members] == [(1,), (0,)]
    assert pops == (pop(0), pop(1))
    dealt = write(
        tmp_path / "b.json", {"n_shards": 5, "members": [committee_entry(i) for i in range(2)]}
    )
    members, n_shards, _ = load_committee_file(dealt, assignment="round-robin")
    assert n_shards == 5 and [m.shards for m in members] == [(0, 2, 4), (1, 3)]
    members, n_shards, _ = load_committee_file(dealt, n_shards=3)
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
        (
            {"members": [{k: v for k, v in committee_entry(0, [0]).items() if "proof" not in k}]},
            "member 0: missing 'proof_of_possession'",
        ),
        (
            {"members": [{**committee_entry(0, [0]), "proof_of_possession": "00" * 96}]},
            "member 0: 'proof_of_possession'",
        ),
        (
            {"members": [{**committee_entry(0, [0]), "proof_of_possession": "zz"}]},
            "member 0: 'proof_of_possession'",
        ),
        (
            {
                "members": [
                    committee_entry(0, [0]),
                    {**committee_entry(1, [1]), "proof_of_possession": pop(0).to_bytes().hex()},
                ]
            },
            "member 1: 'proof_of_possession' does not verify .* deployer 0x",
        ),
        (
            {
                "members": [
                    {
                        **committee_entry(0, [0]),
                        "proof_of_possession": pop(0, ADDRESS).to_bytes().hex(),
                    }
                ]
            },
            "member 0: 'proof_of_possession' does not verify",
        ),
    ],
)
def test_bad_committee_files_name_the_problem(tmp_path: Path, data: Any, message: str) -> None:
    with pytest.raises(DeploymentError, match=message) as caught:
        load_committee_file(write(tmp_path / "c.json", data), deployer=DEPLOYER)
    assert str(caught.value).count("member") <= 2  # named once, not twice


def test_committee_file_proofs_are_checked_only_for_a_deployer(tmp_path: Path) -> None:
    entry = {**committee_entry(0, [0]), "proof_of_possession": pop(0, ADDRESS).to_bytes().hex()}
    path = write(tmp_path / "c.json", {"members": [entry]})
    _, _, pops = load_committee_file(path)
    assert pops == (pop(0, ADDRESS),)
    load_committee_file(path, deployer=ADDRESS)


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
    # Another deployer: the committee file's proofs name devchain:1, so nothing is sent.
    other = CliRunner().invoke(cli, [*args[:5], "devchain:2", *args[6:]])
    assert other.exit_code == 1
    error = json.loads(other.output)
    assert error["kind"] == "DeploymentError"
    assert "member 0: 'proof_of_possession' does not verify" in error["error"]


def test_deploy_checks_proofs_before_sending(devchain: ChainProcess) -> None:
    deployer_key = devchain.keys[3]
    nonce_before = _nonce(devchain, deployer_key)
    with pytest.raises(DeploymentError, match="does not verify for deployer"):
        asyncio.run(deploy(devchain.url, deployer_key, params()))  # proofs for DEPLOYER
    assert _nonce(devchain, deployer_key) == nonce_before
    address = str(Account.from_key(deployer_key).address)
    pops = tuple(pop(i, address) for i in (1, 0))
    deployment = asyncio.run(deploy(devchain.url, deployer_key, params(proofs_of_possession=pops)))
    assert deployment.deployer == address


def _nonce(node: ChainProcess, private_key: bytes) -> int:
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(node.url))
    return int(w3.eth.get_transaction_count(Account.from_key(private_key).address))

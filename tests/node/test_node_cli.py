"""`walruspy node keygen|run` (the click group) and `python -m walruspy.node`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from walruspy.chain.deploy import check_deployment_pop
from walruspy.cli.node_cmd import node
from walruspy.core.crypto import BlsSignature
from walruspy.node.__main__ import main as module_main
from walruspy.node.errors import ConfigError
from walruspy.node.keys import keygen, load_protocol_key


def test_keygen_json(tmp_path: Path) -> None:
    result = CliRunner().invoke(node, ["keygen", "--out", str(tmp_path / "k"), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    key = load_protocol_key(Path(out["protocol_key_path"]))
    assert key.public_key().to_bytes().hex() == out["protocol_public_key"]
    assert out["wallet_address"].startswith("0x")
    again = CliRunner().invoke(node, ["keygen", "--out", str(tmp_path / "k")])
    assert again.exit_code != 0


DEPLOYER = "0x" + "ab" * 20


def test_keygen_prints_the_proof_of_possession_for_a_deployer(tmp_path: Path) -> None:
    args = ["keygen", "--out", str(tmp_path / "k"), "--deployer", DEPLOYER, "--json"]
    result = CliRunner().invoke(node, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    public_key = load_protocol_key(Path(out["protocol_key_path"])).public_key()
    pop = BlsSignature.from_bytes(bytes.fromhex(out["proof_of_possession"]))
    assert check_deployment_pop(public_key, pop, DEPLOYER)
    assert not check_deployment_pop(public_key, pop, "0x" + "cd" * 20)
    text = CliRunner().invoke(
        node, ["keygen", "--out", str(tmp_path / "t"), "--deployer", DEPLOYER]
    )
    assert text.exit_code == 0, text.output
    assert "proof of possession for deployer" in text.output
    # `node pop` gives the same proof for the existing key (BLS signatures are deterministic).
    again = CliRunner().invoke(
        node,
        ["pop", "--protocol-key", out["protocol_key_path"], "--deployer", DEPLOYER, "--json"],
    )
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["proof_of_possession"] == out["proof_of_possession"]
    assert "proof_of_possession" not in json.loads(
        CliRunner().invoke(node, ["keygen", "--out", str(tmp_path / "n"), "--json"]).output
    )


def test_keygen_refuses_a_bad_deployer_before_writing_keys(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        node, ["keygen", "--out", str(tmp_path / "k"), "--deployer", "0x12"]
    )
    assert result.exit_code == 2
    assert "not an EVM address" in result.output
    assert not (tmp_path / "k").exists()
    with pytest.raises(ValueError, match="not an EVM address"):
        keygen(tmp_path / "k", deployer="0x12")
    assert not (tmp_path / "k").exists()


def test_run_refuses_a_bad_config_before_starting(tmp_path: Path) -> None:
    config = tmp_path / "node.yaml"
    config.write_text(
        "storage_path: db\nprotocol_key_path: p\nwallet_key_path: w\n"
        "chain: {rpc_url: 'http://127.0.0.1:8545', deployment_file: d.json}\n"
        "limits: {max_body_bytes: -1}\n"
    )
    result = CliRunner().invoke(node, ["run", "--config", str(config)])
    assert isinstance(result.exception, ConfigError)
    assert "limits.max_body_bytes" in str(result.exception)


def test_python_dash_m(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert module_main(["keygen", "--out", str(tmp_path / "k")]) == 0
    assert module_main(["keygen", "--out", str(tmp_path / "k")]) == 1  # refuses to overwrite
    capsys.readouterr()
    assert module_main(["keygen", "--out", str(tmp_path / "p"), "--deployer", DEPLOYER]) == 0
    public_hex, _, pop_hex = capsys.readouterr().out.split()
    public_key = load_protocol_key(tmp_path / "p" / "protocol.key").public_key()
    assert public_key.to_bytes().hex() == public_hex
    assert check_deployment_pop(
        public_key, BlsSignature.from_bytes(bytes.fromhex(pop_hex)), DEPLOYER
    )
    assert module_main(["keygen", "--out", str(tmp_path / "q"), "--deployer", "0x12"]) == 1
    assert not (tmp_path / "q" / "protocol.key").exists()
    bad = tmp_path / "bad.yaml"
    bad.write_text("storage_path: db\n")
    assert module_main(["run", "--config", str(bad)]) == 1
    help_text = subprocess.run(
        [sys.executable, "-m", "walruspy.node", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "keygen" in help_text and "run" in help_text

"""The node's configuration file and key files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import yaml

from walruspy.node.config import DEFAULT_PORT, load_config, parse_config, parse_host_port
from walruspy.node.errors import ConfigError, KeyFileError
from walruspy.node.keys import keygen, load_protocol_key, load_wallet_key

REPO = Path(__file__).resolve().parents[2]
MINIMAL = {
    "storage_path": "db",
    "protocol_key_path": "keys/protocol.key",
    "wallet_key_path": "keys/wallet.key",
    "chain": {"rpc_url": "http://127.0.0.1:8545", "deployment_file": "deployment.json"},
}


def test_the_example_file_loads_with_every_default(tmp_path: Path) -> None:
    example = REPO / "node_config_example.yaml"
    config = load_config(example)
    assert config.storage_path == REPO / "node-db"
    assert (config.rest_api_host, config.rest_api_port) == ("127.0.0.1", DEFAULT_PORT)
    assert config.chain.event_polling_interval_s == 0.4
    assert config.blob_recovery.metadata_request_timeout_s == 5.0
    assert config.metrics_enabled
    # The example states each default: the minimal file gives the same configuration.
    minimal = parse_config(MINIMAL, REPO)
    assert minimal.limits == config.limits
    assert minimal.blob_recovery == config.blob_recovery
    assert minimal.epoch == config.epoch


def test_relative_paths_follow_the_file(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "node.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(MINIMAL))
    config = load_config(path)
    assert config.storage_path == tmp_path / "conf" / "db"
    assert config.chain.deployment_file == tmp_path / "conf" / "deployment.json"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"storage_path": None}, "storage_path is required"),
        ({"storage_path": 5}, "storage_path"),
        ({"rest_api_address": "localhost"}, "rest_api_address"),
        ({"rest_api_address": "h:70000"}, "rest_api_address"),
        ({"public_url": "ftp://x"}, "public_url"),
        ({"colour": "blue"}, "unknown field colour"),
        ({"chain": {"rpc_url": "ws://x", "deployment_file": "d"}}, "chain.rpc_url"),
        ({"chain": {"rpc_url": "http://x"}}, "chain.deployment_file is required"),
        ({"chain": {**MINIMAL["chain"], "event_polling_interval_s": 0}}, "event_polling"),
        ({"chain": {**MINIMAL["chain"], "events_per_poll": True}}, "chain.events_per_poll"),
        ({"limits": {"max_body_bytes": 10}}, "limits.max_body_bytes"),
        ({"limits": {"max_concurrent_request": 3}}, "unknown field limits.max_concurrent_request"),
        ({"blob_recovery": {"max_attempts": 0}}, "blob_recovery.max_attempts"),
        ({"blob_recovery": {"retry_min_backoff_s": 5, "retry_max_backoff_s": 1}}, "retry_max"),
        ({"epoch": {"drive_epoch_change": "yes"}}, "epoch.drive_epoch_change"),
        ({"metrics": {"enabled": 1}}, "metrics.enabled"),
        ({"limits": "lots"}, "limits must be a mapping"),
    ],
)
def test_invalid_fields_are_named(change: dict[str, object], field: str, tmp_path: Path) -> None:
    raw = {**MINIMAL, **change}
    raw = {k: v for k, v in raw.items() if v is not None}
    with pytest.raises(ConfigError, match=field):
        parse_config(raw, tmp_path)


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("storage_path: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(bad)


def test_host_port() -> None:
    assert parse_host_port("[::1]:9185", "x") == ("::1", 9185)
    assert parse_host_port("0.0.0.0:0", "x") == ("0.0.0.0", 0)


# --- keys -------------------------------------------------------------------------------------


def test_keygen_writes_private_files_and_refuses_to_overwrite(tmp_path: Path) -> None:
    keys = keygen(tmp_path / "keys")
    for path in (keys.protocol_key_path, keys.wallet_key_path):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert len(path.read_text().strip()) == 64
    protocol = load_protocol_key(keys.protocol_key_path)
    assert protocol.public_key().to_bytes().hex() == keys.protocol_public_key_hex
    assert len(load_wallet_key(keys.wallet_key_path)) == 32
    before = keys.protocol_key_path.read_bytes()
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        keygen(tmp_path / "keys")
    assert keys.protocol_key_path.read_bytes() == before


def test_bad_key_files(tmp_path: Path) -> None:
    path = tmp_path / "key"
    with pytest.raises(KeyFileError, match="cannot read"):
        load_protocol_key(path)
    for content in ("not hex", "00" * 31, "ff" * 32 + "00"):
        path.write_text(content)
        with pytest.raises(KeyFileError):
            load_protocol_key(path)
    path.write_text("ff" * 32)  # above the curve order
    with pytest.raises(KeyFileError, match="not a BLS private key"):
        load_protocol_key(path)
    path.write_text("00" * 32)
    with pytest.raises(KeyFileError, match="secp256k1"):
        load_wallet_key(path)

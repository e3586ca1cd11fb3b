"""The client configuration: contexts, defaults, the search path, and every bad field named."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.client.network import DEPLOYMENT_JSON
from walruspy.client.config import (
    BackoffConfig,
    CommunicationConfig,
    find_config_file,
    load_config,
    parse_config,
)
from walruspy.client.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
KEY_HEX = "ab" * 32


def base_file(tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "deployment.json").write_text(json.dumps(DEPLOYMENT_JSON))
    (tmp_path / "wallet.key").write_text("0x" + KEY_HEX + "\n")
    return {
        "contexts": {
            "devnet": {
                "rpc_urls": ["http://127.0.0.1:8545"],
                "deployment": "deployment.json",
                "wallet_key_path": "wallet.key",
            }
        },
        "default_context": "devnet",
    }


def write(tmp_path: Path, data: object, name: str = "client_config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_example_file_loads_with_the_defaults(tmp_path: Path) -> None:
    example = (REPO_ROOT / "client_config_example.yaml").read_text()
    (tmp_path / "deployment.json").write_text(json.dumps(DEPLOYMENT_JSON))
    path = tmp_path / "client_config.yaml"
    path.write_text(example)
    config = load_config(path)
    context = config.context()
    assert config.default_context == "devnet"
    assert context.rpc_urls == ("http://127.0.0.1:8545",)
    assert context.deployment.chain_id == 31337
    assert context.wallet_key_path == tmp_path / "wallet.key"
    assert context.communication == CommunicationConfig()


def test_contexts_and_paths_relative_to_the_file(tmp_path: Path) -> None:
    data = base_file(tmp_path)
    data["contexts"]["other"] = {
        "rpc_url": "https://rpc.example",
        "deployment": dict(DEPLOYMENT_JSON),
        "communication": {"max_node_connections": 3, "backoff": {"max_retries": 2}},
    }
    config = load_config(write(tmp_path, data))
    devnet = config.context()
    assert devnet.read_wallet_key() == bytes.fromhex(KEY_HEX)
    other = config.context("other")
    assert other.rpc_urls == ("https://rpc.example",)
    assert other.wallet_key_path is None
    assert other.read_wallet_key() is None
    assert other.communication.max_node_connections == 3
    assert other.communication.backoff == BackoffConfig(max_retries=2)
    with pytest.raises(ConfigError, match=r"no context 'nope'.*contexts: devnet, other"):
        config.context("nope")


def test_a_file_without_contexts_is_the_default_context(tmp_path: Path) -> None:
    data = base_file(tmp_path)["contexts"]["devnet"]
    config = load_config(write(tmp_path, data))
    assert list(config.contexts) == ["default"]
    assert config.context("default").rpc_urls == ("http://127.0.0.1:8545",)


def test_default_context_is_the_first_when_unnamed(tmp_path: Path) -> None:
    data = base_file(tmp_path)
    del data["default_context"]
    assert load_config(write(tmp_path, data)).default_context == "devnet"


def set_path(data: dict[str, Any], dotted: str, value: object) -> None:
    keys = dotted.split(".")
    target = data
    for key in keys[:-1]:
        target = target.setdefault(key, {})
    target[keys[-1]] = value


BAD_FIELDS = [
    ("contexts", [], "contexts must be a mapping"),
    ("contexts", {}, "contexts must list at least one context"),
    ("default_context", "nope", "default_context 'nope' is not one of the contexts"),
    ("default_context", 5, "default_context must be a non-empty string"),
    ("surprise", 1, "unknown field surprise"),
    ("contexts.devnet.surprise", 1, "unknown field contexts.devnet.surprise"),
    ("contexts.devnet.rpc_urls", [], "contexts.devnet.rpc_urls must be a list of 1 to 16"),
    ("contexts.devnet.rpc_urls", "http://x", "contexts.devnet.rpc_urls must be a list"),
    ("contexts.devnet.rpc_urls", [""], "contexts.devnet.rpc_urls must hold non-empty strings"),
    ("contexts.devnet.rpc_urls", ["ftp://x"], "'ftp://x' is not an http"),
    ("contexts.devnet.rpc_url", "http://x", "give rpc_url or rpc_urls, not both"),
    ("contexts.devnet.deployment", 7, "contexts.devnet.deployment must be a path or a mapping"),
    ("contexts.devnet.deployment", "missing.json", "cannot read the deployment file"),
    ("contexts.devnet.deployment", {"format": "x"}, "contexts.devnet.deployment: .*format"),
    ("contexts.devnet.wallet_key_path", 3, "wallet_key_path must be a non-empty string"),
    ("contexts.devnet.encoder_workers", -1, "encoder_workers must be an integer in"),
    ("contexts.devnet.communication", [1], "contexts.devnet.communication must be a mapping"),
    ("contexts.devnet.communication.typo", 1, "unknown field contexts.devnet.communication.typo"),
    ("contexts.devnet.communication.max_concurrent_writes", 0, "max_concurrent_writes must be"),
    ("contexts.devnet.communication.max_concurrent_writes", True, "max_concurrent_writes"),
    ("contexts.devnet.communication.max_data_in_flight_bytes", 10, "max_data_in_flight_bytes"),
    ("contexts.devnet.communication.max_node_connections", 0, "max_node_connections"),
    ("contexts.devnet.communication.max_concurrent_sliver_reads", 0, "sliver_reads"),
    ("contexts.devnet.communication.max_concurrent_metadata_reads", 1.5, "metadata_reads"),
    ("contexts.devnet.communication.max_concurrent_status_reads", "x", "status_reads"),
    ("contexts.devnet.communication.request_timeout_s", 0, "request_timeout_s must be a number"),
    ("contexts.devnet.communication.status_timeout_s", "1s", "status_timeout_s must be a number"),
    ("contexts.devnet.communication.store_timeout_s", float("inf"), "store_timeout_s"),
    ("contexts.devnet.communication.read_timeout_s", -1, "read_timeout_s"),
    ("contexts.devnet.communication.max_blob_bytes", -1, "max_blob_bytes"),
    ("contexts.devnet.communication.sliver_write_extra_time.factor", -1, "extra_time.factor"),
    ("contexts.devnet.communication.sliver_write_extra_time.base_s", "x", "extra_time.base_s"),
    ("contexts.devnet.communication.sliver_write_extra_time.other", 1, "unknown field"),
    ("contexts.devnet.communication.backoff.min_backoff_s", 0, "backoff.min_backoff_s"),
    ("contexts.devnet.communication.backoff.max_backoff_s", 0.01, "min_backoff_s exceeds"),
    ("contexts.devnet.communication.backoff.max_retries", 1000, "backoff.max_retries"),
    ("contexts.devnet.communication.backoff.other", 1, "unknown field"),
    ("contexts.devnet.communication.pending_uploads_enabled", "yes", "must be true or false"),
    ("contexts.devnet.communication.optimistic_upload_max_blob_bytes", -1, "optimistic_upload"),
    ("contexts.devnet.communication.confirmation_long_poll_millis", 1.5, "long_poll_millis"),
]


@pytest.mark.parametrize(("field", "value", "message"), BAD_FIELDS, ids=[f[0] for f in BAD_FIELDS])
def test_every_bad_field_is_named(tmp_path: Path, field: str, value: object, message: str) -> None:
    data = copy.deepcopy(base_file(tmp_path))
    set_path(data, field, value)
    with pytest.raises(ConfigError, match=message):
        parse_config(data, tmp_path)


def test_missing_required_fields_are_named(tmp_path: Path) -> None:
    data = base_file(tmp_path)
    del data["contexts"]["devnet"]["rpc_urls"]
    with pytest.raises(ConfigError, match=r"contexts.devnet.rpc_urls is required"):
        parse_config(data, tmp_path)
    data = base_file(tmp_path)
    del data["contexts"]["devnet"]["deployment"]
    with pytest.raises(ConfigError, match=r"contexts.devnet.deployment is required"):
        parse_config(data, tmp_path)
    with pytest.raises(ConfigError, match="a context name must be a string"):
        parse_config({"contexts": {1: {}}}, tmp_path)
    with pytest.raises(ConfigError, match="the configuration must be a mapping"):
        parse_config([1, 2], tmp_path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        ("0x1234", "holds 2 bytes, a private key has 32"),
        ("not hex", "does not hold a hex private key"),
    ],
)
def test_wallet_key_errors_name_the_field(
    tmp_path: Path, content: str | None, message: str
) -> None:
    data = base_file(tmp_path)
    data["contexts"]["devnet"]["wallet_key_path"] = "other.key"
    if content is not None:
        (tmp_path / "other.key").write_text(content)
    context = parse_config(data, tmp_path).context()
    with pytest.raises(ConfigError, match=f"contexts.devnet.wallet_key_path: .*{message}"):
        context.read_wallet_key()


def test_unreadable_invalid_and_oversized_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the client configuration"):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("contexts: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    huge = tmp_path / "huge.yaml"
    huge.write_text("#" * (2 << 20))
    with pytest.raises(ConfigError, match="larger than"):
        load_config(huge)


def test_default_locations_are_searched_in_walrus_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, xdg, cwd = tmp_path / "home", tmp_path / "xdg", tmp_path / "cwd"
    for directory in (home / ".walruspy", home / ".config" / "walruspy", xdg / "walruspy", cwd):
        directory.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    monkeypatch.chdir(cwd)
    with pytest.raises(ConfigError, match=r"no client configuration found.*--config"):
        find_config_file()
    order = [
        home / ".walruspy" / "client_config.yaml",
        home / ".config" / "walruspy" / "client_config.yml",
        xdg / "walruspy" / "client_config.yaml",
        cwd / "client_config.yml",
        cwd / "client_config.yaml",
    ]
    for path in order:
        path.write_text("{}")
        assert find_config_file() == path
    data = base_file(cwd)
    write(cwd, data)
    assert load_config().context().name == "devnet"


def test_backoff_doubles_up_to_its_cap() -> None:
    backoff = BackoffConfig(min_backoff_s=0.1, max_backoff_s=1.0, max_retries=5)
    assert [backoff.delay_s(i) for i in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    with pytest.raises(ConfigError, match="min_backoff_s"):
        BackoffConfig(min_backoff_s=2.0, max_backoff_s=1.0)


def test_linger_is_walrus_extra_time() -> None:
    config = CommunicationConfig()
    assert config.linger_s(2.0) == pytest.approx(1.5)


def test_walruspy_config_names_the_file_before_the_search(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here, elsewhere = tmp_path / "cwd", tmp_path / "devnet"
    for directory in (here, elsewhere):
        directory.mkdir()
    data = base_file(elsewhere)
    data["contexts"]["devnet"]["rpc_urls"] = ["http://127.0.0.1:9"]
    write(elsewhere, data)
    write(here, base_file(here))
    monkeypatch.chdir(here)
    monkeypatch.setenv("WALRUSPY_CONFIG", str(elsewhere / "client_config.yaml"))
    assert load_config().context().rpc_urls == ("http://127.0.0.1:9",)
    monkeypatch.setenv("WALRUSPY_CONFIG", str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match=r"missing\.yaml"):
        load_config()
    monkeypatch.delenv("WALRUSPY_CONFIG")
    assert load_config().context().rpc_urls != ("http://127.0.0.1:9",)

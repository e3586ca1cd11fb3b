"""The edges every command shares: `--json` usage errors, Ctrl-C, times, wallet files, logs.

No network: usage errors stop before a command runs, `wallet new`/`wallet address` read and
write key files only, and the logging checks run in a fresh interpreter, where structlog is
unconfigured as in any program that imports walruspy.
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

from tests.client.network import DEPLOYMENT_JSON
from walruspy.chain.api import InsufficientGasError
from walruspy.cli.main import cli
from walruspy.cli.output import (
    FUNDING_HINT,
    INTERRUPTED_EXIT_CODE,
    duration_text,
    epoch_time_text,
    error_text,
    json_option,
    utc_text,
)
from walruspy.client.errors import InsufficientWalError
from walruspy.client.wallet import wallet_address

ADDRESS = "0x" + "ab" * 20


# --- --json for usage errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kind", "words"),
    [
        (["store", "--json", "--bogus", "x"], "NoSuchOption", "No such option '--bogus'"),
        (["store", "--json"], "MissingParameter", "Missing argument 'FILES...'"),
        (["blob-id", "--json", "nope.bin", "--n-shards", "4"], "BadParameter", "does not exist"),
        (["no-such-command", "--json"], "NoSuchCommand", "No such command 'no-such-command'"),
        (["--json", "info"], "NoSuchOption", "No such option '--json'"),
        (["info", "--json", "--nope"], "NoSuchOption", "No such option '--nope'"),
        (["wallet", "new", "--path"], None, None),  # no --json: click's text
        (["read", "not-a-blob-id", "--json"], "BadParameter", "Invalid value for 'BLOB_ID'"),
        (["store", "x", "--epochs", "0", "--json"], "BadParameter", "'0' is neither"),
    ],
)
def test_usage_errors_are_json_under_json(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    kind: str | None,
    words: str | None,
) -> None:
    (tmp_path / "x").write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    if kind is None:
        assert result.stdout == "" and "Error:" in result.stderr
        return
    payload = json.loads(result.stdout)
    assert payload["kind"] == kind
    assert words in payload["error"]
    assert payload["usage"].startswith("Usage: ")
    assert result.stderr == ""


def test_json_after_a_double_dash_is_an_argument_not_the_option(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["blob-id", "--n-shards", "4", "--", "--json"])
    assert result.exit_code == 2
    assert "does not exist" in result.stderr and result.stdout == ""


def test_help_under_json_is_still_help() -> None:
    result = CliRunner().invoke(cli, ["store", "--json", "--help"])
    assert result.exit_code == 0 and "store [OPTIONS] FILES..." in result.stdout


def test_a_walrus_error_under_json_is_still_one_object(tmp_path: Path) -> None:
    missing = tmp_path / "absent.yaml"
    result = CliRunner().invoke(cli, ["info", "--json", "--config", str(missing)])
    assert result.exit_code == 1
    payload = json.loads(result.stdout)
    assert payload["kind"] == "ConfigError" and str(missing) in payload["error"]


# --- Ctrl-C ---------------------------------------------------------------------------------


@pytest.fixture
def interrupting_command() -> click.Command:
    @cli.command("test-interrupt")
    @json_option
    def interrupt(as_json: bool) -> None:
        raise KeyboardInterrupt

    yield interrupt
    cli.commands.pop("test-interrupt")


@pytest.mark.parametrize("as_json", [False, True])
def test_ctrl_c_is_one_line_and_status_130(
    interrupting_command: click.Command, as_json: bool
) -> None:
    result = CliRunner().invoke(cli, ["test-interrupt", *(["--json"] if as_json else [])])
    assert result.exit_code == INTERRUPTED_EXIT_CODE == 130
    if as_json:
        assert json.loads(result.stdout) == {"error": "Interrupted.", "kind": "Interrupted"}
        return
    assert result.stderr == "Interrupted.\n" and result.stdout == ""
    assert "Traceback" not in result.output and "Aborted" not in result.output


# --- times beside epochs ----------------------------------------------------------------------


def test_duration_and_epoch_times() -> None:
    assert duration_text(0) == "0 s"
    assert duration_text(59) == "59 s"
    assert duration_text(3_600 * 26 + 120) == "1 d 2 h"
    assert duration_text(-125) == "2 min 5 s"
    assert utc_text(0) == "1970-01-01T00:00:00Z"
    assert epoch_time_text(3_600, 0) == "1970-01-01T01:00:00Z, in 1 h"
    assert epoch_time_text(0, 90) == "1970-01-01T00:00:00Z, 1 min 30 s ago"


# --- funding errors ---------------------------------------------------------------------------


def test_funding_errors_name_the_account_what_it_lacks_and_where_to_get_it() -> None:
    gas = InsufficientGasError(ADDRESS, 3_000, 10, "reserve_and_register")
    text = error_text(gas)
    assert text.startswith(f"reserve_and_register: refused by the node: account {ADDRESS}")
    assert "holds 10 wei" in text and "up to 3000 wei" in text
    assert text.endswith(FUNDING_HINT) and "walruspy get-wal" in text
    wal = error_text(InsufficientWalError(ADDRESS, 500, 7, "extend_blob"))
    assert f"account {ADDRESS} cannot pay in WAL: it holds 7 FROST" in wal
    assert "needs 500 FROST" in wal and "walruspy get-wal" in wal


# --- wallet files -----------------------------------------------------------------------------


def _config(tmp_path: Path, wallet: Path | None) -> Path:
    context: dict[str, object] = {"rpc_url": "http://127.0.0.1:1", "deployment": DEPLOYMENT_JSON}
    if wallet is not None:
        context["wallet_key_path"] = str(wallet)
    path = tmp_path / "client_config.yaml"
    path.write_text(yaml.safe_dump({"contexts": {"local": context}}))
    return path


def test_wallet_new_then_address_and_never_an_overwrite(tmp_path: Path) -> None:
    key = tmp_path / "keys" / "wallet.key"
    created = CliRunner().invoke(cli, ["wallet", "new", "--path", str(key), "--json"])
    assert created.exit_code == 0, created.output
    payload = json.loads(created.stdout)
    assert payload["path"] == str(key)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert payload["address"] == wallet_address(bytes.fromhex(key.read_text().strip()))
    before = key.read_bytes()
    again = CliRunner().invoke(cli, ["wallet", "new", "--path", str(key)])
    assert again.exit_code == 1 and "already exists" in again.stderr and str(key) in again.stderr
    assert key.read_bytes() == before

    config = _config(tmp_path, key)
    shown = CliRunner().invoke(cli, ["wallet", "address", "--config", str(config)])
    assert shown.exit_code == 0 and shown.stdout.strip() == payload["address"]
    as_json = CliRunner().invoke(cli, ["wallet", "address", "--config", str(config), "--json"])
    assert json.loads(as_json.stdout) == {"address": payload["address"], "context": "local"}


def test_wallet_new_default_path_and_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    created = CliRunner().invoke(cli, ["wallet", "new"])
    assert created.exit_code == 0, created.output
    key = tmp_path / "xdg" / "walruspy" / "wallet.key"
    assert key.is_file() and f"in {key}." in created.stdout
    assert "wallet_key_path" in created.stdout and "walruspy get-wal" in created.stdout


def test_wallet_address_without_a_wallet_says_how_to_get_one(tmp_path: Path) -> None:
    config = _config(tmp_path, None)
    result = CliRunner().invoke(cli, ["wallet", "address", "--config", str(config), "--json"])
    assert result.exit_code == 1
    payload = json.loads(result.stdout)
    assert payload["kind"] == "NoWalletError"
    assert "context 'local' has no wallet" in payload["error"]
    assert "walruspy wallet new" in payload["error"]


# --- logs -----------------------------------------------------------------------------------


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )


def test_the_library_logs_warnings_to_stderr_unless_configured() -> None:
    quiet = _python(
        """
        import structlog
        import walruspy.client, walruspy.chain.evm, walruspy.node.node
        from walruspy.client.store import log
        assert not structlog.is_configured(), "importing walruspy configured logging"
        log.debug("hidden debug")
        log.info("hidden info")
        log.bind(blob_id="B1").warning("shown warning")
        print("the program's own output")
        """
    )
    assert quiet.stdout == "the program's own output\n"
    assert "shown warning" in quiet.stderr and "blob_id=B1" in quiet.stderr
    assert "walruspy.client.store" in quiet.stderr
    assert "hidden" not in quiet.stderr


def test_the_library_follows_the_application_configuration() -> None:
    configured = _python(
        """
        import logging, sys
        import structlog
        from walruspy.client.store import log
        structlog.configure(
            logger_factory=structlog.PrintLoggerFactory(sys.stdout),
            wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        )
        log.debug("wanted debug", epoch=3)
        """
    )
    assert "wanted debug" in configured.stdout and "epoch=3" in configured.stdout
    assert configured.stderr == ""


def test_the_command_line_keeps_stdout_for_output(tmp_path: Path) -> None:
    sample = tmp_path / "blob.bin"
    sample.write_bytes(b"walrus")
    completed = subprocess.run(
        [sys.executable, "-m", "walruspy.cli.main", "blob-id", str(sample), "--n-shards", "4"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert completed.stdout.startswith("Blob ID: ") and completed.stderr == ""


def test_the_unpaid_reason_is_the_system_contracts() -> None:
    import walruspy.chain.contracts
    from walruspy.client.funds import UNPAID_REASON

    source = Path(walruspy.chain.contracts.__file__).with_name("System.vy").read_text()
    assert f'assert success, "{UNPAID_REASON}"' in source

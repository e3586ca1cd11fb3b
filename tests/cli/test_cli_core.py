"""CLI commands that need no network: blob-id and convert-blob-id, text and --json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from walruspy.cli.main import cli

REGRESSION = b"walrus blob id v1 regression test"
REGRESSION_ID = "RcU82Mwf-CFkv1LaI_2qcpANwpGUuG3TMwnVzZxD2kY"


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    path = tmp_path / "blob.bin"
    path.write_bytes(REGRESSION)
    return path


def test_blob_id_text(sample: Path) -> None:
    result = CliRunner().invoke(cli, ["blob-id", str(sample), "--n-shards", "10"])
    assert result.exit_code == 0, result.output
    assert f"Blob ID: {REGRESSION_ID}" in result.output
    assert "Unencoded length: 33 bytes" in result.output


def test_blob_id_json(sample: Path) -> None:
    result = CliRunner().invoke(cli, ["blob-id", str(sample), "--n-shards", "10", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload == {
        "blobId": REGRESSION_ID,
        "file": str(sample),
        "unencodedLength": 33,
        "symbolSize": 2,
        "encodedLength": 10 * (10 * 64 + 32) + 10 * (4 + 7) * 2,
        "nShards": 10,
    }


def test_blob_id_bad_shard_count_is_one_clear_line(sample: Path) -> None:
    result = CliRunner().invoke(cli, ["blob-id", str(sample), "--n-shards", "2"])
    assert result.exit_code == 1
    assert "n_shards must be between 4" in result.output
    assert "Traceback" not in result.output


def test_blob_id_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["blob-id", str(tmp_path / "nope"), "--n-shards", "4"])
    assert result.exit_code == 2
    assert "does not exist" in result.output


@pytest.mark.parametrize("as_json", [False, True])
def test_convert_blob_id_both_ways(as_json: bool) -> None:
    extra = ["--json"] if as_json else []
    first = CliRunner().invoke(cli, ["convert-blob-id", REGRESSION_ID, *extra])
    assert first.exit_code == 0, first.output
    decimal = (
        json.loads(first.output)["u256"]
        if as_json
        else first.output.split("Decimal u256: ")[1].split()[0]
    )
    back = CliRunner().invoke(cli, ["convert-blob-id", decimal, *extra])
    assert REGRESSION_ID in back.output


def test_convert_blob_id_rejects_garbage() -> None:
    result = CliRunner().invoke(cli, ["convert-blob-id", "not-a-blob-id", "--json"])
    assert result.exit_code == 1
    assert "neither a decimal u256 nor" in json.loads(result.output)["error"]


def test_console_script_runs_in_a_real_process(sample: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "walruspy.cli.main", "blob-id", str(sample), "--n-shards", "10"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert REGRESSION_ID in completed.stdout

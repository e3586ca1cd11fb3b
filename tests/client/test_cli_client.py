"""The client commands through click, against in-process nodes, each with and without --json.

The nodes and the fake chain run on an event loop in a background thread (`ThreadedNetwork`);
each command runs its own `asyncio.run` as it does from a shell, reading a real configuration
file. Only the chain connection is swapped: `open_client` gets the network's chain (through a
proxy onto its loop) instead of dialling the file's RPC URL.
"""

from __future__ import annotations

import base64
import functools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml
from click.testing import CliRunner, Result

import walruspy.client
from tests.client.network import DEPLOYMENT_JSON, ThreadedNetwork
from tests.node.cluster import blob_data
from walruspy.cli.main import cli
from walruspy.cli.output import quiet_library_logs
from walruspy.core.blob_id import BlobId
from walruspy.workers import EncoderPool

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedNetwork]:
    saved = structlog.get_config()
    with (
        ThreadedNetwork(tmp_path_factory.mktemp("nodes")) as threaded,
        pytest.MonkeyPatch.context() as patch,
    ):
        patch.setattr(
            walruspy.client,
            "open_client",
            functools.partial(
                walruspy.client.open_client, chain=threaded.chain, encoder=EncoderPool(0)
            ),
        )
        yield threaded
    structlog.configure(**saved)


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("config")
    data = {
        "contexts": {
            "local": {
                "rpc_url": "http://127.0.0.1:1",
                "deployment": DEPLOYMENT_JSON,
                "encoder_workers": 0,
                "communication": {
                    "request_timeout_s": 10,
                    "sliver_write_extra_time": {"base_s": 0.05},
                    "backoff": {"min_backoff_s": 0.01, "max_backoff_s": 0.1, "max_retries": 40},
                },
            }
        },
        "default_context": "local",
    }
    path = directory / "client_config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def settle(network: ThreadedNetwork) -> None:
    assert network.network is not None
    network.run(network.network.settle())


def run(network: ThreadedNetwork, config: Path, *args: str) -> Result:
    # The nodes log on their own thread, also while the command runs with its stdout captured:
    # configured as the command configures the library (stderr, warnings) before it starts,
    # since each test begins with structlog reset to printing on stdout.
    quiet_library_logs()
    result = CliRunner().invoke(cli, [*args, "--config", str(config)])
    assert "Traceback" not in result.output, result.output
    return result


def ok(network: ThreadedNetwork, config: Path, *args: str) -> Result:
    result = run(network, config, *args)
    assert result.exit_code == 0, result.output
    return result


def stored(
    network: ThreadedNetwork, config: Path, tmp_path: Path, data: bytes, *flags: str
) -> dict[str, Any]:
    path = tmp_path / f"blob-{len(data)}-{hash(data) & 0xFFFF}.bin"
    path.write_bytes(data)
    result = ok(network, config, "store", str(path), "--epochs", "3", "--json", *flags)
    payload = json.loads(result.stdout)["results"][0]
    assert payload["path"] == str(path)
    return payload["blobStoreResult"]


def test_store_text_and_json(network: ThreadedNetwork, config: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_bytes(b"first file")
    second.write_bytes(b"second file")
    result = ok(network, config, "store", str(first), str(second), "--epochs", "2")
    assert result.stdout.count("Success: Deletable blob stored successfully.") == 2
    assert "Expiry epoch (exclusive): 3" in result.stdout
    assert "Cost (excluding gas):" in result.stdout
    again = ok(network, config, "store", str(first), "--epochs", "2")
    assert "already certified" in again.stdout and "Owned blob object: 0x" in again.stdout

    quiet = ok(network, config, "store", str(first), str(second), "--epochs", "2", "--quiet")
    ids = quiet.stdout.splitlines()
    assert len(ids) == 2 and all(len(blob_id) == 43 for blob_id in ids), quiet.stdout
    assert ok(network, config, "blob-id", str(second), "--json").stdout.count(ids[1]) == 1

    payload = stored(network, config, tmp_path, b"permanent file", "--permanent")
    created = payload["newlyCreated"]
    assert created["blobObject"]["deletable"] is False
    assert "registerFromScratch" in created["resourceOperation"]
    repeat = stored(network, config, tmp_path, b"permanent file", "--permanent")
    assert set(repeat["alreadyCertified"]) == {"blobId", "event", "endEpoch"}
    forced = stored(network, config, tmp_path, b"permanent file", "--permanent", "--force")
    assert "newlyCreated" in forced


def test_store_for_the_maximum_and_bad_epochs(
    network: ThreadedNetwork, config: Path, tmp_path: Path
) -> None:
    path = tmp_path / "max.bin"
    path.write_bytes(b"for as long as possible")
    result = ok(network, config, "store", str(path), "--epochs", "max", "--json")
    body = json.loads(result.stdout)["results"][0]["blobStoreResult"]["newlyCreated"]
    assert body["resourceOperation"]["registerFromScratch"]["epochsAhead"] == 53
    bad = run(network, config, "store", str(path), "--epochs", "0")
    assert bad.exit_code == 2 and "neither a positive number of epochs nor 'max'" in bad.output
    too_many = run(network, config, "store", str(path), "--epochs", "54")
    assert too_many.exit_code == 1
    assert "Error: blobs can only be stored for up to 53 epochs ahead; 54 epochs" in too_many.output


def test_read_to_stdout_to_a_file_and_as_json(
    network: ThreadedNetwork, config: Path, tmp_path: Path
) -> None:
    data = blob_data(11, 50_000)
    blob_id = stored(network, config, tmp_path, data)["newlyCreated"]["blobObject"]["blobId"]
    assert ok(network, config, "read", blob_id).stdout_bytes == data
    out = tmp_path / "out.bin"
    text = ok(network, config, "read", blob_id, "--out", str(out), "--strict-consistency-check")
    assert out.read_bytes() == data
    assert f"Blob {blob_id} (50000 bytes) written to {out}." in text.stdout
    as_json = json.loads(ok(network, config, "read", blob_id, "--json").stdout)
    assert as_json["blobId"] == blob_id and base64.b64decode(as_json["blob"]) == data
    to_file = json.loads(ok(network, config, "read", blob_id, "--out", str(out), "--json").stdout)
    assert to_file == {"blobId": blob_id, "out": str(out)}
    conflict = run(
        network, config, "read", blob_id, "--strict-consistency-check", "--skip-consistency-check"
    )
    assert conflict.exit_code == 2


def test_read_errors_are_one_line(network: ThreadedNetwork, config: Path) -> None:
    unknown = "A" * 43
    result = run(network, config, "read", unknown)
    assert result.exit_code == 1
    assert result.output.startswith("Error: blob AAAA") and result.output.count("\n") == 1
    assert "was never registered on this chain (nodes of" in result.output
    as_json = json.loads(run(network, config, "read", unknown, "--json").stdout)
    assert as_json["kind"] == "BlobNotFoundError"
    bad = run(network, config, "read", "not-a-blob-id")
    assert bad.exit_code == 2 and "Invalid value for 'BLOB_ID'" in bad.output


def test_blob_status_by_id_and_by_file(
    network: ThreadedNetwork, config: Path, tmp_path: Path
) -> None:
    data = b"status of a permanent blob"
    blob_id = stored(network, config, tmp_path, data, "--permanent")["newlyCreated"]["blobObject"][
        "blobId"
    ]
    settle(network)
    text = ok(network, config, "blob-status", "--blob-id", blob_id)
    assert f"Blob ID: {blob_id}" in text.stdout
    assert "Status: permanent blob, certified, stored until epoch 4" in text.stdout
    assert "Estimated expiry: " in text.stdout
    path = tmp_path / "status.bin"
    path.write_bytes(data)
    payload = json.loads(ok(network, config, "blob-status", "--file", str(path), "--json").stdout)
    assert payload["blobId"] == blob_id and payload["file"] == str(path)
    assert payload["status"]["permanent"]["isCertified"] is True
    assert payload["estimatedExpiryTimestamp"].endswith("Z")
    both = run(network, config, "blob-status", "--blob-id", blob_id, "--file", str(path))
    assert both.exit_code == 2 and "exactly one of --blob-id and --file" in both.output
    unknown = json.loads(
        ok(network, config, "blob-status", "--blob-id", str(BlobId(b"\x07" * 32)), "--json").stdout
    )
    assert unknown["status"] == "nonexistent"


def test_delete_by_blob_id_and_object_id(
    network: ThreadedNetwork, config: Path, tmp_path: Path
) -> None:
    first = stored(network, config, tmp_path, b"delete me")["newlyCreated"]["blobObject"]
    text = ok(network, config, "delete", "--blob-id", first["blobId"], "--yes")
    assert f"Deleted blob object {first['id']} (blob ID {first['blobId']})" in text.stdout
    assert "Status of the blob afterwards:" in text.stdout
    second = stored(network, config, tmp_path, b"delete me too")["newlyCreated"]["blobObject"]
    payload = json.loads(
        ok(
            network, config, "delete", "--object-id", second["id"], "--json", "--no-status-check"
        ).stdout
    )
    assert [b["id"] for b in payload["deletedBlobs"]] == [second["id"]]
    assert payload["noBlobFound"] is False and "postDeletionStatus" not in payload
    third = stored(network, config, tmp_path, b"delete me as well")["newlyCreated"]["blobObject"]
    # The nodes apply the certification first: the status before the deletion, which the command
    # waits to see change, must not be one from before the certification.
    settle(network)
    after = json.loads(ok(network, config, "delete", "--blob-id", third["blobId"], "--json").stdout)
    # Printed once the nodes applied the deletion, not the status from before it.
    assert after["postDeletionStatus"] == "nonexistent"
    none = ok(network, config, "delete", "--blob-id", first["blobId"])
    assert "No deletable blob object of this account found" in none.stdout
    assert json.loads(ok(network, config, "delete", "--blob-id", first["blobId"], "--json").stdout)[
        "noBlobFound"
    ]
    neither = run(network, config, "delete")
    assert neither.exit_code == 2
    bad = run(network, config, "delete", "--object-id", "0x12")
    assert bad.exit_code == 2 and "--object-id" in bad.output


def test_extend(network: ThreadedNetwork, config: Path, tmp_path: Path) -> None:
    blob = stored(network, config, tmp_path, b"extend me", "--permanent")["newlyCreated"][
        "blobObject"
    ]
    text = ok(network, config, "extend", "--blob-obj-id", blob["id"], "--epochs-extended", "2")
    assert f"Blob object {blob['id']} extended by 2 epochs" in text.stdout
    assert f"expires at epoch {blob['storage']['endEpoch'] + 2}" in text.stdout
    payload = json.loads(
        ok(
            network,
            config,
            "extend",
            "--blob-obj-id",
            blob["id"],
            "--epochs-extended",
            "1",
            "--json",
        ).stdout
    )
    assert payload["epochsExtended"] == 1 and payload["endEpoch"] == blob["storage"]["endEpoch"] + 3
    missing = run(
        network, config, "extend", "--blob-obj-id", "0x" + "00" * 32, "--epochs-extended", "1"
    )
    assert missing.exit_code == 1 and "Error: no blob object 0x" in missing.output


def test_list_blobs(network: ThreadedNetwork, config: Path, tmp_path: Path) -> None:
    blob = stored(network, config, tmp_path, b"listed")["newlyCreated"]["blobObject"]
    text = ok(network, config, "list-blobs")
    assert text.stdout.startswith("Blob ID")
    assert blob["blobId"] in text.stdout and blob["id"] in text.stdout
    payload = json.loads(ok(network, config, "list-blobs", "--include-expired", "--json").stdout)
    assert blob in payload["blobs"]


def test_info(network: ThreadedNetwork, config: Path) -> None:
    text = ok(network, config, "info", "--context", "local")
    assert "Storage nodes: 4 holding 10 shards" in text.stdout
    assert "Fault tolerance: f = 3 shards; a quorum is 7 shards, validity 4" in text.stdout
    payload = json.loads(ok(network, config, "info", "--json").stdout)
    assert payload["storageInfo"] == {"nShards": 10, "nNodes": 4}
    unknown = run(network, config, "info", "--context", "nope")
    assert unknown.exit_code == 1 and "Error: no context 'nope'" in unknown.output


def test_info_challenges(network: ThreadedNetwork, config: Path, tmp_path: Path) -> None:
    stored(network, config, tmp_path, b"to be challenged" * 64)
    settle(network)
    assert network.network is not None
    chain = network.network.chain
    before = json.loads(ok(network, config, "info", "challenges", "--json").stdout)
    current = before["epochs"][0]
    assert current["epoch"] == chain.epoch and current["started"] is False
    assert len(current["nodes"]) == 4 and not any(n["passed"] for n in current["nodes"])
    assert network.run(chain.schedule_challenge()) and network.run(chain.start_challenge())
    deadline = time.monotonic() + 60
    while len(network.run(chain.challenge_state(chain.epoch)).passed) < 4:
        assert time.monotonic() < deadline, "the nodes did not all pass the challenge"
        time.sleep(0.05)
    text = ok(network, config, "info", "challenges", "--epoch", str(chain.epoch)).stdout
    assert f"Epoch {chain.epoch}: challenge started" in text and "passed (" in text
    payload = json.loads(
        ok(network, config, "info", "challenges", "--epoch", str(chain.epoch), "--json").stdout
    )
    (entry,) = payload["epochs"]
    checked = {node["blobsChecked"] for node in entry["nodes"]}
    assert all(node["passed"] for node in entry["nodes"]) and len(checked) == 1
    assert checked.pop() >= 1


def test_a_missing_configuration_is_one_line(network: ThreadedNetwork, tmp_path: Path) -> None:
    result = run(network, tmp_path / "absent.yaml", "info", "--json")
    assert result.exit_code == 1
    assert "cannot read the client configuration" in json.loads(result.stdout)["error"]


def test_progress_bars_draw_each_phase_on_stderr() -> None:
    from walruspy.cli.client_cmds import _Bars, _bars
    from walruspy.client.results import ProgressEvent

    assert _bars(as_json=True)._progress is None
    assert _bars(as_json=False)._progress is None  # stderr is not a terminal under pytest
    bars = _Bars(enabled=True)
    big = 1 << 20
    with bars.shown():
        for phase in ("encode", "upload", "download"):
            bars(ProgressEvent(phase, 0, big))  # type: ignore[arg-type]
            bars(ProgressEvent(phase, big, big))  # type: ignore[arg-type]
        bars(ProgressEvent("download", 0, 10))  # too small for a bar
    assert len(bars._tasks) == 3
    silent = _Bars(enabled=False)
    with silent.shown():
        silent(ProgressEvent("encode", 1, 2))
    assert silent._tasks == {}

"""`walruspy store` through click against in-process nodes: every file's outcome, times beside
epochs, and Ctrl-C at each phase of a store.

The network runs on its own thread (`tests/client/network.ThreadedNetwork`); the command runs
its own `asyncio.run` in the test's thread, as from a shell. Ctrl-C is a real SIGINT sent to
that thread by the network's side while the command awaits a chain call or a node's answer:
before registration (listing the wallet's blob objects), while registering (the transaction's
answer is on its way) and during the upload (a node receiving a sliver). Afterwards the test
reads the wallet's blob objects on the chain: none, or exactly the one the line names,
registered and not certified, which the next store of the file certifies without buying more.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import signal
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml
from click.testing import CliRunner, Result

import walruspy.client
from tests.client.network import DEPLOYMENT_JSON, ThreadedNetwork
from walruspy.cli.main import cli
from walruspy.core.blob_id import BlobId
from walruspy.workers import EncoderPool

pytestmark = pytest.mark.timeout(120)

#: The client's limit on a blob in these tests: the "too large" file fails, the others fit.
MAX_BLOB_BYTES = 4096
#: How long the network's side holds a call after sending SIGINT: the command's thread handles
#: the signal (cancelling its task) while it still awaits that very call.
HOLD_S = 0.3


class InterruptingChain:
    """The network's chain, which sends Ctrl-C to the command during one named call."""

    def __init__(self, threaded: ThreadedNetwork, main_thread: int) -> None:
        self._threaded = threaded
        self._main_thread = main_thread
        self.interrupt_in: str | None = None
        #: Only a call whose keyword arguments satisfy this (any call without it).
        self.interrupt_if: Callable[[dict[str, Any]], bool] | None = None

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._threaded.chain, name)
        if name != self.interrupt_in:
            return target

        async def interrupted(*args: Any, **kwargs: Any) -> Any:
            if self.interrupt_if is not None and not self.interrupt_if(kwargs):
                return await target(*args, **kwargs)
            self.interrupt_in = None
            outcome = asyncio.ensure_future(target(*args, **kwargs))
            ctrl_c(self._main_thread)
            await asyncio.sleep(HOLD_S)
            return await outcome

        return interrupted


def ctrl_c(thread_id: int) -> None:
    """SIGINT to the command's thread, as a terminal's Ctrl-C."""
    signal.pthread_kill(thread_id, signal.SIGINT)


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedNetwork]:
    saved = structlog.get_config()
    with ThreadedNetwork(tmp_path_factory.mktemp("nodes")) as threaded:
        yield threaded
    structlog.configure(**saved)


@pytest.fixture
def chain(network: ThreadedNetwork, monkeypatch: pytest.MonkeyPatch) -> InterruptingChain:
    interrupting = InterruptingChain(network, threading.get_ident())
    monkeypatch.setattr(
        walruspy.client,
        "open_client",
        functools.partial(walruspy.client.open_client, chain=interrupting, encoder=EncoderPool(0)),
    )
    return interrupting


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("config")
    context = {
        "rpc_url": "http://127.0.0.1:1",
        "deployment": DEPLOYMENT_JSON,
        "encoder_workers": 0,
        "communication": {
            "request_timeout_s": 10,
            "max_blob_bytes": MAX_BLOB_BYTES,
            "sliver_write_extra_time": {"base_s": 0.05},
            "backoff": {"min_backoff_s": 0.01, "max_backoff_s": 0.1, "max_retries": 40},
        },
    }
    path = directory / "client_config.yaml"
    path.write_text(yaml.safe_dump({"contexts": {"local": context}}))
    return path


def store(config: Path, *args: str) -> Result:
    result = CliRunner().invoke(cli, ["store", *args, "--config", str(config)])
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def owned(network: ThreadedNetwork, blob_id: str) -> list[Any]:
    assert network.network is not None
    chain = network.network.chain
    records = network.run(chain.owned_blobs(chain.address))
    return [r for r in records if str(r.blob_id) == blob_id]


def file_with(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --- every file's outcome -------------------------------------------------------------------


def test_a_failure_in_the_middle_keeps_the_other_files_results(
    chain: InterruptingChain, config: Path, tmp_path: Path
) -> None:
    first = file_with(tmp_path, "first.bin", b"the first file")
    large = file_with(tmp_path, "large.bin", b"x" * (MAX_BLOB_BYTES + 1))
    last = file_with(tmp_path, "last.bin", b"the last file")
    result = store(config, str(first), str(large), str(last), "--epochs", "2", "--json")
    assert result.exit_code == 1
    payload = json.loads(result.stdout)
    entries = payload["results"]
    assert [e["path"] for e in entries] == [str(first), str(large), str(last)]
    assert "newlyCreated" in entries[0]["blobStoreResult"]
    assert "newlyCreated" in entries[2]["blobStoreResult"]
    assert entries[1]["kind"] == "BlobTooLargeError" and "blobStoreResult" not in entries[1]
    assert f"more than the client's max_blob_bytes of {MAX_BLOB_BYTES}" in entries[1]["error"]
    # A script that only checks for "error" still sees the failure.
    assert payload["kind"] == "BlobTooLargeError" and payload["error"].startswith(str(large))
    for entry in (entries[0], entries[2]):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", entry["endEpochTime"])

    text = store(config, str(first), str(large), "--epochs", "2")
    assert text.exit_code == 1
    assert "already certified" in text.stdout and f"Path: {first}" in text.stdout
    assert text.stderr.startswith(f"Error: storing {large}: ")
    assert str(last) not in text.output


def test_one_file_failing_is_one_error_line(
    chain: InterruptingChain, config: Path, tmp_path: Path
) -> None:
    large = file_with(tmp_path, "large.bin", b"y" * (MAX_BLOB_BYTES + 1))
    result = store(config, str(large), "--epochs", "2")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1


# --- times beside epochs ----------------------------------------------------------------------


def test_store_blob_status_and_info_show_times(
    network: ThreadedNetwork, chain: InterruptingChain, config: Path, tmp_path: Path
) -> None:
    path = file_with(tmp_path, "timed.bin", b"a blob with an expiry time")
    text = store(config, str(path), "--epochs", "2", "--permanent")
    assert text.exit_code == 0, text.output
    line = next(x for x in text.stdout.splitlines() if x.startswith("Expiry epoch"))
    assert re.fullmatch(
        r"Expiry epoch \(exclusive\): \d+ \(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ, (in .+|.+ ago)\)",
        line,
    ), line
    blob_id = re.search(r"Blob ID: (\S+)", text.stdout)
    assert blob_id is not None
    assert network.network is not None
    network.run(network.network.settle())
    status = CliRunner().invoke(
        cli, ["blob-status", "--blob-id", blob_id[1], "--config", str(config), "--json"]
    )
    payload = json.loads(status.stdout)
    assert payload["endEpochTime"] == payload["estimatedExpiryTimestamp"]
    info = CliRunner().invoke(cli, ["info", "--config", str(config), "--json"])
    epoch = json.loads(info.stdout)["epochInfo"]
    assert epoch["currentEpoch"] >= 1 and "startOfCurrentEpoch" in epoch  # existing keys kept
    for key in ("startOfCurrentEpochTime", "nextEpochTime", "maxEpochsAheadEndTime"):
        assert epoch[key].endswith("Z")
    info_text = CliRunner().invoke(cli, ["info", "--config", str(config)]).stdout
    assert "the next starts " in info_text and "epochs ahead (until " in info_text


# --- Ctrl-C ---------------------------------------------------------------------------------


def interrupted_store(config: Path, path: Path, *flags: str) -> Result:
    result = store(config, str(path), "--epochs", "3", *flags)
    assert result.exit_code == 130, result.output
    assert result.stdout == "" and result.stderr.count("\n") == 1, result.output
    assert result.stderr.startswith(f"Interrupted while storing {path}: ")
    return result


def blob_id_of(path: Path) -> str:
    result = CliRunner().invoke(cli, ["blob-id", str(path), "--n-shards", "10", "--json"])
    return str(json.loads(result.stdout)["blobId"])


def test_ctrl_c_before_registration_leaves_nothing(
    network: ThreadedNetwork, chain: InterruptingChain, config: Path, tmp_path: Path
) -> None:
    path = file_with(tmp_path, "early.bin", b"interrupted before registration")
    chain.interrupt_in = "owned_storage"
    result = interrupted_store(config, path)
    assert "nothing was registered for it" in result.stderr
    assert owned(network, blob_id_of(path)) == []


def test_ctrl_c_while_registering_names_the_object_and_the_next_store_reuses_it(
    network: ThreadedNetwork, chain: InterruptingChain, config: Path, tmp_path: Path
) -> None:
    path = file_with(tmp_path, "registering.bin", b"interrupted while registering")
    chain.interrupt_in = "reserve_and_register"
    result = interrupted_store(config, path)
    object_id = check_registered_not_certified(network, result, path)
    again = store(config, str(path), "--epochs", "2", "--json")
    assert again.exit_code == 0, again.output
    created = json.loads(again.stdout)["results"][0]["blobStoreResult"]["newlyCreated"]
    assert created["blobObject"]["id"] == object_id
    assert "reuseRegistration" in created["resourceOperation"] and created["cost"] == 0
    [record] = owned(network, blob_id_of(path))
    assert record.certified_epoch is not None


def test_ctrl_c_during_the_upload_names_the_object_and_json_says_it_too(
    network: ThreadedNetwork, chain: InterruptingChain, config: Path, tmp_path: Path
) -> None:
    assert network.network is not None
    service = network.network._service(0)
    # The client uploads small slivers through the batch route: interrupt there.
    honest: Callable[..., Awaitable[Any]] = service.put_slivers
    main_thread = threading.get_ident()

    async def interrupting(*args: Any, **kwargs: Any) -> Any:
        service.put_slivers = honest
        ctrl_c(main_thread)
        await asyncio.sleep(HOLD_S)
        return await honest(*args, **kwargs)

    service.put_slivers = interrupting
    path = file_with(tmp_path, "uploading.bin", b"interrupted during the upload")
    try:
        result = store(config, str(path), "--epochs", "3", "--json")
    finally:
        service.put_slivers = honest
    assert result.exit_code == 130, result.output
    payload = json.loads(result.stdout)
    assert payload["kind"] == "Interrupted" and payload["certified"] is False
    assert payload["results"] == [] and payload["path"] == str(path)
    [record] = owned(network, blob_id_of(path))
    assert payload["objectId"] == "0x" + record.object_id.hex()
    assert payload["blobId"] == str(record.blob_id) and record.certified_epoch is None
    again = store(config, str(path), "--epochs", "3")
    assert again.exit_code == 0, again.output
    assert f"Object ID: {payload['objectId']}" in again.stdout
    assert "an existing registration of this account was reused" in again.stdout


def test_ctrl_c_on_the_second_file_reports_the_first(
    network: ThreadedNetwork, chain: InterruptingChain, config: Path, tmp_path: Path
) -> None:
    first = file_with(tmp_path, "done.bin", b"stored before the interruption")
    second = file_with(tmp_path, "cut.bin", b"interrupted while registering, second")
    chain.interrupt_in = "reserve_and_register"
    chain.interrupt_if = lambda kwargs: str(kwargs["blob_id"]) == blob_id_of(second)
    result = store(config, str(first), str(second), "--epochs", "3")
    assert result.exit_code == 130, result.output
    assert f"Path: {first}" in result.stdout and "Success:" in result.stdout
    assert result.stderr.startswith(f"Interrupted while storing {second}: ")
    check_registered_not_certified(network, result, second)


def check_registered_not_certified(network: ThreadedNetwork, result: Result, path: Path) -> str:
    """The line names the one registered, uncertified object of the file's blob; its ID."""
    [record] = owned(network, blob_id_of(path))
    assert record.certified_epoch is None
    object_id = "0x" + record.object_id.hex()
    line = result.stderr
    assert f"blob {BlobId(record.blob_id.raw)} is registered but not certified" in line
    assert f"in blob object {object_id}" in line
    assert "--epochs 3 or fewer reuses it instead of buying new storage" in line
    return object_id

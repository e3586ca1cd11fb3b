"""`walruspy.Client`, the synchronous wrapper, against the in-process nodes of the CLI tests.

The network and configuration file are those of `test_cli_client.py`: a `ThreadedNetwork` on
its own loop, and `walruspy.client.open_client` patched to use its chain, which the wrapper
picks up because it looks the opener up when it opens. Each `Client` then runs its own loop in
its own thread, as in a script.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import walruspy
from tests.client import test_cli_client as cli_base
from tests.client.network import ThreadedNetwork
from tests.client.test_cli_client import settle
from tests.node.cluster import blob_data
from walruspy.client import load_config
from walruspy.client.errors import (
    BlobNotFoundError,
    BlobObjectStateError,
    ClientClosedError,
    ConfigError,
    InvalidArgumentError,
)
from walruspy.client.sync import Client
from walruspy.core.quilt import QuiltStoreBlob
from walruspy.node_api.schemas import Deletable, Permanent

pytestmark = pytest.mark.timeout(120)

# The module-scoped network and configuration file of the client commands' tests.
network = cli_base.network
config = cli_base.config

THREAD_NAME = "walruspy-client"


def loop_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == THREAD_NAME]


@pytest.fixture
def client(network: ThreadedNetwork, config: Path) -> Iterator[Client]:
    with walruspy.Client(config) as opened:
        yield opened
    assert not loop_threads()


def is_object_id_text(value: object) -> bool:
    return (
        isinstance(value, str)
        and value.startswith("0x")
        and len(value) == 66
        and all(c in "0123456789abcdef" for c in value[2:])
    )


def test_walruspy_client_is_the_sync_client() -> None:
    assert walruspy.Client is Client
    assert "Client" in walruspy.__all__
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = walruspy.Nope  # type: ignore[attr-defined]


def test_import_walruspy_does_not_import_the_client() -> None:
    code = (
        "import json, sys, walruspy\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('walruspy.'))))\n"
    )
    src = str(Path(walruspy.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert json.loads(done.stdout) == []


def test_store_and_read_with_str_and_path(client: Client, tmp_path: Path) -> None:
    data = blob_data(1, 3000)
    source = tmp_path / "in.bin"
    source.write_bytes(data)
    by_path = client.store(source, 2)
    by_str = client.store(str(source), 2)
    assert by_str.blob_id == by_path.blob_id == client.blob_id_of(str(source))
    assert client.read(by_path.blob_id) == data
    assert client.read(str(by_path.blob_id)) == data
    assert client.read(by_path.blob_id, tmp_path / "out-path.bin") == len(data)
    assert client.read(by_path.blob_id, str(tmp_path / "out-str.bin")) == len(data)
    assert (tmp_path / "out-path.bin").read_bytes() == (tmp_path / "out-str.bin").read_bytes()
    assert (tmp_path / "out-str.bin").read_bytes() == data
    part = client.read_range(by_path.blob_id, (100, 50))
    assert part.data == data[100:150]
    assert client.store(b"bytes too", 2).blob_id == client.blob_id_of(b"bytes too")


def test_deletable_by_default_as_the_cli(
    network: ThreadedNetwork, client: Client, tmp_path: Path
) -> None:
    deletable = client.store(b"deletable by default", 2)
    assert deletable.blob is not None and deletable.blob.deletable
    permanent = client.store(b"permanent when asked", 2, deletable=False)
    assert permanent.blob is not None and not permanent.blob.deletable
    settle(network)
    assert isinstance(client.blob_status(deletable.blob_id).status, Deletable)
    assert isinstance(client.blob_status(permanent.blob_id).status, Permanent)
    quilt = client.quilts.store([QuiltStoreBlob("a", b"alpha"), QuiltStoreBlob("b", b"beta")], 2)
    stored_quilt = quilt.blob_store_result.blob
    assert stored_quilt is not None and stored_quilt.deletable
    read = client.quilts.read_by_identifiers(quilt.quilt_id, ["b"])
    assert [patch.data for patch in read.patches] == [b"beta"]
    assert [p.identifier for p in client.quilts.list_patches(quilt.quilt_id).patches()] == [
        "a",
        "b",
    ]


def test_object_ids_are_hex_text(client: Client) -> None:
    stored = client.store(b"object ids as text", 3)
    assert stored.blob is not None
    assert is_object_id_text(stored.object_id)
    assert stored.blob.object_id_hex == stored.object_id
    assert is_object_id_text(stored.blob.storage.storage_id_hex)
    assert stored.object_id is not None
    listed = {record.object_id_hex for record in client.list_blobs()}
    assert stored.object_id in listed
    extended = client.extend(stored.object_id, 1)
    assert extended.object_id == stored.object_id and extended.end_epoch == stored.end_epoch + 1
    deleted = client.delete(object_id=stored.object_id)
    assert deleted.object_id == stored.object_id
    assert [record.object_id_hex for record in deleted.deleted] == [stored.object_id]
    burnt = client.store(b"to be burnt", 2)
    assert burnt.object_id is not None
    client.set_blob_attribute(burnt.object_id, {"content-type": "text/plain", "k": "v"})
    client.remove_blob_attribute_fields(burnt.object_id, ["k"])
    assert client.get_blob_attribute(burnt.object_id) == (("content-type", "text/plain"),)
    client.remove_blob_attribute(burnt.object_id)
    assert client.get_blob_attribute(burnt.object_id) is None
    assert client.burn_blobs([burnt.object_id]) == [burnt.object_id]
    assert client.address is not None and client.system_info().committee.n_shards == 10


def test_errors_propagate_unchanged(client: Client) -> None:
    missing = client.blob_id_of(b"never stored anywhere")
    with pytest.raises(BlobNotFoundError, match="never registered on this chain") as caught:
        client.read(missing)
    assert caught.type is BlobNotFoundError  # the async client's own error, not a wrapper
    with pytest.raises(InvalidArgumentError, match="max_epochs_ahead"):
        client.store(b"x", 54)
    permanent = client.store(b"cannot delete me", 2, deletable=False)
    with pytest.raises(BlobObjectStateError, match="is permanent"):
        client.delete(object_id=permanent.object_id)
    with pytest.raises(FileNotFoundError, match="a str names a file"):
        client.store("just some text", 2)
    # The client is still usable after an error.
    assert client.read(permanent.blob_id) == b"cannot delete me"


def test_use_after_close(network: ThreadedNetwork, config: Path) -> None:
    opened = walruspy.Client(config)
    assert loop_threads() and not opened.closed
    quilts = opened.quilts
    opened.close()
    opened.close()  # harmless
    assert opened.closed and not loop_threads()
    with pytest.raises(ClientClosedError, match="closed; open a new one"):
        opened.store(b"too late", 1)
    with pytest.raises(ClientClosedError):
        quilts.read_all("0" * 43)
    with pytest.raises(ClientClosedError):
        _ = opened.address
    assert "closed" in repr(opened)


def test_configuration_as_the_cli_finds_it(
    network: ThreadedNetwork, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The CLI's default locations start at the working directory.
    monkeypatch.chdir(config.parent)
    with walruspy.Client() as found:
        assert found.system_info().committee.n_shards == 10
        address = found.address
    with walruspy.Client(load_config(config), context="local") as given:
        assert given.address == address is not None
    with pytest.raises(ConfigError, match="'elsewhere'"):
        walruspy.Client(config, context="elsewhere")
    with pytest.raises(ConfigError, match="cannot read the client configuration"):
        walruspy.Client(config.parent / "missing.yaml")
    assert not loop_threads()


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals")
def test_ctrl_c_cancels_the_running_operation(client: Client) -> None:
    started, cancelled = threading.Event(), threading.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    def interrupt() -> None:
        started.wait(30)
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

    sender = threading.Thread(target=interrupt)
    sender.start()
    with pytest.raises(KeyboardInterrupt):
        client._runner.wait(forever())
    sender.join()
    assert cancelled.wait(30)
    assert client.read(client.store(b"still works", 1).blob_id) == b"still works"


def test_close_cancels_operations_of_other_threads(network: ThreadedNetwork, config: Path) -> None:
    opened = walruspy.Client(config)
    started, cancelled = threading.Event(), threading.Event()
    outcome: list[BaseException] = []

    async def forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    def call() -> None:
        try:
            opened._runner.wait(forever())
        except BaseException as exc:  # checked below
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    assert started.wait(30)
    opened.close()
    caller.join(30)
    assert cancelled.is_set() and not loop_threads()
    assert len(outcome) == 1 and isinstance(outcome[0], ClientClosedError), outcome
    assert "closed while the operation ran" in str(outcome[0])


def test_the_readme_example_runs(
    network: ThreadedNetwork, config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Library\n\n", 1)[1]
    lines = itertools.takewhile(
        lambda line: not line or line.startswith("    "), section.split("\n")
    )
    example = textwrap.dedent("\n".join(lines))
    assert "walruspy.Client()" in example
    (tmp_path / "client_config.yaml").write_text(config.read_text())
    (tmp_path / "photo.jpg").write_bytes(blob_data(7, 1500))
    monkeypatch.chdir(tmp_path)
    exec(compile(example, "README.md", "exec"), {})
    assert not loop_threads()

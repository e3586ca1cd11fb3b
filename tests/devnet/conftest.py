"""Shared pieces of the devnet suites: one real devnet per module, a client on it, helpers.

Each module starts ONE devnet (module-scoped async fixture on a module-scoped event loop) and
runs its tests against it in order, to keep the suite within minutes on two cores. Epochs last
an hour unless a test advances them (`Devnet.advance_epoch`), so no epoch change races a store.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest_asyncio

from walruspy.client import WalrusClient, open_client
from walruspy.devnet import Devnet

#: Epochs of the test devnets: long enough that none ends by itself during a module.
TEST_EPOCH_S = 3600
#: A CLI command (devnet up starts a whole network) gets this long.
CLI_TIMEOUT_S = 240


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(devnet: Devnet) -> AsyncIterator[WalrusClient]:
    """A client on the module's devnet (each module defines its own `devnet` fixture)."""
    async with open_client(devnet.client_config()) as walrus:
        yield walrus


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """One HTTP session per module, for the daemon's and nodes' routes."""
    async with aiohttp.ClientSession() as session:
        yield session


def blob_bytes(seed: int, size: int) -> bytes:
    """Deterministic, incompressible data of `size` bytes."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.blake2b(
            seed.to_bytes(8, "little") + counter.to_bytes(8, "little"), digest_size=64
        ).digest()
        counter += 1
    return bytes(out[:size])


def walruspy(
    *args: str, check: bool = True, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the `walruspy` command line in a new process."""
    result = subprocess.run(
        [sys.executable, "-m", "walruspy.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
        cwd=cwd,
    )
    if check and result.returncode != 0:
        command = " ".join(args)
        raise AssertionError(
            f"walruspy {command} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result


async def wait_certified(client: Any, blob_id: Any, timeout_s: float = 30) -> Any:
    """The blob's status once nodes of f+1 shards report it certified (events take a poll)."""
    from walruspy.devnet import wait_until
    from walruspy.node_api.schemas import Deletable, Permanent

    seen: list[Any] = []

    async def certified() -> bool:
        status = (await client.blob_status(blob_id)).status
        seen[:] = [status]
        if isinstance(status, Deletable):
            return status.deletable_counts.count_deletable_certified > 0
        return isinstance(status, Permanent) and status.is_certified

    await wait_until(certified, timeout_s, f"blob {blob_id} reported certified")
    return seen[0]


def config(directory: Path) -> str:
    """The client configuration of the devnet in `directory`."""
    return str(directory / "client_config.yaml")


def status_of(directory: Path) -> dict[str, Any]:
    """`walruspy devnet status --json` of the devnet in `directory`."""
    return dict(json.loads(walruspy("devnet", "status", "--dir", str(directory), "--json").stdout))


def assert_blob_reads_back(directory: Path) -> None:
    """The blob a CLI devnet test stored beside `directory` (blob.id, blob.bin) reads back."""
    blob_id = (directory.parent / "blob.id").read_text()
    out = directory.parent / "back.bin"
    out.unlink(missing_ok=True)
    walruspy("read", blob_id, "--out", str(out), "--config", config(directory))
    assert out.read_bytes() == (directory.parent / "blob.bin").read_bytes()


def stop_process(process: subprocess.Popen[Any]) -> None:
    """SIGTERM a process a test started, SIGKILL if it has not exited within 30 s."""
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def error_reason(body: dict[str, Any]) -> str:
    """The reason of an AIP-193 error body."""
    return str(body["error"]["details"][0]["reason"])


def shards_of(nodes: Sequence[Any]) -> int:
    """The shards a set of devnet nodes holds."""
    return sum(len(node.shards) for node in nodes)

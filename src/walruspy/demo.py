"""`make demo`: a whole Walrus network on this machine, used the way people use it.

Brings a devnet up in a temporary directory (the devchain, four storage node processes holding
100 shards, the publisher/aggregator daemon), stores a file with the `walruspy store` command and
reads it back with `walruspy read`, stores a blob through the publisher (HTTP PUT) and reads it
through the aggregator (HTTP GET), shows `walruspy blob-status`, and brings the network down.
Every step is printed with its duration; any failure ends the demo with a non-zero status.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Final, TypeVar

import aiohttp

from walruspy.devnet import Devnet, open_devnet

T = TypeVar("T")

#: The demo's network: four nodes, 100 shards, epochs long enough that none ends mid-demo.
N_NODES: Final = 4
N_SHARDS: Final = 100
EPOCH_DURATION_S: Final = 600
#: Sizes of the two blobs.
CLI_BLOB_BYTES: Final = 2 << 20
HTTP_BLOB_BYTES: Final = 512 << 10
#: A CLI command of the demo gets this long (Python start-up plus one store or read).
COMMAND_TIMEOUT_S: Final = 120.0


class DemoError(Exception):
    """A step of the demo failed."""


class _Steps:
    """Numbered steps with their timings."""

    def __init__(self) -> None:
        self.number = 0
        self.started = time.monotonic()

    @contextlib.asynccontextmanager
    async def step(self, title: str) -> AsyncIterator[None]:
        self.number += 1
        print(f"\n[{self.number}] {title}", flush=True)
        start = time.monotonic()
        yield
        print(f"    done in {time.monotonic() - start:.2f} s", flush=True)

    async def run(self, title: str, action: Callable[[], Awaitable[T]]) -> T:
        async with self.step(title):
            return await action()


async def _walruspy(*args: str) -> str:
    """Run `walruspy ARGS` in a process of its own; its stdout, or DemoError."""
    print("    $ walruspy " + " ".join(args), flush=True)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "walruspy.cli.main", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with asyncio.timeout(COMMAND_TIMEOUT_S):
            stdout, stderr = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise DemoError(f"walruspy {args[0]} took more than {COMMAND_TIMEOUT_S:.0f} s") from None
    if process.returncode != 0:
        raise DemoError(f"walruspy {args[0]} failed: {stderr.decode().strip() or stdout.decode()}")
    return stdout.decode()


async def _cli_round_trip(devnet: Devnet, work: Path, steps: _Steps) -> str:
    config = str(devnet.client_config_path)
    source = work / "hello.bin"
    source.write_bytes(os.urandom(CLI_BLOB_BYTES))
    async with steps.step(f"Store a {CLI_BLOB_BYTES >> 20} MiB file with the CLI"):
        output = await _walruspy(
            "store", str(source), "--epochs", "3", "--permanent", "--config", config, "--json"
        )
        result = json.loads(output)["results"][0]["blobStoreResult"]
        blob = result["newlyCreated"]["blobObject"]
        print(f"    blob ID {blob['blobId']}, object {blob['id']}")
        print(f"    cost {result['newlyCreated']['cost']} FROST, stored until epoch "
              f"{blob['storage']['endEpoch']}")  # fmt: skip
    async with steps.step("Read it back with the CLI and compare"):
        copy = work / "hello.copy"
        await _walruspy("read", blob["blobId"], "--out", str(copy), "--config", config)
        if copy.read_bytes() != source.read_bytes():
            raise DemoError("the blob read back differs from the file stored")
        print(f"    {copy.stat().st_size} bytes, identical")
    return str(blob["blobId"])


async def _http_round_trip(devnet: Devnet, steps: _Steps) -> None:
    data = os.urandom(HTTP_BLOB_BYTES)
    async with aiohttp.ClientSession() as session:
        async with steps.step(f"Store {HTTP_BLOB_BYTES >> 10} KiB through the publisher"):
            url = f"{devnet.publisher_url}/v1/blobs?epochs=2"
            print(f"    PUT {url}")
            async with session.put(url, data=data) as response:
                if response.status != 200:
                    raise DemoError(f"the publisher answered {response.status}: "
                                    f"{await response.text()}")  # fmt: skip
                created = (await response.json())["newlyCreated"]
            blob_id = created["blobObject"]["blobId"]
            print(f"    newlyCreated: blob ID {blob_id}, cost {created['cost']} FROST")
        async with steps.step("Read it through the aggregator and compare"):
            url = f"{devnet.aggregator_url}/v1/blobs/{blob_id}"
            print(f"    GET {url}")
            async with session.get(url) as response:
                body = await response.read()
            if response.status != 200 or body != data:
                raise DemoError(f"the aggregator answered {response.status} with other bytes")
            print(f"    {len(body)} bytes, identical")


async def _demo(work: Path) -> None:
    steps = _Steps()
    print(f"walruspy demo: a local Walrus network in {work}")
    title = (
        f"Bring a devnet up: devchain, {N_NODES} storage nodes elected by stake"
        f" ({N_SHARDS} shards), daemon"
    )
    async with contextlib.AsyncExitStack() as stack:
        async with steps.step(title):
            devnet = await stack.enter_async_context(
                open_devnet(work / "devnet", N_NODES, N_SHARDS, EPOCH_DURATION_S)
            )
            print(f"    chain RPC {devnet.chain_rpc}, publisher/aggregator {devnet.publisher_url}")
            for node in devnet.nodes:
                print(f"    node {node.index}: {node.url}, shards {node.shards[0]}-"
                      f"{node.shards[-1]}, pid {node.pid}")  # fmt: skip
        blob_id = await _cli_round_trip(devnet, work, steps)
        await _http_round_trip(devnet, steps)
        async with steps.step("Show the blob's status"):
            status = await _walruspy(
                "blob-status", "--blob-id", blob_id, "--config", str(devnet.client_config_path)
            )
            for line in status.strip().splitlines():
                print(f"    {line}")
        print(f"\n[{steps.number + 1}] Bring the devnet down", flush=True)
        down_started = time.monotonic()
    print(f"    done in {time.monotonic() - down_started:.2f} s; no process left behind")
    print(f"\nThe demo took {time.monotonic() - steps.started:.1f} s.")


def main() -> None:
    """Run the demo; exit with status 1 if any step fails."""
    with tempfile.TemporaryDirectory(prefix="walruspy-demo-") as tmp:
        try:
            asyncio.run(_demo(Path(tmp)))
        except Exception as exc:
            print(f"\nDEMO FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
            raise SystemExit(1) from exc


if __name__ == "__main__":
    main()

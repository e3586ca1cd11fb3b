"""kill -9 of a real node process while it accepts slivers: nothing acknowledged is lost.

The node runs in a child process on a deterministic fake chain (`tests.node.node_process`). The
test uploads slivers of several blobs concurrently, records every upload the node acknowledged,
kills the process with SIGKILL at a random moment, restarts it on the same data dir, and checks
that every acknowledged sliver is served and verifies, and that the restarted node applied no
event twice and skipped none.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.node.cluster import blob_data
from walruspy.core.encoding import EncodedBlob, encode_blob
from walruspy.core.types import SliverPairIndex, SliverType
from walruspy.node_api.client import NodeClient
from walruspy.node_api.errors import NodeConnectionError

N_SHARDS = 10
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def start_process(state_dir: Path, port: int) -> tuple[asyncio.subprocess.Process, int, int]:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.node.node_process",
        str(state_dir),
        str(port),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        cwd=REPO,
        env=env,
    )
    assert process.stdout is not None
    async with asyncio.timeout(60):
        while True:
            line = (await process.stdout.readline()).decode()
            if not line:
                raise AssertionError("the node process exited before it was ready")
            if line.startswith("READY"):
                _, applied, processed = line.split()
                return process, int(applied), int(processed)


async def upload_until_killed(
    client: NodeClient, blobs: list[EncodedBlob], acknowledged: list[tuple[int, int, SliverType]]
) -> None:
    for index, encoded in enumerate(blobs):
        try:
            await client.put_metadata(encoded.metadata)
        except NodeConnectionError:
            return
        for pair in range(N_SHARDS):
            for sliver_type in SliverType:
                sliver = encoded.sliver(SliverPairIndex(pair), sliver_type)
                try:
                    await client.put_sliver(encoded.metadata.blob_id, SliverPairIndex(pair), sliver)
                except NodeConnectionError:
                    return
                acknowledged.append((index, pair, sliver_type))


@pytest.mark.slow
async def test_kill_9_loses_no_acknowledged_sliver(tmp_path: Path) -> None:
    blobs = [encode_blob(blob_data(100 + i, 40_000), N_SHARDS) for i in range(60)]
    (tmp_path / "chain.json").write_text(
        json.dumps([encoded.metadata.blob_id.hex() for encoded in blobs])
    )
    port = free_port()
    process, applied, processed = await start_process(tmp_path, port)
    events = applied
    assert processed == applied  # a fresh node applies every event once
    acknowledged: list[tuple[int, int, SliverType]] = []
    async with aiohttp.ClientSession() as session:
        client = NodeClient(f"http://127.0.0.1:{port}", session, timeout_s=10)
        uploads = asyncio.create_task(upload_until_killed(client, blobs, acknowledged))
        await asyncio.sleep(random.Random(7).uniform(0.1, 0.3))
        process.send_signal(signal.SIGKILL)
        await process.wait()
        await uploads
    assert acknowledged, "the node was killed before it acknowledged anything"
    assert len(acknowledged) < len(blobs) * N_SHARDS * 2, "killed too late to test anything"

    process, applied, processed = await start_process(tmp_path, port)
    try:
        assert applied == events and processed == 0  # nothing skipped, nothing repeated
        async with aiohttp.ClientSession() as session:
            client = NodeClient(f"http://127.0.0.1:{port}", session, timeout_s=10)
            for index, pair, sliver_type in acknowledged:
                encoded = blobs[index]
                got = await client.get_sliver(encoded.metadata, SliverPairIndex(pair), sliver_type)
                assert got.sliver == encoded.sliver(SliverPairIndex(pair), sliver_type).sliver
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()

"""`walruspy read BLOB_ID --range START-END` through click, against in-process nodes.

Uses the network and configuration fixtures of `test_cli_client.py` (the nodes and the fake
chain on a background loop, each command its own `asyncio.run`).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.client.network import ThreadedNetwork
from tests.client.test_cli_client import config, network, ok, run, stored
from tests.node.cluster import blob_data

__all__ = ["config", "network"]  # the fixtures, used by name

pytestmark = pytest.mark.timeout(120)


def test_read_range_to_stdout_to_a_file_and_as_json(
    network: ThreadedNetwork, config: Path, tmp_path: Path
) -> None:
    data = blob_data(41, 30_000)
    blob_id = stored(network, config, tmp_path, data)["newlyCreated"]["blobObject"]["blobId"]
    assert ok(network, config, "read", blob_id, "--range", "100-199").stdout_bytes == data[100:200]
    assert ok(network, config, "read", blob_id, "--range", "29990-").stdout_bytes == data[29_990:]
    assert ok(network, config, "read", blob_id, "--range", "-5").stdout_bytes == data[-5:]
    as_json = json.loads(ok(network, config, "read", blob_id, "--range", "0-9", "--json").stdout)
    assert as_json == {
        "blobId": blob_id,
        "start": 0,
        "end": 10,
        "blobSize": 30_000,
        "blob": base64.b64encode(data[:10]).decode(),
    }
    out = tmp_path / "part.bin"
    text = ok(network, config, "read", blob_id, "--range", "1000-2999", "--out", str(out))
    assert out.read_bytes() == data[1000:3000]
    assert f"bytes 1000-2999 of 30000, written to {out}" in text.stdout


def test_read_range_errors(network: ThreadedNetwork, config: Path, tmp_path: Path) -> None:
    blob_id = stored(network, config, tmp_path, b"0123456789")["newlyCreated"]["blobObject"][
        "blobId"
    ]
    past = run(network, config, "read", blob_id, "--range", "5-10")
    assert past.exit_code == 1 and "the blob has 10 bytes" in past.output
    for bad in ("5", "a-b", "9-3", "-", "1-2-3"):
        result = run(network, config, "read", blob_id, "--range", bad)
        assert result.exit_code == 2, bad
    strict = run(network, config, "read", blob_id, "--range", "0-1", "--strict-consistency-check")
    assert strict.exit_code == 2 and "whole blob" in strict.output

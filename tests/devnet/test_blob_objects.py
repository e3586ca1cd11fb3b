"""Blob objects and reads on a real devnet: shared blobs, attributes across wallets, a JWT
publisher, lifetimes and resource reuse, and byte ranges by every route.

One devnet (4 nodes, the real contracts, TLS). Each command runs as a process, as users run
them: a blob is shared with the CLI, funded again, extended from its
funds and read by its shared ID through the aggregator; `share=true` on the publisher answers
the shared blob's ID; the client's wallet cannot change the attribute of the publisher's blob;
a second publisher process started with `--jwt-decode-secret` stores for a valid token and
refuses a missing, forged, expired or replayed one, naming why; `--end-epoch` and
`--earliest-expiry-time` store for the epochs they mean, and a store reuses what the wallet
owns (extends its certified object, registers on its storage resource); a byte range is read
by `read --range`, the three `Range` forms, the byte-range route and HEAD, and one past the
end is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from tests.devnet.conftest import TEST_EPOCH_S, blob_bytes, walruspy
from walruspy.devnet import Devnet, open_devnet
from walruspy.devnet.network import wait_until
from walruspy.devnet.setup import free_ports

pytestmark = [
    pytest.mark.devnet,
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.asyncio(loop_scope="module"),
]

SECRET = b"a publisher's shared secret, 32+ bytes long"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def devnet(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Devnet]:
    directory = tmp_path_factory.mktemp("blob-objects")
    async with open_devnet(directory, n_nodes=4, n_shards=40, epoch_duration_s=TEST_EPOCH_S) as dn:
        yield dn


def cli(devnet: Devnet, *args: str, check: bool = True) -> Any:
    result = walruspy(*args, "--config", str(devnet.client_config_path), "--json", check=check)
    return json.loads(result.stdout) if check else result


async def test_a_shared_blob_is_funded_extended_and_read_by_its_own_id(
    devnet: Devnet, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    path = tmp_path / "shared.bin"
    path.write_bytes(blob_bytes(31, 200_000))
    stored = cli(devnet, "store", str(path), "--epochs", "2")
    blob = stored["results"][0]["blobStoreResult"]["newlyCreated"]["blobObject"]
    shared = cli(devnet, "share", "--blob-obj-id", blob["id"], "--amount", str(10**8))
    shared_id = shared["sharedBlobObjectId"]
    owned = {b["id"] for b in cli(devnet, "list-blobs", "--include-expired")["blobs"]}
    assert blob["id"] not in owned
    refused = cli(devnet, "delete", "--object-id", blob["id"], "--yes", check=False)
    assert refused.returncode == 1 and "is owned by" in refused.stdout

    funded = cli(devnet, "fund-shared-blob", "--shared-blob-obj-id", shared_id, "--amount",
                 str(10**10))  # fmt: skip
    assert funded == {"amount": 10**10, "funds": 10**8 + 10**10}
    extended = cli(devnet, "extend", "--blob-obj-id", shared_id, "--shared",
                   "--epochs-extended", "3")  # fmt: skip
    assert extended["endEpoch"] == blob["storage"]["endEpoch"] + 3 and extended["cost"] > 0

    url = f"{devnet.aggregator_url}/v1/blobs/by-object-id/{shared_id}"
    async with http.get(url) as response:
        assert response.status == 200
        assert await response.read() == path.read_bytes()

    put = f"{devnet.publisher_url}/v1/blobs?epochs=2&share=true"
    async with http.put(put, data=b"shared by the publisher") as response:
        assert response.status == 200, await response.text()
        created = (await response.json())["newlyCreated"]
    assert created["sharedBlobObject"].startswith("0x")
    both = f"{devnet.publisher_url}/v1/blobs?share=true&send_object_to=0x" + "12" * 20
    async with http.put(both, data=b"x") as response:
        assert response.status == 400
        assert "mutually exclusive" in (await response.json())["error"]["message"]


async def test_another_wallets_blob_keeps_its_attribute(
    devnet: Devnet, http: aiohttp.ClientSession
) -> None:
    async with http.put(f"{devnet.publisher_url}/v1/blobs?epochs=2", data=b"theirs") as response:
        theirs = (await response.json())["newlyCreated"]["blobObject"]["id"]
    refused = cli(devnet, "set-blob-attribute", theirs, "--attr", "content-type", "text/html",
                  check=False)  # fmt: skip
    assert refused.returncode == 1 and f"no blob object {theirs} is owned by" in refused.stdout
    assert cli(devnet, "get-blob-attribute", theirs) == {"attribute": None}


def _token(claims: dict[str, Any], key: bytes = SECRET) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    signed = f"{header}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(key, signed.encode(), hashlib.sha256).digest()
    return f"{signed}.{b64(signature)}"


async def test_a_jwt_publisher_stores_only_for_valid_tokens(
    devnet: Devnet, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    (port,) = free_ports(1)
    log = (tmp_path / "publisher.log").open("w")
    process = subprocess.Popen(  # noqa: ASYNC220 (started once, stopped in `finally`)
        [
            sys.executable, "-m", "walruspy.cli.main", "publisher",
            "--bind-address", f"127.0.0.1:{port}",
            "--config", str(devnet.client_config_path),
            "--jwt-decode-secret", "0x" + SECRET.hex(), "--jwt-verify-upload",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:

        async def serving() -> bool:
            assert process.poll() is None, (tmp_path / "publisher.log").read_text()
            try:
                async with http.get(f"{url}/status") as response:
                    return response.status == 200
            except (aiohttp.ClientError, TimeoutError):  # not listening yet, or still starting
                return False

        await wait_until(serving, 120, "the JWT publisher serving")
        now = int(time.time())

        async def put(token: str | None, body: bytes = b"paid by a token") -> tuple[int, Any]:
            headers = {} if token is None else {"Authorization": f"Bearer {token}"}
            async with http.put(f"{url}/v1/blobs?epochs=2", data=body, headers=headers) as r:
                return r.status, await r.json()

        valid = _token({"exp": now + 600, "jti": "first", "epochs": 2, "max_size": 1000})
        status, body = await put(valid)
        assert status == 200, body
        assert "newlyCreated" in body or "alreadyCertified" in body
        status, body = await put(valid)
        assert (status, body["error"]["details"][0]["reason"]) == (429, "TOKEN_ALREADY_USED")
        status, body = await put(None)
        assert status == 401
        forged = _token({"exp": now + 600, "jti": "forged"}, key=b"another secret")
        assert (await put(forged))[0] == 401
        expired = _token({"exp": now - 3600, "jti": "expired"})
        status, body = await put(expired)
        assert (status, body["error"]["details"][0]["reason"]) == (504, "EXPIRED_SIGNATURE")
        too_big = _token({"exp": now + 600, "jti": "big", "max_size": 10})
        status, body = await put(too_big)
        assert (status, body["error"]["details"][0]["reason"]) == (400, "INVALID_SIZE")
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


async def test_lifetimes_and_resources_reused_on_the_real_contracts(
    devnet: Devnet, tmp_path: Path
) -> None:
    info = cli(devnet, "info")["epochInfo"]
    epoch, start, duration = (
        info["currentEpoch"], info["startOfCurrentEpoch"], info["epochDurationS"]
    )  # fmt: skip
    first = tmp_path / "first.bin"
    first.write_bytes(blob_bytes(41, 50_000))
    stored = cli(devnet, "store", str(first), "--end-epoch", str(epoch + 4))["results"][0]
    blob = stored["blobStoreResult"]["newlyCreated"]["blobObject"]
    assert blob["storage"]["endEpoch"] == epoch + 4
    # Longer than stored: this account's certified object is extended, not stored again.
    expiry = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + 6 * duration + 1))
    again = cli(devnet, "store", str(first), "--earliest-expiry-time", expiry)["results"][0]
    created = again["blobStoreResult"]["newlyCreated"]
    assert created["blobObject"]["id"] == blob["id"]
    extended = created["blobObject"]["storage"]["endEpoch"] - (epoch + 4)
    assert extended >= 2  # 3 unless an epoch began meanwhile
    assert created["resourceOperation"] == {
        "reuseAndExtend": {
            "encodedLength": blob["storage"]["storageSize"],
            "epochsExtended": extended,
        }
    }
    # Deleted, its storage resource carries the next blob that fits, for the write fee only.
    cli(devnet, "delete", "--object-id", blob["id"], "--yes", "--no-status-check")
    second = tmp_path / "second.bin"
    second.write_bytes(blob_bytes(42, 40_000))
    reused = cli(devnet, "store", str(second), "--epochs", "2")["results"][0]
    operation = reused["blobStoreResult"]["newlyCreated"]["resourceOperation"]
    assert list(operation) == ["reuseStorage"], operation
    out = tmp_path / "back.bin"
    walruspy("read", reused["blobStoreResult"]["newlyCreated"]["blobObject"]["blobId"], "--out",
             str(out), "--config", str(devnet.client_config_path))  # fmt: skip
    assert out.read_bytes() == second.read_bytes()


async def test_ranges_by_every_route_and_past_the_end(
    devnet: Devnet, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    data = blob_bytes(51, 300_000)
    async with http.put(f"{devnet.publisher_url}/v1/blobs?epochs=2", data=data) as response:
        blob_id = (await response.json())["newlyCreated"]["blobObject"]["blobId"]
    out = tmp_path / "part.bin"
    walruspy("read", blob_id, "--range", "1000-1999", "--out", str(out), "--config",
             str(devnet.client_config_path))  # fmt: skip
    assert out.read_bytes() == data[1000:2000]
    url = f"{devnet.aggregator_url}/v1/blobs/{blob_id}"
    for header, part in (
        ("bytes=10-19", data[10:20]),
        ("bytes=299990-", data[299_990:]),
        ("bytes=-5", data[-5:]),
    ):
        async with http.get(url, headers={"Range": header}) as response:
            assert response.status == 206 and await response.read() == part, header
    async with http.get(url, headers={"Range": "bytes=300000-"}) as response:
        assert response.status == 416
        assert response.headers["Content-Range"] == "bytes */300000"
    ranged = f"{url}/byte-range?start=299000&length=1000"
    async with http.get(ranged) as response:
        assert response.status == 200 and await response.read() == data[299_000:]
    async with http.get(f"{url}/byte-range?start=299500&length=1000") as response:
        assert response.status == 400
    async with http.head(url) as response:
        assert response.status == 200 and response.headers["Content-Length"] == "300000"
    past = walruspy("read", blob_id, "--range", "299999-300000", "--config",
                    str(devnet.client_config_path), "--json", check=False)  # fmt: skip
    assert past.returncode == 1 and "300000" in past.stdout

"""Bad input: each gets a 4xx with its reason, nothing is stored, and the node keeps serving.

The table sends raw HTTP (so it can send what `NodeClient` never would); a fuzz run then sends
10,000 random requests built from the routes, valid and mutated bodies, and garbage, and checks
that none is answered with a 5xx, the node still serves, and its store is still valid: every
stored sliver verifies against its stored metadata.
"""

from __future__ import annotations

import asyncio
import base64
import io
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.node.cluster import Cluster, ClusterNode, blob_data, open_cluster, upload_to
from walruspy.core.blob_id import BlobId
from walruspy.core.encoding import EncodedBlob, encode_blob
from walruspy.core.metadata import BlobMetadata, UnverifiedBlobMetadataWithId
from walruspy.core.slivers import SliverData
from walruspy.core.types import ShardIndex, SliverPairIndex, SliverType, pair_of_shard
from walruspy.node_api import json_fields as jf
from walruspy.node_api.errors import error_from_response

N_SHARDS = 10
OCTET = {"Content-Type": "application/octet-stream"}


@dataclass
class Setup:
    cluster: Cluster
    node: ClusterNode
    url: str
    session: aiohttp.ClientSession
    registered: EncodedBlob  # registered, nothing uploaded
    stored: EncodedBlob  # registered, metadata and slivers uploaded
    unregistered: EncodedBlob
    expired: EncodedBlob
    partial: EncodedBlob  # registered, metadata uploaded, no sliver

    def owned_pair(self, encoded: EncodedBlob) -> SliverPairIndex:
        shard = ShardIndex(self.node.shards[0])
        return pair_of_shard(shard, encoded.metadata.blob_id.raw, N_SHARDS)

    def foreign_pair(self, encoded: EncodedBlob) -> SliverPairIndex:
        owned = {self.owned_pair_of(encoded, s) for s in self.node.shards}
        return next(SliverPairIndex(p) for p in range(N_SHARDS) if p not in owned)

    def owned_pair_of(self, encoded: EncodedBlob, shard: int) -> int:
        return pair_of_shard(ShardIndex(shard), encoded.metadata.blob_id.raw, N_SHARDS)

    def stats(self) -> tuple[int, int, int]:
        assert self.node.node is not None and self.node.node.store is not None
        stats = self.node.node.store.stats()
        return stats.metadata_entries, stats.primary_slivers, stats.secondary_slivers


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    async with open_cluster(tmp_path, (6, 4)) as cluster:
        node = cluster.nodes[0]
        chain = cluster.chain
        registered = encode_blob(blob_data(1, 2000), N_SHARDS)
        stored = encode_blob(blob_data(2, 2000), N_SHARDS)
        unregistered = encode_blob(blob_data(3, 2000), N_SHARDS)
        expired = encode_blob(blob_data(4, 2000), N_SHARDS)
        partial = encode_blob(blob_data(5, 2000), N_SHARDS)
        chain.register(partial.metadata.blob_id)
        chain.register(registered.metadata.blob_id)
        chain.register(stored.metadata.blob_id)
        chain.register(expired.metadata.blob_id, epochs_ahead=1)
        chain.next_epoch()
        await cluster.wait_for_events()
        await upload_to(cluster.client(node), stored, node.shards)
        await cluster.client(node).put_metadata(partial.metadata)
        yield Setup(
            cluster,
            node,
            node.url,
            cluster.session,
            registered,
            stored,
            unregistered,
            expired,
            partial,
        )


def metadata_path(encoded: EncodedBlob | str) -> str:
    blob = encoded if isinstance(encoded, str) else str(encoded.metadata.blob_id)
    return f"/v1/blobs/{blob}/metadata"


def sliver_path(encoded: EncodedBlob, pair: int, sliver_type: str) -> str:
    return f"/v1/blobs/{encoded.metadata.blob_id}/slivers/{pair}/{sliver_type}"


def sliver_bytes(encoded: EncodedBlob, pair: int, sliver_type: SliverType) -> bytes:
    return encoded.sliver(SliverPairIndex(pair), sliver_type).sliver.to_bcs()


def bad_cases(s: Setup) -> list[tuple[str, str, str, bytes | None, dict[str, str], int, str]]:
    """(name, method, path, body, headers, expected status, expected reason)."""
    reg, sto, unreg, exp, part = s.registered, s.stored, s.unregistered, s.expired, s.partial
    md = reg.metadata.metadata.to_bcs()
    pair = s.owned_pair(reg)
    spair = s.owned_pair(sto)
    ppair = s.owned_pair(part)
    primary = sliver_bytes(sto, spair, SliverType.PRIMARY)
    part_primary = sliver_bytes(part, ppair, SliverType.PRIMARY)
    short = SliverData(
        SliverType.PRIMARY,
        part.primary_sliver(ppair).index,
        part.metadata.symbol_size,
        part.primary_sliver(ppair).data[: -part.metadata.symbol_size],
    ).to_bcs()
    flipped = bytearray(part_primary)
    flipped[5] ^= 0xFF
    other_n = encode_blob(blob_data(1, 2000), 7).metadata.metadata.to_bcs()
    unsupported = bytes([0, 0]) + md[2:]
    long_id = "A" * 44
    trailing_bits = str(reg.metadata.blob_id)[:-1] + "B"
    fresh = sliver_bytes(unreg, s.owned_pair(unreg), SliverType.PRIMARY)
    return [
        ("metadata garbage", "PUT", metadata_path(reg), b"\xff\x00garbage", OCTET, 400,
         "INVALID_CONTENT_TYPE"),
        ("metadata truncated", "PUT", metadata_path(reg), md[:-1], OCTET, 400,
         "INVALID_CONTENT_TYPE"),
        ("metadata trailing byte", "PUT", metadata_path(reg), md + b"\x00", OCTET, 400,
         "INVALID_CONTENT_TYPE"),
        ("metadata empty", "PUT", metadata_path(reg), b"", OCTET, 400, "INVALID_CONTENT_TYPE"),
        ("metadata of another blob", "PUT", metadata_path(reg),
         sto.metadata.metadata.to_bcs(), OCTET, 400, "INVALID_METADATA"),
        ("metadata for 7 shards", "PUT", metadata_path(reg), other_n, OCTET, 400,
         "INVALID_METADATA"),
        ("metadata unsupported encoding", "PUT", metadata_path(reg), unsupported, OCTET, 400,
         "UNSUPPORTED_ENCODING_TYPE"),
        ("metadata of an unregistered blob", "PUT", metadata_path(unreg),
         unreg.metadata.metadata.to_bcs(), OCTET, 400, "NOT_REGISTERED"),
        ("metadata of an expired blob", "PUT", metadata_path(exp),
         exp.metadata.metadata.to_bcs(), OCTET, 400, "NOT_REGISTERED"),
        ("metadata as text", "PUT", metadata_path(reg), md, {"Content-Type": "text/plain"}, 400,
         "INVALID_CONTENT_TYPE"),
        ("metadata oversized", "PUT", metadata_path(reg), md + bytes(2000), OCTET, 403,
         "BODY_TOO_LARGE"),
        ("metadata unknown query", "PUT", metadata_path(reg) + "?color=red", md, OCTET, 400,
         "INVALID_REQUEST"),
        ("short blob ID", "GET", metadata_path("abc"), None, {}, 400, "INVALID_REQUEST"),
        ("long blob ID", "GET", metadata_path(long_id), None, {}, 400, "INVALID_REQUEST"),
        ("blob ID with bad characters", "GET", metadata_path("!" * 43), None, {}, 400,
         "INVALID_REQUEST"),
        ("blob ID with trailing bits", "GET", metadata_path(trailing_bits), None, {}, 400,
         "INVALID_REQUEST"),
        ("sliver garbage", "PUT", sliver_path(sto, spair, "primary"), b"\x01", OCTET, 400,
         "INVALID_CONTENT_TYPE"),
        ("sliver truncated", "PUT", sliver_path(sto, spair, "primary"), primary[:-3], OCTET, 400,
         "INVALID_CONTENT_TYPE"),
        ("sliver one symbol short", "PUT", sliver_path(part, ppair, "primary"), short, OCTET,
         400, "INVALID_SLIVER"),
        ("sliver of the wrong type", "PUT", sliver_path(part, ppair, "secondary"), part_primary,
         OCTET, 400, "SLIVER_INDEX_MISMATCH"),
        ("sliver for a foreign shard", "PUT",
         sliver_path(sto, s.foreign_pair(sto), "primary"),
         sliver_bytes(sto, s.foreign_pair(sto), SliverType.PRIMARY), OCTET, 400,
         "SHARD_NOT_ASSIGNED"),
        ("sliver pair out of range", "PUT", sliver_path(sto, N_SHARDS, "primary"), primary,
         OCTET, 400, "INDEX_OUT_OF_RANGE"),
        ("sliver pair over u16", "PUT", sliver_path(sto, 70000, "primary"), primary, OCTET, 400,
         "INVALID_REQUEST"),
        ("sliver pair with a leading zero", "GET", f"/v1/blobs/{sto.metadata.blob_id}/slivers/01"
         "/primary", None, {}, 400, "INVALID_REQUEST"),
        ("sliver type tertiary", "GET", sliver_path(sto, spair, "tertiary"), None, {}, 400,
         "INVALID_REQUEST"),
        ("sliver before its metadata", "PUT", sliver_path(reg, pair, "primary"),
         sliver_bytes(reg, pair, SliverType.PRIMARY), OCTET, 400, "METADATA_NOT_FOUND"),
        ("sliver of an unregistered blob", "PUT",
         sliver_path(unreg, s.owned_pair(unreg), "primary"), fresh, OCTET, 400,
         "NOT_REGISTERED"),
        ("sliver with a flipped byte", "PUT", sliver_path(part, ppair, "primary"),
         bytes(flipped), OCTET, 400, "INVALID_SLIVER"),
        ("sliver oversized", "PUT", sliver_path(sto, spair, "primary"), bytes(2_000_000),
         OCTET, 403, "BODY_TOO_LARGE"),
        ("symbols without a filter", "GET", f"/v1/blobs/{sto.metadata.blob_id}/recoverySymbols",
         None, {}, 400, "INVALID_FILTER"),
        ("symbols with a bad id", "GET",
         f"/v1/blobs/{sto.metadata.blob_id}/recoverySymbols?id=1-", None, {}, 400,
         "INVALID_FILTER"),
        ("symbols with both forms", "GET",
         f"/v1/blobs/{sto.metadata.blob_id}/recoverySymbols?id=1-2&targetSliver=1"
         "&targetType=primary", None, {}, 400, "INVALID_FILTER"),
        ("symbols target out of range", "GET",
         f"/v1/blobs/{sto.metadata.blob_id}/recoverySymbols?targetSliver=10&targetType=primary",
         None, {}, 400, "INDEX_OUT_OF_RANGE"),
        ("decoding symbols without targets", "GET",
         f"/v1/blobs/{sto.metadata.blob_id}/decodingSymbols?targetType=primary", None, {}, 400,
         "NO_TARGET_SLIVERS_SPECIFIED"),
        ("confirmation for a bad object ID", "GET",
         f"/v1/blobs/{sto.metadata.blob_id}/confirmation/deletable/0x12", None, {}, 400,
         "INVALID_REQUEST"),
        ("confirmation with a bad wait", "GET",
         f"/v1/blobs/{sto.metadata.blob_id}/confirmation/permanent?wait_millis=-1", None, {},
         400, "INVALID_REQUEST"),
        ("confirmation of an unregistered blob", "GET",
         f"/v1/blobs/{unreg.metadata.blob_id}/confirmation/permanent", None, {}, 400,
         "NOT_REGISTERED"),
        ("health with a bad flag", "GET", "/v1/health?detailed=maybe", None, {}, 400,
         "INVALID_REQUEST"),
        ("inconsistency proof garbage", "POST",
         f"/v1/blobs/{sto.metadata.blob_id}/inconsistencyProof/primary", b"\x00\x00\x05", OCTET,
         400, "INVALID_CONTENT_TYPE"),
        ("unknown route", "GET", "/v1/blobs", None, {}, 404, "NOT_FOUND"),
    ]  # fmt: skip


async def test_bad_input_table(setup: Setup) -> None:
    before = setup.stats()
    for name, method, path, body, headers, status, reason in bad_cases(setup):
        data = io.BytesIO(body) if body is not None and len(body) > 1 << 20 else body
        async with setup.session.request(
            method, setup.url + path, data=data, headers=headers
        ) as response:
            payload = await response.read()
        assert response.status == status, (name, payload[:300])
        error = error_from_response(response.status, payload)
        assert error.reason == reason, (name, error)
        assert error.message, name
    assert setup.stats() == before
    assert (await setup.cluster.client(setup.node).health()).epoch == 2


async def test_streamed_oversized_body_is_refused_before_it_is_buffered(setup: Setup) -> None:
    pair = setup.owned_pair(setup.stored)
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(64):  # 64 MiB if the server read it all
            sent += 1
            yield bytes(1 << 20)

    path = sliver_path(setup.stored, pair, "primary")
    async with setup.session.put(setup.url + path, data=chunks(), headers=OCTET) as response:
        payload = await response.read()
    assert response.status == 403
    assert error_from_response(403, payload).reason == "BODY_TOO_LARGE"


async def test_a_client_gone_mid_body_is_one_log_line_not_an_internal_error(
    setup: Setup,
) -> None:
    assert setup.node.node is not None and setup.node.node.service is not None
    registry = setup.node.node.service.metrics.registry

    def rejected(reason: str) -> float:
        labels = {"reason": reason}
        return registry.get_sample_value("walrus_rejected_requests_total", labels) or 0.0

    internal_before = rejected("INTERNAL_ERROR")
    pair = setup.owned_pair(setup.registered)
    path = sliver_path(setup.registered, pair, "primary")
    host, port = setup.url.removeprefix("http://").split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"PUT {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/octet-stream\r\n"
        "Content-Length: 100000\r\n\r\n".encode()
        + bytes(1000)
    )
    await writer.drain()
    await asyncio.sleep(0.2)
    writer.transport.abort()  # gone, 99,000 bytes short
    async with asyncio.timeout(10):
        while rejected("CLIENT_DISCONNECTED") < 1:  # noqa: ASYNC110 - another task's counter
            await asyncio.sleep(0.05)
    assert rejected("INTERNAL_ERROR") == internal_before
    async with setup.session.get(setup.url + "/v1/health") as response:
        assert response.status == 200


async def test_concurrency_limit_answers_429(setup: Setup) -> None:
    assert setup.node.node is not None and setup.node.node.api is not None
    api = setup.node.node.api
    api.in_flight = api.max_concurrent_requests
    try:
        async with setup.session.get(setup.url + "/v1/health") as response:
            payload = await response.read()
        assert response.status == 429
        assert error_from_response(429, payload).reason == "RESOURCE_EXHAUSTED"
    finally:
        api.in_flight = 0
    async with setup.session.get(setup.url + "/v1/health") as response:
        assert response.status == 200


# --- fuzzing --------------------------------------------------------------------------------

FUZZ_REQUESTS = 10_000
FUZZ_CONCURRENCY = 32


def _mutate(rng: random.Random, data: bytes) -> bytes:
    if not data:
        return rng.randbytes(rng.randint(0, 64))
    data = bytearray(data)
    choice = rng.randrange(5)
    if choice == 0:
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif choice == 1:
        del data[rng.randrange(len(data)) :]
    elif choice == 2:
        data += rng.randbytes(rng.randint(1, 16))
    elif choice == 3:
        pos = rng.randrange(len(data))
        data[pos : pos + 4] = rng.randbytes(4)
    else:
        return rng.randbytes(rng.randint(0, 512))
    return bytes(data)


def _random_request(rng: random.Random, s: Setup) -> tuple[str, str, bytes | None]:
    blobs = [s.registered, s.stored, s.unregistered, s.expired, s.partial]
    encoded = rng.choice(blobs)
    blob_text = rng.choice(
        [
            str(encoded.metadata.blob_id),
            base64.urlsafe_b64encode(rng.randbytes(32)).rstrip(b"=").decode(),
            rng.choice(["", "x", "%00", "A" * 43 + "=", "..", "A" * 100]),
        ]
    )
    pair = rng.choice([rng.randrange(N_SHARDS), rng.randrange(70000), "-1", "1.5", "00"])
    sliver_type = rng.choice(["primary", "secondary", "both", ""])
    routes = [
        ("GET", f"/v1/blobs/{blob_text}/metadata"),
        ("PUT", f"/v1/blobs/{blob_text}/metadata"),
        ("GET", f"/v1/blobs/{blob_text}/metadata/status"),
        ("GET", f"/v1/blobs/{blob_text}/slivers/{pair}/{sliver_type}"),
        ("PUT", f"/v1/blobs/{blob_text}/slivers/{pair}/{sliver_type}"),
        ("GET", f"/v1/blobs/{blob_text}/slivers/{pair}/{sliver_type}/status"),
        ("GET", f"/v1/blobs/{blob_text}/confirmation/permanent"),
        ("GET", f"/v1/blobs/{blob_text}/confirmation/deletable/0x{rng.randbytes(32).hex()}"),
        ("GET", f"/v1/blobs/{blob_text}/recoverySymbols"),
        ("GET", f"/v1/blobs/{blob_text}/decodingSymbols"),
        ("POST", f"/v1/blobs/{blob_text}/inconsistencyProof/{sliver_type}"),
        ("GET", f"/v1/blobs/{blob_text}/status"),
        ("GET", "/v1/health"),
        (rng.choice(["DELETE", "PATCH", "POST"]), f"/v1/blobs/{blob_text}/metadata"),
    ]
    method, path = rng.choice(routes)
    queries = [
        "",
        f"?id={rng.randrange(12)}-{rng.randrange(12)}&id={rng.randrange(99)}-{rng.randrange(9)}",
        f"?targetSliver={rng.randrange(12)}&targetType={rng.choice(['primary', 'secondary'])}",
        f"?targetSlivers={rng.randrange(12)}&targetType=primary",
        "?pending=true",
        "?wait_for_registration=true&wait_millis=1",
        "?detailed=true",
        "?" + rng.randbytes(8).hex(),
    ]
    path += rng.choice(queries)
    valid_bodies = [
        encoded.metadata.metadata.to_bcs(),
        sliver_bytes(encoded, rng.randrange(N_SHARDS), rng.choice(list(SliverType))),
        b"",
    ]
    body = None if method == "GET" else _mutate(rng, rng.choice(valid_bodies))
    if method != "GET" and rng.random() < 0.3:
        body = rng.choice(valid_bodies)
    return method, path, body


def check_store_is_valid(s: Setup) -> None:
    """Every stored sliver verifies against the stored metadata of its blob."""
    assert s.node.node is not None and s.node.node.store is not None
    store = s.node.node.store
    for blob_id in store.list_metadata_blob_ids():
        raw = store.get_metadata(blob_id)
        assert raw is not None
        metadata = UnverifiedBlobMetadataWithId(BlobId(blob_id), BlobMetadata.from_bcs(raw))
        verified = metadata.verify(N_SHARDS)
        for shard in s.node.shards:
            for sliver_type in SliverType:
                sliver = store.get_sliver(shard, sliver_type, blob_id)
                if sliver is not None:
                    SliverData.from_bcs(sliver, sliver_type).verify(verified)
    for shard in s.node.shards:
        for sliver_type in SliverType:
            for blob_id in store.list_blob_ids(shard, sliver_type):
                assert store.has_metadata(blob_id), "a sliver without its metadata"
    store.list_blob_infos()
    store.list_per_object_blob_infos()


async def test_fuzz_10000_random_requests(setup: Setup) -> None:
    rng = random.Random(20260101)
    requests = [_random_request(rng, setup) for _ in range(FUZZ_REQUESTS)]
    statuses: dict[int, int] = {}
    server_errors: list[tuple[str, str, bytes]] = []
    queue: asyncio.Queue[tuple[str, str, bytes | None]] = asyncio.Queue()
    for item in requests:
        queue.put_nowait(item)

    async def worker() -> None:
        while not queue.empty():
            method, path, body = queue.get_nowait()
            headers = OCTET if body is not None else {}
            async with setup.session.request(
                method, setup.url + path, data=body, headers=headers
            ) as response:
                payload = await response.read()
            statuses[response.status] = statuses.get(response.status, 0) + 1
            if response.status >= 500:
                server_errors.append((method, path, payload[:200]))
            elif response.status >= 400 and response.status != 405:
                jf.loads(payload, "error body")  # every rejection is an AIP-193 JSON body

    started = time.monotonic()
    async with asyncio.timeout(120):
        async with asyncio.TaskGroup() as group:
            for _ in range(FUZZ_CONCURRENCY):
                group.create_task(worker())
    elapsed = time.monotonic() - started
    assert not server_errors, server_errors[:5]
    assert sum(statuses.values()) == FUZZ_REQUESTS
    assert any(200 <= code < 300 for code in statuses), statuses
    print(f"fuzz: {FUZZ_REQUESTS} requests in {elapsed:.1f} s, statuses {sorted(statuses.items())}")
    health = await setup.cluster.client(setup.node).health()
    assert health.node_status == "Active"
    check_store_is_valid(setup)

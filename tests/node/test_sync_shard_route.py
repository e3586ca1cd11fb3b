"""`POST /v1/migrate/sync_shard` against an in-process node, through `NodeClient.sync_shard`.

Two nodes hold shards 0-5 and 6-9 in epoch 1, when four blobs are stored and certified and a
fifth is only registered. The committee then moves shard 5 to node 1 for epoch 2, and a sixth
blob, certified in epoch 2, gets a shard-5 sliver written into node 0's store directly. Node 1,
the new owner, asks node 0 (the previous owner, which still stores shard 5) for shard 5: it must
get exactly the slivers of the four epoch-1 blobs, in blob-ID order, in batches that resume after
the last blob ID. Every refusal is checked for Walrus's status and reason.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio

from tests.node.cluster import Cluster, blob_data, open_cluster
from walruspy.core.bcs import Writer
from walruspy.core.blob_id import BlobId
from walruspy.core.crypto import BlsPrivateKey
from walruspy.core.encoding import EncodedBlob
from walruspy.core.errors import DecodeError
from walruspy.core.messages import (
    SyncShardMessage,
    SyncShardRequest,
    sign_sync_shard_request,
    signed_message_to_bcs,
)
from walruspy.core.slivers import SliverData
from walruspy.core.types import (
    ShardIndex,
    SliverIndex,
    SliverPairIndex,
    SliverType,
    pair_of_shard,
)
from walruspy.node.config import ApiLimits
from walruspy.node.shard_source import ShardSource
from walruspy.node_api import errors
from walruspy.node_api.sync_shard import (
    sync_shard_response_from_bcs,
    sync_shard_response_to_bcs,
)

#: The async tests share the module's cluster and event loop.
on_module_loop = pytest.mark.asyncio(loop_scope="module")

MOVED_SHARD = ShardIndex(5)
SLIVER_LIMIT = 50
ZERO_ID = bytes(32)
PRIMARY, SECONDARY = SliverType.PRIMARY, SliverType.SECONDARY


@dataclass
class Setup:
    cluster: Cluster
    #: (blob_id, BCS sliver) of shard 5 that node 0 must serve, by type, in blob-ID order.
    expected: dict[SliverType, list[tuple[bytes, bytes]]]

    def request(
        self,
        sliver_type: SliverType = PRIMARY,
        *,
        start: bytes = ZERO_ID,
        count: int = 20,
        epoch: int = 2,
        shard: int = MOVED_SHARD,
    ) -> SyncShardRequest:
        return SyncShardRequest(ShardIndex(shard), sliver_type, start, count, epoch)

    async def sync(
        self, request: SyncShardRequest, key: BlsPrivateKey | None = None
    ) -> list[tuple[BlobId, SliverData]]:
        key = key or self.cluster.nodes[1].key
        client = self.cluster.client(self.cluster.nodes[0])
        signed = sign_sync_shard_request(key, request)
        return await client.sync_shard(signed, key.public_key())

    async def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        url = self.cluster.nodes[0].url + "/v1/migrate/sync_shard"
        async with self.cluster.session.post(url, data=body, headers=headers) as response:
            return response.status, await response.read()


def _shard_sliver(encoded: EncodedBlob, blob_id: bytes, sliver_type: SliverType, n: int) -> bytes:
    pair = pair_of_shard(MOVED_SHARD, blob_id, n)
    return encoded.sliver(SliverPairIndex(pair), sliver_type).sliver.to_bcs()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def setup(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Setup]:
    limits = ApiLimits(max_sliver_count_per_sync_request=SLIVER_LIMIT)
    async with open_cluster(tmp_path_factory.mktemp("sync"), (6, 4), limits=limits) as cluster:
        n = cluster.n_shards
        expected: dict[SliverType, list[tuple[bytes, bytes]]] = {PRIMARY: [], SECONDARY: []}
        for seed in range(4):
            encoded, _ = await cluster.store_blob(blob_data(seed, 3000 + seed))
            blob_id = encoded.metadata.blob_id.raw
            for sliver_type in SliverType:
                expected[sliver_type].append(
                    (blob_id, _shard_sliver(encoded, blob_id, sliver_type, n))
                )
        # Registered and uploaded, never certified: not served.
        await cluster.store_blob(blob_data(10, 2000), certify=False)
        # Move shard 5 from node 0 to node 1 for epoch 2.
        node0, node1 = cluster.nodes
        node0.member = dataclasses.replace(node0.member, shards=tuple(range(5)))
        node1.member = dataclasses.replace(node1.member, shards=tuple(range(5, 10)))
        cluster.chain.next_epoch((node0.member, node1.member))
        await cluster.wait_for_events()
        # Certified in epoch 2 (the request's epoch): not served although node 0 stores it.
        late, _ = await cluster.store_blob(blob_data(11, 2500))
        late_id = late.metadata.blob_id.raw
        assert node0.node is not None and node0.node.service is not None
        store = node0.node.service.storage.store
        for sliver_type in SliverType:
            store.put_sliver(
                MOVED_SHARD, sliver_type, late_id, _shard_sliver(late, late_id, sliver_type, n)
            )
        for sliver_type, pairs in expected.items():
            pairs.sort()
            # Node 0 stores six shard-5 slivers of each type; only four are due.
            assert len(store.list_blob_ids(MOVED_SHARD, sliver_type)) == 6
        yield Setup(cluster, expected)


# --- a member owning the shard --------------------------------------------------------------


@on_module_loop
@pytest.mark.parametrize("sliver_type", list(SliverType))
async def test_owner_gets_the_certified_slivers_in_order(
    setup: Setup, sliver_type: SliverType
) -> None:
    got = await setup.sync(setup.request(sliver_type))
    assert [(b.raw, s.to_bcs()) for b, s in got] == setup.expected[sliver_type]
    assert all(s.sliver_type is sliver_type for _, s in got)


@on_module_loop
@pytest.mark.parametrize("sliver_type", list(SliverType))
async def test_batches_resume_after_the_last_blob_id(setup: Setup, sliver_type: SliverType) -> None:
    collected: list[tuple[bytes, bytes]] = []
    start = ZERO_ID
    for _ in range(10):
        batch = await setup.sync(setup.request(sliver_type, start=start, count=3))
        assert len(batch) <= 3
        if not batch:
            break
        collected += [(b.raw, s.to_bcs()) for b, s in batch]
        start = (int.from_bytes(batch[-1][0].raw, "big") + 1).to_bytes(32, "big")
    assert collected == setup.expected[sliver_type]


@on_module_loop
async def test_start_is_inclusive_and_count_zero_is_empty(setup: Setup) -> None:
    expected = setup.expected[PRIMARY]
    second = expected[1][0]
    got = await setup.sync(setup.request(start=second, count=2))
    assert [b.raw for b, _ in got] == [blob_id for blob_id, _ in expected[1:3]]
    assert await setup.sync(setup.request(count=0)) == []
    assert await setup.sync(setup.request(start=b"\xff" * 32)) == []


@on_module_loop
async def test_sliver_count_at_the_limit_is_served_and_above_is_refused(setup: Setup) -> None:
    assert len(await setup.sync(setup.request(count=SLIVER_LIMIT))) == 4
    with pytest.raises(errors.SliverCountExceedsLimitError) as info:
        await setup.sync(setup.request(count=SLIVER_LIMIT + 1))
    assert info.value.http_status == 400


@on_module_loop
async def test_response_byte_bound_cuts_the_answer_but_keeps_one_sliver(setup: Setup) -> None:
    node0 = setup.cluster.nodes[0]
    assert node0.node is not None and node0.node.api is not None
    api = node0.node.api
    original = api.shard_source
    api.shard_source = ShardSource(original._store, original._state, SLIVER_LIMIT, 1)
    try:
        got = await setup.sync(setup.request())
    finally:
        api.shard_source = original
    assert [(b.raw, s.to_bcs()) for b, s in got] == setup.expected[PRIMARY][:1]


# --- refusals -------------------------------------------------------------------------------


@on_module_loop
async def test_non_member_is_unauthorized(setup: Setup) -> None:
    stranger = BlsPrivateKey.from_seed(b"s" * 32)
    with pytest.raises(errors.RequestUnauthorizedError) as info:
        await setup.sync(setup.request(), stranger)
    assert info.value.http_status == 403


@on_module_loop
async def test_member_not_owning_the_shard_is_unauthorized(setup: Setup) -> None:
    # Node 0 owned shard 5 in epoch 1 only; node 1 does not own shard 0.
    with pytest.raises(errors.RequestUnauthorizedError):
        await setup.sync(setup.request(), setup.cluster.nodes[0].key)
    with pytest.raises(errors.RequestUnauthorizedError):
        await setup.sync(setup.request(shard=0))


@on_module_loop
@pytest.mark.parametrize("epoch", [1, 3])
async def test_stale_or_future_epoch_is_invalid(setup: Setup, epoch: int) -> None:
    with pytest.raises(errors.InvalidEpochError) as info:
        await setup.sync(setup.request(epoch=epoch))
    assert info.value.http_status == 400
    assert dict(info.value.metadata) == {"request_epoch": epoch, "server_epoch": 2}


@on_module_loop
async def test_shard_without_storage_here_is_not_assigned(setup: Setup) -> None:
    with pytest.raises(errors.ShardNotAssignedError):
        await setup.sync(setup.request(shard=7))


@on_module_loop
async def test_signature_by_another_key_fails_verification(setup: Setup) -> None:
    signed = sign_sync_shard_request(setup.cluster.nodes[0].key, setup.request())
    client = setup.cluster.client(setup.cluster.nodes[0])
    with pytest.raises(errors.MessageVerificationFailedError) as info:
        await client.sync_shard(signed, setup.cluster.nodes[1].key.public_key())
    assert info.value.http_status == 400


@on_module_loop
async def test_message_that_is_not_sync_shard_fails_verification(setup: Setup) -> None:
    key = setup.cluster.nodes[1].key
    message = SyncShardMessage(3, setup.request()).to_bcs()  # header epoch != request epoch
    body = Writer().bytes(message).fixed(key.sign(message).to_bytes()).finish()
    auth = _auth(key)
    status, answer = await setup.post(body, {"Authorization": auth})
    error = errors.error_from_response(status, answer)
    assert isinstance(error, errors.MessageVerificationFailedError)


def _auth(key: BlsPrivateKey) -> str:
    return base64.b64encode(key.public_key().to_bytes()).decode()


@on_module_loop
async def test_malformed_requests_are_refused(setup: Setup) -> None:
    key = setup.cluster.nodes[1].key
    good = signed_message_to_bcs(sign_sync_shard_request(key, setup.request()))
    cases = [
        (good[:-1], {"Authorization": _auth(key)}, errors.InvalidContentTypeError),
        (good + b"\x00", {"Authorization": _auth(key)}, errors.InvalidContentTypeError),
        (b"", {"Authorization": _auth(key)}, errors.InvalidContentTypeError),
        (b"\x00" * 10_000, {"Authorization": _auth(key)}, errors.BodyTooLargeError),
        (good, {"Authorization": "not base64!"}, errors.InvalidRequestError),
        (good, {"Authorization": _auth(key)[:-4]}, errors.InvalidRequestError),
    ]
    for body, headers, expected in cases:
        status, answer = await setup.post(body, headers)
        assert isinstance(errors.error_from_response(status, answer), expected), (status, answer)
    status, answer = await setup.post(good, {})
    assert status == 401
    assert errors.error_from_response(status, answer).reason == "UNAUTHENTICATED"
    # Nothing broke: the node still answers.
    client = setup.cluster.client(setup.cluster.nodes[0])
    assert (await client.health()).epoch == 2
    assert len(await setup.sync(setup.request())) == 4


# --- the response codec ---------------------------------------------------------------------


def test_response_layout_and_round_trip() -> None:
    sliver = SliverData(SECONDARY, SliverIndex(7), 2, b"abcd")
    blob_id = bytes(range(32))
    data = sync_shard_response_to_bcs(SECONDARY, [(blob_id, sliver.to_bcs())])
    assert data == b"\x00\x01" + blob_id + b"\x01" + b"\x04abcd" + b"\x02\x00\x07\x00"
    assert sync_shard_response_from_bcs(data) == [(BlobId(blob_id), sliver)]
    assert sync_shard_response_from_bcs(sync_shard_response_to_bcs(PRIMARY, [])) == []


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x01\x00",  # unknown version
        b"\x00\x01" + bytes(32) + b"\x02" + b"\x02ab\x02\x00\x00\x00",  # bad axis tag
        b"\x00\x01" + bytes(32),  # truncated
        b"\x00\x00\x00",  # trailing byte
    ],
)
def test_malformed_responses_are_decode_errors(data: bytes) -> None:
    with pytest.raises(DecodeError):
        sync_shard_response_from_bcs(data)

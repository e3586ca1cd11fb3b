"""Blob status, delete, extend, list-blobs and system info against in-process nodes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import walruspy.client.client
from tests.client.network import Network, make_context, open_network
from tests.node.fakes import ADDRESS
from walruspy.chain.api import ChainReader, ChainUnavailableError
from walruspy.client import WalrusClient, open_client
from walruspy.client.errors import (
    BlobObjectStateError,
    InvalidArgumentError,
    NoValidStatusError,
    NoWalletError,
    ObjectNotFoundError,
)
from walruspy.client.results import estimated_epoch_start_s
from walruspy.core.encoding import encode_blob
from walruspy.node_api.schemas import (
    Deletable,
    DeletableCounts,
    Invalid,
    Nonexistent,
    Permanent,
)
from walruspy.workers import EncoderPool

pytestmark = pytest.mark.timeout(60)


async def test_verified_status_of_each_kind(tmp_path: Path) -> None:
    async with open_network(tmp_path) as network, network.client() as client:
        unknown = encode_blob(b"unknown", network.chain.n_shards).metadata.blob_id
        nonexistent = await client.blob_status(unknown)
        assert isinstance(nonexistent.status, Nonexistent)
        assert nonexistent.to_json() == {"blobId": str(unknown), "status": "nonexistent"}
        assert nonexistent.describe().startswith("nonexistent")

        permanent = await client.store(b"permanent", epochs=5, deletable=False)
        await network.settle()
        verified = await client.blob_status(permanent.blob_id)
        assert isinstance(verified.status, Permanent) and verified.status.is_certified
        assert verified.end_epoch == permanent.end_epoch
        assert verified.weight >= 7 and verified.answered_weight >= verified.weight
        assert verified.is_certified_until(permanent.end_epoch)
        assert not verified.is_certified_until(permanent.end_epoch + 1)
        assert "certified, stored until epoch" in verified.describe()

        deletable = await client.store(b"deletable", epochs=2, deletable=True)
        await network.settle()
        status = (await client.blob_status(str(deletable.blob_id))).status
        assert isinstance(status, Deletable)
        assert status.deletable_counts.count_deletable_certified == 1
        network.chain.invalidate(deletable.blob_id)
        await network.settle()
        invalid = await client.blob_status(deletable.blob_id)
        assert isinstance(invalid.status, Invalid)
        assert invalid.describe().startswith("invalid")


async def test_a_status_short_of_f_plus_1_shards_is_not_trusted(tmp_path: Path) -> None:
    async with open_network(tmp_path) as network, network.client() as client:
        stored = await client.store(b"few answer", epochs=2)
        await network.stop(0, 1, 2)  # node 3 alone holds 2 shards; validity needs 4
        with pytest.raises(NoValidStatusError, match="f\\+1 = 4 shards") as failure:
            await client.blob_status(stored.blob_id)
        assert "from 2 shards" in str(failure.value)
        assert "Cannot connect" in str(failure.value)


async def test_a_store_goes_ahead_when_no_status_can_be_verified(tmp_path: Path) -> None:
    async with open_network(tmp_path) as network, network.client() as client:
        for index in (0, 1, 2):  # three different statuses, none from 4 shards

            async def confused(blob_id: Any, total: int = index + 1) -> Any:
                return Deletable(None, DeletableCounts(total, 0))

            network._service(index).blob_status = confused
        with pytest.raises(NoValidStatusError):
            await client.blob_status(encode_blob(b"disputed", 10).metadata.blob_id)
        result = await client.store(b"disputed", epochs=2)
        assert not result.already_certified
        assert result.operation is not None


async def test_delete_by_blob_id_and_by_object_id(tmp_path: Path) -> None:
    async with open_network(tmp_path) as network, network.client() as client:
        one = await client.store(b"copies", epochs=2, deletable=True)
        two = await client.store(b"copies", epochs=3, deletable=True, force=True)
        assert one.object_id != two.object_id
        solo = await client.store(b"solo", epochs=2, deletable=True)
        by_id = await client.delete(blob_id=one.blob_id)
        assert {b.object_id for b in by_id.deleted} == {one.blob.object_id, two.blob.object_id}
        assert by_id.to_json()["blobIdentity"] == {"blobId": str(one.blob_id)}
        assert solo.object_id is not None
        by_object = await client.delete(object_id=solo.object_id)
        assert by_object.to_json()["blobIdentity"]["objectId"].startswith("0x")
        assert not by_object.to_json()["noBlobFound"]
        nothing = await client.delete(blob_id=one.blob_id)
        assert nothing.to_json()["noBlobFound"]
        await network.settle()
        with pytest.raises(ObjectNotFoundError, match="no blob object 0x"):
            await client.delete(object_id=solo.object_id)
        permanent = await client.store(b"permanent", epochs=2, deletable=False)
        assert permanent.object_id is not None
        with pytest.raises(BlobObjectStateError, match="is permanent"):
            await client.delete(object_id=permanent.object_id)
        with pytest.raises(ValueError, match="either blob_id or object_id"):
            await client.delete()


async def test_extend_a_certified_blob(tmp_path: Path) -> None:
    async with open_network(tmp_path) as network, network.client() as client:
        stored = await client.store(b"extend me", epochs=2)
        assert stored.object_id is not None
        extended = await client.extend(stored.object_id, 3)
        assert extended.end_epoch == stored.end_epoch + 3
        assert stored.blob is not None and extended.object_id == stored.object_id
        assert network.chain.blobs[stored.blob.object_id].end_epoch == stored.end_epoch + 3
        units = -(-stored.encoded_length // (1 << 20))
        assert extended.cost == units * 3  # the fake chain's price is 1 per unit and epoch
        assert extended.to_json()["epochsExtended"] == 3
        with pytest.raises(InvalidArgumentError, match="max_epochs_ahead = 53"):
            await client.extend(stored.object_id, 60)
        with pytest.raises(ObjectNotFoundError):
            await client.extend(b"\x01" * 32, 1)
        uncertified = network.chain.register(stored.blob_id, 9, 2)
        with pytest.raises(BlobObjectStateError, match="not certified"):
            await client.extend(uncertified, 1)


async def test_list_blobs_hides_expired_ones_unless_asked(tmp_path: Path) -> None:
    async with open_network(tmp_path) as network, network.client() as client:
        short = await client.store(b"short", epochs=1)
        long = await client.store(b"long", epochs=5)
        listed = await client.list_blobs()
        assert {b.object_id for b in listed} == {short.blob.object_id, long.blob.object_id}
        network.chain.advance_time(3600)
        network.chain.next_epoch()
        assert [b.object_id for b in await client.list_blobs()] == [long.blob.object_id]
        assert len(await client.list_blobs(include_expired=True)) == 2
        assert client.address == ADDRESS


async def test_system_info(tmp_path: Path) -> None:
    async with open_network(tmp_path) as network, network.client() as client:
        info = await client.system_info()
        data = info.to_json()
        assert data["storageInfo"] == {"nShards": 10, "nNodes": 4}
        assert data["bftInfo"] == {
            "f": 3,
            "quorumThreshold": 7,
            "validityThreshold": 4,
            "minNCorrect": 7,
        }
        assert data["epochInfo"]["currentEpoch"] == network.chain.epoch
        assert data["sizeInfo"]["maxBlobSize"] == 4 * 7 * 65534
        assert [n["nShards"] for n in data["committeeInfo"]["storageNodes"]] == [3, 3, 2, 2]
        assert info.cost_of(0, 2) == 1 * (2 + 1)
        assert estimated_epoch_start_s(info.system, info.system.epoch + 2) == (
            info.system.epoch_started_at + 2 * info.system.epoch_duration_s
        )


class ReadOnlyChain:
    """Only the reads of a chain: what a client without a wallet gets."""

    def __init__(self, chain: Any) -> None:
        self._chain = chain

    async def system_info(self) -> Any:
        return await self._chain.system_info()

    async def committee(self) -> Any:
        return await self._chain.committee()

    async def epoch_committees(self) -> Any:
        return await self._chain.epoch_committees()

    async def get_blob(self, object_id: bytes) -> Any:
        return await self._chain.get_blob(object_id)

    async def owned_blobs(self, owner: str) -> Any:
        return await self._chain.owned_blobs(owner)


@contextlib.asynccontextmanager
async def read_only_client(network: Network) -> AsyncIterator[WalrusClient]:
    chain: ChainReader = ReadOnlyChain(network.chain)  # type: ignore[assignment]
    async with open_client(
        make_context(), chain=chain, session=network.cluster.session, encoder=EncoderPool(0)
    ) as client:
        yield client


async def test_a_client_without_a_wallet_reads_but_does_not_write(tmp_path: Path) -> None:
    async with open_network(tmp_path) as network:
        async with network.client() as writer:
            stored = await writer.store(b"public", epochs=2, deletable=False)
        async with read_only_client(network) as reader:
            assert reader.address is None
            assert await reader.read(stored.blob_id) == b"public"
            assert isinstance((await reader.blob_status(stored.blob_id)).status, Permanent)
            assert (await reader.system_info()).committee.n_shards == 10
            assert await reader.blob_id_of(b"public") == stored.blob_id
            calls: list[Callable[[], Awaitable[object]]] = [
                lambda: reader.store(b"x", epochs=1),
                lambda: reader.delete(blob_id=stored.blob_id),
                lambda: reader.extend(b"\x00" * 32, 1),
                reader.list_blobs,
            ]
            for call in calls:
                with pytest.raises(NoWalletError, match="wallet_key_path"):
                    await call()


async def test_rpc_urls_are_tried_in_order_and_failures_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The EVM client itself is tested in tests/chain; here only the failover around it.
    tried: list[tuple[str, bytes | None]] = []

    def fake_open(url: str, deployment: object, key: bytes | None = None, **_: object) -> Any:
        tried.append((url, key))

        @contextlib.asynccontextmanager
        async def opened() -> AsyncIterator[Any]:
            if url != "http://good":
                raise ChainUnavailableError(f"{url}: cannot reach the node")
            yield network.chain

        return opened()

    monkeypatch.setattr(walruspy.client.client, "open_evm_chain", fake_open)
    (tmp_path / "wallet.key").write_text("11" * 32)
    dead = make_context(rpc_urls=("http://dead-1", "http://dead-2"))
    with pytest.raises(ChainUnavailableError, match="no RPC URL of context 'test' answered") as err:
        async with open_client(dead):
            pass
    assert "http://dead-1: cannot reach" in str(err.value)
    assert "http://dead-2: cannot reach" in str(err.value)
    assert [url for url, _ in tried] == ["http://dead-1", "http://dead-2"]
    async with open_network(tmp_path) as network:
        tried.clear()
        context = make_context(
            rpc_urls=("http://dead-1", "http://good", "http://unused"),
            wallet_key_path=tmp_path / "wallet.key",
        )
        async with open_client(context, session=network.cluster.session) as client:
            assert client.address == ADDRESS
            assert (await client.system_info()).committee.n_shards == 10
        assert tried == [("http://dead-1", b"\x11" * 32), ("http://good", b"\x11" * 32)]


async def test_open_client_makes_its_own_session_and_encoder(tmp_path: Path) -> None:
    async with (
        open_network(tmp_path) as network,
        open_client(make_context(), chain=network.chain) as client,
    ):
        stored = await client.store(bytearray(b"own session"), epochs=2)
        assert await client.read(stored.blob_id) == b"own session"
        assert await client.blob_id_of(bytearray(b"own session")) == stored.blob_id
        assert await client.blob_id_of(memoryview(b"own session")) == stored.blob_id
        # A str names a file, as a Path does; one naming no file says so.
        source = tmp_path / "as text.bin"
        source.write_bytes(b"own session")
        assert await client.blob_id_of(str(source)) == stored.blob_id
        with pytest.raises(FileNotFoundError, match="a str names a file; pass bytes"):
            await client.store("not a file but data", epochs=1)
        with pytest.raises(TypeError, match="a blob is bytes or a file path"):
            await client.store(1234, epochs=1)  # type: ignore[arg-type]

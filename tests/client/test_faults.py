"""Byzantine and slow nodes (spec/walrus-system.md 5): forged answers are values, never results.

Same network as test_store_read: four nodes holding 3, 3, 2 and 2 of 10 shards (f = 3, quorum 7,
validity 4, p = 4). Faults are injected by replacing one method of a node's service.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.client.network import TEST_COMMUNICATION, Network, open_network
from tests.node.cluster import blob_data
from walruspy.client.errors import (
    BlobBlockedError,
    NoMetadataReceivedError,
    NotEnoughConfirmationsError,
    NotEnoughSliversError,
)
from walruspy.core.crypto import BlsPrivateKey
from walruspy.core.encoding import encode_blob
from walruspy.core.messages import ConfirmationMessage, SignedMessage
from walruspy.node_api import errors as api_errors

pytestmark = pytest.mark.timeout(60)


def patch(network: Network, index: int, name: str, replacement: Any) -> Any:
    """Replace service method `name` of node `index`; returns the honest one."""
    service = network._service(index)
    honest = getattr(service, name)
    setattr(service, name, replacement)
    return honest


async def test_forged_confirmations_are_rejected(tmp_path: Path) -> None:
    async with open_network(tmp_path) as network, network.client() as client:
        stranger = BlsPrivateKey.from_seed(b"\x09" * 32)
        own_key = network.nodes[1].key

        async def wrong_key(message: ConfirmationMessage) -> SignedMessage:
            return SignedMessage.sign(stranger, message)

        async def wrong_epoch(message: ConfirmationMessage) -> SignedMessage:
            return SignedMessage.sign(own_key, replace(message, epoch=message.epoch + 1))

        patch(network, 0, "sign", wrong_key)
        patch(network, 1, "sign", wrong_epoch)
        # 3 + 3 forged shards leave 4 honest ones: short of the quorum of 7.
        with pytest.raises(NotEnoughConfirmationsError) as failure:
            await client.store(b"forged", epochs=2)
        message = str(failure.value)
        assert "signature does not verify" in message
        assert "message is for epoch 2, expected epoch 1" in message


async def test_one_forger_does_not_stop_a_store(tmp_path: Path) -> None:
    async with open_network(tmp_path) as network, network.client() as client:
        stranger = BlsPrivateKey.from_seed(b"\x0a" * 32)

        async def wrong_key(message: ConfirmationMessage) -> SignedMessage:
            return SignedMessage.sign(stranger, message)

        patch(network, 0, "sign", wrong_key)
        result = await client.store(b"one forger", epochs=2)
        assert "node 0" in result.upload_summary and "signature does not verify" in (
            result.upload_summary
        )
        assert network.chain.blobs[result.blob.object_id].certified_epoch == 1  # type: ignore[union-attr]


async def test_a_node_serving_bad_metadata_is_skipped(tmp_path: Path) -> None:
    async with open_network(tmp_path) as network, network.client() as client:
        stored = await client.store(b"metadata liars", epochs=2)
        other = encode_blob(b"something else", 10).metadata.to_bcs()
        for index in (0, 1, 2):

            async def lying(blob_id: Any) -> bytes:
                return other

            patch(network, index, "get_metadata", lying)
        # Three of four nodes lie; the metadata asked from them fails its check, node 3's wins.
        for _ in range(5):  # the node order is random: any position of the honest one
            assert await client.read(stored.blob_id) == b"metadata liars"


async def test_a_quorum_of_forbidden_answers_means_blocked(tmp_path: Path) -> None:
    async with open_network(tmp_path) as network, network.client() as client:
        stored = await client.store(b"blocked", epochs=2)
        for index in (0, 1, 2):  # 8 shards forbid it, more than the 2 that lack it

            async def forbidden(blob_id: Any) -> bytes:
                raise api_errors.ForbiddenBlobError()

            patch(network, index, "get_metadata", forbidden)

        async def missing(blob_id: Any) -> bytes:
            raise api_errors.MetadataNotFoundError()

        patch(network, 3, "get_metadata", missing)
        with pytest.raises(
            BlobBlockedError, match=r"nodes of [5-8] shards refuse to serve this blob"
        ):
            await client.read(stored.blob_id)


async def test_no_metadata_from_failing_nodes_says_who_failed(tmp_path: Path) -> None:
    async with open_network(tmp_path) as network, network.client() as client:
        stored = await client.store(b"unlucky", epochs=2)
        for index in range(4):

            async def broken(blob_id: Any) -> bytes:
                raise api_errors.InternalServerError()

            patch(network, index, "get_metadata", broken)
        with pytest.raises(NoMetadataReceivedError) as failure:
            await client.read(stored.blob_id)
        message = str(failure.value)
        assert "reached weight 0 of the 1 needed" in message
        assert message.count("INTERNAL_ERROR") == 4


async def test_a_hung_node_delays_a_store_only_by_the_bounded_linger(tmp_path: Path) -> None:
    async with open_network(tmp_path) as network, network.client() as client:
        hung = asyncio.Event()
        for name in ("put_sliver", "put_slivers"):  # one at a time, and the batch route
            honest = getattr(network._service(3), name)

            async def hanging(*args: Any, _honest: Any = honest, **kwargs: Any) -> Any:
                await hung.wait()
                return await _honest(*args, **kwargs)

            patch(network, 3, name, hanging)
        started = time.monotonic()
        result = await client.store(blob_data(12, 5000), epochs=2)
        elapsed = time.monotonic() - started
        hung.set()
        # Quorum without node 3, then 0.5 x (time to quorum) + 0.05 s more for it, then stop.
        assert elapsed < result.phase_s["upload"] * 1.5 + 0.05 + 1.0
        assert "node 3" in result.upload_summary
        assert "still running when the fan-out ended" in result.upload_summary


async def test_a_hung_node_does_not_stall_a_read_and_timeouts_are_named(tmp_path: Path) -> None:
    async with open_network(tmp_path) as network:
        async with network.client() as client:
            data = blob_data(13, 5000)
            stored = await client.store(data, epochs=2)
        never = asyncio.Event()

        async def hanging(*args: Any) -> bytes:
            await never.wait()
            return b""

        patch(network, 0, "get_sliver", hanging)
        patch(network, 0, "get_metadata", hanging)
        quick = replace(TEST_COMMUNICATION, request_timeout_s=0.3)
        async with network.client(communication=quick) as client:
            started = time.monotonic()
            assert await client.read(stored.blob_id) == data
            assert time.monotonic() - started < 5
            for index in (1, 2):
                patch(network, index, "get_sliver", hanging)
            # Node 3 alone holds 2 of the 4 primary slivers needed: every other request times out.
            with pytest.raises(NotEnoughSliversError, match="timed out"):
                await client.read(stored.blob_id)
        never.set()

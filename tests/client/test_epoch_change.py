"""A store that straddles an epoch change gathers its confirmations again for the new epoch.

Same network as test_store_read: four nodes holding 3, 3, 2 and 2 of 10 shards over the fake
chain, which certifies only with a certificate of the current epoch, as the contract does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.client.network import Network, open_network
from tests.node.cluster import blob_data
from walruspy.chain.api import ChainUnavailableError
from walruspy.client.errors import RegistrationExpiredError
from walruspy.core.certificates import Certificate
from walruspy.core.slivers import slivers_from_bcs
from walruspy.devnet import wait_until

pytestmark = pytest.mark.timeout(60)


def count_sliver_uploads(network: Network) -> list[int]:
    """Count the slivers each node's service has answered, one at a time or in batches."""
    counts = [0] * len(network.nodes)
    for index in range(len(network.nodes)):
        service = network._service(index)
        honest, honest_batch = service.put_sliver, service.put_slivers

        async def counted(
            *args: Any, _honest: Any = honest, _index: int = index, **kwargs: Any
        ) -> Any:
            answer = await _honest(*args, **kwargs)
            counts[_index] += 1
            return answer

        async def counted_batch(
            blob_id: Any,
            body: bytes,
            _honest: Any = honest_batch,
            _index: int = index,
            **kwargs: Any,
        ) -> Any:
            answer = await _honest(blob_id, body, **kwargs)
            counts[_index] += len(slivers_from_bcs(body, 1 << 16))
            return answer

        service.put_sliver = counted
        service.put_slivers = counted_batch
    return counts


async def test_an_epoch_change_before_certify_gathers_confirmations_again(
    tmp_path: Path,
) -> None:
    async with open_network(tmp_path) as network, network.client() as client:
        chain = network.chain
        honest_certify = chain.certify_blob
        refused: list[int] = []

        async def all_uploaded() -> bool:
            return sum(uploads) >= 20

        async def epoch_ends_first(object_id: bytes, certificate: Certificate, **_: Any) -> None:
            if not refused:
                # Every node gets its 20 slivers (the upload goes on after the quorum), then
                # the epoch ends: the quorum was for epoch 1, the chain is now in epoch 2.
                await wait_until(all_uploaded, 10, "every sliver uploaded")
                refused.append(chain.epoch)
                chain.next_epoch()
            await honest_certify(object_id, certificate)

        chain.certify_blob = epoch_ends_first  # type: ignore[method-assign]
        uploads = count_sliver_uploads(network)
        data = blob_data(41, 5000)
        result = await client.store(data, epochs=3)
        assert refused == [1]
        record = chain.blobs[result.blob.object_id]  # type: ignore[union-attr]
        assert record.certified_epoch == 2 and result.blob.certified_epoch == 2  # type: ignore[union-attr]
        # the second round asked for confirmations; nothing was uploaded twice
        assert uploads == [6, 6, 4, 4]
        assert await client.read(result.blob_id) == data


async def test_nodes_in_a_newer_epoch_than_the_client_expected(tmp_path: Path) -> None:
    """The epoch changes right after registering: nodes sign for epoch 2, the client asked 1."""
    async with open_network(tmp_path) as network, network.client() as client:
        chain = network.chain
        honest_register = chain.reserve_and_register

        async def then_epoch_ends(**kwargs: Any) -> Any:
            registration = await honest_register(**kwargs)
            chain.next_epoch()
            await network.settle()
            return registration

        chain.reserve_and_register = then_epoch_ends  # type: ignore[method-assign]
        data = blob_data(42, 3000)
        result = await client.store(data, epochs=3)
        assert chain.blobs[result.blob.object_id].certified_epoch == 2  # type: ignore[union-attr]
        assert await client.read(result.blob_id) == data


async def test_a_registration_that_ends_with_the_epoch_is_reported(tmp_path: Path) -> None:
    async with open_network(tmp_path) as network, network.client() as client:
        chain = network.chain
        honest_certify = chain.certify_blob

        async def epoch_ends_first(object_id: bytes, certificate: Certificate, **_: Any) -> None:
            chain.next_epoch()
            await honest_certify(object_id, certificate)

        chain.certify_blob = epoch_ends_first  # type: ignore[method-assign]
        with pytest.raises(RegistrationExpiredError, match="registered until epoch 2"):
            await client.store(blob_data(43, 2000), epochs=1)


async def test_a_chain_outage_at_certify_is_waited_out(tmp_path: Path) -> None:
    """Every upload is done when the chain stops answering: the certificate is posted again
    once it answers, and a retry whose first attempt had landed finds the blob certified."""
    async with open_network(tmp_path) as network, network.client() as client:
        chain = network.chain
        honest_certify = chain.certify_blob
        calls: list[str] = []

        async def flaky(object_id: bytes, certificate: Certificate, **_: Any) -> None:
            calls.append("certify")
            if len(calls) == 1:
                raise ChainUnavailableError("the RPC endpoint is down")
            if len(calls) == 2:
                # Lands, but the answer is lost: the client sees an outage again.
                await honest_certify(object_id, certificate)
                raise ChainUnavailableError("connection reset after sending")
            await honest_certify(object_id, certificate)  # reverts: already certified

        chain.certify_blob = flaky  # type: ignore[method-assign]
        data = blob_data(43, 4000)
        result = await client.store(data, epochs=3)
        assert calls == ["certify"] * 3
        assert result.blob is not None and result.blob.certified_epoch == 1
        assert await client.read(result.blob_id) == data

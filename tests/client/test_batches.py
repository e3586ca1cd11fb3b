"""Batches: the client's sliver uploads and reads, one request per node, and their fallback to
Walrus's routes of one sliver; the upload started with the registration; detached tails."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.client.network import TEST_COMMUNICATION, Network, make_context, open_network
from tests.node.cluster import blob_data
from walruspy.client import open_client
from walruspy.client import store as store_module
from walruspy.core.slivers import slivers_from_bcs
from walruspy.node import api
from walruspy.node_api import errors as api_errors
from walruspy.node_api import paths
from walruspy.node_api.client import NodeClient
from walruspy.workers import EncoderPool

N_SHARDS = 10  # open_network's (3, 3, 2, 2)


def count_uploads(network: Network) -> dict[str, int]:
    """Requests and slivers each route of the nodes' services has answered."""
    counts = {"single": 0, "batches": 0, "batched slivers": 0}
    for index in range(len(network.nodes)):
        service = network._service(index)
        single, batch = service.put_sliver, service.put_slivers

        async def one(*args: Any, _honest: Any = single, **kwargs: Any) -> Any:
            counts["single"] += 1
            return await _honest(*args, **kwargs)

        async def many(blob_id: Any, body: bytes, _honest: Any = batch, **kwargs: Any) -> Any:
            counts["batches"] += 1
            counts["batched slivers"] += len(slivers_from_bcs(body, 1 << 16))
            return await _honest(blob_id, body, **kwargs)

        service.put_sliver, service.put_slivers = one, many
    return counts


def register_after(network: Network, event: asyncio.Event) -> None:
    """The registering transaction returns only after `event` (at most 10 s)."""
    honest = network.chain.reserve_and_register

    async def later(**kwargs: Any) -> Any:
        await asyncio.wait_for(event.wait(), 10)
        return await honest(**kwargs)

    network.chain.reserve_and_register = later  # type: ignore[method-assign]


async def test_a_node_gets_its_slivers_in_one_request(tmp_path: Path) -> None:
    async with open_network(tmp_path) as network, network.client() as client:
        counts = count_uploads(network)
        data = blob_data(1, 20_000)
        result = await client.store(data, epochs=2)
        assert await client.read(result.blob_id) == data
    # Four nodes, one request each, every sliver pair of the blob once.
    assert counts == {"single": 0, "batches": 4, "batched slivers": 2 * N_SHARDS}


async def test_large_slivers_go_in_several_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "BATCH_BYTES", 3000)
    async with open_network(tmp_path) as network, network.client() as client:
        counts = count_uploads(network)
        data = blob_data(2, 40_000)
        result = await client.store(data, epochs=2)
        assert await client.read(result.blob_id) == data
    assert counts["batched slivers"] + counts["single"] == 2 * N_SHARDS
    assert counts["batches"] + counts["single"] > 4


async def test_a_node_without_the_batch_route_gets_one_sliver_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nodes that serve only Walrus's routes, as a Walrus node does.
    monkeypatch.setattr(
        api, "SERVED_ROUTES", tuple(r for r in api.SERVED_ROUTES if r not in paths.BATCH_ROUTES)
    )
    async with open_network(tmp_path) as network, network.client() as client:
        counts = count_uploads(network)
        for seed in (3, 4):  # the second store knows at once that there are no batches
            data = blob_data(seed, 20_000)
            result = await client.store(data, epochs=2)
            assert await client.read(result.blob_id) == data
    assert counts == {"single": 2 * 2 * N_SHARDS, "batches": 0, "batched slivers": 0}


async def test_the_upload_starts_with_the_registration(tmp_path: Path) -> None:
    async with open_network(tmp_path) as network, network.client() as client:
        first_metadata = asyncio.Event()
        for index in range(len(network.nodes)):
            service = network._service(index)

            async def seen(*args: Any, _honest: Any = service.put_metadata, **kwargs: Any) -> Any:
                first_metadata.set()
                return await _honest(*args, **kwargs)

            service.put_metadata = seen

        register_after(network, first_metadata)  # once a node has been sent the metadata
        data = blob_data(5, 20_000)
        result = await client.store(data, epochs=2)
        assert await client.read(result.blob_id) == data
        assert result.phase_s["register"] > 0


async def test_an_early_upload_that_fails_is_done_again(tmp_path: Path) -> None:
    async with open_network(tmp_path) as network, network.client() as client:
        service = network._service(0)
        honest_put, failed = service.put_metadata, asyncio.Event()

        async def broken_once(*args: Any, **kwargs: Any) -> Any:
            if not failed.is_set():
                failed.set()
                raise api_errors.InternalServerError("a fault for the test")
            return await honest_put(*args, **kwargs)

        service.put_metadata = broken_once

        register_after(network, failed)
        data = blob_data(6, 20_000)
        result = await client.store(data, epochs=2)
        assert await client.read(result.blob_id) == data
        # Node 0 got its slivers after all, so it confirmed: every node is in the certificate.
        assert "failed" not in result.upload_summary


async def test_a_detached_store_returns_once_certified(tmp_path: Path) -> None:
    async with open_network(tmp_path) as network:
        hung = asyncio.Event()
        for name in ("put_sliver", "put_slivers"):
            honest = getattr(network._service(3), name)

            async def hanging(*args: Any, _honest: Any = honest, **kwargs: Any) -> Any:
                await hung.wait()
                return await _honest(*args, **kwargs)

            setattr(network._service(3), name, hanging)
        async with open_client(
            make_context(),
            chain=network.chain,
            session=network.cluster.session,
            encoder=EncoderPool(0),
            detach_tails=True,
        ) as client:
            result = await client.store(blob_data(7, 20_000), epochs=2)
            assert result.blob is not None
            assert network.chain.blobs[result.blob.object_id].certified_epoch is not None
            # Node 3 still has its upload going: the store did not wait for it.
            assert len(client.env.tails) == 1
            hung.set()
        assert len(client.env.tails) == 0  # closing the client waited for it
        assert await network._service(3).is_stored_at_all_shards(result.blob_id)


def count_reads(network: Network) -> dict[str, int]:
    """Batch reads and single sliver reads the nodes answered."""
    counts = {"single": 0, "batches": 0}
    for index in range(len(network.nodes)):
        service = network._service(index)
        batch = service.get_slivers

        async def many(*args: Any, _honest: Any = batch) -> Any:
            counts["batches"] += 1
            return await _honest(*args)

        service.get_slivers = many
    return counts


async def test_a_read_asks_each_node_once(tmp_path: Path) -> None:
    async with open_network(tmp_path) as network, network.client() as client:
        data = blob_data(8, 30_000)
        result = await client.store(data, epochs=2)
        counts = count_reads(network)
        assert await client.read(result.blob_id) == data
    # The 4 primary source slivers live on at most 4 nodes: one batch each at most.
    assert 1 <= counts["batches"] <= 4


async def test_metadata_reads_that_lose_the_race_keep_their_connections(
    tmp_path: Path,
) -> None:
    async with open_network(tmp_path) as network, network.client() as client:
        data = blob_data(9, 20_000)
        result = await client.store(data, epochs=2)
        # Node i answers metadata after i x 50 ms: of the three nodes asked at once, one wins
        # and the others are still working when the read has its metadata.
        for index in range(len(network.nodes)):
            honest = network._service(index).get_metadata

            async def slow(blob_id: Any, _honest: Any = honest, _s: float = 0.05 * index) -> Any:
                await asyncio.sleep(_s)
                return await _honest(blob_id)

            network._service(index).get_metadata = slow
        connector = network.cluster.session.connector
        assert connector is not None
        opened = 0
        create = connector._create_connection

        async def counted(*args: Any, **kwargs: Any) -> Any:
            nonlocal opened
            opened += 1
            return await create(*args, **kwargs)

        connector._create_connection = counted  # type: ignore[method-assign]
        opened_by_read = []
        for _ in range(8):
            assert await client.read(result.blob_id) == data
            await client.env.tails.settled()  # the losers finish in the background
            opened_by_read.append(opened)
        # A node may need a second connection, for its sliver batch while a losing metadata
        # read still runs: once. A cancelled metadata read would close its connection, and
        # the next read of that node open one again (two a read, before the losers finished).
        assert opened_by_read[-1] - opened_by_read[0] <= len(network.nodes), opened_by_read


async def test_a_read_asks_for_other_slivers_only_what_a_failed_node_held(
    tmp_path: Path,
) -> None:
    # Each node is asked for its source slivers in one request; when one fails, the others
    # are asked for repair slivers only while those in flight cannot cover what is missing.
    async with open_network(tmp_path) as network, network.client() as client:
        data = blob_data(10, 30_000)
        result = await client.store(data, epochs=2)
        asked: list[tuple[int, list[int]]] = []
        for index in range(len(network.nodes)):
            service = network._service(index)

            async def many(
                blob_id: Any,
                pairs: Any,
                sliver_type: Any,
                _honest: Any = service.get_slivers,
                _index: int = index,
            ) -> Any:
                asked.append((_index, [int(pair) for pair in pairs]))
                if asked[0][0] == _index:  # the node asked first is down
                    raise api_errors.UnavailableError("down for the test")
                return await _honest(blob_id, pairs, sliver_type)

            service.get_slivers = many
        assert await client.read(result.blob_id) == data
    pairs = [pair for _, batch in asked for pair in batch]
    assert len(set(pairs)) == len(pairs)  # no sliver asked twice
    assert len(pairs) < 10  # not every sliver of the n = 10


async def test_a_stream_asks_each_node_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The aggregator streams row by row: the rows it fetches together go in one batch per node.
    singles: list[int] = []
    honest = NodeClient.get_sliver

    async def single(self: NodeClient, *args: Any, **kwargs: Any) -> Any:
        singles.append(1)
        return await honest(self, *args, **kwargs)

    monkeypatch.setattr(NodeClient, "get_sliver", single)
    async with open_network(tmp_path) as network, network.client() as client:
        data = blob_data(14, 30_000)
        result = await client.store(data, epochs=2)
        counts = count_reads(network)
        reader = await client.locate(result.blob_id)
        assert b"".join([chunk async for chunk in reader.chunks()]) == data
    assert 1 <= counts["batches"] <= 4 and singles == []


async def test_a_node_without_the_batch_read_gets_single_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch_read = next(r for r in paths.BATCH_ROUTES if r.method == "GET")
    served = tuple(r for r in api.SERVED_ROUTES if r != batch_read)
    monkeypatch.setattr(api, "SERVED_ROUTES", served)
    async with open_network(tmp_path) as network, network.client() as client:
        data = blob_data(9, 30_000)
        result = await client.store(data, epochs=2)
        singles = 0
        for index in range(len(network.nodes)):
            service = network._service(index)

            async def one(*args: Any, _honest: Any = service.get_sliver) -> Any:
                nonlocal singles
                singles += 1
                return await _honest(*args)

            service.get_sliver = one
        for _ in range(2):  # the second read knows at once that there are no batches
            assert await client.read(result.blob_id) == data
    assert singles >= 2 * 4  # 4 primary source slivers per read, one request each


def pending_flags(network: Network) -> list[bool]:
    """The `pending` flag of every metadata upload the nodes answered."""
    flags: list[bool] = []
    for index in range(len(network.nodes)):
        service = network._service(index)

        async def noted(*args: Any, _honest: Any = service.put_metadata, **kwargs: Any) -> Any:
            flags.append(kwargs.get("pending", False))
            return await _honest(*args, **kwargs)

        service.put_metadata = noted
    return flags


async def test_a_small_blob_goes_as_pending_uploads_and_a_large_one_does_not(
    tmp_path: Path,
) -> None:
    async with open_network(tmp_path) as network:
        flags = pending_flags(network)
        limits = replace(TEST_COMMUNICATION, pending_upload_max_blob_bytes=10_000)
        async with network.client(communication=limits) as client:
            small = await client.store(blob_data(10, 10_000), epochs=2)
            assert flags == [True] * 4
            flags.clear()
            large = await client.store(blob_data(11, 10_001), epochs=2)
            # Sent after NOT_REGISTERED answers too: these nodes do not wait for the event.
            assert len(flags) >= 4 and not any(flags)
            assert await client.read(small.blob_id) == blob_data(10, 10_000)
            assert await client.read(large.blob_id) == blob_data(11, 10_001)
        flags.clear()
        limits = replace(TEST_COMMUNICATION, pending_uploads=False)
        async with network.client(communication=limits) as client:
            await client.store(blob_data(12, 100), epochs=2)
        assert len(flags) >= 4 and not any(flags)


async def test_a_node_that_lost_its_pending_upload_gets_it_again(tmp_path: Path) -> None:
    async with open_network(tmp_path) as network, network.client() as client:
        await network.stop(3)  # the other three hold exactly a quorum: node 0 must confirm
        service = network._service(0)
        held = service.pending
        honest_take = held.take

        def forgetful(blob_id: Any) -> Any:
            metadata, _ = honest_take(blob_id)
            return metadata, []  # the slivers are lost (as by a restart)

        held.take = forgetful  # type: ignore[method-assign]
        uploads = count_uploads(network)
        counted, was_held = service.put_slivers, asyncio.Event()

        async def holding(*args: Any, **kwargs: Any) -> Any:
            answer = await counted(*args, **kwargs)
            if answer.code == 202:
                was_held.set()
            return answer

        service.put_slivers = holding
        register_after(network, was_held)  # node 0 holds its slivers when the blob registers
        data = blob_data(13, 20_000)
        result = await client.store(data, epochs=2)
        assert "node 0" not in result.upload_summary  # it confirmed, after a second upload
        assert uploads["batches"] == 3 + 1
        assert await service.is_stored_at_all_shards(result.blob_id)
        assert await client.read(result.blob_id) == data

"""Reads during an epoch change: older blobs from the previous committee first (spec 1.3, 2.2).

The choice itself (`read_committees`) is a pure function and tested on its own. The reads run on
the network of test_store_read (four nodes holding 3, 3, 2 and 2 of 10 shards) through a chain
that reports chosen `EpochCommittees`. The nodes hold their shards as the fake chain assigned
them; a "shifted" committee gives every node the shards of another one, so a node asked for a
sliver in a shifted committee answers SHARD_NOT_ASSIGNED. Spies on the nodes record every sliver
request (which node, whether it was served) and every status request, which shows which
committee a read asked and in what order.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from tests.client.network import Network, make_context, open_network
from tests.node.cluster import blob_data
from walruspy.chain.api import EpochCommittees
from walruspy.client import WalrusClient, open_client
from walruspy.client.errors import BlobInvalidError, NotEnoughSliversError
from walruspy.client.read import previous_read_committee, read_committees
from walruspy.core.blob_id import BlobId
from walruspy.core.committee import Committee, CommitteeMember
from walruspy.core.crypto import BlsPrivateKey
from walruspy.workers import EncoderPool

pytestmark = pytest.mark.timeout(60)

# --- the choice -------------------------------------------------------------------------------

KEYS = [BlsPrivateKey.from_seed(bytes([i + 1]) * 32) for i in range(4)]


def members(shard_lists: list[list[int]]) -> tuple[CommitteeMember, ...]:
    return tuple(
        CommitteeMember(
            hashlib.blake2b(bytes([index]), digest_size=32).digest(),
            KEYS[index].public_key(),
            f"node-{index}:1",
            tuple(shards),
        )
        for index, shards in enumerate(shard_lists)
    )


OLD = members([[0, 1, 2], [3, 4, 5], [6, 7], [8, 9]])
NEW = members([[3, 4, 5], [0, 1, 2], [8, 9], [6, 7]])
CURRENT = Committee(5, 10, NEW)
PREVIOUS = Committee(4, 10, OLD)


def epochs(committees: list[Committee]) -> list[int]:
    return [committee.epoch for committee in committees]


@pytest.mark.parametrize("certified_epoch", [0, 3, 4])
def test_during_a_change_an_older_blob_goes_to_the_previous_committee_first(
    certified_epoch: int,
) -> None:
    committees = EpochCommittees(CURRENT, PREVIOUS, changing=True)
    assert read_committees(committees, certified_epoch) == [PREVIOUS, CURRENT]


@pytest.mark.parametrize("certified_epoch", [5, 6, None])
def test_during_a_change_a_blob_of_this_epoch_or_unknown_goes_to_the_current_one(
    certified_epoch: int | None,
) -> None:
    committees = EpochCommittees(CURRENT, PREVIOUS, changing=True)
    assert read_committees(committees, certified_epoch) == [CURRENT]


@pytest.mark.parametrize("certified_epoch", [0, 4, 5, None])
def test_outside_a_change_every_blob_goes_to_the_current_committee(
    certified_epoch: int | None,
) -> None:
    committees = EpochCommittees(CURRENT, PREVIOUS, changing=False)
    assert read_committees(committees, certified_epoch) == [CURRENT]
    assert previous_read_committee(committees) is None


def test_without_a_previous_committee_the_current_one_is_read() -> None:
    committees = EpochCommittees(CURRENT, None, changing=True)
    assert read_committees(committees, 1) == [CURRENT]
    assert previous_read_committee(committees) is None


def test_a_previous_committee_with_the_same_shard_owners_is_not_read_twice() -> None:
    same = EpochCommittees(CURRENT, Committee(4, 10, NEW), changing=True)
    assert previous_read_committee(same) is None
    assert epochs(read_committees(same, 4)) == [5]
    moved = EpochCommittees(CURRENT, PREVIOUS, changing=True)
    assert previous_read_committee(moved) is PREVIOUS


# --- reads on the network ---------------------------------------------------------------------


@dataclass
class Spies:
    """Every sliver request (node index, served?) and the status requests each node answered."""

    slivers: list[tuple[int, bool]] = field(default_factory=list)
    statuses: int = 0
    metadata: int = 0
    #: Sliver requests the nodes are still answering: a read returns once it can decode, while
    #: the nodes may still answer the requests it no longer needs.
    in_flight: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    def failed(self) -> list[tuple[int, bool]]:
        return [entry for entry in self.slivers if not entry[1]]

    async def quiet(self, timeout_s: float = 10.0) -> None:
        """Wait until no sliver request is being answered (a read's stragglers are counted)."""
        if self.in_flight:
            async with asyncio.timeout(timeout_s):
                await self.idle.wait()

    def reset(self) -> None:
        self.slivers.clear()
        self.statuses = 0
        self.metadata = 0


def spy_on(network: Network) -> Spies:
    spies = Spies()
    for index in range(len(network.nodes)):
        service = network._service(index)
        get_sliver, blob_status, get_metadata = (
            service.get_sliver,
            service.blob_status,
            service.get_metadata,
        )

        async def sliver(*args: Any, _honest: Any = get_sliver, _index: int = index) -> Any:
            spies.in_flight += 1
            spies.idle.clear()
            try:
                answer = await _honest(*args)
            except Exception:
                spies.slivers.append((_index, False))
                raise
            finally:
                spies.in_flight -= 1
                if not spies.in_flight:
                    spies.idle.set()
            spies.slivers.append((_index, True))
            return answer

        async def batch(*args: Any, _honest: Any = service.get_slivers) -> Any:
            # A batch read answers sliver by sliver: it is in flight until its last one.
            spies.in_flight += 1
            spies.idle.clear()
            try:
                return await _honest(*args)
            finally:
                spies.in_flight -= 1
                if not spies.in_flight:
                    spies.idle.set()

        async def status(*args: Any, _honest: Any = blob_status) -> Any:
            spies.statuses += 1
            return await _honest(*args)

        async def metadata(*args: Any, _honest: Any = get_metadata) -> Any:
            spies.metadata += 1
            return await _honest(*args)

        service.get_sliver = sliver
        service.get_slivers = batch
        service.blob_status = status
        service.get_metadata = metadata
    return spies


def shifted(committee: Committee, epoch: int, by: int) -> Committee:
    """The same nodes, each given the shards node (i + by) holds in `committee`."""
    nodes = committee.members
    moved = [
        replace(member, shards=nodes[(index + by) % len(nodes)].shards)
        for index, member in enumerate(nodes)
    ]
    return Committee(epoch, committee.n_shards, tuple(moved))


class ChangingChain:
    """The network's chain, reporting `committees` as the current and previous committees."""

    def __init__(self, chain: Any, committees: EpochCommittees) -> None:
        self._chain = chain
        self.committees = committees

    async def epoch_committees(self) -> EpochCommittees:
        return self.committees

    async def committee(self) -> Committee:
        return self.committees.current

    def __getattr__(self, name: str) -> Any:
        return getattr(self._chain, name)


@contextlib.asynccontextmanager
async def reader(network: Network, committees: EpochCommittees) -> AsyncIterator[WalrusClient]:
    chain: Any = ChangingChain(network.chain, committees)
    async with open_client(
        make_context(), chain=chain, session=network.cluster.session, encoder=EncoderPool(0)
    ) as client:
        yield client


async def stored_blob(network: Network, data: bytes) -> tuple[BlobId, Committee]:
    """Store `data` in the chain's epoch; the committee that holds it."""
    async with network.client() as client:
        result = await client.store(data, epochs=3)
    await network.settle()
    assert result.blob is not None and result.blob.certified_epoch == network.chain.epoch
    return result.blob_id, await network.chain.committee()


async def test_an_older_blob_is_read_from_the_previous_committee_during_a_change(
    tmp_path: Path,
) -> None:
    async with open_network(tmp_path) as network:
        data = blob_data(7, 20_000)
        blob_id, holders = await stored_blob(network, data)
        epoch = holders.epoch
        # The shards moved at the change to epoch + 1; the new owners have not synced them.
        moved = shifted(holders, epoch + 1, 1)
        spies = spy_on(network)
        changing = EpochCommittees(moved, holders, changing=True)
        async with reader(network, changing) as client:
            assert await client.read(blob_id) == data
        # the status was asked (for the certified epoch), then only the old owners for slivers
        assert spies.statuses > 0
        assert spies.slivers and spies.failed() == []

        # Once the change is done, the current committee is asked (and here, lacking the
        # slivers, fails): which committee is asked is what made the read above succeed.
        await spies.quiet()  # the first read's last requests may still be answered
        spies.reset()
        done = EpochCommittees(moved, holders, changing=False)
        async with reader(network, done) as client:
            with pytest.raises(NotEnoughSliversError, match=f"committee of epoch {epoch + 1}"):
                await client.read(blob_id)
        assert spies.slivers and all(not served for _, served in spies.slivers)


async def test_a_failed_read_from_the_previous_committee_falls_back_to_the_current_one(
    tmp_path: Path,
) -> None:
    async with open_network(tmp_path) as network:
        data = blob_data(8, 20_000)
        blob_id, holders = await stored_blob(network, data)
        epoch = holders.epoch
        # The previous committee (as the chain reports it) is not where the slivers are; the
        # current one is.
        previous = shifted(holders, epoch, 1)
        current = Committee(epoch + 1, holders.n_shards, holders.members)
        spies = spy_on(network)
        async with reader(network, EpochCommittees(current, previous, changing=True)) as client:
            assert await client.read(blob_id) == data
        failed = spies.failed()
        assert failed, "the previous committee was not asked first"
        # Every request to the previous committee failed, and all of them came before the
        # first request to the current committee.
        first_served = next(i for i, (_, served) in enumerate(spies.slivers) if served)
        assert spies.slivers[:first_served] == failed
        assert all(served for _, served in spies.slivers[first_served:])
        assert len(spies.slivers) - first_served >= 4  # n - 2f primary slivers


async def test_when_both_committees_fail_the_current_ones_error_is_raised(
    tmp_path: Path,
) -> None:
    async with open_network(tmp_path) as network:
        blob_id, holders = await stored_blob(network, blob_data(9, 3000))
        epoch = holders.epoch
        committees = EpochCommittees(
            shifted(holders, epoch + 1, 2), shifted(holders, epoch, 1), changing=True
        )
        spy_on(network)
        async with reader(network, committees) as client:
            with pytest.raises(
                NotEnoughSliversError, match=f"committee of epoch {epoch + 1}"
            ) as raised:
                await client.read(blob_id)
        notes = getattr(raised.value, "__notes__", [])
        assert any(f"previous committee (epoch {epoch})" in note for note in notes)


async def test_outside_a_change_no_status_is_asked_and_the_current_committee_is_read(
    tmp_path: Path,
) -> None:
    async with open_network(tmp_path) as network:
        data = blob_data(10, 5000)
        blob_id, holders = await stored_blob(network, data)
        epoch = holders.epoch
        current = Committee(epoch + 1, holders.n_shards, holders.members)
        wrong_previous = shifted(holders, epoch, 1)
        spies = spy_on(network)
        cases = [
            # no change underway: the previous committee is never asked
            EpochCommittees(current, wrong_previous, changing=False),
            # a change without a previous committee: nothing to choose, no status needed
            EpochCommittees(current, None, changing=True),
        ]
        for committees in cases:
            await spies.quiet()
            spies.reset()
            async with reader(network, committees) as client:
                assert await client.read(blob_id) == data
            assert spies.statuses == 0
            assert spies.slivers and spies.failed() == []


async def test_during_a_change_a_blob_of_the_current_epoch_is_read_from_the_current_committee(
    tmp_path: Path,
) -> None:
    async with open_network(tmp_path) as network:
        data = blob_data(11, 5000)
        blob_id, holders = await stored_blob(network, data)
        epoch = holders.epoch
        # The blob was certified in the current epoch: the previous committee's assignment
        # (which would fail) is not used.
        committees = EpochCommittees(holders, shifted(holders, epoch - 1, 1), changing=True)
        spies = spy_on(network)
        async with reader(network, committees) as client:
            assert await client.read(blob_id) == data
        assert spies.statuses > 0
        assert spies.slivers and spies.failed() == []


async def test_a_blob_marked_invalid_ends_a_read_during_a_change_at_once(tmp_path: Path) -> None:
    async with open_network(tmp_path) as network:
        blob_id, holders = await stored_blob(network, b"to be invalidated")
        network.chain.invalidate(blob_id)
        await network.settle()
        epoch = holders.epoch
        committees = EpochCommittees(shifted(holders, epoch + 1, 1), holders, changing=True)
        spies = spy_on(network)
        async with reader(network, committees) as client:
            with pytest.raises(BlobInvalidError, match="marked invalid on chain"):
                await client.read(blob_id)
        assert spies.statuses > 0
        assert spies.metadata == 0 and spies.slivers == []

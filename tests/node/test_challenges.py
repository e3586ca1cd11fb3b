"""Storage challenges between in-process nodes over the fake chain (node/challenges.py).

Four nodes hold 3, 3, 2 and 2 of 10 shards (a quorum is 7 shards). Honest nodes prove their
samples to each other and post their certificates; a node that discards its slivers is refused
every attestation, and so is one that tries to fetch them back when the challenge starts: its
peers withhold the symbols of challenged blobs while the challenge is open.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.node.cluster import Cluster, blob_data, open_cluster, runs
from walruspy.core.challenge import challenge_positions, sample_size
from walruspy.core.types import SliverPairIndex, SliverType
from walruspy.node.challenges import derive_record
from walruspy.node.faults import FaultMode, write_fault
from walruspy.node_api import errors as api_errors
from walruspy.node_api.paths import RecoverySymbolsForSliver

pytestmark = pytest.mark.timeout(120)

SEED = bytes(range(32))
A, B = b"\x0a" * 32, b"\x0b" * 32


def test_positions_are_deterministic_distinct_and_bounded() -> None:
    blobs = [bytes([i]) * 32 for i in range(50)]
    kwargs = {
        "sample": blobs,
        "shards_challenged": range(0, 30),
        "shards_verifier": range(30, 60),
        "n_shards": 100,
        "count": 1669,
    }
    first = challenge_positions(SEED, A, B, **kwargs)  # type: ignore[arg-type]
    again = challenge_positions(SEED, A, B, **{**kwargs, "sample": blobs[::-1]})  # type: ignore[arg-type]
    assert first == again and len(first) == len(set(first)) == 1669
    assert {blob for blob, _ in first} <= set(blobs)
    assert challenge_positions(SEED, B, A, **kwargs) != first  # type: ignore[arg-type]
    assert challenge_positions(bytes(32), A, B, **kwargs) != first  # type: ignore[arg-type]
    # Few crossings: every one of them, both axes.
    small = challenge_positions(
        SEED,
        A,
        B,
        sample=blobs[:2],
        shards_challenged=[0, 1],
        shards_verifier=[5],
        n_shards=10,
        count=1669,
    )
    assert len(small) == 2 * 2 * 1 * 2
    assert {i.source_axis for _, i in small} == {SliverType.PRIMARY, SliverType.SECONDARY}
    assert challenge_positions(SEED, A, B, sample=[], shards_challenged=[0],
                               shards_verifier=[1], n_shards=10, count=1669) == []  # fmt: skip


async def start_challenge(cluster: Cluster) -> None:
    assert await cluster.chain.schedule_challenge()
    assert await cluster.chain.start_challenge()


async def wait_passed(cluster: Cluster, expected: set[bytes], failed: bytes | None) -> None:
    """Wait until exactly `expected` passed and every honest node refused `failed`."""
    async with asyncio.timeout(60):
        while True:
            state = await cluster.chain.challenge_state(cluster.chain.epoch)
            refused = failed is None or all(
                failed in runs(node).challenges.failures
                for node in cluster.nodes
                if node.member.node_id != failed
            )
            if set(state.passed) == expected and refused:
                return
            await asyncio.sleep(0.05)


async def wait_discarded(cluster: Cluster, index: int, blob_ids: list[bytes]) -> None:
    """Wait until the faulty node dropped every sliver it acknowledged."""
    node = cluster.nodes[index]
    store = runs(node).store

    def holds_any() -> bool:
        return any(
            store.has_sliver(shard, sliver_type, blob_id)
            for blob_id in blob_ids
            for shard in node.shards
            for sliver_type in SliverType
        )

    async with asyncio.timeout(30):
        while holds_any():  # noqa: ASYNC110 - the node's store, polled
            await asyncio.sleep(0.05)


def faulty(cluster: Cluster, index: int, tmp_path: Path, mode: FaultMode) -> None:
    path = tmp_path / f"fault{index}.json"
    write_fault(path, mode)
    node = cluster.nodes[index]
    node.config = replace(node.config, fault_file=path)


async def test_honest_nodes_pass_and_a_discarding_node_fails(tmp_path: Path) -> None:
    async with open_cluster(tmp_path, (3, 3, 2, 2), start=False) as cluster:
        faulty(cluster, 3, tmp_path, FaultMode.DISCARD)
        for node in cluster.nodes:
            await cluster.start(node)
        stored = [await cluster.store_blob(blob_data(i, 5_000 + 700 * i)) for i in range(3)]
        await wait_discarded(cluster, 3, [e.metadata.blob_id.raw for e, _ in stored])
        await start_challenge(cluster)
        honest = {node.member.node_id for node in cluster.nodes[:3]}
        await wait_passed(cluster, honest, cluster.nodes[3].member.node_id)
        state = await cluster.chain.challenge_state(cluster.chain.epoch)
        assert set(state.passed.values()) == {3}  # three certified blobs, all sampled
        # The challenge stays open (node 3 is not certified): symbols of challenged blobs are
        # withheld from everyone.
        blob = stored[0][0].metadata.blob_id
        with pytest.raises(api_errors.UnavailableError, match="storage challenge"):
            await cluster.client(cluster.nodes[0]).recovery_symbols(
                blob, RecoverySymbolsForSliver(SliverPairIndex(0), SliverType.PRIMARY)
            )
        given = runs(cluster.nodes[0]).challenges.attestations
        assert set(given) == honest  # itself and the two other honest nodes


async def test_a_node_fetching_at_challenge_time_fails(tmp_path: Path) -> None:
    async with open_cluster(tmp_path, (3, 3, 2, 2), start=False) as cluster:
        faulty(cluster, 2, tmp_path, FaultMode.FETCH_AT_CHALLENGE)
        for node in cluster.nodes:
            await cluster.start(node)
        stored = [await cluster.store_blob(blob_data(10 + i, 4_000)) for i in range(2)]
        await wait_discarded(cluster, 2, [e.metadata.blob_id.raw for e, _ in stored])
        await start_challenge(cluster)
        honest = {node.member.node_id for i, node in enumerate(cluster.nodes) if i != 2}
        await wait_passed(cluster, honest, cluster.nodes[2].member.node_id)
        # It tried: its blob syncs ran and were refused the symbols.
        refused = sum(
            runs(node).service.metrics.challenge_symbols_refused._value.get()
            for node in cluster.nodes
        )
        assert refused > 0


async def test_a_failed_round_costs_the_challenge_not_the_node(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_cluster(tmp_path, (3, 3, 2, 2)) as cluster:
        await cluster.store_blob(blob_data(20, 3_000))
        unlucky = cluster.nodes[1].member.node_id
        certify = cluster.chain.certify_challenge

        async def certify_or_fail(node_id: bytes, *args: Any, **kwargs: Any) -> None:
            if node_id == unlucky:
                raise RuntimeError("a defect in the chain layer")
            await certify(node_id, *args, **kwargs)

        monkeypatch.setattr(cluster.chain, "certify_challenge", certify_or_fail)
        await start_challenge(cluster)
        others = {node.member.node_id for node in cluster.nodes} - {unlucky}
        await wait_passed(cluster, others, None)
        node = cluster.nodes[1]
        assert node.task is not None and not node.task.done()
        # It still attests for the others and serves requests.
        assert set(runs(cluster.nodes[1]).challenges.attestations) >= others
        await cluster.client(node).health()


def test_every_node_derives_the_same_record() -> None:
    from tests.node.cluster import make_members
    from walruspy.core.committee import Committee

    _, members = make_members((3, 3, 2, 2), (1, 2, 3, 4))
    committee = Committee(1, 10, tuple(members))
    blobs = [i.to_bytes(2, "big") * 16 for i in range(3000)]
    record = derive_record(1, SEED, committee, blobs)
    assert record == derive_record(1, SEED, committee, reversed(blobs))
    sizes = {len(sample) for _, sample in record.samples}
    assert sizes == {sample_size(3000)} and 2000 < sample_size(3000) <= 2063
    assert len({sample for _, sample in record.samples}) == 4  # each member its own sample


async def test_the_starter_reads_the_challenge_once_until_its_window_opens() -> None:
    """Every node runs a starter: before the window opens each look reads the chain's clock
    only, not the challenge's state (four views a node a second was most of the devchain's
    work under a steady store load)."""
    import random
    from types import SimpleNamespace

    from tests.node.fakes import FakeChain
    from walruspy.node.challenges import ChallengeStarter

    chain = FakeChain([], 10)
    chain.epoch_started_at = chain.now + 30  # the fake's window opens with its epoch
    reads = 0
    read_state = chain.challenge_state

    async def counted(epoch: int) -> Any:
        nonlocal reads
        reads += 1
        return await read_state(epoch)

    chain.challenge_state = counted  # type: ignore[method-assign]
    state = SimpleNamespace(view=SimpleNamespace(epoch=chain.epoch))
    starter = ChallengeStarter(
        chain,  # type: ignore[arg-type]
        state,  # type: ignore[arg-type]
        check_interval_s=10.0,
        max_jitter_s=0.0,
        rng=random.Random(1),
        clock=lambda: 0.0,
    )
    assert [await starter.step() for _ in range(3)] == [10.0, 10.0, 10.0]
    chain.now += 25
    assert await starter.step() == 5.0
    assert reads == 1 and chain.epoch not in chain._challenges
    chain.now += 5
    await starter.step()  # the window is open: scheduled
    await starter.step()  # the seed block is mined: started
    assert reads == 3 and (await read_state(chain.epoch)).started

"""The invalidation flow with in-process nodes: an inconsistent blob ends up invalid everywhere.

Seven nodes hold one of 7 shards each (f = 2, validity needs 3 shards), so the node that finds the
inconsistency (the one holding the forged primary sliver's pair, down while the blob was stored)
needs attestations from at least two others. Scenarios: the certificate reaches the validity
threshold, lands on chain and every node marks the blob invalid; another node's invalidation
landing first (a revert, or the event seen before posting) is a normal outcome; members that fail,
lie about their signature, sign another message or are down are skipped; an epoch change before
the post makes the node gather again in the new epoch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from tests.node.cluster import Cluster, ClusterNode, blob_data, open_cluster
from walruspy.chain.api import ChainRevertError
from walruspy.core.blob_id import BlobId
from walruspy.core.certificates import Certificate, verify_certificate
from walruspy.core.crypto import BlsPrivateKey
from walruspy.core.inconsistency import InconsistencyProof
from walruspy.core.messages import InvalidBlobIdMessage, SignedMessage
from walruspy.core.metadata import VerifiedBlobMetadataWithId
from walruspy.core.types import ShardIndex, SliverPairIndex, SliverType, pair_of_shard
from walruspy.node.invalidation import Invalidator
from walruspy.node.symbols import SymbolService
from walruspy.node_api import errors as api_errors
from walruspy.node_api.schemas import Invalid
from walruspy.sim.forgery import tampered_encoding

SHARDS = (1, 1, 1, 1, 1, 1, 1)
N_SHARDS = len(SHARDS)
VALIDITY_WEIGHT = 3  # 3w >= n + 1 for n = 7


@dataclass
class InconsistentBlob:
    """A blob whose primary sliver of pair 0 was forged, certified while `owner` was down."""

    blob_id: BlobId
    metadata: VerifiedBlobMetadataWithId
    owner: ClusterNode


def invalidator(node: ClusterNode) -> Invalidator:
    assert node.node is not None and node.node.invalidator is not None
    return node.node.invalidator


def metric(node: ClusterNode, name: str, labels: dict[str, str] | None = None) -> float:
    assert node.node is not None and node.node.service is not None
    value = node.node.service.metrics.registry.get_sample_value(name, labels or {})
    return value or 0.0


def outcomes(node: ClusterNode, outcome: str) -> float:
    return metric(node, "walrus_blob_invalidations_total", {"outcome": outcome})


def record_invalidations(
    cluster: Cluster,
    before: Callable[[Certificate], Awaitable[None]] | None = None,
) -> list[Certificate]:
    """Record every certificate posted to the chain; `before` runs first (it may raise)."""
    calls: list[Certificate] = []
    post = cluster.chain.invalidate_blob_id

    async def recording(certificate: Certificate, *, n_members: int | None = None) -> BlobId:
        calls.append(certificate)
        if before is not None:
            await before(certificate)
        return await post(certificate, n_members=n_members)

    cluster.chain.invalidate_blob_id = recording  # type: ignore[method-assign]
    return calls


async def store_inconsistent_blob(cluster: Cluster, seed: int) -> InconsistentBlob:
    """Register and certify a forged blob, uploading honest slivers to all but pair 0's owner."""
    data = blob_data(seed, 4000)
    honest, metadata, _fake = tampered_encoding(data, N_SHARDS, 0, b"evil")
    blob_id = metadata.blob_id
    owner = next(
        n
        for n in cluster.nodes
        if any(pair_of_shard(ShardIndex(s), blob_id.raw, N_SHARDS) == 0 for s in n.shards)
    )
    await cluster.stop(owner)
    object_id = cluster.chain.register(blob_id, len(data))
    await cluster.wait_for_events()
    for node in cluster.nodes:
        if node.task is None:
            continue
        client = cluster.client(node)
        await client.put_metadata(metadata)
        for shard in node.shards:
            pair = SliverPairIndex(pair_of_shard(ShardIndex(shard), blob_id.raw, N_SHARDS))
            for sliver_type in SliverType:
                await client.put_sliver(blob_id, pair, honest.sliver(pair, sliver_type).sliver)
    cluster.chain.certify(object_id)
    await cluster.wait_for_events()
    return InconsistentBlob(blob_id, metadata, owner)


async def recover_and_invalidate(cluster: Cluster, blob: InconsistentBlob) -> None:
    """Start the owner, let it sync (finding the proof) and run the invalidation flow."""
    await cluster.start(blob.owner)
    await cluster.wait_for_events()
    await cluster.wait_syncs_idle()
    await invalidator(blob.owner).wait_idle()
    await cluster.wait_for_events()  # the InvalidBlobID event, if one was emitted


async def assert_invalid_everywhere(cluster: Cluster, blob: InconsistentBlob) -> None:
    """Every running node reports the blob invalid and serves none of its data."""
    for node in cluster.nodes:
        if node.task is None:
            continue
        client = cluster.client(node)
        assert isinstance(await client.blob_status(blob.blob_id), Invalid), node.index
        with pytest.raises(api_errors.NodeApiError):
            await client.get_metadata(blob.blob_id, N_SHARDS)
        assert node.node is not None and node.node.store is not None
        assert not node.node.store.has_metadata(blob.blob_id.raw)


def signers_weight(cluster: Cluster, certificate: Certificate) -> int:
    return sum(cluster.chain.members[i].weight for i in certificate.signers)


def proof_of(blob: InconsistentBlob) -> InconsistencyProof:
    assert blob.owner.node is not None and blob.owner.node.syncer is not None
    return blob.owner.node.syncer.inconsistency_proofs[blob.blob_id.raw]


async def test_an_inconsistent_blob_is_invalidated_on_chain(tmp_path: Path) -> None:
    async with open_cluster(tmp_path, SHARDS) as cluster:
        posted = record_invalidations(cluster)
        blob = await store_inconsistent_blob(cluster, 1)
        await recover_and_invalidate(cluster, blob)
        assert len(posted) == 1
        certificate = posted[0]
        owner_index = cluster.nodes.index(blob.owner)
        assert owner_index in certificate.signers  # its own attestation counts
        assert signers_weight(cluster, certificate) >= VALIDITY_WEIGHT
        committee = await cluster.chain.committee()
        certified = verify_certificate(committee, certificate, "validity")
        assert certified.message == InvalidBlobIdMessage(1, blob.blob_id.raw)
        assert outcomes(blob.owner, "posted") == 1
        assert outcomes(blob.owner, "failed") == 0
        await assert_invalid_everywhere(cluster, blob)
        # A scan that ran before the InvalidBlobID event was applied may have submitted the
        # proof again: that flow ends at once ("already_invalid"), and nothing stays queued.
        async with asyncio.timeout(10):
            await invalidator(blob.owner).wait_idle()
        assert invalidator(blob.owner).backlog == 0
        assert outcomes(blob.owner, "posted") == 1
        # A flow started again for the blob stops at once: the node already knows it is invalid.
        again = await invalidator(blob.owner).invalidate(blob.blob_id, proof_of(blob))
        assert again == "already_invalid"
        assert len(posted) == 1


async def test_losing_the_race_to_another_node_is_not_an_error(tmp_path: Path) -> None:
    async with open_cluster(tmp_path, SHARDS) as cluster:
        blob: InconsistentBlob | None = None

        async def first_elsewhere(_certificate: Certificate) -> None:
            # Another node's certificate landed first; this contract rejects a second one.
            assert blob is not None
            cluster.chain.invalidate(blob.blob_id)
            raise ChainRevertError("blob ID already invalid", "invalidate_blob_id")

        posted = record_invalidations(cluster, first_elsewhere)
        blob = await store_inconsistent_blob(cluster, 2)
        await recover_and_invalidate(cluster, blob)
        assert len(posted) == 1  # a revert is not retried
        # The blob sync may start a second flow between the revert and the node applying the
        # invalidation event; that flow finds the blob invalid before it posts: a lost race too.
        assert outcomes(blob.owner, "lost_race") >= 1
        assert outcomes(blob.owner, "failed") == 0
        assert blob.owner.task is not None and not blob.owner.task.done()
        await assert_invalid_everywhere(cluster, blob)


class FailingProofs(SymbolService):
    """Answers inconsistency proofs with an internal error."""

    async def inconsistency_proof(
        self, blob_id: BlobId, target_type: SliverType, body: bytes
    ) -> SignedMessage:
        raise api_errors.InternalServerError("cannot check proofs today")


class ForgingProofs(SymbolService):
    """Signs the expected message with a key that is not the member's."""

    async def inconsistency_proof(
        self, blob_id: BlobId, target_type: SliverType, body: bytes
    ) -> SignedMessage:
        await super().inconsistency_proof(blob_id, target_type, body)
        stranger = BlsPrivateKey.from_seed(b"\x07" * 32)
        message = InvalidBlobIdMessage(self._service.state.epoch, blob_id.raw)
        return SignedMessage.sign(stranger, message)


class OtherEpochProofs(SymbolService):
    """Signs, with the member's own key, the message of the next epoch."""

    async def inconsistency_proof(
        self, blob_id: BlobId, target_type: SliverType, body: bytes
    ) -> SignedMessage:
        await super().inconsistency_proof(blob_id, target_type, body)
        return await self._service.sign(
            InvalidBlobIdMessage(self._service.state.epoch + 1, blob_id.raw)
        )


async def test_failing_and_lying_members_are_skipped(tmp_path: Path) -> None:
    async with open_cluster(tmp_path, SHARDS) as cluster:
        posted = record_invalidations(cluster)
        blob = await store_inconsistent_blob(cluster, 3)
        others = [n for n in cluster.nodes if n is not blob.owner]
        # The members asked first (equal weights: committee order) fail in every way; only the
        # last two are honest, and exactly enough with the owner's own attestation.
        down, failing, forging, other_epoch = others[:4]
        honest = others[4:]
        for node, service in ((failing, FailingProofs), (forging, ForgingProofs)):
            assert node.node is not None and node.node.api is not None
            assert node.node.service is not None
            node.node.api.symbols = service(node.node.service, 16)
        assert other_epoch.node is not None and other_epoch.node.api is not None
        assert other_epoch.node.service is not None
        other_epoch.node.api.symbols = OtherEpochProofs(other_epoch.node.service, 16)
        await cluster.stop(down)
        await recover_and_invalidate(cluster, blob)
        assert len(posted) == 1
        signers = set(posted[0].signers)
        assert signers == {cluster.nodes.index(n) for n in (blob.owner, *honest)}
        assert signers_weight(cluster, posted[0]) == VALIDITY_WEIGHT
        failures = "walrus_invalid_blob_attestation_failures_total"
        assert metric(blob.owner, failures, {"kind": "invalid"}) >= 2
        assert metric(blob.owner, failures, {"kind": "error_answer"}) >= 1
        assert metric(blob.owner, failures, {"kind": "unreachable"}) >= 1
        assert outcomes(blob.owner, "posted") == 1
        await assert_invalid_everywhere(cluster, blob)


async def test_too_few_attestations_give_up_without_posting(tmp_path: Path) -> None:
    async with open_cluster(tmp_path, SHARDS) as cluster:
        posted = record_invalidations(cluster)
        blob = await store_inconsistent_blob(cluster, 4)
        # Only one other member attests: weight 2 of the 3 needed.
        for node in [n for n in cluster.nodes if n is not blob.owner][1:]:
            assert node.node is not None and node.node.api is not None
            assert node.node.service is not None
            node.node.api.symbols = FailingProofs(node.node.service, 16)
        recovery = replace(blob.owner.config.blob_recovery, max_attempts=2)
        blob.owner.config = replace(blob.owner.config, blob_recovery=recovery)
        await recover_and_invalidate(cluster, blob)
        assert posted == []
        assert outcomes(blob.owner, "failed") == 1
        assert blob.owner.task is not None and not blob.owner.task.done()
        client = cluster.client(blob.owner)
        assert not isinstance(await client.blob_status(blob.blob_id), Invalid)


async def test_an_epoch_change_before_the_post_gathers_again(tmp_path: Path) -> None:
    async with open_cluster(tmp_path, SHARDS) as cluster:
        changed = False

        async def new_epoch_first(_certificate: Certificate) -> None:
            nonlocal changed
            if not changed:
                changed = True
                cluster.chain.next_epoch()  # the certificate of epoch 1 now reverts

        posted = record_invalidations(cluster, new_epoch_first)
        blob = await store_inconsistent_blob(cluster, 5)
        await recover_and_invalidate(cluster, blob)
        assert [c.serialized_message for c in posted] == [
            InvalidBlobIdMessage(1, blob.blob_id.raw).to_bcs(),
            InvalidBlobIdMessage(2, blob.blob_id.raw).to_bcs(),
        ]
        assert signers_weight(cluster, posted[1]) >= VALIDITY_WEIGHT
        assert outcomes(blob.owner, "posted") == 1
        await assert_invalid_everywhere(cluster, blob)

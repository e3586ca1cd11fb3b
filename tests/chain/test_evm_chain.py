"""The chain client (walruspy.chain.evm) against real nodes: the devchain process and anvil.

One suite, parametrized over both backends (module-scoped: one node process and a few
deployments per backend). It covers the blob lifecycle of spec/walrus-system.md 1.2 from Python
with real BLS aggregates of member signatures (quorum of a 4- and a 10-member committee), the
rejections the contract must make (forged, under-quorum, wrong-epoch, wrong-message
certificates), the event stream resumed from cursors by fresh clients, concurrent sends from one
account, and the error translation. The anvil leg is skipped only when npm is missing.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from tests.chain.backends import ChainProcess
from walruspy.chain.api import (
    ChainRejectedError,
    ChainReorganizedError,
    ChainRevertError,
    ChainUnavailableError,
    ChallengeState,
    DeploymentError,
    SharedBlobRecord,
)
from walruspy.chain.deploy import (
    Deployment,
    DeployParams,
    assign_shards,
    deploy,
    sign_deployment_pop,
)
from walruspy.chain.devchain import dev_account_keys
from walruspy.chain.events import (
    BlobCertified,
    BlobDeleted,
    BlobRegistered,
    ChainEvent,
    ChallengeCertified,
    ChallengeStart,
    EpochChangeDone,
    EpochChangeStart,
    EventCursor,
    InvalidBlobId,
)
from walruspy.chain.evm import EvmChain, GasLimits, open_evm_chain
from walruspy.chain.evm_rpc import ContractHandle, block_header, open_web3
from walruspy.core.blob_id import BlobId
from walruspy.core.certificates import Certificate
from walruspy.core.committee import Committee, CommitteeMember
from walruspy.core.crypto import BlsPrivateKey
from walruspy.core.errors import InvalidInputError
from walruspy.core.messages import (
    BlobPersistence,
    ChallengeAttestationMessage,
    ConfirmationMessage,
    InvalidBlobIdMessage,
)
from walruspy.core.params import RS2_ENCODING_TYPE, EncodingParams

pytestmark = pytest.mark.timeout(180)

MIB = 1 << 20
EPOCH_DURATION_S = 3600
STORAGE_PRICE = 100_000
WRITE_PRICE = 20_000


@dataclass(frozen=True)
class SigningCommittee:
    """Deployment parameters plus the members' BLS keys, in committee order."""

    params: DeployParams
    keys: tuple[BlsPrivateKey, ...]

    @property
    def committee(self) -> Committee:
        return self.params.committee()

    def params_for(self, deployer_key: bytes) -> DeployParams:
        """`params` with the members' proofs of possession for `deployer_key`'s account."""
        deployer = str(Account.from_key(deployer_key).address)
        pops = tuple(sign_deployment_pop(key, deployer) for key in self.keys)
        return replace(self.params, proofs_of_possession=pops)

    def certificate(
        self, message: bytes, signers: Sequence[int], signing_keys: Sequence[BlsPrivateKey] = ()
    ) -> Certificate:
        keys = signing_keys or [self.keys[i] for i in signers]
        return Certificate.from_signatures(
            message, [(i, k.sign(message)) for i, k in zip(signers, keys, strict=True)]
        )

    def smallest(self, validity: bool = False) -> list[int]:
        """The first members whose weight reaches a quorum (or the validity threshold)."""
        committee, signers, weight = self.committee, [], 0
        enough = committee.is_above_validity if validity else committee.is_quorum
        for index, member in enumerate(committee.members):
            if enough(weight):
                break
            signers.append(index)
            weight += member.weight
        return signers


def signing_committee(n_members: int, n_shards: int, seed: bytes) -> SigningCommittee:
    keys = [
        BlsPrivateKey.from_seed(hashlib.sha256(seed + bytes([i])).digest())
        for i in range(n_members)
    ]
    shards = assign_shards(n_members, n_shards, "round-robin")
    # Node IDs in the reverse order of the keys: deployment sorts members by node ID.
    members = [
        CommitteeMember(
            (n_members - i).to_bytes(32, "big"),
            keys[i].public_key(),
            f"node{i}.test:9185",
            shards[i],
        )
        for i in range(n_members)
    ]
    # Proofs of possession for the devchain's first account; `params_for` makes others.
    devchain_deployer = str(Account.from_key(dev_account_keys(1)[0]).address)
    params = DeployParams(
        members=tuple(members),
        proofs_of_possession=tuple(sign_deployment_pop(k, devchain_deployer) for k in keys),
        n_shards=n_shards,
        epoch_duration_s=EPOCH_DURATION_S,
        max_epochs_ahead=53,
        total_capacity_size=1 << 40,
        storage_price_per_unit_size=STORAGE_PRICE,
        write_price_per_unit_size=WRITE_PRICE,
    )
    by_key = {k.public_key(): k for k in keys}
    ordered = tuple(by_key[m.public_key] for m in params.members)
    return SigningCommittee(params, ordered)


COMMITTEE_4 = signing_committee(4, 10, b"four")
COMMITTEE_10 = signing_committee(10, 100, b"ten")


def deploy_now(node: ChainProcess, committee: SigningCommittee) -> Deployment:
    return asyncio.run(deploy(node.url, node.keys[0], committee.params_for(node.keys[0])))


@pytest.fixture(scope="module")
def deployed4(node: ChainProcess) -> Deployment:
    return deploy_now(node, COMMITTEE_4)


@pytest.fixture(scope="module")
def deployed10(node: ChainProcess) -> Deployment:
    return deploy_now(node, COMMITTEE_10)


def new_blob(size: int = 1000) -> tuple[BlobId, bytes, int]:
    root_hash = secrets.token_bytes(32)
    return BlobId.from_metadata(RS2_ENCODING_TYPE, size, root_hash), root_hash, size


async def register(
    chain: EvmChain, epochs_ahead: int = 3, deletable: bool = True, size: int = 1000
) -> bytes:
    blob_id, root_hash, size = new_blob(size)
    n_shards = (await chain.system_info()).n_shards
    registration = await chain.reserve_and_register(
        blob_id=blob_id,
        root_hash=root_hash,
        unencoded_size=size,
        encoded_size=EncodingParams(n_shards).encoded_length(size),
        epochs_ahead=epochs_ahead,
        deletable=deletable,
    )
    return registration.blob.object_id


def blob_cert_message(epoch: int, blob_id: BlobId, object_id: bytes | None) -> bytes:
    persistence = BlobPersistence() if object_id is None else BlobPersistence.deletable(object_id)
    return ConfirmationMessage(epoch, blob_id.raw, persistence).to_bcs()


async def certify(
    chain: EvmChain,
    committee: SigningCommittee,
    object_id: bytes,
    signers: Sequence[int] | None = None,
) -> None:
    blob = await chain.get_blob(object_id)
    assert blob is not None
    epoch = (await chain.system_info()).epoch
    message = blob_cert_message(epoch, blob.blob_id, object_id if blob.deletable else None)
    chosen = committee.smallest() if signers is None else signers
    await chain.certify_blob(object_id, committee.certificate(message, chosen))


async def end_epoch(node: ChainProcess, chain: EvmChain) -> None:
    """Move the chain clock past the end of the current epoch and start the next one."""
    info = await chain.system_info()
    end = info.epoch_started_at + info.epoch_duration_s
    # A block at the end time: after a burst of transactions the chain clock runs ahead of
    # the wall clock, so evm_increaseTime from the wall clock alone may fall short.
    node.rpc("evm_mine", max(end, await chain.chain_time() + 1))
    assert await chain.advance_epoch()


async def all_events(chain: EvmChain) -> list[ChainEvent]:
    return list(await chain.events(EventCursor(), 100_000))


# -- deployment, system info, committee ------------------------------------------------


async def test_system_info_and_first_events(node: ChainProcess, deployed4: Deployment) -> None:
    async with open_evm_chain(node.url, deployed4, node.keys[0]) as chain:
        info = await chain.system_info()
        assert (info.chain_id, info.system_address, info.wal_address) == (
            deployed4.chain_id,
            deployed4.system,
            deployed4.wal,
        )
        assert (info.epoch, info.n_shards, info.epoch_duration_s) == (1, 10, EPOCH_DURATION_S)
        assert info.max_epochs_ahead == 53
        assert info.storage_price_per_unit_size == STORAGE_PRICE
        assert info.write_price_per_unit_size == WRITE_PRICE
        assert info.total_capacity_size == 1 << 40
        assert abs(info.epoch_started_at - await chain.chain_time()) < 600
        first = (await chain.events(EventCursor(), 2))[:2]
        assert [type(e) for e in first] == [EpochChangeStart, EpochChangeDone]
        assert all(e.epoch == 1 and e.event_id.block_number == deployed4.start_block for e in first)
        assert await chain.wal_balance() == COMMITTEE_4.params.wal_supply


@pytest.mark.parametrize("size", [4, 10])
async def test_committee_round_trip(
    node: ChainProcess, deployed4: Deployment, deployed10: Deployment, size: int
) -> None:
    deployment, signing = (deployed4, COMMITTEE_4) if size == 4 else (deployed10, COMMITTEE_10)
    async with open_evm_chain(node.url, deployment) as reader:
        committee = await reader.committee()
    assert committee == signing.committee
    assert [m.public_key for m in committee.members] == [k.public_key() for k in signing.keys]
    assert [m.node_id for m in committee.members] == sorted(m.node_id for m in committee.members)
    assert committee.total_aggregated_key == signing.committee.total_aggregated_key


async def test_committees_are_read_again_only_when_the_epoch_may_have_changed(
    node: ChainProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    views: list[str] = []
    honest = ContractHandle.view

    async def counted(self: ContractHandle, name: str, *args: Any, **kwargs: Any) -> Any:
        views.append(name)
        return await honest(self, name, *args, **kwargs)

    deployment = await deploy(
        node.url, node.keys[0], COMMITTEE_4.params_for(node.keys[0])
    )  # its own: moves epochs
    monkeypatch.setattr(ContractHandle, "view", counted)
    async with open_evm_chain(node.url, deployment, node.keys[0]) as chain:
        first = await chain.epoch_committees()
        assert views and first.current.epoch == 1
        views.clear()
        assert await chain.epoch_committees() == first and not views  # the same block
        node.rpc("evm_mine")  # a new block, stamped before the epoch can end
        assert await chain.epoch_committees() == first and not views
        snapshot = node.rpc("evm_snapshot")
        await end_epoch(node, chain)  # a block at the epoch's end, then the next epoch
        views.clear()
        second = await chain.epoch_committees()
        assert views and second.current.epoch == 2
        # The epoch change is taken back, and the chain grows again past that height: the
        # block the answer was read at is gone, so it is read again.
        assert node.rpc("evm_revert", snapshot)
        for _ in range(3):
            node.rpc("evm_mine")
        views.clear()
        assert (await chain.epoch_committees()).current.epoch == 1 and views


# -- the blob lifecycle -----------------------------------------------------------------


async def test_reserve_and_register(node: ChainProcess, deployed4: Deployment) -> None:
    async with open_evm_chain(node.url, deployed4, node.keys[0]) as chain:
        before = await chain.wal_balance()
        blob_id, root_hash, size = new_blob(MIB)
        encoded = EncodingParams(10).encoded_length(size)
        registration = await chain.reserve_and_register(
            blob_id=blob_id,
            root_hash=root_hash,
            unencoded_size=size,
            encoded_size=encoded,
            epochs_ahead=4,
            deletable=False,
        )
        units = -(-encoded // MIB)
        assert registration.cost == units * (4 * STORAGE_PRICE + WRITE_PRICE)
        assert await chain.wal_balance() == before - registration.cost
        blob = registration.blob
        assert (blob.blob_id, blob.size, blob.encoding_type, blob.deletable) == (
            blob_id,
            size,
            RS2_ENCODING_TYPE,
            False,
        )
        assert (blob.registered_epoch, blob.certified_epoch, blob.end_epoch) == (1, None, 5)
        assert (blob.owner, blob.storage.storage_size) == (chain.address, encoded)
        assert await chain.get_blob(blob.object_id) == blob
        receipt = await chain._w3.eth.get_transaction_receipt(registration.tx_hash)
        events = await chain.events(EventCursor(receipt["blockNumber"]), 10)
        registered = next(e for e in events if isinstance(e, BlobRegistered))
        assert registered.event_id.tx_hash == registration.tx_hash
        assert (registered.epoch, registered.blob_id, registered.size) == (1, blob_id, size)
        assert (registered.encoding_type, registered.end_epoch) == (RS2_ENCODING_TYPE, 5)
        assert (registered.deletable, registered.object_id) == (False, blob.object_id)
        assert blob in await chain.owned_blobs(chain.address)
        with pytest.raises(ValueError, match="encoded length"):
            await chain.reserve_and_register(
                blob_id=blob_id,
                root_hash=root_hash,
                unencoded_size=size,
                encoded_size=encoded + 1,
                epochs_ahead=1,
                deletable=False,
            )
        with pytest.raises(ChainRevertError, match="invalid epochs ahead"):
            await chain.reserve_and_register(
                blob_id=blob_id,
                root_hash=root_hash,
                unencoded_size=size,
                encoded_size=encoded,
                epochs_ahead=900,
                deletable=False,
            )
        with pytest.raises(ChainRevertError, match="wrong blob id"):
            await chain.reserve_and_register(
                blob_id=blob_id,
                root_hash=root_hash,
                unencoded_size=size + 1,
                encoded_size=EncodingParams(10).encoded_length(size + 1),
                epochs_ahead=1,
                deletable=False,
            )


@pytest.mark.parametrize("size", [4, 10])
async def test_certify_with_a_quorum_of_member_signatures(
    node: ChainProcess, deployed4: Deployment, deployed10: Deployment, size: int
) -> None:
    deployment, signing = (deployed4, COMMITTEE_4) if size == 4 else (deployed10, COMMITTEE_10)
    async with open_evm_chain(node.url, deployment, node.keys[0]) as chain:
        permanent = await register(chain, deletable=False)
        deletable = await register(chain, deletable=True)
        await certify(chain, signing, permanent)
        await certify(chain, signing, deletable, signers=range(len(signing.keys)))
        for object_id, is_deletable in ((permanent, False), (deletable, True)):
            blob = await chain.get_blob(object_id)
            assert blob is not None and blob.certified_epoch == 1
            certified = [
                e
                for e in await all_events(chain)
                if isinstance(e, BlobCertified) and e.object_id == object_id
            ]
            assert len(certified) == 1
            assert (certified[0].deletable, certified[0].is_extension) == (is_deletable, False)
            assert (certified[0].blob_id, certified[0].end_epoch) == (blob.blob_id, 4)
        with pytest.raises(ChainRevertError, match="already certified"):
            await certify(chain, signing, permanent)


async def test_bad_certificates_are_rejected(node: ChainProcess, deployed10: Deployment) -> None:
    signing = COMMITTEE_10
    async with open_evm_chain(node.url, deployed10, node.keys[0]) as chain:
        object_id = await register(chain, deletable=False)
        blob = await chain.get_blob(object_id)
        assert blob is not None
        message = blob_cert_message(1, blob.blob_id, None)
        quorum = signing.smallest()
        strangers = [BlsPrivateKey.from_seed(secrets.token_bytes(32)) for _ in quorum]
        other_blob = blob_cert_message(1, new_blob()[0], None)
        cases = [
            ("bad signature", signing.certificate(message, quorum, strangers)),  # forged
            ("certificate below quorum", signing.certificate(message, quorum[:-1])),
            ("wrong epoch", signing.certificate(blob_cert_message(2, blob.blob_id, None), quorum)),
            ("wrong blob id", signing.certificate(other_blob, quorum)),
            # signed over one message, posted with another
            (
                "bad signature",
                Certificate(
                    tuple(quorum), message, signing.certificate(other_blob, quorum).signature
                ),
            ),
            (
                "wrong persistence type",
                signing.certificate(blob_cert_message(1, blob.blob_id, object_id), quorum),
            ),
        ]
        for reason, certificate in cases:
            with pytest.raises(ChainRevertError) as caught:
                await chain.certify_blob(object_id, certificate)
            assert caught.value.reason == reason
            assert caught.value.operation == "certify_blob"
        # A committee size given by the caller that is not the chain's: refused, not misread.
        n_members = len((await chain.committee()).members)
        with pytest.raises(ChainRevertError) as caught:
            await chain.certify_blob(
                object_id, signing.certificate(message, quorum), n_members=n_members + 8
            )
        assert caught.value.operation == "certify_blob"
        assert caught.value.reason == "signers bitmap too long"
        after = await chain.get_blob(object_id)
        assert after is not None and after.certified_epoch is None
        await certify(chain, signing, object_id)  # the real certificate still works


async def test_invalidate_blob_id(node: ChainProcess, deployed10: Deployment) -> None:
    signing = COMMITTEE_10
    async with open_evm_chain(node.url, deployed10, node.keys[0]) as chain:
        blob_id = new_blob()[0]
        message = InvalidBlobIdMessage(1, blob_id.raw).to_bcs()
        validity = signing.smallest(validity=True)
        with pytest.raises(ChainRevertError, match="certificate below validity"):
            await chain.invalidate_blob_id(signing.certificate(message, validity[:-1]))
        grown = signing.certificate(message, validity)
        grown = replace(grown, signers=(*grown.signers, 12))
        with pytest.raises(ChainRevertError, match="signers bitmap names a non-member"):
            await chain.invalidate_blob_id(grown)
        with pytest.raises(ChainRevertError, match="signers bitmap too long"):
            await chain.invalidate_blob_id(grown, n_members=20)
        assert await chain.invalidate_blob_id(signing.certificate(message, validity)) == blob_id
        invalid = [e for e in await all_events(chain) if isinstance(e, InvalidBlobId)]
        assert [(e.epoch, e.blob_id) for e in invalid] == [(1, blob_id)]


async def test_extend_and_delete(node: ChainProcess, deployed4: Deployment) -> None:
    async with open_evm_chain(node.url, deployed4, node.keys[0]) as chain:
        object_id = await register(chain, epochs_ahead=2, deletable=True)
        with pytest.raises(ChainRevertError, match="not certified"):
            await chain.extend_blob(object_id, 1)
        await certify(chain, COMMITTEE_4, object_id)
        blob = await chain.get_blob(object_id)
        assert blob is not None and blob.end_epoch == 3
        before = await chain.wal_balance()
        await chain.extend_blob(object_id, 5)
        units = -(-blob.storage.storage_size // MIB)
        assert await chain.wal_balance() == before - 5 * units * STORAGE_PRICE
        extended = await chain.get_blob(object_id)
        assert extended is not None and extended.end_epoch == 8
        extension = [e for e in await all_events(chain) if isinstance(e, BlobCertified)][-1]
        assert (extension.object_id, extension.is_extension, extension.end_epoch) == (
            object_id,
            True,
            8,
        )
        storage = await chain.delete_blob(object_id)
        assert storage.storage_id == blob.storage.storage_id
        assert (storage.owner, storage.start_epoch, storage.end_epoch) == (chain.address, 1, 8)
        assert storage.storage_size == blob.storage.storage_size
        assert await chain.get_blob(object_id) is None
        deleted = [e for e in await all_events(chain) if isinstance(e, BlobDeleted)][-1]
        assert (deleted.object_id, deleted.was_certified, deleted.end_epoch) == (
            object_id,
            True,
            8,
        )
        with pytest.raises(ChainRevertError, match="unknown blob"):
            await chain.delete_blob(object_id)
        # The blob's history stays on chain: the events that name its blob ID, in order.
        history = await chain.blob_events(blob.blob_id)
        assert [type(e) for e in history] == [
            BlobRegistered,
            BlobCertified,
            BlobCertified,
            BlobDeleted,
        ]
        assert {getattr(e, "object_id", None) for e in history} == {object_id}
        permanent = await register(chain, deletable=False)
        with pytest.raises(ChainRevertError, match="not deletable"):
            await chain.delete_blob(permanent)


async def test_transfer_blob_moves_ownership(node: ChainProcess, deployed4: Deployment) -> None:
    async with (
        open_evm_chain(node.url, deployed4, node.keys[0]) as sender,
        open_evm_chain(node.url, deployed4, node.keys[1]) as receiver,
    ):
        object_id = await register(sender, deletable=True)
        await sender.transfer_blob(object_id, receiver.address)
        moved = await sender.get_blob(object_id)
        assert moved is not None and moved.owner == receiver.address
        assert object_id in {b.object_id for b in await receiver.owned_blobs(receiver.address)}
        assert object_id not in {b.object_id for b in await sender.owned_blobs(sender.address)}
        with pytest.raises(ChainRevertError, match="not the owner"):
            await sender.transfer_blob(object_id, sender.address)
        with pytest.raises(ValueError, match="not an EVM address"):
            await receiver.transfer_blob(object_id, "0x1234")
        await receiver.delete_blob(object_id)  # the new owner holds every right


async def test_expiry_after_advance_epoch(node: ChainProcess) -> None:
    deployment = await deploy(
        node.url, node.keys[0], COMMITTEE_4.params_for(node.keys[0])
    )  # its own: moves epochs
    async with open_evm_chain(node.url, deployment, node.keys[0]) as chain:
        assert not await chain.advance_epoch()  # too early: a dry run, no transaction
        short = await register(chain, epochs_ahead=1, deletable=True)
        await certify(chain, COMMITTEE_4, short)
        longer = await register(chain, epochs_ahead=2, deletable=False)
        longer_blob = await chain.get_blob(longer)
        assert longer_blob is not None
        message_epoch_1 = blob_cert_message(1, longer_blob.blob_id, None)
        await end_epoch(node, chain)
        assert not await chain.advance_epoch()  # already done for this epoch
        assert (await chain.system_info()).epoch == 2
        assert (await chain.committee()).epoch == 2
        for operation in (chain.extend_blob(short, 1), chain.delete_blob(short)):
            with pytest.raises(ChainRevertError, match="expired"):
                await operation
        quorum = COMMITTEE_4.smallest()
        with pytest.raises(ChainRevertError, match="wrong epoch"):
            await chain.certify_blob(longer, COMMITTEE_4.certificate(message_epoch_1, quorum))
        await certify(chain, COMMITTEE_4, longer)  # signed for epoch 2: accepted
        changes = [
            e for e in await all_events(chain) if isinstance(e, EpochChangeStart | EpochChangeDone)
        ]
        assert [(type(e), e.epoch) for e in changes] == [
            (EpochChangeStart, 1),
            (EpochChangeDone, 1),
            (EpochChangeStart, 2),
            (EpochChangeDone, 2),
        ]


# -- storage challenges ----------------------------------------------------------------


async def test_storage_challenge_round_trip(node: ChainProcess) -> None:
    """Schedule, mine the seed block, start, read ChallengeStart, certify, read the state."""
    signing = COMMITTEE_10
    deployment = await deploy(node.url, node.keys[0], signing.params_for(node.keys[0]))
    async with open_evm_chain(node.url, deployment, node.keys[0]) as chain:
        info = await chain.system_info()
        opens = info.epoch_started_at + EPOCH_DURATION_S // 2
        assert await chain.challenge_state(1) == ChallengeState(1, 0, b"", False, opens, {})
        assert not await chain.schedule_challenge()  # the window is not open: a dry run only
        node.rpc("evm_mine", max(opens, await chain.chain_time() + 1))
        assert not await chain.start_challenge()  # not scheduled
        w3, challenges = chain._w3, chain._challenges

        async def needed(data: bytes) -> int:
            call = {"from": chain.address, "to": challenges.address, "data": data}
            return await w3.eth.estimate_gas(call, "pending")  # type: ignore[arg-type]

        schedule_data = challenges.calldata("schedule_challenge")
        assert await needed(schedule_data) * 1.25 < GasLimits.SCHEDULE_CHALLENGE
        assert await chain.schedule_challenge()
        assert not await chain.schedule_challenge()  # already scheduled
        scheduled = await chain.challenge_state(1)
        assert scheduled.seed_block > 0 and not scheduled.started
        assert not await chain.start_challenge()  # the seed block is not mined yet
        node.rpc("evm_mine")  # the seed block (the devchain mines one per transaction)
        start_data = challenges.calldata("start_challenge")
        assert await needed(start_data) * 1.25 < GasLimits.START_CHALLENGE
        assert await chain.start_challenge()
        assert not await chain.start_challenge()  # already started
        state = await chain.challenge_state(1)
        assert state.started and state.seed_block == scheduled.seed_block
        assert len(state.seed) == 32 and state.passed == {}
        [started] = [e for e in await all_events(chain) if isinstance(e, ChallengeStart)]
        assert (started.epoch, started.seed) == (1, state.seed)

        node_id = signing.committee.members[3].node_id
        message = ChallengeAttestationMessage(1, node_id, state.seed, 640).to_bcs()
        quorum = signing.smallest()
        with pytest.raises(ChainRevertError, match="certificate below quorum"):
            await chain.certify_challenge(node_id, 640, signing.certificate(message, quorum[:1]))
        with pytest.raises(ChainRevertError, match="bad signature"):  # signed for 640 blobs
            await chain.certify_challenge(node_id, 641, signing.certificate(message, quorum))
        certificate = signing.certificate(message, quorum)
        certify_data = challenges.calldata(
            "certify_challenge", node_id, 640, certificate.signers_bitmap(10),
            certificate.signature.to_eip2537(),
        )  # fmt: skip
        limit = GasLimits.certificate(10, len(quorum)) + GasLimits.CERTIFY_CHALLENGE_EXTRA
        assert await needed(certify_data) * 1.25 < limit
        # Signed by a larger committee than the chain's (it shrank since): refused, not raised
        # as a bug; with that committee's size given, the contract refuses it.
        grown = replace(certificate, signers=(*certificate.signers, 12))
        with pytest.raises(ChainRevertError, match="signers bitmap names a non-member"):
            await chain.certify_challenge(node_id, 640, grown)
        with pytest.raises(ChainRevertError, match="signers bitmap too long"):
            await chain.certify_challenge(node_id, 640, grown, n_members=20)
        await chain.certify_challenge(node_id, 640, certificate)
        with pytest.raises(ChainRevertError, match="already certified"):
            await chain.certify_challenge(node_id, 640, certificate)
        outsider = bytes(32)
        with pytest.raises(ChainRevertError, match="not a committee member"):
            await chain.certify_challenge(outsider, 640, certificate)
        assert (await chain.challenge_state(1)).passed == {node_id: 640}
        events = [e for e in await all_events(chain) if isinstance(e, ChallengeCertified)]
        assert [(e.epoch, e.node_id, e.blobs_checked) for e in events] == [(1, node_id, 640)]
        assert events[0].event_id > started.event_id

        await end_epoch(node, chain)
        past = await chain.challenge_state(1)
        assert past == replace(state, window_opens_at=0, passed={node_id: 640})
        now = await chain.system_info()
        assert await chain.challenge_state(2) == ChallengeState(
            2, 0, b"", False, now.epoch_started_at + EPOCH_DURATION_S // 2, {}
        )


# -- events, concurrency, errors -------------------------------------------------------


async def test_events_resume_from_cursors_across_clients(
    node: ChainProcess, deployed4: Deployment
) -> None:
    async with open_evm_chain(node.url, deployed4, node.keys[0]) as chain:
        for _ in range(3):
            await certify(chain, COMMITTEE_4, await register(chain))
        expected = await all_events(chain)
    keys = [(e.event_id.block_number, e.event_id.log_index) for e in expected]
    assert keys == sorted(set(keys)) and len(expected) >= 8
    seen: list[ChainEvent] = []
    cursor = EventCursor()
    while True:  # a fresh client per page, two blocks per eth_getLogs, three events per page
        async with open_evm_chain(node.url, deployed4, max_span_blocks=2) as reader:
            page = await reader.events(cursor, 3)
        if not page:
            break
        assert len(page) <= 3
        seen.extend(page)
        cursor = page[-1].event_id.cursor_after
    assert seen[: len(expected)] == expected
    middle = expected[len(expected) // 2]
    async with open_evm_chain(node.url, deployed4) as reader:
        after_middle = await reader.events(middle.event_id.cursor_after, 1)
        assert after_middle == [expected[len(expected) // 2 + 1]]
        assert await reader.events(EventCursor(await reader._head() + 1), 10) == []


async def test_concurrent_sends_from_one_account(node: ChainProcess, deployed4: Deployment) -> None:
    async with open_evm_chain(node.url, deployed4, node.keys[0]) as chain:
        ids = await asyncio.gather(*(register(chain) for _ in range(20)))
        assert len(set(ids)) == 20
        async with open_evm_chain(node.url, deployed4, node.keys[0]) as other:
            await other.transfer_wal(other.address, 0)  # takes the nonce `chain` expects next
        sent: list[bytes] = []
        send_raw = chain._w3.eth.send_raw_transaction

        async def counting(raw: bytes) -> object:
            sent.append(raw)
            return await send_raw(raw)

        chain._w3.eth.send_raw_transaction = counting  # type: ignore[method-assign]
        await chain.transfer_wal(chain.address, 0)  # "nonce too low": re-read and resent
        assert len(sent) == 2
    async with open_evm_chain(node.url, deployed4) as reader:
        assert await reader.owned_blobs("0x" + secrets.token_hex(20)) == []
        assert set(ids) <= {b.object_id for b in await reader.owned_blobs(chain.address)}


async def test_a_second_account_funded_with_wal(node: ChainProcess, deployed4: Deployment) -> None:
    async with (
        open_evm_chain(node.url, deployed4, node.keys[0]) as funder,
        open_evm_chain(node.url, deployed4, node.keys[1]) as user,
    ):
        with pytest.raises(ChainRevertError, match="unpaid"):
            await register(user)
        await funder.transfer_wal(user.address, 10**12)
        assert await user.wal_balance() == 10**12
        object_id = await register(user)
        blob = await user.get_blob(object_id)
        assert blob is not None and blob.owner == user.address
        with pytest.raises(ChainRevertError, match="not the owner"):
            await funder.delete_blob(object_id)


async def test_gas_limits_have_headroom(node: ChainProcess, deployed10: Deployment) -> None:
    """Each explicit limit exceeds by 25% what the node estimates for a worst case."""
    signing = COMMITTEE_10
    async with open_evm_chain(node.url, deployed10, node.keys[0]) as chain:
        object_id = await register(chain)
        blob = await chain.get_blob(object_id)
        assert blob is not None
        w3, system = chain._w3, chain._system

        async def needed(data: bytes) -> int:
            call = {"from": chain.address, "to": system.address, "data": data}
            return await w3.eth.estimate_gas(call)  # type: ignore[arg-type]

        blob_id, root_hash, size = new_blob()
        register_53 = system.calldata(
            "reserve_and_register", 53, blob_id.raw, root_hash, size, RS2_ENCODING_TYPE, True
        )
        reserve_limit = (
            GasLimits.RESERVE_AND_REGISTER_BASE
            + 52 * GasLimits.RESERVE_AND_REGISTER_PER_EXTRA_EPOCH
        )
        quorum = signing.smallest()
        certificate = signing.certificate(blob_cert_message(1, blob.blob_id, object_id), quorum)
        certify_data = system.calldata(
            "certify_blob",
            object_id,
            certificate.signature.to_eip2537(),
            certificate.signers_bitmap(10),
            certificate.serialized_message,
        )
        assert await needed(register_53) * 1.25 < reserve_limit
        assert await needed(certify_data) * 1.25 < GasLimits.certificate(10, len(quorum))
        await chain.certify_blob(object_id, certificate)
        extend_limit = GasLimits.EXTEND_BASE + 40 * GasLimits.EXTEND_PER_EPOCH
        assert await needed(system.calldata("extend_blob", object_id, 40)) * 1.25 < extend_limit
        assert await needed(system.calldata("delete_blob", object_id)) * 1.25 < GasLimits.DELETE
        assert await needed(system.calldata("burn_blob", object_id)) * 1.25 < GasLimits.BURN_BLOB


async def test_blob_attributes_round_trip_within_their_gas_limits(
    node: ChainProcess, deployed4: Deployment
) -> None:
    """Attributes.vy through EvmChain; each call's limit exceeds the node's estimate by 25%."""
    async with open_evm_chain(node.url, deployed4, node.keys[0]) as chain:
        object_id = await register(chain)
        w3, attributes = chain._w3, chain._attributes

        async def needed(data: bytes) -> int:
            call = {"from": chain.address, "to": attributes.address, "data": data}
            return await w3.eth.estimate_gas(call)  # type: ignore[arg-type]

        assert await chain.blob_attribute(object_id) is None
        small = [("content-type", "text/html")]
        data = attributes.calldata("insert_or_update_pairs", object_id, ["content-type"], ["x"])
        assert await needed(data) * 1.25 < GasLimits.attribute(small)
        long = [(f"key-{i}", "v" * (i * 97 % 1025)) for i in range(20)]
        data = attributes.calldata(
            "insert_or_update_pairs", object_id, [k for k, _ in long], [v for _, v in long]
        )
        assert await needed(data) * 1.25 < GasLimits.attribute(long)
        await chain.set_blob_attribute_pairs(object_id, long)
        await chain.set_blob_attribute_pairs(object_id, [("key-0", "moved"), ("new", "é")])
        after = [*long[1:], ("key-0", "moved"), ("new", "é")]
        assert await chain.blob_attribute(object_id) == tuple(after)
        data = attributes.calldata("remove_pairs", object_id, ["key-1", "key-19"])
        assert await needed(data) * 1.25 < GasLimits.attribute(after)
        await chain.remove_blob_attribute_pairs(object_id, ["key-1", "key-19"])
        assert [k for k, _ in await chain.blob_attribute(object_id) or ()] == [
            k for k, _ in after if k not in ("key-1", "key-19")
        ]
        with pytest.raises(ChainRevertError, match="unknown key"):
            await chain.remove_blob_attribute_pairs(object_id, ["absent"])
        data = attributes.calldata("remove_attribute", object_id)
        assert await needed(data) * 1.25 < GasLimits.attribute(())
        await chain.remove_blob_attribute(object_id)
        assert await chain.blob_attribute(object_id) is None
        with pytest.raises(InvalidInputError, match="longer than 1024 bytes"):
            await chain.set_blob_attribute_pairs(object_id, [("k", "v" * 1025)])


async def test_a_blob_registers_on_a_storage_resource_given_back(
    node: ChainProcess, deployed4: Deployment
) -> None:
    """register_blob on the storage a deletion gave back, within its gas limit (25% over)."""
    async with open_evm_chain(node.url, deployed4, node.keys[0]) as chain:
        object_id = await register(chain, epochs_ahead=5, size=5000)
        storage = await chain.delete_blob(object_id)
        assert storage in await chain.owned_storage(chain.address)
        blob_id, root_hash, size = new_blob(4000)
        data = chain._system.calldata(
            "register_blob", storage.storage_id, blob_id.raw, root_hash, size,
            RS2_ENCODING_TYPE, False,
        )  # fmt: skip
        call = {"from": chain.address, "to": chain._system.address, "data": data}
        needed = await chain._w3.eth.estimate_gas(call)  # type: ignore[arg-type]
        assert needed * 1.25 < GasLimits.REGISTER_BLOB
        registration = await chain.register_blob(
            storage.storage_id, blob_id=blob_id, root_hash=root_hash, unencoded_size=size,
            deletable=False,
        )  # fmt: skip
        assert registration.blob.storage.storage_id == storage.storage_id
        assert registration.blob.blob_id == blob_id and registration.cost > 0
        assert storage not in await chain.owned_storage(chain.address)
        with pytest.raises(ChainRevertError, match=r"not the owner|unknown storage"):
            await chain.register_blob(
                storage.storage_id, blob_id=blob_id, root_hash=root_hash, unencoded_size=size,
                deletable=False,
            )  # fmt: skip


async def test_shared_blobs_within_their_gas_limits(
    node: ChainProcess, deployed10: Deployment
) -> None:
    """Share, fund and extend through EvmChain; each limit exceeds the estimate by 25%."""
    signing = COMMITTEE_10
    async with open_evm_chain(node.url, deployed10, node.keys[0]) as chain:
        object_id = await register(chain)
        blob = await chain.get_blob(object_id)
        assert blob is not None
        quorum = signing.smallest()
        await chain.certify_blob(
            object_id, signing.certificate(blob_cert_message(1, blob.blob_id, object_id), quorum)
        )
        w3, shared_blobs = chain._w3, chain._shared_blobs

        async def needed(data: bytes) -> int:
            call = {"from": chain.address, "to": shared_blobs.address, "data": data}
            return await w3.eth.estimate_gas(call)  # type: ignore[arg-type]

        await chain.transfer_blob(object_id, shared_blobs.address)
        await chain._shared_allowance.ensure()
        share = shared_blobs.calldata("share", object_id, 10**9)
        assert await needed(share) * 1.25 < GasLimits.SHARE_BLOB
        shared_id = await chain.share_blob(object_id, 10**9)  # given already: only shared
        assert await chain.shared_blob(shared_id) == SharedBlobRecord(shared_id, object_id, 10**9)
        fund = shared_blobs.calldata("fund", shared_id, 10**12)
        assert await needed(fund) * 1.25 < GasLimits.FUND_SHARED_BLOB
        await chain.fund_shared_blob(shared_id, 10**12)
        extend = shared_blobs.calldata("extend", shared_id, 40)
        limit = GasLimits.paid_epochs(
            GasLimits.EXTEND_BASE + GasLimits.SHARED_EXTEND_EXTRA, GasLimits.EXTEND_PER_EPOCH, 40
        )
        assert await needed(extend) * 1.25 < limit
        await chain.extend_shared_blob(shared_id, 40)
        after = await chain.get_blob(object_id)
        assert after is not None and after.end_epoch == blob.end_epoch + 40
        record = await chain.shared_blob(shared_id)
        assert record is not None and 0 < record.funds < 10**9 + 10**12
        assert await chain.shared_blob(bytes(32)) is None


async def test_unreachable_node_and_mismatched_deployment(
    node: ChainProcess, deployed4: Deployment, tmp_path: Path
) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    closed = f"http://127.0.0.1:{port}"
    with pytest.raises(ChainUnavailableError, match=f"127.0.0.1:{port}: check the deployment"):
        async with open_evm_chain(closed, deployed4):
            pass
    other_chain = Deployment.from_json({**deployed4.to_json(), "chain_id": 5})
    with pytest.raises(DeploymentError, match="chain 5"):
        async with open_evm_chain(node.url, other_chain):
            pass
    contracts = {**deployed4.to_json()["contracts"], "system": "0x" + "ab" * 20}
    nowhere = Deployment.from_json({**deployed4.to_json(), "contracts": contracts})
    with pytest.raises(DeploymentError, match="no contract"):
        async with open_evm_chain(node.url, nowhere):
            pass
    path = tmp_path / "deployment.json"
    deployed4.save(path)
    assert Deployment.load(path) == deployed4
    async with open_evm_chain(node.url, deployed4, secrets.token_bytes(32)) as broke:
        with pytest.raises(ChainRejectedError, match="transfer WAL"):
            await broke.transfer_wal(broke.address, 0)  # no ether for gas


async def test_block_headers_read_from_the_answer_match_web3s_blocks(node: ChainProcess) -> None:
    # Readers take a block's number, hash and time from the JSON-RPC answer itself.
    w3 = open_web3(node.url)
    try:
        node.rpc("evm_mine")
        latest = await block_header(w3)
        assert latest is not None
        block = await w3.eth.get_block(latest.number)
        assert (latest.number, latest.hash, latest.timestamp) == (
            block["number"],
            bytes(block["hash"]),
            block["timestamp"],
        )
        assert await block_header(w3, latest.number) == latest
        assert await block_header(w3, latest.number + 1000) is None  # not (yet) on the chain
    finally:
        await w3.provider.disconnect()


# -- reorganisations ---------------------------------------------------------------------


async def test_a_reader_detects_blocks_replaced_under_its_cursor(
    node: ChainProcess, deployed4: Deployment
) -> None:
    """evm_snapshot/evm_revert replace blocks at the same heights, as a reorganisation does."""
    async with open_evm_chain(node.url, deployed4, node.keys[0]) as chain:
        await register(chain)
        cursor = (await all_events(chain))[-1].event_id.cursor_after
    assert cursor.block_hash  # events carry their block's hash, and so do cursors after them
    async with open_evm_chain(node.url, deployed4) as reader:
        assert await reader.events(cursor, 10) == []
        snapshot = node.rpc("evm_snapshot")
        async with open_evm_chain(node.url, deployed4, node.keys[0]) as chain:
            await register(chain)
        (lost,) = await reader.events(cursor, 10)
        assert await reader.events(lost.event_id.cursor_after, 10) == []  # scanned to the tip
        assert node.rpc("evm_revert", snapshot) is True
        async with open_evm_chain(node.url, deployed4, node.keys[0]) as chain:
            await register(chain)  # a fresh client: the old one's next nonce was taken back
        with pytest.raises(ChainReorganizedError, match=f"block {lost.event_id.block_number}"):
            await reader.events(lost.event_id.cursor_after, 10)
        (found,) = await reader.events(cursor, 10)
        assert found.event_id.block_number == lost.event_id.block_number
        assert found.event_id.block_hash != lost.event_id.block_hash


async def test_a_reader_rescans_replaced_blocks_it_had_found_empty(
    node: ChainProcess, deployed4: Deployment
) -> None:
    async with open_evm_chain(node.url, deployed4, node.keys[0]) as chain:
        await register(chain)
        cursor = (await all_events(chain))[-1].event_id.cursor_after
    async with open_evm_chain(node.url, deployed4) as reader:
        snapshot = node.rpc("evm_snapshot")
        node.rpc("evm_mine")
        node.rpc("evm_mine")
        assert await reader.events(cursor, 10) == []  # two empty blocks scanned
        assert node.rpc("evm_revert", snapshot) is True
        async with open_evm_chain(node.url, deployed4, node.keys[0]) as chain:
            object_id = await register(chain)
        (found,) = await reader.events(cursor, 10)
        assert isinstance(found, BlobRegistered) and found.object_id == object_id


async def test_a_client_with_confirmations_waits_for_them(
    node: ChainProcess, deployed4: Deployment
) -> None:
    async with open_evm_chain(node.url, deployed4, node.keys[0], confirmations=2) as chain:
        sending = asyncio.create_task(register(chain))
        mined = 0
        while not sending.done():  # the chain needs blocks to confirm it
            await asyncio.to_thread(node.rpc, "evm_mine")
            mined += 1
            await asyncio.sleep(0.05)
        object_id = await sending
        blob = await chain.get_blob(object_id)
        assert blob is not None
        events = [e for e in await all_events(chain) if isinstance(e, BlobRegistered)]
        registered = next(e for e in events if e.object_id == object_id)
        head = await chain._head()
        assert head >= registered.event_id.block_number + 2 and mined >= 2


async def test_a_block_replaced_at_the_same_height_is_detected(
    node: ChainProcess, deployed4: Deployment
) -> None:
    """The latest block replaced by another at the same height, as a real reorganisation:
    `anvil_reorg` on anvil; on the devchain, a revert to before it and an empty block mined."""
    async with open_evm_chain(node.url, deployed4, node.keys[0]) as chain:
        await register(chain)
        cursor = (await all_events(chain))[-1].event_id.cursor_after
        snapshot = node.rpc("evm_snapshot")
        object_id = await register(chain)
    async with open_evm_chain(node.url, deployed4) as reader:
        (seen,) = await reader.events(cursor, 10)
        assert isinstance(seen, BlobRegistered) and seen.object_id == object_id
        if node.name == "anvil":
            node.rpc("anvil_reorg", 1, [])
        else:
            assert node.rpc("evm_revert", snapshot) is True
            node.rpc("evm_mine")
        with pytest.raises(ChainReorganizedError, match=f"block {seen.event_id.block_number}"):
            await reader.events(seen.event_id.cursor_after, 10)
        for event in await reader.events(cursor, 10):  # the block again, whatever it holds now
            assert event.event_id.block_hash != seen.event_id.block_hash

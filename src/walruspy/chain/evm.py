"""The control-plane client over Ethereum JSON-RPC: `ChainReader` and `ChainWriter` on the EVM.

Theory of operation (spec/walrus-system.md 1.2, 1.5, 2.1, 2.6, 2.7, 2.9). A `Deployment` names
the System, WAL and first Committee contracts; `open_evm_chain` connects to any JSON-RPC node
(the devchain, anvil, a testnet), checks that the deployment is on that chain and was built from
the same contract ABIs, and yields an `EvmChainReader`, or an `EvmChain` that also sends
transactions when given a private key. Nothing here re-implements a rule of the contracts: the
client calls them, decodes what they return, and turns failures into the chain error tree
(`walruspy.chain.api`).

Reads (`walruspy.chain.evm_reader`) are `eth_call`s pinned to one block number, so a record
assembled from several views is a consistent snapshot; events come from paged eth_getLogs
(`walruspy.chain.evm_events`).

Writes (`walruspy.chain.evm_rpc.TransactionSender`): locally managed nonces so one account can
send concurrently, explicit per-operation gas limits (below), receipts awaited with a timeout,
revert reasons recovered by replay. Paid calls (reserve+register, extend) pull WAL from the
account with `transferFrom`; the client approves System once for an unlimited allowance when it
first pays (`walruspy.chain.evm_wal`, which says why).

Results come from the receipt where the contract reports them: the new blob's object ID from
its BlobRegistered log, the price paid from the WAL Transfer log, the storage resource a delete
returns from System's ObjectTransferred log (created from the zero address), then read at the
receipt's block.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, Final, overload

from web3 import AsyncWeb3
from web3.types import TxParams, TxReceipt

from walruspy.backoff import Backoff
from walruspy.chain.api import (
    BlobRecord,
    ChainReader,
    ChainRevertError,
    ChainUnavailableError,
    ChainWriter,
    DeploymentError,
    Registration,
    StorageRecord,
    check_attribute_pairs,
)
from walruspy.chain.contracts import DEPLOYABLE, Abi, load_contract
from walruspy.chain.deploy import Deployment, abi_digest
from walruspy.chain.events import BlobRegistered, ChainEvent, InvalidBlobId
from walruspy.chain.evm_events import DEFAULT_MAX_SPAN_BLOCKS, event_topic
from walruspy.chain.evm_reader import EvmChainReader
from walruspy.chain.evm_rpc import (
    DEFAULT_RECEIPT_TIMEOUT_S,
    DEFAULT_REQUEST_TIMEOUT_S,
    ConnectorFactory,
    ContractHandle,
    TransactionSender,
    open_web3,
    rpc_errors,
)
from walruspy.chain.evm_wal import WalAllowance, wal_transferred
from walruspy.core.blob_id import BlobId
from walruspy.core.certificates import Certificate
from walruspy.core.errors import InvalidInputError, VerificationError
from walruspy.core.params import RS2_ENCODING_TYPE, EncodingParams
from walruspy.logs import get_logger
from walruspy.tasks import gather_reads

log = get_logger("walruspy.chain")

__all__ = ["EvmChain", "EvmChainReader", "GasLimits", "open_evm_chain", "open_evm_chain_when_up"]

_REVERT_EPOCH_NOT_OVER: Final = "epoch not over"
# Challenges.vy's reasons for a schedule or start that is not due (too early, or done already,
# perhaps by another node): the call returns False. "no committee": epoch 0 under staking;
# "not scheduled" and "seed block too old": schedule (again) first.
_SCHEDULE_NOT_DUE: Final = frozenset(
    {"too early", "already scheduled", "already started", "no committee"}
)
_START_NOT_DUE: Final = frozenset(
    {"too early", "not scheduled", "already started", "seed block too old"}
)


class GasLimits:
    """Explicit gas limits per operation, about 1.35x the gas each needs in its worst case.

    The figures are the gas a transaction needs to succeed (what eth_estimateGas finds, which
    exceeds the gas finally charged when cleared slots earn refunds), identical on the devchain
    and on anvil. Storage payments loop over the epochs paid for and certificates over the
    committee's non-signers, so those limits grow with them; the worst case is where every
    storage slot written is fresh (22,100 gas each). Unused gas is not charged: a limit is only
    a ceiling and the balance the node checks before running the transaction.
    """

    # reserve_and_register: 645k for 1 epoch with fresh slots (556k otherwise), plus 45.1k per
    # further epoch (2.90M for 53 epochs).
    RESERVE_AND_REGISTER_BASE: Final = 870_000
    RESERVE_AND_REGISTER_PER_EXTRA_EPOCH: Final = 61_000
    # register_blob on an owned storage resource: the blob record and the storage's unlinking,
    # without a reservation; 389,444 measured.
    REGISTER_BLOB: Final = 550_000
    # certify_blob: 294k with every member signing, about 250 more per signer and 12.6k per
    # non-signer, whose key is read (four cold slots) and subtracted: 4 members 307k (smallest
    # quorum), 100 members 734k, 150 members 1.01M, 100 members where one holds a quorum alone
    # (99 non-signers) 1.57M.
    CERTIFY_BASE: Final = 400_000
    CERTIFY_PER_SIGNER: Final = 1_000
    CERTIFY_PER_NON_SIGNER: Final = 17_000
    # invalidate_blob_id: the same check at the validity threshold; 1.57M for 150 members with
    # 102 non-signers, 1.52M for 99 non-signers of 100. The certify formula covers it.
    # extend_blob: 85k + 13k per epoch already paid for by others, 46k per fresh epoch slot.
    EXTEND_BASE: Final = 130_000
    EXTEND_PER_EPOCH: Final = 63_000
    # delete_blob: 279k (the restored storage record's fresh slots; the blob's cleared slots
    # are refunded after the execution, so the limit must cover the gross figure).
    DELETE: Final = 380_000
    # transfer_blob: unlink from the owner's list, link into the new owner's; eth_estimateGas
    # gave 89,878 for a transfer to a fresh owner (the cold worst case): about 1.4x that.
    TRANSFER_BLOB: Final = 125_000
    # Attributes.vy: a call rewrites the blob's whole list of pairs, so its cost grows with
    # the words (32 bytes, rounded up, plus a length word per string) of every pair it holds
    # afterwards: a fresh storage word costs 22.1k, an overwritten one 2.9k, and the list is
    # copied in memory per key. Measured: one small pair, 438,916 (mostly memory: each call
    # frame holds a whole list of 32 pairs, about 39 KiB); 20 fresh pairs of 361 words,
    # 8,640,618.
    ATTRIBUTE_BASE: Final = 600_000
    ATTRIBUTE_PER_WORD: Final = 32_000
    # SharedBlobs.vy: share (two reads of System, three fresh slots, a WAL pull), fund (a WAL
    # pull), and extend's extra over System's (two WAL balance reads, the funds slot).
    SHARE_BLOB: Final = 200_000
    FUND_SHARED_BLOB: Final = 110_000
    SHARED_EXTEND_EXTRA: Final = 60_000
    # burn_blob: unlink from the owner's list and clear the record, 102,650 by eth_estimateGas
    # (the cleared slots are refunded after the execution: the limit covers the gross figure).
    BURN_BLOB: Final = 140_000
    # advance_epoch: 120k + 40.4k per member the first time (a fresh reward slot per node):
    # 4 members 291k, 100 members 4.17M; later epochs cost less.
    ADVANCE_EPOCH_BASE: Final = 200_000
    ADVANCE_EPOCH_PER_MEMBER: Final = 55_000
    # ERC-20 transfer to a fresh account 51,194 (approve: walruspy.chain.evm_wal).
    WAL_TRANSFER: Final = 70_000
    # Challenges.vy. schedule_challenge 61,956 (four reads of System, the fresh seed-block
    # slot); start_challenge 54,644 (BLOCKHASH, keccak, the fresh seed slot).
    SCHEDULE_CHALLENGE: Final = 90_000
    START_CHALLENGE: Final = 80_000
    # certify_challenge: certify_blob's certificate check plus the member's binary search and
    # four records (three fresh slots for the first certificate of an epoch): 346k for 4
    # members (1 non-signer), 783k for 100 (33 non-signers), about 45k above certify_blob.
    CERTIFY_CHALLENGE_EXTRA: Final = 60_000
    # The block gas limit of the devchain, anvil and Ethereum mainnet: a node refuses a
    # transaction asking more, so formulas are capped here and an oversized request (say 900
    # epochs ahead) reaches the contract, which rejects it with its own reason.
    MAX_TRANSACTION: Final = 30_000_000

    @classmethod
    def paid_epochs(cls, base: int, per_epoch: int, epochs: int) -> int:
        """`base + per_epoch * epochs`, capped at `MAX_TRANSACTION`."""
        return min(base + per_epoch * max(epochs, 0), cls.MAX_TRANSACTION)

    @classmethod
    def certificate(cls, n_members: int, n_signers: int) -> int:
        """The limit of certify_blob or invalidate_blob_id for this many signers."""
        n_non_signers = max(n_members - n_signers, 0)
        gas = (
            cls.CERTIFY_BASE
            + cls.CERTIFY_PER_SIGNER * n_signers
            + cls.CERTIFY_PER_NON_SIGNER * n_non_signers
        )
        return min(gas, cls.MAX_TRANSACTION)

    @classmethod
    def attribute(cls, pairs: Sequence[tuple[str, str]]) -> int:
        """The limit of an Attributes.vy call that leaves (or reads) these pairs.

        `InvalidInputError` when it would pass the cap on one transaction: fewer or shorter
        values then."""
        words = sum(_string_words(key) + _string_words(value) for key, value in pairs)
        gas = cls.ATTRIBUTE_BASE + cls.ATTRIBUTE_PER_WORD * words
        if gas > cls.MAX_TRANSACTION:
            raise InvalidInputError(
                f"the attribute's {len(pairs)} pairs ({words * 32} bytes on chain) would take "
                f"{gas} gas to write, more than one transaction's {cls.MAX_TRANSACTION}: "
                "give fewer or shorter values"
            )
        return gas


def _signers_bitmap(certificate: Certificate, n_members: int, operation: str) -> bytes:
    """The certificate's signers bitmap for a committee of `n_members`; a signer that is no
    member (the committee shrank since it signed) is refused here as the contract refuses it."""
    try:
        return certificate.signers_bitmap(n_members)
    except VerificationError as exc:
        raise ChainRevertError("signers bitmap names a non-member", operation) from exc


def _string_words(text: str) -> int:
    """Storage words of a Vyper String: one for its length, then its bytes, 32 at a time."""
    return 1 + -(-len(text.encode("utf-8")) // 32)


class EvmChain(EvmChainReader):
    """`ChainWriter` over JSON-RPC: the reader plus the transactions of one account."""

    def __init__(
        self,
        w3: AsyncWeb3[Any],
        url: str,
        deployment: Deployment,
        abis: dict[str, Abi],
        sender: TransactionSender,
        **reader_options: Any,
    ) -> None:
        super().__init__(w3, url, deployment, abis, sender=sender, **reader_options)
        self._sender = sender
        self._allowance = WalAllowance(self._wal, sender, self._system.address)
        self._shared_allowance = WalAllowance(self._wal, sender, self._shared_blobs.address)
        events = {
            e["name"]: e
            for e in abis["System"] + abis["Wal"] + abis["SharedBlobs"]
            if e["type"] == "event"
        }
        self._blob_shared = event_topic(events["BlobShared"])
        self._object_transferred = event_topic(events["ObjectTransferred"])
        self._wal_transfer = event_topic(events["Transfer"])

    @property
    def address(self) -> str:
        """The account's address (checksummed hex)."""
        return self._sender.address

    async def wal_balance(self, owner: str | None = None) -> int:
        """WAL (in FROST) held by `owner`, this account by default."""
        return await super().wal_balance(self.address if owner is None else owner)

    async def transfer_wal(self, to: str, amount: int) -> None:
        """Send `amount` FROST of WAL to `to` (e.g. to fund a devnet client)."""
        data = self._wal.calldata("transfer", AsyncWeb3.to_checksum_address(to), amount)
        await self._send("transfer WAL", self._wal, data, GasLimits.WAL_TRANSFER)

    async def reserve_and_register(
        self,
        *,
        blob_id: BlobId,
        root_hash: bytes,
        unencoded_size: int,
        encoded_size: int,
        epochs_ahead: int,
        deletable: bool,
    ) -> Registration:
        """Buy storage of the blob's encoded length for `epochs_ahead` epochs and register it.

        `encoded_size` must be the RS2 encoded length for this system's shard count (what the
        contract computes and charges for); a mismatch is our caller's bug: ValueError.
        """
        expected = EncodingParams(await self.n_shards()).encoded_length(unencoded_size)
        if encoded_size != expected:
            raise ValueError(
                f"encoded_size {encoded_size} is not the encoded length {expected} of"
                f" {unencoded_size} bytes on {await self.n_shards()} shards"
            )
        await self._allowance.ensure()
        data = self._system.calldata(
            "reserve_and_register", epochs_ahead, blob_id.raw, root_hash, unencoded_size,
            RS2_ENCODING_TYPE, deletable,
        )  # fmt: skip
        gas = GasLimits.paid_epochs(
            GasLimits.RESERVE_AND_REGISTER_BASE,
            GasLimits.RESERVE_AND_REGISTER_PER_EXTRA_EPOCH,
            epochs_ahead - 1,
        )
        receipt = await self._send("reserve_and_register", self._system, data, gas)
        return await self._registration(receipt, "reserve_and_register", encoded_size)

    async def register_blob(
        self,
        storage_id: bytes,
        *,
        blob_id: BlobId,
        root_hash: bytes,
        unencoded_size: int,
        deletable: bool,
    ) -> Registration:
        """Register a blob on an owned storage resource (the contract checks that it is this
        account's, current and large enough); the write fee is paid."""
        await self._allowance.ensure()
        data = self._system.calldata(
            "register_blob", storage_id, blob_id.raw, root_hash, unencoded_size,
            RS2_ENCODING_TYPE, deletable,
        )  # fmt: skip
        receipt = await self._send("register_blob", self._system, data, GasLimits.REGISTER_BLOB)
        return await self._registration(receipt, "register_blob")

    async def _registration(
        self, receipt: TxReceipt, operation: str, reserved_size: int | None = None
    ) -> Registration:
        """The blob a registering transaction created, and what it paid.

        With `reserved_size`, the transaction also reserved the storage (of that size, from
        the registration's epoch to the blob's end): the blob is then known from the logs
        alone, its storage being the one object the transaction created and wrapped. Else the
        blob is read at the transaction's block.
        """
        registered = [e for e in self._system_events(receipt) if isinstance(e, BlobRegistered)]
        if len(registered) != 1:
            raise ChainUnavailableError(f"{self.url}: {operation}: no BlobRegistered log")
        event = registered[0]
        paid, tx_hash = self._wal_paid(receipt), bytes(receipt["transactionHash"])
        if reserved_size is not None:
            wrapped = self._objects_wrapped(receipt)
            if len(wrapped) != 1:
                raise ChainUnavailableError(
                    f"{self.url}: {operation}: {len(wrapped)} objects wrapped, not one storage"
                )
            storage = StorageRecord(
                wrapped[0], self.address, event.epoch, event.end_epoch, reserved_size
            )
            blob = BlobRecord(
                event.object_id, self.address, event.blob_id, event.size, event.encoding_type,
                event.epoch, None, storage, event.deletable,
            )  # fmt: skip
            return Registration(blob, paid, tx_hash)
        found = await self._blob_at(event.object_id, receipt["blockNumber"], self.address)
        if found is None:
            raise ChainUnavailableError(
                f"{self.url}: registered blob {event.object_id.hex()} not found"
            )
        return Registration(found, paid, tx_hash)

    def _objects_wrapped(self, receipt: TxReceipt) -> list[bytes]:
        """The objects of this account the transaction ended (objects.vy `_remove`)."""
        zero = bytes(32)
        return [
            bytes(log["topics"][1])
            for log in receipt["logs"]
            if log["address"] == self._system.address
            and bytes(log["topics"][0]) == self._object_transferred
            and bytes(log["topics"][3]) == zero
        ]

    async def certify_blob(
        self, object_id: bytes, certificate: Certificate, *, n_members: int | None = None
    ) -> None:
        """Post a quorum certificate over the blob's BLOB_CERT message (its availability).

        With `n_members` (the signing committee's size) no read precedes the transaction; a
        committee that changed meanwhile makes the contract refuse it, as it refuses the
        signatures of a past epoch."""
        if n_members is None:
            n_members = await self._n_members()
        data = self._system.calldata(
            "certify_blob", object_id, certificate.signature.to_eip2537(),
            _signers_bitmap(certificate, n_members, "certify_blob"),
            certificate.serialized_message,
        )  # fmt: skip
        gas = GasLimits.certificate(n_members, len(certificate.signers))
        await self._send("certify_blob", self._system, data, gas)

    async def extend_blob(self, object_id: bytes, extended_epochs: int) -> None:
        """Pay to keep a certified, unexpired blob for `extended_epochs` more epochs."""
        await self._allowance.ensure()
        data = self._system.calldata("extend_blob", object_id, extended_epochs)
        gas = GasLimits.paid_epochs(
            GasLimits.EXTEND_BASE, GasLimits.EXTEND_PER_EPOCH, extended_epochs
        )
        await self._send("extend_blob", self._system, data, gas)

    async def delete_blob(self, object_id: bytes) -> StorageRecord:
        """Delete a deletable blob this account owns; its storage resource comes back."""
        data = self._system.calldata("delete_blob", object_id)
        receipt = await self._send("delete_blob", self._system, data, GasLimits.DELETE)
        zero = bytes(32)
        restored = [
            bytes(log["topics"][1])
            for log in receipt["logs"]
            if log["address"] == self._system.address
            and bytes(log["topics"][0]) == self._object_transferred
            and bytes(log["topics"][2]) == zero
        ]
        if len(restored) != 1:
            raise ChainUnavailableError(f"{self.url}: delete_blob: no storage came back")
        storage = await self._system.view("storage", restored[0], block=receipt["blockNumber"])
        start, end, size = storage
        return StorageRecord(restored[0], self.address, int(start), int(end), int(size))

    async def transfer_blob(self, object_id: bytes, to: str) -> None:
        """Give a blob object this account owns to `to` (the contract checks ownership)."""
        if not AsyncWeb3.is_address(to):
            raise ValueError(f"not an EVM address: {to!r:.60}")
        data = self._system.calldata("transfer_blob", object_id, AsyncWeb3.to_checksum_address(to))
        await self._send("transfer_blob", self._system, data, GasLimits.TRANSFER_BLOB)

    async def set_blob_attribute_pairs(
        self, object_id: bytes, pairs: Sequence[tuple[str, str]]
    ) -> None:
        """Insert or update pairs of a blob's attribute (Attributes.vy checks the owner)."""
        check_attribute_pairs(pairs)
        existing = await self.blob_attribute(object_id) or ()
        keys = [key for key, _ in pairs]
        data = self._attributes.calldata(
            "insert_or_update_pairs", object_id, keys, [value for _, value in pairs]
        )
        gas = GasLimits.attribute(list(existing) + list(pairs))
        await self._send("set blob attribute", self._attributes, data, gas)

    async def remove_blob_attribute_pairs(self, object_id: bytes, keys: Sequence[str]) -> None:
        """Remove keys of a blob's attribute (each must be there)."""
        check_attribute_pairs([(key, "") for key in keys])
        existing = await self.blob_attribute(object_id) or ()
        data = self._attributes.calldata("remove_pairs", object_id, list(keys))
        await self._send(
            "remove blob attribute pairs", self._attributes, data, GasLimits.attribute(existing)
        )

    async def remove_blob_attribute(self, object_id: bytes) -> None:
        """Remove a blob's whole attribute (it must exist)."""
        data = self._attributes.calldata("remove_attribute", object_id)
        await self._send("remove blob attribute", self._attributes, data, GasLimits.attribute(()))

    async def share_blob(self, object_id: bytes, amount: int) -> bytes:
        """Give a blob this account owns to SharedBlobs.vy and share it with `amount` FROST
        (two transactions: System moves a blob only at its owner's request). A blob already
        given to SharedBlobs (a share interrupted between the two) is only shared."""
        record = await self.get_blob(object_id)
        holder = self._shared_blobs.address.lower()
        if record is None or record.owner.lower() != holder:
            await self.transfer_blob(object_id, self._shared_blobs.address)
        if amount > 0:
            await self._shared_allowance.ensure()
        data = self._shared_blobs.calldata("share", object_id, amount)
        receipt = await self._send("share blob", self._shared_blobs, data, GasLimits.SHARE_BLOB)
        shared = [
            bytes(log["topics"][1])
            for log in receipt["logs"]
            if log["address"] == self._shared_blobs.address
            and bytes(log["topics"][0]) == self._blob_shared
        ]
        if len(shared) != 1:
            raise ChainUnavailableError(f"{self.url}: share: no BlobShared log")
        return shared[0]

    async def fund_shared_blob(self, shared_blob_id: bytes, amount: int) -> None:
        """Add `amount` FROST to a shared blob's funds."""
        await self._shared_allowance.ensure()
        data = self._shared_blobs.calldata("fund", shared_blob_id, amount)
        await self._send("fund shared blob", self._shared_blobs, data, GasLimits.FUND_SHARED_BLOB)

    async def extend_shared_blob(self, shared_blob_id: bytes, extended_epochs: int) -> None:
        """Extend a shared blob from its funds (anyone may)."""
        data = self._shared_blobs.calldata("extend", shared_blob_id, extended_epochs)
        gas = GasLimits.paid_epochs(
            GasLimits.EXTEND_BASE + GasLimits.SHARED_EXTEND_EXTRA,
            GasLimits.EXTEND_PER_EPOCH,
            extended_epochs,
        )
        await self._send("extend shared blob", self._shared_blobs, data, gas)

    async def burn_blob(self, object_id: bytes) -> None:
        """Drop a blob object this account owns (the contract checks ownership)."""
        data = self._system.calldata("burn_blob", object_id)
        await self._send("burn_blob", self._system, data, GasLimits.BURN_BLOB)

    async def invalidate_blob_id(
        self, certificate: Certificate, *, n_members: int | None = None
    ) -> BlobId:
        """Post a validity certificate over INVALID_BLOB_ID: the blob ID is marked invalid.

        `n_members`: the signing committee's size, as for `certify_blob`."""
        if n_members is None:
            n_members = await self._n_members()
        data = self._system.calldata(
            "invalidate_blob_id", certificate.signature.to_eip2537(),
            _signers_bitmap(certificate, n_members, "invalidate_blob_id"),
            certificate.serialized_message,
        )  # fmt: skip
        gas = GasLimits.certificate(n_members, len(certificate.signers))
        receipt = await self._send("invalidate_blob_id", self._system, data, gas)
        invalid = [e for e in self._system_events(receipt) if isinstance(e, InvalidBlobId)]
        if len(invalid) != 1:
            raise ChainUnavailableError(f"{self.url}: invalidate_blob_id: no InvalidBlobID log")
        return invalid[0].blob_id

    async def advance_epoch(self) -> bool:
        """Take the next epoch step if its time has come; False if too early or already done.

        With a fixed committee the step is System's `advance_epoch`; under staking it is
        `voting_end` or `initiate_epoch_change` (`EvmStaking.take_epoch_step`). A dry run
        (eth_call) first, so an early call costs no gas; a transaction that loses the race to
        another caller reverts and also returns False.
        """
        if self.staking is not None:
            return await self.staking.take_epoch_step()
        data = self._system.calldata("advance_epoch")
        gas = GasLimits.ADVANCE_EPOCH_BASE + GasLimits.ADVANCE_EPOCH_PER_MEMBER * (
            await self._n_members()
        )
        try:
            with rpc_errors(self.url, "advance_epoch"):
                await self._w3.eth.call(
                    {"from": self.address, "to": self._system.address, "data": data}
                )
            await self._send("advance_epoch", self._system, data, gas)
        except ChainRevertError as exc:
            if exc.reason == _REVERT_EPOCH_NOT_OVER:
                return False
            raise
        return True

    async def schedule_challenge(self) -> bool:
        """Fix the seed block of this epoch's storage challenge (Challenges.vy); False if the
        window is not open yet, it is scheduled or started already, or there is no committee.

        A dry run first, like `advance_epoch`, so a call that is not due costs no gas.
        """
        data = self._challenges.calldata("schedule_challenge")
        return await self._take_step(
            "schedule_challenge", data, GasLimits.SCHEDULE_CHALLENGE, _SCHEDULE_NOT_DUE
        )

    async def start_challenge(self) -> bool:
        """Publish this epoch's challenge seed (ChallengeStart) once its seed block is mined;
        False if that block is not mined yet, the challenge started already, or it must be
        scheduled (again) first: not scheduled, or the seed block is out of BLOCKHASH's reach.

        The devchain mines a block only per transaction (or `evm_mine`): the seed block is the
        block of the next transaction after `schedule_challenge`'s, and this succeeds from the
        one after that.
        """
        data = self._challenges.calldata("start_challenge")
        return await self._take_step(
            "start_challenge", data, GasLimits.START_CHALLENGE, _START_NOT_DUE
        )

    async def certify_challenge(
        self,
        node_id: bytes,
        blobs_checked: int,
        certificate: Certificate,
        *,
        n_members: int | None = None,
    ) -> None:
        """Post a quorum certificate that `node_id` passed this epoch's challenge, over the
        CHALLENGE_ATTESTATION of the current epoch, the node, the seed and `blobs_checked`
        (the contract rebuilds that message: `certificate.serialized_message` is not sent).

        `n_members`: the signing committee's size, as for `certify_blob`."""
        if n_members is None:
            n_members = await self._n_members()
        data = self._challenges.calldata(
            "certify_challenge", node_id, blobs_checked,
            _signers_bitmap(certificate, n_members, "certify_challenge"),
            certificate.signature.to_eip2537(),
        )  # fmt: skip
        gas = min(
            GasLimits.certificate(n_members, len(certificate.signers))
            + GasLimits.CERTIFY_CHALLENGE_EXTRA,
            GasLimits.MAX_TRANSACTION,
        )
        await self._send("certify_challenge", self._challenges, data, gas)

    async def _take_step(
        self, operation: str, data: bytes, gas: int, not_due: frozenset[str]
    ) -> bool:
        """Dry-run then send a permissionless step of Challenges; False on a `not_due` revert
        (in the dry run, or in the transaction after losing a race to another caller)."""
        call: TxParams = {"from": self.address, "to": self._challenges.address, "data": data}
        try:
            with rpc_errors(self.url, operation):
                # In the pending block, where the transaction would run: anvil runs a "latest"
                # call with the latest block's number, which the seed block rule depends on.
                await self._w3.eth.call(call, "pending")
            await self._send(operation, self._challenges, data, gas)
        except ChainRevertError as exc:
            if exc.reason in not_due:
                return False
            raise
        return True

    async def epoch_sync_done(self, epoch: int) -> bool:
        """Report that this account's node holds all its shards of `epoch` (staking only).

        False with a fixed committee (nothing to report), when the account has no node in the
        current committee, or when the report was already made.
        """
        if self.staking is None:
            return False
        return await self.staking.epoch_sync_done(epoch)

    async def _send(
        self, operation: str, contract: ContractHandle, data: bytes, gas: int
    ) -> TxReceipt:
        return await self._sender.send(operation, to=contract.address, data=data, gas=gas)

    async def _n_members(self) -> int:
        return len((await self.committee()).members)

    def _system_events(self, receipt: TxReceipt) -> list[ChainEvent]:
        events = []
        for log in receipt["logs"]:
            if log["address"] == self._system.address:
                event = self._decoder.decode(log)
                if event is not None:
                    events.append(event)
        return events

    def _wal_paid(self, receipt: TxReceipt) -> int:
        """FROST this account paid System in the transaction (its WAL Transfer logs)."""
        return wal_transferred(
            receipt, self._wal.address, self._wal_transfer, self.address, self._system.address
        )


async def _check_deployment(
    w3: AsyncWeb3[Any], url: str, deployment: Deployment, abis: dict[str, Abi]
) -> None:
    with rpc_errors(url, "check the deployment"):
        chain_id, code = await gather_reads(
            w3.eth.chain_id, w3.eth.get_code(AsyncWeb3.to_checksum_address(deployment.system))
        )
    if chain_id != deployment.chain_id:
        raise DeploymentError(
            f"{url} is chain {chain_id}, the deployment is on chain {deployment.chain_id}"
        )
    if not code:
        raise DeploymentError(
            f"{url}: no contract at the System address {deployment.system} (was the chain reset?)"
        )
    digest = abi_digest([abis[name] for name in DEPLOYABLE])
    if digest != deployment.abi_digest:
        raise DeploymentError(
            "the deployment was made from contracts with other ABIs than this walruspy's: redeploy"
        )


@overload
def open_evm_chain(
    rpc_url: str,
    deployment: Deployment,
    private_key: bytes,
    *,
    confirmations: int = 0,
    max_span_blocks: int = DEFAULT_MAX_SPAN_BLOCKS,
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
    receipt_timeout_s: float = DEFAULT_RECEIPT_TIMEOUT_S,
    connector: ConnectorFactory | None = None,
) -> contextlib.AbstractAsyncContextManager[EvmChain]: ...


@overload
def open_evm_chain(
    rpc_url: str,
    deployment: Deployment,
    private_key: None = None,
    *,
    confirmations: int = 0,
    max_span_blocks: int = DEFAULT_MAX_SPAN_BLOCKS,
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
    receipt_timeout_s: float = DEFAULT_RECEIPT_TIMEOUT_S,
    connector: ConnectorFactory | None = None,
) -> contextlib.AbstractAsyncContextManager[EvmChainReader]: ...


def open_evm_chain(
    rpc_url: str,
    deployment: Deployment,
    private_key: bytes | None = None,
    *,
    confirmations: int = 0,
    max_span_blocks: int = DEFAULT_MAX_SPAN_BLOCKS,
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
    receipt_timeout_s: float = DEFAULT_RECEIPT_TIMEOUT_S,
    connector: ConnectorFactory | None = None,
) -> contextlib.AbstractAsyncContextManager[EvmChainReader]:
    """Connect to `rpc_url` and yield a client of `deployment` (an async context manager).

    With `private_key` the client is an `EvmChain` sending transactions from that account;
    without, an `EvmChainReader`. `confirmations` holds events back until that many blocks
    follow theirs (0 for the devchain and anvil, which never reorganise; a public chain wants
    its finality depth). `connector` makes the connectors of its JSON-RPC sessions
    (`walruspy.chain.evm_rpc.ConnectorFactory`; default `aiohttp.TCPConnector`, the simulator
    passes its network's). Entering raises `ChainUnavailableError` if the node cannot be reached
    and `DeploymentError` if the deployment is not on that chain or not from these contracts.
    """
    return _open(
        rpc_url,
        deployment=deployment,
        private_key=private_key,
        confirmations=confirmations,
        max_span_blocks=max_span_blocks,
        request_timeout_s=request_timeout_s,
        receipt_timeout_s=receipt_timeout_s,
        connector=connector,
    )


#: Waiting for a chain that does not answer yet: the first pause, and the longest.
WAIT_BACKOFF_S: Final = (0.5, 10.0)


@overload
def open_evm_chain_when_up(
    rpc_urls: Sequence[str],
    deployment: Deployment,
    private_key: bytes,
    *,
    backoff_s: tuple[float, float] = WAIT_BACKOFF_S,
    confirmations: int = 0,
    connector: ConnectorFactory | None = None,
) -> contextlib.AbstractAsyncContextManager[EvmChain]: ...


@overload
def open_evm_chain_when_up(
    rpc_urls: Sequence[str],
    deployment: Deployment,
    private_key: None = None,
    *,
    backoff_s: tuple[float, float] = WAIT_BACKOFF_S,
    confirmations: int = 0,
    connector: ConnectorFactory | None = None,
) -> contextlib.AbstractAsyncContextManager[EvmChainReader]: ...


def open_evm_chain_when_up(
    rpc_urls: Sequence[str],
    deployment: Deployment,
    private_key: bytes | None = None,
    *,
    backoff_s: tuple[float, float] = WAIT_BACKOFF_S,
    confirmations: int = 0,
    connector: ConnectorFactory | None = None,
) -> contextlib.AbstractAsyncContextManager[EvmChainReader]:
    """`open_evm_chain` on the first of `rpc_urls` that answers, waiting while none does.

    For long-running processes (a storage node, the daemon) that may start before their chain,
    as after a full crash when everything starts at once: each round tries every URL, then
    waits a doubling pause, capped. A chain that answers but does not hold the deployment is a
    `DeploymentError` at once; cancellation stops the wait.
    """
    if not rpc_urls:
        raise ValueError("no RPC URL to wait for")
    return _open_when_up(
        rpc_urls, deployment, private_key, backoff_s, confirmations, connector=connector
    )


@contextlib.asynccontextmanager
async def _open_when_up(
    rpc_urls: Sequence[str],
    deployment: Deployment,
    private_key: bytes | None,
    backoff_s: tuple[float, float],
    confirmations: int,
    *,
    connector: ConnectorFactory | None,
) -> AsyncIterator[EvmChainReader]:
    backoff = Backoff(*backoff_s)
    async with contextlib.AsyncExitStack() as stack:
        for attempt in itertools.count():
            failures = []
            for url in rpc_urls:
                try:
                    chain = await stack.enter_async_context(
                        open_evm_chain(
                            url,
                            deployment,
                            private_key,
                            confirmations=confirmations,
                            connector=connector,
                        )
                    )
                except ChainUnavailableError as exc:
                    failures.append(str(exc))
                    continue
                yield chain
                return
            delay = backoff.delay_s(attempt)
            log.warning("the chain does not answer yet; waiting", errors=failures, delay_s=delay)
            await asyncio.sleep(delay)


@contextlib.asynccontextmanager
async def _open(
    rpc_url: str,
    *,
    deployment: Deployment,
    private_key: bytes | None,
    confirmations: int,
    max_span_blocks: int,
    request_timeout_s: float,
    receipt_timeout_s: float,
    connector: ConnectorFactory | None,
) -> AsyncIterator[EvmChainReader]:
    abis = await asyncio.to_thread(lambda: {n: load_contract(n)[0] for n in DEPLOYABLE})
    w3 = open_web3(rpc_url, request_timeout_s, connector=connector)
    try:
        await _check_deployment(w3, rpc_url, deployment, abis)
        options: dict[str, Any] = {
            "confirmations": confirmations,
            "max_span_blocks": max_span_blocks,
            "connector": connector,
        }
        if private_key is None:
            yield EvmChainReader(w3, rpc_url, deployment, abis, **options)
        else:
            sender = TransactionSender(
                w3,
                rpc_url,
                private_key,
                deployment.chain_id,
                receipt_timeout_s,
                confirmations=confirmations,
            )
            yield EvmChain(w3, rpc_url, deployment, abis, sender, **options)
    finally:
        await w3.provider.disconnect()


if TYPE_CHECKING:

    def _implements(chain: EvmChain, reader: EvmChainReader) -> tuple[ChainWriter, ChainReader]:
        """mypy checks here that the classes satisfy the Protocols of walruspy.chain.api."""
        return chain, reader

"""What storage nodes and clients need from the control plane, as typed Protocols.

Theory of operation: `ChainReader` is everything a storage node reads (system parameters, the
committee, blob records, the ordered event stream); `ChainWriter` adds the transactions of a
client or node account (reserve and register, certify, extend, delete, invalidate, advance the
epoch). `walruspy.chain.evm` implements both over standard Ethereum JSON-RPC, so the same code runs
against the embedded devchain, anvil or a public testnet; tests may run it in-process on web3's
eth-tester provider. Contract logic lives only in the Vyper contracts: nothing here re-implements
a rule of theirs, it only calls them and decodes what they return.

Errors:

    ChainError                  root of the control-plane client's errors
    ├── ChainRevertError        the contract rejected a call or transaction (its reason string)
    ├── ChainRejectedError      the node refused a transaction before running it (funds, nonce)
    │   └── InsufficientGasError    ... because the account cannot pay for its gas (which account,
    │                               how much it holds, how much the transaction may cost)
    ├── ChainUnavailableError   the node cannot be reached, times out or answers nonsense
    └── DeploymentError         a deployment file that is unreadable or does not match the chain
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from walruspy.chain.events import ChainEvent, EventCursor
from walruspy.core.blob_id import BlobId
from walruspy.core.certificates import Certificate
from walruspy.core.committee import Committee
from walruspy.core.errors import InvalidInputError, WalrusError


class ChainError(WalrusError):
    """Root of the control-plane client's errors."""


class ChainRevertError(ChainError):
    """The contract rejected a call; `reason` is its revert string (e.g. "storage too small")."""

    def __init__(self, reason: str, operation: str = "") -> None:
        self.reason = reason
        self.operation = operation
        where = f"{operation}: " if operation else ""
        super().__init__(f"{where}rejected by the contract: {reason}")


class ChainRejectedError(ChainError):
    """The node refused a transaction without running it (e.g. insufficient funds for gas)."""

    def __init__(self, reason: str, operation: str = "") -> None:
        self.reason = reason
        self.operation = operation
        where = f"{operation}: " if operation else ""
        super().__init__(f"{where}refused by the node: {reason}")


class InsufficientGasError(ChainRejectedError):
    """The account holds too little of the chain's native coin for a transaction's gas.

    `needed_wei` is the most the transaction may cost (gas limit x fee cap, plus its value):
    the node refuses it unless the account holds that much, though less is finally charged.
    """

    def __init__(
        self, address: str, needed_wei: int, balance_wei: int, operation: str = ""
    ) -> None:
        self.address = address
        self.needed_wei = needed_wei
        self.balance_wei = balance_wei
        super().__init__(
            f"account {address} cannot pay for gas: it holds {balance_wei} wei of the chain's"
            f" native coin, and the transaction needs up to {needed_wei} wei",
            operation,
        )


class ChainUnavailableError(ChainError):
    """The chain's JSON-RPC endpoint could not be reached or answered nonsense."""


class ChainReorganizedError(ChainError):
    """The block a consumer's cursor names is no longer on the chain (a reorganisation).

    The consumer undoes what it applied from `block_number` on and reads again from before it.
    """

    def __init__(self, block_number: int, detail: str) -> None:
        self.block_number = block_number
        super().__init__(f"chain reorganised at block {block_number}: {detail}")


class DeploymentError(ChainError):
    """A deployment file that cannot be read, is malformed, or names contracts not on the chain."""


@dataclass(frozen=True, slots=True)
class SystemInfo:
    """The System contract's parameters and current state."""

    chain_id: int
    system_address: str
    wal_address: str
    epoch: int
    n_shards: int
    epoch_duration_s: int
    epoch_started_at: int
    max_epochs_ahead: int
    storage_price_per_unit_size: int
    write_price_per_unit_size: int
    total_capacity_size: int
    used_capacity_size: int


@dataclass(frozen=True, slots=True)
class EpochCommittees:
    """The committees of the current epoch and the one before, read at one block.

    `previous` is None before the first epoch change (or with a fixed committee, where it is the
    same as `current`). `changing` is True between EpochChangeStart and EpochChangeDone of the
    current epoch: the new committee is still syncing its shards, so reads of blobs certified
    before the change go to `previous` first (spec/walrus-system.md 2.2, 4.2).
    """

    current: Committee
    previous: Committee | None
    changing: bool


@dataclass(frozen=True, slots=True)
class StorageRecord:
    """A storage resource (Move `Storage`): `storage_size` bytes for epochs [start, end)."""

    storage_id: bytes
    owner: str
    start_epoch: int
    end_epoch: int
    storage_size: int

    @property
    def storage_id_hex(self) -> str:
        """The storage resource's object ID as text: `0x` and 64 hex digits."""
        return "0x" + self.storage_id.hex()


#: A blob's attribute (Walrus's `BlobAttribute`, Move `metadata::Metadata`): its key-value
#: pairs, unique keys, in the contract's order.
BlobAttribute = tuple[tuple[str, str], ...]

#: Attributes.vy's bounds: pairs per blob, bytes per key and per value (UTF-8).
MAX_ATTRIBUTE_PAIRS = 32
MAX_ATTRIBUTE_KEY_BYTES = 128
MAX_ATTRIBUTE_VALUE_BYTES = 1024


def check_attribute_pairs(pairs: Sequence[tuple[str, str]]) -> None:
    """Attributes.vy's bounds, checked before a transaction: `InvalidInputError` names the
    pair that breaks one."""
    if len(pairs) > MAX_ATTRIBUTE_PAIRS:
        raise InvalidInputError(
            f"{len(pairs)} attribute pairs in one call; a blob holds at most {MAX_ATTRIBUTE_PAIRS}"
        )
    for key, value in pairs:
        if not key:
            raise InvalidInputError("an attribute key cannot be empty")
        if len(key.encode("utf-8")) > MAX_ATTRIBUTE_KEY_BYTES:
            raise InvalidInputError(
                f"attribute key {key[:40]!r}... is longer than {MAX_ATTRIBUTE_KEY_BYTES} bytes"
            )
        if len(value.encode("utf-8")) > MAX_ATTRIBUTE_VALUE_BYTES:
            raise InvalidInputError(
                f"the value of attribute key {key[:40]!r} is longer than "
                f"{MAX_ATTRIBUTE_VALUE_BYTES} bytes"
            )


@dataclass(frozen=True, slots=True)
class SharedBlobRecord:
    """A shared blob (SharedBlobs.vy, Move `shared_blob::SharedBlob`): its own object ID, the
    blob object it wraps and the FROST left to extend it with."""

    shared_blob_id: bytes
    blob_object_id: bytes
    funds: int


@dataclass(frozen=True, slots=True)
class BlobRecord:
    """A blob object (Move `Blob`) as the contract holds it."""

    object_id: bytes
    owner: str
    blob_id: BlobId
    size: int
    encoding_type: int
    registered_epoch: int
    certified_epoch: int | None
    storage: StorageRecord
    deletable: bool

    @property
    def object_id_hex(self) -> str:
        """The blob object's ID as text: `0x` and 64 hex digits (`object_id` is its 32 bytes).

        The form results, the CLI and Walrus's JSON (`Blob.id`) show, and operations accept.
        """
        return "0x" + self.object_id.hex()

    @property
    def end_epoch(self) -> int:
        """The first epoch in which the blob is no longer stored (exclusive end)."""
        return self.storage.end_epoch


@dataclass(frozen=True, slots=True)
class Registration:
    """The result of reserve-and-register: the new blob object and what it cost."""

    blob: BlobRecord
    cost: int
    tx_hash: bytes


@dataclass(frozen=True, slots=True)
class ChallengeState:
    """The storage challenge of one epoch as the chain holds it (Challenges.vy).

    `seed_block` is 0 until the challenge is scheduled; `seed` is empty until it started;
    `window_opens_at` is when it may be scheduled (chain seconds); `passed` maps the node IDs
    certified so far to the number of blobs their certificate covers.
    """

    epoch: int
    seed_block: int
    seed: bytes
    started: bool
    window_opens_at: int
    passed: Mapping[bytes, int]


class ChainReader(Protocol):
    """Read access to the control plane."""

    async def system_info(self) -> SystemInfo:
        """Current parameters and state of the System contract."""
        ...

    async def committee(self) -> Committee:
        """The committee of the current epoch."""
        ...

    async def epoch_committees(self) -> EpochCommittees:
        """The current and the previous committee, and whether the epoch change is underway."""
        ...

    async def get_blob(self, object_id: bytes) -> BlobRecord | None:
        """The blob object `object_id`, or None if it does not exist (or was deleted)."""
        ...

    async def blob_attribute(self, object_id: bytes) -> BlobAttribute | None:
        """The attribute of the live blob object `object_id` (its key-value pairs in order), or
        None if it has none (or is no live blob)."""
        ...

    async def owned_storage(self, owner: str) -> Sequence[StorageRecord]:
        """Every storage resource `owner` holds unwrapped (not in a blob), expired ones too."""
        ...

    async def shared_blob(self, shared_blob_id: bytes) -> SharedBlobRecord | None:
        """The shared blob `shared_blob_id`, or None if there is none."""
        ...

    async def owned_blobs(self, owner: str) -> Sequence[BlobRecord]:
        """Every blob object `owner` holds."""
        ...

    async def events(self, cursor: EventCursor, limit: int) -> Sequence[ChainEvent]:
        """Up to `limit` events at or after `cursor`, in chain order, from final blocks (or
        blocks the configured number of confirmations deep).

        Raises `ChainReorganizedError` if `cursor.block_hash` is set and block
        `cursor.block_number` is no longer that block (or no longer exists).
        """
        ...

    async def watch_heads(self, on_head: Callable[[], None], ws_url: str | None = None) -> None:
        """Call `on_head` as each block is mined, for as long as the chain pushes new heads
        (until cancelled); return at once if it does not (then only polling sees them)."""
        ...

    async def blob_events(self, blob_id: BlobId) -> Sequence[ChainEvent]:
        """Every event that names `blob_id` (registrations, certifications, deletions, an
        invalidation), in chain order: the blob's history, for explaining why it is gone."""
        ...

    async def chain_time(self) -> int:
        """The timestamp of the latest block, in seconds (epochs are measured in it)."""
        ...

    async def challenge_state(self, epoch: int) -> ChallengeState:
        """The storage challenge of `epoch` (node/challenges.py)."""
        ...

    async def epoch_step_due_at(self) -> int | None:
        """When `advance_epoch` may next do something (chain seconds); None: not until the
        new committee has reported its shards (staking)."""
        ...


class ChainWriter(ChainReader, Protocol):
    """Transactions from one account."""

    @property
    def address(self) -> str:
        """The account's address (checksummed hex)."""
        ...

    async def wal_balance(self, owner: str | None = None) -> int:
        """WAL (in FROST) held by `owner`, this account by default."""
        ...

    async def transfer_wal(self, to: str, amount: int) -> None:
        """Send `amount` FROST of WAL to `to` (devnets fund their clients with it)."""
        ...

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
        """Buy storage for `epochs_ahead` epochs and register the blob on it, in one transaction."""
        ...

    async def certify_blob(
        self, object_id: bytes, certificate: Certificate, *, n_members: int | None = None
    ) -> None:
        """Post the quorum certificate over the blob's BLOB_CERT message (its availability).

        `n_members`: the size of the committee that signed it, if the caller knows it (else it
        is read: the signers' bitmap has a bit per member)."""
        ...

    async def extend_blob(self, object_id: bytes, extended_epochs: int) -> None:
        """Pay to keep a certified blob for `extended_epochs` more epochs."""
        ...

    async def delete_blob(self, object_id: bytes) -> StorageRecord:
        """Delete a deletable blob this account owns; its storage comes back to the account."""
        ...

    async def transfer_blob(self, object_id: bytes, to: str) -> None:
        """Give a blob object this account owns to the EVM address `to`."""
        ...

    async def set_blob_attribute_pairs(
        self, object_id: bytes, pairs: Sequence[tuple[str, str]]
    ) -> None:
        """Insert or update key-value pairs of the attribute of a blob this account owns."""
        ...

    async def remove_blob_attribute_pairs(self, object_id: bytes, keys: Sequence[str]) -> None:
        """Remove keys (each must be there) from the attribute of a blob this account owns."""
        ...

    async def remove_blob_attribute(self, object_id: bytes) -> None:
        """Remove the whole attribute (it must exist) of a blob this account owns."""
        ...

    async def register_blob(
        self,
        storage_id: bytes,
        *,
        blob_id: BlobId,
        root_hash: bytes,
        unencoded_size: int,
        deletable: bool,
    ) -> Registration:
        """Register a blob on a storage resource this account owns (current, large enough);
        only the write fee is paid."""
        ...

    async def share_blob(self, object_id: bytes, amount: int) -> bytes:
        """Share a blob this account owns, funded with `amount` FROST: it gives the object up
        to SharedBlobs.vy. Returns the shared blob's ID."""
        ...

    async def fund_shared_blob(self, shared_blob_id: bytes, amount: int) -> None:
        """Add `amount` FROST of this account's to a shared blob's funds."""
        ...

    async def extend_shared_blob(self, shared_blob_id: bytes, extended_epochs: int) -> None:
        """Extend a shared blob's lifetime, paid from its funds."""
        ...

    async def burn_blob(self, object_id: bytes) -> None:
        """Drop a blob object this account owns, and its storage, without a refund or an event
        (nodes keep the data until its end epoch; the blob can no longer be extended)."""
        ...

    async def invalidate_blob_id(
        self, certificate: Certificate, *, n_members: int | None = None
    ) -> BlobId:
        """Post a validity certificate over INVALID_BLOB_ID: the blob is marked invalid.
        `n_members` as for `certify_blob`."""
        ...

    async def advance_epoch(self) -> bool:
        """Take the next epoch step if its time has come (start the next epoch; under staking,
        select or install the next committee); False if it is too early or already done."""
        ...

    async def schedule_challenge(self) -> bool:
        """Fix the seed block of this epoch's storage challenge once its window is open; False
        if it is too early or already done."""
        ...

    async def start_challenge(self) -> bool:
        """Start this epoch's storage challenge once its seed block is mined (ChallengeStart);
        False if it is too early or already done."""
        ...

    async def certify_challenge(
        self,
        node_id: bytes,
        blobs_checked: int,
        certificate: Certificate,
        *,
        n_members: int | None = None,
    ) -> None:
        """Post `node_id`'s certificate for this epoch's storage challenge (ChallengeCertified).
        `n_members` as for `certify_blob`."""
        ...

    async def epoch_sync_done(self, epoch: int) -> bool:
        """Report that this account's node holds all its shards of `epoch`; False if there is
        nothing to report (a fixed committee, no node in the committee, already reported)."""
        ...

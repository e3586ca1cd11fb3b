"""The reading half of the EVM chain client: `ChainReader` over Ethereum JSON-RPC.

Theory of operation (spec/walrus-system.md 1.5, 2.1, 2.6, 2.9). Reads are `eth_call`s of the System,
Committee, Challenges and WAL views pinned to one block number, so a record assembled from several
views is a consistent snapshot. The committee is read from System's current Committee contract:
members in committee (bitmap) order, keys as EIP-2537 points that `BlsPublicKey.from_eip2537` checks
to be in the G1 subgroup (and that must equal the contract's compressed form), shards from the
contract's shard assignment. A sealed Committee changes only when Staking refills it for a later
epoch, so its members are cached by address and epoch. A staking deployment also gets `staking`, the
client of its Staking and Pools contracts (`walruspy.chain.evm_staking`). Events come from
`walruspy.chain.evm_events`. `walruspy.chain.evm` builds the writer on top of this class and opens
both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final, TypeVar

from web3 import AsyncWeb3
from web3.types import BlockIdentifier

from walruspy.chain.api import (
    BlobAttribute,
    BlobRecord,
    ChainRevertError,
    ChainUnavailableError,
    ChallengeState,
    EpochCommittees,
    SharedBlobRecord,
    StorageRecord,
    SystemInfo,
)
from walruspy.chain.contracts import Abi
from walruspy.chain.deploy import Deployment
from walruspy.chain.events import ChainEvent, EventCursor
from walruspy.chain.evm_events import DEFAULT_MAX_SPAN_BLOCKS, EventDecoder, LogReader
from walruspy.chain.evm_rpc import (
    BlockHeader,
    ConnectorFactory,
    ContractHandle,
    TransactionSender,
    block_header,
    rpc_errors,
)
from walruspy.chain.evm_staking import EpochState, EvmStaking
from walruspy.chain.new_heads import follow_new_heads, websocket_url
from walruspy.core.blob_id import BlobId
from walruspy.core.committee import Committee, CommitteeMember
from walruspy.core.crypto import BlsPublicKey
from walruspy.core.errors import WalrusError
from walruspy.tasks import gather_reads

__all__ = ["EvmChainReader"]

# Concurrent eth_calls of one listing (owned_blobs): enough to hide round trips, few enough not
# to flood a public endpoint's rate limit.
_MAX_CONCURRENT_READS: Final = 16
# objects.vy MAX_PAGE: the longest page of IDs one listing view returns.
_ID_PAGE: Final = 256

T = TypeVar("T")
# Committee contracts whose members are cached; one per epoch once committees change.
_COMMITTEE_CACHE_ENTRIES: Final = 4
_REVERT_UNKNOWN_BLOB: Final = "unknown blob"


class EvmChainReader:
    """`ChainReader` over JSON-RPC; see the module doc. Build it with `open_evm_chain`."""

    def __init__(
        self,
        w3: AsyncWeb3[Any],
        url: str,
        deployment: Deployment,
        abis: dict[str, Abi],
        *,
        confirmations: int = 0,
        max_span_blocks: int = DEFAULT_MAX_SPAN_BLOCKS,
        sender: TransactionSender | None = None,
        connector: ConnectorFactory | None = None,
    ) -> None:
        if confirmations < 0:
            raise ValueError("confirmations cannot be negative")
        self._w3 = w3
        self.url = url
        self._connector = connector
        self.deployment = deployment
        self._abis = abis
        self._confirmations = confirmations
        self._system = ContractHandle(w3, url, deployment.system, abis["System"])
        self._wal = ContractHandle(w3, url, deployment.wal, abis["Wal"])
        self._challenges = ContractHandle(w3, url, deployment.challenges, abis["Challenges"])
        self._attributes = ContractHandle(w3, url, deployment.attributes, abis["Attributes"])
        self._shared_blobs = ContractHandle(w3, url, deployment.shared_blobs, abis["SharedBlobs"])
        self._decoder = EventDecoder(abis["System"] + abis["Challenges"])
        event_sources = [deployment.system, deployment.challenges]
        self.staking: EvmStaking | None = None
        if deployment.staking is not None and deployment.pools is not None:
            event_sources.append(deployment.staking)
            self.staking = EvmStaking(
                w3,
                url,
                deployment.staking,
                deployment.pools,
                wal=self._wal,
                abis=abis,
                sender=sender,
            )
        self._events = LogReader(
            w3,
            url,
            event_sources,
            self._decoder,
            start_block=deployment.start_block,
            max_span_blocks=max_span_blocks,
        )
        self._members: dict[tuple[str, int], tuple[tuple[CommitteeMember, ...], int]] = {}
        self._n_shards: int | None = None
        #: The last `epoch_committees` answer (`_CommitteesRead`).
        self._committees_read: _CommitteesRead | None = None

    async def _head(self) -> int:
        with rpc_errors(self.url, "read the block number"):
            return int(await self._w3.eth.block_number)

    async def system_info(self) -> SystemInfo:
        """Current parameters and state of the System contract (one block's snapshot)."""
        head = await self._head()
        names = (
            "epoch", "n_shards", "epoch_duration_s", "epoch_start_s", "max_epochs_ahead",
            "storage_price_per_unit_size", "write_price_per_unit_size", "total_capacity_size",
            "used_capacity_size",
        )  # fmt: skip
        values = await gather_reads(*(self._system.view(n, block=head) for n in names))
        v = dict(zip(names, (int(x) for x in values), strict=True))
        return SystemInfo(
            chain_id=self.deployment.chain_id,
            system_address=self.deployment.system,
            wal_address=self.deployment.wal,
            epoch=v["epoch"],
            n_shards=v["n_shards"],
            epoch_duration_s=v["epoch_duration_s"],
            epoch_started_at=v["epoch_start_s"],
            max_epochs_ahead=v["max_epochs_ahead"],
            storage_price_per_unit_size=v["storage_price_per_unit_size"],
            write_price_per_unit_size=v["write_price_per_unit_size"],
            total_capacity_size=v["total_capacity_size"],
            used_capacity_size=v["used_capacity_size"],
        )

    async def n_shards(self) -> int:
        """The number of shards (fixed for the life of the system, so read once)."""
        if self._n_shards is None:
            self._n_shards = int(await self._system.view("n_shards"))
        return self._n_shards

    async def committee(self) -> Committee:
        """The committee of the current epoch, keys decoded and subgroup-checked."""
        head = await self._head()
        epoch, address = await gather_reads(
            self._system.view("epoch", block=head), self._system.view("committee", block=head)
        )
        if int(address, 16) == 0:
            # A staking system in epoch 0: the first committee is not selected yet.
            raise ChainUnavailableError(f"{self.url}: no committee yet (epoch {epoch})")
        return await self._committee_at(str(address), int(epoch), head)

    async def _committee_at(self, address: str, epoch: int, block: int) -> Committee:
        members, n_shards = await self._committee_members(address, epoch, block)
        try:
            return Committee(epoch, n_shards, members)
        except ValueError as exc:
            raise ChainUnavailableError(f"{self.url}: inconsistent committee: {exc}") from exc

    async def epoch_committees(self) -> EpochCommittees:
        """The current and previous committees, and whether the epoch change is underway.

        Under staking the previous epoch's Committee contract keeps its members until the next
        epoch change refills it, and the change is underway while Staking waits for the new
        committee's `epoch_sync_done` reports. A fixed committee has no previous one.

        Every read of a blob asks for them, so the last answer is given again, without a view,
        for as long as it provably holds (`_CommitteesRead.holds_at`): at the block it was
        read at, and at a later block stamped before the epoch can end while no change is
        underway, once the block it was read at is found still on the chain (one header read,
        so a reorganisation is seen). Walrus's client keeps its committees the same way and
        refreshes them when the epoch may have changed.
        """
        latest = await self._latest_block()
        cached = self._committees_read
        if cached is not None and await self._still_holds(cached, latest):
            self._committees_read = replace(cached, number=latest.number, hash=latest.hash)
            return cached.committees
        head = latest.number
        reads = [
            self._system.view("epoch", block=head),
            self._system.view("committee", block=head),
            self._system.view("previous_committee", block=head),
            self._system.view("epoch_start_s", block=head),
            self._system.view("epoch_duration_s", block=head),
        ]
        if self.staking is not None:
            reads.append(self.staking.epoch_state(block=head))
        values = await gather_reads(*reads)
        epoch, address, previous_address = int(values[0]), str(values[1]), str(values[2])
        if int(address, 16) == 0:
            raise ChainUnavailableError(f"{self.url}: no committee yet (epoch {epoch})")
        current = await self._committee_at(address, epoch, head)
        previous = None
        if int(previous_address, 16) != 0 and previous_address != address and epoch > 0:
            previous = await self._committee_at(previous_address, epoch - 1, head)
        changing = self.staking is not None and values[5] is EpochState.EPOCH_CHANGE_SYNC
        committees = EpochCommittees(current, previous, changing)
        ends_at = int(values[3]) + int(values[4])
        self._committees_read = _CommitteesRead(head, latest.hash, committees, ends_at)
        return committees

    async def _still_holds(self, cached: _CommitteesRead, latest: BlockHeader) -> bool:
        if latest.hash == cached.hash:
            return True
        if not cached.holds_at(latest):
            return False
        with rpc_errors(self.url, "read a block"):
            then = await block_header(self._w3, cached.number)
        return then is not None and then.hash == cached.hash

    async def _committee_members(
        self, address: str, epoch: int, block: BlockIdentifier = "latest"
    ) -> tuple[tuple[CommitteeMember, ...], int]:
        # Under staking the two Committee contracts are refilled every other epoch, so the
        # members are cached per contract and epoch.
        cached = self._members.get((address, epoch))
        if cached is not None:
            return cached
        contract = ContractHandle(self._w3, self.url, address, self._abis["Committee"])
        infos, owners, n_shards = await gather_reads(
            contract.view("committee_members", block=block),
            contract.view("shard_assignment", block=block),
            contract.view("n_shards", block=block),
        )
        shards: list[list[int]] = [[] for _ in infos]
        try:
            for shard, owner in enumerate(bytes(owners)):
                shards[owner].append(shard)
            members = tuple(
                _member(info, tuple(held)) for info, held in zip(infos, shards, strict=True)
            )
        except (IndexError, ValueError, WalrusError) as exc:
            raise ChainUnavailableError(f"{self.url}: committee {address}: {exc}") from exc
        if len(self._members) >= _COMMITTEE_CACHE_ENTRIES:
            self._members.pop(next(iter(self._members)))
        self._members[(address, epoch)] = (members, int(n_shards))
        return members, int(n_shards)

    async def get_blob(self, object_id: bytes) -> BlobRecord | None:
        """The blob object `object_id`, or None if there is none (never was, or deleted)."""
        return await self._blob_at(object_id, await self._head())

    async def blob_attribute(self, object_id: bytes) -> BlobAttribute | None:
        """The attribute of the live blob `object_id` (Attributes.vy), or None."""
        present, pairs = await self._attributes.view("attribute", object_id)
        if not present:
            return None
        return tuple((str(key), str(value)) for key, value in pairs)

    async def shared_blob(self, shared_blob_id: bytes) -> SharedBlobRecord | None:
        """The shared blob `shared_blob_id` (SharedBlobs.vy), or None."""
        try:
            blob_object_id, funds = await self._shared_blobs.view("shared_blob", shared_blob_id)
        except ChainRevertError as exc:
            if exc.reason == "unknown shared blob":
                return None
            raise
        return SharedBlobRecord(shared_blob_id, bytes(blob_object_id), int(funds))

    async def _blob_at(
        self, object_id: bytes, block: int, owner: str | None = None
    ) -> BlobRecord | None:
        try:
            if owner is None:
                record, holder = await gather_reads(
                    self._system.view("blob", object_id, block=block),
                    self._system.view("owner_of", object_id, block=block),
                )
                owner = str(holder)
            else:
                record = await self._system.view("blob", object_id, block=block)
        except ChainRevertError as exc:
            if exc.reason == _REVERT_UNKNOWN_BLOB:
                return None
            raise
        return _blob_record(object_id, owner, record)

    async def owned_blobs(self, owner: str) -> Sequence[BlobRecord]:
        """Every blob object `owner` holds (expired ones too, until burnt), at one block."""
        owner = AsyncWeb3.to_checksum_address(owner)
        head = await self._head()

        async def read(object_id: bytes) -> BlobRecord | None:
            return await self._blob_at(object_id, head, owner)

        records = await self._read_owned("blob", owner, head, read)
        return [r for r in records if r is not None]

    async def owned_storage(self, owner: str) -> Sequence[StorageRecord]:
        """Every storage resource `owner` holds unwrapped, at one block."""
        owner = AsyncWeb3.to_checksum_address(owner)
        head = await self._head()

        async def read(storage_id: bytes) -> StorageRecord:
            start, end, size = await self._system.view("storage", storage_id, block=head)
            return StorageRecord(storage_id, owner, int(start), int(end), int(size))

        return await self._read_owned("storage", owner, head, read)

    async def _read_owned(
        self, kind: str, owner: str, head: int, read: Callable[[bytes], Awaitable[T]]
    ) -> list[T]:
        """`read` of every object of `kind` ("blob", "storage") in `owner`'s index at `head`
        (objects.vy `<kind>_count_of` and `<kind>_ids_of`, paged), a bounded number at once."""
        count = int(await self._system.view(f"{kind}_count_of", owner, block=head))
        pages = await gather_reads(
            *(
                self._system.view(f"{kind}_ids_of", owner, start, _ID_PAGE, block=head)
                for start in range(0, count, _ID_PAGE)
            )
        )
        limit = asyncio.Semaphore(_MAX_CONCURRENT_READS)

        async def bounded(object_id: bytes) -> T:
            async with limit:
                return await read(object_id)

        return list(await gather_reads(*(bounded(bytes(i)) for page in pages for i in page)))

    async def events(self, cursor: EventCursor, limit: int) -> Sequence[ChainEvent]:
        """Up to `limit` events at or after `cursor`, in chain order (evm_events)."""
        tip = await self._events.block()
        if self._confirmations:
            tip = await self._events.block(max(0, tip.number - self._confirmations))
        return await self._events.read(cursor, limit, tip)

    async def watch_heads(self, on_head: Callable[[], None], ws_url: str | None = None) -> None:
        """Call `on_head` as each block is mined, for as long as the endpoint pushes its heads
        (chain/new_heads.py; `ws_url` defaults to the WebSocket beside the JSON-RPC URL);
        return at once if it has no subscriptions."""
        url = ws_url or websocket_url(self.url)
        await follow_new_heads(url, on_head, connector=self._connector)

    async def blob_events(self, blob_id: BlobId) -> Sequence[ChainEvent]:
        """Every event that names `blob_id`, in chain order (evm_events)."""
        return await self._events.events_naming(blob_id.raw, await self._events.block())

    async def epoch_step_due_at(self) -> int | None:
        """When the next permissionless epoch step may be taken (chain seconds).

        With a fixed committee, System's `advance_epoch` at the end of the epoch; with staking,
        `voting_end` or `initiate_epoch_change`, or None while the new committee reports its
        shards (no step is due until a quorum has).
        """
        if self.staking is not None:
            return (await self.staking.state()).next_step_at()
        info = await self.system_info()
        return info.epoch_started_at + info.epoch_duration_s

    async def challenge_state(self, epoch: int) -> ChallengeState:
        """The storage challenge of `epoch` (Challenges.vy), read at one block.

        `window_opens_at` is known for the current epoch only (System keeps no past epoch's
        start): 0 for any other. `passed` lists every node certified for `epoch`, also after
        its committee is gone.
        """
        head = await self._head()
        (seed_block, seed, started), (node_ids, counts), current = await gather_reads(
            self._challenges.view("challenge_of", epoch, block=head),
            self._challenges.view("passed_nodes", epoch, block=head),
            self._system.view("epoch", block=head),
        )
        opens = 0
        if int(current) == epoch:
            opens = int(await self._challenges.view("window_opens_at", block=head))
        return ChallengeState(
            epoch=epoch,
            seed_block=int(seed_block),
            seed=bytes(seed) if started else b"",
            started=bool(started),
            window_opens_at=opens,
            passed={bytes(n): int(c) for n, c in zip(node_ids, counts, strict=True)},
        )

    async def chain_time(self) -> int:
        """The timestamp of the latest block, in seconds."""
        return (await self._latest_block()).timestamp

    async def _latest_block(self) -> BlockHeader:
        with rpc_errors(self.url, "read the latest block"):
            header = await block_header(self._w3)
        if header is None:
            raise ChainUnavailableError(f"{self.url}: the node answered no latest block")
        return header

    async def wal_balance(self, owner: str) -> int:
        """WAL (in FROST) held by `owner`."""
        return int(await self._wal.view("balanceOf", AsyncWeb3.to_checksum_address(owner)))

    async def native_balance(self, owner: str) -> int:
        """The chain's native coin (in wei) held by `owner`: what pays for gas."""
        with rpc_errors(self.url, "read the balance"):
            balance = await self._w3.eth.get_balance(AsyncWeb3.to_checksum_address(owner))
        return int(balance)


@dataclass(frozen=True, slots=True)
class _CommitteesRead:
    """An `epoch_committees` answer and the block it holds at (number and hash).

    No epoch can start in a block stamped before `ends_at`, the epoch's start plus its duration
    in System: `advance_epoch` asserts it, and Staking's `initiate_epoch_change` waits a whole
    epoch from the end of the last change, which came after System's start of this epoch. The
    previous committee, and whether a change is underway, change only with the epoch, except
    while a change is underway (its end comes with the new committee's sync reports, at any
    block). So the answer holds at any later block of the same chain stamped before `ends_at`,
    unless a change was underway."""

    number: int
    hash: bytes
    committees: EpochCommittees
    ends_at: int

    def holds_at(self, latest: BlockHeader) -> bool:
        """Whether the answer holds at `latest`, if the block it was read at is an ancestor."""
        return (
            not self.committees.changing
            and latest.number > self.number
            and latest.timestamp < self.ends_at
        )


def _member(info: Sequence[Any], shards: tuple[int, ...]) -> CommitteeMember:
    node_id, key_eip2537, key_compressed, network_address, weight, network_key = info
    key = BlsPublicKey.from_eip2537(bytes(key_eip2537))
    if key.to_bytes() != bytes(key_compressed):
        raise ValueError(f"node {bytes(node_id).hex()}: its two key encodings differ")
    if int(weight) != len(shards):
        raise ValueError(f"node {bytes(node_id).hex()}: weight {weight} but {len(shards)} shards")
    return CommitteeMember(
        bytes(node_id), key, str(network_address), shards, network_public_key=bytes(network_key)
    )


def _blob_record(object_id: bytes, owner: str, record: Sequence[Any]) -> BlobRecord:
    (registered, blob_id, size, encoding, certified, certified_epoch, storage_id, storage,
     deletable) = record  # fmt: skip
    start, end, storage_size = storage
    owner = AsyncWeb3.to_checksum_address(owner)
    return BlobRecord(
        object_id=object_id,
        owner=owner,
        blob_id=BlobId(bytes(blob_id)),
        size=int(size),
        encoding_type=int(encoding),
        registered_epoch=int(registered),
        certified_epoch=int(certified_epoch) if certified else None,
        storage=StorageRecord(bytes(storage_id), owner, int(start), int(end), int(storage_size)),
        deletable=bool(deletable),
    )

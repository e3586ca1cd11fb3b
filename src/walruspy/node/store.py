"""The durable store of a storage node: one LMDB environment with named sub-databases.

Theory of operation (spec/walrus-system.md 3.2 storage layout, 3.3 event processing, 3.7 garbage
collection; DEPENDENCIES.md for the choice of LMDB):

Layout. One environment per node holds these named databases, keys in byte order:

    metadata               blob_id[32] -> BCS BlobMetadata, as received
    shard-{i}/primary      blob_id[32] -> BCS primary sliver of shard i
    shard-{i}/secondary    blob_id[32] -> BCS secondary sliver of shard i
    shard_status           shard u16 BE -> ShardStatus (a shard exists iff it has a status)
    aggregate_blob_info    blob_id[32] -> BlobInfo
    per_object_blob_info   object_id[32] -> PerObjectBlobInfo
    event_cursor           b"cursor" -> EventProgress, b"block_hash" -> hash of its block
    event_undo             events_applied u64 BE -> EventUndo (what a recent event changed)
    node_status            b"status" -> NodeStatus
    garbage_collection     b"progress" -> GcProgress
    shard_sync_progress    shard u16 BE -> ShardSyncProgress (a gained shard being synced)
    store_info             b"format" -> u32 LE format; b"migration", b"scrub" -> progress
    challenges             epoch u32 BE -> ChallengeRecord (the storage challenge of that epoch)

Slivers live in one database per shard and axis, so shard sync streams one in blob-ID order
(`list_slivers`) and a lost shard is emptied in one step (`drop_shard`). The shard changes of an
epoch change are written in one transaction (`apply_shard_changes`), and each batch a shard sync
fetches is stored with its progress record in one transaction (`put_synced_slivers`), so a
restart resumes right after the last stored batch (spec/walrus-system.md 3.5). Records are
encoded as in `store_records.py`.

Integrity at rest (`store_integrity.py`). Metadata and sliver values are sealed with an XXH3-64 of
key and bytes; every read checks it. A record that fails is treated as missing: the read returns
None (never the bad bytes), the record is deleted and reported in `corruption`, from which the
scrubber queues its repair by blob sync. `scrub_batch` lets the scrubber check a table without
copying values. `open` refuses a truncated data file before LMDB maps it, and migrates a store
written before checksums (format 1) in place.

Atomicity and durability. Every public write is one LMDB write transaction: it all happens or none
of it does. The environment is opened with `sync=True`, so `commit` returns only after
fdatasync: when a call returns, its write survives a kill -9 of the process (the page cache has
it) and a power cut (the disk has it). Measured on this project's 2-core VM (ext4, 256 MiB of
256 KiB slivers, three runs): one synced sliver per transaction writes 240-430 MB/s, 0.6-1.1 ms
per sliver, against 1.7-2.9 GB/s for raw LMDB without fsync; 64 slivers per transaction give
280-300 MB/s, so for large values the disk's write bandwidth is the bound, not the number of
commits. A small synced record (one event, one blob info) costs 0.27-0.30 ms against about 7 us
unsynced, which is where the batch methods pay off. Reads: 5.5-7.9 GB/s warm, 1.0-1.2 GB/s cold
(random order). Skipping the fsync would survive kill -9 just as well, but not a power cut, and a
node must not confirm a sliver it can lose.

Events. `apply_event` writes an event's blob-info updates together with the advanced
`EventProgress`, so after a crash the cursor names exactly the last event whose effects are on disk;
it refuses a cursor that does not directly follow the stored one, so no event is skipped or
applied twice. In the same transaction it keeps an `EventUndo`: the event's block hash and the
records it replaced. `undo_last_block` takes back every event of the newest block applied, in one
transaction, when the chain reorganises that block away (node/events.py); undo records older
than the window the caller gives are pruned as events arrive. Data an undone event deleted stays
deleted (the blob sync fetches it again); data of a registration taken back stays on disk and is
no longer served, since reads require a registration.

Growth. The map size is the largest the file may become, not its size: on Linux the file grows
with the data. When a write finds the map full (`lmdb.MapFullError`) the store waits for every
transaction of the process to finish, doubles the map (up to `max_map_size_bytes`) and retries the
whole write; `_Gate` makes "no transaction in flight" true while it resizes, as LMDB requires.

Threads. The API is synchronous; the node calls it through `asyncio.to_thread`. LMDB allows many
readers and one writer at a time; database handles are opened once, under a lock, and never
closed (a dropped shard is emptied, not deleted), so a handle is never used after it goes away.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import lmdb

from walruspy.core.params import MAX_N_SHARDS
from walruspy.core.types import ShardIndex, SliverType
from walruspy.logs import get_logger
from walruspy.node import store_integrity as integrity
from walruspy.node.shard_plan import ShardSyncProgress
from walruspy.node.store_integrity import CorruptionReports, CorruptRecord, RecordKind
from walruspy.node.store_records import (
    ID_LEN,
    BlobInfo,
    ChallengeRecord,
    EventProgress,
    EventUndo,
    GcProgress,
    NodeStatus,
    PerObjectBlobInfo,
    ShardStatus,
    StoreCorruptionError,
    StoreError,
    check_id,
    decode_blob_info,
    encode_blob_info,
)

if TYPE_CHECKING:
    from lmdb import _StatDict


class NoMetadataError(Exception):
    """A sliver write that required the blob's metadata found none (see `put_slivers`)."""


class ShardNotSyncingError(StoreError):
    """A synced batch arrived for a shard that is no longer being synced (locked or deleted)."""


T = TypeVar("T")

_log = get_logger("walruspy.node.store")

#: Initial map size. 4 GiB holds a test network's or a devnet node's data without ever growing;
#: on Linux it reserves address space only (the file grows with the data), and a larger default
#: would fail on hosts that cap virtual memory (ulimit -v).
DEFAULT_MAP_SIZE_BYTES = 4 << 30
#: The map never grows beyond this. Walrus's default capacity vote is 250 GB per node; 4 TiB leaves
#: a 16x margin for LMDB's overhead and larger nodes, beyond which growth is a configuration choice.
DEFAULT_MAX_MAP_SIZE_BYTES = 4 << 40
#: How many shards the node can store at once: each takes two database slots, and every LMDB
#: transaction pays a little per slot (measured: 2,000 slots add 5 us per write and 3 us per read).
#: 1,000 is every shard of Walrus Mainnet.
DEFAULT_MAX_SHARDS = 1000
#: LMDB reader slots: one per concurrent read transaction. asyncio.to_thread's default pool has at
#: most 32 threads, and 126 is LMDB's own default.
DEFAULT_MAX_READERS = 126
#: The largest sliver stored. At n = 1000 the largest blob gives primary slivers of
#: 667 symbols x 65,534 bytes = 43.7 MB; smaller committees give smaller slivers.
DEFAULT_MAX_SLIVER_BYTES = 64 << 20
#: The largest metadata: a blob ID, a tag, a length and 64 bytes per shard for 65,535 shards.
MAX_METADATA_BYTES = 64 * MAX_N_SHARDS + 64
#: The most entries one listing returns: Walrus's `max_sliver_count_per_sync_request`.
MAX_LIST_LIMIT = 100_000
#: The most bytes one write transaction may carry. LMDB refuses a transaction that dirties more
#: than 2^17 pages (512 MiB with 4 KiB pages); half of it leaves room for the B-tree pages.
MAX_BATCH_BYTES = 256 << 20
#: The most blob IDs whose data one `delete_blob_data` call removes (Walrus deletes in batches of
#: 2,000 during garbage collection).
MAX_DELETE_BATCH = 2000
#: The most blob-info records one event or one GC step may change.
MAX_RECORD_UPDATES = 10_000
#: How many times a write may find the map full and grow it before giving up: doubling from 4 GiB
#: passes 4 TiB in 10 steps.
MAX_GROWTH_ATTEMPTS = 64

_METADATA = b"metadata"
_SHARD_STATUS = b"shard_status"
_BLOB_INFO = b"aggregate_blob_info"
_PER_OBJECT = b"per_object_blob_info"
_EVENT_CURSOR = b"event_cursor"
_EVENT_UNDO = b"event_undo"
_NODE_STATUS = b"node_status"
_GC = b"garbage_collection"
_SYNC_PROGRESS = b"shard_sync_progress"
_STORE_INFO = b"store_info"
_CHALLENGES = b"challenges"
_CURSOR_KEY = b"cursor"
_CURSOR_HASH_KEY = b"block_hash"
_STATUS_KEY = b"status"
_PROGRESS_KEY = b"progress"
_FIXED_DATABASES = (
    _METADATA,
    _SHARD_STATUS,
    _BLOB_INFO,
    _PER_OBJECT,
    _EVENT_CURSOR,
    _EVENT_UNDO,
    _NODE_STATUS,
    _GC,
    _SYNC_PROGRESS,
    _STORE_INFO,
    _CHALLENGES,
)


def shard_database_name(shard: int, sliver_type: SliverType) -> bytes:
    """`shard-{i}/primary` or `shard-{i}/secondary`."""
    return f"shard-{shard}/{sliver_type.value}".encode()


def _shard_key(shard: int) -> bytes:
    return shard.to_bytes(2, "big")


def _check_shard(shard: int) -> None:
    if isinstance(shard, bool) or not isinstance(shard, int) or not 0 <= shard < MAX_N_SHARDS:
        raise ValueError(f"shard index must be in 0..{MAX_N_SHARDS}, got {shard!r}")


def _check_limit(limit: int) -> None:
    if not 0 < limit <= MAX_LIST_LIMIT:
        raise ValueError(f"limit must be in 1..={MAX_LIST_LIMIT}, got {limit}")


class EventOrderError(ValueError):
    """`apply_event` was given a cursor that does not directly follow the stored one."""


#: Undo records pruned by one `apply_event` at most, so that catching up after a long pause
#: spreads the pruning over many events instead of one long transaction.
MAX_UNDO_PRUNE = 64


@dataclass(frozen=True, slots=True)
class UndoneBlock:
    """What `undo_last_block` took back: the block, the cursor before it, the blob IDs whose
    records it restored, and the hash of the block the restored cursor is in (empty: unknown)."""

    block_number: int
    progress: EventProgress | None
    block_hash: bytes
    blob_ids: tuple[bytes, ...]
    events: int


@dataclass(frozen=True, slots=True)
class ScrubBatch:
    """What one `scrub_batch` checked: records and bytes, the corrupt ones it discarded, and
    where the next batch starts (None: the table is done)."""

    records: int
    size_bytes: int
    corrupt: list[CorruptRecord]
    next_start: bytes | None


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """Where the store lives and its limits; every default is explained where it is defined."""

    path: str | os.PathLike[str]
    map_size_bytes: int = DEFAULT_MAP_SIZE_BYTES
    max_map_size_bytes: int = DEFAULT_MAX_MAP_SIZE_BYTES
    max_shards: int = DEFAULT_MAX_SHARDS
    max_readers: int = DEFAULT_MAX_READERS
    max_sliver_bytes: int = DEFAULT_MAX_SLIVER_BYTES

    def __post_init__(self) -> None:
        if not 1 << 16 <= self.map_size_bytes <= self.max_map_size_bytes:
            raise ValueError("need 64 KiB <= map_size_bytes <= max_map_size_bytes")
        if not 1 <= self.max_shards <= MAX_N_SHARDS:
            raise ValueError(f"max_shards must be in 1..={MAX_N_SHARDS}")
        if not 1 <= self.max_readers <= 4096:
            raise ValueError("max_readers must be in 1..=4096")
        if not 1 <= self.max_sliver_bytes < 1 << 32:
            raise ValueError("max_sliver_bytes must be in 1..2^32 (LMDB's value limit)")


@dataclass(frozen=True, slots=True)
class ShardStats:
    """How much one shard stores: sliver counts and bytes on disk (pages times page size)."""

    primary_slivers: int
    secondary_slivers: int
    disk_bytes: int


@dataclass(frozen=True, slots=True)
class StoreStats:
    """Totals for metrics; O(number of shards) to compute, no scan of the data."""

    metadata_entries: int
    primary_slivers: int
    secondary_slivers: int
    sliver_disk_bytes: int
    used_bytes: int
    map_size_bytes: int


class _Gate:
    """Many transactions at a time, or one map resize alone (LMDB's rule for set_mapsize)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active = 0
        self._resizing = False

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        """Hold while a transaction is open."""
        with self._cond:
            while self._resizing:
                self._cond.wait()
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                if self._active == 0:
                    self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold while resizing: waits for open transactions, keeps new ones out."""
        with self._cond:
            while self._resizing:
                self._cond.wait()
            self._resizing = True
            while self._active:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._resizing = False
                self._cond.notify_all()


class NodeStore:
    """The node's durable store. Open with `NodeStore.open(config)`; use as a context manager."""

    def __init__(self, config: StoreConfig, env: lmdb.Environment) -> None:
        """Wrap an open environment; use `NodeStore.open` instead."""
        self._config = config
        self._env = env
        self._gate = _Gate()
        self._handles_lock = threading.Lock()
        self._dbs: dict[bytes, Any] = {}
        with env.begin(write=True) as txn:
            for name in _FIXED_DATABASES:
                self._dbs[name] = env.open_db(name, txn=txn)
        for shard in self._read(self._shard_indices):
            for sliver_type in SliverType:
                name = shard_database_name(shard, sliver_type)
                self._dbs[name] = env.open_db(name, create=False)
        #: Records that failed their checksum on a read, for the scrubber to repair.
        self.corruption = CorruptionReports()
        self._settle_format()

    @classmethod
    def open(cls, config: StoreConfig) -> NodeStore:
        """Open (creating if needed) the store at `config.path`.

        Refuses a damaged data file before LMDB maps it (`StoreDamagedError`), and a store of a
        newer format; migrates one written before checksums (module docstring).
        """
        os.makedirs(config.path, exist_ok=True)
        integrity.check_data_file(config.path)
        env: lmdb.Environment | None = None
        try:
            env = lmdb.open(
                os.fspath(config.path),
                map_size=config.map_size_bytes,
                max_dbs=2 * config.max_shards + len(_FIXED_DATABASES) + 1,
                max_readers=config.max_readers,
                sync=True,
                metasync=True,
                subdir=True,
            )
            # A map larger than the configured one (grown by an earlier run) is kept.
            return cls(config, env)
        except lmdb.Error as exc:
            if env is not None:
                env.close()
            if isinstance(exc, lmdb.CorruptedError | lmdb.InvalidError | lmdb.PageNotFoundError):
                raise integrity.damaged(config.path, str(exc)) from exc
            raise StoreError(f"cannot open the store at {config.path}: {exc}") from exc
        except StoreError:
            if env is not None:
                env.close()
            raise

    def close(self) -> None:
        """Close the environment; the store must not be used afterwards."""
        with self._gate.exclusive():
            self._env.close()

    def __enter__(self) -> NodeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def map_size_bytes(self) -> int:
        """The current map size (grows when full)."""
        with self._gate.shared():
            return self._map_size()

    def _map_size(self) -> int:
        # Only under the gate: LMDB's env info races a concurrent set_mapsize (EINVAL).
        try:
            return int(self._env.info()["map_size"])
        except lmdb.Error as exc:
            raise StoreError(f"store unavailable: {exc}") from exc

    # --- transactions -----------------------------------------------------------------------

    def _read(self, body: Callable[[lmdb.Transaction[bytes]], T]) -> T:
        try:
            with self._gate.shared(), self._env.begin() as txn:
                return body(txn)
        except lmdb.Error as exc:
            raise StoreError(f"store read failed: {exc}") from exc

    def _read_views(self, body: Callable[[lmdb.Transaction[memoryview]], T]) -> T:
        """`_read` whose values are views of the map, valid only inside `body` (no copy)."""
        try:
            with self._gate.shared(), self._env.begin(buffers=True) as txn:
                return body(txn)
        except lmdb.Error as exc:
            raise StoreError(f"store read failed: {exc}") from exc

    def _write(self, body: Callable[[lmdb.Transaction[bytes]], T]) -> T:
        """Run `body` in one write transaction, growing the map and retrying when it is full."""
        for _ in range(MAX_GROWTH_ATTEMPTS):
            seen = 0
            try:
                with self._gate.shared():
                    seen = self._map_size()
                    with self._env.begin(write=True) as txn:
                        return body(txn)
            except lmdb.MapFullError:
                self._grow(seen)
            except lmdb.Error as exc:
                raise StoreError(f"store write failed: {exc}") from exc
        raise StoreError(f"the map stayed full after {MAX_GROWTH_ATTEMPTS} growths")

    def _grow(self, seen: int) -> None:
        with self._gate.exclusive():
            current = self._map_size()
            if current > seen:
                return  # another thread grew it while we waited
            if current >= self._config.max_map_size_bytes:
                raise StoreError(
                    f"the store is full: map size {current} reached its cap "
                    f"{self._config.max_map_size_bytes}"
                )
            try:
                self._env.set_mapsize(min(2 * current, self._config.max_map_size_bytes))
            except lmdb.Error as exc:
                raise StoreError(f"cannot grow the store's map: {exc}") from exc

    def _db(self, name: bytes) -> Any:
        return self._dbs[name]

    def _shard_db(self, shard: int, sliver_type: SliverType) -> Any | None:
        _check_shard(shard)
        return self._dbs.get(shard_database_name(shard, sliver_type))

    def _shard_indices(self, txn: lmdb.Transaction[bytes]) -> list[int]:
        cursor = txn.cursor(db=self._db(_SHARD_STATUS))
        return [int.from_bytes(key, "big") for key in cursor.iternext(keys=True, values=False)]

    def _require_shard(self, txn: lmdb.Transaction[bytes], shard: int) -> None:
        if txn.get(_shard_key(shard), db=self._db(_SHARD_STATUS)) is None:
            raise ValueError(f"shard {shard} has no storage on this node; create_shard first")

    def _check_sliver(self, sliver: bytes, what: str) -> None:
        if not 0 < len(sliver) <= self._config.max_sliver_bytes:
            raise ValueError(f"{what}: {len(sliver)} bytes, limit {self._config.max_sliver_bytes}")

    # --- shards -----------------------------------------------------------------------------

    def create_shard(self, shard: int, status: ShardStatus = ShardStatus.ACTIVE) -> None:
        """Give `shard` storage on this node (keeping any data it has) and set its status."""
        _check_shard(shard)
        with self._handles_lock:
            opened: dict[bytes, Any] = {}

            def body(txn: lmdb.Transaction[bytes]) -> None:
                for sliver_type in SliverType:
                    name = shard_database_name(shard, sliver_type)
                    if name not in self._dbs:
                        opened[name] = self._env.open_db(name, txn=txn)
                txn.put(_shard_key(shard), status.encode(), db=self._db(_SHARD_STATUS))

            self._write(body)
            self._dbs.update(opened)  # published only once the transaction has committed

    def drop_shard(self, shard: int) -> int:
        """Delete every sliver of `shard`, its status and any sync progress; return how many
        slivers went."""
        return self._write(lambda txn: self._drop_shard_in(txn, shard))

    def _drop_shard_in(self, txn: lmdb.Transaction[bytes], shard: int) -> int:
        removed = 0
        for sliver_type in SliverType:
            db = self._shard_db(shard, sliver_type)
            if db is not None:
                removed += int(txn.stat(db)["entries"])
                txn.drop(db, delete=False)  # empty it; the handle stays valid
        txn.delete(_shard_key(shard), db=self._db(_SHARD_STATUS))
        txn.delete(_shard_key(shard), db=self._db(_SYNC_PROGRESS))
        return removed

    def shards(self) -> dict[int, ShardStatus]:
        """Every shard with storage on this node, and its status."""

        def body(txn: lmdb.Transaction[bytes]) -> dict[int, ShardStatus]:
            cursor = txn.cursor(db=self._db(_SHARD_STATUS))
            return {int.from_bytes(k, "big"): ShardStatus.decode(v) for k, v in cursor}

        return self._read(body)

    def shard_status(self, shard: int) -> ShardStatus | None:
        """The status of `shard`, or None if it has no storage here."""
        _check_shard(shard)
        raw = self._read(lambda txn: txn.get(_shard_key(shard), db=self._db(_SHARD_STATUS)))
        return None if raw is None else ShardStatus.decode(raw)

    def set_shard_status(self, shard: int, status: ShardStatus) -> None:
        """Change the status of an existing shard."""
        _check_shard(shard)

        def body(txn: lmdb.Transaction[bytes]) -> None:
            self._require_shard(txn, shard)
            txn.put(_shard_key(shard), status.encode(), db=self._db(_SHARD_STATUS))

        self._write(body)

    def apply_shard_changes(
        self,
        statuses: Mapping[ShardIndex, ShardStatus | None],
        progress: Mapping[ShardIndex, ShardSyncProgress | None],
    ) -> None:
        """Write an epoch change's shard records in one transaction.

        A status creates the shard's storage if needed (keeping any data) and sets it; None
        deletes the shard's slivers and status. A progress record is set, or deleted for None.
        """
        for shard in (*statuses, *progress):
            _check_shard(shard)
        with self._handles_lock:
            opened: dict[bytes, Any] = {}

            def body(txn: lmdb.Transaction[bytes]) -> None:
                opened.clear()  # a retried transaction opens again
                for shard, status in statuses.items():
                    if status is None:
                        self._drop_shard_in(txn, shard)
                        continue
                    for sliver_type in SliverType:
                        name = shard_database_name(shard, sliver_type)
                        if name not in self._dbs:
                            opened[name] = self._env.open_db(name, txn=txn)
                    txn.put(_shard_key(shard), status.encode(), db=self._db(_SHARD_STATUS))
                for shard, record in progress.items():
                    if record is None:
                        txn.delete(_shard_key(shard), db=self._db(_SYNC_PROGRESS))
                    else:
                        txn.put(_shard_key(shard), record.encode(), db=self._db(_SYNC_PROGRESS))

            self._write(body)
            self._dbs.update(opened)

    def sync_progress(self) -> dict[int, ShardSyncProgress]:
        """The progress record of every shard being synced."""

        def body(txn: lmdb.Transaction[bytes]) -> dict[int, ShardSyncProgress]:
            cursor = txn.cursor(db=self._db(_SYNC_PROGRESS))
            return {int.from_bytes(k, "big"): ShardSyncProgress.decode(v) for k, v in cursor}

        return self._read(body)

    def put_synced_slivers(
        self,
        shard: int,
        sliver_type: SliverType,
        items: Sequence[tuple[bytes, bytes]],
        progress: ShardSyncProgress,
    ) -> list[bytes]:
        """Store one fetched batch of `shard` with the sync's new progress, in one transaction.

        Only while the shard is ACTIVE_SYNC (else `ShardNotSyncingError`: the shard was locked
        or deleted meanwhile, and the batch must not land) and, per sliver, while the blob's
        metadata is stored (GC may have collected it). Returns the blob IDs skipped for want of
        metadata. Slivers already stored are kept as they are.
        """
        self._check_batch(items)
        if progress.shard != shard:
            raise ValueError(f"progress of shard {progress.shard} given for shard {shard}")
        db = self._shard_db(shard, sliver_type)

        def body(txn: lmdb.Transaction[bytes]) -> list[bytes]:
            raw = txn.get(_shard_key(shard), db=self._db(_SHARD_STATUS))
            if db is None or raw is None or ShardStatus.decode(raw) is not ShardStatus.ACTIVE_SYNC:
                raise ShardNotSyncingError(f"shard {shard} is not being synced")
            skipped = []
            for blob_id, sliver in items:
                if txn.get(blob_id, db=self._db(_METADATA)) is None:
                    skipped.append(blob_id)
                else:
                    txn.put(blob_id, integrity.seal(blob_id, sliver), overwrite=False, db=db)
            txn.put(_shard_key(shard), progress.encode(), db=self._db(_SYNC_PROGRESS))
            return skipped

        return self._write(body)

    # --- metadata ---------------------------------------------------------------------------

    def put_metadata(self, blob_id: bytes, metadata: bytes) -> bool:
        """Store the BCS metadata of `blob_id`; False if it was already stored (kept as is)."""
        check_id(blob_id, "blob_id")
        if not 0 < len(metadata) <= MAX_METADATA_BYTES:
            raise ValueError(f"metadata of {len(metadata)} bytes, limit {MAX_METADATA_BYTES}")
        sealed = integrity.seal(blob_id, metadata)
        return self._write(
            lambda txn: bool(txn.put(blob_id, sealed, overwrite=False, db=self._db(_METADATA)))
        )

    def get_metadata(self, blob_id: bytes) -> bytes | None:
        """The stored BCS metadata of `blob_id`, or None (also when it failed its check)."""
        check_id(blob_id, "blob_id")
        value = self._get_sealed(_METADATA, blob_id)
        if value is not None and not 0 < len(value) <= MAX_METADATA_BYTES:
            raise StoreCorruptionError(f"metadata of {len(value)} bytes on disk")
        return value

    def has_metadata(self, blob_id: bytes) -> bool:
        """Whether the metadata of `blob_id` is stored."""
        return self.get_metadata(blob_id) is not None

    def list_metadata_blob_ids(self, start: bytes | None = None, limit: int = 1000) -> list[bytes]:
        """Blob IDs with stored metadata, in order, from `start` (inclusive)."""
        return [key for key, _ in self._scan(self._db(_METADATA), start, limit, values=False)]

    # --- slivers ----------------------------------------------------------------------------

    def put_sliver(
        self, shard: int, sliver_type: SliverType, blob_id: bytes, sliver: bytes
    ) -> bool:
        """Store one BCS sliver; False if the shard already had it (kept as is)."""
        return self.put_slivers(shard, sliver_type, [(blob_id, sliver)]) == 1

    def put_slivers(
        self, shard: int, sliver_type: SliverType, items: Sequence[tuple[bytes, bytes]]
    ) -> int:
        """Store many slivers of one shard and axis in one transaction; return how many were new.

        The shard must exist (`create_shard`). The batch may hold at most `MAX_BATCH_BYTES`.
        Uploads and blob sync use `put_sliver_group`, which also requires the metadata.
        """
        self._check_batch(items)
        db = self._shard_db(shard, sliver_type)
        if db is None:
            raise ValueError(f"shard {shard} has no storage on this node; create_shard first")
        sealed = [(key, integrity.seal(key, value)) for key, value in items]

        def body(txn: lmdb.Transaction[bytes]) -> int:
            self._require_shard(txn, shard)
            return sum(int(txn.put(key, value, overwrite=False, db=db)) for key, value in sealed)

        return self._write(body)

    def put_sliver_group(
        self, items: Sequence[tuple[int, SliverType, bytes, bytes]]
    ) -> list[bool | ValueError | NoMetadataError]:
        """Store slivers of any shards and blobs in ONE transaction (group commit).

        Each item is (shard, type, blob ID, BCS sliver) and is stored only while its blob's
        metadata is stored, checked in the same transaction: garbage collection deletes a blob's
        metadata and slivers in one transaction, so it cannot leave a sliver written meanwhile
        behind. The outcome of each item, in
        order: True if new, False if the shard already had it, or the error that refused that
        item alone (`NoMetadataError`; `ValueError` for a shard without storage). One fsync for
        all: concurrent uploads pay for one commit instead of one each. At most
        `MAX_BATCH_BYTES` in all.
        """
        total = 0
        for _, _, blob_id, sliver in items:
            check_id(blob_id, "blob_id")
            self._check_sliver(sliver, "sliver")
            total += len(sliver)
        if total > MAX_BATCH_BYTES:
            raise ValueError(f"batch of {total} bytes exceeds {MAX_BATCH_BYTES}")

        def body(txn: lmdb.Transaction[bytes]) -> list[bool | ValueError | NoMetadataError]:
            outcomes: list[bool | ValueError | NoMetadataError] = []
            statuses = self._db(_SHARD_STATUS)
            for shard, sliver_type, blob_id, sliver in items:
                db = self._shard_db(shard, sliver_type)
                if db is None or txn.get(_shard_key(shard), db=statuses) is None:
                    outcomes.append(ValueError(f"shard {shard} has no storage on this node"))
                elif txn.get(blob_id, db=self._db(_METADATA)) is None:
                    missing = NoMetadataError(f"blob 0x{blob_id.hex()} has no stored metadata")
                    outcomes.append(missing)
                else:
                    value = integrity.seal(blob_id, sliver)
                    outcomes.append(bool(txn.put(blob_id, value, overwrite=False, db=db)))
            return outcomes

        return self._write(body)

    def get_sliver(self, shard: int, sliver_type: SliverType, blob_id: bytes) -> bytes | None:
        """The stored BCS sliver, or None (also when the shard has no storage here, and when
        the sliver failed its check: then it is deleted and reported, module docstring)."""
        check_id(blob_id, "blob_id")
        if self._shard_db(shard, sliver_type) is None:
            return None
        value = self._get_sealed(shard_database_name(shard, sliver_type), blob_id)
        if value is not None:
            self._check_stored_sliver(value)
        return value

    def has_sliver(self, shard: int, sliver_type: SliverType, blob_id: bytes) -> bool:
        """Whether the shard stores that sliver, without copying it."""
        return self.has_slivers(blob_id, [(shard, sliver_type)])[0]

    def has_slivers(self, blob_id: bytes, keys: Sequence[tuple[int, SliverType]]) -> list[bool]:
        """`has_sliver` for slivers of one blob, each (shard, type), in one read transaction."""
        check_id(blob_id, "blob_id")
        dbs = [self._shard_db(shard, sliver_type) for shard, sliver_type in keys]

        def body(txn: lmdb.Transaction[bytes]) -> list[bool]:
            return [db is not None and bool(txn.cursor(db=db).set_key(blob_id)) for db in dbs]

        return self._read(body)

    def _check_batch(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        """Every (blob ID, sliver) of one write valid, at most `MAX_BATCH_BYTES` in all."""
        total = 0
        for blob_id, sliver in items:
            check_id(blob_id, "blob_id")
            self._check_sliver(sliver, "sliver")
            total += len(sliver)
        if total > MAX_BATCH_BYTES:
            raise ValueError(f"batch of {total} bytes exceeds {MAX_BATCH_BYTES}")

    def _check_stored_sliver(self, value: bytes) -> None:
        if not 0 < len(value) <= self._config.max_sliver_bytes:
            raise StoreCorruptionError(f"sliver of {len(value)} bytes on disk")

    def list_blob_ids(
        self, shard: int, sliver_type: SliverType, start: bytes | None = None, limit: int = 1000
    ) -> list[bytes]:
        """Blob IDs whose sliver the shard stores, in order, from `start` (inclusive)."""
        db = self._shard_db(shard, sliver_type)
        if db is None:
            return []
        return [key for key, _ in self._scan(db, start, limit, values=False)]

    def list_slivers(
        self,
        shard: int,
        sliver_type: SliverType,
        start: bytes | None = None,
        limit: int = 1000,
        max_total_bytes: int = MAX_BATCH_BYTES,
    ) -> list[tuple[bytes, bytes]]:
        """`(blob_id, sliver)` pairs in blob-ID order from `start`, for shard sync.

        Stops at `limit` pairs or once `max_total_bytes` is reached (always at least one pair
        when any is left), so one answer stays bounded in memory.
        """
        db = self._shard_db(shard, sliver_type)
        if db is None:
            return []
        pairs = self._scan(db, start, limit, values=True, max_total_bytes=max_total_bytes)
        name = shard_database_name(shard, sliver_type)
        intact = []
        for key, value in pairs:
            if integrity.is_intact(key, value):
                payload = value[: -integrity.CHECKSUM_BYTES]
                self._check_stored_sliver(payload)
                intact.append((key, payload))
            else:
                self._discard_corrupt(name, key)
        return intact

    def _scan(
        self,
        db: Any,
        start: bytes | None,
        limit: int,
        values: bool,
        max_total_bytes: int = MAX_BATCH_BYTES,
    ) -> list[tuple[bytes, bytes]]:
        _check_limit(limit)
        if start is not None:
            check_id(start, "start")

        def body(txn: lmdb.Transaction[bytes]) -> list[tuple[bytes, bytes]]:
            out: list[tuple[bytes, bytes]] = []
            cursor = txn.cursor(db=db)
            found = cursor.set_range(start) if start is not None else cursor.first()
            size = 0
            while found and len(out) < limit and (not out or size < max_total_bytes):
                key = cursor.key()
                if len(key) != ID_LEN:
                    raise StoreCorruptionError(f"key of {len(key)} bytes in a blob-ID table")
                value = cursor.value() if values else b""
                size += len(value)
                out.append((key, value))
                found = cursor.next()
            return out

        return self._read(body)

    def delete_blob_data(self, blob_ids: Iterable[bytes]) -> int:
        """Delete the metadata and every sliver of each blob, in one transaction.

        Blob info records are kept (an invalid blob must still answer "invalid"). Returns how
        many entries were removed.
        """
        ids = list(blob_ids)
        if len(ids) > MAX_DELETE_BATCH:
            raise ValueError(f"{len(ids)} blobs exceed the batch limit {MAX_DELETE_BATCH}")
        for blob_id in ids:
            check_id(blob_id, "blob_id")
        return self._write(lambda txn: self._delete_data_in(txn, ids))

    def delete_slivers(self, blob_id: bytes) -> int:
        """Delete every stored sliver of `blob_id` (not its metadata); how many there were.

        Only fault injection does this (node/faults.py): an honest node deletes a blob's data
        as a whole (`delete_blob_data`)."""
        check_id(blob_id, "blob_id")

        def body(txn: lmdb.Transaction[bytes]) -> int:
            shard_dbs = [db for name, db in list(self._dbs.items()) if name.startswith(b"shard-")]
            return sum(int(txn.delete(blob_id, db=db)) for db in shard_dbs)

        return self._write(body)

    def _delete_data_in(self, txn: lmdb.Transaction[bytes], blob_ids: Sequence[bytes]) -> int:
        # Snapshot inside the write transaction: a shard created meanwhile is published only
        # after its creating transaction commits, and it can hold no sliver before then.
        shard_dbs = [db for name, db in list(self._dbs.items()) if name.startswith(b"shard-")]
        removed = 0
        for blob_id in blob_ids:
            for db in (self._db(_METADATA), *shard_dbs):
                removed += int(txn.delete(blob_id, db=db))
        return removed

    # --- blob info and events ---------------------------------------------------------------

    def get_blob_info(self, blob_id: bytes) -> BlobInfo | None:
        """The aggregate blob info of `blob_id`, or None."""
        check_id(blob_id, "blob_id")
        raw = self._read(lambda txn: txn.get(blob_id, db=self._db(_BLOB_INFO)))
        return None if raw is None else decode_blob_info(raw)

    def get_per_object_blob_info(self, object_id: bytes) -> PerObjectBlobInfo | None:
        """The record of the `Blob` object `object_id`, or None."""
        check_id(object_id, "object_id")
        raw = self._read(lambda txn: txn.get(object_id, db=self._db(_PER_OBJECT)))
        return None if raw is None else PerObjectBlobInfo.decode(raw)

    def list_blob_infos(
        self, start: bytes | None = None, limit: int = 1000
    ) -> list[tuple[bytes, BlobInfo]]:
        """`(blob_id, BlobInfo)` in blob-ID order from `start`, for garbage collection."""
        pairs = self._scan(self._db(_BLOB_INFO), start, limit, values=True)
        return [(key, decode_blob_info(value)) for key, value in pairs]

    def list_per_object_blob_infos(
        self, start: bytes | None = None, limit: int = 1000
    ) -> list[tuple[bytes, PerObjectBlobInfo]]:
        """`(object_id, PerObjectBlobInfo)` in object-ID order from `start`."""
        pairs = self._scan(self._db(_PER_OBJECT), start, limit, values=True)
        return [(key, PerObjectBlobInfo.decode(value)) for key, value in pairs]

    def event_cursor(self) -> EventProgress | None:
        """The last applied event, or None before the first."""
        raw = self._read(lambda txn: txn.get(_CURSOR_KEY, db=self._db(_EVENT_CURSOR)))
        return None if raw is None else EventProgress.decode(raw)

    def event_block_hash(self) -> bytes:
        """The hash of the block of the last applied event (empty: unknown)."""
        return self._read(self._cursor_hash_in)

    def _cursor_hash_in(self, txn: lmdb.Transaction[bytes]) -> bytes:
        return txn.get(_CURSOR_HASH_KEY, b"", db=self._db(_EVENT_CURSOR)) or b""

    def _last_undo(self, txn: lmdb.Transaction[bytes]) -> EventUndo | None:
        cursor = txn.cursor(db=self._db(_EVENT_UNDO))
        return EventUndo.decode(cursor.value()) if cursor.last() else None

    def apply_event(
        self,
        cursor: EventProgress,
        blob_infos: Mapping[bytes, BlobInfo | None] | None = None,
        per_object_blob_infos: Mapping[bytes, PerObjectBlobInfo | None] | None = None,
        delete_data_of: Sequence[bytes] = (),
        *,
        block_hash: bytes = b"",
        undo_window_blocks: int = 0,
        challenge: ChallengeRecord | None = None,
    ) -> None:
        """Apply one event's effects and advance the cursor to it, atomically.

        `cursor` must directly follow the stored one: one more event applied, at a later chain
        position (use `EventProgress.after`). Records mapped to None are deleted; `delete_data_of`
        lists blobs whose metadata and slivers go too (invalid blobs, immediate deletion).
        An `EventUndo` is kept with `block_hash`; undo records of blocks more than
        `undo_window_blocks` before this one are pruned (0: keep only this event's).
        `challenge` is the storage challenge a ChallengeStart event begins (replacing any record
        of its epoch); records of earlier epochs are dropped with it.
        """
        blob_updates = self._encode_updates(blob_infos, "blob_id", encode_blob_info)
        object_updates = self._encode_updates(
            per_object_blob_infos, "object_id", PerObjectBlobInfo.encode
        )
        if len(delete_data_of) > MAX_DELETE_BATCH:
            raise ValueError(f"{len(delete_data_of)} blobs exceed {MAX_DELETE_BATCH}")
        for blob_id in delete_data_of:
            check_id(blob_id, "blob_id")
        if undo_window_blocks < 0:
            raise ValueError(f"undo window must not be negative, got {undo_window_blocks}")

        def body(txn: lmdb.Transaction[bytes]) -> None:
            raw = txn.get(_CURSOR_KEY, db=self._db(_EVENT_CURSOR))
            stored = None if raw is None else EventProgress.decode(raw)
            expected = 1 if stored is None else stored.events_applied + 1
            if cursor.events_applied != expected or (
                stored is not None and cursor.position <= stored.position
            ):
                raise EventOrderError(f"cursor {cursor} does not directly follow {stored}")
            blob_db, object_db = self._db(_BLOB_INFO), self._db(_PER_OBJECT)
            undo = EventUndo(
                cursor,
                block_hash,
                stored,
                self._cursor_hash_in(txn),
                tuple((key, txn.get(key, db=blob_db)) for key, _ in blob_updates),
                tuple((key, txn.get(key, db=object_db)) for key, _ in object_updates),
            )
            self._apply_updates(txn, blob_updates, object_updates)
            self._delete_data_in(txn, delete_data_of)
            txn.put(_CURSOR_KEY, cursor.encode(), db=self._db(_EVENT_CURSOR))
            txn.put(_CURSOR_HASH_KEY, block_hash, db=self._db(_EVENT_CURSOR))
            undo_db = self._db(_EVENT_UNDO)
            txn.put(cursor.events_applied.to_bytes(8, "big"), undo.encode(), db=undo_db)
            self._prune_undo(txn, cursor.block_number - undo_window_blocks)
            if challenge is not None:
                self._put_challenge(txn, challenge, encoded_challenge)

        encoded_challenge = b"" if challenge is None else challenge.encode()
        self._write(body)

    def _put_challenge(
        self, txn: lmdb.Transaction[bytes], challenge: ChallengeRecord, encoded: bytes
    ) -> None:
        db = self._db(_CHALLENGES)
        cursor = txn.cursor(db=db)
        while cursor.first() and int.from_bytes(cursor.key(), "big") < challenge.epoch:
            cursor.delete()  # one epoch's challenge at a time: earlier ones are over
        txn.put(challenge.epoch.to_bytes(4, "big"), encoded, db=db)

    def challenge(self, epoch: int) -> ChallengeRecord | None:
        """The storage challenge of `epoch` this node derived, or None."""
        key = epoch.to_bytes(4, "big")
        raw = self._read(lambda txn: txn.get(key, db=self._db(_CHALLENGES)))
        return None if raw is None else ChallengeRecord.decode(raw)

    def _prune_undo(self, txn: lmdb.Transaction[bytes], before_block: int) -> None:
        undo_cursor = txn.cursor(db=self._db(_EVENT_UNDO))
        for _ in range(MAX_UNDO_PRUNE):
            if not undo_cursor.first():
                return
            if EventUndo.decode(undo_cursor.value()).progress.block_number >= before_block:
                return
            undo_cursor.delete()

    def undo_last_block(self) -> UndoneBlock | None:
        """Take back every event of the newest block applied, in one transaction.

        Restores the records those events replaced and the cursor from before them. Returns
        None if no undo record covers the stored cursor (the window was passed, or nothing was
        applied): the caller cannot rewind further.
        """

        def body(txn: lmdb.Transaction[bytes]) -> UndoneBlock | None:
            raw = txn.get(_CURSOR_KEY, db=self._db(_EVENT_CURSOR))
            last = self._last_undo(txn)
            if raw is None or last is None or last.progress != EventProgress.decode(raw):
                return None
            block = last.progress.block_number
            undo_db = self._db(_EVENT_UNDO)
            blob_db, object_db = self._db(_BLOB_INFO), self._db(_PER_OBJECT)
            restored: dict[bytes, None] = {}
            events = 0
            previous: EventProgress | None = last.progress
            previous_hash = last.block_hash
            while (
                last is not None
                and last.progress == previous
                and (last.progress.block_number == block)
            ):
                for db, entries in ((blob_db, last.blob_infos), (object_db, last.objects)):
                    for key, before in reversed(entries):
                        if before is None:
                            txn.delete(key, db=db)
                        else:
                            txn.put(key, before, db=db)
                restored.update((key, None) for key, _ in last.blob_infos)
                txn.delete(last.progress.events_applied.to_bytes(8, "big"), db=undo_db)
                previous, previous_hash = last.previous, last.previous_block_hash
                events += 1
                last = self._last_undo(txn)
            cursor_db = self._db(_EVENT_CURSOR)
            if previous is None:
                txn.delete(_CURSOR_KEY, db=cursor_db)
            else:
                txn.put(_CURSOR_KEY, previous.encode(), db=cursor_db)
            txn.put(_CURSOR_HASH_KEY, previous_hash, db=cursor_db)
            return UndoneBlock(block, previous, previous_hash, tuple(restored), events)

        return self._write(body)

    def update_blob_infos(
        self,
        blob_infos: Mapping[bytes, BlobInfo | None] | None = None,
        per_object_blob_infos: Mapping[bytes, PerObjectBlobInfo | None] | None = None,
    ) -> None:
        """Write or delete blob-info records outside the event stream (garbage collection)."""
        blob_updates = self._encode_updates(blob_infos, "blob_id", encode_blob_info)
        object_updates = self._encode_updates(
            per_object_blob_infos, "object_id", PerObjectBlobInfo.encode
        )
        self._write(lambda txn: self._apply_updates(txn, blob_updates, object_updates))

    @staticmethod
    def _encode_updates(
        updates: Mapping[bytes, Any] | None, what: str, encode: Callable[[Any], bytes]
    ) -> list[tuple[bytes, bytes | None]]:
        items = list((updates or {}).items())
        if len(items) > MAX_RECORD_UPDATES:
            raise ValueError(f"{len(items)} record updates exceed {MAX_RECORD_UPDATES}")
        encoded: list[tuple[bytes, bytes | None]] = []
        for key, record in items:
            check_id(key, what)
            encoded.append((key, None if record is None else encode(record)))
        return encoded

    def _apply_updates(
        self,
        txn: lmdb.Transaction[bytes],
        blob_updates: Sequence[tuple[bytes, bytes | None]],
        object_updates: Sequence[tuple[bytes, bytes | None]],
    ) -> None:
        tables = ((self._db(_BLOB_INFO), blob_updates), (self._db(_PER_OBJECT), object_updates))
        for db, updates in tables:
            for key, value in updates:
                if value is None:
                    txn.delete(key, db=db)
                else:
                    txn.put(key, value, db=db)

    # --- node status and garbage collection ---------------------------------------------------

    def node_status(self) -> NodeStatus | None:
        """The stored node status, or None on first start."""
        raw = self._read(lambda txn: txn.get(_STATUS_KEY, db=self._db(_NODE_STATUS)))
        return None if raw is None else NodeStatus.decode(raw)

    def set_node_status(self, status: NodeStatus) -> None:
        """Persist the node status."""
        encoded = status.encode()
        self._write(lambda txn: txn.put(_STATUS_KEY, encoded, db=self._db(_NODE_STATUS)))

    def gc_progress(self) -> GcProgress:
        """The garbage-collection progress (empty before the first run)."""
        raw = self._read(lambda txn: txn.get(_PROGRESS_KEY, db=self._db(_GC)))
        return GcProgress() if raw is None else GcProgress.decode(raw)

    def set_gc_progress(self, progress: GcProgress) -> None:
        """Persist the garbage-collection progress."""
        encoded = progress.encode()
        self._write(lambda txn: txn.put(_PROGRESS_KEY, encoded, db=self._db(_GC)))

    # --- integrity at rest (store_integrity.py) -----------------------------------------------

    def _settle_format(self) -> None:
        """Write the format of a new store, migrate an unsealed one, refuse a newer one."""
        info_db = self._db(_STORE_INFO)

        def current(txn: lmdb.Transaction[bytes]) -> tuple[int | None, bool]:
            version = integrity.decode_format(txn.get(integrity.FORMAT_KEY, db=info_db))
            tables = [self._db(_METADATA), *(self._dbs[name] for name in self._sealed_shards())]
            return version, all(txn.stat(db)["entries"] == 0 for db in tables)

        version, empty = self._read(current)
        if version == integrity.STORE_FORMAT:
            return
        if version is not None and version > integrity.STORE_FORMAT:
            raise StoreError(
                f"the store at {self._config.path} has format {version}, newer than this "
                f"release's {integrity.STORE_FORMAT}: run a newer walruspy"
            )
        if empty:
            encoded = integrity.encode_format(integrity.STORE_FORMAT)
            self._write(lambda txn: txn.put(integrity.FORMAT_KEY, encoded, db=info_db))
            return
        tables = [(_METADATA, self._db(_METADATA))]
        tables += [(name, self._dbs[name]) for name in self._sealed_shards()]
        _log.warning("sealing the store's records with checksums", path=str(self._config.path))
        while not self._write(lambda txn: integrity.migrate_step(txn, tables, info_db)):
            pass

    def _sealed_shards(self) -> list[bytes]:
        return sorted(name for name in list(self._dbs) if name.startswith(b"shard-"))

    def _get_sealed(self, table: bytes, key: bytes) -> bytes | None:
        """The payload under `key`, None if absent or corrupt (then discarded and reported)."""
        db = self._db(table)

        def body(txn: lmdb.Transaction[memoryview]) -> bytes | bool | None:
            value = txn.get(key, db=db)
            if value is None:
                return None
            if not integrity.is_intact(key, value):
                return False
            return bytes(value[: -integrity.CHECKSUM_BYTES])

        payload = self._read_views(body)
        if payload is False:
            self._discard_corrupt(table, key)
            return None
        assert payload is None or isinstance(payload, bytes)
        return payload

    def check_sliver(self, shard: int, sliver_type: SliverType, blob_id: bytes) -> bool:
        """Whether the sliver is stored and passes its check (a failing one is discarded)."""
        check_id(blob_id, "blob_id")
        db = self._shard_db(shard, sliver_type)
        if db is None:
            return False

        def body(txn: lmdb.Transaction[memoryview]) -> bool | None:
            value = txn.get(blob_id, db=db)
            return None if value is None else integrity.is_intact(blob_id, value)

        intact = self._read_views(body)
        if intact is False:
            self._discard_corrupt(shard_database_name(shard, sliver_type), blob_id)
        return bool(intact)

    def _discard_corrupt(self, table: bytes, key: bytes) -> CorruptRecord | None:
        """Delete the record under `key` if it still fails its check, and report it."""
        db = self._db(table)

        def body(txn: lmdb.Transaction[bytes]) -> bool:
            value = txn.get(key, db=db)
            if value is None or integrity.is_intact(key, value):
                return False  # deleted or repaired meanwhile
            return bool(txn.delete(key, db=db))

        if not self._write(body):
            return None
        record = _corrupt_record(table, key)
        self.corruption.report(record)
        return record

    def discard_metadata(self, blob_id: bytes) -> None:
        """Delete metadata that passed its checksum but failed verification, and report it."""
        check_id(blob_id, "blob_id")
        if self._write(lambda txn: bool(txn.delete(blob_id, db=self._db(_METADATA)))):
            self.corruption.report(_corrupt_record(_METADATA, blob_id))

    def scrub_tables(self) -> list[bytes]:
        """The sealed tables in the scrubber's order: metadata, then each shard's slivers."""
        return [_METADATA, *self._sealed_shards()]

    def scrub_batch(
        self, table: bytes, start: bytes | None, limit: int, max_bytes: int
    ) -> ScrubBatch:
        """Check the records of `table` from `start` (inclusive), at most `limit` records and
        about `max_bytes`; discard and report those that fail (`corrupt`)."""
        _check_limit(limit)
        db = self._dbs.get(table)
        if db is None:
            return ScrubBatch(0, 0, [], None)  # a shard dropped meanwhile

        def body(txn: lmdb.Transaction[memoryview]) -> tuple[int, int, list[bytes], bytes | None]:
            cursor = txn.cursor(db=db)
            found = cursor.set_range(start) if start is not None else cursor.first()
            records, size, corrupt = 0, 0, []
            while found and records < limit and size < max_bytes:
                key, value = bytes(cursor.key()), cursor.value()
                records, size = records + 1, size + len(value)
                if not integrity.is_intact(key, value):
                    corrupt.append(key)
                found = cursor.next()
            return records, size, corrupt, bytes(cursor.key()) if found else None

        records, size, keys, next_start = self._read_views(body)
        discarded = [record for key in keys if (record := self._discard_corrupt(table, key))]
        return ScrubBatch(records, size, discarded, next_start)

    def scrub_progress(self) -> bytes | None:
        """The scrubber's saved position (its own encoding), or None."""
        return self._read(lambda txn: txn.get(integrity.SCRUB_KEY, db=self._db(_STORE_INFO)))

    def set_scrub_progress(self, raw: bytes) -> None:
        """Save the scrubber's position."""
        self._write(lambda txn: txn.put(integrity.SCRUB_KEY, raw, db=self._db(_STORE_INFO)))

    # --- statistics ---------------------------------------------------------------------------

    def shard_stats(self, shard: int) -> ShardStats:
        """Sliver counts and disk bytes of one shard (zeros if it has no storage)."""
        dbs = [self._shard_db(shard, sliver_type) for sliver_type in SliverType]

        def body(txn: lmdb.Transaction[bytes]) -> ShardStats:
            stats = [None if db is None else txn.stat(db) for db in dbs]
            counts = [0 if s is None else int(s["entries"]) for s in stats]
            return ShardStats(counts[0], counts[1], sum(_disk_bytes(s) for s in stats if s))

        return self._read(body)

    def stats(self) -> StoreStats:
        """Totals over all shards, for metrics."""
        shard_names = [name for name in list(self._dbs) if name.startswith(b"shard-")]

        def body(txn: lmdb.Transaction[bytes]) -> StoreStats:
            per_db = {name: txn.stat(self._dbs[name]) for name in shard_names}
            suffix = {t: b"/" + t.value.encode() for t in SliverType}
            count = {
                t: sum(int(s["entries"]) for n, s in per_db.items() if n.endswith(suffix[t]))
                for t in SliverType
            }
            info = self._env.info()
            page_size = int(self._env.stat()["psize"])
            return StoreStats(
                metadata_entries=int(txn.stat(self._db(_METADATA))["entries"]),
                primary_slivers=count[SliverType.PRIMARY],
                secondary_slivers=count[SliverType.SECONDARY],
                sliver_disk_bytes=sum(_disk_bytes(s) for s in per_db.values()),
                used_bytes=(int(info["last_pgno"]) + 1) * page_size,
                map_size_bytes=int(info["map_size"]),
            )

        return self._read(body)


def _corrupt_record(table: bytes, key: bytes) -> CorruptRecord:
    if table == _METADATA:
        return CorruptRecord(RecordKind.METADATA, key, None)
    shard, _, kind = table.removeprefix(b"shard-").partition(b"/")
    return CorruptRecord(RecordKind(kind.decode()), key, int(shard))


def _disk_bytes(stat: _StatDict) -> int:
    pages = stat["branch_pages"] + stat["leaf_pages"] + stat["overflow_pages"]
    return pages * stat["psize"]

"""Integrity at rest of the node store: checksummed records, the store's format, corruption reports.

Theory of operation (spec/walrus-system.md 3.2 storage layout, 3.4 blob sync, 5 fault model). A
disk can rot: a flipped bit in a sliver is a fault the spec's recovery already tolerates, but only
if the node notices it. So every metadata and sliver record is *sealed*: its value is the BCS
bytes the node was given followed by an 8-byte little-endian XXH3-64 of the bytes, seeded by the key
(`seal`). Every read checks it (`unseal`); a record whose check fails is never returned:

    decide: the record fails its check          -> it is missing
    do:     delete it (only if it still fails: a repair may have landed meanwhile),
            report it (`CorruptionReports`), and the reader sees None

so the API answers as for a missing sliver, a confirmation is refused for want of the part, and the
scrubber (`scrub.Scrubber`) hands the blob to blob sync, which recovers the part from the peers
(spec 3.4). Dropped reports lose nothing: the record is gone, so the sync scan finds the blob
missing data anyway.

Why XXH3-64 (the `xxhash` package). Measured on this project's 2-core VM over 256 KiB values:
XXH3-64 32 GB/s (8 us), XXH64 7.2 GB/s, CRC-32 and Adler-32 2.0 GB/s (130 us), SHA-256 1.2 GB/s,
BLAKE2b 0.44 GB/s. With CRC-32 a sliver GET through the node's API cost 18% more than without a
checksum (bench/node.py, same run), far above the 5% budget; with XXH3 the check is a few
microseconds next to a read's copy and HTTP framing. The checksum guards against rot, not
attackers (peers' data is verified against the metadata's Merkle roots): a non-cryptographic
64-bit hash misses a random corruption with probability 2^-64. Including the key catches a value
filed under the wrong key. The cost is printed by bench/node.py (checksum on and off in the same
run).

Format. The store records its format in the `store_info` table (`FORMAT_KEY`): format 1 had no
checksums (and no record of its format), format 2 seals metadata and slivers. A store without a
format record that holds data is format 1 and is migrated in place at open, one bounded
transaction at a time, each writing its progress, so a crash resumes the migration; a store of a
newer format is refused. Migration seals the bytes as found: rot that happened before it is not
detected by the checksum (blob sync's verification against the metadata still refuses such data
when it is used for recovery).

Damage LMDB cannot survive. LMDB maps its data file; a page beyond the end of a truncated file is
a SIGBUS that kills the process without a word. `check_data_file` reads the two meta pages with
plain reads first and refuses a file shorter than the last page its newest meta page names.
"""

from __future__ import annotations

import enum
import os
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xxhash

from walruspy.clock import wall
from walruspy.node.store_records import StoreCorruptionError, StoreError

#: Bytes of the checksum at the end of every sealed record.
CHECKSUM_BYTES = 8
#: The format this release writes; see the module docstring.
STORE_FORMAT = 2
#: The format of stores written before checksums, which had no format record.
UNSEALED_FORMAT = 1
#: Keys of the `store_info` table.
FORMAT_KEY = b"format"
MIGRATION_KEY = b"migration"
SCRUB_KEY = b"scrub"
#: Corruption reports kept until the scrubber takes them; more are dropped (and still repaired:
#: the record is deleted, so the sync scan finds the blob missing data).
MAX_REPORTS = 10_000
#: The LMDB data file, and how its meta pages look on a 64-bit little-endian host (lmdb.h,
#: mdb.c `MDB_meta`, LMDB 0.9): page header 16 bytes, then magic, version, address, map size,
#: two 48-byte database records (the first's pad is the page size), last page, transaction ID.
DATA_FILE = "data.mdb"
_MDB_MAGIC = 0xBEEFC0DE
_META = struct.Struct("<QHHI II QQ I44x 48x QQ")
_MAGIC, _PAGE_SIZE, _LAST_PAGE, _TXN_ID = 4, 8, 9, 10  # field positions in `_META`
_META_PAGES = 2


class ChecksumMismatchError(StoreCorruptionError):
    """A sealed record failed its checksum (or is too short to hold one)."""


class StoreDamagedError(StoreError):
    """The store's data file is damaged beyond what LMDB can open safely (truncated, garbled)."""


class RecordKind(enum.Enum):
    """What a checksummed record holds; the `kind` label of the corruption metrics."""

    METADATA = "metadata"
    PRIMARY = "primary"
    SECONDARY = "secondary"


@dataclass(frozen=True, slots=True)
class CorruptRecord:
    """A record that failed its check and was removed: which blob, which part."""

    kind: RecordKind
    blob_id: bytes
    shard: int | None  # None for metadata


def checksum(key: bytes, payload: bytes | memoryview) -> int:
    """XXH3-64 of the payload, seeded with the XXH3-64 of the key (one-shot calls: faster
    than a streaming hasher fed both)."""
    return xxhash.xxh3_64_intdigest(payload, xxhash.xxh3_64_intdigest(key))


def seal(key: bytes, payload: bytes) -> bytes:
    """The stored value of `payload` under `key`: the payload and its checksum."""
    return payload + checksum(key, payload).to_bytes(CHECKSUM_BYTES, "little")


def is_intact(key: bytes, value: bytes | memoryview) -> bool:
    """Whether a stored value carries the right checksum for `key`."""
    if len(value) <= CHECKSUM_BYTES:
        return False
    view = memoryview(value)
    stored = int.from_bytes(view[-CHECKSUM_BYTES:], "little")
    return checksum(key, view[:-CHECKSUM_BYTES]) == stored


def unseal(key: bytes, value: bytes | memoryview) -> bytes:
    """The payload of a stored value (copied out of a read buffer); `ChecksumMismatchError`."""
    if not is_intact(key, value):
        raise ChecksumMismatchError(f"record 0x{key.hex()} fails its checksum")
    return bytes(memoryview(value)[:-CHECKSUM_BYTES])


class CorruptionReports:
    """Corrupt records found by readers (any thread), until the scrubber takes them."""

    def __init__(self, limit: int = MAX_REPORTS) -> None:
        self._lock = threading.Lock()
        self._reports: deque[CorruptRecord] = deque()
        self._limit = limit
        self._listener: Callable[[], None] | None = None
        self.dropped = 0

    def set_listener(self, listener: Callable[[], None] | None) -> None:
        """Call `listener` (from the reporting thread) after each report."""
        self._listener = listener

    def report(self, record: CorruptRecord) -> None:
        """Keep `record` for the scrubber (dropped beyond the limit) and wake the listener."""
        with self._lock:
            if len(self._reports) < self._limit:
                self._reports.append(record)
            else:
                self.dropped += 1
        listener = self._listener
        if listener is not None:
            listener()

    def drain(self) -> list[CorruptRecord]:
        """Every report kept so far, oldest first; they are forgotten here."""
        with self._lock:
            taken = list(self._reports)
            self._reports.clear()
            return taken


# --- the data file --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DataFileInfo:
    """What the newest meta page of an LMDB data file says."""

    page_size: int
    last_page: int
    txn_id: int

    @property
    def needed_bytes(self) -> int:
        """The smallest file that holds every page of the newest transaction."""
        return (self.last_page + 1) * self.page_size


def damaged(path: str | os.PathLike[str], what: str) -> StoreDamagedError:
    """The one-line refusal of a damaged store, with what to do."""
    return StoreDamagedError(
        f"the store at {path} is damaged: {what}; restore it from a backup, or start the "
        "node with --rebuild-store to move the store aside (it is kept) and recover this node's "
        "data from its peers"
    )


def read_data_file_info(path: Path) -> DataFileInfo | None:
    """The newest meta page of the LMDB data file at `path` (None if it is absent or empty).

    Plain reads, never a map: safe on a truncated file. Raises `StoreDamagedError`.
    """
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size == 0:
                return None  # LMDB initialises an empty file as a new environment
            head = handle.read(_META.size)
            if len(head) < _META.size:
                raise damaged(path.parent, f"{path.name} has {size} bytes, less than a meta page")
            first = _META.unpack(head)
            page_size = first[_PAGE_SIZE]
            if first[_MAGIC] != _MDB_MAGIC or not 512 <= page_size <= 1 << 16:
                raise damaged(path.parent, f"{path.name} does not start with an LMDB meta page")
            handle.seek(page_size)
            second = handle.read(_META.size)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreDamagedError(f"cannot read the store's data file {path}: {exc}") from exc
    metas = [first]
    if len(second) == _META.size and _META.unpack(second)[_MAGIC] == _MDB_MAGIC:
        metas.append(_META.unpack(second))
    newest = max(metas, key=lambda meta: meta[_TXN_ID])
    info = DataFileInfo(page_size, last_page=newest[_LAST_PAGE], txn_id=newest[_TXN_ID])
    if size < max(info.needed_bytes, _META_PAGES * page_size):
        raise damaged(
            path.parent,
            f"{path.name} is truncated to {size} bytes, but its last transaction ({info.txn_id}) "
            f"uses pages up to {info.last_page} of {page_size} bytes ({info.needed_bytes} bytes)",
        )
    return info


def check_data_file(store_dir: str | os.PathLike[str]) -> None:
    """Refuse (`StoreDamagedError`) a store whose data file LMDB would crash on."""
    read_data_file_info(Path(store_dir) / DATA_FILE)


def move_aside(store_dir: str | os.PathLike[str], clock: Callable[[], float] = wall) -> Path:
    """Rename a damaged store directory next to itself (never deleted); return the new name."""
    source = Path(store_dir)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(clock()))
    for attempt in range(100):
        suffix = "" if attempt == 0 else f"-{attempt}"
        target = source.with_name(f"{source.name}.damaged-{stamp}{suffix}")
        if not target.exists():
            source.rename(target)
            return target
    raise StoreError(f"cannot move {source} aside: 100 names taken")


# --- the store's format and its migration ---------------------------------------------------

#: Records one migration transaction rewrites at most, and bytes: a bounded transaction (LMDB
#: refuses one that dirties more than 2^17 pages) that still amortises its fsync.
MIGRATION_BATCH_RECORDS = 10_000
MIGRATION_BATCH_BYTES = 64 << 20


def encode_format(version: int) -> bytes:
    """The `FORMAT_KEY` record."""
    return version.to_bytes(4, "little")


def decode_format(raw: bytes | None) -> int | None:
    """The stored format, None if the store has no format record."""
    if raw is None:
        return None
    if len(raw) != 4:
        raise StoreCorruptionError(f"store format record of {len(raw)} bytes")
    return int.from_bytes(raw, "little")


def _encode_migration(table: bytes, last_key: bytes | None) -> bytes:
    return bytes([len(table)]) + table + (last_key or b"")


def _decode_migration(raw: bytes) -> tuple[bytes, bytes | None]:
    if not raw or len(raw) < 1 + raw[0]:
        raise StoreCorruptionError("corrupt store migration record")
    table, last = raw[1 : 1 + raw[0]], raw[1 + raw[0] :]
    return table, last or None


def migrate_step(txn: Any, tables: Sequence[tuple[bytes, Any]], info_db: Any) -> bool:
    """Seal the next bounded batch of unsealed records in `txn`; True once all are sealed.

    `tables` are (name, handle) of the sealed tables, in a fixed order; the progress (table and
    last key sealed) is written in the same transaction, so a crash resumes after it.
    """
    raw = txn.get(MIGRATION_KEY, db=info_db)
    table, last = (tables[0][0], None) if raw is None else _decode_migration(raw)
    names = [name for name, _ in tables]
    index = next((i for i, name in enumerate(names) if name >= table), len(names))
    if index == len(names) or names[index] != table:
        last = None  # that table is gone (a dropped shard): go on with the next one
    while index < len(names):
        name, db = tables[index]
        cursor = txn.cursor(db=db)
        found = cursor.set_range(last) if last is not None else cursor.first()
        if found and last is not None and cursor.key() == last:
            found = cursor.next()
        batch: list[tuple[bytes, bytes]] = []
        size = 0
        while found and len(batch) < MIGRATION_BATCH_RECORDS and size < MIGRATION_BATCH_BYTES:
            key, value = cursor.item()
            batch.append((key, value))
            size += len(value)
            found = cursor.next()
        for key, value in batch:
            txn.put(key, seal(key, value), db=db)
        if found:  # more of this table: stop here
            txn.put(MIGRATION_KEY, _encode_migration(name, batch[-1][0]), db=info_db)
            return False
        index, last = index + 1, None
        if batch and index < len(names):
            txn.put(MIGRATION_KEY, _encode_migration(names[index], None), db=info_db)
            return False
    txn.delete(MIGRATION_KEY, db=info_db)
    txn.put(FORMAT_KEY, encode_format(STORE_FORMAT), db=info_db)
    return True

"""What the embedded devchain keeps on disk: its settings, genesis and journal.

See `walruspy.chain.devchain` for the theory of operation. `genesis.json` holds the chain's
settings and genesis hash; `journal.bin` is the append-only, CRC-checked log of everything that
changed the chain, fdatasync'ed before any JSON-RPC answer leaves, and replayed on start.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Final

from eth_keys.constants import SECPK1_N

# anvil's id: tools treat 31337 as a local development chain, and code and configuration
# then work unchanged against the embedded chain and against anvil.
DEFAULT_CHAIN_ID: Final = 31337
DEFAULT_ACCOUNT_COUNT: Final = 10
DEFAULT_ACCOUNT_BALANCE_WEI: Final = 10**6 * 10**18  # a million ether each
DEFAULT_BLOCK_GAS_LIMIT: Final = 30_000_000  # mainnet's and anvil's
# geth's largest raw transaction (4 x 32 KiB); Walrus's transactions are far smaller.
MAX_RAW_TRANSACTION_BYTES: Final = 128 * 1024
# The common provider limit on eth_getLogs results; clients page by block range beyond.
MAX_LOG_RESULTS: Final = 10_000
MAX_FEE_HISTORY_BLOCKS: Final = 1024  # geth's
# Requests waiting for the chain thread; each is small, so this only stops a runaway client.
MAX_QUEUED_CALLS: Final = 1024
# The tip eth_maxPriorityFeePerGas suggests (anvil's); balances make it irrelevant.
SUGGESTED_PRIORITY_FEE_WEI: Final = 10**9

_ACCOUNT_KEY_DOMAIN: Final = b"walruspy devchain account"
_GENESIS_FILE: Final = "genesis.json"
JOURNAL_FILE: Final = "journal.bin"
LOCK_FILE: Final = "LOCK"
_GENESIS_FORMAT: Final = 1
_log = logging.getLogger(__name__)


class DevchainError(Exception):
    """The development chain cannot run (not a JSON-RPC error of a single request)."""


class DevchainStateError(DevchainError):
    """The state directory is unusable: in use, made with other settings, or corrupt."""


def dev_account_keys(count: int) -> list[bytes]:
    """The private keys of the prefunded accounts: sha256(domain || index as 4 bytes BE)."""
    result = []
    for index in range(count):
        key = hashlib.sha256(_ACCOUNT_KEY_DOMAIN + index.to_bytes(4, "big")).digest()
        assert 0 < int.from_bytes(key, "big") < SECPK1_N
        result.append(key)
    return result


# -- genesis -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DevchainGenesis:
    """What a chain is started from; stored in the state directory."""

    chain_id: int
    account_count: int
    account_balance_wei: int
    block_gas_limit: int
    genesis_timestamp: int

    def __post_init__(self) -> None:
        if not 0 < self.chain_id < 2**64:
            raise ValueError(f"chain id {self.chain_id} out of range")
        if not 0 <= self.account_count <= 10_000:
            raise ValueError(f"account count {self.account_count} out of range")
        if not 0 <= self.account_balance_wei < 2**200:
            raise ValueError("account balance out of range")
        if not 5_000_000 <= self.block_gas_limit <= 2**63:
            raise ValueError(f"block gas limit {self.block_gas_limit} out of range")


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    tmp.replace(path)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_genesis(
    state_dir: Path, requested: dict[str, int | None], now: int
) -> tuple[DevchainGenesis, bytes | None]:
    """The stored genesis (checked against explicit settings) or a new one, and its hash."""
    path = state_dir / _GENESIS_FILE
    if not path.exists():
        if (state_dir / JOURNAL_FILE).exists():
            raise DevchainStateError(f"{state_dir}: a journal without {_GENESIS_FILE}")
        defaults = {
            "chain_id": DEFAULT_CHAIN_ID,
            "account_count": DEFAULT_ACCOUNT_COUNT,
            "account_balance_wei": DEFAULT_ACCOUNT_BALANCE_WEI,
            "block_gas_limit": DEFAULT_BLOCK_GAS_LIMIT,
        }
        chosen = {
            name: value if value is not None else defaults[name]
            for name, value in requested.items()
        }
        return DevchainGenesis(genesis_timestamp=now, **chosen), None
    try:
        stored = json.loads(path.read_bytes())
        if stored.pop("format") != _GENESIS_FORMAT:
            raise DevchainStateError(f"{path}: unsupported format")
        genesis_hash = bytes.fromhex(stored.pop("genesis_hash"))
        genesis = DevchainGenesis(**stored)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DevchainStateError(f"{path}: unreadable ({exc})") from exc
    for name, value in requested.items():
        if value is not None and value != getattr(genesis, name):
            raise DevchainStateError(
                f"{state_dir} holds a chain made with {name}={getattr(genesis, name)}, not "
                f"{value}: start with the same settings (or none), or use a new state dir"
            )
    return genesis, genesis_hash


def store_genesis(state_dir: Path, genesis: DevchainGenesis, genesis_hash: bytes) -> None:
    document = {"format": _GENESIS_FORMAT, **asdict(genesis), "genesis_hash": genesis_hash.hex()}
    _write_atomically(state_dir / _GENESIS_FILE, json.dumps(document, indent=2).encode())


# -- journal -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TxRecord:
    """A transaction mined alone in a block of this timestamp and hash."""

    timestamp: int
    block_hash: bytes
    raw_transaction: bytes


@dataclass(frozen=True, slots=True)
class MineRecord:
    """An empty block mined by evm_mine."""

    timestamp: int
    block_hash: bytes


@dataclass(frozen=True, slots=True)
class ClockRecord:
    """The offset added to the wall clock from now on (evm_increaseTime)."""

    offset_s: int


JournalRecord = TxRecord | MineRecord | ClockRecord

_MAGIC: Final = b"WPYDEVJ1"
_FRAME: Final = struct.Struct(">II")  # payload length, crc32 of the payload
_TIMED: Final = struct.Struct(">BQ32s")  # kind, timestamp, block hash
_CLOCK: Final = struct.Struct(">Bq")  # kind, offset
_KIND_TX, _KIND_MINE, _KIND_CLOCK = 1, 2, 3
# A record is at most a raw transaction plus a few header bytes.
_MAX_RECORD_BYTES: Final = MAX_RAW_TRANSACTION_BYTES + 64


def _encode_record(record: JournalRecord) -> bytes:
    if isinstance(record, TxRecord):
        payload = (
            _TIMED.pack(_KIND_TX, record.timestamp, record.block_hash) + record.raw_transaction
        )
    elif isinstance(record, MineRecord):
        payload = _TIMED.pack(_KIND_MINE, record.timestamp, record.block_hash)
    else:
        payload = _CLOCK.pack(_KIND_CLOCK, record.offset_s)
    assert 0 < len(payload) <= _MAX_RECORD_BYTES
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def _decode_record(payload: bytes) -> JournalRecord:
    kind = payload[0]
    if kind in (_KIND_TX, _KIND_MINE) and len(payload) >= _TIMED.size:
        _, timestamp, block_hash = _TIMED.unpack_from(payload)
        if kind == _KIND_MINE and len(payload) == _TIMED.size:
            return MineRecord(timestamp, block_hash)
        if kind == _KIND_TX and len(payload) > _TIMED.size:
            return TxRecord(timestamp, block_hash, payload[_TIMED.size :])
    if kind == _KIND_CLOCK and len(payload) == _CLOCK.size:
        return ClockRecord(_CLOCK.unpack(payload)[1])
    raise ValueError(f"unknown record kind {kind} of {len(payload)} bytes")


def _scan_journal(data: bytes, path: Path) -> tuple[list[JournalRecord], int]:
    """The records of a journal and where the valid part ends (a torn tail is excluded)."""
    records: list[JournalRecord] = []
    position = len(_MAGIC)
    while position < len(data):
        end = position + _FRAME.size
        length, crc = _FRAME.unpack_from(data, position) if end <= len(data) else (0, 0)
        payload = data[end : end + length]
        if (
            0 < length <= _MAX_RECORD_BYTES
            and len(payload) == length
            and zlib.crc32(payload) == crc
        ):
            try:
                records.append(_decode_record(payload))
            except ValueError as exc:
                raise DevchainStateError(f"{path}: bad record at offset {position}: {exc}") from exc
            position = end + length
            continue
        # Appends are fsync'ed one by one, so only the last can be torn: it lies within one
        # record's size of the end, and it claims to run to the end (or is zeros after).
        torn = len(data) - position <= _FRAME.size + _MAX_RECORD_BYTES and (
            end + length >= len(data) or not any(data[end + length :])
        )
        if not torn:
            raise DevchainStateError(f"{path}: corrupt record at offset {position}")
        break
    return records, position


class Journal:
    """The append-only, crash-safe record of everything that changed the chain."""

    def __init__(self, path: Path, file: IO[bytes], size: int) -> None:
        self.path = path
        self._file = file
        self.size = size

    @classmethod
    def open(cls, path: Path) -> tuple[Journal, list[JournalRecord]]:
        """Open (or create) a journal; returns it with its records, a torn tail cut off."""
        data = path.read_bytes() if path.exists() else b""
        if len(data) < len(_MAGIC) and _MAGIC.startswith(data):
            _write_atomically(path, _MAGIC)  # new, or torn while being created
            data = _MAGIC
        if not data.startswith(_MAGIC):
            raise DevchainStateError(f"{path} is not a walruspy devchain journal")
        records, end = _scan_journal(data, path)
        file = path.open("r+b")
        if end < len(data):
            _log.warning("%s: dropped a torn last record (%d bytes)", path, len(data) - end)
            file.truncate(end)
            os.fsync(file.fileno())
        file.seek(end)
        return cls(path, file, end), records

    def append(self, record: JournalRecord) -> None:
        """Write one record and make it durable before returning."""
        frame = _encode_record(record)
        self._file.write(frame)
        self._file.flush()
        os.fdatasync(self._file.fileno())
        self.size += len(frame)

    def truncate(self, size: int) -> None:
        """Durably drop every record after ``size`` bytes (a revert to a snapshot)."""
        assert len(_MAGIC) <= size <= self.size
        self._file.truncate(size)
        os.fsync(self._file.fileno())
        self._file.seek(size)
        self.size = size

    def close(self) -> None:
        """Close the file (every record is already durable)."""
        self._file.close()


# -- the chain ---------------------------------------------------------------------------

"""Reading the System contract's events from EVM logs, in order, resumable from a cursor.

Theory of operation (spec/walrus-system.md 1.5 and 2.9 item 6). System emits Walrus's events as
logs with `blob_id` and `object_id` indexed; nodes consume them in chain order and persist an
`EventCursor` (block number, log index of the next event) with their effects. `LogReader.read`
returns the first `limit` events at or after a cursor:

* it asks `eth_getLogs` for the System address (and Staking's, which emits EpochChangeDone
  once a committee has its shards, and Challenges', which emits ChallengeScheduled,
  ChallengeStart and ChallengeCertified) and the nine event topics only (System's
  ObjectTransferred logs are bookkeeping for clients, not node events), one block range at a
  time, from the cursor's block (or the deployment block, if later) up to the head minus the
  confirmations the caller asked for (0 on the devchain and anvil, which never reorganise);
* a range spans at most `max_span_blocks` blocks, since public nodes cap the range or the result
  count (the devchain refuses more than 10,000 logs); a node that refuses a range for its size
  halves the span down to one block, and each success doubles it back towards the maximum;
* logs are sorted by (block number, log index) and those before the cursor in its own block are
  dropped, so a consumer that resumes from `event.event_id.cursor_after` neither skips nor
  repeats an event, whatever client instance reads next;
* empty ranges are scanned through until an event is found or the head is reached, so an
  empty answer always means "nothing new yet", never "call again to make progress";
* a reader remembers where a read that returned everything it found stopped (block number and
  hash): the next read from the cursor that read leads to starts after the blocks already
  scanned, so a node polling an idle chain asks for no logs until a new block exists.

Reorganisations (walrus-system.md 3.3). Every event carries its block's hash, and so does the
cursor built from it (`EventId.cursor_after`). A read from a cursor with a hash first checks that
block `cursor.block_number` still has that hash, and raises `ChainReorganizedError` if not (or
if the chain is now shorter): the consumer rewinds what it applied and reads again. The check
costs one `eth_getBlockByNumber`, and is skipped when the remembered scan is still valid: an
unchanged tip means nothing new, and a remembered last block that is still on the chain proves
its ancestors are (each block commits to its parent's hash), the cursor's included. A chain that
reorganises blocks the reader scanned but in which the consumer applied nothing is caught the
same way: the remembered block's hash no longer matches, so the range is scanned again.

Decoding is driven by the ABI: each event's fields must be exactly the fields of its dataclass in
`walruspy.chain.events` (checked when the reader is built), so a contract change that renames or
adds a field fails loudly instead of decoding garbage.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from eth_abi.abi import decode as abi_decode
from eth_utils.crypto import keccak
from web3 import AsyncWeb3
from web3.exceptions import Web3RPCError

from walruspy.chain.api import ChainReorganizedError, ChainUnavailableError
from walruspy.chain.contracts import Abi
from walruspy.chain.events import (
    BlobCertified,
    BlobDeleted,
    BlobRegistered,
    ChainEvent,
    ChallengeCertified,
    ChallengeScheduled,
    ChallengeStart,
    EpochChangeDone,
    EpochChangeStart,
    EventCursor,
    EventId,
    InvalidBlobId,
)
from walruspy.chain.evm_rpc import block_header, raw_logs, rpc_errors
from walruspy.core.blob_id import BlobId

__all__ = ["DEFAULT_MAX_SPAN_BLOCKS", "BlockRef", "EventDecoder", "LogReader", "event_topic"]

#: Largest block range of one eth_getLogs: 1,000 blocks is within what common public endpoints
#: accept, and on the devchain (one transaction per block) it holds at most a few thousand logs.
DEFAULT_MAX_SPAN_BLOCKS: Final = 1000
# Error texts with which nodes refuse a range for its size (geth, erigon, anvil, hosted RPCs);
# -32005 is EIP-1474's "limit exceeded", which the devchain uses.
_LIMIT_EXCEEDED_CODE: Final = -32005
_TOO_LARGE_HINTS: Final = ("range", "too many", "limit", "exceed", "more than", "too large")

_EVENT_TYPES: Final[Mapping[str, type[ChainEvent]]] = {
    "BlobRegistered": BlobRegistered,
    "BlobCertified": BlobCertified,
    "BlobDeleted": BlobDeleted,
    "InvalidBlobID": InvalidBlobId,
    "EpochChangeStart": EpochChangeStart,
    "EpochChangeDone": EpochChangeDone,
    "ChallengeScheduled": ChallengeScheduled,
    "ChallengeStart": ChallengeStart,
    "ChallengeCertified": ChallengeCertified,
}
# Fields decoded as bytes32 that the dataclasses hold as bytes.
_BYTES_FIELDS: Final = ("object_id", "seed", "node_id")


def event_topic(abi_event: Mapping[str, Any]) -> bytes:
    """topic0 of an ABI event: keccak256 of its canonical signature."""
    types = ",".join(_canonical_type(i) for i in abi_event["inputs"])
    return keccak(f"{abi_event['name']}({types})".encode())


def _canonical_type(item: Mapping[str, Any]) -> str:
    kind = str(item["type"])
    if kind.startswith("tuple"):
        return "(" + ",".join(_canonical_type(c) for c in item["components"]) + ")" + kind[5:]
    return kind


@dataclasses.dataclass(frozen=True, slots=True)
class BlockRef:
    """A block by number and hash."""

    number: int
    hash: bytes
    #: Its parent's hash, where the node gave it: one block on from a block known to be on the
    #: chain, it proves that block still is without asking for it again.
    parent_hash: bytes = b""


@dataclasses.dataclass(frozen=True, slots=True)
class _EventLayout:
    name: str
    make: Callable[..., ChainEvent]
    indexed: tuple[tuple[str, str], ...]  # (name, type) in topic order
    data: tuple[tuple[str, str], ...]  # (name, type) in data order


class EventDecoder:
    """Turns System and Challenges logs into `walruspy.chain.events` values, by their ABIs.

    `abi` holds the events of both contracts (System's ABI followed by Challenges').
    """

    def __init__(self, abi: Abi) -> None:
        self._layouts: dict[bytes, _EventLayout] = {}
        events = {e["name"]: e for e in abi if e.get("type") == "event"}
        for name, cls in _EVENT_TYPES.items():
            if name not in events:
                raise ValueError(f"the contracts' ABI has no event {name}")
            entry = events[name]
            fields = {f.name for f in dataclasses.fields(cls)} - {"event_id"}
            names = {i["name"] for i in entry["inputs"]}
            if names != fields:
                raise ValueError(
                    f"event {name} has fields {sorted(names)}, {cls.__name__} expects"
                    f" {sorted(fields)}"
                )
            self._layouts[event_topic(entry)] = _EventLayout(
                name,
                cls,
                tuple((i["name"], i["type"]) for i in entry["inputs"] if i["indexed"]),
                tuple((i["name"], i["type"]) for i in entry["inputs"] if not i["indexed"]),
            )

    @property
    def topics(self) -> list[bytes]:
        """topic0 of every event the decoder knows."""
        return list(self._layouts)

    def decode(self, log: Mapping[str, Any]) -> ChainEvent | None:
        """The event of `log`, or None for a log of another kind."""
        topics = [bytes(t) for t in log["topics"]]
        layout = self._layouts.get(topics[0]) if topics else None
        if layout is None:
            return None
        if len(topics) != 1 + len(layout.indexed):
            raise ValueError(f"{layout.name} log with {len(topics)} topics")
        values: dict[str, Any] = {}
        for (name, kind), topic in zip(layout.indexed, topics[1:], strict=True):
            values[name] = abi_decode([kind], topic)[0]
        decoded = abi_decode([kind for _, kind in layout.data], bytes(log["data"]))
        values.update(zip((name for name, _ in layout.data), decoded, strict=True))
        if "blob_id" in values:
            values["blob_id"] = BlobId(bytes(values["blob_id"]))
        for name in _BYTES_FIELDS:
            if name in values:
                values[name] = bytes(values[name])
        event_id = EventId(
            int(log["blockNumber"]),
            int(log["logIndex"]),
            bytes(log["transactionHash"]),
            bytes(log["blockHash"]),
        )
        return layout.make(event_id=event_id, **values)


def _is_too_large(exc: Web3RPCError) -> bool:
    response = exc.rpc_response or {}
    error = response.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    message = str(error.get("message", "")) if isinstance(error, dict) else str(exc)
    return code == _LIMIT_EXCEEDED_CODE or any(h in message.lower() for h in _TOO_LARGE_HINTS)


class LogReader:
    """Pages `eth_getLogs` over the System contract; see the module doc."""

    def __init__(
        self,
        w3: AsyncWeb3[Any],
        url: str,
        address: str | Sequence[str],
        decoder: EventDecoder,
        *,
        start_block: int,
        max_span_blocks: int = DEFAULT_MAX_SPAN_BLOCKS,
    ) -> None:
        if max_span_blocks < 1:
            raise ValueError("max_span_blocks must be at least 1")
        self._w3 = w3
        self._url = url
        addresses = [address] if isinstance(address, str) else list(address)
        self._address = [AsyncWeb3.to_checksum_address(a) for a in addresses]
        self._decoder = decoder
        self._start_block = start_block
        self._max_span = max_span_blocks
        self._span = max_span_blocks
        # After a read that returned everything it found: the cursor its caller resumes from
        # and the last block it scanned, so polling from there starts past that block.
        self._scanned: tuple[EventCursor, BlockRef] | None = None

    async def read(self, cursor: EventCursor, limit: int, tip: BlockRef) -> list[ChainEvent]:
        """The first `limit` events at or after `cursor` in blocks up to `tip`.

        Raises `ChainReorganizedError` if the cursor's block hash is no longer on the chain.
        """
        if limit < 1:
            raise ValueError(f"limit must be positive, got {limit}")
        block = max(cursor.block_number, self._start_block)
        if await self._scan_still_valid(cursor, tip):
            assert self._scanned is not None
            block = max(block, self._scanned[1].number + 1)
        else:
            self._scanned = None
            await self._check_cursor(cursor)
        events: list[ChainEvent] = []
        scanned_from = block
        while block <= tip.number and len(events) < limit:
            to_block = min(block + self._span - 1, tip.number)
            logs = await self._get_logs(block, to_block)
            if logs is None:
                continue  # the span was halved: ask again
            logs.sort(key=lambda log: (int(log["blockNumber"]), int(log["logIndex"])))
            for log in logs:
                event = self._decode(log)
                if event is not None and cursor.admits(event.event_id):
                    events.append(event)
            block = to_block + 1
        if len(events) <= limit and block > scanned_from:
            resume = events[-1].event_id.cursor_after if events else cursor
            self._scanned = (resume, tip)
        return events[:limit]

    async def _scan_still_valid(self, cursor: EventCursor, tip: BlockRef) -> bool:
        """Whether the remembered scan applies to `cursor` and its last block is still there."""
        if self._scanned is None or self._scanned[0] != cursor:
            return False
        if self._scanned[0].block_hash != cursor.block_hash:
            return False
        last = self._scanned[1]
        if tip == last:
            return True
        if tip.number < last.number:
            return False
        if tip.number == last.number + 1 and tip.parent_hash:
            return tip.parent_hash == last.hash
        return await self.block_hash(last.number) == last.hash

    async def _check_cursor(self, cursor: EventCursor) -> None:
        if not cursor.block_hash:
            return
        found = await self.block_hash(cursor.block_number)
        if found != cursor.block_hash:
            detail = (
                "the block no longer exists"
                if found is None
                else f"block hash 0x{found.hex()} replaced 0x{cursor.block_hash.hex()}"
            )
            raise ChainReorganizedError(cursor.block_number, detail)

    async def block_hash(self, number: int) -> bytes | None:
        """The hash of block `number`, or None if the chain has no such block (yet)."""
        found = (await self.block(number)).hash
        return found or None

    async def block(self, number: int | None = None) -> BlockRef:
        """Block `number` (the latest by default) as number and hash; a block the chain does
        not have (yet) is returned with an empty hash."""
        with rpc_errors(self._url, "read a block"):
            header = await block_header(self._w3, number)
        if header is None:
            return BlockRef(-1 if number is None else number, b"")
        return BlockRef(header.number, header.hash, header.parent_hash)

    def _decode(self, log: Mapping[str, Any]) -> ChainEvent | None:
        try:
            return self._decoder.decode(log)
        except (ValueError, TypeError, KeyError) as exc:
            raise ChainUnavailableError(
                f"{self._url}: undecodable log at block {log.get('blockNumber')}: {exc}"
            ) from exc

    async def events_naming(self, key: bytes, tip: BlockRef) -> list[ChainEvent]:
        """Every event whose first indexed field is `key` (a blob ID: registrations,
        certifications, deletions, invalidation), from the start block up to `tip`, in order.

        One scan of the whole range, filtered by the node: for questions asked rarely (why a
        read found nothing), not for following the chain.
        """
        events: list[ChainEvent] = []
        block = self._start_block
        while block <= tip.number:
            to_block = min(block + self._span - 1, tip.number)
            logs = await self._get_logs(block, to_block, key)
            if logs is None:
                continue
            logs.sort(key=lambda log: (int(log["blockNumber"]), int(log["logIndex"])))
            events.extend(e for e in map(self._decode, logs) if e is not None)
            block = to_block + 1
        return events

    async def _get_logs(
        self, from_block: int, to_block: int, key: bytes | None = None
    ) -> list[dict[str, Any]] | None:
        """The logs of the range (with `key` as first indexed field, if given), or None after
        halving a span the node found too large."""
        topics: list[Any] = [["0x" + t.hex() for t in self._decoder.topics]]
        if key is not None:
            topics.append("0x" + key.hex())
        query = {
            "address": self._address,
            "fromBlock": hex(from_block),
            "toBlock": hex(to_block),
            "topics": topics,
        }
        with rpc_errors(self._url, "read events"):
            try:
                logs = await raw_logs(self._w3, query)
            except Web3RPCError as exc:
                if _is_too_large(exc) and to_block > from_block:
                    self._span = max(1, (to_block - from_block + 1) // 2)
                    return None
                raise
        self._span = min(self._span * 2, self._max_span)
        return logs

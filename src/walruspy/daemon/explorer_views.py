"""What the explorer shows, as JSON: the network, its nodes' health, a blob, recent blobs.

Theory of operation (spec/walrus-system.md 1.4, 2.1, 3.5 and 4.1). Every view is computed from
the client library, as the commands `info`, `health` and `blob-status` compute theirs: the
chain's `system_info` and committee (names and stake from staking when the deployment has it),
each node's health answer (`NodeClient.health`), the verified blob status
(`WalrusClient.blob_status`), the blob's objects and attribute on chain (`blob_events`,
`get_blob`, `blob_attribute`), and the first bytes of the blob through `read_range` to tell
what it is. "Which nodes hold it right now" asks each committee member two questions that the
node answers from its store: whether it stores the blob's metadata, and whether it stores the
primary sliver of the first shard it holds. A node that does not answer is reported with its
error, never dropped. Nothing here caches: `walruspy.daemon.explorer` does.

`RecentBlobs` follows the chain's events from where it left off (`ChainReader.events`), keeping
the latest `RECENT_BLOBS` blobs that were registered or certified: the first refresh reads the
history from the deployment's start, at most `EVENT_PAGES_PER_REFRESH` pages per refresh.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import yaml

from walruspy.chain.api import BlobRecord, ChainReader, ChainReorganizedError
from walruspy.chain.events import BlobCertified, BlobDeleted, BlobRegistered, EventCursor
from walruspy.chain.evm_staking import EvmStaking
from walruspy.client import WalrusClient
from walruspy.core.blob_id import BlobId
from walruspy.core.committee import Committee, CommitteeMember
from walruspy.core.errors import WalrusError
from walruspy.core.types import ShardIndex, SliverType, pair_of_shard
from walruspy.node_api.client import NodeClient, node_url
from walruspy.node_api.paths import format_object_id

__all__ = [
    "RECENT_BLOBS",
    "RecentBlobs",
    "blob_view",
    "health_view",
    "network_view",
    "node_version",
    "sniff_content_type",
    "versions_view",
]

T = TypeVar("T")

#: A node's health answer is small and read from memory: a node that takes longer than this is
#: shown unhealthy (a killed one refuses at once; a paused one costs the page this long).
HEALTH_TIMEOUT_S: Final = 2.0
#: Metadata and sliver status answers come from the node's index, as fast as health.
HOLDING_TIMEOUT_S: Final = 3.0
#: Bytes read from the start of a blob to tell its type and show text: one source row at most
#: for blobs of any size, and a screenful of text.
PREVIEW_BYTES: Final = 4096
#: Blob objects of one blob ID looked up on chain (a blob stored many times keeps its first).
MAX_OBJECTS: Final = 8
#: Recent blobs kept and shown.
RECENT_BLOBS: Final = 20
#: Events read per chain call, and calls per refresh: a refresh stays within a few seconds
#: however long the history, and catches up over the following ones.
EVENT_PAGE: Final = 500
EVENT_PAGES_PER_REFRESH: Final = 10

#: Magic numbers of the types the page previews (what browsers sniff for media).
_MAGIC: Final = (
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (0, b"\x1aE\xdf\xa3", "video/webm"),
    (4, b"ftyp", "video/mp4"),
    (0, b"OggS", "video/ogg"),
    (0, b"%PDF-", "application/pdf"),
)


def staking_of(chain: ChainReader) -> EvmStaking | None:
    """The chain's staking client, or None on a fixed-committee deployment."""
    staking = getattr(chain, "staking", None)
    return staking if isinstance(staking, EvmStaking) else None


def sniff_content_type(head: bytes) -> str:
    """The type the first bytes of a blob show: an image, a video, text, else octet-stream."""
    for offset, magic, content_type in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return content_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.lstrip()[:5].lower() in (b"<svg ", b"<?xml") and b"<svg" in head:
        return "image/svg+xml"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the head is still text.
        if exc.start < len(head) - 3:
            return "application/octet-stream"
        text = head[: exc.start].decode("utf-8")
    if all(ch.isprintable() or ch in "\t\r\n\f" for ch in text):
        return "text/plain; charset=utf-8"
    return "application/octet-stream"


async def network_view(
    client: WalrusClient, clock: Callable[[], float] = time.time
) -> dict[str, Any]:
    """The epoch and its timing, prices, and the committee with names, URLs, stake and shards."""
    chain = client.env.chain
    info, chain_now = await asyncio.gather(client.system_info(), chain.chain_time())
    system, committee = info.system, info.committee
    staking = staking_of(chain)
    names: dict[bytes, str] = {}
    stakes: dict[bytes, int] = {}
    if staking is not None:
        ids = [m.node_id for m in committee.members]
        node_infos, pools = await asyncio.gather(
            asyncio.gather(*(staking.node_info(i) for i in ids)),
            asyncio.gather(*(staking.pool(i) for i in ids)),
        )
        names = {n.node_id: n.name for n in node_infos}
        stakes = {p.node_id: p.wal_balance for p in pools}
    return {
        "epoch": system.epoch,
        "epochStartedAt": system.epoch_started_at,
        "epochDurationS": system.epoch_duration_s,
        # The next epoch starts one duration after this one did, in chain seconds. The chain's
        # clock is its latest block's stamp: behind the wall clock while no block is made, ahead
        # of it after a burst (a dev chain stamps each block a second after the last).
        "nextEpochAt": system.epoch_started_at + system.epoch_duration_s,
        "serverTime": max(float(chain_now), clock()),
        "nShards": committee.n_shards,
        "nNodes": committee.n_members,
        "info": info.to_json(),
        "staking": staking is not None,
        "nodes": [
            {
                "nodeId": format_object_id(m.node_id),
                "name": names.get(m.node_id, ""),
                "networkAddress": m.network_address,
                "url": node_url(m.network_address, m.network_public_key),
                "stake": stakes.get(m.node_id),
                "nShards": len(m.shards),
                "shards": list(m.shards),
            }
            for m in committee.members
        ],
    }


async def _answer(call: Awaitable[T], timeout_s: float) -> tuple[T | None, str | None]:
    """The call's value, or its failure as text (a node that fails is a value, not an error)."""
    try:
        async with asyncio.timeout(timeout_s):
            return await call, None
    except TimeoutError:
        return None, f"no answer within {timeout_s:g} s"
    except (WalrusError, ValueError, OSError) as exc:
        return None, str(exc)[:300] or type(exc).__name__


def _nodes(client: WalrusClient, committee: Committee) -> list[NodeClient]:
    """The members' clients from the client's pool (kept connections, TLS pinned to each
    member's key); each call here is bounded by its own timeout instead of the pool's."""
    return [node.client for node in client.env.pool.nodes(committee)]


async def node_version(node: NodeClient) -> str | None:
    """The version the node's API document states (`info.version` of its `/v1/api`)."""
    document, _ = await _answer(node.api_docs(), HEALTH_TIMEOUT_S)
    if document is None:
        return None
    try:
        parsed = yaml.safe_load(document)
        version = parsed["info"]["version"]
    except (yaml.YAMLError, KeyError, TypeError):
        return None
    return str(version)[:40]


async def versions_view(client: WalrusClient, committee: Committee) -> dict[bytes, str | None]:
    """Each member's version (None: it did not say)."""
    versions = await asyncio.gather(*(node_version(n) for n in _nodes(client, committee)))
    return {m.node_id: v for m, v in zip(committee.members, versions, strict=True)}


async def health_view(
    client: WalrusClient, committee: Committee, versions: dict[bytes, str | None]
) -> list[dict[str, Any]]:
    """Each member's health answer, or why there is none."""

    async def one(member: CommitteeMember, node: NodeClient) -> dict[str, Any]:
        health, error = await _answer(node.health(), HEALTH_TIMEOUT_S)
        row: dict[str, Any] = {
            "nodeId": format_object_id(member.node_id),
            "healthy": health is not None,
            "version": versions.get(member.node_id),
            "error": error,
        }
        if health is not None:
            row.update(
                status=health.node_status,
                epoch=health.epoch,
                uptimeS=health.uptime_ns // 1_000_000_000,
                shardsOwned=health.shard_summary.owned,
                eventsPending=health.event_progress.pending,
            )
        return row

    nodes = _nodes(client, committee)
    return list(await asyncio.gather(*map(one, committee.members, nodes)))


def _object_json(record: BlobRecord, attribute: dict[str, str] | None) -> dict[str, Any]:
    return {
        "objectId": record.object_id_hex,
        "owner": record.owner,
        "size": record.size,
        "registeredEpoch": record.registered_epoch,
        "certifiedEpoch": record.certified_epoch,
        "endEpoch": record.end_epoch,
        "deletable": record.deletable,
        "attribute": attribute,
    }


async def _objects(chain: ChainReader, blob_id: BlobId, first: bytes | None) -> list[BlobRecord]:
    """The blob's live objects: `first` (asked for by object ID) and those its events name."""
    object_ids = [first] if first is not None else []
    for event in await chain.blob_events(blob_id):
        if isinstance(event, BlobRegistered) and event.object_id not in object_ids:
            object_ids.append(event.object_id)
    records = await asyncio.gather(*(chain.get_blob(i) for i in object_ids[:MAX_OBJECTS]))
    return [r for r in records if r is not None and r.blob_id == blob_id]


async def _holding(
    client: WalrusClient, blob_id: BlobId, committee: Committee
) -> list[dict[str, Any]]:
    """Each member's answer: does it store the metadata, and its first shard's primary sliver."""

    async def one(member: CommitteeMember, node: NodeClient) -> dict[str, Any]:
        pair = pair_of_shard(ShardIndex(member.shards[0]), blob_id.raw, committee.n_shards)
        (metadata, error), (sliver, sliver_error) = await asyncio.gather(
            _answer(node.metadata_status(blob_id), HOLDING_TIMEOUT_S),
            _answer(node.sliver_status(blob_id, pair, SliverType.PRIMARY), HOLDING_TIMEOUT_S),
        )
        return {
            "nodeId": format_object_id(member.node_id),
            "url": node.base_url,
            "metadata": metadata.value if metadata is not None else None,
            "sliver": sliver.value if sliver is not None else None,
            "holds": metadata is not None
            and sliver is not None
            and metadata.value == sliver.value == "stored",
            "error": error or sliver_error,
        }

    pairs = zip(committee.members, _nodes(client, committee), strict=True)
    return list(await asyncio.gather(*(one(m, n) for m, n in pairs if m.shards)))


async def blob_view(client: WalrusClient, key: str) -> dict[str, Any]:
    """The blob of `key` (a blob ID, or `0x` and a blob object's ID): its verified status,
    objects, content type, the first bytes of text, and which nodes hold it now.

    Raises `InvalidInputError` for a key that is neither, `LookupError` for an object ID that
    names no blob object.
    """
    chain = client.env.chain
    first: bytes | None = None
    if key.startswith("0x"):
        from walruspy.node_api.paths import parse_object_id

        first = parse_object_id(key)
        record = await chain.get_blob(first)
        if record is None:
            raise LookupError(f"no blob object {key}")
        blob_id = record.blob_id
    else:
        blob_id = BlobId.parse(key)
    committee = await chain.committee()
    (status, status_error), records, holding = await asyncio.gather(
        _answer(client.blob_status(blob_id), 30.0),
        _objects(chain, blob_id, first),
        _holding(client, blob_id, committee),
    )
    attributes = await asyncio.gather(*(chain.blob_attribute(r.object_id) for r in records))
    objects = [
        _object_json(r, dict(a) if a is not None else None)
        for r, a in zip(records, attributes, strict=True)
    ]
    certified = any(r.certified_epoch is not None for r in records) or (
        status is not None and status.initial_certified_epoch is not None
    )
    view: dict[str, Any] = {
        "blobId": str(blob_id),
        "state": _state(status, certified, records),
        "status": status.to_json() if status is not None else None,
        "statusText": status.describe() if status is not None else status_error,
        "size": records[0].size if records else None,
        "certifiedEpoch": min(
            (r.certified_epoch for r in records if r.certified_epoch is not None), default=None
        )
        or (status.initial_certified_epoch if status is not None else None),
        "endEpoch": max((r.end_epoch for r in records), default=None)
        or (status.end_epoch if status is not None else None),
        "objects": objects,
        "holding": holding,
        "contentType": None,
        "text": None,
    }
    if certified:
        view.update(await _preview(client, blob_id, objects))
    return view


def _state(status: Any, certified: bool, records: Sequence[BlobRecord]) -> str:
    """One word for the page: certified, registered, invalid, nonexistent or unknown."""
    from walruspy.node_api.schemas import Invalid, Nonexistent

    if status is not None and isinstance(status.status, Invalid):
        return "invalid"
    if certified:
        return "certified"
    if records:
        return "registered"
    if status is not None and isinstance(status.status, Nonexistent):
        return "nonexistent"
    return "registered" if status is not None else "unknown"


async def _preview(
    client: WalrusClient, blob_id: BlobId, objects: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """The content type (an object's `content-type` attribute, else sniffed) and the text."""
    declared = next(
        (
            value
            for o in objects
            for key, value in (o["attribute"] or {}).items()
            if key.lower() == "content-type"
        ),
        None,
    )
    reader, error = await _answer(client.locate(blob_id), 30.0)
    if reader is None:
        return {"contentType": declared, "previewError": error}
    head = b""
    if reader.size:
        part, error = await _answer(reader.read_range(0, min(PREVIEW_BYTES, reader.size)), 30.0)
        if part is None:
            return {"contentType": declared, "previewError": error}
        head = bytes(part)
    content_type = declared or sniff_content_type(head)
    text = None
    if content_type.startswith("text/") or content_type in ("application/json",):
        text = head.decode("utf-8", errors="replace")
    return {"contentType": content_type, "text": text, "size": reader.size}


@dataclass
class _Recent:
    blob_id: str
    object_id: str
    epoch: int
    size: int | None
    end_epoch: int
    deletable: bool
    state: str

    def to_json(self) -> dict[str, Any]:
        return {
            "blobId": self.blob_id,
            "objectId": self.object_id,
            "epoch": self.epoch,
            "size": self.size,
            "endEpoch": self.end_epoch,
            "deletable": self.deletable,
            "state": self.state,
        }


class RecentBlobs:
    """The latest blob objects registered, certified or deleted, from the chain's events."""

    def __init__(self, chain: ChainReader) -> None:
        self._chain = chain
        self._cursor = EventCursor()
        self._recent: collections.OrderedDict[bytes, _Recent] = collections.OrderedDict()

    async def refresh(self) -> list[dict[str, Any]]:
        """Read the events since the last refresh (a bounded number); the latest blobs first."""
        for _ in range(EVENT_PAGES_PER_REFRESH):
            try:
                events = await self._chain.events(self._cursor, EVENT_PAGE)
            except ChainReorganizedError:
                # What was read may be gone: read the history again.
                self._cursor = EventCursor()
                self._recent.clear()
                continue
            for event in events:
                self._apply(event)
            if events:
                self._cursor = events[-1].event_id.cursor_after
            if len(events) < EVENT_PAGE:
                break
        return [entry.to_json() for entry in reversed(self._recent.values())]

    def _apply(self, event: object) -> None:
        if isinstance(event, BlobRegistered):
            self._recent[event.object_id] = _Recent(
                str(event.blob_id),
                format_object_id(event.object_id),
                event.epoch,
                event.size,
                event.end_epoch,
                event.deletable,
                "registered",
            )
            self._recent.move_to_end(event.object_id)
            while len(self._recent) > RECENT_BLOBS:
                self._recent.popitem(last=False)
        elif isinstance(event, BlobCertified) and event.object_id in self._recent:
            entry = self._recent[event.object_id]
            entry.state, entry.end_epoch = "certified", event.end_epoch
        elif isinstance(event, BlobDeleted) and event.object_id in self._recent:
            self._recent[event.object_id].state = "deleted"

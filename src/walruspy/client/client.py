"""`open_client`: the client of a Walrus network, one session, one chain connection, one encoder.

Theory of operation (spec/walrus-system.md 1.2-1.4, 4.1 and 5). `open_client(config)` is an
async context manager: it connects to the context's chain (trying its RPC URLs in order), opens
one aiohttp session for every node request (at most `max_node_connections` connections to each
node), starts the encoder pool, and yields a `WalrusClient`. Leaving it closes all three, in
reverse order. Tests, the daemon and benchmarks may pass their own chain, session or encoder,
which the client then uses and does not close.

The operations are in their own modules: `store` (encode, register, upload, certify), `read`
(metadata, slivers, decode; during an epoch change, from the previous committee first; parts
of a blob and streams from the source rows holding them: `read_range`, `locate`),
`status` (the verified blob status). Those that only talk to the chain are here: `delete`,
`extend`, `list_blobs`, `system_info`. Everything is async; synchronous callers go through
`walruspy.Client` (`walruspy.client.sync`), a wrapper that runs this client on its own loop.

Defaults are the CLI's: a store is deletable unless `deletable=False`; a file to store or to
write is a `str` or any `os.PathLike`; object IDs in results are `0x` text.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import cast, overload

import aiohttp

from walruspy.chain.api import (
    BlobAttribute,
    BlobRecord,
    ChainReader,
    ChainUnavailableError,
    ChainWriter,
    SharedBlobRecord,
    SystemInfo,
    check_attribute_pairs,
)
from walruspy.chain.evm import open_evm_chain, open_evm_chain_when_up
from walruspy.client.config import ClientConfig, ContextConfig
from walruspy.client.errors import (
    BlobObjectStateError,
    BlobTooLargeError,
    InvalidArgumentError,
    ObjectNotFoundError,
)
from walruspy.client.funds import extension_cost, paying
from walruspy.client.nodes import ByteBudget, ClientEnv, NodePool
from walruspy.client.quilts import QuiltClient
from walruspy.client.read import BlobReader, ByteRange, check_read_size, locate_blob, read_blob
from walruspy.client.results import (
    DeleteResult,
    ExtendResult,
    NetworkInfo,
    Progress,
    ProgressCallback,
    RangeRead,
    StoreResult,
    VerifiedStatus,
)
from walruspy.client.status import verified_status
from walruspy.client.store import store_blob
from walruspy.core.blob_id import BlobId
from walruspy.core.decoding import ConsistencyCheck
from walruspy.core.errors import InvalidInputError
from walruspy.node_api.paths import format_object_id, parse_object_id
from walruspy.workers import EncoderPool

#: Bytes written to an output file at a time (a blob read whole is already in memory).
WRITE_CHUNK_BYTES = 8 << 20

BlobData = bytes | bytearray | memoryview
#: A file to store or write: a `str` path or any `os.PathLike` (a `pathlib.Path`).
FilePath = str | os.PathLike[str]


class WalrusClient:
    """Store, read and manage blobs; made by `open_client`."""

    def __init__(self, env: ClientEnv) -> None:
        self.env = env

    @property
    def quilts(self) -> QuiltClient:
        """Quilts: many small blobs stored as one, read patch by patch (`client.quilts`)."""
        return QuiltClient(self.env)

    @property
    def address(self) -> str | None:
        """The wallet's account address, or None for a read-only client."""
        return self.env.writer.address if self.env.writer is not None else None

    async def store(
        self,
        data: BlobData | FilePath,
        epochs: int,
        *,
        deletable: bool = True,
        force: bool = False,
        ignore_resources: bool = False,
        progress: ProgressCallback | None = None,
        on_registered: Callable[[BlobRecord], None] | None = None,
        share: bool = False,
    ) -> StoreResult:
        """Store `data` (bytes, or the contents of the file a `str` or `os.PathLike` names).

        The blob is kept for `epochs` epochs and is deletable unless `deletable=False` (a
        permanent blob), as the CLI's and Walrus's default since 1.33.
        Returns at once with `already_certified` when the blob is already stored long enough
        (unless `force`). `ignore_resources` skips looking for this account's blob objects
        (reuse of a registration, a certified deletable copy), which lists every object it owns.
        `on_registered` is told of the blob object (new or reused) before the upload, even when
        the store is cancelled while registering: an interrupted caller knows what it paid for.
        """
        data = await self._blob_data(data)
        return await store_blob(
            self.env,
            data,
            epochs=epochs,
            deletable=deletable,
            force=force,
            ignore_resources=ignore_resources,
            progress=progress,
            on_registered=on_registered,
            share=share,
        )

    async def _blob_data(self, data: BlobData | FilePath) -> bytes | memoryview:
        """The bytes to store: `data` itself, or the contents of the file it names."""
        if isinstance(data, str | os.PathLike):
            return await self._read_file(Path(data))
        if isinstance(data, bytes | memoryview):
            return data
        if isinstance(data, bytearray):
            return memoryview(data)
        raise TypeError(
            f"a blob is bytes or a file path (str or os.PathLike), not {type(data).__name__}"
        )

    async def _read_file(self, path: Path) -> bytes:
        limit = self.env.config.max_blob_bytes
        try:
            size = (await asyncio.to_thread(path.stat)).st_size
        except FileNotFoundError as exc:
            # A str is always a path here: say so, for a caller who meant it as the data.
            raise FileNotFoundError(
                exc.errno,
                f"no file {str(path)[:200]!r} to store (a str names a file; pass "
                "bytes to store the data itself)",
                str(path),
            ) from None
        if size > limit:
            raise BlobTooLargeError(
                f"{path} has {size} bytes, more than the client's max_blob_bytes of {limit}"
            )
        return await asyncio.to_thread(path.read_bytes)

    @overload
    async def read(
        self,
        blob_id: BlobId | str,
        out: None = None,
        *,
        consistency: ConsistencyCheck = ConsistencyCheck.DEFAULT,
        progress: ProgressCallback | None = None,
    ) -> bytes: ...

    @overload
    async def read(
        self,
        blob_id: BlobId | str,
        out: FilePath,
        *,
        consistency: ConsistencyCheck = ConsistencyCheck.DEFAULT,
        progress: ProgressCallback | None = None,
    ) -> int: ...

    @overload
    async def read(
        self,
        blob_id: BlobId | str,
        out: FilePath | None,
        *,
        consistency: ConsistencyCheck = ConsistencyCheck.DEFAULT,
        progress: ProgressCallback | None = None,
    ) -> bytes | int: ...

    async def read(
        self,
        blob_id: BlobId | str,
        out: FilePath | None = None,
        *,
        consistency: ConsistencyCheck = ConsistencyCheck.DEFAULT,
        progress: ProgressCallback | None = None,
    ) -> bytes | int:
        """The blob's data; with `out`, written to that file instead and its length returned.

        The file appears whole or not at all (written beside it, then renamed). Unless the check
        is Strict (which re-encodes the whole blob), the file is written as the blob streams in,
        source row by source row (`BlobReader.chunks`), so memory stays bounded. During an epoch
        change, a blob certified before it is read from the previous committee first
        (`walruspy.client.read`).
        """
        blob_id = _blob_id(blob_id)
        committees = await self.env.chain.epoch_committees()
        if out is not None and consistency is not ConsistencyCheck.STRICT:
            reader = await locate_blob(self.env, blob_id, committees)
            check_read_size(reader.metadata, self.env.config.max_blob_bytes)
            tracker = Progress(progress, "download", reader.size)
            return await _stream_to_file(Path(out), reader.chunks(), tracker)
        data = await read_blob(self.env, blob_id, committees, consistency, progress)
        if out is None:
            return data
        await asyncio.to_thread(_write_atomically, Path(out), data)
        return len(data)

    async def locate(self, blob_id: BlobId | str) -> BlobReader:
        """The blob's verified metadata (its size), to read parts of it from (no sliver yet)."""
        committees = await self.env.chain.epoch_committees()
        return await locate_blob(self.env, _blob_id(blob_id), committees)

    async def read_range(
        self, blob_id: BlobId | str, byte_range: ByteRange | tuple[int, int]
    ) -> RangeRead:
        """Part of a blob: `(start, length)` or a `ByteRange` (from a start, or the last n bytes).

        Fetches the verified metadata, then only the primary slivers holding those bytes, each
        verified against the metadata (`walruspy.client.read`, module doc 7); never the whole
        blob. A range past the blob's end raises `ByteRangeError`, which names the blob's size.
        """
        if isinstance(byte_range, tuple):
            byte_range = ByteRange(*byte_range)
        reader = await self.locate(blob_id)
        start, length = byte_range.resolve(reader.size)
        data = await reader.read_range(start, length)
        return RangeRead(
            reader.blob_id,
            data,
            start,
            reader.size,
            tuple(reader.rows_read),
            reader.sliver_bytes_read,
        )

    async def blob_status(self, blob_id: BlobId | str) -> VerifiedStatus:
        """The blob's status as nodes of at least f+1 shards report it."""
        committee = await self.env.chain.committee()
        return await verified_status(self.env, _blob_id(blob_id), committee)

    async def blob_id_of(self, data: BlobData | FilePath) -> BlobId:
        """The blob ID of `data` for the current committee (encodes it locally)."""
        data = await self._blob_data(data)
        n_shards = (await self.env.chain.committee()).n_shards
        encoded = await asyncio.to_thread(self.env.encoder.encode, data, n_shards)
        return encoded.metadata.blob_id

    async def delete(
        self, *, blob_id: BlobId | str | None = None, object_id: bytes | str | None = None
    ) -> DeleteResult:
        """Delete one deletable blob object, or every one of this account for `blob_id`.

        `object_id` is 32 bytes or its `0x` text, as results give it.
        """
        writer = self.env.require_writer("delete")
        if (blob_id is None) == (object_id is None):
            raise ValueError("delete takes either blob_id or object_id")
        object_id = _object_id(object_id) if object_id is not None else None
        epoch = (await self.env.chain.system_info()).epoch
        if object_id is not None:
            record = await self._owned_blob(writer, object_id)
            if not record.deletable:
                raise BlobObjectStateError(
                    f"blob object {format_object_id(object_id)} is permanent: only deletable "
                    "blobs can be deleted"
                )
            if record.end_epoch <= epoch:
                raise BlobObjectStateError(
                    f"blob object {format_object_id(object_id)} expired at epoch {record.end_epoch}"
                )
            targets: Sequence[BlobRecord] = [record]
            wanted = None
        else:
            assert blob_id is not None
            wanted = _blob_id(blob_id)
            owned = await self.env.chain.owned_blobs(writer.address)
            targets = [
                r for r in owned if r.blob_id == wanted and r.deletable and r.end_epoch > epoch
            ]
        for record in targets:
            await writer.delete_blob(record.object_id)
        shown = format_object_id(object_id) if object_id is not None else None
        return DeleteResult(wanted, shown, targets)

    async def extend(
        self, object_id: bytes | str, epochs: int, *, shared: bool = False
    ) -> ExtendResult:
        """Keep a certified blob object of this account for `epochs` more epochs, paid from the
        wallet; with `shared`, `object_id` is a shared blob's, paid from its funds (anyone
        may extend one, as Walrus's `extend --shared`)."""
        writer = self.env.require_writer("extend")
        object_id = _object_id(object_id)
        name = format_object_id(object_id)
        info = await self.env.chain.system_info()
        if not shared:
            record = await self._owned_blob(writer, object_id)
            cost = _extension_checked(record, info, epochs, name)
            await paying(writer, writer.extend_blob(object_id, epochs), cost)
            return ExtendResult(record, epochs, record.end_epoch + epochs, cost)
        wrapper = await self._shared_blob(object_id)
        found = await self.env.chain.get_blob(wrapper.blob_object_id)
        if found is None:  # a shared blob's object stays with SharedBlobs.vy for good
            raise ObjectNotFoundError(f"shared blob {name} wraps no blob object any more")
        cost = _extension_checked(found, info, epochs, name)
        if cost > wrapper.funds:
            raise BlobObjectStateError(
                f"shared blob {name} has {wrapper.funds} FROST of funds; extending it by "
                f"{epochs} epochs costs {cost}: fund it first (fund-shared-blob)"
            )
        await writer.extend_shared_blob(object_id, epochs)
        return ExtendResult(found, epochs, found.end_epoch + epochs, cost)

    async def share_blob(self, object_id: bytes | str, amount: int = 0) -> str:
        """Share a blob object of this account, as Walrus's `share`: the object is given up to
        the SharedBlobs contract for good (nobody can delete or burn it), and anyone may fund
        it and extend it from its funds. `amount` FROST of this wallet's fund it at once.
        Returns the shared blob's ID (`0x` text)."""
        writer = self.env.require_writer("share")
        object_id = _object_id(object_id)
        if amount < 0:
            raise InvalidInputError(f"a shared blob is funded with 0 FROST or more, not {amount}")
        await self._owned_blob(writer, object_id)
        return format_object_id(await paying(writer, writer.share_blob(object_id, amount), amount))

    async def fund_shared_blob(self, shared_blob_id: bytes | str, amount: int) -> int:
        """Add `amount` FROST of this wallet's to a shared blob's funds; the funds afterwards."""
        writer = self.env.require_writer("fund-shared-blob")
        shared_blob_id = _object_id(shared_blob_id)
        if amount < 1:
            raise InvalidInputError(f"fund a shared blob with 1 FROST or more, not {amount}")
        before = await self._shared_blob(shared_blob_id)
        await paying(writer, writer.fund_shared_blob(shared_blob_id, amount), amount)
        return before.funds + amount

    async def shared_blob(self, shared_blob_id: bytes | str) -> SharedBlobRecord:
        """A shared blob: the blob object it wraps and its funds (`ObjectNotFoundError`)."""
        return await self._shared_blob(_object_id(shared_blob_id))

    async def _shared_blob(self, shared_blob_id: bytes) -> SharedBlobRecord:
        record = await self.env.chain.shared_blob(shared_blob_id)
        if record is None:
            raise ObjectNotFoundError(f"no shared blob {format_object_id(shared_blob_id)}")
        return record

    async def transfer_blob(self, object_id: bytes | str, to: str) -> None:
        """Give a blob object of this account to the EVM address `to` (send_object_to)."""
        writer = self.env.require_writer("transfer")
        object_id = _object_id(object_id)
        await self._owned_blob(writer, object_id)
        await writer.transfer_blob(object_id, to)

    async def get_blob_attribute(self, object_id: bytes | str) -> BlobAttribute | None:
        """The attribute of a blob object (anyone's): its key-value pairs in order, or None."""
        object_id = _object_id(object_id)
        if await self.env.chain.get_blob(object_id) is None:
            raise ObjectNotFoundError(f"no blob object {format_object_id(object_id)}")
        return await self.env.chain.blob_attribute(object_id)

    async def set_blob_attribute(
        self, object_id: bytes | str, pairs: Mapping[str, str] | Sequence[tuple[str, str]]
    ) -> None:
        """Insert or update key-value pairs of the attribute of a blob object of this account
        (Walrus's `set-blob-attribute`): a key already there takes the new value and moves to
        the end, as in Walrus's `VecMap`."""
        writer = self.env.require_writer("set-blob-attribute")
        object_id = _object_id(object_id)
        items = list(pairs.items()) if isinstance(pairs, Mapping) else list(pairs)
        if not items:
            raise InvalidInputError("no attribute pair to set")
        check_attribute_pairs(items)
        await self._owned_blob(writer, object_id)
        await writer.set_blob_attribute_pairs(object_id, items)

    async def remove_blob_attribute_fields(
        self, object_id: bytes | str, keys: Sequence[str]
    ) -> None:
        """Remove keys from the attribute of a blob object of this account. Every key must be
        there: a missing one is an `InvalidInputError` naming it, and nothing is removed."""
        writer = self.env.require_writer("remove-blob-attribute-fields")
        object_id = _object_id(object_id)
        if not keys:
            raise InvalidInputError("no attribute key to remove")
        await self._owned_blob(writer, object_id)
        current = dict(await self.env.chain.blob_attribute(object_id) or ())
        missing = [key for key in keys if key not in current]
        if missing:
            raise InvalidInputError(
                f"blob object {format_object_id(object_id)} has no attribute key "
                f"{', '.join(repr(key) for key in missing)}"
            )
        await writer.remove_blob_attribute_pairs(object_id, list(dict.fromkeys(keys)))

    async def remove_blob_attribute(self, object_id: bytes | str) -> None:
        """Remove the whole attribute of a blob object of this account (it must have one)."""
        writer = self.env.require_writer("remove-blob-attribute")
        object_id = _object_id(object_id)
        await self._owned_blob(writer, object_id)
        if await self.env.chain.blob_attribute(object_id) is None:
            raise InvalidInputError(f"blob object {format_object_id(object_id)} has no attribute")
        await writer.remove_blob_attribute(object_id)

    async def burn_blobs(self, object_ids: Sequence[bytes | str]) -> list[str]:
        """Drop blob objects of this account, as Walrus's `burn_blobs`: no refund, no event.

        The nodes keep the data until the end epoch; the objects can no longer be extended or
        deleted. Every object is checked to be this account's before any is burnt, so a wrong
        ID burns nothing (`ObjectNotFoundError`). Returns the burnt IDs as `0x` text.
        """
        writer = self.env.require_writer("burn-blobs")
        ids = list(dict.fromkeys(_object_id(value) for value in object_ids))
        for object_id in ids:
            await self._owned_blob(writer, object_id)
        for object_id in ids:
            await writer.burn_blob(object_id)
        return [format_object_id(object_id) for object_id in ids]

    async def _owned_blob(self, writer: ChainWriter, object_id: bytes) -> BlobRecord:
        record = await self.env.chain.get_blob(object_id)
        if record is None or record.owner.lower() != writer.address.lower():
            raise ObjectNotFoundError(
                f"no blob object {format_object_id(object_id)} is owned by {writer.address}"
            )
        return record

    async def list_blobs(self, include_expired: bool = False) -> list[BlobRecord]:
        """This account's blob objects (the unexpired ones unless `include_expired`)."""
        writer = self.env.require_writer("list-blobs")
        owned = list(await self.env.chain.owned_blobs(writer.address))
        if include_expired:
            return owned
        epoch = (await self.env.chain.system_info()).epoch
        return [record for record in owned if record.end_epoch > epoch]

    async def system_info(self) -> NetworkInfo:
        """The system's parameters, prices and committee."""
        return NetworkInfo(await self.env.chain.system_info(), await self.env.chain.committee())


def _extension_checked(record: BlobRecord, info: SystemInfo, epochs: int, name: str) -> int:
    """What extending `record` by `epochs` costs, once the extension is known to be allowed:
    certified, unexpired, and within max_epochs_ahead (errors name `name`)."""
    if record.certified_epoch is None:
        raise BlobObjectStateError(f"blob object {name} is not certified; certify it first")
    if record.end_epoch <= info.epoch:
        raise BlobObjectStateError(f"blob object {name} expired at epoch {record.end_epoch}")
    ahead = record.end_epoch + epochs - info.epoch
    if epochs < 1 or ahead > info.max_epochs_ahead:
        raise InvalidArgumentError(
            f"epochs must be at least 1 and keep the blob at most max_epochs_ahead = "
            f"{info.max_epochs_ahead} epochs ahead; it ends at epoch {record.end_epoch}, "
            f"the current epoch is {info.epoch}"
        )
    return extension_cost(info, record.storage.storage_size, epochs)


def _object_id(value: bytes | str) -> bytes:
    """An object ID given as 32 bytes or as `0x` and 64 hex digits (InvalidInputError)."""
    return parse_object_id(value) if isinstance(value, str) else bytes(value)


def _blob_id(value: BlobId | str) -> BlobId:
    return value if isinstance(value, BlobId) else BlobId.parse(value)


def _part_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.part")


async def _stream_to_file(
    path: Path, chunks: AsyncGenerator[bytes, None], tracker: Progress
) -> int:
    """Write `chunks` to `path` as they come (beside it, then renamed); their total length."""
    tmp = _part_path(path)
    written = 0
    try:
        handle = await asyncio.to_thread(tmp.open, "wb")
        with handle:
            async with contextlib.aclosing(chunks):
                async for chunk in chunks:
                    await asyncio.to_thread(handle.write, chunk)
                    written += len(chunk)
                    tracker.add(len(chunk))
        await asyncio.to_thread(os.replace, tmp, path)
    finally:
        await asyncio.to_thread(tmp.unlink, missing_ok=True)
    tracker.finish()
    return written


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = _part_path(path)
    try:
        with tmp.open("wb") as handle:
            view = memoryview(data)
            for start in range(0, len(view), WRITE_CHUNK_BYTES):
                handle.write(view[start : start + WRITE_CHUNK_BYTES])
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.asynccontextmanager
async def connect_chain(context: ContextConfig, wait: bool = False) -> AsyncIterator[ChainReader]:
    """The context's chain: the first RPC URL that answers, with the wallet if there is one.

    With `wait` (the daemon), wait with backoff while no URL answers instead of failing.
    """
    key = context.read_wallet_key()
    if wait:
        opening = open_evm_chain_when_up(
            context.rpc_urls, context.deployment, key, confirmations=context.confirmations
        )
        async with opening as waited:
            yield waited
        return
    failures = []
    async with contextlib.AsyncExitStack() as stack:
        chain: ChainReader | None = None
        for url in context.rpc_urls:
            confirmations = context.confirmations
            opener = (
                open_evm_chain(url, context.deployment, confirmations=confirmations)
                if key is None
                else open_evm_chain(url, context.deployment, key, confirmations=confirmations)
            )
            try:
                chain = await stack.enter_async_context(opener)
                break
            except ChainUnavailableError as exc:
                failures.append(str(exc))
        if chain is None:
            raise ChainUnavailableError(
                f"no RPC URL of context {context.name!r} answered: " + "; ".join(failures)
            )
        yield chain


def _as_writer(chain: ChainReader) -> ChainWriter | None:
    """The chain as a writer if it sends transactions (an `EvmChain`, a test's fake)."""
    if callable(getattr(chain, "reserve_and_register", None)) and hasattr(chain, "address"):
        return cast(ChainWriter, chain)
    return None


@contextlib.asynccontextmanager
async def open_client(
    config: ClientConfig | ContextConfig,
    *,
    context: str | None = None,
    chain: ChainReader | None = None,
    session: aiohttp.ClientSession | None = None,
    encoder: EncoderPool | None = None,
    rng: random.Random | None = None,
    wait_for_chain: bool = False,
    detach_tails: bool = False,
) -> AsyncIterator[WalrusClient]:
    """A `WalrusClient` for `config` (its `context`, or the default one); see the module doc.

    `wait_for_chain`: wait while no RPC URL answers (the daemon) instead of failing (commands).
    `detach_tails`: a store returns once certified, its uploads to slower nodes finishing in the
    background (the daemon); closing the client waits for them.
    """
    selected = config.context(context) if isinstance(config, ClientConfig) else config
    limits = selected.communication
    async with contextlib.AsyncExitStack() as stack:
        if chain is None:
            chain = await stack.enter_async_context(connect_chain(selected, wait_for_chain))
        if session is None:
            # Connections per node are capped; their total is then bounded by the committee.
            connector = aiohttp.TCPConnector(limit=0, limit_per_host=limits.max_node_connections)
            session = await stack.enter_async_context(aiohttp.ClientSession(connector=connector))
        if encoder is None:
            encoder = EncoderPool(selected.encoder_workers)
            # Stopping the workers waits for them: off the event loop.
            stack.push_async_callback(asyncio.to_thread, encoder.close)
        env = ClientEnv(
            chain=chain,
            writer=_as_writer(chain),
            pool=NodePool(session, limits),
            config=limits,
            encoder=encoder,
            rng=rng or random.Random(),  # noqa: S311 - backoff jitter and node order
            write_slots=asyncio.Semaphore(limits.max_concurrent_writes),
            write_bytes=ByteBudget(limits.max_data_in_flight_bytes),
            detach_tails=detach_tails,
        )
        stack.push_async_callback(env.tails.close)  # before the session closes
        yield WalrusClient(env)

"""Quilts on the network: many small blobs stored as one, each read back from its own slivers.

Theory of operation (spec/walrus-system.md 4.1, 4.5; Walrus `walrus-sdk` `quilt_client.rs`).

Store. `QuiltClient.store` lays the blobs out as a QuiltV1 for the committee's shard count
(`walruspy.core.quilt.construct_quilt`, off the event loop) and stores the quilt's bytes as one
blob through the ordinary store path (`walruspy.client.store`: encode, register, upload,
certify). The result is Walrus's `QuiltStoreResult`: the blob store result and every patch with
its `QuiltPatchId` (which names the quilt's blob ID, so it is known only once the blob is).
Walrus also tags the blob object with the attribute `_walrusBlobType: quilt`; blob objects here
have no attributes, so a quilt is recognised by its bytes alone.

Read. A quilt's column j is its secondary sliver j (`walruspy.core.quilt`), so a reader:

1. fetches the verified metadata from the committee `walruspy.client.read` picks (the same
   committee rules, and the same explanations of a blob that is missing, expired or invalid),
   and refuses at once a blob whose length does not fill the p x s matrix (`NotAQuiltError`);
2. for reads by identifier or tag and for listings, reads the index: secondary sliver 0 says how
   many columns it takes (`index_sliver_indices`), then those;
3. fetches only the secondary slivers of the patches wanted, `max_concurrent_sliver_reads` at a
   time (default: p), each from the node holding its shard in each committee in turn, each
   verified against the metadata as every sliver is. A sliver no node serves is rebuilt from
   the decoding symbols of p primary slivers and checked against its metadata hash (as
   `rebuild_sliver` rebuilds rows). Reads by patch ID skip step 2, as Walrus's do.
4. If a sliver can be neither fetched nor rebuilt, the quilt is read whole instead, with the
   Strict consistency check (Walrus's `get_full_quilt` fallback: a full read checks primary
   slivers, a patch read secondary ones, and only the Strict check makes both agree). The
   result says so (`QuiltRead.whole`).

Like byte ranges, patches are checked sliver by sliver only: an inconsistently encoded quilt
may yield a patch that a full read would refuse (spec/walrus-system.md 7). Reading every patch
(`read_all`) fetches the s source columns, as much as a full read, and decodes nothing.

Errors: an identifier or tag the index does not have, or a patch ID whose columns hold no patch
(or lie outside the quilt's s columns), is `QuiltPatchNotFoundError`; a blob that is not a
QuiltV1 is `NotAQuiltError`; quilts that cannot be built (duplicate identifiers, too many or too
large blobs) are `InvalidArgumentError` or `BlobTooLargeError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from walruspy.chain.api import BlobRecord
from walruspy.client.errors import (
    BlobTooLargeError,
    InvalidArgumentError,
    NotAQuiltError,
    NotEnoughSliversError,
    QuiltPatchNotFoundError,
)
from walruspy.client.nodes import ClientEnv
from walruspy.client.read import BlobReader, fetch_sliver, locate_blob, read_blob
from walruspy.client.results import ENCODING_TYPE_NAME, ProgressCallback, StoreResult
from walruspy.client.store import store_blob
from walruspy.core.blob_id import BlobId
from walruspy.core.decoding import ConsistencyCheck
from walruspy.core.errors import (
    DataTooLargeError,
    DecodeError,
    InvalidInputError,
)
from walruspy.core.metadata import VerifiedBlobMetadataWithId
from walruspy.core.params import EncodingParams
from walruspy.core.quilt import (
    Quilt,
    QuiltIndex,
    QuiltPatchId,
    QuiltPatchInternalId,
    QuiltReader,
    QuiltStoreBlob,
    construct_quilt,
    index_sliver_indices,
)
from walruspy.core.slivers import VerifiedSliver
from walruspy.core.types import SliverType

__all__ = [
    "QuiltClient",
    "QuiltListing",
    "QuiltPatchData",
    "QuiltRead",
    "QuiltStoreResult",
    "StoredQuiltPatch",
]


# --- results ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredQuiltPatch:
    """A patch of a stored quilt: its identifier, global patch ID and tags."""

    identifier: str
    patch_id: QuiltPatchId
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def sliver_indices(self) -> range:
        """The secondary slivers (columns) that hold the patch."""
        return self.patch_id.internal_id.sliver_indices

    def to_json(self) -> dict[str, Any]:
        """Walrus's `StoredQuiltPatch`: `{"identifier", "quiltPatchId", "range": [start, end]}`."""
        internal = self.patch_id.internal_id
        return {
            "identifier": self.identifier,
            "quiltPatchId": str(self.patch_id),
            "range": [internal.start_index, internal.end_index],
        }


@dataclass(frozen=True, slots=True)
class QuiltStoreResult:
    """A quilt stored as one blob: the blob's store result and the patches it holds."""

    blob_store_result: StoreResult
    patches: tuple[StoredQuiltPatch, ...]

    @property
    def quilt_id(self) -> BlobId:
        """The quilt's blob ID."""
        return self.blob_store_result.blob_id

    def to_json(self) -> dict[str, Any]:
        """Walrus's `QuiltStoreResult`: `{"blobStoreResult", "storedQuiltBlobs"}`."""
        return {
            "blobStoreResult": self.blob_store_result.to_json(),
            "storedQuiltBlobs": [patch.to_json() for patch in self.patches],
        }


@dataclass(frozen=True, slots=True)
class QuiltPatchData:
    """A patch read back: its identifier, bytes, tags and global patch ID."""

    identifier: str
    data: bytes = field(repr=False)
    tags: Mapping[str, str]
    patch_id: QuiltPatchId

    def to_json(self, *, with_data: bool = True) -> dict[str, Any]:
        """Walrus's `QuiltStoreBlob` JSON: `{"blob": [bytes as numbers], "identifier", "tags"}`.

        Walrus's `read-quilt --out` empties `blob` once the file is written (`with_data=False`).
        """
        return {
            "blob": list(self.data) if with_data else [],
            "identifier": self.identifier,
            "tags": dict(self.tags),
        }


@dataclass(frozen=True, slots=True)
class QuiltRead:
    """Patches read from quilts, with what it cost.

    `slivers` are the secondary slivers fetched (or rebuilt) per quilt, `sliver_bytes` their
    size, and `whole` the quilts that had to be read whole instead (module doc, step 4).
    """

    patches: tuple[QuiltPatchData, ...]
    slivers: Mapping[BlobId, tuple[int, ...]] = field(default_factory=dict)
    sliver_bytes: int = 0
    whole: tuple[BlobId, ...] = ()


@dataclass(frozen=True, slots=True)
class QuiltListing:
    """A quilt's verified metadata and its index."""

    metadata: VerifiedBlobMetadataWithId
    index: QuiltIndex

    @property
    def quilt_id(self) -> BlobId:
        """The quilt's blob ID."""
        return self.metadata.blob_id

    def patches(self) -> list[StoredQuiltPatch]:
        """Every patch with its global ID, in index order."""
        return [
            StoredQuiltPatch(patch.identifier, patch.patch_id(self.quilt_id), patch.tags)
            for patch in self.index.patches
        ]

    def items_json(self) -> list[dict[str, Any]]:
        """The aggregator's `QuiltPatchItem` list: `[{"identifier", "patch_id", "tags"}]`."""
        return [
            {"identifier": p.identifier, "patch_id": str(p.patch_id), "tags": dict(p.tags)}
            for p in self.patches()
        ]

    def to_json(self) -> dict[str, Any]:
        """Walrus's `QuiltMetadata` JSON (serde's defaults): `{"V1": {"quilt_id", "metadata",
        "index": {"quiltPatches": [{"endIndex", "identifier", "tags"}]}}}`."""
        metadata = self.metadata.metadata
        hashes = [
            {
                "primary_hash": {"Digest": list(pair.primary_hash)},
                "secondary_hash": {"Digest": list(pair.secondary_hash)},
            }
            for pair in metadata.hashes
        ]
        patches = [
            {"endIndex": p.end_index, "identifier": p.identifier, "tags": dict(p.tags)}
            for p in self.index.patches
        ]
        return {
            "V1": {
                "quilt_id": str(self.quilt_id),
                "metadata": {
                    "V1": {
                        "encoding_type": ENCODING_TYPE_NAME,
                        "unencoded_length": metadata.unencoded_length,
                        "hashes": hashes,
                    }
                },
                "index": {"quiltPatches": patches},
            }
        }


# --- reading the columns of one quilt ------------------------------------------------------------


class QuiltSource:
    """One quilt being read: its verified metadata and the verified columns fetched so far."""

    def __init__(self, env: ClientEnv, reader: BlobReader) -> None:
        self.env = env
        self.reader = reader
        self.slivers: dict[int, VerifiedSliver] = {}
        #: The whole quilt, once a column could not be had (module doc, step 4).
        self.whole: Quilt | None = None
        metadata = reader.metadata
        params = metadata.params
        p, s = params.n_primary_source_symbols, params.n_secondary_source_symbols
        if metadata.unencoded_length != p * s * metadata.symbol_size:
            raise NotAQuiltError(
                f"blob {metadata.blob_id} is not a quilt: its {metadata.unencoded_length} bytes do "
                f"not fill the {p} x {s} matrix of symbols a QuiltV1 for {params.n_shards} "
                "shards fills"
            )

    @property
    def metadata(self) -> VerifiedBlobMetadataWithId:
        """The quilt's verified metadata."""
        return self.reader.metadata

    @property
    def quilt_id(self) -> BlobId:
        """The quilt's blob ID."""
        return self.reader.metadata.blob_id

    @property
    def n_columns(self) -> int:
        """The quilt's columns: s = n - f."""
        return self.metadata.params.n_secondary_source_symbols

    async def ensure(self, indices: Iterable[int]) -> None:
        """Fetch the columns `indices` not yet held; read the whole quilt if one fails."""
        if self.whole is not None:
            return
        missing = sorted({int(j) for j in indices} - set(self.slivers))
        fetched: dict[int, VerifiedSliver | NotEnoughSliversError] = {}
        concurrency = asyncio.Semaphore(
            self.env.config.max_concurrent_sliver_reads
            or self.metadata.params.n_primary_source_symbols
        )

        async def one(index: int) -> None:
            async with concurrency:
                try:
                    fetched[index] = await self._fetch_column(index)
                except NotEnoughSliversError as exc:
                    fetched[index] = exc

        async with asyncio.TaskGroup() as group:
            for index in missing:
                group.create_task(one(index))
        for index, outcome in fetched.items():
            if isinstance(outcome, VerifiedSliver):
                self.slivers[index] = outcome
        failures = [outcome for outcome in fetched.values() if isinstance(outcome, Exception)]
        if failures:
            try:
                await self._read_whole()
            except Exception as exc:
                exc.add_note(f"before that, reading only the quilt's columns failed: {failures[0]}")
                raise

    async def _fetch_column(self, index: int) -> VerifiedSliver:
        """Secondary sliver `index`: from its shard's owner in each committee, else rebuilt."""
        return await fetch_sliver(
            self.env, self.metadata, self.reader.committees, SliverType.SECONDARY, index
        )

    async def _read_whole(self) -> None:
        """The Strict full read of the quilt (module doc, step 4)."""
        committees = await self.env.chain.epoch_committees()
        data = await read_blob(self.env, self.quilt_id, committees, ConsistencyCheck.STRICT, None)
        try:
            self.whole = await asyncio.to_thread(Quilt.from_bytes, data, self.metadata.n_shards)
        except DecodeError as exc:
            raise NotAQuiltError(f"blob {self.quilt_id} is not a QuiltV1: {exc}") from exc

    async def index(self) -> QuiltIndex:
        """The quilt's index, from the columns that hold it."""
        await self.ensure([0])
        if self.whole is not None:
            return self.whole.index
        try:
            needed = index_sliver_indices(self.slivers[0].sliver.data)
        except DecodeError as exc:
            raise NotAQuiltError(f"blob {self.quilt_id} is not a QuiltV1: {exc}") from exc
        await self.ensure(needed)
        if self.whole is not None:
            return self.whole.index
        try:
            return QuiltReader.from_slivers(self.metadata, self.slivers.values()).index
        except DecodeError as exc:
            raise NotAQuiltError(f"blob {self.quilt_id} is not a QuiltV1: {exc}") from exc

    def core_reader(self, index: QuiltIndex) -> QuiltReader:
        """A reader over the columns held (or the whole quilt)."""
        if self.whole is not None:
            return QuiltReader(index, self.whole.columns(), self.quilt_id)
        return QuiltReader.from_slivers(self.metadata, self.slivers.values(), index)

    @property
    def sliver_bytes(self) -> int:
        """Bytes of the secondary slivers fetched or rebuilt."""
        return sum(len(v.sliver.data) for v in self.slivers.values())


# --- the client -----------------------------------------------------------------------------------


def _patch_data(
    source: QuiltSource, blob: QuiltStoreBlob, internal: QuiltPatchInternalId
) -> QuiltPatchData:
    patch_id = QuiltPatchId(source.quilt_id, internal)
    return QuiltPatchData(blob.identifier, blob.data, blob.tags, patch_id)


class QuiltClient:
    """Store quilts and read their patches (module doc); `WalrusClient.quilts` makes one."""

    def __init__(self, env: ClientEnv) -> None:
        self.env = env

    async def store(
        self,
        blobs: Sequence[QuiltStoreBlob],
        epochs: int,
        *,
        deletable: bool = True,
        force: bool = False,
        ignore_resources: bool = False,
        progress: ProgressCallback | None = None,
        on_registered: Callable[[BlobRecord], None] | None = None,
        share: bool = False,
    ) -> QuiltStoreResult:
        """Store `blobs` as one quilt for `epochs` epochs; the options are `WalrusClient.store`'s
        (deletable unless `deletable=False`, as the CLI).

        Raises `InvalidArgumentError` for a quilt that cannot be built (no blobs, duplicate
        identifiers, too many blobs) and `BlobTooLargeError` for one too large.
        """
        n_shards = (await self.env.chain.committee()).n_shards
        try:
            quilt = await asyncio.to_thread(construct_quilt, blobs, n_shards)
        except DataTooLargeError as exc:
            raise BlobTooLargeError(str(exc)) from exc
        except InvalidInputError as exc:
            raise InvalidArgumentError(str(exc)) from exc
        result = await store_blob(
            self.env,
            quilt.data,
            epochs=epochs,
            deletable=deletable,
            force=force,
            ignore_resources=ignore_resources,
            progress=progress,
            on_registered=on_registered,
            share=share,
        )
        # The store encodes for the committee it reads itself; a quilt is laid out for one
        # shard count, so a committee that changed size in between would break every patch ID.
        if result.encoded_length != EncodingParams(n_shards).encoded_length(len(quilt.data)):
            raise InvalidArgumentError(
                f"the committee's shard count changed from {n_shards} while the quilt was stored "
                f"(blob {result.blob_id}); store the quilt again"
            )
        patches = tuple(
            StoredQuiltPatch(p.identifier, p.patch_id(result.blob_id), p.tags)
            for p in quilt.index.patches
        )
        return QuiltStoreResult(result, patches)

    async def _source(self, quilt_id: BlobId | str) -> QuiltSource:
        blob_id = quilt_id if isinstance(quilt_id, BlobId) else BlobId.parse(quilt_id)
        committees = await self.env.chain.epoch_committees()
        return QuiltSource(self.env, await locate_blob(self.env, blob_id, committees))

    async def list_patches(self, quilt_id: BlobId | str) -> QuiltListing:
        """The quilt's metadata and index, read from the columns holding the index only."""
        source = await self._source(quilt_id)
        return QuiltListing(source.metadata, await source.index())

    async def read_by_identifiers(
        self, quilt_id: BlobId | str, identifiers: Iterable[str]
    ) -> QuiltRead:
        """The patches named `identifiers`, in index order; every one must exist."""
        wanted = list(identifiers)
        if not wanted:
            raise InvalidArgumentError("no identifiers given to read from the quilt")
        source = await self._source(quilt_id)
        index = await source.index()
        try:
            patches = index.patches_by_identifiers(wanted)
        except InvalidInputError as exc:
            raise QuiltPatchNotFoundError(f"quilt {source.quilt_id}: {exc}") from None
        return await self._read(source, index, [p.internal_id for p in patches])

    async def read_by_tag(self, quilt_id: BlobId | str, key: str, value: str) -> QuiltRead:
        """The patches whose tag `key` is `value`, in index order (possibly none)."""
        source = await self._source(quilt_id)
        index = await source.index()
        patches = index.patches_with_tag(key, value)
        return await self._read(source, index, [p.internal_id for p in patches])

    async def read_all(self, quilt_id: BlobId | str) -> QuiltRead:
        """Every patch of the quilt, in index order."""
        source = await self._source(quilt_id)
        index = await source.index()
        return await self._read(source, index, [p.internal_id for p in index.patches])

    async def read_by_ids(self, patch_ids: Iterable[QuiltPatchId | str]) -> QuiltRead:
        """The patches named by global patch IDs, in the order given, without reading indexes.

        A patch ID whose columns hold no patch, or lie beyond the quilt, raises
        `QuiltPatchNotFoundError`; a malformed one `InvalidArgumentError`.
        """
        parsed = [_patch_id(patch_id) for patch_id in patch_ids]
        if not parsed:
            raise InvalidArgumentError("no quilt patch IDs given")
        by_quilt: dict[BlobId, list[QuiltPatchInternalId]] = {}
        for patch_id in parsed:
            by_quilt.setdefault(patch_id.quilt_id, []).append(patch_id.internal_id)
        found: dict[QuiltPatchId, QuiltPatchData] = {}
        slivers: dict[BlobId, tuple[int, ...]] = {}
        sliver_bytes, whole = 0, list[BlobId]()
        for quilt_id, internals in by_quilt.items():
            source = await self._source(quilt_id)
            read = await self._read(source, QuiltIndex(()), internals)
            found.update((patch.patch_id, patch) for patch in read.patches)
            slivers.update(read.slivers)
            sliver_bytes += read.sliver_bytes
            whole += read.whole
        return QuiltRead(tuple(found[p] for p in parsed), slivers, sliver_bytes, tuple(whole))

    async def _read(
        self, source: QuiltSource, index: QuiltIndex, internals: Sequence[QuiltPatchInternalId]
    ) -> QuiltRead:
        """Fetch the columns of `internals` and decode those patches."""
        for internal in internals:
            if internal.end_index > source.n_columns:
                raise QuiltPatchNotFoundError(
                    f"quilt {source.quilt_id} has no patch in columns [{internal.start_index}, "
                    f"{internal.end_index}): it has {source.n_columns} columns"
                )
        self._check_budget(source, internals)
        await source.ensure(j for internal in internals for j in internal.sliver_indices)
        reader = source.core_reader(index)
        patches = []
        for internal in internals:
            try:
                blob = reader.patch_by_internal_id(internal)
            except DecodeError as exc:
                raise QuiltPatchNotFoundError(
                    f"quilt {source.quilt_id} has no patch in columns [{internal.start_index}, "
                    f"{internal.end_index}): {exc}"
                ) from exc
            patches.append(_patch_data(source, blob, internal))
        whole = (source.quilt_id,) if source.whole is not None else ()
        slivers = {source.quilt_id: tuple(sorted(source.slivers))}
        return QuiltRead(tuple(patches), slivers, source.sliver_bytes, whole)

    def _check_budget(self, source: QuiltSource, internals: Sequence[QuiltPatchInternalId]) -> None:
        """Refuse a read of more column bytes than the client's `max_blob_bytes`."""
        columns = {j for internal in internals for j in internal.sliver_indices}
        params = source.metadata.params
        size = len(columns) * params.n_primary_source_symbols * source.metadata.symbol_size
        limit = self.env.config.max_blob_bytes
        if size > limit:
            raise BlobTooLargeError(
                f"reading those patches of quilt {source.quilt_id} needs {size} bytes of slivers, "
                f"more than the client's max_blob_bytes of {limit}"
            )


def _patch_id(value: QuiltPatchId | str) -> QuiltPatchId:
    if isinstance(value, QuiltPatchId):
        return value
    try:
        return QuiltPatchId.parse(value)
    except InvalidInputError as exc:
        message = str(exc)
        if not message.startswith("invalid quilt patch ID"):
            message = f"invalid quilt patch ID {value[:60]!r}: {message}"
        raise InvalidArgumentError(message) from None

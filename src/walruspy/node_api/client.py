"""`NodeClient`: typed calls to one storage node's REST API (spec/walrus-system.md 3.1).

Theory of operation: one method per route, built from the shared `paths` and parsed with the
shared `schemas`, so client and server cannot disagree about the wire. What a node sends is
checked before it is returned:

- `get_metadata` returns `VerifiedBlobMetadataWithId` only after verifying it against the blob ID
  and shard count the caller gives (a lying node cannot pass off other metadata);
- `get_sliver` returns a `VerifiedSliver`, checked against metadata the caller gives;
- confirmations and attestations come back as `SignedMessage`s that the caller verifies against
  the signer's key and the expected message (the client does not know the committee);
- recovery and decoding symbols come back parsed; the caller verifies each symbol against the
  metadata (`RecoverySymbol.verify`), because only it knows which target it is recovering;
- a shard-sync answer comes back as parsed `(BlobId, SliverData)` pairs; the caller verifies
  each sliver against the blob's metadata, which it fetched itself.

Failures are values of three kinds, all `WalrusError`s: `NodeApiError` subclasses for error
answers (the node's reason, typed: `NotRegisteredError`, `SliverNotFoundError`, ...),
`NodeConnectionError`/`NodeTimeoutError` when the request did not complete, and `DecodeError`/
`VerificationError` when a 2xx answer is malformed, oversized or fails its check.

Limits: every call has a total timeout (default 300 s, Walrus's client; per-call override), and
every response body is read only up to the route's maximum (a sliver of the largest size, a
JSON answer of `MAX_JSON_BYTES`, ...); a larger answer is refused without buffering it.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import aiohttp
import aiohttp.abc
import aiohttp.payload
from yarl import URL

from walruspy.core.blob_id import BlobId
from walruspy.core.challenge import ChallengeProof
from walruspy.core.committee import CommitteeMember
from walruspy.core.crypto import BlsPublicKey, BlsSignature
from walruspy.core.errors import DecodeError
from walruspy.core.inconsistency import InconsistencyProof
from walruspy.core.messages import SignedMessage, signed_message_to_bcs
from walruspy.core.metadata import UnverifiedBlobMetadataWithId, VerifiedBlobMetadataWithId
from walruspy.core.params import MAX_N_SHARDS, MAX_SYMBOL_SIZE
from walruspy.core.slivers import (
    MAX_SLIVER_BYTES,
    SliverData,
    VerifiedSliver,
    expected_sliver_length,
    slivers_from_bcs,
    slivers_to_bcs,
    verify_slivers,
)
from walruspy.core.symbols import RecoverySymbol, symbols_from_bcs
from walruspy.core.types import SliverIndex, SliverPairIndex, SliverType
from walruspy.node_api import json_fields as jf
from walruspy.node_api import paths, schemas
from walruspy.node_api.challenge_proofs import MAX_PROOF_PAGE_BYTES, proof_page_from_bcs
from walruspy.node_api.decoding_symbols import DecodingSymbol, decoding_symbols_from_bcs
from walruspy.node_api.errors import (
    NodeConnectionError,
    NodeTimeoutError,
    UnexpectedResponseError,
    UnknownNodeApiError,
    error_from_response,
)
from walruspy.node_api.health import ServiceHealthInfo
from walruspy.node_api.sync_shard import sync_shard_response_from_bcs
from walruspy.node_api.tls import NodeIdentityError, PeerKeyMismatchError, pinned_context

#: Walrus's client gives a request 300 s in total.
DEFAULT_TIMEOUT_S = 300.0
#: Largest metadata answer: blob ID, header and two tagged hashes for each of 65,535 shards.
MAX_METADATA_RESPONSE_BYTES = 32 + 16 + 66 * MAX_N_SHARDS
#: Largest sliver answer: the largest sliver data and its framing.
MAX_SLIVER_RESPONSE_BYTES = MAX_SLIVER_BYTES + 16
#: Largest symbol answer: one symbol per shard a node may hold (at most all), with proofs. A node
#: holds a share of n <= 65,535 shards; 1,024 symbols of the largest size bound any honest answer
#: for the committees we run (n <= 1,000 shards, a node rarely holding more than a third).
MAX_SYMBOLS_RESPONSE_BYTES = 1024 * (MAX_SYMBOL_SIZE + 1 + 16 * 33 + 16)
#: Largest shard-sync answer accepted. A walruspy source stops collecting at 64 MiB of slivers,
#: so its answers stay below this with one store-sized (64 MiB) sliver beyond; a source sending
#: more (Walrus's has no byte limit) needs a smaller `sliver_count` or a larger limit per call.
MAX_SYNC_SHARD_RESPONSE_BYTES = 256 << 20
#: Request bodies larger than this are written in chunks (aiohttp's advice above 1 MiB).
STREAM_BODY_BYTES = 1 << 20
#: One chunk of a streamed request body.
WRITE_CHUNK_BYTES = 256 * 1024
#: Bytes read at a time from a response while checking its limit.
READ_CHUNK_BYTES = 256 * 1024
_BCS = "application/octet-stream"


class _ChunkedBody(aiohttp.payload.Payload):
    """A large request body written a chunk at a time, each a view of it (no copy).

    aiohttp's own streamed payload, a BytesIO, copies the body once to measure it and again
    chunk by chunk to write it; for sliver uploads those copies were a tenth of a client's CPU.
    """

    def __init__(self, body: bytes) -> None:
        super().__init__(body, content_type=_BCS)
        self._size = len(body)

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return bytes(self._value).decode(encoding, errors)

    async def write(self, writer: aiohttp.abc.AbstractStreamWriter) -> None:
        view = memoryview(self._value)
        for start in range(0, len(view), WRITE_CHUNK_BYTES):
            await writer.write(view[start : start + WRITE_CHUNK_BYTES])


@dataclass(frozen=True, slots=True)
class UploadOutcome:
    """A node's answer to an upload: 201 stored, 200 already stored (202 buffered in Walrus)."""

    code: int
    message: str


def node_url(network_address: str, network_public_key: bytes = b"") -> str:
    """The base URL of a committee member's `host:port` address: HTTPS when the member has a
    network key on chain (`walruspy.node_api.tls`), else plain HTTP, unless it names a scheme."""
    if network_address.startswith(("http://", "https://")):
        return network_address.rstrip("/")
    return f"{'https' if network_public_key else 'http'}://{network_address}"


class NodeClient:
    """Calls to one node. Pass a shared `aiohttp.ClientSession`, or let the client own one."""

    def __init__(
        self,
        base_url: str,
        session: aiohttp.ClientSession | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        network_public_key: bytes = b"",
    ) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        #: The key the node's TLS certificate must carry (empty: no pin, as for plain HTTP).
        self.network_public_key = network_public_key
        self._ssl: ssl.SSLContext | bool = (
            pinned_context(network_public_key)
            if network_public_key and self.base_url.startswith("https:")
            else True
        )
        self._session = session
        self._owns_session = session is None
        #: Bytes of response bodies received by this client (for recovery-cost figures).
        self.bytes_received = 0
        #: Whether the node has walruspy's batch upload: unknown until asked, False once a node
        #: answered that it has no such route (a Walrus node).
        self.batch_upload: bool | None = None
        #: The same for the batch read.
        self.batch_read: bool | None = None

    @classmethod
    def for_member(
        cls,
        member: CommitteeMember,
        session: aiohttp.ClientSession | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> NodeClient:
        """A client of committee member `member`: its address, over TLS pinned to its key."""
        return cls(
            node_url(member.network_address, member.network_public_key),
            session,
            timeout_s=timeout_s,
            network_public_key=member.network_public_key,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session if this client created it."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    # --- transport ----------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        max_response_bytes: int,
        timeout_s: float | None = None,
        authorization: str | None = None,
    ) -> tuple[int, bytes]:
        """One request: (status, body) of a 2xx answer; raises the node's error for others."""
        timeout = aiohttp.ClientTimeout(total=timeout_s or self.timeout_s)
        headers = {"Content-Type": _BCS} if body is not None else {}
        if authorization is not None:
            headers["Authorization"] = authorization
        url = URL(self.base_url + path, encoded=True)
        # aiohttp warns that a large bytes body may block the loop: it is written in chunks.
        data = _ChunkedBody(body) if body is not None and len(body) > STREAM_BODY_BYTES else body
        try:
            async with self._get_session().request(
                method, url, data=data, headers=headers or None, timeout=timeout, ssl=self._ssl
            ) as response:
                limit = max_response_bytes if response.ok else jf.MAX_JSON_BYTES
                payload = await _read_limited(response, limit)
                self.bytes_received += len(payload)
        except TimeoutError as exc:
            raise NodeTimeoutError(f"{method} {self.base_url}{path[:120]} timed out") from exc
        except aiohttp.ClientConnectorCertificateError as exc:
            mismatch = exc.certificate_error
            if isinstance(mismatch, PeerKeyMismatchError):
                reason = mismatch.args[0] if mismatch.args else "presented another TLS key"
                raise NodeIdentityError(
                    f"node {self.base_url} {reason}: refusing to talk to it"
                ) from exc
            raise NodeConnectionError(f"{method} {self.base_url}{path[:120]}: {exc}") from exc
        except aiohttp.ClientError as exc:
            raise NodeConnectionError(f"{method} {self.base_url}{path[:120]}: {exc}") from exc
        if not 200 <= response.status < 300:
            raise error_from_response(response.status, payload)
        return response.status, payload

    async def _json(self, path: str, timeout_s: float | None = None) -> jf.JsonValue:
        status, payload = await self.request(
            "GET", path, max_response_bytes=jf.MAX_JSON_BYTES, timeout_s=timeout_s
        )
        return schemas.parse_service_response(status, payload)

    # --- metadata -----------------------------------------------------------------------------

    async def get_metadata(
        self, blob_id: BlobId, n_shards: int, *, timeout_s: float | None = None
    ) -> VerifiedBlobMetadataWithId:
        """The blob's metadata, verified against `blob_id` and `n_shards`."""
        _, payload = await self.request(
            "GET",
            paths.metadata_path(blob_id),
            max_response_bytes=MAX_METADATA_RESPONSE_BYTES,
            timeout_s=timeout_s,
        )
        unverified = UnverifiedBlobMetadataWithId.from_bcs(payload)
        if unverified.blob_id != blob_id:
            raise DecodeError(f"asked for the metadata of {blob_id}, got {unverified.blob_id}")
        return unverified.verify(n_shards)

    async def put_metadata(
        self, metadata: VerifiedBlobMetadataWithId, *, pending: bool = False
    ) -> UploadOutcome:
        """Upload metadata (BCS `BlobMetadata`)."""
        path = paths.with_query(
            paths.metadata_path(metadata.blob_id), paths.upload_intent_query(pending)
        )
        return await self._upload(path, metadata.metadata.to_bcs())

    async def _upload(self, path: str, body: bytes) -> UploadOutcome:
        status, payload = await self.request(
            "PUT", path, body=body, max_response_bytes=jf.MAX_JSON_BYTES
        )
        message = schemas.parse_service_response(status, payload)
        return UploadOutcome(status, jf.as_str(message, "upload answer", 1024))

    async def metadata_status(self, blob_id: BlobId) -> schemas.StoredOnNodeStatus:
        """Whether the node stores the metadata."""
        data = await self._json(paths.metadata_status_path(blob_id))
        return schemas.StoredOnNodeStatus.from_json(data)

    # --- slivers ------------------------------------------------------------------------------

    async def get_sliver(
        self,
        metadata: VerifiedBlobMetadataWithId,
        pair: SliverPairIndex,
        sliver_type: SliverType,
        *,
        timeout_s: float | None = None,
    ) -> VerifiedSliver:
        """The `sliver_type` sliver of `pair`, verified against `metadata`."""
        _, payload = await self.request(
            "GET",
            paths.sliver_path(metadata.blob_id, pair, sliver_type),
            max_response_bytes=MAX_SLIVER_RESPONSE_BYTES,
            timeout_s=timeout_s,
        )
        sliver = SliverData.from_bcs(payload, sliver_type)
        if sliver.pair_index(metadata.n_shards) != pair:
            raise DecodeError(f"asked for pair {pair}, got sliver {sliver.index}")
        return sliver.verify(metadata)

    async def get_slivers(
        self,
        metadata: VerifiedBlobMetadataWithId,
        pairs: Sequence[SliverPairIndex],
        sliver_type: SliverType,
        *,
        timeout_s: float | None = None,
    ) -> dict[SliverPairIndex, VerifiedSliver] | None:
        """The `sliver_type` slivers of `pairs` the node stores, verified as one batch, by pair
        (walruspy's batch read; a sliver the node lacks is absent); None, remembered in
        `batch_read`, if the node has no such route."""
        query = paths.SliversQuery(tuple(pairs), sliver_type)
        length = expected_sliver_length(metadata.params, sliver_type, metadata.symbol_size)
        try:
            _, payload = await self.request(
                "GET",
                paths.with_query(paths.slivers_path(metadata.blob_id), query.to_query()),
                max_response_bytes=8 + len(pairs) * (length + 16),
                timeout_s=timeout_s,
            )
        except (UnexpectedResponseError, UnknownNodeApiError) as exc:
            if exc.http_status not in {404, 405}:  # see put_slivers
                raise
            self.batch_read = False
            return None
        self.batch_read = True
        slivers = [sliver for sliver, _ in slivers_from_bcs(payload, len(pairs))]
        by_pair = {sliver.pair_index(metadata.n_shards): sliver for sliver in slivers}
        if len(by_pair) != len(slivers) or not set(by_pair) <= set(pairs):
            raise DecodeError(f"a batch read of {len(pairs)} pairs answered other slivers")
        if any(sliver.sliver_type is not sliver_type for sliver in slivers):
            raise DecodeError(f"asked for {sliver_type.value} slivers, got the other axis")
        verified = await asyncio.to_thread(verify_slivers, slivers, metadata)
        return dict(zip(by_pair, verified, strict=True))

    async def put_sliver(
        self,
        blob_id: BlobId,
        pair: SliverPairIndex,
        sliver: SliverData | VerifiedSliver,
        *,
        pending: bool = False,
    ) -> UploadOutcome:
        """Upload one sliver (BCS `SliverData`); its type comes from the sliver."""
        data = sliver.sliver if isinstance(sliver, VerifiedSliver) else sliver
        path = paths.with_query(
            paths.sliver_path(blob_id, pair, data.sliver_type), paths.upload_intent_query(pending)
        )
        return await self._upload(path, data.to_bcs())

    async def put_slivers(
        self,
        blob_id: BlobId,
        slivers: Sequence[SliverData | VerifiedSliver],
        *,
        pending: bool = False,
    ) -> UploadOutcome | None:
        """Upload many slivers of one blob in one request (walruspy's batch route, BCS
        `Vec<Sliver>`); None, remembered in `batch_upload`, if the node has no such route."""
        data = [s.sliver if isinstance(s, VerifiedSliver) else s for s in slivers]
        path = paths.with_query(paths.slivers_path(blob_id), paths.upload_intent_query(pending))
        try:
            outcome = await self._upload(path, slivers_to_bcs(data))
        except (UnexpectedResponseError, UnknownNodeApiError) as exc:
            # A node without the route: Walrus's answers its framework's plain 404 (or 405), an
            # older walruspy node an AIP-193 NOT_FOUND. No answer of the route itself is either.
            if exc.http_status not in {404, 405}:
                raise
            self.batch_upload = False
            return None
        self.batch_upload = True
        return outcome

    async def sliver_status(
        self, blob_id: BlobId, pair: SliverPairIndex, sliver_type: SliverType
    ) -> schemas.StoredOnNodeStatus:
        """Whether the node stores that sliver."""
        data = await self._json(paths.sliver_status_path(blob_id, pair, sliver_type))
        return schemas.StoredOnNodeStatus.from_json(data)

    # --- confirmations and status -------------------------------------------------------------

    async def get_confirmation(
        self,
        blob_id: BlobId,
        object_id: bytes | None = None,
        *,
        wait: paths.ConfirmationWait | None = None,
        timeout_s: float | None = None,
    ) -> SignedMessage:
        """The node's signed confirmation (permanent, or for the deletable object `object_id`).

        The caller verifies it: `signed.verify(member_key, ConfirmationMessage(...))`.
        """
        path = (
            paths.permanent_confirmation_path(blob_id)
            if object_id is None
            else paths.deletable_confirmation_path(blob_id, object_id)
        )
        path = paths.with_query(path, (wait or paths.ConfirmationWait()).to_query())
        data = await self._json(path, timeout_s)
        return _core_signed(schemas.storage_confirmation_from_json(data))

    async def blob_status(
        self, blob_id: BlobId, *, timeout_s: float | None = None
    ) -> schemas.BlobStatus:
        """The blob's status as the node sees it (unverified: a single node may lie)."""
        return schemas.blob_status_from_json(
            await self._json(paths.blob_status_path(blob_id), timeout_s)
        )

    async def health(self, detailed: bool = False) -> ServiceHealthInfo:
        """The node's health answer."""
        path = paths.with_query(paths.HEALTH_ROUTE, paths.health_query(detailed))
        return ServiceHealthInfo.from_json(await self._json(path))

    async def api_docs(self) -> bytes:
        """The node's OpenAPI document."""
        _, payload = await self.request(
            "GET", paths.API_DOCS_ROUTE, max_response_bytes=jf.MAX_JSON_BYTES
        )
        return payload

    # --- recovery -----------------------------------------------------------------------------

    async def recovery_symbols(
        self,
        blob_id: BlobId,
        symbols_filter: paths.RecoverySymbolsFilter,
        *,
        timeout_s: float | None = None,
    ) -> list[RecoverySymbol]:
        """Recovery symbols with proofs, parsed; verify each with `RecoverySymbol.verify`."""
        path = paths.with_query(paths.recovery_symbols_path(blob_id), symbols_filter.to_query())
        _, payload = await self.request(
            "GET", path, max_response_bytes=MAX_SYMBOLS_RESPONSE_BYTES, timeout_s=timeout_s
        )
        return symbols_from_bcs(payload)

    async def decoding_symbols(
        self, blob_id: BlobId, query: paths.DecodingSymbolsQuery
    ) -> dict[SliverIndex, list[DecodingSymbol]]:
        """Source symbols (no proofs) by target sliver; check the decoded sliver yourself."""
        path = paths.with_query(paths.decoding_symbols_path(blob_id), query.to_query())
        _, payload = await self.request("GET", path, max_response_bytes=MAX_SYMBOLS_RESPONSE_BYTES)
        return decoding_symbols_from_bcs(payload)

    async def inconsistency_proof(
        self, blob_id: BlobId, proof: InconsistencyProof
    ) -> SignedMessage:
        """Send an inconsistency proof; the node's signed INVALID_BLOB_ID attestation."""
        path = paths.inconsistency_proof_path(blob_id, proof.target_type)
        status, payload = await self.request(
            "POST", path, body=proof.to_bcs(), max_response_bytes=jf.MAX_JSON_BYTES
        )
        data = schemas.parse_service_response(status, payload)
        return _core_signed(schemas.SignedMessage.from_json(data))

    # --- storage challenges -------------------------------------------------------------------

    async def challenge_proof(
        self, epoch: int, verifier: bytes, start: int, count: int
    ) -> list[ChallengeProof]:
        """Positions `start`..`start + count - 1` of the node's challenge proof for `verifier`,
        one `ChallengeProof` per blob; check them with `verify_challenge_answer`."""
        path = paths.challenge_proof_path(epoch, verifier, start, count)
        _, payload = await self.request("GET", path, max_response_bytes=MAX_PROOF_PAGE_BYTES)
        return proof_page_from_bcs(payload)

    async def challenge_attestation(self, epoch: int, node_id: bytes) -> SignedMessage:
        """The node's signed attestation that `node_id` passed the challenge of `epoch`; the
        caller verifies it (`signed.verify(member_key, ChallengeAttestationMessage(...))`)."""
        data = await self._json(paths.challenge_attestation_path(epoch, node_id))
        return _core_signed(schemas.SignedMessage.from_json(data))

    # --- shard sync ---------------------------------------------------------------------------

    async def sync_shard(
        self,
        signed_request: SignedMessage,
        requester: BlsPublicKey,
        *,
        timeout_s: float | None = None,
        max_response_bytes: int = MAX_SYNC_SHARD_RESPONSE_BYTES,
    ) -> list[tuple[BlobId, SliverData]]:
        """Ask the node for slivers of a shard (`sign_sync_shard_request` makes the request).

        `requester` is the key that signed the request; it goes in the `Authorization` header, as
        Walrus's client sends it. The answer is parsed, in the node's order, and not verified.
        """
        _, payload = await self.request(
            "POST",
            paths.SYNC_SHARD_ROUTE,
            body=signed_message_to_bcs(signed_request),
            max_response_bytes=max_response_bytes,
            timeout_s=timeout_s,
            authorization=base64.b64encode(requester.to_bytes()).decode(),
        )
        return sync_shard_response_from_bcs(payload)


def _core_signed(signed: schemas.SignedMessage) -> SignedMessage:
    return SignedMessage(signed.serialized_message, BlsSignature.from_bytes(signed.signature))


async def _read_limited(response: aiohttp.ClientResponse, limit: int) -> bytes:
    declared = response.content_length
    if declared is not None and declared > limit:
        raise DecodeError(f"answer of {declared} bytes exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while chunk := await response.content.read(READ_CHUNK_BYTES):
        size += len(chunk)
        if size > limit:
            raise DecodeError(f"answer exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)

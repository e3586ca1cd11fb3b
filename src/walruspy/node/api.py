"""The node's REST API: an aiohttp.web application over `NodeService` (spec/walrus-system.md 3.1).

Theory of operation. Routes are those of `walruspy.node_api.paths.ROUTES` (Walrus's
`routes.rs`), shard sync included (`node/shard_source.py`; the requester names its protocol key in
the `Authorization` header as standard base64, as Walrus's client does). Each handler parses its
path and query with the shared parsers (a malformed parameter is 400 INVALID_REQUEST, a malformed
symbol filter 400 INVALID_FILTER), reads a binary body only as far as the route's limit, calls the
service and renders BCS (`application/octet-stream`) or JSON in Walrus's success envelope. Every
`NodeApiError` becomes an AIP-193 body with its status; anything else is logged and answered with
a detail-free 500, so bad input never takes the node down.

Limits, all enforced before work is done:
- bodies: a route's exact maximum (a primary sliver of the largest symbol size plus 128 bytes of
  headroom, as Walrus's `DefaultBodyLimit`; metadata for n shards; an inconsistency proof of s
  symbols; a signed sync-shard request), capped by `max_body_bytes`. A declared `Content-Length`
  over it is refused at once; otherwise the body is read in chunks and refused as soon as it
  passes the limit, so an oversized body is never buffered whole;
- concurrency: at most `max_concurrent_requests` requests are handled at once, the rest get 429
  RESOURCE_EXHAUSTED immediately; recovery-symbol requests have their own smaller limit (503);
- slow and greedy clients: the server runs behind `walruspy.node_api.connection_guard`
  (`NodeConfig.connections`): request headers have a deadline, bodies a minimum rate, each
  address a cap on its connections. Connections that are idle or still sending headers hold no
  request slot; a body that arrives too slowly fails its reads with `BodyTooSlowError`, which
  frees the slot and is answered 408 (counted as REQUEST_TIMEOUT);
- CORS is open (any origin, method and header), as on Walrus's nodes.

The OpenAPI document (`openapi.yaml` beside this module) is served at `/v1/api`; a test checks that
it lists exactly the routes served. `/metrics` serves the node's Prometheus registry.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from walruspy.core.blob_id import BlobId
from walruspy.core.crypto import PUBLIC_KEY_BYTES, SIGNATURE_BYTES, BlsPublicKey
from walruspy.core.errors import DecodeError, InvalidInputError, VerificationError
from walruspy.core.messages import SYNC_SHARD_MESSAGE_BYTES, SignedMessage, signed_message_from_bcs
from walruspy.core.params import MAX_SYMBOL_SIZE, EncodingParams
from walruspy.core.slivers import expected_sliver_length
from walruspy.core.types import SliverType
from walruspy.logs import get_logger
from walruspy.node.challenges import Challenges
from walruspy.node.metrics import METRICS_CONTENT_TYPE
from walruspy.node.service import NodeService, Stored
from walruspy.node.shard_source import ShardSource
from walruspy.node.symbols import SymbolService
from walruspy.node_api import errors as api_errors
from walruspy.node_api import json_fields as jf
from walruspy.node_api import paths
from walruspy.node_api.challenge_proofs import MAX_PROOF_PAGE
from walruspy.node_api.connection_guard import BodyTooSlowError
from walruspy.node_api.schemas import blob_status_to_json, success_body

#: Extra bytes allowed on top of a body's computed maximum (Walrus's `HEADROOM`).
BODY_HEADROOM_BYTES = 128
#: Bytes read from a request body at a time while checking its limit.
READ_CHUNK_BYTES = 256 * 1024
#: The largest BCS Merkle proof: a length byte and 16 digest nodes of 33 bytes (n <= 2^16).
MAX_PROOF_BYTES = 1 + 16 * 33
#: Routes served: all of Walrus's, walruspy's batch upload and its storage-challenge routes.
SERVED_ROUTES = paths.ROUTES + paths.BATCH_ROUTES + paths.CHALLENGE_ROUTES
#: Largest batch-upload body. Clients send small slivers in batches (a blob's slivers for one
#: node at n = 1000 are 200 requests otherwise) and large ones alone.
MAX_BATCH_BODY_BYTES = 16 << 20
#: Largest sync-shard body: a BCS signed SYNC_SHARD message (length byte, 55 bytes, a 96-byte
#: signature) and headroom.
SYNC_SHARD_BODY_BYTES = 1 + SYNC_SHARD_MESSAGE_BYTES + SIGNATURE_BYTES + BODY_HEADROOM_BYTES
METRICS_ROUTE = "/metrics"
_BCS = "application/octet-stream"
_CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "*",
    "Access-Control-Allow-Headers": "*",
}

log = get_logger("walruspy.node.api")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def openapi_document() -> bytes:
    """The OpenAPI document of the node API."""
    return importlib.resources.files("walruspy.node").joinpath("openapi.yaml").read_bytes()


def _json(value: jf.JsonValue, status: int = 200) -> web.Response:
    return web.Response(body=jf.dumps(value), status=status, content_type="application/json")


def _success(data: jf.JsonValue, code: int = 200) -> web.Response:
    return _json(success_body(data, code), code)


def _stored(outcome: Stored) -> web.Response:
    return _success(outcome.message, outcome.code)


def _signed_json(signed: SignedMessage) -> jf.JsonObject:
    """`{"serializedMessage", "signature"}` of a signed message, standard padded base64."""
    return dict(signed.to_json_dict().items())


def _bcs(body: bytes) -> web.Response:
    return web.Response(body=body, content_type=_BCS)


class NodeApi:
    """Builds the application; `app` serves it."""

    def __init__(
        self,
        service: NodeService,
        symbols: SymbolService,
        max_body_bytes: int,
        max_concurrent_requests: int,
        metrics_enabled: bool = True,
        *,
        shard_source: ShardSource | None = None,
        challenges: Challenges | None = None,
    ) -> None:
        self.service = service
        self.symbols = symbols
        self.challenges = challenges or Challenges(service.storage, service.state, service.metrics)
        self.shard_source = shard_source or ShardSource(
            service.storage.store, service.state, service.limits.max_sliver_count_per_sync_request
        )
        self.max_body_bytes = max_body_bytes
        self.max_concurrent_requests = max_concurrent_requests
        self.in_flight = 0
        self.app = web.Application(
            client_max_size=max_body_bytes + BODY_HEADROOM_BYTES,
            middlewares=[self._guard],
        )
        for route in SERVED_ROUTES:
            self.app.router.add_route(route.method, route.template, getattr(self, route.name))
        if metrics_enabled:
            self.app.router.add_get(METRICS_ROUTE, self.metrics)

    # --- middleware ---------------------------------------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """CORS, the concurrency limit and the rendering of every error."""
        if request.method == "OPTIONS":
            return web.Response(status=204, headers=_CORS_HEADERS)
        response: web.StreamResponse
        if self.in_flight >= self.max_concurrent_requests:
            response = self._error(api_errors.TooManyRequestsError())
        else:
            self.in_flight += 1
            try:
                response = await self._handle(request, handler)
            finally:
                self.in_flight -= 1
        response.headers.update(_CORS_HEADERS)
        return response

    async def _handle(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except api_errors.NodeApiError as error:
            return self._error(error)
        except web.HTTPNotFound:
            return self._error(
                api_errors.NodeApiError(
                    api_errors.ApiStatus.NOT_FOUND,
                    "NOT_FOUND",
                    api_errors.GLOBAL_ERROR_DOMAIN,
                    f"no route {request.method} {request.path[:200]}",
                )
            )
        except BodyTooSlowError:
            # Cut by the connection guard: aiohttp answers its 408 and closes the connection.
            self.service.metrics.rejected_requests.labels("REQUEST_TIMEOUT").inc()
            raise
        except web.HTTPException:
            raise
        except ConnectionResetError:
            # The client went away mid-request: its business, not a fault of ours; one line.
            log.info("client disconnected", method=request.method, path=request.path[:200])
            self.service.metrics.rejected_requests.labels("CLIENT_DISCONNECTED").inc()
            return web.Response(status=400)
        except Exception:
            log.exception("request failed", method=request.method, path=request.path[:200])
            return self._error(api_errors.InternalServerError())

    def _error(self, error: api_errors.NodeApiError) -> web.Response:
        self.service.metrics.rejected_requests.labels(error.reason or "UNKNOWN").inc()
        return _json(error.to_body(), error.http_status)

    # --- request parts ------------------------------------------------------------------------

    @staticmethod
    def _param(request: web.Request, parse: Callable[[str], Any], name: str) -> Any:
        try:
            return parse(request.match_info[name])
        except InvalidInputError as exc:
            raise api_errors.InvalidRequestError(str(exc)) from exc

    def _blob_id(self, request: web.Request) -> BlobId:
        blob_id: BlobId = self._param(request, paths.parse_blob_id, "blob_id")
        return blob_id

    def _sliver_address(self, request: web.Request) -> tuple[BlobId, Any, SliverType]:
        return (
            self._blob_id(request),
            self._param(request, paths.parse_sliver_pair_index, "sliver_pair_index"),
            self._param(request, paths.parse_sliver_type, "sliver_type"),
        )

    @staticmethod
    def _query(request: web.Request, parse: Callable[[Any], Any]) -> Any:
        try:
            return parse(request.query.items())
        except InvalidInputError as exc:
            raise api_errors.InvalidRequestError(str(exc)) from exc

    def _check_upload(self, request: web.Request) -> bool:
        """Check an upload's query and content type; whether it is `pending=true`."""
        pending: bool = self._query(request, paths.parse_upload_intent)
        content_type = request.headers.get("Content-Type")
        if content_type is not None and request.content_type != _BCS:
            raise api_errors.InvalidContentTypeError(f"expected Content-Type: {_BCS}")
        return pending

    async def _read_body(self, request: web.Request, limit: int) -> bytes:
        """The body, refused with BODY_TOO_LARGE as soon as it is known to exceed `limit`."""
        limit = min(limit, self.max_body_bytes)
        declared = request.content_length
        if declared is not None and declared > limit:
            raise api_errors.BodyTooLargeError(
                f"body of {declared} bytes exceeds the limit of {limit} bytes", {"limit": limit}
            )
        chunks: list[bytes] = []
        size = 0
        while chunk := await request.content.read(READ_CHUNK_BYTES):
            size += len(chunk)
            if size > limit:
                raise api_errors.BodyTooLargeError(
                    f"body exceeds the limit of {limit} bytes", {"limit": limit}
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def _params(self) -> EncodingParams:
        return EncodingParams(self.service.state.n_shards)

    def metadata_limit(self) -> int:
        """Largest PUT metadata body: tag, type, length, ULEB n and two tagged hashes per pair."""
        return 1 + 1 + 8 + 3 + 66 * self.service.state.n_shards + BODY_HEADROOM_BYTES

    def sliver_limit(self, sliver_type: SliverType) -> int:
        """Largest PUT sliver body: the longest sliver of that type, its framing and headroom."""
        data = expected_sliver_length(self._params(), sliver_type, MAX_SYMBOL_SIZE)
        return 5 + data + 4 + BODY_HEADROOM_BYTES

    def proof_limit(self) -> int:
        """Largest inconsistency proof: s symbols of the largest size, each with a proof."""
        per_symbol = 2 + 3 + MAX_SYMBOL_SIZE + MAX_PROOF_BYTES
        count = self._params().n_secondary_source_symbols
        return 2 + 3 + count * per_symbol + BODY_HEADROOM_BYTES

    # --- handlers -----------------------------------------------------------------------------

    async def api_docs(self, request: web.Request) -> web.StreamResponse:
        """GET /v1/api."""
        return web.Response(body=openapi_document(), content_type="application/yaml")

    async def metrics(self, request: web.Request) -> web.StreamResponse:
        """GET /metrics."""
        response = web.Response(body=self.service.metrics.render())
        response.headers["Content-Type"] = METRICS_CONTENT_TYPE
        return response

    async def get_metadata(self, request: web.Request) -> web.StreamResponse:
        """GET metadata."""
        return _bcs(await self.service.get_metadata(self._blob_id(request)))

    async def put_metadata(self, request: web.Request) -> web.StreamResponse:
        """PUT metadata."""
        blob_id = self._blob_id(request)
        pending = self._check_upload(request)
        body = await self._read_body(request, self.metadata_limit())
        return _stored(await self.service.put_metadata(blob_id, body, pending=pending))

    async def get_metadata_status(self, request: web.Request) -> web.StreamResponse:
        """GET metadata status."""
        status = await self.service.metadata_status(self._blob_id(request))
        return _success(status.to_json())

    async def get_sliver(self, request: web.Request) -> web.StreamResponse:
        """GET sliver."""
        return _bcs(await self.service.get_sliver(*self._sliver_address(request)))

    async def put_sliver(self, request: web.Request) -> web.StreamResponse:
        """PUT sliver."""
        blob_id, pair, sliver_type = self._sliver_address(request)
        pending = self._check_upload(request)
        body = await self._read_body(request, self.sliver_limit(sliver_type))
        return _stored(
            await self.service.put_sliver(blob_id, pair, sliver_type, body, pending=pending)
        )

    async def get_slivers(self, request: web.Request) -> web.StreamResponse:
        """GET many slivers of one blob (walruspy's batch read)."""
        blob_id = self._blob_id(request)
        query = self._query(request, paths.SliversQuery.parse)
        return _bcs(await self.service.get_slivers(blob_id, query.pairs, query.sliver_type))

    async def put_slivers(self, request: web.Request) -> web.StreamResponse:
        """PUT many slivers of one blob (walruspy's batch upload)."""
        blob_id = self._blob_id(request)
        pending = self._check_upload(request)
        body = await self._read_body(request, MAX_BATCH_BODY_BYTES)
        return _stored(await self.service.put_slivers(blob_id, body, pending=pending))

    async def get_sliver_status(self, request: web.Request) -> web.StreamResponse:
        """GET sliver status."""
        status = await self.service.sliver_status(*self._sliver_address(request))
        return _success(status.to_json())

    async def get_permanent_confirmation(self, request: web.Request) -> web.StreamResponse:
        """GET permanent confirmation."""
        blob_id = self._blob_id(request)
        wait = self._query(request, paths.ConfirmationWait.parse)
        signed = await self.service.confirmation(blob_id, None, wait)
        return _success({"signed": _signed_json(signed)})

    async def get_deletable_confirmation(self, request: web.Request) -> web.StreamResponse:
        """GET deletable confirmation."""
        blob_id = self._blob_id(request)
        object_id = self._param(request, paths.parse_object_id, "object_id")
        wait = self._query(request, paths.ConfirmationWait.parse)
        signed = await self.service.confirmation(blob_id, object_id, wait)
        return _success({"signed": _signed_json(signed)})

    async def list_recovery_symbols(self, request: web.Request) -> web.StreamResponse:
        """GET recovery symbols."""
        blob_id = self._blob_id(request)
        try:
            symbols_filter = paths.parse_recovery_symbols_query(request.query.items())
        except (InvalidInputError, ValueError) as exc:
            raise api_errors.InvalidFilterError(str(exc)) from exc
        return _bcs(await self.symbols.recovery_symbols(blob_id, symbols_filter))

    async def list_decoding_symbols(self, request: web.Request) -> web.StreamResponse:
        """GET decoding symbols."""
        blob_id = self._blob_id(request)
        if "targetSlivers" not in request.query:
            raise api_errors.NoTargetSliversSpecifiedError()
        query = self._query(request, paths.DecodingSymbolsQuery.parse)
        return _bcs(await self.symbols.decoding_symbols(blob_id, query))

    async def inconsistency_proof(self, request: web.Request) -> web.StreamResponse:
        """POST inconsistency proof."""
        blob_id = self._blob_id(request)
        sliver_type = self._param(request, paths.parse_sliver_type, "sliver_type")
        body = await self._read_body(request, self.proof_limit())
        signed = await self.symbols.inconsistency_proof(blob_id, sliver_type, body)
        return _success(_signed_json(signed))

    async def get_challenge_proof(self, request: web.Request) -> web.StreamResponse:
        """GET a page of this node's storage-challenge proof for a verifier (walruspy)."""
        epoch = self._param(request, paths.parse_epoch, "epoch")
        verifier = self._param(request, paths.parse_object_id, "node_id")
        start, count = self._query(
            request, lambda pairs: paths.parse_proof_page(pairs, MAX_PROOF_PAGE)
        )
        return _bcs(await self.challenges.proof_page(epoch, verifier, start, count))

    async def get_challenge_attestation(self, request: web.Request) -> web.StreamResponse:
        """GET this node's storage-challenge attestation for a node (walruspy)."""
        epoch = self._param(request, paths.parse_epoch, "epoch")
        node_id = self._param(request, paths.parse_object_id, "node_id")
        return _success(_signed_json(self.challenges.attestation(epoch, node_id)))

    async def sync_shard(self, request: web.Request) -> web.StreamResponse:
        """POST sync shard: the slivers of a shard for its new owner."""
        requester = _authorization_key(request)
        body = await self._read_body(request, SYNC_SHARD_BODY_BYTES)
        try:
            signed = signed_message_from_bcs(body)
        except (DecodeError, VerificationError) as exc:
            raise api_errors.InvalidContentTypeError(f"invalid BCS signed message: {exc}") from exc
        return _bcs(await self.shard_source.sync_shard(requester, signed))

    async def get_blob_status(self, request: web.Request) -> web.StreamResponse:
        """GET blob status."""
        status = await self.service.blob_status(self._blob_id(request))
        return _success(blob_status_to_json(status))

    async def health_info(self, request: web.Request) -> web.StreamResponse:
        """GET health."""
        detailed = self._query(request, paths.parse_health_query)
        info = await self.service.health(bool(detailed))
        return _success(info.to_json())


def _authorization_key(request: web.Request) -> BlsPublicKey:
    """The requester's key from `Authorization: <standard base64 of the 48-byte BLS key>`.

    Walrus answers a missing header with 401 and a malformed one with 400, in plain text; we
    answer the same codes with AIP-193 bodies.
    """
    header = request.headers.get("Authorization")
    if header is None:
        raise api_errors.NodeApiError(
            api_errors.ApiStatus.UNAUTHENTICATED,
            "UNAUTHENTICATED",
            api_errors.GLOBAL_ERROR_DOMAIN,
            "missing Authorization header",
        )
    try:
        key = jf.as_base64(header, "Authorization header", PUBLIC_KEY_BYTES)
        return BlsPublicKey.from_bytes(key)
    except (DecodeError, VerificationError, ValueError) as exc:
        raise api_errors.InvalidRequestError(f"invalid Authorization header: {exc}") from exc

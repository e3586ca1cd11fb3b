"""Error answers of the node REST API: the AIP-193 body, its statuses, reasons and exceptions.

Theory of operation (spec/walrus-system.md 3.1; Walrus `walrus-storage-node-client/src/api/
errors.rs` and `walrus-service/src/node/errors.rs`): every failed request is answered with

    {"error": {"code": 400, "status": "FAILED_PRECONDITION", "message": "...",
               "details": [{"@type": "ErrorInfo", "reason": "NOT_REGISTERED",
                            "domain": "storage.walrus.space", "metadata": {...}}]}}

`status` is one of a small set of general classes (`ApiStatus`), each tied to one HTTP code;
`(reason, domain)` names the precise error; `metadata` carries its arguments. The server raises
one of the exceptions below and renders it with `NodeApiError.to_body`; the client turns any
answer back into the same exception with `error_from_response`, so both sides share one table.

    WalrusError
    ├── NodeConnectionError              the request did not complete (refused, reset, cut off)
    │   └── NodeTimeoutError             ... or took longer than its timeout
    └── NodeApiError                     an error answer of a storage node
        ├── MetadataNotFoundError        404 METADATA_NOT_FOUND
        ├── MissingMetadataError         400 METADATA_NOT_FOUND (a sliver needs the metadata first)
        ├── ForbiddenBlobError           451 FORBIDDEN_BLOB
        ├── SliverNotFoundError          404 SLIVER_NOT_FOUND
        ├── ... one class per (reason, status) of Walrus's node, see `KNOWN_ERRORS`
        ├── InternalServerError          500 INTERNAL_ERROR (never carries details)
        ├── UnknownNodeApiError          a well-formed AIP-193 answer with a reason we do not know
        └── UnexpectedResponseError      anything else: not JSON, not AIP-193, code mismatch

Three reasons are walruspy additions for cases where Walrus answers with a framework's plain-text
body or a tower layer instead: `INVALID_REQUEST` (a malformed path or query parameter),
`BODY_TOO_LARGE` and `RESOURCE_EXHAUSTED` (the node's concurrent-request limit).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar

from walruspy.core.errors import DecodeError, WalrusError
from walruspy.node_api import json_fields as jf
from walruspy.node_api.json_fields import JsonObject, JsonValue

#: Error domain of service-agnostic errors (internal, unavailable).
GLOBAL_ERROR_DOMAIN = "global"
#: Error domain of storage node errors.
STORAGE_NODE_ERROR_DOMAIN = "storage.walrus.space"
#: Error domain of publisher and aggregator errors.
DAEMON_ERROR_DOMAIN = "daemon.walrus.space"

#: The most error details we read from one answer; Walrus sends one ErrorInfo and at most one
#: DebugInfo.
MAX_ERROR_DETAILS = 16
#: The most metadata entries of an ErrorInfo we keep; Walrus's errors carry at most two.
MAX_ERROR_METADATA_ENTRIES = 64
#: How much of a non-JSON error body is quoted in an `UnexpectedResponseError`.
MAX_QUOTED_BODY_CHARS = 200


class ApiStatus(enum.Enum):
    """The general class of an error, with its UPPER_SNAKE_CASE name and its HTTP code."""

    OK = ("OK", 200)
    UNAVAILABLE_FOR_LEGAL_REASONS = ("UNAVAILABLE_FOR_LEGAL_REASONS", 451)
    INVALID_ARGUMENT = ("INVALID_ARGUMENT", 400)
    NOT_FOUND = ("NOT_FOUND", 404)
    FAILED_PRECONDITION = ("FAILED_PRECONDITION", 400)
    PERMISSION_DENIED = ("PERMISSION_DENIED", 403)
    SIZE_EXCEEDED = ("SIZE_EXCEEDED", 403)
    INTERNAL = ("INTERNAL", 500)
    DEADLINE_EXCEEDED = ("DEADLINE_EXCEEDED", 504)
    UNAUTHENTICATED = ("UNAUTHENTICATED", 401)
    RANGE_NOT_SATISFIABLE = ("RANGE_NOT_SATISFIABLE", 416)
    RESOURCE_EXHAUSTED = ("RESOURCE_EXHAUSTED", 429)
    UNAVAILABLE = ("UNAVAILABLE", 503)

    @property
    def text(self) -> str:
        """The status as written in the `status` field."""
        return self.value[0]

    @property
    def http_code(self) -> int:
        """The HTTP status code that goes with this status."""
        return self.value[1]

    @classmethod
    def from_fields(cls, status: str, code: int) -> ApiStatus:
        """The status named `status`, which must go with HTTP `code` (as Walrus checks)."""
        for member in cls:
            if member.value == (status, code):
                return member
        raise DecodeError(f"error status {status[:60]!r} and code {code} do not correspond")


class NodeConnectionError(WalrusError):
    """A request to a node did not complete: connection refused or reset, body cut off."""


class NodeTimeoutError(NodeConnectionError):
    """A request to a node did not complete within its timeout."""


class NodeApiError(WalrusError):
    """An error answer of a storage node (or one we are about to send)."""

    def __init__(
        self,
        status: ApiStatus,
        reason: str,
        domain: str,
        message: str,
        metadata: Mapping[str, JsonValue] | None = None,
    ) -> None:
        if status is ApiStatus.OK:
            raise ValueError("an error cannot have the status OK")
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.domain = domain
        self.message = message
        self.metadata: Mapping[str, JsonValue] = MappingProxyType(dict(metadata or {}))

    @property
    def http_status(self) -> int:
        """The HTTP status code of the answer."""
        return self.status.http_code

    def __str__(self) -> str:
        return f"{self.message} ({self.status.text}, {self.reason}, HTTP {self.http_status})"

    def to_body(self) -> JsonObject:
        """The AIP-193 JSON body of this error."""
        info: JsonObject = {
            "@type": "ErrorInfo",
            "reason": self.reason,
            "domain": self.domain,
            "metadata": dict(self.metadata),
        }
        return {
            "error": {
                "code": self.status.http_code,
                "status": self.status.text,
                "message": self.message,
                "details": [info],
            }
        }


class KnownNodeApiError(NodeApiError):
    """An error of the shared table: its class fixes the status, reason and domain."""

    STATUS: ClassVar[ApiStatus]
    REASON: ClassVar[str]
    DOMAIN: ClassVar[str] = STORAGE_NODE_ERROR_DOMAIN
    DEFAULT_MESSAGE: ClassVar[str]

    def __init__(
        self, message: str | None = None, metadata: Mapping[str, JsonValue] | None = None
    ) -> None:
        super().__init__(
            self.STATUS, self.REASON, self.DOMAIN, message or self.DEFAULT_MESSAGE, metadata
        )


class MetadataNotFoundError(KnownNodeApiError):
    """The node does not have the blob's metadata (not uploaded, or deleted)."""

    STATUS = ApiStatus.NOT_FOUND
    REASON = "METADATA_NOT_FOUND"
    DEFAULT_MESSAGE = "the requested metadata is unavailable"


class MissingMetadataError(KnownNodeApiError):
    """Storing a sliver or checking a proof needs the blob's metadata, which the node lacks."""

    STATUS = ApiStatus.FAILED_PRECONDITION
    REASON = "METADATA_NOT_FOUND"
    DEFAULT_MESSAGE = "blob metadata is required but missing"


class ForbiddenBlobError(KnownNodeApiError):
    """The blob is on the node's blocklist."""

    STATUS = ApiStatus.UNAVAILABLE_FOR_LEGAL_REASONS
    REASON = "FORBIDDEN_BLOB"
    DEFAULT_MESSAGE = "the requested blob is blocked"


class SliverNotFoundError(KnownNodeApiError):
    """The node does not have the sliver."""

    STATUS = ApiStatus.NOT_FOUND
    REASON = "SLIVER_NOT_FOUND"
    DEFAULT_MESSAGE = "the requested sliver is unavailable"


class ShardNotAssignedError(KnownNodeApiError):
    """The sliver pair maps to a shard this node does not hold in the current epoch."""

    STATUS = ApiStatus.FAILED_PRECONDITION
    REASON = "SHARD_NOT_ASSIGNED"
    DEFAULT_MESSAGE = "the shard is not assigned to this node in this epoch"


class IndexOutOfRangeError(KnownNodeApiError):
    """A sliver or symbol index is not below the number of shards."""

    STATUS = ApiStatus.INVALID_ARGUMENT
    REASON = "INDEX_OUT_OF_RANGE"
    DEFAULT_MESSAGE = "the index is out of range"


class NotRegisteredError(KnownNodeApiError):
    """The blob is not registered (or has expired) as far as the node has seen the chain."""

    STATUS = ApiStatus.FAILED_PRECONDITION
    REASON = "NOT_REGISTERED"
    DEFAULT_MESSAGE = "the blob has not been registered or has already expired"


class MissingSliversError(KnownNodeApiError):
    """The node cannot confirm: it does not yet store the slivers of all its shards."""

    STATUS = ApiStatus.FAILED_PRECONDITION
    REASON = "MISSING_SLIVERS"
    DEFAULT_MESSAGE = "the required slivers are not all stored"


class CacheSaturatedError(KnownNodeApiError):
    """The cache of uploads waiting for their registration is full."""

    STATUS = ApiStatus.FAILED_PRECONDITION
    REASON = "CACHE_SATURATED"
    DEFAULT_MESSAGE = "pending upload cache is saturated; retry once the node catches up"


class SliverTooLargeError(KnownNodeApiError):
    """A sliver uploaded before its registration is too large for the pending cache."""

    STATUS = ApiStatus.FAILED_PRECONDITION
    REASON = "SLIVER_TOO_LARGE"
    DEFAULT_MESSAGE = "pending upload cache rejected sliver; too large for cache"


class InvalidMetadataError(KnownNodeApiError):
    """The metadata does not hash to the blob ID of the path, or is malformed."""

    STATUS = ApiStatus.INVALID_ARGUMENT
    REASON = "INVALID_METADATA"
    DEFAULT_MESSAGE = "the provided metadata failed to verify"


class InvalidBlobError(KnownNodeApiError):
    """The blob has been marked invalid on chain."""

    STATUS = ApiStatus.FAILED_PRECONDITION
    REASON = "INVALID_BLOB"
    DEFAULT_MESSAGE = "the blob has been marked invalid"


class UnsupportedEncodingTypeError(KnownNodeApiError):
    """The metadata names an encoding type other than RS2."""

    STATUS = ApiStatus.INVALID_ARGUMENT
    REASON = "UNSUPPORTED_ENCODING_TYPE"
    DEFAULT_MESSAGE = "unsupported encoding type"


class InvalidSliverError(KnownNodeApiError):
    """The sliver fails verification against the blob's metadata."""

    STATUS = ApiStatus.INVALID_ARGUMENT
    REASON = "INVALID_SLIVER"
    DEFAULT_MESSAGE = "the provided sliver is invalid"


class SliverIndexMismatchError(KnownNodeApiError):
    """The sliver's own index does not belong to the sliver pair of the path."""

    STATUS = ApiStatus.INVALID_ARGUMENT
    REASON = "SLIVER_INDEX_MISMATCH"
    DEFAULT_MESSAGE = "the sliver index is inconsistent with the sliver pair index"


class SymbolNotPresentAtShardsError(KnownNodeApiError):
    """A requested recovery symbol is not held by any shard of this node."""

    STATUS = ApiStatus.FAILED_PRECONDITION
    REASON = "SYMBOL_NOT_PRESENT_AT_SHARDS"
    DEFAULT_MESSAGE = (
        "the requested recovery symbol is not the responsibility of this node's shards"
    )


class NoSymbolsSpecifiedError(KnownNodeApiError):
    """A recovery-symbol request by ID named no symbol."""

    STATUS = ApiStatus.FAILED_PRECONDITION
    REASON = "NO_SYMBOLS_SPECIFIED"
    DEFAULT_MESSAGE = "at least one symbol ID must be specified"


class InvalidFilterError(KnownNodeApiError):
    """The recovery-symbol filter is not valid."""

    STATUS = ApiStatus.INVALID_ARGUMENT
    REASON = "INVALID_FILTER"
    DEFAULT_MESSAGE = "the filter is invalid"


class NoTargetSliversSpecifiedError(KnownNodeApiError):
    """A decoding-symbol request named no target sliver."""

    STATUS = ApiStatus.FAILED_PRECONDITION
    REASON = "NO_TARGET_SLIVERS_SPECIFIED"
    DEFAULT_MESSAGE = "at least one target sliver must be specified"


class RecoverySymbolOutOfRangeError(KnownNodeApiError):
    """A requested decoding symbol is outside the encoding."""

    STATUS = ApiStatus.INVALID_ARGUMENT
    REASON = "RECOVERY_SYMBOL_OUT_OF_RANGE"
    DEFAULT_MESSAGE = "the requested recovery symbol is out of range"


class InvalidProofError(KnownNodeApiError):
    """The inconsistency proof does not verify."""

    STATUS = ApiStatus.INVALID_ARGUMENT
    REASON = "INVALID_PROOF"
    DEFAULT_MESSAGE = "the inconsistency proof is invalid"


class InvalidEpochError(KnownNodeApiError):
    """A shard-sync request names an epoch other than the server's."""

    STATUS = ApiStatus.INVALID_ARGUMENT
    REASON = "INVALID_EPOCH"
    DEFAULT_MESSAGE = "the request's epoch is invalid"


class RequestUnauthorizedError(KnownNodeApiError):
    """A shard-sync request from a key that is not a committee member."""

    STATUS = ApiStatus.PERMISSION_DENIED
    REASON = "REQUEST_UNAUTHORIZED"
    DEFAULT_MESSAGE = (
        "the client is not authorized to perform the sync shard operation as it is not a "
        "storage node in the current committee"
    )


class SliverCountExceedsLimitError(KnownNodeApiError):
    """A shard-sync request asks for more slivers than the server allows at once."""

    STATUS = ApiStatus.INVALID_ARGUMENT
    REASON = "SLIVER_COUNT_EXCEEDS_LIMIT"
    DEFAULT_MESSAGE = "the requested sliver count exceeds the limit"


class MessageVerificationFailedError(KnownNodeApiError):
    """The signature of a shard-sync request does not verify."""

    STATUS = ApiStatus.INVALID_ARGUMENT
    REASON = "MESSAGE_VERIFICATION_FAILED"
    DEFAULT_MESSAGE = "verification of the request to start the sync failed"


class InvalidContentTypeError(KnownNodeApiError):
    """A binary body with the wrong content type, or that does not decode as BCS."""

    STATUS = ApiStatus.INVALID_ARGUMENT
    REASON = "INVALID_CONTENT_TYPE"
    DEFAULT_MESSAGE = "unable to decode request body as BCS"


class InvalidRequestError(KnownNodeApiError):
    """A malformed path or query parameter (walruspy; Walrus answers in plain text here)."""

    STATUS = ApiStatus.INVALID_ARGUMENT
    REASON = "INVALID_REQUEST"
    DEFAULT_MESSAGE = "the request is malformed"


class BodyTooLargeError(KnownNodeApiError):
    """A request body over the route's limit (walruspy; Walrus answers in plain text here)."""

    STATUS = ApiStatus.SIZE_EXCEEDED
    REASON = "BODY_TOO_LARGE"
    DEFAULT_MESSAGE = "the request body exceeds the limit of this route"


class TooManyRequestsError(KnownNodeApiError):
    """The node is handling as many requests as its limit allows (walruspy); retry later."""

    STATUS = ApiStatus.RESOURCE_EXHAUSTED
    REASON = "RESOURCE_EXHAUSTED"
    DOMAIN = GLOBAL_ERROR_DOMAIN
    DEFAULT_MESSAGE = "too many concurrent requests; retry later"


class UnavailableError(KnownNodeApiError):
    """A node-level limiter refused the request; retry with backoff."""

    STATUS = ApiStatus.UNAVAILABLE
    REASON = "UNAVAILABLE"
    DOMAIN = GLOBAL_ERROR_DOMAIN
    DEFAULT_MESSAGE = "the service is currently unavailable"


class InternalServerError(KnownNodeApiError):
    """Something broke inside the node; the answer never carries the details."""

    STATUS = ApiStatus.INTERNAL
    REASON = "INTERNAL_ERROR"
    DOMAIN = GLOBAL_ERROR_DOMAIN
    DEFAULT_MESSAGE = "an internal error has occurred, please report it"


class UnknownNodeApiError(NodeApiError):
    """A well-formed AIP-193 answer whose (reason, status) is not in our table."""


class UnexpectedResponseError(NodeApiError):
    """An error answer that is not a valid AIP-193 body (a proxy, a crash, a buggy peer)."""

    def __init__(self, http_status: int, message: str) -> None:
        super().__init__(_status_for_http(http_status), "UNEXPECTED_RESPONSE", "", message)
        self._http_status = http_status

    @property
    def http_status(self) -> int:
        """The HTTP status code actually received."""
        return self._http_status

    def __str__(self) -> str:
        return self.message


#: Every error of the shared table, keyed by the (reason, status) pair that identifies it on the
#: wire. METADATA_NOT_FOUND appears twice, with 404 for reads and 400 for writes, as in Walrus.
KNOWN_ERRORS: Mapping[tuple[str, ApiStatus], type[KnownNodeApiError]] = MappingProxyType(
    {
        (cls.REASON, cls.STATUS): cls
        for cls in (
            MetadataNotFoundError,
            MissingMetadataError,
            ForbiddenBlobError,
            SliverNotFoundError,
            ShardNotAssignedError,
            IndexOutOfRangeError,
            NotRegisteredError,
            MissingSliversError,
            CacheSaturatedError,
            SliverTooLargeError,
            InvalidMetadataError,
            InvalidBlobError,
            UnsupportedEncodingTypeError,
            InvalidSliverError,
            SliverIndexMismatchError,
            SymbolNotPresentAtShardsError,
            NoSymbolsSpecifiedError,
            InvalidFilterError,
            NoTargetSliversSpecifiedError,
            RecoverySymbolOutOfRangeError,
            InvalidProofError,
            InvalidEpochError,
            RequestUnauthorizedError,
            SliverCountExceedsLimitError,
            MessageVerificationFailedError,
            InvalidContentTypeError,
            InvalidRequestError,
            BodyTooLargeError,
            TooManyRequestsError,
            UnavailableError,
            InternalServerError,
        )
    }
)
assert len(KNOWN_ERRORS) == 31, "two error classes share a (reason, status) pair"


def _status_for_http(http_status: int) -> ApiStatus:
    """The first status that goes with an HTTP code, INTERNAL for codes no status has."""
    for member in ApiStatus:
        if member is not ApiStatus.OK and member.http_code == http_status:
            return member
    return ApiStatus.INTERNAL


def parse_error_body(value: JsonValue) -> NodeApiError:
    """Turn a decoded AIP-193 body into its exception; `DecodeError` if it is not one."""
    inner = jf.as_object(
        jf.field(jf.as_object(value, "error body"), "error", "error body"), "error"
    )
    status = ApiStatus.from_fields(
        jf.as_str(jf.field(inner, "status", "error"), "error.status", 64),
        jf.as_int(jf.field(inner, "code", "error"), "error.code", 999),
    )
    if status is ApiStatus.OK:
        raise DecodeError("error body with status OK")
    message = jf.as_str(jf.field(inner, "message", "error"), "error.message")
    details = jf.as_list(jf.field(inner, "details", "error"), "error.details", MAX_ERROR_DETAILS)
    info = _find_error_info(details)
    if info is None:
        # AIP-193 requires an ErrorInfo; a body without one still says what class of error it is.
        return UnknownNodeApiError(status, "", "", message)
    reason, domain, metadata = info
    known = KNOWN_ERRORS.get((reason, status))
    if known is not None:
        error: NodeApiError = known(message, metadata)
        error.domain = domain
        return error
    return UnknownNodeApiError(status, reason, domain, message, metadata)


def _find_error_info(
    details: list[JsonValue],
) -> tuple[str, str, Mapping[str, JsonValue]] | None:
    for index, item in enumerate(details):
        what = f"error.details[{index}]"
        detail = jf.as_object(item, what)
        if jf.field(detail, "@type", what) != "ErrorInfo":
            continue  # DebugInfo and future detail types carry nothing we act on
        metadata = jf.as_object(jf.field(detail, "metadata", what), f"{what}.metadata")
        if len(metadata) > MAX_ERROR_METADATA_ENTRIES:
            raise DecodeError(f"{what}.metadata: {len(metadata)} entries exceed the limit")
        return (
            jf.as_str(jf.field(detail, "reason", what), f"{what}.reason", 128),
            jf.as_str(jf.field(detail, "domain", what), f"{what}.domain", 256),
            metadata,
        )
    return None


def error_from_response(http_status: int, body: bytes) -> NodeApiError:
    """The exception for an error answer; never raises, whatever the body holds.

    A body that is not valid AIP-193 JSON, or whose code disagrees with the HTTP status, becomes
    an `UnexpectedResponseError` that quotes the start of the body.
    """
    if 200 <= http_status < 300:
        raise ValueError(f"HTTP {http_status} is not an error answer")
    try:
        error = parse_error_body(jf.loads(body, "error body"))
    except DecodeError as exc:
        quoted = body[:MAX_QUOTED_BODY_CHARS].decode("utf-8", "replace")
        return UnexpectedResponseError(http_status, f"HTTP {http_status}: {exc}; body {quoted!r}")
    if error.http_status != http_status:
        return UnexpectedResponseError(
            http_status,
            f"HTTP {http_status} carries an error body with code {error.http_status}: {error}",
        )
    return error

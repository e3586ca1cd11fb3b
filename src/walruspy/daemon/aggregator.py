"""The aggregator's routes: a blob's bytes by blob ID or by blob object ID.

Theory of operation (spec/walrus-system.md 1.3, 4.3; Walrus `get_blob`, `get_blob_by_object_id`
and `populate_response_headers_from_request` in `client/daemon/routes.rs`):

- `GET /v1/blobs/{blob_id}` reads the blob with `WalrusClient.read`: verified metadata, verified
  slivers, decode, and the consistency check chosen by `strict_consistency_check` /
  `skip_consistency_check` (both at once is 400). A blob that fails its check is an error, never
  data (`walruspy.daemon.errors`). An HTTP `Range: bytes=START-END` header is honoured with 206
  and `Content-Range`; the whole blob is read and checked first, so a range is as trustworthy
  as a full read (Walrus checks only the slivers a range needs).
- `GET /v1/blobs/by-object-id/{object_id}` looks the blob object up on chain and serves its
  blob the same way; an unknown object is 404 OBJECT_ID_RESOLUTION_FAILED.

Answers carry Walrus's headers: `X-Content-Type-Options: nosniff`, a one-day public
`Cache-Control`, the blob ID as `ETag`, and the request's `Accept` as `Content-Type` when it
names one type (no wildcard), else `application/octet-stream`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

import structlog
from aiohttp import web

from walruspy.client import WalrusClient
from walruspy.core.blob_id import BlobId
from walruspy.core.decoding import ConsistencyCheck
from walruspy.core.errors import InvalidInputError
from walruspy.daemon.errors import DaemonApiError, read_error
from walruspy.node_api.paths import parse_object_id

__all__ = ["get_blob", "get_blob_by_object_id", "parse_consistency"]

log = structlog.get_logger("walruspy.daemon.aggregator")

_CACHE_CONTROL: Final = "public, max-age=86400, stale-while-revalidate=3600"
_OCTET_STREAM: Final = "application/octet-stream"
_RANGE: Final = re.compile(r"^bytes=(\d{1,19})-(\d{1,19})$", re.ASCII)
_BOOLEANS: Final = {"true": True, "false": False}
_READ_OPTIONS: Final = ("strict_consistency_check", "skip_consistency_check")
#: Most query parameters looked at (two are known).
_MAX_QUERY_PAIRS: Final = 8


def parse_consistency(pairs: Iterable[tuple[str, str]]) -> ConsistencyCheck:
    """Walrus's `ReadOptions`: unknown or repeated keys and both flags at once are 400."""
    flags: dict[str, bool] = {}
    for count, (key, value) in enumerate(pairs):
        if count >= _MAX_QUERY_PAIRS or key not in _READ_OPTIONS or key in flags:
            raise DaemonApiError.malformed(
                f"unexpected query parameter {key[:40]!r}: only {', '.join(_READ_OPTIONS)}"
            )
        if value not in _BOOLEANS:
            raise DaemonApiError.malformed(f"{key} must be true or false, got {value[:20]!r}")
        flags[key] = _BOOLEANS[value]
    strict = flags.get("strict_consistency_check", False)
    skip = flags.get("skip_consistency_check", False)
    if strict and skip:
        raise DaemonApiError(
            400,
            "INVALID_CONSISTENCY_CHECK",
            "strict_consistency_check and skip_consistency_check are mutually exclusive",
        )
    if strict:
        return ConsistencyCheck.STRICT
    return ConsistencyCheck.SKIP if skip else ConsistencyCheck.DEFAULT


def _parse_range(header: str) -> tuple[int, int]:
    """`bytes=START-END` (inclusive), the only form Walrus accepts."""
    match = _RANGE.match(header.strip())
    if match is None:
        raise DaemonApiError(
            416,
            "INVALID_BYTE_RANGE",
            "invalid byte range: only one range of the form bytes=START-END is supported",
        )
    start, end = int(match.group(1)), int(match.group(2))
    if start > end:
        raise DaemonApiError(
            416, "INVALID_BYTE_RANGE", "invalid byte range: start must not exceed end"
        )
    return start, end


async def _read(client: WalrusClient, blob_id: BlobId, consistency: ConsistencyCheck) -> bytes:
    try:
        return await client.read(blob_id, consistency=consistency)
    except Exception as exc:
        answer = read_error(exc)
        if answer is None:
            log.exception("read failed", blob_id=str(blob_id))
            raise DaemonApiError.internal() from exc
        log.debug("read refused", blob_id=str(blob_id), reason=answer.reason, error=str(exc))
        raise answer from exc


def _blob_response(request: web.Request, blob_id: BlobId, data: bytes) -> web.Response:
    """The blob (or the requested range of it) with Walrus's response headers."""
    headers = {
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": _CACHE_CONTROL,
        "ETag": str(blob_id),
    }
    accept = request.headers.get("Accept")
    content_type = accept if accept and "*" not in accept else _OCTET_STREAM
    header = request.headers.get("Range")
    if header is None:
        response = web.Response(body=data, headers=headers)
    else:
        start, end = _parse_range(header)
        if end >= len(data):
            raise DaemonApiError(
                416,
                "INVALID_BYTE_RANGE",
                f"invalid byte range: the blob has {len(data)} bytes",
                metadata={"size": len(data)},
            )
        headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        response = web.Response(status=206, body=data[start : end + 1], headers=headers)
    response.headers["Content-Type"] = content_type
    return response


async def get_blob(client: WalrusClient, request: web.Request) -> web.Response:
    """Handle `GET /v1/blobs/{blob_id}`."""
    try:
        blob_id = BlobId.parse(request.match_info["blob_id"])
    except InvalidInputError as exc:
        raise DaemonApiError.malformed(str(exc)) from exc
    consistency = parse_consistency(request.query.items())
    if "Range" in request.headers:
        _parse_range(request.headers["Range"])  # a malformed range fails before any work
    data = await _read(client, blob_id, consistency)
    return _blob_response(request, blob_id, data)


async def get_blob_by_object_id(client: WalrusClient, request: web.Request) -> web.Response:
    """Handle `GET /v1/blobs/by-object-id/{object_id}`."""
    text = request.match_info["blob_object_id"]
    try:
        object_id = parse_object_id(text)
    except InvalidInputError as exc:
        raise DaemonApiError.malformed(str(exc)) from exc
    consistency = parse_consistency(request.query.items())
    try:
        record = await client.env.chain.get_blob(object_id)
    except Exception as exc:
        answer = read_error(exc)
        if answer is None:
            log.exception("blob object lookup failed", object_id=text)
            raise DaemonApiError.internal() from exc
        raise answer from exc
    if record is None:
        raise DaemonApiError(
            404,
            "OBJECT_ID_RESOLUTION_FAILED",
            f"no blob object {text} exists (never created, or deleted)",
        )
    data = await _read(client, record.blob_id, consistency)
    return _blob_response(request, record.blob_id, data)

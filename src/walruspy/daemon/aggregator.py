"""The aggregator's routes: a blob's bytes, whole, in part or as a stream, and their headers.

Theory of operation (spec/walrus-system.md 1.3, 4.3; Walrus `get_blob`, `get_blob_byte_range`,
`stream_blob` and `populate_response_headers_from_request` in `client/daemon/routes.rs`):

- Every blob route first asks `If-None-Match`: the ETag is the blob ID, bare as Walrus sends it
  (RFC 9110 would quote it; browsers echo it either way, and a quoted tag matches too); a
  blob's bytes never change, so a match is 304 before any node is asked.
- `GET /v1/blobs/{blob_id}` (and `/v1/blobs/by-object-id/{object_id}`, which looks the blob
  object, or the one a shared blob of that ID wraps, and its attribute up on chain first,
  and answers the attribute's keys of
  `ALLOWED_HEADERS` as headers, `allowed_headers`) fetches the verified metadata
  (`WalrusClient.locate`), then streams the blob's source rows as they verify
  (`BlobReader.chunks`): memory stays within the reader's `STREAM_BUFFER_BYTES` of slivers
  whatever the blob's size, and the guarantees are a full
  read's Default check (`walruspy.client.read`, module doc 7). `strict_consistency_check`
  re-encodes the whole blob, so it reads the blob into memory first (at most `max_blob_bytes`);
  `skip_consistency_check` streams as Default does (each sliver is still verified).
- An HTTP `Range` header in any of its three forms (`bytes=A-B`, `bytes=A-`, `bytes=-N`) is
  answered 206 with `Content-Range`, fetching only the source rows holding those bytes (Walrus
  accepts `bytes=A-B` only); a range the blob cannot satisfy is 416 with `Content-Range: bytes
  */SIZE`; a malformed or multiple range is 416 INVALID_BYTE_RANGE, as Walrus answers.
- `GET /v1/blobs/{blob_id}/byte-range?start=&length=` is Walrus's range route: 200 (so CDNs
  cache it), an ETag of blob ID, start and length, and 400 INVALID_BYTE_RANGE out of range.
- `GET /v1alpha/blobs/{blob_id}/stream` streams the whole blob with `x-walrus-streaming: true`.
- `HEAD` on the blob routes answers the same status and headers without a body; the length
  comes from the verified metadata, so no sliver is fetched.

Answers carry Walrus's headers: `X-Content-Type-Options: nosniff`, a one-day public
`Cache-Control`, the ETag, `Accept-Ranges: bytes`, `Content-Length`, and the request's `Accept`
as `Content-Type` when it names one type (no wildcard), else `application/octet-stream`. A
stream starts only once its first row has verified, so a failure before any byte is sent is an
ordinary error answer; a row that fails later (no node serves it, it cannot be rebuilt) cuts
the connection short of `Content-Length`, which clients see as a truncated body (Walrus does
the same).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Iterable
from typing import Final, TypeVar

from aiohttp import web

from walruspy.client import WalrusClient
from walruspy.client.read import BlobReader, ByteRange, ByteRangeError
from walruspy.core.blob_id import BlobId
from walruspy.core.decoding import ConsistencyCheck
from walruspy.core.errors import InvalidInputError
from walruspy.daemon.errors import DaemonApiError, read_error
from walruspy.daemon.metrics import BODY_BYTES_KEY
from walruspy.logs import get_logger
from walruspy.node_api.paths import parse_object_id

__all__ = [
    "BlobRequest",
    "get_blob",
    "get_blob_by_object_id",
    "get_blob_byte_range",
    "parse_consistency",
    "parse_range_header",
    "stream_blob",
]

log = get_logger("walruspy.daemon.aggregator")

T = TypeVar("T")

_CACHE_CONTROL: Final = "public, max-age=86400, stale-while-revalidate=3600"
_OCTET_STREAM: Final = "application/octet-stream"
#: Keys of a blob's attribute or a quilt patch's tags that an answer carries as headers
#: (Walrus's default `--allowed-headers`).
ALLOWED_HEADERS: Final = frozenset(
    {
        "content-type",
        "authorization",
        "content-disposition",
        "content-encoding",
        "content-language",
        "content-location",
        "link",
    }
)


def header_value(text: str) -> bool:
    """Whether `text` survives as a header value: visible ASCII with inner spaces and tabs (a
    client strips white space at either end, so such a value would not come back as sent)."""
    inner = all(char == "\t" or " " <= char <= "~" for char in text)
    return inner and text == text.strip(" \t")


def allowed_headers(
    pairs: Iterable[tuple[str, str]], request: web.Request, taken: Iterable[str]
) -> dict[str, str]:
    """The pairs (a blob's attribute, a patch's tags) an answer carries as headers.

    Only keys of `ALLOWED_HEADERS` whose values are header values, never one of the `taken`
    headers, the first of a key only. A `content-type` pair is the answer's type unless the
    request's `Accept` names one (Walrus keeps the type it already set, which makes such a pair
    useless to a browser: here it is what serves a stored page or image as what it is).
    """
    accept = request.headers.get("Accept")
    skip = {name.lower() for name in taken}
    if accept and "*" not in accept:
        skip.add("content-type")
    headers: dict[str, str] = {}
    for key, value in pairs:
        name = key.lower()
        if name in ALLOWED_HEADERS and name not in skip and header_value(value):
            headers["Content-Type" if name == "content-type" else key] = value
            skip.add(name)
    return headers


_RANGE: Final = re.compile(r"^bytes=(\d{0,19})-(\d{0,19})$", re.ASCII)
_DIGITS: Final = re.compile(r"^\d{1,19}$", re.ASCII)
_BOOLEANS: Final = {"true": True, "false": False}
_READ_OPTIONS: Final = ("strict_consistency_check", "skip_consistency_check")
_BYTE_RANGE_OPTIONS: Final = ("start", "length")
#: Most query parameters looked at (two are known on each route).
_MAX_QUERY_PAIRS: Final = 8
#: Most entity tags of an If-None-Match header looked at (a browser sends one).
_MAX_ETAGS: Final = 16


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


def _invalid_range(message: str, status: int = 416) -> DaemonApiError:
    return DaemonApiError(status, "INVALID_BYTE_RANGE", f"invalid byte range: {message}")


def parse_range_header(header: str) -> ByteRange:
    """One range of RFC 9110: `bytes=A-B` (inclusive), `bytes=A-` or `bytes=-N`; else 416."""
    match = _RANGE.match(header.strip())
    if match is None:
        raise _invalid_range("only one range, bytes=A-B, bytes=A- or bytes=-N, is supported")
    first, last = match.group(1), match.group(2)
    if not first and not last:
        raise _invalid_range("a range needs a start or a suffix length")
    if not first:
        return ByteRange(suffix=int(last))
    start = int(first)
    if not last:
        return ByteRange(start)
    if start > int(last):
        raise _invalid_range("start must not exceed end")
    return ByteRange(start, int(last) - start + 1)


def _parse_byte_range_query(pairs: Iterable[tuple[str, str]]) -> tuple[int, int]:
    """`start` and `length` of the byte-range route, both required, nothing else (400)."""
    values: dict[str, int] = {}
    for count, (key, value) in enumerate(pairs):
        if count >= _MAX_QUERY_PAIRS or key not in _BYTE_RANGE_OPTIONS or key in values:
            raise DaemonApiError.malformed(
                f"unexpected query parameter {key[:40]!r}: only start and length"
            )
        if not _DIGITS.match(value):
            raise DaemonApiError.malformed(f"{key} must be a number of bytes, got {value[:20]!r}")
        values[key] = int(value)
    if set(values) != set(_BYTE_RANGE_OPTIONS):
        raise DaemonApiError.malformed("start and length are required")
    if values["length"] == 0:
        raise _invalid_range("length must be greater than 0", 400)
    return values["start"], values["length"]


def _quoted(tag: str) -> str:
    return f'"{tag}"'


def _matches(if_none_match: str, etag: str) -> bool:
    """Whether If-None-Match names `etag` (weak comparison, as RFC 9110 says for it)."""
    candidates = [part.strip() for part in if_none_match.split(",", _MAX_ETAGS)[:_MAX_ETAGS]]
    for candidate in candidates:
        opaque = candidate.removeprefix("W/")
        if candidate == "*" or opaque in (_quoted(etag), etag):
            return True
    return False


class BlobRequest:
    """One request for a blob's bytes: its ETag and headers, and how to answer it."""

    def __init__(self, client: WalrusClient, request: web.Request, etag: str) -> None:
        self.client = client
        self.request = request
        self.etag = etag
        self.extra_headers: dict[str, str] = {}

    #: Headers every answer sets itself, which a blob's attribute cannot replace.
    fixed_headers: Final = (
        "X-Content-Type-Options",
        "Cache-Control",
        "ETag",
        "Accept-Ranges",
        "Content-Length",
        "Content-Range",
    )

    def headers(self) -> dict[str, str]:
        """Walrus's read headers, the ETag (bare, as Walrus) and `Accept-Ranges`."""
        accept = self.request.headers.get("Accept")
        return {
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": _CACHE_CONTROL,
            "ETag": self.etag,
            "Accept-Ranges": "bytes",
            "Content-Type": accept if accept and "*" not in accept else _OCTET_STREAM,
            **self.extra_headers,
        }

    def not_modified(self) -> web.Response | None:
        """304 if the caller's If-None-Match names this ETag (a blob's bytes never change)."""
        header = self.request.headers.get("If-None-Match")
        if header is None or not _matches(header, self.etag):
            return None
        headers = self.headers()
        del headers["Content-Type"]
        return web.Response(status=304, headers=headers)

    async def answer(
        self,
        reader: BlobReader,
        byte_range: ByteRange | None,
        *,
        status: int | None = None,
    ) -> web.StreamResponse:
        """The blob or `byte_range` of it: 200 or 206 (or `status`), 416 past its end."""
        headers = self.headers()
        if byte_range is None:
            start, length = 0, reader.size
        else:
            try:
                start, length = _clipped(byte_range, reader.size, status).resolve(reader.size)
            except ByteRangeError as exc:
                return _unsatisfiable(exc)
            if status is None:
                headers["Content-Range"] = f"bytes {start}-{start + length - 1}/{reader.size}"
        if status is None:
            status = 200 if byte_range is None else 206
        headers["Content-Length"] = str(length)
        try:
            reader.check_range(start, length)
        except Exception as exc:
            raise _refusal(reader.blob_id, exc) from exc
        if self.request.method == "HEAD":
            return web.Response(status=status, headers=headers)
        return await self._stream(reader, start, length, status, headers)

    async def _stream(
        self, reader: BlobReader, start: int, length: int, status: int, headers: dict[str, str]
    ) -> web.StreamResponse:
        chunks = reader.chunks(start, length)
        sent = 0
        try:
            # The first row before the headers: a failure to start is an ordinary answer.
            first = await _translated(reader.blob_id, anext(chunks, b""))
            response = web.StreamResponse(status=status, headers=headers)
            await response.prepare(self.request)
            try:
                await response.write(first)
                sent += len(first)
                async for chunk in chunks:
                    await response.write(chunk)
                    sent += len(chunk)
            except Exception as exc:  # headers are sent: all that is left is to cut it short
                gone = isinstance(exc, ConnectionResetError)  # the caller went away
                (log.info if gone else log.warning)(
                    "stream cut short",
                    blob_id=str(reader.blob_id),
                    sent=sent,
                    length=length,
                    error=str(exc) or type(exc).__name__,
                )
                if self.request.transport is not None:
                    self.request.transport.close()
                return response
            await response.write_eof()
            return response
        finally:
            self.request[BODY_BYTES_KEY] = sent
            await chunks.aclose()

    async def whole(self, blob_id: BlobId, byte_range: ByteRange | None) -> web.StreamResponse:
        """The Strict path: the whole blob read and re-encoded in memory, then answered."""
        data = await _translated(
            blob_id, self.client.read(blob_id, consistency=ConsistencyCheck.STRICT)
        )
        headers = self.headers()
        status, start, length = 200, 0, len(data)
        if byte_range is not None:
            try:
                start, length = _clipped(byte_range, len(data)).resolve(len(data))
            except ByteRangeError as exc:
                return _unsatisfiable(exc)
            status = 206
            headers["Content-Range"] = f"bytes {start}-{start + length - 1}/{len(data)}"
        return web.Response(status=status, body=data[start : start + length], headers=headers)


def _clipped(byte_range: ByteRange, size: int, status: int | None = None) -> ByteRange:
    """An HTTP range `bytes=A-B` ending past the blob means up to its end (RFC 9110 14.1.1).

    Walrus's byte-range route (answered with its own `status`) refuses such ranges instead.
    """
    end = byte_range.start + (byte_range.length or 0)
    if status is None and byte_range.length is not None and byte_range.start < size < end:
        return ByteRange(byte_range.start)
    return byte_range


def _unsatisfiable(error: ByteRangeError) -> web.Response:
    answer = _invalid_range(str(error)).to_response()
    answer.headers["Content-Range"] = f"bytes */{error.blob_size}"
    return answer


def _refusal(blob_id: BlobId, error: Exception) -> DaemonApiError:
    """The answer to a failed read step (errors.py); internal errors are logged here."""
    answer = read_error(error)
    if answer is None:
        log.error("read failed", blob_id=str(blob_id), exc_info=error)
        return DaemonApiError.internal()
    log.debug("read refused", blob_id=str(blob_id), reason=answer.reason, error=str(error))
    return answer


async def _translated(blob_id: BlobId, awaitable: Awaitable[T]) -> T:
    """Await a read step; the client's errors become the daemon's answers."""
    try:
        return await awaitable
    except Exception as exc:
        raise _refusal(blob_id, exc) from exc


def _blob_id(request: web.Request) -> BlobId:
    try:
        return BlobId.parse(request.match_info["blob_id"])
    except InvalidInputError as exc:
        raise DaemonApiError.malformed(str(exc)) from exc


async def _serve(
    client: WalrusClient,
    request: web.Request,
    blob_id: BlobId,
    consistency: ConsistencyCheck,
    attribute: Iterable[tuple[str, str]] = (),
) -> web.StreamResponse:
    """A blob route's answer for `blob_id` (see the module docstring), with the `attribute`
    pairs that `allowed_headers` lets through."""
    reading = BlobRequest(client, request, str(blob_id))
    reading.extra_headers.update(allowed_headers(attribute, request, reading.fixed_headers))
    header = request.headers.get("Range")
    byte_range = parse_range_header(header) if header is not None else None
    cached = reading.not_modified()
    if cached is not None:
        return cached
    if consistency is ConsistencyCheck.STRICT and request.method != "HEAD":
        return await reading.whole(blob_id, byte_range)
    reader = await _translated(blob_id, client.locate(blob_id))
    return await reading.answer(reader, byte_range)


async def get_blob(client: WalrusClient, request: web.Request) -> web.StreamResponse:
    """Handle `GET` and `HEAD /v1/blobs/{blob_id}`."""
    blob_id = _blob_id(request)
    return await _serve(client, request, blob_id, parse_consistency(request.query.items()))


async def get_blob_by_object_id(client: WalrusClient, request: web.Request) -> web.StreamResponse:
    """Handle `GET` and `HEAD /v1/blobs/by-object-id/{object_id}`."""
    text = request.match_info["blob_object_id"]
    try:
        object_id = parse_object_id(text)
    except InvalidInputError as exc:
        raise DaemonApiError.malformed(str(exc)) from exc
    consistency = parse_consistency(request.query.items())
    chain = client.env.chain
    try:
        record = await chain.get_blob(object_id)
        if record is None and (shared := await chain.shared_blob(object_id)) is not None:
            record = await chain.get_blob(shared.blob_object_id)  # Walrus: a shared blob's ID
        attribute = await chain.blob_attribute(record.object_id) if record else None
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
    return await _serve(client, request, record.blob_id, consistency, attribute or ())


async def get_blob_byte_range(client: WalrusClient, request: web.Request) -> web.StreamResponse:
    """Handle `GET /v1/blobs/{blob_id}/byte-range?start=&length=` (Walrus's answer: 200)."""
    blob_id = _blob_id(request)
    start, length = _parse_byte_range_query(request.query.items())
    reading = BlobRequest(client, request, f"{blob_id}-{start}-{length}")
    cached = reading.not_modified()
    if cached is not None:
        return cached
    reader = await _translated(blob_id, client.locate(blob_id))
    if start + length > reader.size:
        raise _invalid_range(
            f"bytes [{start}, {start + length}) are past the end: the blob has {reader.size} bytes",
            400,
        )
    return await reading.answer(reader, ByteRange(start, length), status=200)


async def stream_blob(client: WalrusClient, request: web.Request) -> web.StreamResponse:
    """Handle `GET` and `HEAD /v1alpha/blobs/{blob_id}/stream`: the whole blob, streamed."""
    blob_id = _blob_id(request)
    reading = BlobRequest(client, request, str(blob_id))
    reading.extra_headers["x-walrus-streaming"] = "true"
    cached = reading.not_modified()
    if cached is not None:
        return cached
    reader = await _translated(blob_id, client.locate(blob_id))
    return await reading.answer(reader, None)

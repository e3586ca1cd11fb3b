"""The quilt routes: `PUT /v1/quilts` (publisher) and the patch and listing routes (aggregator).

Theory of operation (spec/walrus-system.md 4.3, 4.5; Walrus `put_quilt`, `parse_multipart_quilt`,
`get_patch_by_quilt_patch_id`, `get_patch_by_quilt_id_and_identifier`, `list_patches_in_quilt`
and `build_quilt_patch_response` in `client/daemon/routes.rs`).

`PUT /v1/quilts` takes the publisher's query (`PublisherQuery`) and `quilt_version` (`v1`, `V1`
or `1`: the only version), and a `multipart/form-data` body: every part is a file whose field
name is its identifier, except `_metadata`, a JSON array `[{"identifier", "tags": {...}}]` giving
tags (tag values that are not strings are kept as their JSON text, as Walrus's). The body is
read part by part in chunks and refused with 413 as soon as it exceeds `max_quilt_body_bytes`
(Walrus's `--max-quilt-body-size`, 100 MiB). A body that is not multipart, a malformed part or
`_metadata`, an identifier given twice in `_metadata`, no file at all, and a quilt that cannot
be built (duplicate or invalid identifiers, too many files) are 400 MALFORMED_REQUEST naming
what was wrong. The answer is Walrus's `QuiltStoreResult` JSON (`walruspy.client.quilts`).

The aggregator reads a patch from only the secondary slivers holding it (`QuiltClient`) and
answers its bytes with the aggregator's headers (`X-Content-Type-Options`, `Cache-Control`, the
`ETag`, which is the quilt's blob ID on both routes as in Walrus's code, `Content-Type` from
`Accept`), `X-Quilt-Patch-Identifier` when the identifier is a header value that comes back as
sent (visible ASCII, no white space at either end; Walrus drops invalid ones), and the patch's
tags whose names are in `ALLOWED_HEADERS` (`walruspy.daemon.aggregator`, Walrus's default
`--allowed-headers`) without overriding those. Without an `Accept` naming a type, a
`content-type` tag is the answer's type, else `application/octet-stream`. Errors:

    QuiltPatchNotFoundError   404  QUILT_PATCH_NOT_FOUND   (unknown identifier or patch ID)
    NotAQuiltError            404  NOT_A_QUILT             (walruspy: Walrus answers 500)
    malformed patch/blob ID   400  MALFORMED_REQUEST
    anything else             the aggregator's read errors (`walruspy.daemon.errors`)

`GET /v1/quilts/{quilt_id}/patches` answers `[{"identifier", "patch_id", "tags"}]` (snake_case,
as Walrus's `QuiltPatchItem`), reading only the index's slivers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Iterable, Sequence
from typing import Final, TypeVar
from urllib.parse import unquote

import structlog
from aiohttp import BodyPartReader, MultipartReader, hdrs, web

from walruspy.client import WalrusClient
from walruspy.client.errors import NotAQuiltError, QuiltPatchNotFoundError
from walruspy.client.quilts import QuiltPatchData
from walruspy.core.blob_id import BlobId
from walruspy.core.errors import InvalidInputError
from walruspy.core.quilt import QuiltPatchId, QuiltStoreBlob
from walruspy.daemon.aggregator import allowed_headers, header_value
from walruspy.daemon.errors import DaemonApiError, read_error
from walruspy.daemon.publisher import (
    READ_CHUNK_BYTES,
    BlobTransfer,
    BodyCheck,
    PublisherQuery,
    publish,
    require_transfer,
)

__all__ = [
    "get_patch_by_quilt_id_and_identifier",
    "get_patch_by_quilt_patch_id",
    "list_patches_in_quilt",
    "put_quilt",
]

log = structlog.get_logger("walruspy.daemon.quilts")

T = TypeVar("T")

#: The multipart field carrying identifiers and tags (Walrus `WALRUS_NATIVE_METADATA_FIELD_NAME`).
METADATA_FIELD: Final = "_metadata"
#: Spellings of QuiltV1 that `quilt_version` accepts (Walrus's `QuiltVersionEnum::from`).
_QUILT_VERSIONS: Final = frozenset({"v1", "V1", "1"})
#: Most parts of one quilt upload looked at: a QuiltV1 holds at most s - 1 < 1000 patches
#: (1000 shards), plus `_metadata`.
MAX_PARTS: Final = 1001
_CACHE_CONTROL: Final = "public, max-age=86400, stale-while-revalidate=3600"
_OCTET_STREAM: Final = "application/octet-stream"
_IDENTIFIER_HEADER: Final = "X-Quilt-Patch-Identifier"


# --- the publisher ------------------------------------------------------------------------------


def parse_quilt_query(pairs: Iterable[tuple[str, str]]) -> PublisherQuery:
    """The publisher's query plus `quilt_version`; `DaemonApiError` (400) names what is wrong."""
    rest = []
    versions = 0
    for key, value in pairs:
        if key != "quilt_version":
            rest.append((key, value))
            continue
        versions += 1
        if versions > 1:
            raise DaemonApiError.malformed("query parameter 'quilt_version' is given twice")
        if value not in _QUILT_VERSIONS:
            raise DaemonApiError.malformed(
                f"unsupported quilt_version {value[:20]!r}: only v1 (QuiltV1)"
            )
    return PublisherQuery.parse(rest)


def _too_large(limit: int, declared: int | None) -> DaemonApiError:
    what = f"of {declared} bytes " if declared is not None else ""
    return DaemonApiError(
        413,
        "BODY_TOO_LARGE",
        f"the quilt body {what}exceeds this publisher's limit of {limit} bytes",
        metadata={"limit": limit},
    )


def _malformed(what: str) -> DaemonApiError:
    return DaemonApiError.malformed(f"failed to parse multipart form: {what}")


class _Budget:
    """The bytes of one body's parts read so far, against the limit and the access checks
    (the parts are at most the body: a check of the parts never refuses a body it would pass)."""

    def __init__(self, limit: int, checks: Sequence[BodyCheck]) -> None:
        self.limit = limit
        self.checks = checks
        self.used = 0

    async def read(self, part: BodyPartReader) -> bytes:
        chunks = []
        while chunk := await part.read_chunk(READ_CHUNK_BYTES):
            self.used += len(chunk)
            if self.used > self.limit:
                raise _too_large(self.limit, None)
            for check in self.checks:
                check.reading(self.used)
            chunks.append(chunk)
        return b"".join(chunks)


def _tag_text(value: object) -> str:
    """A tag value: a string as is, anything else as its JSON text (Walrus's `to_string`)."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def parse_metadata(text: bytes) -> dict[str, dict[str, str]]:
    """`_metadata`: identifier -> tags; `DaemonApiError` (400) names what is malformed."""
    try:
        entries = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _malformed(f"_metadata is not JSON: {exc}") from None
    if not isinstance(entries, list):
        raise _malformed('_metadata must be a JSON array of {"identifier", "tags"}')
    tags_of: dict[str, dict[str, str]] = {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("identifier"), str):
            raise _malformed(f'every _metadata entry needs an "identifier" string: {entry!r:.80}')
        tags = entry.get("tags", {})
        if not isinstance(tags, dict):
            raise _malformed(f'"tags" of {entry["identifier"][:60]!r} must be a JSON object')
        identifier = entry["identifier"]
        if identifier in tags_of:
            raise _malformed(f"duplicate identifier {identifier[:60]!r} in _metadata")
        tags_of[identifier] = {key: _tag_text(value) for key, value in tags.items()}
    return tags_of


_PARAMETER: Final = re.compile(r"""\s*([^=;\s]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*?)\s*(?:;|$)""")


def field_name(part: BodyPartReader) -> str:
    """The part's field name, read from its `Content-Disposition` (RFC 7578 section 4.2).

    Not aiohttp's `part.name`: it reads `name="/a"` as `a` and `name="/"` as empty. A quoted name
    has its backslash escapes undone (aiohttp's client writes `name="x\\ y"`); an RFC 2231
    `name*=charset''percent-encoded` form wins over a plain `name`.
    """
    header = part.headers.get(hdrs.CONTENT_DISPOSITION, "")
    _, _, parameters = header.partition(";")
    found: dict[str, str] = {}
    for match in _PARAMETER.finditer(parameters):
        key, value = match.group(1).lower(), match.group(2)
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        found.setdefault(key, value)
    if "name*" in found:
        charset, _, rest = found["name*"].partition("'")
        _, _, encoded = rest.partition("'")
        try:
            return unquote(encoded, encoding=charset or "utf-8", errors="strict")
        except (LookupError, UnicodeDecodeError) as exc:
            raise _malformed(f"field name {found['name*'][:80]!r}: {exc}") from exc
    return found.get("name", "")


def _check_declared(request: web.Request, limit: int, checks: Sequence[BodyCheck]) -> None:
    """The body's declared length and type, before any of it is read."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise _too_large(limit, declared)
    if request.content_type != "multipart/form-data":
        raise _malformed(f"expected multipart/form-data, got {request.content_type[:60]!r}")
    if declared is not None:
        for check in checks:
            check.declared(declared)


async def read_quilt_form(
    request: web.Request, limit: int, checks: Sequence[BodyCheck] = ()
) -> list[QuiltStoreBlob]:
    """The quilt's blobs from the multipart body (module doc), at most `limit` bytes of it,
    within `checks` (the whole body's length, declared and received, and its parts' bytes)."""
    _check_declared(request, limit, checks)
    budget = _Budget(limit, checks)
    files: list[tuple[str, bytes]] = []
    tags_of: dict[str, dict[str, str]] = {}
    try:
        reader = await request.multipart()
        for _ in range(MAX_PARTS + 1):
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader) or isinstance(part, MultipartReader):
                raise _malformed("nested multipart parts are not supported")
            data = await budget.read(part)
            name = field_name(part)
            if name == METADATA_FIELD:
                tags_of.update(parse_metadata(data))
            else:
                files.append((name, data))
        else:
            raise _malformed(f"more than {MAX_PARTS} parts")
    except (ValueError, AssertionError, RuntimeError) as exc:
        # aiohttp's multipart reader raises these for bodies that break the format.
        raise _malformed(str(exc) or type(exc).__name__) from exc
    # The bytes received up to the closing boundary (an epilogue after it, which clients do
    # not send, may be missing: a body without Content-Length is measured to its last part).
    for check in checks:
        check.finished(request.content.total_bytes)
    if not files:
        raise DaemonApiError.malformed("no files provided in multipart form")
    blobs = []
    for identifier, data in files:
        try:
            blobs.append(QuiltStoreBlob(identifier, data, tags_of.get(identifier, {})))
        except InvalidInputError as exc:
            raise DaemonApiError.malformed(f"failed to construct quilt: {exc}") from None
    return blobs


async def put_quilt(
    client: WalrusClient,
    request: web.Request,
    max_quilt_body_bytes: int,
    transfer: BlobTransfer | None,
    checks: Sequence[BodyCheck] = (),
) -> web.Response:
    """Handle `PUT /v1/quilts` (see the module docstring)."""
    query = parse_quilt_query(request.query.items())
    require_transfer(query, transfer)
    blobs = await read_quilt_form(request, max_quilt_body_bytes, checks)
    store = client.quilts.store(
        blobs,
        query.epochs,
        deletable=query.deletable,
        force=query.force,
        ignore_resources=not query.reuse_resources,
        share=query.share,
    )
    return await publish(
        store,
        query,
        transfer,
        lambda result: result.blob_store_result,
        "quilt store",
        files=len(blobs),
    )


# --- the aggregator -----------------------------------------------------------------------------


def _refusal(error: Exception, what: str) -> DaemonApiError:
    """The answer to a failed quilt read; internal errors are logged here."""
    if isinstance(error, QuiltPatchNotFoundError):
        return DaemonApiError(404, "QUILT_PATCH_NOT_FOUND", str(error))
    if isinstance(error, NotAQuiltError):
        return DaemonApiError(404, "NOT_A_QUILT", str(error))
    answer = read_error(error)
    if answer is None:
        log.error("quilt read failed", what=what, exc_info=error)
        return DaemonApiError.internal()
    log.debug("quilt read refused", what=what, reason=answer.reason, error=str(error))
    return answer


async def _translated(awaitable: Awaitable[T], what: str) -> T:
    try:
        return await awaitable
    except Exception as exc:
        raise _refusal(exc, what) from exc


def _no_query(request: web.Request) -> None:
    if request.query:
        key = next(iter(request.query))
        raise DaemonApiError.malformed(f"unexpected query parameter {key[:40]!r}")


def patch_response(request: web.Request, patch: QuiltPatchData, etag: str) -> web.Response:
    """A patch's bytes with Walrus's headers (module doc)."""
    headers = {
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": _CACHE_CONTROL,
        "ETag": f'"{etag}"',
    }
    from_tags = allowed_headers(patch.tags.items(), request, headers)
    accept = request.headers.get("Accept")
    headers["Content-Type"] = accept if accept and "*" not in accept else _OCTET_STREAM
    headers.update(from_tags)
    if header_value(patch.identifier):
        headers[_IDENTIFIER_HEADER] = patch.identifier
    return web.Response(body=patch.data, headers=headers)


def _quilt_id(text: str) -> BlobId:
    try:
        return BlobId.parse(text)
    except InvalidInputError as exc:
        raise DaemonApiError.malformed(f"invalid quilt ID: {exc}") from exc


async def get_patch_by_quilt_patch_id(client: WalrusClient, request: web.Request) -> web.Response:
    """Handle `GET /v1/blobs/by-quilt-patch-id/{quilt_patch_id}`."""
    _no_query(request)
    text = request.match_info["quilt_patch_id"]
    try:
        patch_id = QuiltPatchId.parse(text)
    except InvalidInputError as exc:
        raise DaemonApiError.malformed(str(exc)) from exc
    read = await _translated(client.quilts.read_by_ids([patch_id]), f"patch {text}")
    (patch,) = read.patches
    return patch_response(request, patch, str(patch_id.quilt_id))


async def get_patch_by_quilt_id_and_identifier(
    client: WalrusClient, request: web.Request
) -> web.Response:
    """Handle `GET /v1/blobs/by-quilt-id/{quilt_id}/{identifier}`."""
    _no_query(request)
    quilt_id = _quilt_id(request.match_info["quilt_id"])
    identifier = request.match_info["identifier"]
    what = f"{identifier[:60]!r} of quilt {quilt_id}"
    read = await _translated(client.quilts.read_by_identifiers(quilt_id, [identifier]), what)
    (patch,) = read.patches
    return patch_response(request, patch, str(quilt_id))


async def list_patches_in_quilt(client: WalrusClient, request: web.Request) -> web.Response:
    """Handle `GET /v1/quilts/{quilt_id}/patches`."""
    _no_query(request)
    quilt_id = _quilt_id(request.match_info["quilt_id"])
    listing = await _translated(client.quilts.list_patches(quilt_id), f"quilt {quilt_id}")
    return web.json_response(listing.items_json())

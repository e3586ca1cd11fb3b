"""The publisher's route: `PUT /v1/blobs` stores the request body as a blob.

Theory of operation (spec/walrus-system.md 4.3; Walrus `put_blob` and `PublisherQuery` in
`client/daemon/routes.rs`). The query is parsed strictly (`PublisherQuery.parse`): `epochs`
(default 1), `deletable` / `permanent` (mutually exclusive; deletable by default, as Walrus since
1.33), `force`, `reuse_resources`, `encoding_type` (RS2 only) and at most one of `send_object_to`
(an EVM address) and `share`. The body is read in chunks and refused with 413 as soon as it is
known to exceed `max_body_bytes` (at once when `Content-Length` says so), so an oversized upload
is never buffered whole. The store runs through `WalrusClient.store`; the answer is Walrus's
`BlobStoreResult` JSON, `newlyCreated` or `alreadyCertified`.

`send_object_to` hands the new blob object to that address once it is certified, through the
`transfer` function the application was built with; without one the publisher answers 501.
`share=true` turns a newly created blob object into a shared blob (SharedBlobs.vy, unfunded):
the answer's `newlyCreated.sharedBlobObject` is its ID, as Walrus's.

Access control (`walruspy.daemon.auth`, `walruspy.daemon.quotas`) runs before the handler and
hands it `BodyCheck`s: a JWT's size claims and a client's byte quota see the declared length,
the bytes as they are read, and the final size, and refuse the body as soon as it breaks them.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeVar

from aiohttp import web

from walruspy.client import WalrusClient
from walruspy.client.results import ENCODING_TYPE_NAME, StoreResult
from walruspy.daemon.errors import DaemonApiError, store_error
from walruspy.logs import get_logger

__all__ = ["BlobTransfer", "BodyCheck", "PublisherQuery", "put_blob", "read_body"]


class BodyCheck(Protocol):
    """A bound on an upload's body beside the publisher's limit; each method raises
    `DaemonApiError` to refuse the body."""

    def declared(self, size: int) -> None:
        """The body's `Content-Length`, before any of it is read."""

    def reading(self, size: int) -> None:
        """The bytes read so far (called after every chunk)."""

    def finished(self, size: int) -> None:
        """The body's size once it has been read whole."""


class _JsonResult(Protocol):
    def to_json(self) -> Any: ...


#: A store's result: a blob's `StoreResult` or a quilt's.
R = TypeVar("R", bound=_JsonResult)

log = get_logger("walruspy.daemon.publisher")

#: Bytes read from a request body at a time while checking its limit.
READ_CHUNK_BYTES: Final = 256 * 1024
#: Largest epoch count accepted in a query (a u32, as Walrus's `EpochCount`); the contract's
#: `max_epochs_ahead` is the real bound and is checked by the client.
_U32_MAX: Final = (1 << 32) - 1
#: Most query parameters looked at: the known ones appear once each.
_MAX_QUERY_PAIRS: Final = 32
_ADDRESS: Final = re.compile(r"^0x[0-9a-fA-F]{40}$")
_BOOLEANS: Final = {"true": True, "false": False}
_KNOWN: Final = frozenset(
    {"epochs", "deletable", "permanent", "force", "reuse_resources", "encoding_type"}
    | {"send_object_to", "share"}
)

#: Gives a certified blob object to an address: `(object_id, address)`.
BlobTransfer = Callable[[bytes, str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class PublisherQuery:
    """The query of `PUT /v1/blobs`, validated."""

    epochs: int = 1
    deletable: bool = True
    force: bool = False
    reuse_resources: bool = False
    send_object_to: str | None = None
    share: bool = False

    @classmethod
    def parse(cls, pairs: Iterable[tuple[str, str]]) -> PublisherQuery:
        """Parse the query; `DaemonApiError` (400) names the first bad parameter."""
        values: dict[str, str] = {}
        for count, (key, value) in enumerate(pairs):
            if count >= _MAX_QUERY_PAIRS:
                raise DaemonApiError.malformed("too many query parameters")
            if key not in _KNOWN:
                raise DaemonApiError.malformed(f"unknown query parameter {key[:40]!r}")
            if key in values:
                raise DaemonApiError.malformed(f"query parameter {key!r} is given twice")
            values[key] = value
        deletable = _boolean(values, "deletable")
        permanent = _boolean(values, "permanent")
        if deletable and permanent:
            raise DaemonApiError(
                400,
                "INVALID_BLOB_PERSISTENCE",
                "the blob cannot be defined as both deletable and permanent",
            )
        encoding = values.get("encoding_type", ENCODING_TYPE_NAME)
        if encoding.upper() != ENCODING_TYPE_NAME:
            raise DaemonApiError.malformed(
                f"unsupported encoding_type {encoding[:20]!r}: only {ENCODING_TYPE_NAME}"
            )
        send_to = values.get("send_object_to")
        if send_to is not None and not _ADDRESS.match(send_to):
            raise DaemonApiError.malformed(
                f"send_object_to {send_to[:60]!r} is not an address (0x and 40 hex digits)"
            )
        share = _boolean(values, "share")
        if share and send_to is not None:
            raise DaemonApiError.malformed("send_object_to and share are mutually exclusive")
        return cls(
            epochs=_epochs(values.get("epochs")),
            deletable=not permanent,
            force=_boolean(values, "force"),
            reuse_resources=_boolean(values, "reuse_resources"),
            send_object_to=send_to,
            share=share,
        )


def _boolean(values: dict[str, str], key: str) -> bool:
    text = values.get(key)
    if text is None:
        return False
    if text not in _BOOLEANS:
        raise DaemonApiError.malformed(f"{key} must be true or false, got {text[:20]!r}")
    return _BOOLEANS[text]


def _epochs(text: str | None) -> int:
    if text is None:
        return 1
    # ASCII digits only (str.isdecimal admits other scripts' digits), and few enough that int()
    # never meets Python's 4,300-digit limit: a u32 has at most 10.
    if (
        not (text.isascii() and text.isdigit())
        or len(text) > 10
        or (len(text) > 1 and text[0] == "0")
        or int(text) > _U32_MAX
    ):
        raise DaemonApiError.malformed(f"epochs must be a whole number, got {text[:20]!r}")
    epochs = int(text)
    if epochs < 1:
        raise DaemonApiError.malformed("epochs must be at least 1")
    return epochs


async def read_body(request: web.Request, limit: int, checks: Sequence[BodyCheck] = ()) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed `limit` bytes, or
    by one of `checks` as soon as it breaks it."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise _too_large(limit, declared)
    if declared is not None:
        for check in checks:
            check.declared(declared)
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(READ_CHUNK_BYTES):
        size += len(chunk)
        if size > limit:
            raise _too_large(limit, None)
        for check in checks:
            check.reading(size)
        chunks.append(chunk)
    for check in checks:
        check.finished(size)
    return b"".join(chunks)


def _too_large(limit: int, declared: int | None) -> DaemonApiError:
    what = f"of {declared} bytes " if declared is not None else ""
    return DaemonApiError(
        413,
        "BODY_TOO_LARGE",
        f"the request body {what}exceeds this publisher's limit of {limit} bytes",
        metadata={"limit": limit},
    )


async def put_blob(
    client: WalrusClient,
    request: web.Request,
    max_body_bytes: int,
    transfer: BlobTransfer | None,
    checks: Sequence[BodyCheck] = (),
) -> web.Response:
    """Handle `PUT /v1/blobs` (see the module docstring)."""
    query = PublisherQuery.parse(request.query.items())
    require_transfer(query, transfer)
    data = await read_body(request, max_body_bytes, checks)
    store = client.store(
        data,
        query.epochs,
        deletable=query.deletable,
        force=query.force,
        ignore_resources=not query.reuse_resources,
        share=query.share,
    )
    return await publish(store, query, transfer, lambda result: result, "store", size=len(data))


def require_transfer(query: PublisherQuery, transfer: BlobTransfer | None) -> None:
    """501 before the body is read if `send_object_to` asks for what this publisher lacks."""
    if query.send_object_to is not None and transfer is None:
        raise DaemonApiError(
            501,
            "TRANSFER_UNSUPPORTED",
            "send_object_to is not available: this publisher cannot transfer blob objects",
        )


async def publish(
    store: Awaitable[R],
    query: PublisherQuery,
    transfer: BlobTransfer | None,
    blob_result: Callable[[R], StoreResult],
    what: str,
    **fields: object,
) -> web.Response:
    """Await a store (of a blob, of a quilt), map its failure to Walrus's answer, give the new
    blob object to `send_object_to` and answer the result's JSON."""
    try:
        result = await store
    except Exception as exc:
        answer = store_error(exc)
        if answer is None:
            log.exception(f"{what} failed", **fields)
            raise DaemonApiError.internal() from exc
        log.info(f"{what} refused", reason=answer.reason, error=str(exc), **fields)
        raise answer from exc
    if query.send_object_to is not None and transfer is not None:
        await _send(blob_result(result), query.send_object_to, transfer)
    return web.json_response(result.to_json())


async def _send(result: StoreResult, address: str, transfer: BlobTransfer) -> None:
    """Give the newly created blob object to `address` (an already certified one has none)."""
    if result.already_certified or result.blob is None:
        return
    try:
        await transfer(result.blob.object_id, address)
    except Exception as exc:
        log.exception("transfer of the blob object failed", blob_id=str(result.blob_id))
        raise DaemonApiError.internal() from exc

"""Error answers of the publisher and aggregator, and the translation of the client's errors.

Theory of operation (spec/walrus-system.md 4.3; Walrus `client/daemon/routes.rs`, the
`StoreBlobError` and `GetBlobError` enums). A failed request is answered with the AIP-193 body
the storage nodes use, in the daemon's error domain:

    {"error": {"code": 404, "status": "NOT_FOUND", "message": "...",
               "details": [{"@type": "ErrorInfo", "reason": "BLOB_NOT_FOUND",
                            "domain": "daemon.walrus.space", "metadata": {}}]}}

    WalrusError
    └── DaemonApiError    an error answer: HTTP code, status, reason, message (never a traceback)

Handlers raise `DaemonApiError`; the application's middleware renders it. Errors of the client
library are translated here, once, with Walrus's statuses and reasons:

    client error                              HTTP  reason
    BlobBlockedError                          451   FORBIDDEN_BLOB
    BlobNotFoundError                         404   BLOB_NOT_FOUND
    BlobInvalidError                          404   INVALID_BLOB        (walruspy: marked invalid)
    InconsistentBlobError                     404   INCONSISTENT_BLOB   (walruspy: never data)
    NotEnoughConfirmationsError               504   INSUFFICIENT_CONFIRMATIONS
    RegistrationExpiredError (store)          503   REGISTRATION_EXPIRED (walruspy: store again)
    NotEnoughSlivers / NoMetadata / NoStatus  503   BLOB_UNAVAILABLE
    BlobTooLargeError (read)                  403   BLOB_TOO_LARGE
    BlobTooLargeError (store)                 413   BLOB_TOO_LARGE
    InvalidArgumentError                      400   MALFORMED_REQUEST
    ChainUnavailableError (walruspy.chain)    503   CHAIN_UNAVAILABLE
    anything else                             500   INTERNAL_ERROR      (logged, no details)

Walrus reads an invalid or inconsistent blob as "no blob" (its read returns None); walruspy says
which of the two it was, still with 404 and never with the data. Overload answers (429) are plain
text, as Walrus's load-shedding layer writes them; they are built in `walruspy.daemon.limits`.
The publisher's access control answers 401, 400, 429 and 504 in the domain
`auth.publisher.walrus.space` (`walruspy.daemon.auth`) and 429 QUOTA_EXCEEDED with `Retry-After`
(`walruspy.daemon.quotas`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Final

from aiohttp import web

from walruspy.chain.api import ChainUnavailableError
from walruspy.client import errors as client_errors
from walruspy.core.errors import WalrusError
from walruspy.node_api.errors import DAEMON_ERROR_DOMAIN, GLOBAL_ERROR_DOMAIN

__all__ = ["DaemonApiError", "read_error", "store_error"]

#: HTTP codes and the AIP-193 status names that go with them.
_STATUS_TEXT: Final = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "SIZE_EXCEEDED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    416: "RANGE_NOT_SATISFIABLE",
    429: "RESOURCE_EXHAUSTED",
    451: "UNAVAILABLE_FOR_LEGAL_REASONS",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
#: The message of every internal error: details go to the log, never to the caller.
INTERNAL_MESSAGE: Final = "an internal server error has occurred; please report this error"


class DaemonApiError(WalrusError):
    """An error answer of the publisher or aggregator: HTTP code, reason, message."""

    def __init__(
        self,
        http_status: int,
        reason: str,
        message: str,
        *,
        domain: str = DAEMON_ERROR_DOMAIN,
        metadata: Mapping[str, str | int] | None = None,
        status: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if http_status not in _STATUS_TEXT:
            raise ValueError(f"no error status is defined for HTTP {http_status}")
        super().__init__(message)
        self.http_status = http_status
        #: The AIP-193 status name; by default the one of the HTTP code (Walrus's publisher
        #: auth errors say FAILED_PRECONDITION with 400).
        self.status = status or _STATUS_TEXT[http_status]
        #: Extra headers of the answer (`Retry-After`, `WWW-Authenticate`).
        self.headers = dict(headers or {})
        self.reason = reason
        self.message = message
        self.domain = domain
        self.metadata = dict(metadata or {})

    def __str__(self) -> str:
        return f"{self.message} ({self.reason}, HTTP {self.http_status})"

    def to_body(self) -> dict[str, object]:
        """The AIP-193 JSON body."""
        return {
            "error": {
                "code": self.http_status,
                "status": self.status,
                "message": self.message,
                "details": [
                    {
                        "@type": "ErrorInfo",
                        "reason": self.reason,
                        "domain": self.domain,
                        "metadata": self.metadata,
                    }
                ],
            }
        }

    def to_response(self) -> web.Response:
        """The error as an aiohttp response."""
        return web.Response(
            body=json.dumps(self.to_body()).encode(),
            status=self.http_status,
            content_type="application/json",
            headers=self.headers,
        )

    @classmethod
    def malformed(cls, message: str) -> DaemonApiError:
        """400 MALFORMED_REQUEST: a parameter or body the daemon cannot use."""
        return cls(400, "MALFORMED_REQUEST", message)

    @classmethod
    def internal(cls) -> DaemonApiError:
        """500 INTERNAL_ERROR, without details (they are logged by the caller)."""
        return cls(500, "INTERNAL_ERROR", INTERNAL_MESSAGE, domain=GLOBAL_ERROR_DOMAIN)


def _common(error: BaseException) -> DaemonApiError | None:
    """The translation shared by reads and stores, or None."""
    if isinstance(error, client_errors.BlobBlockedError):
        return DaemonApiError(451, "FORBIDDEN_BLOB", "the requested blob is blocked")
    if isinstance(error, client_errors.InvalidArgumentError):
        return DaemonApiError.malformed(str(error))
    if isinstance(error, ChainUnavailableError):
        return DaemonApiError(
            503, "CHAIN_UNAVAILABLE", "the control plane cannot be reached; retry later"
        )
    return None


#: Read failures in the order they are tested (subclasses before their parents).
_READ_ERRORS: Final = (
    (
        client_errors.BlobNotFoundError,
        404,
        "BLOB_NOT_FOUND",
        "the requested blob ID does not exist on Walrus (never stored, expired or deleted)",
    ),
    (
        client_errors.BlobInvalidError,
        404,
        "INVALID_BLOB",
        "the blob was marked invalid: its writer encoded it inconsistently",
    ),
    (
        client_errors.InconsistentBlobError,
        404,
        "INCONSISTENT_BLOB",
        "the blob's slivers verify but decode to data that fails the consistency check",
    ),
    (
        client_errors.NotEnoughAnswersError,
        503,
        "BLOB_UNAVAILABLE",
        "the requested blob is currently not retrievable from Walrus; this may be transient: "
        "retry with backoff",
    ),
)


def read_error(error: BaseException) -> DaemonApiError | None:
    """The answer to a failed read (see the module's table), or None for an internal error."""
    common = _common(error)
    if common is not None:
        return common
    for kind, status, reason, message in _READ_ERRORS:
        if isinstance(error, kind):
            return DaemonApiError(status, reason, message)
    if isinstance(error, client_errors.BlobTooLargeError):
        return DaemonApiError(403, "BLOB_TOO_LARGE", str(error))
    return None


def store_error(error: BaseException) -> DaemonApiError | None:
    """The answer to a failed store (see the module's table), or None for an internal error."""
    common = _common(error)
    if common is not None:
        return common
    if isinstance(error, client_errors.NotEnoughConfirmationsError):
        return DaemonApiError(
            504,
            "INSUFFICIENT_CONFIRMATIONS",
            "the service timed out while waiting for confirmations, please try again",
        )
    if isinstance(error, client_errors.RegistrationExpiredError):
        return DaemonApiError(503, "REGISTRATION_EXPIRED", str(error))
    if isinstance(error, client_errors.BlobTooLargeError):
        return DaemonApiError(413, "BLOB_TOO_LARGE", str(error))
    return None

"""The publisher / aggregator / daemon HTTP application over one `WalrusClient`.

Theory of operation (spec/walrus-system.md 4.3; Walrus `client/daemon.rs`). A `DaemonMode` selects
the routes: the publisher serves `PUT /v1/blobs`, the aggregator the blob routes (`GET` and `HEAD`
of a blob by ID or object ID, Walrus's byte-range and stream routes: `walruspy.daemon.aggregator`),
the daemon both; every mode serves `GET /status` ("OK" while the process runs, which is what
readiness checks poll), `GET /metrics` (Prometheus text, `walruspy.daemon.metrics`) and `GET
/v1/api`, the OpenAPI document (`openapi.yaml` beside this module) cut down to the routes this mode
serves. A test checks that the document and the routes agree; a browser (`Accept: text/html`) gets
the document as a page (`walruspy.daemon.openapi_html`). The modes serving the aggregator also
serve the explorer, a web page of the network and its blobs at `/` (`walruspy.daemon.explorer`).
Every finished request is counted in the metrics and logged as one structured line by the access
logger `open_daemon` installs.

Each group of routes has its `AdmissionLimit` (`walruspy.daemon.limits`): beyond its running and
queued requests, a request is shed with 429. Before that, the publisher's uploads pass its
access control, as Walrus's `auth_layer` sits outside its load-shedding layers: the client's
quotas (`walruspy.daemon.quotas`, 429 with `Retry-After`), then, when a `JwtConfig` is given,
the bearer token (`walruspy.daemon.auth`); both hand the handler `BodyCheck`s for the body.
Without a `JwtConfig` anyone who reaches the publisher spends its wallet. The server runs behind
the guard against slow and greedy clients (`walruspy.node_api.connection_guard`,
`DaemonLimits.connections`). Errors raised by handlers (`DaemonApiError`) become AIP-193 JSON
bodies; an unknown route is a 404 of the same shape; anything else is logged and answered 500
without details. CORS is open (any origin, method and header), as Walrus's `daemon_cors_layer`;
its headers are added as each answer's headers go out, so streamed answers carry them too.

`open_daemon` serves the application on a TCP address until the context exits;
`run_daemon` is what `walruspy publisher|aggregator|daemon` run: load the client configuration,
open the client, serve, tell the caller it is ready (the CLI prints one line starting with
`READY_PREFIX`), and stop on SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import importlib.resources
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml
from aiohttp import web

from walruspy.client import WalrusClient, load_config, open_client
from walruspy.core import blake2_batch
from walruspy.daemon import quilts
from walruspy.daemon.aggregator import (
    get_blob,
    get_blob_by_object_id,
    get_blob_byte_range,
    stream_blob,
)
from walruspy.daemon.auth import JwtConfig, JwtVerifier
from walruspy.daemon.errors import DaemonApiError
from walruspy.daemon.explorer import ExplorerConfig, add_explorer_routes
from walruspy.daemon.limits import AdmissionLimit, DaemonLimits, overloaded_response
from walruspy.daemon.metrics import (
    METRICS_CONTENT_TYPE,
    METRICS_KEY,
    DaemonAccessLogger,
    DaemonMetrics,
)
from walruspy.daemon.openapi_html import render_openapi_html, wants_html
from walruspy.daemon.publisher import BlobTransfer, BodyCheck, PublisherQuery, put_blob
from walruspy.daemon.quotas import ClientQuotas
from walruspy.logs import get_logger
from walruspy.node_api.connection_guard import GuardedAppRunner, address_key
from walruspy.node_api.waiting import serve_unavailable

__all__ = [
    "ROUTES",
    "DaemonMode",
    "DaemonRoute",
    "RunningDaemon",
    "make_app",
    "open_daemon",
    "openapi_document",
    "run_daemon",
]

log = get_logger("walruspy.daemon")

#: Walrus's default bind address.
DEFAULT_BIND_ADDRESS: Final = "127.0.0.1:31415"
#: Time in-flight requests get to finish on shutdown; a store that needs longer is cut off
#: and its registration is reused by the next attempt.
GRACEFUL_SHUTDOWN_S: Final = 5.0
#: After refusing an oversized body, the rest is read and dropped for at most this long so the
#: client sees the 413 (aiohttp's default of 10 s would let a slow sender hold a connection).
LINGERING_TIME_S: Final = 1.0
#: The first line the commands print once they serve; scripts and the devnet wait on it.
READY_PREFIX: Final = "walruspy daemon listening on "
_CORS_HEADERS: Final = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "*",
    "Access-Control-Allow-Headers": "*",
    "Access-Control-Max-Age": "86400",
}
#: The logger aiohttp hands the access logger (which writes through structlog instead).
_ACCESS_LOGGER: Final = logging.getLogger("walruspy.daemon.access")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: A publisher route's handler: the request and the checks of its body.
UploadHandler = Callable[[web.Request, Sequence[BodyCheck]], Awaitable[web.StreamResponse]]
#: The wall clock (seconds since the epoch): JWT expiry and quota refills; tests inject one.
Clock = Callable[[], float]


class DaemonMode(enum.Enum):
    """Which routes are served (Walrus's `publisher`, `aggregator` and `daemon` commands)."""

    PUBLISHER = "publisher"
    AGGREGATOR = "aggregator"
    DAEMON = "daemon"

    def serves(self, group: str | None) -> bool:
        """Whether this mode serves the routes of `group` (None: every mode's own routes)."""
        return group is None or self is DaemonMode.DAEMON or group == self.value


@dataclass(frozen=True, slots=True)
class DaemonRoute:
    """One route: its name (the OpenAPI operationId), method, template and limit group."""

    name: str
    method: str
    template: str
    group: str | None


#: Every route, in Walrus's spelling.
ROUTES: Final = (
    DaemonRoute("status", "GET", "/status", None),
    DaemonRoute("api_docs", "GET", "/v1/api", None),
    DaemonRoute("metrics", "GET", "/metrics", None),
    DaemonRoute("put_blob", "PUT", "/v1/blobs", "publisher"),
    DaemonRoute("get_blob", "GET", "/v1/blobs/{blob_id}", "aggregator"),
    DaemonRoute("head_blob", "HEAD", "/v1/blobs/{blob_id}", "aggregator"),
    DaemonRoute(
        "get_blob_by_object_id", "GET", "/v1/blobs/by-object-id/{blob_object_id}", "aggregator"
    ),
    DaemonRoute(
        "head_blob_by_object_id", "HEAD", "/v1/blobs/by-object-id/{blob_object_id}", "aggregator"
    ),
    DaemonRoute("get_blob_byte_range", "GET", "/v1/blobs/{blob_id}/byte-range", "aggregator"),
    DaemonRoute("stream_blob", "GET", "/v1alpha/blobs/{blob_id}/stream", "aggregator"),
    DaemonRoute("head_stream_blob", "HEAD", "/v1alpha/blobs/{blob_id}/stream", "aggregator"),
    # Quilts (walruspy.daemon.quilts).
    DaemonRoute("put_quilt", "PUT", "/v1/quilts", "publisher"),
    DaemonRoute(
        "get_patch_by_quilt_patch_id",
        "GET",
        "/v1/blobs/by-quilt-patch-id/{quilt_patch_id}",
        "aggregator",
    ),
    DaemonRoute(
        "get_patch_by_quilt_id_and_identifier",
        "GET",
        "/v1/blobs/by-quilt-id/{quilt_id}/{identifier}",
        "aggregator",
    ),
    DaemonRoute("list_patches_in_quilt", "GET", "/v1/quilts/{quilt_id}/patches", "aggregator"),
)


@functools.cache
def _full_document() -> dict[str, Any]:
    text = importlib.resources.files("walruspy.daemon").joinpath("openapi.yaml").read_text()
    document: dict[str, Any] = yaml.safe_load(text)
    return document


@functools.cache
def openapi_document(mode: DaemonMode) -> bytes:
    """The OpenAPI document (YAML) listing exactly the routes `mode` serves."""
    document = dict(_full_document())
    served = {route.template for route in ROUTES if mode.serves(route.group)}
    document["paths"] = {path: item for path, item in document["paths"].items() if path in served}
    text: str = yaml.safe_dump(document, sort_keys=False)
    return text.encode()


@functools.cache
def openapi_page(mode: DaemonMode) -> str:
    """The OpenAPI document of `mode` as an HTML page, for browsers."""
    return render_openapi_html(yaml.safe_load(openapi_document(mode)))


class _Daemon:
    """The handlers, bound to one client and its limits."""

    def __init__(
        self,
        client: WalrusClient,
        mode: DaemonMode,
        limits: DaemonLimits,
        transfer: BlobTransfer | None,
        *,
        jwt: JwtConfig | None,
        clock: Clock,
    ) -> None:
        self.client = client
        self.mode = mode
        self.limits = limits
        self.transfer = transfer
        self.jwt = JwtVerifier(jwt, clock) if jwt is not None else None
        self.quotas = ClientQuotas(limits.quotas, clock)
        self.daemon_metrics = DaemonMetrics()
        self.admission = {
            "publisher": AdmissionLimit(
                "publisher",
                limits.publisher_max_concurrent_requests,
                limits.publisher_max_buffer_size,
            ),
            "aggregator": AdmissionLimit(
                "aggregator",
                limits.aggregator_max_concurrent_requests,
                limits.aggregator_max_buffer_size,
            ),
        }

    async def status(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text="OK")

    async def api_docs(self, request: web.Request) -> web.StreamResponse:
        if wants_html(request.headers.get("Accept")):
            return web.Response(
                text=openapi_page(self.mode), content_type="text/html", headers={"Vary": "Accept"}
            )
        return web.Response(
            body=openapi_document(self.mode),
            content_type="application/yaml",
            headers={"Vary": "Accept"},
        )

    async def put_blob(
        self, request: web.Request, checks: Sequence[BodyCheck]
    ) -> web.StreamResponse:
        return await put_blob(
            self.client, request, self.limits.max_body_bytes, self.transfer, checks
        )

    async def metrics(self, request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=self.daemon_metrics.render(), headers={"Content-Type": METRICS_CONTENT_TYPE}
        )

    async def get_blob(self, request: web.Request) -> web.StreamResponse:
        return await get_blob(self.client, request)

    head_blob = get_blob

    async def get_blob_by_object_id(self, request: web.Request) -> web.StreamResponse:
        return await get_blob_by_object_id(self.client, request)

    head_blob_by_object_id = get_blob_by_object_id

    async def get_blob_byte_range(self, request: web.Request) -> web.StreamResponse:
        return await get_blob_byte_range(self.client, request)

    async def stream_blob(self, request: web.Request) -> web.StreamResponse:
        return await stream_blob(self.client, request)

    head_stream_blob = stream_blob

    async def put_quilt(
        self, request: web.Request, checks: Sequence[BodyCheck]
    ) -> web.StreamResponse:
        return await quilts.put_quilt(
            self.client, request, self.limits.max_quilt_body_bytes, self.transfer, checks
        )

    async def get_patch_by_quilt_patch_id(self, request: web.Request) -> web.StreamResponse:
        return await quilts.get_patch_by_quilt_patch_id(self.client, request)

    async def get_patch_by_quilt_id_and_identifier(
        self, request: web.Request
    ) -> web.StreamResponse:
        return await quilts.get_patch_by_quilt_id_and_identifier(self.client, request)

    async def list_patches_in_quilt(self, request: web.Request) -> web.StreamResponse:
        return await quilts.list_patches_in_quilt(self.client, request)

    def access(self, route: DaemonRoute, request: web.Request) -> list[BodyCheck]:
        """An upload's quotas, then its JWT (module doc); the checks of its body."""
        transport = request.transport
        peername = transport.get_extra_info("peername") if transport is not None else None
        budget = self.quotas.admit(address_key(peername, self.limits.connections.limit_loopback))
        checks: list[BodyCheck] = []
        if budget is not None:
            if request.content_length is not None:
                budget.declared(request.content_length)
            checks.append(budget)
        if self.jwt is not None:
            parse = quilts.parse_quilt_query if route.name == "put_quilt" else PublisherQuery.parse
            query = parse(request.query.items())
            try:
                sizes = self.jwt.check(
                    request.headers.get("Authorization"), query, request.content_length
                )
            except DaemonApiError as error:
                log.info("upload refused", reason=error.reason, route=route.name)
                raise
            if sizes is not None:
                checks.append(sizes)
        return checks

    def limited(self, route: DaemonRoute) -> Handler:
        """The route's handler behind its group's admission limit and the error rendering;
        the publisher's uploads behind its access control first."""
        limit = self.admission[route.group] if route.group is not None else None

        async def handle(request: web.Request) -> web.StreamResponse:
            if limit is None:
                plain: Handler = getattr(self, route.name)
                return await plain(request)
            checks = self.access(route, request) if route.group == "publisher" else None
            async with limit.admit() as admitted:
                if not admitted:
                    return overloaded_response(limit.name)
                if checks is None:
                    handler: Handler = getattr(self, route.name)
                    return await handler(request)
                upload: UploadHandler = getattr(self, route.name)
                return await upload(request, checks)

        return functools.partial(_rendered, handle)

    def read_limited(self, handler: Handler) -> Handler:
        """`handler` behind the aggregator's admission limit (the explorer's JSON endpoints,
        which ask the chain and the nodes as reads do) and the error rendering."""
        limit = self.admission["aggregator"]

        async def handle(request: web.Request) -> web.StreamResponse:
            async with limit.admit() as admitted:
                if not admitted:
                    return overloaded_response(limit.name)
                return await handler(request)

        return functools.partial(_rendered, handle)


async def _rendered(handler: Handler, request: web.Request) -> web.StreamResponse:
    try:
        return await handler(request)
    except DaemonApiError as error:
        return error.to_response()


async def _add_cors(request: web.Request, response: web.StreamResponse) -> None:
    """CORS on every answer, as its headers go out (streamed answers too)."""
    response.headers.update(_CORS_HEADERS)


@web.middleware
async def _frame(request: web.Request, handler: Handler) -> web.StreamResponse:
    """JSON 404/405 for unknown routes, 500 for bugs."""
    if request.method == "OPTIONS":
        return web.Response(status=204, headers=_CORS_HEADERS)
    response: web.StreamResponse
    try:
        response = await handler(request)
    except web.HTTPNotFound:
        response = DaemonApiError(
            404, "NOT_FOUND", f"no route {request.method} {request.path[:200]}"
        ).to_response()
    except web.HTTPMethodNotAllowed:
        response = DaemonApiError(
            405, "METHOD_NOT_ALLOWED", f"{request.method} is not allowed on {request.path[:200]}"
        ).to_response()
    except web.HTTPException:
        raise
    except ConnectionResetError:
        # The client went away mid-request: its business, not a fault of ours; one line.
        log.info("client disconnected", method=request.method, path=request.path[:200])
        response = web.Response(status=400)
    except Exception:
        log.exception("request failed", method=request.method, path=request.path[:200])
        response = DaemonApiError.internal().to_response()
    return response


def make_app(
    client: WalrusClient,
    mode: DaemonMode,
    limits: DaemonLimits | None = None,
    *,
    transfer: BlobTransfer | None = None,
    jwt: JwtConfig | None = None,
    clock: Clock = time.time,
    explorer: ExplorerConfig | None = None,
) -> web.Application:
    """The application serving `mode`'s routes over `client` (see the module docstring);
    `jwt` turns on the publisher's JWT authentication; `explorer` (default: on) the explorer's
    pages in the modes serving the aggregator."""
    limits = limits or DaemonLimits()
    daemon = _Daemon(client, mode, limits, transfer, jwt=jwt, clock=clock)
    # Bodies are read in chunks by the publisher against its own limit; this bounds the rest.
    app = web.Application(client_max_size=limits.max_body_bytes, middlewares=[_frame])
    app[METRICS_KEY] = daemon.daemon_metrics
    app.on_response_prepare.append(_add_cors)
    for route in ROUTES:
        if mode.serves(route.group):
            app.router.add_route(route.method, route.template, daemon.limited(route))
    explorer = explorer or ExplorerConfig()
    # The page uploads to this daemon (same origin) when it publishes.
    upload_url = "" if mode.serves("publisher") else explorer.publisher_url
    add_explorer_routes(
        app,
        client,
        pages=explorer.enabled and mode.serves("aggregator"),
        upload_url=upload_url,
        wrap=lambda handler: functools.partial(_rendered, handler),
        wrap_api=daemon.read_limited,
    )
    return app


@dataclass(frozen=True, slots=True)
class RunningDaemon:
    """A daemon serving on `url`."""

    url: str
    mode: DaemonMode


def parse_bind_address(text: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 hosts in brackets); ValueError names what is wrong."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdecimal() or int(port) > 65535:
        raise ValueError(f"{text!r} is not an address of the form HOST:PORT")
    return host.strip("[]"), int(port)


@contextlib.asynccontextmanager
async def open_daemon(
    client: WalrusClient,
    mode: DaemonMode,
    bind_address: str = DEFAULT_BIND_ADDRESS,
    limits: DaemonLimits | None = None,
    *,
    transfer: BlobTransfer | None = None,
    jwt: JwtConfig | None = None,
    clock: Clock = time.time,
    explorer: ExplorerConfig | None = None,
) -> AsyncIterator[RunningDaemon]:
    """Serve `mode` on `bind_address` (port 0 picks a free port) until the context exits."""
    host, port = parse_bind_address(bind_address)
    limits = limits or DaemonLimits()
    app = make_app(client, mode, limits, transfer=transfer, jwt=jwt, clock=clock, explorer=explorer)
    runner = GuardedAppRunner(
        app,
        limits.connections,
        access_log=_ACCESS_LOGGER,
        access_log_class=DaemonAccessLogger,
        handle_signals=False,
        shutdown_timeout=GRACEFUL_SHUTDOWN_S,
        lingering_time=LINGERING_TIME_S,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        url = f"http://{shown}:{bound_port}"
        log.info("daemon serving", url=url, mode=mode.value)
        yield RunningDaemon(url, mode)
    finally:
        await runner.cleanup()


async def run_daemon(
    config_path: Path | None,
    *,
    context: str | None,
    mode: DaemonMode,
    bind_address: str,
    limits: DaemonLimits,
    on_ready: Callable[[RunningDaemon], None],
    jwt: JwtConfig | None = None,
    explorer: ExplorerConfig | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT; `on_ready` is called once the daemon serves."""
    config = load_config(config_path)
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    try:
        # Started before its chain (everything restarting at once), the daemon waits for it,
        # answering 503 "waiting for the chain" on its address meanwhile.
        async with contextlib.AsyncExitStack() as stack:
            placeholder = contextlib.AsyncExitStack()
            await placeholder.enter_async_context(
                serve_unavailable(
                    *parse_bind_address(bind_address), f"the {mode.value} is waiting for its chain"
                )
            )
            try:
                client = await stack.enter_async_context(
                    # A store answers once certified; uploads to slower nodes finish after.
                    open_client(config, context=context, wait_for_chain=True, detach_tails=True)
                )
            finally:
                await placeholder.aclose()
            if mode.serves("publisher"):
                client.env.require_writer("the publisher")  # refuse to start without a wallet
                client.env.encoder.warm()  # the first store then starts at full speed
            else:
                blake2_batch.warm_in_background()  # reads hash every sliver they verify
            transfer = client.transfer_blob if client.address is not None else None
            if mode.serves("publisher") and jwt is None:
                log.warning(
                    "the publisher has no JWT authentication: whoever reaches it spends its wallet"
                )
            async with open_daemon(
                client, mode, bind_address, limits, transfer=transfer, jwt=jwt, explorer=explorer
            ) as running:
                on_ready(running)
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.Event().wait()  # until a signal cancels this task
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)

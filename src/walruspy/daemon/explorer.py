"""The explorer: a web page of the network and its blobs, served by the aggregator.

Theory of operation. One HTML page, one ES module and one style sheet (`explorer_static/` beside
this module, shipped in the package; no build step, nothing from a CDN). The page is served at `/`
(the network: epoch and the time to the next one, prices, the committee with each node's name, URL,
stake, shards, health and version, recent blobs, and an upload box) and at `/blobs/{blob_id}` (a
blob by blob ID, or by `0x` object ID: its status, size, certified and end epoch, owner, which
nodes hold it now, a download link and a preview); the script reads the path. It asks JSON
endpoints under `/explorer/api/`, computed here from the client library
(`walruspy.daemon.explorer_views`), each behind a short cache so that a page polling every few
seconds, or many pages, cost the chain and the nodes one computation per period. Health is polled
by the page every `HEALTH_POLL_S`: a killed node shows unhealthy within that plus
`explorer_views.HEALTH_TIMEOUT_S`.

The JSON endpoints count against the aggregator's admission limit, as reads (429 beyond it); a
computation in progress is shared by everyone asking meanwhile, and a failed one is not cached (the
next request tries again). The upload box is shown when the page has a publisher to send to: this
daemon when it also publishes, else `ExplorerConfig.publisher_url` (CORS is open on the publisher).
Blobs play and download from this aggregator's own `/v1/blobs/{blob_id}`, whose `Range` answers let
a `<video>` seek.

The pages are served in the modes that serve the aggregator; the static files in every mode
(the OpenAPI page, `walruspy.daemon.openapi_html`, links the style sheet).
"""

from __future__ import annotations

import asyncio
import collections
import importlib.resources
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from aiohttp import web

from walruspy.client import WalrusClient
from walruspy.core.errors import InvalidInputError
from walruspy.daemon import explorer_views
from walruspy.daemon.errors import DaemonApiError
from walruspy.logs import get_logger

__all__ = [
    "EXPLORER_API",
    "EXPLORER_PAGES",
    "EXPLORER_STATIC",
    "ExplorerConfig",
    "add_explorer_routes",
]

log = get_logger("walruspy.daemon.explorer")

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: How often the page asks for health (the JS reads it from the network answer).
HEALTH_POLL_S: Final = 2.0
#: Cache lifetimes: under the page's polling periods, so every poll sees fresh data, and
#: long enough that any number of open pages cost one computation per period.
NETWORK_TTL_S: Final = 2.0
HEALTH_TTL_S: Final = 1.0
BLOB_TTL_S: Final = 2.0
RECENT_TTL_S: Final = 2.0
#: A node's version changes only when it restarts.
VERSION_TTL_S: Final = 60.0
#: Blob views kept at once (each a few KiB); the oldest are dropped.
MAX_CACHED_BLOBS: Final = 256

#: The routes of the page (HTML) in the aggregator modes.
EXPLORER_PAGES: Final = ("/", "/blobs/{key}")
#: The JSON endpoints under `/explorer/api/`, with the page.
EXPLORER_API: Final = ("network", "health", "recent", "blobs/{key}")
#: The static files' route, in every mode.
EXPLORER_STATIC: Final = "/explorer/static/{name}"
_STATIC_TYPES: Final = {
    "explorer.js": "text/javascript",
    "explorer.css": "text/css",
    "index.html": "text/html",
}


@dataclass(frozen=True, slots=True)
class ExplorerConfig:
    """Whether the aggregator serves the explorer, and where its upload box sends blobs (None:
    this daemon if it publishes, else no upload box)."""

    enabled: bool = True
    publisher_url: str | None = None


class _Cached(Generic[T]):
    """One value computed at most once per `ttl_s`; concurrent askers share the computation."""

    def __init__(self, ttl_s: float, clock: Callable[[], float]) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = asyncio.Lock()
        self._value: T | None = None
        self._expires = 0.0

    async def get(self, load: Callable[[], Awaitable[T]]) -> T:
        async with self._lock:
            if self._value is None or self._clock() >= self._expires:
                self._value = await load()
                self._expires = self._clock() + self._ttl_s
            return self._value


def _static(name: str) -> bytes:
    return (
        importlib.resources.files("walruspy.daemon").joinpath("explorer_static", name).read_bytes()
    )


class Explorer:
    """The explorer's handlers over one client."""

    def __init__(
        self,
        client: WalrusClient,
        upload_url: str | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.upload_url = upload_url
        self._clock = clock
        self._network: _Cached[dict[str, Any]] = _Cached(NETWORK_TTL_S, clock)
        self._health: _Cached[list[dict[str, Any]]] = _Cached(HEALTH_TTL_S, clock)
        self._versions: _Cached[dict[bytes, str | None]] = _Cached(VERSION_TTL_S, clock)
        self._recent_cache: _Cached[list[dict[str, Any]]] = _Cached(RECENT_TTL_S, clock)
        self._recent: explorer_views.RecentBlobs | None = None  # made on first use
        self._blobs: collections.OrderedDict[str, _Cached[dict[str, Any]]] = (
            collections.OrderedDict()
        )

    async def page(self, request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=_static("index.html"),
            content_type="text/html",
            charset="utf-8",
            headers={"Cache-Control": "no-cache"},
        )

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        content_type = _STATIC_TYPES.get(name)
        if content_type is None or name == "index.html":
            raise DaemonApiError(404, "NOT_FOUND", f"no explorer file {name[:100]}")
        return web.Response(
            body=_static(name),
            content_type=content_type,
            charset="utf-8",
            headers={"Cache-Control": "no-cache"},
        )

    async def network(self, request: web.Request) -> web.StreamResponse:
        view = dict(await self._network.get(lambda: explorer_views.network_view(self.client)))
        view["upload"] = {"url": self.upload_url} if self.upload_url is not None else None
        view["healthPollS"] = HEALTH_POLL_S
        return web.json_response(view)

    async def _load_health(self) -> list[dict[str, Any]]:
        committee = await self.client.env.chain.committee()
        versions = await self._versions.get(
            lambda: explorer_views.versions_view(self.client, committee)
        )
        return await explorer_views.health_view(self.client, committee, versions)

    async def health(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"nodes": await self._health.get(self._load_health)})

    async def recent(self, request: web.Request) -> web.StreamResponse:
        if self._recent is None:
            self._recent = explorer_views.RecentBlobs(self.client.env.chain)
        return web.json_response({"blobs": await self._recent_cache.get(self._recent.refresh)})

    async def blob(self, request: web.Request) -> web.StreamResponse:
        key = request.match_info["key"]
        cached = self._blobs.get(key)
        if cached is None:
            cached = self._blobs[key] = _Cached(BLOB_TTL_S, self._clock)
            while len(self._blobs) > MAX_CACHED_BLOBS:
                self._blobs.popitem(last=False)
        self._blobs.move_to_end(key)
        try:
            view = await cached.get(lambda: explorer_views.blob_view(self.client, key))
        except InvalidInputError as exc:
            raise DaemonApiError(400, "INVALID_BLOB_ID", str(exc)[:300]) from None
        except LookupError as exc:
            raise DaemonApiError(404, "BLOB_NOT_FOUND", str(exc)[:300]) from None
        return web.json_response(view)


def add_explorer_routes(
    app: web.Application,
    client: WalrusClient,
    *,
    pages: bool,
    upload_url: str | None,
    wrap: Callable[[Handler], Handler],
    wrap_api: Callable[[Handler], Handler],
) -> None:
    """Add the static files, and with `pages` the page and its JSON endpoints, to `app`.

    `wrap` renders the handlers' `DaemonApiError`s as the daemon's other routes do; `wrap_api`
    does that too, behind the aggregator's admission limit, for the JSON endpoints.
    """
    explorer = Explorer(client, upload_url)
    app.router.add_get(EXPLORER_STATIC, wrap(explorer.static))
    if not pages:
        return
    for template in EXPLORER_PAGES:
        app.router.add_get(template, wrap(explorer.page))
    handlers = (explorer.network, explorer.health, explorer.recent, explorer.blob)
    for name, handler in zip(EXPLORER_API, handlers, strict=True):
        app.router.add_get(f"/explorer/api/{name}", wrap_api(handler))

"""The daemon's Prometheus metrics and access log: one account of every finished request.

Theory of operation (spec/walrus-system.md 3.8 and 4.3; Walrus serves the daemon's metrics on
`--metrics-address`, we serve them at `/metrics` beside the API). aiohttp calls the access logger
once a response is finished (its body written, or cut short), so `DaemonAccessLogger.log` is
where the status, the body bytes actually sent and the duration are all known: it counts the
request in `DaemonMetrics` and writes one structured log line (event "request": method, path,
route, status, bytes, duration_ms). `open_daemon` installs it; the metrics live in a registry of
their own per application, as the node's do, so several daemons in one process (tests) keep
separate figures.

Route labels are the route templates (`/v1/blobs/{blob_id}`), never raw paths, so a scan of
random URLs cannot grow the label set: unmatched paths are counted as "unmatched".
"""

from __future__ import annotations

from typing import Final

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from walruspy.logs import get_logger

__all__ = ["BODY_BYTES_KEY", "METRICS_KEY", "DaemonAccessLogger", "DaemonMetrics", "body_bytes"]

NAMESPACE: Final = "walrus"
#: The media type of `render()`.
METRICS_CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
#: Request durations: from a 304 (sub-millisecond) to a large streamed blob (minutes).
DURATION_BUCKETS_S: Final = (0.005, 0.025, 0.1, 0.25, 1.0, 2.5, 10.0, 60.0, 300.0)
#: The label of requests that matched no route.
UNMATCHED: Final = "unmatched"
#: Most characters of a path written to the access log.
MAX_LOGGED_PATH: Final = 200

log = get_logger("walruspy.daemon.access")


class DaemonMetrics:
    """Requests by route, method and status; body bytes sent by route; durations by route."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "daemon_requests",
            "Requests answered, by route template, method and HTTP status",
            ("route", "method", "status"),
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.bytes_served = Counter(
            "daemon_response_body_bytes",
            "Bytes of response bodies sent, by route template",
            ("route",),
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.duration = Histogram(
            "daemon_request_duration_seconds",
            "Time from a request's headers to the end of its answer, by route template",
            ("route",),
            namespace=NAMESPACE,
            registry=self.registry,
            buckets=DURATION_BUCKETS_S,
        )

    def observe(
        self, route: str, method: str, status: int, body_bytes: int, duration_s: float
    ) -> None:
        """Count one finished request."""
        self.requests.labels(route, method, str(status)).inc()
        self.bytes_served.labels(route).inc(body_bytes)
        self.duration.labels(route).observe(duration_s)

    def render(self) -> bytes:
        """The metrics in Prometheus's text format."""
        return generate_latest(self.registry)


#: Where an application keeps its `DaemonMetrics`.
METRICS_KEY: Final = web.AppKey("daemon_metrics", DaemonMetrics)
#: Where a handler that streams notes the body bytes it sent (all of them, or fewer when the
#: stream was cut short): aiohttp's `body_length` counts the headers too.
BODY_BYTES_KEY: Final = web.RequestKey("daemon_body_bytes", int)


def body_bytes(request: web.BaseRequest, response: web.StreamResponse) -> int:
    """The bytes of `response`'s body that were sent."""
    if request.method == "HEAD" or response.status in {204, 304}:
        return 0
    if isinstance(request, web.Request) and BODY_BYTES_KEY in request:
        return request[BODY_BYTES_KEY]
    declared = response.headers.get("Content-Length", "")
    return int(declared) if declared.isdecimal() else response.body_length


def route_of(request: web.BaseRequest) -> str:
    """The template of the route `request` matched, or `UNMATCHED`."""
    match_info = getattr(request, "match_info", None)
    route = getattr(match_info, "route", None)
    resource = getattr(route, "resource", None)
    return resource.canonical if resource is not None else UNMATCHED


class DaemonAccessLogger(AbstractAccessLogger):
    """Counts each finished request in its application's metrics and logs one line for it."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        """Called by aiohttp once `response` is finished; `time` is its duration in seconds."""
        route = route_of(request)
        sent = body_bytes(request, response)
        metrics = request.app.get(METRICS_KEY) if isinstance(request, web.Request) else None
        if metrics is not None:
            metrics.observe(route, request.method, response.status, sent, time)
        log.info(
            "request",
            method=request.method,
            path=request.path[:MAX_LOGGED_PATH],
            route=route,
            status=response.status,
            bytes=sent,
            duration_ms=round(time * 1000, 3),
        )

    @property
    def enabled(self) -> bool:
        """Always: the metrics count every request, whatever the log level."""
        return True

"""Walrus's publisher and aggregator: an HTTP API over `walruspy.client` (spec 4.3).

`make_app(client, mode)` builds the aiohttp application of a `DaemonMode` (publisher,
aggregator or both), `open_daemon(...)` serves it on an address, and `run_daemon(...)` is what
the `walruspy publisher|aggregator|daemon` commands run. Limits are in `DaemonLimits` (with the
publisher's per-client `QuotaLimits`), its JWT authentication in `JwtConfig`; the
OpenAPI document is `openapi.yaml` in this package, served at `/v1/api`; the explorer, a web page
of the network and its blobs, is `ExplorerConfig` (`walruspy.daemon.explorer`).
"""

from walruspy.daemon.app import (
    DEFAULT_BIND_ADDRESS,
    READY_PREFIX,
    ROUTES,
    DaemonMode,
    DaemonRoute,
    RunningDaemon,
    make_app,
    open_daemon,
    openapi_document,
    run_daemon,
)
from walruspy.daemon.auth import JwtConfig
from walruspy.daemon.errors import DaemonApiError
from walruspy.daemon.explorer import ExplorerConfig
from walruspy.daemon.limits import DaemonLimits
from walruspy.daemon.quotas import QuotaLimits

__all__ = [
    "DEFAULT_BIND_ADDRESS",
    "READY_PREFIX",
    "ROUTES",
    "DaemonApiError",
    "DaemonLimits",
    "DaemonMode",
    "DaemonRoute",
    "ExplorerConfig",
    "JwtConfig",
    "QuotaLimits",
    "RunningDaemon",
    "make_app",
    "open_daemon",
    "openapi_document",
    "run_daemon",
]

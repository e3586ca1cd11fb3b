"""Answering "not yet" while a server waits for its chain: every route 503, health included.

Theory of operation (spec/walrus-system.md 3.1 health, 5 fault handling). After a full crash
everything restarts at once, and a storage node or a daemon may come up before its chain. They
do not exit: they wait for the chain with backoff (`walruspy.chain.evm.open_evm_chain_when_up`).
Meanwhile `serve_unavailable` holds their REST address and answers every request with
`503 UNAVAILABLE` in the AIP-193 body the node's API uses for errors, a `Retry-After` header,
and a message naming what it waits for, so a monitor polling `/v1/health` sees "unhealthy,
waiting for the chain" rather than a refused connection, and clients retry as they do on any
503. The context exits when the chain answers; the real server then binds the same address.
If the address cannot be bound (another process holds it), the wait goes on without the
placeholder and the real server reports the conflict when it starts.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator
from typing import Final

from aiohttp import web

from walruspy.logs import get_logger
from walruspy.node_api.errors import UnavailableError

__all__ = ["serve_unavailable"]

log = get_logger("walruspy.waiting")

#: Seconds a client is asked to wait before it retries: the first pauses of the chain wait are
#: about this long, so a retry soon after the chain answers finds the real server.
RETRY_AFTER_S: Final = 1


@contextlib.asynccontextmanager
async def serve_unavailable(
    host: str, port: int, reason: str, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[str | None]:
    """Answer every request on `host:port` with 503 and `reason` until the context exits
    (over TLS with `ssl_context`, as the server that follows will speak).

    Yields the URL served, or None if the address could not be bound.
    """
    body = UnavailableError(reason).to_body()

    async def unavailable(request: web.Request) -> web.Response:
        del request
        response = web.json_response(body, status=503, headers={"Retry-After": str(RETRY_AFTER_S)})
        # No keep-alive: a client's next request must reach the real server once it listens,
        # not this one on a connection that outlives it (as a TLS connection can).
        response.force_close()
        return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", unavailable)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.1)
    await runner.setup()
    try:
        try:
            site = web.TCPSite(runner, host, port, reuse_address=True, ssl_context=ssl_context)
            await site.start()
        except OSError as exc:
            log.warning(
                "cannot hold the address while waiting", host=host, port=port, error=str(exc)
            )
            yield None
            return
        bound_host, bound_port = runner.addresses[0][:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        url = f"{'https' if ssl_context else 'http'}://{shown}:{bound_port}"
        log.info("answering 503 while waiting", url=url, reason=reason)
        yield url
    finally:
        await runner.cleanup()

"""`walruspy publisher|aggregator|daemon`: Walrus's HTTP publisher and aggregator (spec 4.3).

Each command loads the client configuration (`--config FILE`, else the default locations, as the
client commands), opens a client for `--context`, serves Walrus's routes on `--bind-address`
(default 127.0.0.1:31415; port 0 picks a free one) until SIGTERM or SIGINT, and prints exactly
one line once it serves: `walruspy daemon listening on http://HOST:PORT mode=MODE`, or under
`--json` one JSON object `{"url", "mode"}`. Logs go to stderr (JSON lines under `--json`). The
publisher's wallet is the context's `wallet_key_path`; the aggregator needs none.

Every command also takes the limits on slow and greedy clients (`--request-header-timeout`,
`--request-body-min-rate`, `--request-body-rate-window`, `--idle-connection-timeout`,
`--max-connections-per-address`, `--limit-loopback`); their defaults are
`walruspy.daemon.limits.DAEMON_CONNECTION_LIMITS`, explained in
`walruspy.node_api.connection_guard.ConnectionLimits`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from walruspy.cli.output import json_option

if TYPE_CHECKING:
    from walruspy.node_api.connection_guard import ConnectionLimits

__all__ = ["DAEMON_COMMANDS"]


def _options(command: Callable[..., Any], *, publisher: bool, aggregator: bool) -> Any:
    """The options of one mode: its limits, the address, the configuration and `--json`."""
    command = json_option(command)
    if aggregator:
        command = click.option(
            "--aggregator-max-buffer-size",
            type=click.IntRange(0),
            default=320,
            show_default=True,
            help="Reads waiting for a slot before more are refused with 429.",
        )(command)
        command = click.option(
            "--aggregator-max-concurrent-requests",
            type=click.IntRange(1),
            default=256,
            show_default=True,
            help="Reads handled at once.",
        )(command)
    if publisher:
        command = click.option(
            "--publisher-max-buffer-size",
            type=click.IntRange(0),
            default=8,
            show_default=True,
            help="Stores waiting for a slot before more are refused with 429.",
        )(command)
        command = click.option(
            "--publisher-max-concurrent-requests",
            type=click.IntRange(1),
            default=8,
            show_default=True,
            help="Stores handled at once.",
        )(command)
        command = click.option(
            "--max-body-size",
            "max_body_kib",
            type=click.IntRange(1),
            default=10_240,
            show_default=True,
            help="Largest PUT body, in KiB (larger ones get 413).",
        )(command)
        command = click.option(
            "--max-quilt-body-size",
            "max_quilt_body_kib",
            type=click.IntRange(1),
            default=102_400,
            show_default=True,
            help="Largest PUT /v1/quilts body, in KiB (larger ones get 413).",
        )(command)
    command = _connection_options(command)
    command = click.option(
        "--context", "context", default=None, help="Context of the configuration to use."
    )(command)
    command = click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Client configuration file (default: the usual locations).",
    )(command)
    return click.option(
        "--bind-address",
        default="127.0.0.1:31415",
        show_default=True,
        help="HOST:PORT to listen on (port 0 picks a free one).",
    )(command)


def _connection_options(command: Callable[..., Any]) -> Any:
    """The guard against slow and greedy clients (defaults: `DAEMON_CONNECTION_LIMITS`)."""
    command = click.option(
        "--request-header-timeout",
        "header_timeout_s",
        type=click.FloatRange(0.01, 3600),
        default=20.0,
        show_default=True,
        help="Seconds a request's line and headers may take (then 408 and closed).",
    )(command)
    command = click.option(
        "--request-body-min-rate",
        "min_body_bytes_per_s",
        type=click.IntRange(0),
        default=1024,
        show_default=True,
        help="Slowest request body accepted, in bytes/s per window (slower ones get 408).",
    )(command)
    command = click.option(
        "--request-body-rate-window",
        "body_rate_window_s",
        type=click.FloatRange(0.01, 3600),
        default=10.0,
        show_default=True,
        help="Seconds over which a body's rate is measured (the first is a grace period).",
    )(command)
    command = click.option(
        "--idle-connection-timeout",
        "idle_timeout_s",
        type=click.FloatRange(0.01, 86_400),
        default=75.0,
        show_default=True,
        help="Seconds before an idle keep-alive connection is closed.",
    )(command)
    command = click.option(
        "--max-connections-per-address",
        type=click.IntRange(1),
        default=64,
        show_default=True,
        help="Connections one address (IPv6: one /64) may hold; more are refused with 429.",
    )(command)
    return click.option(
        "--limit-loopback/--no-limit-loopback",
        default=False,
        show_default=True,
        help="Cap connections from loopback addresses too (everything local on a devnet).",
    )(command)


def _connection_limits(options: dict[str, Any]) -> ConnectionLimits:
    from walruspy.node_api.connection_guard import ConnectionLimits

    return ConnectionLimits(
        header_timeout_s=options["header_timeout_s"],
        body_rate_window_s=options["body_rate_window_s"],
        min_body_bytes_per_s=options["min_body_bytes_per_s"],
        idle_timeout_s=options["idle_timeout_s"],
        max_connections_per_address=options["max_connections_per_address"],
        limit_loopback=options["limit_loopback"],
    )


def _serve(mode_name: str, options: dict[str, Any]) -> None:
    from walruspy.daemon import DaemonLimits, DaemonMode, RunningDaemon, run_daemon
    from walruspy.daemon.app import READY_PREFIX, parse_bind_address
    from walruspy.logs import configure_logging

    as_json = bool(options["as_json"])
    try:
        parse_bind_address(options["bind_address"])
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--bind-address") from None
    defaults = DaemonLimits()
    limits = DaemonLimits(
        max_body_bytes=options.get("max_body_kib", defaults.max_body_bytes >> 10) << 10,
        max_quilt_body_bytes=options.get("max_quilt_body_kib", defaults.max_quilt_body_bytes >> 10)
        << 10,
        publisher_max_concurrent_requests=options.get(
            "publisher_max_concurrent_requests", defaults.publisher_max_concurrent_requests
        ),
        publisher_max_buffer_size=options.get(
            "publisher_max_buffer_size", defaults.publisher_max_buffer_size
        ),
        aggregator_max_concurrent_requests=options.get(
            "aggregator_max_concurrent_requests", defaults.aggregator_max_concurrent_requests
        ),
        aggregator_max_buffer_size=options.get(
            "aggregator_max_buffer_size", defaults.aggregator_max_buffer_size
        ),
        connections=_connection_limits(options),
    )

    def ready(running: RunningDaemon) -> None:
        if as_json:
            click.echo(json.dumps({"url": running.url, "mode": running.mode.value}))
        else:
            click.echo(f"{READY_PREFIX}{running.url} mode={running.mode.value}")

    configure_logging(as_json)
    asyncio.run(
        run_daemon(
            options["config_path"],
            context=options["context"],
            mode=DaemonMode(mode_name),
            bind_address=options["bind_address"],
            limits=limits,
            on_ready=ready,
        )
    )


@click.command("publisher")
def _publisher(**options: Any) -> None:
    """Serve Walrus's publisher API (PUT /v1/blobs) until stopped."""
    _serve("publisher", options)


@click.command("aggregator")
def _aggregator(**options: Any) -> None:
    """Serve Walrus's aggregator API (GET /v1/blobs/...) until stopped."""
    _serve("aggregator", options)


@click.command("daemon")
def _daemon(**options: Any) -> None:
    """Serve both the publisher and the aggregator API until stopped."""
    _serve("daemon", options)


publisher_command = _options(_publisher, publisher=True, aggregator=False)
aggregator_command = _options(_aggregator, publisher=False, aggregator=True)
daemon_command = _options(_daemon, publisher=True, aggregator=True)

#: The commands `walruspy.cli.main` registers.
DAEMON_COMMANDS = (publisher_command, aggregator_command, daemon_command)

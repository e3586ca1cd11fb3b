"""`walruspy publisher|aggregator|daemon|explorer`: Walrus's HTTP publisher and aggregator (spec
4.3), and the explorer.

Each command loads the client configuration (`--config FILE`, else the default locations, as the
client commands), opens a client for `--context`, serves Walrus's routes on `--bind-address`
(default 127.0.0.1:31415; port 0 picks a free one) until SIGTERM or SIGINT, and prints exactly
one line once it serves: `walruspy daemon listening on http://HOST:PORT mode=MODE`, or under
`--json` one JSON object `{"url", "mode"}`. Logs go to stderr (JSON lines under `--json`). The
publisher's wallet is the context's `wallet_key_path`; the aggregator needs none.

The aggregator and the daemon serve the explorer, a web page of the network and its blobs, at
`/` (`walruspy.daemon.explorer`); `--no-explorer` turns it off. `walruspy explorer` is an
aggregator for it: it takes the aggregator's options and `--publisher-url URL`, a publisher its
upload box sends blobs to (without it the page has no upload box).

Every command also takes the limits on slow and greedy clients (`--request-header-timeout`,
`--request-body-min-rate`, `--request-body-rate-window`, `--idle-connection-timeout`,
`--max-connections-per-address`, `--limit-loopback`); their defaults are
`walruspy.daemon.limits.DAEMON_CONNECTION_LIMITS`, explained in
`walruspy.node_api.connection_guard.ConnectionLimits`.

The publisher's access control (`publisher` and `daemon`), off by default: without it whoever
reaches the publisher stores blobs paid from its wallet. Walrus's JWT options
(`walruspy.daemon.auth`): `--jwt-decode-secret` (0x-hex, else the text's bytes), `--jwt-algorithm`
(HS256), `--jwt-expiring-sec` (0: exp - iat not checked), `--jwt-verify-upload`,
`--jwt-cache-size` (10000) and `--jwt-cache-refresh-interval` (5s); any of the first, the third
or the fourth turns it on. Per-client quotas (`walruspy.daemon.quotas`):
`--publisher-requests-per-minute` and `--publisher-bytes-per-minute` (0: off), answered 429 with
`Retry-After`. A bad secret, key or algorithm stops the command before it serves.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from walruspy.cli.output import json_option

if TYPE_CHECKING:
    from walruspy.daemon.auth import JwtConfig
    from walruspy.daemon.quotas import QuotaLimits
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
        command = _access_options(command)
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


def _access_options(command: Callable[..., Any]) -> Any:
    """The publisher's JWT authentication (Walrus's options) and per-client quotas."""
    options: list[tuple[tuple[str, ...], dict[str, Any]]] = [
        (
            ("--jwt-decode-secret",),
            {
                "default": None,
                "help": "Require a JWT signed with this secret (HS*: 0x-hex or text; other "
                "algorithms: the public key as 0x-hex). Off by default: anyone who reaches the "
                "publisher spends its wallet.",
            },
        ),
        (
            ("--jwt-algorithm",),
            {
                "default": "HS256",
                "show_default": True,
                "help": "HS256, HS384, HS512, EdDSA, ES256, ES384, RS256, RS384, RS512, PS256, "
                "PS384 or PS512.",
            },
        ),
        (
            ("--jwt-expiring-sec",),
            {
                "type": click.IntRange(0),
                "default": 0,
                "show_default": True,
                "help": "If above 0, every JWT needs iat and exp - iat equal to this.",
            },
        ),
        (
            ("--jwt-verify-upload",),
            {
                "is_flag": True,
                "default": False,
                "help": "Check uploads against the JWT's claims (epochs, max_epochs, size, "
                "max_size, send_object_to).",
            },
        ),
        (
            ("--jwt-cache-size",),
            {
                "type": click.IntRange(1),
                "default": 10_000,
                "show_default": True,
                "help": "Used JWT IDs (jti) remembered until they expire (replay suppression).",
            },
        ),
        (
            ("--jwt-cache-refresh-interval",),
            {
                "default": "5s",
                "show_default": True,
                "help": "Interval between sweeps of expired JWT IDs (e.g. 5s, 500ms, 1m).",
            },
        ),
        (
            ("--publisher-requests-per-minute",),
            {
                "type": click.IntRange(0),
                "default": 0,
                "show_default": True,
                "help": "Uploads per client address per minute, then 429 (0: no quota).",
            },
        ),
        (
            ("--publisher-bytes-per-minute",),
            {
                "type": click.IntRange(0),
                "default": 0,
                "show_default": True,
                "help": "Upload body bytes per client address per minute, then 429 (0: no quota).",
            },
        ),
    ]
    for names, settings in options:
        command = click.option(*names, **settings)(command)
    return command


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _duration_s(text: str) -> float:
    """`5s`, `500ms`, `1m`, `1h` or plain seconds; BadParameter otherwise."""
    match = _DURATION.match(text)
    seconds = float(match[1]) * _UNIT_S[match[2] or "s"] if match else 0.0
    if not seconds > 0:
        raise click.BadParameter(
            f"{text!r} is not a positive duration such as 5s, 500ms or 1m",
            param_hint="--jwt-cache-refresh-interval",
        )
    return seconds


def _jwt_config(options: dict[str, Any]) -> JwtConfig | None:
    """Walrus's `generate_auth_config`: on with a secret, an expiry or upload checks."""
    from walruspy.daemon.auth import JWT_ALGORITHMS, JwtConfig, parse_secret

    secret = options.get("jwt_decode_secret")
    algorithm = options.get("jwt_algorithm", "HS256")
    if algorithm not in JWT_ALGORITHMS:
        raise click.BadParameter(
            f"unsupported algorithm {algorithm!r}: one of {', '.join(JWT_ALGORITHMS)}",
            param_hint="--jwt-algorithm",
        )
    expiring_sec = options.get("jwt_expiring_sec", 0)
    verify_upload = bool(options.get("jwt_verify_upload", False))
    if secret is None and expiring_sec == 0 and not verify_upload:
        return None
    try:
        return JwtConfig(
            key=parse_secret(secret) if secret is not None else None,
            algorithm=algorithm,
            expiring_sec=expiring_sec,
            verify_upload=verify_upload,
            cache_size=options["jwt_cache_size"],
            cache_refresh_interval_s=_duration_s(options["jwt_cache_refresh_interval"]),
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--jwt-decode-secret") from None


def _quota_limits(options: dict[str, Any]) -> QuotaLimits:
    from walruspy.daemon.quotas import QuotaLimits

    return QuotaLimits(
        requests_per_minute=options.get("publisher_requests_per_minute") or None,
        bytes_per_minute=options.get("publisher_bytes_per_minute") or None,
    )


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
        help="Cap connections (and the publisher's quotas) from loopback addresses too "
        "(everything local on a devnet).",
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
    from walruspy.daemon import DaemonLimits, DaemonMode, ExplorerConfig, RunningDaemon, run_daemon
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
        quotas=_quota_limits(options),
    )
    jwt = _jwt_config(options)

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
            jwt=jwt,
            explorer=ExplorerConfig(
                enabled=options.get("explorer", True),
                publisher_url=(options.get("publisher_url") or "").rstrip("/") or None,
            ),
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


@click.command("explorer")
@click.option(
    "--publisher-url",
    default=None,
    help="A publisher (http://HOST:PORT) the page's upload box stores blobs through "
    "(default: no upload box).",
)
def _explorer(**options: Any) -> None:
    """Serve the explorer (a web page of the network and its blobs) with an aggregator."""
    _serve("aggregator", options)


_no_explorer = click.option(
    "--explorer/--no-explorer",
    default=True,
    show_default=True,
    help="Serve the explorer web page at /.",
)
publisher_command = _options(_publisher, publisher=True, aggregator=False)
aggregator_command = _options(_no_explorer(_aggregator), publisher=False, aggregator=True)
daemon_command = _options(_no_explorer(_daemon), publisher=True, aggregator=True)
explorer_command = _options(_explorer, publisher=False, aggregator=True)

#: The commands `walruspy.cli.main` registers.
DAEMON_COMMANDS = (publisher_command, aggregator_command, daemon_command, explorer_command)

"""Rendering results for people or as JSON: every command builds a dict and hands it here.

Also what every command shares at the edge: library logs go to stderr at warning level
(`quiet_library_logs`); amounts of WAL are printed in FROST with their WAL value (`frost_text`),
as Walrus's CLI does; errors are one line on stderr, or under `--json` one JSON object on stdout
with `error` and `kind` (`emit_error`); epochs are shown with the time they start
(`epoch_time_text`); an interrupted command exits with status 130 (`CommandInterrupted`).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from typing import Any, Final

import click

JSON_META_KEY = "walruspy.json"
#: FROST in one WAL (WAL has 9 decimals).
FROST_PER_WAL: Final = 10**9
#: The status of a command stopped by Ctrl-C (SIGINT): 128 + 2, as shells report it.
INTERRUPTED_EXIT_CODE: Final = 130


class CommandInterrupted(Exception):  # noqa: N818 - a stop, not a failure
    """Ctrl-C stopped a command; `message` (one line) says what it leaves behind.

    `details` are extra fields of the JSON error object under `--json`.
    """

    def __init__(self, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = dict(details or {})


def _remember_json(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    # ctx.meta is shared by the whole context chain, so the top-level error handler sees it.
    # A group's --json (`info --json committee`) also holds for its subcommand.
    ctx.meta[JSON_META_KEY] = value or bool(ctx.meta.get(JSON_META_KEY))
    return value


#: The `--json` option every command takes.
json_option = click.option(
    "--json",
    "as_json",
    is_flag=True,
    is_eager=True,
    callback=_remember_json,
    help="Print one JSON object instead of text.",
)


def emit(result: Mapping[str, Any], *, as_json: bool, lines: list[str]) -> None:
    """Print `result` as one JSON object, or the human-readable `lines`."""
    if as_json:
        click.echo(json.dumps(result, sort_keys=False))
    else:
        for line in lines:
            click.echo(line)


#: Where a wallet that cannot pay gets what it lacks.
FUNDING_HINT: Final = (
    "get gas and WAL with `walruspy get-wal` on a devnet, or from the network's faucet"
)


def error_text(exc: BaseException) -> str:
    """The one line an error prints: its message; a file error's reason and file; for a wallet
    that cannot pay (which account, what it lacks: the error says), where to get funds."""
    from walruspy.chain.api import InsufficientGasError
    from walruspy.client.errors import InsufficientWalError

    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    if isinstance(exc, InsufficientGasError | InsufficientWalError):
        return f"{exc}; {FUNDING_HINT}"
    return str(exc)


def emit_error(
    message: str,
    kind: str,
    *,
    as_json: bool,
    details: Mapping[str, Any] | None = None,
    text_prefix: str = "Error: ",
) -> None:
    """An error: `Error: message` on stderr, or `{"error", "kind", ...details}` on stdout."""
    if as_json:
        click.echo(json.dumps({"error": message, "kind": kind, **(details or {})}))
    else:
        click.echo(f"{text_prefix}{message}", err=True)


def duration_text(seconds: float) -> str:
    """A duration for people, to the two largest units: "2 d 3 h", "5 min 2 s", "40 s"."""
    remaining = round(abs(seconds))
    parts: list[str] = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60), ("s", 1)):
        count, remaining = divmod(remaining, size)
        if count or (unit == "s" and not parts):
            parts.append(f"{count} {unit}")
    return " ".join(parts[:2])


def utc_text(timestamp_s: float) -> str:
    """A timestamp as RFC 3339 UTC to the second, as Walrus prints times: 2025-01-02T03:04:05Z."""
    from datetime import UTC, datetime

    moment = datetime.fromtimestamp(int(timestamp_s), UTC)
    return moment.isoformat().replace("+00:00", "Z")


def epoch_time_text(at_s: int, now_s: int) -> str:
    """When an epoch starts, for people: "2025-01-02T03:04:05Z, in 2 d 3 h" (or "... ago")."""
    delta = at_s - now_s
    relative = f"in {duration_text(delta)}" if delta >= 0 else f"{duration_text(delta)} ago"
    return f"{utc_text(at_s)}, {relative}"


def wal_text(frost: int) -> str:
    """An amount of FROST as WAL in decimal, exactly: 1500000000 -> "1.5"."""
    sign = "-" if frost < 0 else ""
    whole, fraction = divmod(abs(frost), FROST_PER_WAL)
    text = f"{whole}.{fraction:09d}".rstrip("0").rstrip(".")
    return sign + text


def frost_text(frost: int) -> str:
    """An amount for people: "1500000000 FROST (1.5 WAL)"."""
    return f"{frost} FROST ({wal_text(frost)} WAL)"


class _Stderr:
    """Whatever `sys.stderr` is when a log line is written (tests swap it per command)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def quiet_library_logs() -> None:
    """Library logs to stderr, warnings and worse: stdout carries only the command's output."""
    import structlog

    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(_Stderr()),  # type: ignore[arg-type]
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
    )

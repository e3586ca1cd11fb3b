"""Rendering results for people or as JSON: every command builds a dict and hands it here.

Also the two things every command shares at the edge: library logs go to stderr at warning
level (`quiet_library_logs`), and amounts of WAL are printed in FROST with their WAL value
(`frost_text`), as Walrus's CLI does.
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

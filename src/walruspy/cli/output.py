"""Rendering results for people or as JSON: every command builds a dict and hands it here."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import click

JSON_META_KEY = "walruspy.json"


def _remember_json(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    # ctx.meta is shared by the whole context chain, so the top-level error handler sees it.
    ctx.meta[JSON_META_KEY] = value
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

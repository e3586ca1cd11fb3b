"""Blob attributes with Walrus's command names: get-, set-, remove-blob-attribute(-fields).

Theory of operation (spec/walrus-system.md 1.2 and 4.1; Walrus `CliCommands::GetBlobAttribute`
and the three after it in `cli/args.rs`, `BlobAttribute` in `walrus-sui` `move_structs.rs`). A
blob object's attribute is an ordered list of unique keys with string values, kept by
Attributes.vy (`walruspy.chain.contracts`): anyone reads it, only the object's owner changes it.

- `get-blob-attribute OBJECT_ID`: the pairs, or that there are none. JSON is Walrus's
  `{"attribute": {"metadata": {"contents": [{"key", "value"}]}}}`, or `{"attribute": null}`.
- `set-blob-attribute OBJECT_ID --attr KEY VALUE [--attr KEY VALUE ...]`: insert or update; an
  updated key moves to the end (Walrus's `VecMap`).
- `remove-blob-attribute-fields OBJECT_ID --keys KEY...`: every key must be there, or nothing
  is removed and the error names the missing ones.
- `remove-blob-attribute OBJECT_ID`: the whole attribute, which must exist.

The commands that change an attribute print the attribute afterwards (JSON: `{"objectId",
"attribute"}`, where Walrus prints nothing), so a script sees what the chain now holds. The
aggregator serves the allowed keys of a blob's attribute as response headers on
`/v1/blobs/by-object-id/{id}` (`walruspy.daemon.aggregator`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from walruspy.cli.client_cmds import _parse_object_id, client_options, run_client
from walruspy.cli.options import MultiValueCommand
from walruspy.cli.output import emit
from walruspy.node_api.paths import format_object_id

if TYPE_CHECKING:
    from walruspy.client import WalrusClient

__all__ = ["ATTRIBUTE_COMMANDS", "attribute_json"]


def attribute_json(pairs: Sequence[tuple[str, str]] | None) -> dict[str, Any] | None:
    """Walrus's `BlobAttribute` JSON (a Move `VecMap`), or None for no attribute."""
    if pairs is None:
        return None
    return {"metadata": {"contents": [{"key": key, "value": value} for key, value in pairs]}}


def _lines(object_id: bytes, pairs: Sequence[tuple[str, str]] | None) -> list[str]:
    name = format_object_id(object_id)
    if pairs is None:
        return [f"Blob object {name} has no attribute."]
    return [f"Attribute of blob object {name} ({len(pairs)} pairs):"] + [
        f"  {key}: {value}" for key, value in pairs
    ]


def _change(
    object_id: bytes,
    change: Callable[[WalrusClient], Awaitable[None]],
    what: str,
    *,
    config_path: Path | None,
    context: str | None,
    as_json: bool,
) -> None:
    """Run `change(client)`, then print the attribute the chain holds afterwards."""

    async def operation(client: WalrusClient) -> Sequence[tuple[str, str]] | None:
        await change(client)
        return await client.get_blob_attribute(object_id)

    pairs = run_client(config_path, context, operation)
    body = {"objectId": format_object_id(object_id), "attribute": attribute_json(pairs)}
    emit(body, as_json=as_json, lines=[f"Success: {what}.", *_lines(object_id, pairs)])


_object_argument = click.argument("object_id", callback=_parse_object_id, metavar="OBJECT_ID")


@click.command("get-blob-attribute")
@_object_argument
@client_options
def get_blob_attribute_command(
    object_id: bytes, config_path: Path | None, context: str | None, as_json: bool
) -> None:
    """The attribute of a blob object: its key-value pairs (not the blob's data)."""

    async def operation(client: WalrusClient) -> Sequence[tuple[str, str]] | None:
        return await client.get_blob_attribute(object_id)

    pairs = run_client(config_path, context, operation)
    emit({"attribute": attribute_json(pairs)}, as_json=as_json, lines=_lines(object_id, pairs))


@click.command("set-blob-attribute")
@_object_argument
@click.option(
    "--attr",
    "attributes",
    nargs=2,
    multiple=True,
    required=True,
    metavar="KEY VALUE",
    help="A key-value pair to set; repeat the flag for more.",
)
@client_options
def set_blob_attribute_command(
    object_id: bytes,
    attributes: tuple[tuple[str, str], ...],
    config_path: Path | None,
    context: str | None,
    as_json: bool,
) -> None:
    """Set key-value pairs of a blob object's attribute (the object must be this account's)."""

    async def change(client: WalrusClient) -> None:
        await client.set_blob_attribute(object_id, list(attributes))

    _change(
        object_id,
        change,
        "attribute set",
        config_path=config_path,
        context=context,
        as_json=as_json,
    )


@click.command("remove-blob-attribute-fields", cls=MultiValueCommand)
@_object_argument
@click.option(
    "--keys",
    "keys",
    multiple=True,
    required=True,
    help="The keys to remove (one or more after the flag); each must be there.",
)
@client_options
def remove_blob_attribute_fields_command(
    object_id: bytes,
    keys: tuple[str, ...],
    config_path: Path | None,
    context: str | None,
    as_json: bool,
) -> None:
    """Remove key-value pairs from a blob object's attribute."""

    async def change(client: WalrusClient) -> None:
        await client.remove_blob_attribute_fields(object_id, keys)

    _change(
        object_id,
        change,
        "attribute pairs removed",
        config_path=config_path,
        context=context,
        as_json=as_json,
    )


@click.command("remove-blob-attribute")
@_object_argument
@client_options
def remove_blob_attribute_command(
    object_id: bytes, config_path: Path | None, context: str | None, as_json: bool
) -> None:
    """Remove a blob object's whole attribute."""

    async def change(client: WalrusClient) -> None:
        await client.remove_blob_attribute(object_id)

    _change(
        object_id,
        change,
        "attribute removed",
        config_path=config_path,
        context=context,
        as_json=as_json,
    )


ATTRIBUTE_COMMANDS = (
    get_blob_attribute_command,
    set_blob_attribute_command,
    remove_blob_attribute_fields_command,
    remove_blob_attribute_command,
)

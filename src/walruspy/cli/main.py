"""Entry point of the `walruspy` command, with its one top-level error handler.

Every command takes `--json`. Errors that walruspy raises on purpose (`WalrusError`) are printed
as one line naming what was wrong (or a JSON object with `error` under `--json`) and exit with
status 1; usage errors exit with click's status 2. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from walruspy.cli.chain_cmd import chain
from walruspy.cli.client_cmds import CLIENT_COMMANDS, info_challenges_command, info_command
from walruspy.cli.daemon_cmd import DAEMON_COMMANDS
from walruspy.cli.devnet_cmd import devnet
from walruspy.cli.node_cmd import node
from walruspy.cli.output import JSON_META_KEY, emit, json_option
from walruspy.cli.staking_cmds import STAKING_COMMANDS, info_committee_command
from walruspy.core.blob_id import BlobId
from walruspy.core.errors import WalrusError


class _Group(click.Group):
    """A click group that turns our errors into one clear line."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (WalrusError, OSError) as exc:
            as_json = bool(ctx.meta.get(JSON_META_KEY))
            message = (
                str(exc) if isinstance(exc, WalrusError) else f"{exc.strerror}: {exc.filename}"
            )
            if as_json:
                click.echo(json.dumps({"error": message, "kind": type(exc).__name__}))
            else:
                click.echo(f"Error: {message}", err=True)
            ctx.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="walruspy")
def cli() -> None:
    """walruspy: store and read blobs on a Walrus network."""


@cli.command("blob-id")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--n-shards", type=int, required=True, help="Number of shards of the committee.")
@json_option
def blob_id_command(file: Path, n_shards: int, as_json: bool) -> None:
    """Compute the blob ID of FILE locally by encoding it (nothing is sent anywhere)."""
    from walruspy.workers import encode

    data = file.read_bytes()
    encoded = encode(data, n_shards)
    params = encoded.metadata.params
    # Walrus's `BlobIdOutput` keys (camelCase, as every other command), then ours.
    result = {
        "blobId": str(encoded.metadata.blob_id),
        "file": str(file),
        "unencodedLength": len(data),
        "symbolSize": encoded.metadata.symbol_size,
        "encodedLength": params.encoded_length(len(data)),
        "nShards": n_shards,
    }
    emit(
        result,
        as_json=as_json,
        lines=[
            f"Blob ID: {result['blobId']}",
            f"Unencoded length: {len(data)} bytes",
            f"Symbol size: {result['symbolSize']} bytes",
            f"Encoded length: {result['encodedLength']} bytes ({n_shards} shards)",
        ],
    )


@cli.command("convert-blob-id")
@click.argument("value")
@json_option
def convert_blob_id_command(value: str, as_json: bool) -> None:
    """Convert a blob ID between its decimal u256 (on-chain, little-endian) and text forms."""
    from walruspy.core.errors import BlobIdError

    if value.isdigit():
        blob_id = BlobId.from_u256_le(int(value))
    else:
        try:
            blob_id = BlobId.parse(value)
        except BlobIdError:
            raise BlobIdError(
                f"{value[:60]!r} is neither a decimal u256 nor a 43-character blob ID"
            ) from None
    result = {"blobId": str(blob_id), "u256": str(blob_id.as_u256_le()), "hex": blob_id.hex()}
    emit(
        result,
        as_json=as_json,
        lines=[
            f"Blob ID: {result['blobId']}",
            f"Decimal u256: {result['u256']}",
            f"Hex: {result['hex']}",
        ],
    )


cli.add_command(chain)
cli.add_command(node)
cli.add_command(devnet)
for _command in (*CLIENT_COMMANDS, *STAKING_COMMANDS, *DAEMON_COMMANDS):
    cli.add_command(_command)
info_command.add_command(info_committee_command)
info_command.add_command(info_challenges_command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="walruspy")


if __name__ == "__main__":
    main()

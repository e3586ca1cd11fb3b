"""Entry point of the `walruspy` command, with its one top-level error handler.

Every command takes `--json`. Errors that walruspy raises on purpose (`WalrusError`) are printed
as one line naming what was wrong (or a JSON object with `error` under `--json`) and exit with
status 1; usage errors exit with click's status 2, and when `--json` is on the command line they
too are a JSON object on stdout (`{"error", "kind", "usage"}`), whatever the command. Ctrl-C
prints one line (a command may say what it left behind, `CommandInterrupted`) and exits with
status 130, as shells expect of SIGINT. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from walruspy.cli.attribute_cmds import ATTRIBUTE_COMMANDS
from walruspy.cli.chain_cmd import chain
from walruspy.cli.client_cmds import (
    CLIENT_COMMANDS,
    client_options,
    info_challenges_command,
    info_command,
    run_client,
)
from walruspy.cli.daemon_cmd import DAEMON_COMMANDS
from walruspy.cli.devnet_cmd import devnet
from walruspy.cli.health_cmd import health_command
from walruspy.cli.node_cmd import node
from walruspy.cli.output import (
    INTERRUPTED_EXIT_CODE,
    JSON_META_KEY,
    CommandInterrupted,
    emit,
    emit_error,
    error_text,
    json_option,
    quiet_library_logs,
)
from walruspy.cli.quilt_cmds import QUILT_COMMANDS
from walruspy.cli.staking_cmds import STAKING_COMMANDS, info_committee_command
from walruspy.cli.store_cmd import store_command
from walruspy.cli.wallet_cmds import WALLET_COMMANDS
from walruspy.core.blob_id import BlobId
from walruspy.core.errors import WalrusError

if TYPE_CHECKING:
    from walruspy.client import WalrusClient


class _Group(click.Group):
    """A click group that turns our errors into one clear line."""

    def invoke(self, ctx: click.Context) -> object:
        import structlog

        # The library never configures logging (walruspy.logs): the command line does, logs on
        # stderr at warning level, unless its host did already (`node run` sets its own later).
        if not structlog.is_configured():
            quiet_library_logs()
        try:
            return super().invoke(ctx)
        except (WalrusError, OSError) as exc:
            as_json = bool(ctx.meta.get(JSON_META_KEY))
            emit_error(error_text(exc), type(exc).__name__, as_json=as_json)
            ctx.exit(1)
        except CommandInterrupted as exc:
            as_json = bool(ctx.meta.get(JSON_META_KEY))
            emit_error(
                exc.message, "Interrupted", as_json=as_json, details=exc.details, text_prefix=""
            )
            ctx.exit(INTERRUPTED_EXIT_CODE)
        except KeyboardInterrupt:
            as_json = bool(ctx.meta.get(JSON_META_KEY))
            emit_error("Interrupted.", "Interrupted", as_json=as_json, text_prefix="")
            ctx.exit(INTERRUPTED_EXIT_CODE)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """click's main, but under `--json` usage errors are a JSON object too (module doc)."""
        argv = list(sys.argv[1:] if args is None else args)
        if not standalone_mode or not _wants_json(argv):
            return super().main(argv, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(argv, prog_name, complete_var, False, **extra)
        except click.ClickException as exc:
            usage = exc.ctx.get_usage() if isinstance(exc, click.UsageError) and exc.ctx else None
            emit_error(
                exc.format_message(),
                type(exc).__name__,
                as_json=True,
                details={"usage": usage} if usage else None,
            )
            sys.exit(exc.exit_code)
        except click.Abort:
            emit_error("aborted", "Aborted", as_json=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def _wants_json(argv: Sequence[str]) -> bool:
    """Whether `--json` is among the options (before a `--` that ends them)."""
    for arg in argv:
        if arg == "--":
            return False
        if arg == "--json":
            return True
    return False


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="walruspy")
def cli() -> None:
    """walruspy: store and read blobs on a Walrus network."""


@cli.command("blob-id")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--n-shards",
    type=click.IntRange(1, 65535),
    help="Number of shards of the committee (read from the chain if not given).",
)
@client_options
def blob_id_command(
    file: Path, n_shards: int | None, config_path: Path | None, context: str | None, as_json: bool
) -> None:
    """Compute the blob ID of FILE locally by encoding it (nothing is sent anywhere)."""
    from walruspy.workers import EncoderPool

    if n_shards is None:

        async def committee_size(client: WalrusClient) -> int:
            return (await client.env.chain.committee()).n_shards

        n_shards = run_client(config_path, context, committee_size)
    data = file.read_bytes()
    with EncoderPool(fork=True) as pool:  # no event loop runs now: a forked worker is ready at once
        encoded = pool.encode(data, n_shards)
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
for _command in (
    store_command,
    health_command,
    *CLIENT_COMMANDS,
    *STAKING_COMMANDS,
    *DAEMON_COMMANDS,
    *WALLET_COMMANDS,
    *QUILT_COMMANDS,
    *ATTRIBUTE_COMMANDS,
):
    cli.add_command(_command)
info_command.add_command(info_committee_command)
info_command.add_command(info_challenges_command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="walruspy")


if __name__ == "__main__":
    main()

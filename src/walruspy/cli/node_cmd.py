"""`walruspy node`: create a storage node's keys and run the node (spec/walrus-system.md 3.10).

`node keygen --out DIR` writes `protocol.key` (BLS12-381) and `wallet.key` (secp256k1) with mode
0600, refusing to overwrite, and prints the public halves to put in the committee file; with
`--deployer ADDRESS` also the protocol key's proof of possession for the account that will deploy
the committee (the committee file's `proof_of_possession`; the contract checks it).
`node pop --protocol-key FILE --deployer ADDRESS` prints that proof for an existing key.
`node run --config FILE` validates the configuration (`node_config_example.yaml` documents every
field), connects to the chain named by its deployment file and serves until SIGTERM or SIGINT;
its structured logs go to stderr, as JSON lines with `--json`.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import click
import structlog

from walruspy.cli.output import emit, json_option

__all__ = ["configure_logging", "node"]


def configure_logging(as_json: bool, level: int = logging.INFO) -> None:
    """Send structlog's records to stderr, for people or as JSON lines."""
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


@click.group("node")
def node() -> None:
    """Run a storage node and manage its keys."""


def _check_address(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    from eth_utils.address import is_address, to_checksum_address

    if value is None:
        return None
    if not is_address(value):
        raise click.BadParameter(f"{value!r} is not an EVM address")
    return str(to_checksum_address(value))


deployer_option = click.option(
    "--deployer",
    default=None,
    callback=_check_address,
    help="Also print the protocol key's proof of possession for this deployer (EVM address).",
)


@node.command("keygen")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory for protocol.key and wallet.key (created if missing).",
)
@deployer_option
@json_option
def keygen_command(out_dir: Path, deployer: str | None, as_json: bool) -> None:
    """Create the node's BLS protocol key and EVM wallet key (never overwrites)."""
    from walruspy.node.keys import keygen

    keys = keygen(out_dir, deployer)
    result = {
        "protocol_key_path": str(keys.protocol_key_path),
        "wallet_key_path": str(keys.wallet_key_path),
        "protocol_public_key": keys.protocol_public_key_hex,
        "wallet_address": keys.wallet_address,
    }
    lines = [
        f"Protocol key: {keys.protocol_key_path}",
        f"  public key (BLS12-381, 48 bytes): {keys.protocol_public_key_hex}",
    ]
    if keys.proof_of_possession_hex is not None:
        result["proof_of_possession"] = keys.proof_of_possession_hex
        lines.append(
            f"  proof of possession for deployer {deployer} (96 bytes): "
            f"{keys.proof_of_possession_hex}"
        )
    lines += [f"Wallet key: {keys.wallet_key_path}", f"  address: {keys.wallet_address}"]
    emit(result, as_json=as_json, lines=lines)


@node.command("pop")
@click.option(
    "--protocol-key",
    "protocol_key_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The node's protocol.key.",
)
@click.option(
    "--deployer",
    required=True,
    callback=_check_address,
    help="EVM address of the account that will deploy the committee.",
)
@json_option
def pop_command(protocol_key_path: Path, deployer: str, as_json: bool) -> None:
    """Print the protocol key's proof of possession for the committee file."""
    from walruspy.node.keys import load_protocol_key, proof_of_possession_hex

    key = load_protocol_key(protocol_key_path)
    pop = proof_of_possession_hex(key, deployer)
    public_key = key.public_key().to_bytes().hex()
    emit(
        {"protocol_public_key": public_key, "deployer": deployer, "proof_of_possession": pop},
        as_json=as_json,
        lines=[
            f"public key (BLS12-381, 48 bytes): {public_key}",
            f"proof of possession for deployer {deployer} (96 bytes): {pop}",
        ],
    )


@node.command("run")
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The node's YAML configuration (see node_config_example.yaml).",
)
@json_option
def run_command(config_path: Path, as_json: bool) -> None:
    """Run a storage node until SIGTERM or SIGINT."""
    from walruspy.node.config import load_config
    from walruspy.node.node import run_from_config

    load_config(config_path)  # a bad file fails here, before any logging or connection
    configure_logging(as_json)
    asyncio.run(run_from_config(config_path))

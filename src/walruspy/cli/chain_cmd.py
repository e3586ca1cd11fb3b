"""`walruspy chain`: run the embedded devchain and deploy the contracts to any JSON-RPC node.

`chain serve` runs the durable development chain (walruspy.chain.devchain) until SIGTERM or
SIGINT and prints exactly one line when it accepts requests,
`devchain listening on http://HOST:PORT chain_id=ID` (`--port 0` picks a free port; the line
names it). That line is a protocol scripts wait on, so `serve` has no `--json` form.
`--dev-methods` enables the test methods (evm_increaseTime, evm_mine, evm_snapshot, evm_revert),
which devnets and tests use and a chain that nodes rely on must not offer (the module doc of
walruspy.chain.devchain says why); `--call-gas-cap` and `--call-timeout` bound eth_call and
eth_estimateGas (walruspy.chain.devchain_calls).

`chain deploy` deploys WAL, the committee and System (walruspy.chain.deploy, spec
walrus-system.md 2.1-2.2) and writes the deployment file the other commands read. The committee
file lists the members (see `load_committee_file`), each with the proof of possession of its BLS
key for the deployer's address (`walruspy node keygen --deployer ADDRESS` or `walruspy node pop`
print it); every proof is checked before the first transaction. The deployer key comes from a
file holding its hex, from an environment variable (`env:NAME`), or is one of the devchain's
prefunded dev accounts (`devchain:N`, for local devnets only: those keys are public).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import click

from walruspy.cli.output import emit, json_option

if TYPE_CHECKING:
    from walruspy.chain.deploy import Deployment

__all__ = ["chain", "parse_duration_s", "parse_size_bytes", "read_private_key"]

_DURATION_UNITS: Final = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_SIZE_UNITS: Final = {
    "": 1,
    "b": 1,
    "kib": 1 << 10,
    "mib": 1 << 20,
    "gib": 1 << 30,
    "tib": 1 << 40,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
}
# The devchain's prefunded accounts (walruspy.chain.devchain_state.DEFAULT_ACCOUNT_COUNT).
_MAX_DEV_ACCOUNTS: Final = 10
# walruspy.chain.devchain_calls's defaults and bound, repeated so that the CLI starts without
# importing py-evm (a test checks they agree).
_DEFAULT_CALL_GAS_CAP: Final = 30_000_000
_DEFAULT_CALL_TIMEOUT_S: Final = 30.0
_MAX_CALL_TIMEOUT_S: Final = 3600.0


def parse_duration_s(text: str) -> int:
    """Seconds of a duration written `90`, `90s`, `5m`, `2h` or `1d`."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text.lower())
    if match is None:
        raise ValueError(f"{text!r} is not a duration such as 90s, 5m, 2h or 1d")
    return int(match.group(1)) * _DURATION_UNITS[match.group(2)]


def parse_size_bytes(text: str) -> int:
    """Bytes of a size written `1048576`, `512MiB`, `1TiB` or `2GB`."""
    match = re.fullmatch(r"\s*(\d+)\s*([kmgt]?i?b?)\s*", text.lower())
    if match is None or match.group(2) not in _SIZE_UNITS:
        raise ValueError(f"{text!r} is not a size such as 1048576, 512MiB or 1TiB")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2)]


def read_private_key(source: str) -> bytes:
    """A 32-byte secp256k1 private key from `env:NAME`, `devchain:N` or a file of hex."""
    if source.startswith("env:"):
        name = source[4:]
        text = os.environ.get(name)
        if text is None:
            raise ValueError(f"environment variable {name} is not set")
    elif source.startswith("devchain:"):
        from walruspy.chain.devchain import dev_account_keys

        index = source[len("devchain:") :]
        if not index.isdigit() or int(index) >= _MAX_DEV_ACCOUNTS:
            raise ValueError(f"devchain:N takes N from 0 to {_MAX_DEV_ACCOUNTS - 1}")
        return dev_account_keys(int(index) + 1)[int(index)]
    else:
        try:
            text = Path(source).read_text()
        except OSError as exc:
            raise ValueError(f"cannot read the key file {source}: {exc.strerror}") from exc
    try:
        key = bytes.fromhex(text.strip().removeprefix("0x"))
    except ValueError:
        raise ValueError(f"the key from {source} is not hex") from None
    if len(key) != 32:
        raise ValueError(f"the key from {source} has {len(key)} bytes, not 32")
    return key


def _converter(parse: Callable[[str], int]) -> Callable[[click.Context, click.Parameter, str], int]:
    """A click callback applying `parse`, its ValueError becoming a usage error."""

    def convert(_ctx: click.Context, _param: click.Parameter, value: str) -> int:
        try:
            return parse(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None

    return convert


@click.group("chain")
def chain() -> None:
    """The control plane: run the embedded devchain, deploy the contracts."""


@chain.command("serve")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8545,
    show_default=True,
    help="TCP port; 0 picks a free one (named in the ready line).",
)
@click.option(
    "--state",
    "state_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory holding the chain (created if missing; survives restarts).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--dev-methods",
    is_flag=True,
    help="Enable the test methods: evm_increaseTime (moves the chain clock: epochs end early,"
    " blobs expire and are garbage-collected), evm_mine (an empty block, optionally at a given"
    " time), evm_snapshot and evm_revert (rewinds transactions nodes already acted on). For"
    " tests and devnets only.",
)
@click.option(
    "--call-gas-cap",
    type=click.IntRange(21_000, 2**63 - 1),
    default=_DEFAULT_CALL_GAS_CAP,
    show_default=True,
    help="Gas of eth_call and eth_estimateGas: a call asking for more (or none) gets this.",
)
@click.option(
    "--call-timeout",
    "call_timeout_s",
    type=click.FloatRange(0, _MAX_CALL_TIMEOUT_S, min_open=True),
    default=_DEFAULT_CALL_TIMEOUT_S,
    show_default=True,
    help="Seconds an eth_call or eth_estimateGas may run before it is aborted with an error.",
)
def serve_command(
    *,
    port: int,
    state_dir: Path,
    host: str,
    dev_methods: bool,
    call_gas_cap: int,
    call_timeout_s: float,
) -> None:
    """Run the embedded development chain (py-evm, Prague) over JSON-RPC until stopped."""
    from walruspy.chain.devchain import run_devchain_server

    run_devchain_server(
        port,
        state_dir,
        host,
        dev_methods=dev_methods,
        call_gas_cap=call_gas_cap,
        call_timeout_s=call_timeout_s,
    )


def _deploy_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options both deployments take: where, from which key, to which file, epochs, WAL."""
    for option in reversed(
        (
            click.option("--rpc", "rpc_url", required=True, help="JSON-RPC URL of the chain."),
            click.option(
                "--key",
                "key_source",
                required=True,
                help="Deployer key: a file of hex, env:NAME, or devchain:N (dev accounts).",
            ),
            click.option(
                "--out",
                "out_file",
                required=True,
                type=click.Path(dir_okay=False, path_type=Path),
                help="Where to write the deployment file.",
            ),
            click.option(
                "--epoch-duration",
                "epoch_duration_s",
                default="1h",
                show_default=True,
                callback=_converter(parse_duration_s),
                help="Epoch length: 90s, 5m, 2h, 1d.",
            ),
            click.option(
                "--max-epochs-ahead",
                type=click.IntRange(1, 1000),
                default=53,
                show_default=True,
                help="How many epochs ahead storage can be bought (Walrus: 53).",
            ),
            click.option(
                "--wal-supply",
                type=click.IntRange(1),
                default=10**18,
                show_default=True,
                help="FROST of WAL minted to the deployer (10^9 FROST = 1 WAL).",
            ),
            json_option,
        )
    ):
        command = option(command)
    return command


@chain.command("deploy")
@_deploy_options
@click.option(
    "--committee",
    "committee_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Committee file (JSON): members, their keys, proofs of possession, addresses, shards.",
)
@click.option(
    "--n-shards",
    type=click.IntRange(1, 1000),
    default=None,
    help="Shards to deal to members that list none (default: the file's n_shards).",
)
@click.option(
    "--shard-assignment",
    type=click.Choice(["contiguous", "round-robin"]),
    default="contiguous",
    show_default=True,
    help="How to deal shards to members that list none.",
)
@click.option(
    "--capacity",
    "capacity_bytes",
    default="1TiB",
    show_default=True,
    callback=_converter(parse_size_bytes),
    help="Encoded bytes that may be stored per epoch.",
)
@click.option(
    "--storage-price",
    type=click.IntRange(0),
    default=100_000,
    show_default=True,
    help="FROST per MiB of encoded size per epoch (Walrus Mainnet's example).",
)
@click.option(
    "--write-price",
    type=click.IntRange(0),
    default=20_000,
    show_default=True,
    help="FROST per MiB of encoded size, once at registration.",
)
def deploy_command(
    *,
    rpc_url: str,
    key_source: str,
    committee_file: Path,
    out_file: Path,
    n_shards: int | None,
    shard_assignment: str,
    epoch_duration_s: int,
    max_epochs_ahead: int,
    capacity_bytes: int,
    storage_price: int,
    write_price: int,
    wal_supply: int,
    as_json: bool,
) -> None:
    """Deploy WAL, the committee and System to a chain; write the deployment file."""
    from eth_account import Account

    from walruspy.chain.deploy import DeployParams, ShardAssignment, deploy, load_committee_file

    try:
        key = read_private_key(key_source)
        deployer = str(Account.from_key(key).address)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--key") from None
    assignment: ShardAssignment = (
        "round-robin" if shard_assignment == "round-robin" else "contiguous"
    )
    members, shards, pops = load_committee_file(committee_file, n_shards, assignment, deployer)
    try:
        params = DeployParams(
            members=members,
            proofs_of_possession=pops,
            n_shards=shards,
            epoch_duration_s=epoch_duration_s,
            max_epochs_ahead=max_epochs_ahead,
            total_capacity_size=capacity_bytes,
            storage_price_per_unit_size=storage_price,
            write_price_per_unit_size=write_price,
            wal_supply=wal_supply,
        )
    except ValueError as exc:
        raise click.UsageError(f"{committee_file}: {exc}") from None
    deployment = asyncio.run(deploy(rpc_url, key, params))
    _save_and_report(
        deployment,
        out_file,
        as_json,
        [
            f"Deployed on chain {deployment.chain_id} from {deployment.deployer}",
            f"System:    {deployment.system}",
            f"WAL:       {deployment.wal}",
            f"Committee: {deployment.committee} ({len(members)} members, {shards} shards)",
            f"Events start at block {deployment.start_block}",
        ],
    )


def _save_and_report(
    deployment: Deployment, out_file: Path, as_json: bool, lines: list[str]
) -> None:
    """Write the deployment file and print the deployment (its JSON, or `lines`)."""
    deployment.save(out_file)
    result = {**deployment.to_json(), "deployment_file": str(out_file)}
    emit(result, as_json=as_json, lines=[*lines, f"Deployment file: {out_file}"])


@chain.command("deploy-staking")
@_deploy_options
@click.option("--n-shards", type=click.IntRange(1, 1000), default=1000, show_default=True)
@click.option(
    "--epoch-zero-duration",
    "epoch_zero_duration_s",
    default="0s",
    show_default=True,
    callback=_converter(parse_duration_s),
    help="How long epoch 0 (registration and staking, no committee) lasts at least.",
)
def deploy_staking_command(
    *,
    rpc_url: str,
    key_source: str,
    out_file: Path,
    n_shards: int,
    epoch_duration_s: int,
    epoch_zero_duration_s: int,
    max_epochs_ahead: int,
    wal_supply: int,
    as_json: bool,
) -> None:
    """Deploy the contracts with staking: the committee is elected (write the deployment file).

    Epoch 0 has no committee: nodes register (`walruspy node register`), stakers stake
    (`walruspy stake`), and the first epoch change selects the committee of epoch 1.
    """
    from walruspy.chain.deploy_staking import StakingParams, deploy_staking

    try:
        key = read_private_key(key_source)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--key") from None
    try:
        params = StakingParams(
            n_shards=n_shards,
            epoch_duration_s=epoch_duration_s,
            epoch_zero_duration_s=epoch_zero_duration_s,
            max_epochs_ahead=max_epochs_ahead,
            wal_supply=wal_supply,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    deployment = asyncio.run(deploy_staking(rpc_url, key, params))
    _save_and_report(
        deployment,
        out_file,
        as_json,
        [
            f"Deployed with staking on chain {deployment.chain_id} from {deployment.deployer}",
            f"System:  {deployment.system}",
            f"WAL:     {deployment.wal}",
            f"Staking: {deployment.staking}",
            f"Pools:   {deployment.pools}",
            f"Epoch 0 until nodes register and are staked; events start at block"
            f" {deployment.start_block}",
        ],
    )

"""`walruspy node`: create a storage node's keys and run the node (spec/walrus-system.md 3.10).

`node keygen --out DIR` writes `protocol.key` (BLS12-381) and `wallet.key` (secp256k1) with mode
0600, refusing to overwrite, and prints the public halves to put in the committee file; with
`--deployer ADDRESS` also the protocol key's proof of possession for the account that will deploy
the committee (the committee file's `proof_of_possession`; the contract checks it).
`node pop --protocol-key FILE --deployer ADDRESS` prints that proof for an existing key.
`node setup --dir DIR --chain-rpc URL --system ADDRESS --public-address HOST:PORT` prepares a
node for an existing staking network, as Walrus's `walrus-node setup`: new keys, the deployment
read from the chain (`walruspy.chain.discover`), and a `node_config.yaml` with paths relative to
DIR; it refuses to overwrite an existing setup and prints the next steps.
`node run --config FILE` validates the configuration (`node_config_example.yaml` documents every
field), connects to the chain named by its deployment file and serves until SIGTERM or SIGINT;
its structured logs go to stderr, as JSON lines with `--json`. A damaged store (a truncated data
file) is refused in one line; `--rebuild-store` moves it aside instead (it is kept) and starts
empty, recovering the node's data from its peers.

On a staking deployment (spec/walrus-system.md 2.3-2.6; Walrus `walrus-node register` and
`walrus node-admin`) the node's wallet manages the node on chain:
`node register --config FILE` registers the node as a candidate, named as in the configuration,
at the network address clients use (the host and port of `public_url`, which defaults to the REST
API's), with its protocol key's proof of possession for the wallet and the chain's current epoch
and its first votes and commission rate; the wallet receives the node's StorageNodeCap and its
commission. A wallet registers one node: a second registration is refused. `node set-votes`
changes the price and capacity votes and the commission rate (effective two epochs later), and
`node collect-commission` collects the pool's commission; both act through the one
StorageNodeCap the wallet holds. A fixed-committee deployment has nothing to register with and
is refused before any connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import urlsplit

import click

from walruspy.cli.output import emit, frost_text, json_option, quiet_library_logs, wal_text
from walruspy.core.errors import InvalidInputError
from walruspy.logs import configure_logging

if TYPE_CHECKING:
    from walruspy.chain.evm_staking import EvmStaking
    from walruspy.node.config import NodeConfig

__all__ = ["node"]

T = TypeVar("T")
#: Walrus's defaults for `walrus-node setup`: votes in FROST per MiB (per epoch for storage)
#: and the commission rate in basis points.
DEFAULT_STORAGE_PRICE: Final = 100_000
DEFAULT_WRITE_PRICE: Final = 20_000
DEFAULT_COMMISSION_RATE_BP: Final = 6000
#: Walrus asks for the capacity; 1 TiB is what `deploy_staking` starts the system with.
DEFAULT_NODE_CAPACITY: Final = 1 << 40
#: Staking.vy's bounds: a commission rate in basis points, votes as u64, name and address.
MAX_COMMISSION_RATE_BP: Final = 10_000
MAX_VOTE: Final = (1 << 64) - 1
MAX_NAME_BYTES: Final = 100
MAX_NETWORK_ADDRESS_BYTES: Final = 259


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
        "network_key_path": str(keys.network_key_path),
        "network_public_key": keys.network_public_key_hex,
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
    lines += [
        f"Wallet key: {keys.wallet_key_path}",
        f"  address: {keys.wallet_address}",
        f"Network (TLS) key: {keys.network_key_path}",
        f"  public key (P-256, compressed): {keys.network_public_key_hex}",
    ]
    emit(result, as_json=as_json, lines=lines)


def _host_port(text: str, what: str) -> tuple[str, int]:
    """`host:port` (IPv6 in brackets) with a port in 1..65535, else a usage error naming `what`."""
    parts = urlsplit(f"//{text}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None or port == 0 or f"//{text}" != f"//{parts.netloc}":
        raise click.BadParameter(f"{what} must be HOST:PORT with a port in 1..65535, got {text!r}")
    return parts.hostname, port


@node.command("setup")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory for the keys, deployment.json, node_config.yaml and the store.",
)
@click.option("--chain-rpc", required=True, help="JSON-RPC URL of the network's chain.")
@click.option(
    "--system",
    "system_address",
    default=None,
    callback=_check_address,
    help="Address of the network's System contract (the rest is read from the chain).",
)
@click.option(
    "--deployment",
    "deployment_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The network's deployment file, instead of --system.",
)
@click.option(
    "--public-address",
    required=True,
    help="HOST:PORT where clients and other nodes will reach this node.",
)
@click.option(
    "--bind-address",
    default=None,
    help="HOST:PORT the REST API listens on [default: 0.0.0.0 and the public port].",
)
@click.option("--name", default=None, help="The node's name on chain [default: the host].")
@json_option
def setup_command(
    *,
    directory: Path,
    chain_rpc: str,
    system_address: str | None,
    deployment_path: Path | None,
    public_address: str,
    bind_address: str | None,
    name: str | None,
    as_json: bool,
) -> None:
    """Create keys and a configuration to run a node on an existing network (Walrus `setup`)."""
    import yaml

    from walruspy.chain.deploy import Deployment
    from walruspy.chain.discover import discover_deployment
    from walruspy.node.errors import ConfigError
    from walruspy.node.keys import keygen

    if (system_address is None) == (deployment_path is None):
        raise click.UsageError("give the network as exactly one of --system and --deployment")
    host, port = _host_port(public_address, "--public-address")
    if _unspecified(host):
        raise click.BadParameter(f"--public-address {public_address!r} names no reachable host")
    if bind_address is None:
        bind_address = f"0.0.0.0:{port}"
    _host_port(bind_address, "--bind-address")
    name = name if name is not None else host
    if len(name.encode()) > MAX_NAME_BYTES:
        raise click.BadParameter(f"--name must be at most {MAX_NAME_BYTES} bytes")
    config_path = directory / "node_config.yaml"
    if config_path.exists():
        raise ConfigError(f"{config_path} already exists; refusing to overwrite a node's setup")
    if system_address is not None:
        deployment = asyncio.run(discover_deployment(chain_rpc, system_address))
    else:
        assert deployment_path is not None
        deployment = Deployment.load(deployment_path)
    keys = keygen(directory / "keys")
    deployment_file = directory / "deployment.json"
    deployment.save(deployment_file)
    url_host = f"[{host}]" if ":" in host else host
    config = {
        "name": name,
        "storage_path": "./db",
        "rest_api_address": bind_address,
        "public_url": f"https://{url_host}:{port}",
        "protocol_key_path": "./keys/protocol.key",
        "wallet_key_path": "./keys/wallet.key",
        "network_key_path": "./keys/network.key",
        "chain": {"rpc_url": chain_rpc, "deployment_file": "./deployment.json"},
    }
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    result = {
        "configPath": str(config_path),
        "deploymentPath": str(deployment_file),
        "system": deployment.system,
        "chainId": deployment.chain_id,
        "name": name,
        "networkAddress": f"{url_host}:{port}",
        "protocolPublicKey": keys.protocol_public_key_hex,
        "networkPublicKey": keys.network_public_key_hex,
        "walletAddress": keys.wallet_address,
    }
    emit(
        result,
        as_json=as_json,
        lines=[
            f"Node configuration: {config_path}",
            f"  network: chain {deployment.chain_id}, System {deployment.system}",
            f"  name {name!r}, reached at {url_host}:{port}, listening on {bind_address}",
            f"  protocol public key: {keys.protocol_public_key_hex}",
            f"  wallet address: {keys.wallet_address}",
            "Next:",
            f"  1. fund the wallet {keys.wallet_address} with gas for its transactions",
            f"  2. walruspy node register --config {config_path}",
            "  3. have WAL staked with the node (walruspy stake --node-id NODE_ID --amount ...)",
            f"  4. walruspy node run --config {config_path}",
        ],
    )


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
@click.option(
    "--rebuild-store",
    is_flag=True,
    help="If the store is damaged, move it aside (it is kept) and recover from the peers.",
)
@json_option
def run_command(config_path: Path, rebuild_store: bool, as_json: bool) -> None:
    """Run a storage node until SIGTERM or SIGINT."""
    from walruspy.node.config import load_config
    from walruspy.node.node import run_from_config

    load_config(config_path)  # a bad file fails here, before any logging or connection
    configure_logging(as_json)
    asyncio.run(run_from_config(config_path, rebuild_store=rebuild_store))


# --- the node's wallet on a staking deployment ----------------------------------------------

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The node's YAML configuration (its wallet, keys, name and chain).",
)


def _check_range(name: str, value: int | None, high: int) -> None:
    if value is not None and not 0 <= value <= high:
        raise InvalidInputError(f"{name} must be in [0, {high}], got {value}")


def _check_votes(
    storage_price: int | None,
    write_price: int | None,
    node_capacity: int | None,
    commission_rate: int | None,
) -> None:
    _check_range("--storage-price", storage_price, MAX_VOTE)
    _check_range("--write-price", write_price, MAX_VOTE)
    _check_range("--node-capacity", node_capacity, MAX_VOTE)
    _check_range("--commission-rate (basis points)", commission_rate, MAX_COMMISSION_RATE_BP)


def _unspecified(host: str) -> bool:
    """Whether `host` is 0.0.0.0 or ::, which binds every interface but names none to dial."""
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False  # a DNS name


def network_address(config: NodeConfig) -> str:
    """Where clients reach the node: `host:port` of its public URL (or the URL itself)."""
    from walruspy.node.errors import ConfigError

    parts = urlsplit(config.public_url)
    if not parts.hostname or _unspecified(parts.hostname):
        raise ConfigError(
            f"public_url {config.public_url!r} names no host clients can reach: set public_url "
            "(or a specific host in rest_api_address)"
        )
    address = config.public_url
    if parts.scheme in ("http", "https") and parts.port is not None and parts.path in ("", "/"):
        address = parts.netloc
    if len(address.encode()) > MAX_NETWORK_ADDRESS_BYTES:
        raise ConfigError(f"public_url must be at most {MAX_NETWORK_ADDRESS_BYTES} bytes")
    return address


def node_network_key(config: NodeConfig) -> bytes:
    """The network public key to register: the node's TLS key, or none for plain HTTP."""
    from walruspy.node.errors import ConfigError
    from walruspy.node_api.tls import load_network_key, public_key_bytes

    if not config.serves_tls:
        return b""
    assert config.network_key_path is not None
    try:
        return public_key_bytes(load_network_key(config.network_key_path))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"network_key_path: {exc}") from exc


@contextlib.asynccontextmanager
async def _open_staking(config: NodeConfig) -> AsyncIterator[EvmStaking]:
    """The staking client of the node's chain, sending from the node's wallet."""
    from walruspy.chain.deploy import Deployment
    from walruspy.chain.evm import open_evm_chain
    from walruspy.node.errors import ConfigError
    from walruspy.node.keys import load_wallet_key

    deployment = Deployment.load(config.chain.deployment_file)
    if deployment.staking is None:
        raise ConfigError(
            f"chain.deployment_file {config.chain.deployment_file} is a fixed-committee "
            "deployment: it has no staking contracts to register with or vote in"
        )
    key = load_wallet_key(config.wallet_key_path)
    async with open_evm_chain(config.chain.rpc_url, deployment, key) as chain:
        assert chain.staking is not None  # the deployment names staking and pools
        yield chain.staking


def _with_staking(config: NodeConfig, operation: Callable[[EvmStaking], Awaitable[T]]) -> T:
    """Run one async operation on the node's staking client, library logs on stderr."""
    quiet_library_logs()

    async def main() -> T:
        async with _open_staking(config) as staking:
            return await operation(staking)

    return asyncio.run(main())


async def _own_cap(staking: EvmStaking) -> tuple[bytes, bytes]:
    """(cap ID, node ID) of the one StorageNodeCap the wallet holds."""
    from walruspy.node.errors import NodeError
    from walruspy.node_api.paths import format_object_id

    caps = await staking.node_caps(staking.address)
    if not caps:
        raise NodeError(
            f"the wallet {staking.address} holds no StorageNodeCap: register the node first "
            "(walruspy node register)"
        )
    if len(caps) > 1:
        nodes = ", ".join(format_object_id(node_id) for _, node_id in caps)
        raise NodeError(
            f"the wallet {staking.address} holds {len(caps)} StorageNodeCaps (nodes {nodes}); "
            "this command acts for one node"
        )
    return caps[0]


def _votes_json(storage_price: int, write_price: int, node_capacity: int) -> dict[str, int]:
    return {"storagePrice": storage_price, "writePrice": write_price, "nodeCapacity": node_capacity}


@node.command("register")
@config_option
@click.option(
    "--commission-rate",
    type=int,
    default=DEFAULT_COMMISSION_RATE_BP,
    show_default=True,
    help="Commission on the pool's rewards, in basis points (0 to 10000).",
)
@click.option(
    "--storage-price",
    type=int,
    default=DEFAULT_STORAGE_PRICE,
    show_default=True,
    help="Storage price vote, FROST per MiB and epoch.",
)
@click.option(
    "--write-price",
    type=int,
    default=DEFAULT_WRITE_PRICE,
    show_default=True,
    help="Write price vote, FROST per MiB.",
)
@click.option(
    "--node-capacity",
    type=int,
    default=DEFAULT_NODE_CAPACITY,
    show_default=True,
    help="Capacity vote, bytes.",
)
@json_option
def register_command(
    *,
    config_path: Path,
    commission_rate: int,
    storage_price: int,
    write_price: int,
    node_capacity: int,
    as_json: bool,
) -> None:
    """Register the node with the staking contracts, from its wallet (Walrus `register`)."""
    from walruspy.core.messages import sign_proof_of_possession_evm
    from walruspy.node.config import load_config
    from walruspy.node.errors import ConfigError, NodeError
    from walruspy.node.keys import load_protocol_key
    from walruspy.node_api.paths import format_object_id

    _check_votes(storage_price, write_price, node_capacity, commission_rate)
    config = load_config(config_path)
    if len(config.name.encode()) > MAX_NAME_BYTES:
        raise ConfigError(f"name must be at most {MAX_NAME_BYTES} bytes to register")
    address = network_address(config)
    protocol_key = load_protocol_key(config.protocol_key_path)
    network_key = node_network_key(config)

    async def register(staking: EvmStaking) -> tuple[bytes, bytes, int]:
        caps = await staking.node_caps(staking.address)
        if caps:
            raise NodeError(
                f"the wallet {staking.address} already holds the StorageNodeCap of node "
                f"{format_object_id(caps[0][1])}: a wallet registers one node"
            )
        epoch = (await staking.state()).epoch
        wallet = bytes.fromhex(staking.address.removeprefix("0x"))
        node_id, cap_id = await staking.register_candidate(
            name=config.name,
            network_address=address,
            public_key=protocol_key.public_key(),
            proof_of_possession=sign_proof_of_possession_evm(protocol_key, epoch, wallet),
            network_public_key=network_key,
            commission_rate=commission_rate,
            storage_price=storage_price,
            write_price=write_price,
            node_capacity=node_capacity,
        )
        return node_id, cap_id, epoch

    node_id, cap_id, epoch = _with_staking(config, register)
    result: dict[str, Any] = {
        "nodeId": format_object_id(node_id),
        "capId": format_object_id(cap_id),
        "name": config.name,
        "networkAddress": address,
        "epoch": epoch,
        "commissionRate": commission_rate,
        "votingParams": _votes_json(storage_price, write_price, node_capacity),
    }
    emit(
        result,
        as_json=as_json,
        lines=[
            "Successfully registered storage node:",
            f"      Capability object ID: {result['capId']}",
            f"      Node ID: {result['nodeId']}",
            f"      Name: {config.name}; network address: {address}; registered in epoch {epoch}",
        ],
    )


@node.command("set-votes")
@config_option
@click.option("--storage-price", type=int, default=None, help="FROST per MiB and epoch.")
@click.option("--write-price", type=int, default=None, help="FROST per MiB.")
@click.option("--node-capacity", type=int, default=None, help="Bytes.")
@click.option(
    "--commission-rate",
    type=int,
    default=None,
    help="Basis points (0 to 10000); applies from two epochs on.",
)
@json_option
def set_votes_command(
    *,
    config_path: Path,
    storage_price: int | None,
    write_price: int | None,
    node_capacity: int | None,
    commission_rate: int | None,
    as_json: bool,
) -> None:
    """Change the node's price and capacity votes and its commission rate."""
    from walruspy.node.config import load_config
    from walruspy.node_api.paths import format_object_id

    if (storage_price, write_price, node_capacity, commission_rate) == (None,) * 4:
        raise click.UsageError(
            "give at least one of --storage-price, --write-price, --node-capacity and "
            "--commission-rate"
        )
    _check_votes(storage_price, write_price, node_capacity, commission_rate)
    config = load_config(config_path)

    async def vote(staking: EvmStaking) -> tuple[bytes, bytes, dict[str, int]]:
        cap_id, node_id = await _own_cap(staking)
        await staking.set_votes(
            cap_id, storage_price=storage_price, write_price=write_price,
            node_capacity=node_capacity,
        )  # fmt: skip
        if commission_rate is not None:
            await staking.set_next_commission(cap_id, commission_rate)
        info = await staking.node_info(node_id)
        votes = _votes_json(info.storage_price, info.write_price, info.node_capacity)
        return node_id, cap_id, votes

    node_id, cap_id, votes = _with_staking(config, vote)
    result = {
        "nodeId": format_object_id(node_id),
        "capId": format_object_id(cap_id),
        "votingParams": votes,
        "nextCommissionRate": commission_rate,
    }
    lines = [
        f"Votes of node {result['nodeId']}: storage price {votes['storagePrice']} FROST per MiB "
        f"and epoch, write price {votes['writePrice']} FROST per MiB, node capacity "
        f"{votes['nodeCapacity']} bytes"
    ]
    if commission_rate is not None:
        lines.append(f"Commission rate {commission_rate} basis points from two epochs on")
    emit(result, as_json=as_json, lines=lines)


@node.command("collect-commission")
@config_option
@json_option
def collect_commission_command(config_path: Path, as_json: bool) -> None:
    """Collect the commission of the node's pool into its wallet."""
    from walruspy.node.config import load_config
    from walruspy.node_api.paths import format_object_id

    config = load_config(config_path)

    async def collect(staking: EvmStaking) -> tuple[bytes, int]:
        _, node_id = await _own_cap(staking)
        return node_id, await staking.collect_commission(node_id)

    node_id, amount = _with_staking(config, collect)
    node_text = format_object_id(node_id)
    emit(
        {"nodeId": node_text, "amount": amount, "amountWal": wal_text(amount)},
        as_json=as_json,
        lines=[f"Collected {frost_text(amount)} of commission for node {node_text}"],
    )

"""`walruspy devnet up|status|add-node|restart-node|fault|down|exec|add-host`: a whole local
network from the shell.

`up` starts the devchain, deploys the contracts, makes the nodes' keys and configurations,
starts every storage node and the daemon as detached processes, waits until each is ready,
writes `DIR/client_config.yaml` and `DIR/devnet.json`, prints the endpoints and returns, leaving
the network running (`walruspy.devnet.control`). On a stopped devnet (after `down`, or a crash
of the machine) `up` resumes it: the same chain state, node data, ports and configuration.
`status` reads the state file and says which processes run; `down` stops them all;
`restart-node` brings one node back on its data and port. `fault --node I --mode M` makes a
node misbehave (node/faults.py: it drops the slivers it acknowledged, to show storage challenges
catching it), and `status` shows each node's fault. Every process logs to `DIR/logs/NAME.log`.

`up --hosts` puts every process on a host of its own (a network namespace,
`walruspy.devnet.hosts`) with links shaped by `--latency`, `--jitter`, `--loss` and
`--bandwidth`; `exec` runs a command on one of those hosts (the client's by default) and
`add-host` adds an empty one, as an operator's new server.

`up --chain-rpc URL` runs the devnet on an Ethereum node that runs already (anvil, say) instead
of starting the devchain: nothing of the devnet then needs the devchain's extras. The account
that deploys and funds is `--chain-key`'s, since only the user knows which account holds ether
there; the devnet keeps it for its later commands. `down` leaves that chain running.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any, Final

import click
from click.core import ParameterSource

from walruspy.cli.chain_cmd import parse_duration_s, read_private_key
from walruspy.cli.output import emit, json_option
from walruspy.devnet.hosts import LinkShape, parse_bandwidth, parse_delay_s, parse_loss

__all__ = ["devnet"]

_DIR_OPTION = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("devnet"),
    show_default=True,
    help="The devnet's directory (state, keys, data, logs).",
)


def _duration(_ctx: click.Context, _param: click.Parameter, value: str) -> int:
    try:
        return parse_duration_s(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _parsed(parse: Any) -> Any:
    """A click callback applying `parse` (ValueError: a usage error naming the option)."""

    def callback(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Any:
        if value is None:
            return None
        try:
            return parse(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None

    return callback


def _format_duration(seconds: int) -> str:
    """`600` as `10m`, `5400` as `90m`, `90` as `90s`: the largest unit that divides it."""
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _endpoint_lines(status: dict[str, Any]) -> list[str]:
    epoch = _format_duration(status["epoch_duration_s"])
    lines = [
        f"Devnet in {status['dir']}",
        f"Chain RPC:      {status['chain_rpc']}"
        + (" (external)" if status["chain"].get("external") else ""),
        f"Publisher:      {status['publisher']}",
        f"Aggregator:     {status['aggregator']}",
        f"Client config:  {status['client_config']}",
        f"Epoch duration: {epoch} (a blob stored with --epochs 1 lives until the current "
        f"epoch ends, at most {epoch} from now; each further epoch adds {epoch})",
    ]
    for node in status["nodes"]:
        shards = node["shards"]
        span = (
            f"{len(shards)} shards" + (f" ({shards[0]}-{shards[-1]})" if shards else "")
            if node.get("inCommittee", True)
            else "not in the committee"
        )
        state = "running" if node["running"] else "stopped"
        lies = ", lying proxy" if "proxy" in node else ""
        lines.append(
            f"Node {node['index']}: {node['url']}  pid {node['pid']}  {span}  {state}{lies}"
        )
    if "hosts" in status:
        links = status["links"]
        lines.append(
            f"Hosts: {len(status['hosts'])} network namespaces; links {links['latency_ms']:g} ms"
            f" ± {links['jitter_ms']:g} ms, loss {links['loss']:.2%}, "
            + (f"{links['bandwidth_bps'] / 1e6:g} Mbit/s" if links["bandwidth_bps"] else "unshaped")
            + f" ({links['emulation']})"
        )
        lines.extend(f"  {host['name']:<10} {host['address']}" for host in status["hosts"])
    return lines


@click.group("devnet")
def devnet() -> None:
    """Run a local Walrus network: devchain, storage nodes and daemon as processes."""


#: `devnet up`'s epochs: a blob stored with `--epochs 1` lives until the current epoch ends,
#: so with one-minute epochs it could vanish within seconds of being stored. Ten minutes keeps
#: it for minutes while epoch changes (committee moves, shard sync, expiry) still come often
#: enough to watch; tests that want fast epochs advance them (`Devnet.advance_epoch`).
DEFAULT_EPOCH_DURATION: Final = "10m"


#: Walrus's publisher and aggregator port, which `devnet up` takes when it is free.
DEFAULT_PUBLISHER_PORT: Final = 31415


def _publisher_port(asked: int | None, *, on_hosts: bool) -> int | None:
    """The daemon's port: the one asked for (0: any), else 31415 if free, else any (None)."""
    from walruspy.devnet.setup import port_taken

    if asked == 0:
        return None
    if asked is not None:
        taken = None if on_hosts else port_taken(asked)
        if taken is not None:
            raise click.BadParameter(
                f"port {asked} is taken ({taken.strerror})", param_hint="'--publisher-port'"
            )
        return asked
    if on_hosts or port_taken(DEFAULT_PUBLISHER_PORT) is None:
        return DEFAULT_PUBLISHER_PORT
    return None


def _given(ctx: click.Context, name: str) -> bool:
    """Whether the option `name` was given (on the command line or from the environment)."""
    return ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT)


def _chain_key(_ctx: click.Context, _param: click.Parameter, value: str | None) -> bytes | None:
    if value is None:
        return None
    try:
        return read_private_key(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@devnet.command("up")
@click.option("--nodes", "n_nodes", type=click.IntRange(1, 150), default=4, show_default=True)
@click.option("--shards", "n_shards", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option(
    "--epoch-duration",
    "epoch_duration_s",
    default=DEFAULT_EPOCH_DURATION,
    show_default=True,
    callback=_duration,
    help="Epoch length: 90s, 5m, 2h. A blob stored with --epochs 1 lives only until the "
    "current epoch ends, so with short epochs it may expire within seconds: the default of "
    "10 minutes keeps it for minutes, and epoch changes still come often enough to watch.",
)
@click.option(
    "--no-tls",
    is_flag=True,
    help="Nodes serve plain HTTP (debugging); by default TLS pinned to their on-chain keys.",
)
@click.option(
    "--hosts",
    "separate_hosts",
    is_flag=True,
    help="Run the chain, every node, the daemon and the client on hosts of their own: network "
    "namespaces joined by a router, with no route out of the machine (needs root). Reach them "
    "with `walruspy devnet exec`.",
)
@click.option(
    "--latency",
    "latency_s",
    callback=_parsed(parse_delay_s),
    help="With --hosts: one-way delay between two hosts, such as 80ms (a round trip is twice).",
)
@click.option(
    "--jitter",
    "jitter_s",
    callback=_parsed(parse_delay_s),
    help="With --hosts: each packet's delay varies by up to this much, such as 10ms.",
)
@click.option(
    "--loss",
    callback=_parsed(parse_loss),
    help="With --hosts: share of packets lost on each link, such as 0.5%.",
)
@click.option(
    "--bandwidth",
    "bandwidth_bps",
    callback=_parsed(parse_bandwidth),
    help="With --hosts: each host's link rate, each way, such as 100mbit or 1gbit.",
)
@click.option(
    "--chain-rpc",
    "chain_rpc",
    default=None,
    metavar="URL",
    help="Run on this Ethereum node's JSON-RPC (e.g. anvil --hardfork prague) instead of "
    "starting the embedded devchain. It must support evm_increaseTime and evm_mine only for "
    "tests that move its clock; `devnet down` leaves it running.",
)
@click.option(
    "--chain-key",
    "chain_key",
    default=None,
    metavar="KEY",
    callback=_chain_key,
    help="With --chain-rpc: the funded account that deploys the contracts and pays every "
    "wallet's gas and WAL, as a file holding its hex private key, or env:NAME (as `chain "
    "deploy --key`). anvil prints its accounts' keys when it starts; with its default "
    "mnemonic the first is 0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80, "
    "so: echo THAT_KEY > anvil.key, then --chain-key anvil.key. Default: the devchain's first "
    "dev account, which holds nothing elsewhere. Kept in DIR/wallets/funder.key for add-node "
    "and get-wal.",
)
@click.option(
    "--publisher-port",
    type=click.IntRange(0, 65535),
    default=None,
    help=f"The publisher's (and aggregator's) port on 127.0.0.1. Default: Walrus's "
    f"{DEFAULT_PUBLISHER_PORT} if it is free, else any free one; 0: any free one.",
)
@_DIR_OPTION
@json_option
def up_command(
    *,
    n_nodes: int,
    n_shards: int,
    epoch_duration_s: int,
    no_tls: bool,
    separate_hosts: bool,
    latency_s: float | None,
    jitter_s: float | None,
    loss: float | None,
    bandwidth_bps: int | None,
    chain_rpc: str | None,
    chain_key: bytes | None,
    publisher_port: int | None,
    directory: Path,
    as_json: bool,
) -> None:
    """Start a devnet in --dir (new or empty) and leave it running, or resume the stopped
    devnet in --dir: the same chain state, node data, ports and configuration (options given
    then must match the devnet's).

    With --chain-rpc the devnet runs on an Ethereum node that runs already (anvil) and
    --chain-key names the account that pays; see their help."""
    from walruspy.devnet.control import devnet_resume, devnet_status, devnet_up
    from walruspy.devnet.resume import ResumeRequest
    from walruspy.devnet.setup import DevnetSettings
    from walruspy.devnet.state import STATE_FILE

    ctx = click.get_current_context()
    shaping = [latency_s, jitter_s, loss, bandwidth_bps]
    if not separate_hosts and any(value is not None for value in shaping):
        raise click.UsageError("--latency, --jitter, --loss and --bandwidth shape --hosts links")
    if chain_key is not None and chain_rpc is None:
        raise click.UsageError(
            "--chain-key goes with --chain-rpc: the embedded devchain funds from its own account"
        )
    resumed = (directory / STATE_FILE).exists()
    if resumed:
        request = ResumeRequest(
            n_nodes=n_nodes if _given(ctx, "n_nodes") else None,
            n_shards=n_shards if _given(ctx, "n_shards") else None,
            epoch_duration_s=epoch_duration_s if _given(ctx, "epoch_duration_s") else None,
            tls=False if no_tls else None,
            hosts=True if separate_hosts else None,
            chain_rpc=chain_rpc,
            funder_key=chain_key,
        )
        asyncio.run(devnet_resume(directory, request))
    else:
        try:
            shape = None
            if separate_hosts:
                shape = LinkShape(
                    latency_s or 0.0, jitter_s or 0.0, loss or 0.0, bandwidth_bps or 0
                )
            settings = DevnetSettings(
                n_nodes,
                n_shards,
                epoch_duration_s,
                tls=not no_tls,
                hosts=shape,
                chain_rpc=chain_rpc,
                funder_key=chain_key,
                daemon_port=_publisher_port(publisher_port, on_hosts=separate_hosts),
            )
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        asyncio.run(devnet_up(directory, settings))
    status = {**devnet_status(directory), "resumed": resumed}
    emit(
        status,
        as_json=as_json,
        lines=[
            *(["Resumed the stopped devnet."] if resumed else []),
            *_endpoint_lines(status),
            "Try: "
            + (f"walruspy devnet exec --dir {status['dir']} -- " if "hosts" in status else "")
            + f"walruspy store FILE --epochs 2 --config {status['client_config']}",
            f"Stop it with: walruspy devnet down --dir {status['dir']}"
            " (`walruspy devnet up` on the same --dir resumes it)",
        ],
    )


@devnet.command("status")
@_DIR_OPTION
@json_option
def status_command(directory: Path, as_json: bool) -> None:
    """Show the devnet's endpoints, which of its processes run and which nodes are in the
    current committee (read from the chain while it runs)."""
    from walruspy.devnet.control import devnet_status, live_committee

    status = devnet_status(directory, asyncio.run(live_committee(directory)))
    chain, daemon = status["chain"], status["daemon"]
    chain_text = (
        f"External chain at {chain['url']} {'answers' if chain['running'] else 'does not answer'}"
        if chain["external"]
        else f"Chain pid {chain['pid']} {'running' if chain['running'] else 'stopped'}"
    )
    emit(
        status,
        as_json=as_json,
        lines=[
            *_endpoint_lines(status),
            f"{chain_text}, daemon pid {daemon['pid']} "
            f"{'running' if daemon['running'] else 'stopped'}",
        ],
    )


@devnet.command("add-node")
@_DIR_OPTION
@click.option(
    "--stake",
    "stake_frost",
    type=click.IntRange(min=10**9),
    default=None,
    help="FROST to stake with the new node from the devnet's wallet (at least 1 WAL).",
)
@json_option
def add_node_command(directory: Path, stake_frost: int | None, as_json: bool) -> None:
    """Start one more storage node, registered as a candidate (and staked, with --stake).

    It joins the committee at the next selection if its stake earns it shards.
    """
    from walruspy.devnet.control import devnet_add_node

    added = asyncio.run(devnet_add_node(directory, stake_frost))
    emit(
        added,
        as_json=as_json,
        lines=[
            f"Node {added['index']} ({added['nodeId']}) serves at {added['url']},"
            f" pid {added['pid']}; it joins the committee at the next selection"
            + (" with its stake." if stake_frost else " once staked.")
        ],
    )


@devnet.command("restart-node")
@_DIR_OPTION
@click.option("--node", "index", type=click.IntRange(min=0), required=True, help="The node.")
@json_option
def restart_node_command(directory: Path, index: int, as_json: bool) -> None:
    """Restart a node of the running devnet (stopped, crashed or running) on its data and port,
    and wait until it serves and is current with the chain."""
    from walruspy.devnet.control import devnet_restart_node

    restarted = asyncio.run(devnet_restart_node(directory, index))
    emit(
        restarted,
        as_json=as_json,
        lines=[
            f"Node {index} ({restarted['nodeId']}) runs again at {restarted['url']},"
            f" pid {restarted['pid']}."
        ],
    )


@devnet.command("fault")
@_DIR_OPTION
@click.option("--node", "index", type=click.IntRange(min=0), required=True, help="The node.")
@click.option(
    "--mode",
    type=click.Choice(["none", "discard", "fetch-at-challenge"]),
    required=True,
    help="discard: acknowledge slivers, then drop them and never recover them; "
    "fetch-at-challenge: the same, but try to recover them when a storage challenge starts; "
    "none: honest again.",
)
@json_option
def fault_command(directory: Path, index: int, mode: str, as_json: bool) -> None:
    """Make a node misbehave (for tests and demonstrations of storage challenges)."""
    from walruspy.devnet.control import devnet_fault
    from walruspy.node.faults import FaultMode

    result = devnet_fault(directory, index, FaultMode(mode))
    emit(result, as_json=as_json, lines=[f"Node {index}: fault {mode}."])


@devnet.command(
    "exec", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False}
)
@_DIR_OPTION
@click.option(
    "--host",
    default="client",
    show_default=True,
    help="The host to run on: client, chain, daemon, nodeI, or one made with add-host.",
)
@click.argument("command", nargs=-1, type=click.UNPROCESSED, required=True)
def exec_command(directory: Path, host: str, command: tuple[str, ...]) -> None:
    """Run COMMAND on a host of the devnet (after --), so that it reaches the devnet's network:
    `walruspy devnet exec --dir D -- walruspy store FILE`. Its exit status is the command's."""
    from walruspy.devnet.control import exec_argv

    argv = exec_argv(directory, host, command)
    sys.stdout.flush()
    try:
        os.execvp(argv[0], argv)  # noqa: S606 - the user's own command, as asked
    except OSError as exc:
        raise click.ClickException(f"cannot run {argv[0]}: {exc.strerror}") from None


@devnet.command("add-host")
@_DIR_OPTION
@click.option("--name", required=True, help="The new host's name, such as operator1.")
@json_option
def add_host_command(directory: Path, name: str, as_json: bool) -> None:
    """Add an empty host to a running --hosts devnet (a new operator's server, say); run
    commands on it with `walruspy devnet exec --host NAME`."""
    from walruspy.devnet.control import devnet_add_host

    added = devnet_add_host(directory, name)
    emit(
        added,
        as_json=as_json,
        lines=[
            f"Host {added['host']} at {added['address']}: walruspy devnet exec --dir "
            f"{directory} --host {added['host']} -- COMMAND"
        ],
    )


@devnet.command("advance-epoch")
@_DIR_OPTION
@json_option
def advance_epoch_command(directory: Path, as_json: bool) -> None:
    """End the current epoch now instead of at its time (moving the chain's clock), and wait
    until the next committee has taken over its shards."""
    from walruspy.devnet.resume import advance_epoch

    epoch, committee = asyncio.run(advance_epoch(directory))
    emit(
        {"epoch": epoch, "committee": {node: list(shards) for node, shards in committee.items()}},
        as_json=as_json,
        lines=[f"Epoch {epoch} began; its committee has {len(committee)} nodes."],
    )


@devnet.command("down")
@_DIR_OPTION
@json_option
def down_command(directory: Path, as_json: bool) -> None:
    """Stop every process of the devnet (its directory stays; an external chain keeps
    running)."""
    from walruspy.devnet.control import devnet_down
    from walruspy.devnet.state import DevnetState

    stopped = asyncio.run(devnet_down(directory))
    state = DevnetState.load(directory)
    external = state.chain.url if state.chain_external else None
    emit(
        {"dir": str(directory.resolve()), "stopped": stopped, "externalChain": external},
        as_json=as_json,
        lines=[
            f"Stopped {len(stopped)} processes: {', '.join(stopped)}"
            if stopped
            else "No process of this devnet was running.",
            *(
                [f"The external chain at {external} is not stopped: not the devnet's."]
                if external
                else []
            ),
        ],
    )
